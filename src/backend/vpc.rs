//! VPC backends whose access authorization has no address: a [`VpcResolver`] maps the
//! instance id and port to `host:port`.
//!
//! Authorizations that carry an `address` are compiled into plain HTTP targets by the routing
//! layer when the configuration changes, so they cost nothing per request and never reach the
//! resolver. Only authorizations without one are resolved here, per call: the resolver may do
//! I/O (a cloud API, a service registry) and may cache as it sees fit, and instance moves take
//! effect without any configuration change.

use http::{HeaderValue, Response};

use super::BackendCall;
use super::forward::forward_call;
use crate::base::BoxFuture;
use crate::error::GatewayError;
use crate::error_code::{ErrorCode, WireError};
use crate::model::VpcDefinition;
use crate::proxy::{GatewayBody, UpstreamTarget};

/// Why a VPC target could not be resolved.
///
/// # Examples
///
/// ```
/// use stagegate::backend::VpcError;
/// let e = VpcError::Unresolved { instance_id: "i-1".into(), port: 80, reason: "unknown instance".into() };
/// assert_eq!(e.to_string(), "instance `i-1` port 80 could not be resolved: unknown instance");
/// let g = stagegate::GatewayError::from(e);
/// assert_eq!(g.error_code(), stagegate::ErrorCode::X504VE);
/// assert_eq!(g.message(), "VPC access failed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VpcError {
    /// The resolver does not know the instance.
    #[error("instance `{instance_id}` port {port} could not be resolved: {reason}")]
    Unresolved {
        /// The instance id.
        instance_id: String,
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The resolver answered with something that is not `host:port`.
    #[error("resolved address `{0}` is not a valid host:port")]
    InvalidAddress(String),
}

/// `X504VE` (Alibaba's connection-level VPC error), without detail: instance ids and the
/// resolver's reasons go to the log only.
impl WireError for VpcError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::Unresolved { .. } | Self::InvalidAddress(_) => ErrorCode::X504VE,
        }
    }
}

/// Maps a VPC instance and port to the `host:port` this gateway reaches it at.
///
/// Implemented for closures `Fn(&str, u16) -> Result<String, VpcError>`.
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, VpcError, VpcResolver};
///
/// let backends = Backends::new().with_vpc_resolver(|instance: &str, port: u16| match instance {
///     "i-orders" => Ok(format!("127.0.0.1:{port}")),
///     other => Err(VpcError::Unresolved { instance_id: other.into(), port, reason: "unknown".into() }),
/// });
/// # let _ = backends;
/// ```
pub trait VpcResolver: Send + Sync + 'static {
    /// Resolves `instance_id` and `port` to `host:port`.
    fn resolve<'a>(
        &'a self,
        instance_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<String, VpcError>>;
}

impl<F> VpcResolver for F
where
    F: Fn(&str, u16) -> Result<String, VpcError> + Send + Sync + 'static,
{
    fn resolve<'a>(
        &'a self,
        instance_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<String, VpcError>> {
        let r = self(instance_id, port);
        Box::pin(async move { r })
    }
}

/// The default resolver: the instance id is taken as a host name (`instance_id:port`), which is
/// what a deployment with DNS names for its instances (or `/etc/hosts` entries) needs.
///
/// # Examples
///
/// ```
/// use stagegate::backend::{DefaultVpcResolver, VpcResolver};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(DefaultVpcResolver.resolve("orders.internal", 8080).await.unwrap(), "orders.internal:8080");
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultVpcResolver;

impl VpcResolver for DefaultVpcResolver {
    fn resolve<'a>(
        &'a self,
        instance_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<String, VpcError>> {
        Box::pin(async move { Ok(format!("{instance_id}:{port}")) })
    }
}

pub(super) async fn dispatch(
    resolver: &dyn VpcResolver,
    def: &VpcDefinition,
    call: BackendCall<'_>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let Some(access) = call.route.vpc_access.clone() else {
        tracing::warn!(vpc_access = %def.vpc_access_id, "vpc route without its authorization");
        return Err(GatewayError::internal());
    };
    let addr = match &access.address {
        Some(a) => a.clone(),
        None => resolver.resolve(&access.instance_id, access.port).await?,
    };
    let scheme = if def.https { "https" } else { "http" };
    let mut upstream = UpstreamTarget::parse(&format!("{scheme}://{addr}"))
        .map_err(|_| VpcError::InvalidAddress(addr.clone()))?;
    if let Some(h) = &def.host_header {
        let h = HeaderValue::from_str(h).map_err(|_| GatewayError::internal())?;
        upstream = upstream.with_host_override(h);
    }
    forward_call(call, &upstream)
        .await
        .map_err(GatewayError::from)
}
