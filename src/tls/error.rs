//! [`CertError`]: why a certificate and key pair was refused.

use jiff::Timestamp;

/// Why a certificate chain and private key were refused. Each message starts with the field at
/// fault (`certificate` or `private_key`) and names the problem; none repeats the key.
///
/// # Examples
///
/// ```
/// use stagegate::tls::{CertError, CertificatePair};
/// let err = CertificatePair::from_pem("not a certificate", "not a key").unwrap_err();
/// assert!(matches!(err, CertError::NoCertificate));
/// assert_eq!(err.to_string(), "certificate: no PEM `CERTIFICATE` block found");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A PEM text is longer than the limit (see [`MAX_PEM_LEN`](super::MAX_PEM_LEN)).
    #[error("{field}: {len} bytes, more than the {limit} accepted")]
    TooLarge {
        /// `certificate` or `private_key`.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The certificate text holds no `CERTIFICATE` block.
    #[error("certificate: no PEM `CERTIFICATE` block found")]
    NoCertificate,
    /// The certificate text is not valid PEM (a block without its end line, bad base64).
    #[error("certificate: not valid PEM ({0})")]
    CertificatePem(String),
    /// A certificate of the chain is not a valid X.509 certificate.
    #[error(
        "certificate: certificate {index} of the chain is not a valid X.509 certificate ({reason})"
    )]
    Certificate {
        /// Its position in the chain (0: the leaf).
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// The key text holds no private key block (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`); encrypted keys are not accepted.
    #[error(
        "private_key: no PEM private key block found (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` \
         or SEC1 `EC PRIVATE KEY`; encrypted keys are not supported)"
    )]
    NoPrivateKey,
    /// The key text is not valid PEM.
    #[error("private_key: not valid PEM")]
    PrivateKeyPem,
    /// The private key does not parse, or is of a type the TLS stack cannot sign with.
    #[error(
        "private_key: not a usable private key (malformed, or not RSA, ECDSA P-256/P-384 or Ed25519)"
    )]
    PrivateKey,
    /// The private key is not the key of the leaf certificate.
    #[error("private_key: does not match the certificate (the first certificate of the chain)")]
    KeyMismatch,
    /// The leaf certificate's validity ended.
    #[error("certificate: expired on {not_after} (it is now {now})")]
    Expired {
        /// The end of its validity.
        not_after: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The leaf certificate's validity has not begun.
    #[error("certificate: not valid before {not_before} (it is now {now})")]
    NotYetValid {
        /// The start of its validity.
        not_before: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The leaf certificate does not name the domain among its subject alternative names.
    #[error("certificate: does not cover domain `{domain}` (it names {})", names_list(.dns_names))]
    DomainNotCovered {
        /// The domain.
        domain: String,
        /// The DNS names (and IP addresses) the certificate names.
        dns_names: Vec<String>,
    },
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        "no DNS name".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl CertError {
    /// The field at fault: `certificate` or `private_key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::CertError;
    /// assert_eq!(CertError::KeyMismatch.field(), "private_key");
    /// assert_eq!(CertError::NoCertificate.field(), "certificate");
    /// ```
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::TooLarge { field, .. } => field,
            Self::NoPrivateKey | Self::PrivateKeyPem | Self::PrivateKey | Self::KeyMismatch => {
                "private_key"
            }
            Self::NoCertificate
            | Self::CertificatePem(_)
            | Self::Certificate { .. }
            | Self::Expired { .. }
            | Self::NotYetValid { .. }
            | Self::DomainNotCovered { .. } => "certificate",
        }
    }

    /// The message without the field in front.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::tls::CertError;
    /// assert_eq!(CertError::NoCertificate.reason(), "no PEM `CERTIFICATE` block found");
    /// ```
    #[must_use]
    pub fn reason(&self) -> String {
        let text = self.to_string();
        match text
            .strip_prefix(self.field())
            .and_then(|r| r.strip_prefix(": "))
        {
            Some(rest) => rest.to_owned(),
            None => text,
        }
    }
}
