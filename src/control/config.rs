//! The declarative configuration document: backends with their stage definitions, groups, APIs
//! with the stages they are published in and the policies bound to them per stage, apps with
//! their grants, and traffic policies, all identified by name.
//! [`ControlPlane::plan`](super::ControlPlane::plan) compares one with the live configuration;
//! [`ControlPlane::apply`](super::ControlPlane::apply) commits the plan.
//!
//! The document names objects, never ids: a backend, group, app, policy or VPC access
//! authorization by its name, an API by its group's name and its own. Ids of existing objects
//! are kept, new ones are generated, so that applying the same document again changes nothing.
//!
//! Secrets: an app's key pairs may carry their `app_secret` and the app its `codes`, a backend
//! signature policy its `secret`; when left out, the object keeps the ones it has (a new one
//! gets generated ones, which the admin API's full export carries). A plan names what changes
//! (`keys`, `codes`, `secret`), never a secret, and
//! [`ControlPlane::export_document`](super::ControlPlane::export_document) leaves them out.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::groups::NewGroup;
use super::state::State;
use super::{ControlError, ControlPlane};
use crate::model::{
    AppCodeMode, AuthType, BackendKind, ConstantParameter, ContentTypePolicy, OssBinding,
    RequestConfig, RequestParameter, ResponseDoc, Secret, SignatureMethod, Stage, StageDefinition,
    SystemParameter, ValidationError,
};
use crate::policy::IpMode;

/// The format version of [`ConfigDocument`] this build reads and writes.
pub const CONFIG_FORMAT: u32 = 1;

/// A whole gateway configuration, by name: what [`ControlPlane::plan`](super::ControlPlane::plan)
/// reconciles the live configuration with.
///
/// Unknown fields are refused everywhere, so a typo is an error, never a silently ignored
/// setting.
///
/// # Examples
///
/// ```
/// use stagegate::control::{ConfigDocument, PlanScope};
/// use stagegate::{ControlPlane, store::MemoryStore};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let doc = ConfigDocument::from_json(r#"{
///   "backends": [{"name": "users_http", "type": "HTTP",
///                 "stages": {"TEST": {"url": "http://127.0.0.1:8081"}}}],
///   "groups": [{"name": "shop_api"}],
///   "apis": [{"name": "getUser", "group": "shop_api",
///             "request": {"method": "GET", "path": "/users/[id]"},
///             "parameters": [{"name": "id", "location": "PATH"}],
///             "backend": {"name": "users_http"}, "publish": ["TEST"]}]
/// }"#).unwrap();
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let plan = cp.plan(&doc, PlanScope::Whole).await.unwrap();
/// assert_eq!(plan.steps.len(), 4); // create backend, group, api; publish api to TEST
/// cp.apply(&plan).await.unwrap();
/// // the same document again: nothing to do
/// assert!(cp.plan(&doc, PlanScope::Whole).await.unwrap().is_empty());
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDocument {
    /// The format version ([`CONFIG_FORMAT`], the default).
    #[serde(default = "config_format")]
    pub format: u32,
    /// VPC access authorizations, which VPC stage definitions name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_access: Vec<VpcAccessSpec>,
    /// Backend services with their stage definitions.
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
    /// Groups (the same fields as creating one).
    #[serde(default)]
    pub groups: Vec<NewGroup>,
    /// APIs with the stages they are published in.
    #[serde(default)]
    pub apis: Vec<ApiSpec>,
    /// Apps with their credentials and grants.
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// Policies: throttling, IP control, CORS and backend signatures, by name; APIs bind them
    /// per stage ([`ApiSpec::policies`]).
    #[serde(default, skip_serializing_if = "Policies::is_empty")]
    pub policies: Policies,
}

fn config_format() -> u32 {
    CONFIG_FORMAT
}

impl Default for ConfigDocument {
    fn default() -> Self {
        Self {
            format: CONFIG_FORMAT,
            vpc_access: Vec::new(),
            backends: Vec::new(),
            groups: Vec::new(),
            apis: Vec::new(),
            apps: Vec::new(),
            policies: Policies::default(),
        }
    }
}

/// The policies of a [`ConfigDocument`], by kind, each by name: throttling, IP control, CORS
/// and backend signatures. Each entry has `name` and the fields the admin API takes for its
/// kind, except that apps are named by their name (`app`), never by id. APIs bind them by
/// name per stage ([`ApiSpec::policies`]).
///
/// A backend signature's `secret` is like an app's secrets: when left out, the policy keeps the
/// one it has (a new one gets a generated secret, which the full export carries);
/// [`ControlPlane::export_document`](super::ControlPlane::export_document) never writes it.
///
/// # Examples
///
/// ```
/// use stagegate::control::ConfigDocument;
/// assert!(ConfigDocument::from_json(r#"{"policies": {}}"#).unwrap().policies.is_empty());
/// let doc = ConfigDocument::from_json(r#"{"policies": {
///   "throttling": [{"name": "perMinute", "unit": "MINUTE", "api_default": 600,
///                   "app_default": 60, "special_apps": [{"app": "mobile_app", "limit": 120}]}],
///   "ip_control": [{"name": "officeOnly", "mode": "ALLOW", "rules": [{"cidr": "10.0.0.0/8"}]}],
///   "cors": [{"name": "webApp", "allow_origins": ["https://app.example.com"]}],
///   "backend_signature": [{"name": "toBackend", "key": "DemoKey1", "secret": "DemoSecret1"}]
/// }}"#).unwrap();
/// assert_eq!(doc.policies.throttling[0].special_apps[0].app, "mobile_app");
/// let e = ConfigDocument::from_json(r#"{"policies": {"throttle": []}}"#).unwrap_err();
/// assert!(e.to_string().contains("unknown field `throttle`"), "{e}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Policies {
    /// Throttling policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttling: Vec<ThrottlingSpec>,
    /// IP access-control policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_control: Vec<IpControlSpec>,
    /// CORS policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<CorsSpec>,
    /// Backend signature policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_signature: Vec<BackendSignatureSpec>,
}

impl Policies {
    /// Whether no policy is declared.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.throttling.is_empty()
            && self.ip_control.is_empty()
            && self.cors.is_empty()
            && self.backend_signature.is_empty()
    }
}

/// A throttling policy, by name ([`Throttling`](crate::policy::Throttling) with apps by name).
///
/// `unit` is text here so that an unknown unit is reported with its place in the document
/// (`policies.throttling[0].unit`); limits are checked (1 to
/// [`MAX_LIMIT`](crate::policy::MAX_LIMIT)) when planned.
///
/// # Examples
///
/// ```
/// use stagegate::control::ThrottlingSpec;
/// let t: ThrottlingSpec = serde_json::from_str(r#"{"name": "perMinute", "unit": "MINUTE",
///     "api_default": 600, "special_apps": [{"app": "mobile_app", "limit": 120}]}"#).unwrap();
/// assert_eq!(t.special_apps[0].limit, 120);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottlingSpec {
    /// Name, unique among every policy.
    pub name: String,
    /// `SECOND`, `MINUTE`, `HOUR` or `DAY`.
    pub unit: String,
    /// Requests per window to the API in the stage, all callers together.
    pub api_default: u32,
    /// Requests per window of each app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_default: Option<u32>,
    /// Named apps' own limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special_apps: Vec<SpecialAppSpec>,
}

/// An app's own throttling limit, the app by name.
///
/// # Examples
///
/// ```
/// use stagegate::control::SpecialAppSpec;
/// let s: SpecialAppSpec = serde_json::from_str(r#"{"app": "mobile_app", "limit": 5}"#).unwrap();
/// assert_eq!(s.app, "mobile_app");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialAppSpec {
    /// The app's name.
    pub app: String,
    /// Its limit per window.
    pub limit: u32,
}

/// An IP access-control policy, by name ([`IpControl`](crate::policy::IpControl) with apps by
/// name).
///
/// # Examples
///
/// ```
/// use stagegate::control::IpControlSpec;
/// let c: IpControlSpec = serde_json::from_str(r#"{"name": "officeOnly", "mode": "ALLOW",
///     "rules": [{"cidr": "10.0.0.0/8"}, {"cidr": "2001:db8::/32", "app": "mobile_app"}]}"#).unwrap();
/// assert_eq!(c.rules[1].app.as_deref(), Some("mobile_app"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpControlSpec {
    /// Name, unique among every policy.
    pub name: String,
    /// `ALLOW` or `REFUSE`.
    pub mode: IpMode,
    /// The rules, at least one.
    pub rules: Vec<IpRuleSpec>,
}

/// One CIDR of an [`IpControlSpec`], optionally for one app only (`ALLOW` only).
///
/// # Examples
///
/// ```
/// use stagegate::control::IpRuleSpec;
/// let r: IpRuleSpec = serde_json::from_str(r#"{"cidr": "192.0.2.1"}"#).unwrap();
/// assert!(r.app.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRuleSpec {
    /// An IPv4 or IPv6 CIDR, or a bare address (checked when planned, naming
    /// `policies.ip_control[i].rules[j].cidr`).
    pub cidr: String,
    /// The app the rule is for, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A CORS policy, by name: the fields of [`Cors`](crate::policy::Cors), with the same
/// defaults.
///
/// # Examples
///
/// ```
/// use stagegate::control::CorsSpec;
/// let c: CorsSpec = serde_json::from_str(r#"{"name": "webApp", "allow_origins": ["https://*.example.com"]}"#).unwrap();
/// assert_eq!(c.max_age_s, 600);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// Name, unique among every policy.
    pub name: String,
    /// Allowed origins: exact, `scheme://*.domain` wildcards, or `*`.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    #[serde(default = "crate::policy::default_cors_methods")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default = "crate::policy::default_cors_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default = "crate::policy::default_cors_expose")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight, in seconds.
    #[serde(default = "crate::policy::default_cors_max_age")]
    pub max_age_s: u32,
    /// Whether credentials may be sent.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// A backend signature policy, by name; the secret is kept (or generated) unless given.
///
/// # Examples
///
/// ```
/// use stagegate::control::BackendSignatureSpec;
/// let b: BackendSignatureSpec = serde_json::from_str(r#"{"name": "toBackend", "key": "DemoKey1", "secret": "DemoSecret1"}"#).unwrap();
/// assert!(!format!("{b:?}").contains("DemoSecret1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSignatureSpec {
    /// Name, unique among every policy.
    pub name: String,
    /// The key's name the backend receives (`X-Ca-Proxy-Signature-Secret-Key`).
    pub key: String,
    /// The secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

/// A VPC access authorization, by name.
///
/// # Examples
///
/// ```
/// use stagegate::control::VpcAccessSpec;
/// let v: VpcAccessSpec = serde_json::from_str(
///     r#"{"name": "orders_vpc", "vpc_id": "vpc-1", "instance_id": "i-1", "port": 8080}"#,
/// ).unwrap();
/// assert_eq!(v.port, 8080);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcAccessSpec {
    /// Name, unique.
    pub name: String,
    /// The VPC.
    pub vpc_id: String,
    /// The instance.
    pub instance_id: String,
    /// The port.
    pub port: u16,
    /// The `host:port` the instance resolves to on this gateway's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A backend service and its definition in each stage.
///
/// A stage definition has the fields of the backend's kind (a `MIXED` backend's say which kind
/// with `type`); a VPC definition names its VPC access authorization by name, as `vpc_access`.
///
/// # Examples
///
/// ```
/// use stagegate::control::BackendSpec;
/// let b: BackendSpec = serde_json::from_str(r#"{"name": "users_http", "type": "HTTP",
///     "stages": {"TEST": {"url": "http://127.0.0.1:8081"}}}"#).unwrap();
/// assert_eq!(b.stages.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// Name, unique.
    pub name: String,
    /// Kind; it cannot change once the backend exists.
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One definition per stage; a stage left out has none.
    #[serde(default)]
    pub stages: BTreeMap<Stage, serde_json::Value>,
}

/// An API, by its group's name and its own, with the stages it is published in.
///
/// Every field but `group`, `backend` and `publish` is the [`ApiDefinition`](crate::model::ApiDefinition)
/// field of the same name, with the same defaults.
///
/// # Examples
///
/// ```
/// use stagegate::control::ApiSpec;
/// let a: ApiSpec = serde_json::from_str(r#"{"name": "getUser", "group": "shop_api",
///     "request": {"method": "GET", "path": "/users"}, "backend": {"name": "users_http"},
///     "publish": ["TEST", "RELEASE"]}"#).unwrap();
/// assert_eq!(a.publish.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Name, unique in its group.
    pub name: String,
    /// The group's name.
    pub group: String,
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
    /// The backend service, by name, and how the API reaches it.
    pub backend: BindingSpec,
    /// Response documentation.
    #[serde(default)]
    pub response: ResponseDoc,
    /// The stages the API is published in, as this document describes it; it is taken out of
    /// the others. A stage where the published snapshot already equals it is left alone.
    #[serde(default)]
    pub publish: Vec<Stage>,
    /// The policies bound to it, by name, per stage: `{"RELEASE": ["perMinute", "officeOnly"]}`;
    /// at most one of each type per stage. A stage listed here has exactly these bindings; in
    /// [`PlanScope::Whole`](super::PlanScope::Whole) a stage left out has none, in
    /// [`PlanScope::NamedOnly`](super::PlanScope::NamedOnly) it keeps the ones it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<Stage, Vec<String>>,
}

fn default_methods() -> Vec<SignatureMethod> {
    vec![SignatureMethod::HmacSha256]
}

/// How an API reaches its backend service, named by `name`; every other field is the
/// [`BackendBinding`](crate::model::BackendBinding) field of the same name.
///
/// # Examples
///
/// ```
/// use stagegate::control::BindingSpec;
/// let b: BindingSpec = serde_json::from_str(r#"{"name": "users_http", "path": "/v1/users"}"#).unwrap();
/// assert_eq!(b.name, "users_http");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The backend service's name.
    pub name: String,
    /// The backend path, with `[param]` placeholders; none passes the request path through.
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

/// An app, its credentials and its grants.
///
/// `keys` and `codes`, when given, are the app's whole lists: a key pair keeps its secret unless
/// `app_secret` is given, a new one gets a generated secret unless given. When left out, the app
/// keeps what it has (a new app gets one generated key pair and AppCode).
///
/// # Examples
///
/// ```
/// use stagegate::control::AppSpec;
/// let a: AppSpec = serde_json::from_str(r#"{"name": "mobile_app",
///     "keys": [{"app_key": "203753911"}],
///     "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST"]}]}"#).unwrap();
/// assert!(a.keys.unwrap()[0].app_secret.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Name, 4–26 characters, unique.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled app cannot call anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The key pairs, when managed by the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<KeySpec>>,
    /// The AppCodes, when managed by the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<Secret>>,
    /// What the app may call; any other grant of the app is withdrawn.
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
}

/// A key pair of an app; the secret is kept (or generated) unless given.
///
/// # Examples
///
/// ```
/// use stagegate::control::KeySpec;
/// let k: KeySpec = serde_json::from_str(r#"{"app_key": "203753911", "app_secret": "s3cret-s3cret"}"#).unwrap();
/// assert_eq!(format!("{k:?}"), r#"KeySpec { app_key: "203753911", app_secret: Some(Secret(****)) }"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The public key (`X-Ca-Key`).
    pub app_key: String,
    /// The HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<Secret>,
}

/// A grant: the app may call the API `api` of group `group` in `stages`.
///
/// # Examples
///
/// ```
/// use stagegate::control::GrantSpec;
/// let g: GrantSpec = serde_json::from_str(r#"{"group": "shop_api", "api": "getUser",
///     "stages": ["TEST"], "expires_at": "2030-01-01T00:00:00Z"}"#).unwrap();
/// assert!(g.expires_at.is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The API's group, by name.
    pub group: String,
    /// The API, by name.
    pub api: String,
    /// The stages.
    pub stages: Vec<Stage>,
    /// When the grant ends; none means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// A format a [`ConfigDocument`] can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigFormat {
    /// JSON.
    Json,
    /// TOML (feature `toml`).
    #[cfg(feature = "toml")]
    Toml,
}

impl ConfigFormat {
    /// The format a file name's extension says: `.toml` is TOML (feature `toml`), anything else
    /// JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::ConfigFormat;
    /// assert_eq!(ConfigFormat::from_path("gateway.json".as_ref()), ConfigFormat::Json);
    /// ```
    #[must_use]
    pub fn from_path(path: &std::path::Path) -> Self {
        #[cfg(feature = "toml")]
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            return Self::Toml;
        }
        let _ = path;
        Self::Json
    }
}

impl ConfigDocument {
    /// Reads a document in `format`.
    ///
    /// # Errors
    ///
    /// [`ControlError::InvalidConfig`] with one issue saying where the text is malformed, or
    /// which field is unknown, missing or of the wrong type.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::{ConfigDocument, ConfigFormat};
    /// let doc = ConfigDocument::parse("{}", ConfigFormat::Json).unwrap();
    /// assert!(doc.backends.is_empty());
    /// ```
    pub fn parse(text: &str, format: ConfigFormat) -> Result<Self, ControlError> {
        match format {
            ConfigFormat::Json => Self::from_json(text),
            #[cfg(feature = "toml")]
            ConfigFormat::Toml => Self::from_toml(text),
        }
    }

    /// Reads a JSON document. No object may repeat a key (a stage definition written twice is
    /// refused, not decided by order).
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::ConfigDocument;
    /// let e = ConfigDocument::from_json(r#"{"backend": []}"#).unwrap_err();
    /// assert!(e.to_string().contains("unknown field `backend`"), "{e}");
    /// ```
    pub fn from_json(text: &str) -> Result<Self, ControlError> {
        crate::json::check_unique_keys(text.as_bytes()).map_err(syntax)?;
        serde_json::from_str(text).map_err(syntax)
    }

    /// Reads a TOML document (feature `toml`).
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::ConfigDocument;
    /// let doc = ConfigDocument::from_toml(r#"
    /// [[backends]]
    /// name = "users_http"
    /// type = "HTTP"
    /// stages.TEST.url = "http://127.0.0.1:8081"
    /// "#).unwrap();
    /// assert_eq!(doc.backends[0].name, "users_http");
    /// ```
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ControlError> {
        toml::from_str(text).map_err(|e| {
            // the error's own text quotes the whole offending line, however long: say where
            // instead
            let at = e.span().map_or_else(String::new, |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line} column {column}")
            });
            syntax(format_args!(
                "TOML parse error{at}: {}",
                e.message().trim_end()
            ))
        })
    }
}

/// A document that cannot be read, as one issue.
fn syntax(e: impl fmt::Display) -> ControlError {
    ControlError::InvalidConfig {
        issues: vec![ConfigIssue::new("document", "", e.to_string().trim_end())],
    }
}

/// One problem of a configuration document: the object, the field and what is wrong.
///
/// # Examples
///
/// ```
/// use stagegate::control::ConfigIssue;
/// let i = ConfigIssue { object: "backend `users_http`".into(), field: "stages.TEST.url".into(), reason: "must not have a path".into() };
/// assert_eq!(i.to_string(), "backend `users_http`: stages.TEST.url: must not have a path");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigIssue {
    /// The object (`backend `users_http``, `api `shop_api/getUser``, `document`, ...).
    pub object: String,
    /// The field, dotted (`stages.TEST.url`); empty for the object as a whole.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigIssue {
    pub(crate) fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An issue from a model validation error, its field under `prefix`.
    pub(crate) fn invalid(object: &str, prefix: &str, e: &ValidationError) -> Self {
        let field = match e {
            // the name of the object itself
            ValidationError::InvalidName { what, .. }
                if matches!(
                    *what,
                    "backend name"
                        | "group name"
                        | "api name"
                        | "app name"
                        | "vpc access name"
                        | "policy name"
                ) =>
            {
                "name".to_owned()
            }
            ValidationError::InvalidUrl {
                what: "backend url",
                ..
            } => "url".to_owned(),
            ValidationError::InvalidName { what, .. }
            | ValidationError::InvalidId { what, .. }
            | ValidationError::TooLong { what, .. }
            | ValidationError::InvalidUrl { what, .. } => (*what).to_owned(),
            ValidationError::UnknownStage(_) => "stage".to_owned(),
            ValidationError::InvalidPath { .. } => "path".to_owned(),
            ValidationError::InvalidField { field, .. } => field.clone(),
        };
        let field = match (prefix.is_empty(), field.is_empty()) {
            (true, _) => field,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{field}"),
        };
        Self::new(object, field, e.to_string())
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.reason)
        }
    }
}

impl ControlPlane {
    /// The live configuration as a [`ConfigDocument`], by name: APIs as their drafts, published
    /// in the stages where they are live; apps with their key pairs' AppKeys but no secret and no
    /// AppCode (applying the document keeps them). Applying it back changes nothing, except
    /// that an API whose draft was edited since its last publish is published as edited.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::{ConfigDocument, PlanScope};
    /// use stagegate::{ControlPlane, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let doc = ConfigDocument::from_json(r#"{"groups": [{"name": "shop_api"}], "apps": [{"name": "mobile_app"}]}"#).unwrap();
    /// cp.apply_document(&doc, PlanScope::Whole).await.unwrap();
    /// let exported = cp.export_document().await;
    /// let app = cp.apps(None).await.remove(0);
    /// assert!(!serde_json::to_string(&exported).unwrap().contains(app.keys[0].app_secret.expose()));
    /// assert!(cp.plan(&exported, PlanScope::Whole).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn export_document(&self) -> ConfigDocument {
        document_of(&*self.state.lock().await)
    }
}

/// The document describing `state`.
fn document_of(state: &State) -> ConfigDocument {
    use crate::model::{App, BackendService, Group, VpcAccess};
    let vpc_name = |id: &crate::model::VpcAccessId| {
        state
            .vpc_access
            .get(id)
            .map_or_else(|| id.to_string(), |v| v.value.name.clone())
    };
    let group_name = |id: &crate::model::GroupId| {
        state
            .groups
            .get(id)
            .map_or_else(|| id.to_string(), |g| g.value.name.clone())
    };
    let vpc_access = state
        .by_name(|_: &VpcAccess| true)
        .into_iter()
        .map(|v| VpcAccessSpec {
            name: v.name,
            vpc_id: v.vpc_id,
            instance_id: v.instance_id,
            port: v.port,
            address: v.address,
        })
        .collect();
    let backends = state
        .by_name(|_: &BackendService| true)
        .into_iter()
        .map(|b| BackendSpec {
            stages: b
                .stages
                .iter()
                .map(|(stage, def)| {
                    let mut v = serde_json::to_value(def).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        if b.kind != BackendKind::Mixed {
                            o.remove("type");
                        }
                        if let StageDefinition::Vpc(d) = def {
                            o.remove("vpc_access_id");
                            o.insert(
                                "vpc_access".into(),
                                serde_json::Value::String(vpc_name(&d.vpc_access_id)),
                            );
                        }
                    }
                    (stage.clone(), v)
                })
                .collect(),
            name: b.name,
            kind: b.kind,
            description: b.description,
        })
        .collect();
    let groups = state
        .by_name(|_: &Group| true)
        .into_iter()
        .map(|g| NewGroup {
            name: g.name,
            description: g.description,
            base_path: g.base_path,
            domains: g.domains,
            pass_appcode_to_backend: g.pass_appcode_to_backend,
        })
        .collect();
    let mut apis: Vec<ApiSpec> = state
        .apis
        .values()
        .map(|a| {
            let a = a.value.to_definition();
            let backend = state.backends.get(&a.backend.backend_id).map_or_else(
                || a.backend.backend_id.to_string(),
                |b| b.value.name.clone(),
            );
            ApiSpec {
                publish: Stage::BUILT_IN
                    .into_iter()
                    .filter(|s| state.live(&a.id, s).is_some())
                    .collect(),
                group: group_name(&a.group_id),
                name: a.name,
                description: a.description,
                auth: a.auth,
                appcode_auth: a.appcode_auth,
                signature_methods: a.signature_methods,
                force_nonce_check: a.force_nonce_check,
                request: a.request,
                parameters: a.parameters,
                constant_parameters: a.constant_parameters,
                system_parameters: a.system_parameters,
                backend: BindingSpec {
                    name: backend,
                    path: a.backend.path,
                    method: a.backend.method,
                    timeout_ms: a.backend.timeout_ms,
                    content_type: a.backend.content_type,
                    content_type_value: a.backend.content_type_value,
                    oss: a.backend.oss,
                },
                response: a.response,
                policies: bound_policies(state, &a.id),
            }
        })
        .collect();
    apis.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    let apps = state
        .by_name(|_: &App| true)
        .into_iter()
        .map(|app| {
            let mut grants: Vec<GrantSpec> = Vec::new();
            let mut mine: Vec<_> = state
                .authorizations
                .values()
                .filter(|a| a.value.app_id == app.id)
                .filter_map(|a| {
                    let api = state.apis.get(&a.value.api_id)?;
                    Some((
                        group_name(&api.value.group_id),
                        api.value.name.clone(),
                        a.value.expires_at,
                        a.value.stage.clone(),
                    ))
                })
                .collect();
            mine.sort();
            for (group, api, expires_at, stage) in mine {
                match grants.last_mut() {
                    Some(g) if g.group == group && g.api == api && g.expires_at == expires_at => {
                        g.stages.push(stage);
                    }
                    _ => grants.push(GrantSpec {
                        group,
                        api,
                        stages: vec![stage],
                        expires_at,
                    }),
                }
            }
            AppSpec {
                name: app.name,
                description: app.description,
                disabled: app.disabled,
                keys: Some(
                    app.keys
                        .into_iter()
                        .map(|k| KeySpec {
                            app_key: k.app_key,
                            app_secret: None,
                        })
                        .collect(),
                ),
                codes: None,
                grants,
            }
        })
        .collect();
    ConfigDocument {
        vpc_access,
        backends,
        groups,
        apis,
        apps,
        policies: policies_of(state),
        ..ConfigDocument::default()
    }
}

/// The policies bound to `api`, by name per stage, sorted.
fn bound_policies(state: &State, api: &crate::model::ApiId) -> BTreeMap<Stage, Vec<String>> {
    let mut out: BTreeMap<Stage, Vec<String>> = BTreeMap::new();
    for (a, stage, policy) in state.bindings.keys() {
        if a == api {
            let name = state
                .policies
                .get(policy)
                .map_or_else(|| policy.to_string(), |p| p.value.name.clone());
            out.entry(stage.clone()).or_default().push(name);
        }
    }
    for names in out.values_mut() {
        names.sort();
    }
    out
}

/// Every policy of `state`, by kind and name, apps by name, without secrets.
fn policies_of(state: &State) -> Policies {
    use crate::policy::{Policy, PolicySpec};
    let app_name = |id: &crate::model::AppId| {
        state
            .apps
            .get(id)
            .map_or_else(|| id.to_string(), |a| a.value.name.clone())
    };
    let mut out = Policies::default();
    for p in state.by_name(|_: &Policy| true) {
        match p.spec {
            PolicySpec::Throttling(t) => out.throttling.push(ThrottlingSpec {
                name: p.name,
                unit: t.unit.as_str().to_owned(),
                api_default: t.api_default,
                app_default: t.app_default,
                special_apps: t
                    .special_apps
                    .iter()
                    .map(|s| SpecialAppSpec {
                        app: app_name(&s.app_id),
                        limit: s.limit,
                    })
                    .collect(),
            }),
            PolicySpec::IpControl(c) => out.ip_control.push(IpControlSpec {
                name: p.name,
                mode: c.mode,
                rules: c
                    .rules
                    .iter()
                    .map(|r| IpRuleSpec {
                        cidr: r.cidr.to_string(),
                        app: r.app_id.as_ref().map(&app_name),
                    })
                    .collect(),
            }),
            PolicySpec::Cors(c) => out.cors.push(CorsSpec {
                name: p.name,
                allow_origins: c.allow_origins,
                allow_methods: c.allow_methods,
                allow_headers: c.allow_headers,
                expose_headers: c.expose_headers,
                max_age_s: c.max_age_s,
                allow_credentials: c.allow_credentials,
            }),
            PolicySpec::BackendSignature(b) => out.backend_signature.push(BackendSignatureSpec {
                name: p.name,
                key: b.key,
                secret: None,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_is_the_current_format() {
        let doc = ConfigDocument::from_json("{}").unwrap();
        assert_eq!(doc, ConfigDocument::default());
    }

    #[test]
    fn malformed_and_misspelt_documents_name_where() {
        for (text, needle) in [
            (
                r#"{"groups": [{"name": "g1", "nmae": "x"}]}"#,
                "unknown field `nmae`",
            ),
            (r#"{"backends": [{"name": "b"}]}"#, "missing field `type`"),
            (r#"{"apps": 3}"#, "invalid type"),
            ("{\"groups\": [", "EOF"),
            (
                r#"{"backends": [{"name": "b", "type": "HTTP", "stages": {"TEST": {"url": "a", "url": "b"}}}]}"#,
                "duplicate key `url`",
            ),
            (r#"{"policies": {"cors": {}}}"#, "invalid type"),
            (
                r#"{"policies": {"throttle": []}}"#,
                "unknown field `throttle`",
            ),
            (
                r#"{"policies": {"cors": [{"name": "webApp", "allow_origins": [], "origins": []}]}}"#,
                "unknown field `origins`",
            ),
        ] {
            let e = ConfigDocument::from_json(text).unwrap_err();
            let ControlError::InvalidConfig { issues } = &e else {
                panic!("{e:?}")
            };
            assert_eq!(issues.len(), 1, "{issues:?}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn toml_reads_like_json() {
        let toml = r#"
[[groups]]
name = "shop_api"
domains = ["api.example.com"]

[[apps]]
name = "mobile_app"
grants = [{ group = "shop_api", api = "getUser", stages = ["TEST"] }]
"#;
        let json = r#"{"groups": [{"name": "shop_api", "domains": ["api.example.com"]}],
            "apps": [{"name": "mobile_app", "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST"]}]}]}"#;
        assert_eq!(
            ConfigDocument::from_toml(toml).unwrap(),
            ConfigDocument::from_json(json).unwrap()
        );
        let e = ConfigDocument::from_toml("[[groups]]\nnmae = 1\n").unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
    }

    #[test]
    fn policies_and_bindings_read_by_name_and_default_like_the_admin_api() {
        let doc = ConfigDocument::from_json(
            r#"{"policies": {"cors": [{"name": "webApp", "allow_origins": ["*"]}],
                "backend_signature": [{"name": "toBackend", "key": "DemoKey1"}]},
               "apis": [{"name": "getUser", "group": "shop_api",
                         "request": {"method": "GET", "path": "/users"},
                         "backend": {"name": "users_http"},
                         "policies": {"RELEASE": ["webApp", "toBackend"]}}]}"#,
        )
        .unwrap();
        let cors = &doc.policies.cors[0];
        let defaults = crate::policy::Cors::new(["*"]);
        assert_eq!(cors.allow_methods, defaults.allow_methods);
        assert_eq!(cors.allow_headers, defaults.allow_headers);
        assert_eq!(cors.expose_headers, defaults.expose_headers);
        assert_eq!(cors.max_age_s, defaults.max_age_s);
        assert!(doc.policies.backend_signature[0].secret.is_none());
        assert_eq!(
            doc.apis[0].policies[&Stage::RELEASE],
            ["webApp", "toBackend"]
        );
        // written back: no empty lists, no absent secret
        let text = serde_json::to_string(&doc.policies).unwrap();
        assert!(
            !text.contains("throttling") && !text.contains("secret"),
            "{text}"
        );
        let e = ConfigDocument::from_json(
            r#"{"apis": [{"name": "a", "group": "g", "request": {"method": "GET", "path": "/a"},
                "backend": {"name": "b"}, "policies": {"NOWHERE": []}}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("NOWHERE"), "{e}");
    }

    #[test]
    fn validation_errors_name_their_field_under_the_prefix() {
        let e = ValidationError::field("url", "must not have a path");
        let i = ConfigIssue::invalid("backend `b`", "stages.TEST", &e);
        assert_eq!(i.field, "stages.TEST.url");
        let i = ConfigIssue::invalid("group `g`", "", &e);
        assert_eq!(i.field, "url");
    }
}
