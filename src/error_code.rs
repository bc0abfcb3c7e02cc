//! The catalogue of every gateway error code: the one place where a data-plane error's wire
//! code, HTTP status and `X-Ca-Error-Message` text are defined.
//!
//! Each code is six characters: a class letter (`I` invalid request, `A`
//! authentication/authorization, `T` throttling, `D` backend, `N` response transport, `X` gateway internal),
//! the three digits of the HTTP status, and a two-letter reason, as in "Error codes for API
//! Gateway instances of the VPC type" in Alibaba Cloud's documentation. Clients depend on the
//! codes and statuses; they never change.
//!
//! Every domain error ([`AuthError`](crate::auth::AuthError), [`MappingError`](crate::mapping::MappingError),
//! [`ProxyError`](crate::proxy::ProxyError), the backend errors in [`backend`](crate::backend))
//! implements [`WireError`]: it names its [`ErrorCode`] and, only where the table below allows
//! one, a client-facing *detail*. [`GatewayError`](crate::GatewayError) is built from any
//! `WireError` by one `From` conversion, which renders the message as the code's **template**
//! around the detail, or as the code's **message** when there is none.
//!
//! **The rule for detail:** the wire message names only what the client sent or can see
//! (a header or parameter name, the rule a value breaks, the request's method and path, the
//! server's StringToSign as Alibaba's gateway echoes it, the short connect reason from Alibaba's list).
//! It never carries internal detail: no instance id, bucket, function or service name, no
//! resolver, registry or handler text, no file system path. That detail goes to `tracing`
//! (`warn` for 5xx, `debug` otherwise) with the request id when the response is rendered.
//! A code whose template is "—" takes no detail at all.
//!
//! | code | status | message | template (`{}` = detail) | meaning |
//! |---|---|---|---|---|
//! | `I400BD` | 400 | Invalid Body | `Invalid Body: {}` | The body cannot be read or rewritten; detail: what is wrong with it (never its content). |
//! | `I400HD` | 400 | Invalid Header | `Invalid Header {}` | A signing header is malformed, too large, or named in `Connection`; detail: `` `name` reason ``. |
//! | `I400IP` | 400 | Invalid parameter | `Invalid parameter {}` | A parameter breaks a declared rule; detail: `` `name`: rule `` (never the value). |
//! | `I400MH` | 400 | Header is Required | ``Header `{}` is Required`` | A required header is absent; detail: its name. |
//! | `I400MP` | 400 | Parameter is Required | ``Parameter `{}` is Required`` | A required query, path or body parameter is absent; detail: its name. |
//! | `I400PA` | 400 | Invalid Request Path | ``Invalid Request Path `{}` `` | A path refused before routing, or an OSS object key refused; detail: the reason. |
//! | `I400RU` | 400 | Invalid Request Uri | ``Invalid Request Uri `{}` `` | The backend request URI cannot be built; detail: which part. |
//! | `I400SG` | 400 | Invalid Stage | — | An unknown or repeated `X-Ca-Stage`. |
//! | `I403PT` | 403 | Invalid protocol | `Invalid protocol {} unsupported` | The API does not accept this scheme; detail: `HTTP` or `HTTPS`. |
//! | `I404NF` | 404 | API not found | ``API not found with `{}` `` | No published API matches; detail: the request's method and path. |
//! | `I413RL` | 413 | Request body too Large | — | The body is larger than the limit. |
//! | `I413UL` | 413 | Request URL too Large | — | URL and headers are larger than the limit. |
//! | `A400AC` | 400 | AppCode authentication is disabled for this API | — | An AppCode was sent to an API whose AppCode mode is `DISABLE`. |
//! | `A400CM` | 400 | Invalid Content-MD5 | — | `Content-MD5` does not match the body. |
//! | `A400DH` | 400 | Header is repeated | ``Header `{}` is repeated`` | An `X-Ca-*` header was sent twice; detail: its name. |
//! | `A400IK` | 400 | Invalid AppKey | — | `X-Ca-Key` names no known app. |
//! | `A400IT` | 400 | Invalid Timestamp | — | `X-Ca-Timestamp` is not a number of milliseconds. |
//! | `A400MA` | 400 | Need authorization: X-Ca-Key or AppCode is required | — | No credentials. |
//! | `A400NU` | 400 | Nonce Used | — | `X-Ca-Nonce` was already used in the replay window. |
//! | `A400PC` | 400 | Parameter has different values in the query and the body | ``Parameter `{}` has different values in the query and the body`` | A key in both query and form with other values; detail: its name. |
//! | `A400SM` | 400 | Invalid Signature Method | ``Invalid Signature Method `{}` `` | `X-Ca-Signature-Method` unknown or not allowed; detail: the method sent. |
//! | `A400TE` | 400 | Timestamp Expired | — | `X-Ca-Timestamp` is outside the allowed skew. |
//! | `A400UH` | 400 | Header must be listed in X-Ca-Signature-Headers | ``Header `{}` must be listed in X-Ca-Signature-Headers`` | A header that must be signed is not; detail: its name. |
//! | `A401AC` | 401 | Invalid AppCode | — | The AppCode is unknown. |
//! | `A403AD` | 403 | App Disabled | — | The app is disabled. |
//! | `A403EP` | 403 | App authorization expired | — | The app's grant has expired. |
//! | `A403IP` | 403 | Access denied by IP Control | — | An IP-control policy bound to the API refuses the client address (the socket peer). |
//! | `A403IS` | 403 | Invalid Signature | ``Invalid Signature, Server StringToSign:`{}` `` | The signature does not match; detail: the server's StringToSign with `\n` as `#`, as Alibaba's gateway echoes it. |
//! | `A403NA` | 403 | Unauthorized | — | The app holds no grant for the API and stage. |
//! | `A403OP` | 403 | OSS access denied | `OSS access denied: {}` | The OSS definition does not allow the action; detail: the permission and action (never the bucket). |
//! | `T429PA` | 429 | Throttled by API Flow Control | — | The API's limit in the stage (throttling `api_default`, all callers together) is used up for this window. |
//! | `T429PR` | 429 | Throttled by APP Flow Control | — | The calling app's limit (throttling `app_default`) is used up for this window. |
//! | `T429SR` | 429 | Throttled by APP Special Flow Control | — | The calling app's special value (throttling `special_apps`) is used up for this window. |
//! | `D502EB` | 502 | Event bus request failed | — | The event bus is unknown or refused the event. |
//! | `D502FC` | 502 | Backend service response invalid | `Backend service response {}` | The backend (or a function) answered with something invalid; detail: `header too large`. |
//! | `D502FE` | 502 | Backend function failed | — | A Function Compute function ran and failed. |
//! | `D502FN` | 502 | Backend function not found | — | The function does not exist. |
//! | `D502OS` | 502 | Object storage request failed | — | The object store failed or is not configured. |
//! | `D503NI` | 503 | No healthy backend instance | — | Service discovery found no usable instance. |
//! | `D503RG` | 503 | Service registry unavailable | — | The service registry could not be asked. |
//! | `D504CO` | 504 | Backend service connect failed | `Backend service connect failed '{}'` | The backend connection failed; detail: Alibaba's short reason (`Connection refused`, `Timeout connecting to host:port`, ...). |
//! | `D504TO` | 504 | Backend service request timeout | `Backend service request timeout: {}` | No answer in time; detail: which kind of backend (`the function did not answer in time`). |
//! | `N502RE` | 502 | Backend service response error | `Backend service response error '{}'` | The exchange failed after connecting; detail: a short reason (`Connection is closed`, ...). |
//! | `X500ER` | 500 | Internal Error | — | A gateway fault or a configuration that cannot be applied. |
//! | `X501NI` | 501 | Backend type not served by this gateway | `Backend type {} is not served by this gateway` | No dispatcher or provider for the backend; detail: the backend type. |
//! | `X503BZ` | 503 | Service Busy | — | The replay guard cannot answer (full, or the app's share used). |
//! | `X503NS` | 503 | Nonce store unavailable | — | Sent when a request carries an `X-Ca-Nonce` and the shared nonce store (`RedisReplayGuard`) cannot be reached or does not answer within its timeout: the request is refused rather than accepted unchecked (fail closed). Retry later; requests without a nonce are unaffected. |
//! | `X504VE` | 504 | VPC access failed | — | A VPC target could not be resolved. |
//!
//! # Examples
//!
//! ```
//! use stagegate::ErrorCode;
//! let code = ErrorCode::I404NF;
//! assert_eq!(code.as_str(), "I404NF");
//! assert_eq!(code.status(), http::StatusCode::NOT_FOUND);
//! assert_eq!(code.message(), "API not found");
//! assert_eq!(code.render(Some("GET /v2/user")), "API not found with `GET /v2/user`");
//! assert_eq!(ErrorCode::X504VE.render(Some("i-123 unknown")), "VPC access failed");
//! ```

use std::borrow::Cow;

use http::StatusCode;

macro_rules! catalogue {
    ($($code:ident = $status:literal, $message:literal, $template:expr, $doc:literal;)*) => {
        /// A gateway error code: its wire text, HTTP status and default `X-Ca-Error-Message`
        /// (see the [module docs](self) for the table).
        ///
        /// # Examples
        ///
        /// ```
        /// use stagegate::ErrorCode;
        /// assert_eq!(ErrorCode::X503BZ.as_str(), "X503BZ");
        /// assert_eq!(ErrorCode::X503BZ.status().as_u16(), 503);
        /// assert_eq!(ErrorCode::X503BZ.to_string(), "X503BZ");
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(#[doc = $doc] $code,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            ///
            /// ```
            /// assert!(stagegate::ErrorCode::ALL.contains(&stagegate::ErrorCode::A403IS));
            /// ```
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The six-character wire code (`X-Ca-Error-Code`).
            ///
            /// ```
            /// assert_eq!(stagegate::ErrorCode::D504TO.as_str(), "D504TO");
            /// ```
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$code => stringify!($code),)*
                }
            }

            /// The HTTP status (the three digits of the code).
            ///
            /// ```
            /// assert_eq!(stagegate::ErrorCode::A401AC.status(), http::StatusCode::UNAUTHORIZED);
            /// ```
            #[must_use]
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$code => match StatusCode::from_u16($status) {
                        Ok(s) => s,
                        Err(_) => panic!("invalid status in the catalogue"),
                    },)*
                }
            }

            /// The default `X-Ca-Error-Message`, used when there is no detail.
            ///
            /// ```
            /// assert_eq!(stagegate::ErrorCode::X500ER.message(), "Internal Error");
            /// ```
            #[must_use]
            pub const fn message(self) -> &'static str {
                match self {
                    $(Self::$code => $message,)*
                }
            }

            /// The template around a detail, as `(before, after)`, or `None` for a code that
            /// never carries detail.
            ///
            /// ```
            /// use stagegate::ErrorCode;
            /// assert_eq!(ErrorCode::I400MH.template(), Some(("Header `", "` is Required")));
            /// assert_eq!(ErrorCode::X500ER.template(), None);
            /// ```
            #[must_use]
            pub const fn template(self) -> Option<(&'static str, &'static str)> {
                match self {
                    $(Self::$code => $template,)*
                }
            }
        }
    };
}

catalogue! {
    I400BD = 400, "Invalid Body", Some(("Invalid Body: ", "")), "The body cannot be read or rewritten.";
    I400HD = 400, "Invalid Header", Some(("Invalid Header ", "")), "A signing header is malformed, too large or named in `Connection`.";
    I400IP = 400, "Invalid parameter", Some(("Invalid parameter ", "")), "A parameter breaks a declared rule.";
    I400MH = 400, "Header is Required", Some(("Header `", "` is Required")), "A required header is absent.";
    I400MP = 400, "Parameter is Required", Some(("Parameter `", "` is Required")), "A required query, path or body parameter is absent.";
    I400PA = 400, "Invalid Request Path", Some(("Invalid Request Path `", "`")), "A request path (or OSS object key) is refused.";
    I400RU = 400, "Invalid Request Uri", Some(("Invalid Request Uri `", "`")), "The backend request URI cannot be built.";
    I400SG = 400, "Invalid Stage", None, "An unknown or repeated `X-Ca-Stage`.";
    I403PT = 403, "Invalid protocol", Some(("Invalid protocol ", " unsupported")), "The API does not accept this scheme.";
    I404NF = 404, "API not found", Some(("API not found with `", "`")), "No published API matches.";
    I413RL = 413, "Request body too Large", None, "The body is larger than the limit.";
    I413UL = 413, "Request URL too Large", None, "URL and headers are larger than the limit.";
    A400AC = 400, "AppCode authentication is disabled for this API", None, "AppCode sent to an API whose AppCode mode is `DISABLE`.";
    A400CM = 400, "Invalid Content-MD5", None, "`Content-MD5` does not match the body.";
    A400DH = 400, "Header is repeated", Some(("Header `", "` is repeated")), "An `X-Ca-*` header was sent twice.";
    A400IK = 400, "Invalid AppKey", None, "`X-Ca-Key` names no known app.";
    A400IT = 400, "Invalid Timestamp", None, "`X-Ca-Timestamp` is not a number of milliseconds.";
    A400MA = 400, "Need authorization: X-Ca-Key or AppCode is required", None, "No credentials.";
    A400NU = 400, "Nonce Used", None, "`X-Ca-Nonce` was already used in the replay window.";
    A400PC = 400, "Parameter has different values in the query and the body", Some(("Parameter `", "` has different values in the query and the body")), "A key in both query and form, with other values.";
    A400SM = 400, "Invalid Signature Method", Some(("Invalid Signature Method `", "`")), "`X-Ca-Signature-Method` unknown or not allowed.";
    A400TE = 400, "Timestamp Expired", None, "`X-Ca-Timestamp` is outside the allowed skew.";
    A400UH = 400, "Header must be listed in X-Ca-Signature-Headers", Some(("Header `", "` must be listed in X-Ca-Signature-Headers")), "A header that must be signed is not.";
    A401AC = 401, "Invalid AppCode", None, "The AppCode is unknown.";
    A403AD = 403, "App Disabled", None, "The app is disabled.";
    A403EP = 403, "App authorization expired", None, "The app's grant has expired.";
    A403IP = 403, "Access denied by IP Control", None, "An IP-control policy refuses the client address.";
    A403IS = 403, "Invalid Signature", Some(("Invalid Signature, Server StringToSign:`", "`")), "The signature does not match the server's StringToSign.";
    A403NA = 403, "Unauthorized", None, "The app holds no grant for the API and stage.";
    A403OP = 403, "OSS access denied", Some(("OSS access denied: ", "")), "The OSS definition does not allow the action.";
    T429PA = 429, "Throttled by API Flow Control", None, "The API's limit in the stage is used up for this window.";
    T429PR = 429, "Throttled by APP Flow Control", None, "The calling app's default limit is used up for this window.";
    T429SR = 429, "Throttled by APP Special Flow Control", None, "The calling app's special limit is used up for this window.";
    D502EB = 502, "Event bus request failed", None, "The event bus is unknown or refused the event.";
    D502FC = 502, "Backend service response invalid", Some(("Backend service response ", "")), "The backend answered with something invalid.";
    D502FE = 502, "Backend function failed", None, "A function ran and failed.";
    D502FN = 502, "Backend function not found", None, "The function does not exist.";
    D502OS = 502, "Object storage request failed", None, "The object store failed or is not configured.";
    D503NI = 503, "No healthy backend instance", None, "Service discovery found no usable instance.";
    D503RG = 503, "Service registry unavailable", None, "The service registry could not be asked.";
    D504CO = 504, "Backend service connect failed", Some(("Backend service connect failed '", "'")), "The backend connection failed.";
    D504TO = 504, "Backend service request timeout", Some(("Backend service request timeout: ", "")), "The backend did not answer in time.";
    N502RE = 502, "Backend service response error", Some(("Backend service response error '", "'")), "The exchange failed after connecting.";
    X500ER = 500, "Internal Error", None, "A gateway fault or a configuration that cannot be applied.";
    X501NI = 501, "Backend type not served by this gateway", Some(("Backend type ", " is not served by this gateway")), "No dispatcher or provider for the backend.";
    X503BZ = 503, "Service Busy", None, "The replay guard cannot answer (full, or the app's share used).";
    X503NS = 503, "Nonce store unavailable", None, "A request carries a nonce and the shared nonce store cannot be reached or does not answer in time: refused, never accepted unchecked.";
    X504VE = 504, "VPC access failed", None, "A VPC target could not be resolved.";
}

impl ErrorCode {
    /// The `X-Ca-Error-Message`: the template around `detail`, or the default
    /// [`message`](Self::message) when there is no detail or the code takes none (detail
    /// given to such a code is dropped, never sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ErrorCode;
    /// assert_eq!(ErrorCode::I400MH.render(Some("x-user")), "Header `x-user` is Required");
    /// assert_eq!(ErrorCode::I400MH.render(None), "Header is Required");
    /// assert_eq!(ErrorCode::D502OS.render(Some("bucket `b`")), "Object storage request failed");
    /// ```
    #[must_use]
    pub fn render(self, detail: Option<&str>) -> Cow<'static, str> {
        match (detail, self.template()) {
            (Some(detail), Some((before, after))) => {
                let mut s = String::with_capacity(before.len() + detail.len() + after.len());
                s.push_str(before);
                s.push_str(detail);
                s.push_str(after);
                Cow::Owned(s)
            }
            _ => Cow::Borrowed(self.message()),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// An error that can reach a client: it names its [`ErrorCode`] and, where the code's
/// template allows one, the client-facing detail for `X-Ca-Error-Message`.
///
/// [`GatewayError`](crate::GatewayError) implements `From` for every `WireError`: that one
/// conversion renders the message with [`ErrorCode::render`] and keeps the error's `Display`
/// text (internal detail) for the log only.
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use stagegate::{ErrorCode, GatewayError, WireError};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("quota store `q-7` unreachable")]
/// struct QuotaDown;
///
/// impl WireError for QuotaDown {
///     fn wire_code(&self) -> ErrorCode {
///         ErrorCode::X503BZ
///     }
/// }
///
/// let e = GatewayError::from(QuotaDown);
/// assert_eq!(e.code(), "X503BZ");
/// assert_eq!(e.message(), "Service Busy"); // `q-7` stays in the log
/// ```
pub trait WireError: std::fmt::Display {
    /// The catalogue code.
    fn wire_code(&self) -> ErrorCode;

    /// The client-facing detail that the code's template surrounds, if any. It must hold
    /// nothing internal (see the [module docs](self)); the default is none.
    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        None
    }

    /// The internal detail for the log, never sent (the default: the error's `Display`).
    fn internal_detail(&self) -> String {
        self.to_string()
    }

    /// The rendered `X-Ca-Error-Message`.
    ///
    /// ```
    /// use stagegate::WireError;
    /// use stagegate::auth::AuthError;
    /// assert_eq!(AuthError::NonceUsed.wire_text(), "Nonce Used");
    /// ```
    fn wire_text(&self) -> Cow<'static, str> {
        self.wire_code().render(self.wire_detail().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_characters_whose_digits_are_the_status() {
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert_eq!(s.len(), 6, "{s}");
            assert!(
                matches!(s.as_bytes()[0], b'I' | b'A' | b'T' | b'D' | b'N' | b'X'),
                "{s}"
            );
            assert_eq!(&s[1..4], code.status().as_str(), "{s}");
            assert!(s[4..].bytes().all(|b| b.is_ascii_uppercase()), "{s}");
            assert!(http::HeaderValue::from_str(code.message()).is_ok(), "{s}");
        }
        let unique: std::collections::HashSet<_> = ErrorCode::ALL.iter().collect();
        assert_eq!(unique.len(), ErrorCode::ALL.len());
    }

    /// The table in the module docs is the catalogue: same codes, statuses, messages and
    /// templates, in the same order.
    #[test]
    fn the_doc_table_matches_the_catalogue() {
        let src = include_str!("error_code.rs");
        let rows: Vec<Vec<String>> = src
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .map(|l| {
                format!("| `{l}")
                    .split(" | ")
                    .map(|c| c.trim_matches(|c| c == '|' || c == ' ').to_owned())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), ErrorCode::ALL.len());
        for (row, &code) in rows.iter().zip(ErrorCode::ALL) {
            assert_eq!(row[0], format!("`{code}`"));
            assert_eq!(row[1], code.status().as_str(), "{code}");
            assert_eq!(row[2], code.message(), "{code}");
            let template = match code.template() {
                None => "—".to_owned(),
                Some((a, b)) => format!("{a}{{}}{b}"),
            };
            let cell = row[3].trim_start_matches('`').trim_end_matches('`').trim();
            assert_eq!(cell, template.trim(), "{code}");
        }
    }

    #[test]
    fn detail_only_where_the_code_allows_it() {
        assert_eq!(ErrorCode::X504VE.render(Some("i-1")), "VPC access failed");
        assert_eq!(
            ErrorCode::A403IS.render(Some("GET#/p")),
            "Invalid Signature, Server StringToSign:`GET#/p`"
        );
        assert!(matches!(ErrorCode::X500ER.render(None), Cow::Borrowed(_)));
        assert_eq!(ErrorCode::I404NF, "I404NF");
    }
}
