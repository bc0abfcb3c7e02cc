//! Building the next [`Snapshot`] from the control plane's state.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{ControlError, RouteCompileError};
use super::state::{Affected, State};
use crate::model::{
    ApiId, BackendId, Group, GroupId, PathTemplate, Segment, Stage, StageDefinition,
};
use crate::policy::PolicyIndex;
use crate::routing::overlap;
use crate::routing::{
    BackendTarget, Compiled, Credentials, Grants, HostIndex, LiveRoute, RouteTable, Snapshot,
    TableConflict,
};
use crate::store::Deployment;

/// Backend definitions compiled once per snapshot build and shared by every route on the same
/// backend in the same stage: one `Arc<StageDefinition>` and one compiled target for a thousand
/// APIs on one backend instead of a copy of each per route.
#[derive(Default)]
pub(crate) struct Targets(HashMap<(BackendId, Stage), (Arc<StageDefinition>, BackendTarget)>);

impl State {
    /// Compiles one published API into a live route, reusing `prev` where nothing changed.
    /// `definition` replaces the backend's definition in the stage (a check before a change);
    /// otherwise the compiled definition comes from (or goes into) `targets`.
    pub(crate) fn compile_route(
        &self,
        deployment: &Arc<Deployment>,
        stage: &Stage,
        definition: Option<&StageDefinition>,
        prev: Option<&Arc<LiveRoute>>,
        targets: &mut Targets,
    ) -> Result<Arc<LiveRoute>, RouteCompileError> {
        let explicit = definition.is_some();
        let api = &deployment.snapshot;
        let group = self
            .group(&api.group_id)
            .map_err(|e| RouteCompileError::Missing(Box::new(e)))?;
        let backend = self
            .backend(&api.backend.backend_id)
            .map_err(|e| RouteCompileError::Missing(Box::new(e)))?;
        let definition = match definition {
            Some(d) => d,
            None => backend
                .stages
                .get(stage)
                .ok_or_else(|| RouteCompileError::NoDefinition {
                    backend_name: backend.name.clone(),
                    stage: stage.clone(),
                })?,
        };
        if matches!(definition, StageDefinition::Oss(_)) && api.backend.oss.is_none() {
            return Err(RouteCompileError::OssWithoutBinding);
        }
        let base = group.base_path.as_deref();
        // The previous route serves on if nothing it was compiled from changed. Its template is
        // compared as text (which determines it): parsing the joined path again for every route
        // of the group was a quarter of a table rebuild (callgrind, `benches/publish.rs`).
        if let Some(p) = prev
            && Arc::ptr_eq(&p.deployment, deployment)
            && *p.definition == *definition
            && p.template.is_with_base(&api.request.path, base)
            && p.backend_name == backend.name
            && p.pass_appcode_to_backend == group.pass_appcode_to_backend
            && !matches!(definition, StageDefinition::Vpc(_))
        {
            return Ok(Arc::clone(p));
        }
        let template = api
            .request
            .path
            .with_base(base)
            .map_err(RouteCompileError::Template)?;
        let key = (api.backend.backend_id.clone(), stage.clone());
        let (shared, target) = match targets.0.get(&key).filter(|_| !explicit) {
            Some((d, t)) => (Arc::clone(d), t.clone()),
            None => {
                let target = BackendTarget::compile(definition, |id| {
                    self.vpc_access.get(id).map(|v| v.value.clone())
                })?;
                let shared = Arc::new(definition.clone());
                if !explicit {
                    targets.0.insert(key, (Arc::clone(&shared), target.clone()));
                }
                (shared, target)
            }
        };
        let vpc_access = match definition {
            StageDefinition::Vpc(v) => self
                .vpc_access
                .get(&v.vpc_access_id)
                .map(|a| Arc::new(a.value.clone())),
            _ => None,
        };
        let compiled = match prev {
            Some(p) if Arc::ptr_eq(&p.deployment, deployment) => Arc::clone(&p.compiled),
            _ => Arc::new(Compiled::compile(api)?),
        };
        Ok(Arc::new(LiveRoute {
            deployment: Arc::clone(deployment),
            stage: stage.clone(),
            template,
            backend_name: backend.name.clone(),
            backend_kind: backend.kind,
            definition: shared,
            target,
            vpc_access,
            compiled,
            pass_appcode_to_backend: group.pass_appcode_to_backend,
        }))
    }

    /// Builds the route table of (group, stage) from the publications, optionally with one
    /// publication replaced (`candidate`) — how publish checks for conflicts before committing.
    pub(crate) fn build_table(
        &self,
        prev: &Snapshot,
        group: &GroupId,
        stage: &Stage,
        candidate: Option<(&ApiId, &Arc<Deployment>)>,
        targets: &mut Targets,
    ) -> Result<RouteTable, TableBuildError> {
        let old: HashMap<&ApiId, &Arc<LiveRoute>> = prev
            .table(group, stage)
            .map(|t| t.routes().iter().map(|r| (r.api_id(), r)).collect())
            .unwrap_or_default();
        let mut routes = Vec::new();
        for (api, live) in self.published_in_group(group, stage) {
            if candidate.is_some_and(|(c, _)| c == api) {
                continue;
            }
            match self.compile_route(
                &live.deployment,
                stage,
                None,
                old.get(api).copied(),
                targets,
            ) {
                Ok(r) => routes.push(r),
                Err(e) => {
                    tracing::warn!(api = %api, stage = %stage, error = %e, "published API left out of the route table")
                }
            }
        }
        if let Some((_, deployment)) = candidate {
            let r = self
                .compile_route(deployment, stage, None, None, targets)
                .map_err(TableBuildError::Compile)?;
            // the candidate goes last so that a conflict names the route already published
            routes.push(r);
        }
        RouteTable::build(routes).map_err(TableBuildError::Conflict)
    }

    /// The next generation after `affected`, sharing every untouched part of `prev`.
    pub(crate) fn next_snapshot(
        &self,
        prev: &Snapshot,
        affected: &Affected,
        mut prebuilt: HashMap<(GroupId, Stage), RouteTable>,
    ) -> Snapshot {
        let hosts = if affected.groups {
            Arc::new(HostIndex::build(self.groups.values().map(|g| &g.value)))
        } else {
            Arc::clone(&prev.hosts)
        };
        let mut next = Snapshot {
            generation: prev.generation + 1,
            hosts,
            tables: prev.tables.clone(),
            stages: prev.stages.clone(),
            credentials: if affected.credentials {
                Arc::new(Credentials::build(self.apps.values().map(|a| &a.value)))
            } else {
                Arc::clone(&prev.credentials)
            },
            grants: if affected.grants {
                Arc::new(Grants::build(
                    self.authorizations.values().map(|a| &a.value),
                ))
            } else {
                Arc::clone(&prev.grants)
            },
            policies: if affected.policies {
                Arc::new(PolicyIndex::build(
                    |id| self.policies.get(id).map(|p| &p.value),
                    self.bindings.values().map(|b| &b.value),
                ))
            } else {
                Arc::clone(&prev.policies)
            },
        };
        let mut stages: std::collections::HashSet<Stage> = std::collections::HashSet::new();
        let mut targets = Targets::default();
        for (group, stage) in &affected.tables {
            stages.insert(stage.clone());
            let key = (group.clone(), stage.clone());
            let table = match prebuilt.remove(&key) {
                Some(t) => Ok(t),
                None => self.build_table(prev, group, stage, None, &mut targets),
            };
            match table {
                Ok(t) if !t.is_empty() && self.groups.contains_key(group) => {
                    next.tables.insert(key, Arc::new(t));
                }
                Ok(_) => {
                    next.tables.remove(&key);
                }
                Err(e) => {
                    // Publish-time checks make this unreachable for local changes; a change feed
                    // from elsewhere keeps the last good table.
                    tracing::error!(group = %group, stage = %stage, error = ?e, "route table not rebuilt");
                }
            }
        }
        if affected.groups {
            // hosts moved: every stage's index names tables by host
            stages.extend(Stage::BUILT_IN);
            stages.extend(next.stages.iter().map(|(s, _)| s.clone()));
        }
        for s in stages {
            next.reindex_stage(&s);
        }
        next
    }

    /// Builds every table from scratch.
    pub(crate) fn full_snapshot(&self, generation: u64) -> Snapshot {
        let mut affected = Affected {
            groups: true,
            credentials: true,
            grants: true,
            policies: true,
            ..Affected::default()
        };
        for (g, s) in self.published_in.keys() {
            affected.tables.insert((g.clone(), s.clone()));
        }
        let prev = Snapshot {
            generation,
            ..Snapshot::default()
        };
        self.next_snapshot(&prev, &affected, HashMap::new())
    }
}

impl State {
    /// The first published route of another group that can receive a request a route of
    /// `group` (bound to `domains`) with `method` and full path `template` matches, among the
    /// route tables `tables` of one stage. The one conflict check for publishing, importing and
    /// changing a group's domains or base path (issue 20, item 2).
    pub(crate) fn cross_group_conflict<'t>(
        &self,
        group: &GroupId,
        domains: &[String],
        method: &str,
        template: &PathTemplate,
        tables: impl IntoIterator<Item = (&'t GroupId, &'t RouteTable)>,
    ) -> Option<&'t Arc<LiveRoute>> {
        let first = match template.segments().first() {
            Some(Segment::Literal(l)) => Some(l.as_str()),
            _ => None,
        };
        for (other, table) in tables {
            if other == group {
                continue;
            }
            if !overlap::hosts_overlap(domains, self.domains(other)) {
                continue;
            }
            // a table without a route starting with `first` (nor with a parameter or `/*`)
            // cannot overlap: most are skipped without looking at their routes
            if let Some(f) = first
                && !table.wild_first
                && table
                    .first_segments
                    .binary_search_by(|s| s.as_str().cmp(f))
                    .is_err()
            {
                continue;
            }
            if let Some(r) = table.routes().iter().find(|r| {
                overlap::methods_overlap(method, &r.api().request.method)
                    && overlap::templates_overlap(template, &r.template)
            }) {
                return Some(r);
            }
        }
        None
    }

    /// The domains `group` is bound to (none for an unknown group).
    fn domains(&self, group: &GroupId) -> &[String] {
        self.groups
            .get(group)
            .map_or(&[][..], |g| g.value.domains.as_slice())
    }

    /// Refuses a route of `group` with `method` and full path `template` in `stage` that
    /// collides with a route of another group in `snapshot` that can receive the same requests.
    pub(crate) fn check_cross_group(
        &self,
        snapshot: &Snapshot,
        group: &Group,
        method: &str,
        template: &PathTemplate,
        stage: &Stage,
    ) -> Result<(), ControlError> {
        let others = snapshot
            .tables
            .iter()
            .filter(|((_, s), _)| s == stage)
            .map(|((g, _), t)| (g, &**t));
        match self.cross_group_conflict(&group.id, &group.domains, method, template, others) {
            Some(existing) => Err(self.route_conflict(method, template, stage, existing)),
            None => Ok(()),
        }
    }

    /// The conflict error for a route with `method` and full `path` in `stage` that collides
    /// with the published `existing`.
    pub(crate) fn route_conflict(
        &self,
        method: &str,
        path: &PathTemplate,
        stage: &Stage,
        existing: &LiveRoute,
    ) -> ControlError {
        ControlError::RouteConflict {
            method: method.to_owned(),
            path: path.clone(),
            existing: existing.api_id().clone(),
            existing_name: existing.api().name.clone(),
            existing_group: existing.group_id().clone(),
            stage: stage.clone(),
        }
    }

    /// The first cross-group conflict among whole route tables (an import): each route of
    /// each table against the tables of the other groups in its stage.
    pub(crate) fn first_cross_group_conflict(
        &self,
        tables: &HashMap<(GroupId, Stage), RouteTable>,
    ) -> Result<(), ControlError> {
        for ((group, stage), table) in tables {
            let domains = self.domains(group);
            // each pair of groups once: the other is the later in id order
            let others = || {
                tables
                    .iter()
                    .filter(|((g, s), _)| s == stage && g > group)
                    .map(|((g, _), t)| (g, t))
            };
            for r in table.routes() {
                let method = &r.api().request.method;
                if let Some(existing) =
                    self.cross_group_conflict(group, domains, method, &r.template, others())
                {
                    return Err(self.route_conflict(method, &r.template, stage, existing));
                }
            }
        }
        Ok(())
    }
}

/// Why a route table could not be built.
#[derive(Debug)]
pub(crate) enum TableBuildError {
    Compile(RouteCompileError),
    Conflict(TableConflict),
}
