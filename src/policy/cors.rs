//! CORS per API and stage: the browser's preflight answered by the gateway, and the CORS
//! headers on every response of the API.
//!
//! The gateway answers an `OPTIONS` request carrying `Origin` and
//! `Access-Control-Request-Method` for a published path itself (204), before the method would
//! make it fall through: the route is looked up with the method the browser asks for. An
//! allowed origin gets `Access-Control-Allow-Origin` (the origin itself, or `*` when every
//! origin is allowed without credentials), `-Allow-Methods`, `-Allow-Headers`, `-Max-Age`,
//! and `-Allow-Credentials` when on; an origin not allowed gets none of them (the browser then
//! refuses). Every other response of the API to an allowed origin, error responses included,
//! gets `Access-Control-Allow-Origin`, `-Expose-Headers` and `-Allow-Credentials`. Responses
//! always carry `Vary: Origin` when the answer depends on it.
//!
//! Origins are exact (`https://app.example.com`, `http://localhost:8080`), a wildcard for
//! subdomains (`https://*.example.com`, which does not match `https://example.com`), or `*`.
//!
//! # Examples
//!
//! ```
//! use stagegate::policy::Cors;
//! let mut c = Cors::new(["https://*.example.com"]);
//! assert!(c.validate().is_ok());
//! assert!(c.allows_origin("https://shop.example.com"));
//! assert!(!c.allows_origin("https://example.com"));
//! c.allow_origins = vec!["*".into()];
//! c.allow_credentials = true;
//! assert!(c.validate().unwrap_err().to_string().contains("allow_credentials"));
//! ```

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde::{Deserialize, Serialize};

use crate::model::ValidationError;

/// Methods allowed when none are given.
pub const DEFAULT_ALLOW_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

/// Request headers allowed when none are given: every header a signed or AppCode request
/// carries.
pub const DEFAULT_ALLOW_HEADERS: &[&str] = &[
    "Accept",
    "Authorization",
    "Content-MD5",
    "Content-Type",
    "Date",
    "X-Ca-AppCode",
    "X-Ca-Key",
    "X-Ca-Nonce",
    "X-Ca-Request-Mode",
    "X-Ca-Signature",
    "X-Ca-Signature-Headers",
    "X-Ca-Signature-Method",
    "X-Ca-Stage",
    "X-Ca-Timestamp",
    "X-Ca-Version",
];

/// Response headers exposed to scripts when none are given.
pub const DEFAULT_EXPOSE_HEADERS: &[&str] =
    &["X-Ca-Request-Id", "X-Ca-Error-Code", "X-Ca-Error-Message"];

pub(crate) fn default_methods() -> Vec<String> {
    DEFAULT_ALLOW_METHODS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
pub(crate) fn default_headers() -> Vec<String> {
    DEFAULT_ALLOW_HEADERS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
pub(crate) fn default_expose() -> Vec<String> {
    DEFAULT_EXPOSE_HEADERS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
pub(crate) fn default_max_age() -> u32 {
    600
}

/// The longest `max_age_s` accepted: one day.
pub const MAX_AGE_LIMIT: u32 = 86_400;

/// A CORS policy's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins: exact, `scheme://*.domain` wildcards, or `*`.
    pub allow_origins: Vec<String>,
    /// Allowed methods (default [`DEFAULT_ALLOW_METHODS`]).
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (default [`DEFAULT_ALLOW_HEADERS`]); `*` allows whatever the
    /// browser asks for.
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read (default [`DEFAULT_EXPOSE_HEADERS`]).
    #[serde(default = "default_expose")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight, in seconds (default 600, at most 86400).
    #[serde(default = "default_max_age")]
    pub max_age_s: u32,
    /// Whether credentials (cookies, `Authorization`) may be sent (default `false`).
    #[serde(default)]
    pub allow_credentials: bool,
}

impl Cors {
    /// A policy for `origins` with every other setting at its default.
    pub fn new<S: Into<String>>(origins: impl IntoIterator<Item = S>) -> Self {
        Self {
            allow_origins: origins.into_iter().map(Into::into).collect(),
            allow_methods: default_methods(),
            allow_headers: default_headers(),
            expose_headers: default_expose(),
            max_age_s: default_max_age(),
            allow_credentials: false,
        }
    }

    /// Checks origins, methods and header names, and that `*` is not combined with
    /// credentials (browsers refuse that).
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.allow_origins.is_empty() {
            return Err(ValidationError::field(
                "allow_origins",
                "at least one origin is needed",
            ));
        }
        for (what, list) in [
            ("allow_origins", &self.allow_origins),
            ("allow_methods", &self.allow_methods),
            ("allow_headers", &self.allow_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            if list.len() > 100 {
                return Err(ValidationError::field(what, "at most 100 entries"));
            }
        }
        for (i, o) in self.allow_origins.iter().enumerate() {
            check_origin(o).map_err(|r| {
                ValidationError::field(
                    format!("allow_origins[{i}]"),
                    format!("`{}` {r}", crate::model::id::truncate(o)),
                )
            })?;
        }
        if self.allow_credentials && self.allow_origins.iter().any(|o| o == "*") {
            return Err(ValidationError::field(
                "allow_credentials",
                "cannot be true when allow_origins holds `*` (browsers refuse it)",
            ));
        }
        for (i, m) in self.allow_methods.iter().enumerate() {
            let ok = !m.is_empty()
                && m.bytes().all(|b| b.is_ascii_uppercase())
                && Method::from_bytes(m.as_bytes()).is_ok();
            if !ok {
                return Err(ValidationError::field(
                    format!("allow_methods[{i}]"),
                    "must be an upper-case HTTP method",
                ));
            }
        }
        for (what, list) in [
            ("allow_headers", &self.allow_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h != "*" && HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(ValidationError::field(
                        format!("{what}[{i}]"),
                        "must be a header name",
                    ));
                }
            }
        }
        if self.max_age_s > MAX_AGE_LIMIT {
            return Err(ValidationError::field(
                "max_age_s",
                format!("at most {MAX_AGE_LIMIT}"),
            ));
        }
        Ok(())
    }

    /// Whether `origin` (as the browser sent it) is allowed.
    #[must_use]
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| origin_matches(o, origin))
    }
}

fn check_origin(o: &str) -> Result<(), &'static str> {
    if o == "*" {
        return Ok(());
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return Err("is not an origin (scheme://host[:port])");
    };
    if scheme != "http" && scheme != "https" {
        return Err("must use http or https");
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        && !host.contains('*');
    if !ok {
        return Err("is not an origin: no path, no `*` except a leading `*.` subdomain wildcard");
    }
    Ok(())
}

fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some((scheme, rest)) = pattern.split_once("://*.") {
        // `https://*.example.com` matches `https://a.example.com`, `https://a.b.example.com`.
        return origin
            .get(..scheme.len() + 3)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{scheme}://")))
            && origin.len() > scheme.len() + 3 + rest.len() + 1
            && origin
                .get(origin.len() - rest.len() - 1..)
                .is_some_and(|s| s.starts_with('.') && s[1..].eq_ignore_ascii_case(rest));
    }
    pattern.eq_ignore_ascii_case(origin)
}

/// A CORS policy ready for the hot path: header values built once.
#[derive(Debug)]
pub(crate) struct CompiledCors {
    pub(crate) policy: Cors,
    any: bool,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
}

fn joined(list: &[String]) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    HeaderValue::from_str(&list.join(", ")).ok()
}

impl CompiledCors {
    pub(crate) fn compile(policy: &Cors) -> Self {
        Self {
            any: policy.allow_origins.iter().any(|o| o == "*") && !policy.allow_credentials,
            methods: joined(&policy.allow_methods).unwrap_or(HeaderValue::from_static("")),
            headers: if policy.allow_headers.iter().any(|h| h == "*") {
                None
            } else {
                joined(&policy.allow_headers)
            },
            expose: joined(&policy.expose_headers),
            max_age: HeaderValue::from(policy.max_age_s),
            policy: policy.clone(),
        }
    }

    /// The value of `Access-Control-Allow-Origin` for `origin`, if allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let o = origin.to_str().ok()?;
        self.policy.allows_origin(o).then(|| origin.clone())
    }

    /// The headers of a preflight answer; whether the origin was allowed.
    pub(crate) fn preflight(&self, req: &HeaderMap, out: &mut HeaderMap) -> bool {
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = req.get(header::ORIGIN) else {
            return false;
        };
        let Some(allow) = self.allow_origin(origin) else {
            return false;
        };
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        let headers = match &self.headers {
            Some(h) => Some(h.clone()),
            None => req.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
        };
        if let Some(h) = headers {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h);
        }
        out.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        if self.policy.allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        true
    }

    /// Adds the CORS headers of an actual response to a request from `origin`.
    pub(crate) fn actual(&self, origin: Option<&HeaderValue>, out: &mut HeaderMap) {
        if !self.any {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allow) = origin.and_then(|o| self.allow_origin(o)) else {
            return;
        };
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if let Some(e) = &self.expose {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        if self.policy.allow_credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        assert!(origin_matches(
            "https://a.example.com",
            "https://A.example.com"
        ));
        assert!(!origin_matches(
            "https://a.example.com",
            "http://a.example.com"
        ));
        assert!(origin_matches(
            "https://*.example.com",
            "https://x.y.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://evilexample.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "http://a.example.com"
        ));
        for bad in [
            "example.com",
            "ftp://x",
            "https://a/b",
            "https://a*.b",
            "https://",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflight_for_an_allowed_origin_only() {
        let c = CompiledCors::compile(&Cors::new(["https://app.example.com"]));
        let mut req = HeaderMap::new();
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        let mut out = HeaderMap::new();
        assert!(c.preflight(&req, &mut out));
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert!(
            out[header::ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .unwrap()
                .contains("X-Ca-Signature-Headers")
        );
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let mut out = HeaderMap::new();
        assert!(!c.preflight(&req, &mut out));
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}
