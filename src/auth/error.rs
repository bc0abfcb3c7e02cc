//! Authentication failures and their gateway error codes ("Error codes for API Gateway
//! instances of the VPC type" in Alibaba Cloud's documentation).

use std::borrow::Cow;

use http::StatusCode;

use crate::error_code::{ErrorCode, WireError};

/// Why the nonce store could not answer.
///
/// # Examples
///
/// ```
/// use stagegate::auth::ReplayError;
/// let e = ReplayError::Full { capacity: 10 };
/// assert_eq!(e.to_string(), "nonce store is full (10 entries)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The store holds its maximum number of unexpired nonces and refuses new ones
    /// rather than forgetting one early.
    #[error("nonce store is full ({capacity} entries)")]
    Full {
        /// The configured maximum.
        capacity: usize,
    },
    /// The app already holds its share of the store's unexpired nonces (see
    /// [`MemoryReplayGuard`](crate::auth::MemoryReplayGuard)); other apps are still served.
    #[error("the app holds its share of the nonce store ({share} entries)")]
    AppShareExceeded {
        /// The per-app share.
        share: usize,
    },
    /// A shared store could not be reached, answered with an error, or did not answer within
    /// its timeout. The gateway answers `X503NS` (fail closed: the request is never accepted
    /// unchecked).
    #[error("nonce store unavailable: {0}")]
    Unavailable(String),
    /// The store refuses the input before storing anything: an empty, oversized or non-ASCII
    /// nonce or AppKey (a shared store never receives such bytes). The gateway's verifier
    /// refuses these earlier; a store checks again for callers that skip it. The gateway
    /// answers `I400HD` naming the header.
    #[error("invalid {name}: {reason}")]
    InvalidInput {
        /// The header the input came from (`X-Ca-Nonce` or `X-Ca-Key`).
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a request failed data-plane authentication.
///
/// Each failure maps to a six-character `X-Ca-Error-Code` ([`AuthError::code`]), whose
/// three digits are the HTTP status ([`AuthError::status`]), and to the
/// `X-Ca-Error-Message` text ([`AuthError::wire_message`]). No variant ever carries a
/// secret.
///
/// Codes marked *chosen* are this crate's choice where the public Alibaba tables give no
/// code (none is published for these failures); the others are documented Alibaba codes.
///
/// | Variant | Code | Status |
/// |---|---|---|
/// | `MissingCredentials` | `A400MA` | 400 |
/// | `InvalidAppKey` | `A400IK` | 400 |
/// | `MissingHeader` (e.g. `X-Ca-Signature`, forced `X-Ca-Nonce`) | `I400MH` | 400 |
/// | `InvalidHeader` (oversized or malformed signing header, or a signed header named in `Connection`) | `I400HD` | 400 |
/// | `UnsignedHeader` (`X-Ca-Nonce`, `X-Ca-Timestamp`, or a required `X-Ca-Stage`, sent but not signed) | `A400UH` (chosen) | 400 |
/// | `DuplicateHeader` (an `X-Ca-*` header sent twice) | `A400DH` (chosen) | 400 |
/// | `ConflictingParameter` (a key in both query and form, with other values) | `A400PC` (chosen) | 400 |
/// | `SignatureMethodNotAllowed` | `A400SM` (chosen) | 400 |
/// | `InvalidTimestamp` | `A400IT` (chosen) | 400 |
/// | `TimestampExpired` | `A400TE` (chosen) | 400 |
/// | `NonceUsed` | `A400NU` (chosen) | 400 |
/// | `InvalidContentMd5` | `A400CM` (chosen) | 400 |
/// | `InvalidSignature` | `A403IS` | 403 |
/// | `InvalidAppCode` | `A401AC` | 401 |
/// | `AppCodeDisabled` | `A400AC` | 400 |
/// | `Unauthorized` | `A403NA` (chosen; a third-party list names `I403AA`) | 403 |
/// | `GrantExpired` | `A403EP` | 403 |
/// | `AppDisabled` | `A403AD` (chosen) | 403 |
/// | `ReplayStore` (store full, app share used) | `X503BZ` | 503 |
/// | `ReplayStore` (shared store unreachable or too slow) | `X503NS` (chosen) | 503 |
/// | `ReplayStore` (input refused by the store) | `I400HD` | 400 |
///
/// # Examples
///
/// ```
/// use stagegate::auth::AuthError;
/// use stagegate::ErrorCode;
/// let e = AuthError::InvalidSignature { string_to_sign: "GET\n\n\n\n\n/p".into() };
/// assert_eq!(e.code(), ErrorCode::A403IS.as_str());
/// assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
/// assert_eq!(e.wire_message(), "Invalid Signature, Server StringToSign:`GET#####/p`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Neither `X-Ca-Key` nor an AppCode was presented.
    #[error("missing credentials: no X-Ca-Key header or AppCode")]
    MissingCredentials,
    /// `X-Ca-Key` names no known app key.
    #[error("invalid app key")]
    InvalidAppKey,
    /// A required header is absent (e.g. `X-Ca-Signature`, or `X-Ca-Nonce` when forced).
    #[error("missing header {name}")]
    MissingHeader {
        /// The header's canonical name.
        name: &'static str,
    },
    /// A signing header is malformed or too large.
    #[error("invalid header {name}: {reason}")]
    InvalidHeader {
        /// The header's canonical name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header that must be signed was sent but is not listed in `X-Ca-Signature-Headers`:
    /// `X-Ca-Nonce` and `X-Ca-Timestamp` (a replay could change them), and `X-Ca-Stage`
    /// where the authenticator requires it signed.
    #[error("header {name} is sent but not signed")]
    UnsignedHeader {
        /// The header's canonical name.
        name: &'static str,
    },
    /// An `X-Ca-*` header was sent more than once: the signature covers only the first,
    /// and the backend would receive both.
    #[error("header {name} is repeated")]
    DuplicateHeader {
        /// The header's name as received (lower case, at most 64 characters).
        name: String,
    },
    /// A parameter is in both the query and the urlencoded form body, with different
    /// values: the signature covers the form's, the backend could read the query's.
    #[error("parameter {name} is in both the query and the form with different values")]
    ConflictingParameter {
        /// The parameter's (decoded) name, at most 64 characters.
        name: String,
    },
    /// `X-Ca-Signature-Method` is unknown or not allowed for this API.
    #[error("signature method not allowed: {method}")]
    SignatureMethodNotAllowed {
        /// The method the client named (truncated to 32 characters).
        method: String,
    },
    /// `X-Ca-Timestamp` is not a number of milliseconds.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// `X-Ca-Timestamp` is further from the gateway's clock than allowed.
    #[error("timestamp expired")]
    TimestampExpired,
    /// `X-Ca-Nonce` was already used by this app within the replay window.
    #[error("nonce used")]
    NonceUsed,
    /// `Content-MD5` was sent with an empty body or does not match the body.
    #[error("invalid content-md5")]
    InvalidContentMd5,
    /// The signature does not match the server's string-to-sign.
    #[error("invalid signature")]
    InvalidSignature {
        /// The string the server signed (request data only, never the secret).
        string_to_sign: String,
    },
    /// The AppCode is unknown or does not match.
    #[error("invalid appcode")]
    InvalidAppCode,
    /// An AppCode was presented to an API whose AppCode mode is `DISABLE`.
    #[error("appcode authentication is disabled for this api")]
    AppCodeDisabled,
    /// The app holds no grant for this API and stage.
    #[error("unauthorized: the app has no grant for this api and stage")]
    Unauthorized,
    /// The app's grant for this API and stage has expired.
    #[error("app authorization expired")]
    GrantExpired,
    /// The app is disabled.
    #[error("app disabled")]
    AppDisabled,
    /// The nonce store could not answer; the request is refused rather than risk a replay.
    #[error("replay protection unavailable: {0}")]
    ReplayStore(#[from] ReplayError),
}

impl WireError for AuthError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::MissingCredentials => ErrorCode::A400MA,
            Self::InvalidAppKey => ErrorCode::A400IK,
            Self::MissingHeader { .. } => ErrorCode::I400MH,
            Self::InvalidHeader { .. } => ErrorCode::I400HD,
            Self::UnsignedHeader { .. } => ErrorCode::A400UH,
            Self::DuplicateHeader { .. } => ErrorCode::A400DH,
            Self::ConflictingParameter { .. } => ErrorCode::A400PC,
            Self::SignatureMethodNotAllowed { .. } => ErrorCode::A400SM,
            Self::InvalidTimestamp => ErrorCode::A400IT,
            Self::TimestampExpired => ErrorCode::A400TE,
            Self::NonceUsed => ErrorCode::A400NU,
            Self::InvalidContentMd5 => ErrorCode::A400CM,
            Self::InvalidSignature { .. } => ErrorCode::A403IS,
            Self::InvalidAppCode => ErrorCode::A401AC,
            Self::AppCodeDisabled => ErrorCode::A400AC,
            Self::Unauthorized => ErrorCode::A403NA,
            Self::GrantExpired => ErrorCode::A403EP,
            Self::AppDisabled => ErrorCode::A403AD,
            Self::ReplayStore(ReplayError::Unavailable(_)) => ErrorCode::X503NS,
            Self::ReplayStore(ReplayError::InvalidInput { .. }) => ErrorCode::I400HD,
            Self::ReplayStore(ReplayError::Full { .. } | ReplayError::AppShareExceeded { .. }) => {
                ErrorCode::X503BZ
            }
        }
    }

    /// Header and parameter names the client sent, the signature method it named, and the
    /// server's StringToSign (every `\n` shown as `#`); nothing else.
    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::MissingHeader { name } | Self::UnsignedHeader { name } => {
                Some(Cow::Borrowed(name))
            }
            Self::InvalidHeader { name, reason }
            | Self::ReplayStore(ReplayError::InvalidInput { name, reason }) => {
                Some(Cow::Owned(format!("`{name}` {reason}")))
            }
            Self::DuplicateHeader { name } | Self::ConflictingParameter { name } => {
                Some(Cow::Borrowed(name))
            }
            Self::SignatureMethodNotAllowed { method } => Some(Cow::Borrowed(method)),
            Self::InvalidSignature { string_to_sign } => {
                Some(Cow::Owned(string_to_sign.replace('\n', "#")))
            }
            Self::MissingCredentials
            | Self::InvalidAppKey
            | Self::InvalidTimestamp
            | Self::TimestampExpired
            | Self::NonceUsed
            | Self::InvalidContentMd5
            | Self::InvalidAppCode
            | Self::AppCodeDisabled
            | Self::Unauthorized
            | Self::GrantExpired
            | Self::AppDisabled
            | Self::ReplayStore(_) => None,
        }
    }
}

impl AuthError {
    /// The six-character `X-Ca-Error-Code` (class letter, HTTP status, reason).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ErrorCode;
    /// use stagegate::auth::AuthError;
    /// assert_eq!(AuthError::InvalidAppKey.code(), ErrorCode::A400IK.as_str());
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.wire_code().as_str()
    }

    /// The HTTP status: the three digits of [`code`](Self::code).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::StatusCode;
    /// assert_eq!(stagegate::auth::AuthError::InvalidAppCode.status(), StatusCode::UNAUTHORIZED);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.wire_code().status()
    }

    /// The `X-Ca-Error-Message` text: the classic gateway wording where one exists, and
    /// for `A403IS` the exact ``Invalid Signature, Server StringToSign:`…` `` template with
    /// every `\n` shown as `#`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stagegate::auth::AuthError::NonceUsed.wire_message(), "Nonce Used");
    /// ```
    #[must_use]
    pub fn wire_message(&self) -> String {
        self.wire_text().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_matches_code_digits() {
        let all = [
            AuthError::MissingCredentials,
            AuthError::InvalidAppKey,
            AuthError::MissingHeader {
                name: "X-Ca-Signature",
            },
            AuthError::InvalidHeader {
                name: "X-Ca-Nonce",
                reason: "too long",
            },
            AuthError::SignatureMethodNotAllowed {
                method: "HmacSHA1".into(),
            },
            AuthError::UnsignedHeader { name: "X-Ca-Nonce" },
            AuthError::DuplicateHeader {
                name: "x-ca-stage".into(),
            },
            AuthError::ConflictingParameter { name: "a".into() },
            AuthError::InvalidTimestamp,
            AuthError::TimestampExpired,
            AuthError::NonceUsed,
            AuthError::InvalidContentMd5,
            AuthError::InvalidSignature {
                string_to_sign: String::new(),
            },
            AuthError::InvalidAppCode,
            AuthError::AppCodeDisabled,
            AuthError::Unauthorized,
            AuthError::GrantExpired,
            AuthError::AppDisabled,
            AuthError::ReplayStore(ReplayError::Full { capacity: 1 }),
            AuthError::ReplayStore(ReplayError::Unavailable("down".into())),
            AuthError::ReplayStore(ReplayError::InvalidInput {
                name: "X-Ca-Nonce",
                reason: "is too long",
            }),
        ];
        for e in all {
            let code = e.code();
            assert_eq!(code.len(), 6);
            assert_eq!(e.status().as_str(), &code[1..4], "{e:?}");
            assert!(!e.wire_message().contains('\n'));
        }
    }
}
