//! [`MemoryStore`]: the in-memory store, for tests and single-process gateways without persistence.

use std::collections::{BTreeMap, HashSet};

use parking_lot::RwLock;

use super::{
    BoxFuture, Change, Entity, Expect, Key, Loaded, Revision, Store, StoreError, Versioned, Write,
};

/// Keeps everything in memory: fast, and gone when the process ends.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stagegate::store::{MemoryStore, Store};
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<Key, Versioned<Entity>>,
    log: Vec<Change>,
    revision: Revision,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
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
                        inner.log.push(Change {
                            revision,
                            key,
                            value: Some(value),
                        });
                    }
                    Write::Delete { key, .. } => {
                        if inner.records.remove(&key).is_some() {
                            inner.log.push(Change {
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
        Box::pin(async move { result })
    }

    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        let inner = self.inner.read();
        let start = inner.log.partition_point(|c| c.revision <= revision);
        let mut out: Vec<Change> = Vec::new();
        for c in &inner.log[start..] {
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
}
