//! The conformance suite for [`Store`] adapters (feature `conformance`).
//!
//! Run it from a test of your adapter crate:
//!
//! ```
//! use stagegate::store::{conformance, MemoryStore};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! conformance::run(|| async { MemoryStore::new() }).await;
//! # });
//! ```
//!
//! or with the macro, which writes the `#[tokio::test]` for you (your crate needs `tokio` with
//! the `macros` and `rt` features as a dev-dependency):
//!
//! ```ignore
//! stagegate::store_conformance!(my_store_conforms, async { MyStore::connect("...").await.unwrap() });
//! ```
//!
//! Each check gets a fresh, empty store from the factory. A failing check panics with a message
//! naming the property that does not hold.

use std::future::Future;

use super::{Entity, Expect, Key, Store, StoreError, Write};
use crate::model::{ApiId, AppId, Authorization, BackendKind, BackendService, Group, Stage};

/// Runs every check against stores made by `make`.
///
/// # Panics
///
/// When the store breaks a property of the [`Store`] contract.
pub async fn run<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    empty_store(&make().await).await;
    put_get_versions(&make().await).await;
    preconditions(&make().await).await;
    atomic_commits(&make().await).await;
    duplicate_keys(&make().await).await;
    change_feed(&make().await).await;
    deletes(&make().await).await;
    every_kind_round_trips(&make().await).await;
    concurrent_commits(std::sync::Arc::new(make().await)).await;
}

/// Writes the `#[tokio::test]` that runs the conformance suite against the store `$make`
/// (an expression evaluating to a future of the store).
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        #[tokio::test]
        async fn $name() {
            $crate::store::conformance::run(|| $make).await;
        }
    };
}

fn group(name: &str) -> Group {
    Group::new(name).expect("valid group name")
}

fn put_absent(e: Entity) -> Write {
    Write::put(e, Expect::Absent)
}

async fn empty_store(s: &impl Store) {
    let l = s.load().await.expect("load of an empty store");
    assert_eq!(l.revision, 0, "an empty store is at revision 0");
    assert!(l.records.is_empty(), "an empty store holds no records");
    assert_eq!(s.revision().await.expect("revision"), 0);
    assert!(
        s.changes_since(0, 10).await.expect("feed").is_empty(),
        "an empty store has an empty feed"
    );
    assert_eq!(
        s.commit(vec![]).await.expect("empty commit"),
        0,
        "an empty commit changes nothing"
    );
}

async fn put_get_versions(s: &impl Store) {
    let mut g = group("group_one");
    let key = Key::group(&g.id);
    assert_eq!(
        s.commit(vec![put_absent(Entity::Group(g.clone()))])
            .await
            .expect("first put"),
        1
    );
    let got = s.get(&key).await.expect("get").expect("record present");
    assert_eq!(got.version, 1, "the first write of a key is version 1");
    assert_eq!(
        got.value,
        Entity::Group(g.clone()),
        "a record reads back as written"
    );
    g.description = Some("changed".into());
    assert_eq!(
        s.commit(vec![Write::put(
            Entity::Group(g.clone()),
            Expect::Version(1)
        )])
        .await
        .expect("update"),
        2
    );
    let got = s.get(&key).await.expect("get").expect("present");
    assert_eq!(got.version, 2, "each write bumps the version");
    assert_eq!(got.value, Entity::Group(g));
    assert!(
        s.get(&Key::group(&crate::model::GroupId::generate()))
            .await
            .expect("get")
            .is_none(),
        "unknown keys read as none"
    );
}

async fn preconditions(s: &impl Store) {
    let g = group("group_pre");
    s.commit(vec![put_absent(Entity::Group(g.clone()))])
        .await
        .expect("put");
    for (expect, what) in [
        (Expect::Absent, "Absent on an existing key"),
        (Expect::Version(7), "a wrong version"),
    ] {
        let r = s
            .commit(vec![Write::put(Entity::Group(g.clone()), expect)])
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict { .. })),
            "{what} must be a Conflict, got {r:?}"
        );
    }
    let other = group("group_missing");
    let r = s
        .commit(vec![Write::put(
            Entity::Group(other.clone()),
            Expect::Version(1),
        )])
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict { .. })),
        "Version on a missing key must be a Conflict"
    );
    let r = s
        .commit(vec![Write::delete(
            Key::group(&other.id),
            Expect::Version(1),
        )])
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict { .. })),
        "deleting a missing key at a version must be a Conflict"
    );
    assert_eq!(
        s.revision().await.expect("revision"),
        1,
        "failed commits do not take a revision"
    );
    s.commit(vec![Write::put(Entity::Group(g), Expect::Any)])
        .await
        .expect("Any always holds");
}

async fn atomic_commits(s: &impl Store) {
    let a = group("group_aaa");
    let b = group("group_bbb");
    s.commit(vec![put_absent(Entity::Group(a.clone()))])
        .await
        .expect("put a");
    // b is new, a's precondition fails: nothing may be written
    let r = s
        .commit(vec![
            put_absent(Entity::Group(b.clone())),
            put_absent(Entity::Group(a.clone())),
        ])
        .await;
    assert!(r.is_err(), "a commit with one failed precondition fails");
    assert!(
        s.get(&Key::group(&b.id)).await.expect("get").is_none(),
        "a failed commit writes nothing"
    );
    assert_eq!(
        s.changes_since(0, 100).await.expect("feed").len(),
        1,
        "a failed commit adds nothing to the feed"
    );
}

async fn duplicate_keys(s: &impl Store) {
    let a = group("group_dup");
    let r = s
        .commit(vec![
            put_absent(Entity::Group(a.clone())),
            Write::put(Entity::Group(a), Expect::Any),
        ])
        .await;
    assert!(r.is_err(), "one key written twice in one commit is refused");
    assert_eq!(s.revision().await.expect("revision"), 0);
}

async fn change_feed(s: &impl Store) {
    let groups: Vec<Group> = (0..5).map(|i| group(&format!("group_feed{i}"))).collect();
    for g in &groups[..3] {
        s.commit(vec![put_absent(Entity::Group(g.clone()))])
            .await
            .expect("put");
    }
    s.commit(vec![
        put_absent(Entity::Group(groups[3].clone())),
        put_absent(Entity::Group(groups[4].clone())),
    ])
    .await
    .expect("batch");
    let all = s.changes_since(0, 100).await.expect("feed");
    assert_eq!(all.len(), 5, "one change per write");
    let revs: Vec<u64> = all.iter().map(|c| c.revision).collect();
    assert_eq!(
        revs,
        [1, 2, 3, 4, 4],
        "changes come in commit order with consecutive revisions"
    );
    let later = s.changes_since(2, 100).await.expect("feed");
    assert_eq!(later.len(), 3, "changes_since skips earlier revisions");
    assert!(later.iter().all(|c| c.revision > 2));
    let limited = s.changes_since(0, 4).await.expect("feed");
    assert_eq!(limited.len(), 5, "a limit never splits a commit");
    let one = s.changes_since(0, 1).await.expect("feed");
    assert_eq!(one.len(), 1, "a limit is honoured between commits");
    assert!(
        s.changes_since(4, 10).await.expect("feed").is_empty(),
        "nothing after the last revision"
    );
}

async fn deletes(s: &impl Store) {
    let g = group("group_del");
    let key = Key::group(&g.id);
    s.commit(vec![put_absent(Entity::Group(g))])
        .await
        .expect("put");
    s.commit(vec![Write::delete(key.clone(), Expect::Version(1))])
        .await
        .expect("delete");
    assert!(
        s.get(&key).await.expect("get").is_none(),
        "a deleted record is gone"
    );
    let feed = s.changes_since(1, 10).await.expect("feed");
    assert_eq!(feed.len(), 1);
    assert!(
        feed[0].value.is_none(),
        "a delete appears in the feed without a value"
    );
    assert!(s.load().await.expect("load").records.is_empty());
}

async fn every_kind_round_trips(s: &impl Store) {
    let b = BackendService::new("backend_rt", BackendKind::Mock).expect("backend");
    let g = group("group_rt");
    let api = crate::model::ApiDefinition::builder(
        g.id.clone(),
        "api_rt",
        "GET",
        "/x/[id]",
        b.id.clone(),
    )
    .expect("api");
    let app = crate::model::App::new("app_rt").expect("app");
    let auth = Authorization {
        app_id: AppId::generate_numeric(),
        api_id: ApiId::generate(),
        stage: Stage::PRE,
        expires_at: None,
        created_at: jiff::Timestamp::now(),
    };
    let vpc = crate::model::VpcAccess::new("vpc_rt", "vpc-1", "i-1", 80, None).expect("vpc");
    let d = super::Deployment {
        api_id: api.id.clone(),
        stage: Stage::TEST,
        version: "20240101000000000".into(),
        description: Some("first".into()),
        deployed_at: jiff::Timestamp::now(),
        snapshot: api.clone(),
    };
    let p = super::Publication {
        api_id: api.id.clone(),
        stage: Stage::TEST,
        version: d.version.clone(),
    };
    let entities = vec![
        Entity::Backend(b),
        Entity::Group(g),
        Entity::Api(api),
        Entity::App(app),
        Entity::Authorization(auth),
        Entity::VpcAccess(vpc),
        Entity::Deployment(d),
        Entity::Publication(p),
    ];
    s.commit(entities.iter().cloned().map(put_absent).collect())
        .await
        .expect("commit every kind");
    for e in &entities {
        let got = s.get(&e.key()).await.expect("get").expect("present");
        assert_eq!(&got.value, e, "{} reads back unchanged", e.key());
    }
    let loaded = s.load().await.expect("load");
    assert_eq!(loaded.records.len(), entities.len());
    assert_eq!(loaded.revision, 1);
}

async fn concurrent_commits<S: Store>(s: std::sync::Arc<S>) {
    let g = group("group_race");
    s.commit(vec![put_absent(Entity::Group(g.clone()))])
        .await
        .expect("put");
    // Many writers race to update version 1: exactly one wins.
    let mut wins = 0;
    let futs: Vec<_> = (0..8)
        .map(|i| {
            let s = std::sync::Arc::clone(&s);
            let mut g = g.clone();
            g.description = Some(format!("writer {i}"));
            async move {
                s.commit(vec![Write::put(Entity::Group(g), Expect::Version(1))])
                    .await
            }
        })
        .collect();
    for r in futures_util::future::join_all(futs).await {
        if r.is_ok() {
            wins += 1;
        }
    }
    assert_eq!(
        wins, 1,
        "exactly one of several writers expecting the same version wins"
    );
}
