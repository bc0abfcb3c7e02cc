//! [`RouteTable`]: the compiled routes of one (group, stage).

use std::sync::Arc;

use http::Method;

use crate::model::{
    ApiDefinition, ApiId, BackendKind, GroupId, PathTemplate, Segment, Stage, StageDefinition,
};
use crate::store::Deployment;

use super::trie::{PathTrie, TrieMatch, split_path};

/// A published API as the data plane serves it: the deployed snapshot, bound to its backend's
/// current definition in the stage.
#[derive(Debug)]
pub struct LiveRoute {
    /// The deployment that is live.
    pub deployment: Arc<Deployment>,
    /// The stage.
    pub stage: Stage,
    /// The full path template (group base path included).
    pub template: PathTemplate,
    /// The backend service's name.
    pub backend_name: String,
    /// The backend service's kind (`MIXED` for mixed backends).
    pub backend_kind: BackendKind,
    /// The backend's definition in this stage.
    pub definition: Arc<StageDefinition>,
    /// The backend, compiled for calling.
    pub target: crate::routing::BackendTarget,
    /// For VPC definitions: the VPC access authorization they named when the route was compiled
    /// (the data plane resolves its instance id and port when it has no address).
    pub vpc_access: Option<Arc<crate::model::VpcAccess>>,
    /// Data the data plane precompiled for this route (targets, parameter rules).
    pub compiled: Arc<crate::routing::Compiled>,
}

impl LiveRoute {
    /// The published API definition.
    #[must_use]
    pub fn api(&self) -> &ApiDefinition {
        &self.deployment.snapshot
    }

    /// The API id.
    #[must_use]
    pub fn api_id(&self) -> &ApiId {
        &self.deployment.snapshot.id
    }

    /// The group id.
    #[must_use]
    pub fn group_id(&self) -> &GroupId {
        &self.deployment.snapshot.group_id
    }
}

/// Two routes would match the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConflict {
    /// The route that could not be added.
    pub api: ApiId,
    /// The route it collides with.
    pub existing: ApiId,
}

/// The compiled, immutable routes of one (group, stage).
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<LiveRoute>>,
    // one trie per method; `ANY` last
    methods: Vec<(Option<Method>, PathTrie)>,
    /// First literal path segments of the routes, for the stage-wide index.
    pub(crate) first_segments: Vec<String>,
    /// Whether some route starts with a parameter or matches `/*`.
    pub(crate) wild_first: bool,
}

/// A successful lookup: the route, and what its `[param]`s and `/*` matched.
///
/// Values are raw (percent-encoded as received). They are kept in one buffer, so a match
/// costs at most one allocation, and none for a path without parameters.
///
/// # Examples
///
/// ```
/// # async fn demo() {
/// use stagegate::store::MemoryStore;
/// use stagegate::*;
/// use http::Method;
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let backend = cp.create_backend(NewBackend::new("mock", BackendKind::Mock)).await.unwrap();
/// let def = StageDefinition::Mock(MockDefinition { status: 200, headers: Default::default(), body: "ok".into() });
/// cp.set_stage_definition(&backend.id, Stage::TEST, def).await.unwrap();
/// let group = cp.create_group(NewGroup { name: "shop".into(), ..Default::default() }).await.unwrap();
/// let api = ApiDefinition::builder(group.id, "files", "GET", "/users/[id]/files/*", backend.id).unwrap().anonymous();
/// let api = cp.create_api(api).await.unwrap();
/// cp.publish(&api.id, Stage::TEST, None).await.unwrap();
///
/// let m = cp.snapshot().resolve(None, &Stage::TEST, &Method::GET, "/users/42/files/a/b%20c").unwrap();
/// assert_eq!(m.param("id"), Some("42"));
/// assert_eq!(m.params().collect::<Vec<_>>(), [("id", "42")]);
/// assert_eq!(m.rest(), Some("a/b%20c"));
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// The table holding the route (its reference count sits beside what the lookup already
    /// read; the route's own would be one more cache miss per request).
    table: Arc<RouteTable>,
    index: usize,
    /// The parameter values, then the sub-path, back to back.
    values: String,
    /// Per parameter: its segment in the template, and its value's end in `values`.
    params: smallvec::SmallVec<[(u16, u32); 4]>,
    /// Whether the tail of `values` (after the last parameter) is a match-all sub-path.
    has_rest: bool,
}

impl RouteMatch {
    /// The matched route.
    #[must_use]
    pub fn route(&self) -> &Arc<LiveRoute> {
        &self.table.routes[self.index]
    }

    /// The path parameters in template order: `(name, raw value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let segments = self.route().template.segments();
        let mut start = 0usize;
        self.params.iter().map(move |&(seg, end)| {
            let name = match &segments[usize::from(seg)] {
                Segment::Param(n) | Segment::Literal(n) => n.as_str(),
            };
            let value = &self.values[start..end as usize];
            start = end as usize;
            (name, value)
        })
    }

    /// The raw value of one path parameter.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// For match-all routes: the raw sub-path after the prefix.
    #[must_use]
    pub fn rest(&self) -> Option<&str> {
        let start = self.params.last().map_or(0, |&(_, end)| end as usize);
        self.has_rest.then(|| &self.values[start..])
    }
}

impl RouteTable {
    /// Compiles routes into a table.
    ///
    /// # Errors
    ///
    /// [`TableConflict`] when two routes with the same method (or `ANY`) would match the same
    /// requests.
    pub fn build(routes: Vec<Arc<LiveRoute>>) -> Result<Self, TableConflict> {
        let mut table = Self {
            routes,
            ..Self::default()
        };
        let mut shapes: std::collections::HashMap<String, Vec<(String, usize)>> =
            std::collections::HashMap::new();
        for (i, r) in table.routes.iter().enumerate() {
            let method_name = r.api().request.method.as_str();
            let shape = r.template.shape();
            let seen = shapes.entry(shape).or_default();
            if let Some((_, j)) = seen
                .iter()
                .find(|(m, _)| m == method_name || m == "ANY" || method_name == "ANY")
            {
                return Err(TableConflict {
                    api: r.api_id().clone(),
                    existing: table.routes[*j].api_id().clone(),
                });
            }
            seen.push((method_name.to_owned(), i));

            let method = if method_name == "ANY" {
                None
            } else {
                Some(Method::from_bytes(method_name.as_bytes()).unwrap_or(Method::GET))
            };
            let pos = match table.methods.iter().position(|(m, _)| *m == method) {
                Some(p) => p,
                None => {
                    table.methods.push((method, PathTrie::default()));
                    table.methods.len() - 1
                }
            };
            if let Err(occupied) = table.methods[pos].1.insert(&r.template, i) {
                return Err(TableConflict {
                    api: r.api_id().clone(),
                    existing: table.routes[occupied.existing].api_id().clone(),
                });
            }
            match r.template.segments().first() {
                Some(Segment::Literal(l)) => table.first_segments.push(l.clone()),
                _ => table.wild_first = true,
            }
        }
        // `ANY` is consulted after the exact method.
        table.methods.sort_by_key(|(m, _)| m.is_none());
        for (_, trie) in &mut table.methods {
            trie.shrink();
        }
        table.first_segments.sort();
        table.first_segments.dedup();
        table.first_segments.shrink_to_fit();
        Ok(table)
    }

    /// The routes, in no particular order.
    #[must_use]
    pub fn routes(&self) -> &[Arc<LiveRoute>] {
        &self.routes
    }

    /// Whether the table holds no route.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for `method` and `path`: the exact method before `ANY`; exact segments
    /// beat parameters, which beat match-all; a longer template beats a shorter one.
    #[must_use]
    pub fn lookup(self: &Arc<Self>, method: &Method, path: &str) -> Option<RouteMatch> {
        let segs = split_path(path)?;
        self.lookup_split(method, path, &segs)
    }

    pub(crate) fn lookup_split(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        segs: &[&str],
    ) -> Option<RouteMatch> {
        self.methods
            .iter()
            .filter(|(m, _)| m.as_ref().is_none_or(|m| m == method))
            .find_map(|(_, trie)| trie.lookup(path, segs))
            .map(|m| self.to_match(m, path, segs))
    }

    /// Whether any route matches the path with some other method.
    #[must_use]
    pub fn path_matches_other_method(&self, path: &str) -> bool {
        split_path(path).is_some_and(|segs| {
            self.methods
                .iter()
                .any(|(_, t)| t.lookup(path, &segs).is_some())
        })
    }

    fn to_match(self: &Arc<Self>, m: TrieMatch, path: &str, segs: &[&str]) -> RouteMatch {
        let rest = m.rest_at.map(|at| &path[at..]);
        let mut values = String::new();
        let mut params = smallvec::SmallVec::new();
        if !m.params.is_empty() || rest.is_some() {
            values.reserve(path.len());
        }
        for &depth in &m.params {
            values.push_str(segs[usize::from(depth)]);
            // the request line is far below 4 GiB
            params.push((depth, u32::try_from(values.len()).unwrap_or(u32::MAX)));
        }
        if let Some(rest) = rest {
            values.push_str(rest);
        }
        RouteMatch {
            table: Arc::clone(self),
            index: m.index,
            values,
            params,
            has_rest: rest.is_some(),
        }
    }
}
