//! APIs: drafts, publishing into stages, the deployment history and rollback.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::apps::delete_grants;
use super::live::{TableBuildError, Targets};
use super::state::State;
use super::{ControlError, ControlPlane, Result, delete, put};
use crate::model::{ApiDefinition, ApiId, BackendKind, GroupId, Stage, ValidationError};
use crate::routing::RouteTable;
use crate::store::{Deployment, Entity, Key, Publication};

/// One entry of an API's deployment history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentInfo {
    /// The stage.
    pub stage: Stage,
    /// The version.
    pub version: String,
    /// Free text given at publish time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When.
    pub deployed_at: Timestamp,
    /// Whether this version is the one live in its stage.
    pub live: bool,
}

pub(super) fn next_version(prev: Option<&str>) -> String {
    let now = Deployment::format_version(Timestamp::now());
    match prev {
        Some(p) if p >= now.as_str() && p.len() == now.len() => {
            p.parse::<u64>().map_or(now, |n| (n + 1).to_string())
        }
        _ => now,
    }
}

fn check_api(state: &State, api: &ApiDefinition) -> Result<()> {
    api.validate()?;
    state.group(&api.group_id)?;
    let backend = state.backend(&api.backend.backend_id)?;
    if backend.kind == BackendKind::Oss && api.backend.oss.is_none() {
        return Err(ValidationError::InvalidField {
            field: "backend.oss".into(),
            reason: "an API on an OSS backend needs an action and an object key".into(),
        }
        .into());
    }
    if state.api_name_taken(&api.group_id, &api.name, &api.id) {
        return Err(ControlError::AlreadyExists {
            what: "api",
            name: api.name.clone(),
        });
    }
    Ok(())
}

impl ControlPlane {
    /// Creates an API draft (its `id` is kept if unused).
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::NotFound`] (group or backend),
    /// [`ControlError::AlreadyExists`] (name taken in the group, or id taken).
    pub async fn create_api(&self, api: ApiDefinition) -> Result<ApiDefinition> {
        let mut state = self.state.lock().await;
        if state.apis.contains_key(&api.id) {
            return Err(ControlError::AlreadyExists {
                what: "api id",
                name: api.id.to_string(),
            });
        }
        self.save_api(&mut state, api).await
    }

    /// Replaces an API draft. Nothing live changes until it is published again.
    ///
    /// # Errors
    ///
    /// As [`create_api`](Self::create_api), and [`ControlError::NotFound`] for an unknown id.
    pub async fn update_api(&self, api: ApiDefinition) -> Result<ApiDefinition> {
        let mut state = self.state.lock().await;
        state.api(&api.id)?;
        self.save_api(&mut state, api).await
    }

    /// Checks a draft and commits it.
    async fn save_api(&self, state: &mut State, api: ApiDefinition) -> Result<ApiDefinition> {
        check_api(state, &api)?;
        let w = put(state, Entity::Api(api.clone()));
        self.commit_one(state, w).await?;
        Ok(api)
    }

    /// Deletes an API with its history and authorizations; refused while it is published.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_api(&self, id: &ApiId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.api(id)?;
        let stages: Vec<String> = Stage::BUILT_IN
            .iter()
            .filter(|s| state.live(id, s).is_some())
            .map(ToString::to_string)
            .collect();
        if !stages.is_empty() {
            return Err(ControlError::in_use(
                "api",
                id,
                format!(
                    "its publications in {} (unpublish first)",
                    stages.join(", ")
                ),
            ));
        }
        let mut writes = vec![delete(&state, Key::api(id))];
        for stage in Stage::BUILT_IN {
            for d in state.history(id, &stage) {
                writes.push(delete(
                    &state,
                    Key::deployment(id, &stage, &d.value.version),
                ));
            }
        }
        writes.extend(delete_grants(&state, |_, api| api == id));
        writes.extend(super::policies::delete_bindings_of_api(&state, id));
        self.commit(&mut state, writes, HashMap::new()).await
    }

    /// One API draft.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn api(&self, id: &ApiId) -> Result<ApiDefinition> {
        let state = self.state.lock().await;
        state.api(id).map(|a| a.to_definition())
    }

    /// Every API draft, optionally of one group, by name.
    pub async fn apis(&self, group: Option<&GroupId>) -> Vec<ApiDefinition> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state
            .apis
            .values()
            .filter(|a| group.is_none_or(|g| &a.value.group_id == g))
            .map(|a| a.value.to_definition())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    // ----- publishing -----

    /// Publishes the API's current draft into `stage` as a new deployment.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (API, group or backend), [`ControlError::NoDefinition`] when its
    /// backend has no definition in `stage`, [`ControlError::RouteConflict`] when another
    /// published API of the group would match the same requests, or one of another group that
    /// can receive the same requests (a shared domain, or either group without domains) would
    /// match any of them, [`ControlError::Refused`] when
    /// the API cannot use the backend's definition.
    pub async fn publish(
        &self,
        id: &ApiId,
        stage: Stage,
        description: Option<String>,
    ) -> Result<Deployment> {
        if let Some(d) = &description {
            crate::model::validate_len("description", d, 180)?;
        }
        let mut state = self.state.lock().await;
        let api = state.api(id)?.to_definition();
        let prev = state
            .history(id, &stage)
            .next_back()
            .map(|d| d.value.version.clone());
        let deployment = Deployment {
            api_id: id.clone(),
            stage: stage.clone(),
            version: next_version(prev.as_deref()),
            description,
            deployed_at: Timestamp::now(),
            snapshot: api,
        };
        let prebuilt = self.check_publishable(&state, &deployment)?;
        let mut writes = vec![
            put(&state, Entity::Deployment(deployment.clone())),
            put(&state, Entity::Publication(publication(&deployment))),
        ];
        // The history keeps the newest `history` deployments, this one included: the older
        // ones go in the same commit, so it never grows past the limit.
        let kept = self.history.saturating_sub(1);
        let old: Vec<String> = state
            .history(id, &stage)
            .rev()
            .skip(kept)
            .map(|d| d.value.version.clone())
            .collect();
        for version in old {
            writes.push(delete(&state, Key::deployment(id, &stage, &version)));
        }
        self.commit(&mut state, writes, prebuilt).await?;
        Ok(deployment)
    }

    /// Checks that `deployment` can go live and builds its group's next table: no route of its
    /// group nor of another group that can receive the same requests may collide with it.
    fn check_publishable(
        &self,
        state: &State,
        deployment: &Deployment,
    ) -> Result<HashMap<(GroupId, Stage), RouteTable>> {
        let api = &deployment.snapshot;
        let stage = &deployment.stage;
        let group = state.group(&api.group_id)?;
        let backend = state.backend(&api.backend.backend_id)?;
        if !backend.stages.contains_key(stage) {
            return Err(ControlError::NoDefinition {
                backend_id: backend.id.clone(),
                backend_name: backend.name.clone(),
                stage: stage.clone(),
            });
        }
        // the full path, as requests match it
        let template = api.request.path.with_base(group.base_path.as_deref())?;
        let snapshot = self.live.load_full();
        let arc = Arc::new(deployment.clone());
        let table = state
            .build_table(
                &snapshot,
                &api.group_id,
                stage,
                Some((&api.id, &arc)),
                &mut Targets::default(),
            )
            .map_err(|e| match e {
                TableBuildError::Compile(e) => ControlError::Refused(e.to_string()),
                TableBuildError::Conflict(c) => {
                    let existing_name = state
                        .live(&c.existing, stage)
                        .map(|l| l.deployment.snapshot.name.clone())
                        .unwrap_or_default();
                    ControlError::RouteConflict {
                        method: api.request.method.clone(),
                        path: template.clone(),
                        existing: c.existing,
                        existing_name,
                        existing_group: group.id.clone(),
                        stage: stage.clone(),
                    }
                }
            })?;
        state.check_cross_group(&snapshot, group, &api.request.method, &template, stage)?;
        let mut prebuilt = HashMap::new();
        prebuilt.insert((api.group_id.clone(), stage.clone()), table);
        Ok(prebuilt)
    }

    /// Takes an API out of a stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotPublished`].
    pub async fn unpublish(&self, id: &ApiId, stage: &Stage) -> Result<()> {
        let mut state = self.state.lock().await;
        if state.live(id, stage).is_none() {
            return Err(ControlError::NotPublished {
                api: id.clone(),
                stage: stage.clone(),
            });
        }
        let w = delete(&state, Key::publication(id, stage));
        self.commit_one(&mut state, w).await
    }

    /// The deployment live in a stage, if any.
    pub async fn published(&self, id: &ApiId, stage: &Stage) -> Option<Deployment> {
        let state = self.state.lock().await;
        state.live(id, stage).map(|l| (*l.deployment).clone())
    }

    /// The deployment history of an API, per stage, oldest first; `live` marks the one in force.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown API.
    pub async fn deployments(&self, id: &ApiId) -> Result<Vec<DeploymentInfo>> {
        let state = self.state.lock().await;
        state.api(id)?;
        let mut out = Vec::new();
        for stage in Stage::BUILT_IN {
            let live = state.live(id, &stage).map(|l| l.deployment.version.clone());
            for d in state.history(id, &stage) {
                let v = &d.value.version;
                out.push(DeploymentInfo {
                    stage: stage.clone(),
                    version: v.clone(),
                    description: d.value.description.clone(),
                    deployed_at: d.value.deployed_at,
                    live: live.as_deref() == Some(v.as_str()),
                });
            }
        }
        Ok(out)
    }

    /// Makes an earlier deployment of an API live again in a stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown API or version, [`ControlError::Refused`] for a
    /// version older than the oldest the history keeps (pruned, see
    /// [`with_deployment_history`](ControlPlane::with_deployment_history)), and the publish
    /// refusals.
    pub async fn rollback(&self, id: &ApiId, stage: &Stage, version: &str) -> Result<Deployment> {
        let mut state = self.state.lock().await;
        state.api(id)?;
        // Only a full history may have lost older versions to pruning.
        let full = state.history(id, stage).count() >= self.history;
        let oldest = state
            .history(id, stage)
            .next()
            .filter(|_| full)
            .map(|d| d.value.version.clone());
        let deployment = match state.deployment(id, stage, version) {
            Ok(d) => (**d).clone(),
            Err(e) => {
                return Err(match oldest {
                    Some(oldest) if version < oldest.as_str() => ControlError::Refused(format!(
                        "deployment {} of api {id} in stage {stage} was pruned: the history \
                         keeps the newest {} deployments per stage (the oldest kept is {oldest})",
                        crate::model::id::truncate(version),
                        self.history
                    )),
                    _ => e,
                });
            }
        };
        let prebuilt = self.check_publishable(&state, &deployment)?;
        let w = put(&state, Entity::Publication(publication(&deployment)));
        self.commit(&mut state, vec![w], prebuilt).await?;
        Ok(deployment)
    }
}

/// The publication that makes `deployment` live.
fn publication(deployment: &Deployment) -> Publication {
    Publication {
        api_id: deployment.api_id.clone(),
        stage: deployment.stage.clone(),
        version: deployment.version.clone(),
    }
}
