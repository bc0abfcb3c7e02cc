//! Backends beyond HTTP and MOCK: the seam through which Function Compute, OSS, EventBridge
//! and service-discovery definitions are served.
//!
//! The data plane hands every request whose stage definition is of such a kind to the
//! [`Dispatch`] configured on the [`GatewayLayer`](crate::GatewayLayer) (see
//! [`GatewayLayer::backends`](crate::GatewayLayer::backends)).

use std::net::SocketAddr;
use std::time::Duration;

use http::request::Parts;
use http::{Response, StatusCode};

use crate::layer::{Caller, GatewayError};
use crate::mapping::MappedRequest;
use crate::model::Stage;
use crate::proxy::{GatewayBody, HttpForwarder};
use crate::routing::LiveRoute;
use crate::store::BoxFuture;

/// One request for a pluggable backend, after authentication and parameter mapping.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackendCall<'a> {
    /// The matched route: API snapshot and the backend's definition in the stage.
    pub route: &'a LiveRoute,
    /// The stage.
    pub stage: &'a Stage,
    /// The client's request line and headers, as received.
    pub parts: &'a Parts,
    /// Path parameters of the match (raw).
    pub path_params: &'a [(String, String)],
    /// The backend request the mapping step produced (path, query, headers, body action).
    pub mapped: MappedRequest,
    /// The request body (buffered or streaming).
    pub body: GatewayBody,
    /// The gateway's request id.
    pub request_id: &'a str,
    /// Who is calling.
    pub caller: &'a Caller,
    /// The client's address.
    pub client_addr: Option<SocketAddr>,
    /// The API's timeout.
    pub timeout: Duration,
    /// The gateway's HTTP client, for backends that end in an HTTP call.
    pub forwarder: &'a HttpForwarder,
}

/// Serves requests for backend kinds other than HTTP/HTTPS, VPC and MOCK.
pub trait Dispatch: Send + Sync + 'static {
    /// Serves one call.
    fn dispatch<'a>(
        &'a self,
        call: BackendCall<'a>,
    ) -> BoxFuture<'a, Result<Response<GatewayBody>, GatewayError>>;
}

/// The dispatcher used until one is configured: answers `X501NI`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unsupported;

impl Dispatch for Unsupported {
    fn dispatch<'a>(
        &'a self,
        call: BackendCall<'a>,
    ) -> BoxFuture<'a, Result<Response<GatewayBody>, GatewayError>> {
        let kind = call.route.definition.kind();
        Box::pin(async move {
            Err(GatewayError::new(
                "X501NI",
                StatusCode::NOT_IMPLEMENTED,
                format!("Backend type {kind} is not served by this gateway"),
            ))
        })
    }
}
