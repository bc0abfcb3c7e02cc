//! Header rules for forwarding: hop-by-hop stripping and `X-Forwarded-*`.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message, so a proxy
//! removes them in both directions: `Connection` and every header it names, `Keep-Alive`,
//! `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
//! `Transfer-Encoding` and `Upgrade`. Hyper frames each message again on its own connection.
//! Upgrades (WebSocket) are therefore not forwarded.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// How many headers [`append_forwarded_headers`] may add (`X-Forwarded-For`, `-Proto`,
/// `-Host`): whoever builds a backend request's header map can make room for them up front.
pub(crate) const FORWARDED_HEADERS: usize = 3;

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
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of a lookup per listed name.
    // (`Connection` is listed, so without any listed name there is nothing it could name.)
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
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

/// Whether `name` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Adds the `X-Forwarded-*` headers for a request on its way to the backend.
///
/// * `X-Forwarded-For`: `client` is appended to the list already present (several header lines
///   are joined into one comma-separated list); without a `client` the header is left alone.
/// * `X-Forwarded-Proto`: set to `proto` when known (replacing what the client sent), else kept.
/// * `X-Forwarded-Host`: set to `host` when known (replacing what the client sent), else kept.
pub(crate) fn append_forwarded_headers(
    headers: &mut HeaderMap,
    client: Option<IpAddr>,
    proto: Option<&Scheme>,
    host: Option<&HeaderValue>,
) {
    if let Some(client) = client {
        let value = if headers.contains_key(&X_FORWARDED_FOR) {
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
            HeaderValue::from_str(&list).ok()
        } else {
            // The common case, once per request: the address alone, formatted on the stack.
            let mut buf = [0u8; 48];
            HeaderValue::from_bytes(format_ip(client, &mut buf)).ok()
        };
        if let Some(value) = value {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if let Some(proto) = proto {
        // The two schemes a gateway sees are static values; anything else is copied.
        let value = if *proto == Scheme::HTTP {
            Some(HeaderValue::from_static("http"))
        } else if *proto == Scheme::HTTPS {
            Some(HeaderValue::from_static("https"))
        } else {
            HeaderValue::from_str(proto.as_str()).ok()
        };
        if let Some(value) = value {
            headers.insert(X_FORWARDED_PROTO, value);
        }
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// `ip` in its usual text form, written into `buf` (large enough for any IPv6 address).
fn format_ip(ip: IpAddr, buf: &mut [u8; 48]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            // Dotted decimal by hand: `Display` goes through the formatting machinery.
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            // 45 bytes at most ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
            let _ = write!(cursor, "{v6}");
            let n = usize::try_from(cursor.position()).unwrap_or(0);
            &buf[..n]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn forwarded_headers_counts_what_is_added() {
        let mut headers = HeaderMap::new();
        append_forwarded_headers(
            &mut headers,
            Some(IpAddr::from(Ipv6Addr::LOCALHOST)),
            Some(&Scheme::HTTPS),
            Some(&HeaderValue::from_static("api.example.com")),
        );
        assert_eq!(headers.len(), FORWARDED_HEADERS);
    }

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
    fn addresses_format_like_display() {
        let mut buf = [0u8; 48];
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.1.255",
            "255.255.255.255",
            "1.100.10.9",
            "::1",
            "::ffff:192.0.2.1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(format_ip(parsed, &mut buf), parsed.to_string().as_bytes());
        }
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_as_is() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let before = headers.clone();
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
        for name in HOP_BY_HOP.iter() {
            assert!(is_hop_by_hop(name), "{name}");
        }
        assert!(!is_hop_by_hop(&header::HOST));
    }

    #[test]
    fn forwarded_proto_of_any_scheme() {
        let mut headers = HeaderMap::new();
        let other: Scheme = "wss".parse().unwrap();
        append_forwarded_headers(&mut headers, None, Some(&other), None);
        assert_eq!(headers[&X_FORWARDED_PROTO], "wss");
        append_forwarded_headers(&mut headers, None, Some(&Scheme::HTTP), None);
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
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

    #[test]
    fn strip_removes_connection_named_and_listed_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "close, x-trace".parse().unwrap());
        headers.insert("x-trace", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("content-type"));
    }

    #[test]
    fn strip_leaves_nothing_of_hop_by_hop_only_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("proxy-authorization", "Basic Zm9v".parse().unwrap());
        headers.insert("connection", "X-Secret".parse().unwrap());
        headers.insert("x-secret", "s".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn forwarded_headers_append_for_and_set_proto_and_host() {
        use std::net::Ipv4Addr;

        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        append_forwarded_headers(
            &mut headers,
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            Some(&Scheme::HTTPS),
            Some(&HeaderValue::from_static("api.example.com")),
        );
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 10.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "api.example.com");
    }
}
