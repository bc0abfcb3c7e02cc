//! APP authentication through the data plane: every request shape the real clients send is
//! accepted, and every forgery, replay and missing grant is refused with its own code.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Got, oneshot};
use http::{HeaderName, Request};
use http_body_util::Full;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane, GatewayLayer, GatewayService,
    auth::Signer,
    control::{AppPatch, NewApp, NewBackend, NewGroup},
    model::{
        ApiDefinition, App, AppCodeMode, BackendKind, MockDefinition, SignatureMethod, Stage,
        StageDefinition,
    },
};

struct Env {
    cp: Arc<ControlPlane>,
    svc: GatewayService,
    app: App,
    apis: Vec<ApiDefinition>,
}

async fn env() -> Env {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let b = cp
        .create_backend(NewBackend::new("authMock", BackendKind::Mock))
        .await
        .unwrap();
    for s in [Stage::TEST, Stage::RELEASE] {
        let def = StageDefinition::Mock(MockDefinition {
            status: 200,
            headers: Default::default(),
            body: format!("ok {s}"),
        });
        cp.set_stage_definition(&b.id, s, def).await.unwrap();
    }
    let g = cp
        .create_group(NewGroup {
            name: "auth_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut apis = Vec::new();
    for (name, method, path, f) in [
        (
            "signedGet",
            "GET",
            "/s/[id]",
            (|_: &mut ApiDefinition| {}) as fn(&mut ApiDefinition),
        ),
        ("signedPost", "POST", "/p", |_| {}),
        ("shaOneToo", "GET", "/sha1", |a| {
            a.signature_methods = vec![SignatureMethod::HmacSha256, SignatureMethod::HmacSha1]
        }),
        ("codeHeader", "GET", "/code/h", |a| {
            a.appcode_auth = AppCodeMode::Header
        }),
        ("codeQuery", "GET", "/code/q", |a| {
            a.appcode_auth = AppCodeMode::HeaderQuery
        }),
        ("nonceForced", "GET", "/nonce", |a| {
            a.force_nonce_check = true
        }),
    ] {
        let mut a = ApiDefinition::new(g.id.clone(), name, method, path, b.id.clone()).unwrap();
        f(&mut a);
        let a = cp.create_api(a).await.unwrap();
        cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
        cp.publish(&a.id, Stage::TEST, None).await.unwrap();
        apis.push(a);
    }
    let app = cp
        .create_app(NewApp {
            name: "signing_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for a in &apis {
        cp.authorize(&app.id, &a.id, Stage::RELEASE, None)
            .await
            .unwrap();
    }
    let svc = GatewayLayer::new(cp.snapshot_handle()).standalone();
    Env { cp, svc, app, apis }
}

impl Env {
    fn signer(&self) -> Signer {
        Signer::new(
            &self.app.keys[0].app_key,
            self.app.keys[0].app_secret.clone(),
        )
        .unwrap()
    }
    async fn send(&self, req: Request<Full<Bytes>>) -> Got {
        oneshot(self.svc.clone(), req).await
    }
}

fn req(method: &str, uri: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn code(g: &Got) -> Option<&str> {
    g.header("x-ca-error-code")
}

#[tokio::test]
async fn every_client_shape_is_accepted() {
    let e = env().await;
    // node SDK style: lower-case names, stage signed
    let mut r = req("GET", "/s/1?b=2&a=1&empty=", b"");
    e.signer().with_stage(Stage::RELEASE).sign(&mut r, b"");
    let got = e.send(r).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "ok RELEASE"),
        "{:?}",
        got.header("x-ca-error-message")
    );

    // Java demo style: mixed-case names, unsorted list, signed by hand with the public helpers
    let mut r = req("GET", "/s/2?city=%E6%9D%AD%E5%B7%9E&q=a+b", b"");
    let ts = jiff::Timestamp::now().as_millisecond().to_string();
    {
        let h = r.headers_mut();
        h.insert("Accept", "application/json".parse().unwrap());
        h.insert("X-Ca-Key", e.app.keys[0].app_key.parse().unwrap());
        h.insert("X-Ca-Timestamp", ts.parse().unwrap());
        h.insert(
            "X-Ca-Nonce",
            "5e8d6c02-1111-4c9a-9d1e-123456789abc".parse().unwrap(),
        );
        h.insert(
            "X-Ca-Signature-Headers",
            "X-Ca-Timestamp,X-Ca-Nonce,X-Ca-Key".parse().unwrap(),
        );
    }
    let sts = stagegate::auth::string_to_sign(r.method(), r.uri(), r.headers(), None);
    assert!(
        sts.contains("X-Ca-Key:"),
        "names are kept as the client spelled them"
    );
    assert!(
        sts.ends_with("/s/2?city=杭州&q=a b"),
        "decoded query, `+` is a space: {sts}"
    );
    let sig = stagegate::auth::sign(
        SignatureMethod::HmacSha256,
        e.app.keys[0].app_secret.expose().as_bytes(),
        &sts,
    );
    r.headers_mut()
        .insert("X-Ca-Signature", sig.parse().unwrap());
    let got = e.send(r).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));

    // form post: form fields are signed with the query
    let body: &'static [u8] = b"username=xiaoming&password=123456789";
    let mut r = req("POST", "/p?param1=test", body);
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8"
            .parse()
            .unwrap(),
    );
    let signed = e.signer().sign(&mut r, body);
    assert!(
        signed
            .string_to_sign
            .ends_with("/p?param1=test&password=123456789&username=xiaoming")
    );
    assert_eq!(e.send(r).await.status, 200);

    // JSON and octet-stream with Content-MD5
    for ct in [
        "application/json; charset=utf-8",
        "application/octet-stream",
    ] {
        let body: &'static [u8] = b"{\"name\":\"test\"}";
        let mut r = req("POST", "/p", body);
        r.headers_mut().insert("content-type", ct.parse().unwrap());
        e.signer().sign(&mut r, body);
        assert!(r.headers().contains_key("content-md5"));
        let got = e.send(r).await;
        assert_eq!(
            got.status,
            200,
            "{ct}: {:?}",
            got.header("x-ca-error-message")
        );
    }

    // Date without X-Ca-Timestamp (the IoT client)
    let mut r = req("GET", "/s/3", b"");
    {
        let h = r.headers_mut();
        h.insert("accept", "application/json".parse().unwrap());
        h.insert("date", "Wed, 09 May 2018 13:30:29 GMT".parse().unwrap());
        h.insert("x-ca-key", e.app.keys[0].app_key.parse().unwrap());
        h.insert("x-ca-signature-headers", "x-ca-key".parse().unwrap());
    }
    let sts = stagegate::auth::string_to_sign(r.method(), r.uri(), r.headers(), None);
    let sig = stagegate::auth::sign(
        SignatureMethod::HmacSha256,
        e.app.keys[0].app_secret.expose().as_bytes(),
        &sts,
    );
    r.headers_mut()
        .insert("x-ca-signature", sig.parse().unwrap());
    assert_eq!(e.send(r).await.status, 200);

    // HmacSHA1 where the API allows it
    let mut r = req("GET", "/sha1", b"");
    e.signer()
        .with_method(SignatureMethod::HmacSha1)
        .sign(&mut r, b"");
    assert_eq!(e.send(r).await.status, 200);
}

#[tokio::test]
async fn forgeries_are_refused_with_their_own_codes() {
    let e = env().await;
    // tampered signature: the server's string-to-sign is shown with `#` for newlines
    let mut r = req("GET", "/s/1?a=1", b"");
    e.signer().sign(&mut r, b"");
    let sig = r.headers()["x-ca-signature"].to_str().unwrap().to_owned();
    let mut bad = sig.into_bytes();
    bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
    r.headers_mut().insert(
        "x-ca-signature",
        String::from_utf8(bad).unwrap().parse().unwrap(),
    );
    let got = e.send(r).await;
    assert_eq!((got.status, code(&got)), (403, Some("A403IS")));
    let msg = got.header("x-ca-error-message").unwrap();
    assert!(
        msg.starts_with("Invalid Signature, Server StringToSign:`GET#application/json#"),
        "{msg}"
    );

    // wrong secret, unknown key
    let mut r = req("GET", "/s/1", b"");
    Signer::new(&e.app.keys[0].app_key, "not-the-secret")
        .unwrap()
        .sign(&mut r, b"");
    assert_eq!(code(&e.send(r).await), Some("A403IS"));
    let mut r = req("GET", "/s/1", b"");
    Signer::new("99999999", "whatever-secret")
        .unwrap()
        .sign(&mut r, b"");
    assert_eq!(code(&e.send(r).await), Some("A400IK"));

    // timestamps 20 minutes old or ahead
    let now = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap();
    for ts in [now - 20 * 60 * 1000, now + 20 * 60 * 1000] {
        let mut r = req("GET", "/s/1", b"");
        e.signer()
            .sign_with(&mut r, b"", ts, &format!("nonce-{ts}"))
            .unwrap();
        let got = e.send(r).await;
        assert_eq!(
            code(&got),
            Some("A400TE"),
            "{:?}",
            got.header("x-ca-error-message")
        );
    }

    // a body, a form field or a signed header changed after signing
    let body: &'static [u8] = b"{\"n\":1}";
    let mut r = req("POST", "/p", body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    e.signer().sign(&mut r, body);
    let (parts, _) = r.into_parts();
    let got = e
        .send(Request::from_parts(
            parts,
            Full::new(Bytes::from_static(b"{\"n\":2}")),
        ))
        .await;
    assert_eq!(code(&got), Some("A400CM"));
    let mut r = req("POST", "/p", b"amount=1");
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    e.signer().sign(&mut r, b"amount=1");
    let (parts, _) = r.into_parts();
    let got = e
        .send(Request::from_parts(
            parts,
            Full::new(Bytes::from_static(b"amount=1000")),
        ))
        .await;
    assert_eq!(code(&got), Some("A403IS"));
    let mut r = req("GET", "/s/1", b"");
    e.signer()
        .with_stage(Stage::RELEASE)
        .with_signed_header(HeaderName::from_static("x-custom"))
        .sign(&mut r, b"");
    r.headers_mut()
        .insert("x-custom", "changed".parse().unwrap());
    assert_eq!(code(&e.send(r).await), Some("A403IS"));

    // SHA1 where it is not allowed; a foreign signing scheme; nothing at all
    let mut r = req("GET", "/s/1", b"");
    e.signer()
        .with_method(SignatureMethod::HmacSha1)
        .sign(&mut r, b"");
    assert_eq!(code(&e.send(r).await), Some("A400SM"));
    let mut r = req("GET", "/s/1", b"");
    r.headers_mut().insert(
        "authorization",
        "SDK-HMAC-SHA256 Access=abc, SignedHeaders=host, Signature=00"
            .parse()
            .unwrap(),
    );
    r.headers_mut()
        .insert("x-sdk-date", "20260101T000000Z".parse().unwrap());
    assert_eq!(code(&e.send(r).await), Some("A400MA"));
    assert_eq!(code(&e.send(req("GET", "/s/1", b"")).await), Some("A400MA"));

    // a forced nonce must be there
    let mut r = req("GET", "/nonce", b"");
    e.signer().sign(&mut r, b"");
    r.headers_mut().remove("x-ca-nonce");
    assert_ne!(e.send(r).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_nonce_is_accepted_exactly_once() {
    let e = env().await;
    let mut r = req("GET", "/s/7", b"");
    e.signer().sign(&mut r, b"");
    let (parts, _) = r.into_parts();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (svc, parts) = (e.svc.clone(), parts.clone());
        tasks.push(tokio::spawn(async move {
            oneshot(svc, Request::from_parts(parts, Full::<Bytes>::default())).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let got = t.await.unwrap();
        if got.status == 200 {
            ok += 1;
        } else {
            assert_eq!(code(&got), Some("A400NU"));
        }
    }
    assert_eq!(ok, 1, "exactly one of six identical requests is accepted");
}

#[tokio::test]
async fn appcodes_follow_the_api_mode() {
    let e = env().await;
    let code_value = e.app.codes[0].expose().to_owned();
    let with_header = |path: &str, c: &str| {
        Request::get(path)
            .header("authorization", format!("APPCODE {c}"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    assert_eq!(
        e.send(with_header("/code/h", &code_value)).await.status,
        200
    );
    assert_eq!(
        code(
            &e.send(with_header("/code/h", "0123456789abcdef0123456789abcdef"))
                .await
        ),
        Some("A401AC")
    );
    assert_eq!(
        code(&e.send(with_header("/s/1", &code_value)).await),
        Some("A400AC"),
        "DISABLE refuses AppCodes"
    );
    let q = |path: &str| {
        Request::get(format!("{path}?AppCode={code_value}"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    assert_eq!(
        e.send(q("/code/q")).await.status,
        200,
        "HEADER_QUERY takes the query parameter"
    );
    assert_eq!(
        code(&e.send(q("/code/h")).await),
        Some("A400MA"),
        "HEADER ignores it"
    );
    // a new AppCode works on the next request, a removed one stops
    let extra = e.cp.add_app_code(&e.app.id, None).await.unwrap();
    assert_eq!(
        e.send(with_header("/code/h", extra.expose())).await.status,
        200
    );
    e.cp.remove_app_code(&e.app.id, extra.expose())
        .await
        .unwrap();
    assert_eq!(
        code(&e.send(with_header("/code/h", extra.expose())).await),
        Some("A401AC")
    );
}

#[tokio::test]
async fn grants_stages_expiry_disabled_apps_and_rotation() {
    let e = env().await;
    let signed = |stage: Option<&str>, signer: Signer| {
        let mut r = req("GET", "/s/1", b"");
        let signer = match stage {
            Some(s) => signer.with_stage(Stage::parse(s).unwrap()),
            None => signer,
        };
        signer.sign(&mut r, b"");
        r
    };
    // authorized in RELEASE only
    assert_eq!(e.send(signed(None, e.signer())).await.status, 200);
    let got = e.send(signed(Some("TEST"), e.signer())).await;
    assert_eq!(
        (got.status, code(&got)),
        (403, Some("A403NA")),
        "another stage's grant does not count"
    );
    // an expiring grant
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(300);
    e.cp.authorize(&e.app.id, &e.apis[0].id, Stage::TEST, Some(soon))
        .await
        .unwrap();
    assert_eq!(e.send(signed(Some("TEST"), e.signer())).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        code(&e.send(signed(Some("TEST"), e.signer())).await),
        Some("A403EP")
    );
    // rotating the secret: the old one fails on the next request, the new one works
    let old = e.signer();
    let pair =
        e.cp.rotate_app_secret(&e.app.id, &e.app.keys[0].app_key, None)
            .await
            .unwrap();
    assert_eq!(code(&e.send(signed(None, old)).await), Some("A403IS"));
    let new = Signer::new(&pair.app_key, pair.app_secret.clone()).unwrap();
    assert_eq!(e.send(signed(None, new.clone())).await.status, 200);
    // a disabled app
    e.cp.update_app(
        &e.app.id,
        AppPatch {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(code(&e.send(signed(None, new)).await), Some("A403AD"));
}

/// A signing app granted `n` fresh APIs on an HTTP upstream that echoes what it received.
struct HttpEnv {
    cp: Arc<ControlPlane>,
    group: stagegate::model::Group,
    apps: Vec<App>,
}

async fn http_env(apps: usize) -> HttpEnv {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let upstream = common::upstream("echo").await;
    let b = cp
        .create_backend(NewBackend::new("authEcho", BackendKind::Http))
        .await
        .unwrap();
    cp.set_stage_definition(
        &b.id,
        Stage::RELEASE,
        StageDefinition::Http(stagegate::model::HttpDefinition::new(format!(
            "http://{upstream}"
        ))),
    )
    .await
    .unwrap();
    let group = cp
        .create_group(NewGroup {
            name: "echo_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut created = Vec::new();
    for (name, method, path, f) in [
        (
            "echoGet",
            "GET",
            "/e/get",
            (|_: &mut ApiDefinition| {}) as fn(&mut ApiDefinition),
        ),
        ("echoPost", "POST", "/e/post", |_| {}),
        ("echoCode", "GET", "/e/code", |a| {
            a.appcode_auth = AppCodeMode::HeaderQuery
        }),
        ("echoNonce", "GET", "/e/nonce", |a| {
            a.force_nonce_check = true
        }),
        ("echoAnon", "GET", "/e/anon", |a| {
            a.auth = stagegate::model::AuthType::Anonymous
        }),
    ] {
        let mut a = ApiDefinition::new(group.id.clone(), name, method, path, b.id.clone()).unwrap();
        f(&mut a);
        let a = cp.create_api(a).await.unwrap();
        cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
        created.push(a);
    }
    let mut list = Vec::new();
    for i in 0..apps {
        let app = cp
            .create_app(NewApp {
                name: format!("echo_app_{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        for a in &created {
            cp.authorize(&app.id, &a.id, Stage::RELEASE, None)
                .await
                .unwrap();
        }
        list.push(app);
    }
    HttpEnv {
        cp,
        group,
        apps: list,
    }
}

impl HttpEnv {
    fn signer(&self, i: usize) -> Signer {
        signer_of(&self.apps[i])
    }
    fn layer(&self) -> GatewayLayer {
        GatewayLayer::new(self.cp.snapshot_handle())
    }
}

fn signer_of(app: &App) -> Signer {
    Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone()).unwrap()
}

#[tokio::test]
async fn nonces_are_recorded_only_for_requests_that_would_be_served() {
    let e = http_env(1).await;
    // An app with no grant, and a disabled one.
    let mut outsiders = Vec::new();
    for (name, disabled) in [("no_grant_app", false), ("disabled_app", true)] {
        let app =
            e.cp.create_app(NewApp {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        if disabled {
            e.cp.update_app(
                &app.id,
                AppPatch {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        outsiders.push(app);
    }
    let guard = stagegate::auth::MemoryReplayGuard::new()
        .with_max_entries(20)
        .with_max_entries_per_app(20);
    let svc = e
        .layer()
        .with_authenticator(stagegate::layer::AppAuthenticator::new(guard))
        .standalone();
    for app in &outsiders {
        for _ in 0..25 {
            let mut r = req("GET", "/e/get", b"");
            signer_of(app).sign(&mut r, b"");
            let got = oneshot(svc.clone(), r).await;
            assert!(
                matches!(code(&got), Some("A403NA" | "A403AD")),
                "{:?}",
                code(&got)
            );
        }
    }
    // The guard is untouched: the granted app is served.
    let mut r = req("GET", "/e/get", b"");
    e.signer(0).sign(&mut r, b"");
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
}

#[tokio::test]
async fn one_app_cannot_take_more_than_its_share_of_the_replay_guard() {
    let e = http_env(2).await;
    // 8 entries, 2 per app (a quarter, the default share).
    let guard = stagegate::auth::MemoryReplayGuard::new().with_max_entries(8);
    let svc = e
        .layer()
        .with_authenticator(stagegate::layer::AppAuthenticator::new(guard))
        .standalone();
    let send = |i: usize| {
        let svc = svc.clone();
        let mut r = req("GET", "/e/get", b"");
        e.signer(i).sign(&mut r, b"");
        async move { oneshot(svc, r).await }
    };
    assert_eq!(send(0).await.status, 200);
    assert_eq!(send(0).await.status, 200);
    let got = send(0).await;
    assert_eq!(
        (got.status, code(&got)),
        (503, Some("X503BZ")),
        "over its share"
    );
    // Another app keeps working.
    let got = send(1).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
}

#[tokio::test]
async fn the_backend_receives_only_the_signed_query_values() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    // Signed `?a=1`, sent `?a=1&a=2`: real clients sign the first value, so it is accepted,
    // but only that value is forwarded.
    let mut r = req("GET", "/e/get?a=1&b=x", b"");
    e.signer(0).sign(&mut r, b"");
    *r.uri_mut() = "/e/get?a=1&b=x&a=2&%61=3".parse().unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    assert_eq!(got.json()["query"], "a=1&b=x");
    // An anonymous API forwards repeated keys as they came (nothing is signed).
    let got = oneshot(svc.clone(), req("GET", "/e/anon?a=1&a=2", b"")).await;
    assert_eq!(got.json()["query"], "a=1&a=2");
}

#[tokio::test]
async fn a_query_value_cannot_override_a_signed_form_value() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    let body: &'static [u8] = b"amount=1&to=alice";
    let mut r = req("POST", "/e/post", body);
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    e.signer(0).sign(&mut r, body);
    let (parts, _) = r.into_parts();
    let signed = Request::from_parts(parts.clone(), Full::new(Bytes::from_static(body)));
    let mut r = Request::from_parts(parts, Full::new(Bytes::from_static(body)));
    *r.uri_mut() = "/e/post?amount=1000&to=mallory".parse().unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!((got.status, code(&got)), (400, Some("A400PC")));
    let got = oneshot(svc, signed).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
}

#[tokio::test]
async fn a_repeated_stage_header_is_refused() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    // Signed for TEST, a second `X-Ca-Stage: RELEASE` added.
    let mut r = req("GET", "/e/get", b"");
    e.signer(0).with_stage(Stage::TEST).sign(&mut r, b"");
    r.headers_mut()
        .append("x-ca-stage", "RELEASE".parse().unwrap());
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 400, "{:?}", code(&got));
    // Also where nothing is signed: the backend would see both.
    let mut r = req("GET", "/e/anon", b"");
    r.headers_mut()
        .append("x-ca-stage", "RELEASE".parse().unwrap());
    r.headers_mut()
        .append("x-ca-stage", "RELEASE".parse().unwrap());
    let got = oneshot(svc.clone(), r).await;
    assert_eq!((got.status, code(&got)), (400, Some("I400SG")));
    // Any other duplicated X-Ca-* header of a signed request.
    let mut r = req("GET", "/e/get", b"");
    e.signer(0).sign(&mut r, b"");
    let key = r.headers()["x-ca-key"].clone();
    r.headers_mut().append("x-ca-key", key);
    let got = oneshot(svc, r).await;
    assert_eq!((got.status, code(&got)), (400, Some("A400DH")));
}

#[tokio::test]
async fn a_signed_stage_can_be_required() {
    let e = http_env(1).await;
    let strict = e
        .layer()
        .with_authenticator(stagegate::layer::AppAuthenticator::default().with_signed_stage(true))
        .standalone();
    let lax = e.layer().standalone();
    let unsigned_stage = || {
        let mut r = req("GET", "/e/get", b"");
        e.signer(0).sign(&mut r, b"");
        r.headers_mut()
            .insert("x-ca-stage", "RELEASE".parse().unwrap());
        r
    };
    let got = oneshot(strict.clone(), unsigned_stage()).await;
    assert_eq!((got.status, code(&got)), (400, Some("A400UH")));
    assert_eq!(oneshot(lax, unsigned_stage()).await.status, 200);
    let mut r = req("GET", "/e/get", b"");
    e.signer(0).with_stage(Stage::RELEASE).sign(&mut r, b"");
    assert_eq!(oneshot(strict, r).await.status, 200);
}

#[tokio::test]
async fn an_unsigned_nonce_is_refused_and_forced_nonces_need_a_time() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    let app = &e.apps[0];
    let by_hand = |path: &str, list: &str, timestamp: bool| {
        let mut r = req("GET", path, b"");
        {
            let h = r.headers_mut();
            h.insert("x-ca-key", app.keys[0].app_key.parse().unwrap());
            h.insert(
                "x-ca-nonce",
                "b1c0f7a2-3333-4c9a-9d1e-123456789abc".parse().unwrap(),
            );
            if timestamp {
                let ts = jiff::Timestamp::now().as_millisecond().to_string();
                h.insert("x-ca-timestamp", ts.parse().unwrap());
            }
            h.insert("x-ca-signature-headers", list.parse().unwrap());
        }
        let sts = stagegate::auth::string_to_sign(r.method(), r.uri(), r.headers(), None);
        let sig = stagegate::auth::sign(
            SignatureMethod::HmacSha256,
            app.keys[0].app_secret.expose().as_bytes(),
            &sts,
        );
        r.headers_mut()
            .insert("x-ca-signature", sig.parse().unwrap());
        r
    };
    // The nonce is sent but not signed: a replay could swap it for a fresh one.
    let got = oneshot(
        svc.clone(),
        by_hand("/e/get", "x-ca-key,x-ca-timestamp", true),
    )
    .await;
    assert_eq!((got.status, code(&got)), (400, Some("A400UH")));
    // A forced nonce without any time.
    let got = oneshot(
        svc.clone(),
        by_hand("/e/nonce", "x-ca-key,x-ca-nonce", false),
    )
    .await;
    assert_eq!((got.status, code(&got)), (400, Some("I400MH")));
    let got = oneshot(
        svc,
        by_hand("/e/nonce", "x-ca-key,x-ca-nonce,x-ca-timestamp", true),
    )
    .await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
}

#[tokio::test]
async fn appcodes_are_stripped_before_the_backend_unless_the_group_passes_them_on() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    let code_value = e.apps[0].codes[0].expose().to_owned();
    let with_code = |code_value: &str| {
        Request::get(format!("/e/code?x=1&AppCode={code_value}"))
            .header("authorization", format!("APPCODE {code_value}"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let got = oneshot(svc.clone(), with_code(&code_value)).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    let seen = got.json();
    assert_eq!(seen["query"], "x=1", "{seen}");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert!(!seen.to_string().contains(&code_value), "{seen}");

    // The group's option passes it on (the original's FilterAppCodeForBackend off).
    let g =
        e.cp.update_group(
            &e.group.id,
            NewGroup {
                name: e.group.name.clone(),
                pass_appcode_to_backend: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(g.pass_appcode_to_backend);
    let got = oneshot(svc, with_code(&code_value)).await;
    assert_eq!(got.status, 200);
    let seen = got.json();
    assert_eq!(seen["query"], format!("x=1&AppCode={code_value}"));
    assert_eq!(
        seen["headers"]["authorization"],
        format!("APPCODE {code_value}")
    );
}

#[tokio::test]
async fn debug_information_only_for_authorized_callers() {
    let e = http_env(1).await;
    let debug = |mut r: Request<Full<Bytes>>| {
        r.headers_mut()
            .insert("x-ca-request-mode", "debug".parse().unwrap());
        r
    };
    let svc = e.layer().standalone();
    // Anonymous API: not by default.
    let got = oneshot(svc.clone(), debug(req("GET", "/e/anon", b""))).await;
    assert_eq!(got.status, 200);
    assert!(got.header("x-ca-debug-info").is_none());
    // APP API, refused caller: never.
    let got = oneshot(svc.clone(), debug(req("GET", "/e/get", b""))).await;
    assert_eq!(code(&got), Some("A400MA"));
    assert!(got.header("x-ca-debug-info").is_none());
    let mut r = debug(req("GET", "/e/get", b""));
    Signer::new(&e.apps[0].keys[0].app_key, "wrong-secret")
        .unwrap()
        .sign(&mut r, b"");
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(code(&got), Some("A403IS"));
    assert!(got.header("x-ca-debug-info").is_none());
    // APP API, authorized caller: yes.
    let mut r = debug(req("GET", "/e/get", b""));
    e.signer(0).sign(&mut r, b"");
    let got = oneshot(svc, r).await;
    assert_eq!(got.status, 200);
    let info: serde_json::Value =
        serde_json::from_str(got.header("x-ca-debug-info").unwrap()).unwrap();
    assert_eq!(info["Api"], "echoGet");
    // Anonymous API with the operator's option.
    let open = e.layer().with_debug_anonymous(true).standalone();
    let got = oneshot(open, debug(req("GET", "/e/anon", b""))).await;
    assert!(got.header("x-ca-debug-info").is_some());
}

#[tokio::test]
async fn the_backend_receives_only_the_signed_form_values() {
    let e = http_env(1).await;
    let svc = e.layer().standalone();
    // The string-to-sign takes a repeated field's first value: the later ones are dropped.
    let body: &'static [u8] = b"amount=1&to=alice&amount=1000";
    let mut r = req("POST", "/e/post", body);
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    e.signer(0).sign(&mut r, body);
    let got = oneshot(svc, r).await;
    assert_eq!(got.status, 200, "{:?}", got.header("x-ca-error-message"));
    let seen = got.json();
    assert_eq!(seen["body"], "amount=1&to=alice");
    assert_eq!(seen["body_len"], 17);
}
