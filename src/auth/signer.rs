//! Client-side signing, as the official client libraries do it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, InvalidHeaderValue};
use http::{HeaderName, HeaderValue, Request};
use md5::{Digest as _, Md5};

use super::signature;
use super::string_to_sign::{is_form, string_to_sign};
use crate::model::{Secret, SignatureMethod, Stage};

/// Signs requests for an app, producing exactly the headers of the official clients.
///
/// Sets `X-Ca-Key`, `X-Ca-Timestamp` (epoch ms), `X-Ca-Nonce` (a random UUID),
/// `X-Ca-Signature-Method` (only for `HmacSHA1` or when asked), `X-Ca-Stage` (when set),
/// `Accept: application/json` (when absent), `Content-MD5` (non-empty, non-form bodies),
/// `X-Ca-Signature-Headers` (the sorted lower-case names of the `x-ca-*` headers it set
/// plus the extra headers) and `X-Ca-Signature`.
///
/// # Examples
///
/// ```
/// use stagegate::auth::Signer;
/// use stagegate::model::SignatureMethod;
/// use stagegate::model::Stage;
/// let signer = Signer::new("203753385", "SECRET_abc123")
///     .unwrap()
///     .with_stage(Stage::TEST)
///     .with_signed_header(http::HeaderName::from_static("x-custom-a"));
/// let mut req = http::Request::get("http://api.example.com/users/123?lang=en")
///     .header("date", "Wed, 09 May 2018 13:30:29 GMT")
///     .header("x-custom-a", "hello")
///     .body(())
///     .unwrap();
/// let signed = signer
///     .sign_with(&mut req, b"", 1_525_872_629_832, "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44")
///     .unwrap();
/// // The signature the official Node.js SDK computes for this request.
/// assert_eq!(signed.signature, "l644RFuIyaAprRNSXkag0wBprB68rubxB6ZOpANTQwk=");
/// assert_eq!(
///     req.headers()["x-ca-signature-headers"],
///     "x-ca-key,x-ca-nonce,x-ca-stage,x-ca-timestamp,x-custom-a"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Signer {
    app_key: HeaderValue,
    secret: Secret,
    method: SignatureMethod,
    send_method: bool,
    stage: Option<HeaderValue>,
    extra: Vec<HeaderName>,
}

/// What [`Signer::sign`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signed {
    /// The exact string that was signed.
    pub string_to_sign: String,
    /// The `X-Ca-Signature` value.
    pub signature: String,
    /// The `X-Ca-Timestamp` value.
    pub timestamp_ms: u64,
    /// The `X-Ca-Nonce` value.
    pub nonce: String,
}

impl Signer {
    /// A signer for an app key and secret, using `HmacSHA256`.
    ///
    /// # Errors
    ///
    /// The app key is not a valid header value.
    pub fn new(app_key: &str, secret: impl Into<Secret>) -> Result<Self, InvalidHeaderValue> {
        Ok(Self {
            app_key: HeaderValue::from_str(app_key)?,
            secret: secret.into(),
            method: SignatureMethod::HmacSha256,
            send_method: false,
            stage: None,
            extra: Vec::new(),
        })
    }

    /// Signs with `method` and always sends (and signs) `X-Ca-Signature-Method`.
    #[must_use]
    pub fn with_method(mut self, method: SignatureMethod) -> Self {
        self.method = method;
        self.send_method = true;
        self
    }

    /// Sends (and signs) `X-Ca-Stage`. Without it the gateway serves the request from the
    /// `RELEASE` stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::Signer;
    /// use stagegate::model::Stage;
    /// let signer = Signer::new("203753385", "SECRET_abc123").unwrap().with_stage(Stage::TEST);
    /// let mut req = http::Request::get("http://api.example.com/hello").body(()).unwrap();
    /// signer.sign(&mut req, b"");
    /// assert_eq!(req.headers()["x-ca-stage"], "TEST");
    /// ```
    #[must_use]
    pub fn with_stage(mut self, stage: Stage) -> Self {
        // A stage name is upper-case ASCII letters: always a valid header value.
        self.stage = HeaderValue::from_str(stage.as_str()).ok();
        self
    }

    /// Also signs this header (its value is read from the request when signing).
    #[must_use]
    pub fn with_signed_header(mut self, name: HeaderName) -> Self {
        if !self.extra.contains(&name) {
            self.extra.push(name);
        }
        self
    }

    /// Signs `req` (whose body bytes are `body`) now, with a fresh random nonce.
    pub fn sign<B>(&self, req: &mut Request<B>, body: &[u8]) -> Signed {
        let nonce = random_uuid();
        let nonce_value = HeaderValue::from_str(&nonce).unwrap_or(HeaderValue::from_static(""));
        self.sign_inner(req, body, now_ms(), nonce, nonce_value)
    }

    /// Signs `req` with a given timestamp and nonce (deterministic, for tests).
    ///
    /// # Errors
    ///
    /// The nonce is not a valid header value.
    pub fn sign_with<B>(
        &self,
        req: &mut Request<B>,
        body: &[u8],
        timestamp_ms: u64,
        nonce: &str,
    ) -> Result<Signed, InvalidHeaderValue> {
        let value = HeaderValue::from_str(nonce)?;
        Ok(self.sign_inner(req, body, timestamp_ms, nonce.to_owned(), value))
    }

    fn sign_inner<B>(
        &self,
        req: &mut Request<B>,
        body: &[u8],
        timestamp_ms: u64,
        nonce: String,
        nonce_value: HeaderValue,
    ) -> Signed {
        let headers = req.headers_mut();
        let mut names: Vec<&str> = vec!["x-ca-key", "x-ca-nonce", "x-ca-timestamp"];
        headers.insert("x-ca-key", self.app_key.clone());
        headers.insert("x-ca-timestamp", HeaderValue::from(timestamp_ms));
        headers.insert("x-ca-nonce", nonce_value);
        if self.send_method || self.method != SignatureMethod::HmacSha256 {
            headers.insert(
                "x-ca-signature-method",
                HeaderValue::from_static(self.method.as_str()),
            );
            names.push("x-ca-signature-method");
        }
        if let Some(stage) = &self.stage {
            headers.insert("x-ca-stage", stage.clone());
            names.push("x-ca-stage");
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        let form = is_form(headers);
        if !body.is_empty() && !form {
            let md5 = STANDARD.encode(Md5::digest(body));
            if let Ok(v) = HeaderValue::from_str(&md5) {
                headers.insert("content-md5", v);
            }
        }
        names.extend(self.extra.iter().map(HeaderName::as_str));
        names.sort_unstable();
        names.dedup();
        let list = names.join(",");
        if let Ok(v) = HeaderValue::from_str(&list) {
            headers.insert("x-ca-signature-headers", v);
        }
        let sts = string_to_sign(req.method(), req.uri(), req.headers(), form.then_some(body));
        let sig = signature::sign(self.method, self.secret.expose().as_bytes(), &sts);
        if let Ok(v) = HeaderValue::from_str(&sig) {
            req.headers_mut().insert("x-ca-signature", v);
        }
        Signed {
            string_to_sign: sts,
            signature: sig,
            timestamp_ms,
            nonce,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random version-4 UUID, lower-case hex. Falls back to a hash of the clock, the
/// process id and a counter if the OS random source fails (nonces need uniqueness).
pub(crate) fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = sha2::Sha256::new();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.update(nanos.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        b.copy_from_slice(&h.finalize()[..16]);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn sha1_sends_method_and_json_gets_md5() {
        let signer = Signer::new("k", "s")
            .unwrap()
            .with_method(SignatureMethod::HmacSha1);
        let mut req = Request::post("/p")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let signed = signer.sign(&mut req, b"{\"name\":\"test\"}");
        let h = req.headers();
        assert_eq!(h["x-ca-signature-method"], "HmacSHA1");
        assert_eq!(h["content-md5"], "K4lbbvqii4GChOXGlqGHmQ==");
        assert_eq!(
            h["x-ca-signature-headers"],
            "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp"
        );
        assert_eq!(h["x-ca-signature"], signed.signature.as_str());
        assert_eq!(signed.signature.len(), 28);
    }

    #[test]
    fn forms_get_no_md5() {
        let signer = Signer::new("k", "s").unwrap();
        let mut req = Request::post("/p")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(())
            .unwrap();
        let signed = signer.sign(&mut req, b"a=1");
        assert!(!req.headers().contains_key("content-md5"));
        assert!(signed.string_to_sign.ends_with("/p?a=1"));
        assert!(!req.headers().contains_key("x-ca-signature-method"));
    }
}
