//! [`CompileError`]: why a published API or a backend definition could not be compiled for the
//! data plane.

use crate::model::{ValidationError, VpcAccessId};
use crate::proxy::TargetError;

/// Why an API or a backend's stage definition could not be compiled into what the data plane
/// serves. Validation makes these rare: they guard documents stored before a rule existed and
/// references that went away (a VPC access authorization deleted under a definition).
///
/// # Examples
///
/// ```
/// use stagegate::model::{ApiDefinition, BackendId, GroupId, ParamLocation, RequestParameter};
/// use stagegate::routing::{CompileError, Compiled};
///
/// let mut api = ApiDefinition::new(GroupId::generate(), "getItem", "GET", "/a", BackendId::generate()).unwrap();
/// api.parameters.push(RequestParameter {
///     name: "n".into(),
///     location: ParamLocation::Query,
///     regex: Some("(".into()), // skips validation: pushed after the builder checked it
///     ..Default::default()
/// });
/// let err = Compiled::compile(&api).unwrap_err();
/// assert!(matches!(err, CompileError::Pattern { ref param, .. } if param == "n"));
/// assert!(err.to_string().starts_with("parameter `n`: "));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// A declared parameter's pattern is not a valid regular expression (or too big).
    #[error("parameter `{param}`: {source}")]
    Pattern {
        /// The parameter's name.
        param: String,
        /// What the regex engine said.
        #[source]
        source: regex::Error,
    },
    /// The API's backend path is not a valid path template.
    #[error("backend path: {0}")]
    BackendPath(#[source] ValidationError),
    /// A definition's host header override is not a valid header value.
    #[error("invalid host header `{host}`")]
    HostHeader {
        /// The configured value.
        host: String,
    },
    /// A definition's URL (or a VPC authorization's address) is not a valid upstream.
    #[error("invalid backend url `{url}`: {source}")]
    BackendUrl {
        /// The URL.
        url: String,
        /// Why it was refused.
        #[source]
        source: TargetError,
    },
    /// A VPC definition names an access authorization that does not exist.
    #[error("vpc access authorization `{0}` not found")]
    VpcAccessNotFound(VpcAccessId),
    /// A mock's status is informational (1xx), not a final response.
    #[error("mock status {0} is informational, not a response")]
    MockStatusInformational(u16),
    /// A mock's status is not a valid HTTP status.
    #[error("invalid mock status")]
    MockStatus(u16),
    /// A mock header's name is not a valid header name.
    #[error("invalid mock header `{0}`")]
    MockHeaderName(String),
    /// A mock header's value is not a valid header value.
    #[error("invalid mock header value for `{0}`")]
    MockHeaderValue(String),
}
