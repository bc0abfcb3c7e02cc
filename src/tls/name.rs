//! Whether a certificate's subject alternative names cover a domain.
//!
//! The rules, those of RFC 6125 as browsers apply them:
//! - names compare without regard to ASCII case, and a trailing dot is ignored;
//! - a port on the domain (`api.example.com:8443`, as a group's domain may carry) is ignored;
//! - `*.example.com` covers exactly one more label: `a.example.com`, not `example.com` nor
//!   `a.b.example.com`; a `*` anywhere else is only compared literally;
//! - an IP address is covered only by the same IP address among the IP SANs;
//! - the subject's common name is not consulted (as in rustls and every current browser).

use std::net::IpAddr;

/// The domain without its port or trailing dot, in lower case; and its IP address when it is one.
pub(super) fn normalize(domain: &str) -> (String, Option<IpAddr>) {
    let d = domain.trim();
    let host = if let Some(rest) = d.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else if d.matches(':').count() == 1 {
        d.split_once(':').map_or(d, |(h, _)| h)
    } else {
        d
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    (host, ip)
}

/// Whether `name`, a DNS SAN in lower case, covers `host` (normalized).
pub(super) fn dns_covers(name: &str, host: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name == host {
        return true;
    }
    let Some(parent) = name.strip_prefix("*.") else {
        return false;
    };
    match host.split_once('.') {
        Some((label, rest)) => {
            !label.is_empty() && label != "*" && rest == parent && parent.contains('.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ports_case_and_dots() {
        assert_eq!(normalize("API.Example.COM").0, "api.example.com");
        assert_eq!(normalize("api.example.com:8443").0, "api.example.com");
        assert_eq!(normalize("api.example.com.").0, "api.example.com");
        assert_eq!(normalize("[::1]:443").0, "::1");
        assert_eq!(normalize("[::1]:443").1, Some("::1".parse().unwrap()));
        assert_eq!(normalize("::1").1, Some("::1".parse().unwrap()));
        assert_eq!(
            normalize("10.0.0.1:80").1,
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(normalize("a.b").1, None);
    }

    #[test]
    fn exact_and_wildcard() {
        assert!(dns_covers("api.example.com", "api.example.com"));
        assert!(dns_covers("api.example.com.", "api.example.com"));
        assert!(!dns_covers("api.example.com", "www.example.com"));
        assert!(dns_covers("*.example.com", "api.example.com"));
        assert!(!dns_covers("*.example.com", "example.com"));
        assert!(!dns_covers("*.example.com", "a.b.example.com"));
        assert!(!dns_covers("*.example.com", ".example.com"));
        assert!(
            !dns_covers("*.com", "example.com"),
            "no wildcard over a top-level label"
        );
        assert!(!dns_covers("f*.example.com", "foo.example.com"));
        assert!(
            dns_covers("*.example.com", "*.example.com"),
            "the same wildcard, literally"
        );
    }
}
