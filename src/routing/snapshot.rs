//! [`Snapshot`]: one immutable generation of the live configuration, and [`SnapshotHandle`],
//! the lock-free handle the data plane reads it through.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Method;
use jiff::Timestamp;

use super::table::{RouteMatch, RouteTable, Starts};
use super::trie::SegmentMap;
use crate::model::{ApiId, App, AppId, Authorization, Group, GroupId, Secret, Stage};

/// Which groups a request's host can reach.
#[derive(Debug, Default)]
pub(crate) struct HostIndex {
    by_host: HashMap<String, Vec<GroupId>>,
    any_host: Vec<GroupId>,
}

impl HostIndex {
    pub(crate) fn build<'a>(groups: impl Iterator<Item = &'a Group>) -> Self {
        let mut idx = Self::default();
        for g in groups {
            if g.domains.is_empty() {
                idx.any_host.push(g.id.clone());
            } else {
                for d in &g.domains {
                    idx.by_host
                        .entry(normalize_host(d).into_owned())
                        .or_default()
                        .push(g.id.clone());
                }
            }
        }
        idx.any_host.sort();
        for v in idx.by_host.values_mut() {
            v.sort();
        }
        idx
    }

    pub(crate) fn is_any_host(&self, g: &GroupId) -> bool {
        self.any_host.binary_search(g).is_ok()
    }
}

pub(crate) fn normalize_host(h: &str) -> std::borrow::Cow<'_, str> {
    let h = h.trim();
    // strip a port, but not from a bare IPv6 literal
    let h = if let Some(stripped) = h.strip_prefix('[') {
        stripped.split(']').next().unwrap_or(stripped)
    } else {
        h.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(h, |(h, _)| h)
    };
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

/// A map for the hot path: keys only the operator defines, looked up with a fast hash.
type FastMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// The route tables of one stage as a request finds them: by host for groups bound to domains,
/// by first path segment for groups without domains (so a request asks one or two tables
/// instead of all of them), each list in group order.
#[derive(Debug, Default)]
pub(crate) struct StageIndex {
    by_host: FastMap<Box<str>, Tables>,
    by_first: SegmentMap<FirstTables>,
    wild: Vec<Arc<RouteTable>>,
}

impl StageIndex {
    /// Every table a request for `host` and `path` may be answered from, in lookup order
    /// (possibly repeated).
    fn candidates<'a>(
        &'a self,
        host: Option<&str>,
        path: &str,
    ) -> impl Iterator<Item = &'a Arc<RouteTable>> {
        let by_host = host
            .and_then(|h| self.by_host.get(&*normalize_host(h)))
            .into_iter()
            .flatten();
        let by_first = super::trie::first_segment(path)
            .and_then(|f| self.by_first.get_first(&f))
            .into_iter()
            .flatten()
            .map(|(t, _)| t);
        by_host.chain(by_first).chain(self.wild.iter())
    }
}

/// What [`Snapshot::miss_hint`] found near a request no API matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissHint {
    /// The methods the request's path is published with in its stage (`ANY` for any).
    pub(crate) methods: Vec<String>,
    /// The other stages where the request's method and path are published.
    pub(crate) stages: Vec<Stage>,
}

/// The tables one key reaches: usually one, kept inline.
type Tables = smallvec::SmallVec<[Arc<RouteTable>; 1]>;

/// The tables a first segment reaches, each with where its tries go on after that segment
/// (so a lookup does not match the segment a second time).
type FirstTables = smallvec::SmallVec<[(Arc<RouteTable>, Starts); 1]>;

/// Signing keys and AppCodes of every app.
#[derive(Default)]
pub struct Credentials {
    keys: HashMap<String, (AppId, Secret)>,
    codes: HashMap<String, AppId>,
    disabled: std::collections::HashSet<AppId>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.keys.len())
            .field("codes", &self.codes.len())
            .finish()
    }
}

impl Credentials {
    pub(crate) fn build<'a>(apps: impl Iterator<Item = &'a App>) -> Self {
        let mut c = Self::default();
        for app in apps {
            if app.disabled {
                c.disabled.insert(app.id.clone());
            }
            for k in &app.keys {
                c.keys
                    .insert(k.app_key.clone(), (app.id.clone(), k.app_secret.clone()));
            }
            for code in &app.codes {
                c.codes.insert(code.expose().to_owned(), app.id.clone());
            }
        }
        c
    }

    /// The app and secret of an AppKey.
    #[must_use]
    pub fn by_key(&self, app_key: &str) -> Option<(&AppId, &Secret)> {
        self.keys.get(app_key).map(|(a, s)| (a, s))
    }

    /// The app of an AppCode. The map lookup hashes the code with a per-process random key,
    /// and the stored code is compared again in constant time.
    #[must_use]
    pub fn by_code(&self, code: &str) -> Option<&AppId> {
        let (stored, app) = self.codes.get_key_value(code)?;
        let eq: bool = subtle::ConstantTimeEq::ct_eq(stored.as_bytes(), code.as_bytes()).into();
        eq.then_some(app)
    }

    /// Whether the app is disabled.
    #[must_use]
    pub fn is_disabled(&self, app: &AppId) -> bool {
        self.disabled.contains(app)
    }
}

/// Which app may call which API in which stage, until when.
#[derive(Debug, Default)]
pub struct Grants {
    /// Keyed by ids only the operator defines (the app comes from its credentials).
    map: hashbrown::HashMap<(AppId, ApiId, Stage), Option<Timestamp>, rustc_hash::FxBuildHasher>,
}

/// A grant's key, borrowed: hashes exactly as the owned tuple does (field by field, in
/// order), so a request looks its grant up without cloning the three ids.
#[derive(Hash)]
struct GrantKeyRef<'a>(&'a AppId, &'a ApiId, &'a Stage);

impl hashbrown::Equivalent<(AppId, ApiId, Stage)> for GrantKeyRef<'_> {
    fn equivalent(&self, key: &(AppId, ApiId, Stage)) -> bool {
        *self.0 == key.0 && *self.1 == key.1 && *self.2 == key.2
    }
}

/// The answer of [`Grants::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// In force.
    Granted,
    /// There was a grant; it has expired.
    Expired,
    /// No grant.
    Missing,
}

impl Grants {
    pub(crate) fn build<'a>(auths: impl Iterator<Item = &'a Authorization>) -> Self {
        Self {
            map: auths
                .map(|a| {
                    (
                        (a.app_id.clone(), a.api_id.clone(), a.stage.clone()),
                        a.expires_at,
                    )
                })
                .collect(),
        }
    }

    /// Whether `app` may call `api` in `stage` at `now`.
    #[must_use]
    pub fn check(&self, app: &AppId, api: &ApiId, stage: &Stage, now: Timestamp) -> GrantStatus {
        match self.map.get(&GrantKeyRef(app, api, stage)) {
            None => GrantStatus::Missing,
            Some(Some(exp)) if now >= *exp => GrantStatus::Expired,
            Some(_) => GrantStatus::Granted,
        }
    }
}

/// One immutable generation of the live configuration.
///
/// Everything a request needs before it reaches a backend (groups, routes, credentials,
/// grants) is here, precompiled; the control plane builds the next generation beside it,
/// sharing every part a change did not touch, and swaps it in atomically.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) hosts: Arc<HostIndex>,
    pub(crate) tables: HashMap<(GroupId, Stage), Arc<RouteTable>>,
    /// Per stage, the tables as a request finds them.
    pub(crate) stages: Vec<(Stage, Arc<StageIndex>)>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) grants: Arc<Grants>,
    /// The policies bound to each (API, stage).
    pub(crate) policies: Arc<crate::policy::PolicyIndex>,
}

impl Snapshot {
    /// The generation: 0 for the empty start, then one more per applied change.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The credentials of every app.
    #[must_use]
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The grants.
    #[must_use]
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The route table of a group in a stage.
    #[must_use]
    pub fn table(&self, group: &GroupId, stage: &Stage) -> Option<&Arc<RouteTable>> {
        self.tables.get(&(group.clone(), stage.clone()))
    }

    /// Finds the published API a request reaches: groups bound to `host` first, then groups
    /// without domains; within a group, the method and path.
    #[must_use]
    pub fn resolve(
        &self,
        host: Option<&str>,
        stage: &Stage,
        method: &Method,
        path: &str,
    ) -> Option<RouteMatch> {
        let idx = &self.stages.iter().find(|(s, _)| s == stage)?.1;
        let first = super::trie::first_segment(path);
        if let Some(host) = host.filter(|_| !idx.by_host.is_empty()) {
            let host = normalize_host(host);
            for t in idx.by_host.get(&*host).into_iter().flatten() {
                if let Some(m) = t.lookup(method, path) {
                    return Some(m);
                }
            }
        }
        if let Some(first) = &first
            && let Some(tables) = idx.by_first.get_first(first)
        {
            for (t, starts) in tables {
                if let Some(m) = t.lookup_from(method, path, first, starts) {
                    return Some(m);
                }
            }
        }
        idx.wild.iter().find_map(|t| t.lookup(method, path))
    }

    /// Why a request [`resolve`](Self::resolve) found no API for may still be near one: the
    /// methods its path is published with in its stage, and the other stages where its method
    /// and path are published. `None` when neither (the path is nobody's).
    ///
    /// Walks every candidate table of every stage: for a miss being explained, not the hot
    /// path.
    pub(crate) fn miss_hint(
        &self,
        host: Option<&str>,
        stage: &Stage,
        method: &Method,
        path: &str,
    ) -> Option<MissHint> {
        let mut methods: Vec<String> = Vec::new();
        if let Some((_, idx)) = self.stages.iter().find(|(s, _)| s == stage) {
            for t in idx.candidates(host, path) {
                for m in t.methods_matching(path) {
                    if !methods.contains(&m) {
                        methods.push(m);
                    }
                }
            }
        }
        let mut stages: Vec<Stage> = self
            .stages
            .iter()
            .filter(|(s, _)| s != stage)
            .filter(|(s, _)| self.resolve(host, s, method, path).is_some())
            .map(|(s, _)| s.clone())
            .collect();
        if methods.is_empty() && stages.is_empty() {
            return None;
        }
        methods.sort();
        stages.sort_by_key(|s| Stage::BUILT_IN.iter().position(|b| b == s));
        Some(MissHint { methods, stages })
    }

    /// Rebuilds the index of `stage` from its tables.
    pub(crate) fn reindex_stage(&mut self, stage: &Stage) {
        let mut idx = StageIndex::default();
        let mut groups: Vec<(&GroupId, &Arc<RouteTable>)> = self
            .tables
            .iter()
            .filter(|((g, s), t)| s == stage && !t.is_empty() && self.hosts.is_any_host(g))
            .map(|((g, _), t)| (g, t))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        for (_, t) in groups {
            for f in &t.first_segments {
                idx.by_first
                    .entry(f, FirstTables::new)
                    .push((Arc::clone(t), t.starts(f)));
            }
            if t.wild_first {
                idx.wild.push(Arc::clone(t));
            }
        }
        for (host, groups) in &self.hosts.by_host {
            let tables: Tables = groups
                .iter()
                .filter_map(|g| self.tables.get(&(g.clone(), stage.clone())))
                .filter(|t| !t.is_empty())
                .cloned()
                .collect();
            if !tables.is_empty() {
                idx.by_host.insert(host.as_str().into(), tables);
            }
        }
        let idx = Arc::new(idx);
        match self.stages.iter_mut().find(|(s, _)| s == stage) {
            Some(slot) => slot.1 = idx,
            None => self.stages.push((stage.clone(), idx)),
        }
    }
}

/// The lock-free handle to the live [`Snapshot`]: readers never wait, writers swap whole
/// generations. Cloning it is cheap.
///
/// # Examples
///
/// ```
/// use stagegate::routing::SnapshotHandle;
/// let handle = SnapshotHandle::default();
/// assert_eq!(handle.load().generation(), 0);
/// ```
#[derive(Clone, Default)]
pub struct SnapshotHandle {
    inner: Arc<ArcSwap<Snapshot>>,
}

impl fmt::Debug for SnapshotHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotHandle")
            .field("generation", &self.inner.load().generation)
            .finish()
    }
}

impl SnapshotHandle {
    /// A cheap, short-lived borrow of the current generation (arc-swap's `load`: no reference
    /// count, no lock). Do not hold it across an `.await` or for long; use
    /// [`load_full`](Self::load_full) for that.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::routing::SnapshotHandle;
    /// let handle = SnapshotHandle::default();
    /// let snapshot = handle.load();
    /// assert_eq!(snapshot.generation(), 0);
    /// ```
    #[must_use]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.load()
    }

    /// The current generation as an owned `Arc` (arc-swap's `load_full`: a reference count
    /// bump, no lock), to keep across `.await`s or store.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stagegate::routing::{Snapshot, SnapshotHandle};
    /// let handle = SnapshotHandle::default();
    /// let snapshot: Arc<Snapshot> = handle.load_full();
    /// assert_eq!(snapshot.generation(), 0);
    /// ```
    #[must_use]
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.inner.load_full()
    }

    pub(crate) fn store(&self, s: Snapshot) {
        self.inner.store(Arc::new(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("example.com"), "example.com");
    }
}
