//! Shared set-up for the benchmarks: a control plane holding many published APIs.
#![allow(dead_code, unreachable_pub)]

use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane,
    control::{NewBackend, NewGroup},
    model::{ApiDefinition, BackendKind, GroupId, MockDefinition, Stage, StageDefinition},
};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A control plane with `total` published APIs in RELEASE, `per_group` per group; every group
/// has the base path `/g{i}`; APIs are a mix of static, `[param]` and match-all paths.
pub struct Fleet {
    pub cp: ControlPlane,
    pub groups: Vec<GroupId>,
    pub backend: stagegate::model::BackendId,
    /// Paths that hit (static, param and match-all in turn).
    pub hits: Vec<String>,
    /// Paths that miss: inside existing groups and outside any.
    pub misses: Vec<String>,
}

pub fn path_of(j: usize) -> String {
    match j % 3 {
        0 => format!("/s{j}/items"),
        1 => format!("/p{j}/[id]"),
        _ => format!("/m{j}/*"),
    }
}

pub fn hit_of(g: usize, j: usize) -> String {
    match j % 3 {
        0 => format!("/g{g}/s{j}/items"),
        1 => format!("/g{g}/p{j}/12345"),
        _ => format!("/g{g}/m{j}/a/b/c"),
    }
}

pub async fn fleet(total: usize, per_group: usize) -> Fleet {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let backend = cp
        .create_backend(NewBackend::new("benchMock", BackendKind::Mock))
        .await
        .unwrap()
        .id;
    let def = StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: "ok".into(),
    });
    cp.set_stage_definition(&backend, Stage::RELEASE, def)
        .await
        .unwrap();
    let n_groups = total.div_ceil(per_group);
    let mut groups = Vec::new();
    for g in 0..n_groups {
        let spec = NewGroup {
            name: format!("group_{g}"),
            base_path: Some(format!("/g{g}")),
            ..Default::default()
        };
        groups.push(cp.create_group(spec).await.unwrap().id);
    }
    for i in 0..total {
        let (g, j) = (i / per_group, i % per_group);
        let api = ApiDefinition::new(
            groups[g].clone(),
            &format!("api_{i}"),
            "GET",
            &path_of(j),
            backend.clone(),
        )
        .unwrap()
        .anonymous();
        let api = cp.create_api(api).await.unwrap();
        cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    }
    // deterministic pseudo-random picks (no RNG inside timed loops)
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let hits = (0..1024)
        .map(|_| {
            let i = usize::try_from(next() % total as u64).unwrap();
            hit_of(i / per_group, i % per_group)
        })
        .collect();
    let misses = (0..1024)
        .map(|k| {
            let g = usize::try_from(next() % n_groups as u64).unwrap();
            if k % 2 == 0 {
                format!("/g{g}/nope{k}/items")
            } else {
                format!("/zz{k}/items")
            }
        })
        .collect();
    Fleet {
        cp,
        groups,
        backend,
        hits,
        misses,
    }
}
