//! The pure domain model: backend services and their per-stage definitions, groups, APIs,
//! apps, authorizations. No I/O lives here.

mod security;

pub use security::{AppCodeMode, AuthType, SignatureMethod};
