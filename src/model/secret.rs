//! Secrets that never show up in logs, errors or `Debug` output.

use std::fmt;

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
/// use stagegate::Secret;
/// let s = Secret::new("c1ae97aaa7e45f21d10824bc44678fee");
/// assert_eq!(format!("{s:?}"), "Secret(****)");
/// assert!(s.ct_eq_str("c1ae97aaa7e45f21d10824bc44678fee"));
/// assert_eq!(s.expose(), "c1ae97aaa7e45f21d10824bc44678fee");
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A new random secret: 32 lowercase hex characters from a CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        Self(super::id::random_hex32())
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
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
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
