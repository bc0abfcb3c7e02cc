//! Planning the document's policies and the APIs' bindings to them.
//!
//! Order inside the commit: policies are created or changed among the puts, after the apps they
//! name (so a new app exists first, and an app that is deleted is deleted only after the
//! policies naming it changed); bindings are removed before any is added (so one of another
//! policy of the same type can take its place in the same commit); bindings and undeclared
//! policies are deleted late, bindings before policies (see `delete_rank`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{ObjectKind, PlanScope, Planner, Step, object};
use crate::control::config::{ConfigDocument, ConfigIssue};
use crate::model::{AppId, PolicyId, Secret, Stage};
use crate::policy::{
    BackendSignature, Cors, IpControl, IpRule, Policy, PolicySpec, PolicyType, SpecialApp,
    ThrottleUnit, Throttling,
};
use crate::store::{Entity, Key};

/// A policy of the document, before its apps are resolved.
struct Declared<'d> {
    name: &'d str,
    ty: PolicyType,
    /// Its place in the list of its type.
    index: usize,
    /// `policies.throttling[0]`.
    prefix: String,
}

impl Planner<'_> {
    /// The app `name` refers to after the plan, or an issue at `field`.
    fn app_named(&mut self, object: &str, field: &str, name: &str) -> Option<AppId> {
        let id = self.app_ids.get(name).cloned();
        if id.is_none() {
            self.issue(
                object,
                field,
                format!("no app named `{}`", crate::model::id::truncate(name)),
            );
        }
        id
    }

    /// Creates or changes the policies the document declares; records every policy's name.
    pub(super) fn policies(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let existing: HashMap<&str, &Policy> = state
            .policies
            .values()
            .map(|p| (p.value.name.as_str(), &p.value))
            .collect();
        let p = &doc.policies;
        let mut declared: Vec<Declared<'_>> = Vec::new();
        let kinds: [(&str, PolicyType, Vec<&str>); 4] = [
            (
                "throttling",
                PolicyType::Throttling,
                p.throttling.iter().map(|t| t.name.as_str()).collect(),
            ),
            (
                "ip_control",
                PolicyType::IpControl,
                p.ip_control.iter().map(|t| t.name.as_str()).collect(),
            ),
            (
                "cors",
                PolicyType::Cors,
                p.cors.iter().map(|t| t.name.as_str()).collect(),
            ),
            (
                "backend_signature",
                PolicyType::BackendSignature,
                p.backend_signature
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect(),
            ),
        ];
        for (list, ty, names) in kinds {
            for (i, name) in names.into_iter().enumerate() {
                declared.push(Declared {
                    name,
                    ty,
                    index: i,
                    prefix: format!("policies.{list}[{i}]"),
                });
            }
        }
        let mut seen: HashSet<&str> = HashSet::new();
        for d in &declared {
            let object = object(ObjectKind::Policy, d.name);
            let i = d.index;
            if !seen.insert(d.name) {
                self.issue(
                    &object,
                    &format!("{}.name", d.prefix),
                    "appears twice in the document (policy names are unique across every type)",
                );
                continue;
            }
            let old = existing.get(d.name).copied();
            let id = old.map_or_else(PolicyId::generate, |o| o.id.clone());
            self.policy_ids
                .insert(d.name.to_owned(), (id.clone(), d.ty));
            if let Some(o) = old
                && o.spec.policy_type() != d.ty
            {
                self.issue(
                    &object,
                    &format!("{}.name", d.prefix),
                    format!(
                        "is a {} policy and cannot become {}: a policy's type is fixed (give the new one another name)",
                        o.spec.policy_type().as_str(),
                        d.ty.as_str()
                    ),
                );
                continue;
            }
            let before = self.issues.len();
            let spec = match d.ty {
                PolicyType::Throttling => self.throttling(&object, &d.prefix, &p.throttling[i]),
                PolicyType::IpControl => self.ip_control(&object, &d.prefix, &p.ip_control[i]),
                PolicyType::Cors => {
                    let c = &p.cors[i];
                    Some(PolicySpec::Cors(Cors {
                        allow_origins: c.allow_origins.clone(),
                        allow_methods: c.allow_methods.clone(),
                        allow_headers: c.allow_headers.clone(),
                        expose_headers: c.expose_headers.clone(),
                        max_age_s: c.max_age_s,
                        allow_credentials: c.allow_credentials,
                    }))
                }
                PolicyType::BackendSignature => {
                    let b = &p.backend_signature[i];
                    let kept = old.and_then(|o| match &o.spec {
                        PolicySpec::BackendSignature(s) => Some(s.secret.clone()),
                        _ => None,
                    });
                    Some(PolicySpec::BackendSignature(BackendSignature {
                        key: b.key.clone(),
                        secret: b
                            .secret
                            .clone()
                            .or(kept)
                            .unwrap_or_else(generated_signature_secret),
                    }))
                }
            };
            let Some(spec) = spec else { continue };
            let policy = Policy {
                id,
                name: d.name.to_owned(),
                spec,
            };
            if let Err(e) = policy.validate() {
                let mut issue = ConfigIssue::invalid(&object, &d.prefix, &e);
                // the document names apps by name
                if let Some(f) = issue.field.strip_suffix(".app_id") {
                    issue.field = format!("{f}.app");
                }
                self.issues.push(issue);
            }
            if self.issues.len() > before {
                continue;
            }
            self.reconcile(ObjectKind::Policy, d.name, old, &policy, || {
                Entity::Policy(policy.clone())
            });
        }
        // the policies the document leaves out: kept by name, or deleted (after the bindings)
        let mut unnamed: Vec<(&str, &Policy)> = existing
            .into_iter()
            .filter(|(name, _)| !seen.contains(name))
            .collect();
        unnamed.sort_by_key(|(n, _)| *n);
        for (name, old) in unnamed {
            match self.scope {
                PlanScope::NamedOnly => {
                    self.policy_ids
                        .insert(name.to_owned(), (old.id.clone(), old.spec.policy_type()));
                }
                PlanScope::Whole => self.doomed_policies.push((name.to_owned(), old.id.clone())),
            }
        }
    }

    fn throttling(
        &mut self,
        object: &str,
        prefix: &str,
        t: &crate::control::config::ThrottlingSpec,
    ) -> Option<PolicySpec> {
        let unit = match ThrottleUnit::parse(&t.unit) {
            Ok(u) => Some(u),
            Err(e) => {
                self.issues.push(ConfigIssue::invalid(object, prefix, &e));
                None
            }
        };
        let mut special_apps = Vec::new();
        for (j, s) in t.special_apps.iter().enumerate() {
            if let Some(app_id) =
                self.app_named(object, &format!("{prefix}.special_apps[{j}].app"), &s.app)
            {
                special_apps.push(SpecialApp {
                    app_id,
                    limit: s.limit,
                });
            }
        }
        Some(PolicySpec::Throttling(Throttling {
            unit: unit?,
            api_default: t.api_default,
            app_default: t.app_default,
            special_apps,
        }))
    }

    fn ip_control(
        &mut self,
        object: &str,
        prefix: &str,
        c: &crate::control::config::IpControlSpec,
    ) -> Option<PolicySpec> {
        let mut rules = Vec::new();
        let mut ok = true;
        for (j, r) in c.rules.iter().enumerate() {
            let app_id = match &r.app {
                Some(name) => {
                    let id = self.app_named(object, &format!("{prefix}.rules[{j}].app"), name);
                    ok &= id.is_some();
                    id
                }
                None => None,
            };
            match IpRule::parse(&r.cidr, app_id) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    ok = false;
                    self.issues.push(ConfigIssue::invalid(
                        object,
                        &format!("{prefix}.rules[{j}]"),
                        &e,
                    ));
                }
            }
        }
        ok.then_some(PolicySpec::IpControl(IpControl {
            mode: c.mode,
            rules,
        }))
    }

    /// Binds and unbinds the policies the API specs list, per stage.
    pub(super) fn bindings(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let mut unbind: Vec<(String, Key)> = Vec::new();
        let mut bind: Vec<(String, Entity)> = Vec::new();
        for spec in &doc.apis {
            let label = format!("{}/{}", spec.group, spec.name);
            let Some(api) = self
                .apis
                .get(&(spec.group.clone(), spec.name.clone()))
                .cloned()
            else {
                continue;
            };
            if !self.named_apis.contains(&api) {
                continue;
            }
            let object = object(ObjectKind::Api, &label);
            // (stage, policy) the document wants
            // by stage and name, so that the steps read in a stable order
            let mut wanted: BTreeMap<(Stage, String), PolicyId> = BTreeMap::new();
            for (stage, names) in &spec.policies {
                let mut types: HashMap<PolicyType, &str> = HashMap::new();
                for (j, name) in names.iter().enumerate() {
                    let field = format!("policies.{stage}[{j}]");
                    let Some((id, ty)) = self.policy_ids.get(name).cloned() else {
                        self.issue(
                            &object,
                            &field,
                            format!("no policy named `{}`", crate::model::id::truncate(name)),
                        );
                        continue;
                    };
                    if let Some(other) = types.insert(ty, name) {
                        let reason = if other == name {
                            format!("`{name}` is listed twice")
                        } else {
                            format!(
                                "a second {} policy in {stage} (`{other}` and `{name}`): at most one of each type",
                                ty.as_str()
                            )
                        };
                        self.issue(&object, &field, reason);
                        continue;
                    }
                    wanted.insert((stage.clone(), name.clone()), id);
                }
            }
            let decided: BTreeSet<&Stage> = spec.policies.keys().collect();
            let mut current: Vec<(Stage, PolicyId)> = state
                .bindings
                .keys()
                .filter(|(a, s, _)| {
                    a == &api && (self.scope == PlanScope::Whole || decided.contains(s))
                })
                .map(|(_, s, p)| (s.clone(), p.clone()))
                .collect();
            current.sort();
            let kept: HashSet<(&Stage, &PolicyId)> =
                wanted.iter().map(|((s, _), p)| (s, p)).collect();
            let mut gone: Vec<(String, Key)> = Vec::new();
            for (stage, policy) in current {
                if kept.contains(&(&stage, &policy)) {
                    continue;
                }
                let name = state
                    .policies
                    .get(&policy)
                    .map_or_else(|| policy.to_string(), |p| p.value.name.clone());
                gone.push((
                    format!("{name} -> {label} in {stage}"),
                    Key::policy_binding(&api, &stage, &policy),
                ));
            }
            gone.sort_by(|a, b| a.0.cmp(&b.0));
            unbind.extend(gone);
            for ((stage, name), policy) in wanted {
                if state
                    .bindings
                    .contains_key(&(api.clone(), stage.clone(), policy.clone()))
                {
                    continue;
                }
                bind.push((
                    format!("{name} -> {label} in {stage}"),
                    Entity::PolicyBinding(crate::policy::PolicyBinding {
                        policy_id: policy,
                        api_id: api.clone(),
                        stage,
                    }),
                ));
            }
        }
        for (name, key) in unbind {
            self.delete(key, false);
            self.step(Step::Delete {
                kind: ObjectKind::PolicyBinding,
                name,
            });
        }
        for (name, entity) in bind {
            self.put(entity);
            self.step(Step::Create {
                kind: ObjectKind::PolicyBinding,
                name,
            });
        }
    }

    /// Deletes the policies the whole-scope document leaves out, with every binding of theirs
    /// (the bindings of APIs the document names are already decided by `bindings`).
    pub(super) fn undeclared_policies(&mut self) {
        let state = self.state;
        for (name, id) in std::mem::take(&mut self.doomed_policies) {
            let keys: Vec<Key> = state
                .bindings
                .keys()
                .filter(|(_, _, p)| p == &id)
                .map(|(a, s, p)| Key::policy_binding(a, s, p))
                .collect();
            for k in keys {
                self.delete(k, true);
            }
            self.delete(Key::policy(&id), true);
            self.step(Step::Delete {
                kind: ObjectKind::Policy,
                name,
            });
        }
    }
}

/// A secret for a new backend signature the document gives none for: 30 characters, a letter
/// first (the rules of [`BackendSignature::validate`]).
fn generated_signature_secret() -> Secret {
    let hex = crate::model::id::random_hex32();
    Secret::new(format!("s{}", &hex[..29]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ValidationError;

    #[test]
    fn a_generated_signature_secret_is_acceptable() {
        let b = BackendSignature {
            key: "DemoKey1".into(),
            secret: generated_signature_secret(),
        };
        assert!(b.validate().is_ok());
        assert_ne!(generated_signature_secret(), generated_signature_secret());
    }

    #[test]
    fn validation_errors_of_a_policy_name_their_place_in_the_document() {
        let e = ValidationError::field("special_apps[1].app_id", "listed twice");
        let mut i = ConfigIssue::invalid("policy `p`", "policies.throttling[0]", &e);
        if let Some(f) = i.field.strip_suffix(".app_id") {
            i.field = format!("{f}.app");
        }
        assert_eq!(i.field, "policies.throttling[0].special_apps[1].app");
    }
}
