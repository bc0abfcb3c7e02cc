//! App secrets that do not leak through `Debug`, `Display` or timing.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// An app secret (AppSecret): the HMAC key of signature authentication.
///
/// `Debug` and `Display` print `Secret(****)`; equality is constant-time; the bytes are
/// overwritten when dropped. It serializes as a plain string so that stores can persist it.
///
/// # Examples
///
/// ```
/// use stagegate::Secret;
/// let secret = Secret::new("SECRET_abc123");
/// assert_eq!(format!("{secret:?}"), "Secret(****)");
/// assert_eq!(secret.to_string(), "Secret(****)");
/// assert_eq!(secret.expose(), b"SECRET_abc123");
/// assert_eq!(secret, Secret::from("SECRET_abc123"));
/// ```
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret's bytes, e.g. as an HMAC key.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret as text (to hand it to its owner, e.g. `DescribeAppSecurity`).
    #[must_use]
    pub fn expose_str(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip_is_a_plain_string() {
        let s = Secret::new("abc");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"abc\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_ne!(back, Secret::new("abd"));
        assert_ne!(back, Secret::new("ab"));
    }

    #[test]
    fn debug_hides_inside_containers() {
        let v = vec![Some(Secret::new("hunter2"))];
        assert!(!format!("{v:?} {v:#?}").contains("hunter2"));
    }
}
