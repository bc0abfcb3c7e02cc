//! [`ClientError`]: why a signed request was not sent or its answer not read.

use crate::proxy::BoxError;

/// Why a [`Client`](super::Client) or [`SigningService`](super::SigningService) request failed.
///
/// # Examples
///
/// ```
/// use stagegate::client::ClientError;
/// let e = ClientError::InvalidRequest { field: "uri", reason: "not an absolute URI".into() };
/// assert_eq!(e.to_string(), "invalid request: `uri` not an absolute URI");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request could not be built: the field named is wrong.
    #[error("invalid request: `{field}` {reason}")]
    InvalidRequest {
        /// The part of the request that is wrong (`uri`, `body`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The request body is larger than the signing limit (it must be read to be signed).
    #[error("request body larger than {limit} bytes")]
    RequestTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request body could not be read.
    #[error("request body could not be read")]
    RequestBody(#[source] BoxError),
    /// The request could not be sent, or no answer came.
    #[error("request failed")]
    Send(#[source] BoxError),
    /// The response body is larger than the client's limit.
    #[error("response body larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The response body could not be read.
    #[error("response body could not be read")]
    ResponseBody(#[source] BoxError),
}
