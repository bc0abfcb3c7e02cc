//! VPC backends end to end: authorizations through the control plane, calls over loopback,
//! the resolver for authorizations without an address. Loopback only.

mod common;

use common::{fx, oneshot, req, upstream};
use stagegate::backend::{Backends, VpcError};
use stagegate::{
    ControlError,
    model::{BackendKind, Stage, StageDefinition, VpcAccess, VpcAccessId, VpcDefinition},
};

fn vpc_def(id: &VpcAccessId) -> StageDefinition {
    StageDefinition::Vpc(VpcDefinition {
        vpc_access_id: id.clone(),
        https: false,
        host_header: Some("orders.internal".into()),
        timeout_ms: None,
    })
}

#[tokio::test]
async fn a_definition_naming_an_unknown_authorization_is_refused() {
    let f = fx(BackendKind::Vpc).await;
    let err =
        f.cp.set_stage_definition(
            &f.backend.id,
            Stage::RELEASE,
            vpc_def(&VpcAccessId::generate()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::NotFound {
                what: "vpc access authorization",
                ..
            }
        ),
        "{err}"
    );
    assert!(f.cp.backend(&f.backend.id).await.unwrap().stages.is_empty());
}

#[tokio::test]
async fn calls_reach_the_address_and_follow_its_updates_and_in_use_deletes_are_refused() {
    let one = upstream("one").await;
    let two = upstream("two").await;
    let f = fx(BackendKind::Vpc).await;
    let mut access =
        f.cp.create_vpc_access(
            VpcAccess::new("orders_vpc", "vpc-1", "i-1", 8080, Some(one.to_string())).unwrap(),
        )
        .await
        .unwrap();
    f.define(Stage::RELEASE, vpc_def(&access.id)).await;
    let api = f.api("vpcApi", "GET", "/orders/[id]", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = f.layer().standalone();

    let got = oneshot(svc.clone(), req("GET", "/orders/7?x=1", "")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["tag"], "one");
    assert_eq!(got.json()["path"], "/orders/7");
    assert_eq!(got.json()["headers"]["host"], "orders.internal");

    access.address = Some(two.to_string());
    f.cp.update_vpc_access(access.clone()).await.unwrap();
    let got = oneshot(svc.clone(), req("GET", "/orders/8", "")).await;
    assert_eq!(
        got.json()["tag"],
        "two",
        "the update re-points the next call"
    );

    let err = f.cp.delete_vpc_access(&access.id).await.unwrap_err();
    assert!(matches!(err, ControlError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("backendOne"));
    let got = oneshot(svc, req("GET", "/orders/9", "")).await;
    assert_eq!(
        got.json()["tag"],
        "two",
        "still served after the refused delete"
    );
}

/// A VPC backend through access `orders_vpc` (instance `i-orders`, `port`, no address: the
/// resolver finds it), and an API `vpcApi` `method /orders` on it, published to RELEASE.
async fn orders_vpc_api(port: u16, method: &str) -> (common::Fx, VpcAccess) {
    let f = fx(BackendKind::Vpc).await;
    let access = f
        .cp
        .create_vpc_access(VpcAccess::new("orders_vpc", "vpc-1", "i-orders", port, None).unwrap())
        .await
        .unwrap();
    f.define(Stage::RELEASE, vpc_def(&access.id)).await;
    let api = f.api("vpcApi", method, "/orders", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    (f, access)
}

#[tokio::test]
async fn authorizations_without_an_address_go_through_the_resolver() {
    let up = upstream("resolved").await;
    let (f, access) = orders_vpc_api(up.port(), "POST").await;
    let layer = f.layer().with_backends(Backends::new().with_vpc_resolver(
        |instance: &str, port: u16| match instance {
            "i-orders" => Ok(format!("127.0.0.1:{port}")),
            other => Err(VpcError::Unresolved {
                instance_id: other.into(),
                port,
                reason: "unknown instance".into(),
            }),
        },
    ));
    let got = oneshot(layer.standalone(), req("POST", "/orders", "hello")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["tag"], "resolved");
    assert_eq!(got.json()["body"], "hello");

    // an instance the resolver does not know
    let mut other = access.clone();
    other.instance_id = "i-unknown".into();
    f.cp.update_vpc_access(other).await.unwrap();
    let got = oneshot(layer.standalone(), req("POST", "/orders", "")).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.header("x-ca-error-code"), Some("X504VE"));
    // #21: the instance id and the resolver's reason are logged, not sent.
    assert_eq!(got.header("x-ca-error-message"), Some("VPC access failed"));
}

/// #21: a VPC call resolved at request time is forwarded through the same path as an inline
/// HTTP API: `X-Forwarded-Host` is the host the request was for, the authority of an
/// absolute-form target, not its `Host` header.
#[tokio::test]
async fn a_resolved_call_forwards_the_target_authority_as_the_forwarded_host() {
    let up = upstream("resolved").await;
    let (f, _access) = orders_vpc_api(up.port(), "GET").await;
    let layer = f.layer().with_backends(
        Backends::new().with_vpc_resolver(|_: &str, port: u16| Ok(format!("127.0.0.1:{port}"))),
    );
    let request = http::Request::builder()
        .uri("http://api.example.com/orders")
        .header("host", "other.example.com")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let got = oneshot(layer.standalone(), request).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["tag"], "resolved");
    assert_eq!(
        got.json()["headers"]["x-forwarded-host"],
        "api.example.com",
        "the host the request was for, as inline HTTP APIs forward it"
    );
}
