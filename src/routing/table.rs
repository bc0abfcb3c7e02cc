//! [`RouteTable`]: the compiled routes of one (group, stage).

use std::sync::Arc;

use http::Method;

use crate::model::{
    ApiDefinition, ApiId, BackendKind, GroupId, PathTemplate, Segment, Stage, StageDefinition,
};
use crate::store::Deployment;

use super::trie::{FirstSegment, PathTrie, Start, TrieMatch};

/// Where each method's trie of a table starts for one first segment, in the table's order.
pub(crate) type Starts = smallvec::SmallVec<[Start; 1]>;

/// A published API as the data plane serves it: the deployed snapshot, bound to its backend's
/// current definition in the stage.
///
/// Built by the control plane; read through its accessors (a custom
/// [`Dispatch`](crate::backend::Dispatch) gets one in
/// [`BackendCall::route`](crate::backend::BackendCall::route)).
///
/// # Examples
///
/// ```
/// use stagegate::routing::LiveRoute;
///
/// fn describe(route: &LiveRoute) -> String {
///     format!(
///         "{} {} in {} -> {} ({})",
///         route.api().request.method,
///         route.template(),
///         route.stage(),
///         route.backend_name(),
///         route.backend_kind(),
///     )
/// }
/// # let _ = describe;
/// ```
#[derive(Debug)]
pub struct LiveRoute {
    /// The deployment that is live.
    pub(crate) deployment: Arc<Deployment>,
    /// The stage.
    pub(crate) stage: Stage,
    /// The full path template (group base path included).
    pub(crate) template: PathTemplate,
    /// The backend service's name.
    pub(crate) backend_name: String,
    /// The backend service's kind (`MIXED` for mixed backends).
    pub(crate) backend_kind: BackendKind,
    /// The backend's definition in this stage.
    pub(crate) definition: Arc<StageDefinition>,
    /// The backend, compiled for calling.
    pub(crate) target: crate::routing::BackendTarget,
    /// For VPC definitions: the VPC access authorization they named when the route was compiled
    /// (the data plane resolves its instance id and port when it has no address).
    pub(crate) vpc_access: Option<Arc<crate::model::VpcAccess>>,
    /// Data the data plane precompiled for this route (targets, parameter rules).
    pub(crate) compiled: Arc<crate::routing::Compiled>,
    /// The group's [`pass_appcode_to_backend`](crate::model::Group::pass_appcode_to_backend).
    pub(crate) pass_appcode_to_backend: bool,
}

impl LiveRoute {
    /// The published API definition (the deployed snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// fn api_name(route: &stagegate::routing::LiveRoute) -> &str {
    ///     &route.api().name
    /// }
    /// # let _ = api_name;
    /// ```
    #[must_use]
    pub fn api(&self) -> &ApiDefinition {
        &self.deployment.snapshot
    }

    /// The API id.
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(route: &stagegate::routing::LiveRoute) -> String {
    ///     route.api_id().to_string()
    /// }
    /// # let _ = id;
    /// ```
    #[must_use]
    pub fn api_id(&self) -> &ApiId {
        &self.deployment.snapshot.id
    }

    /// The group id.
    ///
    /// # Examples
    ///
    /// ```
    /// fn group(route: &stagegate::routing::LiveRoute) -> String {
    ///     route.group_id().to_string()
    /// }
    /// # let _ = group;
    /// ```
    #[must_use]
    pub fn group_id(&self) -> &GroupId {
        &self.deployment.snapshot.group_id
    }

    /// The deployment that is live: the API snapshot with its version and publication facts.
    ///
    /// # Examples
    ///
    /// ```
    /// fn version(route: &stagegate::routing::LiveRoute) -> &str {
    ///     &route.deployment().version
    /// }
    /// # let _ = version;
    /// ```
    #[must_use]
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The stage the route is published in.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::Stage;
    /// fn is_release(route: &stagegate::routing::LiveRoute) -> bool {
    ///     *route.stage() == Stage::RELEASE
    /// }
    /// # let _ = is_release;
    /// ```
    #[must_use]
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The full path template (the group's base path included).
    ///
    /// # Examples
    ///
    /// ```
    /// fn path(route: &stagegate::routing::LiveRoute) -> String {
    ///     route.template().to_string()
    /// }
    /// # let _ = path;
    /// ```
    #[must_use]
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// The backend service's name.
    ///
    /// # Examples
    ///
    /// ```
    /// fn backend(route: &stagegate::routing::LiveRoute) -> &str {
    ///     route.backend_name()
    /// }
    /// # let _ = backend;
    /// ```
    #[must_use]
    pub fn backend_name(&self) -> &str {
        &self.backend_name
    }

    /// The backend service's kind (`MIXED` for mixed backends; the definition's own kind is
    /// [`definition`](Self::definition)`().kind()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::BackendKind;
    /// fn is_mixed(route: &stagegate::routing::LiveRoute) -> bool {
    ///     route.backend_kind() == BackendKind::Mixed
    /// }
    /// # let _ = is_mixed;
    /// ```
    #[must_use]
    pub fn backend_kind(&self) -> BackendKind {
        self.backend_kind
    }

    /// The backend's definition in this stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::StageDefinition;
    /// fn is_mock(route: &stagegate::routing::LiveRoute) -> bool {
    ///     matches!(route.definition(), StageDefinition::Mock(_))
    /// }
    /// # let _ = is_mock;
    /// ```
    #[must_use]
    pub fn definition(&self) -> &StageDefinition {
        &self.definition
    }

    /// For VPC definitions: the VPC access authorization they named when the route was compiled.
    ///
    /// # Examples
    ///
    /// ```
    /// fn vpc_instance(route: &stagegate::routing::LiveRoute) -> Option<&str> {
    ///     route.vpc_access().map(|v| v.instance_id.as_str())
    /// }
    /// # let _ = vpc_instance;
    /// ```
    #[must_use]
    pub fn vpc_access(&self) -> Option<&crate::model::VpcAccess> {
        self.vpc_access.as_deref()
    }

    /// Whether the group passes the caller's AppCode on to the backend
    /// ([`Group::pass_appcode_to_backend`](crate::model::Group::pass_appcode_to_backend)).
    ///
    /// # Examples
    ///
    /// ```
    /// fn passes(route: &stagegate::routing::LiveRoute) -> bool {
    ///     route.pass_appcode_to_backend()
    /// }
    /// # let _ = passes;
    /// ```
    #[must_use]
    pub fn pass_appcode_to_backend(&self) -> bool {
        self.pass_appcode_to_backend
    }
}

/// Two routes would match the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableConflict {
    /// The route that could not be added.
    pub api: ApiId,
    /// The route it collides with.
    pub existing: ApiId,
}

/// The compiled, immutable routes of one (group, stage).
///
/// Laid out for the lookup (`repr(C)`): what every walk reads, the first method and its trie's
/// nodes and edge slots, comes first, so with the `Arc` counts before it (which a match
/// touches) it spans 80 bytes: two cache lines wherever the allocator puts it. Most tables
/// have a single method.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RouteTable {
    // one trie per method, the exact methods before `ANY`; the first is inline (an empty table
    // has an empty `ANY` trie, which matches nothing)
    method: Option<Method>,
    trie: PathTrie,
    routes: Vec<Arc<LiveRoute>>,
    more: Vec<(Option<Method>, PathTrie)>,
    /// First literal path segments of the routes, for the stage-wide index.
    pub(crate) first_segments: Vec<String>,
    /// Whether some route starts with a parameter or matches `/*`.
    pub(crate) wild_first: bool,
}

/// A successful lookup: the route, and what its `[param]`s and `/*` matched.
///
/// Values are raw (percent-encoded as received). A match keeps the part of the path they are
/// in, inline up to 32 bytes, so it allocates only for longer ones; the route's template says
/// where each parameter is.
///
/// # Examples
///
/// ```
/// # async fn demo() {
/// use stagegate::store::MemoryStore;
/// use stagegate::ControlPlane;
/// use stagegate::control::{NewBackend, NewGroup};
/// use stagegate::model::{ApiDefinition, BackendKind, MockDefinition, Stage, StageDefinition};
/// use http::Method;
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let backend = cp.create_backend(NewBackend::new("mock", BackendKind::Mock)).await.unwrap();
/// let def = StageDefinition::Mock(MockDefinition { status: 200, headers: Default::default(), body: "ok".into() });
/// cp.set_stage_definition(&backend.id, Stage::TEST, def).await.unwrap();
/// let group = cp.create_group(NewGroup { name: "shop".into(), ..Default::default() }).await.unwrap();
/// let api = ApiDefinition::new(group.id, "files", "GET", "/users/[id]/files/*", backend.id).unwrap().anonymous();
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
    /// The path from the first parameter on (or from the sub-path, for a match-all route
    /// without parameters): whole UTF-8 text cut from the path after a `/`.
    tail: smallvec::SmallVec<[u8; 32]>,
    /// The template segment number `tail` starts at.
    tail_depth: u16,
    /// For match-all routes: where the sub-path starts in `tail`.
    rest_at: Option<u32>,
}

impl RouteMatch {
    /// The matched route.
    #[must_use]
    pub fn route(&self) -> &Arc<LiveRoute> {
        &self.table.routes[self.index]
    }

    fn tail(&self) -> &str {
        // cut from a `&str` right after a `/`
        std::str::from_utf8(&self.tail).unwrap_or_default()
    }

    /// The path parameters in template order: `(name, raw value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        // without parameters, `tail_depth` is past the template
        let segments = self.route().template.segments();
        let segments = segments
            .get(usize::from(self.tail_depth)..)
            .unwrap_or_default();
        segments
            .iter()
            .zip(self.tail().split('/'))
            .filter_map(|(s, v)| match s {
                Segment::Param(name) => Some((name.as_str(), v)),
                Segment::Literal(_) => None,
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
        self.rest_at.map(|at| &self.tail()[at as usize..])
    }
}

impl RouteTable {
    /// Compiles routes into a table.
    ///
    /// # Errors
    ///
    /// [`TableConflict`] when two routes with the same method (or `ANY`) would match the same
    /// requests.
    pub(crate) fn build(routes: Vec<Arc<LiveRoute>>) -> Result<Self, TableConflict> {
        let (mut first_segments, mut wild_first) = (Vec::new(), false);
        let mut methods: Vec<(Option<Method>, PathTrie)> = Vec::with_capacity(1);
        let mut shapes: std::collections::HashMap<String, Vec<(String, usize)>> =
            std::collections::HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            let method_name = r.api().request.method.as_str();
            let shape = r.template.shape();
            let seen = shapes.entry(shape).or_default();
            if let Some((_, j)) = seen
                .iter()
                .find(|(m, _)| m == method_name || m == "ANY" || method_name == "ANY")
            {
                return Err(TableConflict {
                    api: r.api_id().clone(),
                    existing: routes[*j].api_id().clone(),
                });
            }
            seen.push((method_name.to_owned(), i));

            let method = if method_name == "ANY" {
                None
            } else {
                Some(Method::from_bytes(method_name.as_bytes()).unwrap_or(Method::GET))
            };
            let pos = match methods.iter().position(|(m, _)| *m == method) {
                Some(p) => p,
                None => {
                    methods.push((method, PathTrie::default()));
                    methods.len() - 1
                }
            };
            if let Err(occupied) = methods[pos].1.insert(&r.template, i) {
                return Err(TableConflict {
                    api: r.api_id().clone(),
                    existing: routes[occupied.existing].api_id().clone(),
                });
            }
            match r.template.segments().first() {
                Some(Segment::Literal(l)) => first_segments.push(l.clone()),
                _ => wild_first = true,
            }
        }
        // `ANY` is consulted after the exact method.
        methods.sort_by_key(|(m, _)| m.is_none());
        for (_, trie) in &mut methods {
            trie.shrink();
        }
        first_segments.sort();
        first_segments.dedup();
        first_segments.shrink_to_fit();
        let mut methods = methods.into_iter();
        let (method, trie) = methods.next().unwrap_or_default();
        Ok(Self {
            method,
            trie,
            routes,
            more: methods.collect(),
            first_segments,
            wild_first,
        })
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
        for (m, trie) in self.tries() {
            if m.as_ref().is_none_or(|m| m == method)
                && let Some(found) = trie.lookup(path)
            {
                return Some(self.to_match(found, path));
            }
        }
        None
    }

    /// Each method's trie, the exact methods before `ANY`.
    fn tries(&self) -> impl Iterator<Item = (&Option<Method>, &PathTrie)> {
        std::iter::once((&self.method, &self.trie)).chain(self.more.iter().map(|(m, t)| (m, t)))
    }

    /// Where each method's trie starts for paths whose first segment is `first` (for
    /// [`lookup_from`](Self::lookup_from)).
    pub(crate) fn starts(&self, first: &str) -> Starts {
        self.tries().map(|(_, t)| t.start(first)).collect()
    }

    /// [`lookup`](Self::lookup) of a path whose first segment is `first`, from the `starts`
    /// the table gave for that segment.
    #[inline]
    pub(crate) fn lookup_from(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        first: &FirstSegment<'_>,
        starts: &Starts,
    ) -> Option<RouteMatch> {
        let (start, more_starts) = starts.split_first()?;
        if self.method.as_ref().is_none_or(|m| m == method)
            && let Some(found) = self.trie.lookup_from(*start, path, first)
        {
            return Some(self.to_match(found, path));
        }
        for ((m, trie), start) in self.more.iter().zip(more_starts) {
            if m.as_ref().is_none_or(|m| m == method)
                && let Some(found) = trie.lookup_from(*start, path, first)
            {
                return Some(self.to_match(found, path));
            }
        }
        None
    }

    /// The methods of the routes whose template matches `path` (`ANY` for a route taking any).
    pub(crate) fn methods_matching<'a>(
        &'a self,
        path: &'a str,
    ) -> impl Iterator<Item = String> + 'a {
        self.tries()
            .filter(move |(_, t)| t.lookup(path).is_some())
            .map(|(m, _)| {
                m.as_ref()
                    .map_or_else(|| "ANY".to_owned(), |m| m.to_string())
            })
    }

    /// Whether any route matches the path with some other method.
    #[must_use]
    pub fn path_matches_other_method(&self, path: &str) -> bool {
        self.tries().any(|(_, t)| t.lookup(path).is_some())
    }

    fn to_match(self: &Arc<Self>, m: TrieMatch, path: &str) -> RouteMatch {
        let (tail_at, tail_depth) = match (m.first_param, m.rest_at) {
            (Some(p), _) => (p.at as usize, p.depth),
            // depth is unused without parameters
            (None, Some(at)) => (at, u16::MAX),
            (None, None) => (path.len(), u16::MAX),
        };
        RouteMatch {
            table: Arc::clone(self),
            index: m.index,
            // a static route keeps nothing: no copy at all
            tail: match &path.as_bytes()[tail_at..] {
                [] => smallvec::SmallVec::new(),
                tail => smallvec::SmallVec::from_slice(tail),
            },
            tail_depth,
            // the path is under 4 GiB (the trie checked)
            rest_at: m
                .rest_at
                .map(|at| u32::try_from(at - tail_at).unwrap_or(u32::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every lookup reads of a table (the first method, its trie's nodes and edge slots)
    /// comes first and fits 64 bytes: with the `Arc` counts, two cache lines at most.
    #[test]
    fn a_lookup_reads_the_first_64_bytes_of_a_table() {
        assert_eq!(std::mem::offset_of!(RouteTable, method), 0);
        assert!(std::mem::offset_of!(RouteTable, trie) + PathTrie::HOT_BYTES <= 64);
    }
}
