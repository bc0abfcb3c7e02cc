//! `/import` accepts only what the operations could have built (issue 20 item 9): the two
//! reported cases as regressions, and a property test that corrupts a valid export at random,
//! imports it, and checks that an accepted document satisfies every invariant the individual
//! operations enforce (and can be rebuilt with them), while a refused one changes nothing.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane,
    control::{ConfigExport, NewApp, NewBackend, NewGroup},
    model::{
        ApiDefinition, BackendKind, HttpDefinition, MockDefinition, Secret, Stage, StageDefinition,
    },
};

fn mock(body: &str) -> StageDefinition {
    StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: BTreeMap::new(),
        body: body.into(),
    })
}

/// A small world built with the operations: two backends, two groups, three APIs published in
/// TEST (one also in RELEASE, twice), two apps with grants. Returned as its export, in JSON.
async fn base() -> Value {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let m = cp
        .create_backend(NewBackend::new("mock_a", BackendKind::Mock))
        .await
        .unwrap();
    let h = cp
        .create_backend(NewBackend::new("http_b", BackendKind::Http))
        .await
        .unwrap();
    for s in [Stage::TEST, Stage::RELEASE] {
        cp.set_stage_definition(&m.id, s, mock("m")).await.unwrap();
    }
    cp.set_stage_definition(
        &h.id,
        Stage::TEST,
        StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:9")),
    )
    .await
    .unwrap();
    let mut groups = Vec::new();
    for name in ["group_one", "group_two"] {
        groups.push(
            cp.create_group(NewGroup {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap(),
        );
    }
    let specs = [
        (0, "anonApi", "/a", &m.id, false),
        (0, "appApi", "/b/[id]", &h.id, true),
        (1, "otherApi", "/c", &m.id, true),
    ];
    let mut apis = Vec::new();
    for (g, name, path, backend, app_auth) in specs {
        let mut b =
            ApiDefinition::new(groups[g].id.clone(), name, "GET", path, backend.clone()).unwrap();
        if !app_auth {
            b = b.anonymous();
        }
        let api = cp.create_api(b).await.unwrap();
        cp.publish(&api.id, Stage::TEST, None).await.unwrap();
        apis.push(api);
    }
    cp.publish(&apis[0].id, Stage::RELEASE, None).await.unwrap();
    cp.publish(&apis[0].id, Stage::RELEASE, None).await.unwrap();
    for (i, name) in ["app_zero", "app_one"].into_iter().enumerate() {
        let app = cp
            .create_app(NewApp {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        cp.add_app_code(&app.id, None).await.unwrap();
        cp.authorize(&app.id, &apis[i + 1].id, Stage::TEST, None)
            .await
            .unwrap();
    }
    serde_json::to_value(cp.export().await).unwrap()
}

/// The configuration as JSON, without the export time.
async fn state(cp: &ControlPlane) -> Value {
    let mut v = serde_json::to_value(cp.export().await).unwrap();
    v["exported_at"] = Value::Null;
    v
}

async fn import(cp: &ControlPlane, doc: &Value) -> Result<(), String> {
    let doc: ConfigExport = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    cp.import(doc).await.map(|_| ()).map_err(|e| e.to_string())
}

fn unique<'a>(what: &str, items: impl IntoIterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for i in items {
        assert!(seen.insert(i), "{what} `{i}` appears twice");
    }
}

/// Every invariant the individual operations enforce, checked on an exported configuration;
/// then the parts that carry identity (backends, groups, apps and their credentials) are built
/// again with the operations on a fresh control plane, which must accept every step.
async fn assert_operations_could_build(doc: &ConfigExport) {
    unique("backend name", doc.backends.iter().map(|b| b.name.as_str()));
    unique("group name", doc.groups.iter().map(|g| g.name.as_str()));
    unique("app name", doc.apps.iter().map(|a| a.name.as_str()));
    unique(
        "vpc access name",
        doc.vpc_access.iter().map(|v| v.name.as_str()),
    );
    let api_names: Vec<String> = doc
        .apis
        .iter()
        .map(|a| format!("{}/{}", a.group_id, a.name))
        .collect();
    unique("api name", api_names.iter().map(String::as_str));
    unique(
        "app key",
        doc.apps
            .iter()
            .flat_map(|a| a.keys.iter().map(|k| k.app_key.as_str())),
    );
    unique(
        "AppCode",
        doc.apps
            .iter()
            .flat_map(|a| a.codes.iter().map(Secret::expose)),
    );
    let group = |id| doc.groups.iter().any(|g| &g.id == id);
    let backend = |id| doc.backends.iter().find(|b| &b.id == id);
    let api = |id| doc.apis.iter().any(|a| &a.id == id);
    for b in &doc.backends {
        b.validate().expect("backend valid");
        for d in b.stages.values() {
            assert!(b.kind.accepts(d.kind()));
            d.validate().expect("definition valid");
        }
    }
    for a in &doc.apis {
        a.validate().expect("api valid");
        assert!(group(&a.group_id), "api `{}` in a missing group", a.name);
        let b = backend(&a.backend.backend_id).expect("api on a missing backend");
        assert!(b.kind != BackendKind::Oss || a.backend.oss.is_some());
    }
    for d in &doc.deployments {
        assert!(api(&d.api_id), "deployment of a missing api");
        assert_eq!(
            d.snapshot.id, d.api_id,
            "a deployment snapshots its own api"
        );
    }
    for p in &doc.publications {
        let d = doc
            .deployments
            .iter()
            .find(|d| d.api_id == p.api_id && d.stage == p.stage && d.version == p.version)
            .expect("publication of a missing deployment");
        assert!(group(&d.snapshot.group_id), "published in a missing group");
        let b = backend(&d.snapshot.backend.backend_id).expect("published on a missing backend");
        assert!(
            b.stages.contains_key(&p.stage),
            "published without a definition"
        );
    }
    for a in &doc.authorizations {
        assert!(
            doc.apps.iter().any(|x| x.id == a.app_id),
            "grant to a missing app"
        );
        assert!(api(&a.api_id), "grant on a missing api");
    }

    // Replay the identities with the operations.
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    for b in &doc.backends {
        cp.create_backend(NewBackend::new(b.name.clone(), b.kind))
            .await
            .expect("backend replays");
    }
    for g in &doc.groups {
        cp.create_group(NewGroup {
            name: g.name.clone(),
            ..Default::default()
        })
        .await
        .expect("group replays");
    }
    for a in &doc.apps {
        let first = a.keys.first();
        let app = cp
            .create_app(NewApp {
                name: a.name.clone(),
                app_key: first.map(|k| k.app_key.clone()),
                app_secret: first.map(|k| k.app_secret.clone()),
                app_code: a.codes.first().cloned(),
                ..Default::default()
            })
            .await
            .expect("app replays");
        for k in a.keys.iter().skip(1) {
            cp.add_app_key(&app.id, Some(k.clone()))
                .await
                .expect("app key replays");
        }
        for c in a.codes.iter().skip(1) {
            cp.add_app_code(&app.id, Some(c.clone()))
                .await
                .expect("AppCode replays");
        }
    }
}

/// Imports `doc` over a plane holding `base`: refused → nothing changed; accepted → buildable.
async fn import_over_base(base: &Value, doc: &Value) -> bool {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    import(&cp, base).await.expect("the base document imports");
    let before = state(&cp).await;
    match import(&cp, doc).await {
        Ok(()) => {
            assert_operations_could_build(&cp.export().await).await;
            true
        }
        Err(_) => {
            assert_eq!(state(&cp).await, before, "a refused import changes nothing");
            false
        }
    }
}

#[tokio::test]
async fn an_appcode_listed_on_two_apps_is_refused() {
    let base = base().await;
    let mut doc = base.clone();
    let code = doc["apps"][0]["codes"][0].clone();
    doc["apps"][1]["codes"].as_array_mut().unwrap().push(code);
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let err = import(&cp, &doc).await.unwrap_err();
    assert!(err.contains("AppCode"), "{err}");
    assert!(
        !err.contains(base["apps"][0]["codes"][0].as_str().unwrap()),
        "the code is never shown: {err}"
    );
    assert!(!import_over_base(&base, &doc).await);
}

#[tokio::test]
async fn a_deployment_holding_another_apis_snapshot_is_refused() {
    let base = base().await;
    let apis = base["apis"].as_array().unwrap();
    let anon = apis
        .iter()
        .find(|a| a["name"] == "anonApi")
        .unwrap()
        .clone();
    let mut doc = base.clone();
    // The APP-auth API's deployment now holds the anonymous API's definition.
    let victim = apis.iter().find(|a| a["name"] == "appApi").unwrap()["id"].clone();
    let d = doc["deployments"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|d| d["api_id"] == victim)
        .unwrap();
    d["snapshot"] = anon;
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let err = import(&cp, &doc).await.unwrap_err();
    assert!(err.contains("snapshot of another api"), "{err}");
    assert!(!import_over_base(&base, &doc).await);
}

#[tokio::test]
async fn the_unchanged_export_imports_and_is_buildable() {
    let base = base().await;
    assert!(import_over_base(&base, &base).await);
    let doc: ConfigExport = serde_json::from_value(base).unwrap();
    assert_operations_could_build(&doc).await;
    // Sanity for the checker itself: a shared AppCode is caught by it.
    let mut bad = doc.clone();
    let code = bad.apps[0].codes[0].clone();
    bad.apps[1].codes.push(code);
    let caught = tokio::spawn(async move { assert_operations_could_build(&bad).await }).await;
    assert!(caught.is_err(), "the checker sees a shared AppCode");
}

/// One corruption of an export document.
#[derive(Debug, Clone)]
enum Corruption {
    /// An app lists another app's AppCode.
    CopyCode(usize, usize),
    /// An app lists another app's key pair.
    CopyKey(usize, usize),
    /// A deployment holds another API's definition.
    ForeignSnapshot(usize, usize),
    /// A reference points at an id nothing has.
    Dangle(usize, usize),
    /// A record takes another record's name.
    SameName(usize, usize, usize),
    /// A MOCK definition frames the response or answers 1xx.
    BadMock(usize),
    /// A record is left out.
    Remove(usize, usize),
    /// A record appears twice.
    Duplicate(usize, usize),
}

const KINDS: [&str; 8] = [
    "backends",
    "groups",
    "apis",
    "deployments",
    "publications",
    "apps",
    "authorizations",
    "vpc_access",
];

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        (0..4usize, 0..4usize).prop_map(|(a, b)| Corruption::CopyCode(a, b)),
        (0..4usize, 0..4usize).prop_map(|(a, b)| Corruption::CopyKey(a, b)),
        (0..8usize, 0..4usize).prop_map(|(a, b)| Corruption::ForeignSnapshot(a, b)),
        (0..8usize, 0..8usize).prop_map(|(a, b)| Corruption::Dangle(a, b)),
        (0..4usize, 0..4usize, 0..4usize).prop_map(|(k, a, b)| Corruption::SameName(k, a, b)),
        (0..12usize).prop_map(Corruption::BadMock),
        (0..8usize, 0..8usize).prop_map(|(k, i)| Corruption::Remove(k, i)),
        (0..8usize, 0..8usize).prop_map(|(k, i)| Corruption::Duplicate(k, i)),
    ]
}

fn nth<'a>(doc: &'a mut Value, kind: &str, i: usize) -> Option<&'a mut Value> {
    let v = doc[kind].as_array_mut()?;
    let n = v.len();
    if n == 0 { None } else { v.get_mut(i % n) }
}

fn corrupt(doc: &mut Value, c: &Corruption) {
    match *c {
        Corruption::CopyCode(a, b) => {
            let Some(code) = nth(doc, "apps", a).map(|x| x["codes"][0].clone()) else {
                return;
            };
            if let Some(app) = nth(doc, "apps", b) {
                app["codes"].as_array_mut().unwrap().push(code);
            }
        }
        Corruption::CopyKey(a, b) => {
            let Some(key) = nth(doc, "apps", a).map(|x| x["keys"][0].clone()) else {
                return;
            };
            if let Some(app) = nth(doc, "apps", b) {
                app["keys"].as_array_mut().unwrap().push(key);
            }
        }
        Corruption::ForeignSnapshot(d, a) => {
            let Some(api) = nth(doc, "apis", a).cloned() else {
                return;
            };
            if let Some(dep) = nth(doc, "deployments", d) {
                dep["snapshot"] = api;
            }
        }
        Corruption::Dangle(which, i) => {
            let fresh = json!("0123456789abcdef0123456789abcdef");
            let (kind, field): (&str, &[&str]) = match which {
                0 => ("apis", &["group_id"]),
                1 => ("apis", &["backend", "backend_id"]),
                2 => ("authorizations", &["app_id"]),
                3 => ("authorizations", &["api_id"]),
                4 => ("publications", &["version"]),
                5 => ("deployments", &["api_id"]),
                6 => ("deployments", &["snapshot", "backend", "backend_id"]),
                _ => ("deployments", &["snapshot", "group_id"]),
            };
            if let Some(mut v) = nth(doc, kind, i) {
                for f in &field[..field.len() - 1] {
                    v = &mut v[*f];
                }
                v[field[field.len() - 1]] = fresh;
            }
        }
        Corruption::SameName(k, a, b) => {
            let kind = ["backends", "groups", "apps", "apis"][k];
            let Some((name, group)) =
                nth(doc, kind, a).map(|x| (x["name"].clone(), x["group_id"].clone()))
            else {
                return;
            };
            if let Some(x) = nth(doc, kind, b) {
                x["name"] = name;
                if kind == "apis" {
                    x["group_id"] = group;
                }
            }
        }
        Corruption::BadMock(i) => {
            let bad = [
                json!({"type": "MOCK", "status": 200, "headers": {"content-length": "0"}, "body": "x"}),
                json!({"type": "MOCK", "status": 200, "headers": {"Transfer-Encoding": "chunked"}, "body": "x"}),
                json!({"type": "MOCK", "status": 101, "body": ""}),
                json!({"type": "MOCK", "status": 200, "headers": {"proxy-x": "1"}, "body": ""}),
            ][i % 4]
                .clone();
            for b in doc["backends"].as_array_mut().unwrap() {
                if b["type"] == "MOCK" {
                    b["stages"][["TEST", "RELEASE", "PRE"][i % 3]] = bad;
                    break;
                }
            }
        }
        Corruption::Remove(k, i) => {
            if let Some(v) = doc[KINDS[k]].as_array_mut()
                && !v.is_empty()
            {
                let n = v.len();
                v.remove(i % n);
            }
        }
        Corruption::Duplicate(k, i) => {
            if let Some(x) = nth(doc, KINDS[k], i).cloned() {
                doc[KINDS[k]].as_array_mut().unwrap().push(x);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    /// Whatever import accepts, the operations could have built; whatever it refuses leaves
    /// the configuration as it was.
    #[test]
    fn import_accepts_only_states_the_operations_could_build(
        corruptions in prop::collection::vec(corruption(), 0..4)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let base = base().await;
            let mut doc = base.clone();
            for c in &corruptions {
                corrupt(&mut doc, c);
            }
            import_over_base(&base, &doc).await;
        });
    }
}
