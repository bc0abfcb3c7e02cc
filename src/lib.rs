//! stagegate: an embeddable API gateway for axum and hyper.

pub mod control;
pub mod mapping;
pub mod model;
pub mod proxy;
pub mod routing;
pub mod store;

pub use control::{
    ApiReport, AppPatch, BackendPatch, ControlError, ControlPlane, DefinitionChange,
    DeploymentInfo, NewApp, NewBackend, NewGroup, ReportResult,
};
pub use mapping::{
    BodyAction, FORM_CONTENT_TYPE, MAPPING_HEADER_ALLOWLIST, MAPPING_HEADER_PREFIXES,
    MappedRequest, MappingError, MappingInput, SystemValues, map_request, needs_form_body,
};
pub use model::*;
pub use proxy::{
    BodyError, BoxError, ForwardContext, GatewayBody, HttpForwarder, HttpForwarderBuilder,
    ProxyError, TargetError, UpstreamTarget, append_forwarded_headers, collect_limited,
    strip_hop_by_hop,
};
pub use routing::{LiveRoute, RouteMatch, RouteTable, Snapshot, SnapshotHandle};
