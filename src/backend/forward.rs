//! The one forwarding path to an HTTP upstream, used by inline HTTP APIs (the pipeline's
//! dispatch step, for HTTP backends, VPC authorizations with an address and Function Compute
//! HTTP functions, all compiled into HTTP targets) and by every pluggable kind that ends in an
//! HTTP call (VPC authorizations resolved at request time, service discovery).
//!
//! The method choice, the path prefix, the header move and the `X-Forwarded-*` context are
//! written here once.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response};

use super::BackendCall;
use crate::base::Host;
use crate::mapping::MappedRequest;
use crate::model::ApiDefinition;
use crate::proxy::{ForwardContext, GatewayBody, ProxyError, UpstreamTarget};

/// The method sent to the backend: the API's backend method, else (unset, `ANY` or not a
/// method) the client's.
pub(crate) fn backend_method(api: &ApiDefinition, client: &Method) -> Method {
    match api.backend.method.as_deref() {
        None | Some("ANY") => client.clone(),
        Some(m) => Method::from_bytes(m.as_bytes()).unwrap_or_else(|_| client.clone()),
    }
}

/// The backend request: [`backend_method`], the mapped path and query behind the definition's
/// `path_prefix`, the mapped headers (moved, not copied) and `body`.
///
/// # Errors
///
/// A path that is not a valid request target.
pub(crate) fn backend_request(
    api: &ApiDefinition,
    client_method: &Method,
    path_and_query: String,
    headers: HeaderMap,
    path_prefix: Option<&str>,
    body: GatewayBody,
) -> Result<Request<GatewayBody>, http::Error> {
    let path = match path_prefix {
        Some(p) => format!("{p}{path_and_query}"),
        None => path_and_query,
    };
    let mut builder = Request::builder()
        .method(backend_method(api, client_method))
        .uri(path);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder.body(body)
}

/// The forwarding context: the timeout and what `X-Forwarded-For`, `-Proto` and `-Host` carry
/// (the client's address, the scheme it used, the host the request was for).
pub(crate) fn forward_context(
    timeout: Duration,
    https: bool,
    peer: Option<SocketAddr>,
    host: Option<&Host>,
) -> ForwardContext {
    let mut ctx = ForwardContext::new(timeout).with_original_scheme(if https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    if let Some(c) = peer {
        ctx = ctx.with_client_addr(c.ip());
    }
    if let Some(h) = host.and_then(Host::header_value) {
        ctx = ctx.with_original_host(h);
    }
    ctx
}

/// Forwards a pluggable backend's call to an HTTP upstream, as the data plane forwards an
/// inline HTTP API.
pub(crate) async fn forward_call(
    call: BackendCall<'_>,
    upstream: &UpstreamTarget,
) -> Result<Response<GatewayBody>, ProxyError> {
    let BackendCall {
        route,
        parts,
        mapped:
            MappedRequest {
                path_and_query,
                headers,
                ..
            },
        body,
        peer_addr,
        https,
        timeout,
        forwarder,
        host,
        ..
    } = call;
    let req = backend_request(
        route.api(),
        &parts.method,
        path_and_query,
        headers,
        None,
        body,
    )
    .map_err(ProxyError::InvalidBackendUri)?;
    let ctx = forward_context(timeout, https, peer_addr, host);
    forwarder.forward(req, upstream, &ctx).await
}
