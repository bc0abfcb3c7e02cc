//! Declarative configuration (issue #22): a document by name, planned and applied; applying it
//! again changes nothing, an edit plans as an exact diff, a restart changes nothing, and a
//! document with errors reports every one and applies nothing.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use stagegate::control::{ConfigDocument, ObjectKind, PlanScope, Step};
use stagegate::model::Stage;
use stagegate::store::{MemoryStore, RedbStore, Store};
use stagegate::{ControlError, ControlPlane, GatewayLayer};

const CODE: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "given-secret-0123456789";

/// The first document: a backend defined in TEST and RELEASE, a group, an API published in
/// both and callable with an AppCode, the app granted in both, and an app to be dropped later.
fn first_doc(upstream: &str) -> Value {
    json!({
        "backends": [{
            "name": "users_http", "type": "HTTP",
            "stages": {"TEST": {"url": upstream}, "RELEASE": {"url": upstream}}
        }],
        "groups": [{"name": "shop_api"}],
        "apis": [{
            "name": "getUser", "group": "shop_api", "appcode_auth": "HEADER",
            "request": {"method": "GET", "path": "/users/[id]"},
            "parameters": [{"name": "id", "location": "PATH"}],
            "backend": {"name": "users_http"},
            "publish": ["TEST", "RELEASE"]
        }],
        "apps": [
            {"name": "mobile_app", "keys": [{"app_key": "203753911", "app_secret": SECRET}],
             "codes": [CODE],
             "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST", "RELEASE"]}]},
            {"name": "old_app"}
        ]
    })
}

fn doc(v: &Value) -> ConfigDocument {
    ConfigDocument::from_json(&v.to_string()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stagegate-config-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Calls `GET /users/7` in `stage` with the AppCode; the upstream's tag, or the status.
async fn call(cp: &ControlPlane, stage: &str) -> Result<String, u16> {
    let gw = GatewayLayer::new(cp.snapshot_handle()).standalone();
    let req = http::Request::builder()
        .uri("/users/7")
        .header("x-ca-stage", stage)
        .header("authorization", format!("APPCODE {CODE}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let got = common::oneshot(gw, req).await;
    if got.status == 200 {
        Ok(got.json()["tag"].as_str().unwrap().to_owned())
    } else {
        Err(got.status)
    }
}

async fn deployments(cp: &ControlPlane) -> usize {
    let mut n = 0;
    for api in cp.apis(None).await {
        n += cp.deployments(&api.id).await.unwrap().len();
    }
    n
}

#[tokio::test]
async fn apply_apply_again_edit_plan_apply_restart() {
    let one = common::upstream("one").await;
    let two = common::upstream("two").await;
    let dir = scratch("sequence");
    let path = dir.join("stagegate.redb");
    let first = doc(&first_doc(&format!("http://{one}")));

    let cp = ControlPlane::open(RedbStore::open(&path).unwrap())
        .await
        .unwrap();
    // 1. apply: everything is created and published, and serves
    let plan = cp.plan(&first, PlanScope::Whole).await.unwrap();
    assert_eq!(
        plan.to_string(),
        "+ backend users_http\n\
         + group shop_api\n\
         + api shop_api/getUser\n\
         > publish api shop_api/getUser in TEST\n\
         > publish api shop_api/getUser in RELEASE\n\
         + app mobile_app\n\
         + authorization mobile_app -> shop_api/getUser in TEST\n\
         + authorization mobile_app -> shop_api/getUser in RELEASE\n\
         + app old_app\n\
         Plan: 7 to create, 0 to change, 2 to publish, 0 to unpublish, 0 to delete.\n"
    );
    cp.apply(&plan).await.unwrap();
    assert_eq!(call(&cp, "TEST").await, Ok("one".into()));
    assert_eq!(call(&cp, "RELEASE").await, Ok("one".into()));
    let revision = cp.store().load().await.unwrap().revision;
    assert_eq!(deployments(&cp).await, 2);

    // 2. apply again: nothing to do, no commit, no new deployment
    let again = cp.apply_document(&first, PlanScope::Whole).await.unwrap();
    assert!(again.is_empty() && again.steps.is_empty(), "{again}");
    assert_eq!(
        again.to_string(),
        "No changes: the configuration matches the document.\n"
    );
    assert_eq!(cp.store().load().await.unwrap().revision, revision);
    assert_eq!(deployments(&cp).await, 2);

    // 3. edit: TEST moves to another upstream, the API leaves RELEASE, a new API, a new
    // description, an app dropped; the plan is exactly that
    let mut edited = first_doc(&format!("http://{one}"));
    edited["backends"][0]["stages"]["TEST"]["url"] = json!(format!("http://{two}"));
    edited["apis"][0]["publish"] = json!(["TEST"]);
    edited["apis"].as_array_mut().unwrap().push(json!({
        "name": "listUsers", "group": "shop_api", "auth": "ANONYMOUS",
        "request": {"method": "GET", "path": "/users"},
        "backend": {"name": "users_http"}, "publish": ["TEST"]
    }));
    edited["apps"][0]["description"] = json!("the mobile app");
    edited["apps"].as_array_mut().unwrap().pop();
    let edited = doc(&edited);
    let plan = cp.plan(&edited, PlanScope::Whole).await.unwrap();
    assert_eq!(
        plan.steps,
        [
            Step::Change {
                kind: ObjectKind::Backend,
                name: "users_http".into(),
                fields: vec!["stages.TEST".into()]
            },
            Step::Unpublish {
                api: "shop_api/getUser".into(),
                stage: Stage::RELEASE
            },
            Step::Create {
                kind: ObjectKind::Api,
                name: "shop_api/listUsers".into()
            },
            Step::Publish {
                api: "shop_api/listUsers".into(),
                stage: Stage::TEST
            },
            Step::Change {
                kind: ObjectKind::App,
                name: "mobile_app".into(),
                fields: vec!["description".into()]
            },
            Step::Delete {
                kind: ObjectKind::App,
                name: "old_app".into()
            },
        ]
    );
    assert_eq!(
        plan.to_string(),
        "~ backend users_http (stages.TEST)\n\
         < unpublish api shop_api/getUser from RELEASE\n\
         + api shop_api/listUsers\n\
         > publish api shop_api/listUsers in TEST\n\
         ~ app mobile_app (description)\n\
         - app old_app\n  \
           cascade: api getUser in TEST: follows the new definition\n\
         Plan: 1 to create, 2 to change, 1 to publish, 1 to unpublish, 1 to delete.\n"
    );
    // planning changed nothing
    assert_eq!(call(&cp, "TEST").await, Ok("one".into()));
    cp.apply(&plan).await.unwrap();
    assert_eq!(call(&cp, "TEST").await, Ok("two".into()));
    assert_eq!(call(&cp, "RELEASE").await, Err(404));
    assert_eq!(
        cp.apps(None)
            .await
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["mobile_app"]
    );
    // getUser's TEST deployment was not republished: the definition change re-points it
    assert_eq!(deployments(&cp).await, 3);
    let revision = cp.store().load().await.unwrap().revision;

    // 4. restart on the same file: the document changes nothing
    drop(cp);
    let cp = ControlPlane::open(RedbStore::open(&path).unwrap())
        .await
        .unwrap();
    let plan = cp.apply_document(&edited, PlanScope::Whole).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(cp.store().load().await.unwrap().revision, revision);
    assert_eq!(deployments(&cp).await, 3);
    assert_eq!(call(&cp, "TEST").await, Ok("two".into()));
    drop(cp);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_document_with_errors_reports_every_one_and_applies_nothing() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    cp.apply_document(&doc(&first_doc("http://127.0.0.1:9")), PlanScope::Whole)
        .await
        .unwrap();
    let before = cp.records().await;
    let bad = json!({
        "backends": [
            {"name": "users_http", "type": "HTTP",
             "stages": {"TEST": {"url": "ftp://127.0.0.1/x"}}},
            {"name": "b", "type": "HTTP"},
            {"name": "fn_backend", "type": "FUNCTION_COMPUTE", "stages": {"PRE": {"url": "http://h"}}}
        ],
        "groups": [{"name": "shop_api"}, {"name": "shop_api"}],
        "apis": [
            {"name": "getUser", "group": "no_such_group",
             "request": {"method": "GET", "path": "/u"}, "backend": {"name": "users_http"}},
            {"name": "getOrder", "group": "shop_api",
             "request": {"method": "GET", "path": "/o"}, "backend": {"name": "no_such_backend"}},
            {"name": "listUsers", "group": "shop_api",
             "request": {"method": "FETCH", "path": "/l"}, "backend": {"name": "users_http"},
             "publish": ["RELEASE"]}
        ],
        "apps": [{"name": "mobile_app",
                  "grants": [{"group": "shop_api", "api": "nothing", "stages": ["TEST"]}]}]
    });
    let err = cp.plan(&doc(&bad), PlanScope::Whole).await.unwrap_err();
    let ControlError::InvalidConfig { issues } = &err else {
        panic!("{err:?}")
    };
    let got: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.object.as_str(), i.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("backend `users_http`", "stages.TEST.url"),
            ("backend `b`", "name"),
            ("backend `fn_backend`", "stages.PRE.definition"),
            ("group `shop_api`", "name"),
            ("api `no_such_group/getUser`", "group"),
            ("api `shop_api/getOrder`", "backend.name"),
            ("api `shop_api/listUsers`", "request.method"),
            ("api `shop_api/listUsers`", "publish"),
            ("app `mobile_app`", "grants[0]"),
        ],
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "9 errors in the configuration document:\n- backend `users_http`: stages.TEST.url: "
        ),
        "{err}"
    );
    // the same through apply: nothing applied
    assert!(matches!(
        cp.apply_document(&doc(&bad), PlanScope::Whole).await,
        Err(ControlError::InvalidConfig { .. })
    ));
    assert_eq!(cp.records().await, before);
}

#[tokio::test]
async fn a_route_conflict_of_the_resulting_configuration_is_reported_and_nothing_applied() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let mut v = first_doc("http://127.0.0.1:9");
    v["apis"].as_array_mut().unwrap().push(json!({
        "name": "getUserAgain", "group": "shop_api",
        "request": {"method": "GET", "path": "/users/[uid]"},
        "parameters": [{"name": "uid", "location": "PATH"}],
        "backend": {"name": "users_http"}, "publish": ["TEST"]
    }));
    let err = cp.plan(&doc(&v), PlanScope::Whole).await.unwrap_err();
    let ControlError::InvalidConfig { issues } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(issues.len(), 1, "{err}");
    assert_eq!(issues[0].object, "configuration");
    assert!(issues[0].reason.contains("conflict"), "{err}");
    assert!(cp.records().await.is_empty());
}

#[tokio::test]
async fn a_plan_made_before_another_change_is_refused_and_changes_nothing() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let plan = cp
        .plan(&doc(&first_doc("http://127.0.0.1:9")), PlanScope::Whole)
        .await
        .unwrap();
    cp.create_group(stagegate::control::NewGroup {
        name: "other_group".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = cp.apply(&plan).await.unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::Stale {
                planned: 0,
                current: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("plan again"), "{err}");
    assert_eq!(cp.records().await.len(), 1);
    // planned again, it applies (and, the scope being whole, deletes the other group)
    let plan = cp
        .plan(&doc(&first_doc("http://127.0.0.1:9")), PlanScope::Whole)
        .await
        .unwrap();
    assert!(plan.steps.contains(&Step::Delete {
        kind: ObjectKind::Group,
        name: "other_group".into()
    }));
    cp.apply(&plan).await.unwrap();
    assert_eq!(cp.groups().await.len(), 1);
}

#[tokio::test]
async fn a_change_another_process_commits_to_the_shared_store_makes_the_plan_stale() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
    let b = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
    let d = doc(&json!({"groups": [{"name": "shop_api", "base_path": "/v1"}]}));
    let plan = a.plan(&d, PlanScope::Whole).await.unwrap();
    b.apply_document(
        &doc(&json!({"groups": [{"name": "shop_api"}]})),
        PlanScope::Whole,
    )
    .await
    .unwrap();
    // `a` has not followed the feed yet: the store's preconditions refuse the commit
    assert!(matches!(
        a.apply(&plan).await,
        Err(ControlError::Stale { .. })
    ));
    assert_eq!(b.groups().await[0].base_path, None);
    assert_eq!(
        a.groups().await[0].base_path,
        None,
        "resynced after the refusal"
    );
}

#[tokio::test]
async fn secrets_are_kept_or_generated_and_never_shown_in_a_plan_or_the_export() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let v = json!({"apps": [
        {"name": "given_app", "keys": [{"app_key": "key_given", "app_secret": SECRET}], "codes": [CODE]},
        {"name": "generated_app"}
    ]});
    let plan = cp.apply_document(&doc(&v), PlanScope::Whole).await.unwrap();
    let shown = format!("{plan}{plan:?}{}", serde_json::to_string(&plan).unwrap());
    let exported = serde_json::to_string(&cp.export_document().await).unwrap();
    let generated = cp.apps(Some("generated_app")).await.remove(0);
    for secret in [
        SECRET,
        CODE,
        generated.keys[0].app_secret.expose(),
        generated.codes[0].expose(),
    ] {
        assert!(!shown.contains(secret) && !exported.contains(secret));
    }
    // applied again (the document gives no secret for the generated app): the same secrets
    assert!(
        cp.apply_document(&doc(&v), PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(cp.apps(Some("generated_app")).await.remove(0), generated);
    // a key listed without its secret keeps it; a new secret is a change of `keys`, unshown
    let v = json!({"apps": [
        {"name": "given_app", "keys": [{"app_key": "key_given"}], "codes": [CODE]},
        {"name": "generated_app", "keys": [{"app_key": generated.keys[0].app_key, "app_secret": "rotated-secret-0123"}]}
    ]});
    let plan = cp.plan(&doc(&v), PlanScope::Whole).await.unwrap();
    assert_eq!(
        plan.to_string(),
        "~ app generated_app (keys)\nPlan: 0 to create, 1 to change, 0 to publish, 0 to unpublish, 0 to delete.\n"
    );
    cp.apply(&plan).await.unwrap();
    let given = cp.apps(Some("given_app")).await.remove(0);
    assert_eq!(given.keys[0].app_secret.expose(), SECRET);
    let rotated = cp.apps(Some("generated_app")).await.remove(0);
    assert_eq!(rotated.keys[0].app_secret.expose(), "rotated-secret-0123");
    assert_eq!(rotated.codes, generated.codes);
    // and the exported document applies back as no change
    let exported = cp.export_document().await;
    assert!(
        cp.plan(&exported, PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn toml_and_json_documents_plan_the_same() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let toml = r#"
[[backends]]
name = "users_http"
type = "HTTP"
stages.TEST.url = "http://127.0.0.1:9"

[[groups]]
name = "shop_api"

[[apis]]
name = "getUser"
group = "shop_api"
auth = "ANONYMOUS"
request = { method = "GET", path = "/users" }
backend = { name = "users_http" }
publish = ["TEST"]

[[apps]]
name = "mobile_app"
grants = [{ group = "shop_api", api = "getUser", stages = ["TEST"] }]
"#;
    let json = json!({
        "backends": [{"name": "users_http", "type": "HTTP", "stages": {"TEST": {"url": "http://127.0.0.1:9"}}}],
        "groups": [{"name": "shop_api"}],
        "apis": [{"name": "getUser", "group": "shop_api", "auth": "ANONYMOUS",
                  "request": {"method": "GET", "path": "/users"},
                  "backend": {"name": "users_http"}, "publish": ["TEST"]}],
        "apps": [{"name": "mobile_app", "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST"]}]}]
    });
    let from_toml = ConfigDocument::from_toml(toml).unwrap();
    assert_eq!(from_toml, doc(&json));
    let plan = cp.plan(&from_toml, PlanScope::Whole).await.unwrap();
    assert_eq!(plan.counts(), (5, 0, 1, 0, 0));
    cp.apply(&plan).await.unwrap();
    assert!(
        cp.plan(&doc(&json), PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_named_scope_leaves_unnamed_objects_and_reports_the_cascade_on_them() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    cp.apply_document(&doc(&first_doc("http://127.0.0.1:9")), PlanScope::Whole)
        .await
        .unwrap();
    // only the backend is named: it loses its RELEASE definition
    let only_backend = doc(&json!({"backends": [{
        "name": "users_http", "type": "HTTP", "stages": {"TEST": {"url": "http://127.0.0.1:9"}}
    }]}));
    let plan = cp.plan(&only_backend, PlanScope::NamedOnly).await.unwrap();
    assert_eq!(
        plan.to_string(),
        "~ backend users_http (stages.RELEASE)\n\
         < unpublish api shop_api/getUser from RELEASE\n  \
           cascade: api getUser in RELEASE: unpublished\n\
         Plan: 0 to create, 1 to change, 0 to publish, 1 to unpublish, 0 to delete.\n"
    );
    assert_eq!(plan.reports.len(), 1);
    cp.apply(&plan).await.unwrap();
    assert_eq!(cp.groups().await.len(), 1);
    assert_eq!(cp.apps(None).await.len(), 2);
    let api = cp.apis(None).await.remove(0);
    assert!(cp.published(&api.id, &Stage::TEST).await.is_some());
    assert!(cp.published(&api.id, &Stage::RELEASE).await.is_none());
    // the same document with the whole scope deletes everything else
    let plan = cp.plan(&only_backend, PlanScope::Whole).await.unwrap();
    assert_eq!(
        plan.to_string(),
        "< unpublish api shop_api/getUser from TEST\n\
         - api shop_api/getUser\n\
         - app mobile_app\n\
         - app old_app\n\
         - group shop_api\n\
         Plan: 0 to create, 0 to change, 0 to publish, 1 to unpublish, 4 to delete.\n"
    );
    cp.apply(&plan).await.unwrap();
    assert_eq!(cp.records().await.len(), 1);
}

#[tokio::test]
async fn a_backend_type_change_and_a_vpc_access_by_id_are_refused_with_their_fields() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let v = json!({
        "vpc_access": [{"name": "orders_vpc", "vpc_id": "vpc-1", "instance_id": "i-1", "port": 8080,
                        "address": "127.0.0.1:8080"}],
        "backends": [{"name": "orders_vpc_be", "type": "VPC",
                      "stages": {"TEST": {"vpc_access": "orders_vpc"}}}]
    });
    let plan = cp.apply_document(&doc(&v), PlanScope::Whole).await.unwrap();
    assert_eq!(plan.counts(), (2, 0, 0, 0, 0));
    let exported = cp.export_document().await;
    assert_eq!(
        serde_json::to_value(&exported.backends[0]).unwrap()["stages"]["TEST"],
        json!({"vpc_access": "orders_vpc", "https": false})
    );
    assert!(
        cp.plan(&exported, PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
    let bad = json!({
        "vpc_access": [{"name": "orders_vpc", "vpc_id": "vpc-1", "instance_id": "i-1", "port": 0}],
        "backends": [
            {"name": "orders_vpc_be", "type": "HTTP"},
            {"name": "other_vpc_be", "type": "VPC", "stages": {
                "TEST": {"vpc_access_id": "x"}, "PRE": {"vpc_access": "missing_vpc"}}}
        ]
    });
    let err = cp.plan(&doc(&bad), PlanScope::Whole).await.unwrap_err();
    let ControlError::InvalidConfig { issues } = &err else {
        panic!("{err:?}")
    };
    let got: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.object.as_str(), i.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("vpc_access `orders_vpc`", "port"),
            ("backend `orders_vpc_be`", "type"),
            ("backend `other_vpc_be`", "stages.TEST.vpc_access_id"),
            ("backend `other_vpc_be`", "stages.PRE.vpc_access"),
        ],
        "{err}"
    );
}

mod admin {
    use super::*;
    use axum::body::Body;
    use stagegate::admin::AdminApi;
    use stagegate::model::Secret;

    const TOKEN: &str = "config-test-token";

    async fn send(
        router: &axum::Router,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> common::Got {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
        common::oneshot(router.clone(), req).await
    }

    async fn json_call(router: &axum::Router, path: &str, body: &Value) -> common::Got {
        send(router, "POST", path, "application/json", body.to_string()).await
    }

    /// The whole configuration, without the export timestamp.
    async fn state(cp: &ControlPlane) -> Value {
        let mut v = serde_json::to_value(cp.export().await).unwrap();
        v["exported_at"] = Value::Null;
        v
    }

    #[tokio::test]
    async fn plan_apply_and_export_through_the_admin_api() {
        let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
        let gateway = GatewayLayer::new(cp.snapshot_handle()).standalone();
        let router = AdminApi::new(Arc::clone(&cp), Secret::new(TOKEN), gateway).router();
        let first = first_doc("http://127.0.0.1:9");

        let got = json_call(&router, "/config/plan", &first).await;
        assert_eq!(got.status, 200, "{}", got.text());
        let plan = got.json();
        assert_eq!(plan["revision"], 0);
        assert_eq!(plan["scope"], "whole");
        assert_eq!(plan["steps"].as_array().unwrap().len(), 9);
        assert_eq!(
            plan["steps"][0],
            json!({"action": "create", "kind": "backend", "name": "users_http"})
        );
        assert!(plan["text"].as_str().unwrap().ends_with(
            "Plan: 7 to create, 0 to change, 2 to publish, 0 to unpublish, 0 to delete.\n"
        ));
        assert!(!got.text().contains(SECRET) && !got.text().contains(CODE));
        assert!(cp.records().await.is_empty(), "planning changes nothing");

        // apply the plan made at revision 0
        let got = json_call(&router, "/config/apply?revision=0", &first).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["steps"], plan["steps"]);
        assert!(!got.text().contains(SECRET) && !got.text().contains(CODE));
        let applied = state(&cp).await;

        // the same plan again: the configuration moved past revision 0
        let got = json_call(&router, "/config/apply?revision=0", &first).await;
        assert_eq!(got.status, 409, "{}", got.text());
        assert_eq!(got.json()["code"], "PlanStale");
        // without a revision: nothing to do
        let got = json_call(&router, "/config/apply", &first).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["steps"], json!([]));
        assert_eq!(state(&cp).await, applied);

        // the export is a document that plans as no change, and holds no secret
        let got = send(&router, "GET", "/config", "application/json", "").await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(!got.text().contains(SECRET) && !got.text().contains(CODE));
        let exported = got.json();
        assert_eq!(exported["apis"][0]["publish"], json!(["TEST", "RELEASE"]));
        let got = json_call(&router, "/config/plan", &exported).await;
        assert_eq!(got.json()["steps"], json!([]), "{}", got.text());

        // the named scope, and TOML
        let got = send(
            &router,
            "POST",
            "/config/plan?scope=named",
            "application/toml; charset=utf-8",
            "[[groups]]\nname = \"shop_api\"\nbase_path = \"/v2\"\n",
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(
            got.json()["steps"],
            json!([{"action": "change", "kind": "group", "name": "shop_api", "fields": ["base_path"]}])
        );
        assert_eq!(got.json()["scope"], "named_only");
        assert_eq!(state(&cp).await, applied);
    }

    /// Policies through the admin API: applied from a document, listed by `/policies`, written
    /// by `GET /config` with their bindings and without the signature secret.
    #[tokio::test]
    async fn policies_apply_and_export_through_the_admin_api() {
        let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
        let gateway = GatewayLayer::new(cp.snapshot_handle()).standalone();
        let router = AdminApi::new(Arc::clone(&cp), Secret::new(TOKEN), gateway).router();
        let got = json_call(
            &router,
            "/config/apply",
            &super::policies_doc("http://127.0.0.1:9"),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(!got.text().contains("DemoSecret1"));
        let steps = got.json()["steps"].as_array().unwrap().clone();
        assert!(steps.contains(&json!({"action": "create", "kind": "policy", "name": "webApp"})));
        assert!(
            steps.contains(&json!({"action": "create", "kind": "policy_binding",
            "name": "webApp -> shop_api/getUser in RELEASE"}))
        );
        let got = send(&router, "GET", "/policies", "application/json", "").await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(got.text().contains("threePerDay"), "{}", got.text());
        let got = send(&router, "GET", "/config", "application/json", "").await;
        assert!(!got.text().contains("DemoSecret1"), "{}", got.text());
        let exported = got.json();
        assert_eq!(
            exported["policies"]["backend_signature"][0],
            json!({"name": "toBackend", "key": "DemoKey1"})
        );
        assert_eq!(
            exported["apis"][0]["policies"]["RELEASE"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        let got = json_call(&router, "/config/plan", &exported).await;
        assert_eq!(got.json()["steps"], json!([]), "{}", got.text());
    }

    #[tokio::test]
    async fn hostile_documents_are_refused_naming_what_and_change_nothing() {
        let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
        let gateway = GatewayLayer::new(cp.snapshot_handle()).standalone();
        let router = AdminApi::new(Arc::clone(&cp), Secret::new(TOKEN), gateway)
            .with_body_limit(64 * 1024)
            .router();
        cp.apply_document(&doc(&first_doc("http://127.0.0.1:9")), PlanScope::Whole)
            .await
            .unwrap();
        let before = state(&cp).await;
        let long_name = "a".repeat(10_000);
        let oversized =
            json!({"groups": [{"name": "shop_api", "description": "x".repeat(70_000)}]});
        // path, content type, body; status, code, a piece of the message
        type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, &'a str);
        let cases: Vec<Case<'_>> = vec![
            ("/config/apply", "application/json", b"{\"groups\": [".to_vec(), 400, "InvalidConfig", "EOF"),
            ("/config/apply", "application/json", br#"{"groups": [{"name": "shop_api", "nmae": 1}]}"#.to_vec(), 400, "InvalidConfig", "unknown field `nmae`"),
            ("/config/apply", "application/json", br#"{"groups": [], "groups": []}"#.to_vec(), 400, "InvalidConfig", "duplicate"),
            ("/config/apply", "application/json", br#"{"backends": [{"name": "users_http", "type": "HTTP", "stages": {"TEST": {"url": "http://a", "url": "http://b"}}}]}"#.to_vec(), 400, "InvalidConfig", "duplicate key `url`"),
            ("/config/apply", "application/json", "[".repeat(20_000).into_bytes(), 400, "InvalidConfig", "recursion limit"),
            ("/config/apply", "application/json", oversized.to_string().into_bytes(), 413, "PayloadTooLarge", "65536"),
            ("/config/apply", "application/json", br#"{"apps": "mobile_app"}"#.to_vec(), 400, "InvalidConfig", "invalid type"),
            ("/config/apply", "application/json", br#"{"format": 2}"#.to_vec(), 400, "InvalidConfig", "format"),
            ("/config/apply", "application/json", br#"{"policies": {"throttle": []}}"#.to_vec(), 400, "InvalidConfig", "unknown field `throttle`"),
            ("/config/apply", "application/json", br#"{"policies": {"throttling": [{"name": "perMinute", "unit": "WEEK", "api_default": 0}]}}"#.to_vec(), 400, "InvalidConfig", "policies.throttling[0].unit"),
            ("/config/apply", "application/json", br#"{"policies": {"ip_control": [{"name": "officeOnly", "mode": "ALLOW", "rules": [{"cidr": "10.0.0.0/8", "app": "nobody_app"}]}]}}"#.to_vec(), 400, "InvalidConfig", "policies.ip_control[0].rules[0].app: no app named `nobody_app`"),
            ("/config/apply", "application/json", b"".to_vec(), 400, "InvalidParameter", "send `{}`"),
            ("/config/apply", "application/json", vec![b'{', 0xff, b'}'], 400, "InvalidJson", "UTF-8"),
            ("/config/apply", "application/toml", b"[[groups]\nname =".to_vec(), 400, "InvalidConfig", "TOML parse error"),
            ("/config/apply", "application/toml", format!("a = {}", "[".repeat(20_000)).into_bytes(), 400, "InvalidConfig", "TOML parse error"),
            ("/config/apply?scope=all", "application/json", b"{}".to_vec(), 400, "InvalidParameter", "scope"),
            ("/config/apply?scope=whole&scope=named", "application/json", b"{}".to_vec(), 400, "InvalidParameter", "more than once"),
            ("/config/apply?revision=abc", "application/json", b"{}".to_vec(), 400, "InvalidParameter", "revision"),
            ("/config/plan?revision=1", "application/json", b"{}".to_vec(), 400, "InvalidParameter", "unknown query parameter `revision`"),
            ("/config/apply", "application/json", json!({"groups": [{"name": long_name}], "apps": [{"name": "x"}]}).to_string().into_bytes(), 400, "InvalidConfig", "2 errors in the configuration document"),
        ];
        for (path, content_type, body, status, code, needle) in cases {
            let got = send(&router, "POST", path, content_type, body).await;
            assert_eq!(got.status, status, "{path}: {}", got.text());
            assert_eq!(got.json()["code"], code, "{path}: {}", got.text());
            let message = got.json()["message"].as_str().unwrap().to_owned();
            assert!(message.contains(needle), "{path}: {message}");
            assert!(message.len() < 4096, "{path}: the message quotes too much");
            assert_eq!(state(&cp).await, before, "{path} changed the configuration");
        }
        // without the token
        let req = http::Request::post("/config/apply")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(common::oneshot(router.clone(), req).await.status, 401);
        assert_eq!(state(&cp).await, before);
    }
}

/// The guide's example document plans as the guide shows, and applying it twice changes
/// nothing the second time.
#[tokio::test]
async fn the_guides_example_document_plans_as_shown() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md"),
    )
    .unwrap();
    let section = &guide[guide
        .find("\n## Declarative configuration")
        .expect("the guide's declarative configuration section")..];
    let block = |fence: &str| {
        let start = section.find(fence).unwrap() + fence.len();
        section[start..][..section[start..].find("\n```").unwrap() + 1].to_owned()
    };
    let toml = block("```toml\n");
    let shown = block("```text\n");
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let doc = ConfigDocument::from_toml(&toml).unwrap();
    let plan = cp.apply_document(&doc, PlanScope::Whole).await.unwrap();
    assert_eq!(plan.to_string(), shown);
    assert!(
        cp.apply_document(&doc, PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The policies document: one API published in RELEASE with all four policy kinds bound there
/// by name (an IP rule for the app by name), the app granted.
fn policies_doc(upstream: &str) -> Value {
    let mut v = first_doc(upstream);
    v["apps"] = json!([{"name": "mobile_app",
        "keys": [{"app_key": "203753911", "app_secret": SECRET}], "codes": [CODE],
        "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST", "RELEASE"]}]}]);
    v["policies"] = json!({
        "throttling": [{"name": "threePerDay", "unit": "DAY", "api_default": 3,
                        "special_apps": [{"app": "mobile_app", "limit": 3}]}],
        "ip_control": [{"name": "officeOnly", "mode": "ALLOW",
                        "rules": [{"cidr": "10.0.0.0/8"}, {"cidr": "198.51.100.0/24", "app": "mobile_app"}]}],
        "cors": [{"name": "webApp", "allow_origins": ["https://app.example.com"]}],
        "backend_signature": [{"name": "toBackend", "key": "DemoKey1", "secret": "DemoSecret1"}]
    });
    v["apis"][0]["policies"] =
        json!({"RELEASE": ["threePerDay", "officeOnly", "webApp", "toBackend"]});
    v
}

/// Calls `GET /users/7` in RELEASE with the AppCode from `peer`.
async fn call_from(gw: &stagegate::layer::GatewayService, peer: [u8; 4]) -> common::Got {
    let mut req = http::Request::builder()
        .uri("/users/7")
        .header("x-ca-stage", "RELEASE")
        .header("authorization", format!("APPCODE {CODE}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(stagegate::layer::ClientAddr(std::net::SocketAddr::from((
            peer, 4000,
        ))));
    common::oneshot(gw.clone(), req).await
}

/// Policies declared in the document are enforced by the data plane once applied (throttling
/// 429 after the limit, IP refusal 403 `A403IP`, the CORS preflight answered, the backend
/// request signed); applying it again plans nothing; a changed document unbinds them and
/// deletes the ones it no longer declares, after which the API answers as without them.
#[tokio::test]
async fn policies_of_a_document_are_enforced_then_unbound_and_removed() {
    let up = common::upstream("pol").await;
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let first = doc(&policies_doc(&format!("http://{up}")));
    let plan = cp.apply_document(&first, PlanScope::Whole).await.unwrap();
    let text = plan.to_string();
    for line in [
        "+ policy threePerDay\n",
        "+ policy officeOnly\n",
        "+ policy webApp\n",
        "+ policy toBackend\n",
        "+ policy_binding officeOnly -> shop_api/getUser in RELEASE\n",
        "+ policy_binding threePerDay -> shop_api/getUser in RELEASE\n",
        "+ policy_binding toBackend -> shop_api/getUser in RELEASE\n",
        "+ policy_binding webApp -> shop_api/getUser in RELEASE\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(!text.contains("DemoSecret1"));
    assert!(
        cp.plan(&first, PlanScope::Whole).await.unwrap().is_empty(),
        "the same document again plans nothing"
    );

    let gw = GatewayLayer::new(cp.snapshot_handle()).standalone();
    // IP control: outside every rule, refused before anything counts
    let r = call_from(&gw, [192, 0, 2, 1]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-ca-error-code"), Some("A403IP"));
    // the app's own rule admits it from its network
    let r = call_from(&gw, [198, 51, 100, 7]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // backend signature: the upstream receives the signed headers
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-ca-proxy-signature-secret-key"], "DemoKey1");
    assert!(
        headers["x-ca-proxy-signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    // throttling: 3 a day, then 429
    for _ in 0..2 {
        assert_eq!(call_from(&gw, [10, 1, 2, 3]).await.status, 200);
    }
    let r = call_from(&gw, [10, 1, 2, 3]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.header("x-ca-error-code")
            .is_some_and(|c| c.starts_with("T429"))
    );
    // CORS: the preflight is answered by the gateway
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri("/users/7")
        .header("x-ca-stage", "RELEASE")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = common::oneshot(gw.clone(), preflight).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    // The changed document: nothing bound, throttling and IP control no longer declared.
    let mut changed = policies_doc(&format!("http://{up}"));
    changed["apis"][0]
        .as_object_mut()
        .unwrap()
        .remove("policies");
    for kind in ["throttling", "ip_control"] {
        changed["policies"].as_object_mut().unwrap().remove(kind);
    }
    let plan = cp
        .apply_document(&doc(&changed), PlanScope::Whole)
        .await
        .unwrap();
    assert_eq!(
        plan.steps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "- policy_binding officeOnly -> shop_api/getUser in RELEASE",
            "- policy_binding threePerDay -> shop_api/getUser in RELEASE",
            "- policy_binding toBackend -> shop_api/getUser in RELEASE",
            "- policy_binding webApp -> shop_api/getUser in RELEASE",
            "- policy officeOnly",
            "- policy threePerDay",
        ]
    );
    assert_eq!(cp.policies().await.len(), 2);
    let r = call_from(&gw, [192, 0, 2, 1]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("ratelimit-limit").is_none());
    assert!(r.json()["headers"]["x-ca-proxy-signature"].is_null());
    assert!(
        cp.plan(&doc(&changed), PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Export → a fresh control plane → apply → export gives the same document, policies and
/// bindings included and no secret; the same document in TOML reads as in JSON.
#[tokio::test]
async fn policies_round_trip_through_export_in_json_and_toml() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let v = policies_doc("http://127.0.0.1:9");
    cp.apply_document(&doc(&v), PlanScope::Whole).await.unwrap();
    let exported = cp.export_document().await;
    let text = serde_json::to_string(&exported).unwrap();
    assert!(!text.contains("DemoSecret1"), "{text}");
    assert!(
        text.contains(
            r#""policies":{"RELEASE":["officeOnly","threePerDay","toBackend","webApp"]}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#""special_apps":[{"app":"mobile_app","limit":3}]"#),
        "{text}"
    );
    assert!(
        cp.plan(&exported, PlanScope::Whole)
            .await
            .unwrap()
            .is_empty()
    );

    let fresh = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let reread = ConfigDocument::from_json(&text).unwrap();
    fresh
        .apply_document(&reread, PlanScope::Whole)
        .await
        .unwrap();
    assert_eq!(fresh.export_document().await, exported);

    #[cfg(feature = "toml")]
    {
        let toml = r#"
[[policies.throttling]]
name = "threePerDay"
unit = "DAY"
api_default = 3
special_apps = [{ app = "mobile_app", limit = 3 }]

[[policies.ip_control]]
name = "officeOnly"
mode = "ALLOW"
rules = [{ cidr = "10.0.0.0/8" }, { cidr = "198.51.100.0/24", app = "mobile_app" }]

[[policies.cors]]
name = "webApp"
allow_origins = ["https://app.example.com"]

[[policies.backend_signature]]
name = "toBackend"
key = "DemoKey1"
secret = "DemoSecret1"
"#;
        let from_toml = ConfigDocument::from_toml(toml).unwrap();
        assert_eq!(from_toml.policies, doc(&v).policies);
        let mut api_toml = String::from(
            "[[apis]]\nname = \"getUser\"\ngroup = \"shop_api\"\nrequest = { method = \"GET\", path = \"/users\" }\nbackend = { name = \"users_http\" }\n",
        );
        api_toml.push_str("policies.RELEASE = [\"threePerDay\", \"webApp\"]\n");
        let api = ConfigDocument::from_toml(&api_toml).unwrap();
        assert_eq!(
            api.apis[0].policies[&Stage::RELEASE],
            ["threePerDay", "webApp"]
        );
    }
}
