//! Another group cannot take over an API's path (issue 20, item 2): the conflict check covers
//! every group that can receive the same request (a shared domain, or a group without
//! domains), at publish, at import and when a group's domains or base path change.

mod common;

use std::sync::Arc;

use http::Method;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlError, ControlPlane,
    control::{NewBackend, NewGroup},
    model::{ApiDefinition, BackendKind, Group, MockDefinition, Stage, StageDefinition},
};

struct World {
    cp: Arc<ControlPlane>,
    backend: stagegate::model::BackendId,
}

async fn world() -> World {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let backend = cp
        .create_backend(NewBackend::new("mockOne", BackendKind::Mock))
        .await
        .unwrap();
    let def = StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: "ok".into(),
    });
    cp.set_stage_definition(&backend.id, Stage::TEST, def)
        .await
        .unwrap();
    World {
        cp,
        backend: backend.id,
    }
}

impl World {
    async fn group(&self, name: &str, domains: &[&str], base: Option<&str>) -> Group {
        self.cp
            .create_group(NewGroup {
                name: name.into(),
                domains: domains.iter().map(|d| (*d).to_owned()).collect(),
                base_path: base.map(str::to_owned),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn api(
        &self,
        g: &Group,
        name: &str,
        method: &str,
        path: &str,
        app: bool,
    ) -> ApiDefinition {
        let a = ApiDefinition::new(g.id.clone(), name, method, path, self.backend.clone()).unwrap();
        let a = if app { a } else { a.anonymous() };
        self.cp.create_api(a).await.unwrap()
    }

    async fn publish(&self, api: &ApiDefinition) -> Result<(), ControlError> {
        self.cp.publish(&api.id, Stage::TEST, None).await.map(drop)
    }

    async fn published(&self, g: &Group, name: &str, method: &str, path: &str) -> ApiDefinition {
        let api = self.api(g, name, method, path, false).await;
        self.publish(&api).await.unwrap();
        api
    }
}

fn conflict_with(r: Result<(), ControlError>, existing: &ApiDefinition, group: &Group) {
    match r {
        Err(
            ref e @ ControlError::RouteConflict {
                existing: ref id,
                existing_group: ref g,
                ..
            },
        ) => {
            assert_eq!(id, &existing.id, "{e}");
            assert_eq!(g, &group.id, "{e}");
            let text = e.to_string();
            assert!(text.contains(&existing.name), "{text}");
            assert!(text.contains(group.id.as_str()), "{text}");
        }
        other => panic!("expected a conflict with {}, got {other:?}", existing.name),
    }
}

#[tokio::test]
async fn a_group_without_domains_cannot_take_over_an_app_api() {
    let w = world().await;
    let owner = w.group("owner_group", &[], None).await;
    let hello = w
        .api(&owner, "helloApp", "GET", "/hello/[name]", true)
        .await;
    w.publish(&hello).await.unwrap();
    let intruder = w.group("intruder_group", &[], None).await;
    for (name, method, path) in [
        ("sameShape", "GET", "/hello/[name]"),
        ("otherName", "GET", "/hello/[who]"),
        ("exactPath", "GET", "/hello/bob"),
        ("everything", "GET", "/*"),
        ("anyMethod", "ANY", "/hello/[name]"),
        ("firstParam", "GET", "/[x]/bob"),
    ] {
        let api = w.api(&intruder, name, method, path, false).await;
        conflict_with(w.publish(&api).await, &hello, &owner);
    }
    // requests still reach the APP API
    let m =
        w.cp.snapshot()
            .resolve(None, &Stage::TEST, &Method::GET, "/hello/bob")
            .unwrap();
    assert_eq!(m.route().api_id(), &hello.id);
    // what cannot match the same request is published
    for (name, method, path) in [
        ("postHello", "POST", "/hello/[name]"),
        ("byeName", "GET", "/bye/[name]"),
        ("helloDeeper", "GET", "/hello/[name]/x"),
        ("helloExact", "GET", "/hello"),
    ] {
        let api = w.api(&intruder, name, method, path, false).await;
        w.publish(&api).await.unwrap();
    }
}

#[tokio::test]
async fn domains_decide_which_groups_can_collide() {
    let w = world().await;
    let a = w.group("group_a", &["a.example.com"], None).await;
    let b = w.group("group_b", &["b.example.com"], None).await;
    let on_a = w.published(&a, "apiOnA", "GET", "/x/[id]").await;
    // another domain: no request reaches both
    w.published(&b, "apiOnB", "GET", "/x/[id]").await;
    // the same domain, spelled differently
    let same = w.group("group_same", &["A.Example.com:443"], None).await;
    let api = w.api(&same, "onSame", "GET", "/x/[id]", false).await;
    conflict_with(w.publish(&api).await, &on_a, &a);
    // no domain: any host, so it collides with a group on either domain
    let any = w.group("group_any", &[], None).await;
    let api = w.api(&any, "onAny", "GET", "/x/7", false).await;
    assert!(matches!(
        w.publish(&api).await,
        Err(ControlError::RouteConflict { .. })
    ));
    // base paths count: the full path is what a request matches
    let based = w.group("group_based", &[], Some("/x")).await;
    let api = w.api(&based, "based", "GET", "/[id]", false).await;
    assert!(matches!(
        w.publish(&api).await,
        Err(ControlError::RouteConflict { .. })
    ));
}

#[tokio::test]
async fn changing_domains_or_base_path_into_a_collision_is_refused() {
    let w = world().await;
    let a = w.group("group_a", &["a.example.com"], None).await;
    let b = w.group("group_b", &["b.example.com"], None).await;
    let on_a = w.published(&a, "apiOnA", "GET", "/x/[id]").await;
    w.published(&b, "apiOnB", "GET", "/x/[id]").await;
    let spec = |domains: &[&str], base: Option<&str>| NewGroup {
        name: "group_b".into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        base_path: base.map(str::to_owned),
        ..Default::default()
    };
    let refused = |r: Result<Group, ControlError>| r.map(drop);
    conflict_with(
        refused(
            w.cp.update_group(&b.id, spec(&["a.example.com"], None))
                .await,
        ),
        &on_a,
        &a,
    );
    conflict_with(
        refused(w.cp.update_group(&b.id, spec(&[], None)).await),
        &on_a,
        &a,
    );
    // nothing changed
    assert_eq!(w.cp.group(&b.id).await.unwrap().domains, ["b.example.com"]);

    // a base path that moves the routes onto another group's
    let c = w.group("group_c", &[], None).await;
    let deep = w.published(&c, "deep", "GET", "/v2/y").await;
    let d = w.group("group_d", &[], None).await;
    w.published(&d, "shallow", "GET", "/y").await;
    let moved = NewGroup {
        name: "group_d".into(),
        base_path: Some("/v2".into()),
        ..Default::default()
    };
    conflict_with(refused(w.cp.update_group(&d.id, moved).await), &deep, &c);
    assert_eq!(w.cp.group(&d.id).await.unwrap().base_path, None);
    // a change that collides with nothing goes through
    w.cp.update_group(&b.id, spec(&["b.example.com", "c.example.com"], Some("/b")))
        .await
        .unwrap();
}

#[tokio::test]
async fn import_refuses_a_cross_group_collision_and_changes_nothing() {
    let w = world().await;
    let a = w.group("group_a", &["a.example.com"], None).await;
    let b = w.group("group_b", &["b.example.com"], None).await;
    w.published(&a, "apiOnA", "GET", "/hello/[name]").await;
    w.published(&b, "apiOnB", "GET", "/hello/[name]").await;
    let before = serde_json::to_value(w.cp.export().await.groups).unwrap();
    let good = w.cp.export().await;
    // the export of a valid state imports
    w.cp.import(good.clone()).await.unwrap();
    // the same, with group B bound to no domain (any host) or to A's domain
    for domains in [vec![], vec!["a.example.com".to_owned()]] {
        let mut doc = good.clone();
        for g in &mut doc.groups {
            if g.id == b.id {
                g.domains.clone_from(&domains);
            }
        }
        let err = w.cp.import(doc).await.unwrap_err();
        assert!(
            matches!(err, ControlError::RouteConflict { .. }),
            "{domains:?}: {err}"
        );
        assert_eq!(
            serde_json::to_value(w.cp.export().await.groups).unwrap(),
            before
        );
    }
}

#[cfg(feature = "admin")]
#[tokio::test]
async fn the_admin_api_answers_409_naming_the_api() {
    use http::Request;
    let w = world().await;
    let owner = w.group("owner_group", &[], None).await;
    let hello = w
        .published(&owner, "helloApp", "GET", "/hello/[name]")
        .await;
    let intruder = w.group("intruder_group", &[], None).await;
    let api = w
        .api(&intruder, "takeOver", "GET", "/hello/[name]", false)
        .await;
    let gateway = stagegate::GatewayLayer::new(w.cp.snapshot_handle()).standalone();
    let admin = stagegate::admin::AdminApi::new(
        Arc::clone(&w.cp),
        stagegate::model::Secret::new("admin-test-token"),
        gateway,
    );
    let req = Request::post(format!("/apis/{}/publish", api.id))
        .header("authorization", "Bearer admin-test-token")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"stage":"TEST"}"#))
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 409, "{}", got.text());
    let body = got.json();
    assert_eq!(body["code"], "RouteConflict");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(hello.id.as_str()), "{message}");
    assert!(message.contains("helloApp"), "{message}");
    assert!(message.contains(owner.id.as_str()), "{message}");
}
