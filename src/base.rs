//! What the data plane's folders share, kept low so that none of them imports another for it:
//! the authenticated [`Caller`], the boxed-future alias [`BoxFuture`] of every pluggable trait,
//! the request's [`Host`] and the [`Policy`] that refused a request. Imports nothing of the crate but [`model`](crate::model).
//!
//! Each item is re-exported where users found it before (`stagegate::Caller`,
//! `stagegate::layer::AuthMethod`, `stagegate::store::BoxFuture`, ...).

use std::future::Future;
use std::pin::Pin;

use http::HeaderValue;

use crate::model::AppId;

/// A boxed, `Send` future, as the [`Store`](crate::store::Store),
/// [`Authenticator`](crate::layer::Authenticator) and [`Dispatch`](crate::backend::Dispatch) methods
/// return.
///
/// # Examples
///
/// ```
/// use stagegate::store::BoxFuture;
/// fn answer<'a>() -> BoxFuture<'a, u32> {
///     Box::pin(async { 42 })
/// }
/// # let _ = answer();
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// No credential (ANONYMOUS APIs).
    Anonymous,
    /// An HMAC signature (`X-Ca-Signature`).
    Signature,
    /// An AppCode.
    AppCode,
    /// A verifier of the host application's own.
    Custom,
}

impl AuthMethod {
    /// A short name for logs and debug output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "ANONYMOUS",
            Self::Signature => "SIGNATURE",
            Self::AppCode => "APPCODE",
            Self::Custom => "CUSTOM",
        }
    }
}

/// The authenticated caller of a request.
///
/// # Examples
///
/// ```
/// use stagegate::{AuthMethod, Caller};
/// let c = Caller::anonymous();
/// assert_eq!(c.method, AuthMethod::Anonymous);
/// assert!(c.app_id.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// The app, for APP authentication.
    pub app_id: Option<AppId>,
    /// How it authenticated.
    pub method: AuthMethod,
}

impl Caller {
    /// An anonymous caller.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            app_id: None,
            method: AuthMethod::Anonymous,
        }
    }

    /// An app authenticated by `method`.
    #[must_use]
    pub fn app(app_id: AppId, method: AuthMethod) -> Self {
        Self {
            app_id: Some(app_id),
            method,
        }
    }
}

/// The host a request is for, worked out once: the authority of an absolute-form target
/// (RFC 9112 §3.2.2: it wins over `Host`; HTTP/2's `:authority` arrives there too), else `Host`.
///
/// Both are reference-counted views of the request's own bytes: holding one costs no copy.
#[derive(Debug, Clone)]
pub(crate) enum Host {
    /// From the request target's authority (any `user:password@` is never part of the host).
    Authority(http::uri::Authority),
    /// From the `Host` header.
    Header(HeaderValue),
}

impl Host {
    pub(crate) fn of(uri: &http::Uri, headers: &http::HeaderMap) -> Option<Self> {
        match uri.authority() {
            Some(a) => Some(Self::Authority(a.clone())),
            None => headers.get(http::header::HOST).cloned().map(Self::Header),
        }
    }

    /// `host[:port]`, for routing and the `CaDomain` system parameter.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Authority(a) => Some(without_userinfo(a)),
            Self::Header(h) => h.to_str().ok(),
        }
    }

    /// The value for `X-Forwarded-Host`.
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        match self {
            Self::Authority(a) => HeaderValue::from_str(without_userinfo(a)).ok(),
            Self::Header(h) => Some(h.clone()),
        }
    }
}

/// `host[:port]` of an authority, without a `user:password@` (never a host, never forwarded).
fn without_userinfo(a: &http::uri::Authority) -> &str {
    let a = a.as_str();
    a.rsplit_once('@').map_or(a, |(_, host)| host)
}

/// The traffic policy that refused a request, as the pipeline's policies step records it (for
/// the `stagegate_policy_refusals_total` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    dead_code,
    reason = "CORS and backend signatures are named by the policies step when they land"
)]
pub(crate) enum Policy {
    Throttling,
    IpControl,
    Cors,
    BackendSignature,
}

impl Policy {
    /// How many kinds there are.
    #[cfg(feature = "metrics")]
    pub(crate) const COUNT: usize = 4;

    /// The `policy` label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Throttling => "throttling",
            Self::IpControl => "ip_control",
            Self::Cors => "cors",
            Self::BackendSignature => "backend_signature",
        }
    }

    /// A dense index, `0..COUNT`.
    #[cfg(feature = "metrics")]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
