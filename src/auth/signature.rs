//! HMAC signatures over a string-to-sign.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::model::Secret;
use crate::model::SignatureMethod;

/// The longest Base64 signature: 44 characters for the 32 bytes of HMAC-SHA256.
const MAX_B64: usize = 44;

/// `Base64(HMAC(secret, msg))` written into `buf`; returns the used prefix. No heap.
fn mac_b64<'b, M: Mac + hmac::digest::KeyInit>(
    secret: &[u8],
    msg: &[u8],
    buf: &'b mut [u8; MAX_B64],
) -> &'b [u8] {
    // HMAC accepts keys of any length; the error arm cannot be reached.
    let Ok(m) = <M as hmac::digest::KeyInit>::new_from_slice(secret) else {
        return &[];
    };
    keyed_mac_b64(Some(m), msg, buf)
}

/// `Base64(MAC(msg))` with an already keyed MAC, written into `buf` (empty for `None`).
fn keyed_mac_b64<'b, M: Mac>(mac: Option<M>, msg: &[u8], buf: &'b mut [u8; MAX_B64]) -> &'b [u8] {
    let Some(mut m) = mac else {
        return &[];
    };
    m.update(msg);
    let tag = m.finalize().into_bytes();
    // 32 bytes encode to 44 characters, 20 to 28: the buffer always fits.
    let len = STANDARD.encode_slice(tag, &mut buf[..]).unwrap_or(0);
    &buf[..len]
}

/// The Base64 signature of `msg`, written into `buf`.
fn sign_into<'b>(
    method: SignatureMethod,
    secret: &[u8],
    msg: &[u8],
    buf: &'b mut [u8; MAX_B64],
) -> &'b [u8] {
    match method {
        SignatureMethod::HmacSha256 => mac_b64::<Hmac<sha2::Sha256>>(secret, msg, buf),
        SignatureMethod::HmacSha1 => mac_b64::<Hmac<sha1::Sha1>>(secret, msg, buf),
    }
}

/// Computes `Base64(HMAC(secret, string_to_sign))` with the given algorithm.
///
/// # Examples
///
/// ```
/// use stagegate::auth::sign;
/// use stagegate::model::SignatureMethod;
/// let sig = sign(SignatureMethod::HmacSha256, b"SECRET_abc123", "GET\n\n\n\n\n/p");
/// assert_eq!(sig.len(), 44);
/// ```
#[must_use]
pub fn sign(method: SignatureMethod, secret: &[u8], string_to_sign: &str) -> String {
    let mut buf = [0; MAX_B64];
    // Base64 output is ASCII.
    String::from_utf8_lossy(sign_into(
        method,
        secret,
        string_to_sign.as_bytes(),
        &mut buf,
    ))
    .into_owned()
}

/// Checks a Base64 signature against the one computed from `secret`, in constant time.
///
/// The comparison is over the Base64 text, so any change of the presented signature,
/// including its padding, is a mismatch.
///
/// # Examples
///
/// ```
/// use stagegate::auth::{sign, verify};
/// use stagegate::model::SignatureMethod;
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
    let mut buf = [0; MAX_B64];
    let expected = sign_into(method, secret, string_to_sign.as_bytes(), &mut buf);
    ct_eq_bytes(expected, signature.as_bytes())
}

/// [`verify`] with the HMAC state the secret keeps already keyed (no per-call keying).
pub(crate) fn verify_secret(
    method: SignatureMethod,
    secret: &Secret,
    string_to_sign: &[u8],
    signature: &[u8],
) -> bool {
    let mut buf = [0; MAX_B64];
    let expected = match method {
        SignatureMethod::HmacSha256 => {
            keyed_mac_b64(secret.hmac_sha256(), string_to_sign, &mut buf)
        }
        SignatureMethod::HmacSha1 => keyed_mac_b64(secret.hmac_sha1(), string_to_sign, &mut buf),
    };
    ct_eq_bytes(expected, signature)
}

/// Whether `a == b`, looking at every byte whatever the contents: the differences are
/// OR-ed together without a branch and only the total is tested, through `subtle`. Only a
/// length mismatch returns early (a signature's length is public: its method fixes it).
///
/// This is `subtle`'s slice comparison with one optimisation barrier for the whole slice
/// instead of one per byte (a 44-byte signature took 44 volatile reads).
fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    bool::from(diff.ct_eq(&0))
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

    #[test]
    fn ct_eq_bytes_is_equality() {
        assert!(ct_eq_bytes(b"", b""));
        assert!(ct_eq_bytes(b"abc", b"abc"));
        assert!(!ct_eq_bytes(b"abc", b"abd"));
        assert!(!ct_eq_bytes(b"abc", b"ab"));
        // Every position and every bit.
        let base = [0x5au8; 44];
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut other = base;
                other[i] ^= 1 << bit;
                assert!(!ct_eq_bytes(&base, &other));
            }
        }
    }

    #[test]
    fn keyed_secret_matches_per_call_keying() {
        // Short, block-sized and longer-than-a-block keys (the last are hashed first).
        for key in ["s", &"k".repeat(64), &"long".repeat(40)] {
            let secret = Secret::new(key);
            for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
                for msg in ["", "GET\n\n\n\n\n/p", &"m".repeat(300)] {
                    let sig = sign(method, key.as_bytes(), msg);
                    // Twice: keyed on first use, then the kept state is cloned.
                    for _ in 0..2 {
                        assert!(verify_secret(
                            method,
                            &secret,
                            msg.as_bytes(),
                            sig.as_bytes()
                        ));
                    }
                    assert!(!verify_secret(method, &secret, msg.as_bytes(), b""));
                }
            }
        }
    }
}
