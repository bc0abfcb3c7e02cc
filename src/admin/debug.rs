//! `POST /apis/{id}/debug`: build a request from the published definition, sign it as an app and
//! send it through the real data plane, showing everything but the secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::routes::{P, api_id};
use super::{AdminError, AdminState, Json, reply};
use crate::auth::Signer;
use crate::layer::ClientAddr;
use crate::model::{AppId, AuthType, ParamLocation, Segment, SignatureMethod, Stage};

/// How the debug endpoint authenticates as the chosen app.
///
/// # Examples
///
/// ```
/// use stagegate::admin::DebugAuth;
/// let a: DebugAuth = serde_json::from_str("\"APPCODE\"").unwrap();
/// assert_eq!(a, DebugAuth::AppCode);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DebugAuth {
    /// Sign with the app's first key pair (`X-Ca-Signature`).
    #[default]
    Signature,
    /// Send the app's first AppCode (`Authorization: APPCODE ...`).
    #[serde(rename = "APPCODE")]
    AppCode,
}

/// The body of `POST /apis/{id}/debug`. Everything but `stage` defaults from the API's
/// definition published in that stage.
///
/// # Examples
///
/// ```
/// use stagegate::admin::DebugRequest;
/// let r: DebugRequest = serde_json::from_value(serde_json::json!({
///     "stage": "TEST", "app_id": "110843374", "path_params": {"id": "42"}, "query": {"lang": "en"}
/// })).unwrap();
/// assert_eq!(r.stage, stagegate::model::Stage::TEST);
/// assert!(serde_json::from_value::<DebugRequest>(serde_json::json!({"stage": "TEST", "x": 1})).is_err());
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DebugRequest {
    /// The stage to call.
    pub stage: Stage,
    /// The app to call as (required for APIs with `APP` auth).
    #[serde(default)]
    pub app_id: Option<AppId>,
    /// Signature (default) or AppCode.
    #[serde(default)]
    pub auth: Option<DebugAuth>,
    /// The method (default: the API's; required for `ANY` APIs, else `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// The literal request path (default: the API's path, with `path_params` filled in).
    #[serde(default)]
    pub path: Option<String>,
    /// Values of the `[param]` segments of the API's path.
    #[serde(default)]
    pub path_params: BTreeMap<String, String>,
    /// Query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, as text.
    #[serde(default)]
    pub body: Option<String>,
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError::InvalidParameter(msg.into())
}

fn headers_json(h: &http::HeaderMap) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in h {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match m.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                m.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    Value::Object(m)
}

fn body_json(b: &[u8]) -> (Value, Option<&'static str>) {
    match std::str::from_utf8(b) {
        Ok(s) => (Value::String(s.to_owned()), None),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Some("base64"),
        ),
    }
}

/// The largest backend response body the debug endpoint shows.
const MAX_DEBUG_RESPONSE: usize = 1024 * 1024;

pub(crate) async fn debug(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(d): Json<DebugRequest>,
) -> Result<Response, AdminError> {
    let id = api_id(&id)?;
    s.control.api(&id).await?;
    let deployment = s.control.published(&id, &d.stage).await.ok_or_else(|| {
        AdminError::Control(crate::ControlError::NotPublished {
            api: id.clone(),
            stage: d.stage.clone(),
        })
    })?;
    let api = &deployment.snapshot;
    let group = s.control.group(&api.group_id).await?;
    let mut trace = vec![json!({
        "step": "route",
        "detail": format!(
            "api `{}` version {} published in {} ({} {})",
            api.name, deployment.version, d.stage, api.request.method, api.request.path
        ),
    })];

    // Method.
    let method = match (&d.method, api.request.method.as_str()) {
        (Some(m), _) => m.to_ascii_uppercase(),
        (None, "ANY") => "GET".to_owned(),
        (None, m) => m.to_owned(),
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| {
        bad(format!(
            "invalid method `{}`",
            crate::model::id::truncate(&method)
        ))
    })?;

    // Path: the literal one given, else the template with its parameters filled in.
    let path = match &d.path {
        Some(p) => {
            if !p.starts_with('/') {
                return Err(bad("`path` must start with `/`"));
            }
            p.clone()
        }
        None => {
            let mut out = String::new();
            for seg in api.request.path.segments() {
                out.push('/');
                match seg {
                    Segment::Literal(l) => out.push_str(l),
                    Segment::Param(n) => {
                        let v = d.path_params.get(n).ok_or_else(|| {
                            bad(format!(
                                "path parameter `{n}` must be given (in `path_params`, or give a literal `path`)"
                            ))
                        })?;
                        if v.is_empty() {
                            return Err(bad(format!("path parameter `{n}` is empty")));
                        }
                        out.extend(percent_encoding::utf8_percent_encode(
                            v,
                            percent_encoding::NON_ALPHANUMERIC,
                        ));
                    }
                }
            }
            if api.request.path.match_all() {
                out.push('/');
            }
            if out.is_empty() {
                out.push('/');
            }
            let base = group
                .base_path
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/');
            format!("{base}{out}")
        }
    };
    for n in d.path_params.keys() {
        if !api.request.path.params().any(|p| p == n) {
            return Err(bad(format!(
                "`{}` is not a path parameter of this API",
                crate::model::id::truncate(n)
            )));
        }
    }
    let query = if d.query.is_empty() {
        None
    } else {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &d.query {
            ser.append_pair(k, v);
        }
        Some(ser.finish())
    };
    let path_and_query = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let host = group
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".to_owned());
    let uri: http::Uri = format!("http://{host}{path_and_query}")
        .parse()
        .map_err(|e| bad(format!("the request URI is invalid: {e}")))?;

    // Headers and body.
    let body = Bytes::from(d.body.clone().unwrap_or_default());
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(())
        .map_err(|e| bad(format!("the request is invalid: {e}")))?;
    {
        let h = req.headers_mut();
        for (k, v) in &d.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                bad(format!(
                    "invalid header name `{}`",
                    crate::model::id::truncate(k)
                ))
            })?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("invalid value for header `{name}`")))?;
            h.append(name, value);
        }
        if let Ok(v) = HeaderValue::from_str(&host) {
            h.insert(header::HOST, v);
        }
        if !body.is_empty() && !h.contains_key(header::CONTENT_TYPE) {
            let form = api
                .parameters
                .iter()
                .any(|p| p.location == ParamLocation::Body);
            let ct = if form {
                "application/x-www-form-urlencoded; charset=UTF-8"
            } else if serde_json::from_slice::<Value>(&body).is_ok() {
                "application/json; charset=UTF-8"
            } else {
                "text/plain; charset=UTF-8"
            };
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h.insert("x-ca-request-mode", HeaderValue::from_static("debug"));
        if let Ok(v) = HeaderValue::from_str(d.stage.as_str()) {
            h.insert("x-ca-stage", v);
        }
        if !body.is_empty() {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }

    // Authentication as the chosen app.
    let mut string_to_sign = Value::Null;
    let mut shown_appcode = false;
    if api.auth == AuthType::App {
        let app_id = d.app_id.as_ref().ok_or_else(|| {
            bad("this API needs an app: give `app_id` (and authorize it in this stage)")
        })?;
        let app = s.control.app(app_id).await?;
        match d.auth.unwrap_or_default() {
            DebugAuth::Signature => {
                let key = app
                    .keys
                    .first()
                    .ok_or_else(|| bad("the app has no key pair to sign with"))?;
                let mut signer = Signer::new(&key.app_key, key.app_secret.clone())
                    .map_err(|_| bad("the app key is not a valid header value"))?
                    .with_stage(d.stage.clone());
                let method = if api.signature_methods.contains(&SignatureMethod::HmacSha256) {
                    SignatureMethod::HmacSha256
                } else {
                    SignatureMethod::HmacSha1
                };
                if method != SignatureMethod::HmacSha256 {
                    signer = signer.with_method(method);
                }
                let signed = signer.sign(&mut req, &body);
                string_to_sign = Value::String(signed.string_to_sign);
                trace.push(json!({
                    "step": "sign",
                    "detail": format!("signed as app {} with AppKey {} ({})", app.id, key.app_key, method.as_str()),
                }));
            }
            DebugAuth::AppCode => {
                let code = app
                    .codes
                    .first()
                    .ok_or_else(|| bad("the app has no AppCode"))?;
                let v = HeaderValue::from_str(&format!("APPCODE {}", code.expose()))
                    .map_err(|_| bad("the AppCode is not a valid header value"))?;
                req.headers_mut().insert(header::AUTHORIZATION, v);
                shown_appcode = true;
                trace.push(json!({
                    "step": "sign",
                    "detail": format!("AppCode of app {} in the Authorization header", app.id),
                }));
            }
        }
    } else {
        trace.push(json!({"step": "sign", "detail": "anonymous API: no signature"}));
    }

    // What was sent, secrets hidden.
    let mut sent_headers = req.headers().clone();
    if shown_appcode {
        sent_headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("APPCODE ****"),
        );
    }
    let (sent_body, sent_enc) = body_json(&body);
    let mut request_json = json!({
        "method": req.method().as_str(),
        "path": path,
        "query": query,
        "headers": headers_json(&sent_headers),
        "body": sent_body,
    });
    if let Some(e) = sent_enc {
        request_json["body_encoding"] = Value::String(e.into());
    }

    // Through the real data plane.
    let (parts, ()) = req.into_parts();
    let mut req = Request::from_parts(parts, http_body_util::Full::new(body));
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 0))));
    let start = Instant::now();
    let res = match s.gateway.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = res.into_parts();
    let body = match crate::proxy::collect_limited(body, MAX_DEBUG_RESPONSE).await {
        Ok(b) => b,
        Err(e) => {
            trace.push(json!({"step": "response", "detail": format!("body not shown: {e}")}));
            Bytes::new()
        }
    };
    let latency_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(info) = parts
        .headers
        .get("x-ca-debug-info")
        .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
    {
        if let Some(p) = info.get("Policies").filter(|p| !p.is_null()) {
            // Which policy decided what (IP control, throttling, CORS, backend signature).
            trace.push(json!({"step": "policies", "decisions": p}));
        }
        trace.push(json!({"step": "gateway", "debug_info": info}));
    }
    let error_code = parts
        .headers
        .get(crate::layer::X_CA_ERROR_CODE)
        .and_then(|v| v.to_str().ok());
    if let Some(detail) = parts.extensions.get::<crate::error::RefusalDetail>() {
        // What the log says about the refusal: for the operator, never on the wire.
        trace.push(json!({"step": "refusal", "detail": &*detail.0}));
    }
    trace.push(json!({
        "step": "response",
        "status": parts.status.as_u16(),
        "error_code": error_code,
        "request_id": parts.headers.get(crate::layer::X_CA_REQUEST_ID).and_then(|v| v.to_str().ok()),
    }));
    let (res_body, res_enc) = body_json(&body);
    let mut response_json = json!({
        "status": parts.status.as_u16(),
        "headers": headers_json(&parts.headers),
        "body": res_body,
    });
    if let Some(e) = res_enc {
        response_json["body_encoding"] = Value::String(e.into());
    }
    Ok(reply(
        StatusCode::OK,
        &json!({
            "request": request_json,
            "string_to_sign": string_to_sign,
            "response": response_json,
            "latency_ms": latency_ms,
            "trace": trace,
        }),
    ))
}
