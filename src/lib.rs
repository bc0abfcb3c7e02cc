//! stagegate: an embeddable API gateway for axum and hyper.

pub mod auth;
pub mod model;

pub use auth::*;
pub use model::*;
