//! Tests of request mapping: every mode, every location in and out, the rules, the body and
//! Content-Type handling, hostile input.

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use super::*;
use crate::model::{BackendId, ConstantParameter, GroupId, ParamType, SystemParameter};

fn api(method: &str, path: &str, mode: RequestMode) -> ApiDefinition {
    let mut a = ApiDefinition::new(
        GroupId::generate(),
        "testApi",
        method,
        path,
        BackendId::generate(),
    )
    .unwrap();
    a.request.mode = mode;
    a
}

fn param(name: &str, loc: ParamLocation) -> RequestParameter {
    RequestParameter {
        name: name.into(),
        location: loc,
        ..RequestParameter::default()
    }
}

fn moved(name: &str, loc: ParamLocation, to: &str, to_loc: ParamLocation) -> RequestParameter {
    RequestParameter {
        backend_name: Some(to.into()),
        backend_location: Some(to_loc),
        ..param(name, loc)
    }
}

/// A request to map: owns what [`MappingInput`] borrows.
struct Req {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    path_params: Vec<(String, String)>,
    rest: Option<String>,
    body: Option<Vec<u8>>,
}

impl Req {
    fn new(path: &str, query: Option<&str>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: query.map(Into::into),
            headers: HeaderMap::new(),
            path_params: Vec::new(),
            rest: None,
            body: None,
        }
    }
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
        self
    }
    fn path_param(mut self, k: &str, raw: &str) -> Self {
        self.path_params.push((k.into(), raw.into()));
        self
    }
    fn form(mut self, body: &str) -> Self {
        self.method = Method::POST;
        self.body = Some(body.as_bytes().to_vec());
        self.header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", &body.len().to_string())
    }
    fn with_input<T>(&self, f: impl FnOnce(&MappingInput<'_>) -> T) -> T {
        let path_params: Vec<(&str, &str)> = self
            .path_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f(&MappingInput {
            method: &self.method,
            request_path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            path_params: &path_params,
            rest: self.rest.as_deref(),
            form_body: self.body.as_deref(),
        })
    }
}

fn sys() -> SystemValues<'static> {
    SystemValues {
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        request_id: "req-123",
        stage: &Stage::TEST,
        api_name: "testApi",
        app_id: Some("app-9"),
        domain: Some("api.example.com"),
        scheme: "https",
        handle_time_ms: 1_700_000_000_123,
    }
}

fn run(a: &ApiDefinition, r: &Req) -> Result<MappedRequest, MappingError> {
    let compiled = Compiled::compile(a).unwrap();
    r.with_input(|i| map_request(a, &compiled, i, &sys()))
}

fn ok(a: &ApiDefinition, r: &Req) -> MappedRequest {
    run(a, r).unwrap()
}

fn err(a: &ApiDefinition, r: &Req) -> MappingError {
    run(a, r).unwrap_err()
}

fn body_str(m: &MappedRequest) -> &str {
    match &m.body {
        BodyAction::Replace(b) => std::str::from_utf8(b).unwrap(),
        BodyAction::Keep => panic!("body kept"),
    }
}

// ---- PASSTHROUGH ----------------------------------------------------------------------------

#[test]
fn passthrough_forwards_everything() {
    let a = api("POST", "/users/[id]", RequestMode::Passthrough);
    let r = Req::new("/users/7", Some("a=1&a=2&b=%20x+y&&c"))
        .header("cookie", "s=1")
        .header("x-any", "v")
        .path_param("id", "7")
        .form("f=1");
    let m = ok(&a, &r);
    assert_eq!(m.path_and_query, "/users/7?a=1&a=2&b=%20x+y&&c");
    assert_eq!(m.headers, r.headers);
    assert_eq!(m.body, BodyAction::Keep);
    assert!(m.params.is_empty());
}

#[test]
fn passthrough_fills_backend_path_by_name() {
    let mut a = api("GET", "/users/[id]/orders/[oid]", RequestMode::Passthrough);
    a.backend.path = Some("/v1/[oid]/by/[id]".into());
    let r = Req::new("/users/u%201/orders/9", None)
        .path_param("id", "u%201")
        .path_param("oid", "9");
    assert_eq!(ok(&a, &r).path_and_query, "/v1/9/by/u%201");
}

#[test]
fn passthrough_keeps_empty_query_marker_and_missing_query() {
    let a = api("GET", "/x", RequestMode::Passthrough);
    assert_eq!(ok(&a, &Req::new("/x", Some(""))).path_and_query, "/x?");
    assert_eq!(ok(&a, &Req::new("/x", None)).path_and_query, "/x");
}

#[test]
fn passthrough_adds_constants_and_system_params_replacing_spoofed_ones() {
    let mut a = api("GET", "/x", RequestMode::Passthrough);
    a.constant_parameters.push(ConstantParameter {
        backend_name: "tenant".into(),
        value: "acme".into(),
        location: ParamLocation::Query,
        description: None,
    });
    a.constant_parameters.push(ConstantParameter {
        backend_name: "x-tier".into(),
        value: "gold".into(),
        location: ParamLocation::Head,
        description: None,
    });
    a.system_parameters.push(SystemParameter {
        name: SystemParam::CaClientIp,
        backend_name: "x-client-ip".into(),
        location: ParamLocation::Head,
    });
    let r = Req::new("/x", Some("tenant=evil&q=1"))
        .header("x-client-ip", "6.6.6.6")
        .header("x-tier", "free");
    let m = ok(&a, &r);
    assert_eq!(m.path_and_query, "/x?q=1&tenant=acme");
    assert_eq!(m.headers["x-client-ip"], "203.0.113.7");
    assert_eq!(m.headers.get_all("x-tier").iter().count(), 1);
    assert_eq!(m.headers["x-tier"], "gold");
}

#[test]
fn all_system_params() {
    let mut a = api("GET", "/x", RequestMode::Passthrough);
    let all = [
        (SystemParam::CaClientIp, "203.0.113.7"),
        (SystemParam::CaRequestId, "req-123"),
        (SystemParam::CaStage, "TEST"),
        (SystemParam::CaApiName, "testApi"),
        (SystemParam::CaAppId, "app-9"),
        (SystemParam::CaDomain, "api.example.com"),
        (SystemParam::CaHttpSchema, "https"),
        (SystemParam::CaRequestHandleTime, "1700000000123"),
    ];
    for (i, (name, _)) in all.iter().enumerate() {
        a.system_parameters.push(SystemParameter {
            name: *name,
            backend_name: format!("s{i}"),
            location: if i % 2 == 0 {
                ParamLocation::Head
            } else {
                ParamLocation::Query
            },
        });
    }
    let m = ok(&a, &Req::new("/x", None));
    for (i, (_, want)) in all.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(m.headers[format!("s{i}").as_str()], *want);
        } else {
            assert!(
                m.path_and_query.contains(&format!("s{i}={want}")),
                "{} lacks s{i}",
                m.path_and_query
            );
        }
    }
    // anonymous call without address: empty values
    let compiled = Compiled::compile(&a).unwrap();
    let r = Req::new("/x", None);
    let m = r
        .with_input(|i| map_request(&a, &compiled, i, &SystemValues::new("r", &Stage::PRE, "n")))
        .unwrap();
    assert_eq!(m.headers["s0"], "");
    assert_eq!(m.headers["s2"], "PRE");
    assert!(m.path_and_query.contains("s5="));
}

// ---- MAPPING: locations in and out ----------------------------------------------------------

#[test]
fn mapping_reads_every_location_and_writes_every_location() {
    let mut a = api("POST", "/items/[id]", RequestMode::Mapping);
    a.backend.path = Some("/backend/[pid]".into());
    a.parameters = vec![
        moved(
            "X-User",
            ParamLocation::Head,
            "q_user",
            ParamLocation::Query,
        ),
        moved("q", ParamLocation::Query, "x-q", ParamLocation::Head),
        moved("id", ParamLocation::Path, "b_id", ParamLocation::Body),
        moved("f", ParamLocation::Body, "pid", ParamLocation::Path),
    ];
    let r = Req::new("/items/a%2Fb", Some("q=hello+world&junk=1"))
        .header("x-user", "ann")
        .header("cookie", "c=1")
        .header("accept", "application/json")
        .header("x-forwarded-for", "1.2.3.4")
        .header("traceparent", "00-abc-def-01")
        .path_param("id", "a%2Fb")
        .form("f=..%2F&other=2");
    let m = ok(&a, &r);
    assert_eq!(m.path_and_query, "/backend/..%2F?q_user=ann");
    assert_eq!(m.headers["x-q"], "hello world");
    assert!(m.headers.get("cookie").is_none());
    assert!(m.headers.get("x-user").is_none());
    assert_eq!(m.headers["accept"], "application/json");
    assert_eq!(m.headers["x-forwarded-for"], "1.2.3.4");
    assert_eq!(m.headers["traceparent"], "00-abc-def-01");
    assert_eq!(body_str(&m), "b_id=a%2Fb");
    assert_eq!(m.headers["content-type"], FORM_CONTENT_TYPE);
    assert_eq!(m.headers["content-length"], "10");
    assert_eq!(
        m.params,
        [
            ("X-User".to_owned(), "ann".to_owned()),
            ("q".to_owned(), "hello world".to_owned()),
            ("id".to_owned(), "a/b".to_owned()),
            ("f".to_owned(), "../".to_owned()),
        ]
    );
}

#[test]
fn mapping_same_location_same_name() {
    let mut a = api("GET", "/u/[id]", RequestMode::Mapping);
    a.backend.path = Some("/user/[id]".into());
    a.parameters = vec![
        param("id", ParamLocation::Path),
        param("q", ParamLocation::Query),
        param("x-h", ParamLocation::Head),
    ];
    let r = Req::new("/u/5", Some("q=1&q=2&z=3"))
        .header("X-H", "v")
        .header("x-other", "o")
        .path_param("id", "5");
    let m = ok(&a, &r);
    assert_eq!(m.path_and_query, "/user/5?q=1");
    assert_eq!(m.headers["x-h"], "v");
    assert!(m.headers.get("x-other").is_none());
}

#[test]
fn mapping_query_names_and_values_are_decoded() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![moved(
        "a b",
        ParamLocation::Query,
        "c",
        ParamLocation::Query,
    )];
    // `a b` is not a valid declared name, but decoding must still work for the lookup
    a.parameters[0].name = "a.b".into();
    let m = ok(&a, &Req::new("/x", Some("a%2Eb=x%26y%3D+z")));
    assert_eq!(m.path_and_query, "/x?c=x%26y%3D+z");
    assert_eq!(m.params[0].1, "x&y= z");
}

#[test]
fn mapping_request_path_used_without_backend_path() {
    let mut a = api("GET", "/x/[id]", RequestMode::Mapping);
    a.parameters = vec![param("id", ParamLocation::Path)];
    let r = Req::new("/x/1", Some("drop=1")).path_param("id", "1");
    assert_eq!(ok(&a, &r).path_and_query, "/x/1");
}

// ---- defaults and required ------------------------------------------------------------------

#[test]
fn defaults_apply_when_absent_or_empty() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![
        RequestParameter {
            default: Some("10".into()),
            param_type: ParamType::Int,
            required: true,
            ..param("size", ParamLocation::Query)
        },
        RequestParameter {
            default: Some("en".into()),
            ..param("x-lang", ParamLocation::Head)
        },
        param("opt", ParamLocation::Query),
    ];
    let m = ok(&a, &Req::new("/x", Some("size=&opt=")));
    assert_eq!(m.path_and_query, "/x?size=10");
    assert_eq!(m.headers["x-lang"], "en");
    assert_eq!(m.params.len(), 2);
    let m = ok(&a, &Req::new("/x", Some("size=3")).header("x-lang", "de"));
    assert_eq!(m.path_and_query, "/x?size=3");
    assert_eq!(m.headers["x-lang"], "de");
}

#[test]
fn required_header_missing_is_i400mh() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![RequestParameter {
        required: true,
        ..param("X-Token", ParamLocation::Head)
    }];
    let e = err(&a, &Req::new("/x", None));
    assert_eq!(e.code(), crate::ErrorCode::I400MH.as_str());
    assert_eq!(e.wire_message(), "Header `X-Token` is Required");
    let e = err(&a, &Req::new("/x", None).header("x-token", ""));
    assert_eq!(e.code(), crate::ErrorCode::I400MH.as_str());
}

#[test]
fn required_query_path_body_missing_is_i400mp() {
    for loc in [
        ParamLocation::Query,
        ParamLocation::Body,
        ParamLocation::Path,
    ] {
        let mut a = api("POST", "/x/[p]", RequestMode::Mapping);
        a.parameters = vec![RequestParameter {
            required: true,
            ..param("p", loc)
        }];
        let r = Req::new("/x/", None).form("other=1");
        let e = err(&a, &r);
        assert_eq!(e.code(), crate::ErrorCode::I400MP.as_str(), "{loc:?}");
        assert_eq!(e.wire_message(), "Parameter `p` is Required");
        assert_eq!(
            e,
            MappingError::MissingParameter {
                name: "p".into(),
                location: loc
            }
        );
    }
}

// ---- validation rules -----------------------------------------------------------------------

fn rule_error(p: RequestParameter, value: &str) -> String {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![p];
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("v", value)
        .finish();
    let e = err(&a, &Req::new("/x", Some(&q)));
    assert_eq!(e.code(), crate::ErrorCode::I400IP.as_str());
    e.wire_message()
}

#[test]
fn each_rule_fails_with_its_message() {
    let base = || param("v", ParamLocation::Query);
    let cases: Vec<(RequestParameter, &str, &str)> = vec![
        (
            RequestParameter {
                param_type: ParamType::Int,
                ..base()
            },
            "x",
            "Invalid parameter `v`: must be a 32-bit integer",
        ),
        (
            RequestParameter {
                param_type: ParamType::Long,
                ..base()
            },
            "9223372036854775808",
            "Invalid parameter `v`: must be a 64-bit integer",
        ),
        (
            RequestParameter {
                param_type: ParamType::Float,
                ..base()
            },
            "NaN",
            "Invalid parameter `v`: must be a number",
        ),
        (
            RequestParameter {
                param_type: ParamType::Double,
                ..base()
            },
            "1,5",
            "Invalid parameter `v`: must be a number",
        ),
        (
            RequestParameter {
                param_type: ParamType::Boolean,
                ..base()
            },
            "1",
            "Invalid parameter `v`: must be `true` or `false`",
        ),
        (
            RequestParameter {
                min_length: Some(3),
                ..base()
            },
            "ab",
            "Invalid parameter `v`: must be at least 3 characters long",
        ),
        (
            RequestParameter {
                max_length: Some(3),
                ..base()
            },
            "abcd",
            "Invalid parameter `v`: must be at most 3 characters long",
        ),
        (
            RequestParameter {
                param_type: ParamType::Int,
                min_value: Some(18.0),
                ..base()
            },
            "17",
            "Invalid parameter `v`: must be at least 18",
        ),
        (
            RequestParameter {
                param_type: ParamType::Int,
                max_value: Some(150.0),
                ..base()
            },
            "151",
            "Invalid parameter `v`: must be at most 150",
        ),
        (
            RequestParameter {
                enum_values: vec!["1".into(), "2".into(), "9".into()],
                ..base()
            },
            "3",
            "Invalid parameter `v`: must be one of 1, 2, 9",
        ),
        (
            RequestParameter {
                regex: Some("[a-z]+".into()),
                ..base()
            },
            "abc1",
            "Invalid parameter `v`: must match `[a-z]+`",
        ),
    ];
    for (p, value, want) in cases {
        assert_eq!(rule_error(p, value), want);
    }
}

#[test]
fn regex_is_anchored_and_defaults_are_checked() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![RequestParameter {
        regex: Some("[0-9]{3}".into()),
        default: Some("12".into()),
        ..param("v", ParamLocation::Query)
    }];
    assert!(run(&a, &Req::new("/x", Some("v=123"))).is_ok());
    assert_eq!(
        err(&a, &Req::new("/x", Some("v=1234"))).code(),
        crate::ErrorCode::I400IP.as_str()
    );
    assert_eq!(
        err(&a, &Req::new("/x", None)).code(),
        crate::ErrorCode::I400IP.as_str()
    );
}

#[test]
fn missing_compiled_regex_is_a_config_error() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![RequestParameter {
        regex: Some("[0-9]+".into()),
        ..param("v", ParamLocation::Query)
    }];
    let r = Req::new("/x", Some("v=1"));
    let e = r
        .with_input(|i| map_request(&a, &Compiled::default(), i, &sys()))
        .unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::X500ER.as_str());
}

// ---- MAPPING_PASSTHROUGH --------------------------------------------------------------------

#[test]
fn mapping_passthrough_maps_declared_and_forwards_the_rest() {
    let mut a = api("POST", "/x", RequestMode::MappingPassthrough);
    a.parameters = vec![
        moved("uid", ParamLocation::Query, "userId", ParamLocation::Query),
        moved("x-a", ParamLocation::Head, "x-b", ParamLocation::Head),
        moved("f", ParamLocation::Body, "g", ParamLocation::Body),
        RequestParameter {
            param_type: ParamType::Int,
            ..param("n", ParamLocation::Query)
        },
    ];
    let r = Req::new("/x", Some("keep=1&uid=7&userId=spoof&n=3"))
        .header("x-a", "1")
        .header("cookie", "c")
        .form("f=v&other=o&g=spoof");
    let m = ok(&a, &r);
    assert_eq!(m.path_and_query, "/x?keep=1&userId=7&n=3");
    assert!(m.headers.get("x-a").is_none());
    assert_eq!(m.headers["x-b"], "1");
    assert_eq!(m.headers["cookie"], "c");
    assert_eq!(body_str(&m), "other=o&g=v");
    assert_eq!(m.headers["content-length"], "11");
    // declared values are still checked
    let e = err(&a, &Req::new("/x", Some("n=x")));
    assert_eq!(e.code(), crate::ErrorCode::I400IP.as_str());
}

#[test]
fn mapping_passthrough_without_body_params_keeps_body() {
    let mut a = api("POST", "/x", RequestMode::MappingPassthrough);
    a.parameters = vec![param("q", ParamLocation::Query)];
    let r = Req::new("/x", None).form("a=1");
    let m = ok(&a, &r);
    assert_eq!(m.body, BodyAction::Keep);
    assert_eq!(m.headers, r.headers);
}

// ---- body -----------------------------------------------------------------------------------

#[test]
fn stream_body_is_kept_and_body_targets_are_config_errors() {
    let mut a = api("POST", "/x", RequestMode::Mapping);
    a.request.body_format = Some(BodyFormat::Stream);
    a.parameters = vec![param("q", ParamLocation::Query)];
    let r = Req::new("/x", Some("q=1"))
        .header("content-type", "application/octet-stream")
        .header("content-length", "3");
    let m = ok(&a, &r);
    assert_eq!(m.body, BodyAction::Keep);
    assert_eq!(m.headers["content-type"], "application/octet-stream");
    assert!(!needs_form_body(&a));
    a.parameters = vec![moved("q", ParamLocation::Query, "b", ParamLocation::Body)];
    assert_eq!(err(&a, &r).code(), crate::ErrorCode::X500ER.as_str());
}

#[test]
fn mapping_to_body_without_client_body_creates_one() {
    let mut a = api("POST", "/x", RequestMode::Mapping);
    a.parameters = vec![moved("q", ParamLocation::Query, "b", ParamLocation::Body)];
    a.constant_parameters.push(ConstantParameter {
        backend_name: "c".into(),
        value: "k v".into(),
        location: ParamLocation::Body,
        description: None,
    });
    let m = ok(&a, &Req::new("/x", Some("q=é")));
    assert_eq!(body_str(&m), "b=%C3%A9&c=k+v");
    assert_eq!(m.headers["content-type"], FORM_CONTENT_TYPE);
}

#[test]
fn mapping_drops_an_opaque_body_when_body_params_are_declared() {
    let mut a = api("POST", "/x", RequestMode::Mapping);
    a.parameters = vec![param("f", ParamLocation::Body)];
    let r = Req::new("/x", None)
        .header("content-type", "application/json")
        .header("content-length", "2");
    let m = ok(&a, &r);
    assert_eq!(m.body, BodyAction::Replace(Bytes::new()));
    assert_eq!(m.headers["content-length"], "0");
    assert!(m.headers.get("content-type").is_none());
}

#[test]
fn body_targets_on_an_opaque_body_are_i400bd_in_passthrough_modes() {
    let mut a = api("POST", "/x", RequestMode::MappingPassthrough);
    a.parameters = vec![moved("q", ParamLocation::Query, "b", ParamLocation::Body)];
    let mut r = Req::new("/x", Some("q=1")).header("content-type", "application/json");
    r.body = Some(b"{}".to_vec());
    assert_eq!(err(&a, &r).code(), crate::ErrorCode::I400BD.as_str());
    // constants only: the opaque body is left alone
    let mut a = api("POST", "/x", RequestMode::Passthrough);
    a.constant_parameters.push(ConstantParameter {
        backend_name: "c".into(),
        value: "1".into(),
        location: ParamLocation::Body,
        description: None,
    });
    assert_eq!(ok(&a, &r).body, BodyAction::Keep);
    // ... but a form body gets the constant
    let r = Req::new("/x", None).form("a=1&c=spoof");
    let m = ok(&a, &r);
    assert_eq!(body_str(&m), "a=1&c=1");
}

#[test]
fn invalid_utf8_in_form_is_i400bd() {
    let mut a = api("POST", "/x", RequestMode::Mapping);
    a.parameters = vec![param("f", ParamLocation::Body)];
    let r = Req::new("/x", None).form("f=%FF");
    let e = err(&a, &r);
    assert_eq!(e.code(), crate::ErrorCode::I400BD.as_str());
    assert_eq!(
        e.wire_message(),
        "Invalid Body: field `f` is not valid UTF-8"
    );
    let mut a = api("POST", "/x", RequestMode::MappingPassthrough);
    a.parameters = vec![param("f", ParamLocation::Body)];
    let mut r = Req::new("/x", None).form("f=1");
    r.body = Some(b"f=1&x=\xff".to_vec());
    assert_eq!(err(&a, &r).code(), crate::ErrorCode::I400BD.as_str());
}

#[test]
fn needs_form_body_cases() {
    let mut a = api("POST", "/x", RequestMode::Passthrough);
    a.parameters = vec![param("f", ParamLocation::Body)];
    assert!(!needs_form_body(&a), "passthrough reads no parameters");
    a.request.mode = RequestMode::Mapping;
    assert!(needs_form_body(&a));
    a.parameters = vec![moved("q", ParamLocation::Query, "b", ParamLocation::Body)];
    assert!(needs_form_body(&a));
    a.parameters = vec![param("q", ParamLocation::Query)];
    assert!(!needs_form_body(&a));
    a.system_parameters.push(SystemParameter {
        name: SystemParam::CaRequestId,
        backend_name: "rid".into(),
        location: ParamLocation::Body,
    });
    assert!(needs_form_body(&a));
    a.request.body_format = Some(BodyFormat::Stream);
    assert!(!needs_form_body(&a));
}

// ---- Content-Type policy --------------------------------------------------------------------

#[test]
fn content_type_policies() {
    let mut a = api("POST", "/x", RequestMode::Passthrough);
    let r = Req::new("/x", None)
        .header("content-type", "application/json")
        .header("content-length", "2");
    assert_eq!(ok(&a, &r).headers["content-type"], "application/json");
    a.backend.content_type = ContentTypePolicy::Default;
    assert_eq!(ok(&a, &r).headers["content-type"], FORM_CONTENT_TYPE);
    // no body: nothing to describe
    let get = Req::new("/x", None);
    assert!(ok(&a, &get).headers.get("content-type").is_none());
    a.backend.content_type = ContentTypePolicy::Custom;
    a.backend.content_type_value = Some("text/plain; charset=UTF-8".into());
    assert_eq!(
        ok(&a, &r).headers["content-type"],
        "text/plain; charset=UTF-8"
    );
    // custom wins over a rebuilt form body too
    a.request.mode = RequestMode::Mapping;
    a.parameters = vec![param("f", ParamLocation::Body)];
    let m = ok(&a, &Req::new("/x", None).form("f=1"));
    assert_eq!(m.headers["content-type"], "text/plain; charset=UTF-8");
    assert_eq!(body_str(&m), "f=1");
}

// ---- backend path ---------------------------------------------------------------------------

#[test]
fn hostile_values_stay_one_path_segment() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.backend.path = Some("/files/[name]/meta".into());
    a.parameters = vec![moved(
        "n",
        ParamLocation::Query,
        "name",
        ParamLocation::Path,
    )];
    let cases = [
        ("../../etc/passwd", "/files/..%2F..%2Fetc%2Fpasswd/meta"),
        ("..", "/files/%2E%2E/meta"),
        (".", "/files/%2E/meta"),
        ("a?b=1#frag", "/files/a%3Fb%3D1%23frag/meta"),
        ("a b", "/files/a%20b/meta"),
        ("100%", "/files/100%25/meta"),
        ("日本語", "/files/%E6%97%A5%E6%9C%AC%E8%AA%9E/meta"),
        ("a\\b", "/files/a%5Cb/meta"),
    ];
    for (value, want) in cases {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", value)
            .finish();
        let m = ok(&a, &Req::new("/x", Some(&q)));
        assert_eq!(m.path_and_query, want, "{value}");
        assert!(http::uri::PathAndQuery::try_from(m.path_and_query.as_str()).is_ok());
    }
}

#[test]
fn raw_path_params_are_normalised_into_one_segment() {
    let mut a = api("GET", "/x/[id]", RequestMode::Passthrough);
    a.backend.path = Some("/y/[id]".into());
    for (raw, want) in [
        ("%2E%2E", "/y/%2E%2E"),
        ("..", "/y/%2E%2E"),
        ("a%2Fb", "/y/a%2Fb"),
        ("%E6%97%A5", "/y/%E6%97%A5"),
        ("a%3Fb", "/y/a%3Fb"),
        ("a:b@c", "/y/a%3Ab%40c"),
    ] {
        let r = Req::new("/x/_", None).path_param("id", raw);
        assert_eq!(ok(&a, &r).path_and_query, want, "{raw}");
    }
}

#[test]
fn unfilled_placeholder_is_x500er() {
    let mut a = api("GET", "/x", RequestMode::Passthrough);
    a.backend.path = Some("/y/[missing]".into());
    let e = err(&a, &Req::new("/x", None));
    assert_eq!(e.code(), crate::ErrorCode::X500ER.as_str());
    assert_eq!(e.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(e.wire_message(), "Internal Error");
    // an optional mapped value that is absent leaves the placeholder empty too
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.backend.path = Some("/y/[p]".into());
    a.parameters = vec![moved("q", ParamLocation::Query, "p", ParamLocation::Path)];
    assert_eq!(
        err(&a, &Req::new("/x", None)).code(),
        crate::ErrorCode::X500ER.as_str()
    );
    assert_eq!(ok(&a, &Req::new("/x", Some("q=v"))).path_and_query, "/y/v");
}

#[test]
fn match_all_backend_path_takes_the_rest() {
    let mut a = api("GET", "/static/*", RequestMode::Passthrough);
    a.backend.path = Some("/bucket/*".into());
    let mut r = Req::new("/static/a/b%20c/../d", Some("v=1"));
    r.rest = Some("a/b%20c/../d".into());
    assert_eq!(ok(&a, &r).path_and_query, "/bucket/a/b%20c/%2E%2E/d?v=1");
    r.rest = None;
    assert_eq!(ok(&a, &r).path_and_query, "/bucket?v=1");
}

#[test]
fn backend_path_without_compiled_template_is_parsed_on_the_fly() {
    let mut a = api("GET", "/x/[id]", RequestMode::Passthrough);
    a.backend.path = Some("/y/[id]".into());
    let r = Req::new("/x/1", None).path_param("id", "1");
    let m = r
        .with_input(|i| map_request(&a, &Compiled::default(), i, &sys()))
        .unwrap();
    assert_eq!(m.path_and_query, "/y/1");
}

// ---- header writing -------------------------------------------------------------------------

#[test]
fn values_that_cannot_be_headers_are_i400ip() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![moved("q", ParamLocation::Query, "x-q", ParamLocation::Head)];
    let e = err(&a, &Req::new("/x", Some("q=a%0D%0Ainjected:1")));
    assert_eq!(e.code(), crate::ErrorCode::I400IP.as_str());
    assert_eq!(
        e.wire_message(),
        "Invalid parameter `q`: cannot be sent in a header"
    );
}

// ---- hostile and oversized input ------------------------------------------------------------

#[test]
fn ten_thousand_query_params() {
    let mut q = String::new();
    for i in 0..10_000 {
        q.push_str(&format!("p{i}=%{i:02X}&"));
    }
    q.push_str("want=yes");
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = (0..100)
        .map(|i| param(&format!("n{i}"), ParamLocation::Query))
        .chain([param("want", ParamLocation::Query)])
        .collect();
    let m = ok(&a, &Req::new("/x", Some(&q)));
    assert_eq!(m.path_and_query, "/x?want=yes");
    a.request.mode = RequestMode::MappingPassthrough;
    let m = ok(&a, &Req::new("/x", Some(&q)));
    assert!(m.path_and_query.ends_with("&want=yes"));
    a.request.mode = RequestMode::Passthrough;
    let m = ok(&a, &Req::new("/x", Some(&q)));
    assert_eq!(m.path_and_query, format!("/x?{q}"));
}

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let mut a = api("GET", "/x/[p]", RequestMode::Mapping);
    a.parameters = vec![
        param("q", ParamLocation::Query),
        param("p", ParamLocation::Path),
        param("x-h", ParamLocation::Head),
    ];
    let e = err(&a, &Req::new("/x/1", Some("q=%FF%FE")).path_param("p", "1"));
    assert_eq!(
        e.wire_message(),
        "Invalid parameter `q`: must be valid UTF-8"
    );
    let e = err(&a, &Req::new("/x/1", None).path_param("p", "%C3%28"));
    assert_eq!(
        e.wire_message(),
        "Invalid parameter `p`: must be valid UTF-8"
    );
    let mut r = Req::new("/x/1", None).path_param("p", "1");
    r.headers
        .insert("x-h", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    assert_eq!(
        err(&a, &r).wire_message(),
        "Invalid parameter `x-h`: must be valid UTF-8"
    );
    // undeclared junk is not looked at in MAPPING, and forwarded raw otherwise
    let m = ok(
        &a,
        &Req::new("/x/1", Some("z=%FF&q=ok")).path_param("p", "1"),
    );
    assert_eq!(m.path_and_query, "/x/1?q=ok");
    a.request.mode = RequestMode::MappingPassthrough;
    let m = ok(
        &a,
        &Req::new("/x/1", Some("%FF=%FF&q=ok")).path_param("p", "1"),
    );
    assert_eq!(m.path_and_query, "/x/1?%FF=%FF&q=ok");
}

#[test]
fn huge_header_values() {
    let huge = "a".repeat(1 << 20);
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![RequestParameter {
        max_length: Some(4096),
        regex: Some("[a-z]+".into()),
        ..param("x-big", ParamLocation::Head)
    }];
    let e = err(&a, &Req::new("/x", None).header("x-big", &huge));
    assert_eq!(
        e.wire_message(),
        "Invalid parameter `x-big`: must be at most 4096 characters long"
    );
    a.parameters[0].max_length = None;
    let m = ok(&a, &Req::new("/x", None).header("x-big", &huge));
    assert_eq!(m.headers["x-big"].len(), 1 << 20);
    a.request.mode = RequestMode::Passthrough;
    let r = Req::new("/x", None).header("x-other", &huge);
    assert_eq!(ok(&a, &r).headers, r.headers);
}

// ---- property: PASSTHROUGH never changes the query or headers -------------------------------

fn header_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,15}"
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn passthrough_never_changes_query_or_headers(
        query in proptest::option::of("[ -~]{0,80}".prop_filter("no fragment", |q| !q.contains('#'))),
        hs in proptest::collection::vec((header_name(), header_value()), 0..12),
        id in "[ -~]{1,20}",
        content_type in 0usize..3,
    ) {
        let mut a = api("POST", "/x/[id]", RequestMode::Passthrough);
        a.backend.path = Some("/b/[id]".into());
        let mut r = Req::new("/x/1", query.as_deref());
        for (k, v) in &hs {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        r.path_params.push(("id".into(), id));
        if content_type == 1 {
            r.body = Some(b"a=1".to_vec());
        }
        let m = ok(&a, &r);
        let (path, q) = match m.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (m.path_and_query.as_str(), None),
        };
        prop_assert_eq!(q, query.as_deref());
        prop_assert_eq!(&m.headers, &r.headers);
        prop_assert_eq!(m.body, BodyAction::Keep);
        prop_assert!(path.starts_with("/b/"));
        prop_assert_eq!(path.matches('/').count(), 2);
        prop_assert!(path != "/b/." && path != "/b/..");
    }
}

// ---- compiled header names ------------------------------------------------------------------

#[test]
fn header_names_compiled_or_not_map_the_same() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![
        moved(
            "q",
            ParamLocation::Query,
            "X-From-Query",
            ParamLocation::Head,
        ),
        // Not sent: an optional parameter without a value still has its slot in the list.
        moved(
            "absent",
            ParamLocation::Query,
            "X-Absent",
            ParamLocation::Head,
        ),
        moved("h", ParamLocation::Head, "x-to-query", ParamLocation::Query),
        moved("p", ParamLocation::Query, "X-Last", ParamLocation::Head),
    ];
    a.constant_parameters = vec![ConstantParameter {
        backend_name: "X-Const".into(),
        value: "c".into(),
        location: ParamLocation::Head,
        description: None,
    }];
    a.system_parameters = vec![SystemParameter {
        name: SystemParam::CaStage,
        backend_name: "X-Stage".into(),
        location: ParamLocation::Head,
    }];
    let compiled = Compiled::compile(&a).unwrap();
    let names: Vec<_> = compiled
        .header_names
        .iter()
        .map(|h| h.as_ref().map(HeaderName::as_str))
        .collect();
    assert_eq!(
        names,
        [
            Some("x-from-query"),
            Some("x-absent"),
            None,
            Some("x-last"),
            Some("x-const"),
            Some("x-stage")
        ]
    );
    let r = Req::new("/x", Some("q=1&p=3")).header("h", "2");
    let with = r
        .with_input(|i| map_request(&a, &compiled, i, &sys()))
        .unwrap();
    let without = r
        .with_input(|i| map_request(&a, &Compiled::default(), i, &sys()))
        .unwrap();
    assert_eq!(with.headers, without.headers);
    assert_eq!(with.path_and_query, without.path_and_query);
    assert_eq!(with.headers["x-from-query"], "1");
    assert_eq!(with.headers["x-last"], "3");
    assert_eq!(with.headers["x-const"], "c");
    assert_eq!(with.headers["x-stage"], "TEST");
    assert!(!with.headers.contains_key("x-absent"));
    assert_eq!(with.path_and_query, "/x?x-to-query=2");
    assert_eq!(
        with.params,
        [
            ("q".to_owned(), "1".to_owned()),
            ("h".to_owned(), "2".to_owned()),
            ("p".to_owned(), "3".to_owned())
        ]
    );
}

#[test]
fn an_invalid_backend_header_name_is_a_config_error_compiled_or_not() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.constant_parameters = vec![ConstantParameter {
        backend_name: "bad header".into(),
        value: "c".into(),
        location: ParamLocation::Head,
        description: None,
    }];
    let compiled = Compiled::compile(&a).unwrap();
    assert_eq!(compiled.header_names, [None]);
    let r = Req::new("/x", None);
    for c in [&compiled, &Compiled::default()] {
        let e = r.with_input(|i| map_request(&a, c, i, &sys())).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::X500ER.as_str());
        assert!(e.to_string().contains("bad header"), "{e}");
    }
}

#[test]
fn header_names_compiled_for_another_api_are_not_used() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![moved(
        "q",
        ParamLocation::Query,
        "X-Right",
        ParamLocation::Head,
    )];
    let mut other = a.clone();
    other.parameters[0].backend_name = Some("X-Wrong".into());
    let wrong = Compiled::compile(&other).unwrap();
    let r = Req::new("/x", Some("q=1"));
    let m = r
        .with_input(|i| map_request(&a, &wrong, i, &sys()))
        .unwrap();
    assert_eq!(m.headers["x-right"], "1");
    assert!(!m.headers.contains_key("x-wrong"));
}

#[test]
fn the_data_plane_may_leave_params_out() {
    let mut a = api("GET", "/x", RequestMode::Mapping);
    a.parameters = vec![param("q", ParamLocation::Query)];
    let compiled = Compiled::compile(&a).unwrap();
    let r = Req::new("/x", Some("q=1"));
    let options = MapOptions {
        client_headers: true,
        params: false,
    };
    let m = r
        .with_input(|i| map_request_with(&a, &compiled, i, &sys(), options))
        .unwrap();
    assert!(m.params.is_empty());
    assert_eq!(m.path_and_query, "/x?q=1");
}
