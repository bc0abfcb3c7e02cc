//! Data-plane authentication, the protocol of Alibaba Cloud API Gateway ("Use digest
//! authentication to call an API" in its documentation): the signature string-to-sign, HMAC
//! signing and verification, nonce replay protection, AppCodes, and a client-side signer.
//!
//! Everything here is pure: no I/O and no runtime. The only asynchronous piece is the
//! [`ReplayGuard`] trait, so that a nonce store shared between processes can be plugged in;
//! the one such store shipped, `RedisReplayGuard` (feature `redis`), is the only part of this
//! module that talks to the network.

mod error;
mod forward;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod signature;
mod signer;
mod string_to_sign;
mod verifier;

#[cfg(feature = "redis")]
pub use self::redis::{RedisConfigError, RedisReplayGuard, RedisReplayGuardBuilder};
pub use error::{AuthError, ReplayError};
pub(crate) use forward::{BackendView, prepare_for_backend};
pub use replay::{DEFAULT_NONCE_TTL, MemoryReplayGuard, ReplayFuture, ReplayGuard};
pub use signature::{sign, verify};
pub use signer::{Signed, Signer};
pub use string_to_sign::{is_form, string_to_sign};
pub use verifier::{
    DEFAULT_MAX_SKEW, SignatureChecked, SignatureMethods, SignaturePolicy, Verified,
    appcode_from_request, appcode_matches, check_signature, verify_signature,
};
