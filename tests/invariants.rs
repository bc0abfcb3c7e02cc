//! Property test: random sequences of control-plane operations keep the invariants, cascades
//! touch exactly the right APIs, and the store's change feed replays to the same state.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use stagegate::store::{Change, Expect, MemoryStore, Store, Write};
use stagegate::{
    ControlPlane,
    control::{NewBackend, NewGroup, ReportResult},
    model::{
        ApiDefinition, ApiId, BackendId, BackendKind, HttpDefinition, PathTemplate, Stage,
        StageDefinition,
    },
};

#[derive(Debug, Clone)]
enum Op {
    SetDef {
        backend: usize,
        stage: usize,
        port: u16,
    },
    DelDef {
        backend: usize,
        stage: usize,
    },
    Publish {
        api: usize,
        stage: usize,
    },
    Unpublish {
        api: usize,
        stage: usize,
    },
    EditPath {
        api: usize,
        path: usize,
    },
    Rebind {
        api: usize,
        backend: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..3usize, 1..4u16).prop_map(|(backend, stage, port)| Op::SetDef {
            backend,
            stage,
            port
        }),
        (0..2usize, 0..3usize).prop_map(|(backend, stage)| Op::DelDef { backend, stage }),
        (0..4usize, 0..3usize).prop_map(|(api, stage)| Op::Publish { api, stage }),
        (0..4usize, 0..3usize).prop_map(|(api, stage)| Op::Unpublish { api, stage }),
        (0..4usize, 0..4usize).prop_map(|(api, path)| Op::EditPath { api, path }),
        (0..4usize, 0..2usize).prop_map(|(api, backend)| Op::Rebind { api, backend }),
    ]
}

const PATHS: [&str; 4] = ["/a", "/b/[id]", "/b/[name]", "/c/*"];

async fn published_using(cp: &ControlPlane, b: &BackendId, s: &Stage) -> BTreeSet<ApiId> {
    cp.apis_using_backend(b, Some(s))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

async fn check_invariants(cp: &ControlPlane, apis: &[ApiId], group: &stagegate::model::GroupId) {
    let snap = cp.snapshot();
    for stage in Stage::BUILT_IN {
        let mut published = 0;
        for id in apis {
            if let Some(d) = cp.published(id, &stage).await {
                published += 1;
                let backend = cp.backend(&d.snapshot.backend.backend_id).await.unwrap();
                assert!(
                    backend.stages.contains_key(&stage),
                    "published API {id} in {stage} points at a stage without a definition"
                );
            }
        }
        let routes = snap.table(group, &stage).map_or(0, |t| t.routes().len());
        assert_eq!(
            routes, published,
            "the live routes of {stage} are exactly its publications"
        );
    }
}

async fn run(ops: Vec<Op>) {
    let store = Arc::new(MemoryStore::new());
    let cp = ControlPlane::open_shared(store.clone()).await.unwrap();
    let backends = [
        cp.create_backend(NewBackend::new("backendOne", BackendKind::Http))
            .await
            .unwrap()
            .id,
        cp.create_backend(NewBackend::new("backendTwo", BackendKind::Http))
            .await
            .unwrap()
            .id,
    ];
    let group = cp
        .create_group(NewGroup {
            name: "prop_group".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let mut apis = Vec::new();
    for (i, p) in ["/a", "/x1", "/x2", "/x3"].into_iter().enumerate() {
        let a = ApiDefinition::new(
            group.clone(),
            &format!("api{i}xx"),
            "GET",
            p,
            backends[i % 2].clone(),
        )
        .unwrap();
        apis.push(cp.create_api(a).await.unwrap().id);
    }
    for op in ops {
        let before = cp.records().await;
        let ok = match op.clone() {
            Op::SetDef {
                backend,
                stage,
                port,
            } => {
                let (b, s) = (&backends[backend], Stage::BUILT_IN[stage].clone());
                let expected = published_using(&cp, b, &s).await;
                let def =
                    StageDefinition::Http(HttpDefinition::new(format!("http://127.0.0.1:{port}")));
                let r = cp.set_stage_definition(b, s.clone(), def).await;
                if let Ok(change) = &r {
                    let got: BTreeSet<ApiId> =
                        change.report.iter().map(|r| r.api_id.clone()).collect();
                    assert_eq!(
                        got, expected,
                        "a definition change reports exactly the APIs published there"
                    );
                    assert!(
                        change
                            .report
                            .iter()
                            .all(|r| r.result == ReportResult::Republished)
                    );
                }
                r.is_ok()
            }
            Op::DelDef { backend, stage } => {
                let (b, s) = (&backends[backend], Stage::BUILT_IN[stage].clone());
                let expected = published_using(&cp, b, &s).await;
                let mut others = Vec::new();
                for id in &apis {
                    for st in Stage::BUILT_IN {
                        if st != s {
                            others.push(cp.published(id, &st).await.map(|d| d.version));
                        }
                    }
                }
                let r = cp.delete_stage_definition(b, &s).await;
                if let Ok(report) = &r {
                    let got: BTreeSet<ApiId> = report.iter().map(|r| r.api_id.clone()).collect();
                    assert_eq!(
                        got, expected,
                        "deleting a definition unpublishes exactly the APIs published there"
                    );
                    for id in &expected {
                        assert!(cp.published(id, &s).await.is_none());
                    }
                    let mut after = Vec::new();
                    for id in &apis {
                        for st in Stage::BUILT_IN {
                            if st != s {
                                after.push(cp.published(id, &st).await.map(|d| d.version));
                            }
                        }
                    }
                    assert_eq!(after, others, "other stages are untouched");
                }
                r.is_ok()
            }
            Op::Publish { api, stage } => cp
                .publish(&apis[api], Stage::BUILT_IN[stage].clone(), None)
                .await
                .is_ok(),
            Op::Unpublish { api, stage } => cp
                .unpublish(&apis[api], &Stage::BUILT_IN[stage])
                .await
                .is_ok(),
            Op::EditPath { api, path } => {
                let mut a = cp.api(&apis[api]).await.unwrap();
                a.request.path = PathTemplate::parse(PATHS[path]).unwrap();
                cp.update_api(a).await.is_ok()
            }
            Op::Rebind { api, backend } => {
                let mut a = cp.api(&apis[api]).await.unwrap();
                a.backend.backend_id = backends[backend].clone();
                cp.update_api(a).await.is_ok()
            }
        };
        if std::env::var("INVARIANTS_TRACE").is_ok() {
            eprintln!("{op:?} -> {ok}");
        }
        if !ok {
            assert_eq!(
                cp.records().await,
                before,
                "a refused {op:?} changed the state"
            );
        }
        check_invariants(&cp, &apis, &group).await;
    }
    // The change feed replays to the same state.
    let feed: Vec<Change> = store.changes_since(0, usize::MAX).await.unwrap();
    let replica = Arc::new(MemoryStore::new());
    let mut i = 0;
    while i < feed.len() {
        let rev = feed[i].revision;
        let mut writes = Vec::new();
        while i < feed.len() && feed[i].revision == rev {
            let c = &feed[i];
            writes.push(match &c.value {
                Some(v) => Write::put(v.value.clone(), Expect::Any),
                None => Write::delete(c.key.clone(), Expect::Any),
            });
            i += 1;
        }
        replica.commit(writes).await.unwrap();
    }
    let replayed = ControlPlane::open_shared(replica).await.unwrap();
    assert_eq!(
        replayed.records().await,
        cp.records().await,
        "the feed replays to the same records and versions"
    );
    check_invariants(&replayed, &apis, &group).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}
