//! Server-side verification of signed requests (behaviour spec §5.5).

use std::borrow::{Borrow, Cow};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq;

use super::error::AuthError;
use super::replay::ReplayGuard;
use super::signature;
use super::string_to_sign::{
    SIGNATURE_HEADERS, SignedHeaders, into_text, is_form_type, signed_header_names,
    string_to_sign_with_headers,
};
use crate::SignatureMethod;
use crate::model::Secret;

/// The default allowed clock skew of `X-Ca-Timestamp`: 15 minutes.
pub const DEFAULT_MAX_SKEW_MS: u64 = 15 * 60 * 1000;

/// At most this many names in `X-Ca-Signature-Headers` (real clients sign about ten).
pub const MAX_SIGNED_HEADERS: usize = 128;

/// At most this many bytes in `X-Ca-Nonce` (clients send 36-character UUIDs).
pub const MAX_NONCE_LEN: usize = 256;

/// A set of [`SignatureMethod`]s (the API's `AllowSignatureMethod`).
///
/// # Examples
///
/// ```
/// use stagegate::{SignatureMethod, SignatureMethods};
/// let set = SignatureMethods::parse("HmacSHA1,HmacSHA256").unwrap();
/// assert!(set.contains(SignatureMethod::HmacSha1));
/// assert_eq!(SignatureMethods::default(), SignatureMethods::SHA256_ONLY);
/// assert!(!SignatureMethods::SHA256_ONLY.contains(SignatureMethod::HmacSha1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignatureMethods {
    sha256: bool,
    sha1: bool,
}

impl SignatureMethods {
    /// Only `HmacSHA256` (the default).
    pub const SHA256_ONLY: Self = Self {
        sha256: true,
        sha1: false,
    };
    /// `HmacSHA256` and `HmacSHA1`.
    pub const ALL: Self = Self {
        sha256: true,
        sha1: true,
    };
    /// No method at all (every signed request is refused).
    pub const NONE: Self = Self {
        sha256: false,
        sha1: false,
    };

    /// Whether `method` is in the set.
    #[must_use]
    pub fn contains(self, method: SignatureMethod) -> bool {
        match method {
            SignatureMethod::HmacSha256 => self.sha256,
            SignatureMethod::HmacSha1 => self.sha1,
        }
    }

    /// The set plus `method`.
    #[must_use]
    pub fn with(mut self, method: SignatureMethod) -> Self {
        match method {
            SignatureMethod::HmacSha256 => self.sha256 = true,
            SignatureMethod::HmacSha1 => self.sha1 = true,
        }
        self
    }

    /// Parses a comma-separated wire list such as `HmacSHA1,HmacSHA256`; `None` if a
    /// name is unknown.
    #[must_use]
    pub fn parse(list: &str) -> Option<Self> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .try_fold(Self::NONE, |set, name| {
                SignatureMethod::parse(name).map(|m| set.with(m))
            })
    }
}

impl Default for SignatureMethods {
    fn default() -> Self {
        Self::SHA256_ONLY
    }
}

/// The per-API signature rules.
///
/// # Examples
///
/// ```
/// use stagegate::{SignatureMethod, SignaturePolicy};
/// let policy = SignaturePolicy::default()
///     .allow(SignatureMethod::HmacSha1)
///     .with_force_nonce(true);
/// assert!(policy.allowed.contains(SignatureMethod::HmacSha1));
/// assert_eq!(policy.max_skew_ms, 15 * 60 * 1000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignaturePolicy {
    /// The signature methods accepted (default: `HmacSHA256` only).
    pub allowed: SignatureMethods,
    /// Whether `X-Ca-Nonce` is required (`ForceNonceCheck`).
    pub force_nonce: bool,
    /// The largest accepted |now − `X-Ca-Timestamp`|, in milliseconds.
    pub max_skew_ms: u64,
}

impl SignaturePolicy {
    /// The default policy: `HmacSHA256` only, nonce optional, 15-minute skew.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            allowed: SignatureMethods::SHA256_ONLY,
            force_nonce: false,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
        }
    }

    /// Also accepts `method`.
    #[must_use]
    pub fn allow(mut self, method: SignatureMethod) -> Self {
        self.allowed = self.allowed.with(method);
        self
    }

    /// Replaces the set of accepted methods.
    #[must_use]
    pub fn with_allowed(mut self, allowed: SignatureMethods) -> Self {
        self.allowed = allowed;
        self
    }

    /// Requires (or not) `X-Ca-Nonce`.
    #[must_use]
    pub fn with_force_nonce(mut self, force_nonce: bool) -> Self {
        self.force_nonce = force_nonce;
        self
    }

    /// Sets the accepted timestamp skew.
    #[must_use]
    pub fn with_max_skew_ms(mut self, max_skew_ms: u64) -> Self {
        self.max_skew_ms = max_skew_ms;
        self
    }
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// A request whose signature is valid.
///
/// # Examples
///
/// See [`verify_signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified<A> {
    /// What the lookup returned for the key (e.g. the app id).
    pub app: A,
    /// The `X-Ca-Key` the request was signed with.
    pub app_key: String,
    /// The algorithm it was signed with.
    pub method: SignatureMethod,
}

/// A request whose signature is valid but whose nonce (if any) is not yet consumed.
///
/// Returned by [`check_signature`]; finish with [`SignatureChecked::consume_nonce`].
#[derive(Debug)]
#[must_use = "the nonce must still be consumed"]
pub struct SignatureChecked<'p, A> {
    verified: Verified<A>,
    nonce: Option<&'p str>,
    now_ms: u64,
}

impl<A> SignatureChecked<'_, A> {
    /// The `X-Ca-Nonce` still to consume, if the request carried one.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.nonce
    }

    /// Consumes the nonce in `replay` (if any) and yields the verified request.
    ///
    /// # Errors
    ///
    /// [`AuthError::NonceUsed`] for a replay; [`AuthError::ReplayStore`] when the store
    /// cannot answer.
    pub async fn consume_nonce(self, replay: &dyn ReplayGuard) -> Result<Verified<A>, AuthError> {
        if let Some(nonce) = self.nonce {
            let fresh = replay
                .check_and_remember(&self.verified.app_key, nonce, self.now_ms)
                .await?;
            if !fresh {
                return Err(AuthError::NonceUsed);
            }
        }
        Ok(self.verified)
    }
}

/// The request headers verification reads, found in one pass over the header map
/// (cheaper than hashing a name per lookup); each holds its first value, as
/// `HeaderMap::get` would return.
#[derive(Default)]
struct Found<'p> {
    key: Option<&'p HeaderValue>,
    signature: Option<&'p HeaderValue>,
    method: Option<&'p HeaderValue>,
    timestamp: Option<&'p HeaderValue>,
    nonce: Option<&'p HeaderValue>,
    signed_list: Option<&'p HeaderValue>,
    /// `Accept`, `Content-MD5`, `Content-Type`, `Date`: the fixed lines.
    fixed: [Option<&'p HeaderValue>; 4],
}

impl<'p> Found<'p> {
    fn scan(headers: &'p HeaderMap) -> Self {
        let mut f = Found::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "x-ca-key" => &mut f.key,
                "x-ca-signature" => &mut f.signature,
                "x-ca-signature-method" => &mut f.method,
                "x-ca-timestamp" => &mut f.timestamp,
                "x-ca-nonce" => &mut f.nonce,
                SIGNATURE_HEADERS => &mut f.signed_list,
                "accept" => &mut f.fixed[0],
                "content-md5" => &mut f.fixed[1],
                "content-type" => &mut f.fixed[2],
                "date" => &mut f.fixed[3],
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        f
    }
}

/// Checks everything about a signed request except the nonce's freshness, in the
/// order of spec §5.5: `X-Ca-Key` present, key known, `X-Ca-Signature` present, method
/// allowed, timestamp, nonce presence, `Content-MD5`, signature (constant time).
///
/// `body` is the buffered request body (for `Content-MD5` and form parameters); `lookup`
/// maps an AppKey to the caller's app handle and its secret.
///
/// # Errors
///
/// The first failed check, as an [`AuthError`].
///
/// # Examples
///
/// See [`verify_signature`], which also consumes the nonce.
pub fn check_signature<'p, A, S, F>(
    parts: &'p Parts,
    body: Option<&[u8]>,
    lookup: F,
    policy: &SignaturePolicy,
    now_ms: u64,
) -> Result<SignatureChecked<'p, A>, AuthError>
where
    S: Borrow<Secret>,
    F: FnOnce(&str) -> Option<(A, S)>,
{
    let found = Found::scan(&parts.headers);
    // 1. X-Ca-Key. A foreign scheme (e.g. `Authorization: SDK-HMAC-SHA256 ...`) has none.
    let app_key = match found.key {
        None => return Err(AuthError::MissingCredentials),
        Some(v) if v.is_empty() => return Err(AuthError::MissingCredentials),
        Some(v) => v.to_str().map_err(|_| AuthError::InvalidAppKey)?,
    };
    // 2. Known key.
    let (app, secret) = lookup(app_key).ok_or(AuthError::InvalidAppKey)?;
    // 3. Signature present.
    let presented = match found.signature {
        Some(v) if !v.is_empty() => v.as_bytes(),
        _ => {
            return Err(AuthError::MissingHeader {
                name: "X-Ca-Signature",
            });
        }
    };
    // 4. Method.
    let method = match found.method {
        None => SignatureMethod::HmacSha256,
        Some(v) => {
            let text = String::from_utf8_lossy(v.as_bytes());
            match SignatureMethod::parse(&text) {
                Some(m) if policy.allowed.contains(m) => m,
                _ => {
                    return Err(AuthError::SignatureMethodNotAllowed {
                        method: text.chars().take(32).collect(),
                    });
                }
            }
        }
    };
    if !policy.allowed.contains(method) {
        return Err(AuthError::SignatureMethodNotAllowed {
            method: method.as_str().to_owned(),
        });
    }
    // 5. Timestamp (optional: Date-only clients exist).
    if let Some(v) = found.timestamp {
        let ts = std::str::from_utf8(v.as_bytes())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(AuthError::InvalidTimestamp)?;
        if now_ms.abs_diff(ts) > policy.max_skew_ms {
            return Err(AuthError::TimestampExpired);
        }
    }
    // 6. Nonce presence.
    let nonce = match found.nonce {
        None if policy.force_nonce => {
            return Err(AuthError::MissingHeader { name: "X-Ca-Nonce" });
        }
        None => None,
        Some(v) => {
            let n = v.to_str().map_err(|_| AuthError::InvalidHeader {
                name: "X-Ca-Nonce",
                reason: "is not visible ASCII",
            })?;
            if n.is_empty() && policy.force_nonce {
                return Err(AuthError::MissingHeader { name: "X-Ca-Nonce" });
            }
            if n.len() > MAX_NONCE_LEN {
                return Err(AuthError::InvalidHeader {
                    name: "X-Ca-Nonce",
                    reason: "is too long",
                });
            }
            (!n.is_empty()).then_some(n)
        }
    };
    // 7. Content-MD5 against the body.
    if let Some(v) = found.fixed[1] {
        let body = body
            .filter(|b| !b.is_empty())
            .ok_or(AuthError::InvalidContentMd5)?;
        // 16 bytes encode to 24 Base64 characters: no heap.
        let mut buf = [0u8; 24];
        let len = STANDARD
            .encode_slice(Md5::digest(body), &mut buf)
            .unwrap_or(0);
        if !bool::from(buf[..len].ct_eq(v.as_bytes())) {
            return Err(AuthError::InvalidContentMd5);
        }
    }
    // 8. Signature.
    let mut signed = SignedHeaders {
        fixed: found.fixed,
        signed: signed_header_names(found.signed_list),
    };
    if signed.signed.len() > MAX_SIGNED_HEADERS {
        return Err(AuthError::InvalidHeader {
            name: "X-Ca-Signature-Headers",
            reason: "lists too many headers",
        });
    }
    signed.resolve(&parts.headers);
    let form = if found.fixed[2].is_some_and(is_form_type) {
        body
    } else {
        None
    };
    let sts = string_to_sign_with_headers(&parts.method, &parts.uri, &signed, form);
    // Base64 is ASCII: presented bytes that are not UTF-8 can never match.
    if !signature::verify_secret(method, secret.borrow(), &sts, presented) {
        return Err(AuthError::InvalidSignature {
            string_to_sign: into_text(sts),
        });
    }
    Ok(SignatureChecked {
        verified: Verified {
            app,
            app_key: app_key.to_owned(),
            method,
        },
        nonce,
        now_ms,
    })
}

/// Verifies a signed request completely: [`check_signature`], then — only for a valid
/// signature, so that forged requests cannot burn nonces — consumes `X-Ca-Nonce` in
/// `replay`.
///
/// # Errors
///
/// The first failed check, as an [`AuthError`].
///
/// # Examples
///
/// ```
/// use stagegate::{MemoryReplayGuard, Secret, SignaturePolicy, Signer, verify_signature};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let secret = Secret::new("SECRET_abc123");
/// let signer = Signer::new("203753385", secret.clone()).unwrap();
/// let mut req = http::Request::get("/demo/get?a=1").body(()).unwrap();
/// signer.sign_with(&mut req, b"", 1_525_872_629_832, "nonce-1").unwrap();
/// let (parts, ()) = req.into_parts();
///
/// let guard = MemoryReplayGuard::new();
/// let lookup = |key: &str| (key == "203753385").then_some(("app-1", &secret));
/// let policy = SignaturePolicy::default();
/// let now = 1_525_872_630_000;
/// let ok = block_on(verify_signature(&parts, None, lookup, &policy, now, &guard)).unwrap();
/// assert_eq!(ok.app, "app-1");
/// let again = block_on(verify_signature(&parts, None, lookup, &policy, now, &guard));
/// assert_eq!(again.unwrap_err().wire_message(), "Nonce Used");
/// ```
pub async fn verify_signature<A, S, F>(
    parts: &Parts,
    body: Option<&[u8]>,
    lookup: F,
    policy: &SignaturePolicy,
    now_ms: u64,
    replay: &dyn ReplayGuard,
) -> Result<Verified<A>, AuthError>
where
    S: Borrow<Secret>,
    F: FnOnce(&str) -> Option<(A, S)>,
{
    check_signature(parts, body, lookup, policy, now_ms)?
        .consume_nonce(replay)
        .await
}

/// Extracts an AppCode (simple authentication) from a request.
///
/// `Authorization: APPCODE <code>` (literal `APPCODE`, one space) is read when `mode`
/// allows the header; the `AppCode` query parameter only under
/// [`AppCodeMode::HeaderQuery`](crate::AppCodeMode::HeaderQuery) (otherwise it is an
/// ordinary parameter and ignored here). Other `Authorization` schemes are ignored.
///
/// # Errors
///
/// [`AuthError::AppCodeDisabled`] for an `APPCODE` header when `mode` is `Disable`;
/// [`AuthError::InvalidAppCode`] for an empty or non-ASCII code.
///
/// # Examples
///
/// ```
/// use stagegate::{AppCodeMode, appcode_from_request};
/// let req = http::Request::get("/p?AppCode=q").header("authorization", "APPCODE abc").body(()).unwrap();
/// let (parts, ()) = req.into_parts();
/// assert_eq!(appcode_from_request(&parts, AppCodeMode::Header).unwrap().as_deref(), Some("abc"));
/// assert_eq!(
///     appcode_from_request(&parts, AppCodeMode::Disable).unwrap_err().code(),
///     "A400AC"
/// );
/// ```
pub fn appcode_from_request(
    parts: &Parts,
    mode: crate::AppCodeMode,
) -> Result<Option<Cow<'_, str>>, AuthError> {
    const PREFIX: &[u8] = b"APPCODE ";
    for value in parts.headers.get_all(http::header::AUTHORIZATION) {
        let bytes = value.as_bytes();
        if bytes.len() < PREFIX.len() || &bytes[..PREFIX.len()] != PREFIX {
            continue;
        }
        if !mode.allows_header() {
            return Err(AuthError::AppCodeDisabled);
        }
        let code = std::str::from_utf8(&bytes[PREFIX.len()..])
            .ok()
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(AuthError::InvalidAppCode)?;
        return Ok(Some(Cow::Borrowed(code)));
    }
    if mode.allows_query()
        && let Some(query) = parts.uri.query()
        && let Some((_, code)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "AppCode")
    {
        if code.is_empty() {
            return Err(AuthError::InvalidAppCode);
        }
        return Ok(Some(code));
    }
    Ok(None)
}

/// Compares a presented AppCode with an expected one in constant time.
///
/// # Examples
///
/// ```
/// assert!(stagegate::appcode_matches("abc", "abc"));
/// assert!(!stagegate::appcode_matches("abc", "abd"));
/// ```
#[must_use]
pub fn appcode_matches(expected: &str, presented: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}
