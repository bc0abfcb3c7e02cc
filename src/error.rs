//! [`GatewayError`]: the one place where a refusal becomes a response.
//!
//! Below `layer/` and `backend/`, which both import it; re-exported as `stagegate::GatewayError`
//! and `stagegate::layer::GatewayError`.

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
    /// use stagegate::{ErrorCode, GatewayError};
    /// use stagegate::routing::PathError;
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

    /// Replaces the detail for the log (never sent): what an operator needs to act on the
    /// refusal, such as the allowed clock skew or the missing grant.
    #[must_use]
    pub(crate) fn with_internal(mut self, detail: impl Into<Box<str>>) -> Self {
        self.internal = Some(detail.into());
        self
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
    /// logged here with the request id (`warn` for a 5xx, `debug` otherwise), not sent; it
    /// also rides in the response's extensions (which no server writes to the wire) for the
    /// access log and the admin debug endpoint.
    #[must_use]
    pub fn into_response(self, request_id: &str) -> Response<GatewayBody> {
        let status = self.code.status();
        let detail = self.internal.clone().map(RefusalDetail);
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
        if let Some(d) = detail {
            res.extensions_mut().insert(d);
        }
        res
    }
}

/// The internal detail of a refusal, kept in the response's extensions for the access log and
/// the admin debug endpoint's trace; never written to the wire.
#[derive(Clone, Debug)]
pub(crate) struct RefusalDetail(pub(crate) Box<str>);

/// The walk over every error that can reach a client (issue #21): each variant of each domain
/// error is constructed, goes through the one conversion and `into_response`, and must come
/// out with the catalogue's code and status and the catalogue's message around only the
/// detail its code allows. Internal fields hold [`SECRET`](tests::SECRET), which must never
/// reach the wire.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io;
    use std::time::Duration;

    use super::*;
    use crate::auth::{AuthError, ReplayError};
    use crate::backend::{DiscoveryError, EventError, FunctionError, OssError, VpcError};
    use crate::mapping::MappingError;
    use crate::model::{OssAction, ParamLocation, RegistryType};
    use crate::proxy::{ProxyError, TargetError};
    use crate::routing::PathError;

    /// Stands for internal detail: instance ids, names, paths, reasons, handler output.
    pub(super) const SECRET: &str = "i-0SECRET";

    /// Records which arms of an exhaustive `match` the samples reached.
    struct Arms<const N: usize>([bool; N]);

    impl<const N: usize> Arms<N> {
        fn new() -> Self {
            Self([false; N])
        }
        fn hit(&mut self, arm: usize) {
            assert!(
                arm < N,
                "a new variant: raise the arm count and add a sample"
            );
            self.0[arm] = true;
        }
        fn all(&self, what: &str) {
            let missed: Vec<_> = (0..N).filter(|&i| !self.0[i]).collect();
            assert!(missed.is_empty(), "{what}: no sample for arm(s) {missed:?}");
        }
    }

    /// Renders `g` and checks it against the catalogue; returns the code.
    fn check(g: GatewayError, want: ErrorCode, detail: Option<&str>) -> ErrorCode {
        let debug = format!("{g:?}");
        let res = g.into_response("req-1");
        assert_eq!(res.status(), want.status(), "{debug}");
        assert_eq!(res.headers()[X_CA_ERROR_CODE], want.as_str(), "{debug}");
        let message = res.headers()[X_CA_ERROR_MESSAGE].to_str().unwrap();
        assert_eq!(message, want.render(detail), "{debug}");
        if want.template().is_none() {
            assert_eq!(message, want.message(), "{debug}");
        }
        assert!(!message.contains(SECRET), "{want}: {message}");
        want
    }

    fn auth(e: AuthError, arms: &mut Arms<21>) -> ErrorCode {
        let (arm, want, detail): (_, _, Option<String>) = match &e {
            AuthError::MissingCredentials => (0, ErrorCode::A400MA, None),
            AuthError::InvalidAppKey => (1, ErrorCode::A400IK, None),
            AuthError::MissingHeader { name } => (2, ErrorCode::I400MH, Some((*name).into())),
            AuthError::InvalidHeader { name, reason } => {
                (3, ErrorCode::I400HD, Some(format!("`{name}` {reason}")))
            }
            AuthError::UnsignedHeader { name } => (4, ErrorCode::A400UH, Some((*name).into())),
            AuthError::DuplicateHeader { name } => (5, ErrorCode::A400DH, Some(name.clone())),
            AuthError::ConflictingParameter { name } => (6, ErrorCode::A400PC, Some(name.clone())),
            AuthError::SignatureMethodNotAllowed { method } => {
                (7, ErrorCode::A400SM, Some(method.clone()))
            }
            AuthError::InvalidTimestamp => (8, ErrorCode::A400IT, None),
            AuthError::TimestampExpired => (9, ErrorCode::A400TE, None),
            AuthError::NonceUsed => (10, ErrorCode::A400NU, None),
            AuthError::InvalidContentMd5 => (11, ErrorCode::A400CM, None),
            AuthError::InvalidSignature { string_to_sign } => (
                12,
                ErrorCode::A403IS,
                Some(string_to_sign.replace('\n', "#")),
            ),
            AuthError::InvalidAppCode => (13, ErrorCode::A401AC, None),
            AuthError::AppCodeDisabled => (14, ErrorCode::A400AC, None),
            AuthError::Unauthorized => (15, ErrorCode::A403NA, None),
            AuthError::GrantExpired => (16, ErrorCode::A403EP, None),
            AuthError::AppDisabled => (17, ErrorCode::A403AD, None),
            AuthError::ReplayStore(r) => match r {
                ReplayError::Full { .. } | ReplayError::AppShareExceeded { .. } => {
                    (18, ErrorCode::X503BZ, None)
                }
                ReplayError::Unavailable(_) => (19, ErrorCode::X503NS, None),
                ReplayError::InvalidInput { name, reason } => {
                    (20, ErrorCode::I400HD, Some(format!("`{name}` {reason}")))
                }
            },
        };
        arms.hit(arm);
        check(e.into(), want, detail.as_deref())
    }

    fn mapping(e: MappingError, arms: &mut Arms<5>) -> ErrorCode {
        let (arm, want, detail) = match &e {
            MappingError::MissingHeader { name } => (0, ErrorCode::I400MH, Some(name.clone())),
            MappingError::MissingParameter { name, .. } => {
                (1, ErrorCode::I400MP, Some(name.clone()))
            }
            MappingError::InvalidParameter { name, rule } => {
                (2, ErrorCode::I400IP, Some(format!("`{name}`: {rule}")))
            }
            MappingError::InvalidBody { reason } => (3, ErrorCode::I400BD, Some(reason.clone())),
            MappingError::Config { .. } => (4, ErrorCode::X500ER, None),
        };
        arms.hit(arm);
        check(e.into(), want, detail.as_deref())
    }

    fn proxy_expect(e: &ProxyError) -> (usize, ErrorCode, Option<String>) {
        match e {
            ProxyError::InvalidTarget(_) => (0, ErrorCode::X500ER, None),
            ProxyError::InvalidRequest(_) => (1, ErrorCode::X500ER, None),
            ProxyError::InvalidBackendUri(_) => (9, ErrorCode::I400RU, Some("backend path".into())),
            ProxyError::Timeout { .. } => (2, ErrorCode::D504TO, None),
            ProxyError::Connect { reason, .. } => (3, ErrorCode::D504CO, Some(reason.clone())),
            ProxyError::BadResponse { .. } => (4, ErrorCode::D502FC, None),
            ProxyError::ResponseHeaderTooLarge { .. } => {
                (5, ErrorCode::D502FC, Some("header too large".into()))
            }
            ProxyError::Upstream { reason, .. } => (6, ErrorCode::N502RE, Some(reason.clone())),
            ProxyError::RequestBodyTooLarge { .. } => (7, ErrorCode::I413RL, None),
            ProxyError::RequestBody { .. } => (
                8,
                ErrorCode::I400BD,
                Some("request body stream failed".into()),
            ),
        }
    }

    fn proxy(e: ProxyError, arms: &mut Arms<10>) -> ErrorCode {
        let (arm, want, detail) = proxy_expect(&e);
        arms.hit(arm);
        check(e.into(), want, detail.as_deref())
    }

    fn proxy_samples() -> Vec<ProxyError> {
        let secret = || -> BoxError { SECRET.into() };
        vec![
            ProxyError::InvalidTarget(TargetError::MissingHost),
            ProxyError::InvalidBackendUri(
                http::Request::builder()
                    .uri(format!("/{SECRET}\u{7f}"))
                    .body(())
                    .unwrap_err(),
            ),
            ProxyError::InvalidRequest(
                http::Request::builder()
                    .uri(format!("http://{SECRET}\u{7f}"))
                    .body(())
                    .unwrap_err(),
            ),
            ProxyError::Timeout {
                timeout: Duration::from_millis(1),
            },
            ProxyError::Connect {
                reason: "Connection refused".into(),
                source: secret(),
            },
            ProxyError::BadResponse { source: secret() },
            ProxyError::ResponseHeaderTooLarge { source: secret() },
            ProxyError::Upstream {
                reason: "Connection is closed".into(),
                source: secret(),
            },
            ProxyError::RequestBodyTooLarge { source: secret() },
            ProxyError::RequestBody { source: secret() },
        ]
    }

    use crate::proxy::BoxError;

    fn store_error(kind: io::ErrorKind) -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(io::Error::new(kind, format!("/srv/{SECRET}/key"))),
        }
    }

    fn backend(g: GatewayError, arm: usize, arms: &mut Arms<17>) -> GatewayError {
        arms.hit(arm);
        g
    }

    #[test]
    fn every_error_that_reaches_a_client_renders_from_the_catalogue() {
        let mut seen = HashSet::new();

        let mut arms = Arms::new();
        for e in [
            AuthError::MissingCredentials,
            AuthError::InvalidAppKey,
            AuthError::MissingHeader {
                name: "X-Ca-Signature",
            },
            AuthError::InvalidHeader {
                name: "X-Ca-Nonce",
                reason: "too long",
            },
            AuthError::UnsignedHeader { name: "X-Ca-Nonce" },
            AuthError::DuplicateHeader {
                name: "x-ca-stage".into(),
            },
            AuthError::ConflictingParameter { name: "a".into() },
            AuthError::SignatureMethodNotAllowed {
                method: "HmacMD5".into(),
            },
            AuthError::InvalidTimestamp,
            AuthError::TimestampExpired,
            AuthError::NonceUsed,
            AuthError::InvalidContentMd5,
            AuthError::InvalidSignature {
                string_to_sign: "GET\n\n\n\n\n/p".into(),
            },
            AuthError::InvalidAppCode,
            AuthError::AppCodeDisabled,
            AuthError::Unauthorized,
            AuthError::GrantExpired,
            AuthError::AppDisabled,
            AuthError::ReplayStore(ReplayError::Full { capacity: 1 }),
            AuthError::ReplayStore(ReplayError::AppShareExceeded { share: 1 }),
            AuthError::ReplayStore(ReplayError::Unavailable(SECRET.into())),
            AuthError::ReplayStore(ReplayError::InvalidInput {
                name: "X-Ca-Nonce",
                reason: "is too long",
            }),
        ] {
            seen.insert(auth(e, &mut arms));
        }
        arms.all("AuthError");

        let mut arms = Arms::new();
        for e in [
            MappingError::MissingHeader { name: "x-u".into() },
            MappingError::MissingParameter {
                name: "p".into(),
                location: ParamLocation::Query,
            },
            MappingError::InvalidParameter {
                name: "age".into(),
                rule: "must be at most 150".into(),
            },
            MappingError::InvalidBody {
                reason: "the form is not UTF-8".into(),
            },
            MappingError::Config {
                reason: SECRET.into(),
            },
        ] {
            seen.insert(mapping(e, &mut arms));
        }
        arms.all("MappingError");

        let mut arms = Arms::new();
        for e in proxy_samples() {
            seen.insert(proxy(e, &mut arms));
        }
        arms.all("ProxyError");

        // The backend errors: an exhaustive match per enum gives the expectation.
        let mut arms = Arms::<17>::new();
        for e in [
            VpcError::Unresolved {
                instance_id: SECRET.into(),
                port: 80,
                reason: SECRET.into(),
            },
            VpcError::InvalidAddress(SECRET.into()),
        ] {
            let arm = match &e {
                VpcError::Unresolved { .. } => 0,
                VpcError::InvalidAddress(_) => 1,
            };
            let g = backend(e.into(), arm, &mut arms);
            seen.insert(check(g, ErrorCode::X504VE, None));
        }
        for e in [
            DiscoveryError::NoHealthyInstance(SECRET.into()),
            DiscoveryError::Registry(SECRET.into()),
            DiscoveryError::Unsupported(RegistryType::Zookeeper),
        ] {
            let (arm, want) = match &e {
                DiscoveryError::NoHealthyInstance(_) => (2, ErrorCode::D503NI),
                DiscoveryError::Registry(_) => (3, ErrorCode::D503RG),
                DiscoveryError::Unsupported(_) => (4, ErrorCode::X501NI),
            };
            let g = backend(e.into(), arm, &mut arms);
            seen.insert(check(g, want, None));
        }
        let mut functions = vec![
            FunctionError::NotFound(SECRET.into()),
            FunctionError::Failed(SECRET.into()),
            FunctionError::MalformedAnswer(SECRET.into()),
            FunctionError::Timeout(Duration::from_secs(1)),
        ];
        functions.extend(proxy_samples().into_iter().map(FunctionError::Transport));
        for e in functions {
            let (arm, want, detail) = match &e {
                FunctionError::NotFound(_) => (5, ErrorCode::D502FN, None),
                FunctionError::Failed(_) => (6, ErrorCode::D502FE, None),
                FunctionError::MalformedAnswer(_) => (7, ErrorCode::D502FC, None),
                FunctionError::Timeout(_) => (
                    8,
                    ErrorCode::D504TO,
                    Some("the function did not answer in time".to_owned()),
                ),
                FunctionError::Transport(p) => {
                    let (_, want, detail) = proxy_expect(p);
                    (9, want, detail)
                }
            };
            let g = backend(e.into(), arm, &mut arms);
            seen.insert(check(g, want, detail.as_deref()));
        }
        let mut events = vec![
            EventError::UnknownBus(SECRET.into()),
            EventError::Rejected(SECRET.into()),
        ];
        events.extend(proxy_samples().into_iter().map(EventError::Transport));
        for e in events {
            let (arm, want, detail) = match &e {
                EventError::UnknownBus(_) | EventError::Rejected(_) => {
                    (10, ErrorCode::D502EB, None)
                }
                EventError::Transport(p) => {
                    let (_, want, detail) = proxy_expect(p);
                    (11, want, detail)
                }
            };
            let g = backend(e.into(), arm, &mut arms);
            seen.insert(check(g, want, detail.as_deref()));
        }
        for e in [
            OssError::PermissionDenied {
                action: OssAction::PutObject,
                bucket: SECRET.into(),
            },
            OssError::PermissionDenied {
                action: OssAction::GetObject,
                bucket: SECRET.into(),
            },
            OssError::InvalidKey("empty key".into()),
            OssError::OutsideBucket {
                bucket: SECRET.into(),
            },
            OssError::NoStore {
                bucket: SECRET.into(),
                reason: SECRET.into(),
            },
            OssError::Store(store_error(io::ErrorKind::InvalidFilename)),
            OssError::Store(store_error(io::ErrorKind::PermissionDenied)),
        ] {
            let (arm, want, detail) = match &e {
                OssError::PermissionDenied { action, .. } => (
                    12,
                    ErrorCode::A403OP,
                    Some(format!(
                        "the gateway has no {} permission ({action:?})",
                        if action.writes() { "write" } else { "read" }
                    )),
                ),
                OssError::InvalidKey(reason) => (13, ErrorCode::I400PA, Some(reason.clone())),
                OssError::OutsideBucket { .. } => (14, ErrorCode::A403OP, None),
                OssError::NoStore { .. } => (15, ErrorCode::D502OS, None),
                OssError::Store(source) => {
                    let too_long = matches!(
                        source,
                        object_store::Error::Generic { source, .. }
                            if source.downcast_ref::<io::Error>().map(io::Error::kind)
                                == Some(io::ErrorKind::InvalidFilename)
                    );
                    if too_long {
                        (
                            16,
                            ErrorCode::I400PA,
                            Some("the object key has a segment that is too long".into()),
                        )
                    } else {
                        (16, ErrorCode::D502OS, None)
                    }
                }
            };
            let g = backend(e.into(), arm, &mut arms);
            seen.insert(check(g, want, detail.as_deref()));
        }
        arms.all("backend errors");

        // The gateway's own refusals.
        seen.insert(check(
            GatewayError::not_found("GET", "/v2/user"),
            ErrorCode::I404NF,
            Some("GET /v2/user"),
        ));
        seen.insert(check(
            GatewayError::invalid_stage(),
            ErrorCode::I400SG,
            None,
        ));
        for reason in [
            PathError::DotSegment,
            PathError::Backslash,
            PathError::EncodedSeparator,
        ] {
            let detail = reason.to_string();
            seen.insert(check(
                GatewayError::invalid_path(reason),
                ErrorCode::I400PA,
                Some(&detail),
            ));
        }
        seen.insert(check(
            GatewayError::body_too_large(),
            ErrorCode::I413RL,
            None,
        ));
        seen.insert(check(
            GatewayError::url_too_large(),
            ErrorCode::I413UL,
            None,
        ));
        seen.insert(check(GatewayError::internal(), ErrorCode::X500ER, None));
        seen.insert(check(
            GatewayError::unreadable_body(),
            ErrorCode::I400BD,
            Some("the request body could not be read"),
        ));
        for (code, detail) in [
            (ErrorCode::I403PT, "HTTPS"),
            (ErrorCode::I400RU, "backend path"),
            (ErrorCode::X501NI, "MOCK"),
        ] {
            seen.insert(check(
                GatewayError::with_detail(code, detail),
                code,
                Some(detail),
            ));
        }

        for (refusal, code) in [
            (crate::policy::PolicyRefusal::IpDenied, ErrorCode::A403IP),
            (
                crate::policy::PolicyRefusal::ApiThrottled,
                ErrorCode::T429PA,
            ),
            (
                crate::policy::PolicyRefusal::AppThrottled,
                ErrorCode::T429PR,
            ),
            (
                crate::policy::PolicyRefusal::SpecialThrottled,
                ErrorCode::T429SR,
            ),
        ] {
            seen.insert(check(refusal.into(), code, None));
        }

        // Every code of the catalogue is reached by some error: none is dead.
        let all: HashSet<_> = ErrorCode::ALL.iter().copied().collect();
        let missing: Vec<_> = all.difference(&seen).collect();
        assert!(missing.is_empty(), "codes no error renders: {missing:?}");
    }

    /// The internal detail stays with the error for the log: `Display`, not the wire.
    #[test]
    fn internal_detail_is_kept_for_the_log_only() {
        let g = GatewayError::from(VpcError::Unresolved {
            instance_id: SECRET.into(),
            port: 80,
            reason: "unknown instance".into(),
        });
        assert_eq!(g.message(), "VPC access failed");
        assert!(g.internal.as_deref().is_some_and(|i| i.contains(SECRET)));
        let g = GatewayError::from(MappingError::InvalidParameter {
            name: "age".into(),
            rule: "must be at most 150".into(),
        });
        assert_eq!(g.internal, None, "nothing beyond the wire message to log");
    }
}
