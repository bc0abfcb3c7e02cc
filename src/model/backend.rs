//! Backend services: a typed resource with one definition per stage.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::validate::{
    is_framing_header, validate_base_url, validate_description, validate_header, validate_host,
    validate_len, validate_name,
};
use super::{BackendId, Stage, ValidationError, VpcAccessId};

/// The type of a backend service, chosen at creation and never changed.
///
/// # Examples
///
/// ```
/// use stagegate::model::BackendKind;
/// let k: BackendKind = serde_json::from_str("\"FUNCTION_COMPUTE\"").unwrap();
/// assert_eq!(k, BackendKind::FunctionCompute);
/// assert_eq!(BackendKind::Http.display_name(), "HTTP/HTTPS");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackendKind {
    /// An HTTP or HTTPS service reached by URL.
    Http,
    /// A service inside a VPC, reached through a VPC access authorization.
    Vpc,
    /// A function (event or HTTP function).
    FunctionCompute,
    /// An object storage bucket.
    Oss,
    /// An event bus.
    #[serde(rename = "EVENTBRIDGE")]
    EventBridge,
    /// Instances found through a service registry.
    ServiceDiscovery,
    /// Each stage's definition may be of any concrete kind.
    Mixed,
    /// A canned response.
    Mock,
}

impl BackendKind {
    /// All kinds, in the console's order.
    pub const ALL: [Self; 8] = [
        Self::Http,
        Self::Vpc,
        Self::FunctionCompute,
        Self::Oss,
        Self::EventBridge,
        Self::ServiceDiscovery,
        Self::Mixed,
        Self::Mock,
    ];

    /// The wire name (`HTTP`, `VPC`, `FUNCTION_COMPUTE`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Vpc => "VPC",
            Self::FunctionCompute => "FUNCTION_COMPUTE",
            Self::Oss => "OSS",
            Self::EventBridge => "EVENTBRIDGE",
            Self::ServiceDiscovery => "SERVICE_DISCOVERY",
            Self::Mixed => "MIXED",
            Self::Mock => "MOCK",
        }
    }

    /// The name shown to people.
    #[must_use]
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Http => "HTTP/HTTPS",
            Self::Vpc => "VPC",
            Self::FunctionCompute => "Function Compute",
            Self::Oss => "OSS",
            Self::EventBridge => "EventBridge",
            Self::ServiceDiscovery => "Service discovery",
            Self::Mixed => "Mixed",
            Self::Mock => "MOCK",
        }
    }

    /// Parses a wire name, case-insensitively.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] for an unknown kind.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ValidationError::field(
                    "backend type",
                    format!("unknown type `{}`", super::id::truncate(s)),
                )
            })
    }

    /// Whether a definition of kind `def` may be stored for a backend of this kind.
    #[must_use]
    pub fn accepts(self, def: Self) -> bool {
        def != Self::Mixed && (self == Self::Mixed || self == def)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP/HTTPS backend in one stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::HttpDefinition;
/// let d = HttpDefinition::new("http://127.0.0.1:8081");
/// assert!(d.validate().is_ok());
/// assert!(HttpDefinition::new("http://h/with/path").validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDefinition {
    /// `scheme://host[:port]`, no path.
    pub url: String,
    /// A `Host` header to send instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,
    /// A default timeout for APIs that set none, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl HttpDefinition {
    /// A definition pointing at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            host_header: None,
            timeout_ms: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_base_url("backend url", &self.url)?;
        if let Some(h) = &self.host_header {
            validate_host("host_header", h)?;
        }
        validate_timeout(self.timeout_ms)
    }
}

fn validate_timeout(t: Option<u32>) -> Result<(), ValidationError> {
    match t {
        Some(0) => Err(ValidationError::field("timeout_ms", "must be at least 1")),
        Some(t) if t > 600_000 => Err(ValidationError::field(
            "timeout_ms",
            "must be at most 600000 (10 minutes)",
        )),
        _ => Ok(()),
    }
}

/// A service in a VPC, reached through a named VPC access authorization.
///
/// # Examples
///
/// ```
/// use stagegate::model::{VpcAccessId, VpcDefinition};
/// let d = VpcDefinition { vpc_access_id: VpcAccessId::generate(), https: false, host_header: None, timeout_ms: None };
/// assert!(d.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcDefinition {
    /// The VPC access authorization that resolves to the target address.
    pub vpc_access_id: VpcAccessId,
    /// Call the target over HTTPS.
    #[serde(default)]
    pub https: bool,
    /// A `Host` header to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,
    /// A default timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl VpcDefinition {
    /// Checks every field (that the authorization exists is checked by the control plane).
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(h) = &self.host_header {
            validate_host("host_header", h)?;
        }
        validate_timeout(self.timeout_ms)
    }
}

/// A function, event-triggered or HTTP-triggered.
///
/// # Examples
///
/// ```
/// use stagegate::model::FunctionDefinition;
/// let d: FunctionDefinition = serde_json::from_value(serde_json::json!({
///     "function_type": "EVENT", "region": "local", "service": "orders", "function": "create"
/// })).unwrap();
/// assert!(d.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "function_type",
    rename_all = "SCREAMING_SNAKE_CASE",
    deny_unknown_fields
)]
pub enum FunctionDefinition {
    /// An event function: invoked with the API-gateway-trigger event JSON.
    Event {
        /// Region of the function (free text; `local` for the in-process registry).
        #[serde(default = "default_region")]
        region: String,
        /// The function's service.
        service: String,
        /// The function's name.
        function: String,
        /// Version or alias.
        #[serde(default = "default_qualifier")]
        qualifier: String,
        /// The role the gateway assumes to invoke it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<String>,
    },
    /// An HTTP function: requests are forwarded to its trigger URL.
    Http {
        /// The HTTP trigger's base URL (`scheme://host[:port]`).
        url: String,
        /// The trigger path prefix prepended to the backend path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
}

fn default_region() -> String {
    "local".to_owned()
}
fn default_qualifier() -> String {
    "LATEST".to_owned()
}

impl FunctionDefinition {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Event {
                region,
                service,
                function,
                qualifier,
                role_arn,
            } => {
                for (what, v) in [
                    ("region", region),
                    ("service", service),
                    ("function", function),
                    ("qualifier", qualifier),
                ] {
                    if v.is_empty() {
                        return Err(ValidationError::field(what, "must not be empty"));
                    }
                    validate_len(what, v, 128)?;
                    if !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.$".contains(&b))
                    {
                        return Err(ValidationError::field(
                            what,
                            "may hold only letters, digits, `-`, `_`, `.`, `$`",
                        ));
                    }
                }
                if let Some(r) = role_arn {
                    validate_len("role_arn", r, 256)?;
                }
                Ok(())
            }
            Self::Http { url, path } => {
                validate_base_url("function url", url)?;
                if let Some(p) = path {
                    if !p.starts_with('/') {
                        return Err(ValidationError::field("path", "must start with `/`"));
                    }
                    validate_len("path", p, 1024)?;
                }
                Ok(())
            }
        }
    }
}

/// The permissions the owner of a bucket granted the gateway.
///
/// # Examples
///
/// ```
/// use stagegate::model::OssPermissions;
/// let p = OssPermissions { read: true, write: false };
/// assert!(p.read && !p.write);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssPermissions {
    /// `GetObject` and `HeadObject` are allowed.
    #[serde(default)]
    pub read: bool,
    /// `PutObject` and `DeleteObject` are allowed.
    #[serde(default)]
    pub write: bool,
}

/// An object storage bucket in one stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::{OssDefinition, OssPermissions};
/// let d = OssDefinition { bucket: "assets".into(), endpoint: None, region: None,
///     permissions: OssPermissions { read: true, write: false } };
/// assert!(d.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssDefinition {
    /// The bucket name.
    pub bucket: String,
    /// An S3-compatible endpoint URL; none means the gateway's default object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What the gateway may do in the bucket.
    #[serde(default)]
    pub permissions: OssPermissions,
}

impl OssDefinition {
    /// Checks every field: bucket names follow the S3/OSS rule (3–63 of `a-z0-9-`).
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let b = &self.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            || b.starts_with('-')
            || b.ends_with('-')
        {
            return Err(ValidationError::field(
                "bucket",
                "must be 3 to 63 characters of lowercase letters, digits and `-`, not starting or ending with `-`",
            ));
        }
        if let Some(e) = &self.endpoint {
            validate_base_url("oss endpoint", e)?;
        }
        if let Some(r) = &self.region {
            validate_len("region", r, 64)?;
        }
        Ok(())
    }
}

/// An event bus in one stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::EventBridgeDefinition;
/// let d = EventBridgeDefinition { bus: "orders".into(), source: "shop".into(), region: None };
/// assert!(d.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeDefinition {
    /// The event bus.
    pub bus: String,
    /// The CloudEvents `source` of the events.
    pub source: String,
    /// The bus's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl EventBridgeDefinition {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (what, v) in [("bus", &self.bus), ("source", &self.source)] {
            if v.trim().is_empty() {
                return Err(ValidationError::field(what, "must not be empty"));
            }
            validate_len(what, v, 256)?;
        }
        Ok(())
    }
}

/// The kind of service registry a discovery backend asks.
///
/// # Examples
///
/// ```
/// use stagegate::model::RegistryType;
/// let r: RegistryType = serde_json::from_str("\"NACOS\"").unwrap();
/// assert_eq!(r, RegistryType::Nacos);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegistryType {
    /// A Nacos server (open HTTP API).
    Nacos,
    /// A ZooKeeper ensemble.
    Zookeeper,
    /// EDAS.
    Edas,
    /// A fixed list of addresses.
    Static,
    /// DNS A/AAAA records of the service name.
    Dns,
}

/// Instances found through a service registry, in one stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::{DiscoveryDefinition, RegistryType};
/// let d = DiscoveryDefinition { registry: RegistryType::Static, service_name: "users".into(),
///     namespace: None, group: None, addresses: vec!["127.0.0.1:8081".into()], https: false };
/// assert!(d.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryDefinition {
    /// Which registry.
    pub registry: RegistryType,
    /// The service's name in the registry.
    pub service_name: String,
    /// Namespace (Nacos namespace, ZooKeeper root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Group (Nacos group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Registry server addresses, or the instances themselves for `STATIC` (`host:port`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Call instances over HTTPS.
    #[serde(default)]
    pub https: bool,
}

impl DiscoveryDefinition {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.service_name.trim().is_empty() {
            return Err(ValidationError::field("service_name", "must not be empty"));
        }
        validate_len("service_name", &self.service_name, 256)?;
        if self.addresses.len() > 256 {
            return Err(ValidationError::field("addresses", "at most 256"));
        }
        for a in &self.addresses {
            if a.contains("://") {
                validate_base_url("registry address", a)?;
            } else {
                validate_host("address", a)?;
            }
        }
        let needs_addresses = !matches!(self.registry, RegistryType::Dns);
        if needs_addresses && self.addresses.is_empty() {
            return Err(ValidationError::field(
                "addresses",
                "at least one address is required for this registry",
            ));
        }
        Ok(())
    }
}

/// A canned response.
///
/// `status` and `body` are required (an empty body is written `""`); `headers` is optional.
/// The gateway frames the response itself, so a definition may not set framing or hop-by-hop
/// headers (`content-length`, `transfer-encoding`, `connection`, `keep-alive`, `te`, `trailer`,
/// `upgrade`, `proxy-*`, `host`), nor an informational (1xx) status.
///
/// # Examples
///
/// ```
/// use stagegate::model::MockDefinition;
/// let m: MockDefinition = serde_json::from_str(r#"{"status":200,"body":"hello"}"#).unwrap();
/// assert!(m.validate().is_ok());
/// // the fields are required
/// assert!(serde_json::from_str::<MockDefinition>("{}").is_err());
/// // framing headers and 1xx statuses are refused
/// let m: MockDefinition =
///     serde_json::from_str(r#"{"status":200,"headers":{"Content-Length":"0"},"body":""}"#).unwrap();
/// assert!(m.validate().is_err());
/// let m: MockDefinition = serde_json::from_str(r#"{"status":101,"body":""}"#).unwrap();
/// assert!(m.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockDefinition {
    /// The status code (200–999; no 1xx).
    pub status: u16,
    /// Response headers (no framing or hop-by-hop headers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The response body.
    pub body: String,
}

impl MockDefinition {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(100..=999).contains(&self.status) || http::StatusCode::from_u16(self.status).is_err() {
            return Err(ValidationError::field(
                "status",
                "must be an HTTP status code",
            ));
        }
        if self.status < 200 {
            return Err(ValidationError::field(
                "status",
                "an informational (1xx) status cannot be a canned response",
            ));
        }
        if self.headers.len() > 64 {
            return Err(ValidationError::field("headers", "at most 64"));
        }
        for (k, v) in &self.headers {
            validate_header(k, v)?;
            if is_framing_header(k) {
                return Err(ValidationError::field(
                    "headers",
                    format!(
                        "`{}` is a framing or hop-by-hop header: the gateway sets it, a MOCK cannot",
                        super::id::truncate(k)
                    ),
                ));
            }
        }
        validate_len("mock body", &self.body, 1024 * 1024)
    }
}

/// A backend service's definition in one stage, typed by kind.
///
/// In JSON the kind is the `type` field.
///
/// # Examples
///
/// ```
/// use stagegate::model::{BackendKind, StageDefinition};
/// let d = StageDefinition::from_json(BackendKind::Http, serde_json::json!({"url": "http://127.0.0.1:9000"})).unwrap();
/// assert_eq!(d.kind(), BackendKind::Http);
/// // a MIXED backend's definitions must say which kind they are
/// assert!(StageDefinition::from_json(BackendKind::Mixed, serde_json::json!({"url": "http://h"})).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum StageDefinition {
    /// HTTP/HTTPS.
    Http(HttpDefinition),
    /// VPC.
    Vpc(VpcDefinition),
    /// Function Compute.
    FunctionCompute(FunctionDefinition),
    /// OSS.
    Oss(OssDefinition),
    /// EventBridge.
    #[serde(rename = "EVENTBRIDGE")]
    EventBridge(EventBridgeDefinition),
    /// Service discovery.
    ServiceDiscovery(DiscoveryDefinition),
    /// MOCK.
    Mock(MockDefinition),
}

impl StageDefinition {
    /// The concrete kind of this definition.
    #[must_use]
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Http(_) => BackendKind::Http,
            Self::Vpc(_) => BackendKind::Vpc,
            Self::FunctionCompute(_) => BackendKind::FunctionCompute,
            Self::Oss(_) => BackendKind::Oss,
            Self::EventBridge(_) => BackendKind::EventBridge,
            Self::ServiceDiscovery(_) => BackendKind::ServiceDiscovery,
            Self::Mock(_) => BackendKind::Mock,
        }
    }

    /// Checks every field of the definition.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Http(d) => d.validate(),
            Self::Vpc(d) => d.validate(),
            Self::FunctionCompute(d) => d.validate(),
            Self::Oss(d) => d.validate(),
            Self::EventBridge(d) => d.validate(),
            Self::ServiceDiscovery(d) => d.validate(),
            Self::Mock(d) => d.validate(),
        }
    }

    /// The default timeout this definition sets, if any (its `timeout_ms`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stagegate::model::{HttpDefinition, StageDefinition};
    /// let mut h = HttpDefinition::new("http://10.0.0.1:8080");
    /// assert_eq!(StageDefinition::Http(h.clone()).timeout(), None);
    /// h.timeout_ms = Some(3_000);
    /// assert_eq!(StageDefinition::Http(h).timeout(), Some(Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn timeout(&self) -> Option<std::time::Duration> {
        match self {
            Self::Http(d) => d.timeout_ms,
            Self::Vpc(d) => d.timeout_ms,
            _ => None,
        }
        .map(|ms| std::time::Duration::from_millis(u64::from(ms)))
    }

    /// Parses a definition for a backend of kind `kind` from JSON, validating it.
    ///
    /// A `type` field may name the kind and must then match; for a `MIXED` backend it is
    /// required and names the kind of this stage's definition.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] for a missing or mismatched type, an unknown field, or an invalid value.
    pub fn from_json(
        kind: BackendKind,
        mut value: serde_json::Value,
    ) -> Result<Self, ValidationError> {
        let obj = value
            .as_object_mut()
            .ok_or_else(|| ValidationError::field("definition", "must be a JSON object"))?;
        let def_kind = match obj.get("type") {
            Some(serde_json::Value::String(t)) => {
                let t = BackendKind::parse(t)?;
                if !kind.accepts(t) {
                    return Err(ValidationError::field(
                        "type",
                        format!("a {kind} backend cannot hold a {t} definition"),
                    ));
                }
                t
            }
            Some(_) => return Err(ValidationError::field("type", "must be a string")),
            None if kind == BackendKind::Mixed => {
                return Err(ValidationError::field(
                    "type",
                    "required for a MIXED backend's definition",
                ));
            }
            None => kind,
        };
        obj.insert(
            "type".to_owned(),
            serde_json::Value::String(def_kind.as_str().to_owned()),
        );
        let def: Self = serde_json::from_value(value)
            .map_err(|e| ValidationError::field("definition", e.to_string()))?;
        def.validate()?;
        Ok(def)
    }
}

/// A backend service: a typed resource with one definition per stage.
///
/// # Examples
///
/// ```
/// use stagegate::model::{BackendKind, BackendService, HttpDefinition, Stage, StageDefinition};
/// let mut b = BackendService::new("testHttp", BackendKind::Http).unwrap();
/// b.stages.insert(Stage::TEST, StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:8081")));
/// assert!(b.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendService {
    /// Identifier.
    pub id: BackendId,
    /// Name (unique, changeable).
    pub name: String,
    /// Kind, fixed at creation.
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One definition per stage.
    #[serde(default)]
    pub stages: BTreeMap<Stage, StageDefinition>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub modified_at: Timestamp,
}

impl BackendService {
    /// A new backend service with a fresh id and no stage definitions.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidName`] for a bad name.
    pub fn new(name: impl Into<String>, kind: BackendKind) -> Result<Self, ValidationError> {
        let now = Timestamp::now();
        let b = Self {
            id: BackendId::generate(),
            name: name.into(),
            kind,
            description: None,
            stages: BTreeMap::new(),
            created_at: now,
            modified_at: now,
        };
        b.validate()?;
        Ok(b)
    }

    /// Checks name, description and every stage definition (kinds included).
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("backend name", &self.name)?;
        validate_description(self.description.as_deref())?;
        for def in self.stages.values() {
            if !self.kind.accepts(def.kind()) {
                return Err(ValidationError::field(
                    "type",
                    format!(
                        "a {} backend cannot hold a {} definition",
                        self.kind,
                        def.kind()
                    ),
                ));
            }
            def.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{BackendKind, StageDefinition};

    /// Issue 20 item 17: `{}` never makes a definition of any kind (a MOCK used to default to
    /// an empty 200).
    #[test]
    fn an_empty_object_is_no_definition_of_any_kind() {
        for kind in BackendKind::ALL {
            let got = StageDefinition::from_json(kind, serde_json::json!({}));
            assert!(got.is_err(), "{kind}: {got:?}");
        }
        assert!(
            StageDefinition::from_json(
                BackendKind::Mock,
                serde_json::json!({"status": 204, "body": ""})
            )
            .is_ok()
        );
    }
}
