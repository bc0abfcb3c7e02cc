//! stagegate: an embeddable API gateway for axum and hyper.

pub mod control;
pub mod model;
pub mod routing;
pub mod store;

pub use control::{
    ApiReport, AppPatch, BackendPatch, ControlError, ControlPlane, DefinitionChange, DeploymentInfo, NewApp,
    NewBackend, NewGroup, ReportResult,
};
pub use model::*;
pub use routing::{LiveRoute, RouteMatch, RouteTable, Snapshot, SnapshotHandle};
