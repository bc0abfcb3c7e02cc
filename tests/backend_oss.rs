//! OSS backends end to end on a local-directory bucket: the four actions, keys with
//! parameters, permissions (and revoking them), missing objects, large objects both ways.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{fx, oneshot, req};
use stagegate::backend::{Backends, LocalObjectStores};
use stagegate::{
    ApiDefinition, BackendKind, OssAction, OssBinding, OssDefinition, OssPermissions, Stage,
    StageDefinition,
};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "stagegate-oss-test-{tag}-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn bucket(read: bool, write: bool) -> StageDefinition {
    StageDefinition::Oss(OssDefinition {
        bucket: "assets".into(),
        endpoint: None,
        region: None,
        permissions: OssPermissions { read, write },
    })
}

fn oss(action: OssAction, key: &str) -> impl FnOnce(&mut ApiDefinition) {
    let key = key.to_owned();
    move |a| {
        a.backend.oss = Some(OssBinding { action, key });
    }
}

#[tokio::test]
async fn put_get_head_delete_round_trip_with_keys_from_parameters() {
    let dir = TempDir::new("rt");
    let f = fx(BackendKind::Oss).await;
    f.define(Stage::RELEASE, bucket(true, true)).await;
    let put = f
        .api(
            "putObj",
            "PUT",
            "/files/[name]",
            oss(OssAction::PutObject, "/docs/[name]"),
        )
        .await;
    let get = f
        .api(
            "getObj",
            "GET",
            "/files/[name]",
            oss(OssAction::GetObject, "/docs/[name]"),
        )
        .await;
    let head = f
        .api(
            "headObj",
            "HEAD",
            "/files/[name]",
            oss(OssAction::HeadObject, "/docs/[name]"),
        )
        .await;
    let del = f
        .api(
            "delObj",
            "DELETE",
            "/files/[name]",
            oss(OssAction::DeleteObject, "/docs/[name]"),
        )
        .await;
    for a in [&put, &get, &head, &del] {
        f.cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    let svc = f
        .layer()
        .backends(Backends::new().object_stores(LocalObjectStores::new(&dir.0)))
        .standalone();

    let got = oneshot(
        svc.clone(),
        req("PUT", "/files/hello%20world.json", "{\"a\":1}"),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let put_etag = got.header("etag").unwrap().to_owned();
    assert!(dir.0.join("assets/docs/hello world.json").exists());

    let got = oneshot(svc.clone(), req("GET", "/files/hello%20world.json", "")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "{\"a\":1}");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("content-length"), Some("7"));
    assert_eq!(got.header("etag"), Some(put_etag.as_str()));
    assert!(got.header("last-modified").unwrap().ends_with("GMT"));

    let got = oneshot(svc.clone(), req("HEAD", "/files/hello%20world.json", "")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.is_empty());
    assert_eq!(got.header("content-length"), Some("7"));

    let got = oneshot(svc.clone(), req("DELETE", "/files/hello%20world.json", "")).await;
    assert_eq!(got.status, 204);
    let got = oneshot(svc.clone(), req("GET", "/files/hello%20world.json", "")).await;
    assert_eq!(got.status, 404, "a missing object is the bucket's 404");
    assert_eq!(got.header("x-ca-error-code"), None);
    assert_eq!(got.json()["code"], "NoSuchKey");
    let got = oneshot(svc.clone(), req("HEAD", "/files/nothing.txt", "")).await;
    assert_eq!(got.status, 404);
    let got = oneshot(svc, req("DELETE", "/files/nothing.txt", "")).await;
    assert_eq!(got.status, 204, "deletes are idempotent");
}

#[tokio::test]
async fn traversal_is_refused() {
    let dir = TempDir::new("trav");
    let f = fx(BackendKind::Oss).await;
    f.define(Stage::RELEASE, bucket(true, true)).await;
    let get = f
        .api(
            "getObj",
            "GET",
            "/files/[name]",
            oss(OssAction::GetObject, "[name]"),
        )
        .await;
    f.cp.publish(&get.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .backends(Backends::new().object_stores(LocalObjectStores::new(&dir.0)))
        .standalone();
    for path in ["/files/..%2Fsecret", "/files/%2E%2E", "/files/a%2F%2Fb"] {
        let got = oneshot(svc.clone(), req("GET", path, "")).await;
        assert_eq!(got.status, 400, "{path}: {}", got.text());
        assert_eq!(got.header("x-ca-error-code"), Some("I400PA"));
    }
}

#[tokio::test]
async fn permissions_are_enforced_and_revoking_takes_effect_on_the_next_call() {
    let dir = TempDir::new("perm");
    let f = fx(BackendKind::Oss).await;
    f.define(Stage::RELEASE, bucket(true, false)).await;
    let put = f
        .api(
            "putObj",
            "PUT",
            "/f/[name]",
            oss(OssAction::PutObject, "[name]"),
        )
        .await;
    let get = f
        .api(
            "getObj",
            "GET",
            "/f/[name]",
            oss(OssAction::GetObject, "[name]"),
        )
        .await;
    f.cp.publish(&put.id, Stage::RELEASE, None).await.unwrap();
    f.cp.publish(&get.id, Stage::RELEASE, None).await.unwrap();
    std::fs::create_dir_all(dir.0.join("assets")).unwrap();
    std::fs::write(dir.0.join("assets/a.txt"), "hi").unwrap();
    let svc = f
        .layer()
        .backends(Backends::new().object_stores(LocalObjectStores::new(&dir.0)))
        .standalone();

    let got = oneshot(svc.clone(), req("PUT", "/f/b.txt", "x")).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.header("x-ca-error-code"), Some("A403OP"));
    assert_eq!(
        got.header("x-ca-error-message"),
        Some(
            "OSS access denied: the gateway has no write permission on bucket `assets` (PutObject)"
        )
    );
    assert!(!dir.0.join("assets/b.txt").exists());
    let got = oneshot(svc.clone(), req("GET", "/f/a.txt", "")).await;
    assert_eq!((got.status, got.text().as_str()), (200, "hi"));
    assert_eq!(
        got.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    // revoke read: the definition change re-points the published APIs
    f.define(Stage::RELEASE, bucket(false, true)).await;
    let got = oneshot(svc.clone(), req("GET", "/f/a.txt", "")).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.header("x-ca-error-code"), Some("A403OP"));
    let got = oneshot(svc.clone(), req("PUT", "/f/b.txt", "x")).await;
    assert_eq!(got.status, 200);

    // deleting the definition unpublishes
    let report =
        f.cp.delete_stage_definition(&f.backend.id, &Stage::RELEASE)
            .await
            .unwrap();
    let _ = report;
    let got = oneshot(svc, req("GET", "/f/a.txt", "")).await;
    assert_eq!(got.header("x-ca-error-code"), Some("I404NF"));
}

#[tokio::test]
async fn large_objects_stream_both_ways() {
    let dir = TempDir::new("large");
    let f = fx(BackendKind::Oss).await;
    f.define(Stage::RELEASE, bucket(true, true)).await;
    let put = f
        .api(
            "putObj",
            "PUT",
            "/big/[name]",
            oss(OssAction::PutObject, "[name]"),
        )
        .await;
    let get = f
        .api(
            "getObj",
            "GET",
            "/big/[name]",
            oss(OssAction::GetObject, "[name]"),
        )
        .await;
    f.cp.publish(&put.id, Stage::RELEASE, None).await.unwrap();
    f.cp.publish(&get.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .body_limit(64 << 20)
        .backends(Backends::new().object_stores(LocalObjectStores::new(&dir.0)))
        .standalone();
    // 12 MiB, more than two parts, sent as a stream of 64 KiB frames
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let frames = (0..192)
        .map(move |_| Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk.clone())));
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let r = http::Request::put("/big/blob.bin").body(body).unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        std::fs::metadata(dir.0.join("assets/blob.bin"))
            .unwrap()
            .len(),
        12 << 20
    );
    let got = oneshot(svc, req("GET", "/big/blob.bin", "")).await;
    assert_eq!(got.body.len(), 12 << 20);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert!(got.body.iter().all(|b| *b == 7));
}
