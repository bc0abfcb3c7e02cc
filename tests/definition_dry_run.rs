//! `?dry_run=true` on the stage-definition `PUT` and `DELETE`, and the control plane's
//! `preview_*` methods: the same report as the real change, and nothing changed.
#![cfg(feature = "admin")]

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use stagegate::admin::AdminApi;
use stagegate::model::{HttpDefinition, MockDefinition, Secret, Stage, StageDefinition};
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer};

const TOKEN: &str = "dry-run-token";

struct World {
    admin: AdminApi,
    control: Arc<ControlPlane>,
    backend: String,
    apis: Vec<String>,
}

async fn call(a: &AdminApi, method: &str, path: &str, body: Option<Value>) -> common::Got {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    common::oneshot(a.router(), req).await
}

async fn ok(a: &AdminApi, method: &str, path: &str, body: Option<Value>) -> Value {
    let got = call(a, method, path, body).await;
    assert!(
        got.status < 300,
        "{method} {path}: {} {}",
        got.status,
        got.text()
    );
    got.json()
}

/// An HTTP backend defined in TEST and PRE; two APIs on it published in TEST (one of them also
/// in PRE) and one only a draft.
async fn world() -> World {
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    let admin = AdminApi::new(Arc::clone(&control), Secret::new(TOKEN), gateway);
    let b = ok(
        &admin,
        "POST",
        "/backends",
        Some(json!({"name": "orders", "type": "MIXED"})),
    )
    .await;
    let backend = b["id"].as_str().unwrap().to_owned();
    for st in ["TEST", "PRE"] {
        ok(
            &admin,
            "PUT",
            &format!("/backends/{backend}/stages/{st}"),
            Some(json!({"type": "HTTP", "url": "http://127.0.0.1:9"})),
        )
        .await;
    }
    let g = ok(&admin, "POST", "/groups", Some(json!({"name": "shop"}))).await;
    let mut apis = Vec::new();
    for (name, stages) in [
        ("listOrders", &["TEST", "PRE"][..]),
        ("getOrder", &["TEST"][..]),
        ("draftOnly", &[][..]),
    ] {
        let api = ok(
            &admin,
            "POST",
            "/apis",
            Some(json!({
                "group_id": g["id"], "name": name, "auth": "ANONYMOUS",
                "request": {"method": "GET", "path": format!("/{name}")},
                "backend": {"backend_id": backend}
            })),
        )
        .await;
        let id = api["id"].as_str().unwrap().to_owned();
        for st in stages {
            ok(
                &admin,
                "POST",
                &format!("/apis/{id}/publish"),
                Some(json!({"stage": st})),
            )
            .await;
        }
        apis.push(id);
    }
    World {
        admin,
        control,
        backend,
        apis,
    }
}

/// Everything the control plane holds, without the export timestamp.
async fn state(c: &ControlPlane) -> Value {
    let mut v = serde_json::to_value(c.export().await).unwrap();
    v["exported_at"] = Value::Null;
    v
}

fn names(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["api_name"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn put_dry_run_reports_what_the_change_then_does_and_changes_nothing() {
    let w = world().await;
    let path = format!("/backends/{}/stages/TEST", w.backend);
    let before = state(&w.control).await;
    let generation = w.control.snapshot().generation();
    let body = json!({"type": "HTTP", "url": "http://127.0.0.1:10"});
    let dry = ok(
        &w.admin,
        "PUT",
        &format!("{path}?dry_run=true"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        names(&dry["report"]),
        [
            ("getOrder".into(), "republished".into()),
            ("listOrders".into(), "republished".into())
        ]
    );
    // Nothing changed: the records, the live snapshot, the definition.
    assert_eq!(state(&w.control).await, before);
    assert_eq!(w.control.snapshot().generation(), generation);
    let def = ok(&w.admin, "GET", &path, None).await;
    assert_eq!(def["url"], "http://127.0.0.1:9");
    // The real change reports the same APIs.
    let real = ok(&w.admin, "PUT", &path, Some(body)).await;
    assert_eq!(real["dry_run"], false);
    assert_eq!(names(&real["report"]), names(&dry["report"]));
    assert_eq!(real["definition"], dry["definition"]);
    assert_eq!(
        ok(&w.admin, "GET", &path, None).await["url"],
        "http://127.0.0.1:10"
    );
}

#[tokio::test]
async fn put_dry_run_to_another_kind_of_a_mixed_backend_matches_the_change() {
    let w = world().await;
    let path = format!("/backends/{}/stages/TEST", w.backend);
    // A MOCK definition: every API can use it, so both are re-pointed; the report is the same.
    let mock = json!({"type": "MOCK", "status": 200, "body": "hi"});
    let dry = ok(
        &w.admin,
        "PUT",
        &format!("{path}?dry_run=true"),
        Some(mock.clone()),
    )
    .await;
    let real = ok(&w.admin, "PUT", &path, Some(mock)).await;
    assert_eq!(names(&dry["report"]), names(&real["report"]));
    assert_eq!(dry["report"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn delete_dry_run_lists_the_apis_the_delete_then_unpublishes() {
    let w = world().await;
    let path = format!("/backends/{}/stages/TEST", w.backend);
    let before = state(&w.control).await;
    let dry = ok(&w.admin, "DELETE", &format!("{path}?dry_run=true"), None).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        names(&dry["report"]),
        [
            ("getOrder".into(), "unpublished".into()),
            ("listOrders".into(), "unpublished".into())
        ]
    );
    assert_eq!(state(&w.control).await, before);
    for id in &w.apis[..2] {
        let api = stagegate::model::ApiId::parse(id).unwrap();
        assert!(w.control.published(&api, &Stage::TEST).await.is_some());
    }
    let real = ok(&w.admin, "DELETE", &path, None).await;
    assert_eq!(real["dry_run"], false);
    assert_eq!(names(&real["report"]), names(&dry["report"]));
    for id in &w.apis[..2] {
        let api = stagegate::model::ApiId::parse(id).unwrap();
        assert!(w.control.published(&api, &Stage::TEST).await.is_none());
    }
    // PRE is untouched.
    let list = stagegate::model::ApiId::parse(&w.apis[0]).unwrap();
    assert!(w.control.published(&list, &Stage::PRE).await.is_some());
    // A second dry run now has nothing to delete: 404, like the real one.
    assert_eq!(
        call(&w.admin, "DELETE", &format!("{path}?dry_run=true"), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn bad_dry_run_values_are_refused_and_change_nothing() {
    let w = world().await;
    let path = format!("/backends/{}/stages/TEST", w.backend);
    let before = state(&w.control).await;
    let body = json!({"type": "HTTP", "url": "http://127.0.0.1:11"});
    for q in [
        "dry_run=yes",
        "dry_run=",
        "dry_run=true&dry_run=true",
        "dry_run=TRUE",
        "dryrun=true",
        "dry_run=true&x=1",
    ] {
        let put = call(&w.admin, "PUT", &format!("{path}?{q}"), Some(body.clone())).await;
        assert_eq!(put.status, 400, "{q}: {}", put.text());
        assert_eq!(put.json()["code"], "InvalidParameter");
        let named = if q.ends_with("x=1") {
            "`x`"
        } else if q.starts_with("dryrun") {
            "`dryrun`"
        } else {
            "`dry_run`"
        };
        assert!(
            put.text().contains(named),
            "{q}: names the field: {}",
            put.text()
        );
        let del = call(&w.admin, "DELETE", &format!("{path}?{q}"), None).await;
        assert_eq!(del.status, 400, "{q}: {}", del.text());
    }
    // A dry run still validates the definition.
    let bad = call(
        &w.admin,
        "PUT",
        &format!("{path}?dry_run=true"),
        Some(json!({"type": "HTTP", "url": "ftp://x"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let unknown = call(
        &w.admin,
        "PUT",
        "/backends/b-nope/stages/TEST?dry_run=true",
        Some(body),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(state(&w.control).await, before);
}

#[tokio::test]
async fn control_plane_previews_match_the_changes() {
    let w = world().await;
    let id = stagegate::model::BackendId::parse(&w.backend).unwrap();
    let def = StageDefinition::Mock(
        serde_json::from_value::<MockDefinition>(json!({"status": 200, "body": "x"})).unwrap(),
    );
    let preview = w
        .control
        .preview_stage_definition(&id, Stage::TEST, def.clone())
        .await
        .unwrap();
    let change = w
        .control
        .set_stage_definition(&id, Stage::TEST, def)
        .await
        .unwrap();
    assert_eq!(preview.report, change.report);
    assert_eq!(preview.definition, change.definition);
    let http = StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:12"));
    assert!(
        w.control
            .preview_stage_definition(&id, Stage::RELEASE, http)
            .await
            .unwrap()
            .report
            .is_empty()
    );
    assert!(
        w.control
            .stage_definition(&id, &Stage::RELEASE)
            .await
            .unwrap()
            .is_none()
    );
    let preview = w
        .control
        .preview_delete_stage_definition(&id, &Stage::PRE)
        .await
        .unwrap();
    let done = w
        .control
        .delete_stage_definition(&id, &Stage::PRE)
        .await
        .unwrap();
    assert_eq!(preview, done);
    assert_eq!(done.len(), 1);
}
