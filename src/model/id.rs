//! Identifiers: validated newtypes, generated with a CSPRNG in the formats of the original gateway.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all; a gateway cannot run then.
    getrandom::fill(buf).expect("the operating system's random number generator is unavailable");
}

/// 32 lowercase hex characters from 16 random bytes.
pub(crate) fn random_hex32() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    let mut s = String::with_capacity(32);
    for x in b {
        s.push(char::from_digit(u32::from(x >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(x & 0xf), 16).unwrap_or('0'));
    }
    s
}

/// A decimal number of `digits` digits (no leading zero) from random bytes.
pub(crate) fn random_digits(digits: usize) -> String {
    let mut b = vec![0u8; digits];
    random_bytes(&mut b);
    b.iter()
        .enumerate()
        .map(|(i, x)| {
            // Rejection-free mapping: the small bias of `% 9` / `% 10` is irrelevant for identifiers.
            let d = if i == 0 { 1 + x % 9 } else { x % 10 };
            char::from(b'0' + d)
        })
        .collect()
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// A new random identifier (32 lowercase hex characters).
            #[must_use]
            pub fn generate() -> Self {
                Self(random_hex32().into())
            }

            /// Parses an identifier: 1 to 64 characters of ASCII letters, digits, `-` or `_`.
            ///
            /// # Errors
            ///
            /// [`ValidationError::InvalidId`] for anything else.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                if s.is_empty()
                    || s.len() > 64
                    || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(ValidationError::InvalidId { what: $what, value: truncate(s) });
                }
                Ok(Self(s.into()))
            }

            /// The identifier as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_parsed(d, concat!("a ", stringify!($name)), Self::parse)
            }
        }
    };
}

/// Deserializes a value kept as a string with `parse`, straight from the `&str` the format
/// hands over: unlike going through a `String` or a `Cow<str>` (serde always makes that one owned),
/// nothing is allocated before `parse` builds the value. Records repeat ids and stages many times,
/// so this is a large share of decoding them at start-up.
pub(crate) fn deserialize_parsed<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Parsed<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, ValidationError>,
    }
    impl<T> serde::de::Visitor<'_> for Parsed<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(Parsed { expecting, parse })
}

/// Shortens user input quoted in error messages.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

hex_id!(
    /// Identifies a backend service.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::BackendId;
    /// let id = BackendId::generate();
    /// assert_eq!(id.as_str().len(), 32);
    /// assert!(BackendId::parse("not valid!").is_err());
    /// ```
    BackendId,
    "backend id"
);
hex_id!(
    /// Identifies an API group.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::GroupId;
    /// assert!(GroupId::parse("523e8dc7bbe04613b5b1d726c2a7889d").is_ok());
    /// ```
    GroupId,
    "group id"
);
hex_id!(
    /// Identifies an API.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::ApiId;
    /// assert_eq!(ApiId::generate().to_string().len(), 32);
    /// ```
    ApiId,
    "api id"
);
hex_id!(
    /// Identifies an app (a caller identity). Generated ids are 14 decimal digits.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::AppId;
    /// assert!(AppId::parse("110843374").is_ok());
    /// ```
    AppId,
    "app id"
);
hex_id!(
    /// Identifies a VPC access authorization.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::VpcAccessId;
    /// assert!(VpcAccessId::parse("2zej3ehuzg9m77kvwnfpn").is_ok());
    /// ```
    VpcAccessId,
    "vpc access id"
);
hex_id!(
    /// Identifies a traffic policy (throttling, IP control, CORS or backend signature).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::PolicyId;
    /// assert!(PolicyId::parse("tc_0123").is_ok());
    /// assert_eq!(PolicyId::generate().as_str().len(), 32);
    /// ```
    PolicyId,
    "policy id"
);

impl AppId {
    /// A new random numeric app id, as the original gateway issues them.
    #[must_use]
    pub fn generate_numeric() -> Self {
        Self(random_digits(14).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_hex_and_unique() {
        let a = ApiId::generate();
        let b = ApiId::generate();
        assert_ne!(a, b);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn numeric_app_id_has_no_leading_zero() {
        for _ in 0..50 {
            let id = AppId::generate_numeric();
            assert_eq!(id.as_str().len(), 14);
            assert!(!id.as_str().starts_with('0'));
        }
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in ["", "a b", "../etc", &"x".repeat(65), "é"] {
            assert!(GroupId::parse(bad).is_err(), "{bad}");
        }
        let err: Result<GroupId, _> = serde_json::from_str("\"bad id\"");
        assert!(err.is_err());
    }
}
