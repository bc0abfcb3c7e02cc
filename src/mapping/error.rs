//! [`MappingError`]: why a request's parameters could not be mapped, and its gateway error code.

use std::borrow::Cow;

use http::StatusCode;

use crate::error_code::{ErrorCode, WireError};
use crate::model::ParamLocation;

/// Why the parameters of a request could not be read, checked or mapped to the backend.
///
/// Each variant maps to one gateway error code (six characters: a class letter, the HTTP
/// status, a two-letter reason), with [`code`](Self::code), [`status`](Self::status) and
/// [`wire_message`](Self::wire_message) (the `X-Ca-Error-Message` text).
///
/// | variant | code | status | wire message |
/// |---|---|---|---|
/// | [`MissingHeader`](Self::MissingHeader) | `I400MH` | 400 | ``Header `name` is Required`` |
/// | [`MissingParameter`](Self::MissingParameter) | `I400MP` | 400 | ``Parameter `name` is Required`` |
/// | [`InvalidParameter`](Self::InvalidParameter) | `I400IP` | 400 | ``Invalid parameter `name`: rule`` |
/// | [`InvalidBody`](Self::InvalidBody) | `I400BD` | 400 | `Invalid Body: reason` |
/// | [`Config`](Self::Config) | `X500ER` | 500 | `Internal Error` |
///
/// Messages never quote the client's values, only parameter names and the rule that failed.
///
/// # Examples
///
/// ```
/// use stagegate::mapping::MappingError;
///
/// let err = MappingError::InvalidParameter { name: "age".into(), rule: "must be at most 150".into() };
/// assert_eq!(err.code(), stagegate::ErrorCode::I400IP.as_str());
/// assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
/// assert_eq!(err.wire_message(), "Invalid parameter `age`: must be at most 150");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A required header parameter is absent (and has no default).
    #[error("Header `{name}` is Required")]
    MissingHeader {
        /// The header's name as declared.
        name: String,
    },
    /// A required query, path or body parameter is absent (and has no default).
    #[error("Parameter `{name}` is Required")]
    MissingParameter {
        /// The parameter's name as declared.
        name: String,
        /// Where it was expected.
        location: ParamLocation,
    },
    /// A parameter's value breaks one of its rules (type, length, range, enum, pattern), or
    /// cannot be written where the backend expects it.
    #[error("Invalid parameter `{name}`: {rule}")]
    InvalidParameter {
        /// The parameter's (client-facing) name.
        name: String,
        /// The rule it breaks, e.g. `must be at most 150`.
        rule: String,
    },
    /// The form body cannot be read or rewritten.
    #[error("Invalid Body: {reason}")]
    InvalidBody {
        /// Why.
        reason: String,
    },
    /// The API's configuration cannot be applied (e.g. a backend path placeholder with no value).
    #[error("mapping configuration error: {reason}")]
    Config {
        /// What is wrong, for logs (not sent to clients).
        reason: String,
    },
}

impl WireError for MappingError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::MissingHeader { .. } => ErrorCode::I400MH,
            Self::MissingParameter { .. } => ErrorCode::I400MP,
            Self::InvalidParameter { .. } => ErrorCode::I400IP,
            Self::InvalidBody { .. } => ErrorCode::I400BD,
            Self::Config { .. } => ErrorCode::X500ER,
        }
    }

    /// Parameter names and the rule that failed, escaped to fit a header value; nothing for
    /// a configuration error.
    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::MissingHeader { name } | Self::MissingParameter { name, .. } => {
                Some(header_safe(name))
            }
            Self::InvalidParameter { name, rule } => Some(
                header_safe(&format!("`{name}`: {rule}"))
                    .into_owned()
                    .into(),
            ),
            Self::InvalidBody { reason } => Some(header_safe(reason)),
            Self::Config { .. } => None,
        }
    }
}

impl MappingError {
    /// The six-character gateway error code (`X-Ca-Error-Code`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ErrorCode;
    /// let err = stagegate::mapping::MappingError::MissingHeader { name: "x-user".into() };
    /// assert_eq!(err.code(), ErrorCode::I400MH.as_str());
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.wire_code().as_str()
    }

    /// The HTTP status of the gateway's error response.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = stagegate::mapping::MappingError::Config { reason: "x".into() };
    /// assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.wire_code().status()
    }

    /// The `X-Ca-Error-Message` text: always a valid header value (characters outside visible
    /// ASCII are escaped); configuration details are not disclosed.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = stagegate::mapping::MappingError::MissingHeader { name: "x-user".into() };
    /// assert_eq!(err.wire_message(), "Header `x-user` is Required");
    /// let err = stagegate::mapping::MappingError::Config { reason: "secret detail".into() };
    /// assert_eq!(err.wire_message(), "Internal Error");
    /// ```
    #[must_use]
    pub fn wire_message(&self) -> String {
        self.wire_text().into_owned()
    }
}

/// Escapes everything outside visible ASCII and space, so the text fits a header value.
fn header_safe(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_message_is_header_safe() {
        let err = MappingError::InvalidParameter {
            name: "q".into(),
            rule: "must be one of é, \r\n".into(),
        };
        let msg = err.wire_message();
        assert!(http::HeaderValue::from_str(&msg).is_ok(), "{msg}");
        assert!(msg.contains("\\u{e9}"));
    }

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (
                MappingError::MissingHeader { name: "a".into() },
                crate::ErrorCode::I400MH.as_str(),
                400,
            ),
            (
                MappingError::MissingParameter {
                    name: "a".into(),
                    location: ParamLocation::Query,
                },
                crate::ErrorCode::I400MP.as_str(),
                400,
            ),
            (
                MappingError::InvalidParameter {
                    name: "a".into(),
                    rule: "r".into(),
                },
                crate::ErrorCode::I400IP.as_str(),
                400,
            ),
            (
                MappingError::InvalidBody { reason: "r".into() },
                crate::ErrorCode::I400BD.as_str(),
                400,
            ),
            (
                MappingError::Config { reason: "r".into() },
                crate::ErrorCode::X500ER.as_str(),
                500,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.status().as_u16(), status);
            assert_eq!(err.code()[1..4].parse::<u16>().ok(), Some(status));
        }
    }
}
