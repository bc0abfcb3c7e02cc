//! [`RouteTable`]: the compiled routes of one (group, stage).

use std::sync::Arc;

use http::Method;

use crate::model::{
    ApiDefinition, ApiId, BackendKind, GroupId, PathTemplate, Segment, Stage, StageDefinition,
};
use crate::store::Deployment;

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

const CATCH_ALL: &str = "__sg_rest";

#[derive(Debug, Default)]
struct MethodRouters {
    full: Option<matchit::Router<usize>>,
    prefix: Option<matchit::Router<usize>>,
    /// The longest rank (segments plus the `*`) of the match-all routes: a match-all route can
    /// only beat an exact-length match of at most this many segments.
    prefix_max_len: usize,
}

/// The compiled, immutable routes of one (group, stage).
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<LiveRoute>>,
    // index by method; `ANY` last
    methods: Vec<(Option<Method>, MethodRouters)>,
    /// First literal path segments of the routes, for the stage-wide index.
    pub(crate) first_segments: Vec<String>,
    /// Whether some route starts with a parameter or matches `/*`.
    pub(crate) wild_first: bool,
}

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// The route.
    pub route: Arc<LiveRoute>,
    /// Path parameters, raw (percent-encoded as received).
    pub params: Vec<(String, String)>,
    /// For match-all routes: the sub-path after the prefix.
    pub rest: Option<String>,
}

fn to_matchit(t: &PathTemplate) -> (String, bool) {
    let mut s = String::new();
    for seg in t.segments() {
        s.push('/');
        match seg {
            Segment::Literal(l) => s.push_str(l),
            Segment::Param(p) => {
                s.push('{');
                s.push_str(p);
                s.push('}');
            }
        }
    }
    if t.match_all() {
        s.push_str("/{*");
        s.push_str(CATCH_ALL);
        s.push('}');
    } else if s.is_empty() {
        s.push('/');
    }
    (s, t.match_all())
}

/// Per segment: 2 exact, 1 parameter, 0 match-all; longer first.
fn rank(t: &PathTemplate) -> Vec<u8> {
    let mut r: Vec<u8> = t
        .segments()
        .iter()
        .map(|s| {
            if matches!(s, Segment::Literal(_)) {
                2
            } else {
                1
            }
        })
        .collect();
    if t.match_all() {
        r.push(0);
    }
    r
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
                    table.methods.push((method, MethodRouters::default()));
                    table.methods.len() - 1
                }
            };
            let (path, prefix) = to_matchit(&r.template);
            let routers = &mut table.methods[pos].1;
            if prefix {
                routers.prefix_max_len =
                    routers.prefix_max_len.max(r.template.segments().len() + 1);
            }
            let router = if prefix {
                &mut routers.prefix
            } else {
                &mut routers.full
            };
            if let Err(e) = router
                .get_or_insert_with(matchit::Router::new)
                .insert(path, i)
            {
                let existing = match e {
                    matchit::InsertError::Conflict { with } => table
                        .routes
                        .iter()
                        .find(|o| to_matchit(&o.template).0 == with)
                        .map_or_else(|| r.api_id().clone(), |o| o.api_id().clone()),
                    _ => r.api_id().clone(),
                };
                return Err(TableConflict {
                    api: r.api_id().clone(),
                    existing,
                });
            }
            match r.template.segments().first() {
                Some(Segment::Literal(l)) => table.first_segments.push(l.clone()),
                _ => table.wild_first = true,
            }
        }
        // `ANY` is consulted after the exact method.
        table.methods.sort_by_key(|(m, _)| m.is_none());
        table.first_segments.sort();
        table.first_segments.dedup();
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
    pub fn lookup(&self, method: &Method, path: &str) -> Option<RouteMatch> {
        for (m, routers) in &self.methods {
            if m.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            if let Some(found) = self.lookup_in(routers, path) {
                return Some(found);
            }
        }
        None
    }

    /// Whether any route matches the path with some other method.
    #[must_use]
    pub fn path_matches_other_method(&self, path: &str) -> bool {
        self.methods
            .iter()
            .any(|(_, r)| self.lookup_in(r, path).is_some())
    }

    fn lookup_in(&self, routers: &MethodRouters, path: &str) -> Option<RouteMatch> {
        let full = routers.full.as_ref().and_then(|r| r.at(path).ok());
        // A match-all route can only win against a full match of the same length or shorter.
        let prefix_may_win = full.as_ref().is_none_or(|f| {
            self.routes[*f.value].template.segments().len() <= routers.prefix_max_len
        });
        let prefix = if prefix_may_win {
            routers.prefix.as_ref().and_then(|r| r.at(path).ok())
        } else {
            None
        };
        let (m, is_prefix) = match (full, prefix) {
            (Some(f), Some(p)) => {
                let rf = rank(&self.routes[*f.value].template);
                let rp = rank(&self.routes[*p.value].template);
                // Longer wins; at equal length, segment by segment (exact > param > match-all).
                if rp.len() > rf.len() || (rp.len() == rf.len() && rp > rf) {
                    (p, true)
                } else {
                    (f, false)
                }
            }
            (Some(f), None) => (f, false),
            (None, Some(p)) => (p, true),
            (None, None) => return None,
        };
        let mut params = Vec::with_capacity(m.params.len());
        let mut rest = None;
        for (k, v) in m.params.iter() {
            if is_prefix && k == CATCH_ALL {
                rest = Some(v.to_owned());
            } else {
                params.push((k.to_owned(), v.to_owned()));
            }
        }
        Some(RouteMatch {
            route: Arc::clone(&self.routes[*m.value]),
            params,
            rest,
        })
    }
}
