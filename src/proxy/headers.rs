//! Header rules for forwarding: hop-by-hop stripping and `X-Forwarded-*`.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message, so a proxy
//! removes them in both directions: `Connection` and every header it names, `Keep-Alive`,
//! `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
//! `Transfer-Encoding` and `Upgrade`. Hyper frames each message again on its own connection.
//! Upgrades (WebSocket) are therefore not forwarded.
//!
//! # Examples
//!
//! ```
//! use http::HeaderMap;
//! use stagegate::strip_hop_by_hop;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("connection", "close, x-trace".parse().unwrap());
//! headers.insert("x-trace", "1".parse().unwrap());
//! headers.insert("keep-alive", "timeout=5".parse().unwrap());
//! headers.insert("content-type", "text/plain".parse().unwrap());
//! strip_hop_by_hop(&mut headers);
//! assert_eq!(headers.len(), 1);
//! assert!(headers.contains_key("content-type"));
//! ```

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The fixed hop-by-hop header names (those named in `Connection` come on top).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes every hop-by-hop header, including each header named in `Connection`.
///
/// Unparsable tokens in `Connection` are ignored.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("transfer-encoding", "chunked".parse().unwrap());
/// headers.insert("proxy-authorization", "Basic Zm9v".parse().unwrap());
/// headers.insert("connection", "X-Secret".parse().unwrap());
/// headers.insert("x-secret", "s".parse().unwrap());
/// stagegate::strip_hop_by_hop(&mut headers);
/// assert!(headers.is_empty());
/// ```
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Adds the `X-Forwarded-*` headers for a request on its way to the backend.
///
/// * `X-Forwarded-For`: `client` is appended to the list already present (several header lines
///   are joined into one comma-separated list); without a `client` the header is left alone.
/// * `X-Forwarded-Proto`: set to `proto` when known (replacing what the client sent), else kept.
/// * `X-Forwarded-Host`: set to `host` when known (replacing what the client sent), else kept.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, uri::Scheme};
/// use std::net::{IpAddr, Ipv4Addr};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
/// stagegate::append_forwarded_headers(
///     &mut headers,
///     Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
///     Some(&Scheme::HTTPS),
///     Some(&HeaderValue::from_static("api.example.com")),
/// );
/// assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 10.0.0.1");
/// assert_eq!(headers["x-forwarded-proto"], "https");
/// assert_eq!(headers["x-forwarded-host"], "api.example.com");
/// ```
pub fn append_forwarded_headers(
    headers: &mut HeaderMap,
    client: Option<IpAddr>,
    proto: Option<&Scheme>,
    host: Option<&HeaderValue>,
) {
    if let Some(client) = client {
        let mut list = String::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            // Non-UTF-8 values cannot be part of a sane address list: drop them.
            if let Ok(value) = value.to_str() {
                let value = value.trim();
                if !value.is_empty() {
                    list.push_str(value);
                    list.push_str(", ");
                }
            }
        }
        list.push_str(&client.to_string());
        if let Ok(value) = HeaderValue::from_str(&list) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if let Some(proto) = proto
        && let Ok(value) = HeaderValue::from_str(proto.as_str())
    {
        headers.insert(X_FORWARDED_PROTO, value);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn strips_every_listed_name_and_connection_tokens() {
        let mut headers = HeaderMap::new();
        for name in HOP_BY_HOP.iter() {
            headers.insert(name.clone(), HeaderValue::from_static("x"));
        }
        headers.append(header::CONNECTION, HeaderValue::from_static("X-A , x-b"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("x-c,,bad name"),
        );
        for name in ["x-a", "x-b", "x-c", "x-keep"] {
            headers.insert(name, HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-keep"]);
    }

    #[test]
    fn forwarded_for_joins_multiple_lines() {
        let mut headers = HeaderMap::new();
        headers.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("3.3.3.3"));
        append_forwarded_headers(
            &mut headers,
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            None,
            None,
        );
        assert_eq!(headers.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(headers[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 3.3.3.3, ::1");
        assert!(!headers.contains_key(&X_FORWARDED_PROTO));
    }

    #[test]
    fn without_client_the_list_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        append_forwarded_headers(&mut headers, None, Some(&Scheme::HTTPS), None);
        assert_eq!(headers[&X_FORWARDED_FOR], "1.1.1.1");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
    }
}
