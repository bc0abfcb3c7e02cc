//! Request parameter mapping (step 5 of the data plane): read the declared parameters of a
//! request, apply defaults, validate them, and build what the backend receives.
//!
//! The module is pure: it takes borrowed pieces of the client request ([`MappingInput`]) and
//! the gateway's facts about it ([`SystemValues`]) and returns a [`MappedRequest`] (backend path
//! and query, the complete header set, what to do with the body). No I/O happens here; the
//! caller buffers a urlencoded body beforehand when [`needs_form_body`] says so.
//!
//! # Request modes
//!
//! * [`PASSTHROUGH`](RequestMode::Passthrough): headers, query and body are forwarded
//!   unchanged; path parameters fill the `[name]` placeholders of the backend path.
//! * [`MAPPING`](RequestMode::Mapping): every declared parameter is read from its location,
//!   defaulted, validated and written to the backend under its backend name and location.
//!   Undeclared query parameters and form fields are dropped; undeclared headers are dropped
//!   except those in [`MAPPING_HEADER_ALLOWLIST`] (and the [`MAPPING_HEADER_PREFIXES`]).
//! * [`MAPPING_PASSTHROUGH`](RequestMode::MappingPassthrough): declared parameters are mapped
//!   as in `MAPPING` (the client's original of each is removed), everything else is forwarded.
//!
//! In every mode, constant and system parameters are then added at their locations (replacing
//! anything of the same name the client sent, so clients cannot spoof them), and the backend's
//! [`ContentTypePolicy`] applies.
//!
//! # Values
//!
//! * A value that is present but empty counts as absent: the default applies, and a required
//!   parameter without a default is an error.
//! * Query and form values are URL-decoded (`+` is a space) and must be UTF-8; header values
//!   must be UTF-8; path values are percent-decoded. Only the first occurrence counts.
//! * Values written to paths are percent-encoded so that they stay one segment (`/`, `?`, `#`,
//!   `%`, `.`/`..` cannot change the path); values written to queries and form bodies are
//!   urlencoded; values written to headers must be valid header values.
//!
//! # Examples
//!
//! ```
//! use http::{HeaderMap, Method};
//! use stagegate::mapping::{BodyAction, MappingInput, SystemValues, map_request};
//! use stagegate::model::{
//!     ApiDefinition, BackendId, GroupId, ParamLocation, ParamType, RequestMode,
//!     RequestParameter, Stage,
//! };
//! use stagegate::routing::Compiled;
//!
//! let mut api = ApiDefinition::new(
//!     GroupId::generate(), "getUser", "GET", "/users/[id]", BackendId::generate(),
//! ).unwrap();
//! api.request.mode = RequestMode::Mapping;
//! api.backend.path = Some("/v2/accounts/[uid]".into());
//! api.parameters.push(RequestParameter {
//!     name: "id".into(), location: ParamLocation::Path, param_type: ParamType::Long,
//!     required: true, backend_name: Some("uid".into()), ..Default::default()
//! });
//! api.parameters.push(RequestParameter {
//!     name: "lang".into(), location: ParamLocation::Query, default: Some("en".into()),
//!     backend_name: Some("x-lang".into()), backend_location: Some(ParamLocation::Head),
//!     ..Default::default()
//! });
//! let compiled = Compiled::compile(&api).unwrap();
//!
//! let headers = HeaderMap::new();
//! let path_params = [("id", "42")];
//! let input = MappingInput {
//!     path_params: &path_params,
//!     ..MappingInput::new(&Method::GET, "/users/42", Some("debug=1"), &headers)
//! };
//! let sys = SystemValues::new("req-1", &Stage::RELEASE, "getUser");
//! let mapped = map_request(&api, &compiled, &input, &sys).unwrap();
//! assert_eq!(mapped.path_and_query, "/v2/accounts/42"); // `debug` is undeclared: dropped
//! assert_eq!(mapped.headers["x-lang"], "en");
//! assert_eq!(mapped.body, BodyAction::Keep);
//! assert_eq!(mapped.params, [("id".to_owned(), "42".to_owned()), ("lang".to_owned(), "en".to_owned())]);
//! ```

mod check;
mod encode;
mod error;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

pub use error::MappingError;

use crate::model::{
    ApiDefinition, BodyFormat, ContentTypePolicy, ParamLocation, PathTemplate, RequestMode,
    RequestParameter, Segment, Stage, SystemParam,
};
use crate::routing::Compiled;

/// The Content-Type of a form body the gateway builds (and of [`ContentTypePolicy::Default`]).
pub(crate) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=UTF-8";

/// Undeclared headers that `MAPPING` mode still forwards: content negotiation, the framing
/// and description of a body that is kept, conditional requests, and tracing.
///
/// `Content-Type` then follows the backend's [`ContentTypePolicy`]. Hop-by-hop headers are not
/// listed: the forwarder strips them anyway.
///
/// # Examples
///
/// ```
/// assert!(stagegate::mapping::MAPPING_HEADER_ALLOWLIST.contains(&"accept"));
/// assert!(!stagegate::mapping::MAPPING_HEADER_ALLOWLIST.contains(&"cookie"));
/// ```
pub const MAPPING_HEADER_ALLOWLIST: [&str; 24] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "pragma",
    "user-agent",
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-md5",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "forwarded",
    "via",
    "x-ca-request-id",
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
];

/// Header name prefixes that `MAPPING` mode still forwards (`X-Forwarded-*`, Zipkin `X-B3-*`).
///
/// # Examples
///
/// ```
/// assert!(stagegate::mapping::MAPPING_HEADER_PREFIXES.contains(&"x-forwarded-"));
/// ```
pub const MAPPING_HEADER_PREFIXES: [&str; 2] = ["x-forwarded-", "x-b3-"];

/// The gateway's facts about a request, the values of system parameters.
///
/// | [`SystemParam`] | value |
/// |---|---|
/// | `CaClientIp` | [`client_ip`](Self::client_ip) (empty when unknown) |
/// | `CaRequestId` | [`request_id`](Self::request_id) |
/// | `CaStage` | [`stage`](Self::stage) (`TEST`, `PRE`, `RELEASE`) |
/// | `CaApiName` | [`api_name`](Self::api_name) |
/// | `CaAppId` | [`app_id`](Self::app_id) (empty for anonymous calls) |
/// | `CaDomain` | [`domain`](Self::domain) (empty when unknown) |
/// | `CaHttpSchema` | [`scheme`](Self::scheme) |
/// | `CaRequestHandleTime` | [`handle_time_ms`](Self::handle_time_ms), decimal |
///
/// # Examples
///
/// ```
/// use stagegate::mapping::SystemValues;
/// use stagegate::model::Stage;
/// let sys = SystemValues {
///     client_ip: Some("203.0.113.7".parse().unwrap()),
///     scheme: "https",
///     ..SystemValues::new("req-1", &Stage::TEST, "getUser")
/// };
/// assert_eq!(sys.scheme, "https");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SystemValues<'a> {
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The request id (`X-Ca-Request-Id`).
    pub request_id: &'a str,
    /// The stage serving the request.
    pub stage: &'a Stage,
    /// The API's name.
    pub api_name: &'a str,
    /// The calling app's id, if the call is authenticated.
    pub app_id: Option<&'a str>,
    /// The requested host.
    pub domain: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// When the gateway received the request, in epoch milliseconds.
    pub handle_time_ms: u64,
}

impl<'a> SystemValues<'a> {
    /// Values with the request id, stage and API name; no client address, app or domain,
    /// scheme `http`, handle time 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let sys = stagegate::mapping::SystemValues::new("id", &stagegate::model::Stage::RELEASE, "api");
    /// assert_eq!(sys.scheme, "http");
    /// assert!(sys.app_id.is_none());
    /// ```
    #[must_use]
    pub fn new(request_id: &'a str, stage: &'a Stage, api_name: &'a str) -> Self {
        Self {
            client_ip: None,
            request_id,
            stage,
            api_name,
            app_id: None,
            domain: None,
            scheme: "http",
            handle_time_ms: 0,
        }
    }

    fn value(&self, which: SystemParam) -> Cow<'a, str> {
        match which {
            SystemParam::CaClientIp => {
                Cow::Owned(self.client_ip.map(|ip| ip.to_string()).unwrap_or_default())
            }
            SystemParam::CaRequestId => Cow::Borrowed(self.request_id),
            SystemParam::CaStage => Cow::Borrowed(self.stage.as_str()),
            SystemParam::CaApiName => Cow::Borrowed(self.api_name),
            SystemParam::CaAppId => Cow::Borrowed(self.app_id.unwrap_or("")),
            SystemParam::CaDomain => Cow::Borrowed(self.domain.unwrap_or("")),
            SystemParam::CaHttpSchema => Cow::Borrowed(self.scheme),
            SystemParam::CaRequestHandleTime => Cow::Owned(self.handle_time_ms.to_string()),
        }
    }
}

/// The pieces of a client request that mapping reads, borrowed.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, Method};
/// let headers = HeaderMap::new();
/// let body = b"name=ann";
/// let input = stagegate::mapping::MappingInput {
///     form_body: Some(&body[..]),
///     ..stagegate::mapping::MappingInput::new(&Method::POST, "/users", None, &headers)
/// };
/// assert!(input.path_params.is_empty());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MappingInput<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// The path as received (percent-encoded), used when the backend has no path of its own.
    pub request_path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The client's headers.
    pub headers: &'a HeaderMap,
    /// The matched path parameters, raw (percent-encoded), as the router returns them.
    pub path_params: &'a [(&'a str, &'a str)],
    /// For match-all routes, the raw sub-path after the prefix; it replaces a trailing `/*`
    /// of the backend path.
    pub rest: Option<&'a str>,
    /// The buffered request body, when the caller buffered it (see [`needs_form_body`]).
    pub form_body: Option<&'a [u8]>,
}

impl<'a> MappingInput<'a> {
    /// An input without path parameters, sub-path or buffered body.
    ///
    /// # Examples
    ///
    /// ```
    /// let headers = http::HeaderMap::new();
    /// let i = stagegate::mapping::MappingInput::new(&http::Method::GET, "/a", Some("x=1"), &headers);
    /// assert_eq!(i.query, Some("x=1"));
    /// ```
    #[must_use]
    pub fn new(
        method: &'a Method,
        request_path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> Self {
        Self {
            method,
            request_path,
            query,
            headers,
            path_params: &[],
            rest: None,
            form_body: None,
        }
    }
}

/// What to do with the client's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyAction {
    /// Forward the client's body as it is.
    Keep,
    /// Discard the client's body and send this one (`Content-Length` is already set in
    /// [`MappedRequest::headers`]).
    Replace(Bytes),
}

/// The backend request that mapping produced.
#[derive(Clone, Debug)]
pub struct MappedRequest {
    /// The backend path (the backend path template filled in, or the request path when the
    /// backend has none) and, after `?`, the query.
    pub path_and_query: String,
    /// The complete header set for the backend (the forwarder still strips hop-by-hop headers
    /// and adds `X-Forwarded-*`).
    pub headers: HeaderMap,
    /// What to do with the body.
    pub body: BodyAction,
    /// The resolved value of every declared parameter that has one, by client-facing name, in
    /// declaration order (empty in `PASSTHROUGH` mode, which reads no parameters).
    pub params: Vec<(String, String)>,
}

/// Whether the data plane must buffer a urlencoded request body before [`map_request`], so
/// that form fields can be read or added.
///
/// True when the body may carry form parameters: a declared parameter read from or written to
/// `BODY` in a mapping mode (unless the body format is `STREAM`), or a constant or system
/// parameter written to `BODY`. The caller only needs to buffer bodies whose Content-Type is
/// `application/x-www-form-urlencoded` (or absent); other bodies are never parsed.
///
/// # Examples
///
/// ```
/// use stagegate::mapping::needs_form_body;
/// use stagegate::model::{
///     ApiDefinition, BackendId, GroupId, ParamLocation, RequestMode, RequestParameter,
/// };
/// let mut api = ApiDefinition::new(GroupId::generate(), "addItem", "POST", "/items", BackendId::generate()).unwrap();
/// assert!(!needs_form_body(&api));
/// api.request.mode = RequestMode::Mapping;
/// api.parameters.push(RequestParameter { name: "n".into(), location: ParamLocation::Body, ..Default::default() });
/// assert!(needs_form_body(&api));
/// ```
#[must_use]
pub fn needs_form_body(api: &ApiDefinition) -> bool {
    let mode = api.request.mode;
    if !body_capable(api) {
        return false;
    }
    (mode != RequestMode::Passthrough
        && api.parameters.iter().any(|p| {
            p.location == ParamLocation::Body || p.backend_location() == ParamLocation::Body
        }))
        || api
            .constant_parameters
            .iter()
            .any(|c| c.location == ParamLocation::Body)
        || api
            .system_parameters
            .iter()
            .any(|s| s.location == ParamLocation::Body)
}

/// Whether fields may be added to the body: not with the `STREAM` format of mapping modes.
fn body_capable(api: &ApiDefinition) -> bool {
    api.request.mode == RequestMode::Passthrough
        || api.request.body_format != Some(BodyFormat::Stream)
}

/// One value to write at the backend.
struct Output<'v> {
    name: &'v str,
    value: Cow<'v, str>,
    /// The declared parameter it comes from (none for constants and system parameters).
    from: Option<&'v str>,
    /// The header name, parsed when the route was compiled (headers only, where valid).
    header: Option<&'v HeaderName>,
}

/// What one location receives: rarely more than a couple of values, so kept inline.
type OutputList<'v> = SmallVec<[Output<'v>; 2]>;

/// Adds an output; a later value for the same name replaces an earlier one (constants and
/// system parameters beat client values).
fn push_output<'v>(outs: &mut OutputList<'v>, out: Output<'v>) {
    if let Some(o) = outs.iter_mut().find(|o| o.name == out.name) {
        *o = out;
    } else {
        outs.push(out);
    }
}

/// The values to write at the backend, by location.
#[derive(Default)]
struct Outputs<'v> {
    head: OutputList<'v>,
    query: OutputList<'v>,
    path: OutputList<'v>,
    form: OutputList<'v>,
}

impl<'v> Outputs<'v> {
    fn push(&mut self, loc: ParamLocation, out: Output<'v>) {
        let list = match loc {
            ParamLocation::Head => &mut self.head,
            ParamLocation::Query => &mut self.query,
            ParamLocation::Path => &mut self.path,
            ParamLocation::Body => &mut self.form,
        };
        push_output(list, out);
    }
}

/// Maps a client request to its backend request, following the API's request mode,
/// parameters, constant and system parameters, backend path and Content-Type policy.
///
/// `compiled` must come from [`Compiled::compile`] of the same `api` (its regexes are used for
/// the pattern rules, its parsed backend path for the path).
///
/// # Errors
///
/// * [`MappingError::MissingHeader`] (`I400MH`) / [`MappingError::MissingParameter`]
///   (`I400MP`): a required parameter is absent and has no default;
/// * [`MappingError::InvalidParameter`] (`I400IP`): a value breaks a rule, is not UTF-8, or
///   cannot be written where the backend wants it (a header value with control characters);
/// * [`MappingError::InvalidBody`] (`I400BD`): a form field is not UTF-8, or parameters must
///   be added to a body that is not a form;
/// * [`MappingError::Config`] (`X500ER`): a backend path placeholder has no value, a header
///   name cannot be built, a pattern was not compiled, `BODY` parameters with `STREAM` format.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, Method};
/// use stagegate::mapping::{MappingInput, SystemValues, map_request};
/// use stagegate::model::{ApiDefinition, BackendId, GroupId, Stage};
/// use stagegate::routing::Compiled;
///
/// let mut api = ApiDefinition::new(GroupId::generate(), "file", "GET", "/files/[name]", BackendId::generate()).unwrap();
/// api.backend.path = Some("/store/[name]".into());
/// let compiled = Compiled::compile(&api).unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("cookie", "a=b".parse().unwrap());
/// let params = [("name", "a%20b")];
/// let input = MappingInput {
///     path_params: &params,
///     ..MappingInput::new(&Method::GET, "/files/a%20b", Some("v=1"), &headers)
/// };
/// let m = map_request(&api, &compiled, &input, &SystemValues::new("r", &Stage::RELEASE, "file")).unwrap();
/// assert_eq!(m.path_and_query, "/store/a%20b?v=1");
/// assert_eq!(m.headers, headers); // PASSTHROUGH: unchanged
/// ```
pub fn map_request(
    api: &ApiDefinition,
    compiled: &Compiled,
    input: &MappingInput<'_>,
    sys: &SystemValues<'_>,
) -> Result<MappedRequest, MappingError> {
    map_request_with(
        api,
        compiled,
        input,
        sys,
        MapOptions {
            client_headers: true,
            params: true,
        },
    )
}

/// What [`map_request_with`] leaves out for a caller that does not need it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapOptions {
    /// With `false` the mapped headers hold only what the API adds (parameters,
    /// Content-Type). Every check, and so every error, is the same: none of them reads the
    /// copied headers. For a backend that never sees the mapped request (a mock), this spares
    /// copying every header.
    pub(crate) client_headers: bool,
    /// With `false`, [`MappedRequest::params`] stays empty: the data plane never reads it, and
    /// filling it costs an allocation per parameter.
    pub(crate) params: bool,
}

/// [`map_request`], leaving out what `options` says the caller does not need.
pub(crate) fn map_request_with(
    api: &ApiDefinition,
    compiled: &Compiled,
    input: &MappingInput<'_>,
    sys: &SystemValues<'_>,
    options: MapOptions,
) -> Result<MappedRequest, MappingError> {
    let mode = api.request.mode;
    let client_body = classify_body(input);

    // 1. Read, default and check the declared parameters.
    let resolved = if mode == RequestMode::Passthrough {
        Resolved::new()
    } else {
        resolve(api, compiled, input, &client_body)?
    };

    // 2. Sort what goes to the backend by location.
    let mut outs = Outputs::default();
    let mut header_names = compiled.header_names.iter();
    let mut next_header = || header_names.next().and_then(Option::as_ref);
    // Header names are listed for every declared parameter, resolved or not.
    let mut declared = resolved.iter().peekable();
    for p in &api.parameters {
        let header = next_header();
        let Some((_, value)) = declared.next_if(|(r, _)| std::ptr::eq(*r, p)) else {
            continue;
        };
        outs.push(
            p.backend_location(),
            Output {
                name: p.backend_name(),
                value: Cow::Borrowed(value),
                from: Some(p.name.as_str()),
                header,
            },
        );
    }
    for c in &api.constant_parameters {
        let header = next_header();
        outs.push(
            c.location,
            Output {
                name: &c.backend_name,
                value: Cow::Borrowed(&c.value),
                from: None,
                header,
            },
        );
    }
    for s in &api.system_parameters {
        let header = next_header();
        outs.push(
            s.location,
            Output {
                name: &s.backend_name,
                value: sys.value(s.name),
                from: None,
                header,
            },
        );
    }

    // 3. Headers.
    let client_headers = options.client_headers;
    let mut headers = match mode {
        _ if !client_headers => HeaderMap::new(),
        RequestMode::Passthrough => input.headers.clone(),
        RequestMode::MappingPassthrough => {
            let mut h = input.headers.clone();
            for p in &api.parameters {
                if p.location == ParamLocation::Head {
                    h.remove(p.name.as_str());
                }
            }
            h
        }
        RequestMode::Mapping => {
            // Room for the mapped headers and the forwarder's `X-Forwarded-*` too, so that
            // neither grows the map.
            let mut h = HeaderMap::with_capacity(
                input.headers.keys_len().min(16)
                    + outs.head.len()
                    + crate::proxy::FORWARDED_HEADERS,
            );
            for (name, value) in input.headers {
                if header_allowed(name) {
                    h.append(name.clone(), value.clone());
                }
            }
            h
        }
    };
    for out in &outs.head {
        // The compiled name, unless the `Compiled` was not made from this API (then its list
        // does not line up, and the name is parsed as if there were none).
        let name = match out.header {
            Some(name) if name.as_str().eq_ignore_ascii_case(out.name) => name.clone(),
            _ => HeaderName::from_bytes(out.name.as_bytes()).map_err(|_| MappingError::Config {
                reason: format!("`{}` is not a valid header name", out.name),
            })?,
        };
        let value = HeaderValue::from_str(&out.value).map_err(|_| match out.from {
            Some(client) => MappingError::InvalidParameter {
                name: client.to_owned(),
                rule: "cannot be sent in a header".to_owned(),
            },
            None => MappingError::InvalidParameter {
                name: out.name.to_owned(),
                rule: "is not a valid header value".to_owned(),
            },
        })?;
        headers.insert(name, value);
    }

    // 4. Path and query.
    let mut path_and_query = String::with_capacity(
        input.request_path.len() + input.query.map_or(0, |q| q.len() + 1) + 16,
    );
    push_path(&mut path_and_query, api, compiled, input, &outs.path)?;
    push_query(&mut path_and_query, api, input, &outs.query);

    // 5. Body and Content-Type.
    let body = map_body(api, &client_body, &outs.form)?;
    apply_content_type(api, input, &body, &mut headers)?;

    let params = if options.params {
        resolved
            .iter()
            .map(|(p, v)| (p.name.clone(), v.to_string()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(MappedRequest {
        path_and_query,
        headers,
        body,
        params,
    })
}

fn header_allowed(name: &HeaderName) -> bool {
    let n = name.as_str();
    MAPPING_HEADER_ALLOWLIST.contains(&n)
        || MAPPING_HEADER_PREFIXES.iter().any(|p| n.starts_with(p))
}

/// The client's body, as far as mapping is concerned.
enum ClientBody<'a> {
    /// No body.
    Empty,
    /// A buffered urlencoded form.
    Form(&'a [u8]),
    /// A body that is not a form, or was not buffered.
    Opaque,
}

fn is_form_content_type(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    b.len() >= FORM.len()
        && b[..FORM.len()].eq_ignore_ascii_case(FORM)
        && matches!(b.get(FORM.len()), None | Some(b';' | b' ' | b'\t'))
}

/// Whether the client's headers announce a body.
fn announces_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_none_or(|n| n > 0)
        })
}

fn classify_body<'a>(input: &MappingInput<'a>) -> ClientBody<'a> {
    let form_type = input
        .headers
        .get(header::CONTENT_TYPE)
        .is_none_or(is_form_content_type);
    match input.form_body {
        Some([]) => ClientBody::Empty,
        Some(b) if form_type => ClientBody::Form(b),
        Some(_) => ClientBody::Opaque,
        None if announces_body(input.headers) => ClientBody::Opaque,
        None => ClientBody::Empty,
    }
}

/// The first raw value of each declared parameter at `loc` in urlencoded `data`, by index.
fn first_values<'d>(
    api: &ApiDefinition,
    loc: ParamLocation,
    data: &'d [u8],
    found: &mut [Option<&'d [u8]>],
) {
    if !api.parameters.iter().any(|p| p.location == loc) {
        return;
    }
    for (_, name, value) in encode::pairs(data) {
        for (i, p) in api.parameters.iter().enumerate() {
            if p.location == loc && found[i].is_none() && encode::name_is(name, &p.name) {
                found[i] = Some(value);
            }
        }
    }
}

fn invalid(p: &RequestParameter, rule: &str) -> MappingError {
    MappingError::InvalidParameter {
        name: p.name.clone(),
        rule: rule.to_owned(),
    }
}

/// The declared parameters that have a value, in declaration order, with that value
/// (borrowed from the request or the definition unless decoding changed it).
type Resolved<'a> = SmallVec<[(&'a RequestParameter, Cow<'a, str>); 4]>;

/// Reads, defaults and checks every declared parameter.
fn resolve<'a>(
    api: &'a ApiDefinition,
    compiled: &Compiled,
    input: &MappingInput<'a>,
    client_body: &ClientBody<'a>,
) -> Result<Resolved<'a>, MappingError> {
    let n = api.parameters.len();
    let mut in_query: SmallVec<[Option<&[u8]>; 8]> = smallvec::smallvec![None; n];
    if let Some(q) = input.query {
        first_values(api, ParamLocation::Query, q.as_bytes(), &mut in_query);
    }
    let mut in_body: SmallVec<[Option<&[u8]>; 8]> = smallvec::smallvec![None; n];
    if let ClientBody::Form(b) = client_body
        && body_capable(api)
    {
        first_values(api, ParamLocation::Body, b, &mut in_body);
    }

    let mut resolved = Resolved::new();
    for (i, p) in api.parameters.iter().enumerate() {
        let raw: Option<Cow<'_, str>> = match p.location {
            ParamLocation::Head => match input.headers.get(p.name.as_str()) {
                Some(v) => Some(Cow::Borrowed(
                    std::str::from_utf8(v.as_bytes())
                        .map_err(|_| invalid(p, "must be valid UTF-8"))?,
                )),
                None => None,
            },
            ParamLocation::Query => match in_query[i] {
                Some(v) => {
                    Some(encode::decode_form(v).map_err(|_| invalid(p, "must be valid UTF-8"))?)
                }
                None => None,
            },
            ParamLocation::Path => match input.path_params.iter().find(|(k, _)| *k == p.name) {
                Some((_, v)) => Some(
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8()
                        .map_err(|_| invalid(p, "must be valid UTF-8"))?,
                ),
                None => None,
            },
            ParamLocation::Body => match in_body[i] {
                Some(v) => Some(
                    encode::decode_form(v).map_err(|_| MappingError::InvalidBody {
                        reason: format!("field `{}` is not valid UTF-8", p.name),
                    })?,
                ),
                None => None,
            },
        };
        let value: Cow<'_, str> = match raw.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => match p.default.as_deref() {
                Some(d) if !d.is_empty() => Cow::Borrowed(d),
                _ if p.required => {
                    return Err(match p.location {
                        ParamLocation::Head => MappingError::MissingHeader {
                            name: p.name.clone(),
                        },
                        location => MappingError::MissingParameter {
                            name: p.name.clone(),
                            location,
                        },
                    });
                }
                _ => continue,
            },
        };
        let regex = match (&p.regex, compiled.regexes.get(i)) {
            (None, _) => None,
            (Some(_), Some(Some(r))) => Some(r),
            (Some(_), _) => {
                return Err(MappingError::Config {
                    reason: format!("the pattern of parameter `{}` is not compiled", p.name),
                });
            }
        };
        check::check_value(p, regex, &value)?;
        resolved.push((p, value));
    }
    Ok(resolved)
}

/// Appends the backend path.
fn push_path(
    out: &mut String,
    api: &ApiDefinition,
    compiled: &Compiled,
    input: &MappingInput<'_>,
    mapped: &[Output<'_>],
) -> Result<(), MappingError> {
    let parsed;
    let template: &PathTemplate = match (&compiled.backend_path, &api.backend.path) {
        (_, None) => {
            out.push_str(input.request_path);
            if out.is_empty() {
                out.push('/');
            }
            return Ok(());
        }
        (Some(t), Some(_)) => t,
        (None, Some(raw)) => {
            parsed = PathTemplate::parse(raw).map_err(|e| MappingError::Config {
                reason: format!("backend path: {e}"),
            })?;
            &parsed
        }
    };
    let start = out.len();
    for seg in template.segments() {
        out.push('/');
        match seg {
            Segment::Literal(l) => encode::push_literal(out, l),
            Segment::Param(name) => {
                if let Some(o) = mapped.iter().find(|o| o.name == name) {
                    if o.value.is_empty() {
                        return Err(MappingError::InvalidParameter {
                            name: o.from.unwrap_or(o.name).to_owned(),
                            rule: "must not be empty in a path".to_owned(),
                        });
                    }
                    encode::push_segment(out, o.value.as_bytes());
                } else if let Some((_, raw)) = input.path_params.iter().find(|(k, _)| *k == name) {
                    encode::push_raw_segment(out, raw);
                } else {
                    return Err(MappingError::Config {
                        reason: format!("backend path parameter `{name}` has no value"),
                    });
                }
            }
        }
    }
    if template.match_all()
        && let Some(rest) = input.rest
    {
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if !rest.is_empty() {
            for s in rest.split('/') {
                out.push('/');
                encode::push_raw_segment(out, s);
            }
        }
    }
    if out.len() == start {
        out.push('/');
    }
    Ok(())
}

/// Appends `?` and the backend query (if any).
fn push_query(
    out: &mut String,
    api: &ApiDefinition,
    input: &MappingInput<'_>,
    mapped: &[Output<'_>],
) {
    let mode = api.request.mode;
    if mode == RequestMode::Passthrough && mapped.is_empty() {
        if let Some(q) = input.query {
            out.push('?');
            out.push_str(q);
        }
        return;
    }
    // Written straight after the path; the `?` is taken back if no pair follows.
    let start = out.len();
    out.push('?');
    if mode != RequestMode::Mapping
        && let Some(q) = input.query
    {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).as_bytes();
            let dropped = mapped.iter().any(|o| encode::name_is(name, o.name))
                || (mode == RequestMode::MappingPassthrough
                    && api.parameters.iter().any(|p| {
                        p.location == ParamLocation::Query && encode::name_is(name, &p.name)
                    }));
            if !dropped {
                if out.len() > start + 1 {
                    out.push('&');
                }
                out.push_str(pair);
            }
        }
    }
    for o in mapped {
        if out.len() > start + 1 {
            out.push('&');
        }
        encode::push_pair(out, o.name, &o.value);
    }
    if out.len() == start + 1 {
        out.truncate(start);
    }
}

/// Decides the body.
fn map_body(
    api: &ApiDefinition,
    client: &ClientBody<'_>,
    mapped: &[Output<'_>],
) -> Result<BodyAction, MappingError> {
    let mode = api.request.mode;
    if !body_capable(api) {
        if let Some(o) = mapped.first() {
            return Err(MappingError::Config {
                reason: format!(
                    "`{}` is sent in the body, which the STREAM body format leaves alone",
                    o.name
                ),
            });
        }
        return Ok(BodyAction::Keep);
    }
    // Whether the API declares form fields of its own (read from, or mapped to, the body).
    let declares_body = mode != RequestMode::Passthrough
        && api.parameters.iter().any(|p| {
            p.location == ParamLocation::Body || p.backend_location() == ParamLocation::Body
        });
    if mapped.is_empty() && !declares_body {
        return Ok(BodyAction::Keep);
    }
    let mut form = String::new();
    match client {
        ClientBody::Form(data) => {
            let keep_unknown = mode != RequestMode::Mapping || !declares_body;
            if keep_unknown {
                for (pair, name, _) in encode::pairs(data) {
                    let dropped = mapped.iter().any(|o| encode::name_is(name, o.name))
                        || (mode == RequestMode::MappingPassthrough
                            && api.parameters.iter().any(|p| {
                                p.location == ParamLocation::Body && encode::name_is(name, &p.name)
                            }));
                    if !dropped {
                        if !form.is_empty() {
                            form.push('&');
                        }
                        let pair =
                            std::str::from_utf8(pair).map_err(|_| MappingError::InvalidBody {
                                reason: "form data is not valid UTF-8".to_owned(),
                            })?;
                        form.push_str(pair);
                    }
                }
            }
        }
        ClientBody::Empty => {
            if mapped.is_empty() {
                return Ok(BodyAction::Keep);
            }
        }
        ClientBody::Opaque => {
            if mode == RequestMode::Mapping && declares_body {
                // the body is undeclared content: dropped, like undeclared fields
            } else if let Some(o) = mapped.iter().find(|o| o.from.is_some()) {
                return Err(MappingError::InvalidBody {
                    reason: format!(
                        "`{}` must be sent in an application/x-www-form-urlencoded body",
                        o.from.unwrap_or(o.name)
                    ),
                });
            } else {
                // constants and system parameters are not added to a body that is not a form
                return Ok(BodyAction::Keep);
            }
        }
    }
    encode::append_pairs(&mut form, mapped.iter().map(|o| (o.name, &*o.value)));
    Ok(BodyAction::Replace(Bytes::from(form)))
}

/// Sets Content-Type (and, for a replaced body, the framing headers).
fn apply_content_type(
    api: &ApiDefinition,
    input: &MappingInput<'_>,
    body: &BodyAction,
    headers: &mut HeaderMap,
) -> Result<(), MappingError> {
    let custom = match api.backend.content_type {
        ContentTypePolicy::Custom => match api.backend.content_type_value.as_deref() {
            Some(v) => Some(HeaderValue::from_str(v).map_err(|_| MappingError::Config {
                reason: "backend.content_type_value is not a valid header value".to_owned(),
            })?),
            None => None,
        },
        _ => None,
    };
    match body {
        BodyAction::Replace(bytes) => {
            headers.remove(header::TRANSFER_ENCODING);
            headers.remove(header::CONTENT_ENCODING);
            headers.remove("content-md5");
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            if let Some(v) = custom {
                headers.insert(header::CONTENT_TYPE, v);
            } else if bytes.is_empty() {
                headers.remove(header::CONTENT_TYPE);
            } else {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(FORM_CONTENT_TYPE),
                );
            }
        }
        BodyAction::Keep => match api.backend.content_type {
            ContentTypePolicy::Client => {}
            ContentTypePolicy::Default => {
                if announces_body(input.headers) || input.form_body.is_some_and(|b| !b.is_empty()) {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(FORM_CONTENT_TYPE),
                    );
                }
            }
            ContentTypePolicy::Custom => {
                if let Some(v) = custom {
                    headers.insert(header::CONTENT_TYPE, v);
                }
            }
        },
    }
    Ok(())
}
