//! Parameter mapping (`map_request`) with fuzzed paths, queries, headers and bodies against
//! three fixed APIs, one per request mode.
//!
//! Input: a request in the format of `stagegate_fuzz` (see `src/lib.rs`). The segments of its
//! path become the matched path parameters (and sub-path) as the router would hand them over
//! (never empty).
//!
//! Properties:
//! * mapping is deterministic and never panics; a refusal is a 4xx, never a configuration
//!   error (the APIs are valid);
//! * the backend target is a valid path and query; each backend path segment is the
//!   template's literal or a value of unreserved characters and `%XX` escapes that is not a
//!   dot segment, and decodes to what the client's value decodes to;
//! * resolved values obey their rules (type, range, enum, pattern, length);
//! * in `MAPPING` mode only allowlisted client headers reach the backend;
//! * a replaced body is a form whose `Content-Length` is right.

#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName};
use libfuzzer_sys::fuzz_target;
use stagegate::routing::Compiled;
use stagegate::{
    mapping::{
        BodyAction, MAPPING_HEADER_ALLOWLIST, MAPPING_HEADER_PREFIXES, MappingError, MappingInput,
        SystemValues, map_request, needs_form_body,
    },
    model::{
        ApiDefinition, BackendId, ConstantParameter, GroupId, ParamLocation, ParamType,
        RequestMode, RequestParameter, Segment, Stage, SystemParam, SystemParameter,
    },
};
use stagegate_fuzz::{parse_request, percent_decode};

fn param(name: &str, location: ParamLocation) -> RequestParameter {
    RequestParameter {
        name: name.into(),
        location,
        ..Default::default()
    }
}

/// The three APIs and their compiled data.
static APIS: LazyLock<Vec<(ApiDefinition, Compiled)>> = LazyLock::new(|| {
    let new = |name: &str, method: &str, path: &str, mode, backend: Option<&str>| {
        let mut api = ApiDefinition::new(
            GroupId::generate(),
            name,
            method,
            path,
            BackendId::generate(),
        )
        .expect("a valid API");
        api.request.mode = mode;
        api.backend.path = backend.map(Into::into);
        api
    };

    let mut mapped = new(
        "mapped",
        "POST",
        "/users/[id]/docs/[name]",
        RequestMode::Mapping,
        Some("/v2/[uid]/d/[doc]"),
    );
    mapped.parameters = vec![
        RequestParameter {
            param_type: ParamType::Long,
            required: true,
            backend_name: Some("uid".into()),
            ..param("id", ParamLocation::Path)
        },
        RequestParameter {
            backend_name: Some("doc".into()),
            ..param("name", ParamLocation::Path)
        },
        RequestParameter {
            default: Some("x".into()),
            backend_name: Some("x-q".into()),
            backend_location: Some(ParamLocation::Head),
            ..param("q", ParamLocation::Query)
        },
        RequestParameter {
            param_type: ParamType::Int,
            min_value: Some(1.0),
            max_value: Some(100.0),
            backend_name: Some("num".into()),
            ..param("n", ParamLocation::Query)
        },
        RequestParameter {
            enum_values: vec!["a".into(), "b".into()],
            backend_name: Some("tag".into()),
            backend_location: Some(ParamLocation::Query),
            ..param("x-tag", ParamLocation::Head)
        },
        RequestParameter {
            regex: Some("[a-z]{0,8}".into()),
            backend_name: Some("field".into()),
            ..param("f", ParamLocation::Body)
        },
        RequestParameter {
            param_type: ParamType::Boolean,
            backend_location: Some(ParamLocation::Body),
            ..param("flag", ParamLocation::Query)
        },
        RequestParameter {
            max_length: Some(16),
            backend_name: Some("h".into()),
            backend_location: Some(ParamLocation::Query),
            ..param("x-h", ParamLocation::Head)
        },
    ];
    mapped.constant_parameters = vec![ConstantParameter {
        backend_name: "x-const".into(),
        value: "1".into(),
        location: ParamLocation::Head,
        description: None,
    }];
    mapped.system_parameters = vec![SystemParameter {
        name: SystemParam::CaRequestId,
        backend_name: "x-rid".into(),
        location: ParamLocation::Head,
    }];

    let passthrough = new(
        "passthrough",
        "GET",
        "/files/[name]/*",
        RequestMode::Passthrough,
        Some("/store/[name]/*"),
    );

    let mut both = new(
        "both",
        "GET",
        "/m/[id]",
        RequestMode::MappingPassthrough,
        None,
    );
    both.parameters = vec![
        param("id", ParamLocation::Path),
        RequestParameter {
            backend_name: Some("x-q".into()),
            backend_location: Some(ParamLocation::Head),
            ..param("q", ParamLocation::Query)
        },
        RequestParameter {
            param_type: ParamType::Double,
            backend_location: Some(ParamLocation::Query),
            ..param("x-d", ParamLocation::Head)
        },
    ];

    [mapped, passthrough, both]
        .into_iter()
        .map(|api| {
            api.validate().expect("a valid API");
            let compiled = Compiled::compile(&api).expect("compiles");
            (api, compiled)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some(req) = parse_request(data) else {
        return;
    };
    let segments: Vec<&str> = req.uri.path().split('/').skip(1).collect();
    let first = segments.first().copied().unwrap_or_default();
    let second = segments.get(1).copied().unwrap_or_default();
    let rest_from = |i: usize| segments.get(i..).map(|s| s.join("/")).unwrap_or_default();
    let query = req.uri.query();
    let sys = SystemValues::new("req-1", &Stage::TEST, "api");

    for (api, compiled) in APIS.iter() {
        // What the router hands over for this API's template.
        let (request_path, params, rest): (String, Vec<(&str, &str)>, Option<String>) =
            match api.name.as_str() {
                "mapped" => (
                    format!("/users/{first}/docs/{second}"),
                    vec![("id", first), ("name", second)],
                    None,
                ),
                "passthrough" => {
                    let rest = rest_from(1);
                    (
                        format!("/files/{first}/{rest}"),
                        vec![("name", first)],
                        Some(rest),
                    )
                }
                _ => (format!("/m/{first}"), vec![("id", first)], None),
            };
        // The router never hands over an empty parameter or an empty sub-path.
        if params.iter().any(|(_, v)| v.is_empty()) || rest.as_deref() == Some("") {
            continue;
        }
        let form = needs_form_body(api).then_some(req.body.as_slice());
        let input = MappingInput {
            path_params: &params,
            rest: rest.as_deref(),
            form_body: form,
            ..MappingInput::new(&req.method, &request_path, query, &req.headers)
        };
        let result = map_request(api, compiled, &input, &sys);
        let again = map_request(api, compiled, &input, &sys);
        match (&result, &again) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.path_and_query, b.path_and_query);
                assert_eq!(a.headers, b.headers);
                assert_eq!(a.body, b.body);
                assert_eq!(a.params, b.params);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("not deterministic: {result:?} then {again:?}"),
        }
        let mapped = match result {
            Ok(m) => m,
            Err(e) => {
                assert!(!matches!(e, MappingError::Config { .. }), "{e:?}");
                assert!(e.status().is_client_error(), "{e:?}");
                continue;
            }
        };

        assert!(
            mapped
                .path_and_query
                .parse::<http::uri::PathAndQuery>()
                .is_ok(),
            "not a valid target: {:?}",
            mapped.path_and_query
        );
        let path = mapped
            .path_and_query
            .split_once('?')
            .map_or(mapped.path_and_query.as_str(), |(p, _)| p);
        check_path(
            api,
            path,
            &params,
            rest.as_deref(),
            &request_path,
            &mapped.params,
        );
        check_values(&api.name, &mapped.params);

        if api.request.mode == RequestMode::Mapping {
            check_mapping_headers(&mapped.headers);
        }
        if let BodyAction::Replace(body) = &mapped.body {
            assert!(std::str::from_utf8(body).is_ok());
            assert_eq!(
                mapped
                    .headers
                    .get("content-length")
                    .map(|v| v.as_bytes().to_vec()),
                Some(body.len().to_string().into_bytes())
            );
        }
    }
});

/// A value written into a backend path segment: unreserved characters and `%XX` escapes, and
/// not a dot segment.
fn safe_segment(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => i += 1,
            b'%' if b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                i += 3;
            }
            _ => return false,
        }
    }
    s != "." && s != ".."
}

fn check_path(
    api: &ApiDefinition,
    path: &str,
    params: &[(&str, &str)],
    rest: Option<&str>,
    request_path: &str,
    resolved: &[(String, String)],
) {
    let Some(template) = api.backend.path.as_deref() else {
        assert_eq!(
            path, request_path,
            "no backend path: the request path goes on"
        );
        return;
    };
    let template = stagegate::model::PathTemplate::parse(template).expect("a valid backend path");
    let mut out = path.split('/').skip(1);
    for segment in template.segments() {
        let got = out.next().expect("every template segment is written");
        match segment {
            Segment::Literal(l) => assert_eq!(got, l),
            Segment::Param(name) => {
                assert!(safe_segment(got), "unsafe segment {got:?} for [{name}]");
                // the client's value: mapped (by its backend name) or raw from the router
                let client = api
                    .parameters
                    .iter()
                    .find(|p| {
                        p.backend_name() == name && p.backend_location() == ParamLocation::Path
                    })
                    .and_then(|p| resolved.iter().find(|(n, _)| *n == p.name))
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .or_else(|| {
                        params
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, raw)| percent_decode(raw.as_bytes()))
                    })
                    .expect("a value for every placeholder");
                assert_eq!(
                    percent_decode(got.as_bytes()),
                    client,
                    "[{name}] changed meaning"
                );
            }
        }
    }
    if template.match_all() {
        let raw_rest: Vec<&str> = match rest.map(|r| r.strip_prefix('/').unwrap_or(r)) {
            None | Some("") => Vec::new(),
            Some(r) => r.split('/').collect(),
        };
        let written: Vec<&str> = out.collect();
        assert_eq!(written.len(), raw_rest.len(), "the sub-path changed shape");
        for (got, raw) in written.iter().zip(raw_rest) {
            assert!(
                got.is_empty() || safe_segment(got),
                "unsafe sub-path segment {got:?}"
            );
            assert_eq!(
                percent_decode(got.as_bytes()),
                percent_decode(raw.as_bytes())
            );
        }
    } else {
        assert_eq!(out.next(), None, "more segments than the template");
    }
}

fn check_values(api: &str, params: &[(String, String)]) {
    for (name, value) in params {
        let ok = match (api, name.as_str()) {
            ("mapped", "id") => value.parse::<i64>().is_ok(),
            ("mapped", "n") => value.parse::<i32>().is_ok_and(|n| (1..=100).contains(&n)),
            ("mapped", "x-tag") => value == "a" || value == "b",
            ("mapped", "f") => value.len() <= 8 && value.bytes().all(|b| b.is_ascii_lowercase()),
            ("mapped", "flag") => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            ("mapped", "x-h") => value.chars().count() <= 16,
            ("both", "x-d") => value.parse::<f64>().is_ok_and(f64::is_finite),
            _ => true,
        };
        assert!(ok, "{api}: {name} = {value:?} breaks its rule");
    }
}

fn check_mapping_headers(headers: &HeaderMap) {
    let added = ["x-q", "x-const", "x-rid", "content-type", "content-length"];
    for name in headers.keys().map(HeaderName::as_str) {
        assert!(
            added.contains(&name)
                || MAPPING_HEADER_ALLOWLIST.contains(&name)
                || MAPPING_HEADER_PREFIXES.iter().any(|p| name.starts_with(p)),
            "client header {name} reached a MAPPING backend"
        );
    }
}
