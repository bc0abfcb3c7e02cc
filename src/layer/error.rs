//! [`GatewayError`]: the one place where a refusal becomes a response.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::proxy::{GatewayBody, ProxyError};

/// The `X-Ca-Request-Id` header.
pub const X_CA_REQUEST_ID: &str = "x-ca-request-id";
/// The `X-Ca-Error-Code` header.
pub const X_CA_ERROR_CODE: &str = "x-ca-error-code";
/// The `X-Ca-Error-Message` header.
pub const X_CA_ERROR_MESSAGE: &str = "x-ca-error-message";

/// An error the gateway itself answers with: a six-character code (`I404NF`, `A403IS`, ...),
/// the HTTP status its digits name, and a message for `X-Ca-Error-Message`.
///
/// # Examples
///
/// ```
/// use stagegate::GatewayError;
/// let e = GatewayError::not_found("GET", "/v2/user/abc");
/// assert_eq!(e.code(), "I404NF");
/// assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
/// assert_eq!(e.message(), "API not found with `GET /v2/user/abc`");
/// let res = e.into_response("0AA90E87-3506-5AA6-AFFB-A4D53B4F6231");
/// assert_eq!(res.headers()["x-ca-error-code"], "I404NF");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct GatewayError {
    code: &'static str,
    status: StatusCode,
    message: String,
}

impl GatewayError {
    /// An error with an explicit code, status and message.
    #[must_use]
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    /// `I404NF`: no published API matches.
    #[must_use]
    pub fn not_found(method: &str, path: &str) -> Self {
        Self::new(
            "I404NF",
            StatusCode::NOT_FOUND,
            format!(
                "API not found with `{method} {}`",
                crate::model::id::truncate(path)
            ),
        )
    }

    /// `I400SG`: an unknown `X-Ca-Stage`.
    #[must_use]
    pub fn invalid_stage() -> Self {
        Self::new("I400SG", StatusCode::BAD_REQUEST, "Invalid Stage")
    }

    /// `I400PA`: a request path the gateway refuses before routing: a dot segment (`.`, `..`,
    /// raw or percent-encoded), a backslash, or an encoded slash where no path parameter
    /// allows one (see [`check_request_path`](crate::routing::check_request_path)).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{GatewayError, routing::PathError};
    /// let e = GatewayError::invalid_path(PathError::DotSegment);
    /// assert_eq!(e.code(), "I400PA");
    /// assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
    /// assert_eq!(e.message(), "Invalid Request Path `dot segment`");
    /// ```
    #[must_use]
    pub fn invalid_path(reason: crate::routing::PathError) -> Self {
        Self::new(
            "I400PA",
            StatusCode::BAD_REQUEST,
            format!("Invalid Request Path `{reason}`"),
        )
    }

    /// `I413RL`: the body is larger than the limit.
    #[must_use]
    pub fn body_too_large() -> Self {
        Self::new(
            "I413RL",
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too Large",
        )
    }

    /// `I413UL`: URL and headers are larger than the limit.
    #[must_use]
    pub fn url_too_large() -> Self {
        Self::new(
            "I413UL",
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request URL too Large",
        )
    }

    /// `X500ER`: an internal error (details go to the log, not to the caller).
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            "X500ER",
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error",
        )
    }

    /// The six-character code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for `X-Ca-Error-Message`.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: status, `X-Ca-Request-Id`, `X-Ca-Error-Code`, `X-Ca-Error-Message` and a
    /// JSON body `{"code","message","request_id"}`.
    #[must_use]
    pub fn into_response(self, request_id: &str) -> Response<GatewayBody> {
        let body = serde_json::json!({ "code": self.code, "message": self.message, "request_id": request_id });
        let mut res = Response::new(GatewayBody::full(Bytes::from(body.to_string())));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(X_CA_REQUEST_ID, v);
        }
        h.insert(X_CA_ERROR_CODE, HeaderValue::from_static(self.code));
        // Header values cannot carry newlines or non-visible bytes; replace them.
        let clean: String = self
            .message
            .chars()
            .map(|c| {
                if c == '\n' {
                    '#'
                } else if c.is_control() {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let value = HeaderValue::from_str(&clean).unwrap_or_else(|_| {
            HeaderValue::from_str(&clean.replace(|c: char| !c.is_ascii(), "?"))
                .unwrap_or(HeaderValue::from_static("error"))
        });
        h.insert(X_CA_ERROR_MESSAGE, value);
        res
    }
}

impl From<ProxyError> for GatewayError {
    fn from(e: ProxyError) -> Self {
        Self::new(e.code(), e.status(), e.wire_message())
    }
}
