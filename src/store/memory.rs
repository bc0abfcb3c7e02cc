//! [`MemoryStore`]: the in-memory store, for tests and single-process gateways without persistence.

use std::collections::{BTreeMap, HashSet, VecDeque};

use parking_lot::RwLock;
use tokio::sync::watch;

use super::{
    BoxFuture, Change, DEFAULT_LOG_RETENTION, Entity, Expect, Key, Loaded, Revision, Store,
    StoreError, Versioned, Write, retained_floor,
};

/// Keeps everything in memory: fast, and gone when the process ends.
///
/// The change feed keeps the last [`log_retention`](Self::log_retention) revisions; older ones
/// are dropped as commits come in, so memory use follows the records, not the history.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stagegate::store::{MemoryStore, Store};
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    retention: u64,
    signal: watch::Sender<Revision>,
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<Key, Versioned<Entity>>,
    log: VecDeque<Change>,
    revision: Revision,
    /// The highest revision whose changes were dropped (0: none).
    floor: Revision,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            retention: DEFAULT_LOG_RETENTION,
            signal: watch::Sender::new(0),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the changes of the last `revisions` commits in the feed (at least 1; the default
    /// is [`DEFAULT_LOG_RETENTION`]); older ones are dropped as commits come in.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Group;
    /// use stagegate::store::{Entity, Expect, MemoryStore, Store, StoreError, Write};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new().with_log_retention(2);
    /// for name in ["group_a", "group_b", "group_c"] {
    ///     let g = Group::new(name).unwrap();
    ///     store.commit(vec![Write::put(Entity::Group(g), Expect::Absent)]).await.unwrap();
    /// }
    /// assert_eq!(store.changes_since(1, 10).await.unwrap().len(), 2);
    /// assert!(matches!(store.changes_since(0, 10).await, Err(StoreError::Compacted(0))));
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
}

impl Inner {
    /// Drops the changes of commits up to `floor` (inclusive); returns how many.
    fn compact_to(&mut self, floor: Revision) -> u64 {
        let floor = floor.min(self.revision);
        if floor <= self.floor {
            return 0;
        }
        let mut removed = 0;
        while self.log.front().is_some_and(|c| c.revision <= floor) {
            self.log.pop_front();
            removed += 1;
        }
        self.floor = floor;
        removed
    }
}

/// Checks every precondition of `writes` against `current`, without changing anything.
pub(crate) fn check_writes(
    writes: &[Write],
    current: impl Fn(&Key) -> Option<u64>,
) -> Result<(), StoreError> {
    let mut seen = HashSet::with_capacity(writes.len());
    for w in writes {
        let key = w.key();
        let expect = match w {
            Write::Put { expect, .. } | Write::Delete { expect, .. } => *expect,
        };
        let found = current(&key);
        let ok = match expect {
            Expect::Absent => found.is_none(),
            Expect::Version(v) => found == Some(v),
            Expect::Any => true,
        };
        if !ok {
            return Err(StoreError::Conflict {
                key,
                expected: expect,
                found,
            });
        }
        if !seen.insert(key.clone()) {
            return Err(StoreError::DuplicateKey(key));
        }
    }
    Ok(())
}

impl Store for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        let inner = self.inner.read();
        let loaded = Loaded {
            revision: inner.revision,
            records: inner.records.values().cloned().collect(),
        };
        Box::pin(async move { Ok(loaded) })
    }

    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        let got = self.inner.read().records.get(key).cloned();
        Box::pin(async move { Ok(got) })
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let result = (|| {
            let mut inner = self.inner.write();
            if writes.is_empty() {
                return Ok(inner.revision);
            }
            check_writes(&writes, |k| inner.records.get(k).map(|v| v.version))?;
            inner.revision += 1;
            let revision = inner.revision;
            inner.compact_to(retained_floor(revision, self.retention));
            for w in writes {
                match w {
                    Write::Put { entity, .. } => {
                        let key = entity.key();
                        let version = inner.records.get(&key).map_or(1, |v| v.version + 1);
                        let value = Versioned {
                            value: entity,
                            version,
                        };
                        inner.records.insert(key.clone(), value.clone());
                        inner.log.push_back(Change {
                            revision,
                            key,
                            value: Some(value),
                        });
                    }
                    Write::Delete { key, .. } => {
                        if inner.records.remove(&key).is_some() {
                            inner.log.push_back(Change {
                                revision,
                                key,
                                value: None,
                            });
                        }
                    }
                }
            }
            Ok(revision)
        })();
        if let Ok(revision) = result {
            super::signal_revision(&self.signal, revision);
        }
        Box::pin(async move { result })
    }

    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        let inner = self.inner.read();
        if revision < inner.floor {
            return Box::pin(async move { Err(StoreError::Compacted(revision)) });
        }
        let start = inner.log.partition_point(|c| c.revision <= revision);
        let mut out: Vec<Change> = Vec::new();
        for c in inner.log.range(start..) {
            if out.len() >= limit && out.last().is_some_and(|l| l.revision != c.revision) {
                break;
            }
            out.push(c.clone());
        }
        Box::pin(async move { Ok(out) })
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let r = self.inner.read().revision;
        Box::pin(async move { Ok(r) })
    }

    fn subscribe(&self) -> Option<watch::Receiver<Revision>> {
        Some(self.signal.subscribe())
    }

    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        let removed = self.inner.write().compact_to(before.saturating_sub(1));
        Box::pin(async move { Ok(removed) })
    }
}
