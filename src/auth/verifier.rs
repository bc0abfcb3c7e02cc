//! Server-side verification of signed requests, in the order the gateway's answers show (see
//! [`check_signature`]).

use std::borrow::{Borrow, Cow};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq;

use super::error::AuthError;
use super::replay::ReplayGuard;
use super::signature;
use super::string_to_sign::{
    SIGNATURE_HEADERS, SignedHeaders, into_text, is_form_type, signed_header_names,
    string_to_sign_with_headers,
};
use crate::model::Secret;
use crate::model::SignatureMethod;

/// The default allowed clock skew of `X-Ca-Timestamp`: 15 minutes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(stagegate::auth::DEFAULT_MAX_SKEW, Duration::from_secs(15 * 60));
/// ```
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// At most this many names in `X-Ca-Signature-Headers` (real clients sign about ten).
pub(crate) const MAX_SIGNED_HEADERS: usize = 128;

/// At most this many bytes in `X-Ca-Nonce` (clients send 36-character UUIDs).
pub(crate) const MAX_NONCE_LEN: usize = 256;

/// A set of [`SignatureMethod`]s (the API's `AllowSignatureMethod`).
///
/// # Examples
///
/// ```
/// use stagegate::auth::SignatureMethods;
/// use stagegate::model::SignatureMethod;
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
/// use stagegate::auth::SignaturePolicy;
/// use stagegate::model::SignatureMethod;
/// let policy = SignaturePolicy::default()
///     .with_method(SignatureMethod::HmacSha1)
///     .with_force_nonce(true);
/// assert!(policy.allowed.contains(SignatureMethod::HmacSha1));
/// assert_eq!(policy.max_skew, std::time::Duration::from_secs(15 * 60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignaturePolicy {
    /// The signature methods accepted (default: `HmacSHA256` only).
    pub allowed: SignatureMethods,
    /// Whether `X-Ca-Nonce` is required (`ForceNonceCheck`).
    pub force_nonce: bool,
    /// The largest accepted |now − `X-Ca-Timestamp`| (counted in whole milliseconds).
    pub max_skew: Duration,
    /// Whether an `X-Ca-Stage` that is sent must be listed in `X-Ca-Signature-Headers`
    /// (default `false`: Alibaba's demo client cannot sign it).
    pub require_signed_stage: bool,
    /// Whether a parameter sent in both the query and the urlencoded form body with
    /// different values is refused ([`AuthError::ConflictingParameter`]). The
    /// string-to-sign takes the form's value (as the official clients sign it), so a backend
    /// that reads the query's would act on an unsigned value. Default `false` (Alibaba's
    /// gateway accepts such a request); [`AppAuthenticator`](crate::layer::AppAuthenticator)
    /// always turns it on, since it forwards the request.
    pub refuse_conflicting_params: bool,
}

impl SignaturePolicy {
    /// The default policy: `HmacSHA256` only, nonce optional, 15-minute skew.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            allowed: SignatureMethods::SHA256_ONLY,
            force_nonce: false,
            max_skew: DEFAULT_MAX_SKEW,
            require_signed_stage: false,
            refuse_conflicting_params: false,
        }
    }

    /// Also accepts `method`.
    #[must_use]
    pub fn with_method(mut self, method: SignatureMethod) -> Self {
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = stagegate::auth::SignaturePolicy::new().with_max_skew(Duration::from_secs(60));
    /// assert_eq!(policy.max_skew, Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// [`max_skew`](Self::max_skew) in whole milliseconds, as timestamps are compared.
    fn max_skew_ms(&self) -> u64 {
        u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX)
    }

    /// Requires (or not) that an `X-Ca-Stage` header, when sent, is signed.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = stagegate::auth::SignaturePolicy::new().with_signed_stage(true);
    /// assert!(policy.require_signed_stage);
    /// ```
    #[must_use]
    pub fn with_signed_stage(mut self, required: bool) -> Self {
        self.require_signed_stage = required;
        self
    }

    /// Refuses (or not) a parameter whose query and form values differ.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = stagegate::auth::SignaturePolicy::new().with_conflicting_params_refused(true);
    /// assert!(policy.refuse_conflicting_params);
    /// ```
    #[must_use]
    pub fn with_conflicting_params_refused(mut self, refused: bool) -> Self {
        self.refuse_conflicting_params = refused;
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
    /// The last moment the request's signed time is accepted (0: it carries none).
    until_ms: u64,
}

impl<A> SignatureChecked<'_, A> {
    /// The verified request (signature valid), before its nonce is consumed: check what else
    /// decides whether it will be served (the app, its grant) first, so that only such
    /// requests use up room in the replay guard.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::{MemoryReplayGuard, SignaturePolicy, Signer, check_signature};
    /// use stagegate::model::Secret;
    /// let secret = Secret::new("SECRET_abc123");
    /// let mut req = http::Request::get("/p").body(()).unwrap();
    /// Signer::new("203753385", secret.clone())
    ///     .unwrap()
    ///     .sign_with(&mut req, b"", 1_525_872_629_832, "n-1")
    ///     .unwrap();
    /// let (parts, ()) = req.into_parts();
    /// let lookup = |_: &str| Some(("app-1", &secret));
    /// let policy = SignaturePolicy::default();
    /// let checked = check_signature(&parts, None, lookup, &policy, 1_525_872_630_000).unwrap();
    /// assert_eq!(checked.verified().app, "app-1");
    /// // ... check the app's grant here; only then:
    /// # let guard = MemoryReplayGuard::new();
    /// # let mut f = std::pin::pin!(checked.consume_nonce(&guard));
    /// # let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// # assert!(matches!(f.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(_))));
    /// ```
    #[must_use]
    pub fn verified(&self) -> &Verified<A> {
        &self.verified
    }

    /// The `X-Ca-Nonce` still to consume, if the request carried one.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.nonce
    }

    /// Consumes the nonce in `replay` (if any) and yields the verified request. The nonce is
    /// remembered for as long as the request's signed time (`X-Ca-Timestamp`, or `Date`
    /// where that is the time) stays within the allowed skew.
    ///
    /// # Errors
    ///
    /// [`AuthError::NonceUsed`] for a replay; [`AuthError::ReplayStore`] when the store
    /// cannot answer.
    pub async fn consume_nonce(self, replay: &dyn ReplayGuard) -> Result<Verified<A>, AuthError> {
        if let Some(nonce) = self.nonce {
            let fresh = replay
                .check_and_remember_until(&self.verified.app_key, nonce, self.now_ms, self.until_ms)
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
    stage: Option<&'p HeaderValue>,
    signed_list: Option<&'p HeaderValue>,
    /// `Accept`, `Content-MD5`, `Content-Type`, `Date`: the fixed lines.
    fixed: [Option<&'p HeaderValue>; 4],
    /// Whether a `Connection` header was sent.
    connection: bool,
}

impl<'p> Found<'p> {
    /// One pass over the headers.
    ///
    /// # Errors
    ///
    /// [`AuthError::DuplicateHeader`] for an `X-Ca-*` header sent more than once: the
    /// signature covers only its first value, the backend would receive every one.
    fn scan(headers: &'p HeaderMap) -> Result<Self, AuthError> {
        let mut f = Found::default();
        let mut previous: Option<&HeaderName> = None;
        for (name, value) in headers {
            // A header map yields every value of a name together, under the same name.
            if previous.is_some_and(|p| std::ptr::eq(p, name)) {
                let n = name.as_str();
                if n.len() > 5 && n.as_bytes()[..5].eq_ignore_ascii_case(b"x-ca-") {
                    return Err(AuthError::DuplicateHeader {
                        name: n.chars().take(64).collect(),
                    });
                }
            }
            previous = Some(name);
            let slot = match name.as_str() {
                "x-ca-key" => &mut f.key,
                "x-ca-signature" => &mut f.signature,
                "x-ca-signature-method" => &mut f.method,
                "x-ca-timestamp" => &mut f.timestamp,
                "x-ca-nonce" => &mut f.nonce,
                "x-ca-stage" => &mut f.stage,
                SIGNATURE_HEADERS => &mut f.signed_list,
                "accept" => &mut f.fixed[0],
                "content-md5" => &mut f.fixed[1],
                "content-type" => &mut f.fixed[2],
                "date" => &mut f.fixed[3],
                "connection" => {
                    f.connection = true;
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        Ok(f)
    }
}

/// Checks everything about a signed request except the nonce's freshness, in the
/// order Alibaba's gateway checks it in (which error a request with several faults gets): `X-Ca-Key` present, key known, `X-Ca-Signature` present, method
/// allowed, timestamp, nonce presence, `Content-MD5`, signature (constant time).
///
/// Beyond the original gateway, so that the backend receives only what was signed:
///
/// * an `X-Ca-*` header sent twice is refused ([`AuthError::DuplicateHeader`]);
/// * an `X-Ca-Nonce` or `X-Ca-Timestamp` that is sent must be listed in
///   `X-Ca-Signature-Headers` ([`AuthError::UnsignedHeader`]; every real client signs
///   them), and so must `X-Ca-Stage` under [`SignaturePolicy::require_signed_stage`];
/// * with [`SignaturePolicy::force_nonce`], the request must carry a signed time:
///   `X-Ca-Timestamp`, or else `Date` (the IoT client sends no timestamp), which is then
///   parsed (RFC 2822 / HTTP-date) and held to the same skew;
/// * a signed header that `Connection` names (so a proxy would drop it) is refused;
/// * with [`SignaturePolicy::refuse_conflicting_params`], a parameter in both the query and
///   the form body with different (decoded) values is refused
///   ([`AuthError::ConflictingParameter`]): the string-to-sign takes the form's.
///
/// A request without `X-Ca-Nonce` to an API that does not force nonce checks can be
/// replayed (within the timestamp's skew, if it carries one): that is the original
/// gateway's contract, where the nonce is optional. Force nonce checks to refuse replays.
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
    let found = Found::scan(&parts.headers)?;
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
    let mut time_ms = match found.timestamp {
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(AuthError::InvalidTimestamp)?,
        ),
        None => None,
    };
    if let Some(ts) = time_ms
        && now_ms.abs_diff(ts) > policy.max_skew_ms()
    {
        return Err(AuthError::TimestampExpired);
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
    // 6b. With forced nonce checks, a time is required too, so that the nonce need only be
    // remembered for as long as that time is accepted: `Date` stands in for a missing
    // timestamp (the IoT client sends no `X-Ca-Timestamp`), and is held to the same skew.
    if policy.force_nonce && time_ms.is_none() {
        let date = found.fixed[3].ok_or(AuthError::MissingHeader {
            name: "X-Ca-Timestamp",
        })?;
        let ts = parse_date(date)?;
        if now_ms.abs_diff(ts) > policy.max_skew_ms() {
            return Err(AuthError::TimestampExpired);
        }
        time_ms = Some(ts);
    }
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
    // What must be signed is signed; nothing signed is dropped on the way.
    let listed = |name: &str| {
        signed
            .signed
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if found.timestamp.is_some() && !listed("x-ca-timestamp") {
        return Err(AuthError::UnsignedHeader {
            name: "X-Ca-Timestamp",
        });
    }
    if nonce.is_some() && !listed("x-ca-nonce") {
        return Err(AuthError::UnsignedHeader { name: "X-Ca-Nonce" });
    }
    if policy.require_signed_stage && found.stage.is_some() && !listed("x-ca-stage") {
        return Err(AuthError::UnsignedHeader { name: "X-Ca-Stage" });
    }
    if found.connection {
        for token in parts
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        {
            let token = token.trim_ascii();
            if !token.is_empty()
                && signed
                    .signed
                    .iter()
                    .any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(token))
            {
                return Err(AuthError::InvalidHeader {
                    name: "Connection",
                    reason: "names a signed header, which would not reach the backend",
                });
            }
        }
    }
    signed.resolve(&parts.headers);
    let form = if found.fixed[2].is_some_and(is_form_type) {
        body
    } else {
        None
    };
    if policy.refuse_conflicting_params
        && let (Some(form), Some(query)) = (form, parts.uri.query())
    {
        check_no_conflict(query.as_bytes(), form)?;
    }
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
        until_ms: time_ms.map_or(0, |t| t.saturating_add(policy.max_skew_ms())),
    })
}

/// `Date` as epoch milliseconds (RFC 2822, which covers the HTTP-date format).
fn parse_date(value: &HeaderValue) -> Result<u64, AuthError> {
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let text = value.to_str().map_err(|_| AuthError::InvalidTimestamp)?;
    let ts = PARSER
        .parse_timestamp(text)
        .map_err(|_| AuthError::InvalidTimestamp)?;
    u64::try_from(ts.as_millisecond()).map_err(|_| AuthError::InvalidTimestamp)
}

/// Refuses a key whose first value in the query differs from its first value in the form
/// (both decoded, as the string-to-sign reads them). Linear in both: the query (bounded by
/// the header limit) is indexed, the form read once.
fn check_no_conflict(query: &[u8], form: &[u8]) -> Result<(), AuthError> {
    let mut in_query: std::collections::HashMap<Cow<'_, str>, Cow<'_, str>> =
        std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(query) {
        in_query.entry(key).or_insert(value);
    }
    if in_query.is_empty() {
        return Ok(());
    }
    for (key, value) in form_urlencoded::parse(form) {
        // Removed on the form's first value: later ones are not signed either way.
        if let Some(q) = in_query.remove(&key)
            && q != value
        {
            return Err(AuthError::ConflictingParameter {
                name: key.chars().filter(|c| !c.is_control()).take(64).collect(),
            });
        }
    }
    Ok(())
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
/// use stagegate::auth::{MemoryReplayGuard, SignaturePolicy, Signer, verify_signature};
/// use stagegate::model::Secret;
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
/// [`AppCodeMode::HeaderQuery`](crate::model::AppCodeMode::HeaderQuery) (otherwise it is an
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
/// use stagegate::auth::appcode_from_request;
/// use stagegate::model::AppCodeMode;
/// let req = http::Request::get("/p?AppCode=q").header("authorization", "APPCODE abc").body(()).unwrap();
/// let (parts, ()) = req.into_parts();
/// assert_eq!(appcode_from_request(&parts, AppCodeMode::Header).unwrap().as_deref(), Some("abc"));
/// assert_eq!(
///     appcode_from_request(&parts, AppCodeMode::Disable).unwrap_err().code(),
///     stagegate::ErrorCode::A400AC.as_str()
/// );
/// ```
pub fn appcode_from_request(
    parts: &Parts,
    mode: crate::model::AppCodeMode,
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
/// assert!(stagegate::auth::appcode_matches("abc", "abc"));
/// assert!(!stagegate::auth::appcode_matches("abc", "abd"));
/// ```
#[must_use]
pub fn appcode_matches(expected: &str, presented: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}
