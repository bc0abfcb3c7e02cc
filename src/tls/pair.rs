//! [`CertificatePair`]: a certificate chain and its private key, checked.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::Digest as _;
use x509_parser::extensions::GeneralName;

use super::name::{dns_covers, normalize};
use super::{CertError, MAX_PEM_LEN};

/// A certificate chain and the private key of its leaf, checked: both parse, the key is the
/// leaf's, and the leaf was within its validity period when checked. Ready for rustls as a
/// [`CertifiedKey`].
///
/// `Debug` shows the names, dates and fingerprint, never the key.
///
/// # Examples
///
/// ```
/// use stagegate::tls::CertificatePair;
/// let cert = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
/// let pair = CertificatePair::from_pem(&cert.cert.pem(), &cert.signing_key.serialize_pem()).unwrap();
/// assert_eq!(pair.dns_names(), ["api.example.com"]);
/// assert!(pair.covers("api.example.com"));
/// assert!(pair.check_domain("www.example.com").is_err());
/// assert!(pair.not_after() > jiff::Timestamp::now());
/// assert!(!format!("{pair:?}").contains("PRIVATE"));
/// let key = pair.certified_key(); // for a rustls `ResolvesServerCert`
/// assert_eq!(key.cert.len(), 1);
/// ```
#[derive(Clone)]
pub struct CertificatePair {
    key: Arc<CertifiedKey>,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    not_before: Timestamp,
    not_after: Timestamp,
    fingerprint: String,
}

impl fmt::Debug for CertificatePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificatePair")
            .field("dns_names", &self.dns_names)
            .field("ips", &self.ips)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("sha256_fingerprint", &self.fingerprint)
            .field("chain_len", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

impl CertificatePair {
    /// Reads and checks a PEM certificate chain (the leaf first, then any intermediates) and the
    /// PEM private key of its leaf (PKCS#8, PKCS#1 or SEC1), now.
    ///
    /// The chain is not verified against any trust anchor: clients do that. Text around the PEM
    /// blocks is ignored.
    ///
    /// # Errors
    ///
    /// A [`CertError`] naming the first problem: too large, no certificate or unparsable
    /// certificate, no key or an unusable key, a key that is not the leaf's, a leaf expired or
    /// not yet valid.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::{CertError, CertificatePair};
    /// let a = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
    /// let b = rcgen::generate_simple_self_signed(vec!["b.example.com".into()]).unwrap();
    /// let err = CertificatePair::from_pem(&a.cert.pem(), &b.signing_key.serialize_pem()).unwrap_err();
    /// assert_eq!(err, CertError::KeyMismatch);
    /// ```
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        Self::from_pem_at(cert_chain_pem, key_pem, Timestamp::now())
    }

    /// Like [`from_pem`](Self::from_pem), checking the validity period at `now`.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::{CertError, CertificatePair};
    /// let c = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
    /// let (cert, key) = (c.cert.pem(), c.signing_key.serialize_pem());
    /// let later: jiff::Timestamp = "4100-01-01T00:00:00Z".parse().unwrap();
    /// let err = CertificatePair::from_pem_at(&cert, &key, later).unwrap_err();
    /// assert!(matches!(err, CertError::Expired { .. }));
    /// assert!(err.to_string().starts_with("certificate: expired on 4096-01-01T00:00:00Z"), "{err}");
    /// ```
    pub fn from_pem_at(
        cert_chain_pem: &str,
        key_pem: &str,
        now: Timestamp,
    ) -> Result<Self, CertError> {
        Self::parse(cert_chain_pem, key_pem, Some(now))
    }

    /// Like [`from_pem`](Self::from_pem) without the validity check: for a pair checked at
    /// upload that is read back from the store (an expired one is still served, and logged).
    pub(crate) fn from_pem_any_time(
        cert_chain_pem: &str,
        key_pem: &str,
    ) -> Result<Self, CertError> {
        Self::parse(cert_chain_pem, key_pem, None)
    }

    fn parse(
        cert_chain_pem: &str,
        key_pem: &str,
        now: Option<Timestamp>,
    ) -> Result<Self, CertError> {
        for (field, text) in [("certificate", cert_chain_pem), ("private_key", key_pem)] {
            if text.len() > MAX_PEM_LEN {
                return Err(CertError::TooLarge {
                    field,
                    len: text.len(),
                    limit: MAX_PEM_LEN,
                });
            }
        }
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::CertificatePem(pem_problem(&e)))?;
        let Some(leaf_der) = chain.first() else {
            return Err(CertError::NoCertificate);
        };
        for (index, der) in chain.iter().enumerate().skip(1) {
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Certificate {
                index,
                reason: e.to_string(),
            })?;
        }
        let (_, leaf) =
            x509_parser::parse_x509_certificate(leaf_der).map_err(|e| CertError::Certificate {
                index: 0,
                reason: e.to_string(),
            })?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| match e {
            pem::Error::NoItemsFound => CertError::NoPrivateKey,
            _ => CertError::PrivateKeyPem,
        })?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|_| CertError::PrivateKey)?;
        drop(key_der);

        let validity = leaf.validity();
        let not_before = to_timestamp(validity.not_before.timestamp());
        let not_after = to_timestamp(validity.not_after.timestamp());
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        let san = leaf
            .subject_alternative_name()
            .map_err(|e| CertError::Certificate {
                index: 0,
                reason: format!("subject alternative names: {e}"),
            })?;
        if let Some(san) = san {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push(n.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let fingerprint = hex(&sha2::Sha256::digest(leaf_der.as_ref()));

        let key = CertifiedKey::new(chain, signing_key);
        match key.keys_match() {
            Ok(()) => {}
            // `keys_match` also fails when the leaf's public key cannot be read: a mismatch too.
            Err(_) => return Err(CertError::KeyMismatch),
        }
        if let Some(now) = now {
            if now < not_before {
                return Err(CertError::NotYetValid { not_before, now });
            }
            if now > not_after {
                return Err(CertError::Expired { not_after, now });
            }
        }
        Ok(Self {
            key: Arc::new(key),
            dns_names,
            ips,
            not_before,
            not_after,
            fingerprint,
        })
    }

    /// Whether the leaf certificate covers `domain` (a host name, with or without a port, or an
    /// IP address): one of its DNS subject alternative names is the domain, or a wildcard
    /// `*.parent` with the domain one label under `parent`; an IP address must be among its IP
    /// SANs. Case and a trailing dot do not matter; the subject's common name is not consulted.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::CertificatePair;
    /// let c = rcgen::generate_simple_self_signed(vec!["*.example.com".into()]).unwrap();
    /// let pair = CertificatePair::from_pem(&c.cert.pem(), &c.signing_key.serialize_pem()).unwrap();
    /// assert!(pair.covers("api.example.com"));
    /// assert!(pair.covers("API.example.com:8443"));
    /// assert!(!pair.covers("example.com"));
    /// assert!(!pair.covers("a.b.example.com"));
    /// ```
    #[must_use]
    pub fn covers(&self, domain: &str) -> bool {
        let (host, ip) = normalize(domain);
        match ip {
            Some(ip) => self.ips.contains(&ip),
            None => !host.is_empty() && self.dns_names.iter().any(|n| dns_covers(n, &host)),
        }
    }

    /// [`covers`](Self::covers), as a result whose error names the domain and what the
    /// certificate names instead.
    ///
    /// # Errors
    ///
    /// [`CertError::DomainNotCovered`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::CertificatePair;
    /// let c = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
    /// let pair = CertificatePair::from_pem(&c.cert.pem(), &c.signing_key.serialize_pem()).unwrap();
    /// let err = pair.check_domain("b.example.com").unwrap_err();
    /// assert_eq!(err.to_string(), "certificate: does not cover domain `b.example.com` (it names `a.example.com`)");
    /// ```
    pub fn check_domain(&self, domain: &str) -> Result<(), CertError> {
        if self.covers(domain) {
            Ok(())
        } else {
            Err(CertError::DomainNotCovered {
                domain: domain.to_owned(),
                dns_names: self.names(),
            })
        }
    }

    /// The DNS names and IP addresses the leaf names (its subject alternative names), as text.
    fn names(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .cloned()
            .chain(self.ips.iter().map(ToString::to_string))
            .collect()
    }

    /// The DNS subject alternative names of the leaf certificate, in lower case.
    #[must_use]
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The IP-address subject alternative names of the leaf certificate.
    #[must_use]
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ips
    }

    /// When the leaf certificate's validity begins.
    #[must_use]
    pub fn not_before(&self) -> Timestamp {
        self.not_before
    }

    /// When the leaf certificate's validity ends.
    #[must_use]
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// The SHA-256 fingerprint of the leaf certificate (its DER), as 64 lowercase hex digits:
    /// what `openssl x509 -noout -fingerprint -sha256` prints, without the colons.
    #[must_use]
    pub fn sha256_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How many certificates the chain holds (the leaf included).
    #[must_use]
    pub fn chain_len(&self) -> usize {
        self.key.cert.len()
    }

    /// The chain and signing key for rustls (a `ResolvesServerCert` hands it out).
    #[must_use]
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.key)
    }
}

fn to_timestamp(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(if seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// What is wrong with a PEM text, without repeating its content.
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a block is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a block is too large".to_owned(),
        _ => "unreadable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC1_CERT: &str = include_str!("../../tests/data/tls/ec-sec1.cert.pem");
    const SEC1_KEY: &str = include_str!("../../tests/data/tls/ec-sec1.key.pem");
    const PKCS1_CERT: &str = include_str!("../../tests/data/tls/rsa-pkcs1.cert.pem");
    const PKCS1_KEY: &str = include_str!("../../tests/data/tls/rsa-pkcs1.key.pem");

    /// A self-signed certificate for `names` valid between the two years, and its PKCS#8 key.
    fn issue(names: &[&str], from: i32, until: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn pkcs8_sec1_and_pkcs1_keys_are_read() {
        let (cert, key) = issue(&["a.example.com"], 2020, 2120);
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        CertificatePair::from_pem(&cert, &key).unwrap();
        assert!(SEC1_KEY.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let sec1 = CertificatePair::from_pem(SEC1_CERT, SEC1_KEY).unwrap();
        assert_eq!(sec1.dns_names(), ["sec1.example.com", "*.sec1.example.com"]);
        assert!(sec1.covers("127.0.0.1"));
        assert!(sec1.covers("x.sec1.example.com"));
        assert!(!sec1.covers("127.0.0.2"));
        assert!(PKCS1_KEY.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let rsa = CertificatePair::from_pem(PKCS1_CERT, PKCS1_KEY).unwrap();
        assert!(rsa.covers("rsa.example.com"));
        assert_eq!(rsa.sha256_fingerprint().len(), 64);
        // a key of another type than its certificate's
        assert_eq!(
            CertificatePair::from_pem(PKCS1_CERT, SEC1_KEY).unwrap_err(),
            CertError::KeyMismatch
        );
    }

    #[test]
    fn validity_is_checked_with_the_dates_in_the_message() {
        let (cert, key) = issue(&["a.example.com"], 2000, 2001);
        let err = CertificatePair::from_pem(&cert, &key).unwrap_err();
        assert!(matches!(err, CertError::Expired { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("certificate: expired on 2001-01-01T00:00:00Z (it is now "),
            "{err}"
        );
        let (cert, key) = issue(&["a.example.com"], 2100, 2101);
        let err = CertificatePair::from_pem(&cert, &key).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("certificate: not valid before 2100-01-01T00:00:00Z"),
            "{err}"
        );
        // read back from a store, validity aside
        assert!(CertificatePair::from_pem_any_time(&cert, &key).is_ok());
    }

    #[test]
    fn garbage_is_refused_naming_the_field() {
        let (cert, key) = issue(&["a.example.com"], 2020, 2120);
        let cases: Vec<(&str, &str, &str)> = vec![
            ("", &key, "certificate: no PEM `CERTIFICATE` block found"),
            (&key, &key, "certificate: no PEM `CERTIFICATE` block found"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n",
                &key,
                "certificate: not valid PEM (a block has no END line)",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                &key,
                "certificate: not valid PEM (a block is not valid base64)",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &key,
                "certificate: certificate 0 of the chain is not a valid X.509 certificate",
            ),
            (&cert, "", "private_key: no PEM private key block found"),
            (&cert, &cert, "private_key: no PEM private key block found"),
            (
                &cert,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private_key: not a usable private key",
            ),
            (
                &cert,
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "private_key: no PEM private key block found",
            ),
        ];
        for (c, k, want) in cases {
            let err = CertificatePair::from_pem(c, k).unwrap_err();
            assert!(err.to_string().starts_with(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn a_chain_keeps_its_intermediates_and_checks_each() {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["api.example.com".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        let pair = CertificatePair::from_pem(&chain, &leaf_key.serialize_pem()).unwrap();
        assert_eq!(pair.chain_len(), 2);
        assert_eq!(pair.certified_key().cert.len(), 2);
        // the leaf comes first: the key of the leaf, with the chain the other way round, does not match
        let reversed = format!("{}{}", ca.pem(), leaf.pem());
        assert_eq!(
            CertificatePair::from_pem(&reversed, &leaf_key.serialize_pem()).unwrap_err(),
            CertError::KeyMismatch
        );
        let broken = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            leaf.pem()
        );
        let err = CertificatePair::from_pem(&broken, &leaf_key.serialize_pem()).unwrap_err();
        assert!(
            matches!(err, CertError::Certificate { index: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let pair = CertificatePair::from_pem(SEC1_CERT, SEC1_KEY).unwrap();
        let debug = format!("{pair:?}");
        let key_body: String = SEC1_KEY.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!debug.contains(&key_body), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        assert!(debug.contains("sec1.example.com"), "{debug}");
    }

    #[test]
    fn too_large_texts_are_refused_before_parsing() {
        let big = "-".repeat(MAX_PEM_LEN + 1);
        let err = CertificatePair::from_pem(SEC1_CERT, &big).unwrap_err();
        assert_eq!(
            err,
            CertError::TooLarge {
                field: "private_key",
                len: MAX_PEM_LEN + 1,
                limit: MAX_PEM_LEN
            }
        );
        assert_eq!(err.field(), "private_key");
    }

    #[test]
    fn domain_errors_list_the_names() {
        let pair = CertificatePair::from_pem(SEC1_CERT, SEC1_KEY).unwrap();
        let err = pair.check_domain("other.example.com").unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate: does not cover domain `other.example.com` (it names `sec1.example.com`, `*.sec1.example.com`, `127.0.0.1`)"
        );
        pair.check_domain("SEC1.example.com:8443").unwrap();
    }
}
