//! stagegate: an embeddable API gateway for axum and hyper.

pub mod model;
pub mod proxy;

pub use model::*;
pub use proxy::{
    BodyError, BoxError, ForwardContext, GatewayBody, HttpForwarder, HttpForwarderBuilder,
    ProxyError, TargetError, UpstreamTarget, append_forwarded_headers, collect_limited,
    strip_hop_by_hop,
};
