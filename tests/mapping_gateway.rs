//! Parameter mapping through the data plane: every request mode, every location, defaults,
//! constants, system parameters, and each validation rule failing with its own message.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Got, oneshot, upstream};
use http::Request;
use http_body_util::Full;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane, GatewayLayer, GatewayService,
    control::{NewBackend, NewGroup},
    model::{
        ApiDefinition, BackendKind, ConstantParameter, HttpDefinition, ParamLocation, ParamType,
        RequestMode, RequestParameter, Stage, StageDefinition, SystemParam, SystemParameter,
    },
};

fn param(name: &str, location: ParamLocation, t: ParamType) -> RequestParameter {
    RequestParameter {
        name: name.into(),
        location,
        param_type: t,
        ..Default::default()
    }
}

async fn gateway(mode: RequestMode) -> (Arc<ControlPlane>, GatewayService) {
    let up = upstream("mapped").await;
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let b = cp
        .create_backend(NewBackend::new("mapBackend", BackendKind::Http))
        .await
        .unwrap();
    cp.set_stage_definition(
        &b.id,
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await
    .unwrap();
    let g = cp
        .create_group(NewGroup {
            name: "map_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut a = ApiDefinition::new(g.id.clone(), "getUser", "GET", "/users/[id]", b.id.clone())
        .unwrap()
        .anonymous();
    a.request.mode = mode;
    a.backend.path = Some("/api/users".into());
    a.parameters = vec![
        RequestParameter {
            required: true,
            backend_name: Some("userId".into()),
            backend_location: Some(ParamLocation::Query),
            ..param("id", ParamLocation::Path, ParamType::Long)
        },
        RequestParameter {
            default: Some("18".into()),
            min_value: Some(0.0),
            max_value: Some(150.0),
            backend_name: Some("x-age".into()),
            backend_location: Some(ParamLocation::Head),
            ..param("age", ParamLocation::Query, ParamType::Int)
        },
        RequestParameter {
            required: true,
            enum_values: vec!["en".into(), "zh".into()],
            ..param("x-lang", ParamLocation::Head, ParamType::String)
        },
        RequestParameter {
            regex: Some("[A-Z]{3}".into()),
            max_length: Some(3),
            ..param("code", ParamLocation::Query, ParamType::String)
        },
    ];
    a.constant_parameters = vec![ConstantParameter {
        backend_name: "x-tenant".into(),
        value: "acme".into(),
        location: ParamLocation::Head,
        description: None,
    }];
    a.system_parameters = vec![
        SystemParameter {
            name: SystemParam::CaRequestId,
            backend_name: "x-req-id".into(),
            location: ParamLocation::Head,
        },
        SystemParameter {
            name: SystemParam::CaStage,
            backend_name: "stage".into(),
            location: ParamLocation::Query,
        },
        SystemParameter {
            name: SystemParam::CaApiName,
            backend_name: "x-api-name".into(),
            location: ParamLocation::Head,
        },
    ];
    let a = cp.create_api(a).await.unwrap();
    cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();

    let mut form = ApiDefinition::new(g.id.clone(), "postForm", "POST", "/form", b.id.clone())
        .unwrap()
        .anonymous();
    form.request.mode = mode;
    form.parameters = vec![RequestParameter {
        required: true,
        backend_name: Some("who".into()),
        backend_location: Some(ParamLocation::Query),
        ..param("name", ParamLocation::Body, ParamType::String)
    }];
    let form = cp.create_api(form).await.unwrap();
    cp.publish(&form.id, Stage::RELEASE, None).await.unwrap();
    let svc = GatewayLayer::new(cp.snapshot_handle()).standalone();
    (cp, svc)
}

async fn get(svc: &GatewayService, uri: &str, lang: Option<&str>) -> Got {
    let mut r = Request::get(uri).header("x-junk", "drop me");
    if let Some(l) = lang {
        r = r.header("x-lang", l);
    }
    oneshot(svc.clone(), r.body(Full::<Bytes>::default()).unwrap()).await
}

fn query_has(j: &serde_json::Value, pair: &str) -> bool {
    j["query"]
        .as_str()
        .unwrap_or("")
        .split('&')
        .any(|p| p == pair)
}

#[tokio::test]
async fn mapping_reads_checks_and_moves_declared_parameters_and_drops_the_rest() {
    let (_cp, svc) = gateway(RequestMode::Mapping).await;
    let got = get(&svc, "/users/42?code=ABC&junk=1", Some("en")).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    let j = got.json();
    assert_eq!(j["path"], "/api/users");
    assert!(query_has(&j, "userId=42"), "{j}");
    assert!(query_has(&j, "code=ABC"));
    assert!(
        query_has(&j, "stage=RELEASE"),
        "system parameter in the query"
    );
    assert!(
        !query_has(&j, "junk=1"),
        "undeclared query parameters are dropped"
    );
    assert_eq!(
        j["headers"]["x-age"], "18",
        "the default, moved to a header"
    );
    assert_eq!(j["headers"]["x-lang"], "en");
    assert_eq!(j["headers"]["x-tenant"], "acme", "constant parameter");
    assert_eq!(j["headers"]["x-api-name"], "getUser");
    assert_eq!(
        j["headers"]["x-req-id"].as_str(),
        got.header("x-ca-request-id"),
        "CaRequestId is the request id"
    );
    assert!(
        j["headers"]["x-junk"].is_null(),
        "undeclared headers are dropped"
    );

    // form fields are mappable parameters
    let r = Request::post("/form?x=1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"name=li+lei&other=2")))
        .unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    assert!(
        query_has(&got.json(), "who=li%20lei") || query_has(&got.json(), "who=li+lei"),
        "{}",
        got.json()
    );
}

#[tokio::test]
async fn mapping_passthrough_maps_the_declared_and_forwards_the_rest() {
    let (_cp, svc) = gateway(RequestMode::MappingPassthrough).await;
    let got = get(&svc, "/users/7?age=30&junk=1", Some("zh")).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    let j = got.json();
    assert!(query_has(&j, "userId=7"));
    assert!(query_has(&j, "junk=1"), "undeclared parameters pass");
    assert!(
        !query_has(&j, "age=30"),
        "a moved parameter leaves its old place"
    );
    assert_eq!(j["headers"]["x-age"], "30");
    assert_eq!(j["headers"]["x-junk"], "drop me");
}

#[tokio::test]
async fn passthrough_forwards_everything_unchanged() {
    let (_cp, svc) = gateway(RequestMode::Passthrough).await;
    let got = get(&svc, "/users/abc?age=999&junk=1", None).await;
    assert_eq!(got.status, 200, "no rule is checked in PASSTHROUGH");
    let j = got.json();
    assert!(
        j["query"].as_str().unwrap().starts_with("age=999&junk=1"),
        "{j}"
    );
    assert!(
        query_has(&j, "stage=RELEASE"),
        "system parameters are added in every mode"
    );
    assert_eq!(j["headers"]["x-junk"], "drop me");
}

#[tokio::test]
async fn each_rule_fails_with_a_400_naming_the_parameter() {
    let (_cp, svc) = gateway(RequestMode::Mapping).await;
    let cases: [(&str, Option<&str>, &str, &str); 6] = [
        ("/users/42", None, "I400MH", "x-lang"),
        ("/users/abc", Some("en"), "I400IP", "id"),
        ("/users/42?age=200", Some("en"), "I400IP", "at most 150"),
        ("/users/42?age=-1", Some("en"), "I400IP", "at least 0"),
        ("/users/42", Some("fr"), "I400IP", "x-lang"),
        ("/users/42?code=abc", Some("en"), "I400IP", "must match"),
    ];
    for (uri, lang, code, needle) in cases {
        let got = get(&svc, uri, lang).await;
        assert_eq!(
            (got.status, got.header("x-ca-error-code")),
            (400, Some(code)),
            "{uri} {lang:?}"
        );
        let msg = got.header("x-ca-error-message").unwrap();
        assert!(
            msg.contains(needle),
            "{uri}: `{msg}` should mention `{needle}`"
        );
    }
    let got = get(&svc, "/users/42?code=ABCD", Some("en")).await;
    assert_eq!(got.header("x-ca-error-code"), Some("I400IP"), "max_length");
    let r = Request::post("/form")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"other=1")))
        .unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(
        got.header("x-ca-error-code"),
        Some("I400MP"),
        "a missing form field"
    );
}
