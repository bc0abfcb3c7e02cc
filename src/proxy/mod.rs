//! Forwarding requests to HTTP(S) backends: [`HttpForwarder`], the opaque [`GatewayBody`],
//! hop-by-hop header rules and [`ProxyError`] with its gateway error codes.
//!
//! Bodies stream both ways without buffering; where the gateway must see a whole body (a
//! signature's `Content-MD5`, form parameters) it buffers it, always with a limit.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use stagegate::proxy::{ForwardContext, GatewayBody, HttpForwarder, UpstreamTarget};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let forwarder = HttpForwarder::builder()
//!     .with_connect_timeout(Duration::from_secs(1))
//!     .build();
//! let target = UpstreamTarget::parse("http://127.0.0.1:8080")?;
//! let request = http::Request::get("/backend/path").body(GatewayBody::empty())?;
//! let ctx = ForwardContext::new(Duration::from_secs(10));
//! let response = forwarder.forward(request, &target, &ctx).await;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```

mod body;
mod error;
mod forwarder;
pub(crate) use forwarder::default_tls_config;
mod headers;
mod pool;
mod target;

pub(crate) use body::collect_limited;
pub use body::{BodyError, BoxError, GatewayBody};
pub use error::ProxyError;
pub use forwarder::{
    DEFAULT_MAX_RESPONSE_HEADER_BYTES, ForwardContext, HttpForwarder, HttpForwarderBuilder,
    PoolStats,
};
pub(crate) use headers::FORWARDED_HEADERS;
pub use target::{TargetError, UpstreamTarget};
