//! The admin contract for policies: create, read (secrets never shown), change, delete
//! (refused while bound, naming the bindings), bind and unbind; bad input refused with 400
//! naming the field and changing nothing; export and import; the OpenAPI document.

#![cfg(feature = "admin")]

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use stagegate::admin::AdminApi;
use stagegate::model::{BackendKind, HttpDefinition, Stage, StageDefinition};
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer, model::Secret};

const TOKEN: &str = "admin-test-token";

struct Admin {
    api: AdminApi,
    control: Arc<ControlPlane>,
}

async fn admin() -> Admin {
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    let api = AdminApi::new(Arc::clone(&control), Secret::new(TOKEN), gateway);
    Admin { api, control }
}

impl Admin {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> common::Got {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        common::oneshot(self.api.router(), req).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let got = self.call(method, path, body).await;
        assert_eq!(got.status, status, "{method} {path}: {}", got.text());
        got.json()
    }

    async fn state(&self) -> Value {
        let mut v = serde_json::to_value(self.control.export().await).unwrap();
        v["exported_at"] = Value::Null;
        v
    }

    /// A published anonymous API; its id.
    async fn published_api(&self) -> String {
        let b = self
            .control
            .create_backend(stagegate::control::NewBackend::new(
                "polBackend",
                BackendKind::Http,
            ))
            .await
            .unwrap();
        self.control
            .set_stage_definition(
                &b.id,
                Stage::RELEASE,
                StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:9")),
            )
            .await
            .unwrap();
        let g = self
            .control
            .create_group(stagegate::control::NewGroup {
                name: "pol_group".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let a = stagegate::model::ApiDefinition::new(g.id, "polApi", "GET", "/pol", b.id)
            .unwrap()
            .anonymous();
        let a = self.control.create_api(a).await.unwrap();
        self.control
            .publish(&a.id, Stage::RELEASE, None)
            .await
            .unwrap();
        a.id.to_string()
    }
}

#[tokio::test]
async fn create_read_change_bind_unbind_and_delete() {
    let a = admin().await;
    let api = a.published_api().await;
    let app = a
        .control
        .create_app(stagegate::control::NewApp {
            name: "specialApp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let t = a
        .ok(
            "POST",
            "/policies",
            Some(json!({"name": "perMinute", "type": "THROTTLING", "unit": "MINUTE", "api_default": 100,
                "app_default": 10, "special_apps": [{"app_id": app.id, "limit": 50}]})),
            201,
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    assert_eq!(t["type"], "THROTTLING");
    assert_eq!(t["special_apps"][0]["limit"], 50);
    let s = a
        .ok(
            "POST",
            "/policies",
            Some(json!({"name": "backendKey", "type": "BACKEND_SIGNATURE", "key": "DemoKey1", "secret": "DemoSecret1"})),
            201,
        )
        .await;
    let sid = s["id"].as_str().unwrap().to_owned();
    // The secret is never returned by reads.
    for body in [
        s.to_string(),
        a.call("GET", &format!("/policies/{sid}"), None)
            .await
            .text(),
        a.call("GET", "/policies", None).await.text(),
    ] {
        assert!(!body.contains("DemoSecret1"), "{body}");
        assert!(body.contains("DemoKey1"));
    }
    // Bind: 201; the same type twice in a stage is refused.
    let b = a
        .ok(
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": tid, "stage": "RELEASE"})),
            201,
        )
        .await;
    assert_eq!(b["policy_id"], tid.as_str());
    let other = a
        .ok(
            "POST",
            "/policies",
            Some(json!({"name": "perSecond", "type": "THROTTLING", "unit": "SECOND", "api_default": 5})),
            201,
        )
        .await;
    let r = a
        .call(
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": other["id"], "stage": "RELEASE"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // Deleting a bound policy: 409 naming the binding.
    let r = a.call("DELETE", &format!("/policies/{tid}"), None).await;
    assert_eq!(r.status, 409);
    assert!(
        r.text().contains(&api) && r.text().contains("RELEASE"),
        "{}",
        r.text()
    );
    // Change: PUT replaces the settings.
    let changed = a
        .ok(
            "PUT",
            &format!("/policies/{tid}"),
            Some(json!({"name": "perMinute", "type": "THROTTLING", "unit": "HOUR", "api_default": 7})),
            200,
        )
        .await;
    assert_eq!(changed["unit"], "HOUR");
    // The OpenAPI document shows the rate limit.
    let groups = a.control.groups().await;
    let doc = a
        .ok(
            "GET",
            &format!("/groups/{}/openapi", groups[0].id),
            None,
            200,
        )
        .await;
    let op = &doc["paths"]["/pol"]["get"];
    assert_eq!(op["x-stagegate-rate-limit"]["api_default"], 7);
    assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
    let _: openapiv3::OpenAPI = serde_json::from_value(doc).unwrap();
    // Export and import carry policies and bindings.
    let exported = a.state().await;
    assert_eq!(exported["policies"].as_array().unwrap().len(), 3);
    assert_eq!(exported["policy_bindings"].as_array().unwrap().len(), 1);
    let fresh = admin().await;
    let mut doc = exported.clone();
    doc["exported_at"] = json!("2026-01-01T00:00:00Z");
    fresh.ok("POST", "/import", Some(doc), 200).await;
    assert_eq!(fresh.state().await, exported);
    // Unbind, then delete.
    a.ok(
        "DELETE",
        &format!("/apis/{api}/policies/{tid}?stage=RELEASE"),
        None,
        200,
    )
    .await;
    let r = a
        .call(
            "DELETE",
            &format!("/apis/{api}/policies/{tid}?stage=RELEASE"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    a.ok("DELETE", &format!("/policies/{tid}"), None, 200).await;
    assert_eq!(
        a.call("GET", &format!("/policies/{tid}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn bad_policy_input_is_refused_with_400_naming_the_field_and_changes_nothing() {
    let a = admin().await;
    let api = a.published_api().await;
    let before = a.state().await;
    let cases = [
        (
            json!({"name": "badCidr", "type": "IP_CONTROL", "mode": "ALLOW", "rules": [{"cidr": "10.0.0.0/8"}, {"cidr": "10.1.1.300/32"}]}),
            "rules[1].cidr",
        ),
        (
            json!({"name": "badCidr6", "type": "IP_CONTROL", "mode": "REFUSE", "rules": [{"cidr": "2001:db8::/129"}]}),
            "rules[0].cidr",
        ),
        (
            json!({"name": "refuseApp", "type": "IP_CONTROL", "mode": "REFUSE", "rules": [{"cidr": "10.0.0.0/8", "app_id": "1"}]}),
            "rules[0].app_id",
        ),
        (
            json!({"name": "zeroLimit", "type": "THROTTLING", "unit": "SECOND", "api_default": 0}),
            "api_default",
        ),
        (
            json!({"name": "negLimit", "type": "THROTTLING", "unit": "SECOND", "api_default": 5, "app_default": -3}),
            "app_default",
        ),
        (
            json!({"name": "fracLimit", "type": "THROTTLING", "unit": "SECOND", "api_default": 1.5}),
            "api_default",
        ),
        (
            json!({"name": "hugeLimit", "type": "THROTTLING", "unit": "SECOND", "api_default": 99_999_999_999u64}),
            "api_default",
        ),
        (
            json!({"name": "weekUnit", "type": "THROTTLING", "unit": "WEEK", "api_default": 5}),
            "unit",
        ),
        (
            json!({"name": "ghostApp", "type": "THROTTLING", "unit": "DAY", "api_default": 5, "special_apps": [{"app_id": "999999", "limit": 1}]}),
            "special_apps[0].app_id",
        ),
        (
            json!({"name": "specialZero", "type": "THROTTLING", "unit": "DAY", "api_default": 5, "special_apps": [{"app_id": "999999", "limit": 0}]}),
            "special_apps[0].limit",
        ),
        (
            json!({"name": "noType", "unit": "DAY", "api_default": 5}),
            "type",
        ),
        (json!({"name": "oddType", "type": "FIREWALL"}), "type"),
        (
            json!({"name": "corsStar", "type": "CORS", "allow_origins": ["*"], "allow_credentials": true}),
            "allow_credentials",
        ),
        (
            json!({"name": "corsPath", "type": "CORS", "allow_origins": ["https://a.example.com/x"]}),
            "allow_origins[0]",
        ),
        (
            json!({"name": "corsMethod", "type": "CORS", "allow_origins": ["*"], "allow_methods": ["get"]}),
            "allow_methods[0]",
        ),
        (
            json!({"name": "shortKey", "type": "BACKEND_SIGNATURE", "key": "k", "secret": "DemoSecret1"}),
            "key",
        ),
        (
            json!({"name": "badSecret", "type": "BACKEND_SIGNATURE", "key": "DemoKey1", "secret": "1<script>"}),
            "secret",
        ),
        (
            json!({"name": "x", "type": "CORS", "allow_origins": ["*"]}),
            "policy name",
        ),
        (json!({"type": "CORS", "allow_origins": ["*"]}), "name"),
    ];
    for (body, field) in cases {
        let r = a.call("POST", "/policies", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(
            r.json()["message"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.text()
        );
        assert!(!r.text().contains("1<script>"));
    }
    // Binding input: unknown policy (404), bad stage (400), unknown field (400).
    let r = a
        .call(
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": "nope", "stage": "RELEASE"})),
        )
        .await;
    assert_eq!(r.status, 404);
    let cors = a
        .ok(
            "POST",
            "/policies",
            Some(json!({"name": "webApp", "type": "CORS", "allow_origins": ["*"]})),
            201,
        )
        .await;
    let r = a
        .call(
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": cors["id"], "stage": "PROD"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .call(
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": cors["id"], "stage": "TEST", "extra": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    // Changing the type is refused.
    let r = a
        .call(
            "PUT",
            &format!("/policies/{}", cors["id"].as_str().unwrap()),
            Some(json!({"name": "webApp", "type": "THROTTLING", "unit": "DAY", "api_default": 1})),
        )
        .await;
    assert_eq!(r.status, 409);
    a.ok(
        "DELETE",
        &format!("/policies/{}", cors["id"].as_str().unwrap()),
        None,
        200,
    )
    .await;
    assert_eq!(a.state().await, before);
}
