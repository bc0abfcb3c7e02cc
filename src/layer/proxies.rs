//! Which peers may say who the client is: [`TrustedProxies`].
//!
//! A load balancer or TLS-terminating proxy in front of the gateway connects from its own
//! address, and says whom it serves in `X-Forwarded-For` / `X-Real-IP` and which scheme the
//! client used in `X-Forwarded-Proto` / `Forwarded: proto=`. Anyone can send those headers, so
//! the gateway believes them only from a peer inside a configured trusted CIDR, and by default
//! from nobody: the client is the socket peer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The CIDRs of the proxies whose forwarding headers the gateway believes.
///
/// From a peer inside one of them:
///
/// * **the client** is found in `X-Forwarded-For`, read from the right: the first address that
///   is not itself a trusted proxy (every line of the header, joined). When every listed address
///   is trusted, the leftmost is the client. An entry that is not an IP address stops the walk:
///   what lies left of it is not believed, and the client is the last address believed (the peer
///   when that is the rightmost entry). Without `X-Forwarded-For`, `X-Real-IP` is believed.
/// * **the scheme** is the first value of `X-Forwarded-Proto`, else the `proto=` of the first
///   element of `Forwarded` (RFC 7239): `https` or `http`, in any case; anything else is ignored.
///
/// From any other peer these headers change nothing: the client is the peer, the scheme is the
/// connection's ([`ConnectionInfo`](super::ConnectionInfo)). Headers-derived client addresses
/// carry port 0. The address decides IP access control, `CaClientIp` and the access log;
/// `X-Forwarded-For` to the backend still appends the socket peer, as every proxy does.
///
/// Empty by default (nobody is trusted). Mount it with
/// [`GatewayLayer::with_trusted_proxies`](crate::GatewayLayer::with_trusted_proxies).
///
/// # Examples
///
/// ```
/// use stagegate::layer::TrustedProxies;
///
/// let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7, fd00::/8".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(proxies.contains("192.0.2.7".parse().unwrap()));
/// assert!(!proxies.contains("192.0.2.8".parse().unwrap()));
/// // an IPv4 peer seen on a dual-stack socket
/// assert!(proxies.contains("::ffff:10.9.9.9".parse().unwrap()));
///
/// let e = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
/// assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
/// assert!(TrustedProxies::default().is_empty());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Trusts the given networks.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::layer::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::new(["127.0.0.1/32".parse().unwrap()]);
    /// assert!(proxies.contains("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// Whether no proxy is trusted (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::layer::TrustedProxies;
    ///
    /// assert!(TrustedProxies::default().is_empty());
    /// assert!(!"::1".parse::<TrustedProxies>().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted networks.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::layer::TrustedProxies;
    ///
    /// let proxies: TrustedProxies = "10.0.0.1/8".parse().unwrap();
    /// assert_eq!(proxies.networks()[0].to_string(), "10.0.0.0/8");
    /// ```
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is inside a trusted network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) count as their IPv4 address.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::layer::TrustedProxies;
    ///
    /// let proxies: TrustedProxies = "2001:db8::/32".parse().unwrap();
    /// assert!(proxies.contains("2001:db8::1".parse().unwrap()));
    /// assert!(!proxies.contains("2001:db9::1".parse().unwrap()));
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client and the scheme of a request that came from `peer`: see the type's docs.
    /// `None` for the scheme means "what the connection says".
    pub(crate) fn resolve(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> (Option<SocketAddr>, Option<bool>) {
        let Some(p) = peer else {
            return (peer, None);
        };
        if self.is_empty() || !self.contains(p.ip()) {
            return (peer, None);
        }
        // `X-Real-IP` only without `X-Forwarded-For`: a forwarded chain that names nobody
        // believable leaves the client at the peer, as documented.
        let named = if headers.contains_key(&X_FORWARDED_FOR) {
            self.forwarded_client(headers)
        } else {
            real_ip(headers)
        };
        let client = named.map_or(p, |ip| SocketAddr::new(ip, 0));
        (Some(client), forwarded_https(headers))
    }

    /// The client named by `X-Forwarded-For`, walked from the right; `None` when its rightmost
    /// entry is not an address.
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut believed = None;
        // Every line, right to left, every entry of a line right to left: no allocation.
        let entries = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|v| v.as_bytes().rsplit(|&b| b == b','));
        for entry in entries {
            let Some(ip) = parse_ip(entry) else { break };
            believed = Some(ip);
            if !self.contains(ip) {
                break;
            }
        }
        believed
    }
}

/// `X-Real-IP`, when it holds one address.
fn real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let mut all = headers.get_all(&X_REAL_IP).iter();
    let one = all.next()?;
    if all.next().is_some() {
        return None;
    }
    parse_ip(one.as_bytes())
}

/// `X-Forwarded-Proto`'s first value, else `Forwarded`'s first `proto=`: `Some(true)` for
/// https, `Some(false)` for http, `None` when absent or anything else.
fn forwarded_https(headers: &HeaderMap) -> Option<bool> {
    if let Some(v) = headers.get(&X_FORWARDED_PROTO) {
        let first = v
            .as_bytes()
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default();
        return scheme(first);
    }
    let v = headers.get(FORWARDED)?;
    let first = v.as_bytes().split(|&b| b == b',').next()?;
    first.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        if !name.eq_ignore_ascii_case(b"proto") {
            return None;
        }
        let value = &value[1..];
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        scheme(value)
    })
}

fn scheme(value: &[u8]) -> Option<bool> {
    let value = value.trim_ascii();
    if value.eq_ignore_ascii_case(b"https") {
        Some(true)
    } else if value.eq_ignore_ascii_case(b"http") {
        Some(false)
    } else {
        None
    }
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678`, `[2001:db8::1]:5678`.
fn parse_ip(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

/// A trusted-proxy list that does not parse: names the entry.
///
/// # Examples
///
/// ```
/// use stagegate::layer::TrustedProxies;
///
/// let e = "10.0.0.0/8,not-an-address".parse::<TrustedProxies>().unwrap_err();
/// assert_eq!(e.entry(), "not-an-address");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxiesError {
    entry: String,
}

impl TrustedProxiesError {
    /// The entry that is neither an IP address nor a CIDR.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::layer::TrustedProxies;
    ///
    /// assert_eq!("1.2.3.4/40".parse::<TrustedProxies>().unwrap_err().entry(), "1.2.3.4/40");
    /// ```
    pub fn entry(&self) -> &str {
        &self.entry
    }
}

impl fmt::Display for TrustedProxiesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trusted proxy `{}` is neither an IP address nor a CIDR (like 10.0.0.0/8 or fd00::/8)",
            self.entry.escape_debug()
        )
    }
}

impl std::error::Error for TrustedProxiesError {}

impl std::str::FromStr for TrustedProxies {
    type Err = TrustedProxiesError;

    /// A comma- or whitespace-separated list of CIDRs and single addresses; empty trusts none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nets = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| TrustedProxiesError {
                        entry: e.chars().take(64).collect(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(nets))
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.nets.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn proxies() -> TrustedProxies {
        "10.0.0.0/8, ::1".parse().unwrap()
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 4000))
    }

    fn client(p: &TrustedProxies, h: &[(&str, &str)], from: &str) -> String {
        p.resolve(&headers(h), peer(from))
            .0
            .unwrap()
            .ip()
            .to_string()
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let h = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-real-ip", "2.2.2.2"),
            ("x-forwarded-proto", "https"),
        ];
        let (c, https) = TrustedProxies::default().resolve(&headers(&h), peer("10.0.0.1"));
        assert_eq!(c, peer("10.0.0.1"));
        assert_eq!(https, None);
    }

    #[test]
    fn an_untrusted_peer_changes_nothing() {
        let p = proxies();
        let h = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ];
        let (c, https) = p.resolve(&headers(&h), peer("203.0.113.9"));
        assert_eq!(c, peer("203.0.113.9"));
        assert_eq!(https, None);
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = proxies();
        // a spoofed leftmost entry is not believed: 198.51.100.1 was appended by our proxy
        let h = [("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.5")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "198.51.100.1");
        // several lines are one list
        let h = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.1:5555, 10.2.2.2"),
        ];
        assert_eq!(client(&p, &h, "10.0.0.1"), "198.51.100.1");
        // every hop trusted: the leftmost
        let h = [("x-forwarded-for", "10.9.9.9, 10.0.0.5")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.9.9.9");
        // IPv6, bracketed with a port
        let h = [("x-forwarded-for", "[2001:db8::7]:443")];
        assert_eq!(client(&p, &h, "::1"), "2001:db8::7");
    }

    #[test]
    fn garbage_stops_the_walk() {
        let p = proxies();
        let h = [("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.5")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.0.0.5");
        let h = [("x-forwarded-for", "1.1.1.1, garbage")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.0.0.1");
        let h = [("x-forwarded-for", "")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.0.0.1");
        // X-Real-IP is not a fallback for a chain that names nobody believable
        let h = [
            ("x-forwarded-for", "garbage"),
            ("x-real-ip", "198.51.100.4"),
        ];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn x_real_ip_when_there_is_no_forwarded_for() {
        let p = proxies();
        assert_eq!(
            client(&p, &[("x-real-ip", "198.51.100.4")], "10.0.0.1"),
            "198.51.100.4"
        );
        // two of them: neither is believed
        let h = [("x-real-ip", "198.51.100.4"), ("x-real-ip", "198.51.100.5")];
        assert_eq!(client(&p, &h, "10.0.0.1"), "10.0.0.1");
        assert_eq!(client(&p, &[("x-real-ip", "nope")], "10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn the_scheme_from_a_trusted_proxy() {
        let p = proxies();
        let https = |h: &[(&str, &str)]| p.resolve(&headers(h), peer("10.0.0.1")).1;
        assert_eq!(https(&[("x-forwarded-proto", "HTTPS")]), Some(true));
        assert_eq!(https(&[("x-forwarded-proto", "http")]), Some(false));
        assert_eq!(https(&[("x-forwarded-proto", "https, http")]), Some(true));
        assert_eq!(https(&[("x-forwarded-proto", "wss")]), None);
        assert_eq!(
            https(&[("forwarded", "for=1.2.3.4;proto=https;by=x, proto=http")]),
            Some(true)
        );
        assert_eq!(https(&[("forwarded", "Proto=\"http\"")]), Some(false));
        assert_eq!(https(&[("forwarded", "proto")]), None);
        assert_eq!(https(&[]), None);
    }

    #[test]
    fn parsing_names_the_bad_entry_and_accepts_addresses() {
        let p: TrustedProxies = " 192.0.2.1\n2001:db8::/48 ".parse().unwrap();
        assert_eq!(p.networks().len(), 2);
        assert!(p.contains("2001:db8:0:ffff::1".parse().unwrap()));
        for bad in ["10.0.0.0/", "300.1.1.1", "fe80::/129", "*"] {
            let e = bad.parse::<TrustedProxies>().unwrap_err();
            assert_eq!(e.entry(), bad);
        }
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let long = "x".repeat(1000);
        assert_eq!(
            long.parse::<TrustedProxies>().unwrap_err().entry().len(),
            64
        );
    }
}
