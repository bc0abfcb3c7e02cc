//! [`PolicyRefusal`]: why a policy refused a request, and its wire code.

use crate::error_code::{ErrorCode, WireError};

/// Why a policy refused a request.
///
/// # Examples
///
/// ```
/// use stagegate::policy::PolicyRefusal;
/// use stagegate::error_code::WireError;
/// assert_eq!(PolicyRefusal::IpDenied.wire_code().as_str(), "A403IP");
/// assert_eq!(PolicyRefusal::ApiThrottled.wire_code().status().as_u16(), 429);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// The client address is not allowed (`A403IP`).
    #[error("client address refused by ip control")]
    IpDenied,
    /// The API's limit is used up (`T429PA`).
    #[error("api limit used up")]
    ApiThrottled,
    /// The app's default limit is used up (`T429PR`).
    #[error("app limit used up")]
    AppThrottled,
    /// The app's special limit is used up (`T429SR`).
    #[error("app special limit used up")]
    SpecialThrottled,
}

impl WireError for PolicyRefusal {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::IpDenied => ErrorCode::A403IP,
            Self::ApiThrottled => ErrorCode::T429PA,
            Self::AppThrottled => ErrorCode::T429PR,
            Self::SpecialThrottled => ErrorCode::T429SR,
        }
    }
}

impl PolicyRefusal {
    pub(crate) fn throttled(code: ErrorCode) -> Self {
        match code {
            ErrorCode::T429SR => Self::SpecialThrottled,
            ErrorCode::T429PR => Self::AppThrottled,
            _ => Self::ApiThrottled,
        }
    }
}
