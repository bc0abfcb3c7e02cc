//! Form and query decoding: the parameters of the string to sign, the `AppCode` query
//! parameter, and the declared query and form parameters of parameter mapping, each against a
//! reference decoder (`form_urlencoded`, or a strict one for mapping).
//!
//! Input: two fields separated by the first `\n`: the raw query string (without `?`), then
//! the raw form body (bytes, to the end).
//!
//! Properties:
//! * the parameter part of `string_to_sign` (query alone, and query with the form) equals the
//!   spec's reading, decoded by `form_urlencoded` (sorted, first value wins, form before query);
//! * `appcode_from_request` finds exactly the first `AppCode` query value;
//! * `map_request` reads exactly the first value of each declared query and form parameter
//!   (empty counts as absent; not UTF-8 is a 4xx error, never a panic or a 5xx), and what it
//!   writes to the backend query and form decodes back to exactly those values.

#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use libfuzzer_sys::fuzz_target;
use stagegate::routing::Compiled;
use stagegate::{
    auth::{AuthError, appcode_from_request, string_to_sign},
    mapping::{BodyAction, MappingInput, SystemValues, map_request},
    model::{
        ApiDefinition, AppCodeMode, BackendId, GroupId, ParamLocation, RequestMode,
        RequestParameter, Stage,
    },
};
use stagegate_fuzz::{decode_strict, fields, raw_pairs, reference_params};

/// A MAPPING API reading `a` and `b` from the query and `c` and `d` from a form body; `b` and
/// `d` change location on the way to the backend.
static API: LazyLock<(ApiDefinition, Compiled)> = LazyLock::new(|| {
    let mut api = ApiDefinition::new(
        GroupId::generate(),
        "formQuery",
        "POST",
        "/p",
        BackendId::generate(),
    )
    .expect("a valid API");
    api.request.mode = RequestMode::Mapping;
    let param = |name: &str, location, backend: Option<(&str, ParamLocation)>| RequestParameter {
        name: name.into(),
        location,
        backend_name: backend.map(|(n, _)| n.into()),
        backend_location: backend.map(|(_, l)| l),
        ..Default::default()
    };
    api.parameters = vec![
        param("a", ParamLocation::Query, None),
        param("b", ParamLocation::Query, Some(("bb", ParamLocation::Body))),
        param("c", ParamLocation::Body, None),
        param("d", ParamLocation::Body, Some(("dd", ParamLocation::Query))),
    ];
    api.validate().expect("a valid API");
    let compiled = Compiled::compile(&api).expect("compiles");
    (api, compiled)
});

fuzz_target!(|data: &[u8]| {
    let [query, body] = fields::<2>(data);
    let uri: Option<Uri> = std::str::from_utf8(query)
        .ok()
        .and_then(|q| format!("/p?{q}").parse().ok());
    let Some(uri) = uri else {
        // still exercise the form decoding
        check_string_to_sign(&"/p".parse().expect("a path"), None, body);
        return;
    };
    let query = uri.query().map(str::as_bytes);
    check_string_to_sign(&uri, query, body);
    check_appcode(&uri, query);
    check_mapping(uri.path(), uri.query(), body);
});

fn check_string_to_sign(uri: &Uri, query: Option<&[u8]>, body: &[u8]) {
    let headers = HeaderMap::new();
    let prefix = format!("POST\n\n\n\n\n{}", uri.path());
    assert_eq!(
        string_to_sign(&Method::POST, uri, &headers, None),
        prefix.clone() + &reference_params(query, None),
        "query parameters"
    );
    assert_eq!(
        string_to_sign(&Method::POST, uri, &headers, Some(body)),
        prefix + &reference_params(query, Some(body)),
        "query and form parameters"
    );
}

fn check_appcode(uri: &Uri, query: Option<&[u8]>) {
    let (parts, ()) = Request::post(uri.clone())
        .body(())
        .expect("a request")
        .into_parts();
    let expected = query.and_then(|q| {
        form_urlencoded::parse(q)
            .find(|(k, _)| k == "AppCode")
            .map(|(_, v)| v.into_owned())
    });
    match (
        appcode_from_request(&parts, AppCodeMode::HeaderQuery),
        expected,
    ) {
        (Ok(found), expected) => assert_eq!(found.map(|c| c.into_owned()), expected),
        (Err(AuthError::InvalidAppCode), Some(v)) => assert!(v.is_empty()),
        (Err(e), expected) => panic!("{e:?} for {expected:?}"),
    }
    // only the header is read in `Header` mode
    assert!(matches!(
        appcode_from_request(&parts, AppCodeMode::Header),
        Ok(None)
    ));
}

/// The first raw value of `name` in urlencoded `data`.
fn first<'d>(data: &'d [u8], name: &str) -> Option<&'d [u8]> {
    raw_pairs(data)
        .find(|(k, _)| decode_strict(k).is_some_and(|k| k == name))
        .map(|(_, v)| v)
}

fn check_mapping(path: &str, query: Option<&str>, body: &[u8]) {
    let (api, compiled) = &*API;
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let input = MappingInput {
        form_body: Some(body),
        ..MappingInput::new(&Method::POST, path, query, &headers)
    };
    let sys = SystemValues::new("req-1", &Stage::TEST, "formQuery");
    let result = map_request(api, compiled, &input, &sys);

    // The reference: each declared parameter's first raw value, strictly decoded.
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut invalid = false;
    for p in &api.parameters {
        let source = match p.location {
            ParamLocation::Query => query.map(str::as_bytes),
            _ => (!body.is_empty()).then_some(body),
        };
        match source.and_then(|s| first(s, &p.name)).map(decode_strict) {
            None => {}
            Some(None) => invalid = true,
            Some(Some(v)) if v.is_empty() => {}
            Some(Some(v)) => expected.push((p.name.clone(), v)),
        }
    }
    let mapped = match result {
        Ok(m) => m,
        Err(e) => {
            assert!(invalid, "refused a valid request: {e:?}");
            assert!(e.status().is_client_error(), "{e:?}");
            return;
        }
    };
    assert!(
        !invalid,
        "accepted a parameter that is not UTF-8: {mapped:?}"
    );
    assert_eq!(mapped.params, expected);

    // What the backend receives decodes back to the same values, under the backend names.
    let backend = |loc: ParamLocation| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = api
            .parameters
            .iter()
            .filter(|p| p.backend_location() == loc)
            .filter_map(|p| {
                let (_, value) = expected.iter().find(|(n, _)| *n == p.name)?;
                Some((p.backend_name().to_owned(), value.clone()))
            })
            .collect();
        v.sort();
        v
    };
    let decoded = |data: &[u8]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(data)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        v.sort();
        v
    };
    let (mapped_path, mapped_query) = mapped
        .path_and_query
        .split_once('?')
        .unwrap_or((&mapped.path_and_query, ""));
    assert_eq!(mapped_path, path);
    assert_eq!(
        decoded(mapped_query.as_bytes()),
        backend(ParamLocation::Query)
    );
    if let BodyAction::Replace(form) = &mapped.body {
        assert_eq!(decoded(form), backend(ParamLocation::Body));
        assert_eq!(
            mapped
                .headers
                .get("content-length")
                .map(|v| v.as_bytes().to_vec()),
            Some(form.len().to_string().into_bytes())
        );
    }
    assert!(
        mapped
            .path_and_query
            .parse::<http::uri::PathAndQuery>()
            .is_ok(),
        "not a valid backend target: {:?}",
        mapped.path_and_query
    );
}
