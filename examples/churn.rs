//! Configuration churn for the load benchmark (`benches/load/churn.sh`): applies changes through
//! the admin API one at a time and measures how long each takes to be visible on the data plane.
//!
//! ```text
//! churn gen  BASE_EXPORT.json APIS GROUPS TOGGLES > import.json
//! churn run  [--admin URL] [--gw URL]... [--token T] [--changes N] [--toggles K]
//!            [--backend ID] [--origin-a URL] [--origin-b URL] [--probe PATH]
//!            [--app ID] [--app-key KEY] [--signed PATH] [--apis N] [--timeout-ms MS]
//!            [--poll-us US]
//! ```
//!
//! `gen` takes an export (`GET /export`) of a gateway holding one published anonymous API
//! named `anon` and adds `APIS` copies of it (ids `bench-api-N`, paths `/gN/aN`, spread over
//! `GROUPS` new groups) plus `TOGGLES` more (ids `bench-toggle-N`, paths `/toggle/N`), all
//! published in RELEASE; the result goes to `POST /import`.
//!
//! `run` cycles through four kinds of change, `N` in all, each waited for on the data plane
//! before the next one starts (one change in flight; every wait bounded by `--timeout-ms`):
//!
//! * `unpublish` / `publish` of a toggle API in RELEASE — live when `GET /toggle/K` answers
//!   404 / 200;
//! * `switch` the backend's TEST or RELEASE definition between `--origin-a` and `--origin-b` —
//!   live when `GET --probe` (with `X-Ca-Stage`) answers the new origin's body;
//! * `rotate` the secret of `--app` — live when a request signed with the new secret passes.
//!
//! With `--gw` given more than once (the nodes of a cluster sharing one store, the changes
//! made through `--admin` on one of them), each change is waited for on every node at once,
//! and a `node=I ...` line per node gives its change-to-live figures. `--poll-us` pauses
//! between two polls of one data plane (default: none, polls back to back): the waiting then
//! costs the nodes little, at the price of that much resolution in change-to-live.
//!
//! After each change it also requests one never-changed API (`/gN/aN`, chosen at random):
//! any 404 there is a spurious 404. Prints one `key=value` summary line per figure.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use stagegate::auth::Signer;

type Http = Client<HttpConnector, Full<Bytes>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => generate(&args[1..]),
        Some("run") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run(&args[1..]));
        }
        _ => {
            eprintln!("usage: churn gen BASE APIS GROUPS TOGGLES | churn run [flags]");
            std::process::exit(2);
        }
    }
}

// ----- gen -----

fn generate(args: &[String]) {
    let [base, apis, groups, toggles] = args else {
        eprintln!("usage: churn gen BASE_EXPORT.json APIS GROUPS TOGGLES");
        std::process::exit(2);
    };
    let apis: usize = apis.parse().expect("APIS");
    let groups: usize = groups.parse::<usize>().expect("GROUPS").max(1);
    let toggles: usize = toggles.parse().expect("TOGGLES");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(base).expect("read base")).expect("json");
    let api = doc["apis"]
        .as_array()
        .expect("apis")
        .iter()
        .find(|a| a["name"] == "anon")
        .expect("an API named anon in the base export")
        .clone();
    let api_id = api["id"].as_str().expect("id").to_owned();
    let group = doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"] == api["group_id"])
        .expect("anon's group")
        .clone();
    let deployment = doc["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .find(|d| d["api_id"] == api_id.as_str() && d["stage"] == "RELEASE")
        .expect("anon deployed in RELEASE")
        .clone();
    let publication = doc["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .find(|p| p["api_id"] == api_id.as_str() && p["stage"] == "RELEASE")
        .expect("anon published in RELEASE")
        .clone();
    // Copies use the backend named `static` when there is one, so that switching the load's
    // backend re-points only the APIs under load, not every copy.
    let backend = doc["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["name"] == "static")
        .and_then(|b| b["id"].as_str())
        .map(str::to_owned);
    let group_ids: Vec<String> = (0..groups).map(|g| format!("bench-group-{g}")).collect();
    {
        let out = doc["groups"].as_array_mut().expect("groups");
        for (g, id) in group_ids.iter().enumerate() {
            let mut v = group.clone();
            v["id"] = json!(id);
            v["name"] = json!(format!("bench_group_{g}"));
            out.push(v);
        }
    }
    let mut add = |id: String, name: String, path: String, group_id: &str| {
        let mut d = deployment.clone();
        replace_api(
            &mut d,
            &api_id,
            &id,
            group_id,
            &path,
            &name,
            backend.as_deref(),
        );
        // The draft is what was published, as after a real publish: the deployment's snapshot
        // (patching a copy of the draft separately left its backend path at `/anon`, so every
        // generated draft differed from its own deployment).
        let a = d["snapshot"].clone();
        let mut p = publication.clone();
        replace_api(
            &mut p,
            &api_id,
            &id,
            group_id,
            &path,
            &name,
            backend.as_deref(),
        );
        doc["apis"].as_array_mut().expect("apis").push(a);
        doc["deployments"].as_array_mut().expect("d").push(d);
        doc["publications"].as_array_mut().expect("p").push(p);
    };
    for i in 0..apis {
        let g = &group_ids[i % groups];
        add(
            format!("bench-api-{i}"),
            format!("bench_api_{i}"),
            format!("/g{}/a{i}", i % groups),
            g,
        );
    }
    let g0 = group["id"].as_str().expect("group id").to_owned();
    for k in 0..toggles {
        add(
            format!("bench-toggle-{k}"),
            format!("bench_toggle_{k}"),
            format!("/toggle/{k}"),
            &g0,
        );
    }
    serde_json::to_writer(std::io::stdout().lock(), &doc).expect("write");
}

/// Rewrites a deployment or publication record of `anon` into one of the copy.
fn replace_api(
    v: &mut Value,
    from: &str,
    to: &str,
    group: &str,
    path: &str,
    name: &str,
    backend: Option<&str>,
) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &*x) {
                    ("api_id" | "id", Value::String(s)) if s == from => *x = json!(to),
                    ("group_id", Value::String(_)) => *x = json!(group),
                    ("path", Value::String(s)) if s == "/anon" => *x = json!(path),
                    ("name", Value::String(s)) if s == "anon" => *x = json!(name),
                    ("backend_id", Value::String(_)) if backend.is_some() => *x = json!(backend),
                    _ => replace_api(x, from, to, group, path, name, backend),
                }
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| replace_api(x, from, to, group, path, name, backend)),
        _ => {}
    }
}

// ----- run -----

struct Opts {
    admin: String,
    gw: String,
    /// Every data plane to wait on (the first is `gw`).
    gws: Vec<String>,
    token: String,
    changes: usize,
    toggles: usize,
    apis: usize,
    groups: usize,
    backend: String,
    origin_a: String,
    origin_b: String,
    body_a: String,
    body_b: String,
    probe: String,
    app: String,
    app_key: String,
    signed: String,
    timeout: Duration,
    /// Pause between two polls of one data plane while waiting for a change (zero: poll
    /// back to back).
    poll: Duration,
}

fn opts(args: &[String]) -> Opts {
    let mut o = Opts {
        admin: "http://127.0.0.1:19080".into(),
        gw: "http://127.0.0.1:18080".into(),
        gws: Vec::new(),
        token: "bench-token".into(),
        changes: 10_000,
        toggles: 100,
        apis: 0,
        groups: 1,
        backend: String::new(),
        origin_a: "http://127.0.0.1:18081".into(),
        origin_b: "http://127.0.0.1:18084".into(),
        body_a: "origin-a".into(),
        body_b: "origin-b".into(),
        probe: "/anon".into(),
        app: String::new(),
        app_key: String::new(),
        signed: String::new(),
        timeout: Duration::from_secs(5),
        poll: Duration::ZERO,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| panic!("{k} needs a value"))
            .clone();
        match k.as_str() {
            "--admin" => o.admin = v,
            "--gw" => o.gws.push(v),
            "--token" => o.token = v,
            "--changes" => o.changes = v.parse().expect("--changes"),
            "--toggles" => o.toggles = v.parse().expect("--toggles"),
            "--apis" => o.apis = v.parse().expect("--apis"),
            "--groups" => o.groups = v.parse().expect("--groups"),
            "--backend" => o.backend = v,
            "--origin-a" => o.origin_a = v,
            "--origin-b" => o.origin_b = v,
            "--body-a" => o.body_a = v,
            "--body-b" => o.body_b = v,
            "--probe" => o.probe = v,
            "--app" => o.app = v,
            "--app-key" => o.app_key = v,
            "--signed" => o.signed = v,
            "--timeout-ms" => o.timeout = Duration::from_millis(v.parse().expect("--timeout-ms")),
            "--poll-us" => o.poll = Duration::from_micros(v.parse().expect("--poll-us")),
            _ => panic!("unknown flag {k}"),
        }
    }
    if o.gws.is_empty() {
        o.gws.push(o.gw.clone());
    }
    o.gw = o.gws[0].clone();
    o
}

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Bytes) {
    let mut b = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Full::new(Bytes::from(serde_json::to_vec(v).expect("json")))
        }
        None => Full::new(Bytes::new()),
    };
    match http.request(b.body(body).expect("request")).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (status, bytes)
        }
        Err(e) => {
            eprintln!("churn: {method} {url}: {e}");
            (0, Bytes::new())
        }
    }
}

#[derive(Default)]
struct Kind {
    ack: Vec<Duration>,
    live: Vec<Duration>,
    after_ack: Vec<Duration>,
    timeouts: usize,
    admin_errors: usize,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

async fn run(args: &[String]) {
    let o = opts(args);
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4)
        .build_http();
    let auth = format!("Bearer {}", o.token);
    let admin_h = [("authorization", auth.as_str())];
    let mut secret = String::new();
    let mut kinds: [(&str, Kind); 5] = [
        ("unpublish", Kind::default()),
        ("publish", Kind::default()),
        ("switch", Kind::default()),
        ("rotate", Kind::default()),
        ("all", Kind::default()),
    ];
    let mut published = vec![true; o.toggles.max(1)];
    let mut on_b = [false, false]; // TEST, RELEASE
    let mut spurious_404 = 0usize;
    // Per node: change-to-live times, and changes not live there within the timeout.
    let mut per_node: Vec<(Vec<Duration>, usize)> = vec![(Vec::new(), 0); o.gws.len()];
    let mut stable_checked = 0usize;
    let mut stable_other = 0usize;
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    for n in 0..o.changes {
        // Which change: unpublish/publish, switch, rotate in the ratio 2:1:1.
        let slot = n % 4;
        let t0 = Instant::now();
        let (kind, ok, check): (usize, bool, Check) = match slot {
            0 | 1 if o.toggles > 0 => {
                let k = (n / 2) % o.toggles;
                let api = format!("bench-toggle-{k}");
                let path = format!("/toggle/{k}");
                if published[k] {
                    let (s, _) = call(
                        &http,
                        "POST",
                        &format!("{}/apis/{api}/unpublish", o.admin),
                        &admin_h,
                        Some(&json!({"stage": "RELEASE"})),
                    )
                    .await;
                    published[k] = false;
                    (0, s / 100 == 2, Check::Status(path, 404))
                } else {
                    let (s, _) = call(
                        &http,
                        "POST",
                        &format!("{}/apis/{api}/publish", o.admin),
                        &admin_h,
                        Some(&json!({"stage": "RELEASE", "description": "churn"})),
                    )
                    .await;
                    published[k] = true;
                    (1, s / 100 == 2, Check::Status(path, 200))
                }
            }
            0..=2 => {
                let st = (n / 4) % 2;
                let stage = ["TEST", "RELEASE"][st];
                on_b[st] = !on_b[st];
                let (url, body) = if on_b[st] {
                    (&o.origin_b, &o.body_b)
                } else {
                    (&o.origin_a, &o.body_a)
                };
                let (s, _) = call(
                    &http,
                    "PUT",
                    &format!("{}/backends/{}/stages/{stage}", o.admin, o.backend),
                    &admin_h,
                    Some(&json!({"url": url})),
                )
                .await;
                (
                    2,
                    s / 100 == 2,
                    Check::Body(o.probe.clone(), stage, body.clone()),
                )
            }
            _ => {
                let (s, b) = call(
                    &http,
                    "POST",
                    &format!("{}/apps/{}/keys/{}/rotate", o.admin, o.app, o.app_key),
                    &admin_h,
                    Some(&json!({})),
                )
                .await;
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                if let Some(s) = v["app_secret"].as_str() {
                    secret = s.to_owned();
                }
                (3, s / 100 == 2, Check::Signed(o.signed.clone()))
            }
        };
        let ack = t0.elapsed();
        if !ok {
            kinds[kind].1.admin_errors += 1;
            kinds[4].1.admin_errors += 1;
            continue;
        }
        // Poll every data plane until the change shows there (all nodes at once).
        let deadline = t0 + o.timeout;
        let lives = futures_util::future::join_all(o.gws.iter().map(|base| {
            let (http, check, secret, key) = (&http, &check, &secret, &o.app_key);
            async move {
                loop {
                    let seen = match check {
                        Check::Status(path, want) => {
                            call(http, "GET", &format!("{base}{path}"), &[], None)
                                .await
                                .0
                                == *want
                        }
                        Check::Body(path, stage, want) => {
                            let url = format!("{base}{path}");
                            let (s, b) =
                                call(http, "GET", &url, &[("x-ca-stage", stage)], None).await;
                            s == 200 && b.as_ref() == want.as_bytes()
                        }
                        Check::Signed(path) => {
                            let signer = Signer::new(key, secret.clone()).expect("key");
                            let mut req = http::Request::get(format!("{base}{path}"))
                                .body(Full::new(Bytes::new()))
                                .expect("req");
                            signer.sign(&mut req, b"");
                            match http.request(req).await {
                                Ok(r) => r.status().is_success(),
                                Err(_) => false,
                            }
                        }
                    };
                    if seen {
                        break Some(t0.elapsed());
                    }
                    if Instant::now() > deadline {
                        break None;
                    }
                    if !o.poll.is_zero() {
                        tokio::time::sleep(o.poll).await;
                    }
                }
            }
        }))
        .await;
        for (i, l) in lives.iter().enumerate() {
            match l {
                Some(d) => per_node[i].0.push(*d),
                None => per_node[i].1 += 1,
            }
        }
        // The change counts as live once it is live on every node.
        let live = lives
            .iter()
            .try_fold(Duration::ZERO, |acc, l| l.map(|d| acc.max(d)));
        for k in [kind, 4] {
            let e = &mut kinds[k].1;
            e.ack.push(ack);
            match live {
                Some(d) => {
                    e.live.push(d);
                    e.after_ack.push(d.saturating_sub(ack));
                }
                None => e.timeouts += 1,
            }
        }
        if o.apis > 0 {
            let i = rng.usize(..o.apis);
            let url = format!("{}/g{}/a{i}", o.gw, i % o.groups.max(1));
            stable_checked += 1;
            match call(&http, "GET", &url, &[], None).await.0 {
                200 => {}
                404 => spurious_404 += 1,
                _ => stable_other += 1,
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "churn_changes={} churn_seconds={:.1} stable_checked={stable_checked} spurious_404={spurious_404} stable_other_errors={stable_other}",
        o.changes,
        elapsed.as_secs_f64()
    );
    if o.gws.len() > 1 {
        for (i, (live, timeouts)) in per_node.iter_mut().enumerate() {
            println!(
                "node={i} gw={} n={} timeouts={timeouts} live_p50_ms={:.2} live_p99_ms={:.2} live_max_ms={:.2}",
                o.gws[i],
                live.len(),
                pct(live, 0.50),
                pct(live, 0.99),
                pct(live, 1.0),
            );
        }
    }
    for (name, k) in kinds.iter_mut() {
        if k.ack.is_empty() && k.admin_errors == 0 {
            continue;
        }
        println!(
            "kind={name} n={} admin_errors={} timeouts={} ack_p50_ms={:.2} ack_p99_ms={:.2} live_p50_ms={:.2} live_p99_ms={:.2} live_max_ms={:.2} after_ack_p50_ms={:.2} after_ack_p99_ms={:.2}",
            k.ack.len(),
            k.admin_errors,
            k.timeouts,
            pct(&mut k.ack, 0.50),
            pct(&mut k.ack, 0.99),
            pct(&mut k.live, 0.50),
            pct(&mut k.live, 0.99),
            pct(&mut k.live, 1.0),
            pct(&mut k.after_ack, 0.50),
            pct(&mut k.after_ack, 0.99),
        );
    }
}

enum Check {
    /// GET this URL until it answers this status.
    Status(String, u16),
    /// GET this URL in this stage until it answers this body.
    Body(String, &'static str, String),
    /// A request signed with the current secret passes.
    Signed(String),
}
