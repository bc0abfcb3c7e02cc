//! stagegate: an embeddable API gateway for axum and hyper.

pub mod model;

pub use model::*;
