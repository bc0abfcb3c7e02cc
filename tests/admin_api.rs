//! The admin REST API in-process (`AdminApi::router()` with `oneshot`): the contract's shapes,
//! bad input on every route, the debug endpoint, OpenAPI documents, export → import.
#![cfg(feature = "admin")]

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use stagegate::admin::AdminApi;
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer, GatewayService, model::Secret};

const TOKEN: &str = "admin-test-token";

struct Admin {
    api: AdminApi,
    gateway: GatewayService,
    control: Arc<ControlPlane>,
}

async fn admin() -> Admin {
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    let api = AdminApi::new(Arc::clone(&control), Secret::new(TOKEN), gateway.clone());
    Admin {
        api,
        gateway,
        control,
    }
}

impl Admin {
    async fn raw(&self, method: &str, path: &str, body: impl Into<Body>) -> common::Got {
        common::admin_call(self.api.router(), TOKEN, method, path, body).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> common::Got {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, body).await
    }

    async fn ok(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let got = self.call(method, path, Some(body)).await;
        assert_eq!(got.status, status, "{method} {path}: {}", got.text());
        got.json()
    }

    /// The configuration, without the export timestamp.
    async fn state(&self) -> Value {
        let mut v = serde_json::to_value(self.control.export().await).unwrap();
        v["exported_at"] = Value::Null;
        v
    }

    async fn gateway_call(&self, path: &str, headers: &[(&str, &str)]) -> common::Got {
        let mut b = Request::get(path).header("host", "localhost");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        common::oneshot(self.gateway.clone(), b.body(Body::empty()).unwrap()).await
    }
}

struct World {
    backend: String,
    group: String,
    api: String,
    app: String,
    app_code: String,
    app_secret: String,
}

/// A MOCK backend defined in TEST, a group, an APP API on `/users/[id]` published in TEST, an
/// authorized app.
async fn world(a: &Admin) -> World {
    let b = a
        .ok(
            "POST",
            "/backends",
            json!({"name": "mock_users", "type": "MOCK"}),
            201,
        )
        .await;
    assert_eq!(b["type"], "MOCK");
    assert_eq!(b["name"], "mock_users");
    let backend = b["id"].as_str().unwrap().to_owned();
    let d = a
        .ok(
            "PUT",
            &format!("/backends/{backend}/stages/test"),
            json!({"status": 200, "headers": {"content-type": "application/json"}, "body": "{\"user\":1}"}),
            200,
        )
        .await;
    assert_eq!(d["definition"]["type"], "MOCK");
    assert_eq!(d["report"], json!([]));
    let g = a
        .ok(
            "POST",
            "/groups",
            json!({"name": "users_group", "base_path": "/v1"}),
            201,
        )
        .await;
    let group = g["id"].as_str().unwrap().to_owned();
    let api = a
        .ok(
            "POST",
            "/apis",
            json!({
                "group_id": group, "name": "getUser", "auth": "APP", "appcode_auth": "HEADER_QUERY",
                "signature_methods": ["HmacSHA256", "HmacSHA1"],
                "request": {"method": "GET", "path": "/users/[id]", "mode": "MAPPING"},
                "parameters": [
                    {"name": "id", "location": "PATH", "type": "LONG", "required": true},
                    {"name": "lang", "location": "QUERY", "type": "STRING", "enum_values": ["en", "zh"], "default": "en"},
                    {"name": "x-trace", "location": "HEAD", "type": "STRING", "max_length": 64},
                    {"name": "limit", "location": "QUERY", "type": "INT", "min_value": 1.0, "max_value": 100.0, "demo_value": "10"}
                ],
                "backend": {"backend_id": backend, "path": "/users/[id]"},
                "response": {"content_type": "application/json", "example": "{\"user\":1}", "error_example": "{\"code\":\"NotFound\"}",
                    "error_codes": [{"code": "NotFound", "message": "no such user"}]}
            }),
            201,
        )
        .await;
    let api = api["id"].as_str().unwrap().to_owned();
    let p = a
        .ok(
            "POST",
            &format!("/apis/{api}/publish"),
            json!({"stage": "TEST", "description": "v1"}),
            201,
        )
        .await;
    assert!(p["version"].is_string());
    let app = a
        .ok("POST", "/apps", json!({"name": "mobile_app"}), 201)
        .await;
    for f in ["id", "name", "app_key", "app_secret", "app_code"] {
        assert!(app[f].is_string(), "POST /apps answers {f}: {app}");
    }
    let app_id = app["id"].as_str().unwrap().to_owned();
    a.ok(
        "POST",
        &format!("/apis/{api}/authorizations"),
        json!({"app_id": app_id, "stage": "TEST"}),
        201,
    )
    .await;
    World {
        backend,
        group,
        api,
        app: app_id,
        app_code: app["app_code"].as_str().unwrap().to_owned(),
        app_secret: app["app_secret"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn contract_shapes() {
    let a = admin().await;
    let w = world(&a).await;
    let h = common::oneshot(
        a.api.router(),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(h.status, 200);
    let list = a.call("GET", "/backends", None).await.json();
    assert_eq!(
        list[0]["stages"]["TEST"]["type"], "MOCK",
        "with its stage definitions"
    );
    let one = a
        .call("GET", &format!("/backends/{}", w.backend), None)
        .await
        .json();
    assert_eq!(one["id"], w.backend.as_str());
    let def = a
        .call("GET", &format!("/backends/{}/stages/TEST", w.backend), None)
        .await;
    assert_eq!(def.json()["status"], 200);
    let none = a
        .call("GET", &format!("/backends/{}/stages/PRE", w.backend), None)
        .await;
    assert_eq!(none.status, 404);
    let drafts = a
        .call("GET", &format!("/backends/{}/apis", w.backend), None)
        .await
        .json();
    assert_eq!(drafts[0]["id"], w.api.as_str());
    let pre = a
        .call(
            "GET",
            &format!("/backends/{}/apis?stage=PRE", w.backend),
            None,
        )
        .await
        .json();
    assert_eq!(pre, json!([]));
    let test = a
        .call(
            "GET",
            &format!("/backends/{}/apis?stage=TEST", w.backend),
            None,
        )
        .await
        .json();
    assert_eq!(test[0]["id"], w.api.as_str());
    let renamed = a
        .ok(
            "PATCH",
            &format!("/backends/{}", w.backend),
            json!({"description": "users, mocked"}),
            200,
        )
        .await;
    assert_eq!(renamed["description"], "users, mocked");

    // Changing the definition re-points the published API, with a report.
    let ch = a
        .ok(
            "PUT",
            &format!("/backends/{}/stages/TEST", w.backend),
            json!({"type": "MOCK", "status": 200, "body": "v2"}),
            200,
        )
        .await;
    assert_eq!(
        ch["report"],
        json!([{"api_id": w.api, "api_name": "getUser", "stage": "TEST", "result": "republished"}])
    );
    let got = a
        .gateway_call(
            "/v1/users/7",
            &[
                ("x-ca-stage", "TEST"),
                ("authorization", &format!("APPCODE {}", w.app_code)),
            ],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "v2");

    // Apps: search, one with keys and codes, more keys and codes, rotation.
    assert_eq!(
        a.call("GET", "/apps?name=MOBILE", None).await.json()[0]["id"],
        w.app.as_str()
    );
    assert_eq!(
        a.call("GET", "/apps?name=zzz", None).await.json(),
        json!([])
    );
    let app = a
        .call("GET", &format!("/apps/{}", w.app), None)
        .await
        .json();
    assert_eq!(app["keys"][0]["app_secret"], w.app_secret.as_str());
    assert_eq!(app["codes"][0], w.app_code.as_str());
    let key = app["keys"][0]["app_key"].as_str().unwrap().to_owned();
    let rotated = a
        .ok(
            "POST",
            &format!("/apps/{}/keys/{key}/rotate", w.app),
            json!({}),
            200,
        )
        .await;
    assert_ne!(rotated["app_secret"], w.app_secret.as_str());
    let k2 = a
        .ok("POST", &format!("/apps/{}/keys", w.app), json!({}), 201)
        .await;
    assert!(k2["app_key"].is_string());
    let c2 = a
        .ok("POST", &format!("/apps/{}/codes", w.app), json!({}), 201)
        .await;
    let code2 = c2["app_code"].as_str().unwrap().to_owned();
    a.ok(
        "DELETE",
        &format!("/apps/{}/codes", w.app),
        json!({"app_code": code2}),
        200,
    )
    .await;
    a.ok(
        "DELETE",
        &format!("/apps/{}/keys/{}", w.app, k2["app_key"].as_str().unwrap()),
        json!({}),
        200,
    )
    .await;
    let grants = a
        .call("GET", &format!("/apis/{}/authorizations", w.api), None)
        .await
        .json();
    assert_eq!(grants[0]["app_id"], w.app.as_str());

    // Deployments and rollback.
    a.ok(
        "POST",
        &format!("/apis/{}/publish", w.api),
        json!({"stage": "TEST"}),
        201,
    )
    .await;
    let deps = a
        .call("GET", &format!("/apis/{}/deployments", w.api), None)
        .await
        .json();
    assert_eq!(deps.as_array().unwrap().len(), 2);
    let first = deps[0]["version"].as_str().unwrap().to_owned();
    let back = a
        .ok(
            "POST",
            &format!("/apis/{}/rollback", w.api),
            json!({"stage": "TEST", "version": first}),
            200,
        )
        .await;
    assert_eq!(back["version"], first.as_str());

    // Revoke: the next call is refused.
    a.ok(
        "DELETE",
        &format!("/apis/{}/authorizations/{}?stage=test", w.api, w.app),
        json!({}),
        200,
    )
    .await;
    let refused = a
        .gateway_call(
            "/v1/users/7",
            &[
                ("x-ca-stage", "TEST"),
                ("authorization", &format!("APPCODE {}", w.app_code)),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);

    // Deleting the TEST definition unpublishes, with a report.
    let del = a
        .ok(
            "DELETE",
            &format!("/backends/{}/stages/TEST", w.backend),
            json!({}),
            200,
        )
        .await;
    assert_eq!(del["report"][0]["result"], "unpublished");
    a.ok(
        "POST",
        &format!("/apis/{}/publish", w.api),
        json!({"stage": "TEST"}),
        409,
    )
    .await;
    a.ok("DELETE", &format!("/apis/{}", w.api), json!({}), 200)
        .await;
    a.ok(
        "DELETE",
        &format!("/backends/{}", w.backend),
        json!({}),
        200,
    )
    .await;
    a.ok("DELETE", &format!("/groups/{}", w.group), json!({}), 200)
        .await;

    // VPC access authorizations.
    let v = a
        .ok(
            "POST",
            "/vpc-access",
            json!({"name": "orders_vpc", "vpc_id": "vpc-1", "instance_id": "i-1", "port": 8080}),
            201,
        )
        .await;
    let vid = v["id"].as_str().unwrap();
    assert_eq!(
        a.call("GET", "/vpc-access", None).await.json()[0]["id"],
        vid
    );
    let v2 = a
        .ok("PUT", &format!("/vpc-access/{vid}"), json!({"name": "orders_vpc", "vpc_id": "vpc-1", "instance_id": "i-1", "port": 9090, "address": "127.0.0.1:9090"}), 200)
        .await;
    assert_eq!(v2["port"], 9090);
    a.ok("DELETE", &format!("/vpc-access/{vid}"), json!({}), 200)
        .await;
}

#[tokio::test]
async fn bad_input_on_every_route_is_refused_and_changes_nothing() {
    let a = admin().await;
    let w = world(&a).await;
    let before = a.state().await;
    let (b, g, api, app) = (&w.backend, &w.group, &w.api, &w.app);
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, String, String, u16)> = vec![
        // backends
        (
            "POST",
            "/backends".into(),
            r#"{"name":"abcd","type":"NOPE"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/backends".into(),
            r#"{"name":5,"type":"MOCK"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/backends".into(),
            r#"{"type":"MOCK"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/backends".into(),
            r#"{"name":"abcd","type":"MOCK","extra":1}"#.to_owned(),
            400,
        ),
        ("POST", "/backends".into(), "not json".to_owned(), 400),
        ("POST", "/backends".into(), "[]".to_owned(), 400),
        (
            "POST",
            "/backends".into(),
            r#"{"name":"mock_users","type":"MOCK"}"#.to_owned(),
            409,
        ),
        (
            "PATCH",
            format!("/backends/{b}"),
            r#"{"type":"HTTP"}"#.to_owned(),
            400,
        ),
        (
            "PATCH",
            format!("/backends/{b}"),
            r#"{"name":7}"#.to_owned(),
            400,
        ),
        (
            "PATCH",
            format!("/backends/{b}"),
            r#"{"bogus":1}"#.to_owned(),
            400,
        ),
        (
            "PATCH",
            "/backends/0123456789abcdef".into(),
            r#"{"name":"abcdef"}"#.to_owned(),
            404,
        ),
        ("GET", "/backends/no.such".into(), "".to_owned(), 404),
        ("DELETE", format!("/backends/{b}"), "".to_owned(), 409),
        (
            "PUT",
            format!("/backends/{b}/stages/STAGING"),
            r#"{"status":200}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"status":"x"}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"status":99}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"type":"HTTP","url":"http://h"}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"status":200,"nope":1}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#""MOCK""#.to_owned(),
            400,
        ),
        (
            "GET",
            format!("/backends/{b}/stages/PRE"),
            "".to_owned(),
            404,
        ),
        (
            "GET",
            format!("/backends/{b}/stages/prod"),
            "".to_owned(),
            400,
        ),
        (
            "DELETE",
            format!("/backends/{b}/stages/PRE"),
            "".to_owned(),
            404,
        ),
        (
            "DELETE",
            format!("/backends/{b}/stages/nope"),
            "".to_owned(),
            400,
        ),
        (
            "GET",
            format!("/backends/{b}/apis?stage=bogus"),
            "".to_owned(),
            400,
        ),
        (
            "GET",
            format!("/backends/{b}/apis?color=red"),
            "".to_owned(),
            400,
        ),
        // groups
        ("POST", "/groups".into(), r#"{"name":1}"#.to_owned(), 400),
        ("POST", "/groups".into(), r#"{"name":"ab"}"#.to_owned(), 400),
        (
            "POST",
            "/groups".into(),
            r#"{"name":"okname","base_path":"no-slash"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/groups".into(),
            r#"{"name":"users_group"}"#.to_owned(),
            409,
        ),
        ("POST", "/groups".into(), big.clone(), 413),
        (
            "PUT",
            format!("/groups/{g}"),
            r#"{"name":"users_group","domains":"x"}"#.to_owned(),
            400,
        ),
        ("DELETE", format!("/groups/{g}"), "".to_owned(), 409),
        (
            "GET",
            format!("/groups/{g}/openapi?stage=NOPE"),
            "".to_owned(),
            400,
        ),
        (
            "GET",
            "/groups/missing/openapi?stage=TEST".into(),
            "".to_owned(),
            404,
        ),
        // apis
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"{g}","name":"badPath","request":{{"method":"GET","path":"/users/[id"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"{g}","name":"badPath","request":{{"method":"GET","path":"users"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"{g}","name":"badAuth","auth":"SOMETHING","request":{{"method":"GET","path":"/x"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "POST",
            "/apis".into(),
            format!(r#"{{"group_id":"{g}","name":"noRequest","backend":{{"backend_id":"{b}"}}}}"#),
            400,
        ),
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"{g}","name":"extra","request":{{"method":"GET","path":"/x"}},"backend":{{"backend_id":"{b}"}},"colour":1}}"#
            ),
            400,
        ),
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"0000","name":"noGroup","request":{{"method":"GET","path":"/x"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            404,
        ),
        (
            "POST",
            "/apis".into(),
            format!(
                r#"{{"group_id":"{g}","name":"badMethod","request":{{"method":"FETCH","path":"/x"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "PUT",
            format!("/apis/{api}"),
            format!(
                r#"{{"id":"other","group_id":"{g}","name":"getUser","request":{{"method":"GET","path":"/x"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "PUT",
            format!("/apis/{api}"),
            format!(
                r#"{{"group_id":"{g}","name":"getUser","request":{{"method":"GET","path":"/x/[y"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            400,
        ),
        (
            "PUT",
            "/apis/unknown".into(),
            format!(
                r#"{{"group_id":"{g}","name":"getUser","request":{{"method":"GET","path":"/x"}},"backend":{{"backend_id":"{b}"}}}}"#
            ),
            404,
        ),
        ("DELETE", format!("/apis/{api}"), "".to_owned(), 409),
        ("GET", "/apis?group_id=???".into(), "".to_owned(), 404),
        (
            "POST",
            format!("/apis/{api}/publish"),
            r#"{"stage":"STAGING"}"#.to_owned(),
            400,
        ),
        ("POST", format!("/apis/{api}/publish"), "{}".to_owned(), 400),
        (
            "POST",
            format!("/apis/{api}/publish"),
            r#"{"stage":"PRE"}"#.to_owned(),
            409,
        ),
        (
            "POST",
            format!("/apis/{api}/publish"),
            r#"{"stage":7}"#.to_owned(),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/unpublish"),
            r#"{"stage":"PRE"}"#.to_owned(),
            409,
        ),
        (
            "POST",
            format!("/apis/{api}/unpublish"),
            r#"{"stage":"TEST","x":1}"#.to_owned(),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/rollback"),
            r#"{"stage":"TEST","version":"nope"}"#.to_owned(),
            404,
        ),
        (
            "POST",
            format!("/apis/{api}/rollback"),
            r#"{"stage":"TEST"}"#.to_owned(),
            400,
        ),
        ("GET", "/apis/nope/deployments".into(), "".to_owned(), 404),
        // authorizations
        (
            "POST",
            format!("/apis/{api}/authorizations"),
            r#"{"app_id":"123456","stage":"TEST"}"#.to_owned(),
            404,
        ),
        (
            "POST",
            format!("/apis/{api}/authorizations"),
            format!(r#"{{"app_id":"{app}","stage":"NOPE"}}"#),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/authorizations"),
            format!(r#"{{"app_id":"{app}","stage":"TEST","expires_at":"2001-01-01T00:00:00Z"}}"#),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/authorizations"),
            format!(r#"{{"app_id":"{app}","stage":"TEST","expires_at":"tomorrow"}}"#),
            400,
        ),
        (
            "DELETE",
            format!("/apis/{api}/authorizations/{app}?stage=BAD"),
            "".to_owned(),
            400,
        ),
        (
            "DELETE",
            format!("/apis/{api}/authorizations/{app}"),
            "".to_owned(),
            400,
        ),
        (
            "DELETE",
            format!("/apis/{api}/authorizations/{app}?stage=PRE"),
            "".to_owned(),
            404,
        ),
        // debug
        (
            "POST",
            format!("/apis/{api}/debug"),
            r#"{"stage":"TEST","path_params":{"id":"1"}}"#.to_owned(),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/debug"),
            format!(r#"{{"stage":"PRE","app_id":"{app}"}}"#),
            409,
        ),
        (
            "POST",
            format!("/apis/{api}/debug"),
            format!(r#"{{"stage":"TEST","app_id":"{app}"}}"#),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/debug"),
            format!(
                r#"{{"stage":"TEST","app_id":"{app}","path_params":{{"id":"1"}},"nope":true}}"#
            ),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/debug"),
            format!(
                r#"{{"stage":"TEST","app_id":"{app}","path_params":{{"id":"1"}},"headers":{{"bad header":"x"}}}}"#
            ),
            400,
        ),
        (
            "POST",
            format!("/apis/{api}/debug"),
            format!(
                r#"{{"stage":"TEST","app_id":"{app}","auth":"KERBEROS","path_params":{{"id":"1"}}}}"#
            ),
            400,
        ),
        // apps
        ("POST", "/apps".into(), r#"{"name":"a"}"#.to_owned(), 400),
        ("POST", "/apps".into(), r#"{"name":42}"#.to_owned(), 400),
        (
            "POST",
            "/apps".into(),
            r#"{"name":"mobile_app"}"#.to_owned(),
            409,
        ),
        (
            "POST",
            "/apps".into(),
            r#"{"name":"new_app_x","app_code":"short"}"#.to_owned(),
            400,
        ),
        ("GET", "/apps/123".into(), "".to_owned(), 404),
        ("GET", "/apps?colour=red".into(), "".to_owned(), 400),
        (
            "PATCH",
            format!("/apps/{app}"),
            r#"{"disabled":"yes"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            format!("/apps/{app}/keys"),
            r#"{"app_secret":"short"}"#.to_owned(),
            400,
        ),
        (
            "DELETE",
            format!("/apps/{app}/keys/nokey"),
            "".to_owned(),
            404,
        ),
        (
            "POST",
            format!("/apps/{app}/keys/nokey/rotate"),
            "{}".to_owned(),
            404,
        ),
        ("DELETE", format!("/apps/{app}/codes"), "{}".to_owned(), 400),
        (
            "DELETE",
            format!("/apps/{app}/codes"),
            r#"{"app_code":"00000000000000000000000000000000"}"#.to_owned(),
            404,
        ),
        // vpc access
        (
            "POST",
            "/vpc-access".into(),
            r#"{"name":"vpcname","vpc_id":"v","instance_id":"i","port":0}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/vpc-access".into(),
            r#"{"name":"vpcname","vpc_id":"v","instance_id":"i","port":"x"}"#.to_owned(),
            400,
        ),
        ("GET", "/vpc-access/zzz".into(), "".to_owned(), 404),
        // import
        (
            "POST",
            "/import".into(),
            r#"{"format":99,"exported_at":"2026-01-01T00:00:00Z"}"#.to_owned(),
            400,
        ),
        ("POST", "/import".into(), r#"{"nope":1}"#.to_owned(), 400),
        ("POST", "/import".into(), big.clone(), 413),
        // routing
        ("GET", "/nowhere".into(), "".to_owned(), 404),
        ("PATCH", "/groups".into(), "{}".to_owned(), 405),
    ];
    for (method, path, body, status) in cases {
        let got = a.raw(method, &path, body.clone()).await;
        assert_eq!(
            got.status,
            status,
            "{method} {path} {}: {}",
            &body[..body.len().min(200)],
            got.text()
        );
        let j = got.json();
        assert!(
            j["code"].is_string() && j["message"].is_string(),
            "{method} {path}: {}",
            got.text()
        );
        assert_eq!(a.state().await, before, "{method} {path} changed something");
    }

    // Oversized without Content-Length (streamed) is refused too.
    let stream = futures_util::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
    );
    let got = a.raw("POST", "/groups", Body::from_stream(stream)).await;
    assert_eq!(got.status, 413);
    assert_eq!(a.state().await, before);
}

#[tokio::test]
async fn debug_signs_as_the_app_and_calls_the_real_data_plane() {
    let a = admin().await;
    let w = world(&a).await;
    let got = a
        .call(
            "POST",
            &format!("/apis/{}/debug", w.api),
            Some(json!({"stage": "TEST", "app_id": w.app, "path_params": {"id": "42"}, "query": {"lang": "zh"}})),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let text = got.text();
    assert!(!text.contains(&w.app_secret), "the secret never shows");
    let j = got.json();
    assert_eq!(j["request"]["method"], "GET");
    assert_eq!(j["request"]["path"], "/v1/users/42");
    assert_eq!(j["request"]["query"], "lang=zh");
    assert!(j["request"]["headers"]["x-ca-signature"].is_string());
    assert_eq!(j["request"]["headers"]["x-ca-stage"], "TEST");
    assert_eq!(j["request"]["headers"]["x-ca-request-mode"], "debug");
    let sts = j["string_to_sign"].as_str().unwrap();
    assert!(sts.starts_with("GET\napplication/json\n"), "{sts}");
    assert!(sts.ends_with("/v1/users/42?lang=zh"), "{sts}");
    assert_eq!(j["response"]["status"], 200);
    assert_eq!(j["response"]["body"], "{\"user\":1}");
    assert!(j["latency_ms"].is_u64());
    let trace = j["trace"].as_array().unwrap();
    assert!(
        trace
            .iter()
            .any(|t| t["step"] == "gateway" && t["debug_info"]["Auth"].is_string()),
        "{trace:?}"
    );

    // AppCode: shown masked.
    let got = a
        .call(
            "POST",
            &format!("/apis/{}/debug", w.api),
            Some(
                json!({"stage": "test", "app_id": w.app, "auth": "APPCODE", "path": "/v1/users/5"}),
            ),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(!got.text().contains(&w.app_code), "the AppCode never shows");
    let j = got.json();
    assert_eq!(j["request"]["headers"]["authorization"], "APPCODE ****");
    assert_eq!(j["string_to_sign"], Value::Null);
    assert_eq!(j["response"]["status"], 200);

    // A refusal by the data plane is shown, not hidden.
    a.ok(
        "DELETE",
        &format!("/apis/{}/authorizations/{}?stage=TEST", w.api, w.app),
        json!({}),
        200,
    )
    .await;
    let got = a
        .call(
            "POST",
            &format!("/apis/{}/debug", w.api),
            Some(json!({"stage": "TEST", "app_id": w.app, "path_params": {"id": "42"}})),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["response"]["status"], 403);
    assert!(got.json()["response"]["headers"]["x-ca-error-code"].is_string());
    // the trace says which grant is missing; the wire message does not
    let j = got.json();
    let refusal = j["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "refusal")
        .unwrap_or_else(|| panic!("{j}"));
    let detail = refusal["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("app {} holds no grant", w.app)) && detail.contains("stage TEST"),
        "{detail}"
    );
    assert_eq!(
        j["response"]["headers"]["x-ca-error-message"],
        "Unauthorized"
    );

    // Anonymous APIs need no app.
    let anon = a
        .ok(
            "POST",
            "/apis",
            json!({"group_id": w.group, "name": "ping", "auth": "ANONYMOUS",
                "request": {"method": "POST", "path": "/ping"}, "backend": {"backend_id": w.backend}}),
            201,
        )
        .await;
    let id = anon["id"].as_str().unwrap();
    a.ok(
        "POST",
        &format!("/apis/{id}/publish"),
        json!({"stage": "TEST"}),
        201,
    )
    .await;
    let got = a
        .call(
            "POST",
            &format!("/apis/{id}/debug"),
            Some(json!({"stage": "TEST", "body": "{\"a\":1}"})),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["request"]["method"], "POST");
    assert_eq!(got.json()["request"]["body"], "{\"a\":1}");
    assert_eq!(got.json()["response"]["status"], 200);
}

#[tokio::test]
async fn openapi_document_is_valid_openapi_3() {
    let a = admin().await;
    let w = world(&a).await;
    let got = a
        .call(
            "GET",
            &format!("/groups/{}/openapi?stage=TEST", w.group),
            None,
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let doc: openapiv3::OpenAPI =
        serde_json::from_slice(&got.body).expect("a valid OpenAPI 3 document");
    assert!(doc.openapi.starts_with("3.0"));
    assert_eq!(doc.info.title, "users_group");
    let item = match doc
        .paths
        .paths
        .get("/v1/users/{id}")
        .expect("the published path")
    {
        openapiv3::ReferenceOr::Item(i) => i,
        openapiv3::ReferenceOr::Reference { .. } => panic!("inline path item"),
    };
    let op = item.get.as_ref().expect("GET operation");
    assert_eq!(op.operation_id.as_deref(), Some("getUser"));
    let params: Vec<&openapiv3::ParameterData> = op
        .parameters
        .iter()
        .map(|p| match p {
            openapiv3::ReferenceOr::Item(p) => p.parameter_data_ref(),
            openapiv3::ReferenceOr::Reference { .. } => panic!("inline parameter"),
        })
        .collect();
    let id = params
        .iter()
        .find(|p| p.name == "id")
        .expect("path parameter id");
    assert!(id.required);
    let lang = params
        .iter()
        .find(|p| p.name == "lang")
        .expect("query parameter lang");
    assert!(!lang.required);
    match &lang.format {
        openapiv3::ParameterSchemaOrContent::Schema(openapiv3::ReferenceOr::Item(s)) => {
            match &s.schema_kind {
                openapiv3::SchemaKind::Type(openapiv3::Type::String(st)) => {
                    assert_eq!(
                        st.enumeration,
                        vec![Some("en".to_owned()), Some("zh".to_owned())]
                    );
                }
                other => panic!("lang is a string: {other:?}"),
            }
        }
        other => panic!("lang has a schema: {other:?}"),
    }
    assert!(params.iter().any(|p| p.name == "x-trace"));
    let ok = match op
        .responses
        .responses
        .get(&openapiv3::StatusCode::Code(200))
    {
        Some(openapiv3::ReferenceOr::Item(r)) => r,
        _ => panic!("a 200 response"),
    };
    let media = ok
        .content
        .get("application/json")
        .expect("the response content type");
    assert_eq!(media.example, Some(json!({"user": 1})));
    let err = match &op.responses.default {
        Some(openapiv3::ReferenceOr::Item(r)) => r,
        _ => panic!("an error response"),
    };
    assert!(err.content.values().any(|m| m.example.is_some()));
    let schemes = &doc
        .components
        .as_ref()
        .expect("components")
        .security_schemes;
    for s in ["Signature", "AppCode", "AppCodeQuery"] {
        assert!(schemes.contains_key(s), "{s}");
    }
    let security = op.security.as_ref().expect("security");
    assert!(security.iter().any(|r| r.contains_key("AppCode")));

    // Nothing published in PRE: an empty but valid document.
    let pre = a
        .call(
            "GET",
            &format!("/groups/{}/openapi?stage=PRE", w.group),
            None,
        )
        .await;
    let doc: openapiv3::OpenAPI = serde_json::from_slice(&pre.body).unwrap();
    assert!(doc.paths.paths.is_empty());
}

#[tokio::test]
async fn export_then_import_into_a_fresh_gateway_gives_the_same_answers() {
    let a = admin().await;
    let w = world(&a).await;
    let doc = a.call("GET", "/export", None).await;
    assert_eq!(doc.status, 200);
    let b = admin().await;
    let imported = b.raw("POST", "/import", doc.body.clone()).await;
    assert_eq!(imported.status, 200, "{}", imported.text());
    assert_eq!(a.state().await, b.state().await);
    let code = format!("APPCODE {}", w.app_code);
    let h = [("x-ca-stage", "TEST"), ("authorization", code.as_str())];
    let (ra, rb) = (
        a.gateway_call("/v1/users/9", &h).await,
        b.gateway_call("/v1/users/9", &h).await,
    );
    assert_eq!((ra.status, ra.text()), (rb.status, rb.text()));
    assert_eq!(ra.status, 200);
    for path in ["/backends", "/groups", "/apis", "/apps"] {
        assert_eq!(
            a.call("GET", path, None).await.json(),
            b.call("GET", path, None).await.json(),
            "{path}"
        );
    }
    // A bad document changes nothing in the target.
    let before = b.state().await;
    let mut bad: Value = doc.json();
    bad["apis"][0]["backend"]["backend_id"] = json!("missing");
    let got = b.call("POST", "/import", Some(bad)).await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert_eq!(b.state().await, before);
}

/// Issue 20 item 17: a repeated key is refused in every body, free-form ones included (a PATCH,
/// a stage definition, nested maps), and a MOCK definition needs its fields.
#[tokio::test]
async fn repeated_keys_and_empty_mock_definitions_are_refused_and_change_nothing() {
    let a = admin().await;
    let w = world(&a).await;
    let before = a.state().await;
    let b = &w.backend;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "PATCH",
            format!("/backends/{b}"),
            r#"{"name":"first_name","name":"second_name"}"#,
        ),
        (
            "PATCH",
            format!("/backends/{b}"),
            r#"{"description":"a","description":"b"}"#,
        ),
        ("PUT", format!("/backends/{b}/stages/PRE"), "{}"),
        ("PUT", format!("/backends/{b}/stages/PRE"), ""),
        (
            "PUT",
            format!("/backends/{b}/stages/PRE"),
            r#"{"type":"MOCK"}"#,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/PRE"),
            r#"{"status":200}"#,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/PRE"),
            r#"{"body":"x"}"#,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"status":200,"body":"a","body":"b"}"#,
        ),
        (
            "PUT",
            format!("/backends/{b}/stages/TEST"),
            r#"{"status":200,"body":"a","headers":{"x-a":"1","x-a":"2"}}"#,
        ),
        (
            "POST",
            "/groups".to_owned(),
            r#"{"name":"group_one","name":"group_two"}"#,
        ),
    ];
    for (method, path, body) in cases {
        let got = a.raw(method, &path, body.to_owned()).await;
        assert_eq!(got.status, 400, "{method} {path} {body}: {}", got.text());
        if body.len() > 2 && !body.contains("MOCK") && body.matches(':').count() > 1 {
            assert!(
                got.text().contains("duplicate"),
                "{method} {path} {body}: {}",
                got.text()
            );
        }
    }
    assert_eq!(a.state().await, before);
}

/// Issue 20 item 12: a MOCK definition may not frame the response (framing or hop-by-hop
/// headers, 1xx statuses); the refusal is a 400 and changes nothing.
#[tokio::test]
async fn mock_definitions_that_would_frame_the_response_are_refused() {
    let a = admin().await;
    let w = world(&a).await;
    let before = a.state().await;
    let path = format!("/backends/{}/stages/TEST", w.backend);
    for name in [
        "content-length",
        "Content-Length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "Proxy-Connection",
    ] {
        let got = a
            .call(
                "PUT",
                &path,
                Some(json!({"status": 200, "headers": {name: "0"}, "body": "HTTP/1.1 200 OK\r\n\r\n"})),
            )
            .await;
        assert_eq!(got.status, 400, "{name}: {}", got.text());
        assert!(got.text().contains("hop-by-hop"), "{name}: {}", got.text());
    }
    for status in [100, 101, 103, 199] {
        let got = a
            .call("PUT", &path, Some(json!({"status": status, "body": ""})))
            .await;
        assert_eq!(got.status, 400, "{status}: {}", got.text());
    }
    assert_eq!(a.state().await, before);
    // What stays allowed: ordinary headers, 2xx–5xx, an explicit empty body.
    a.ok(
        "PUT",
        &path,
        json!({"status": 204, "headers": {"x-mock": "1", "content-type": "text/plain"}, "body": ""}),
        200,
    )
    .await;
}

#[tokio::test]
async fn a_group_passes_appcodes_to_its_backends_only_when_told() {
    let a = admin().await;
    let g = a
        .ok("POST", "/groups", json!({"name": "code_group"}), 201)
        .await;
    // Off by default (and then not written out, so older documents look the same).
    assert!(g.get("pass_appcode_to_backend").is_none(), "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let g = a
        .ok(
            "PUT",
            &format!("/groups/{id}"),
            json!({"name": "code_group", "pass_appcode_to_backend": true}),
            200,
        )
        .await;
    assert_eq!(g["pass_appcode_to_backend"], true);
    let got = a.call("GET", &format!("/groups/{id}"), None).await;
    assert_eq!(got.json()["pass_appcode_to_backend"], true);
    // A stored group document without the field still loads, with the safe default.
    let group = a
        .control
        .groups()
        .await
        .into_iter()
        .find(|g| g.name == "code_group");
    let mut doc = serde_json::to_value(group.unwrap()).unwrap();
    doc.as_object_mut()
        .unwrap()
        .remove("pass_appcode_to_backend");
    let old: stagegate::model::Group = serde_json::from_value(doc).unwrap();
    assert!(!old.pass_appcode_to_backend);
    // Hostile values are refused with 400 and change nothing.
    let before = a.state().await;
    for bad in [json!("yes"), json!(1), json!(null), json!({"on": true})] {
        let got = a
            .call(
                "PUT",
                &format!("/groups/{id}"),
                Some(json!({"name": "code_group", "pass_appcode_to_backend": bad})),
            )
            .await;
        assert_eq!(got.status, 400, "{bad}: {}", got.text());
    }
    assert_eq!(a.state().await, before);
}
