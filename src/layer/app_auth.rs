//! [`AppAuthenticator`]: the gateway's own APP authentication (AppCode or HMAC signature,
//! then the app's grant for the API in the stage).

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

use super::GatewayError;
use super::auth::{AuthRequest, Authenticator};
use crate::auth::{
    AuthError, DEFAULT_MAX_SKEW, MemoryReplayGuard, ReplayGuard, SignatureMethods, SignaturePolicy,
    appcode_from_request, check_signature, is_form,
};
use crate::base::BoxFuture;
use crate::base::{AuthMethod, Caller};
use crate::model::AppId;
use crate::routing::{GrantStatus, LiveRoute};

/// Parsed once: a lookup by a `&str` re-validates and lower-cases the name every time.
static X_CA_SIGNATURE: HeaderName = HeaderName::from_static("x-ca-signature");
static CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

/// AppCode and signature authentication, exactly as the original gateway's clients expect.
///
/// Credentials and grants come from the live snapshot, so a rotated secret, a new AppCode or a
/// revoked grant applies to the next request. Nonces go to a [`ReplayGuard`]
/// ([`MemoryReplayGuard`] by default; plug a shared one for several gateway processes).
///
/// # Examples
///
/// ```
/// use stagegate::GatewayLayer;
/// use stagegate::auth::MemoryReplayGuard;
/// use stagegate::layer::AppAuthenticator;
/// use stagegate::routing::SnapshotHandle;
/// let auth = AppAuthenticator::new(MemoryReplayGuard::new());
/// let layer = GatewayLayer::new(SnapshotHandle::default()).with_authenticator(auth);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct AppAuthenticator {
    replay: Arc<dyn ReplayGuard>,
    max_skew: std::time::Duration,
    signed_stage: bool,
}

impl fmt::Debug for AppAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppAuthenticator")
            .field("max_skew", &self.max_skew)
            .field("require_signed_stage", &self.signed_stage)
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
            max_skew: DEFAULT_MAX_SKEW,
            signed_stage: false,
        }
    }

    /// Requires that a signed request's `X-Ca-Stage`, when sent, is listed in
    /// `X-Ca-Signature-Headers`; otherwise it is refused with `A400UH` (default: off).
    ///
    /// The trade-off: unsigned, a captured request can be re-sent to another stage (a TEST
    /// call pointed at RELEASE, where the app holds a grant too). Nonces stop that replay
    /// where they are checked (`force_nonce_check`). But Alibaba's demo client
    /// (`aliyun-api-gateway-sign`) cannot send, let alone sign, `X-Ca-Stage`, and other
    /// clients sign it only when the caller adds it: turning this on refuses their
    /// stage-selecting calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::MemoryReplayGuard;
    /// use stagegate::layer::AppAuthenticator;
    /// let auth = AppAuthenticator::new(MemoryReplayGuard::new()).with_signed_stage(true);
    /// # let _ = auth;
    /// ```
    #[must_use]
    pub fn with_signed_stage(mut self, required: bool) -> Self {
        self.signed_stage = required;
        self
    }

    /// How far `X-Ca-Timestamp` may be from the gateway's clock (default 15 minutes).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stagegate::auth::MemoryReplayGuard;
    /// use stagegate::layer::AppAuthenticator;
    /// let auth = AppAuthenticator::new(MemoryReplayGuard::new()).with_max_skew(Duration::from_secs(300));
    /// # let _ = auth;
    /// ```
    #[must_use]
    pub fn with_max_skew(mut self, max_skew: std::time::Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// The credential, then the app and its grant, and only then the nonce: a nonce is
    /// recorded only for a request that would be served, so an app that is disabled or
    /// holds no grant cannot fill the replay guard for everyone.
    async fn run(&self, req: AuthRequest<'_>) -> Result<Caller, GatewayError> {
        let api = req.route.api();
        let creds = req.snapshot.credentials();
        match appcode_from_request(req.parts, api.appcode_auth)? {
            Some(code) => {
                let app = creds.by_code(&code).ok_or(AuthError::InvalidAppCode)?;
                Self::check_app(&req, app)?;
                Ok(Caller::app(app.clone(), AuthMethod::AppCode))
            }
            None => {
                let mut allowed = SignatureMethods::NONE;
                for m in &api.signature_methods {
                    allowed = allowed.with(*m);
                }
                let policy = SignaturePolicy::new()
                    .with_allowed(allowed)
                    .with_force_nonce(api.force_nonce_check)
                    .with_max_skew(self.max_skew)
                    .with_signed_stage(self.signed_stage)
                    // The backend must not read an unsigned query value of a signed form field.
                    .with_conflicting_params_refused(true);
                let now_ms = u64::try_from(req.now.as_millisecond()).unwrap_or(0);
                let checked = check_signature(
                    req.parts,
                    req.body,
                    |key| creds.by_key(key).map(|(id, secret)| (id.clone(), secret)),
                    &policy,
                    now_ms,
                )
                .map_err(|e| match e {
                    AuthError::TimestampExpired => {
                        let sent = req
                            .parts
                            .headers
                            .get("x-ca-timestamp")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        GatewayError::from(e).with_internal(format!(
                            "X-Ca-Timestamp {sent} is further than the allowed clock skew of \
                             {} ms from the gateway's clock ({now_ms} ms since the epoch)",
                            self.max_skew.as_millis()
                        ))
                    }
                    e => e.into(),
                })?;
                Self::check_app(&req, &checked.verified().app)?;
                let verified = checked.consume_nonce(self.replay.as_ref()).await?;
                Ok(Caller::app(verified.app, AuthMethod::Signature))
            }
        }
    }

    /// The app is enabled and holds an unexpired grant for the route's API and stage.
    fn check_app(req: &AuthRequest<'_>, app_id: &AppId) -> Result<(), GatewayError> {
        if req.snapshot.credentials().is_disabled(app_id) {
            return Err(AuthError::AppDisabled.into());
        }
        match req
            .snapshot
            .grants()
            .check(app_id, req.route.api_id(), &req.route.stage, req.now)
        {
            GrantStatus::Granted => Ok(()),
            GrantStatus::Expired => Err(GatewayError::from(AuthError::GrantExpired).with_internal(
                format!(
                    "the grant of app {app_id} for API {} ({}) in stage {} has expired",
                    req.route.api().name,
                    req.route.api_id(),
                    req.route.stage
                ),
            )),
            GrantStatus::Missing => Err(GatewayError::from(AuthError::Unauthorized).with_internal(
                format!(
                    "app {app_id} holds no grant for API {} ({}) in stage {}: authorize it \
                     there (ControlPlane::authorize)",
                    req.route.api().name,
                    req.route.api_id(),
                    req.route.stage
                ),
            )),
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
