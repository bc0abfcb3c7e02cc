//! Three example-gateway processes on one PostgreSQL database: a change made on one node is
//! served by the others, a nonce used on one is refused on another (Redis), conflicting
//! commits from two nodes, SIGKILL in the middle of a burst of admin writes, and the database
//! cut off for five seconds through a TCP relay this test owns (the shared server is never
//! stopped).
//!
//! Each test works in its own throwaway database (and Redis key prefix), dropped afterwards.
//! Where PostgreSQL or Redis cannot be reached the tests say so and skip, unless
//! `STAGEGATE_REQUIRE_SERVICES=1`. The example binary is found (or built once) as in
//! `tests/example_gateway.rs`; `STAGEGATE_GATEWAY_BIN` points at another one.
#![cfg(all(
    feature = "admin",
    feature = "postgres",
    feature = "redb",
    feature = "redis",
    feature = "sealed",
    unix
))]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::services;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

const TOKEN: &str = "cluster-admin-token-0123456789";

// ----- the example binary -----

fn gateway_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("STAGEGATE_GATEWAY_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("current exe");
        let target = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = target.join("examples").join("gateway");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let newest_source = ["src", "examples", "Cargo.toml", "Cargo.lock"]
            .iter()
            .filter_map(|p| newest_mtime(&root.join(p)))
            .max();
        if built.is_none() || newest_source > built {
            let mut features = vec!["admin", "postgres", "redb", "redis", "sealed", "serve"];
            if cfg!(feature = "conformance") {
                features.push("conformance");
            }
            let status = Command::new(env!("CARGO"))
                .args(["build", "--example", "gateway", "--no-default-features"])
                .arg("--features")
                .arg(features.join(","))
                .current_dir(root)
                .status()
                .expect("run cargo build --example gateway");
            assert!(status.success(), "cargo build --example gateway failed");
        }
        bin
    })
}

fn newest_mtime(p: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(p).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(p)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

// ----- a throwaway database -----

/// A fresh database on the shared server, dropped (with its connections) when this is dropped.
struct Db {
    name: String,
    addr: String,
}

impl Db {
    async fn new() -> Option<Self> {
        let addr = services::postgres_addr();
        if let Err(why) = services::reachable(&addr).await {
            services::skip("PostgreSQL", &why);
            return None;
        }
        let name = services::unique_name("sg_cluster").to_lowercase();
        let client = admin_client(&addr).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        Some(Self { name, addr })
    }

    /// The URL of this database at `addr` (the server's, or a relay's).
    fn url_via(&self, addr: &str) -> String {
        format!(
            "postgres://postgres@{addr}/{}?sslmode=disable&connect_timeout=2",
            self.name
        )
    }

    fn url(&self) -> String {
        self.url_via(&self.addr)
    }
}

async fn admin_client(addr: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("postgres://postgres@{addr}/test?sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

impl Drop for Db {
    fn drop(&mut self) {
        let (name, addr) = (self.name.clone(), self.addr.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = admin_client(&addr).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

// ----- a relay that can be cut -----

/// A TCP relay to PostgreSQL. While cut, every relayed connection is closed and new ones are
/// closed as soon as they are accepted (the database is unreachable, not slow).
struct Relay {
    addr: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, t) = (Arc::clone(&cut), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                t.lock().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Self {
            addr,
            cut,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

// ----- a node -----

/// One example-gateway process.
struct Node {
    child: Child,
    admin: String,
    data: String,
    dir: PathBuf,
}

impl Node {
    fn start(store: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "stagegate-cluster-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        Self::start_in(dir, store, args)
    }

    fn start_in(dir: PathBuf, store: &str, args: &[&str]) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gateway.log"))
            .unwrap();
        let mut child = Command::new(gateway_bin())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--store", store, "--admin-token", TOKEN, "--workers", "1"])
            .args(["--max-staleness", "2s"])
            .args(args)
            .env_remove("STAGEGATE_STORE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the example gateway");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut admin, mut data) = (None, None);
        while admin.is_none() || data.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the gateway did not start; log:\n{}",
                    std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
                );
            };
            if let Some(a) = line.strip_prefix("stagegate admin API listening on ") {
                admin = Some(a.trim().to_owned());
            }
            if let Some(a) = line.strip_prefix("stagegate data plane listening on ") {
                data = Some(a.trim().to_owned());
            }
        }
        Self {
            child,
            admin: admin.unwrap(),
            data: data.unwrap(),
            dir,
        }
    }

    /// SIGKILL, keeping the data directory for a restart.
    fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.dir)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ----- HTTP -----

#[derive(Clone)]
struct Http(common::HttpClient);

impl Http {
    fn new() -> Self {
        Self(common::client())
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Result<common::Got, String> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(Duration::from_secs(20), self.0.request(req))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(common::collect(res).await)
    }

    async fn admin(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> common::Got {
        self.try_admin(node, method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn try_admin(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<common::Got, String> {
        let headers = [
            ("authorization".to_owned(), format!("Bearer {TOKEN}")),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        self.send(
            method,
            &format!("{}{path}", node.admin),
            &headers,
            body.map(|b| b.to_string()),
        )
        .await
    }

    async fn health(&self, node: &Node) -> common::Got {
        self.send("GET", &format!("{}/health", node.admin), &[], None)
            .await
            .unwrap()
    }

    /// GET /c/1 on a node's data plane with an AppCode.
    async fn call(&self, node: &Node, code: &str) -> common::Got {
        let headers = [
            ("authorization".to_owned(), format!("APPCODE {code}")),
            ("x-ca-stage".to_owned(), "TEST".to_owned()),
        ];
        self.send("GET", &format!("{}/c/1", node.data), &headers, None)
            .await
            .unwrap()
    }
}

fn id(g: &common::Got) -> String {
    g.json()["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", g.text()))
        .to_owned()
}

/// What one node set up: a MOCK backend answering `body` in TEST, an API on `GET /c/[x]`
/// published in TEST, and an authorized app.
struct World {
    backend: String,
    app: Value,
}

impl World {
    fn code(&self) -> &str {
        self.app["app_code"].as_str().unwrap()
    }
}

async fn set_up(http: &Http, node: &Node, body: &str) -> World {
    let created = |g: common::Got| {
        assert!(g.status == 201 || g.status == 200, "{}", g.text());
        g
    };
    let b = created(
        http.admin(
            node,
            "POST",
            "/backends",
            Some(json!({"name": "cl_mock", "type": "MOCK"})),
        )
        .await,
    );
    let backend = id(&b);
    created(
        http.admin(
            node,
            "PUT",
            &format!("/backends/{backend}/stages/TEST"),
            Some(json!({"status": 200, "body": body})),
        )
        .await,
    );
    let group = id(&created(
        http.admin(node, "POST", "/groups", Some(json!({"name": "cl_group"})))
            .await,
    ));
    let api = id(&created(
        http.admin(
            node,
            "POST",
            "/apis",
            Some(json!({
                "group_id": group, "name": "cl_api", "auth": "APP", "appcode_auth": "HEADER",
                "request": {"method": "GET", "path": "/c/[x]", "mode": "PASSTHROUGH"},
                "backend": {"backend_id": backend}
            })),
        )
        .await,
    ));
    created(
        http.admin(
            node,
            "POST",
            &format!("/apis/{api}/publish"),
            Some(json!({"stage": "TEST"})),
        )
        .await,
    );
    let app = created(
        http.admin(node, "POST", "/apps", Some(json!({"name": "cl_app"})))
            .await,
    );
    let app_json = app.json();
    created(
        http.admin(
            node,
            "POST",
            &format!("/apis/{api}/authorizations"),
            Some(json!({"app_id": id(&app), "stage": "TEST"})),
        )
        .await,
    );
    World {
        backend,
        app: app_json,
    }
}

/// Waits (up to `within`) until `node` answers the API with 200 and `body`.
async fn served(http: &Http, node: &Node, code: &str, body: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = http.call(node, code).await;
        if got.status == 200 && got.text() == body {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{} still answers {} {} rather than {body:?}",
            node.data,
            got.status,
            got.text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every node applied the same revision, and returns it.
async fn converged(http: &Http, nodes: &[&Node]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut revs = BTreeSet::new();
        let mut store = None;
        for n in nodes {
            let h = http.health(n).await.json();
            revs.insert(h["applied_revision"].as_u64().unwrap());
            store = h["store_revision"].as_u64();
        }
        if revs.len() == 1 && revs.first().copied() == store {
            return store.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: {revs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn export(http: &Http, node: &Node) -> Value {
    let e = http.admin(node, "GET", "/export", None).await;
    assert_eq!(e.status, 200, "{}", e.text());
    let mut doc = e.json();
    // when it was exported is the one field that differs between nodes
    doc.as_object_mut().unwrap().remove("exported_at");
    doc
}

// ----- the tests -----

/// A change made through node A's admin API is served by B and C (woken by NOTIFY, well
/// before the one-second poll), and all three export the same configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_is_served_by_the_others() {
    let Some(db) = Db::new().await else { return };
    let url = db.url();
    let (a, b, c) = (
        Node::start(&url, &[]),
        Node::start(&url, &[]),
        Node::start(&url, &[]),
    );
    let http = Http::new();
    let w = set_up(&http, &a, "first").await;
    for n in [&a, &b, &c] {
        served(&http, n, w.code(), "first", Duration::from_secs(5)).await;
    }
    // One more change on A: live on B and C within a poll interval at most.
    let r = http
        .admin(
            &a,
            "PUT",
            &format!("/backends/{}/stages/TEST", w.backend),
            Some(json!({"status": 200, "body": "second"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for n in [&b, &c] {
        let took = served(&http, n, w.code(), "second", Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_millis(900),
            "{took:?}: not woken by NOTIFY"
        );
    }
    converged(&http, &[&a, &b, &c]).await;
    let ea = export(&http, &a).await;
    assert_eq!(ea, export(&http, &b).await);
    assert_eq!(ea, export(&http, &c).await);
    for n in [&a, &b, &c] {
        let h = http.health(n).await;
        assert_eq!(h.status, 200, "{}", h.text());
        assert_eq!(h.json()["store"], "reachable");
    }
}

/// With `--replay redis://…` a signed request served by A is refused by B as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_used_on_one_node_is_refused_on_another() {
    let Some(db) = Db::new().await else { return };
    let redis = services::redis_addr();
    if let Err(why) = services::reachable(&redis).await {
        return services::skip("Redis", &why);
    }
    let prefix = format!("{}:", services::unique_name("sg_cluster_nonce"));
    let redis_url = format!("redis://{redis}");
    let args = ["--replay", &redis_url, "--replay-prefix", &prefix];
    let url = db.url();
    let (a, b, c) = (
        Node::start(&url, &args),
        Node::start(&url, &args),
        Node::start(&url, &args),
    );
    let http = Http::new();
    let w = set_up(&http, &a, "signed").await;
    for n in [&b, &c] {
        served(&http, n, w.code(), "signed", Duration::from_secs(5)).await;
    }
    let signer = stagegate::auth::Signer::new(
        w.app["app_key"].as_str().unwrap(),
        stagegate::model::Secret::new(w.app["app_secret"].as_str().unwrap()),
    )
    .unwrap()
    .with_stage(stagegate::model::Stage::TEST);
    let mut req = Request::get(format!("{}/c/1", a.data)).body(()).unwrap();
    signer.sign(&mut req, b"");
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let first = http
        .send("GET", &format!("{}/c/1", a.data), &headers, None)
        .await
        .unwrap();
    assert_eq!((first.status, first.text()), (200, "signed".to_owned()));
    for n in [&b, &c] {
        let replayed = http
            .send("GET", &format!("{}/c/1", n.data), &headers, None)
            .await
            .unwrap();
        assert_eq!(
            (replayed.status, replayed.header("x-ca-error-code")),
            (400, Some("A400NU")),
            "the replay to another node is refused"
        );
    }
    // clean up this test's keys
    common::services::delete_redis_keys(&redis, &prefix).await;
}

/// Two nodes update the same record at the same version at once: exactly one wins, the other
/// gets 409, and all three nodes' exports are identical afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_commits_from_two_nodes_one_wins_the_other_gets_409() {
    let Some(db) = Db::new().await else { return };
    let url = db.url();
    let (a, b, c) = (
        Node::start(&url, &[]),
        Node::start(&url, &[]),
        Node::start(&url, &[]),
    );
    let http = Http::new();
    let g = http
        .admin(&a, "POST", "/groups", Some(json!({"name": "contested"})))
        .await;
    assert_eq!(g.status, 201, "{}", g.text());
    let group = id(&g);
    let path = format!("/groups/{group}");
    let mut conflicts = 0;
    for round in 0..30 {
        converged(&http, &[&a, &b, &c]).await;
        let (ra, rb) = tokio::join!(
            http.admin(
                &a,
                "PUT",
                &path,
                Some(json!({"name": "contested", "description": format!("a{round}")}))
            ),
            http.admin(
                &b,
                "PUT",
                &path,
                Some(json!({"name": "contested", "description": format!("b{round}")}))
            ),
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert!(
            statuses == [200, 200] || statuses == [200, 409],
            "one always wins: {} {} / {} {}",
            ra.status,
            ra.text(),
            rb.status,
            rb.text()
        );
        if statuses == [200, 409] {
            conflicts += 1;
            let (winner, loser) = if ra.status == 200 {
                (&ra, &rb)
            } else {
                (&rb, &ra)
            };
            let won = winner.json()["description"].clone();
            assert_eq!(loser.json()["code"], "Conflict", "{}", loser.text());
            converged(&http, &[&a, &b, &c]).await;
            for n in [&a, &b, &c] {
                let got = http.admin(n, "GET", &path, None).await.json();
                assert_eq!(got["description"], won, "the winner's change everywhere");
            }
            if conflicts >= 3 {
                break;
            }
        }
    }
    assert!(conflicts > 0, "no round made the two commits race");
    converged(&http, &[&a, &b, &c]).await;
    let ea = export(&http, &a).await;
    assert_eq!(ea, export(&http, &b).await);
    assert_eq!(ea, export(&http, &c).await);
}

/// A node killed with SIGKILL in the middle of a burst of admin writes: every write it
/// acknowledged is on every other node, and on the killed node once it restarts (it catches
/// up at start-up with changes made while it was down, whose notifications it missed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_acknowledged_write() {
    let Some(db) = Db::new().await else { return };
    let url = db.url();
    let (a, b, c) = (
        Node::start(&url, &[]),
        Node::start(&url, &[]),
        Node::start(&url, &[]),
    );
    let http = Http::new();
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let writer = {
        let (http, acked, admin) = (http.clone(), Arc::clone(&acked), c.admin.clone());
        tokio::spawn(async move {
            let headers = [
                ("authorization".to_owned(), format!("Bearer {TOKEN}")),
                ("content-type".to_owned(), "application/json".to_owned()),
            ];
            for i in 0.. {
                let body = json!({"name": format!("burst_{i}")}).to_string();
                match http
                    .send("POST", &format!("{admin}/groups"), &headers, Some(body))
                    .await
                {
                    Ok(g) if g.status == 201 => acked.lock().push(id(&g)),
                    _ => return i,
                }
            }
            unreachable!()
        })
    };
    while acked.lock().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = c.kill9();
    let attempted = writer.await.unwrap();
    let acked = acked.lock().clone();
    assert!(acked.len() >= 20 && attempted >= acked.len());
    // A write while C is down: C must pick it up at start-up.
    let late = http
        .admin(&a, "POST", "/groups", Some(json!({"name": "while_down"})))
        .await;
    assert_eq!(late.status, 201, "{}", late.text());
    converged(&http, &[&a, &b]).await;
    let c = Node::start_in(dir, &url, &[]);
    for n in [&a, &b, &c] {
        let groups = http.admin(n, "GET", "/groups", None).await.json();
        let ids: BTreeSet<&str> = groups
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["id"].as_str())
            .collect();
        for id in &acked {
            assert!(
                ids.contains(id.as_str()),
                "{} lost acknowledged {id}",
                n.admin
            );
        }
        assert!(
            ids.contains(id(&late).as_str()),
            "{} missed the late write",
            n.admin
        );
    }
    converged(&http, &[&a, &b, &c]).await;
    let ea = export(&http, &a).await;
    assert_eq!(ea, export(&http, &b).await);
    assert_eq!(ea, export(&http, &c).await);
}

/// The database cut off from nodes A and B for five seconds through a relay (C still reaches
/// it): A's and B's data planes keep answering with the configuration they had, their admin
/// writes fail at once with 503 naming the store, their health turns 503 past the staleness
/// bound; a change made on C meanwhile is live on A and B soon after the relay is restored,
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_keeps_the_data_plane_serving_and_everything_catches_up() {
    let Some(db) = Db::new().await else { return };
    let relay = Relay::to(db.addr.clone()).await;
    let relayed = db.url_via(&relay.addr);
    let (a, b, c) = (
        Node::start(&relayed, &[]),
        Node::start(&relayed, &[]),
        Node::start(&db.url(), &[]),
    );
    let http = Http::new();
    let w = set_up(&http, &c, "before").await;
    for n in [&a, &b] {
        served(&http, n, w.code(), "before", Duration::from_secs(5)).await;
    }

    relay.cut();
    let cut_at = Instant::now();
    // The change made on C while A and B cannot see the database.
    let r = http
        .admin(
            &c,
            "PUT",
            &format!("/backends/{}/stages/TEST", w.backend),
            Some(json!({"status": 200, "body": "after"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Admin writes on A fail at once with 503 naming the store.
    let t = Instant::now();
    let refused = http
        .admin(&a, "POST", "/groups", Some(json!({"name": "during_cut"})))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.json()["code"],
        "StoreUnavailable",
        "{}",
        refused.text()
    );
    let msg = refused.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains(&relay.addr),
        "the message names the store: {msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The data planes answer throughout, with what they had.
    let mut served_during = 0;
    let mut stale_seen = false;
    while cut_at.elapsed() < Duration::from_secs(5) {
        for n in [&a, &b] {
            let got = http.call(n, w.code()).await;
            assert_eq!((got.status, got.text()), (200, "before".to_owned()));
            served_during += 1;
        }
        if cut_at.elapsed() > Duration::from_millis(3500) && !stale_seen {
            let h = http.health(&a).await;
            assert_eq!(h.status, 503, "{}", h.text());
            let j = h.json();
            assert_eq!(
                (&j["status"], &j["store"]),
                (&json!("stale"), &json!("unreachable"))
            );
            stale_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stale_seen && served_during > 20);
    relay.restore();
    // Caught up without a restart: C's change is live on A and B, and A takes writes again.
    for n in [&a, &b] {
        served(&http, n, w.code(), "after", Duration::from_secs(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let g = http
            .try_admin(&a, "POST", "/groups", Some(json!({"name": "after_cut"})))
            .await
            .unwrap();
        if g.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", g.status, g.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    converged(&http, &[&a, &b, &c]).await;
    for n in [&a, &b, &c] {
        let h = http.health(n).await;
        assert_eq!(h.status, 200, "{}", h.text());
    }
    let ea = export(&http, &a).await;
    assert_eq!(ea, export(&http, &b).await);
    assert_eq!(ea, export(&http, &c).await);
}

/// Bad `--store` and `--max-staleness` values (flag or environment) stop the start with a
/// message naming the setting, before anything is created, and never repeat a password; a
/// database that cannot be reached at start stops it with a message naming the store.
#[test]
fn a_bad_store_or_staleness_bound_stops_the_start() {
    let dir = std::env::temp_dir().join(format!(
        "stagegate-cluster-bad-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "--store",
            "STAGEGATE_STORE",
            "mysql://u:hunter2@h/db",
            "`mysql://` is not a store",
        ),
        (
            "--store",
            "STAGEGATE_STORE",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "the PostgreSQL URL does not parse",
        ),
        (
            "--store",
            "STAGEGATE_STORE",
            "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=1",
            "postgres 127.0.0.1:1/db is unavailable",
        ),
        (
            "--max-staleness",
            "STAGEGATE_MAX_STALENESS",
            "0s",
            "is not a duration",
        ),
        (
            "--max-staleness",
            "STAGEGATE_MAX_STALENESS",
            "5 parsecs",
            "is not a duration",
        ),
        (
            "--max-staleness",
            "STAGEGATE_MAX_STALENESS",
            "25h",
            "is not a duration",
        ),
    ];
    for (flag, var, value, message) in cases {
        for by_env in [false, true] {
            let mut cmd = Command::new(gateway_bin());
            cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(&dir)
                .args(["--admin-token", TOKEN])
                .env_remove("STAGEGATE_STORE")
                .env_remove("STAGEGATE_MAX_STALENESS");
            if by_env {
                cmd.env(var, value);
            } else {
                cmd.args([flag, value]);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{flag} {value}: {stderr}");
            assert!(stderr.contains(message), "{flag} {value}: {stderr}");
            let named = if by_env { var } else { flag };
            if !message.contains("unavailable") {
                assert!(stderr.contains(named), "names {named}: {stderr}");
            }
            assert!(!stderr.contains("hunter2"), "{stderr}");
            assert!(!dir.join("stagegate.redb").exists(), "nothing created");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
