//! Forwarding requests to HTTP(S) backends: [`HttpForwarder`], the opaque [`GatewayBody`],
//! hop-by-hop header rules and [`ProxyError`] with its gateway error codes.
//!
//! Bodies stream both ways without buffering; only [`collect_limited`] buffers, and always
//! with a limit.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use stagegate::{ForwardContext, GatewayBody, HttpForwarder, UpstreamTarget};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let forwarder = HttpForwarder::builder()
//!     .connect_timeout(Duration::from_secs(1))
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
mod headers;
mod pool;
mod target;

pub use body::{BodyError, BoxError, GatewayBody, collect_limited};
pub use error::ProxyError;
pub use forwarder::{
    DEFAULT_MAX_RESPONSE_HEADER_BYTES, ForwardContext, HttpForwarder, HttpForwarderBuilder,
    PoolStats,
};
pub(crate) use headers::FORWARDED_HEADERS;
pub use headers::{append_forwarded_headers, strip_hop_by_hop};
pub use target::{TargetError, UpstreamTarget};
