//! The control plane through the public API: the seed's scenarios and steps, every invariant,
//! and bad input.

use std::sync::Arc;

use http::Method;
use stagegate::store::{MemoryStore, Store};
use stagegate::{
    ControlError, ControlPlane,
    control::{BackendPatch, NewApp, NewBackend, NewGroup, ReportResult},
    model::{
        ApiDefinition, AppCodeMode, BackendKind, BackendService, HttpDefinition, MockDefinition,
        Stage, StageDefinition,
    },
};

fn http(url: &str) -> StageDefinition {
    StageDefinition::Http(HttpDefinition::new(url))
}

fn mock(body: &str) -> StageDefinition {
    StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: body.into(),
    })
}

async fn cp() -> ControlPlane {
    ControlPlane::open(MemoryStore::new()).await.unwrap()
}

/// A control plane with one MOCK backend service, defined in RELEASE.
async fn cp_with_mock_backend() -> (ControlPlane, BackendService) {
    let cp = cp().await;
    let b = cp
        .create_backend(NewBackend::new("mockBackend", BackendKind::Mock))
        .await
        .unwrap();
    cp.set_stage_definition(&b.id, Stage::RELEASE, mock("x"))
        .await
        .unwrap();
    (cp, b)
}

fn live_url(cp: &ControlPlane, stage: &Stage, path: &str) -> Option<String> {
    let snap = cp.snapshot();
    let m = snap.resolve(None, stage, &Method::GET, path)?;
    match m.route().definition() {
        StageDefinition::Http(h) => Some(h.url.clone()),
        other => Some(format!("{other:?}")),
    }
}

struct Setup {
    cp: ControlPlane,
    backend: stagegate::model::BackendService,
    group: stagegate::model::Group,
}

async fn setup() -> Setup {
    let cp = cp().await;
    let backend = cp
        .create_backend(NewBackend::new("testHttp", BackendKind::Http))
        .await
        .unwrap();
    let group = cp
        .create_group(NewGroup {
            name: "shop_api".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    Setup { cp, backend, group }
}

async fn api(s: &Setup, name: &str, path: &str) -> ApiDefinition {
    let a =
        ApiDefinition::new(s.group.id.clone(), name, "GET", path, s.backend.id.clone()).unwrap();
    s.cp.create_api(a).await.unwrap()
}

/// The seed document's six steps and both scenarios, end to end through the control plane.
#[tokio::test]
async fn seed_steps_and_scenarios() {
    let s = setup().await;
    // 1. create a backend service (done in setup) — its type is fixed.
    assert_eq!(s.backend.kind, BackendKind::Http);
    // 2. define URLs per environment
    let change =
        s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:8081"))
            .await
            .unwrap();
    assert!(change.report.is_empty());
    // 3. create an API (AppCode header & query), publish to TEST
    let mut a = ApiDefinition::new(
        s.group.id.clone(),
        "getUser",
        "GET",
        "/users/[id]",
        s.backend.id.clone(),
    )
    .unwrap();
    a.appcode_auth = AppCodeMode::HeaderQuery;
    a.backend.path = Some("/api/users/[id]".into());
    let a = s.cp.create_api(a).await.unwrap();
    // publishing to PRE is refused: no definition there
    let err = s.cp.publish(&a.id, Stage::PRE, None).await.unwrap_err();
    assert!(
        matches!(&err, ControlError::NoDefinition { stage, backend_name, .. } if *stage == Stage::PRE && backend_name == "testHttp"),
        "{err}"
    );
    s.cp.publish(&a.id, Stage::TEST, Some("first".into()))
        .await
        .unwrap();
    assert_eq!(
        live_url(&s.cp, &Stage::TEST, "/users/42").as_deref(),
        Some("http://127.0.0.1:8081")
    );
    // 4. an app, authorized in TEST
    let app =
        s.cp.create_app(NewApp {
            name: "mobile_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    s.cp.authorize(&app.id, &a.id, Stage::TEST, None)
        .await
        .unwrap();
    let snap = s.cp.snapshot();
    assert_eq!(
        snap.grants()
            .check(&app.id, &a.id, &Stage::TEST, jiff::Timestamp::now()),
        stagegate::routing::GrantStatus::Granted
    );
    assert_eq!(
        snap.credentials()
            .by_key(&app.keys[0].app_key)
            .map(|(id, _)| id.clone()),
        Some(app.id.clone())
    );
    // 6. scenario 1: change the TEST URL, every published API follows without a republish
    let b = api(&s, "listUsers", "/users").await;
    s.cp.publish(&b.id, Stage::TEST, None).await.unwrap();
    let change =
        s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9091"))
            .await
            .unwrap();
    let mut names: Vec<_> = change
        .report
        .iter()
        .map(|r| (r.api_name.as_str(), r.result.clone()))
        .collect();
    names.sort_by_key(|n| n.0);
    assert_eq!(
        names,
        [
            ("getUser", ReportResult::Republished),
            ("listUsers", ReportResult::Republished)
        ]
    );
    assert_eq!(
        live_url(&s.cp, &Stage::TEST, "/users/42").as_deref(),
        Some("http://127.0.0.1:9091")
    );
    assert_eq!(
        live_url(&s.cp, &Stage::TEST, "/users").as_deref(),
        Some("http://127.0.0.1:9091")
    );
    // drafts and published lists
    assert_eq!(
        s.cp.apis_using_backend(&s.backend.id, None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.cp.apis_using_backend(&s.backend.id, Some(&Stage::TEST))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.cp.apis_using_backend(&s.backend.id, Some(&Stage::RELEASE))
            .await
            .unwrap()
            .len(),
        0
    );
    // scenario 2: delete the TEST definition, the APIs are unpublished
    let report =
        s.cp.delete_stage_definition(&s.backend.id, &Stage::TEST)
            .await
            .unwrap();
    assert_eq!(report.len(), 2);
    assert!(
        report
            .iter()
            .all(|r| r.result == ReportResult::Unpublished && r.stage == Stage::TEST)
    );
    assert_eq!(live_url(&s.cp, &Stage::TEST, "/users/42"), None);
    assert!(s.cp.published(&a.id, &Stage::TEST).await.is_none());
}

#[tokio::test]
async fn cascades_touch_only_their_stage() {
    let s = setup().await;
    for (stage, port) in [(Stage::TEST, 1), (Stage::PRE, 2), (Stage::RELEASE, 3)] {
        s.cp.set_stage_definition(
            &s.backend.id,
            stage,
            http(&format!("http://127.0.0.1:900{port}")),
        )
        .await
        .unwrap();
    }
    let a = api(&s, "apiOne", "/one").await;
    let b = api(&s, "apiTwo", "/two").await;
    for stage in Stage::BUILT_IN {
        s.cp.publish(&a.id, stage.clone(), None).await.unwrap();
    }
    s.cp.publish(&b.id, Stage::PRE, None).await.unwrap();
    // another backend's APIs are never touched
    let other =
        s.cp.create_backend(NewBackend::new("otherHttp", BackendKind::Http))
            .await
            .unwrap();
    s.cp.set_stage_definition(&other.id, Stage::PRE, http("http://127.0.0.1:7000"))
        .await
        .unwrap();
    let mut c = ApiDefinition::new(
        s.group.id.clone(),
        "apiThree",
        "GET",
        "/three",
        other.id.clone(),
    )
    .unwrap();
    c = s.cp.create_api(c).await.unwrap();
    s.cp.publish(&c.id, Stage::PRE, None).await.unwrap();

    let change =
        s.cp.set_stage_definition(&s.backend.id, Stage::PRE, http("http://127.0.0.1:9999"))
            .await
            .unwrap();
    let mut ids: Vec<_> = change.report.iter().map(|r| r.api_id.clone()).collect();
    ids.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(
        ids, want,
        "exactly the PRE APIs on this backend are re-pointed"
    );
    assert_eq!(
        live_url(&s.cp, &Stage::PRE, "/one").as_deref(),
        Some("http://127.0.0.1:9999")
    );
    assert_eq!(
        live_url(&s.cp, &Stage::TEST, "/one").as_deref(),
        Some("http://127.0.0.1:9001")
    );
    assert_eq!(
        live_url(&s.cp, &Stage::RELEASE, "/one").as_deref(),
        Some("http://127.0.0.1:9003")
    );
    assert_eq!(
        live_url(&s.cp, &Stage::PRE, "/three").as_deref(),
        Some("http://127.0.0.1:7000")
    );

    let report =
        s.cp.delete_stage_definition(&s.backend.id, &Stage::PRE)
            .await
            .unwrap();
    assert_eq!(report.len(), 2);
    assert!(s.cp.published(&a.id, &Stage::PRE).await.is_none());
    assert!(s.cp.published(&b.id, &Stage::PRE).await.is_none());
    assert!(
        s.cp.published(&a.id, &Stage::TEST).await.is_some(),
        "other stages are untouched"
    );
    assert!(s.cp.published(&a.id, &Stage::RELEASE).await.is_some());
    assert!(
        s.cp.published(&c.id, &Stage::PRE).await.is_some(),
        "other backends are untouched"
    );
}

#[tokio::test]
async fn publishing_snapshots_the_draft() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let mut a = api(&s, "getItem", "/items/[id]").await;
    s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    a.request.path = stagegate::model::PathTemplate::parse("/things/[id]").unwrap();
    s.cp.update_api(a.clone()).await.unwrap();
    assert!(
        live_url(&s.cp, &Stage::TEST, "/items/1").is_some(),
        "the edit is not live yet"
    );
    assert!(live_url(&s.cp, &Stage::TEST, "/things/1").is_none());
    s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    assert!(live_url(&s.cp, &Stage::TEST, "/items/1").is_none());
    assert!(
        live_url(&s.cp, &Stage::TEST, "/things/1").is_some(),
        "republishing makes it live"
    );
}

#[tokio::test]
async fn deployment_history_and_rollback() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let mut a = api(&s, "getItem", "/v1/items").await;
    let first =
        s.cp.publish(&a.id, Stage::TEST, Some("v1".into()))
            .await
            .unwrap();
    a.request.path = stagegate::model::PathTemplate::parse("/v2/items").unwrap();
    s.cp.update_api(a.clone()).await.unwrap();
    let second =
        s.cp.publish(&a.id, Stage::TEST, Some("v2".into()))
            .await
            .unwrap();
    assert!(second.version > first.version, "versions increase");
    assert_eq!(second.version.len(), 17);
    let hist = s.cp.deployments(&a.id).await.unwrap();
    assert_eq!(hist.len(), 2);
    assert!(hist[1].live && !hist[0].live);
    s.cp.rollback(&a.id, &Stage::TEST, &first.version)
        .await
        .unwrap();
    assert!(live_url(&s.cp, &Stage::TEST, "/v1/items").is_some());
    assert!(live_url(&s.cp, &Stage::TEST, "/v2/items").is_none());
    let err =
        s.cp.rollback(&a.id, &Stage::TEST, "19990101000000000")
            .await
            .unwrap_err();
    assert!(matches!(err, ControlError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn conflicting_routes_are_refused_at_publish() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let a = api(&s, "byId", "/users/[id]").await;
    let b = api(&s, "byName", "/users/[name]").await;
    let c = api(&s, "meUser", "/users/me").await;
    s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    let before = s.cp.records().await;
    let err = s.cp.publish(&b.id, Stage::TEST, None).await.unwrap_err();
    assert!(
        matches!(&err, ControlError::RouteConflict { existing, .. } if *existing == a.id),
        "{err}"
    );
    assert_eq!(
        s.cp.records().await,
        before,
        "a refused publish changes nothing"
    );
    // an exact path beside a parameter is fine, and wins
    s.cp.publish(&c.id, Stage::TEST, None).await.unwrap();
    let snap = s.cp.snapshot();
    assert_eq!(
        snap.resolve(None, &Stage::TEST, &Method::GET, "/users/me")
            .unwrap()
            .route()
            .api_id(),
        &c.id
    );
    assert_eq!(
        snap.resolve(None, &Stage::TEST, &Method::GET, "/users/7")
            .unwrap()
            .route()
            .api_id(),
        &a.id
    );
    // ANY conflicts with GET on the same shape
    let mut any = ApiDefinition::new(
        s.group.id.clone(),
        "anyUser",
        "ANY",
        "/users/[x]",
        s.backend.id.clone(),
    )
    .unwrap();
    any = s.cp.create_api(any).await.unwrap();
    assert!(matches!(
        s.cp.publish(&any.id, Stage::TEST, None).await,
        Err(ControlError::RouteConflict { .. })
    ));
    // the same route in another stage, or another group, is fine
    s.cp.set_stage_definition(&s.backend.id, Stage::PRE, http("http://127.0.0.1:9002"))
        .await
        .unwrap();
    s.cp.publish(&b.id, Stage::PRE, None).await.unwrap();
}

#[tokio::test]
async fn matching_priorities() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let exact = api(&s, "exactPath", "/files/readme").await;
    let param = api(&s, "paramPath", "/files/[name]").await;
    let all = api(&s, "allPaths", "/files/*").await;
    let deeper = api(&s, "deeperAll", "/files/docs/*").await;
    for a in [&exact, &param, &all, &deeper] {
        s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    }
    let snap = s.cp.snapshot();
    let hit = |p: &str| {
        snap.resolve(None, &Stage::TEST, &Method::GET, p)
            .map(|m| m.route().api().name.clone())
    };
    assert_eq!(hit("/files/readme").as_deref(), Some("exactPath"));
    assert_eq!(hit("/files/other").as_deref(), Some("paramPath"));
    assert_eq!(hit("/files/a/b/c").as_deref(), Some("allPaths"));
    assert_eq!(
        hit("/files/docs/x/y").as_deref(),
        Some("deeperAll"),
        "the longer prefix wins"
    );
    assert_eq!(hit("/files"), None, "match-all needs a sub-path");
    assert_eq!(
        snap.resolve(None, &Stage::TEST, &Method::POST, "/files/readme")
            .map(|m| m.route().api().name.clone()),
        None
    );
}

#[tokio::test]
async fn backend_type_is_fixed_and_deletion_is_guarded() {
    let s = setup().await;
    // renaming works; there is no way to change the type, and a definition of another kind is refused
    let b =
        s.cp.update_backend(
            &s.backend.id,
            BackendPatch {
                name: Some("renamedHttp".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (b.name.as_str(), b.kind),
        ("renamedHttp", BackendKind::Http)
    );
    let err =
        s.cp.set_stage_definition(&s.backend.id, Stage::TEST, mock("hi"))
            .await
            .unwrap_err();
    assert!(matches!(err, ControlError::Validation(_)), "{err}");
    // a mixed backend takes any concrete kind per stage
    let mixed =
        s.cp.create_backend(NewBackend::new("mixedOne", BackendKind::Mixed))
            .await
            .unwrap();
    s.cp.set_stage_definition(&mixed.id, Stage::TEST, mock("hi"))
        .await
        .unwrap();
    s.cp.set_stage_definition(&mixed.id, Stage::PRE, http("http://127.0.0.1:1"))
        .await
        .unwrap();
    // deletion is refused while a draft uses it
    let a = api(&s, "useIt", "/x").await;
    let before = s.cp.records().await;
    let err = s.cp.delete_backend(&s.backend.id).await.unwrap_err();
    assert!(matches!(err, ControlError::InUse { .. }), "{err}");
    assert!(
        err.to_string().ends_with("is still used by API useIt"),
        "{err}"
    );
    assert_eq!(s.cp.records().await, before);
    // published too: the API is named once, with its stages
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:1"))
        .await
        .unwrap();
    s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    let err = s.cp.delete_backend(&s.backend.id).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is still used by API useIt (published in TEST)"),
        "{err}"
    );
    s.cp.unpublish(&a.id, &Stage::TEST).await.unwrap();
    s.cp.delete_api(&a.id).await.unwrap();
    s.cp.delete_backend(&s.backend.id).await.unwrap();
    assert!(matches!(
        s.cp.backend(&s.backend.id).await,
        Err(ControlError::NotFound { .. })
    ));
}

#[tokio::test]
async fn published_apis_cannot_be_deleted_and_groups_with_apis_neither() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let a = api(&s, "keepMe", "/keep").await;
    s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    assert!(matches!(
        s.cp.delete_api(&a.id).await,
        Err(ControlError::InUse { .. })
    ));
    assert!(matches!(
        s.cp.delete_group(&s.group.id).await,
        Err(ControlError::InUse { .. })
    ));
    s.cp.unpublish(&a.id, &Stage::TEST).await.unwrap();
    assert!(matches!(
        s.cp.unpublish(&a.id, &Stage::TEST).await,
        Err(ControlError::NotPublished { .. })
    ));
    s.cp.delete_api(&a.id).await.unwrap();
    s.cp.delete_group(&s.group.id).await.unwrap();
}

#[tokio::test]
async fn groups_base_path_and_domains_route() {
    let (cp, b) = cp_with_mock_backend().await;
    let g1 = cp
        .create_group(NewGroup {
            name: "bound_group".into(),
            domains: vec!["api.example.com".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let g2 = cp
        .create_group(NewGroup {
            name: "based_group".into(),
            base_path: Some("/qqq".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    for (g, name) in [(&g1, "boundApi"), (&g2, "basedApi")] {
        let a = cp
            .create_api(
                ApiDefinition::new(g.id.clone(), name, "GET", "/ping", b.id.clone()).unwrap(),
            )
            .await
            .unwrap();
        cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    let snap = cp.snapshot();
    let hit = |host: Option<&str>, p: &str| {
        snap.resolve(host, &Stage::RELEASE, &Method::GET, p)
            .map(|m| m.route().api().name.clone())
    };
    assert_eq!(
        hit(Some("API.example.com:8080"), "/ping").as_deref(),
        Some("boundApi")
    );
    assert_eq!(
        hit(Some("other.example.com"), "/ping"),
        None,
        "a bound group answers only its domains"
    );
    assert_eq!(
        hit(Some("other.example.com"), "/qqq/ping").as_deref(),
        Some("basedApi")
    );
    assert_eq!(hit(None, "/qqq/ping").as_deref(), Some("basedApi"));
}

#[tokio::test]
async fn a_base_path_change_moves_published_routes_and_other_changes_keep_them() {
    let (cp, b) = cp_with_mock_backend().await;
    let group = |base: Option<&str>| NewGroup {
        name: "moving_group".into(),
        base_path: base.map(Into::into),
        ..Default::default()
    };
    let g = cp.create_group(group(Some("/v1"))).await.unwrap();
    for (name, path) in [("pingApi", "/ping"), ("pongApi", "/pong/[id]")] {
        let a = cp
            .create_api(ApiDefinition::new(g.id.clone(), name, "GET", path, b.id.clone()).unwrap())
            .await
            .unwrap();
        cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    let hit = |p: &str| {
        cp.snapshot()
            .resolve(None, &Stage::RELEASE, &Method::GET, p)
            .map(|m| m.route().api().name.clone())
    };
    let pong_route = || {
        let snap = cp.snapshot();
        let table = snap.table(&g.id, &Stage::RELEASE).unwrap();
        Arc::clone(
            table
                .routes()
                .iter()
                .find(|r| r.api().name == "pongApi")
                .unwrap(),
        )
    };
    assert_eq!(hit("/v1/ping").as_deref(), Some("pingApi"));

    // Publishing or unpublishing another API rebuilds the group's table from its compiled
    // routes: an unchanged route is kept as it is. (A route compiled when its own publish was
    // checked is compiled once more on the group's next rebuild, against the committed
    // deployment, so the reuse is checked from there.)
    let third = cp
        .create_api(
            ApiDefinition::new(g.id.clone(), "thirdApi", "GET", "/third", b.id.clone()).unwrap(),
        )
        .await
        .unwrap();
    cp.publish(&third.id, Stage::RELEASE, None).await.unwrap();
    let before = pong_route();
    cp.unpublish(&third.id, &Stage::RELEASE).await.unwrap();
    assert_eq!(hit("/v1/third"), None);
    assert!(
        Arc::ptr_eq(&before, &pong_route()),
        "the unchanged route is reused"
    );

    // A new base path moves every published route of the group at once.
    cp.update_group(&g.id, group(Some("/v2/"))).await.unwrap();
    assert_eq!(hit("/v1/ping"), None);
    assert_eq!(hit("/v2/ping").as_deref(), Some("pingApi"));
    assert_eq!(hit("/v2/pong/7").as_deref(), Some("pongApi"));
    assert_eq!(pong_route().template().as_str(), "/v2/pong/[id]");
    assert!(!Arc::ptr_eq(&before, &pong_route()));

    // And none moves them back.
    cp.update_group(&g.id, group(None)).await.unwrap();
    assert_eq!(hit("/v2/ping"), None);
    assert_eq!(hit("/ping").as_deref(), Some("pingApi"));
    assert_eq!(pong_route().template().as_str(), "/pong/[id]");
}

#[tokio::test]
async fn apps_credentials_and_grants_follow_changes() {
    let s = setup().await;
    let app =
        s.cp.create_app(NewApp {
            name: "partner_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(app.keys[0].app_key.len(), 9);
    assert!(app.keys[0].app_key.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(app.keys[0].app_secret.expose().len(), 32);
    assert_eq!(app.codes[0].expose().len(), 32);
    assert!(
        !format!("{app:?}").contains(app.keys[0].app_secret.expose()),
        "Debug never shows a secret"
    );
    let key = app.keys[0].app_key.clone();
    let rotated = s.cp.rotate_app_secret(&app.id, &key, None).await.unwrap();
    let snap = s.cp.snapshot();
    let (_, secret) = snap.credentials().by_key(&key).unwrap();
    assert_eq!(secret, &rotated.app_secret, "the new secret is live");
    assert_ne!(secret, &app.keys[0].app_secret);
    let code = s.cp.add_app_code(&app.id, None).await.unwrap();
    assert_eq!(
        s.cp.snapshot().credentials().by_code(code.expose()),
        Some(&app.id)
    );
    s.cp.remove_app_code(&app.id, code.expose()).await.unwrap();
    assert_eq!(s.cp.snapshot().credentials().by_code(code.expose()), None);
    let extra = s.cp.add_app_key(&app.id, None).await.unwrap();
    assert!(
        s.cp.snapshot()
            .credentials()
            .by_key(&extra.app_key)
            .is_some()
    );
    s.cp.remove_app_key(&app.id, &extra.app_key).await.unwrap();
    assert!(
        s.cp.snapshot()
            .credentials()
            .by_key(&extra.app_key)
            .is_none()
    );
    // duplicates refused
    let err =
        s.cp.create_app(NewApp {
            name: "other_app".into(),
            app_key: Some(key.clone()),
            ..Default::default()
        })
        .await;
    assert!(matches!(err, Err(ControlError::AlreadyExists { .. })));
    let err =
        s.cp.create_app(NewApp {
            name: "partner_app".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(err, Err(ControlError::AlreadyExists { .. })));
    // search by name
    assert_eq!(s.cp.apps(Some("PARTNER")).await.len(), 1);
    assert_eq!(s.cp.apps(Some("nobody")).await.len(), 0);
    // grants with expiry and revocation
    let a = api(&s, "grantMe", "/g").await;
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    s.cp.authorize(&app.id, &a.id, Stage::TEST, Some(soon))
        .await
        .unwrap();
    let snap = s.cp.snapshot();
    use stagegate::routing::GrantStatus;
    assert_eq!(
        snap.grants()
            .check(&app.id, &a.id, &Stage::TEST, jiff::Timestamp::now()),
        GrantStatus::Granted
    );
    assert_eq!(
        snap.grants().check(
            &app.id,
            &a.id,
            &Stage::TEST,
            soon + jiff::SignedDuration::from_secs(1)
        ),
        GrantStatus::Expired
    );
    assert_eq!(
        snap.grants()
            .check(&app.id, &a.id, &Stage::PRE, jiff::Timestamp::now()),
        GrantStatus::Missing
    );
    s.cp.revoke(&app.id, &a.id, &Stage::TEST).await.unwrap();
    assert_eq!(
        s.cp.snapshot()
            .grants()
            .check(&app.id, &a.id, &Stage::TEST, jiff::Timestamp::now()),
        GrantStatus::Missing
    );
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    assert!(matches!(
        s.cp.authorize(&app.id, &a.id, Stage::TEST, Some(past))
            .await,
        Err(ControlError::Validation(_))
    ));
    // deleting the app removes its grants
    s.cp.authorize(&app.id, &a.id, Stage::TEST, None)
        .await
        .unwrap();
    s.cp.delete_app(&app.id).await.unwrap();
    assert!(s.cp.authorizations(Some(&a.id), None).await.is_empty());
    assert!(s.cp.snapshot().credentials().by_key(&key).is_none());
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = setup().await;
    let before = s.cp.records().await;
    let generation = s.cp.snapshot().generation();
    // names
    for bad in ["ab", "1abc", "has space", "é_accent", &"x".repeat(51)] {
        assert!(
            matches!(
                s.cp.create_backend(NewBackend::new(bad, BackendKind::Http))
                    .await,
                Err(ControlError::Validation(_))
            ),
            "{bad}"
        );
        assert!(
            s.cp.create_group(NewGroup {
                name: bad.into(),
                ..Default::default()
            })
            .await
            .is_err(),
            "{bad}"
        );
    }
    assert!(matches!(
        s.cp.create_backend(NewBackend::new("testHttp", BackendKind::Http))
            .await,
        Err(ControlError::AlreadyExists { .. })
    ));
    // URLs
    for bad in [
        "127.0.0.1:80",
        "http://",
        "http://h/path",
        "ftp://h",
        "http://u:p@h",
        "http://h?q=1",
        "",
    ] {
        let r =
            s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http(bad))
                .await;
        assert!(
            matches!(r, Err(ControlError::Validation(_))),
            "{bad}: {r:?}"
        );
    }
    // paths
    for bad in ["/users/[id", "users", "/a//b", "/a/[x]y", "/*/x"] {
        assert!(stagegate::model::PathTemplate::parse(bad).is_err(), "{bad}");
        assert!(
            ApiDefinition::new(
                s.group.id.clone(),
                "someApi",
                "GET",
                bad,
                s.backend.id.clone()
            )
            .is_err()
        );
    }
    // unknown ids
    let ghost = stagegate::model::BackendId::generate();
    assert!(matches!(
        s.cp.set_stage_definition(&ghost, Stage::TEST, http("http://h"))
            .await,
        Err(ControlError::NotFound { .. })
    ));
    assert!(matches!(
        s.cp.delete_stage_definition(&s.backend.id, &Stage::TEST)
            .await,
        Err(ControlError::NotFound { .. })
    ));
    let orphan = ApiDefinition::new(
        stagegate::model::GroupId::generate(),
        "orphanApi",
        "GET",
        "/o",
        s.backend.id.clone(),
    )
    .unwrap();
    assert!(matches!(
        s.cp.create_api(orphan).await,
        Err(ControlError::NotFound { .. })
    ));
    assert!(matches!(
        s.cp.publish(&stagegate::model::ApiId::generate(), Stage::TEST, None)
            .await,
        Err(ControlError::NotFound { .. })
    ));
    // unknown stages and over-long fields
    assert!(Stage::parse("STAGING").is_err());
    let long = NewBackend::new("longDesc", BackendKind::Http).with_description("d".repeat(181));
    assert!(matches!(
        s.cp.create_backend(long).await,
        Err(ControlError::Validation(_))
    ));
    let mut m = MockDefinition {
        status: 200,
        headers: Default::default(),
        body: String::new(),
    };
    m.headers.insert("bad header".into(), "v".into());
    let mb =
        s.cp.create_backend(NewBackend::new("mockBad", BackendKind::Mock))
            .await
            .unwrap();
    assert!(
        s.cp.set_stage_definition(&mb.id, Stage::TEST, StageDefinition::Mock(m))
            .await
            .is_err()
    );
    m = MockDefinition {
        status: 42,
        headers: Default::default(),
        body: String::new(),
    };
    assert!(
        s.cp.set_stage_definition(&mb.id, Stage::TEST, StageDefinition::Mock(m))
            .await
            .is_err()
    );
    s.cp.delete_backend(&mb.id).await.unwrap();
    // duplicate API names in a group; bad regexes; undeclared path parameters
    let a = api(&s, "dupName", "/d").await;
    let dup = ApiDefinition::new(
        s.group.id.clone(),
        "dupName",
        "GET",
        "/e",
        s.backend.id.clone(),
    )
    .unwrap();
    assert!(matches!(
        s.cp.create_api(dup).await,
        Err(ControlError::AlreadyExists { .. })
    ));
    let mut bad = a.clone();
    bad.parameters.push(stagegate::model::RequestParameter {
        name: "q".into(),
        regex: Some("(unclosed".into()),
        ..Default::default()
    });
    assert!(matches!(
        s.cp.update_api(bad).await,
        Err(ControlError::Validation(_))
    ));
    let mut bad = a.clone();
    bad.parameters.push(stagegate::model::RequestParameter {
        name: "nope".into(),
        location: stagegate::model::ParamLocation::Path,
        ..Default::default()
    });
    assert!(matches!(
        s.cp.update_api(bad).await,
        Err(ControlError::Validation(_))
    ));
    s.cp.delete_api(&a.id).await.unwrap();
    // definitions from JSON: unknown fields and mismatched types
    assert!(
        StageDefinition::from_json(
            BackendKind::Http,
            serde_json::json!({"url":"http://h","extra":1})
        )
        .is_err()
    );
    assert!(
        StageDefinition::from_json(BackendKind::Http, serde_json::json!({"type":"MOCK"})).is_err()
    );
    assert!(StageDefinition::from_json(BackendKind::Http, serde_json::json!("http://h")).is_err());
    assert_eq!(s.cp.records().await, before, "nothing changed");
    assert!(s.cp.snapshot().generation() > generation - 1);
}

#[tokio::test]
async fn change_feed_replays_to_the_same_state_and_followers_catch_up() {
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let leader = ControlPlane::open_shared(store.clone()).await.unwrap();
    let follower = ControlPlane::open_shared(store.clone()).await.unwrap();
    let b = leader
        .create_backend(NewBackend::new("feedBackend", BackendKind::Http))
        .await
        .unwrap();
    leader
        .set_stage_definition(&b.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let g = leader
        .create_group(NewGroup {
            name: "feed_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let a = leader
        .create_api(
            ApiDefinition::new(g.id.clone(), "feedApi", "GET", "/feed", b.id.clone()).unwrap(),
        )
        .await
        .unwrap();
    leader.publish(&a.id, Stage::TEST, None).await.unwrap();
    assert!(live_url(&follower, &Stage::TEST, "/feed").is_none());
    assert!(follower.follow().await.unwrap() > 0);
    assert_eq!(
        live_url(&follower, &Stage::TEST, "/feed").as_deref(),
        Some("http://127.0.0.1:9001")
    );
    leader
        .set_stage_definition(&b.id, Stage::TEST, http("http://127.0.0.1:9002"))
        .await
        .unwrap();
    follower.follow().await.unwrap();
    assert_eq!(
        live_url(&follower, &Stage::TEST, "/feed").as_deref(),
        Some("http://127.0.0.1:9002")
    );
    assert_eq!(leader.records().await, follower.records().await);
    let mut loaded = store.load().await.unwrap().records;
    loaded.sort_by_key(|r| r.value.key());
    assert_eq!(
        leader.records().await,
        loaded,
        "the store holds exactly the control plane's state"
    );
    // a stale writer gets a conflict, catches up, and succeeds on retry
    follower
        .update_backend(
            &b.id,
            BackendPatch {
                description: Some("from the follower".into()),
                name: None,
            },
        )
        .await
        .unwrap();
    let r = leader
        .update_backend(
            &b.id,
            BackendPatch {
                description: Some("from the leader".into()),
                name: None,
            },
        )
        .await;
    assert!(matches!(r, Err(ControlError::Store(_))), "{r:?}");
    leader
        .update_backend(
            &b.id,
            BackendPatch {
                description: Some("from the leader".into()),
                name: None,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn export_then_import_reproduces_the_configuration_all_or_nothing() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let a = api(&s, "exported", "/exp/[id]").await;
    s.cp.publish(&a.id, Stage::TEST, Some("v1".into()))
        .await
        .unwrap();
    let app =
        s.cp.create_app(NewApp {
            name: "export_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    s.cp.authorize(&app.id, &a.id, Stage::TEST, None)
        .await
        .unwrap();
    let doc = s.cp.export().await;
    let json = serde_json::to_string(&doc).unwrap();

    let fresh = cp().await;
    let summary = fresh
        .import(serde_json::from_str(&json).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.records, s.cp.records().await.len());
    let strip = |v: Vec<stagegate::store::Versioned<stagegate::store::Entity>>| {
        v.into_iter().map(|r| r.value).collect::<Vec<_>>()
    };
    assert_eq!(strip(fresh.records().await), strip(s.cp.records().await));
    assert_eq!(
        live_url(&fresh, &Stage::TEST, "/exp/1").as_deref(),
        Some("http://127.0.0.1:9001")
    );
    assert!(
        fresh
            .snapshot()
            .credentials()
            .by_key(&app.keys[0].app_key)
            .is_some()
    );

    // a broken document changes nothing
    let before = fresh.records().await;
    let mut bad = doc.clone();
    bad.groups.clear();
    assert!(matches!(
        fresh.import(bad).await,
        Err(ControlError::Validation(_))
    ));
    let mut bad = doc.clone();
    bad.format = 99;
    assert!(fresh.import(bad).await.is_err());
    let mut bad = doc.clone();
    let mut twin = bad.apis[0].clone();
    twin.id = stagegate::model::ApiId::generate();
    twin.name = "twinApi".into();
    let mut dep = bad.deployments[0].clone();
    dep.api_id = twin.id.clone();
    dep.snapshot = twin.clone();
    bad.publications.push(stagegate::store::Publication {
        api_id: twin.id.clone(),
        stage: Stage::TEST,
        version: dep.version.clone(),
    });
    bad.apis.push(twin);
    bad.deployments.push(dep);
    let err = fresh.import(bad).await.unwrap_err();
    assert!(err.to_string().contains("conflict"), "{err}");
    let mut bad = doc.clone();
    bad.backends[0].stages.clear();
    assert!(
        fresh.import(bad).await.is_err(),
        "a publication without a definition is refused"
    );
    assert_eq!(fresh.records().await, before, "nothing changed");

    // importing an empty document clears everything
    let empty = stagegate::control::ConfigExport {
        backends: vec![],
        vpc_access: vec![],
        groups: vec![],
        apis: vec![],
        deployments: vec![],
        publications: vec![],
        apps: vec![],
        authorizations: vec![],
        ..doc
    };
    let summary = fresh.import(empty).await.unwrap();
    assert_eq!(summary.removed, before.len());
    assert!(fresh.records().await.is_empty());
    assert!(live_url(&fresh, &Stage::TEST, "/exp/1").is_none());
}

#[tokio::test]
async fn at_equal_length_segments_decide_and_longer_templates_win() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let prefix = api(&s, "pathAll", "/path/*").await;
    let params = api(&s, "twoParams", "/[id]/[name]").await;
    let three = api(&s, "threeParams", "/[a]/[b]/[c]").await;
    for a in [&prefix, &params, &three] {
        s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    }
    let snap = s.cp.snapshot();
    let hit = |p: &str| {
        snap.resolve(None, &Stage::TEST, &Method::GET, p)
            .map(|m| m.route().api().name.clone())
    };
    assert_eq!(
        hit("/path/x").as_deref(),
        Some("pathAll"),
        "equal length: an exact first segment wins"
    );
    assert_eq!(hit("/other/x").as_deref(), Some("twoParams"));
    assert_eq!(
        hit("/path/x/y").as_deref(),
        Some("threeParams"),
        "the longer template wins"
    );
    assert_eq!(hit("/path/x/y/z").as_deref(), Some("pathAll"));
}

#[tokio::test]
async fn a_longer_match_all_beats_a_shorter_one_with_an_exact_first_segment() {
    // The vendor's rule is longest first; only at equal length does exact beat a parameter.
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let short = api(&s, "shortAll", "/b/*").await;
    let long = api(&s, "longAll", "/[a]/x/*").await;
    let root = api(&s, "rootAll", "/*").await;
    let param_all = api(&s, "paramAll", "/[a]/*").await;
    for a in [&short, &long, &root, &param_all] {
        s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    }
    let snap = s.cp.snapshot();
    let hit = |p: &str| {
        snap.resolve(None, &Stage::TEST, &Method::GET, p)
            .map(|m| (m.route().api().name.clone(), m.rest().map(str::to_owned)))
    };
    assert_eq!(hit("/b/x/y"), Some(("longAll".into(), Some("y".into()))));
    assert_eq!(hit("/b/z/y"), Some(("shortAll".into(), Some("z/y".into()))));
    assert_eq!(hit("/c/z/y"), Some(("paramAll".into(), Some("z/y".into()))));
    assert_eq!(hit("/c"), Some(("rootAll".into(), Some("c".into()))));
    let m = snap
        .resolve(None, &Stage::TEST, &Method::GET, "/q%20r/x/tail")
        .unwrap();
    assert_eq!(m.param("a"), Some("q%20r"), "raw, as received");
}

#[tokio::test]
async fn a_match_gives_every_parameter_and_the_sub_path_raw() {
    let s = setup().await;
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let items = api(&s, "items", "/shops/[shop]/items/[item]/details").await;
    let files = api(&s, "files", "/users/[user]/[bucket]/files/*").await;
    let fixed = api(&s, "fixed", "/shops/all/items").await;
    for a in [&items, &files, &fixed] {
        s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    }
    let snap = s.cp.snapshot();
    let get = |p: &str| snap.resolve(None, &Stage::TEST, &Method::GET, p).unwrap();

    let m = get("/shops/s1/items/%E6%97%A5%E6%9C%AC/details");
    assert_eq!(
        m.params().collect::<Vec<_>>(),
        [("shop", "s1"), ("item", "%E6%97%A5%E6%9C%AC")]
    );
    assert_eq!(m.rest(), None);

    // values longer than a match keeps inline, and unicode as sent
    let long = "x".repeat(300);
    let m = get(&format!("/shops/{long}/items/日本/details"));
    assert_eq!(m.param("shop"), Some(long.as_str()));
    assert_eq!(m.param("item"), Some("日本"));
    assert_eq!(m.param("nope"), None);

    let m = get("/users/u-7/b/files/a/b%20c/");
    assert_eq!(
        m.params().collect::<Vec<_>>(),
        [("user", "u-7"), ("bucket", "b")]
    );
    assert_eq!(m.rest(), Some("a/b%20c/"));

    let m = get("/shops/all/items");
    assert_eq!(m.route().api().name, "fixed");
    assert_eq!(m.params().count(), 0);
    assert_eq!(m.rest(), None);
}

/// API names are unique within a group (the control plane keeps an index of them instead of
/// scanning every API): a duplicate is refused on create, on rename and on a move to another
/// group, and a name is free again once its API is renamed or deleted, also after a reload from
/// the store.
#[tokio::test]
async fn api_names_stay_unique_in_a_group_through_rename_move_and_delete() {
    let s = setup().await;
    let other =
        s.cp.create_group(NewGroup {
            name: "other_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let taken = |r: Result<ApiDefinition, ControlError>| {
        matches!(r, Err(ControlError::AlreadyExists { what: "api", .. }))
    };
    let a = api(&s, "getUser", "/a").await;
    let b = api(&s, "getOrder", "/b").await;
    // create with a taken name
    let dup = ApiDefinition::new(
        s.group.id.clone(),
        "getUser",
        "GET",
        "/c",
        s.backend.id.clone(),
    )
    .unwrap();
    assert!(taken(s.cp.create_api(dup.clone()).await));
    // the same name in another group is fine
    let mut elsewhere = dup.clone();
    elsewhere.group_id = other.id.clone();
    let elsewhere = s.cp.create_api(elsewhere).await.unwrap();
    // rename onto a taken name
    let mut renamed = b.clone();
    renamed.name = "getUser".into();
    assert!(taken(s.cp.update_api(renamed).await));
    // an update that keeps its own name is not a duplicate of itself
    let mut same = a.clone();
    same.description = Some("still getUser".into());
    s.cp.update_api(same).await.unwrap();
    // move into a group where the name is taken
    let mut moved = elsewhere.clone();
    moved.group_id = s.group.id.clone();
    assert!(taken(s.cp.update_api(moved).await));
    // renaming frees the old name, and takes the new one
    let mut a2 = a.clone();
    a2.name = "getUserV2".into();
    s.cp.update_api(a2).await.unwrap();
    let again = ApiDefinition::new(
        s.group.id.clone(),
        "getUser",
        "GET",
        "/c2",
        s.backend.id.clone(),
    )
    .unwrap();
    let again = s.cp.create_api(again).await.unwrap();
    let mut onto = b.clone();
    onto.name = "getUserV2".into();
    assert!(taken(s.cp.update_api(onto).await));
    // deleting frees the name
    s.cp.delete_api(&b.id).await.unwrap();
    let reuse = ApiDefinition::new(
        s.group.id.clone(),
        "getOrder",
        "GET",
        "/d",
        s.backend.id.clone(),
    )
    .unwrap();
    s.cp.create_api(reuse).await.unwrap();
    // moving out of a group frees the name there
    let mut out = again.clone();
    out.group_id = other.id.clone();
    out.name = "getUserMoved".into();
    s.cp.update_api(out).await.unwrap();
    let again = ApiDefinition::new(
        s.group.id.clone(),
        "getUser",
        "GET",
        "/e",
        s.backend.id.clone(),
    )
    .unwrap();
    s.cp.create_api(again).await.unwrap();

    // The index is rebuilt from the store: the same refusals after a reload.
    let store = MemoryStore::new();
    let records = s.cp.records().await;
    store
        .commit(
            records
                .into_iter()
                .map(|r| stagegate::store::Write::put(r.value, stagegate::store::Expect::Any))
                .collect(),
        )
        .await
        .unwrap();
    let reloaded = ControlPlane::open(store).await.unwrap();
    let dup2 = ApiDefinition::new(
        s.group.id.clone(),
        "getUserV2",
        "GET",
        "/f",
        s.backend.id.clone(),
    )
    .unwrap();
    assert!(taken(reloaded.create_api(dup2).await));
    let free = ApiDefinition::new(
        s.group.id.clone(),
        "getUserV3",
        "GET",
        "/f",
        s.backend.id.clone(),
    )
    .unwrap();
    reloaded.create_api(free).await.unwrap();
}

/// Two nodes on one store: a node that commits while another node's commit is not yet applied
/// here applies that one first, so it is not skipped forever.
#[tokio::test]
async fn a_commit_applies_the_changes_of_other_nodes_it_missed_first() {
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let a = ControlPlane::open_shared(store.clone()).await.unwrap();
    let b = ControlPlane::open_shared(store.clone()).await.unwrap();
    let x = a
        .create_backend(NewBackend::new("fromNodeA", BackendKind::Mock))
        .await
        .unwrap();
    // b has not followed: its own commit gets revision 2 while it has applied nothing
    let y = b
        .create_backend(NewBackend::new("fromNodeB", BackendKind::Mock))
        .await
        .unwrap();
    let mut names: Vec<String> = b.backends().await.into_iter().map(|b| b.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["fromNodeA", "fromNodeB"],
        "b applied a's commit before its own"
    );
    assert_eq!(b.freshness().await.applied_revision, 2);
    assert_eq!(b.follow().await.unwrap(), 0, "nothing is left to follow");
    let mut loaded = store.load().await.unwrap().records;
    loaded.sort_by_key(|r| r.value.key());
    assert_eq!(
        b.records().await,
        loaded,
        "b holds exactly the store's records and versions"
    );
    // and a, following, sees b's
    a.follow().await.unwrap();
    assert_eq!(a.records().await, loaded);
    assert!(a.backend(&y.id).await.is_ok() && b.backend(&x.id).await.is_ok());
}

/// A node further behind than the store's retention window gets `Compacted` from the feed and
/// reloads the records, ending with exactly the writer's state.
#[tokio::test]
async fn a_follower_behind_the_retention_window_resyncs_from_the_records() {
    let store = Arc::new(MemoryStore::new().with_log_retention(2));
    let writer = ControlPlane::open_shared(store.clone()).await.unwrap();
    let reader = ControlPlane::open_shared(store.clone()).await.unwrap();
    let b = writer
        .create_backend(NewBackend::new("doomed", BackendKind::Mock))
        .await
        .unwrap();
    reader.follow().await.unwrap();
    writer.delete_backend(&b.id).await.unwrap();
    for i in 0..6 {
        writer
            .create_backend(NewBackend::new(format!("window{i}"), BackendKind::Mock))
            .await
            .unwrap();
    }
    assert!(
        matches!(
            store.changes_since(1, 100).await,
            Err(stagegate::store::StoreError::Compacted(1))
        ),
        "the feed was compacted behind the window"
    );
    assert_eq!(store.changes_since(6, 100).await.unwrap().len(), 2);
    reader.follow().await.unwrap();
    assert_eq!(reader.records().await, writer.records().await);
    assert!(
        reader.backend(&b.id).await.is_err(),
        "the delete was not missed"
    );
    assert_eq!(reader.freshness().await.behind(), Some(0));
}

/// The follower task wakes on the store's signal (long before its poll interval), records
/// what it applied for health checks, and stops when told.
#[tokio::test]
async fn the_follower_applies_changes_when_signalled_and_reports_freshness() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let writer = ControlPlane::open_shared(store.clone()).await.unwrap();
    let reader = Arc::new(ControlPlane::open_shared(store.clone()).await.unwrap());
    let follower = reader.spawn_follower(std::time::Duration::from_secs(3600));
    assert!(follower.is_running());
    let before = std::time::SystemTime::now();
    writer
        .create_backend(NewBackend::new("signalled", BackendKind::Mock))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while reader.freshness().await.applied_revision < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the follower applied the change without waiting for its poll");
    let f = reader.freshness().await;
    assert!(f.store_reachable && f.store_error.is_none() && f.follow_error.is_none());
    assert_eq!(
        (f.applied_revision, f.store_revision, f.behind()),
        (1, Some(1), Some(0))
    );
    assert!(f.last_applied_at >= before);
    assert!(f.since_applied < std::time::Duration::from_secs(5));
    assert!(!f.is_stale(std::time::Duration::ZERO));
    assert_eq!(reader.records().await, writer.records().await);
    follower.stop().await;
    writer
        .create_backend(NewBackend::new("unseen", BackendKind::Mock))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let f = reader.freshness().await;
    assert_eq!(
        f.behind(),
        Some(1),
        "a stopped follower applies nothing more"
    );
    assert!(f.is_stale(std::time::Duration::ZERO));
    assert!(!f.is_stale(std::time::Duration::from_secs(3600)));
}

/// The deployment history keeps the newest N per API and stage; a rollback to a pruned version
/// is refused saying so.
#[tokio::test]
async fn old_deployments_are_pruned_and_rolling_back_to_one_is_refused_clearly() {
    let mut s = setup().await;
    s.cp = s.cp.with_deployment_history(3);
    s.cp.set_stage_definition(&s.backend.id, Stage::TEST, http("http://127.0.0.1:9001"))
        .await
        .unwrap();
    let a = api(&s, "prunedApi", "/v1/pruned").await;
    let mut versions = Vec::new();
    for i in 0..6 {
        let d =
            s.cp.publish(&a.id, Stage::TEST, Some(format!("v{i}")))
                .await
                .unwrap();
        versions.push(d.version);
    }
    let hist = s.cp.deployments(&a.id).await.unwrap();
    let kept: Vec<&str> = hist.iter().map(|d| d.version.as_str()).collect();
    assert_eq!(
        kept,
        versions[3..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let stored =
        s.cp.records()
            .await
            .into_iter()
            .filter(|r| matches!(r.value, stagegate::store::Entity::Deployment(_)))
            .count();
    assert_eq!(stored, 3, "pruned deployments are deleted from the store");
    let err =
        s.cp.rollback(&a.id, &Stage::TEST, &versions[0])
            .await
            .unwrap_err();
    assert!(matches!(err, ControlError::Refused(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("pruned") && msg.contains("newest 3"), "{msg}");
    s.cp.rollback(&a.id, &Stage::TEST, &versions[3])
        .await
        .unwrap();
    assert_eq!(
        s.cp.published(&a.id, &Stage::TEST).await.unwrap().version,
        versions[3]
    );
    // publishing after a rollback keeps the newest three, the new one included
    let d = s.cp.publish(&a.id, Stage::TEST, None).await.unwrap();
    let hist = s.cp.deployments(&a.id).await.unwrap();
    assert_eq!(hist.len(), 3);
    assert_eq!(hist.last().unwrap().version, d.version);
    assert!(hist.last().unwrap().live);
    let unknown =
        s.cp.rollback(&a.id, &Stage::TEST, "99990101000000000")
            .await;
    assert!(matches!(unknown, Err(ControlError::NotFound { .. })));
}
