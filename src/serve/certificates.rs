//! [`Certificates`]: the server certificates a TLS listener offers, chosen by the client's server
//! name (SNI) and replaced while the listener serves.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

/// TLS sessions the server remembers for resumption by session id (TLS 1.2 clients that do not
/// take tickets); about 100 bytes each.
pub const SESSION_CACHE_SIZE: usize = 4096;

/// The protocols a config from [`Certificates::server_config`] offers by ALPN, most preferred
/// first: HTTP/2, then HTTP/1.1.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A server name that [`Certificates`] cannot hold a certificate for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "server name `{name}` is neither a DNS name (`api.example.com`) nor a wildcard over one (`*.example.com`)"
)]
pub struct InvalidServerName {
    /// The name as given.
    pub name: String,
}

/// The certificates of a TLS listener: an optional default, and one per server name, exact
/// (`api.example.com`) or wildcard (`*.example.com`, which matches exactly one more label:
/// `a.example.com`, not `example.com` nor `a.b.example.com`).
///
/// It is the listener's [`ResolvesServerCert`]: each handshake takes the certificate of the
/// name the client sent (SNI), an exact name before a wildcard, and else the default. With no
/// default, a handshake for an unknown name (or none) fails with a TLS alert; the listener goes
/// on serving other clients.
///
/// Every change ([`set_default`](Self::set_default), [`insert`](Self::insert),
/// [`remove`](Self::remove), [`replace_domains`](Self::replace_domains)) swaps the whole table
/// atomically ([`arc_swap`]): handshakes never wait for a change, each sees the table before it
/// or after it, and connections already open keep the certificate they were given. A change
/// applies to the next handshake, without a restart.
///
/// Names are compared case-insensitively, and a trailing dot is ignored.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stagegate::serve::Certificates;
/// # fn key(name: &str) -> Arc<rustls::sign::CertifiedKey> {
/// #     let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
/// #     let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
/// #     let provider = rustls::crypto::ring::default_provider();
/// #     Arc::new(rustls::sign::CertifiedKey::from_der(vec![c.cert.der().clone()], der, &provider).unwrap())
/// # }
/// let certs = Arc::new(Certificates::new());
/// certs.set_default(Some(key("gateway.example.net")));
/// certs.insert("api.example.com", key("api.example.com"))?;
/// certs.insert("*.example.org", key("*.example.org"))?;
/// assert!(Arc::ptr_eq(&certs.resolve_name(Some("API.example.com")).unwrap(), &certs.get("api.example.com").unwrap()));
/// assert!(Arc::ptr_eq(&certs.resolve_name(Some("a.example.org")).unwrap(), &certs.get("*.example.org").unwrap()));
/// // unknown, or no SNI at all: the default
/// assert!(Arc::ptr_eq(&certs.resolve_name(Some("b.a.example.org")).unwrap(), &certs.default_key().unwrap()));
/// assert!(Arc::ptr_eq(&certs.resolve_name(None).unwrap(), &certs.default_key().unwrap()));
/// // a config for `Server::serve_tls`: h2 and http/1.1 by ALPN, session resumption
/// let config = Certificates::server_config(&certs)?;
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Certificates {
    table: ArcSwap<Table>,
}

/// One version of the certificates; never changed once published.
#[derive(Clone, Default)]
struct Table {
    default: Option<Arc<CertifiedKey>>,
    /// Keyed by the normalized name (lower case, no trailing dot); wildcards keep their `*.`.
    names: HashMap<String, Arc<CertifiedKey>>,
}

impl Table {
    fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if self.names.is_empty() {
            // one certificate for everyone: no name to normalize
            return self.default.clone();
        }
        let found = server_name.and_then(|name| {
            let name = normalize(name);
            if let Some(key) = self.names.get(name.as_str()) {
                return Some(key);
            }
            // one label, then the wildcard over the rest
            let (_, parent) = name.split_once('.')?;
            if parent.is_empty() {
                return None;
            }
            self.names.get(format!("*.{parent}").as_str())
        });
        found.or(self.default.as_ref()).cloned()
    }
}

/// Lower case, no trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// `name` normalized, if it is a DNS name or `*.` and a DNS name of at least two labels.
fn checked_name(name: &str) -> Result<String, InvalidServerName> {
    let invalid = || InvalidServerName {
        name: name.to_owned(),
    };
    let normal = normalize(name);
    let host = match normal.strip_prefix("*.") {
        Some(parent) if parent.contains('.') => parent,
        Some(_) => return Err(invalid()),
        None => normal.as_str(),
    };
    // IP addresses are not DNS names (and SNI never carries one).
    if host.parse::<std::net::IpAddr>().is_ok() || host.contains('*') {
        return Err(invalid());
    }
    rustls::pki_types::DnsName::try_from(host).map_err(|_| invalid())?;
    Ok(normal)
}

impl Certificates {
    /// No certificate at all: every handshake fails until one is added.
    ///
    /// # Examples
    ///
    /// ```
    /// let certs = stagegate::serve::Certificates::new();
    /// assert!(certs.default_key().is_none());
    /// assert!(certs.names().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            table: ArcSwap::from_pointee(Table::default()),
        }
    }

    /// Offers `key` to every client whose server name has no certificate of its own, or that
    /// sends none; `None` removes the default (such handshakes then fail).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    /// # let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
    /// # let key = Arc::new(rustls::sign::CertifiedKey::from_der(vec![c.cert.der().clone()], der, &rustls::crypto::ring::default_provider()).unwrap());
    /// let certs = stagegate::serve::Certificates::new();
    /// certs.set_default(Some(key));
    /// assert!(certs.resolve_name(Some("anything.example")).is_some());
    /// certs.set_default(None);
    /// assert!(certs.resolve_name(Some("anything.example")).is_none());
    /// ```
    pub fn set_default(&self, key: Option<Arc<CertifiedKey>>) {
        self.table.rcu(|t| Table {
            default: key.clone(),
            names: t.names.clone(),
        });
    }

    /// The default certificate, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::serve::Certificates::new().default_key().is_none());
    /// ```
    #[must_use]
    pub fn default_key(&self) -> Option<Arc<CertifiedKey>> {
        self.table.load().default.clone()
    }

    /// `name` as [`insert`](Self::insert) would hold it (lower case, no trailing dot), if it
    /// may hold a certificate: a DNS name, or `*.` and a parent of at least two labels.
    ///
    /// # Errors
    ///
    /// [`InvalidServerName`] otherwise (an IP address, a bare `*.com`, a space...).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::serve::Certificates;
    /// assert_eq!(Certificates::check_name("API.example.com.").unwrap(), "api.example.com");
    /// assert_eq!(Certificates::check_name("*.example.com").unwrap(), "*.example.com");
    /// assert!(Certificates::check_name("192.0.2.1").is_err());
    /// ```
    pub fn check_name(name: &str) -> Result<String, InvalidServerName> {
        checked_name(name)
    }

    /// Offers `key` to clients asking for `name`: a DNS name, or `*.` and a parent of at least
    /// two labels for every name one label below it. Replaces the certificate `name` had.
    ///
    /// # Errors
    ///
    /// [`InvalidServerName`] when `name` is neither; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let c = rcgen::generate_simple_self_signed(vec!["api.example.com".to_owned()]).unwrap();
    /// # let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
    /// # let key = Arc::new(rustls::sign::CertifiedKey::from_der(vec![c.cert.der().clone()], der, &rustls::crypto::ring::default_provider()).unwrap());
    /// let certs = stagegate::serve::Certificates::new();
    /// certs.insert("api.example.com", key.clone())?;
    /// assert!(certs.resolve_name(Some("api.example.com")).is_some());
    /// assert!(certs.insert("*.com", key.clone()).is_err());
    /// assert!(certs.insert("not a name", key).is_err());
    /// # Ok::<(), stagegate::serve::InvalidServerName>(())
    /// ```
    pub fn insert(&self, name: &str, key: Arc<CertifiedKey>) -> Result<(), InvalidServerName> {
        let name = checked_name(name)?;
        self.table.rcu(|t| {
            let mut t = Table::clone(t);
            t.names.insert(name.clone(), Arc::clone(&key));
            t
        });
        Ok(())
    }

    /// Stops offering a certificate for `name` (as given to [`insert`](Self::insert)) and
    /// returns it; its clients get the default from the next handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// let certs = stagegate::serve::Certificates::new();
    /// assert!(certs.remove("api.example.com").is_none());
    /// ```
    pub fn remove(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize(name);
        let mut removed = None;
        self.table.rcu(|t| {
            let mut t = Table::clone(t);
            removed = t.names.remove(name.as_str());
            t
        });
        removed
    }

    /// Replaces every per-name certificate with `names` (the default stays), in one swap: a
    /// handshake sees either the old set or the new one.
    ///
    /// # Errors
    ///
    /// [`InvalidServerName`] for the first invalid name; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let c = rcgen::generate_simple_self_signed(vec!["a.example.com".to_owned()]).unwrap();
    /// # let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
    /// # let key = Arc::new(rustls::sign::CertifiedKey::from_der(vec![c.cert.der().clone()], der, &rustls::crypto::ring::default_provider()).unwrap());
    /// let certs = stagegate::serve::Certificates::new();
    /// certs.insert("old.example.com", key.clone())?;
    /// certs.replace_domains([("a.example.com".to_owned(), key.clone()), ("*.b.example.com".to_owned(), key)])?;
    /// assert_eq!(certs.names(), ["*.b.example.com", "a.example.com"]);
    /// # Ok::<(), stagegate::serve::InvalidServerName>(())
    /// ```
    pub fn replace_domains<I>(&self, names: I) -> Result<(), InvalidServerName>
    where
        I: IntoIterator<Item = (String, Arc<CertifiedKey>)>,
    {
        let mut checked = HashMap::new();
        for (name, key) in names {
            checked.insert(checked_name(&name)?, key);
        }
        self.table.rcu(|t| Table {
            default: t.default.clone(),
            names: checked.clone(),
        });
        Ok(())
    }

    /// The certificate of `name` as given to [`insert`](Self::insert) (no wildcard matching,
    /// no default: see [`resolve_name`](Self::resolve_name) for what a client gets).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::serve::Certificates::new().get("api.example.com").is_none());
    /// ```
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.table
            .load()
            .names
            .get(normalize(name).as_str())
            .cloned()
    }

    /// The names with a certificate of their own, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::serve::Certificates::new().names().is_empty());
    /// ```
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.table.load().names.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// The certificate a client sending `server_name` (SNI; `None`: it sent none) is given: the
    /// exact name's, else the wildcard's one label up, else the default; `None` fails the
    /// handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::serve::Certificates::new().resolve_name(Some("api.example.com")).is_none());
    /// ```
    #[must_use]
    pub fn resolve_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.load().lookup(server_name)
    }

    /// A server config (ring) on `certs`, for [`Server::serve_tls`](super::Server::serve_tls):
    /// TLS 1.3 and 1.2 with rustls's safe defaults, HTTP/2 and HTTP/1.1 offered by ALPN
    /// ([`ALPN_PROTOCOLS`]), and session resumption, by tickets (rustls's ring `Ticketer`: keys
    /// drawn at start, rotated every 6 hours) and by a server-side cache of
    /// [`SESSION_CACHE_SIZE`] sessions. Share the one config among every listener and worker
    /// serving the same clients, so that a session resumed on one is known to all.
    ///
    /// # Errors
    ///
    /// When the ticket keys cannot be drawn (no system randomness).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stagegate::serve::Certificates;
    /// let certs = Arc::new(Certificates::new());
    /// let config = Certificates::server_config(&certs)?;
    /// assert!(config.ticketer.enabled());
    /// # Ok::<(), rustls::Error>(())
    /// ```
    pub fn server_config(certs: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        Ok(config)
    }
}

impl Default for Certificates {
    fn default() -> Self {
        Self::new()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name();
        let key = self.table.load().lookup(name);
        if key.is_none() {
            tracing::debug!(
                server_name = name.unwrap_or("-"),
                "no certificate for this server name and no default: the handshake fails"
            );
        }
        key
    }
}

/// Names and whether there is a default; never a key.
impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.table.load();
        f.debug_struct("Certificates")
            .field("default", &t.default.is_some())
            .field("names", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(vec![c.cert.der().clone()], der, &provider).unwrap())
    }

    fn same(a: Option<Arc<CertifiedKey>>, b: &Arc<CertifiedKey>) -> bool {
        a.is_some_and(|a| Arc::ptr_eq(&a, b))
    }

    #[test]
    fn exact_names_win_over_wildcards_which_match_one_label_only() {
        let (exact, wild, default) = (key("a.example.com"), key("*.example.com"), key("d"));
        let certs = Certificates::new();
        certs.insert("a.example.com", exact.clone()).unwrap();
        certs.insert("*.example.com", wild.clone()).unwrap();
        assert!(certs.resolve_name(Some("other.example.net")).is_none());
        assert!(certs.resolve_name(None).is_none());
        certs.set_default(Some(default.clone()));
        assert!(same(certs.resolve_name(Some("a.example.com")), &exact));
        assert!(same(certs.resolve_name(Some("A.Example.COM.")), &exact));
        assert!(same(certs.resolve_name(Some("b.example.com")), &wild));
        assert!(same(certs.resolve_name(Some("x.a.example.com")), &default));
        assert!(same(certs.resolve_name(Some("example.com")), &default));
        assert!(same(certs.resolve_name(Some("com")), &default));
        assert!(same(certs.resolve_name(None), &default));
    }

    #[test]
    fn bad_names_are_refused_and_change_nothing() {
        let certs = Certificates::new();
        let k = key("x");
        for bad in [
            "",
            "*",
            "*.com",
            "a.*.example.com",
            "*x.example.com",
            "192.0.2.1",
            "a b.com",
            "*.",
            ".",
        ] {
            let err = certs.insert(bad, k.clone()).unwrap_err();
            assert_eq!(err.name, bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        certs.insert("ok.example.com", k.clone()).unwrap();
        let err = certs
            .replace_domains([
                ("new.example.com".to_owned(), k.clone()),
                ("*.com".to_owned(), k),
            ])
            .unwrap_err();
        assert_eq!(err.name, "*.com");
        assert_eq!(certs.names(), ["ok.example.com"]);
    }

    #[test]
    fn replace_keeps_the_default_and_remove_falls_back_to_it() {
        let (a, b, d) = (key("a"), key("b"), key("d"));
        let certs = Certificates::new();
        certs.set_default(Some(d.clone()));
        certs.insert("a.example.com", a).unwrap();
        certs
            .replace_domains([("b.example.com".to_owned(), b.clone())])
            .unwrap();
        assert!(same(certs.resolve_name(Some("a.example.com")), &d));
        assert!(same(certs.resolve_name(Some("b.example.com")), &b));
        assert!(same(certs.remove("B.example.com"), &b));
        assert!(same(certs.resolve_name(Some("b.example.com")), &d));
        assert!(certs.names().is_empty());
    }

    #[test]
    fn debug_shows_names_never_keys() {
        let certs = Certificates::new();
        certs.set_default(Some(key("d")));
        certs.insert("a.example.com", key("a")).unwrap();
        let shown = format!("{certs:?}");
        assert_eq!(
            shown,
            r#"Certificates { default: true, names: ["a.example.com"] }"#
        );
    }

    #[test]
    fn the_config_offers_h2_then_http1_and_resumes_sessions() {
        let config = Certificates::server_config(&Arc::new(Certificates::new())).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(config.ticketer.enabled());
        assert!(config.session_storage.can_cache());
    }
}
