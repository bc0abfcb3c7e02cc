//! The authentication seam: step 4 of the pipeline.

use http::request::Parts;
use jiff::Timestamp;

use crate::base::{BoxFuture, Caller};
use crate::error::GatewayError;
use crate::routing::{LiveRoute, Snapshot};

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
/// stagegate ships [`AppAuthenticator`](crate::layer::AppAuthenticator) (AppCode and HMAC signatures,
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
