//! The pure domain model: backend services and their per-stage definitions, groups, APIs,
//! apps, authorizations. No I/O lives here; every type is `serde`-ready and validates itself.

mod api;
mod app;
mod backend;
mod certificate;
pub(crate) mod id;
mod path;
mod secret;
mod security;
mod stage;
mod validate;

pub use api::{
    ApiDefinition, BackendBinding, BodyFormat, ConstantParameter, ContentTypePolicy, ErrorCodeDoc,
    Group, MAX_REGEX_LEN, METHODS, OssAction, OssBinding, ParamLocation, ParamType, Protocol,
    RequestConfig, RequestMode, RequestParameter, ResponseDoc, SystemParam, SystemParameter,
};
pub use app::{App, AppKeyPair, Authorization, VpcAccess};
pub use backend::{
    BackendKind, BackendService, DiscoveryDefinition, EventBridgeDefinition, FunctionDefinition,
    HttpDefinition, MockDefinition, OssDefinition, OssPermissions, RegistryType, StageDefinition,
    VpcDefinition,
};
pub use certificate::{CertificateInfo, DomainCertificate};
pub use id::{ApiId, AppId, BackendId, GroupId, PolicyId, VpcAccessId};
pub use path::{MAX_PATH_LEN, PathTemplate, Segment};
pub use secret::Secret;
pub use security::{AppCodeMode, AuthType, SignatureMethod};
pub use stage::Stage;
pub use validate::{ValidationError, validate_name};
pub(crate) use validate::{is_framing_header, validate_len};
