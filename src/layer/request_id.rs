//! Request ids in the gateway's format: an upper-case UUID.

use std::fmt;

use http::HeaderValue;

/// A request id such as `0AA90E87-3506-4AA6-AFFB-A4D53B4F6231` (random, version 4 layout),
/// held on the stack: every request has one, and a `String` would be one more allocation each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId([u8; 36]);

impl RequestId {
    /// A new random id.
    ///
    /// Request ids need to be unique, not secret, so a fast thread-local generator is used.
    #[must_use]
    pub(crate) fn new() -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut b = fastrand::u128(..).to_be_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let mut s = [b'-'; 36];
        let mut at = 0;
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1; // the dash already there
            }
            s[at] = HEX[usize::from(x >> 4)];
            s[at + 1] = HEX[usize::from(x & 0xf)];
            at += 2;
        }
        Self(s)
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id as a header value (one copy into the value's buffer).
    pub(crate) fn to_header_value(self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A new request id (see [`RequestId::new`]).
#[must_use]
pub(crate) fn new_request_id() -> RequestId {
    RequestId::new()
}

#[cfg(test)]
mod tests {
    #[test]
    fn format() {
        let id = super::new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "A" | "B"));
        for at in [8, 13, 18, 23] {
            assert_eq!(&id[at..=at], "-");
        }
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(id.to_header_value().as_bytes(), id.as_bytes());
        assert_eq!(id.to_string(), id.as_str());
        assert_ne!(id, super::new_request_id());
    }
}
