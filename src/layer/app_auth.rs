//! [`AppAuthenticator`]: the gateway's own APP authentication (AppCode or HMAC signature,
//! then the app's grant for the API in the stage).

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

use super::GatewayError;
use super::auth::{AuthMethod, AuthRequest, Authenticator, Caller};
use crate::auth::{
    AuthError, DEFAULT_MAX_SKEW_MS, MemoryReplayGuard, ReplayGuard, SignatureMethods,
    SignaturePolicy, appcode_from_request, check_signature, is_form,
};
use crate::routing::{GrantStatus, LiveRoute};
use crate::store::BoxFuture;

/// Parsed once: a lookup by a `&str` re-validates and lower-cases the name every time.
static X_CA_SIGNATURE: HeaderName = HeaderName::from_static("x-ca-signature");
static CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        Self::new(e.code(), e.status(), e.wire_message())
    }
}

/// AppCode and signature authentication, exactly as the original gateway's clients expect.
///
/// Credentials and grants come from the live snapshot, so a rotated secret, a new AppCode or a
/// revoked grant applies to the next request. Nonces go to a [`ReplayGuard`]
/// ([`MemoryReplayGuard`] by default; plug a shared one for several gateway processes).
///
/// # Examples
///
/// ```
/// use stagegate::{AppAuthenticator, GatewayLayer, MemoryReplayGuard, SnapshotHandle};
/// let auth = AppAuthenticator::new(MemoryReplayGuard::new());
/// let layer = GatewayLayer::new(SnapshotHandle::default()).authenticator(auth);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct AppAuthenticator {
    replay: Arc<dyn ReplayGuard>,
    max_skew_ms: u64,
}

impl fmt::Debug for AppAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppAuthenticator")
            .field("max_skew_ms", &self.max_skew_ms)
            .finish_non_exhaustive()
    }
}

impl Default for AppAuthenticator {
    fn default() -> Self {
        Self::new(MemoryReplayGuard::new())
    }
}

impl AppAuthenticator {
    /// An authenticator remembering nonces in `replay`.
    #[must_use]
    pub fn new(replay: impl ReplayGuard) -> Self {
        Self {
            replay: Arc::new(replay),
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
        }
    }

    /// How far `X-Ca-Timestamp` may be from the gateway's clock (default 15 minutes).
    #[must_use]
    pub fn max_skew_ms(mut self, ms: u64) -> Self {
        self.max_skew_ms = ms;
        self
    }

    async fn run(&self, req: AuthRequest<'_>) -> Result<Caller, GatewayError> {
        let api = req.route.api();
        let creds = req.snapshot.credentials();
        let (app_id, method) = match appcode_from_request(req.parts, api.appcode_auth)? {
            Some(code) => {
                let app = creds.by_code(&code).ok_or(AuthError::InvalidAppCode)?;
                (app.clone(), AuthMethod::AppCode)
            }
            None => {
                let mut allowed = SignatureMethods::NONE;
                for m in &api.signature_methods {
                    allowed = allowed.with(*m);
                }
                let policy = SignaturePolicy::new()
                    .with_allowed(allowed)
                    .with_force_nonce(api.force_nonce_check)
                    .with_max_skew_ms(self.max_skew_ms);
                let now_ms = u64::try_from(req.now.as_millisecond()).unwrap_or(0);
                let checked = check_signature(
                    req.parts,
                    req.body,
                    |key| creds.by_key(key).map(|(id, secret)| (id.clone(), secret)),
                    &policy,
                    now_ms,
                )?;
                let verified = checked.consume_nonce(self.replay.as_ref()).await?;
                (verified.app, AuthMethod::Signature)
            }
        };
        if creds.is_disabled(&app_id) {
            return Err(AuthError::AppDisabled.into());
        }
        match req
            .snapshot
            .grants()
            .check(&app_id, req.route.api_id(), &req.route.stage, req.now)
        {
            GrantStatus::Granted => Ok(Caller::app(app_id, method)),
            GrantStatus::Expired => Err(AuthError::GrantExpired.into()),
            GrantStatus::Missing => Err(AuthError::Unauthorized.into()),
        }
    }
}

impl Authenticator for AppAuthenticator {
    fn needs_body(&self, parts: &Parts, _route: &LiveRoute) -> bool {
        // Signed form parameters and Content-MD5 need the body; AppCode calls never do.
        parts.headers.contains_key(&X_CA_SIGNATURE)
            && (is_form(&parts.headers) || parts.headers.contains_key(&CONTENT_MD5))
    }

    fn authenticate<'a>(
        &'a self,
        req: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Caller, GatewayError>> {
        Box::pin(self.run(req))
    }
}
