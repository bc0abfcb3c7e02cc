//! API groups and API definitions: the client-facing request, its parameters, the backend
//! binding and the response documentation.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::validate::{
    validate_description, validate_header, validate_host, validate_len, validate_name,
};
use super::{
    ApiId, AppCodeMode, AuthType, BackendId, GroupId, PathTemplate, SignatureMethod,
    ValidationError,
};

/// An API group: a namespace of APIs with an optional base path and domains.
///
/// # Examples
///
/// ```
/// use stagegate::model::Group;
/// let g = Group::new("ab").unwrap_err(); // names are 4 to 50 characters
/// let g = Group::new("shop_api").unwrap();
/// assert!(g.domains.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Identifier.
    pub id: GroupId,
    /// Name, unique among groups.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A path prefix in front of every API path of the group (e.g. `/qqq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// Host names that reach this group; a group with none matches any host.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Whether the AppCode credential (`Authorization: APPCODE …`, and the `AppCode` query
    /// parameter where the API accepts it there) is passed on to backends. Default `false`:
    /// the gateway strips it before forwarding, in every request mode (the original
    /// gateway's `FilterAppCodeForBackend`, inverted so that the default is safe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_appcode_to_backend: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Group {
    /// A new group with a fresh id.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidName`] for a bad name.
    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let g = Self {
            id: GroupId::generate(),
            name: name.into(),
            description: None,
            base_path: None,
            domains: Vec::new(),
            pass_appcode_to_backend: false,
            created_at: Timestamp::now(),
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("group name", &self.name)?;
        validate_description(self.description.as_deref())?;
        if let Some(b) = &self.base_path {
            let t = PathTemplate::parse(b)?;
            if t.params().next().is_some() || t.match_all() {
                return Err(ValidationError::field(
                    "base_path",
                    "must be a literal path",
                ));
            }
        }
        if self.domains.len() > 5 {
            return Err(ValidationError::field("domains", "at most 5 per group"));
        }
        for d in &self.domains {
            validate_host("domain", d)?;
        }
        Ok(())
    }
}

/// A client protocol an API accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

/// How the gateway treats request parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestMode {
    /// Everything is forwarded unchanged.
    #[default]
    Passthrough,
    /// Declared parameters are read, checked and mapped; the rest is dropped.
    Mapping,
    /// Declared parameters are mapped; the rest is forwarded.
    MappingPassthrough,
}

/// How a request body is treated in mapping modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BodyFormat {
    /// Form fields are individually mappable parameters.
    Form,
    /// The raw body is passed through.
    Stream,
}

/// The client-facing request of an API.
///
/// # Examples
///
/// ```
/// use stagegate::model::RequestConfig;
/// let r: RequestConfig = serde_json::from_value(serde_json::json!({
///     "method": "GET", "path": "/users/[id]", "mode": "MAPPING"
/// })).unwrap();
/// assert!(r.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Accepted protocols (default HTTP and HTTPS).
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Protocol>,
    /// The HTTP method, or `ANY`.
    pub method: String,
    /// The path template.
    pub path: PathTemplate,
    /// The parameter mode.
    #[serde(default)]
    pub mode: RequestMode,
    /// Body treatment in mapping modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_format: Option<BodyFormat>,
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Http, Protocol::Https]
}

/// The methods an API may declare (and `ANY`).
pub const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "ANY",
];

pub(crate) fn validate_method(what: &'static str, m: &str) -> Result<(), ValidationError> {
    if METHODS.contains(&m) {
        Ok(())
    } else {
        Err(ValidationError::field(
            what,
            format!(
                "`{}` is not one of {}",
                super::id::truncate(m),
                METHODS.join(", ")
            ),
        ))
    }
}

impl RequestConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_method("request.method", &self.method)?;
        if self.protocols.is_empty() {
            return Err(ValidationError::field(
                "request.protocols",
                "at least one protocol",
            ));
        }
        Ok(())
    }
}

/// Where a parameter is found (or written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParamLocation {
    /// A header.
    #[serde(alias = "HEADER")]
    Head,
    /// A query parameter.
    Query,
    /// A `[param]` path segment.
    Path,
    /// A form body field.
    Body,
}

/// The type a parameter's value must parse as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParamType {
    /// Any text.
    #[default]
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A 32-bit float.
    Float,
    /// A 64-bit float.
    Double,
    /// `true` or `false`.
    Boolean,
}

/// A declared client-facing parameter and how it maps to the backend.
///
/// # Examples
///
/// ```
/// use stagegate::model::{ParamLocation, RequestParameter};
/// let p: RequestParameter = serde_json::from_value(serde_json::json!({
///     "name": "id", "location": "PATH", "type": "LONG", "required": true,
///     "backend_name": "userId", "backend_location": "QUERY"
/// })).unwrap();
/// assert_eq!(p.location, ParamLocation::Path);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestParameter {
    /// The name clients use.
    pub name: String,
    /// Where clients send it.
    #[serde(default)]
    pub location: ParamLocation,
    /// The value's type.
    #[serde(default, rename = "type")]
    pub param_type: ParamType,
    /// Whether it must be present (after defaults).
    #[serde(default)]
    pub required: bool,
    /// The value used when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Minimum length (strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    /// Maximum length (strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Minimum value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    /// Maximum value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    /// The allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<String>,
    /// A regular expression the whole value must match (strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The name sent to the backend (default: the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_name: Option<String>,
    /// Where it is sent to the backend (default: the same location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_location: Option<ParamLocation>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An example value for the documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_value: Option<String>,
    /// For a `PATH` parameter: accept an encoded slash or backslash (`%2F`, `%5C`) in its
    /// value (default `false`: such a request path is refused with `I400PA`). The value is
    /// forwarded still encoded, so it never becomes a path separator upstream; dot segments
    /// are refused in any case.
    ///
    /// ```
    /// use stagegate::model::{ParamLocation, RequestParameter};
    /// let p: RequestParameter = serde_json::from_value(serde_json::json!({
    ///     "name": "key", "location": "PATH", "allow_encoded_slash": true
    /// })).unwrap();
    /// assert!(p.allow_encoded_slash && p.validate().is_ok());
    /// ```
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_slash: bool,
}

impl Default for ParamLocation {
    /// `QUERY`.
    fn default() -> Self {
        Self::Query
    }
}

/// Longest regular expression accepted in a parameter rule.
pub const MAX_REGEX_LEN: usize = 512;

impl RequestParameter {
    /// The name sent to the backend.
    #[must_use]
    pub fn backend_name(&self) -> &str {
        self.backend_name.as_deref().unwrap_or(&self.name)
    }

    /// Where it is sent to the backend.
    #[must_use]
    pub fn backend_location(&self) -> ParamLocation {
        self.backend_location.unwrap_or(self.location)
    }

    /// Checks every field, including that the regular expression compiles.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_param_name("parameter name", &self.name)?;
        if self.allow_encoded_slash && self.location != ParamLocation::Path {
            return Err(ValidationError::field(
                &self.name,
                "allow_encoded_slash applies to PATH parameters only",
            ));
        }
        if let Some(b) = &self.backend_name {
            validate_param_name("parameter backend_name", b)?;
        }
        if let (Some(a), Some(b)) = (self.min_length, self.max_length)
            && a > b
        {
            return Err(ValidationError::field(
                &self.name,
                "min_length exceeds max_length",
            ));
        }
        if let (Some(a), Some(b)) = (self.min_value, self.max_value)
            && (a > b || a.is_nan() || b.is_nan())
        {
            return Err(ValidationError::field(
                &self.name,
                "min_value exceeds max_value",
            ));
        }
        if self.enum_values.len() > 256 {
            return Err(ValidationError::field(
                &self.name,
                "at most 256 enum values",
            ));
        }
        if let Some(r) = &self.regex {
            if r.len() > MAX_REGEX_LEN {
                return Err(ValidationError::field(
                    &self.name,
                    "regex longer than 512 bytes",
                ));
            }
            regex::RegexBuilder::new(r)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    ValidationError::field(&self.name, format!("regex does not compile: {e}"))
                })?;
        }
        if let Some(d) = &self.default {
            validate_len("default", d, 4096)?;
        }
        validate_description(self.description.as_deref())
    }
}

fn validate_param_name(what: &'static str, n: &str) -> Result<(), ValidationError> {
    if n.is_empty()
        || n.len() > 128
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ValidationError::field(
            what,
            format!(
                "`{}` must be 1 to 128 of letters, digits, `-`, `_`, `.`",
                super::id::truncate(n)
            ),
        ));
    }
    Ok(())
}

/// A fixed value the gateway adds to every backend request.
///
/// # Examples
///
/// ```
/// use stagegate::model::ConstantParameter;
/// let c: ConstantParameter = serde_json::from_str(r#"{"backend_name":"x-tenant","value":"acme"}"#).unwrap();
/// assert!(c.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantParameter {
    /// Name at the backend.
    pub backend_name: String,
    /// The value.
    pub value: String,
    /// Where it goes (default a header).
    #[serde(default = "head")]
    pub location: ParamLocation,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn head() -> ParamLocation {
    ParamLocation::Head
}

impl ConstantParameter {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_param_name("constant parameter", &self.backend_name)?;
        if self.location == ParamLocation::Path {
            return Err(ValidationError::field(
                "constant parameter",
                "location PATH is not allowed",
            ));
        }
        if self.location == ParamLocation::Head {
            validate_header(&self.backend_name, &self.value)?;
        }
        validate_len("constant value", &self.value, 4096)
    }
}

/// A value the gateway knows about the request, sent to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SystemParam {
    /// The client's IP address.
    CaClientIp,
    /// The request id.
    CaRequestId,
    /// The stage.
    CaStage,
    /// The API's name.
    CaApiName,
    /// The calling app's id (empty for anonymous calls).
    CaAppId,
    /// The requested host.
    CaDomain,
    /// `http` or `https`.
    CaHttpSchema,
    /// When the gateway received the request (epoch milliseconds).
    CaRequestHandleTime,
}

/// A system parameter sent to the backend.
///
/// # Examples
///
/// ```
/// use stagegate::model::SystemParameter;
/// let s: SystemParameter = serde_json::from_str(r#"{"name":"CaClientIp","backend_name":"x-client-ip"}"#).unwrap();
/// assert!(s.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemParameter {
    /// Which value.
    pub name: SystemParam,
    /// Name at the backend.
    pub backend_name: String,
    /// Where it goes (default a header).
    #[serde(default = "head")]
    pub location: ParamLocation,
}

impl SystemParameter {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_param_name("system parameter", &self.backend_name)?;
        if self.location == ParamLocation::Path {
            return Err(ValidationError::field(
                "system parameter",
                "location PATH is not allowed",
            ));
        }
        Ok(())
    }
}

/// Which Content-Type the gateway sends to the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentTypePolicy {
    /// Forward the client's Content-Type.
    #[default]
    Client,
    /// `application/x-www-form-urlencoded; charset=UTF-8` for mapped form bodies.
    Default,
    /// `content_type_value`.
    Custom,
}

/// An object storage action an API performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OssAction {
    /// Read an object.
    GetObject,
    /// Read an object's metadata.
    HeadObject,
    /// Write an object.
    PutObject,
    /// Delete an object.
    DeleteObject,
}

impl OssAction {
    /// Whether the action needs the write permission.
    #[must_use]
    pub fn writes(self) -> bool {
        matches!(self, Self::PutObject | Self::DeleteObject)
    }
}

/// The object an OSS-backed API acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssBinding {
    /// The action.
    pub action: OssAction,
    /// The object key, with `[param]` placeholders.
    pub key: String,
}

/// How an API reaches its backend service.
///
/// # Examples
///
/// ```
/// use stagegate::model::{BackendBinding, BackendId};
/// let b = BackendBinding::new(BackendId::generate());
/// assert_eq!(b.timeout(), std::time::Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendBinding {
    /// The backend service.
    pub backend_id: BackendId,
    /// The backend path, with `[param]` (or `{param}`) placeholders; none passes the request
    /// path through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The backend method; none (or `ANY`) keeps the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Timeout in milliseconds (default 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Content-Type policy.
    #[serde(default)]
    pub content_type: ContentTypePolicy,
    /// The Content-Type for [`ContentTypePolicy::Custom`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type_value: Option<String>,
    /// For OSS backends: the action and object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss: Option<OssBinding>,
}

impl BackendBinding {
    /// A binding to `backend_id` with every default.
    #[must_use]
    pub fn new(backend_id: BackendId) -> Self {
        Self {
            backend_id,
            path: None,
            method: None,
            timeout_ms: None,
            content_type: ContentTypePolicy::Client,
            content_type_value: None,
            oss: None,
        }
    }

    /// The effective timeout: [`timeout_ms`](Self::timeout_ms) when set, else 10 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stagegate::model::{BackendBinding, BackendId};
    /// let mut b = BackendBinding::new(BackendId::generate());
    /// b.timeout_ms = Some(2_500);
    /// assert_eq!(b.timeout(), Duration::from_millis(2_500));
    /// ```
    #[must_use]
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.timeout_ms.unwrap_or(10_000)))
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(p) = &self.path {
            PathTemplate::parse(p)?;
        }
        if let Some(m) = &self.method {
            validate_method("backend.method", m)?;
        }
        match self.timeout_ms {
            Some(0) => {
                return Err(ValidationError::field(
                    "backend.timeout_ms",
                    "must be at least 1",
                ));
            }
            Some(t) if t > 600_000 => {
                return Err(ValidationError::field(
                    "backend.timeout_ms",
                    "must be at most 600000",
                ));
            }
            _ => {}
        }
        if self.content_type == ContentTypePolicy::Custom {
            let v = self.content_type_value.as_deref().ok_or_else(|| {
                ValidationError::field("backend.content_type_value", "required for CUSTOM")
            })?;
            validate_header("content-type", v)?;
        }
        if let Some(o) = &self.oss
            && (o.key.is_empty() || o.key.len() > 1024)
        {
            return Err(ValidationError::field(
                "backend.oss.key",
                "must be 1 to 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// One documented error code of an API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorCodeDoc {
    /// The code.
    pub code: String,
    /// The message.
    pub message: String,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The response documentation of an API (the "Define Response" step).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseDoc {
    /// The response Content-Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// An example of a successful response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// An example of an error response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_example: Option<String>,
    /// Documented error codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_codes: Vec<ErrorCodeDoc>,
}

impl ResponseDoc {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_len(
            "response.example",
            self.example.as_deref().unwrap_or(""),
            32 * 1024,
        )?;
        validate_len(
            "response.error_example",
            self.error_example.as_deref().unwrap_or(""),
            16 * 1024,
        )?;
        if self.error_codes.len() > 100 {
            return Err(ValidationError::field(
                "response.error_codes",
                "at most 100",
            ));
        }
        Ok(())
    }
}

/// An API definition (the draft; publishing snapshots it into a stage).
///
/// # Examples
///
/// ```
/// use stagegate::model::{ApiDefinition, BackendId, GroupId};
/// let api = ApiDefinition::new(GroupId::generate(), "getUser", "GET", "/users/[id]", BackendId::generate())
///     .unwrap();
/// assert!(api.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiDefinition {
    /// Identifier.
    pub id: ApiId,
    /// The group it belongs to.
    pub group_id: GroupId,
    /// Name, unique in the group.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who may call it.
    #[serde(default)]
    pub auth: AuthType,
    /// Whether AppCodes are accepted, and where.
    #[serde(default)]
    pub appcode_auth: AppCodeMode,
    /// Accepted signature methods.
    #[serde(default = "default_methods")]
    pub signature_methods: Vec<SignatureMethod>,
    /// Whether every signed call must carry a fresh `X-Ca-Nonce`.
    #[serde(default)]
    pub force_nonce_check: bool,
    /// The client-facing request.
    pub request: RequestConfig,
    /// Declared parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<RequestParameter>,
    /// Constant parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constant_parameters: Vec<ConstantParameter>,
    /// System parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_parameters: Vec<SystemParameter>,
    /// The backend binding.
    pub backend: BackendBinding,
    /// Response documentation.
    #[serde(default)]
    pub response: ResponseDoc,
}

fn default_methods() -> Vec<SignatureMethod> {
    vec![SignatureMethod::HmacSha256]
}

impl ApiDefinition {
    /// A new API with a fresh id: `method` on `path` in `group_id`, served by `backend_id`.
    ///
    /// It requires app authentication (`AuthType::App`, signatures with `HmacSHA256`,
    /// AppCodes off); call [`anonymous`](Self::anonymous) for a public API. It accepts
    /// HTTP and HTTPS, passes the request through (`PASSTHROUGH`) to the backend's path, with
    /// no declared parameters. The path takes `[name]` or `{name}` parameters and a trailing
    /// `/*` (see [`PathTemplate`]). Set the public fields to change the rest.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] for a bad name, method or path.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::{ApiDefinition, AuthType, BackendId, GroupId};
    /// let api = ApiDefinition::new(
    ///     GroupId::generate(),
    ///     "getUser",
    ///     "GET",
    ///     "/users/{id}",
    ///     BackendId::generate(),
    /// )
    /// .unwrap();
    /// assert_eq!(api.auth, AuthType::App);
    /// assert_eq!(api.request.path.as_str(), "/users/[id]");
    /// assert_eq!(api.anonymous().auth, AuthType::Anonymous);
    /// assert!(ApiDefinition::new(GroupId::generate(), "x", "GET", "users", BackendId::generate()).is_err());
    /// ```
    pub fn new(
        group_id: GroupId,
        name: &str,
        method: &str,
        path: &str,
        backend_id: BackendId,
    ) -> Result<Self, ValidationError> {
        let api = Self {
            id: ApiId::generate(),
            group_id,
            name: name.to_owned(),
            description: None,
            auth: AuthType::App,
            appcode_auth: AppCodeMode::Disable,
            signature_methods: default_methods(),
            force_nonce_check: false,
            request: RequestConfig {
                protocols: default_protocols(),
                method: method.to_owned(),
                path: PathTemplate::parse(path)?,
                mode: RequestMode::Passthrough,
                body_format: None,
            },
            parameters: Vec::new(),
            constant_parameters: Vec::new(),
            system_parameters: Vec::new(),
            backend: BackendBinding::new(backend_id),
            response: ResponseDoc::default(),
        };
        api.validate()?;
        Ok(api)
    }

    /// Makes the API anonymous.
    #[must_use]
    pub fn anonymous(mut self) -> Self {
        self.auth = AuthType::Anonymous;
        self
    }

    /// Checks every field and the relations between them (path parameters declared, names unique).
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("api name", &self.name)?;
        validate_description(self.description.as_deref())?;
        self.request.validate()?;
        self.backend.validate()?;
        self.response.validate()?;
        if self.signature_methods.is_empty() {
            return Err(ValidationError::field(
                "signature_methods",
                "at least one method",
            ));
        }
        if self.parameters.len() > 128 {
            return Err(ValidationError::field("parameters", "at most 128"));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.parameters {
            p.validate()?;
            if !seen.insert((p.location, p.name.to_ascii_lowercase())) {
                return Err(ValidationError::field(
                    "parameters",
                    format!("`{}` is declared twice", p.name),
                ));
            }
            if p.location == ParamLocation::Path && !self.request.path.params().any(|n| n == p.name)
            {
                return Err(ValidationError::field(
                    "parameters",
                    format!("path parameter `{}` is not in the request path", p.name),
                ));
            }
        }
        for c in &self.constant_parameters {
            c.validate()?;
        }
        for s in &self.system_parameters {
            s.validate()?;
        }
        Ok(())
    }
}
