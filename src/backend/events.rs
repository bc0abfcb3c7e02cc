//! EventBridge backends: each call becomes a CloudEvents 1.0 event published to the
//! definition's bus through an [`EventSink`], answered with `200 {"event_id": ...}`.
//!
//! The event: `id` = the request id, `source` = the definition's source, `type` =
//! `<prefix>.<api name>` (prefix `stagegate.api` unless [`Backends::with_event_type_prefix`](super::Backends::with_event_type_prefix)
//! says otherwise), `subject` = the request path, `time` = now, and the request body as `data`
//! (JSON when it parses as JSON, else text, else `data_base64`); a call without a body carries
//! its parameters instead: `{"pathParameters":{..},"queryParameters":{..}}`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{BackendCall, http_exchange, read_body};
use crate::base::BoxFuture;
use crate::error::GatewayError;
use crate::error_code::{ErrorCode, WireError};
use crate::model::EventBridgeDefinition;
use crate::proxy::{GatewayBody, HttpForwarder, ProxyError};

/// A CloudEvents 1.0 event (structured JSON mode).
///
/// # Examples
///
/// ```
/// use stagegate::backend::CloudEvent;
/// let e = CloudEvent::new("id-1", "shop", "stagegate.api.createOrder")
///     .with_data(serde_json::json!({"sku": 7}));
/// let json = serde_json::to_value(&e).unwrap();
/// assert_eq!(json["specversion"], "1.0");
/// assert_eq!(json["type"], "stagegate.api.createOrder");
/// assert_eq!(json["data"]["sku"], 7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// The event id (the gateway's request id).
    pub id: String,
    /// The source (the definition's).
    pub source: String,
    /// The type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The subject (the request path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The media type of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The data, as JSON or text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Binary data, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

impl CloudEvent {
    /// An event without subject, time or data.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Self {
        Self {
            specversion: "1.0".to_owned(),
            id: id.into(),
            source: source.into(),
            event_type: event_type.into(),
            subject: None,
            time: None,
            datacontenttype: None,
            data: None,
            data_base64: None,
        }
    }

    /// Sets JSON data (`datacontenttype` `application/json`).
    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self.data_base64 = None;
        self.datacontenttype = Some("application/json".to_owned());
        self
    }
}

/// Why an event could not be published.
///
/// | variant | code | status |
/// |---|---|---|
/// | [`UnknownBus`](Self::UnknownBus) | `D502EB` | 502 |
/// | [`Rejected`](Self::Rejected) | `D502EB` | 502 |
/// | [`Transport`](Self::Transport) | the HTTP error's code (`D504CO`, `D504TO`, ...) | |
///
/// # Examples
///
/// ```
/// use stagegate::backend::EventError;
/// let e = EventError::UnknownBus("orders".into());
/// assert_eq!(e.to_string(), "event bus `orders` does not exist");
/// let g = stagegate::GatewayError::from(e);
/// assert_eq!(g.error_code(), stagegate::ErrorCode::D502EB);
/// assert_eq!(g.message(), "Event bus request failed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The sink has no such bus.
    #[error("event bus `{0}` does not exist")]
    UnknownBus(String),
    /// The bus refused the event.
    #[error("event bus refused the event: {0}")]
    Rejected(String),
    /// Reaching the bus failed.
    #[error("event bus could not be reached")]
    Transport(#[from] ProxyError),
}

/// No internal detail: bus names and the bus's own refusal go to the log only. A transport
/// failure is the HTTP error's.
impl WireError for EventError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::UnknownBus(_) | Self::Rejected(_) => ErrorCode::D502EB,
            Self::Transport(p) => p.wire_code(),
        }
    }

    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Transport(p) => p.wire_detail(),
            Self::UnknownBus(_) | Self::Rejected(_) => None,
        }
    }
}

/// Publishes events to buses.
///
/// # Examples
///
/// A sink that logs and drops:
///
/// ```
/// use stagegate::model::EventBridgeDefinition;
/// use stagegate::backend::{CloudEvent, EventError, EventSink};
/// use stagegate::store::BoxFuture;
///
/// struct Log;
/// impl EventSink for Log {
///     fn publish<'a>(&'a self, bus: &'a EventBridgeDefinition, event: CloudEvent)
///         -> BoxFuture<'a, Result<(), EventError>> {
///         Box::pin(async move { println!("{}: {}", bus.bus, event.id); Ok(()) })
///     }
/// }
/// ```
pub trait EventSink: Send + Sync + 'static {
    /// Publishes `event` to the bus `bus.bus`.
    fn publish<'a>(
        &'a self,
        bus: &'a EventBridgeDefinition,
        event: CloudEvent,
    ) -> BoxFuture<'a, Result<(), EventError>>;
}

/// The default sink: in-process buses the host app subscribes to (tokio broadcast channels).
/// A bus exists once somebody subscribed to it (or [`create`](Self::create) made it);
/// publishing to a bus that does not exist is [`EventError::UnknownBus`]. Cloning shares the
/// buses.
///
/// # Examples
///
/// ```
/// use stagegate::backend::InProcessBus;
/// let bus = InProcessBus::new();
/// let mut orders = bus.subscribe("orders");
/// assert!(bus.exists("orders"));
/// assert!(orders.try_recv().is_err()); // nothing published yet
/// ```
#[derive(Debug, Clone)]
pub struct InProcessBus {
    buses: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<CloudEvent>>>>>,
    capacity: usize,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self {
            buses: Arc::default(),
            capacity: 1024,
        }
    }
}

impl InProcessBus {
    /// No buses; each bus keeps up to 1024 events for slow subscribers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the bus if needed (events to a bus without subscribers are dropped).
    pub fn create(&self, bus: &str) {
        self.sender(bus);
    }

    /// Subscribes to a bus, creating it if needed.
    #[must_use]
    pub fn subscribe(&self, bus: &str) -> broadcast::Receiver<Arc<CloudEvent>> {
        self.sender(bus).subscribe()
    }

    /// Whether the bus exists.
    #[must_use]
    pub fn exists(&self, bus: &str) -> bool {
        self.buses.lock().contains_key(bus)
    }

    fn sender(&self, bus: &str) -> broadcast::Sender<Arc<CloudEvent>> {
        self.buses
            .lock()
            .entry(bus.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .clone()
    }
}

impl EventSink for InProcessBus {
    fn publish<'a>(
        &'a self,
        bus: &'a EventBridgeDefinition,
        event: CloudEvent,
    ) -> BoxFuture<'a, Result<(), EventError>> {
        let sender = self.buses.lock().get(&bus.bus).cloned();
        Box::pin(async move {
            let sender = sender.ok_or_else(|| EventError::UnknownBus(bus.bus.clone()))?;
            // No receiver left: the bus exists and nobody listens, like a bus without rules.
            let _ = sender.send(Arc::new(event));
            Ok(())
        })
    }
}

/// POSTs events in structured JSON mode (`Content-Type: application/cloudevents+json`) to a URL
/// per bus; a non-2xx answer is [`EventError::Rejected`].
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, HttpEventSink};
/// let sink = HttpEventSink::new().with_bus("orders", "http://127.0.0.1:9000/events");
/// let backends = Backends::new().with_events(sink);
/// # let _ = backends;
/// ```
#[derive(Debug, Clone, Default)]
pub struct HttpEventSink {
    urls: HashMap<String, String>,
    forwarder: HttpForwarder,
    timeout: Option<Duration>,
}

impl HttpEventSink {
    /// A sink without buses.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL events to `bus` are POSTed to.
    #[must_use]
    pub fn with_bus(mut self, bus: impl Into<String>, url: impl Into<String>) -> Self {
        self.urls.insert(bus.into(), url.into());
        self
    }

    /// The HTTP client.
    #[must_use]
    pub fn with_forwarder(mut self, f: HttpForwarder) -> Self {
        self.forwarder = f;
        self
    }

    /// How long a POST may take (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

impl EventSink for HttpEventSink {
    fn publish<'a>(
        &'a self,
        bus: &'a EventBridgeDefinition,
        event: CloudEvent,
    ) -> BoxFuture<'a, Result<(), EventError>> {
        Box::pin(async move {
            let url = self
                .urls
                .get(&bus.bus)
                .ok_or_else(|| EventError::UnknownBus(bus.bus.clone()))?;
            let body = serde_json::to_vec(&event)
                .map_err(|e| EventError::Rejected(format!("event not serializable: {e}")))?;
            let (status, _, _) = http_exchange(
                &self.forwarder,
                Method::POST,
                url,
                Some("application/cloudevents+json"),
                Bytes::from(body),
                self.timeout.unwrap_or(Duration::from_secs(10)),
                64 * 1024,
            )
            .await?;
            if !status.is_success() {
                return Err(EventError::Rejected(format!("the bus answered {status}")));
            }
            Ok(())
        })
    }
}

pub(super) async fn dispatch(
    sink: &dyn EventSink,
    type_prefix: &str,
    def: &EventBridgeDefinition,
    mut call: BackendCall<'_>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let body = read_body(std::mem::take(&mut call.body)).await?;
    let mut event = CloudEvent::new(
        call.request_id,
        def.source.clone(),
        format!("{type_prefix}.{}", call.route.api().name),
    );
    event.subject = Some(call.parts.uri.path().to_owned());
    event.time = Some(jiff::Timestamp::now().to_string());
    let content_type = call
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if body.is_empty() {
        let path = call.decoded_path_params();
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(call.parts.uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        event = event
            .with_data(serde_json::json!({ "pathParameters": path, "queryParameters": query }));
    } else if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) {
        event = event.with_data(json);
    } else if let Ok(text) = std::str::from_utf8(&body) {
        event.data = Some(serde_json::Value::String(text.to_owned()));
        event.datacontenttype = Some(content_type.unwrap_or_else(|| "text/plain".to_owned()));
    } else {
        event.data_base64 = Some(B64.encode(&body));
        event.datacontenttype =
            Some(content_type.unwrap_or_else(|| "application/octet-stream".to_owned()));
    }
    let id = event.id.clone();
    let timeout = call.timeout;
    tokio::time::timeout(timeout, sink.publish(def, event))
        .await
        .map_err(|_| ProxyError::Timeout { timeout })
        .map_err(EventError::from)??;
    let mut res = Response::new(GatewayBody::full(
        serde_json::json!({ "event_id": id }).to_string(),
    ));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
