//! Parameter mapping (interim: PASSTHROUGH only; the full module replaces this).

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::model::{ApiDefinition, Segment, Stage};
use crate::routing::Compiled;

/// Values of system parameters.
#[derive(Debug)]
pub struct SystemValues<'a> {
    /// Client IP.
    pub client_ip: Option<IpAddr>,
    /// Request id.
    pub request_id: &'a str,
    /// Stage.
    pub stage: &'a Stage,
    /// API name.
    pub api_name: &'a str,
    /// App id.
    pub app_id: Option<&'a str>,
    /// Domain.
    pub domain: Option<&'a str>,
    /// Scheme.
    pub scheme: &'a str,
    /// Handle time.
    pub handle_time_ms: u64,
}

/// The request as mapping sees it.
#[derive(Debug)]
pub struct MappingInput<'a> {
    /// Method.
    pub method: &'a Method,
    /// Raw path.
    pub request_path: &'a str,
    /// Raw query.
    pub query: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Path params.
    pub path_params: &'a [(String, String)],
    /// Buffered form body.
    pub form_body: Option<&'a [u8]>,
}

/// What to do with the body.
#[derive(Debug)]
pub enum BodyAction {
    /// Keep.
    Keep,
    /// Replace.
    Replace(Bytes),
}

/// The backend request.
#[derive(Debug)]
pub struct MappedRequest {
    /// Path and query.
    pub path_and_query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: BodyAction,
}

/// A mapping failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(String);

impl MappingError {
    /// Code.
    pub fn code(&self) -> &'static str {
        "X500ER"
    }
    /// Status.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    /// Message.
    pub fn wire_message(&self) -> String {
        self.0.clone()
    }
}

/// Whether the form body is needed.
pub fn needs_form_body(_api: &ApiDefinition) -> bool {
    false
}

/// Maps a request.
///
/// # Errors
///
/// A missing path value.
pub fn map_request(
    api: &ApiDefinition,
    _compiled: &Compiled,
    input: &MappingInput<'_>,
    _sys: &SystemValues<'_>,
) -> Result<MappedRequest, MappingError> {
    let mut path = match &api.backend.path {
        None => input.request_path.to_owned(),
        Some(p) => {
            let t =
                crate::model::PathTemplate::parse(p).map_err(|e| MappingError(e.to_string()))?;
            let mut s = String::new();
            for seg in t.segments() {
                s.push('/');
                match seg {
                    Segment::Literal(l) => s.push_str(l),
                    Segment::Param(n) => {
                        let v = input
                            .path_params
                            .iter()
                            .find(|(k, _)| k == n)
                            .ok_or_else(|| MappingError(format!("no value for `{n}`")))?;
                        s.push_str(&v.1);
                    }
                }
            }
            if s.is_empty() { "/".to_owned() } else { s }
        }
    };
    if let Some(q) = input.query {
        path.push('?');
        path.push_str(q);
    }
    Ok(MappedRequest {
        path_and_query: path,
        headers: input.headers.clone(),
        body: BodyAction::Keep,
    })
}
