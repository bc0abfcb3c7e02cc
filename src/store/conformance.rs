//! The conformance suite for [`Store`] adapters (feature `conformance`).
//!
//! Run it from a test of your adapter crate with the macro, which writes one `#[tokio::test]`
//! per property, in a module named after its first argument, so a run lists every property that
//! fails (your crate needs `tokio` with the `macros` and `rt` features as a
//! dev-dependency):
//!
//! ```ignore
//! stagegate::store_conformance!(my_store_conforms, async { MyStore::connect("...").await.unwrap() });
//! // tests my_store_conforms::empty_store, my_store_conforms::change_feed, ...
//! ```
//!
//! or call [`run`], which runs them all and stops at the first failure (on a runtime with its
//! timer enabled: the change-signal property waits with a timeout):
//!
//! ```
//! use stagegate::store::{conformance, MemoryStore};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! conformance::run(|| async { MemoryStore::new() }).await;
//! # });
//! ```
//!
//! Each property gets a fresh, empty store from the factory, and is a public function here, named
//! as in the rules of [`Store`] it checks. A failing property panics with a message naming what
//! does not hold. The expression given to the macro is evaluated inside the generated module,
//! which imports everything of the module the macro is called in.

use std::future::Future;
use std::sync::Arc;

use super::{Entity, Expect, Key, Store, StoreError, Write};
use crate::model::{ApiId, AppId, Authorization, BackendKind, BackendService, Group, Stage};

/// Runs every property against stores made by `make`, one fresh store each.
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
    empty_store(make().await).await;
    put_get_versions(make().await).await;
    preconditions(make().await).await;
    atomic_commits(make().await).await;
    duplicate_keys(make().await).await;
    conflict_beats_duplicate(make().await).await;
    change_feed(make().await).await;
    deletes(make().await).await;
    recreate_after_delete(make().await).await;
    every_kind_round_trips(make().await).await;
    load_is_a_set(make().await).await;
    concurrent_commits(make().await).await;
    change_signal(make().await).await;
    compaction(make().await).await;
}

/// Writes one `#[tokio::test]` per conformance property, in a module named `$name`, each
/// running against a fresh store from `$make` (an expression evaluating to a future of the
/// store, evaluated inside the module, which imports everything of the calling module).
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance!(@tests $make;
                empty_store, put_get_versions, preconditions, atomic_commits, duplicate_keys,
                conflict_beats_duplicate, change_feed, deletes, recreate_after_delete,
                every_kind_round_trips, load_is_a_set, concurrent_commits, change_signal,
                compaction);
        }
    };
    (@tests $make:expr; $($prop:ident),*) => {
        $(
            #[tokio::test]
            async fn $prop() {
                $crate::store::conformance::$prop($make.await).await;
            }
        )*
    };
}

fn group(name: &str) -> Group {
    Group::new(name).expect("valid group name")
}

fn put_absent(e: Entity) -> Write {
    Write::put(e, Expect::Absent)
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn empty_store(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn put_get_versions(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn preconditions(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn atomic_commits(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn duplicate_keys(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn change_feed(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn deletes(s: impl Store) {
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn every_kind_round_trips(s: impl Store) {
    let b = BackendService::new("backend_rt", BackendKind::Mock).expect("backend");
    let g = group("group_rt");
    let api =
        crate::model::ApiDefinition::new(g.id.clone(), "api_rt", "GET", "/x/[id]", b.id.clone())
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
    let cert = crate::model::DomainCertificate {
        group_id: g.id.clone(),
        domain: "api.example.com:8443".into(),
        certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        private_key: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n".into(),
        dns_names: vec!["api.example.com".into(), "*.example.com".into()],
        not_before: jiff::Timestamp::from_second(1_700_000_000).expect("time"),
        not_after: jiff::Timestamp::from_second(1_900_000_000).expect("time"),
        sha256_fingerprint: "ab".repeat(32),
        updated_at: jiff::Timestamp::now(),
    };
    let entities = vec![
        Entity::Backend(b),
        Entity::DomainCertificate(cert),
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

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn concurrent_commits(s: impl Store) {
    let s = Arc::new(s);
    let g = group("group_race");
    s.commit(vec![put_absent(Entity::Group(g.clone()))])
        .await
        .expect("put");
    // Many writers race to update version 1: exactly one wins.
    let mut wins = 0;
    let futs: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
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
    assert_eq!(
        s.revision().await.expect("revision"),
        2,
        "only the winning commit takes a revision"
    );
    // Writers of different keys all win, with consecutive revisions.
    let futs: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
            async move {
                s.commit(vec![put_absent(Entity::Group(group(&format!(
                    "group_par{i}"
                ))))])
                .await
            }
        })
        .collect();
    let mut revs: Vec<u64> = futures_util::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| r.expect("writers of different keys do not conflict"))
        .collect();
    revs.sort_unstable();
    assert_eq!(
        revs,
        (3..=10).collect::<Vec<_>>(),
        "concurrent commits get distinct, consecutive revisions"
    );
    let feed: Vec<u64> = s
        .changes_since(2, 100)
        .await
        .expect("feed")
        .iter()
        .map(|c| c.revision)
        .collect();
    assert_eq!(
        feed,
        (3..=10).collect::<Vec<_>>(),
        "the feed has every one, in order"
    );
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn conflict_beats_duplicate(s: impl Store) {
    let a = group("group_dup2");
    let r = s
        .commit(vec![
            put_absent(Entity::Group(a.clone())),
            Write::put(Entity::Group(a.clone()), Expect::Version(5)),
        ])
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict { .. })),
        "a repeated key whose own precondition fails is a Conflict, got {r:?}"
    );
    let r = s
        .commit(vec![
            put_absent(Entity::Group(a.clone())),
            Write::delete(Key::group(&a.id), Expect::Any),
        ])
        .await;
    assert!(
        matches!(r, Err(StoreError::DuplicateKey(_))),
        "a repeated key whose precondition holds is a DuplicateKey, got {r:?}"
    );
    // Preconditions see the state before the commit, not the commit's own earlier writes.
    let r = s
        .commit(vec![
            put_absent(Entity::Group(a.clone())),
            Write::put(Entity::Group(a.clone()), Expect::Version(1)),
        ])
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict { .. })),
        "a commit's own writes are not visible to its later preconditions, got {r:?}"
    );
    assert_eq!(
        s.revision().await.expect("revision"),
        0,
        "nothing was written"
    );
    assert!(s.get(&Key::group(&a.id)).await.expect("get").is_none());
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn recreate_after_delete(s: impl Store) {
    let g = group("group_again");
    let key = Key::group(&g.id);
    s.commit(vec![put_absent(Entity::Group(g.clone()))])
        .await
        .expect("put");
    s.commit(vec![Write::put(
        Entity::Group(g.clone()),
        Expect::Version(1),
    )])
    .await
    .expect("update");
    s.commit(vec![Write::delete(key.clone(), Expect::Version(2))])
        .await
        .expect("delete");
    let r = s
        .commit(vec![Write::put(
            Entity::Group(g.clone()),
            Expect::Version(2),
        )])
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict { found: None, .. })),
        "a deleted key has no version left, got {r:?}"
    );
    s.commit(vec![put_absent(Entity::Group(g))])
        .await
        .expect("re-create");
    let got = s.get(&key).await.expect("get").expect("present");
    assert_eq!(
        got.version, 1,
        "a key re-created after a delete starts at version 1"
    );
    // Deleting an absent key with Any changes nothing but still takes the commit's revision.
    let other = Key::group(&crate::model::GroupId::generate());
    let before = s.changes_since(0, 100).await.expect("feed").len();
    let rev = s
        .commit(vec![Write::delete(other, Expect::Any)])
        .await
        .expect("deleting an absent key with Any holds");
    assert_eq!(rev, 5);
    assert_eq!(
        s.changes_since(0, 100).await.expect("feed").len(),
        before,
        "deleting an absent key adds nothing to the feed"
    );
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn load_is_a_set(s: impl Store) {
    let names = ["group_zz", "group_aa", "group_mm", "group_bb"];
    for n in names {
        s.commit(vec![put_absent(Entity::Group(group(n)))])
            .await
            .expect("put");
    }
    let loaded = s.load().await.expect("load");
    assert_eq!(loaded.revision, 4, "load is at the last commit's revision");
    let mut got: Vec<String> = loaded
        .records
        .iter()
        .map(|r| match &r.value {
            Entity::Group(g) => g.name.to_string(),
            other => panic!("unexpected record {}", other.key()),
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "load returns every record exactly once");
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn change_signal(s: impl Store) {
    let Some(mut rx) = s.subscribe() else {
        return; // a store without a signal: followers poll
    };
    let start = *rx.borrow_and_update();
    assert_eq!(start, 0, "a new store's signal starts at revision 0");
    let first = group("group_sig");
    let rev = s
        .commit(vec![put_absent(Entity::Group(first.clone()))])
        .await
        .expect("put");
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        rx.wait_for(|r| *r >= rev),
    )
    .await
    .expect("a commit is signalled within 10 s")
    .expect("the signal's sender lives as long as the store");
    for i in 0..3 {
        s.commit(vec![put_absent(Entity::Group(group(&format!(
            "group_sig{i}"
        ))))])
        .await
        .expect("put");
    }
    let got = *tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|r| *r >= 4))
        .await
        .expect("later commits are signalled within 10 s")
        .expect("sender alive");
    assert_eq!(got, 4, "the signal carries the latest revision");
    let failed = s.commit(vec![put_absent(Entity::Group(first))]).await;
    assert!(failed.is_err());
    assert_eq!(*rx.borrow(), 4, "a failed commit signals nothing new");
}

/// Checks the rule of the same name in [`Store`]'s docs.
///
/// # Panics
///
/// When it does not hold.
pub async fn compaction(s: impl Store) {
    let groups: Vec<Group> = (0..5).map(|i| group(&format!("group_cmp{i}"))).collect();
    for g in &groups {
        s.commit(vec![put_absent(Entity::Group(g.clone()))])
            .await
            .expect("put");
    }
    let removed = s.compact_log_before(4).await.expect("compact");
    assert_eq!(
        removed, 3,
        "compacting before revision 4 drops the entries of revisions 1-3"
    );
    for old in [0, 1, 2] {
        let r = s.changes_since(old, 10).await;
        assert!(
            matches!(r, Err(StoreError::Compacted(x)) if x == old),
            "changes_since({old}) after compaction must be Compacted({old}), got {r:?}"
        );
    }
    let kept: Vec<u64> = s
        .changes_since(3, 10)
        .await
        .expect("the feed still answers at the floor")
        .iter()
        .map(|c| c.revision)
        .collect();
    assert_eq!(kept, [4, 5], "later changes are kept");
    assert_eq!(
        s.compact_log_before(2).await.expect("compact"),
        0,
        "compacting to an older point does nothing"
    );
    let loaded = s.load().await.expect("load");
    assert_eq!(
        loaded.records.len(),
        5,
        "compaction leaves the records alone"
    );
    assert_eq!(loaded.revision, 5);
    // Compaction never cuts the feed of the last or future commits.
    s.compact_log_before(u64::MAX).await.expect("compact");
    assert!(s.changes_since(5, 10).await.expect("feed").is_empty());
    let rev = s
        .commit(vec![Write::delete(
            Key::group(&groups[0].id),
            Expect::Version(1),
        )])
        .await
        .expect("delete");
    let after = s.changes_since(5, 10).await.expect("feed");
    assert_eq!(after.len(), 1, "commits after a compaction are fed");
    assert_eq!(after[0].revision, rev);
    assert!(
        s.get(&Key::group(&groups[0].id))
            .await
            .expect("get")
            .is_none()
    );
}

#[cfg(test)]
mod tests {
    use crate::store::MemoryStore;

    crate::store_conformance!(memory_store_conforms, async { MemoryStore::new() });
}
