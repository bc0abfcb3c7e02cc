//! [`GatewayError`]: the one place where a refusal becomes a response.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::error_code::{ErrorCode, WireError};
use crate::proxy::GatewayBody;

/// The `X-Ca-Request-Id` header.
pub const X_CA_REQUEST_ID: &str = "x-ca-request-id";
/// The `X-Ca-Error-Code` header.
pub const X_CA_ERROR_CODE: &str = "x-ca-error-code";
/// The `X-Ca-Error-Message` header.
pub const X_CA_ERROR_MESSAGE: &str = "x-ca-error-message";

/// An error the gateway itself answers with: a catalogue [`ErrorCode`] (`I404NF`, `A403IS`,
/// ...), the HTTP status its digits name, and the message for `X-Ca-Error-Message`.
///
/// Every domain error becomes a `GatewayError` through one conversion, `From<E: WireError>`:
/// the wire message is the catalogue's, around only the detail the code allows (see
/// [`error_code`](crate::error_code)); the error's own `Display` text is kept apart and
/// written to `tracing` with the request id by [`into_response`](Self::into_response), never
/// sent.
///
/// # Examples
///
/// ```
/// use stagegate::GatewayError;
/// let e = GatewayError::not_found("GET", "/v2/user/abc");
/// assert_eq!(e.code(), stagegate::ErrorCode::I404NF.as_str());
/// assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
/// assert_eq!(e.message(), "API not found with `GET /v2/user/abc`");
/// let res = e.into_response("0AA90E87-3506-5AA6-AFFB-A4D53B4F6231");
/// assert_eq!(res.headers()["x-ca-error-code"], stagegate::ErrorCode::I404NF.as_str());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct GatewayError {
    code: ErrorCode,
    message: Cow<'static, str>,
    /// Internal detail for the log (the domain error's `Display`), never sent.
    internal: Option<Box<str>>,
}

impl<E: WireError> From<E> for GatewayError {
    fn from(e: E) -> Self {
        let message = e.wire_text();
        let internal = e.internal_detail();
        let internal = (internal != *message).then(|| internal.into_boxed_str());
        Self {
            code: e.wire_code(),
            message,
            internal,
        }
    }
}

impl GatewayError {
    /// An error with a catalogue code and its default message.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{ErrorCode, GatewayError};
    /// let e = GatewayError::new(ErrorCode::X503BZ);
    /// assert_eq!((e.code(), e.message()), (stagegate::ErrorCode::X503BZ.as_str(), "Service Busy"));
    /// ```
    #[must_use]
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.message()),
            internal: None,
        }
    }

    /// An error with a catalogue code and client-facing detail, rendered with the code's
    /// template ([`ErrorCode::render`]; a code without one drops the detail).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{ErrorCode, GatewayError};
    /// let e = GatewayError::with_detail(ErrorCode::I400RU, "backend path");
    /// assert_eq!(e.message(), "Invalid Request Uri `backend path`");
    /// ```
    #[must_use]
    pub fn with_detail(code: ErrorCode, detail: &str) -> Self {
        Self {
            code,
            message: code.render(Some(detail)),
            internal: None,
        }
    }

    /// `I404NF`: no published API matches.
    #[must_use]
    pub fn not_found(method: &str, path: &str) -> Self {
        let detail = format!("{method} {}", crate::model::id::truncate(path));
        Self::with_detail(ErrorCode::I404NF, &detail)
    }

    /// `I400SG`: an unknown `X-Ca-Stage`.
    #[must_use]
    pub fn invalid_stage() -> Self {
        Self::new(ErrorCode::I400SG)
    }

    /// `I400PA`: a request path the gateway refuses before routing: a dot segment (`.`, `..`,
    /// raw or percent-encoded), a backslash, or an encoded slash where no path parameter
    /// allows one (see [`check_request_path`](crate::routing::check_request_path)).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{ErrorCode, GatewayError, routing::PathError};
    /// let e = GatewayError::invalid_path(PathError::DotSegment);
    /// assert_eq!(e.error_code(), ErrorCode::I400PA);
    /// assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
    /// assert_eq!(e.message(), "Invalid Request Path `dot segment`");
    /// ```
    #[must_use]
    pub fn invalid_path(reason: crate::routing::PathError) -> Self {
        Self::with_detail(ErrorCode::I400PA, &reason.to_string())
    }

    /// `I413RL`: the body is larger than the limit.
    #[must_use]
    pub fn body_too_large() -> Self {
        Self::new(ErrorCode::I413RL)
    }

    /// `I413UL`: URL and headers are larger than the limit.
    #[must_use]
    pub fn url_too_large() -> Self {
        Self::new(ErrorCode::I413UL)
    }

    /// `I400BD`: the request body could not be read (the client's stream failed).
    pub(crate) fn unreadable_body() -> Self {
        Self::with_detail(ErrorCode::I400BD, "the request body could not be read")
    }

    /// `X500ER`: an internal error (details go to the log, not to the caller).
    #[must_use]
    pub fn internal() -> Self {
        Self::new(ErrorCode::X500ER)
    }

    /// The catalogue code.
    ///
    /// ```
    /// use stagegate::{ErrorCode, GatewayError};
    /// assert_eq!(GatewayError::internal().error_code(), ErrorCode::X500ER);
    /// ```
    #[must_use]
    pub fn error_code(&self) -> ErrorCode {
        self.code
    }

    /// The six-character code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The message for `X-Ca-Error-Message`.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: status, `X-Ca-Request-Id`, `X-Ca-Error-Code`, `X-Ca-Error-Message` and a
    /// JSON body `{"code","message","request_id"}`. Internal detail the error carries is
    /// logged here with the request id (`warn` for a 5xx, `debug` otherwise), not sent.
    #[must_use]
    pub fn into_response(self, request_id: &str) -> Response<GatewayBody> {
        let status = self.code.status();
        if let Some(internal) = &self.internal {
            if status.is_server_error() {
                tracing::warn!(request_id, code = self.code.as_str(), error = %internal, "gateway error");
            } else {
                tracing::debug!(request_id, code = self.code.as_str(), error = %internal, "gateway error");
            }
        }
        let body = serde_json::json!({ "code": self.code.as_str(), "message": self.message, "request_id": request_id });
        let mut res = Response::new(GatewayBody::full(Bytes::from(body.to_string())));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(X_CA_REQUEST_ID, v);
        }
        h.insert(
            X_CA_ERROR_CODE,
            HeaderValue::from_static(self.code.as_str()),
        );
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
