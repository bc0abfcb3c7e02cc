//! Secrets that never show up in logs, errors or `Debug` output.

use std::fmt;
use std::sync::OnceLock;

use hmac::Hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A secret string (an AppSecret, an AppCode, a token).
///
/// `Debug` and `Display` print `****`; equality is constant-time. It serializes as the plain
/// string so that stores and the admin API can carry it.
///
/// # Examples
///
/// ```
/// use stagegate::model::Secret;
/// let s = Secret::new("c1ae97aaa7e45f21d10824bc44678fee");
/// assert_eq!(format!("{s:?}"), "Secret(****)");
/// assert!(s.ct_eq_str("c1ae97aaa7e45f21d10824bc44678fee"));
/// assert_eq!(s.expose(), "c1ae97aaa7e45f21d10824bc44678fee");
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String, #[serde(skip)] MacKeys);

/// The HMAC states keyed with a secret, computed on first use and kept with it: keying
/// costs two hash compressions (the padded inner and outer key blocks) that every later
/// signature over the same secret can skip by cloning the keyed state. A keyed state is as
/// sensitive as the secret itself; like the secret it is never printed.
#[derive(Clone, Default)]
struct MacKeys {
    sha256: OnceLock<Option<Box<Hmac<sha2::Sha256>>>>,
    sha1: OnceLock<Option<Box<Hmac<sha1::Sha1>>>>,
}

/// An HMAC keyed with `key` (HMAC accepts keys of any length: never `None`).
fn keyed<M: hmac::digest::KeyInit>(key: &[u8]) -> Option<Box<M>> {
    M::new_from_slice(key).ok().map(Box::new)
}

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into(), MacKeys::default())
    }

    /// A new random secret: 32 lowercase hex characters from a CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        Self::new(super::id::random_hex32())
    }

    /// HMAC-SHA256 keyed with this secret (keyed once, then cloned).
    pub(crate) fn hmac_sha256(&self) -> Option<Hmac<sha2::Sha256>> {
        let keyed = self.1.sha256.get_or_init(|| keyed(self.0.as_bytes()));
        keyed.as_deref().cloned()
    }

    /// HMAC-SHA1 keyed with this secret (keyed once, then cloned).
    pub(crate) fn hmac_sha1(&self) -> Option<Hmac<sha1::Sha1>> {
        let keyed = self.1.sha1.get_or_init(|| keyed(self.0.as_bytes()));
        keyed.as_deref().cloned()
    }

    /// The secret itself. Use it only to sign, verify or hand it to its owner.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time that does not depend on where they differ.
    #[must_use]
    pub fn ct_eq_str(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq_str(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}
