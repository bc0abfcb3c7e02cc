//! [`BackendTarget`]: a stage definition compiled into what the data plane needs to call it.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::model::{FunctionDefinition, StageDefinition, VpcAccess, is_framing_header};
use crate::proxy::UpstreamTarget;

/// A backend, compiled for calling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BackendTarget {
    /// An HTTP(S) upstream: HTTP definitions, VPC definitions (through their resolved address)
    /// and HTTP functions.
    Http {
        /// Where to connect.
        upstream: UpstreamTarget,
        /// A path prefix in front of the backend path (HTTP functions' trigger path).
        path_prefix: Option<Arc<str>>,
        /// The definition's default timeout.
        timeout_ms: Option<u32>,
    },
    /// A canned response.
    Mock {
        /// Status.
        status: StatusCode,
        /// Headers.
        headers: HeaderMap,
        /// Body.
        body: Bytes,
    },
    /// A kind served by a pluggable backend (function, object store, event bus, discovery, and
    /// VPC authorizations without an address): dispatched from the definition itself.
    Plugged,
}

impl BackendTarget {
    /// Compiles a definition. `vpc` resolves VPC access authorizations by id.
    ///
    /// # Errors
    ///
    /// A message when the definition cannot be compiled (e.g. a VPC authorization without an
    /// address).
    pub fn compile(
        def: &StageDefinition,
        vpc: impl Fn(&crate::model::VpcAccessId) -> Option<VpcAccess>,
    ) -> Result<Self, String> {
        let host = |h: &Option<String>| -> Result<Option<HeaderValue>, String> {
            h.as_deref()
                .map(|h| HeaderValue::from_str(h).map_err(|_| format!("invalid host header `{h}`")))
                .transpose()
        };
        let upstream =
            |url: &str, host_header: Option<HeaderValue>| -> Result<UpstreamTarget, String> {
                let t = UpstreamTarget::parse(url)
                    .map_err(|e| format!("invalid backend url `{url}`: {e}"))?;
                Ok(match host_header {
                    Some(h) => t.with_host_override(h),
                    None => t,
                })
            };
        Ok(match def {
            StageDefinition::Http(h) => Self::Http {
                upstream: upstream(&h.url, host(&h.host_header)?)?,
                path_prefix: None,
                timeout_ms: h.timeout_ms,
            },
            StageDefinition::Vpc(v) => {
                let access = vpc(&v.vpc_access_id).ok_or_else(|| {
                    format!("vpc access authorization `{}` not found", v.vpc_access_id)
                })?;
                // An authorization with a known address is compiled into a plain HTTP target:
                // no per-request work. Without one, the instance id and port are resolved per
                // call by the data plane's `VpcResolver` (see `backend::vpc`), from the
                // authorization kept on the live route.
                let Some(addr) = access.address.as_deref() else {
                    host(&v.host_header)?;
                    return Ok(Self::Plugged);
                };
                let scheme = if v.https { "https" } else { "http" };
                Self::Http {
                    upstream: upstream(&format!("{scheme}://{addr}"), host(&v.host_header)?)?,
                    path_prefix: None,
                    timeout_ms: v.timeout_ms,
                }
            }
            StageDefinition::FunctionCompute(FunctionDefinition::Http { url, path }) => {
                Self::Http {
                    upstream: upstream(url, None)?,
                    path_prefix: path.as_deref().map(|p| Arc::from(p.trim_end_matches('/'))),
                    timeout_ms: None,
                }
            }
            StageDefinition::Mock(m) => {
                // Defence in depth for documents stored before definitions were checked for
                // these: the gateway frames the response, so a framing or hop-by-hop header is
                // never emitted, and a 1xx status is never served as a final response.
                if m.status < 200 {
                    return Err(format!(
                        "mock status {} is informational, not a response",
                        m.status
                    ));
                }
                let mut headers = HeaderMap::with_capacity(m.headers.len());
                for (k, v) in m.headers.iter().filter(|(k, _)| !is_framing_header(k)) {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("invalid mock header `{k}`"))?;
                    let value = HeaderValue::from_str(v)
                        .map_err(|_| format!("invalid mock header value for `{k}`"))?;
                    headers.append(name, value);
                }
                Self::Mock {
                    status: StatusCode::from_u16(m.status)
                        .map_err(|_| "invalid mock status".to_owned())?,
                    headers,
                    body: Bytes::from(m.body.clone()),
                }
            }
            _ => Self::Plugged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BackendTarget;
    use crate::model::{MockDefinition, StageDefinition};

    fn mock(status: u16, headers: &[(&str, &str)]) -> StageDefinition {
        StageDefinition::Mock(MockDefinition {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: "hello".into(),
        })
    }

    /// A stored document from before MOCK definitions were checked never frames the response.
    #[test]
    fn stored_mocks_never_emit_framing_headers_or_1xx() {
        let def = mock(
            200,
            &[
                ("Content-Length", "100"),
                ("transfer-encoding", "chunked"),
                ("connection", "close"),
                ("Proxy-Authenticate", "Basic"),
                ("upgrade", "h2c"),
                ("x-kept", "yes"),
            ],
        );
        let Ok(BackendTarget::Mock { headers, .. }) = BackendTarget::compile(&def, |_| None) else {
            panic!("a MOCK compiles to a canned response");
        };
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");
        for status in [100, 101, 103] {
            assert!(BackendTarget::compile(&mock(status, &[]), |_| None).is_err());
        }
    }
}
