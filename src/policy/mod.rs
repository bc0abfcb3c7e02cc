//! Traffic policies: named objects bound to APIs per stage (as in Alibaba Cloud API Gateway's "throttling", "IP access control" and "backend signature" policies).
//!
//! Four kinds, at most one of each bound to an API in a stage:
//!
//! | type | what it does | refusal |
//! |---|---|---|
//! | `THROTTLING` ([`Throttling`]) | counts requests per fixed window (`SECOND`, `MINUTE`, `HOUR`, `DAY`) for the API, per app, with special values for named apps | 429 `T429PA` (API), `T429PR` (app default), `T429SR` (an app's special value), with `Retry-After` and `RateLimit-*` |
//! | `IP_CONTROL` ([`IpControl`]) | `ALLOW` or `REFUSE` lists of IPv4/IPv6 CIDRs; `ALLOW` entries may apply to one app only | 403 `A403IP` |
//! | `CORS` ([`Cors`]) | answers the browser's `OPTIONS` preflight for a published path and adds the CORS headers to every response of the API, error responses included | — |
//! | `BACKEND_SIGNATURE` ([`BackendSignature`]) | signs what the gateway sends to an HTTP backend (`X-Ca-Proxy-Signature`); backends in Rust verify with [`VerifyBackendSignatureLayer`] | — |
//!
//! This module is pure (no I/O): the policy records, their validation, the compiled forms
//! the data plane reads from the live [`Snapshot`](crate::routing::Snapshot), and the
//! [`RateCounter`] trait with its single-node [`LocalCounter`] (and, with feature `redis`,
//! `RedisCounter`, which holds a limit across a cluster). The control plane stores them
//! ([`ControlPlane::create_policy`](crate::ControlPlane::create_policy),
//! [`bind_policy`](crate::ControlPlane::bind_policy)); a binding takes effect on the next
//! request like every other change.
//!
//! # Examples
//!
//! ```
//! use stagegate::policy::{Policy, PolicySpec, Throttling, ThrottleUnit};
//! let p = Policy::new("perMinute", PolicySpec::Throttling(Throttling::new(ThrottleUnit::Minute, 600))).unwrap();
//! assert_eq!(p.spec.policy_type().as_str(), "THROTTLING");
//! let json = serde_json::to_value(&p).unwrap();
//! assert_eq!(json["type"], "THROTTLING");
//! assert_eq!(json["api_default"], 600);
//! ```

mod backend_sign;
mod bound;
mod cors;
mod error;
mod ip;
#[cfg(feature = "redis")]
mod lease;
mod parse;
#[cfg(feature = "redis")]
mod redis_counter;
mod throttle;
mod verify;

use serde::{Deserialize, Serialize};

pub use crate::model::PolicyId;
use crate::model::{ApiId, Stage, ValidationError};
pub use backend_sign::{
    BackendSignature, SignedRequest, X_CA_PROXY_SIGNATURE, X_CA_PROXY_SIGNATURE_HEADERS,
    X_CA_PROXY_SIGNATURE_SECRET_KEY, backend_string_to_sign, sign_backend_request,
};
pub(crate) use bound::{BoundPolicies, PolicyIndex};
pub use cors::{
    Cors, DEFAULT_ALLOW_HEADERS, DEFAULT_ALLOW_METHODS, DEFAULT_EXPOSE_HEADERS, MAX_AGE_LIMIT,
};
pub(crate) use cors::{
    default_expose as default_cors_expose, default_headers as default_cors_headers,
    default_max_age as default_cors_max_age, default_methods as default_cors_methods,
};
pub use error::PolicyRefusal;
pub use ip::{IpControl, IpMode, IpRule, MAX_RULES};
pub use parse::parse_spec;
#[cfg(feature = "redis")]
pub use redis_counter::{RedisCounter, RedisCounterBuilder, RedisCounterError, RedisCounterStats};
pub use throttle::{
    Acquire, AcquireFuture, Acquired, CounterKey, LocalCounter, MAX_LIMIT, RateCounter, SpecialApp,
    ThrottleUnit, Throttling, Window,
};
pub use verify::{VerifyBackendSignature, VerifyBackendSignatureLayer};

/// The four kinds of policy.
///
/// # Examples
///
/// ```
/// use stagegate::policy::PolicyType;
/// assert_eq!(PolicyType::IpControl.as_str(), "IP_CONTROL");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyType {
    /// [`Throttling`].
    Throttling,
    /// [`IpControl`].
    IpControl,
    /// [`Cors`].
    Cors,
    /// [`BackendSignature`].
    BackendSignature,
}

impl PolicyType {
    /// The wire name (`THROTTLING`, `IP_CONTROL`, `CORS`, `BACKEND_SIGNATURE`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttling => "THROTTLING",
            Self::IpControl => "IP_CONTROL",
            Self::Cors => "CORS",
            Self::BackendSignature => "BACKEND_SIGNATURE",
        }
    }
}

/// What a policy does: one of the four kinds, with its settings.
///
/// # Examples
///
/// ```
/// use stagegate::policy::{PolicySpec, PolicyType, Cors};
/// let spec = PolicySpec::Cors(Cors::new(["https://app.example.com"]));
/// assert_eq!(spec.policy_type(), PolicyType::Cors);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicySpec {
    /// Throttling.
    Throttling(Throttling),
    /// IP access control.
    IpControl(IpControl),
    /// CORS.
    Cors(Cors),
    /// Gateway-to-backend signature.
    BackendSignature(BackendSignature),
}

impl PolicySpec {
    /// The kind.
    #[must_use]
    pub fn policy_type(&self) -> PolicyType {
        match self {
            Self::Throttling(_) => PolicyType::Throttling,
            Self::IpControl(_) => PolicyType::IpControl,
            Self::Cors(_) => PolicyType::Cors,
            Self::BackendSignature(_) => PolicyType::BackendSignature,
        }
    }

    /// Checks the settings on their own (apps named in them are checked by the control plane).
    ///
    /// # Errors
    ///
    /// [`ValidationError`] naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Throttling(t) => t.validate(),
            Self::IpControl(i) => i.validate(),
            Self::Cors(c) => c.validate(),
            Self::BackendSignature(b) => b.validate(),
        }
    }

    /// The apps the settings name (throttling's special values, IP control's app rules).
    pub fn named_apps(&self) -> Vec<(String, &crate::model::AppId)> {
        match self {
            Self::Throttling(t) => t
                .special_apps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("special_apps[{i}].app_id"), &s.app_id))
                .collect(),
            Self::IpControl(c) => c
                .rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((format!("rules[{i}].app_id"), r.app_id.as_ref()?)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A named policy.
///
/// Serialized flat: `{"id", "name", "type", ...the kind's fields}`.
///
/// # Examples
///
/// ```
/// use stagegate::policy::{Policy, PolicySpec, IpControl, IpMode, IpRule};
/// let rules = vec![IpRule::parse("10.0.0.0/8", None).unwrap()];
/// let p = Policy::new("officeOnly", PolicySpec::IpControl(IpControl { mode: IpMode::Allow, rules })).unwrap();
/// assert_eq!(p.name, "officeOnly");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The id.
    pub id: PolicyId,
    /// The name: 4 to 50 letters, digits or `_`, starting with a letter.
    pub name: String,
    /// The kind and its settings.
    #[serde(flatten)]
    pub spec: PolicySpec,
}

impl Policy {
    /// A new policy with a generated id.
    ///
    /// # Errors
    ///
    /// [`ValidationError`] naming the field.
    pub fn new(name: impl Into<String>, spec: PolicySpec) -> Result<Self, ValidationError> {
        let p = Self {
            id: PolicyId::generate(),
            name: name.into(),
            spec,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the name and the settings.
    ///
    /// # Errors
    ///
    /// [`ValidationError`] naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::model::validate_name("policy name", &self.name)?;
        self.spec.validate()
    }

    /// The policy as an admin read shows it: a backend signature's secret is left out.
    #[must_use]
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("secret");
        }
        v
    }
}

/// A policy bound to an API in a stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::{ApiId, PolicyId, Stage};
/// use stagegate::policy::PolicyBinding;
/// let b = PolicyBinding { policy_id: PolicyId::generate(), api_id: ApiId::generate(), stage: Stage::TEST };
/// assert_eq!(b.stage, Stage::TEST);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBinding {
    /// The policy.
    pub policy_id: PolicyId,
    /// The API.
    pub api_id: ApiId,
    /// The stage.
    pub stage: Stage,
}
