//! [`ProxyError`]: why a request could not be forwarded, and its gateway error code.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http::StatusCode;
use http_body_util::LengthLimitError;

use super::body::{BodyError, BoxError};
use super::target::{TargetError, UpstreamTarget};
use crate::error_code::{ErrorCode, WireError};

/// Why forwarding a request to a backend failed.
///
/// Each variant maps to one gateway error code of the Alibaba API Gateway (six characters: a
/// class letter, the HTTP status, a two-letter reason), with [`code`](Self::code),
/// [`status`](Self::status) and [`wire_message`](Self::wire_message) (the
/// `X-Ca-Error-Message` text). The wire message never carries internal detail beyond a short
/// reason; the full cause chain is available through [`std::error::Error::source`] for logs.
///
/// | variant | code | status |
/// |---|---|---|
/// | [`Timeout`](Self::Timeout) | `D504TO` | 504 |
/// | [`Connect`](Self::Connect) | `D504CO` | 504 |
/// | [`BadResponse`](Self::BadResponse) | `D502FC` | 502 |
/// | [`ResponseHeaderTooLarge`](Self::ResponseHeaderTooLarge) | `D502FC` | 502 |
/// | [`Upstream`](Self::Upstream) | `N502RE` | 502 |
/// | [`RequestBodyTooLarge`](Self::RequestBodyTooLarge) | `I413RL` | 413 |
/// | [`RequestBody`](Self::RequestBody) | `I400BD` | 400 |
/// | [`InvalidBackendUri`](Self::InvalidBackendUri) | `I400RU` | 400 |
/// | [`InvalidTarget`](Self::InvalidTarget), [`InvalidRequest`](Self::InvalidRequest) | `X500ER` | 500 |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::proxy::ProxyError;
///
/// let err = ProxyError::Timeout { timeout: Duration::from_millis(200) };
/// assert_eq!(err.code(), stagegate::ErrorCode::D504TO.as_str());
/// assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
/// assert!(err.wire_message().starts_with("Backend service request timeout"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The upstream target is not usable.
    #[error("invalid upstream target")]
    InvalidTarget(#[from] TargetError),
    /// The backend request could not be built from the incoming request.
    #[error("invalid backend request")]
    InvalidRequest(#[source] http::Error),
    /// The mapped backend path (with its prefix) is not a valid request target: the client's
    /// values made a URI the backend request cannot carry. Answered the same whichever backend
    /// kind serves the API.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::proxy::ProxyError;
    /// let e = http::Request::builder().uri("/a b").body(()).unwrap_err();
    /// let err = ProxyError::InvalidBackendUri(e);
    /// assert_eq!(err.code(), stagegate::ErrorCode::I400RU.as_str());
    /// assert_eq!(err.wire_message(), "Invalid Request Uri `backend path`");
    /// ```
    #[error("invalid backend request uri")]
    InvalidBackendUri(#[source] http::Error),
    /// No response (headers) arrived within the forwarding timeout.
    #[error("backend did not respond within {timeout:?}")]
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection to the backend could not be established (TCP or TLS).
    #[error("backend connect failed: {reason}")]
    Connect {
        /// A short reason, e.g. `Connection refused`, `Timeout connecting to 10.0.0.1:80`.
        reason: String,
        /// The underlying client error.
        #[source]
        source: BoxError,
    },
    /// The backend answered with something that is not valid HTTP.
    #[error("backend sent an invalid response")]
    BadResponse {
        /// The underlying client error.
        #[source]
        source: BoxError,
    },
    /// The backend's response header section is larger than the forwarder accepts (see
    /// [`HttpForwarderBuilder::with_max_response_header_bytes`](crate::proxy::HttpForwarderBuilder::with_max_response_header_bytes)).
    ///
    /// ```
    /// let err = stagegate::proxy::ProxyError::ResponseHeaderTooLarge { source: "70000 bytes".into() };
    /// assert_eq!((err.code(), err.status().as_u16()), (stagegate::ErrorCode::D502FC.as_str(), 502));
    /// assert_eq!(err.wire_message(), "Backend service response header too large");
    /// ```
    #[error("backend response header too large")]
    ResponseHeaderTooLarge {
        /// The underlying client error.
        #[source]
        source: BoxError,
    },
    /// The exchange with the backend failed after connecting (closed, reset, protocol error).
    #[error("backend exchange failed: {reason}")]
    Upstream {
        /// A short reason, e.g. `Connection is closed`.
        reason: String,
        /// The underlying client error.
        #[source]
        source: BoxError,
    },
    /// The client's request body exceeded a body limit while it was streamed to the backend.
    #[error("request body too large")]
    RequestBodyTooLarge {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The client's request body failed while it was streamed to the backend.
    #[error("request body failed")]
    RequestBody {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl WireError for ProxyError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::InvalidTarget(_) | Self::InvalidRequest(_) => ErrorCode::X500ER,
            Self::InvalidBackendUri(_) => ErrorCode::I400RU,
            Self::Timeout { .. } => ErrorCode::D504TO,
            Self::Connect { .. } => ErrorCode::D504CO,
            Self::BadResponse { .. } | Self::ResponseHeaderTooLarge { .. } => ErrorCode::D502FC,
            Self::Upstream { .. } => ErrorCode::N502RE,
            Self::RequestBodyTooLarge { .. } => ErrorCode::I413RL,
            Self::RequestBody { .. } => ErrorCode::I400BD,
        }
    }

    /// The short connect or exchange reason (the wording of Alibaba's "Troubleshoot D504CO errors"), `header too large`, and the
    /// fixed `request body stream failed`; never the source chain.
    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Connect { reason, .. } | Self::Upstream { reason, .. } => {
                Some(Cow::Borrowed(reason))
            }
            Self::ResponseHeaderTooLarge { .. } => Some(Cow::Borrowed("header too large")),
            Self::RequestBody { .. } => Some(Cow::Borrowed("request body stream failed")),
            Self::InvalidBackendUri(_) => Some(Cow::Borrowed("backend path")),
            Self::InvalidTarget(_)
            | Self::InvalidRequest(_)
            | Self::Timeout { .. }
            | Self::BadResponse { .. }
            | Self::RequestBodyTooLarge { .. } => None,
        }
    }
}

impl ProxyError {
    /// The six-character gateway error code (`X-Ca-Error-Code`).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = stagegate::proxy::ProxyError::from(stagegate::proxy::TargetError::MissingHost);
    /// assert_eq!(err.code(), stagegate::ErrorCode::X500ER.as_str());
    /// ```
    pub fn code(&self) -> &'static str {
        self.wire_code().as_str()
    }

    /// The HTTP status of the gateway's error response.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = stagegate::proxy::ProxyError::from(stagegate::proxy::TargetError::MissingHost);
    /// assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.wire_code().status()
    }

    /// The human-readable `X-Ca-Error-Message` text.
    ///
    /// It contains only visible ASCII when the reason does, so it fits a header value.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = stagegate::proxy::ProxyError::Connect {
    ///     reason: "Connection refused".into(),
    ///     source: "refused".into(),
    /// };
    /// assert_eq!(err.wire_message(), "Backend service connect failed 'Connection refused'");
    /// ```
    pub fn wire_message(&self) -> String {
        self.wire_text().into_owned()
    }

    /// Classifies a failure to establish the backend connection (TCP connect, DNS, TLS).
    pub(crate) fn from_connect_error(err: BoxError, target: &UpstreamTarget) -> Self {
        let reason = connect_reason(&*err, target);
        Self::Connect {
            reason,
            source: err,
        }
    }

    /// Classifies a failure of the exchange on an established connection (the HTTP handshake,
    /// sending the request, reading the response head).
    pub(crate) fn from_exchange_error(err: BoxError) -> Self {
        let hyper_err = chain(&*err).find_map(|e| e.downcast_ref::<hyper::Error>());
        if let Some(h) = hyper_err {
            if h.is_user() && h.source().is_some() {
                let too_large = chain(&*err).any(|e| {
                    e.is::<LengthLimitError>()
                        || e.downcast_ref::<BodyError>()
                            .is_some_and(|b| matches!(b, BodyError::TooLarge { .. }))
                });
                return if too_large {
                    Self::RequestBodyTooLarge { source: err }
                } else {
                    Self::RequestBody { source: err }
                };
            }
            // `hyper::Error::is_parse_too_large` exists only with hyper's `server` feature,
            // which the data plane does not need; its description is the same test, pinned by
            // `tests/proxy_forward.rs` (a response header over the limit is D502FC).
            if h.is_parse() && h.to_string() == "message head is too large" {
                return Self::ResponseHeaderTooLarge { source: err };
            }
            if h.is_parse() || h.is_parse_status() {
                return Self::BadResponse { source: err };
            }
        }
        // HTTP/2: an error h2 raised itself is the backend breaking the protocol or a limit;
        // a stream it refused is a header list over the limit (it refuses no other response).
        let h2_library = chain(&*err)
            .find_map(|e| e.downcast_ref::<h2::Error>())
            .filter(|h2| h2.is_library())
            .map(|h2| h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM));
        match h2_library {
            Some(true) => return Self::ResponseHeaderTooLarge { source: err },
            Some(false) => return Self::BadResponse { source: err },
            None => {}
        }
        let reason = exchange_reason(&*err);
        Self::Upstream {
            reason,
            source: err,
        }
    }
}

/// Iterates an error and its causes. `io::Error` hides a wrapped error from `source()` (it
/// returns the wrapped error's source), so the walk looks inside it with `get_ref()`.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn StdError + 'static)| {
        match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => (*e).source(),
        }
    })
}

/// The first `io::Error` in the chain with a telling kind (not `Other`), if any.
fn find_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    chain(err)
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .find(|io| io.kind() != io::ErrorKind::Other)
}

/// A short, Alibaba-style reason for a failed connect.
pub(crate) fn connect_reason(err: &(dyn StdError + 'static), target: &UpstreamTarget) -> String {
    // A TLS failure travels as an `io::Error` wrapping a `rustls::Error`.
    if let Some(tls) = chain(err).find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return format!("TLS handshake failed: {tls}");
    }
    if let Some(io) = find_io(err) {
        match io.kind() {
            io::ErrorKind::ConnectionRefused => return "Connection refused".to_owned(),
            io::ErrorKind::TimedOut => {
                return format!("Timeout connecting to {}", target.socket_label());
            }
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => return "Connection is closed".to_owned(),
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                return format!("No route to {}", target.socket_label());
            }
            _ => {}
        }
    }
    if chain(err).any(|e| e.to_string() == "dns error") {
        return format!("Unknown host {}", target.authority().host());
    }
    "Connection failed".to_owned()
}

/// A short reason for an exchange that failed after connecting.
fn exchange_reason(err: &(dyn StdError + 'static)) -> String {
    let hyper_err = chain(err).find_map(|e| e.downcast_ref::<hyper::Error>());
    if let Some(io) = find_io(err)
        && matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        )
    {
        return "Connection reset".to_owned();
    }
    match hyper_err {
        Some(h) if h.is_incomplete_message() || h.is_closed() || h.is_canceled() => {
            "Connection is closed".to_owned()
        }
        Some(h) if h.is_timeout() => "Timeout".to_owned(),
        _ => "Connection error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Wrapper(#[source] io::Error);

    fn target() -> UpstreamTarget {
        UpstreamTarget::parse("http://127.0.0.1:9").unwrap()
    }

    #[test]
    fn connect_reasons_follow_the_spec_wording() {
        let refused = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(connect_reason(&refused, &target()), "Connection refused");
        let timed_out = Wrapper(io::Error::new(io::ErrorKind::TimedOut, "connect timeout"));
        assert_eq!(
            connect_reason(&timed_out, &target()),
            "Timeout connecting to 127.0.0.1:9"
        );
        let reset = Wrapper(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(connect_reason(&reset, &target()), "Connection is closed");
        let tls = Wrapper(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::General("bad".into()),
        ));
        assert!(connect_reason(&tls, &target()).starts_with("TLS handshake failed"));
    }

    #[test]
    fn codes_and_statuses_agree() {
        let all = [
            ProxyError::from(TargetError::MissingHost),
            ProxyError::Timeout {
                timeout: Duration::from_secs(1),
            },
            ProxyError::Connect {
                reason: "Connection refused".into(),
                source: "x".into(),
            },
            ProxyError::BadResponse { source: "x".into() },
            ProxyError::ResponseHeaderTooLarge { source: "x".into() },
            ProxyError::Upstream {
                reason: "Connection is closed".into(),
                source: "x".into(),
            },
            ProxyError::RequestBodyTooLarge { source: "x".into() },
            ProxyError::RequestBody { source: "x".into() },
        ];
        for err in all {
            let code = err.code();
            assert_eq!(code.len(), 6);
            // The digits of the code are the HTTP status.
            assert_eq!(&code[1..4], err.status().as_str(), "{code}");
            assert!(http::HeaderValue::from_str(&err.wire_message()).is_ok());
        }
    }
}
