//! [`RedbStore`]: the embedded, durable store, one file on local disk (feature `redb`).
//!
//! This is the default store of the bundled example gateway. It is built on
//! [redb](https://docs.rs/redb), chosen over SQLite because it is pure Rust (no C toolchain or
//! `cc` build on a 2-core CI machine) and still gives what a control plane needs: ACID
//! transactions, commits that are `fsync`ed before they return, and crash-safe copy-on-write
//! B-trees whose pages carry checksums.
//!
//! # Layout
//!
//! Three tables in one database file:
//!
//! - `records`: the key `kind/id` (see [`Key`]'s `Display`) → [`Versioned<Entity>`];
//! - `log`: `(revision, sequence)` → [`Change`], the change feed;
//! - `meta`: `schema_version`, `revision` (the last commit) and `log_floor` (the oldest revision
//!   [`Store::changes_since`] still answers, see [`RedbStore::compact_log_before`]).
//!
//! Values are MessagePack with named fields behind a format byte and a CRC-32 (schema version 2).
//! Files of schema version 1 hold JSON, which is still read; such a file is marked version 2 on
//! open, and each value moves to the binary format when it is next written. MessagePack rather
//! than JSON because start-up decodes every record: at 100 000 APIs decoding JSON was a third of
//! the start-up time.
//!
//! # Durability and damage
//!
//! Every [`Store::commit`] is one redb write transaction, committed with
//! [`Durability::Immediate`] and (by default, see [`CommitSync`]) two-phase commit: when
//! `commit` returns, the data is on disk, and the active commit slot is only switched once the
//! pages it points to are.
//!
//! Damage is found in two ways, and which one runs at open is the caller's choice:
//!
//! - [`RedbStore::open`] (the default) trusts redb's crash recovery for what a crash can do: a
//!   file that was not closed cleanly is verified and repaired by redb itself (every page
//!   checksum, then the allocator state is rebuilt). A cleanly closed file is not read whole:
//!   instead every value carries its own checksum, checked whenever it is read, and loading the
//!   records (which the control plane does at start-up, all of them) also checks that the
//!   records table lists its keys in order and as many as it says it holds. So damage to any
//!   record is refused when the gateway starts; damage to a change-feed entry when it is read.
//! - [`RedbStore::open_verified`] also runs redb's integrity check on open, which verifies every
//!   committed page (redb's own branch pages, allocator state and free lists too, which the first
//!   way only notices when reading through them goes wrong) before anything is used. It reads the
//!   whole file and commits on every open: at 100 000 APIs (a 370 MB file) it was 1.2 s of a
//!   4 s start-up, which is why it is no longer the default.
//!
//! What the tests show, for both: a file that is not a redb database (text, noise, zeros) or is
//! cut short is refused; a byte flipped anywhere in a committed page is refused (by
//! `open_verified` at open, by `open` at the latest when the damaged data is read), and one in a
//! free page is harmless (the data reads back exactly). Two-phase commit matters here: without
//! it redb falls back to the previous commit slot when the last commit's pages fail their
//! checksums, which would lose the last commit without a word. The one damage redb cannot tell
//! from a real state is a flip of exactly the header bit that selects the active commit slot,
//! when the other slot still describes an intact older commit; that would open the older commit.
//! What `open` can miss is damage to redb's allocator state in a cleanly closed file: the records
//! read back intact, but a later commit could reuse a page that is still in use. Use
//! `open_verified` where files may be damaged while closed.
//!
//! A record that is valid redb data but not a valid record (or one filed under the wrong key) is
//! reported as [`StoreError::Corrupt`] naming the key when it is read. A panic inside redb, at
//! open or in an operation, is caught and reported as [`StoreError::Corrupt`] naming the file.
//!
//! # Blocking
//!
//! redb is synchronous and a commit waits for two `fsync`s (one with [`CommitSync::OnePhase`];
//! from well under a millisecond to 10 ms each on the 2-core test machine, depending on what
//! else writes to its disk), far too long to hold an async worker, so every trait method runs
//! its redb calls on tokio's blocking pool ([`tokio::task::spawn_blocking`]). Reads are fast (a
//! `get` is well under a millisecond) but go the same way, since a cold read still touches the
//! disk and a `load` reads every record. The store must therefore be used from within a tokio
//! runtime (current-thread or multi-thread). `load` decodes a large file's records on threads of
//! its own while the blocking-pool thread reads (see [`RedbStore::with_load_threads`]).
//! [`RedbStore::open`] is synchronous and may read the whole file (after a crash, or with
//! [`RedbStore::open_verified`]), so call it at startup or from `spawn_blocking`.
//!
//! Opening also syncs the file once, so it waits for whatever of the file the operating system
//! has not written to disk yet: right after a data directory is copied or restored, that is
//! the whole copy (0.5 s for a 310 MB file on the test machine). Run `sync` after restoring a
//! copy to pay that before the gateway starts rather than during its start-up.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ::redb::backends::FileBackend;
use ::redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle, WriteTransaction,
};

use parking_lot::{Mutex, RwLock};

use super::codec::{self, DecodeError};
use super::decode_pool;
use super::memory::check_writes;
use super::{
    BoxFuture, Change, DEFAULT_LOG_RETENTION, Entity, Key, Loaded, Revision, Store, StoreError,
    Version, Versioned, Write, retained_floor,
};

/// The layout version this build writes: records and change-feed entries in the checksummed binary
/// format of [`codec`]. Version 1 stored them as JSON; this build reads both, and an older build
/// refuses a version 2 file by its version rather than failing on its first record.
const SCHEMA_VERSION: u64 = 2;

/// The oldest layout version this build opens; such a file is marked [`SCHEMA_VERSION`] on open,
/// since what is written from then on is in the new format.
const OLDEST_SCHEMA_VERSION: u64 = 1;

const RECORDS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("records");
const LOG: TableDefinition<'static, (u64, u32), &[u8]> = TableDefinition::new("log");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

const META_SCHEMA: &str = "schema_version";
const META_REVISION: &str = "revision";
const META_LOG_FLOOR: &str = "log_floor";

/// redb's page cache (read cache and write buffer together). Every record is read once at
/// start-up and then lives decoded in the control plane, so the cache only needs to hold the
/// pages a commit walks; a bigger one filled up with the start-up scan and stayed resident
/// (64 MiB of the gateway's memory at 100 000 APIs) without making anything faster, and 16 MiB
/// still stayed resident for nothing: each page of the start-up scan is read once. A large
/// import spills dirty pages to the file early, which costs nothing extra: they are written
/// before the commit returns anyway (an import of 100 000 APIs took no longer with 4 MiB).
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// A [`Store`] in one redb database file: durable, crash-safe, for a single gateway process.
///
/// The file is locked while open: a second `open` of the same file, in this process or another,
/// fails with [`StoreError::Locked`] naming the file until the first store is dropped. A new
/// file is created readable and writable by its owner only (mode 0600), and an existing one
/// that others may read is made so on open: it holds every app secret and AppCode in clear.
///
/// After an I/O error (a full disk, a failing device) redb refuses every further operation on
/// the open database; the store then reopens the file on its next call, which recovers it to
/// its last completed commit, so it works again without a restart once the cause is gone. Until
/// a write succeeds again, [`Store::health`] reports the failure.
///
/// # Examples
///
/// ```
/// use stagegate::model::Group;
/// use stagegate::store::{Entity, Expect, Key, RedbStore, Store, Write};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("stagegate-doc-store-{}.redb", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let store = RedbStore::open(&path).unwrap();
/// let group = Group::new("shop_api").unwrap();
/// let rev = store.commit(vec![Write::put(Entity::Group(group.clone()), Expect::Absent)]).await.unwrap();
/// assert_eq!(rev, 1);
/// drop(store);
///
/// // Everything is still there after a reopen.
/// let store = RedbStore::open(&path).unwrap();
/// assert_eq!(store.get(&Key::group(&group.id)).await.unwrap().unwrap().version, 1);
/// assert_eq!(store.revision().await.unwrap(), 1);
/// # drop(store);
/// std::fs::remove_file(&path).unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct RedbStore {
    slot: Arc<Slot>,
    path: PathBuf,
    sync: CommitSync,
    /// Threads decoding records in [`Store::load`]; `None`: as many as the process may run on.
    load_threads: Option<NonZeroUsize>,
    /// Revisions of change feed kept; older entries are dropped inside each commit.
    retention: u64,
    /// Told the revision of each commit (see [`Store::subscribe`]).
    signal: tokio::sync::watch::Sender<Revision>,
}

/// How [`RedbStore`] makes a commit durable (see [`RedbStore::with_commit_sync`]).
///
/// Either way a commit is on disk when [`Store::commit`] returns: the choice is between one and
/// two `fsync`s per commit, against how damage to the last commit is handled at open.
///
/// # Examples
///
/// ```
/// use stagegate::store::CommitSync;
/// assert_eq!(CommitSync::default(), CommitSync::TwoPhase);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitSync {
    /// redb's two-phase commit, two `fsync`s per commit: the new commit slot is only switched
    /// to once the pages it points to are on disk, so damage to the last commit found by a
    /// verifying open ([`RedbStore::open_verified`], or any open after a crash) is refused
    /// ([`StoreError::Corrupt`]). The default.
    #[default]
    TwoPhase,
    /// redb's one-phase commit with checksums, one `fsync` per commit: as durable when `commit`
    /// returns, and a crash during a commit still recovers to the last completed one; but should
    /// the pages of the last commit be damaged later (a flipped bit on disk), a verifying open
    /// falls back to the previous commit without an error, losing that commit. Halves the disk
    /// waits of every admin change; for disks where an `fsync` is slow.
    OnePhase,
}

impl RedbStore {
    /// Opens the database at `path`, creating it (and only the file, not its directory) if it
    /// does not exist.
    ///
    /// A file that is not a redb database or a truncated one is refused, as is a redb database
    /// that another program made (tables, but no stagegate `meta`) or one written by a newer
    /// stagegate with an unknown schema version. A file left by a crash is verified and recovered
    /// to its last completed commit. A cleanly closed file is not read whole: each record is
    /// verified by its own checksum when it is read, and [`Store::load`] checks the records
    /// table's order and count; see [`open_verified`](Self::open_verified) to verify every page
    /// first, and the module docs for what each one finds.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a damaged, foreign or newer file (the `key` names the file),
    /// [`StoreError::Locked`] when it is already open, [`StoreError::Io`] when it cannot be
    /// opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::{RedbStore, StoreError};
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-open-{}.redb", std::process::id()));
    /// std::fs::write(&path, b"certainly not a database").unwrap();
    /// assert!(matches!(RedbStore::open(&path), Err(StoreError::Corrupt { .. })));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), false)
    }

    /// Opens the database at `path` like [`open`](Self::open), after verifying every page of
    /// the file: redb's integrity check, which reads the whole file, checks every page checksum
    /// and rebuilds the allocator state, then commits.
    ///
    /// [`open`](Self::open) already verifies every record it reads (all of them, at start-up)
    /// and redb verifies the whole file by itself after a crash; what this adds is redb's own
    /// pages (the tree's branch pages, its allocator state and free lists) and the change feed's
    /// entries, checked before anything is used. Use it when the file may have been damaged
    /// outside the process while it was closed: a disk or file system you do not trust, a copy
    /// restored from backup. It costs a read of the whole file and a commit on every open (about
    /// 1.2 s of CPU for the 370 MB file of 100 000 APIs on the test machine).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); damage anywhere in the file's committed pages is
    /// [`StoreError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::{RedbStore, StoreError};
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-verified-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// drop(RedbStore::open(&path).unwrap());
    /// let store = RedbStore::open_verified(&path).unwrap();
    /// # drop(store);
    /// std::fs::write(&path, b"certainly not a database").unwrap();
    /// assert!(matches!(RedbStore::open_verified(&path), Err(StoreError::Corrupt { .. })));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn open_verified(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), true)
    }

    fn open_with(path: &Path, verify: bool) -> Result<Self, StoreError> {
        Self::open_by(
            path,
            Box::new(move |path| {
                let file = open_private(path)?;
                let backend = FileBackend::new(file).map_err(|e| map_err(path, e))?;
                builder(verify)
                    .create_with_backend(backend)
                    .map_err(|e| map_err(path, e))
            }),
        )
    }

    /// Opens the database with `open` (which [`Slot::reopen`] calls again after an I/O error).
    fn open_by(path: &Path, open: Opener) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let db = open_checked(&path, &open)?;
        let current = revision(&path, &db)?;
        Ok(Self {
            slot: Arc::new(Slot {
                db: RwLock::new(Some(db)),
                broken: AtomicBool::new(false),
                failure: Mutex::new(None),
                open,
            }),
            path,
            sync: CommitSync::default(),
            load_threads: None,
            retention: DEFAULT_LOG_RETENTION,
            signal: tokio::sync::watch::Sender::new(current),
        })
    }

    /// Keeps the changes of the last `revisions` commits in the change feed (at least 1; the
    /// default is [`DEFAULT_LOG_RETENTION`](super::DEFAULT_LOG_RETENTION)): each commit drops
    /// the entries that fall out of the window, in its own transaction, so the file does not
    /// grow with the history.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Group;
    /// use stagegate::store::{Entity, Expect, RedbStore, Store, StoreError, Write};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-retention-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = RedbStore::open(&path).unwrap().with_log_retention(2);
    /// assert_eq!(store.log_retention(), 2);
    /// for name in ["group_a", "group_b", "group_c"] {
    ///     let g = Group::new(name).unwrap();
    ///     store.commit(vec![Write::put(Entity::Group(g), Expect::Absent)]).await.unwrap();
    /// }
    /// assert_eq!(store.changes_since(1, 10).await.unwrap().len(), 2);
    /// assert!(matches!(store.changes_since(0, 10).await, Err(StoreError::Compacted(0))));
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    #[must_use]
    pub fn with_log_retention(mut self, revisions: u64) -> Self {
        self.retention = revisions.max(1);
        self
    }

    /// How many revisions of change feed the store keeps.
    #[must_use]
    pub fn log_retention(&self) -> u64 {
        self.retention
    }

    /// Commits from now on with `sync` (the default is [`CommitSync::TwoPhase`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::{CommitSync, RedbStore};
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-sync-{}.redb", std::process::id()));
    /// let store = RedbStore::open(&path).unwrap().with_commit_sync(CommitSync::OnePhase);
    /// assert_eq!(store.commit_sync(), CommitSync::OnePhase);
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[must_use]
    pub fn with_commit_sync(mut self, sync: CommitSync) -> Self {
        self.sync = sync;
        self
    }

    /// How commits are made durable.
    #[must_use]
    pub fn commit_sync(&self) -> CommitSync {
        self.sync
    }

    /// Decodes records on at most `threads` threads when [`Store::load`] reads them all (at
    /// start-up); `1` decodes on the one thread that reads. The default is what
    /// [`std::thread::available_parallelism`] allows (the CPUs the process may run on, within
    /// its cgroup quota).
    ///
    /// Decoding is most of a start-up from a large file: at 100 000 APIs, two threads start
    /// the gateway in about two thirds of the time one takes. The records come out the same,
    /// in the same order, and a damaged one is reported the same, whatever the number.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use stagegate::store::RedbStore;
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-threads-{}.redb", std::process::id()));
    /// let store = RedbStore::open(&path).unwrap().with_load_threads(NonZeroUsize::MIN);
    /// assert_eq!(store.load_threads(), 1);
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[must_use]
    pub fn with_load_threads(mut self, threads: NonZeroUsize) -> Self {
        self.load_threads = Some(threads);
        self
    }

    /// How many threads decode records in [`Store::load`] (see
    /// [`with_load_threads`](Self::with_load_threads)).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::RedbStore;
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-threads-default-{}.redb", std::process::id()));
    /// let store = RedbStore::open(&path).unwrap();
    /// assert!(store.load_threads() >= 1);
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[must_use]
    pub fn load_threads(&self) -> usize {
        self.load_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// The file this store keeps its data in.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::RedbStore;
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-path-{}.redb", std::process::id()));
    /// let store = RedbStore::open(&path).unwrap();
    /// assert_eq!(store.path(), path);
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the change-feed entries of commits before revision `before`, and returns how many
    /// entries were removed.
    ///
    /// Records are untouched. Afterwards [`Store::changes_since`] answers for `revision >=
    /// before - 1` as before, and fails with [`StoreError::Compacted`] for older revisions (a
    /// follower that far behind reloads everything with [`Store::load`] instead). `before` is
    /// capped at the next revision, so the feed of future commits is never cut; compacting to an
    /// older point than a previous compaction does nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] or [`StoreError::Corrupt`] when the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Group;
    /// use stagegate::store::{Entity, Expect, RedbStore, Store, StoreError, Write};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let path = std::env::temp_dir().join(format!("stagegate-doc-compact-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = RedbStore::open(&path).unwrap();
    /// for name in ["group_a", "group_b", "group_c"] {
    ///     let g = Group::new(name).unwrap();
    ///     store.commit(vec![Write::put(Entity::Group(g), Expect::Absent)]).await.unwrap();
    /// }
    /// assert_eq!(store.compact_log_before(3).await.unwrap(), 2);
    /// assert_eq!(store.changes_since(2, 10).await.unwrap().len(), 1);
    /// assert!(matches!(store.changes_since(1, 10).await, Err(StoreError::Compacted(1))));
    /// # drop(store);
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub async fn compact_log_before(&self, before: Revision) -> Result<u64, StoreError> {
        self.blocking(true, move |path, db| {
            let txn = begin_write(path, db, CommitSync::TwoPhase)?;
            let removed = {
                let mut meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
                let revision = read_meta(path, &meta, META_REVISION)?;
                let floor = read_meta(path, &meta, META_LOG_FLOOR)?;
                let new_floor = before.saturating_sub(1).min(revision);
                if new_floor <= floor {
                    0
                } else {
                    let mut log = txn.open_table(LOG).map_err(|e| map_err(path, e))?;
                    let mut removed = 0u64;
                    // Entries of commits up to `new_floor` (inclusive) go.
                    log.retain_in((0u64, 0u32)..(new_floor + 1, 0u32), |_, _| {
                        removed += 1;
                        false
                    })
                    .map_err(|e| map_err(path, e))?;
                    meta.insert(META_LOG_FLOOR, new_floor)
                        .map_err(|e| map_err(path, e))?;
                    removed
                }
            };
            txn.commit().map_err(|e| map_err(path, e))?;
            Ok(removed)
        })
        .await
    }

    /// Runs `f` with the database on tokio's blocking pool (see [`Slot::run`]; `write`: `f`
    /// writes). A panic in redb (which it may do on pages damaged outside it, see
    /// [`open_verified`](Self::open_verified)) is reported as [`StoreError::Corrupt`] naming the
    /// file.
    async fn blocking<T, F>(&self, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &Database) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = Arc::clone(&self.slot);
        let path = self.path.clone();
        let run = move || match catch_unwind(AssertUnwindSafe(|| slot.run(&path, write, f))) {
            Ok(r) => r,
            Err(panic) => Err(StoreError::Corrupt {
                key: path.display().to_string(),
                reason: format!("redb panicked reading the file: {}", panic_message(&*panic)),
            }),
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Backend(Box::new(e))),
        }
    }
}

/// Opens the database file, as [`RedbStore::open_by`] and [`Slot::reopen`] do.
type Opener = Box<dyn Fn(&Path) -> Result<Database, StoreError> + Send + Sync>;

/// The open database, and what it takes to reopen it after an I/O error.
struct Slot {
    /// The database; `None` while a reopen has failed (it is tried again on the next call).
    /// Every operation holds the read lock for its whole run on the blocking pool, so a reopen
    /// (the write lock) waits for the operations on the old handle to end, and none starts on
    /// it after: no transaction can span the two handles.
    db: RwLock<Option<Database>>,
    /// An operation failed with an I/O error: redb answers every later operation on this handle
    /// with `PreviousIo`, so the next call reopens the file first.
    broken: AtomicBool,
    /// The I/O failure of the last write, until a write succeeds: what `health` reports.
    failure: Mutex<Option<(std::io::ErrorKind, String)>>,
    open: Opener,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Runs `f` on the database, reopening it first if an earlier call left it broken, and
    /// notes an I/O failure (and, for a write, its outcome for `health`).
    fn run<T>(
        &self,
        path: &Path,
        write: bool,
        f: impl FnOnce(&Path, &Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen(path)?;
        }
        let result = {
            let db = self.db.read();
            match db.as_ref() {
                Some(db) => f(path, db),
                // a reopen failed since the check above; the next call tries again
                None => Err(self.unavailable(path)),
            }
        };
        match &result {
            Err(StoreError::Io { error, .. }) => {
                self.broken.store(true, Ordering::Release);
                if write {
                    *self.failure.lock() = Some((error.kind(), error.to_string()));
                }
            }
            Ok(_) if write => *self.failure.lock() = None,
            _ => {}
        }
        result
    }

    /// Drops the broken handle and opens the file again: redb recovers it to its last completed
    /// commit (a commit that failed is either wholly there or not at all; the control plane
    /// finds out which by its version checks, as after a write by another process).
    fn reopen(&self, path: &Path) -> Result<(), StoreError> {
        let mut db = self.db.write();
        if !self.broken.load(Ordering::Acquire) {
            return Ok(()); // another call reopened it meanwhile
        }
        // The old handle must be closed (its file lock released) before the file is opened
        // again.
        *db = None;
        let reopened = catch_unwind(AssertUnwindSafe(|| open_checked(path, &self.open)))
            .unwrap_or_else(|panic| {
                Err(StoreError::Corrupt {
                    key: path.display().to_string(),
                    reason: format!(
                        "redb panicked reopening the file: {}",
                        panic_message(&*panic)
                    ),
                })
            });
        match reopened {
            Ok(fresh) => {
                *db = Some(fresh);
                self.broken.store(false, Ordering::Release);
                tracing::info!(file = %path.display(), "store reopened after an I/O error");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "store cannot be reopened yet");
                Err(e)
            }
        }
    }

    /// The error of a call made while the database cannot be reopened: the last failure.
    fn unavailable(&self, path: &Path) -> StoreError {
        let (kind, message) = self.failure.lock().clone().unwrap_or((
            std::io::ErrorKind::Other,
            "the database could not be reopened after an I/O error".into(),
        ));
        StoreError::Io {
            file: path.display().to_string(),
            error: std::io::Error::new(kind, message),
        }
    }

    fn health(&self, path: &Path) -> Result<(), StoreError> {
        if self.failure.lock().is_some() {
            Err(self.unavailable(path))
        } else {
            Ok(())
        }
    }
}

/// redb's settings for this store.
fn builder(verify: bool) -> ::redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(verify);
    b
}

/// Opens `open`'s database and checks it is a stagegate store; a panic in redb is reported as
/// [`StoreError::Corrupt`] naming the file.
fn open_checked(path: &Path, open: &Opener) -> Result<Database, StoreError> {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let db = open(path)?;
        init(path, &db)?;
        Ok(db)
    }));
    match opened {
        Ok(r) => r,
        Err(panic) => Err(StoreError::Corrupt {
            key: path.display().to_string(),
            reason: format!("redb panicked opening the file: {}", panic_message(&*panic)),
        }),
    }
}

/// Opens (or creates) the database file, readable and writable by its owner only: it holds
/// every app secret and AppCode in clear. An existing file that group or others may read or
/// write is restricted to its owner.
fn open_private(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let io = |error| StoreError::Io {
        file: path.display().to_string(),
        error,
    };
    let file = opts.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
            tracing::warn!(
                file = %path.display(),
                was = format_args!("{:o}", mode & 0o7777),
                "the store's file was readable by others; it is now its owner's alone (0600)"
            );
        }
    }
    Ok(file)
}

/// Creates the tables of a new database, or checks that an existing one is ours and readable.
fn init(path: &Path, db: &Database) -> Result<(), StoreError> {
    let txn = begin_write(path, db, CommitSync::TwoPhase)?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| map_err(path, e))?
        .map(|t| t.name().to_owned())
        .collect();
    let fresh = names.is_empty();
    if !fresh && !names.iter().any(|n| n == META.name()) {
        return Err(StoreError::Corrupt {
            key: path.display().to_string(),
            reason: format!(
                "a redb database, but not a stagegate store (tables: {})",
                names.join(", ")
            ),
        });
    }
    let mut upgrade = false;
    {
        let mut meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
        if fresh {
            for (k, v) in [
                (META_SCHEMA, SCHEMA_VERSION),
                (META_REVISION, 0),
                (META_LOG_FLOOR, 0),
            ] {
                meta.insert(k, v).map_err(|e| map_err(path, e))?;
            }
        } else {
            let version = read_meta(path, &meta, META_SCHEMA)?;
            if (OLDEST_SCHEMA_VERSION..SCHEMA_VERSION).contains(&version) {
                meta.insert(META_SCHEMA, SCHEMA_VERSION)
                    .map_err(|e| map_err(path, e))?;
                upgrade = true;
            } else if version != SCHEMA_VERSION {
                return Err(StoreError::Corrupt {
                    key: format!("{}: meta/{META_SCHEMA}", path.display()),
                    reason: format!(
                        "schema version {version} is not supported (this build reads version \
                         {SCHEMA_VERSION})"
                    ),
                });
            }
            let revision = read_meta(path, &meta, META_REVISION)?;
            let floor = read_meta(path, &meta, META_LOG_FLOOR)?;
            if floor > revision {
                return Err(StoreError::Corrupt {
                    key: format!("{}: meta/{META_LOG_FLOOR}", path.display()),
                    reason: format!("log floor {floor} is past the revision {revision}"),
                });
            }
        }
        // Opening them creates them in a new file, and checks their types in an old one.
        let records = txn.open_table(RECORDS).map_err(|e| map_err(path, e))?;
        let log = txn.open_table(LOG).map_err(|e| map_err(path, e))?;
        if !fresh {
            let revision = read_meta(path, &meta, META_REVISION)?;
            let last = log.last().map_err(|e| map_err(path, e))?;
            if let Some((k, _)) = last
                && k.value().0 > revision
            {
                return Err(StoreError::Corrupt {
                    key: format!("{}: log", path.display()),
                    reason: format!(
                        "the log holds revision {} past the stored revision {revision}",
                        k.value().0
                    ),
                });
            }
        }
        drop(records);
    }
    if fresh || upgrade {
        txn.commit().map_err(|e| map_err(path, e))?;
    } else {
        txn.abort().map_err(|e| map_err(path, e))?;
    }
    Ok(())
}

/// A write transaction that commits durably, in two phases unless `sync` says one (see the
/// module docs).
fn begin_write(
    path: &Path,
    db: &Database,
    sync: CommitSync,
) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(|e| map_err(path, e))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| map_err(path, e))?;
    txn.set_two_phase_commit(sync == CommitSync::TwoPhase);
    Ok(txn)
}

fn begin_read(path: &Path, db: &Database) -> Result<ReadTransaction, StoreError> {
    db.begin_read().map_err(|e| map_err(path, e))
}

fn read_meta(
    path: &Path,
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    match meta.get(name).map_err(|e| map_err(path, e))? {
        Some(v) => Ok(v.value()),
        None => Err(StoreError::Corrupt {
            key: format!("{}: meta/{name}", path.display()),
            reason: "missing".into(),
        }),
    }
}

/// Maps a redb error: damage becomes [`StoreError::Corrupt`], I/O errors [`StoreError::Io`] and
/// a lock held elsewhere [`StoreError::Locked`], each naming the file; the rest
/// [`StoreError::Backend`].
fn map_err(path: &Path, e: impl Into<::redb::Error>) -> StoreError {
    let e: ::redb::Error = e.into();
    match e {
        ::redb::Error::Corrupted(reason) => StoreError::Corrupt {
            key: path.display().to_string(),
            reason: format!("damaged database file: {reason}"),
        },
        ::redb::Error::UpgradeRequired(v) => StoreError::Corrupt {
            key: path.display().to_string(),
            reason: format!("redb file format {v} is not supported"),
        },
        ::redb::Error::TableTypeMismatch { .. } => StoreError::Corrupt {
            key: path.display().to_string(),
            reason: format!("not a stagegate store: {e}"),
        },
        ::redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::Corrupt {
                key: path.display().to_string(),
                reason: format!("not a redb database: {io}"),
            }
        }
        // The file ends where redb's own layout says there is more: cut short.
        ::redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            StoreError::Corrupt {
                key: path.display().to_string(),
                reason: format!("truncated database file: {io}"),
            }
        }
        ::redb::Error::Io(error) => StoreError::Io {
            file: path.display().to_string(),
            error,
        },
        // Only after an I/O error on this handle (reported as `Io` then); the store reopens.
        ::redb::Error::PreviousIo => StoreError::Io {
            file: path.display().to_string(),
            error: std::io::Error::other("an earlier I/O error left the database unusable"),
        },
        ::redb::Error::DatabaseAlreadyOpen => StoreError::Locked {
            file: path.display().to_string(),
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn corrupt(key: &str, e: &DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: codec::chain(e),
    }
}

fn decode_record(key: &str, bytes: &[u8]) -> Result<Versioned<Entity>, StoreError> {
    let v: Versioned<Entity> = codec::decode(bytes).map_err(|e| corrupt(key, &e))?;
    if !v.value.has_key(key) {
        return Err(StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("the record stored under this key is {}", v.value.key()),
        });
    }
    Ok(v)
}

fn encode<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|e| StoreError::Backend(format!("encoding {key}: {e}").into()))
}

fn load(path: &Path, db: &Database, threads: usize) -> Result<Loaded, StoreError> {
    let txn = begin_read(path, db)?;
    let meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
    let revision = read_meta(path, &meta, META_REVISION)?;
    let table = txn.open_table(RECORDS).map_err(|e| map_err(path, e))?;
    // Sized once: a record is several hundred bytes inline, and growing the vector by doubling
    // would copy (and transiently hold twice) all of them.
    let len = table.len().map_err(|e| map_err(path, e))?;
    // Each record carries its own checksum; what is checked here is the tree that holds them,
    // which redb does not verify on a plain open: keys come in strictly increasing order, and
    // as many as the table says it holds.
    let read = |sink: &mut decode_pool::Sink<'_, StoreError>| {
        let mut previous = String::new();
        for (i, entry) in table.iter().map_err(|e| map_err(path, e))?.enumerate() {
            let (k, v) = entry.map_err(|e| map_err(path, e))?;
            let key = k.value();
            if i > 0 && key <= previous.as_str() {
                return Err(StoreError::Corrupt {
                    key: key.to_owned(),
                    reason: format!("the records table lists it after {previous}"),
                });
            }
            sink(key, v.value())?;
            previous.clear();
            previous.push_str(key);
        }
        Ok(())
    };
    let capacity = usize::try_from(len).unwrap_or(0);
    let records = decode_pool::decode_in_order(threads, capacity, read, decode_record)?;
    if records.len() as u64 != len {
        return Err(StoreError::Corrupt {
            key: format!("{}: records", path.display()),
            reason: format!("the table says {len} records, {} were read", records.len()),
        });
    }
    Ok(Loaded { revision, records })
}

fn get(path: &Path, db: &Database, key: &Key) -> Result<Option<Versioned<Entity>>, StoreError> {
    let txn = begin_read(path, db)?;
    let table = txn.open_table(RECORDS).map_err(|e| map_err(path, e))?;
    let k = key.to_string();
    match table.get(k.as_str()).map_err(|e| map_err(path, e))? {
        Some(v) => decode_record(&k, v.value()).map(Some),
        None => Ok(None),
    }
}

fn commit(
    path: &Path,
    db: &Database,
    sync: CommitSync,
    retention: u64,
    writes: Vec<Write>,
) -> Result<Revision, StoreError> {
    if writes.is_empty() {
        return revision(path, db);
    }
    let txn = begin_write(path, db, sync)?;
    let revision = {
        let mut meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
        let current = read_meta(path, &meta, META_REVISION)?;
        let mut records = txn.open_table(RECORDS).map_err(|e| map_err(path, e))?;
        let mut log = txn.open_table(LOG).map_err(|e| map_err(path, e))?;
        // The versions the preconditions are checked against, read inside this transaction: redb
        // runs one write transaction at a time, so nothing changes them before the commit.
        let mut found: HashMap<Key, Version> = HashMap::with_capacity(writes.len());
        for w in &writes {
            let key = w.key();
            let k = key.to_string();
            if let Some(v) = records.get(k.as_str()).map_err(|e| map_err(path, e))? {
                found.insert(key, decode_record(&k, v.value())?.version);
            }
        }
        check_writes(&writes, |k| found.get(k).copied())?;
        let revision = current + 1;
        let mut seq = 0u32;
        for w in writes {
            let change = match w {
                Write::Put { entity, .. } => {
                    let key = entity.key();
                    let version = found.get(&key).map_or(1, |v| v + 1);
                    let value = Versioned {
                        value: entity,
                        version,
                    };
                    let k = key.to_string();
                    records
                        .insert(k.as_str(), encode(&k, &value)?.as_slice())
                        .map_err(|e| map_err(path, e))?;
                    Change {
                        revision,
                        key,
                        value: Some(value),
                    }
                }
                Write::Delete { key, .. } => {
                    if !found.contains_key(&key) {
                        // Deleting what is not there (Expect::Any) changes nothing, as in MemoryStore.
                        continue;
                    }
                    records
                        .remove(key.to_string().as_str())
                        .map_err(|e| map_err(path, e))?;
                    Change {
                        revision,
                        key,
                        value: None,
                    }
                }
            };
            let bytes = encode(&change.key.to_string(), &change)?;
            log.insert((revision, seq), bytes.as_slice())
                .map_err(|e| map_err(path, e))?;
            seq += 1;
        }
        meta.insert(META_REVISION, revision)
            .map_err(|e| map_err(path, e))?;
        // The retention window: the entries that fall out of it go in this same transaction
        // (one or a few per commit), so the feed never grows past the window.
        let floor = read_meta(path, &meta, META_LOG_FLOOR)?;
        let new_floor = retained_floor(revision, retention);
        if new_floor > floor {
            log.retain_in((0u64, 0u32)..(new_floor + 1, 0u32), |_, _| false)
                .map_err(|e| map_err(path, e))?;
            meta.insert(META_LOG_FLOOR, new_floor)
                .map_err(|e| map_err(path, e))?;
        }
        revision
    };
    txn.commit().map_err(|e| map_err(path, e))?;
    Ok(revision)
}

fn changes_since(
    path: &Path,
    db: &Database,
    revision: Revision,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let txn = begin_read(path, db)?;
    let meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
    if revision < read_meta(path, &meta, META_LOG_FLOOR)? {
        return Err(StoreError::Compacted(revision));
    }
    let log = txn.open_table(LOG).map_err(|e| map_err(path, e))?;
    let mut out: Vec<Change> = Vec::new();
    let Some(start) = revision.checked_add(1) else {
        return Ok(out);
    };
    for entry in log.range((start, 0u32)..).map_err(|e| map_err(path, e))? {
        let (k, v) = entry.map_err(|e| map_err(path, e))?;
        let (rev, seq) = k.value();
        if out.len() >= limit && out.last().is_some_and(|l| l.revision != rev) {
            break;
        }
        let name = format!("log/{rev}/{seq}");
        let change: Change = codec::decode(v.value()).map_err(|e| corrupt(&name, &e))?;
        if change.revision != rev {
            return Err(StoreError::Corrupt {
                key: name,
                reason: format!("the entry is of revision {}", change.revision),
            });
        }
        out.push(change);
    }
    Ok(out)
}

fn revision(path: &Path, db: &Database) -> Result<Revision, StoreError> {
    let txn = begin_read(path, db)?;
    let meta = txn.open_table(META).map_err(|e| map_err(path, e))?;
    read_meta(path, &meta, META_REVISION)
}

impl Store for RedbStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        let threads = self.load_threads();
        Box::pin(self.blocking(false, move |path, db| load(path, db, threads)))
    }

    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        let key = key.clone();
        Box::pin(self.blocking(false, move |path, db| get(path, db, &key)))
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let sync = self.sync;
        let retention = self.retention;
        Box::pin(async move {
            let revision = self
                .blocking(true, move |path, db| {
                    commit(path, db, sync, retention, writes)
                })
                .await?;
            super::signal_revision(&self.signal, revision);
            Ok(revision)
        })
    }

    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        Box::pin(self.blocking(false, move |path, db| {
            changes_since(path, db, revision, limit)
        }))
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(self.blocking(false, revision))
    }

    fn health(&self) -> Result<(), StoreError> {
        self.slot.health(&self.path)
    }

    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        Some(self.signal.subscribe())
    }

    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(RedbStore::compact_log_before(self, before))
    }
}

/// A disk that fills on demand, for the recovery tests here and in the admin API's.
#[cfg(test)]
pub(crate) mod fault {
    use std::ops::Bound;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use ::redb::backends::FileBackend;
    use ::redb::{BackendError, StorageBackend};

    use super::{RedbStore, builder, map_err, open_private};
    use crate::store::StoreError;

    /// The store's file, failing every write and every growth with `ENOSPC` while `full` is set.
    #[derive(Debug)]
    struct FullDisk {
        inner: FileBackend,
        full: Arc<AtomicBool>,
    }

    impl FullDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                #[cfg(unix)]
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
                #[cfg(not(unix))]
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            Ok(())
        }
    }

    impl StorageBackend for FullDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            if len > self.inner.len()? {
                self.check()?;
            }
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> std::io::Result<()> {
            self.inner.close()
        }
        fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(s, e)
        }
        fn try_lock_shared_range(
            &self,
            s: Bound<u64>,
            e: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(s, e)
        }
        fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(s, e)
        }
        fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_shared_range(s, e)
        }
        fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(s, e)
        }
        fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.query_lock_range(s, e)
        }
    }

    impl RedbStore {
        /// A store on a disk that is full while the returned flag is set (as long as the store
        /// lives, reopens included).
        pub(crate) fn open_on_disk_that_fills(
            path: &Path,
        ) -> Result<(Self, Arc<AtomicBool>), StoreError> {
            let full = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&full);
            let store = Self::open_by(
                path,
                Box::new(move |path| {
                    let file = open_private(path)?;
                    let inner = FileBackend::new(file).map_err(|e| map_err(path, e))?;
                    let disk = FullDisk {
                        inner,
                        full: Arc::clone(&flag),
                    };
                    builder(false)
                        .create_with_backend(disk)
                        .map_err(|e| map_err(path, e))
                }),
            )?;
            Ok((store, full))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::model::Group;
    use crate::store::Expect;

    fn group(name: &str) -> Write {
        Write::put(Entity::Group(Group::new(name).unwrap()), Expect::Absent)
    }

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "stagegate-unit-{name}-{}-{}.redb",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn enospc_is_a_full_disk() {
        let e = StoreError::Io {
            file: "f".into(),
            error: std::io::Error::from_raw_os_error(28),
        };
        assert!(e.is_disk_full());
        let e = StoreError::Io {
            file: "f".into(),
            error: std::io::Error::from_raw_os_error(5), // EIO
        };
        assert!(!e.is_disk_full());
        assert_eq!(
            e.to_string(),
            "I/O error on f: Input/output error (os error 5)"
        );
    }

    #[tokio::test]
    async fn after_the_disk_fills_writes_fail_clearly_and_work_again_without_a_restart() {
        let path = scratch("disk-full");
        let (store, full) = RedbStore::open_on_disk_that_fills(&path).unwrap();
        assert_eq!(store.commit(vec![group("group_a")]).await.unwrap(), 1);
        assert!(store.health().is_ok());

        full.store(true, Ordering::SeqCst);
        let e = store.commit(vec![group("group_b")]).await.unwrap_err();
        assert!(e.is_disk_full(), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("the disk is full"),
            "{message}"
        );
        let unhealthy = store.health().unwrap_err();
        assert!(unhealthy.is_disk_full(), "{unhealthy:?}");
        // Still full: the reopen (or the write) fails the same way, and nothing changes.
        let e = store.commit(vec![group("group_c")]).await.unwrap_err();
        assert!(e.is_disk_full(), "{e:?}");
        assert!(store.health().is_err());

        // Space again: the next write works, with no restart, and the store is healthy.
        full.store(false, Ordering::SeqCst);
        assert_eq!(store.commit(vec![group("group_c")]).await.unwrap(), 2);
        assert!(store.health().is_ok());
        assert_eq!(store.revision().await.unwrap(), 2);
        let names: Vec<String> = store
            .load()
            .await
            .unwrap()
            .records
            .iter()
            .map(|r| r.value.key().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.contains("group_b")), "{names:?}");
        drop(store);

        // And the file is sound for a plain open afterwards.
        let again = RedbStore::open_verified(&path).unwrap();
        assert_eq!(again.load().await.unwrap().records.len(), 2);
        drop(again);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_store_that_was_never_broken_is_not_reopened() {
        let path = scratch("not-broken");
        let store = RedbStore::open(&path).unwrap();
        let write = group("group_a");
        store.commit(vec![write.clone()]).await.unwrap();
        // A failed precondition is no I/O error: the handle stays, health stays ok.
        let e = store.commit(vec![write]).await.unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
        assert!(!store.slot.broken.load(Ordering::SeqCst));
        assert!(store.health().is_ok());
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
