//! [`UpstreamTarget`]: where a request is forwarded to.

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};

/// Why a string is not a valid upstream target.
///
/// # Examples
///
/// ```
/// use stagegate::proxy::{TargetError, UpstreamTarget};
///
/// let err = UpstreamTarget::parse("ftp://files.example.com").unwrap_err();
/// assert!(matches!(err, TargetError::UnsupportedScheme { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The string is not a URI at all.
    #[error("invalid upstream uri")]
    InvalidUri(#[from] http::uri::InvalidUri),
    /// The URI has no scheme (`http://` or `https://`).
    #[error("upstream uri has no scheme")]
    MissingScheme,
    /// The scheme is neither `http` nor `https`.
    #[error("unsupported upstream scheme `{scheme}`")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URI has no host.
    #[error("upstream uri has no host")]
    MissingHost,
    /// The URI carries `user:password@`, which is never sent to a backend.
    #[error("upstream uri must not carry user info")]
    UserInfo,
    /// The URI has a path or query; a target is only `scheme://host[:port]`.
    #[error("upstream uri must not have a path or query, found `{path}`")]
    UnexpectedPath {
        /// The path and query found.
        path: String,
    },
}

/// A backend base address, `scheme://host[:port]`, plus an optional `Host` header override.
///
/// The path is not part of the target: the caller rewrites the request's path and query to the
/// backend path before forwarding.
///
/// # Examples
///
/// ```
/// use http::HeaderValue;
/// use stagegate::proxy::UpstreamTarget;
///
/// let target = UpstreamTarget::parse("https://backend.internal:8443")?
///     .with_host_override(HeaderValue::from_static("api.example.com"));
/// assert_eq!(target.scheme_str(), "https");
/// assert_eq!(target.authority().as_str(), "backend.internal:8443");
/// assert_eq!(target.port(), 8443);
/// assert_eq!(target.host_override().unwrap(), "api.example.com");
///
/// // A trailing slash is accepted, anything else after the authority is not.
/// assert!(UpstreamTarget::parse("http://127.0.0.1/").is_ok());
/// assert!(UpstreamTarget::parse("http://127.0.0.1/v1").is_err());
/// # Ok::<(), stagegate::proxy::TargetError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTarget {
    scheme: Scheme,
    authority: Authority,
    host_override: Option<HeaderValue>,
    /// The HTTP/1.1 `Host` without an override: the authority without a default port,
    /// computed once instead of per request.
    host_header: HeaderValue,
    /// What the forwarder's pool files this target's connections under, computed once.
    pool_key: super::pool::PoolKey,
}

impl UpstreamTarget {
    /// Parses `scheme://host[:port]` (an optional trailing `/` is allowed).
    ///
    /// # Errors
    ///
    /// A [`TargetError`] when the string is not a URI, has no or an unsupported scheme, no host,
    /// user info, or a path or query.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::proxy::UpstreamTarget;
    ///
    /// assert!(UpstreamTarget::parse("http://10.0.0.5:8080").is_ok());
    /// assert!(UpstreamTarget::parse("10.0.0.5:8080").is_err());
    /// assert!(UpstreamTarget::parse("http://").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, TargetError> {
        let uri: Uri = s.trim().parse()?;
        let parts = uri.into_parts();
        let scheme = parts.scheme.ok_or(TargetError::MissingScheme)?;
        let authority = parts.authority.ok_or(TargetError::MissingHost)?;
        if let Some(path) = parts.path_and_query
            && !matches!(path.as_str(), "" | "/")
        {
            return Err(TargetError::UnexpectedPath {
                path: path.as_str().to_owned(),
            });
        }
        Self::new(scheme, authority)
    }

    /// Builds a target from its parts.
    ///
    /// # Errors
    ///
    /// A [`TargetError`] for a scheme other than `http`/`https`, an empty host or user info.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::uri::{Authority, Scheme};
    /// use stagegate::proxy::UpstreamTarget;
    ///
    /// let target = UpstreamTarget::new(Scheme::HTTP, Authority::from_static("127.0.0.1:9000"))?;
    /// assert_eq!(target.to_string(), "http://127.0.0.1:9000");
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn new(scheme: Scheme, authority: Authority) -> Result<Self, TargetError> {
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(TargetError::UnsupportedScheme {
                scheme: scheme.as_str().to_owned(),
            });
        }
        if authority.as_str().contains('@') {
            return Err(TargetError::UserInfo);
        }
        if authority.host().is_empty() {
            return Err(TargetError::MissingHost);
        }
        let host_header = default_host_header(&scheme, &authority);
        let pool_key = super::pool::PoolKey::new(&scheme, &authority);
        Ok(Self {
            scheme,
            authority,
            host_override: None,
            host_header,
            pool_key,
        })
    }

    /// Sends `host` as the backend request's `Host` header instead of the target authority.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderValue;
    /// let target = stagegate::proxy::UpstreamTarget::parse("http://10.0.0.5")?
    ///     .with_host_override(HeaderValue::from_static("svc.local"));
    /// assert_eq!(target.host_override().unwrap(), "svc.local");
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    #[must_use]
    pub fn with_host_override(mut self, host: HeaderValue) -> Self {
        self.host_override = Some(host);
        self
    }

    /// The scheme, `http` or `https`.
    ///
    /// # Examples
    ///
    /// ```
    /// let target = stagegate::proxy::UpstreamTarget::parse("https://example.com")?;
    /// assert_eq!(target.scheme(), &http::uri::Scheme::HTTPS);
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The scheme as a string.
    ///
    /// # Examples
    ///
    /// ```
    /// let target = stagegate::proxy::UpstreamTarget::parse("http://example.com")?;
    /// assert_eq!(target.scheme_str(), "http");
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn scheme_str(&self) -> &str {
        self.scheme.as_str()
    }

    /// The key of this target's connections in the forwarder's pool.
    pub(crate) fn pool_key(&self) -> &super::pool::PoolKey {
        &self.pool_key
    }

    /// The authority, `host[:port]`, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// let target = stagegate::proxy::UpstreamTarget::parse("http://example.com:81")?;
    /// assert_eq!(target.authority().host(), "example.com");
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The port connected to: the explicit one, else 80 for `http` and 443 for `https`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stagegate::proxy::UpstreamTarget::parse("https://example.com")?.port(), 443);
    /// assert_eq!(stagegate::proxy::UpstreamTarget::parse("http://example.com")?.port(), 80);
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or(if self.scheme == Scheme::HTTPS {
                443
            } else {
                80
            })
    }

    /// The `Host` header override, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::proxy::UpstreamTarget::parse("http://example.com")?.host_override().is_none());
    /// # Ok::<(), stagegate::proxy::TargetError>(())
    /// ```
    pub fn host_override(&self) -> Option<&HeaderValue> {
        self.host_override.as_ref()
    }

    /// The `Host` an HTTP/1.1 backend request carries when the target has no override: the
    /// authority, without the port when it is the scheme's default.
    pub(crate) fn default_host(&self) -> &HeaderValue {
        &self.host_header
    }

    /// `host:port` with the effective port, as used in connect error reasons.
    pub(crate) fn socket_label(&self) -> String {
        format!("{}:{}", self.authority.host(), self.port())
    }

    /// The absolute URI of `path_and_query` on this target.
    pub(crate) fn uri_for(&self, path_and_query: PathAndQuery) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// `host[:port]`, the port left out when it is the scheme's default (as HTTP clients send it).
fn default_host_header(scheme: &Scheme, authority: &Authority) -> HeaderValue {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let value = match authority.port_u16() {
        Some(port) if port == default_port => HeaderValue::from_str(authority.host()),
        _ => HeaderValue::from_str(authority.as_str()),
    };
    // An authority is always a valid header value; fall back to the host alone regardless.
    value.unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

impl FromStr for UpstreamTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_targets() {
        for bad in [
            "",
            "garbage with spaces",
            "http://",
            "example.com",
            "/just/a/path",
            "ftp://example.com",
            "http://user:pw@example.com",
            "http://example.com/v1",
            "http://example.com?x=1",
        ] {
            assert!(
                UpstreamTarget::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn default_host_drops_only_the_default_port() {
        for (target, host) in [
            ("http://example.com", "example.com"),
            ("http://example.com:80", "example.com"),
            ("http://example.com:443", "example.com:443"),
            ("https://example.com:443", "example.com"),
            ("https://example.com:8443", "example.com:8443"),
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("http://[::1]:80", "[::1]"),
            ("https://[::1]:8443", "[::1]:8443"),
        ] {
            let t = UpstreamTarget::parse(target).unwrap();
            assert_eq!(t.default_host(), host, "{target}");
        }
    }

    #[test]
    fn socket_label_fills_default_ports() {
        let t = UpstreamTarget::parse("https://[::1]").unwrap();
        assert_eq!(t.socket_label(), "[::1]:443");
        let t = UpstreamTarget::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(t.socket_label(), "127.0.0.1:9");
    }
}
