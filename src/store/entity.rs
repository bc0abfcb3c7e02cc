//! The records a [`Store`](super::Store) keeps.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{
    ApiDefinition, ApiId, App, AppId, Authorization, BackendId, BackendService, DomainCertificate,
    Group, GroupId, PolicyId, Stage, VpcAccess, VpcAccessId,
};
use crate::policy::{Policy, PolicyBinding};

/// A published version of an API in one stage: a snapshot of the draft.
///
/// # Examples
///
/// ```
/// use stagegate::store::Deployment;
/// assert_eq!(Deployment::format_version(jiff::Timestamp::from_millisecond(1_467_715_552_292).unwrap()), "20160705104552292");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The API.
    pub api_id: ApiId,
    /// The stage.
    pub stage: Stage,
    /// The version, `yyyyMMddHHmmssSSS` (UTC), increasing per API and stage.
    pub version: String,
    /// Free text given at publish time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was published.
    pub deployed_at: Timestamp,
    /// The API as it was published.
    pub snapshot: ApiDefinition,
}

impl Deployment {
    /// Formats a timestamp as a version string (`yyyyMMddHHmmssSSS`, UTC).
    #[must_use]
    pub fn format_version(t: Timestamp) -> String {
        t.strftime("%Y%m%d%H%M%S%3f").to_string()
    }
}

/// Which deployment of an API is live in a stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::{ApiId, Stage};
/// use stagegate::store::Publication;
/// let p = Publication { api_id: ApiId::generate(), stage: Stage::TEST, version: "20160705104552292".into() };
/// assert_eq!(p.stage, Stage::TEST);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    /// The API.
    pub api_id: ApiId,
    /// The stage.
    pub stage: Stage,
    /// The live deployment's version.
    pub version: String,
}

/// The kinds of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// [`BackendService`].
    Backend,
    /// [`Group`].
    Group,
    /// [`ApiDefinition`] (the draft).
    Api,
    /// [`Deployment`].
    Deployment,
    /// [`Publication`].
    Publication,
    /// [`App`].
    App,
    /// [`Authorization`].
    Authorization,
    /// [`VpcAccess`].
    VpcAccess,
    /// [`Policy`].
    Policy,
    /// [`PolicyBinding`].
    PolicyBinding,
    /// [`DomainCertificate`].
    DomainCertificate,
}

impl EntityKind {
    /// The name used in keys.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Group => "group",
            Self::Api => "api",
            Self::Deployment => "deployment",
            Self::Publication => "publication",
            Self::App => "app",
            Self::Authorization => "authorization",
            Self::VpcAccess => "vpc_access",
            Self::Policy => "policy",
            Self::PolicyBinding => "policy_binding",
            Self::DomainCertificate => "domain_certificate",
        }
    }
}

/// The key of a record: its kind and an id unique within the kind.
///
/// # Examples
///
/// ```
/// use stagegate::model::GroupId;
/// use stagegate::store::{EntityKind, Key};
/// let id = GroupId::generate();
/// let k = Key::group(&id);
/// assert_eq!(k.kind, EntityKind::Group);
/// assert_eq!(k.id, id.as_str());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// The kind.
    pub kind: EntityKind,
    /// The id within the kind.
    pub id: String,
}

impl Key {
    /// A backend's key.
    #[must_use]
    pub fn backend(id: &BackendId) -> Self {
        Self {
            kind: EntityKind::Backend,
            id: id.to_string(),
        }
    }
    /// A group's key.
    #[must_use]
    pub fn group(id: &GroupId) -> Self {
        Self {
            kind: EntityKind::Group,
            id: id.to_string(),
        }
    }
    /// An API draft's key.
    #[must_use]
    pub fn api(id: &ApiId) -> Self {
        Self {
            kind: EntityKind::Api,
            id: id.to_string(),
        }
    }
    /// A deployment's key.
    #[must_use]
    pub fn deployment(api: &ApiId, stage: &Stage, version: &str) -> Self {
        Self {
            kind: EntityKind::Deployment,
            id: format!("{api}:{stage}:{version}"),
        }
    }
    /// A publication's key.
    #[must_use]
    pub fn publication(api: &ApiId, stage: &Stage) -> Self {
        Self {
            kind: EntityKind::Publication,
            id: format!("{api}:{stage}"),
        }
    }
    /// An app's key.
    #[must_use]
    pub fn app(id: &AppId) -> Self {
        Self {
            kind: EntityKind::App,
            id: id.to_string(),
        }
    }
    /// An authorization's key.
    #[must_use]
    pub fn authorization(app: &AppId, api: &ApiId, stage: &Stage) -> Self {
        Self {
            kind: EntityKind::Authorization,
            id: format!("{app}:{api}:{stage}"),
        }
    }
    /// A VPC access authorization's key.
    #[must_use]
    pub fn vpc_access(id: &VpcAccessId) -> Self {
        Self {
            kind: EntityKind::VpcAccess,
            id: id.to_string(),
        }
    }
}

impl Key {
    /// A policy's key.
    #[must_use]
    pub fn policy(id: &PolicyId) -> Self {
        Self {
            kind: EntityKind::Policy,
            id: id.to_string(),
        }
    }
    /// A policy binding's key: `api:stage:policy`.
    #[must_use]
    pub fn policy_binding(api: &ApiId, stage: &Stage, policy: &PolicyId) -> Self {
        Self {
            kind: EntityKind::PolicyBinding,
            id: format!("{api}:{stage}:{policy}"),
        }
    }
}

impl Key {
    /// A group domain's certificate's key: `group:domain`.
    #[must_use]
    pub fn domain_certificate(group: &GroupId, domain: &str) -> Self {
        Self {
            kind: EntityKind::DomainCertificate,
            id: format!("{group}:{domain}"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id)
    }
}

/// A record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Entity {
    /// A backend service with its stage definitions.
    Backend(BackendService),
    /// A group.
    Group(Group),
    /// An API draft.
    Api(ApiDefinition),
    /// A deployment.
    Deployment(Deployment),
    /// A publication.
    Publication(Publication),
    /// An app.
    App(App),
    /// An authorization.
    Authorization(Authorization),
    /// A VPC access authorization.
    VpcAccess(VpcAccess),
    /// A traffic policy.
    Policy(Policy),
    /// A policy bound to an API in a stage.
    PolicyBinding(PolicyBinding),
    /// A group domain's TLS certificate and private key.
    DomainCertificate(DomainCertificate),
}

impl Entity {
    /// The record's key.
    #[must_use]
    pub fn key(&self) -> Key {
        match self {
            Self::Backend(b) => Key::backend(&b.id),
            Self::Group(g) => Key::group(&g.id),
            Self::Api(a) => Key::api(&a.id),
            Self::Deployment(d) => Key::deployment(&d.api_id, &d.stage, &d.version),
            Self::Publication(p) => Key::publication(&p.api_id, &p.stage),
            Self::App(a) => Key::app(&a.id),
            Self::Authorization(a) => Key::authorization(&a.app_id, &a.api_id, &a.stage),
            Self::VpcAccess(v) => Key::vpc_access(&v.id),
            Self::Policy(p) => Key::policy(&p.id),
            Self::PolicyBinding(b) => Key::policy_binding(&b.api_id, &b.stage, &b.policy_id),
            Self::DomainCertificate(c) => Key::domain_certificate(&c.group_id, &c.domain),
        }
    }

    /// Whether `key`, a [`Key`] as displayed (`kind/id`), is this record's key: what
    /// `self.key().to_string() == key` says, without building either (a store checks this for
    /// every record it reads).
    #[cfg(any(feature = "redb", test))]
    pub(crate) fn has_key(&self, key: &str) -> bool {
        let mut matcher = KeyMatcher { rest: key };
        self.write_key(&mut matcher).is_ok() && matcher.rest.is_empty()
    }

    /// Writes the record's key as [`Key`]'s `Display` does.
    #[cfg(any(feature = "redb", test))]
    fn write_key(&self, w: &mut impl fmt::Write) -> fmt::Result {
        let kind = match self {
            Self::Backend(_) => EntityKind::Backend,
            Self::Group(_) => EntityKind::Group,
            Self::Api(_) => EntityKind::Api,
            Self::Deployment(_) => EntityKind::Deployment,
            Self::Publication(_) => EntityKind::Publication,
            Self::App(_) => EntityKind::App,
            Self::Authorization(_) => EntityKind::Authorization,
            Self::VpcAccess(_) => EntityKind::VpcAccess,
            Self::Policy(_) => EntityKind::Policy,
            Self::PolicyBinding(_) => EntityKind::PolicyBinding,
            Self::DomainCertificate(_) => EntityKind::DomainCertificate,
        };
        w.write_str(kind.as_str())?;
        w.write_char('/')?;
        match self {
            Self::Backend(b) => write!(w, "{}", b.id),
            Self::Group(g) => write!(w, "{}", g.id),
            Self::Api(a) => write!(w, "{}", a.id),
            Self::Deployment(d) => write!(w, "{}:{}:{}", d.api_id, d.stage, d.version),
            Self::Publication(p) => write!(w, "{}:{}", p.api_id, p.stage),
            Self::App(a) => write!(w, "{}", a.id),
            Self::Authorization(a) => write!(w, "{}:{}:{}", a.app_id, a.api_id, a.stage),
            Self::VpcAccess(v) => write!(w, "{}", v.id),
            Self::Policy(p) => write!(w, "{}", p.id),
            Self::PolicyBinding(b) => write!(w, "{}:{}:{}", b.api_id, b.stage, b.policy_id),
            Self::DomainCertificate(c) => write!(w, "{}:{}", c.group_id, c.domain),
        }
    }
}

/// A `fmt::Write` that consumes an expected string and fails at the first difference.
#[cfg(any(feature = "redb", test))]
struct KeyMatcher<'a> {
    rest: &'a str,
}

#[cfg(any(feature = "redb", test))]
impl fmt::Write for KeyMatcher<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.rest = self.rest.strip_prefix(s).ok_or(fmt::Error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_key_agrees_with_key() {
        let group = Group::new("shop_api").unwrap();
        let api = ApiDefinition::new(
            group.id.clone(),
            "getUser",
            "GET",
            "/users",
            BackendId::generate(),
        )
        .unwrap();
        let entities = [
            Entity::Group(group),
            Entity::Deployment(Deployment {
                api_id: api.id.clone(),
                stage: Stage::PRE,
                version: "20260101000000000".into(),
                description: None,
                deployed_at: Timestamp::UNIX_EPOCH,
                snapshot: api.clone(),
            }),
            Entity::Publication(Publication {
                api_id: api.id.clone(),
                stage: Stage::TEST,
                version: "20260101000000000".into(),
            }),
            Entity::Api(api),
        ];
        for e in &entities {
            let key = e.key().to_string();
            assert!(e.has_key(&key), "{key}");
            assert!(!e.has_key(&key[..key.len() - 1]), "{key} shortened");
            assert!(!e.has_key(&format!("{key}0")), "{key} lengthened");
            for other in &entities {
                if other != e {
                    assert!(!other.has_key(&key), "{key}");
                }
            }
        }
        assert!(!entities[0].has_key(""));
    }
}
