//! Function Compute event functions: the API-gateway-trigger event in, the function's JSON
//! answer out, through a [`FunctionInvoker`].
//!
//! HTTP functions are compiled into plain HTTP targets (the trigger URL plus the trigger path)
//! and are forwarded like HTTP backends.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::{BackendCall, http_exchange, read_body};
use crate::base::BoxFuture;
use crate::error::GatewayError;
use crate::error_code::{ErrorCode, WireError};
use crate::model::FunctionDefinition;
use crate::proxy::{GatewayBody, HttpForwarder, ProxyError};

/// The largest function answer read from an HTTP invoker: 32 MiB.
const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// Which function to invoke.
///
/// # Examples
///
/// ```
/// use stagegate::backend::FunctionRef;
/// let f = FunctionRef::new("local", "orders", "create", "LATEST");
/// assert_eq!(f.to_string(), "orders/create:LATEST");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FunctionRef {
    /// The region (`local` for the in-process registry).
    pub region: String,
    /// The service.
    pub service: String,
    /// The function.
    pub function: String,
    /// The version or alias (`LATEST` by default).
    pub qualifier: String,
}

impl FunctionRef {
    /// A reference.
    #[must_use]
    pub fn new(
        region: impl Into<String>,
        service: impl Into<String>,
        function: impl Into<String>,
        qualifier: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            function: function.into(),
            qualifier: qualifier.into(),
        }
    }
}

impl std::fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.service, self.function, self.qualifier)
    }
}

/// Why a function call failed.
///
/// | variant | code | status |
/// |---|---|---|
/// | [`NotFound`](Self::NotFound) | `D502FN` | 502 |
/// | [`Failed`](Self::Failed) | `D502FE` | 502 |
/// | [`MalformedAnswer`](Self::MalformedAnswer) | `D502FC` | 502 |
/// | [`Timeout`](Self::Timeout) | `D504TO` | 504 |
/// | [`Transport`](Self::Transport) | the HTTP error's code (`D504CO`, ...) | |
///
/// # Examples
///
/// ```
/// use stagegate::backend::FunctionError;
/// let e = FunctionError::MalformedAnswer("missing `statusCode`".into());
/// let g = stagegate::GatewayError::from(e);
/// assert_eq!(g.error_code(), stagegate::ErrorCode::D502FC);
/// assert_eq!(g.message(), "Backend service response invalid");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FunctionError {
    /// No such function.
    #[error("function `{0}` not found")]
    NotFound(String),
    /// The function ran and failed.
    #[error("function failed: {0}")]
    Failed(String),
    /// The function's answer is not a valid API-gateway-trigger answer.
    #[error("function answer malformed: {0}")]
    MalformedAnswer(String),
    /// The function did not answer in time.
    #[error("function did not answer within {0:?}")]
    Timeout(Duration),
    /// Reaching a remote function failed.
    #[error("function could not be reached")]
    Transport(#[from] ProxyError),
}

/// No internal detail: function names, the handler's own error text and what was wrong with
/// its answer go to the log only. A transport failure is the HTTP error's.
impl WireError for FunctionError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::D502FN,
            Self::Failed(_) => ErrorCode::D502FE,
            Self::MalformedAnswer(_) => ErrorCode::D502FC,
            Self::Timeout(_) => ErrorCode::D504TO,
            Self::Transport(p) => p.wire_code(),
        }
    }

    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Timeout(_) => Some(Cow::Borrowed("the function did not answer in time")),
            Self::Transport(p) => p.wire_detail(),
            Self::NotFound(_) | Self::Failed(_) | Self::MalformedAnswer(_) => None,
        }
    }
}

/// Invokes functions: the event payload in, the answer payload out (both JSON for the
/// API-gateway trigger).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use stagegate::backend::{FunctionError, FunctionInvoker, FunctionRef};
/// use stagegate::store::BoxFuture;
///
/// /// Answers every event with 204.
/// struct NoContent;
/// impl FunctionInvoker for NoContent {
///     fn invoke<'a>(&'a self, _f: &'a FunctionRef, _event: Bytes, _timeout: Duration)
///         -> BoxFuture<'a, Result<Bytes, FunctionError>> {
///         Box::pin(async { Ok(Bytes::from_static(br#"{"statusCode":204}"#)) })
///     }
/// }
/// ```
pub trait FunctionInvoker: Send + Sync + 'static {
    /// Invokes `function` with `event`; the dispatcher also enforces `timeout`.
    fn invoke<'a>(
        &'a self,
        function: &'a FunctionRef,
        event: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, FunctionError>>;
}

/// The event an event function receives from an API-gateway trigger.
///
/// # Examples
///
/// ```
/// use stagegate::backend::ApiGatewayEvent;
/// let e: ApiGatewayEvent = serde_json::from_value(serde_json::json!({
///     "path": "/orders/7", "httpMethod": "GET", "headers": {}, "queryParameters": {},
///     "pathParameters": {"id": "7"}, "body": "", "isBase64Encoded": false
/// })).unwrap();
/// assert_eq!(e.path_parameters["id"], "7");
/// assert_eq!(e.body_bytes().unwrap(), b"".as_slice());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApiGatewayEvent {
    /// The request path.
    pub path: String,
    /// The request method.
    pub http_method: String,
    /// Request headers (the last value of repeated headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters (the last value of repeated names).
    #[serde(default)]
    pub query_parameters: BTreeMap<String, String>,
    /// Path parameters.
    #[serde(default)]
    pub path_parameters: BTreeMap<String, String>,
    /// The body: text, or base64 when `is_base64_encoded`.
    #[serde(default)]
    pub body: String,
    /// Whether `body` is base64.
    #[serde(default)]
    pub is_base64_encoded: bool,
}

impl ApiGatewayEvent {
    /// The body's bytes.
    ///
    /// # Errors
    ///
    /// Invalid base64.
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        if self.is_base64_encoded {
            B64.decode(&self.body)
        } else {
            Ok(self.body.as_bytes().to_vec())
        }
    }
}

/// What an event function answers: `statusCode`, `headers`, `body`, `isBase64Encoded`.
///
/// # Examples
///
/// ```
/// use stagegate::backend::FunctionResponse;
/// let a = FunctionResponse::new(200).with_header("content-type", "text/plain").with_body("hi").into_json();
/// assert_eq!(a["statusCode"], 200);
/// assert_eq!(a["body"], "hi");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FunctionResponse {
    /// The status code.
    pub status_code: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: text, or base64 when `is_base64_encoded`.
    #[serde(default)]
    pub body: String,
    /// Whether `body` is base64.
    #[serde(default)]
    pub is_base64_encoded: bool,
}

impl FunctionResponse {
    /// An answer with `status` and nothing else.
    #[must_use]
    pub fn new(status: u16) -> Self {
        Self {
            status_code: status,
            headers: BTreeMap::new(),
            body: String::new(),
            is_base64_encoded: false,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets a text body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self.is_base64_encoded = false;
        self
    }

    /// Sets a binary body (sent as base64).
    #[must_use]
    pub fn with_binary_body(mut self, body: &[u8]) -> Self {
        self.body = B64.encode(body);
        self.is_base64_encoded = true;
        self
    }

    /// The answer as JSON.
    #[must_use]
    pub fn into_json(self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// (service, function, qualifier).
type FunctionKey = (String, String, String);

type Handler = Arc<
    dyn Fn(serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, FunctionError>>
        + Send
        + Sync,
>;

/// The default invoker: an in-process registry of async Rust handlers keyed by (service,
/// function, qualifier), whatever the region. Cloning shares the registry, so the host app keeps
/// a clone to register handlers after the gateway is built.
///
/// A handler receives the event JSON (see [`ApiGatewayEvent`]) and answers JSON (see
/// [`FunctionResponse`]).
///
/// # Examples
///
/// ```
/// use stagegate::backend::{ApiGatewayEvent, FunctionResponse, LocalFunctions};
///
/// let functions = LocalFunctions::new();
/// functions.register("orders", "get", "LATEST", |event| async move {
///     let event: ApiGatewayEvent = serde_json::from_value(event)
///         .map_err(|e| stagegate::backend::FunctionError::Failed(e.to_string()))?;
///     let id = event.path_parameters.get("id").cloned().unwrap_or_default();
///     Ok(FunctionResponse::new(200).with_body(format!("order {id}")).into_json())
/// });
/// assert!(functions.contains("orders", "get", "LATEST"));
/// ```
#[derive(Clone, Default)]
pub struct LocalFunctions {
    handlers: Arc<RwLock<HashMap<FunctionKey, Handler>>>,
}

impl std::fmt::Debug for LocalFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFunctions")
            .field("functions", &self.handlers.read().len())
            .finish()
    }
}

impl LocalFunctions {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a handler.
    pub fn register<F, Fut>(
        &self,
        service: impl Into<String>,
        function: impl Into<String>,
        qualifier: impl Into<String>,
        handler: F,
    ) where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, FunctionError>> + Send + 'static,
    {
        let h: Handler = Arc::new(move |v| Box::pin(handler(v)));
        self.handlers
            .write()
            .insert((service.into(), function.into(), qualifier.into()), h);
    }

    /// Removes a handler; whether it was there.
    pub fn unregister(&self, service: &str, function: &str, qualifier: &str) -> bool {
        self.handlers
            .write()
            .remove(&(
                service.to_owned(),
                function.to_owned(),
                qualifier.to_owned(),
            ))
            .is_some()
    }

    /// Whether a handler is registered.
    #[must_use]
    pub fn contains(&self, service: &str, function: &str, qualifier: &str) -> bool {
        self.handlers.read().contains_key(&(
            service.to_owned(),
            function.to_owned(),
            qualifier.to_owned(),
        ))
    }
}

impl FunctionInvoker for LocalFunctions {
    fn invoke<'a>(
        &'a self,
        function: &'a FunctionRef,
        event: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, FunctionError>> {
        let handler = self
            .handlers
            .read()
            .get(&(
                function.service.clone(),
                function.function.clone(),
                function.qualifier.clone(),
            ))
            .cloned();
        Box::pin(async move {
            let handler = handler.ok_or_else(|| FunctionError::NotFound(function.to_string()))?;
            let event: serde_json::Value = serde_json::from_slice(&event)
                .map_err(|e| FunctionError::Failed(format!("event is not JSON: {e}")))?;
            let answer = handler(event).await?;
            Ok(Bytes::from(answer.to_string()))
        })
    }
}

/// Invokes remote functions over HTTP: POSTs the event JSON to a URL configured per function and
/// takes the response body as the answer (a non-2xx status is [`FunctionError::Failed`]).
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, HttpFunctionInvoker};
/// let invoker = HttpFunctionInvoker::new()
///     .route("orders", "create", "LATEST", "http://127.0.0.1:9000/invoke/orders-create");
/// let backends = Backends::new().with_functions(invoker);
/// # let _ = backends;
/// ```
#[derive(Debug, Clone, Default)]
pub struct HttpFunctionInvoker {
    routes: HashMap<FunctionKey, String>,
    forwarder: HttpForwarder,
}

impl HttpFunctionInvoker {
    /// An invoker without routes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL of (service, function, qualifier).
    #[must_use]
    pub fn route(
        mut self,
        service: impl Into<String>,
        function: impl Into<String>,
        qualifier: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        self.routes.insert(
            (service.into(), function.into(), qualifier.into()),
            url.into(),
        );
        self
    }

    /// The HTTP client (TLS settings, pools).
    #[must_use]
    pub fn with_forwarder(mut self, forwarder: HttpForwarder) -> Self {
        self.forwarder = forwarder;
        self
    }
}

impl FunctionInvoker for HttpFunctionInvoker {
    fn invoke<'a>(
        &'a self,
        function: &'a FunctionRef,
        event: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, FunctionError>> {
        Box::pin(async move {
            let url = self
                .routes
                .get(&(
                    function.service.clone(),
                    function.function.clone(),
                    function.qualifier.clone(),
                ))
                .ok_or_else(|| FunctionError::NotFound(function.to_string()))?;
            let (status, _, body) = http_exchange(
                &self.forwarder,
                Method::POST,
                url,
                Some("application/json"),
                event,
                timeout,
                ANSWER_LIMIT,
            )
            .await?;
            if !status.is_success() {
                return Err(FunctionError::Failed(format!(
                    "the function endpoint answered {status}"
                )));
            }
            Ok(body)
        })
    }
}

fn last_values<'h>(pairs: impl Iterator<Item = (&'h str, String)>) -> BTreeMap<String, String> {
    pairs.map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Builds the API-gateway-trigger event of a call.
fn build_event(call: &BackendCall<'_>, body: &[u8]) -> ApiGatewayEvent {
    let headers = last_values(
        call.mapped
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?.to_owned()))),
    );
    let query = call
        .mapped
        .path_and_query
        .split_once('?')
        .map(|(_, q)| q)
        .or_else(|| call.parts.uri.query())
        .unwrap_or("");
    let query_parameters = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path_parameters = call.decoded_path_params();
    let (body, is_base64_encoded) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (B64.encode(body), true),
    };
    ApiGatewayEvent {
        path: call.parts.uri.path().to_owned(),
        http_method: call.parts.method.as_str().to_owned(),
        headers,
        query_parameters,
        path_parameters,
        body,
        is_base64_encoded,
    }
}

/// Turns a function's answer into a response.
fn parse_answer(answer: &[u8]) -> Result<Response<GatewayBody>, FunctionError> {
    let bad = FunctionError::MalformedAnswer;
    let v: serde_json::Value =
        serde_json::from_slice(answer).map_err(|_| bad("the answer is not JSON".to_owned()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("the answer is not a JSON object".to_owned()))?;
    let status = obj
        .get("statusCode")
        .ok_or_else(|| bad("missing `statusCode`".to_owned()))?
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| bad("`statusCode` is not an HTTP status code".to_owned()))?;
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`isBase64Encoded` is not a boolean".to_owned())),
    };
    let body = match obj.get("body") {
        None | Some(serde_json::Value::Null) => Bytes::new(),
        Some(serde_json::Value::String(s)) if base64 => Bytes::from(
            B64.decode(s)
                .map_err(|_| bad("`body` is not valid base64".to_owned()))?,
        ),
        Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return Err(bad("`body` is not a string".to_owned())),
    };
    let mut res = Response::new(GatewayBody::full(body));
    *res.status_mut() = status;
    match obj.get("headers") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(h)) => {
            for (k, v) in h {
                let value = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Err(bad(format!("header `{k}` is not a string"))),
                };
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| bad(format!("invalid header name `{k}`")))?;
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| bad(format!("invalid value for header `{k}`")))?;
                if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                    continue;
                }
                res.headers_mut().append(name, value);
            }
        }
        Some(_) => return Err(bad("`headers` is not an object".to_owned())),
    }
    Ok(res)
}

pub(super) async fn dispatch(
    invoker: &dyn FunctionInvoker,
    def: &FunctionDefinition,
    call: BackendCall<'_>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let FunctionDefinition::Event {
        region,
        service,
        function,
        qualifier,
        ..
    } = def
    else {
        return Err(GatewayError::internal());
    };
    let f = FunctionRef::new(region, service, function, qualifier);
    let timeout = call.timeout;
    let (call, body) = {
        let mut call = call;
        let body = std::mem::take(&mut call.body);
        (call, body)
    };
    let body = read_body(body).await?;
    let event = build_event(&call, &body);
    let event = Bytes::from(serde_json::to_vec(&event).map_err(|_| GatewayError::internal())?);
    let answer = tokio::time::timeout(timeout, invoker.invoke(&f, event, timeout))
        .await
        .map_err(|_| FunctionError::Timeout(timeout))??;
    Ok(parse_answer(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_field_by_field() {
        assert!(parse_answer(br#"{"statusCode":200}"#).is_ok());
        for bad in [
            &b"not json"[..],
            br#"[1]"#,
            br#"{"body":"x"}"#,
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":42}"#,
            br#"{"statusCode":200,"body":3}"#,
            br#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#,
            br#"{"statusCode":200,"headers":{"a b":"x"}}"#,
        ] {
            assert!(
                matches!(parse_answer(bad), Err(FunctionError::MalformedAnswer(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let res = parse_answer(
            br#"{"statusCode":201,"body":"aGk=","isBase64Encoded":true,"headers":{"x-n":1}}"#,
        )
        .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["x-n"], "1");
    }
}
