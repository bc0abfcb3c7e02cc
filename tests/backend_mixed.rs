//! MIXED backends: each stage dispatches by its own definition's kind, and replacing a stage's
//! definition with one of another kind re-points the published APIs. Loopback only.

mod common;

use common::{fx, oneshot, req, upstream};
use stagegate::model::{
    BackendKind, DiscoveryDefinition, HttpDefinition, MockDefinition, RegistryType, Stage,
    StageDefinition,
};

fn at(stage: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut r = req("GET", "/mixed", "");
    r.headers_mut().insert("x-ca-stage", stage.parse().unwrap());
    r
}

#[tokio::test]
async fn each_stage_dispatches_by_its_kind_and_kind_changes_re_point() {
    let pre = upstream("pre-http").await;
    let release = upstream("release-sd").await;
    let f = fx(BackendKind::Mixed).await;
    f.define(
        Stage::TEST,
        StageDefinition::Mock(MockDefinition {
            status: 200,
            headers: Default::default(),
            body: "mocked".into(),
        }),
    )
    .await;
    f.define(
        Stage::PRE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{pre}"))),
    )
    .await;
    f.define(
        Stage::RELEASE,
        StageDefinition::ServiceDiscovery(DiscoveryDefinition {
            registry: RegistryType::Static,
            service_name: "mixed".into(),
            namespace: None,
            group: None,
            addresses: vec![release.to_string()],
            https: false,
        }),
    )
    .await;
    let api = f.api("mixedApi", "GET", "/mixed", |_| {}).await;
    for s in [Stage::TEST, Stage::PRE, Stage::RELEASE] {
        f.cp.publish(&api.id, s, None).await.unwrap();
    }
    let svc = f.layer().standalone();

    assert_eq!(oneshot(svc.clone(), at("TEST")).await.text(), "mocked");
    assert_eq!(
        oneshot(svc.clone(), at("PRE")).await.json()["tag"],
        "pre-http"
    );
    assert_eq!(
        oneshot(svc.clone(), at("RELEASE")).await.json()["tag"],
        "release-sd"
    );

    // RELEASE: service discovery → MOCK; PRE: HTTP → service discovery
    f.define(
        Stage::RELEASE,
        StageDefinition::Mock(MockDefinition {
            status: 202,
            headers: Default::default(),
            body: "now a mock".into(),
        }),
    )
    .await;
    f.define(
        Stage::PRE,
        StageDefinition::ServiceDiscovery(DiscoveryDefinition {
            registry: RegistryType::Static,
            service_name: "mixed".into(),
            namespace: None,
            group: None,
            addresses: vec![release.to_string()],
            https: false,
        }),
    )
    .await;
    let got = oneshot(svc.clone(), at("RELEASE")).await;
    assert_eq!((got.status, got.text().as_str()), (202, "now a mock"));
    assert_eq!(
        oneshot(svc.clone(), at("PRE")).await.json()["tag"],
        "release-sd"
    );
    assert_eq!(oneshot(svc, at("TEST")).await.text(), "mocked");
}
