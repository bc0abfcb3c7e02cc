//! Path confinement and the headers that choose and describe a request (issue 20, items 1 and
//! 15 a, b, d), end to end on loopback: a hostile client, the gateway, and an upstream that
//! records the path it received.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Fx, fx, serve, upstream};
use stagegate::{
    control::NewGroup,
    model::{
        BackendKind, HttpDefinition, MockDefinition, ParamLocation, RequestParameter, Stage,
        StageDefinition, SystemParam, SystemParameter,
    },
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a raw HTTP/1.1 exchange answered.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `head` as it is (no client library in between to normalise the target), with
/// `Connection: close`, and reads the whole answer.
async fn raw(addr: SocketAddr, head: &str) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the gateway answers")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // the upstream's JSON answers are small: chunked framing, if any, is one chunk
    let body = match body.split_once("\r\n") {
        Some((size, rest)) if u64::from_str_radix(size, 16).is_ok() && !body.starts_with('{') => {
            rest.split("\r\n").next().unwrap_or("").to_owned()
        }
        _ => body.to_owned(),
    };
    Raw {
        status,
        head: head.to_owned(),
        body,
    }
}

async fn get(addr: SocketAddr, target: &str) -> Raw {
    raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nX-Ca-Stage: TEST\r\n"),
    )
    .await
}

/// An HTTP backend (the recording upstream) with the APIs the report used: `/p/*` passed
/// through, `/b/*` onto backend path `/p/*`, `/f/[f]` onto `/p/[f]`, and `/k/[key]` whose
/// parameter allows encoded slashes, onto `/files/[key]`.
async fn gateway() -> (Fx, SocketAddr) {
    let fx = fx(BackendKind::Http).await;
    let up = upstream("u").await;
    fx.define(
        Stage::TEST,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let p = fx.api("passAll", "GET", "/p/*", |_| {}).await;
    let b = fx
        .api("mapAll", "GET", "/b/*", |a| {
            a.backend.path = Some("/p/*".into())
        })
        .await;
    let f = fx
        .api("oneFile", "GET", "/f/[f]", |a| {
            a.backend.path = Some("/p/[f]".into());
        })
        .await;
    let k = fx
        .api("slashKey", "GET", "/k/[key]", |a| {
            a.backend.path = Some("/files/[key]".into());
            a.parameters.push(RequestParameter {
                name: "key".into(),
                location: ParamLocation::Path,
                allow_encoded_slash: true,
                ..Default::default()
            });
        })
        .await;
    let kp = fx
        .api("slashKeyPass", "GET", "/kp/[key]", |a| {
            a.parameters.push(RequestParameter {
                name: "key".into(),
                location: ParamLocation::Path,
                allow_encoded_slash: true,
                ..Default::default()
            });
        })
        .await;
    for api in [p, b, f, k, kp] {
        fx.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
    }
    let addr = serve(fx.layer().standalone()).await;
    (fx, addr)
}

fn assert_refused(r: &Raw, target: &str) {
    assert_eq!(r.status, 400, "{target}: {}", r.head);
    assert_eq!(r.header("x-ca-error-code"), Some("I400PA"), "{target}");
    assert!(
        r.header("x-upstream").is_none(),
        "{target} reached the upstream"
    );
}

#[tokio::test]
async fn dot_segments_never_reach_the_backend() {
    let (_fx, gw) = gateway().await;
    for target in [
        // the report: `curl --path-as-is $GW/p/../admin/secret.txt`
        "/p/../admin/secret.txt",
        "/p/./../admin/secret.txt",
        "/p/%2e%2e/admin/secret.txt",
        "/p/%2E%2E/admin/secret.txt",
        "/p/%2e%2E/admin/secret.txt",
        "/p/.%2e/admin/secret.txt",
        "/p/%2e./admin/secret.txt",
        "/p/..",
        "/b/%2e%2e/admin/secret.txt",
        "/b/../admin/secret.txt",
        "/f/..%2fadmin%2fsecret.txt",
        "/f/..%2Fadmin%2Fsecret.txt",
        "/f/%2e%2e",
        "/k/..%2fadmin%2fsecret.txt",
        "/k/a%2F..%2F..%2Fadmin",
        "/kp/..%2fadmin",
        "/p/..;/admin/secret.txt",
        // on a path no API serves, too: refused before routing
        "/nothing/../p/x",
    ] {
        assert_refused(&get(gw, target).await, target);
    }
    let r = get(gw, "/p/../admin/secret.txt").await;
    assert_eq!(r.json()["code"], "I400PA");
    assert_eq!(
        r.header("x-ca-error-message"),
        Some("Invalid Request Path `dot segment`")
    );
}

#[tokio::test]
async fn separators_inside_a_segment_are_refused_unless_a_parameter_allows_them() {
    let (_fx, gw) = gateway().await;
    for target in [
        "/p/a%2Fb", "/p/a%2fb", "/p/a%5Cb", "/p/a%5cb", "/p/a\\b", "/b/a%2Fb", "/f/a%2Fb",
        "/f/a%5cb", "/k/a\\b",
    ] {
        assert_refused(&get(gw, target).await, target);
    }
    // the opt-in: forwarded still encoded, one segment upstream
    let r = get(gw, "/k/a%2fb%5Cc").await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["path"], "/files/a%2Fb%5Cc");
    let r = get(gw, "/kp/a%2Fb").await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["path"], "/kp/a%2Fb");
}

#[tokio::test]
async fn the_upstream_receives_the_exact_path_that_was_checked() {
    let (_fx, gw) = gateway().await;
    for (target, forwarded) in [
        ("/p/public.txt", "/p/public.txt"),
        (
            "/p/v1.2/.hidden/x..y/%2e%2e%2e",
            "/p/v1.2/.hidden/x..y/%2e%2e%2e",
        ),
        ("/p/a%20b/c", "/p/a%20b/c"),
        ("/b/public.txt", "/p/public.txt"),
        ("/b/dir/file.txt", "/p/dir/file.txt"),
        ("/f/public.txt", "/p/public.txt"),
    ] {
        let r = get(gw, target).await;
        assert_eq!(r.status, 200, "{target}: {}", r.head);
        assert_eq!(r.header("x-upstream"), Some("u"), "{target}");
        assert_eq!(r.json()["path"], forwarded, "{target}");
    }
}

#[tokio::test]
async fn allow_encoded_slash_is_for_path_parameters_only() {
    let fx = fx(BackendKind::Mock).await;
    let mut api = stagegate::model::ApiDefinition::new(
        fx.group.id.clone(),
        "queryKey",
        "GET",
        "/q",
        fx.backend.id.clone(),
    )
    .unwrap();
    api.parameters.push(RequestParameter {
        name: "key".into(),
        location: ParamLocation::Query,
        allow_encoded_slash: true,
        ..Default::default()
    });
    let err = fx.cp.create_api(api).await.unwrap_err();
    assert!(err.to_string().contains("PATH parameters only"), "{err}");
    // documents stored before the option read as `false`, and `false` is not written out
    let p: RequestParameter = serde_json::from_str(r#"{"name":"key","location":"PATH"}"#).unwrap();
    assert!(!p.allow_encoded_slash);
    assert!(
        !serde_json::to_string(&p)
            .unwrap()
            .contains("allow_encoded_slash")
    );
}

fn mock(body: &str) -> StageDefinition {
    StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: body.into(),
    })
}

#[tokio::test]
async fn an_absolute_form_target_chooses_the_group_over_host() {
    let fx = fx(BackendKind::Mock).await;
    fx.define(Stage::TEST, mock("group a")).await;
    let b_backend = fx
        .cp
        .create_backend(stagegate::control::NewBackend::new(
            "backendTwo",
            BackendKind::Mock,
        ))
        .await
        .unwrap();
    fx.cp
        .set_stage_definition(&b_backend.id, Stage::TEST, mock("group b"))
        .await
        .unwrap();
    let a = fx
        .cp
        .update_group(
            &fx.group.id,
            NewGroup {
                name: fx.group.name.clone(),
                domains: vec!["a.example.com".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = fx
        .cp
        .create_group(NewGroup {
            name: "group_two".into(),
            domains: vec!["b.example.com".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for (group, backend, name) in [
        (&a.id, &fx.backend.id, "whoA"),
        (&b.id, &b_backend.id, "whoB"),
    ] {
        let api = stagegate::model::ApiDefinition::new(
            group.clone(),
            name,
            "GET",
            "/who",
            backend.clone(),
        )
        .unwrap()
        .anonymous();
        let api = fx.cp.create_api(api).await.unwrap();
        fx.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
    }
    let gw = serve(fx.layer().standalone()).await;
    let r = raw(
        gw,
        "GET /who HTTP/1.1\r\nHost: a.example.com\r\nX-Ca-Stage: TEST\r\n",
    )
    .await;
    assert_eq!(r.body, "group a");
    // RFC 9112 §3.2.2: the target's authority wins, `Host` is ignored
    let r = raw(
        gw,
        "GET http://b.example.com/who HTTP/1.1\r\nHost: a.example.com\r\nX-Ca-Stage: TEST\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, "group b");
    let r = raw(
        gw,
        "GET http://user:pw@b.example.com:8080/who HTTP/1.1\r\nHost: a.example.com\r\nX-Ca-Stage: TEST\r\n",
    )
    .await;
    assert_eq!(r.body, "group b");
}

#[tokio::test]
async fn forwarded_for_is_extended_and_never_the_client_address() {
    let fx = fx(BackendKind::Http).await;
    let up = upstream("u").await;
    fx.define(
        Stage::TEST,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let api = fx
        .api("whoCalls", "GET", "/ip", |a| {
            a.system_parameters.push(SystemParameter {
                name: SystemParam::CaClientIp,
                backend_name: "x-client-ip".into(),
                location: ParamLocation::Head,
            });
            a.system_parameters.push(SystemParameter {
                name: SystemParam::CaDomain,
                backend_name: "x-domain".into(),
                location: ParamLocation::Head,
            });
        })
        .await;
    fx.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
    let gw = serve(fx.layer().standalone()).await;
    let r = raw(
        gw,
        "GET http://api.example.com/ip HTTP/1.1\r\nHost: other.example.com\r\nX-Ca-Stage: TEST\r\nX-Forwarded-For: 6.6.6.6\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(headers["x-client-ip"], "127.0.0.1");
    // the host the request was for is the target's authority, for the backend too
    assert_eq!(headers["x-domain"], "api.example.com");
    assert_eq!(headers["x-forwarded-host"], "api.example.com");
}

/// An upstream that answers every request with `head` (a status line and headers) and a
/// two-byte body, written raw.
async fn raw_upstream(head: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let head = head.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("{head}Content-Length: 2\r\n\r\nok").as_bytes())
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_oversized_upstream_response_header_is_a_d502_error() {
    let fx = fx(BackendKind::Http).await;
    let api = fx.api("bigHeaders", "GET", "/big", |_| {}).await;
    // over the default 64 KiB (hyper alone took up to about 400 KiB)
    let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n", "a".repeat(100 << 10));
    let many: String = std::iter::once("HTTP/1.1 200 OK\r\n".to_owned())
        .chain((0..200).map(|i| format!("X-H{i}: v\r\n")))
        .collect();
    let fine = format!(
        "HTTP/1.1 200 OK\r\nX-Small: 1\r\nX-Fits: {}\r\n",
        "b".repeat(40 << 10)
    );
    let mut published = false;
    for (head, over) in [(huge.clone(), true), (many, true), (fine, false)] {
        let up = raw_upstream(head).await;
        fx.define(
            Stage::TEST,
            StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
        )
        .await;
        if !published {
            fx.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
            published = true;
        }
        let gw = serve(fx.layer().standalone()).await;
        let r = get(gw, "/big").await;
        if over {
            assert_eq!(r.status, 502, "{}", r.head);
            let code = r.header("x-ca-error-code").unwrap_or_default();
            assert!(code.starts_with("D502"), "{code}");
        } else {
            assert_eq!(r.status, 200, "{}", r.head);
            assert_eq!(r.header("x-small"), Some("1"));
        }
    }
    // the message says what went wrong
    let up = raw_upstream(huge).await;
    fx.define(
        Stage::TEST,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let r = get(serve(fx.layer().standalone()).await, "/big").await;
    assert_eq!(r.header("x-ca-error-code"), Some("D502FC"));
    assert_eq!(
        r.header("x-ca-error-message"),
        Some("Backend service response header too large")
    );
}
