//! `SealedStore`: app secrets and AppCodes sealed at rest in any store, through the public API.
//! The raw store (MemoryStore records and change feed, the redb file's bytes) never holds a
//! secret; a wrong key, no key or a tampered value refuses to start and changes nothing; the
//! gateway still verifies signatures and AppCodes with the opened values.
#![cfg(all(feature = "sealed", feature = "redb", feature = "conformance"))]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::oneshot;
use http::Request;
use http_body_util::Full;
use stagegate::store::{
    Entity, Expect, Key, MemoryStore, OpenError, RedbStore, SealError, SealedStore, SecretsKey,
    Store, StoreError, Versioned, Write, is_sealed,
};
use stagegate::{
    ControlPlane, GatewayLayer, auth::Signer, control::NewApp, control::NewBackend,
    control::NewGroup, model::App, model::AppCodeMode, model::BackendKind, model::MockDefinition,
    model::Stage, model::StageDefinition,
};

fn key(byte: u8) -> SecretsKey {
    SecretsKey::from_bytes([byte; 32])
}

stagegate::store_conformance!(sealed_memory_store_conforms, async {
    SealedStore::open(MemoryStore::new(), Some(key(1)))
        .await
        .unwrap()
});

stagegate::store_conformance!(unkeyed_sealed_store_passes_through, async {
    SealedStore::open(MemoryStore::new(), None).await.unwrap()
});

/// The secrets of an app, as text.
fn secrets(app: &App) -> Vec<String> {
    app.keys
        .iter()
        .map(|k| k.app_secret.expose().to_owned())
        .chain(app.codes.iter().map(|c| c.expose().to_owned()))
        .collect()
}

async fn new_app(cp: &ControlPlane, name: &str) -> App {
    cp.create_app(NewApp {
        name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Everything the raw store holds (records and change feed), as JSON text.
async fn raw_text(raw: &impl Store) -> String {
    let loaded = raw.load().await.unwrap();
    let feed = raw.changes_since(0, usize::MAX).await.unwrap();
    format!(
        "{}{}",
        serde_json::to_string(&loaded).unwrap(),
        serde_json::to_string(&feed).unwrap()
    )
}

#[tokio::test]
async fn memory_store_records_and_feed_never_hold_a_secret() {
    let raw = Arc::new(MemoryStore::new());
    let cp = ControlPlane::open(
        SealedStore::open(Arc::clone(&raw), Some(key(2)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let app = new_app(&cp, "memory_app").await;
    // rotate: the new secrets are sealed too
    let app2 = new_app(&cp, "memory_app_two").await;
    let text = raw_text(&*raw).await;
    for s in secrets(&app).iter().chain(&secrets(&app2)) {
        assert!(!text.contains(s.as_str()), "a secret is stored in clear");
    }
    assert!(text.contains("sg-sealed:v1:"));
    // the control plane, and a reopened one, see the plain values
    let again = ControlPlane::open(SealedStore::open(raw, Some(key(2))).await.unwrap())
        .await
        .unwrap();
    let back = again.app(&app.id).await.unwrap();
    assert_eq!(secrets(&back), secrets(&app));
}

/// A redb file in the temp directory, removed at the end.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "stagegate-sealed-{name}-{}-{}.redb",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_redb_file_never_holds_a_secret_and_reopens_only_with_its_key() {
    // control: without sealing, the file holds the secrets in clear
    let plain_file = TempFile::new("plain");
    let plain_app = {
        let cp = ControlPlane::open(RedbStore::open(&plain_file.0).unwrap())
            .await
            .unwrap();
        new_app(&cp, "plain_app").await
    };
    let bytes = std::fs::read(&plain_file.0).unwrap();
    assert!(secrets(&plain_app).iter().all(|s| contains(&bytes, s)));

    let file = TempFile::new("sealed");
    let app = {
        let store = SealedStore::open(RedbStore::open(&file.0).unwrap(), Some(key(4)))
            .await
            .unwrap();
        let cp = ControlPlane::open(store).await.unwrap();
        new_app(&cp, "sealed_app").await
    };
    let before = std::fs::read(&file.0).unwrap();
    for s in secrets(&app) {
        assert!(
            !contains(&before, &s),
            "a secret is in the redb file in clear"
        );
    }

    // no key: refused, naming the key id to bring
    let err = SealedStore::open(RedbStore::open(&file.0).unwrap(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::Seal(SealError::KeyMissing { key_id }) if key_id == key(4).id()),
        "{err}"
    );
    assert!(
        err.to_string().contains("no secrets key was given"),
        "{err}"
    );
    // the wrong key: refused, naming both ids
    let err = SealedStore::open(RedbStore::open(&file.0).unwrap(), Some(key(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::Seal(SealError::WrongKey { found, given })
            if found == key(4).id() && given == key(5).id()),
        "{err}"
    );
    // nothing was destroyed: the right key opens everything as it was
    let store = SealedStore::open(RedbStore::open(&file.0).unwrap(), Some(key(4)))
        .await
        .unwrap();
    let revision = store.revision().await.unwrap();
    let cp = ControlPlane::open(store).await.unwrap();
    assert_eq!(secrets(&cp.app(&app.id).await.unwrap()), secrets(&app));
    drop(cp);
    let store = RedbStore::open(&file.0).unwrap();
    assert_eq!(store.revision().await.unwrap(), revision);
}

#[tokio::test]
async fn a_tampered_value_refuses_to_start_and_changes_nothing() {
    let raw = Arc::new(MemoryStore::new());
    let store = SealedStore::open(Arc::clone(&raw), Some(key(6)))
        .await
        .unwrap();
    let cp = ControlPlane::open(store).await.unwrap();
    let app = new_app(&cp, "tampered_app").await;
    drop(cp);
    let running = SealedStore::open(Arc::clone(&raw), Some(key(6)))
        .await
        .unwrap();
    let Some(Versioned {
        value: Entity::App(mut at_rest),
        version,
    }) = raw.get(&Key::app(&app.id)).await.unwrap()
    else {
        panic!("the app is stored");
    };
    // flip one character of the sealed AppCode's body
    let sealed = at_rest.codes[0].expose().to_owned();
    let mut chars: Vec<char> = sealed.chars().collect();
    let last = chars.len() - 3;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    at_rest.codes[0] = stagegate::model::Secret::new(chars.into_iter().collect::<String>());
    raw.commit(vec![Write::put(
        Entity::App(at_rest),
        Expect::Version(version),
    )])
    .await
    .unwrap();
    let revision = raw.revision().await.unwrap();

    let err = SealedStore::open(Arc::clone(&raw), Some(key(6)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::Seal(SealError::Damaged { record }) if record.contains(&app.id.to_string())),
        "{err}"
    );
    assert!(err.to_string().contains("altered or damaged"), "{err}");
    assert_eq!(raw.revision().await.unwrap(), revision, "nothing written");
    // a node already running fails to read the record, naming it, rather than use a
    // damaged secret
    let err = running.get(&Key::app(&app.id)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key, .. } if key.contains(&app.id.to_string())),
        "{err}"
    );
    assert!(running.load().await.is_err());
}

#[tokio::test]
async fn plaintext_in_an_existing_store_is_sealed_on_write_or_all_at_once() {
    let raw = Arc::new(MemoryStore::new());
    // written before any key was given
    let (a, b) = {
        let cp = ControlPlane::open(Arc::clone(&raw)).await.unwrap();
        (
            new_app(&cp, "old_app_one").await,
            new_app(&cp, "old_app_two").await,
        )
    };
    let store = SealedStore::open(Arc::clone(&raw), Some(key(7)))
        .await
        .unwrap();
    let cp = ControlPlane::open(store).await.unwrap();
    assert_eq!(secrets(&cp.app(&a.id).await.unwrap()), secrets(&a));
    // the next write of `a` seals it
    cp.update_app(
        &a.id,
        stagegate::control::AppPatch {
            description: Some("touched".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let Some(Versioned {
        value: Entity::App(at_rest),
        ..
    }) = raw.get(&Key::app(&a.id)).await.unwrap()
    else {
        panic!()
    };
    assert!(secrets(&at_rest).iter().all(|s| is_sealed(s)));
    drop(cp);
    // the migrate step seals the rest (b), and is idempotent
    let store = SealedStore::open(Arc::clone(&raw), Some(key(7)))
        .await
        .unwrap();
    assert_eq!(store.seal_existing().await.unwrap(), 1);
    assert_eq!(store.seal_existing().await.unwrap(), 0);
    let records = raw.load().await.unwrap();
    let text = serde_json::to_string(&records).unwrap();
    for s in secrets(&a).iter().chain(&secrets(&b)) {
        assert!(!text.contains(s.as_str()));
    }
    let cp = ControlPlane::open(store).await.unwrap();
    assert_eq!(secrets(&cp.app(&b.id).await.unwrap()), secrets(&b));
}

#[tokio::test]
async fn the_gateway_verifies_with_the_opened_secrets() {
    let raw = Arc::new(MemoryStore::new());
    let cp = ControlPlane::open(
        SealedStore::open(Arc::clone(&raw), Some(key(8)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let b = cp
        .create_backend(NewBackend::new("sealedMock", BackendKind::Mock))
        .await
        .unwrap();
    let def = StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: "ok".into(),
    });
    cp.set_stage_definition(&b.id, Stage::RELEASE, def)
        .await
        .unwrap();
    let g = cp
        .create_group(NewGroup {
            name: "sealed_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut api =
        stagegate::model::ApiDefinition::new(g.id.clone(), "sealedApi", "GET", "/x", b.id.clone())
            .unwrap();
    api.appcode_auth = AppCodeMode::Header;
    let api = cp.create_api(api).await.unwrap();
    cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let app = new_app(&cp, "sealed_caller").await;
    cp.authorize(&app.id, &api.id, Stage::RELEASE, None)
        .await
        .unwrap();
    drop(cp);

    // a node started later on the same (sealed) store
    let cp = ControlPlane::open(SealedStore::open(raw, Some(key(8))).await.unwrap())
        .await
        .unwrap();
    let svc = GatewayLayer::new(cp.snapshot_handle()).standalone();
    let mut signed = Request::builder()
        .uri("/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone())
        .unwrap()
        .sign(&mut signed, b"");
    assert_eq!(oneshot(svc.clone(), signed).await.status, 200);
    let by_code = Request::builder()
        .uri("/x")
        .header(
            "authorization",
            format!("APPCODE {}", app.codes[0].expose()),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(oneshot(svc, by_code).await.status, 200);
}

#[tokio::test]
async fn a_sealed_value_without_a_key_fails_reads_after_start() {
    // a node started without a key on a store another node (with a key) writes into later
    let raw = Arc::new(MemoryStore::new());
    let unkeyed = SealedStore::open(Arc::clone(&raw), None).await.unwrap();
    let keyed = SealedStore::open(Arc::clone(&raw), Some(key(9)))
        .await
        .unwrap();
    let app = App::new("late_app").unwrap();
    keyed
        .commit(vec![Write::put(Entity::App(app.clone()), Expect::Absent)])
        .await
        .unwrap();
    let err = unkeyed.get(&Key::app(&app.id)).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    let err = unkeyed.changes_since(0, 10).await.unwrap_err();
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        source.is_some_and(|s| s.contains(key(9).id())),
        "{err}: the missing key's id is named"
    );
}
