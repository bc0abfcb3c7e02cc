//! The gateway-to-backend signature (the "backend signature" of Alibaba Cloud API Gateway's documentation): a named key and secret bound to an
//! API in a stage; the gateway signs what it sends to the backend.
//!
//! Headers the backend receives:
//!
//! - `X-Ca-Proxy-Signature-Secret-Key`: the key's name, so a backend can hold several secrets
//!   and rotate them;
//! - `X-Ca-Proxy-Signature-Headers`: the signed headers, comma-separated: the secret-key header
//!   and every other `X-Ca-*` header of the backend request;
//! - `X-Ca-Proxy-Signature`: Base64 of HMAC-SHA256 over
//!
//! ```text
//! METHOD "\n"
//! Base64(MD5(body)) for a POST or PUT with a non-empty, non-form body, else "" "\n"
//! for each signed header, by lower-cased name: lower(name) ":" value "\n"
//! path ["?" k=v&... of the query and form parameters, sorted by key]
//! ```
//!
//! The path is the one the backend receives (base path included). A parameter without a
//! value is written as its key alone; of a key given twice, the form body's value wins over
//! the query's, and within one the first wins. Byte-exact with test vector B1 in `tests/data/signature-vectors.json`.
//! Non-HTTP backends (Function Compute, OSS, EventBridge) and plugged HTTP dispatchers are not
//! signed.
//!
//! # Examples
//!
//! ```
//! use http::{HeaderMap, Method};
//! use stagegate::policy::{SignedRequest, backend_string_to_sign};
//! let mut headers = HeaderMap::new();
//! headers.insert("x-ca-proxy-signature-headers", "HeaderKey1,HeaderKey2".parse().unwrap());
//! headers.insert("headerkey1", "HeaderValue1".parse().unwrap());
//! headers.insert("headerkey2", "HeaderValue2".parse().unwrap());
//! let req = SignedRequest { method: &Method::POST, path: "/demo/uri", query: Some("QueryKey2=QueryValue2&QueryKey1=QueryValue1"), headers: &headers, body: None };
//! assert_eq!(
//!     backend_string_to_sign(&req),
//!     "POST\n\nheaderkey1:HeaderValue1\nheaderkey2:HeaderValue2\n/demo/uri?QueryKey1=QueryValue1&QueryKey2=QueryValue2"
//! );
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::model::{Secret, ValidationError};

/// `X-Ca-Proxy-Signature`: the signature.
pub const X_CA_PROXY_SIGNATURE: &str = "x-ca-proxy-signature";
/// `X-Ca-Proxy-Signature-Headers`: the signed header names.
pub const X_CA_PROXY_SIGNATURE_HEADERS: &str = "x-ca-proxy-signature-headers";
/// `X-Ca-Proxy-Signature-Secret-Key`: the key's name.
pub const X_CA_PROXY_SIGNATURE_SECRET_KEY: &str = "x-ca-proxy-signature-secret-key";

static SIG: HeaderName = HeaderName::from_static(X_CA_PROXY_SIGNATURE);
static SIG_HEADERS: HeaderName = HeaderName::from_static(X_CA_PROXY_SIGNATURE_HEADERS);
static SIG_KEY: HeaderName = HeaderName::from_static(X_CA_PROXY_SIGNATURE_SECRET_KEY);

/// A backend signature policy's settings: the key's name and its secret.
///
/// The secret is never shown by the admin API's reads (only export carries it, as it carries
/// app secrets).
///
/// # Examples
///
/// ```
/// use stagegate::policy::BackendSignature;
/// let s = BackendSignature { key: "DemoKey1".into(), secret: "DemoSecret1".into() };
/// assert!(s.validate().is_ok());
/// let bad = BackendSignature { key: "1key".into(), secret: "DemoSecret1".into() };
/// assert!(bad.validate().unwrap_err().to_string().contains("key"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSignature {
    /// The key's name: 6 to 20 letters, digits or `_`, starting with a letter.
    pub key: String,
    /// The secret: 6 to 30 characters, starting with a letter; letters, digits and `_@#!*`.
    pub secret: Secret,
}

impl BackendSignature {
    /// Checks key and secret against the original gateway's rules.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming `key` or `secret` (never showing the secret).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let k = &self.key;
        if !(6..=20).contains(&k.len())
            || !k.starts_with(|c: char| c.is_ascii_alphabetic())
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ValidationError::field(
                "key",
                "must be 6 to 20 letters, digits or `_`, starting with a letter",
            ));
        }
        let s = self.secret.expose();
        if !(6..=30).contains(&s.len())
            || !s.starts_with(|c: char| c.is_ascii_alphabetic())
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_@#!*".contains(&b))
        {
            return Err(ValidationError::field(
                "secret",
                "must be 6 to 30 characters, starting with a letter; letters, digits and _@#!*",
            ));
        }
        Ok(())
    }
}

/// What a backend signature covers.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path as the backend receives it.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The headers, holding `X-Ca-Proxy-Signature-Headers`.
    pub headers: &'a HeaderMap,
    /// The body, where it is known.
    pub body: Option<&'a [u8]>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some() && crate::auth::is_form(headers)
}

/// The string-to-sign of a backend signature (see the module docs).
#[must_use]
pub fn backend_string_to_sign(req: &SignedRequest<'_>) -> String {
    let mut s = String::with_capacity(128);
    s.push_str(req.method.as_str());
    s.push('\n');
    let form = is_form(req.headers);
    if let Some(body) = req.body
        && !body.is_empty()
        && !form
        && (req.method == Method::POST || req.method == Method::PUT)
    {
        s.push_str(&STANDARD.encode(md5::Md5::digest(body)));
    }
    s.push('\n');
    let mut names: Vec<String> = req
        .headers
        .get(&SIG_HEADERS)
        .and_then(|v| v.to_str().ok())
        .map(|l| {
            l.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    for n in &names {
        s.push_str(n);
        s.push(':');
        if let Some(v) = req.headers.get(n.as_str()) {
            s.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        s.push('\n');
    }
    s.push_str(req.path);
    let mut params: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(q) = req.query {
        // the query's first value per key
        for pair in q.as_bytes().split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = split_pair(pair);
            params
                .entry(decode(k))
                .or_insert_with(|| v.map(decode).filter(|v| !v.is_empty()));
        }
    }
    let mut form_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    if form && let Some(body) = req.body {
        // the form's first value per key wins over the query's
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = split_pair(pair);
            let k = decode(k);
            if form_seen.insert(k.clone()) {
                params.insert(k, v.map(decode).filter(|v| !v.is_empty()));
            }
        }
    }
    if !params.is_empty() {
        s.push('?');
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                s.push('&');
            }
            s.push_str(k);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
    }
    s
}

fn split_pair(pair: &[u8]) -> (&[u8], Option<&[u8]>) {
    match pair.iter().position(|&b| b == b'=') {
        Some(i) => (&pair[..i], Some(&pair[i + 1..])),
        None => (pair, None),
    }
}

fn decode(b: &[u8]) -> String {
    form_urlencoded::parse(b)
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// The Base64 HMAC-SHA256 of `string_to_sign` under `secret`.
pub(crate) fn hmac_b64(secret: &Secret, string_to_sign: &str) -> String {
    let mut mac = secret
        .hmac_sha256()
        .unwrap_or_else(|| hmac::Hmac::<sha2::Sha256>::new_from_slice(b"").expect("any key"));
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs a backend request in place: sets the three `X-Ca-Proxy-Signature*` headers (any the
/// client sent are replaced). Returns the string-to-sign.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, Method};
/// use stagegate::policy::{BackendSignature, sign_backend_request};
/// let key = BackendSignature { key: "DemoKey1".into(), secret: "DemoSecret1".into() };
/// let mut headers = HeaderMap::new();
/// sign_backend_request(&key, &Method::GET, "/users", None, &mut headers, None);
/// assert_eq!(headers["x-ca-proxy-signature-secret-key"], "DemoKey1");
/// assert_eq!(headers["x-ca-proxy-signature-headers"], "x-ca-proxy-signature-secret-key");
/// assert_eq!(headers["x-ca-proxy-signature"].len(), 44);
/// ```
pub fn sign_backend_request(
    key: &BackendSignature,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &mut HeaderMap,
    body: Option<&[u8]>,
) -> String {
    headers.remove(&SIG);
    headers.remove(&SIG_HEADERS);
    if let Ok(v) = HeaderValue::from_str(&key.key) {
        headers.insert(SIG_KEY.clone(), v);
    }
    let mut names: Vec<&str> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| n.starts_with("x-ca-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let list = names.join(",");
    if let Ok(v) = HeaderValue::from_str(&list) {
        headers.insert(SIG_HEADERS.clone(), v);
    }
    let sts = backend_string_to_sign(&SignedRequest {
        method,
        path,
        query,
        headers,
        body,
    });
    if let Ok(v) = HeaderValue::from_str(&hmac_b64(&key.secret, &sts)) {
        headers.insert(SIG.clone(), v);
    }
    sts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_md5_only_for_post_and_put_with_a_non_form_body() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let req = |m: &'static Method, body: Option<&'static [u8]>, h: &'static HeaderMap| {
            SignedRequest {
                method: m,
                path: "/p",
                query: None,
                headers: h,
                body,
            }
        };
        let h: &'static HeaderMap = Box::leak(Box::new(h));
        let post = backend_string_to_sign(&req(&Method::POST, Some(b"{}"), h));
        assert_eq!(post, "POST\nmZFLkyvTelC5g8XnyQrpOw==\n/p");
        let get = backend_string_to_sign(&req(&Method::GET, Some(b"{}"), h));
        assert_eq!(get, "GET\n\n/p");
        let empty = backend_string_to_sign(&req(&Method::PUT, Some(b""), h));
        assert_eq!(empty, "PUT\n\n/p");
    }

    #[test]
    fn form_values_win_and_keys_without_values_stand_alone() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let sts = backend_string_to_sign(&SignedRequest {
            method: &Method::POST,
            path: "/p",
            query: Some("b=1&a&c=q"),
            headers: &h,
            body: Some(b"c=f&c=g&d=%20x"),
        });
        assert_eq!(sts, "POST\n\n/p?a&b=1&c=f&d= x");
    }
}
