//! API groups: the name, base path and domains the APIs of a group share.

use serde::{Deserialize, Serialize};

use super::state::State;
use super::{ControlError, ControlPlane, Result, delete, put};
use crate::model::{Group, GroupId};
use crate::routing::Snapshot;
use crate::store::{Entity, Key};

/// What to create a group with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Base path in front of every API path.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Host names bound to the group (none: any host).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Pass the AppCode credential on to backends (default `false`: stripped); see
    /// [`Group::pass_appcode_to_backend`].
    #[serde(default)]
    pub pass_appcode_to_backend: bool,
}

/// Checks that the published routes of `group`, with its new domains and base path, collide
/// with no route of another group that can then receive the same requests.
fn check_moved_group(state: &State, live: &Snapshot, group: &Group) -> Result<()> {
    for ((_, stage), table) in live.tables.iter().filter(|((g, _), _)| *g == group.id) {
        for r in table.routes() {
            let api = r.api();
            let template = api.request.path.with_base(group.base_path.as_deref())?;
            state.check_cross_group(live, group, &api.request.method, &template, stage)?;
        }
    }
    Ok(())
}

impl ControlPlane {
    /// Creates a group.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn create_group(&self, spec: NewGroup) -> Result<Group> {
        let mut g = Group::new(spec.name)?;
        g.description = spec.description;
        g.base_path = spec.base_path;
        g.domains = spec.domains;
        g.pass_appcode_to_backend = spec.pass_appcode_to_backend;
        g.validate()?;
        let mut state = self.state.lock().await;
        state.check_name_free::<Group>(&g.name, None)?;
        let w = put(&state, Entity::Group(g.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(g)
    }

    /// Replaces a group's name, description, base path and domains. Routes of its published
    /// APIs follow at once. The certificates of domains it no longer lists are deleted in the
    /// same commit.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`],
    /// [`ControlError::RouteConflict`] when the new base path or domains make its published
    /// routes collide with those of another group that can receive the same requests.
    pub async fn update_group(&self, id: &GroupId, spec: NewGroup) -> Result<Group> {
        let mut state = self.state.lock().await;
        let old = state.group(id)?.clone();
        let g = Group {
            name: spec.name,
            description: spec.description,
            base_path: spec.base_path,
            domains: spec.domains,
            pass_appcode_to_backend: spec.pass_appcode_to_backend,
            ..old
        };
        g.validate()?;
        state.check_name_free::<Group>(&g.name, Some(id))?;
        if old.domains != g.domains || old.base_path != g.base_path {
            check_moved_group(&state, &self.live.load_full(), &g)?;
        }
        let mut writes = vec![put(&state, Entity::Group(g.clone()))];
        writes.extend(state.dropped_certificates(id, Some(&g.domains)));
        self.commit(&mut state, writes, std::collections::HashMap::new())
            .await?;
        Ok(g)
    }

    /// Deletes a group, with its domains' certificates; refused while it holds APIs.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_group(&self, id: &GroupId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.group(id)?;
        let mut users: Vec<String> = state
            .apis
            .values()
            .filter(|a| &a.value.group_id == id)
            .map(|a| format!("API {}", a.value.name))
            .collect();
        let published = state
            .published_in
            .iter()
            .any(|((g, _), s)| g == id && !s.is_empty());
        if users.is_empty() && published {
            users.push("APIs still published in it (unpublish them first)".to_owned());
        }
        if !users.is_empty() {
            return Err(ControlError::in_use("group", id, users.join(", ")));
        }
        let mut writes = state.dropped_certificates(id, None);
        writes.push(delete(&state, Key::group(id)));
        self.commit(&mut state, writes, std::collections::HashMap::new())
            .await
    }

    /// One group.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn group(&self, id: &GroupId) -> Result<Group> {
        self.state.lock().await.group(id).cloned()
    }

    /// Every group, by name.
    pub async fn groups(&self) -> Vec<Group> {
        self.state.lock().await.by_name(|_: &Group| true)
    }
}
