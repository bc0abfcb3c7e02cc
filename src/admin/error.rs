//! [`AdminError`]: the one place where an admin refusal becomes a `{"code","message"}` response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::control::ControlError;
use crate::model::ValidationError;
use crate::store::StoreError;

/// Why an admin call was refused. Every variant answers with a JSON body `{"code","message"}`
/// and a 4xx status (5xx only for a failing store: 507 `InsufficientStorage` when its disk is
/// full, 503 `StoreUnavailable` naming the store for one that cannot be reached now (a database
/// that is down or unreachable, another I/O error, a file locked elsewhere: see
/// [`StoreError::is_unavailable`](crate::store::StoreError::is_unavailable)), 500 `StoreError` otherwise;
/// 409 `Conflict` when another node changed the same record at the same time (the store's
/// optimistic version check: nothing was written; this node has caught up, so read and retry); and 503 `Timeout` for a call that took too long); a refused call changes
/// nothing.
///
/// # Examples
///
/// ```
/// use stagegate::admin::AdminError;
/// let e = AdminError::Unauthorized;
/// assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
/// assert_eq!(e.code(), "Unauthorized");
/// let e = AdminError::from(stagegate::ControlError::Refused("no".into()));
/// assert_eq!(e.status(), http::StatusCode::CONFLICT);
/// let full = stagegate::store::StoreError::Io {
///     file: "data/stagegate.redb".into(),
///     error: std::io::ErrorKind::StorageFull.into(),
/// };
/// let e = AdminError::from(stagegate::ControlError::Store(full));
/// assert_eq!(e.status(), http::StatusCode::INSUFFICIENT_STORAGE);
/// assert_eq!(e.code(), "InsufficientStorage");
/// assert!(e.to_string().contains("the disk is full"));
/// let down = stagegate::store::StoreError::Unavailable {
///     store: "postgres 10.0.0.5:5432/gateway".into(),
///     source: "connection refused".into(),
/// };
/// let e = AdminError::from(stagegate::ControlError::Store(down));
/// assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(e.code(), "StoreUnavailable");
/// assert!(e.to_string().contains("postgres 10.0.0.5:5432/gateway is unavailable"), "{e}");
/// let raced = stagegate::store::StoreError::Conflict {
///     key: stagegate::store::Key::group(&stagegate::model::GroupId::generate()),
///     expected: stagegate::store::Expect::Version(1),
///     found: Some(2),
/// };
/// let e = AdminError::from(stagegate::ControlError::Store(raced));
/// assert_eq!((e.status(), e.code()), (http::StatusCode::CONFLICT, "Conflict"));
/// assert!(e.to_string().contains("another node changed the same record"), "{e}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No `Authorization: Bearer <token>`, or the wrong token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// The body is not JSON, or not of the expected shape (wrong type, unknown or missing field).
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A field, query parameter or path segment has a value that is not acceptable.
    #[error("{0}")]
    InvalidParameter(String),
    /// The body is larger than the admin API accepts.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Something named in the path does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// No admin route has this path.
    #[error("no admin route for `{0}`")]
    NoRoute(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The call took longer than the admin API's timeout (503). A change it was making is
    /// still applied whole; read the resource again to see whether it was.
    #[error("the call did not finish within {} ms; a change it makes may still be applied", after.as_millis())]
    Timeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// The control plane refused the operation (or its store failed).
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl From<ValidationError> for AdminError {
    fn from(e: ValidationError) -> Self {
        Self::Control(ControlError::Validation(e))
    }
}

impl AdminError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::InvalidJson(_) | Self::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound { .. } | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Control(c) => match c {
                ControlError::Validation(_) | ControlError::InvalidConfig { .. } => {
                    StatusCode::BAD_REQUEST
                }
                ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
                ControlError::Store(e) if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
                ControlError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
                ControlError::Store(StoreError::Conflict { .. }) => StatusCode::CONFLICT,
                ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::CONFLICT,
            },
        }
    }

    /// The stable machine-readable code of the `code` field.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "Unauthorized",
            Self::InvalidJson(_) => "InvalidJson",
            Self::InvalidParameter(_) => "InvalidParameter",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::NotFound { .. } | Self::NoRoute(_) => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Timeout { .. } => "Timeout",
            Self::Control(c) => match c {
                ControlError::Validation(_) => "InvalidParameter",
                ControlError::NotFound { .. } => "NotFound",
                ControlError::AlreadyExists { .. } => "AlreadyExists",
                ControlError::NoDefinition { .. } => "NoDefinition",
                ControlError::RouteConflict { .. } => "RouteConflict",
                ControlError::InUse { .. } => "InUse",
                ControlError::NotPublished { .. } => "NotPublished",
                ControlError::InvalidConfig { .. } => "InvalidConfig",
                ControlError::Stale { .. } => "PlanStale",
                ControlError::Store(e) if e.is_disk_full() => "InsufficientStorage",
                ControlError::Store(e) if e.is_unavailable() => "StoreUnavailable",
                ControlError::Store(StoreError::Conflict { .. }) => "Conflict",
                ControlError::Store(_) => "StoreError",
                _ => "Refused",
            },
        }
    }

    pub(crate) fn not_found(what: &'static str, id: &str) -> Self {
        Self::NotFound {
            what,
            id: crate::model::id::truncate(id),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let Self::Control(ControlError::Store(e)) = &self {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), "admin: store failed");
        }
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        let mut res = (self.status(), body.to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, Self::Unauthorized) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stagegate-admin\""),
            );
        }
        res
    }
}
