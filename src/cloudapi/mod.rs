//! A management endpoint that speaks Alibaba Cloud's CloudAPI (2016-07-14) RPC protocol, so
//! scripts built on the official SDKs (`alibabacloud-cloudapi20160714` for Python,
//! `@alicloud/cloudapi20160714` for Node, the same model in Java and Go) drive stagegate
//! unchanged: point the SDK's `endpoint` at the admin listener.
//!
//! [`CloudApi`] is a tower `Service` over the same [`ControlPlane`] as every other way in, so
//! every invariant and cascade applies and each action's effect is live on the next
//! data-plane request. Calls are signed with an access key pair from [`AccessKeys`], by either
//! scheme of [`signature`] (dispatched on `Authorization: ACS3-...` versus a `Signature`
//! parameter); a date more than 15 minutes away from now, or a nonce seen before, is refused.
//! Refusals answer `{"RequestId","Code","Message","HostId"}` with Alibaba's codes
//! ([`CloudApiError`]). The action-by-action table of honoured, ignored and refused fields is
//! `docs/cloudapi.md`.
//!
//! [`CloudApiLayer`] puts the endpoint in front of another service (the admin router): a
//! request for `/` with an `x-acs-action` header or an `Action` query parameter goes to the
//! CloudAPI, everything else to the inner service.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use stagegate::ControlPlane;
//! use stagegate::cloudapi::{AccessKeys, CloudApi};
//! use stagegate::store::MemoryStore;
//! use tower::ServiceExt;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
//! let keys = AccessKeys::parse_list("LTAIexample01:a-long-enough-secret").unwrap();
//! let api = CloudApi::new(control, keys);
//! // an unsigned call is refused with the code the SDKs know
//! let req = http::Request::post("/?Action=DescribeApis&Version=2016-07-14")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())
//!     .unwrap();
//! let res = api.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 400);
//! # });
//! ```

mod actions;
mod error;
mod keys;
pub mod signature;
mod wire;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};

pub use actions::ACTIONS;
pub use error::CloudApiError;
pub use keys::{AccessKeyError, AccessKeys};

use crate::auth::{MemoryReplayGuard, ReplayGuard};
use crate::control::ControlPlane;
use crate::proxy::{BoxError, GatewayBody};
use wire::Params;

/// The API version this endpoint speaks.
///
/// # Examples
///
/// ```
/// assert_eq!(stagegate::cloudapi::VERSION, "2016-07-14");
/// assert!(stagegate::cloudapi::ACTIONS.contains(&"DeployApi"));
/// assert_eq!(stagegate::cloudapi::DEFAULT_MAX_SKEW.as_secs(), 900);
/// ```
pub const VERSION: &str = "2016-07-14";

/// The default largest request (query and body each): 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How far a request's date may be from now: 15 minutes, as Alibaba's service allows.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The longest nonce accepted.
const MAX_NONCE_LEN: usize = 128;

/// The CloudAPI (2016-07-14) endpoint as a tower `Service`. Cloning is a reference-count bump.
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # use stagegate::ControlPlane;
/// # use stagegate::store::MemoryStore;
/// use stagegate::auth::MemoryReplayGuard;
/// use stagegate::cloudapi::{AccessKeys, CloudApi};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
/// let api = CloudApi::new(control, AccessKeys::new())
///     .with_replay_guard(Arc::new(MemoryReplayGuard::new().with_max_entries(10_000)))
///     .with_max_skew(std::time::Duration::from_secs(300))
///     .with_body_limit(256 * 1024);
/// assert!(api.access_keys().is_empty());
/// # });
/// ```
#[derive(Clone)]
pub struct CloudApi {
    inner: Arc<Inner>,
}

struct Inner {
    control: Arc<ControlPlane>,
    keys: AccessKeys,
    replay: Arc<dyn ReplayGuard>,
    max_skew: Duration,
    body_limit: usize,
}

impl fmt::Debug for CloudApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudApi")
            .field("keys", &self.inner.keys)
            .field("max_skew", &self.inner.max_skew)
            .field("body_limit", &self.inner.body_limit)
            .finish_non_exhaustive()
    }
}

impl CloudApi {
    /// The endpoint over `control`, accepting calls signed with `keys` (shared: pairs added or
    /// removed later are seen by the next call).
    #[must_use]
    pub fn new(control: Arc<ControlPlane>, keys: AccessKeys) -> Self {
        Self {
            inner: Arc::new(Inner {
                control,
                keys,
                replay: Arc::new(MemoryReplayGuard::new()),
                max_skew: DEFAULT_MAX_SKEW,
                body_limit: DEFAULT_BODY_LIMIT,
            }),
        }
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            control: Arc::clone(&arc.control),
            keys: arc.keys.clone(),
            replay: Arc::clone(&arc.replay),
            max_skew: arc.max_skew,
            body_limit: arc.body_limit,
        });
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Remembers nonces in `guard` (default: an in-process [`MemoryReplayGuard`]); share one
    /// guard between nodes so that a nonce is refused whichever node sees it again.
    #[must_use]
    pub fn with_replay_guard(self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.map_inner(|i| i.replay = guard)
    }

    /// How far a request's date may be from now (default [`DEFAULT_MAX_SKEW`]).
    #[must_use]
    pub fn with_max_skew(self, skew: Duration) -> Self {
        self.map_inner(|i| i.max_skew = skew)
    }

    /// The largest request body (default [`DEFAULT_BODY_LIMIT`]).
    #[must_use]
    pub fn with_body_limit(self, limit: usize) -> Self {
        self.map_inner(|i| i.body_limit = limit)
    }

    /// The access key pairs calls are checked against.
    #[must_use]
    pub fn access_keys(&self) -> &AccessKeys {
        &self.inner.keys
    }

    /// A layer that sends CloudAPI requests ([`is_cloudapi_request`]) to this endpoint and
    /// everything else to the service it wraps.
    #[must_use]
    pub fn layer(&self) -> CloudApiLayer {
        CloudApiLayer { api: self.clone() }
    }

    /// Handles one call: verifies it, performs the action, answers JSON (a refusal too, so
    /// this never fails).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use stagegate::ControlPlane;
    /// # use stagegate::store::MemoryStore;
    /// use stagegate::cloudapi::{AccessKeys, CloudApi};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    /// let api = CloudApi::new(control, AccessKeys::new());
    /// let req = http::Request::get("/?Action=DescribeApis").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    /// let res = api.handle(req).await;
    /// assert_eq!(res.headers()["content-type"], "application/json;charset=utf-8");
    /// # });
    /// ```
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let request_id = crate::layer::new_request_id().to_string();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let outcome = self.call_checked(req, &request_id).await;
        match outcome {
            Ok(body) => wire::ok_response(&request_id, body),
            Err(e) => {
                tracing::debug!(target: "stagegate::cloudapi", %request_id, code = e.code(), error = %e, "refused");
                wire::error_response(&request_id, &host, &e)
            }
        }
    }

    async fn call_checked<B>(
        &self,
        req: Request<B>,
        request_id: &str,
    ) -> Result<serde_json::Value, CloudApiError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        if parts.uri.path() != "/" {
            return Err(CloudApiError::UnsupportedAction(format!(
                "path {}",
                wire::short(parts.uri.path())
            )));
        }
        let method = parts.method.as_str();
        if method != "GET" && method != "POST" {
            return Err(CloudApiError::UnsupportedAction(format!("method {method}")));
        }
        let raw_query = parts.uri.query().unwrap_or("");
        if raw_query.len() > self.inner.body_limit {
            return Err(CloudApiError::BodyTooLarge(self.inner.body_limit));
        }
        let body = Limited::new(body, self.inner.body_limit)
            .collect()
            .await
            .map_err(|_| CloudApiError::BodyTooLarge(self.inner.body_limit))?
            .to_bytes();
        let query = wire::decode_form(raw_query)?;
        let form = if body.is_empty() {
            Vec::new()
        } else if is_form(&parts.headers) {
            let text = std::str::from_utf8(&body)
                .map_err(|_| CloudApiError::invalid("Body", "is not valid UTF-8"))?;
            wire::decode_form(text)?
        } else {
            return Err(CloudApiError::invalid(
                "Content-Type",
                "a body must be application/x-www-form-urlencoded",
            ));
        };
        let signed = self.verify(method, &parts.headers, &query, &form, &body)?;
        if signed.version != VERSION {
            return Err(CloudApiError::InvalidVersion(wire::short(&signed.version)));
        }
        self.check_fresh(&signed).await?;
        let params = Params::merge(&query, &form)?;
        let call = actions::Call {
            control: &self.inner.control,
            params: &params,
        };
        tracing::info!(target: "stagegate::cloudapi", %request_id, action = %signed.action, access_key_id = %signed.key_id, "call");
        actions::dispatch(&signed.action, &call).await
    }

    /// Checks the signature by whichever scheme the request uses.
    fn verify(
        &self,
        method: &str,
        headers: &HeaderMap,
        query: &[(String, String)],
        form: &[(String, String)],
        body: &[u8],
    ) -> Result<SignedCall, CloudApiError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .map(|v| {
                v.to_str().map_err(|_| {
                    CloudApiError::IncompleteSignature("Authorization is not ASCII".into())
                })
            })
            .transpose()?;
        if let Some(auth) = auth {
            return self.verify_acs3(method, headers, auth, query, body);
        }
        if query.iter().any(|(k, _)| k == "Signature") {
            return self.verify_rpc(method, query, form);
        }
        Err(CloudApiError::IncompleteSignature(
            "neither an ACS3-HMAC-SHA256 Authorization header nor a Signature parameter".into(),
        ))
    }

    fn verify_acs3(
        &self,
        method: &str,
        headers: &HeaderMap,
        auth: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<SignedCall, CloudApiError> {
        let a = signature::parse_acs3_authorization(auth)?;
        let names: Vec<&str> = a.signed_headers.split(';').collect();
        if names.len() > 64 {
            return Err(CloudApiError::IncompleteSignature(
                "SignedHeaders names more than 64 headers".into(),
            ));
        }
        let mut required: Vec<&str> = signature::ACS3_REQUIRED_SIGNED_HEADERS.to_vec();
        if headers.contains_key(header::CONTENT_TYPE) {
            required.push("content-type");
        }
        for r in required {
            if !names.contains(&r) {
                return Err(CloudApiError::IncompleteSignature(format!(
                    "SignedHeaders must include `{r}`"
                )));
            }
        }
        let mut signed = Vec::with_capacity(names.len());
        for n in &names {
            if n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(CloudApiError::IncompleteSignature(
                    "SignedHeaders names must be lower case and non-empty".into(),
                ));
            }
            signed.push(((*n).to_owned(), one_header(headers, n)?.to_owned()));
        }
        let sha = one_header(headers, "x-acs-content-sha256")?;
        // The key is looked up after the shape checks so that malformed requests are told so,
        // and before the body hash, so that an unknown key is told so whatever the body.
        let secret = self
            .inner
            .keys
            .secret(a.credential)
            .ok_or(CloudApiError::AccessKeyNotFound)?;
        if !signature::signatures_match(&signature::content_sha256(body), sha) {
            return Err(CloudApiError::SignatureDoesNotMatch);
        }
        let canonical =
            signature::acs3_canonical_request(method, query, &signed, a.signed_headers, sha);
        let expected =
            signature::acs3_signature(secret.expose(), &signature::acs3_string_to_sign(&canonical));
        if !signature::signatures_match(&expected, a.signature) {
            return Err(CloudApiError::SignatureDoesNotMatch);
        }
        Ok(SignedCall {
            key_id: a.credential.to_owned(),
            action: one_header(headers, "x-acs-action")?.to_owned(),
            version: one_header(headers, "x-acs-version")?.to_owned(),
            date: one_header(headers, "x-acs-date")?.to_owned(),
            nonce: one_header(headers, "x-acs-signature-nonce")?.to_owned(),
        })
    }

    fn verify_rpc(
        &self,
        method: &str,
        query: &[(String, String)],
        form: &[(String, String)],
    ) -> Result<SignedCall, CloudApiError> {
        let get = |name: &str| {
            query
                .iter()
                .chain(form)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| CloudApiError::MissingParameter(name.to_owned()))
        };
        let sig_method = get("SignatureMethod")?;
        if sig_method != "HMAC-SHA1" {
            return Err(CloudApiError::invalid(
                "SignatureMethod",
                "only HMAC-SHA1 is supported with SignatureVersion 1.0",
            ));
        }
        if get("SignatureVersion")? != "1.0" {
            return Err(CloudApiError::invalid("SignatureVersion", "must be 1.0"));
        }
        let key_id = get("AccessKeyId")?;
        let given = get("Signature")?;
        let secret = self
            .inner
            .keys
            .secret(key_id)
            .ok_or(CloudApiError::AccessKeyNotFound)?;
        let mut all: Vec<(String, String)> = query.to_vec();
        all.extend_from_slice(form);
        let expected = signature::rpc_signature(
            secret.expose(),
            &signature::rpc_string_to_sign(method, &all),
        );
        if !signature::signatures_match(&expected, given) {
            return Err(CloudApiError::SignatureDoesNotMatch);
        }
        Ok(SignedCall {
            key_id: key_id.to_owned(),
            action: get("Action")?.to_owned(),
            version: get("Version")?.to_owned(),
            date: get("Timestamp")?.to_owned(),
            nonce: get("SignatureNonce")?.to_owned(),
        })
    }

    /// Refuses a date outside the allowed skew and a nonce seen before (recorded only now,
    /// after the signature was checked, so nobody can burn another's nonces).
    async fn check_fresh(&self, call: &SignedCall) -> Result<(), CloudApiError> {
        let ts: jiff::Timestamp = call
            .date
            .parse()
            .map_err(|_| CloudApiError::TimestampFormat(wire::short(&call.date)))?;
        let now = jiff::Timestamp::now();
        let skew_ms = i64::try_from(self.inner.max_skew.as_millis()).unwrap_or(i64::MAX);
        let ts_ms = ts.as_millisecond();
        let now_ms = now.as_millisecond();
        if (now_ms - ts_ms).abs() > skew_ms {
            return Err(CloudApiError::TimestampExpired);
        }
        if call.nonce.len() > MAX_NONCE_LEN {
            return Err(CloudApiError::invalid(
                "SignatureNonce",
                format!("at most {MAX_NONCE_LEN} characters"),
            ));
        }
        let until = u64::try_from(ts_ms.saturating_add(skew_ms)).unwrap_or(0);
        let now_u = u64::try_from(now_ms).unwrap_or(0);
        match self
            .inner
            .replay
            .check_and_remember_until(&call.key_id, &call.nonce, now_u, until)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(CloudApiError::NonceUsed),
            Err(e) => {
                tracing::warn!(target: "stagegate::cloudapi", error = %e, "replay guard unavailable");
                Err(CloudApiError::ReplayUnavailable)
            }
        }
    }
}

/// What a verified signature vouches for.
struct SignedCall {
    key_id: String,
    action: String,
    version: String,
    date: String,
    nonce: String,
}

fn one_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, CloudApiError> {
    let mut all = headers.get_all(name).iter();
    let first = all.next().ok_or_else(|| {
        CloudApiError::IncompleteSignature(format!("header `{}` is missing", wire::short(name)))
    })?;
    if all.next().is_some() {
        return Err(CloudApiError::IncompleteSignature(format!(
            "header `{}` is repeated",
            wire::short(name)
        )));
    }
    first.to_str().map_err(|_| {
        CloudApiError::IncompleteSignature(format!("header `{}` is not ASCII", wire::short(name)))
    })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Whether a request is a CloudAPI call: path `/` with an `x-acs-action` header or an `Action`
/// query parameter.
///
/// # Examples
///
/// ```
/// use stagegate::cloudapi::is_cloudapi_request;
/// let r = http::Request::post("/").header("x-acs-action", "CreateApi").body(()).unwrap();
/// assert!(is_cloudapi_request(&r));
/// assert!(is_cloudapi_request(&http::Request::get("/?Format=JSON&Action=DescribeApis").body(()).unwrap()));
/// assert!(!is_cloudapi_request(&http::Request::get("/backends").body(()).unwrap()));
/// assert!(!is_cloudapi_request(&http::Request::get("/?Actions=1").body(()).unwrap()));
/// ```
#[must_use]
pub fn is_cloudapi_request<B>(req: &Request<B>) -> bool {
    req.uri().path() == "/"
        && (req.headers().contains_key("x-acs-action")
            || req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action="))))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower_service::Service<Request<B>> for CloudApi
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(req).await) })
    }
}

/// Sends CloudAPI requests to a [`CloudApi`] and the rest to the wrapped service.
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # use stagegate::ControlPlane;
/// # use stagegate::store::MemoryStore;
/// use stagegate::cloudapi::{AccessKeys, CloudApi};
/// use tower::ServiceExt;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
/// let inner = tower::service_fn(|_req: http::Request<http_body_util::Empty<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("admin"))))
/// });
/// let svc = tower::Layer::layer(&CloudApi::new(control, AccessKeys::new()).layer(), inner);
/// let res = svc.clone().oneshot(http::Request::get("/backends").body(Default::default()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 200); // the admin router's
/// let res = svc.oneshot(http::Request::get("/?Action=DescribeApis").body(Default::default()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 400); // the CloudAPI's: not signed
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CloudApiLayer {
    api: CloudApi,
}

impl<S> tower_layer::Layer<S> for CloudApiLayer {
    type Service = CloudApiRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CloudApiRoute {
            api: self.api.clone(),
            inner,
        }
    }
}

/// The service [`CloudApiLayer`] makes: CloudAPI calls to the endpoint, the rest to `inner`.
#[derive(Clone, Debug)]
pub struct CloudApiRoute<S> {
    api: CloudApi,
    inner: S,
}

impl<S, B, ResB> tower_service::Service<Request<B>> for CloudApiRoute<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // readiness is taken per call from a clone (tower's fall-through pattern)
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_cloudapi_request(&req) {
            let api = self.api.clone();
            Box::pin(async move { Ok(api.handle(req).await.map(GatewayBody::new)) })
        } else {
            let inner = self.inner.clone();
            Box::pin(async move {
                let mut inner = inner;
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                let res = inner.call(req).await?;
                Ok(res.map(GatewayBody::new))
            })
        }
    }
}
