//! A group domain's TLS certificate, as stored: the PEM chain, its private key (a [`Secret`]),
//! and the facts read from the certificate at upload.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{GroupId, Secret};

/// The TLS certificate of one domain of a group, with its private key.
///
/// Written by `ControlPlane::set_domain_certificate` (feature `tls`) after the pair was checked
/// (parses, key matches, valid now, covers the domain); the facts below are read from the
/// certificate then. The private key is a [`Secret`]: `Debug` never shows it, `SealedStore`
/// seals it at rest, and no admin read returns it ([`info`](Self::info) is what reads show).
///
/// # Examples
///
/// ```
/// use stagegate::model::{DomainCertificate, GroupId, Secret};
/// let c = DomainCertificate {
///     group_id: GroupId::generate(),
///     domain: "api.example.com".into(),
///     certificate: "-----BEGIN CERTIFICATE-----\n...".into(),
///     private_key: Secret::new("-----BEGIN PRIVATE KEY-----\n..."),
///     dns_names: vec!["api.example.com".into()],
///     not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
///     not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
///     sha256_fingerprint: "00".repeat(32),
///     updated_at: jiff::Timestamp::now(),
/// };
/// assert!(!format!("{c:?}").contains("PRIVATE KEY"));
/// assert!(!serde_json::to_string(&c.info()).unwrap().contains("PRIVATE KEY"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainCertificate {
    /// The group.
    pub group_id: GroupId,
    /// The domain, one of the group's, as the group lists it.
    pub domain: String,
    /// The PEM certificate chain, leaf first.
    pub certificate: String,
    /// The PEM private key of the leaf.
    pub private_key: Secret,
    /// The DNS (and IP) subject alternative names of the leaf.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// The start of the leaf's validity.
    pub not_before: Timestamp,
    /// The end of the leaf's validity.
    pub not_after: Timestamp,
    /// The SHA-256 fingerprint of the leaf (64 lowercase hex digits).
    pub sha256_fingerprint: String,
    /// When it was uploaded.
    pub updated_at: Timestamp,
}

impl DomainCertificate {
    /// What reads of it show: everything but the certificate text and the key.
    #[must_use]
    pub fn info(&self) -> CertificateInfo {
        CertificateInfo {
            group_id: self.group_id.clone(),
            domain: self.domain.clone(),
            dns_names: self.dns_names.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            sha256_fingerprint: self.sha256_fingerprint.clone(),
            updated_at: self.updated_at,
        }
    }
}

/// What is shown of a [`DomainCertificate`]: never its private key.
///
/// # Examples
///
/// ```
/// use stagegate::model::CertificateInfo;
/// let json = serde_json::json!({
///     "group_id": "g1", "domain": "api.example.com", "dns_names": ["api.example.com"],
///     "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
///     "sha256_fingerprint": "ab", "updated_at": "2026-01-01T00:00:00Z",
/// });
/// let info: CertificateInfo = serde_json::from_value(json).unwrap();
/// assert_eq!(info.domain, "api.example.com");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// The group.
    pub group_id: GroupId,
    /// The domain.
    pub domain: String,
    /// The DNS (and IP) subject alternative names of the leaf.
    pub dns_names: Vec<String>,
    /// The start of the leaf's validity.
    pub not_before: Timestamp,
    /// The end of the leaf's validity.
    pub not_after: Timestamp,
    /// The SHA-256 fingerprint of the leaf (64 lowercase hex digits).
    pub sha256_fingerprint: String,
    /// When it was uploaded.
    pub updated_at: Timestamp,
}
