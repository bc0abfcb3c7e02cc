//! [`BackendTarget`]: a stage definition compiled into what the data plane needs to call it.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::model::{FunctionDefinition, StageDefinition, VpcAccess, is_framing_header};
use crate::proxy::UpstreamTarget;

use super::CompileError;

/// A backend, compiled for calling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub(crate) enum BackendTarget {
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
    pub(crate) fn compile(
        def: &StageDefinition,
        vpc: impl Fn(&crate::model::VpcAccessId) -> Option<VpcAccess>,
    ) -> Result<Self, CompileError> {
        let host = |h: &Option<String>| -> Result<Option<HeaderValue>, CompileError> {
            h.as_deref()
                .map(|h| {
                    HeaderValue::from_str(h)
                        .map_err(|_| CompileError::HostHeader { host: h.to_owned() })
                })
                .transpose()
        };
        let upstream =
            |url: &str, host_header: Option<HeaderValue>| -> Result<UpstreamTarget, CompileError> {
                let t = UpstreamTarget::parse(url).map_err(|source| CompileError::BackendUrl {
                    url: url.to_owned(),
                    source,
                })?;
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
                let access = vpc(&v.vpc_access_id)
                    .ok_or_else(|| CompileError::VpcAccessNotFound(v.vpc_access_id.clone()))?;
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
                    return Err(CompileError::MockStatusInformational(m.status));
                }
                let mut headers = HeaderMap::with_capacity(m.headers.len());
                for (k, v) in m.headers.iter().filter(|(k, _)| !is_framing_header(k)) {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| CompileError::MockHeaderName(k.clone()))?;
                    let value = HeaderValue::from_str(v)
                        .map_err(|_| CompileError::MockHeaderValue(k.clone()))?;
                    headers.append(name, value);
                }
                Self::Mock {
                    status: StatusCode::from_u16(m.status)
                        .map_err(|_| CompileError::MockStatus(m.status))?,
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
    use super::{BackendTarget, CompileError};
    use crate::model::{
        HttpDefinition, MockDefinition, StageDefinition, VpcAccessId, VpcDefinition,
    };

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
            let e = BackendTarget::compile(&mock(status, &[]), |_| None).unwrap_err();
            assert!(
                matches!(e, CompileError::MockStatusInformational(s) if s == status),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!("mock status {status} is informational, not a response")
            );
        }
    }

    #[test]
    fn compile_errors_are_typed_and_keep_their_messages() {
        let bad_header = mock(200, &[("bad header", "x")]);
        let e = BackendTarget::compile(&bad_header, |_| None).unwrap_err();
        assert!(matches!(e, CompileError::MockHeaderName(ref n) if n == "bad header"));
        assert_eq!(e.to_string(), "invalid mock header `bad header`");

        let vpc = StageDefinition::Vpc(VpcDefinition {
            vpc_access_id: VpcAccessId::parse("vpc-gone").unwrap(),
            https: false,
            host_header: None,
            timeout_ms: None,
        });
        let e = BackendTarget::compile(&vpc, |_| None).unwrap_err();
        assert!(matches!(e, CompileError::VpcAccessNotFound(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "vpc access authorization `vpc-gone` not found"
        );

        let http = StageDefinition::Http(HttpDefinition::new("ftp://example.com"));
        let e = BackendTarget::compile(&http, |_| None).unwrap_err();
        assert!(matches!(e, CompileError::BackendUrl { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("invalid backend url `ftp://example.com`: "),
            "{e}"
        );
    }
}
