//! Backend services and their definitions per stage, with the cascade a change of definition
//! makes on the APIs published there.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::live::Targets;
use super::{ApiReport, ControlError, ControlPlane, ReportResult, Result, delete, put};
use crate::model::{
    ApiDefinition, BackendId, BackendKind, BackendService, Stage, StageDefinition, ValidationError,
};
use crate::store::{Entity, Key};

/// What to create a backend service with.
///
/// # Examples
///
/// ```
/// use stagegate::control::NewBackend;
/// use stagegate::model::BackendKind;
/// let nb = NewBackend::new("testHttp", BackendKind::Http).with_description("the test echo service");
/// assert_eq!(nb.name, "testHttp");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBackend {
    /// Name.
    pub name: String,
    /// Kind, fixed from now on.
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl NewBackend {
    /// A backend named `name` of `kind`.
    #[must_use]
    pub fn new(name: impl Into<String>, kind: BackendKind) -> Self {
        Self {
            name: name.into(),
            kind,
            description: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
}

/// Changes to a backend service's name and description (its kind never changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
}

/// The result of replacing a backend's definition in a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefinitionChange {
    /// The definition now in force.
    pub definition: StageDefinition,
    /// What happened to each API published in that stage that uses the backend.
    pub report: Vec<ApiReport>,
}

impl ControlPlane {
    /// Creates a backend service. Its kind can never change afterwards.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`] for a bad name or description, [`ControlError::AlreadyExists`]
    /// for a taken name.
    pub async fn create_backend(&self, spec: NewBackend) -> Result<BackendService> {
        let mut b = BackendService::new(spec.name, spec.kind)?;
        b.description = spec.description;
        b.validate()?;
        let mut state = self.state.lock().await;
        state.check_name_free::<BackendService>(&b.name, None)?;
        let w = put(&state, Entity::Backend(b.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(b)
    }

    /// Renames a backend service or changes its description.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn update_backend(
        &self,
        id: &BackendId,
        patch: BackendPatch,
    ) -> Result<BackendService> {
        let mut state = self.state.lock().await;
        let mut b = state.backend(id)?.clone();
        if let Some(n) = patch.name {
            state.check_name_free::<BackendService>(&n, Some(id))?;
            b.name = n;
        }
        if let Some(d) = patch.description {
            b.description = Some(d);
        }
        b.modified_at = Timestamp::now();
        b.validate()?;
        let w = put(&state, Entity::Backend(b.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(b)
    }

    /// Deletes a backend service; refused while any API (draft or published) uses it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_backend(&self, id: &BackendId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.backend(id)?;
        // Each API once, with the stages it is published in: `getUser (published in RELEASE)`.
        let mut users: std::collections::BTreeMap<String, Vec<Stage>> = state
            .apis
            .values()
            .filter(|a| &a.value.backend.backend_id == id)
            .map(|a| (a.value.name.clone(), Vec::new()))
            .collect();
        for stage in Stage::BUILT_IN {
            for l in state.published_using(id, &stage) {
                let stages = users.entry(l.deployment.snapshot.name.clone()).or_default();
                if !stages.contains(&stage) {
                    stages.push(stage.clone());
                }
            }
        }
        if !users.is_empty() {
            let users: Vec<String> = users
                .into_iter()
                .map(|(name, stages)| match stages.as_slice() {
                    [] => format!("API {name}"),
                    _ => {
                        let stages: Vec<&str> = stages.iter().map(Stage::as_str).collect();
                        format!("API {name} (published in {})", stages.join(", "))
                    }
                })
                .collect();
            return Err(ControlError::in_use(
                "backend service",
                id,
                users.join(", "),
            ));
        }
        let w = delete(&state, Key::backend(id));
        self.commit_one(&mut state, w).await
    }

    /// One backend service.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn backend(&self, id: &BackendId) -> Result<BackendService> {
        self.state.lock().await.backend(id).cloned()
    }

    /// Every backend service, by name.
    pub async fn backends(&self) -> Vec<BackendService> {
        self.state.lock().await.by_name(|_: &BackendService| true)
    }

    /// Defines or replaces a backend's definition in a stage. Every API published in that stage
    /// that uses the backend follows at once, without a republish; the report says, per API,
    /// whether it was re-pointed or (when it cannot use the new definition) taken out.
    ///
    /// [`preview_stage_definition`](Self::preview_stage_definition) answers the same report
    /// without changing anything.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (backend, or a VPC access authorization the definition names),
    /// [`ControlError::Validation`] (a bad field, or a kind the backend cannot hold).
    pub async fn set_stage_definition(
        &self,
        id: &BackendId,
        stage: Stage,
        definition: StageDefinition,
    ) -> Result<DefinitionChange> {
        let mut state = self.state.lock().await;
        let (writes, change) = plan_set(&state, id, stage, definition)?;
        self.commit(&mut state, writes, HashMap::new()).await?;
        Ok(change)
    }

    /// The dry run of [`set_stage_definition`](Self::set_stage_definition): the same checks and
    /// the same report (which published APIs would be re-pointed and which taken out), with
    /// nothing committed and the live configuration untouched.
    ///
    /// # Errors
    ///
    /// The same as [`set_stage_definition`](Self::set_stage_definition).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::{ControlPlane, NewBackend};
    /// use stagegate::model::{BackendKind, HttpDefinition, Stage, StageDefinition};
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let b = cp.create_backend(NewBackend::new("echo", BackendKind::Http)).await.unwrap();
    /// let def = StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:8081"));
    /// let preview = cp.preview_stage_definition(&b.id, Stage::TEST, def).await.unwrap();
    /// assert!(preview.report.is_empty());
    /// // Nothing was defined.
    /// assert!(cp.stage_definition(&b.id, &Stage::TEST).await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn preview_stage_definition(
        &self,
        id: &BackendId,
        stage: Stage,
        definition: StageDefinition,
    ) -> Result<DefinitionChange> {
        let state = self.state.lock().await;
        plan_set(&state, id, stage, definition).map(|(_, change)| change)
    }

    /// A backend's definition in a stage, if it has one.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend.
    pub async fn stage_definition(
        &self,
        id: &BackendId,
        stage: &Stage,
    ) -> Result<Option<StageDefinition>> {
        let state = self.state.lock().await;
        Ok(state.backend(id)?.stages.get(stage).cloned())
    }

    /// Deletes a backend's definition in a stage, unpublishing (atomically) every API published
    /// in that stage that uses it; other stages are untouched.
    ///
    /// [`preview_delete_stage_definition`](Self::preview_delete_stage_definition) answers the
    /// same report without changing anything.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend or a stage without a definition.
    pub async fn delete_stage_definition(
        &self,
        id: &BackendId,
        stage: &Stage,
    ) -> Result<Vec<ApiReport>> {
        let mut state = self.state.lock().await;
        let (writes, report) = plan_delete(&state, id, stage)?;
        self.commit(&mut state, writes, HashMap::new()).await?;
        Ok(report)
    }

    /// The dry run of [`delete_stage_definition`](Self::delete_stage_definition): the same
    /// checks and the same report (every API it would unpublish), with nothing committed.
    ///
    /// # Errors
    ///
    /// The same as [`delete_stage_definition`](Self::delete_stage_definition).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::{ControlPlane, NewBackend};
    /// use stagegate::model::{BackendKind, HttpDefinition, Stage, StageDefinition};
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let b = cp.create_backend(NewBackend::new("echo", BackendKind::Http)).await.unwrap();
    /// let def = StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:8081"));
    /// cp.set_stage_definition(&b.id, Stage::TEST, def).await.unwrap();
    /// let report = cp.preview_delete_stage_definition(&b.id, &Stage::TEST).await.unwrap();
    /// assert!(report.is_empty());
    /// // Still defined.
    /// assert!(cp.stage_definition(&b.id, &Stage::TEST).await.unwrap().is_some());
    /// # });
    /// ```
    pub async fn preview_delete_stage_definition(
        &self,
        id: &BackendId,
        stage: &Stage,
    ) -> Result<Vec<ApiReport>> {
        let state = self.state.lock().await;
        plan_delete(&state, id, stage).map(|(_, report)| report)
    }

    /// The APIs that use a backend: the drafts when `stage` is none, else the snapshots
    /// published in that stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend.
    pub async fn apis_using_backend(
        &self,
        id: &BackendId,
        stage: Option<&Stage>,
    ) -> Result<Vec<ApiDefinition>> {
        let state = self.state.lock().await;
        state.backend(id)?;
        let mut v: Vec<ApiDefinition> = match stage {
            None => state
                .apis
                .values()
                .filter(|a| &a.value.backend.backend_id == id)
                .map(|a| a.value.to_definition())
                .collect(),
            Some(s) => state
                .published_using(id, s)
                .map(|l| l.deployment.snapshot.clone())
                .collect(),
        };
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
}

/// The writes that put `definition` in `stage` of backend `id`, and the report they make: one
/// plan for the change and its dry run, so both always report the same APIs.
fn plan_set(
    state: &super::State,
    id: &BackendId,
    stage: Stage,
    definition: StageDefinition,
) -> Result<(Vec<crate::store::Write>, DefinitionChange)> {
    definition.validate()?;
    let mut b = state.backend(id)?.clone();
    if !b.kind.accepts(definition.kind()) {
        return Err(ValidationError::InvalidField {
            field: "type".into(),
            reason: format!(
                "a {} backend cannot hold a {} definition",
                b.kind,
                definition.kind()
            ),
        }
        .into());
    }
    if let StageDefinition::Vpc(v) = &definition {
        state.vpc_access(&v.vpc_access_id)?;
    }
    let mut writes = Vec::new();
    let mut report = Vec::new();
    for live in state.published_using(id, &stage) {
        let api = &live.deployment.snapshot;
        let (result, error) = match state.compile_route(
            &live.deployment,
            &stage,
            Some(&definition),
            None,
            &mut Targets::default(),
        ) {
            Ok(_) => (ReportResult::Republished, None),
            Err(e) => {
                writes.push(delete(state, Key::publication(&api.id, &stage)));
                (ReportResult::Failed, Some(e.to_string()))
            }
        };
        report.push(ApiReport::new(api, &stage, result, error));
    }
    b.stages.insert(stage, definition.clone());
    b.modified_at = Timestamp::now();
    writes.insert(0, put(state, Entity::Backend(b)));
    Ok((writes, DefinitionChange { definition, report }))
}

/// The writes that delete backend `id`'s definition in `stage` and unpublish its APIs there,
/// and the report they make (shared by the change and its dry run).
fn plan_delete(
    state: &super::State,
    id: &BackendId,
    stage: &Stage,
) -> Result<(Vec<crate::store::Write>, Vec<ApiReport>)> {
    let mut b = state.backend(id)?.clone();
    if b.stages.remove(stage).is_none() {
        return Err(ControlError::not_found(
            "stage definition",
            format!("{id}/{stage}"),
        ));
    }
    b.modified_at = Timestamp::now();
    let mut writes = vec![put(state, Entity::Backend(b))];
    let mut report = Vec::new();
    for live in state.published_using(id, stage) {
        let api = &live.deployment.snapshot;
        writes.push(delete(state, Key::publication(&api.id, stage)));
        report.push(ApiReport::new(api, stage, ReportResult::Unpublished, None));
    }
    Ok((writes, report))
}
