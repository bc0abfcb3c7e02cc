//! Validation of user input: [`ValidationError`] and the shared checks.

use super::id::truncate;

/// What is wrong with a piece of configuration.
///
/// Every constructor and `validate` method of the model returns this; the control plane refuses
/// the whole operation and changes nothing.
///
/// # Examples
///
/// ```
/// use stagegate::model::{ValidationError, validate_name};
/// assert!(matches!(validate_name("api name", "1bad"), Err(ValidationError::InvalidName { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A name breaks the naming rule.
    #[error("invalid {what} `{value}`: {rule}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The offending value (shortened).
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An identifier is malformed.
    #[error("invalid {what} `{value}`")]
    InvalidId {
        /// Which identifier.
        what: &'static str,
        /// The offending value (shortened).
        value: String,
    },
    /// A stage name that is not `TEST`, `PRE` or `RELEASE`.
    #[error("unknown stage `{0}`: expected TEST, PRE or RELEASE")]
    UnknownStage(String),
    /// A text field is longer than allowed.
    #[error("{what} is too long: {len} > {max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A URL is not acceptable.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidUrl {
        /// Which URL.
        what: &'static str,
        /// The offending value (shortened).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A path template is not acceptable.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The offending path (shortened).
        path: String,
        /// Why.
        reason: String,
    },
    /// Any other field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Which field.
        field: String,
        /// Why.
        reason: String,
    },
}

impl ValidationError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks a resource name: 4 to 50 characters, ASCII letters, digits and `_`, starting with a
/// letter (the original gateway's rule for groups, APIs and backend services).
///
/// # Errors
///
/// [`ValidationError::InvalidName`] naming the rule broken.
///
/// # Examples
///
/// ```
/// assert!(stagegate::model::validate_name("backend name", "testHttp").is_ok());
/// assert!(stagegate::model::validate_name("backend name", "a-b").is_err());
/// ```
pub fn validate_name(what: &'static str, name: &str) -> Result<(), ValidationError> {
    validate_name_len(what, name, 4, 50)
}

pub(crate) fn validate_name_len(
    what: &'static str,
    name: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    let err = |rule| {
        Err(ValidationError::InvalidName {
            what,
            value: truncate(name),
            rule,
        })
    };
    let len = name.chars().count();
    if len < min || len > max {
        return err(if min == 4 && max == 50 {
            "must be 4 to 50 characters"
        } else {
            "must be 4 to 26 characters"
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return err("must start with a letter");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return err("may hold only letters, digits and `_`");
    }
    Ok(())
}

pub(crate) fn validate_len(what: &'static str, s: &str, max: usize) -> Result<(), ValidationError> {
    let len = s.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { what, len, max });
    }
    Ok(())
}

/// Description fields: at most 180 characters.
pub(crate) fn validate_description(d: Option<&str>) -> Result<(), ValidationError> {
    d.map_or(Ok(()), |d| validate_len("description", d, 180))
}

/// A `scheme://host[:port]` base URL with no path, query or credentials.
pub(crate) fn validate_base_url(what: &'static str, url: &str) -> Result<(), ValidationError> {
    let bad = |reason| {
        Err(ValidationError::InvalidUrl {
            what,
            value: truncate(url),
            reason,
        })
    };
    if url.len() > 2048 {
        return bad("longer than 2048 bytes");
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return bad("not a URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return bad("scheme must be http or https"),
        None => return bad("missing scheme (http:// or https://)"),
    }
    let Some(authority) = uri.authority() else {
        return bad("missing host");
    };
    if authority.host().is_empty() {
        return bad("missing host");
    }
    if authority.as_str().contains('@') {
        return bad("credentials in the URL are not allowed");
    }
    if uri.query().is_some() {
        return bad("must not have a query");
    }
    // `http::Uri` reports "/" for both "http://h" and "http://h/"; only a real path is refused.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let after_authority =
        &url[after_scheme + authority.as_str().len().min(url.len() - after_scheme)..];
    if !(after_authority.is_empty() || after_authority == "/") {
        return bad("must not have a path (use the API's backend path)");
    }
    Ok(())
}

/// A header name or value supplied by configuration.
pub(crate) fn validate_header(name: &str, value: &str) -> Result<(), ValidationError> {
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ValidationError::field(
            "header name",
            format!("`{}` is not a valid header name", truncate(name)),
        )
    })?;
    http::HeaderValue::from_str(value).map_err(|_| {
        ValidationError::field(
            "header value",
            format!("value of `{}` is not a valid header value", truncate(name)),
        )
    })?;
    Ok(())
}

/// Whether a response header describes the connection or the message framing rather than the
/// message: `content-length`, `transfer-encoding`, the hop-by-hop headers of RFC 9110 §7.6.1
/// (`connection`, `keep-alive`, `te`, `trailer`, `upgrade`, `proxy-*`) and `host`. A canned
/// (MOCK) response may not set them: the server frames the message, and a definition that could
/// would inject or swallow responses on the client's connection. Case-insensitive.
pub(crate) fn is_framing_header(name: &str) -> bool {
    const NAMES: [&str; 8] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "host",
    ];
    let name = name.trim();
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// A host name (for Host overrides and domains): `host[:port]`.
pub(crate) fn validate_host(what: &'static str, host: &str) -> Result<(), ValidationError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .parse::<http::uri::Authority>()
            .is_ok_and(|a| !a.as_str().contains('@'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::field(
            what,
            format!("`{}` is not a host name", truncate(host)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for ok in [
            "http://h",
            "https://t:80",
            "http://a.b",
            "https://a.b:8443",
            "http://127.0.0.1:8080/",
            "http://[::1]:80",
        ] {
            assert!(validate_base_url("url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "a.b",
            "ftp://a.b",
            "http://",
            "http://a.b/path",
            "http://a.b?x=1",
            "http://u:p@a.b",
            "",
            "http://a b",
        ] {
            assert!(validate_base_url("url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("n", "abcd").is_ok());
        assert!(validate_name("n", "abc").is_err());
        assert!(validate_name("n", &"a".repeat(51)).is_err());
        assert!(validate_name("n", "_abc").is_err());
        assert!(validate_name("n", "abcé").is_err());
    }
}
