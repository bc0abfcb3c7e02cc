//! The authentication seam: step 4 of the pipeline.

use http::request::Parts;
use jiff::Timestamp;

use super::GatewayError;
use crate::model::AppId;
use crate::routing::{LiveRoute, Snapshot};
use crate::store::BoxFuture;

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
/// use stagegate::{Caller, AuthMethod};
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

/// What an [`Authenticator`] sees of a request.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// Method, URI and headers.
    pub parts: &'a Parts,
    /// The buffered body, when [`Authenticator::needs_body`] asked for it.
    pub body: Option<&'a [u8]>,
    /// The matched route.
    pub route: &'a LiveRoute,
    /// The snapshot the request is served from (credentials and grants).
    pub snapshot: &'a Snapshot,
    /// The time the request arrived.
    pub now: Timestamp,
}

/// Authenticates requests to APIs whose auth type is `APP`.
///
/// stagegate ships [`AppAuthenticator`](crate::AppAuthenticator) (AppCode and HMAC signatures,
/// grant checks, replay protection); a host application can plug its own.
pub trait Authenticator: Send + Sync + 'static {
    /// Whether [`authenticate`](Self::authenticate) needs the request body (buffered up to the
    /// body limit) for this request.
    fn needs_body(&self, parts: &Parts, route: &LiveRoute) -> bool {
        let _ = (parts, route);
        false
    }

    /// Checks the request's credentials and the caller's grant for the route's API and stage.
    fn authenticate<'a>(
        &'a self,
        req: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Caller, GatewayError>>;
}
