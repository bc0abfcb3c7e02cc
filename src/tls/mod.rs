//! TLS certificates: a PEM certificate chain and private key checked before they are served
//! ([`CertificatePair`]), and why one is refused ([`CertError`]). Feature `tls` (which `serve`
//! and `admin` turn on).
//!
//! [`CertificatePair::from_pem`] accepts a pair only when
//! - the certificate text holds one or more PEM `CERTIFICATE` blocks (the leaf first, then its
//!   intermediates), each a valid X.509 certificate;
//! - the key text holds a PEM private key, PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
//!   SEC1 (`EC PRIVATE KEY`), of a type rustls with *ring* signs with (RSA, ECDSA P-256/P-384,
//!   Ed25519);
//! - the key is the leaf certificate's (their public keys are compared);
//! - the leaf is within its validity period now.
//!
//! [`CertificatePair::check_domain`] then says whether the leaf's subject alternative names
//! cover a domain (exactly, or through a `*.` wildcard one label deep). The chain is not
//! verified against trust anchors; that is the client's part. Each error's message starts with
//! the field at fault and never repeats the key; `Debug` of a pair never shows the key.
//!
//! # Examples
//!
//! ```
//! use stagegate::tls::{CertError, CertificatePair};
//! // A certificate and key as an operator would upload them (rcgen stands in for a CA here).
//! let issued = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
//! let (cert_pem, key_pem) = (issued.cert.pem(), issued.signing_key.serialize_pem());
//!
//! let pair = CertificatePair::from_pem(&cert_pem, &key_pem).unwrap();
//! pair.check_domain("api.example.com").unwrap();
//! assert!(matches!(pair.check_domain("shop.example.com"), Err(CertError::DomainNotCovered { .. })));
//!
//! // What a rustls `ResolvesServerCert` hands out for this domain:
//! let certified: std::sync::Arc<rustls::sign::CertifiedKey> = pair.certified_key();
//! assert_eq!(certified.cert.len(), 1);
//!
//! // A key that is not the certificate's is refused, naming the problem.
//! let other = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
//! let err = CertificatePair::from_pem(&cert_pem, &other.signing_key.serialize_pem()).unwrap_err();
//! assert_eq!(err.to_string(), "private_key: does not match the certificate (the first certificate of the chain)");
//! ```

mod error;
mod name;
mod pair;

pub use error::CertError;
pub use pair::CertificatePair;

/// The longest certificate chain or key text accepted, in bytes: 64 KiB (a chain of four
/// RSA-4096 certificates is about 8 KiB).
///
/// # Examples
///
/// ```
/// use stagegate::tls::{CertError, CertificatePair, MAX_PEM_LEN};
/// let huge = "x".repeat(MAX_PEM_LEN + 1);
/// let err = CertificatePair::from_pem(&huge, "").unwrap_err();
/// assert!(matches!(err, CertError::TooLarge { field: "certificate", .. }));
/// ```
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// The TLS server name (SNI) a domain is reached by: without a port or trailing dot, in lower
/// case (the brackets of an IPv6 address removed).
///
/// # Examples
///
/// ```
/// use stagegate::tls::server_name;
/// assert_eq!(server_name("API.Example.com:8443"), "api.example.com");
/// assert_eq!(server_name("api.example.com."), "api.example.com");
/// assert_eq!(server_name("[::1]:443"), "::1");
/// ```
#[must_use]
pub fn server_name(domain: &str) -> String {
    name::normalize(domain).0
}
