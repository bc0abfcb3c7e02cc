//! OSS backends end to end on a local-directory bucket: the four actions, keys with
//! parameters, permissions (and revoking them), missing objects, large objects both ways.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{fx, oneshot, req};
use stagegate::backend::{Backends, LocalObjectStores};
use stagegate::model::{
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
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&dir.0)))
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
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&dir.0)))
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
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&dir.0)))
        .standalone();

    let got = oneshot(svc.clone(), req("PUT", "/f/b.txt", "x")).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.header("x-ca-error-code"), Some("A403OP"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: the bucket's name is logged, not sent.
        Some("OSS access denied: the gateway has no write permission (PutObject)")
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
        .with_body_limit(64 << 20)
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&dir.0)))
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

fn named_bucket(name: &str) -> StageDefinition {
    StageDefinition::Oss(OssDefinition {
        bucket: name.into(),
        endpoint: None,
        region: None,
        permissions: OssPermissions {
            read: true,
            write: true,
        },
    })
}

/// GET, PUT and DELETE on `/o/[name]` (key `[name]`) and on `/d/[name]` (key `dirlink/[name]`),
/// published in RELEASE on a bucket named `bucket`.
async fn object_routes(bucket: &str) -> common::Fx {
    let f = fx(BackendKind::Oss).await;
    f.define(Stage::RELEASE, named_bucket(bucket)).await;
    let mut apis = Vec::new();
    for (prefix, key) in [("/o", "[name]"), ("/d", "dirlink/[name]")] {
        let tag = &prefix[1..];
        let path = format!("{prefix}/[name]");
        apis.push(
            f.api(
                &format!("get{tag}"),
                "GET",
                &path,
                oss(OssAction::GetObject, key),
            )
            .await,
        );
        apis.push(
            f.api(
                &format!("put{tag}"),
                "PUT",
                &path,
                oss(OssAction::PutObject, key),
            )
            .await,
        );
        apis.push(
            f.api(
                &format!("del{tag}"),
                "DELETE",
                &path,
                oss(OssAction::DeleteObject, key),
            )
            .await,
        );
    }
    for a in &apis {
        f.cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    f
}

/// Issue 20 item 4: a symbolic link, planted as a bucket or as a directory or file inside a real
/// bucket, never lets a call read, write or delete outside the bucket.
#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_never_lead_out_of_the_bucket() {
    use std::os::unix::fs::symlink;
    let root = TempDir::new("links");
    let outside = TempDir::new("links-outside");
    std::fs::write(outside.0.join("secret.txt"), "outside secret").unwrap();
    std::fs::write(outside.0.join("victim.txt"), "keep me").unwrap();
    std::fs::create_dir_all(root.0.join("assets")).unwrap();
    std::fs::write(root.0.join("assets/inside.txt"), "inside").unwrap();
    symlink(&outside.0, root.0.join("assets/dirlink")).unwrap();
    symlink(
        outside.0.join("secret.txt"),
        root.0.join("assets/secret.txt"),
    )
    .unwrap();
    symlink(&outside.0, root.0.join("planted")).unwrap();
    let stores = || Backends::new().with_object_stores(LocalObjectStores::new(&root.0));

    let real = object_routes("assets").await;
    let svc = real.layer().with_backends(stores()).standalone();
    // The bucket itself still works.
    let got = oneshot(svc.clone(), req("GET", "/o/inside.txt", "")).await;
    assert_eq!((got.status, got.text()), (200, "inside".to_owned()));
    // A linked file or directory inside the bucket is refused, whichever way the key is built.
    let refused = [
        ("GET", "/o/secret.txt"),
        ("GET", "/o/dirlink%2Fsecret.txt"),
        ("GET", "/d/secret.txt"),
        ("PUT", "/o/dirlink%2Fwritten.txt"),
        ("PUT", "/d/written.txt"),
        ("PUT", "/o/secret.txt"),
        ("DELETE", "/o/dirlink%2Fvictim.txt"),
        ("DELETE", "/d/victim.txt"),
        ("DELETE", "/o/secret.txt"),
    ];
    for (method, path) in refused {
        let got = oneshot(svc.clone(), req(method, path, "written")).await;
        assert!(
            (400..500).contains(&got.status),
            "{method} {path}: {} {}",
            got.status,
            got.text()
        );
        assert!(!got.text().contains("outside secret"), "{method} {path}");
    }
    // The plain key templates reach the confinement check itself (no encoded slash involved).
    for (method, path) in [
        ("GET", "/d/secret.txt"),
        ("PUT", "/d/written.txt"),
        ("GET", "/o/secret.txt"),
    ] {
        let got = oneshot(svc.clone(), req(method, path, "written")).await;
        assert_eq!(got.status, 403, "{method} {path}");
        assert_eq!(
            got.header("x-ca-error-code"),
            Some("A403OP"),
            "{method} {path}"
        );
    }
    assert!(
        !outside.0.join("written.txt").exists(),
        "a write went through the link"
    );
    assert_eq!(
        std::fs::read_to_string(outside.0.join("victim.txt")).unwrap(),
        "keep me",
        "a delete went through the link"
    );
    assert_eq!(
        std::fs::read_to_string(outside.0.join("secret.txt")).unwrap(),
        "outside secret"
    );
    assert!(root.0.join("assets/secret.txt").symlink_metadata().is_ok());

    // A link planted as a bucket is refused for every action.
    let planted = object_routes("planted").await;
    let svc = planted.layer().with_backends(stores()).standalone();
    for (method, path) in [
        ("GET", "/o/secret.txt"),
        ("PUT", "/o/written.txt"),
        ("DELETE", "/o/victim.txt"),
    ] {
        let got = oneshot(svc.clone(), req(method, path, "written")).await;
        assert!(
            got.status == 403 || got.status == 502,
            "{method} {path}: {} {}",
            got.status,
            got.text()
        );
        assert!(!got.text().contains("outside secret"), "{method} {path}");
    }
    assert!(!outside.0.join("written.txt").exists());
    assert!(outside.0.join("victim.txt").exists());
}

/// Buckets (and a root the provider creates) are owner-only; a bucket that other users may
/// write is refused.
#[cfg(unix)]
#[tokio::test]
async fn bucket_directories_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = TempDir::new("modes");
    let root = parent.0.join("oss");
    let f = object_routes("assets").await;
    let svc = f
        .layer()
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&root)))
        .standalone();
    let got = oneshot(svc.clone(), req("PUT", "/o/a.txt", "x")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    for dir in [root.clone(), root.join("assets")] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    // Another user able to write the bucket could plant links in it: refused.
    std::fs::set_permissions(root.join("assets"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let got = oneshot(svc, req("GET", "/o/a.txt", "")).await;
    assert_eq!(got.status, 502, "{}", got.text());
    assert_eq!(got.header("x-ca-error-code"), Some("D502OS"));
}

/// Issue 20 item 16: an over-long key is the caller's error (400 `I400PA`), not the store's
/// 502, both over OSS's 1023-byte key limit and for a segment the file system refuses.
#[tokio::test]
async fn over_long_keys_are_a_client_error() {
    let root = TempDir::new("long");
    let f = object_routes("assets").await;
    let svc = f
        .layer()
        .with_backends(Backends::new().with_object_stores(LocalObjectStores::new(&root.0)))
        .standalone();
    let long = "k".repeat(5000);
    let segment = "s".repeat(300);
    for (method, path) in [
        ("GET", format!("/o/{long}")),
        ("PUT", format!("/o/{long}")),
        ("DELETE", format!("/o/{long}")),
        ("GET", format!("/o/{segment}")),
        ("PUT", format!("/o/{segment}")),
    ] {
        let got = oneshot(svc.clone(), req(method, &path, "x")).await;
        assert_eq!(got.status, 400, "{method} {}: {}", path.len(), got.text());
        assert_eq!(got.header("x-ca-error-code"), Some("I400PA"));
        let message = got.header("x-ca-error-message").unwrap_or_default();
        assert!(!message.contains(&*root.0.to_string_lossy()), "{message}");
    }
}
