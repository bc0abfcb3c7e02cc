//! [`CloudApiError`]: why a CloudAPI call was refused, with the error code Alibaba documents for
//! the same situation. The one table from error to `Code` and status is [`CloudApiError::code`].

use http::StatusCode;

use crate::control::ControlError;

/// Why a CloudAPI call was refused. Rendered as `{"RequestId","Code","Message","HostId"}` with
/// a 4xx/5xx status; the official SDKs raise `ClientException`/`ServerException` with `Code`.
///
/// # Examples
///
/// ```
/// use stagegate::cloudapi::CloudApiError;
/// let e = CloudApiError::MissingParameter("BackendName".into());
/// assert_eq!(e.code(), "MissingParameter");
/// assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
/// assert!(e.to_string().contains("BackendName"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudApiError {
    /// No `Authorization: ACS3-HMAC-SHA256 ...` and no `Signature` parameter, or a malformed one.
    #[error("The request signature is incomplete or malformed: {0}.")]
    IncompleteSignature(String),
    /// The signature does not match the one computed with the key's secret.
    #[error("Specified signature does not match our calculation.")]
    SignatureDoesNotMatch,
    /// The access key id is not known.
    #[error("Specified access key is not found.")]
    AccessKeyNotFound,
    /// The request's date is more than the allowed skew away from now.
    #[error("Specified time stamp or date value is expired.")]
    TimestampExpired,
    /// The request's date cannot be read.
    #[error(
        "Specified time stamp or date value `{0}` is not well formatted (expected 2006-01-02T15:04:05Z)."
    )]
    TimestampFormat(String),
    /// The nonce was used before within the replay window.
    #[error("Specified signature nonce was used already.")]
    NonceUsed,
    /// The replay guard is full or failed: the call cannot be checked for replay.
    #[error("The request cannot be checked for replay now; try again later.")]
    ReplayUnavailable,
    /// The action is not one this endpoint speaks.
    #[error("Specified action `{0}` is not supported.")]
    UnsupportedAction(String),
    /// The version is not `2016-07-14`.
    #[error("Specified parameter Version `{0}` is not valid (only 2016-07-14).")]
    InvalidVersion(String),
    /// A required parameter is absent.
    #[error(
        "The input parameter `{0}` that is mandatory for processing this request is not supplied."
    )]
    MissingParameter(String),
    /// A parameter's value is not acceptable.
    #[error("The parameter `{field}` is invalid: {reason}")]
    InvalidParameter {
        /// The parameter (or `Parameter.Key` for a key inside a JSON parameter).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter that changes behaviour stagegate cannot honour.
    #[error("The parameter `{field}` is not supported by this gateway: {reason}")]
    UnsupportedParameter {
        /// The parameter.
        field: String,
        /// Why.
        reason: String,
    },
    /// The request is larger than the limit.
    #[error("The request body is larger than {0} bytes.")]
    BodyTooLarge(usize),
    /// Something named does not exist (`code` is `NotFoundApi`, `NotFoundApiGroup`, ...).
    #[error("{message}")]
    NotFound {
        /// The Alibaba-style code.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// A name or key is already taken (`code` is `RepeatedApiName`, ...).
    #[error("{message}")]
    Repeated {
        /// The Alibaba-style code.
        code: &'static str,
        /// What is taken.
        message: String,
    },
    /// Deploying needs a model of the API's backend in the target stage.
    #[error("{0}")]
    NoBackendModel(String),
    /// Two published APIs would match the same request.
    #[error("{0}")]
    ApiPathConflict(String),
    /// The resource is still in use.
    #[error("{0}")]
    DependencyViolation(String),
    /// An operation that cannot apply (e.g. changing a backend's type).
    #[error("{0}")]
    OperationDenied(String),
    /// The store failed; nothing was changed.
    #[error("The request processing has failed due to some unknown error.")]
    Internal,
}

impl CloudApiError {
    /// The wire `Code`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::IncompleteSignature(_) => "IncompleteSignature",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::AccessKeyNotFound => "InvalidAccessKeyId.NotFound",
            Self::TimestampExpired => "InvalidTimeStamp.Expired",
            Self::TimestampFormat(_) => "InvalidTimeStamp.Format",
            Self::NonceUsed => "SignatureNonceUsed",
            Self::ReplayUnavailable => "ServiceUnavailable",
            Self::UnsupportedAction(_) => "InvalidAction.NotFound",
            Self::InvalidVersion(_) => "InvalidVersion",
            Self::MissingParameter(_) => "MissingParameter",
            Self::InvalidParameter { .. } => "InvalidParameter",
            Self::UnsupportedParameter { .. } => "UnsupportedParameter",
            Self::BodyTooLarge(_) => "RequestBodyTooLarge",
            Self::NotFound { code, .. } | Self::Repeated { code, .. } => code,
            Self::NoBackendModel(_) => "NotFoundBackendModel",
            Self::ApiPathConflict(_) => "RepeatedApiPath",
            Self::DependencyViolation(_) => "DependencyViolation",
            Self::OperationDenied(_) => "OperationDenied",
            Self::Internal => "InternalError",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AccessKeyNotFound | Self::UnsupportedAction(_) | Self::NotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::SignatureDoesNotMatch => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Repeated { .. }
            | Self::ApiPathConflict(_)
            | Self::DependencyViolation(_)
            | Self::NoBackendModel(_)
            | Self::OperationDenied(_) => StatusCode::BAD_REQUEST,
            Self::ReplayUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::UnsupportedParameter {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The Alibaba code for a missing resource of the control plane's kind `what`.
fn not_found_code(what: &str) -> &'static str {
    match what {
        "api" | "api id" => "NotFoundApi",
        "group" => "NotFoundApiGroup",
        "app" => "NotFoundApp",
        "app key" | "app code" => "NotFoundAppKey",
        "backend service" => "NotFoundBackend",
        "authorization" => "NotFoundAuthorization",
        "deployment" => "NotFoundHistoryVersion",
        "vpc access authorization" => "NotFoundVpcAccess",
        _ => "NotFound",
    }
}

fn repeated_code(what: &str) -> &'static str {
    match what {
        "api" => "RepeatedApiName",
        "api id" => "RepeatedApiId",
        "group" => "RepeatedGroupName",
        "app" => "RepeatedAppName",
        "app key" => "RepeatedAppKey",
        "app code" => "RepeatedAppCode",
        "backend service" => "RepeatedBackendName",
        _ => "Repeated",
    }
}

impl From<ControlError> for CloudApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::Validation(v) => match v {
                crate::model::ValidationError::InvalidField { field, reason } => {
                    Self::InvalidParameter { field, reason }
                }
                other => Self::invalid("Parameter", other.to_string()),
            },
            ControlError::NotFound { what, .. } => Self::NotFound {
                code: not_found_code(what),
                message,
            },
            ControlError::AlreadyExists { what, .. } => Self::Repeated {
                code: repeated_code(what),
                message,
            },
            ControlError::NoDefinition { .. } => Self::NoBackendModel(message),
            ControlError::RouteConflict { .. } => Self::ApiPathConflict(message),
            ControlError::InUse { .. } => Self::DependencyViolation(message),
            ControlError::NotPublished { .. } => Self::NotFound {
                code: "NotFoundDeployedApi",
                message,
            },
            ControlError::Refused(_) | ControlError::Stale { .. } => Self::OperationDenied(message),
            ControlError::InvalidConfig { .. } => Self::invalid("Parameter", message),
            ControlError::Store(_) => {
                tracing::warn!(error = %message, "cloudapi: store failed");
                Self::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;

    #[test]
    fn control_errors_map_to_alibaba_codes() {
        let e: CloudApiError = ControlError::not_found("api", "x").into();
        assert_eq!(
            (e.code(), e.status()),
            ("NotFoundApi", StatusCode::NOT_FOUND)
        );
        let e: CloudApiError = ControlError::NoDefinition {
            backend_id: crate::model::BackendId::parse("b1").unwrap(),
            backend_name: "n".into(),
            stage: Stage::PRE,
        }
        .into();
        assert_eq!(e.code(), "NotFoundBackendModel");
        assert!(e.to_string().contains("PRE"));
    }
}
