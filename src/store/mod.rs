//! Pluggable storage: the [`Store`] trait, its records and change feed, and [`MemoryStore`].
//!
//! A store keeps [`Entity`] records under [`Key`]s, each with a [`Version`] for optimistic
//! concurrency, and an ordered change feed: every [`Store::commit`] is atomic and gets the next
//! [`Revision`]; [`Store::changes_since`] replays them in order, so several gateway processes on
//! one shared database can follow one another.
//!
//! The trait is object-safe (`Arc<dyn Store>`): its methods return boxed futures, which is the
//! documented erasure. With the `redb` feature, `RedbStore` keeps everything durably in one local
//! file; with the `postgres` feature, `PostgresStore` keeps it in PostgreSQL, shared by several
//! gateway nodes. Every store bounds the growth of its change feed: it keeps the changes of the
//! last [`DEFAULT_LOG_RETENTION`] revisions (each store's `with_log_retention` changes that) and
//! answers older reads with [`StoreError::Compacted`]. Adapter authors check their implementation with the conformance suite
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
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "sealed")]
mod sealed;

pub use entity::{Deployment, Entity, EntityKind, Key, Publication};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redb")]
pub use redb::{CommitSync, RedbStore};
#[cfg(feature = "sealed")]
pub use sealed::{OpenError, SEALED_PREFIX, SealError, SealedStore, SecretsKey, is_sealed};

/// How many revisions of change feed a store keeps by default: 10 000 commits. A follower
/// further behind than that reloads every record instead (see [`StoreError::Compacted`]).
///
/// # Examples
///
/// ```
/// use stagegate::store::{DEFAULT_LOG_RETENTION, MemoryStore};
/// let store = MemoryStore::new();
/// assert_eq!(store.log_retention(), DEFAULT_LOG_RETENTION);
/// ```
pub const DEFAULT_LOG_RETENTION: u64 = 10_000;

/// The lowest revision a store's `with_log_retention` accepts: 1 (the feed always answers for
/// the latest commit).
const MIN_LOG_RETENTION: u64 = 1;

/// Tells `signal`'s receivers of `revision`, unless they know of a later one already (the
/// value never goes backwards).
pub(crate) fn signal_revision(signal: &tokio::sync::watch::Sender<Revision>, revision: Revision) {
    signal.send_if_modified(|r| {
        let newer = revision > *r;
        *r = (*r).max(revision);
        newer
    });
}

/// The log floor after a commit at `revision` with a retention of `retention` revisions: the
/// highest revision whose changes may be dropped (0: none).
pub(crate) fn retained_floor(revision: Revision, retention: u64) -> Revision {
    revision.saturating_sub(retention.max(MIN_LOG_RETENTION))
}

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
    /// The backend (database, file system, network) failed; the message shows the cause.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store cannot be reached (its database is down, the network to it fails, its pool has
    /// no connection to give); nothing of the operation was applied, and it may work again
    /// later. [`is_unavailable`](Self::is_unavailable) is true.
    #[error("store {store} is unavailable: {source}")]
    Unavailable {
        /// The store, as an operator knows it (e.g. `postgres 10.0.0.5:5432/gateway`), without
        /// any password.
        store: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was written by a newer stagegate: its schema version is one this build does not
    /// know, so it refuses to use it rather than misread it.
    #[error(
        "the schema of store {store} is version {found}, newer than this build of stagegate knows \
         (up to {known}): upgrade this node before starting it against this store"
    )]
    SchemaTooNew {
        /// The store.
        store: String,
        /// The version found.
        found: u64,
        /// The newest version this build knows.
        known: u64,
    },
    /// The store's configuration (a URL, an option) is not valid; nothing was opened.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
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

    /// Whether the store could not be reached or used for a reason that may pass: a database
    /// that is down or unreachable ([`Unavailable`](Self::Unavailable)), an I/O error other
    /// than a full disk, or a file locked by another process. The admin API answers these
    /// with 503 naming the store.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::StoreError;
    /// let down = StoreError::Unavailable {
    ///     store: "postgres 127.0.0.1:5432/gateway".into(),
    ///     source: "connection refused".into(),
    /// };
    /// assert!(down.is_unavailable());
    /// assert_eq!(
    ///     down.to_string(),
    ///     "store postgres 127.0.0.1:5432/gateway is unavailable: connection refused"
    /// );
    /// assert!(!StoreError::Compacted(3).is_unavailable());
    /// ```
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Locked { .. } => true,
            Self::Io { error, .. } => !is_disk_full(error),
            _ => false,
        }
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
/// # The rules
///
/// Every rule here is a property of the conformance suite (`stagegate::store::conformance`,
/// feature `conformance`), which checks each one as its own named test:
///
/// - **Empty store** (`empty_store`): a new store is at revision 0, holds no records, has an
///   empty feed, and an empty commit returns 0 and changes nothing.
/// - **Versions** (`put_get_versions`): the first write of a key is version 1 and every later
///   put of it adds 1; a record reads back exactly as written; unknown keys read as `None`.
/// - **Deletes** (`deletes`, `recreate_after_delete`): a deleted key reads as `None`, vanishes
///   from [`load`](Store::load), and appears in the feed once, without a value. A key created
///   again after a delete starts again at **version 1** (a version counts the writes of one
///   life of the key). Deleting an absent key with [`Expect::Any`] succeeds and adds nothing to
///   the feed (the commit still takes a revision if it is not empty).
/// - **Preconditions** (`preconditions`): [`Expect::Absent`] on an existing key,
///   [`Expect::Version`] with the wrong version or on a missing key (put or delete) fail with
///   [`StoreError::Conflict`]; [`Expect::Any`] always holds; a failed commit takes no revision.
/// - **Atomic commits** (`atomic_commits`): a commit with one failing write writes nothing and
///   adds nothing to the feed.
/// - **Which error wins** (`duplicate_keys`, `conflict_beats_duplicate`): preconditions are
///   checked against the state before the commit (a commit's own writes are not visible to its
///   later writes), write by write in order, and the first failing write decides: a write whose
///   precondition fails is a [`StoreError::Conflict`] even when it also repeats an earlier key
///   of the commit; a write whose precondition holds but whose key an earlier write of the same
///   commit already wrote is [`StoreError::DuplicateKey`]. Either way nothing is written.
/// - **Change feed** (`change_feed`): commits get consecutive revisions starting at 1, and
///   [`changes_since`](Store::changes_since) returns one change per write, in commit order (and
///   in write order within a commit), only of later revisions, whole commits only (a limit is
///   honoured between commits, never inside one), and nothing after the last revision.
/// - **Every kind round-trips** (`every_kind_round_trips`): every [`Entity`] kind reads back
///   unchanged through [`get`](Store::get) and [`load`](Store::load).
/// - **Concurrent writers** (`concurrent_commits`): of several commits racing with the same
///   [`Expect::Version`], exactly one wins, and revisions stay consecutive.
/// - **Load** (`load_is_a_set`): [`load`](Store::load) returns every record exactly once, at the
///   revision of the last commit; its **order is unspecified** (callers must not rely on one).
/// - **Change signal** (`change_signal`): a store that returns a receiver from
///   [`subscribe`](Store::subscribe) sends each of its own commits' revisions through it (later
///   revisions may replace earlier ones unread; the value never goes backwards). A store without
///   one returns `None`.
/// - **Compaction** (`compaction`): after [`compact_log_before`](Store::compact_log_before)`(n)`,
///   [`changes_since`](Store::changes_since) of a revision older than `n - 1` fails with
///   [`StoreError::Compacted`], later ones answer as before, records are untouched and later
///   commits are fed as usual. Each store also compacts by itself behind its retention window.
pub trait Store: Send + Sync + 'static {
    /// Every record, and the revision they are at; in no particular order.
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

    /// A receiver that is told the store's latest revision whenever it changes, so a follower
    /// can wake at once rather than at its next poll. Stores that know of their own commits
    /// only (`MemoryStore`, `RedbStore`) signal those; `PostgresStore` signals every node's,
    /// through `LISTEN`/`NOTIFY`. A signal may be lost or merged with later ones, so followers
    /// must still poll now and then. The default is `None`: the store never signals.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Group;
    /// use stagegate::store::{Entity, Expect, MemoryStore, Store, Write};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let mut changed = store.subscribe().unwrap();
    /// let g = Group::new("shop_api").unwrap();
    /// store.commit(vec![Write::put(Entity::Group(g), Expect::Absent)]).await.unwrap();
    /// changed.changed().await.unwrap();
    /// assert_eq!(*changed.borrow(), 1);
    /// # });
    /// ```
    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        None
    }

    /// Drops the change-feed entries of commits before revision `before` (capped at the last
    /// revision) and returns how many entries were removed; records are untouched. Afterwards
    /// [`changes_since`](Store::changes_since) of a revision below `before - 1` fails with
    /// [`StoreError::Compacted`]. Compacting to an older point than before does nothing.
    ///
    /// Stores also do this by themselves behind their retention window (see
    /// [`DEFAULT_LOG_RETENTION`]); this is for operators and tests. The default removes nothing,
    /// which the conformance suite refuses: a wrapping store must forward it.
    ///
    /// # Errors
    ///
    /// When the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Group;
    /// use stagegate::store::{Entity, Expect, MemoryStore, Store, StoreError, Write};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// for name in ["group_a", "group_b", "group_c"] {
    ///     let g = Group::new(name).unwrap();
    ///     store.commit(vec![Write::put(Entity::Group(g), Expect::Absent)]).await.unwrap();
    /// }
    /// assert_eq!(store.compact_log_before(3).await.unwrap(), 2);
    /// assert_eq!(store.changes_since(2, 10).await.unwrap().len(), 1);
    /// assert!(matches!(store.changes_since(1, 10).await, Err(StoreError::Compacted(1))));
    /// # });
    /// ```
    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        let _ = before;
        Box::pin(async { Ok(0) })
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
    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        (**self).subscribe()
    }
    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        (**self).compact_log_before(before)
    }
}
