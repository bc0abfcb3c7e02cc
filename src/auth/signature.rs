//! HMAC signatures over a string-to-sign.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::SignatureMethod;

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm cannot be reached.
    let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(secret) else {
        return Vec::new();
    };
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Computes `Base64(HMAC(secret, string_to_sign))` with the given algorithm.
///
/// # Examples
///
/// ```
/// use stagegate::{SignatureMethod, sign};
/// let sig = sign(SignatureMethod::HmacSha256, b"SECRET_abc123", "GET\n\n\n\n\n/p");
/// assert_eq!(sig.len(), 44);
/// ```
#[must_use]
pub fn sign(method: SignatureMethod, secret: &[u8], string_to_sign: &str) -> String {
    let raw = match method {
        SignatureMethod::HmacSha256 => mac::<Hmac<sha2::Sha256>>(secret, string_to_sign.as_bytes()),
        SignatureMethod::HmacSha1 => mac::<Hmac<sha1::Sha1>>(secret, string_to_sign.as_bytes()),
    };
    STANDARD.encode(raw)
}

/// Checks a Base64 signature against the one computed from `secret`, in constant time.
///
/// The comparison is over the Base64 text, so any change of the presented signature,
/// including its padding, is a mismatch.
///
/// # Examples
///
/// ```
/// use stagegate::{SignatureMethod, sign, verify};
/// let sig = sign(SignatureMethod::HmacSha1, b"k", "msg");
/// assert!(verify(SignatureMethod::HmacSha1, b"k", "msg", &sig));
/// assert!(!verify(SignatureMethod::HmacSha256, b"k", "msg", &sig));
/// ```
#[must_use]
pub fn verify(
    method: SignatureMethod,
    secret: &[u8],
    string_to_sign: &str,
    signature: &str,
) -> bool {
    let expected = sign(method, secret, string_to_sign);
    bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = sign(
            SignatureMethod::HmacSha256,
            b"Jefe",
            "what do ya want for nothing?",
        );
        let raw = STANDARD.decode(sig).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_rejects_length_and_byte_changes() {
        let sig = sign(SignatureMethod::HmacSha256, b"s", "x");
        assert!(verify(SignatureMethod::HmacSha256, b"s", "x", &sig));
        assert!(!verify(
            SignatureMethod::HmacSha256,
            b"s",
            "x",
            &sig[..sig.len() - 1]
        ));
        assert!(!verify(SignatureMethod::HmacSha256, b"s", "x", ""));
        assert!(!verify(SignatureMethod::HmacSha256, b"t", "x", &sig));
    }
}
