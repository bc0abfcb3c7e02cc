//! How an API authenticates its callers: auth type, AppCode mode, signature methods.

use serde::{Deserialize, Serialize};

/// Who may call an API.
///
/// # Examples
///
/// ```
/// use stagegate::model::AuthType;
/// let auth: AuthType = serde_json::from_str("\"APP\"").unwrap();
/// assert_eq!(auth, AuthType::App);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthType {
    /// Callers must present an authorized app's credentials (signature or AppCode).
    #[default]
    App,
    /// Anyone may call; no credential is checked.
    Anonymous,
}

/// Whether and where an API accepts an AppCode (simple authentication).
///
/// # Examples
///
/// ```
/// use stagegate::model::AppCodeMode;
/// assert!(AppCodeMode::HeaderQuery.allows_query());
/// assert!(!AppCodeMode::Header.allows_query());
/// assert!(!AppCodeMode::Disable.allows_header());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppCodeMode {
    /// AppCodes are refused: signatures only.
    #[default]
    Disable,
    /// `Authorization: APPCODE <code>` is accepted.
    Header,
    /// The header form, and the `AppCode` query parameter.
    HeaderQuery,
}

impl AppCodeMode {
    /// Whether the `Authorization: APPCODE` header is accepted.
    #[must_use]
    pub fn allows_header(self) -> bool {
        !matches!(self, Self::Disable)
    }

    /// Whether the `AppCode` query parameter is accepted.
    #[must_use]
    pub fn allows_query(self) -> bool {
        matches!(self, Self::HeaderQuery)
    }
}

/// An HMAC algorithm a caller may sign with (`X-Ca-Signature-Method`).
///
/// # Examples
///
/// ```
/// use stagegate::model::SignatureMethod;
/// assert_eq!(SignatureMethod::parse("HmacSHA1"), Some(SignatureMethod::HmacSha1));
/// assert_eq!(SignatureMethod::default().as_str(), "HmacSHA256");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum SignatureMethod {
    /// HMAC-SHA256, the default.
    #[default]
    #[serde(rename = "HmacSHA256")]
    HmacSha256,
    /// HMAC-SHA1, accepted only where the API allows it.
    #[serde(rename = "HmacSHA1")]
    HmacSha1,
}

impl SignatureMethod {
    /// The wire name (`HmacSHA256` or `HmacSHA1`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "HmacSHA256",
            Self::HmacSha1 => "HmacSHA1",
        }
    }

    /// Parses a wire name exactly as clients send it.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HmacSHA256" => Some(Self::HmacSha256),
            "HmacSHA1" => Some(Self::HmacSha1),
            _ => None,
        }
    }
}
