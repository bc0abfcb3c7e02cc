//! The policies bound to each (API, stage), compiled for the data plane and kept in the live
//! [`Snapshot`](crate::routing::Snapshot).

use std::sync::Arc;

use super::cors::CompiledCors;
use super::{BackendSignature, IpControl, Policy, PolicyBinding, PolicyId, PolicySpec, Throttling};
use crate::model::{ApiId, Stage};

/// A compiled policy with the id and name the trace reports.
#[derive(Debug)]
pub(crate) struct Named<T> {
    pub(crate) id: PolicyId,
    pub(crate) name: String,
    pub(crate) value: T,
}

/// What is bound to one API in one stage: at most one policy of each kind.
#[derive(Debug, Default)]
pub(crate) struct BoundPolicies {
    pub(crate) ip: Option<Named<IpControl>>,
    pub(crate) throttle: Option<Named<Throttling>>,
    pub(crate) cors: Option<Named<CompiledCors>>,
    pub(crate) sign: Option<Named<BackendSignature>>,
}

impl BoundPolicies {
    fn add(&mut self, p: &Policy) {
        fn named<T>(p: &Policy, value: T) -> Option<Named<T>> {
            Some(Named {
                id: p.id.clone(),
                name: p.name.clone(),
                value,
            })
        }
        match &p.spec {
            PolicySpec::Throttling(t) => self.throttle = named(p, t.clone()),
            PolicySpec::IpControl(i) => self.ip = named(p, i.clone()),
            PolicySpec::Cors(c) => self.cors = named(p, CompiledCors::compile(c)),
            PolicySpec::BackendSignature(b) => self.sign = named(p, b.clone()),
        }
    }
}

/// A borrowed (API, stage) key hashing as the owned tuple does.
#[derive(Hash)]
struct KeyRef<'a>(&'a ApiId, &'a Stage);

impl hashbrown::Equivalent<(ApiId, Stage)> for KeyRef<'_> {
    fn equivalent(&self, k: &(ApiId, Stage)) -> bool {
        *self.0 == k.0 && *self.1 == k.1
    }
}

/// Every binding, by (API, stage).
#[derive(Debug, Default)]
pub(crate) struct PolicyIndex {
    map: hashbrown::HashMap<(ApiId, Stage), Arc<BoundPolicies>, rustc_hash::FxBuildHasher>,
}

impl PolicyIndex {
    pub(crate) fn build<'a>(
        policy: impl Fn(&PolicyId) -> Option<&'a Policy>,
        bindings: impl Iterator<Item = &'a PolicyBinding>,
    ) -> Self {
        let mut map: hashbrown::HashMap<(ApiId, Stage), BoundPolicies, rustc_hash::FxBuildHasher> =
            hashbrown::HashMap::default();
        for b in bindings {
            if let Some(p) = policy(&b.policy_id) {
                map.entry((b.api_id.clone(), b.stage.clone()))
                    .or_default()
                    .add(p);
            }
        }
        Self {
            map: map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }

    /// The policies bound to `api` in `stage`.
    #[inline]
    pub(crate) fn get(&self, api: &ApiId, stage: &Stage) -> Option<&Arc<BoundPolicies>> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&KeyRef(api, stage))
    }
}
