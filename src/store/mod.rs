//! Pluggable storage: the [`Store`] trait, its records and change feed, and [`MemoryStore`].
//!
//! A store keeps [`Entity`] records under [`Key`]s, each with a [`Version`] for optimistic
//! concurrency, and an ordered change feed: every [`Store::commit`] is atomic and gets the next
//! [`Revision`]; [`Store::changes_since`] replays them in order, so several gateway processes on
//! one shared database can follow one another.
//!
//! The trait is object-safe (`Arc<dyn Store>`): its methods return boxed futures, which is the
//! documented erasure. With the `redb` feature, `RedbStore` keeps everything durably in one local
//! file. Adapter authors check their implementation with the conformance suite
//! (`stagegate::store::conformance`, behind the `conformance` feature).
//!
//! # Examples
//!
//! ```
//! use stagegate::store::{Expect, Key, MemoryStore, Store, Write, Entity};
//! use stagegate::model::Group;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let group = Group::new("shop_api").unwrap();
//! let rev = store.commit(vec![Write::put(Entity::Group(group.clone()), Expect::Absent)]).await.unwrap();
//! assert_eq!(rev, 1);
//! let got = store.get(&Key::group(&group.id)).await.unwrap().unwrap();
//! assert_eq!(got.version, 1);
//! assert_eq!(store.changes_since(0, 100).await.unwrap().len(), 1);
//! # });
//! ```

#[cfg(feature = "redb")]
mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "redb")]
mod decode_pool;
mod entity;
mod memory;
#[cfg(feature = "redb")]
mod redb;

pub use entity::{Deployment, Entity, EntityKind, Key, Publication};
pub use memory::MemoryStore;
#[cfg(feature = "redb")]
pub use redb::{CommitSync, RedbStore};

pub use crate::base::BoxFuture;

/// The position of a commit in the change feed; the first commit is revision 1.
pub type Revision = u64;

/// The version of one record; the first write of a key is version 1.
pub type Version = u64;

/// A record with its version.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its version.
    pub version: Version,
}

/// What a write expects to find (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist at this version.
    Version(Version),
    /// Whatever is there.
    Any,
}

/// One write of an atomic [`Store::commit`].
// Writes are short-lived and built one per change; boxing the entity would only add an
// allocation to every commit.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    /// Insert or replace a record.
    Put {
        /// The record.
        entity: Entity,
        /// The precondition.
        expect: Expect,
    },
    /// Remove a record.
    Delete {
        /// Which record.
        key: Key,
        /// The precondition.
        expect: Expect,
    },
}

impl Write {
    /// A put.
    #[must_use]
    pub fn put(entity: Entity, expect: Expect) -> Self {
        Self::Put { entity, expect }
    }

    /// A delete.
    #[must_use]
    pub fn delete(key: Key, expect: Expect) -> Self {
        Self::Delete { key, expect }
    }

    /// The key written.
    #[must_use]
    pub fn key(&self) -> Key {
        match self {
            Self::Put { entity, .. } => entity.key(),
            Self::Delete { key, .. } => key.clone(),
        }
    }
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The commit it belongs to.
    pub revision: Revision,
    /// The key changed.
    pub key: Key,
    /// The new record and its version; none for a delete.
    pub value: Option<Versioned<Entity>>,
}

/// Everything a store holds, at one revision.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Loaded {
    /// The revision the records are at.
    pub revision: Revision,
    /// Every record.
    pub records: Vec<Versioned<Entity>>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A write's precondition did not hold; nothing of the commit was applied.
    #[error("version conflict on {key}: expected {expected:?}, found {found:?}")]
    Conflict {
        /// The key.
        key: Key,
        /// What the write expected.
        expected: Expect,
        /// The version found (none: absent).
        found: Option<Version>,
    },
    /// The same key is written twice in one commit.
    #[error("key {0} is written twice in one commit")]
    DuplicateKey(Key),
    /// The change feed no longer holds changes that old.
    #[error("the change feed was compacted past revision {0}")]
    Compacted(Revision),
    /// Stored data could not be read back.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend (database, file system, network) failed.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing the store's file failed: the disk is full
    /// ([`is_disk_full`](Self::is_disk_full)) or another I/O error. Nothing of the operation was
    /// applied, and the store retries once the cause is gone (`RedbStore` reopens its database
    /// on the next call).
    #[error("{}", io_message(file, error))]
    Io {
        /// The file.
        file: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The store's file is already open, and locked, elsewhere.
    #[error("{file} is already open (by another process, or another store in this one) and locked")]
    Locked {
        /// The file.
        file: String,
    },
}

impl StoreError {
    /// Whether the store failed because its disk (or the user's quota on it) is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::StoreError;
    /// let full = StoreError::Io {
    ///     file: "data/stagegate.redb".into(),
    ///     error: std::io::ErrorKind::StorageFull.into(),
    /// };
    /// assert!(full.is_disk_full());
    /// assert!(full.to_string().starts_with("cannot write data/stagegate.redb: the disk is full"));
    /// ```
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io { error, .. } if is_disk_full(error))
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn io_message(file: &str, error: &std::io::Error) -> String {
    if is_disk_full(error) {
        format!("cannot write {file}: the disk is full ({error})")
    } else {
        format!("I/O error on {file}: {error}")
    }
}

/// Persistence for everything the control plane manages.
///
/// Implementations must make [`commit`](Store::commit) atomic (all writes or none, every
/// precondition checked against the state before the commit) and give commits consecutive
/// revisions starting at 1, and [`changes_since`](Store::changes_since) must return the changes
/// of later commits in order. Run [`conformance`](crate::store) (feature `conformance`) against
/// an adapter to check all of this.
pub trait Store: Send + Sync + 'static {
    /// Every record, and the revision they are at.
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>>;

    /// One record.
    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>>;

    /// Applies `writes` atomically and returns the new revision.
    ///
    /// An empty batch changes nothing and returns the current revision.
    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>>;

    /// Up to `limit` changes of commits after `revision`, in order (whole commits only, unless a
    /// single commit exceeds `limit`).
    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>>;

    /// The latest revision.
    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>>;

    /// Whether the store can take writes, as far as it knows without trying one: `Err` with
    /// the failure of the last write while writes fail (a full disk, an I/O error), until one
    /// succeeds again. The default knows of no failure. Cheap: health checks call it.
    ///
    /// # Errors
    ///
    /// The last write's failure, while it lasts.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::{MemoryStore, Store};
    /// assert!(MemoryStore::new().health().is_ok());
    /// ```
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        (**self).load()
    }
    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        (**self).get(key)
    }
    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        (**self).commit(writes)
    }
    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        (**self).changes_since(revision, limit)
    }
    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        (**self).revision()
    }
    fn health(&self) -> Result<(), StoreError> {
        (**self).health()
    }
}
