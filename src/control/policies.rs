//! Traffic policies (throttling, IP control, CORS, backend signature) and their bindings to
//! APIs per stage.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::state::State;
use super::{ControlError, ControlPlane, Result, delete, put};
use crate::model::{ApiId, PolicyId, Stage, ValidationError};
use crate::policy::{Policy, PolicyBinding, PolicySpec, PolicyType};
use crate::store::{Entity, Key, Write};

/// What to create a policy with, or the whole new settings of one.
///
/// Serialized flat, as the admin API takes it: `{"name", "type", ...the kind's fields}`.
///
/// # Examples
///
/// ```
/// use stagegate::control::NewPolicy;
/// use stagegate::policy::{PolicySpec, Throttling, ThrottleUnit};
/// let p = NewPolicy { name: "perSecond".into(), spec: PolicySpec::Throttling(Throttling::new(ThrottleUnit::Second, 100)) };
/// assert_eq!(serde_json::to_value(&p).unwrap()["unit"], "SECOND");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPolicy {
    /// The name: 4 to 50 letters, digits or `_`, starting with a letter; unique.
    pub name: String,
    /// The kind and its settings.
    #[serde(flatten)]
    pub spec: PolicySpec,
}

/// The deletes of every binding of `api` (the cascade of deleting an API).
pub(super) fn delete_bindings_of_api<'s>(
    state: &'s State,
    api: &'s ApiId,
) -> impl Iterator<Item = Write> + 's {
    state
        .bindings
        .keys()
        .filter(move |(a, _, _)| a == api)
        .map(|(a, s, p)| delete(state, Key::policy_binding(a, s, p)))
}

/// Checks what policies and bindings refer to: apps named in policies, the policy and API of
/// every binding, and at most one policy of each type per API and stage. Import's check.
pub(super) fn check_policy_references(state: &State) -> std::result::Result<(), String> {
    for p in state.policies.values() {
        for (field, app) in p.value.spec.named_apps() {
            if !state.apps.contains_key(app) {
                return Err(format!(
                    "policy `{}`: {field} names unknown app `{app}`",
                    p.value.name
                ));
            }
        }
    }
    let mut seen: HashMap<(&ApiId, &Stage, PolicyType), &PolicyId> = HashMap::new();
    for (api, stage, policy) in state.bindings.keys() {
        let Some(p) = state.policies.get(policy) else {
            return Err(format!("a binding names unknown policy `{policy}`"));
        };
        if !state.apis.contains_key(api) {
            return Err(format!("a binding names unknown api `{api}`"));
        }
        let ty = p.value.spec.policy_type();
        if let Some(other) = seen.insert((api, stage, ty), policy) {
            return Err(format!(
                "api `{api}` has two {} policies in {stage} (`{other}` and `{policy}`)",
                ty.as_str()
            ));
        }
    }
    Ok(())
}

fn check_names(state: &State, p: &Policy) -> Result<()> {
    p.validate()?;
    if state
        .policies
        .values()
        .any(|o| o.value.id != p.id && o.value.name == p.name)
    {
        return Err(ControlError::AlreadyExists {
            what: "policy",
            name: p.name.clone(),
        });
    }
    for (field, app) in p.spec.named_apps() {
        if !state.apps.contains_key(app) {
            return Err(
                ValidationError::field(field, format!("app `{app}` does not exist")).into(),
            );
        }
    }
    Ok(())
}

/// The bindings of a policy, as `api/stage` text for an error.
fn bindings_of(state: &State, id: &PolicyId) -> Vec<String> {
    let mut v: Vec<String> = state
        .bindings
        .keys()
        .filter(|(_, _, p)| p == id)
        .map(|(a, s, _)| format!("api `{a}` in {s}"))
        .collect();
    v.sort();
    v
}

impl ControlPlane {
    /// Creates a policy.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`] naming the field (an app named in it must exist),
    /// [`ControlError::AlreadyExists`] (the name is taken).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::control::NewPolicy;
    /// use stagegate::policy::{Cors, PolicySpec};
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let p = cp.create_policy(NewPolicy { name: "webApp".into(), spec: PolicySpec::Cors(Cors::new(["https://app.example.com"])) }).await.unwrap();
    /// assert_eq!(cp.policy(&p.id).await.unwrap().name, "webApp");
    /// # });
    /// ```
    pub async fn create_policy(&self, spec: NewPolicy) -> Result<Policy> {
        let p = Policy {
            id: PolicyId::generate(),
            name: spec.name,
            spec: spec.spec,
        };
        let mut state = self.state.lock().await;
        check_names(&state, &p)?;
        let w = put(&state, Entity::Policy(p.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(p)
    }

    /// Replaces a policy's name and settings; every API it is bound to sees the change on its
    /// next request. The type cannot change.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`],
    /// [`ControlError::Refused`] (a change of type).
    pub async fn update_policy(&self, id: &PolicyId, spec: NewPolicy) -> Result<Policy> {
        let mut state = self.state.lock().await;
        let old = state.get::<Policy>(id)?;
        if old.spec.policy_type() != spec.spec.policy_type() {
            return Err(ControlError::Refused(format!(
                "the type of a policy cannot be changed (`{id}` is {}); create a new policy instead",
                old.spec.policy_type().as_str()
            )));
        }
        let p = Policy {
            id: id.clone(),
            name: spec.name,
            spec: spec.spec,
        };
        check_names(&state, &p)?;
        let w = put(&state, Entity::Policy(p.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(p)
    }

    /// Deletes a policy that is bound nowhere.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`] naming every binding (unbind first).
    pub async fn delete_policy(&self, id: &PolicyId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.get::<Policy>(id)?;
        let bound = bindings_of(&state, id);
        if !bound.is_empty() {
            return Err(ControlError::in_use(
                "policy",
                id,
                format!("its bindings to {} (unbind first)", bound.join(", ")),
            ));
        }
        let w = delete(&state, Key::policy(id));
        self.commit_one(&mut state, w).await
    }

    /// One policy.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn policy(&self, id: &PolicyId) -> Result<Policy> {
        self.state.lock().await.get::<Policy>(id).cloned()
    }

    /// Every policy, by name.
    pub async fn policies(&self) -> Vec<Policy> {
        self.state.lock().await.by_name(|_: &Policy| true)
    }

    /// Binds a policy to an API in a stage; the next request sees it. The API need not be
    /// published yet.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (API or policy), [`ControlError::AlreadyExists`] (this
    /// binding), [`ControlError::Refused`] (another policy of the same type is bound to the
    /// API in the stage).
    pub async fn bind_policy(
        &self,
        api: &ApiId,
        policy: &PolicyId,
        stage: Stage,
    ) -> Result<PolicyBinding> {
        let mut state = self.state.lock().await;
        state.api(api)?;
        let ty = state.get::<Policy>(policy)?.spec.policy_type();
        if state
            .bindings
            .contains_key(&(api.clone(), stage.clone(), policy.clone()))
        {
            return Err(ControlError::AlreadyExists {
                what: "policy binding",
                name: format!("{policy} on {api} in {stage}"),
            });
        }
        if let Some((_, _, other)) = state.bindings.keys().find(|(a, s, p)| {
            a == api
                && *s == stage
                && state
                    .policies
                    .get(p)
                    .is_some_and(|o| o.value.spec.policy_type() == ty)
        }) {
            return Err(ControlError::Refused(format!(
                "api `{api}` already has {} policy `{other}` bound in {stage}; unbind it first",
                ty.as_str()
            )));
        }
        let b = PolicyBinding {
            policy_id: policy.clone(),
            api_id: api.clone(),
            stage,
        };
        let w = put(&state, Entity::PolicyBinding(b.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(b)
    }

    /// Unbinds a policy from an API in a stage; the next request no longer sees it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] when the policy is not bound there.
    pub async fn unbind_policy(&self, api: &ApiId, policy: &PolicyId, stage: &Stage) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state
            .bindings
            .contains_key(&(api.clone(), stage.clone(), policy.clone()))
        {
            return Err(ControlError::not_found(
                "policy binding",
                format!("{policy} on {api} in {stage}"),
            ));
        }
        let w = delete(&state, Key::policy_binding(api, stage, policy));
        self.commit_one(&mut state, w).await
    }

    /// The bindings, of one API or all, sorted by API, stage and policy.
    pub async fn policy_bindings(&self, api: Option<&ApiId>) -> Vec<PolicyBinding> {
        let state = self.state.lock().await;
        let mut v: Vec<PolicyBinding> = state
            .bindings
            .values()
            .filter(|b| api.is_none_or(|a| &b.value.api_id == a))
            .map(|b| b.value.clone())
            .collect();
        v.sort_by(|a, b| {
            (&a.api_id, &a.stage, &a.policy_id).cmp(&(&b.api_id, &b.stage, &b.policy_id))
        });
        v
    }
}
