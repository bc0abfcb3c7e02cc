//! Route matching: `Snapshot::resolve` over a fixed set of published APIs, and the whole data
//! plane (`GatewayLayer::standalone`, MOCK backends) with the same fuzzed requests, so that any
//! path normalisation the gateway applies before routing is exercised too.
//!
//! Input: a request in the format of `stagegate_fuzz` (see `src/lib.rs`); its `Host` header
//! or absolute-form authority picks the domain.
//!
//! Properties:
//! * a lookup is deterministic;
//! * a matched route has the request's method (or `ANY`), and its literals, `[param]` values
//!   and `/*` sub-path re-join to exactly the request path; no parameter value holds a `/`;
//!   a route of a group bound to a domain is only found for that domain;
//! * the gateway never answers 5xx (every backend is a MOCK), and whenever it serves an API
//!   (200 with the MOCK's body, the API's name), `resolve` finds that same API for the request;
//! * a path with a raw backslash, or a `.` / `..` segment once percent-decoded (segments split
//!   at `/`, `\`, `%2F` and `%5C`), is refused with 400 before routing (issue 20, item 1).

#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane, GatewayLayer, GatewayService,
    control::{NewBackend, NewGroup},
    model::{ApiDefinition, BackendKind, MockDefinition, Segment, Stage, StageDefinition},
    routing::{RouteMatch, Snapshot},
};
use stagegate_fuzz::{block_on, parse_request};
use tower_service::Service;

/// A route: (group name, base path, domain, method, template).
type Route = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static str,
);

/// What identifies a lookup's result: the API's name, the parameters, the sub-path.
type Summary = (String, Vec<(String, String)>, Option<String>);

/// The routes.
const ROUTES: &[Route] = &[
    ("shop", None, None, "GET", "/"),
    ("shop", None, None, "GET", "/hello/[name]"),
    ("shop", None, None, "GET", "/users/[id]/orders/[order]"),
    ("shop", None, None, "ANY", "/files/*"),
    ("shop", None, None, "POST", "/items"),
    ("shop", None, None, "GET", "/items/"),
    ("shop", None, None, "GET", "/static/a.json"),
    ("shop", None, None, "GET", "/[tenant]/profile"),
    ("shop", None, None, "GET", "/p/*"),
    ("shop", None, None, "GET", "/u/[id]/*"),
    ("based", Some("/qqq"), None, "GET", "/ping"),
    ("based", Some("/qqq"), None, "GET", "/d/[x]/*"),
    (
        "hosted",
        None,
        Some("api.example.com"),
        "GET",
        "/only-host/[x]",
    ),
];

struct Fixture {
    snapshot: std::sync::Arc<Snapshot>,
    gateway: GatewayService,
    /// (API name, its group's domain)
    domains: Vec<(String, Option<&'static str>)>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| block_on(fixture()));

async fn fixture() -> Fixture {
    let cp = ControlPlane::open(MemoryStore::new()).await.expect("opens");
    let mut groups: Vec<(&str, stagegate::model::GroupId)> = Vec::new();
    let mut domains = Vec::new();
    for (i, &(group, base, domain, method, path)) in ROUTES.iter().enumerate() {
        let group_id = match groups.iter().find(|(n, _)| *n == group) {
            Some((_, id)) => id.clone(),
            None => {
                let g = cp
                    .create_group(NewGroup {
                        name: group.into(),
                        base_path: base.map(Into::into),
                        domains: domain.into_iter().map(Into::into).collect(),
                        ..Default::default()
                    })
                    .await
                    .expect("a group");
                groups.push((group, g.id.clone()));
                g.id
            }
        };
        let name = format!("route{i}");
        let backend = cp
            .create_backend(NewBackend::new(format!("mock{i}"), BackendKind::Mock))
            .await
            .expect("a backend");
        let mock = MockDefinition {
            status: 200,
            headers: Default::default(),
            body: name.clone(),
        };
        cp.set_stage_definition(&backend.id, Stage::RELEASE, StageDefinition::Mock(mock))
            .await
            .expect("a definition");
        let api = ApiDefinition::new(group_id, &name, method, path, backend.id)
            .expect("a valid API")
            .anonymous();
        let api = cp.create_api(api).await.expect("an API");
        // A route a later conflict rule refuses is left out, not fatal.
        if cp.publish(&api.id, Stage::RELEASE, None).await.is_ok() {
            domains.push((name, domain));
        }
    }
    assert!(domains.len() >= ROUTES.len() - 2, "most routes publish");
    Fixture {
        snapshot: cp.snapshot(),
        gateway: GatewayLayer::new(cp.snapshot_handle()).standalone(),
        domains,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = parse_request(data) else {
        return;
    };
    let fixture = &*FIXTURE;
    let path = req.uri.path();
    let host_header = req.headers.get("host").and_then(|h| h.to_str().ok());
    let hosts = [req.uri.authority().map(|a| a.as_str()), host_header];

    for host in hosts {
        let found = fixture
            .snapshot
            .resolve(host, &Stage::RELEASE, &req.method, path);
        let again = fixture
            .snapshot
            .resolve(host, &Stage::RELEASE, &req.method, path);
        assert_eq!(
            summary(found.as_ref()),
            summary(again.as_ref()),
            "not deterministic"
        );
        if let Some(m) = found {
            check_match(fixture, &m, &req.method, path, host);
        }
    }

    // The whole data plane.
    let mut request = Request::new(Full::new(Bytes::from(req.body.clone())));
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = req.uri.clone();
    *request.headers_mut() = req.headers.clone();
    let mut gateway = fixture.gateway.clone();
    let (status, body) = block_on(async move {
        let response = gateway.call(request).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        (status, body)
    });
    assert!(
        !status.is_server_error(),
        "{status} for {:?} {path:?}",
        req.method
    );
    if escapes_its_segments(path) {
        assert_eq!(
            status,
            http::StatusCode::BAD_REQUEST,
            "a dot segment or backslash was not refused: {path:?}"
        );
    }
    let body = body.expect("a MOCK or error body");
    if status == http::StatusCode::OK && !body.is_empty() {
        let served = String::from_utf8_lossy(&body);
        let resolved: Vec<String> = hosts
            .iter()
            .filter_map(|h| {
                fixture
                    .snapshot
                    .resolve(*h, &Stage::RELEASE, &req.method, path)
            })
            .map(|m| m.route().api().name.clone())
            .collect();
        assert!(
            resolved.iter().any(|n| *n == served),
            "the gateway served {served} for {path:?}, resolve found {resolved:?}"
        );
    }
});

/// What identifies a lookup's result.
fn summary(m: Option<&RouteMatch>) -> Option<Summary> {
    m.map(|m| {
        (
            m.route().api().name.clone(),
            m.params()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            m.rest().map(str::to_owned),
        )
    })
}

fn check_match(fixture: &Fixture, m: &RouteMatch, method: &Method, path: &str, host: Option<&str>) {
    let route = m.route();
    let api = route.api();
    assert!(
        api.request.method == "ANY" || api.request.method == method.as_str(),
        "{} route matched {method}",
        api.request.method
    );
    if let Some((_, Some(domain))) = fixture.domains.iter().find(|(n, _)| *n == api.name) {
        // (the host as sent may carry a port, brackets or white space around it)
        let host = host.unwrap_or_default().to_ascii_lowercase();
        assert!(
            host.contains(domain),
            "{} of {domain} matched for host {host:?}",
            api.name
        );
    }
    let mut rebuilt = String::new();
    for segment in route.template().segments() {
        rebuilt.push('/');
        match segment {
            Segment::Literal(l) => rebuilt.push_str(l),
            Segment::Param(name) => {
                let value = m.param(name).expect("every parameter has a value");
                assert!(!value.contains('/'), "{name} = {value:?} spans segments");
                rebuilt.push_str(value);
            }
        }
    }
    match m.rest() {
        _ if !route.template().match_all() => assert!(m.rest().is_none()),
        None => panic!("a match-all route without a sub-path"),
        // `/files` and `/files/` both match `/files/*` with an empty sub-path
        Some("") => assert!(
            path == rebuilt || path == format!("{rebuilt}/") || (rebuilt.is_empty() && path == "/"),
            "{path:?} matched {} with an empty sub-path",
            route.template()
        ),
        Some(rest) => rebuilt = format!("{rebuilt}/{rest}"),
    }
    if !(route.template().match_all() && m.rest() == Some("")) {
        if rebuilt.is_empty() {
            rebuilt.push('/');
        }
        assert_eq!(
            rebuilt,
            path,
            "the match does not re-join to the path ({})",
            route.template()
        );
    }
}

/// The reference for the path rule, written independently of the gateway's scanner: a raw
/// backslash, or a segment that is `.` or `..` once every `%XX` is decoded (a decoded `/` or
/// `\\` splits segments too).
fn escapes_its_segments(path: &str) -> bool {
    if path.contains('\\') {
        return true;
    }
    let raw = path.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                decoded.push(u8::try_from(h * 16 + l).expect("two hex digits"));
                i += 3;
                continue;
            }
        }
        decoded.push(raw[i]);
        i += 1;
    }
    decoded
        .split(|&b| b == b'/' || b == b'\\')
        .any(|segment| segment == b"." || segment == b"..")
}
