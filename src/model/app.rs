//! Apps (caller identities), their credentials, authorizations and VPC access authorizations.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::id::{random_digits, truncate};
use super::validate::{validate_description, validate_host, validate_len, validate_name_len};
use super::{ApiId, AppId, Secret, Stage, ValidationError, VpcAccessId};

/// An AppKey/AppSecret pair.
///
/// # Examples
///
/// ```
/// use stagegate::model::AppKeyPair;
/// let k = AppKeyPair::generate();
/// assert_eq!(k.app_key.len(), 9);
/// assert!(!format!("{k:?}").contains(k.app_secret.expose()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppKeyPair {
    /// The public key (`X-Ca-Key`).
    pub app_key: String,
    /// The HMAC secret.
    pub app_secret: Secret,
}

impl AppKeyPair {
    /// A fresh pair: a 9-digit AppKey and a 32-hex secret.
    #[must_use]
    pub fn generate() -> Self {
        Self {
            app_key: random_digits(9),
            app_secret: Secret::generate(),
        }
    }

    /// Checks the formats: keys are 1–64 of letters, digits, `-`, `_`; secrets 8–128 printable ASCII.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable (the secret is never quoted).
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_app_key(&self.app_key)?;
        let s = self.app_secret.expose();
        if s.len() < 8 || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::field(
                "app_secret",
                "must be 8 to 128 printable ASCII characters",
            ));
        }
        Ok(())
    }
}

pub(crate) fn validate_app_key(k: &str) -> Result<(), ValidationError> {
    if k.is_empty()
        || k.len() > 64
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ValidationError::field(
            "app_key",
            format!(
                "`{}` must be 1 to 64 of letters, digits, `-`, `_`",
                truncate(k)
            ),
        ));
    }
    Ok(())
}

/// Checks an AppCode: 16–64 of ASCII letters and digits.
pub(crate) fn validate_app_code(c: &str) -> Result<(), ValidationError> {
    if c.len() < 16 || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ValidationError::field(
            "app_code",
            "must be 16 to 64 ASCII letters and digits",
        ));
    }
    Ok(())
}

/// A caller identity with signing keys and AppCodes.
///
/// # Examples
///
/// ```
/// use stagegate::model::App;
/// let app = App::new("mobile_app").unwrap();
/// assert_eq!(app.keys.len(), 1);
/// assert_eq!(app.codes.len(), 1);
/// assert_eq!(app.codes[0].expose().len(), 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Identifier.
    pub id: AppId,
    /// Name, 4–26 characters.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled app cannot call anything.
    #[serde(default)]
    pub disabled: bool,
    /// Signing key pairs.
    #[serde(default)]
    pub keys: Vec<AppKeyPair>,
    /// AppCodes.
    #[serde(default)]
    pub codes: Vec<Secret>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl App {
    /// A new enabled app with a fresh numeric id, one key pair and one AppCode.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidName`] for a bad name.
    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let app = Self {
            id: AppId::generate_numeric(),
            name: name.into(),
            description: None,
            disabled: false,
            keys: vec![AppKeyPair::generate()],
            codes: vec![Secret::generate()],
            created_at: Timestamp::now(),
        };
        app.validate()?;
        Ok(app)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name_len("app name", &self.name, 4, 26)?;
        validate_description(self.description.as_deref())?;
        if self.keys.len() > 16 || self.codes.len() > 16 {
            return Err(ValidationError::field(
                "app",
                "at most 16 key pairs and 16 AppCodes",
            ));
        }
        for k in &self.keys {
            k.validate()?;
        }
        for c in &self.codes {
            validate_app_code(c.expose())?;
        }
        Ok(())
    }
}

/// A grant: `app` may call `api` in `stage`, until `expires_at` if set.
///
/// # Examples
///
/// ```
/// use stagegate::model::{ApiId, AppId, Authorization, Stage};
/// let a = Authorization { app_id: AppId::generate_numeric(), api_id: ApiId::generate(), stage: Stage::TEST, expires_at: None, created_at: jiff::Timestamp::now() };
/// assert!(a.is_valid_at(jiff::Timestamp::now()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The app.
    pub app_id: AppId,
    /// The API.
    pub api_id: ApiId,
    /// The stage.
    pub stage: Stage,
    /// When the grant ends; none means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it was granted.
    pub created_at: Timestamp,
}

impl Authorization {
    /// Whether the grant is in force at `now`.
    #[must_use]
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

/// A VPC access authorization: lets the gateway reach `instance_id:port` in `vpc_id`.
///
/// # Examples
///
/// ```
/// use stagegate::model::VpcAccess;
/// let v = VpcAccess::new("orders_vpc", "vpc-1", "i-1", 8080, Some("127.0.0.1:8080".into())).unwrap();
/// assert_eq!(v.port, 8080);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcAccess {
    /// Identifier.
    pub id: VpcAccessId,
    /// Name, unique.
    pub name: String,
    /// The VPC.
    pub vpc_id: String,
    /// The instance (ECS, SLB, ...).
    pub instance_id: String,
    /// The port.
    pub port: u16,
    /// The `host:port` the instance resolves to on this gateway's network; none leaves it to
    /// the deployment's resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl VpcAccess {
    /// A new authorization with a fresh id.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn new(
        name: impl Into<String>,
        vpc_id: impl Into<String>,
        instance_id: impl Into<String>,
        port: u16,
        address: Option<String>,
    ) -> Result<Self, ValidationError> {
        let v = Self {
            id: VpcAccessId::generate(),
            name: name.into(),
            vpc_id: vpc_id.into(),
            instance_id: instance_id.into(),
            port,
            address,
            created_at: Timestamp::now(),
        };
        v.validate()?;
        Ok(v)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field that is not acceptable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        super::validate_name("vpc access name", &self.name)?;
        for (what, v) in [("vpc_id", &self.vpc_id), ("instance_id", &self.instance_id)] {
            if v.is_empty() {
                return Err(ValidationError::field(what, "must not be empty"));
            }
            validate_len(what, v, 128)?;
        }
        if self.port == 0 {
            return Err(ValidationError::field("port", "must be 1 to 65535"));
        }
        if let Some(a) = &self.address {
            validate_host("address", a)?;
        }
        Ok(())
    }
}
