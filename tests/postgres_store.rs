//! `PostgresStore` against the real server (127.0.0.1:5432, or `STAGEGATE_TEST_PG_ADDR`): the
//! conformance suite, concurrent nodes, the ordered gap-free feed, LISTEN/NOTIFY wake-ups and
//! their fallback, migrations, TLS modes, and an unreachable database through the admin API.
//! Each test works in its own throwaway schema, dropped afterwards.
#![cfg(feature = "postgres")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::services;
use stagegate::ControlPlane;
use stagegate::control::NewBackend;
use stagegate::model::{BackendKind, Group};
use stagegate::store::{Entity, Expect, Key, PostgresStore, Store, StoreError, Write};

/// A throwaway schema in the `test` database, dropped when this is dropped.
struct Schema {
    name: String,
    addr: String,
}

impl Schema {
    /// A fresh schema, or `None` (after printing why) when PostgreSQL cannot be reached.
    async fn new() -> Option<Self> {
        let addr = services::postgres_addr();
        if let Err(why) = services::reachable(&addr).await {
            services::skip("PostgreSQL", &why);
            return None;
        }
        let name = services::unique_name("sg").to_lowercase();
        let (client, conn) = tokio_postgres::connect(&admin_url(&addr), tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        Some(Self { name, addr })
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@{}/test?sslmode=disable&options=-csearch_path%3D{}",
            self.addr, self.name
        )
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url()).await.expect("connect")
    }

    /// A plain client on the schema, for poking at the tables directly.
    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }
}

fn admin_url(addr: &str) -> String {
    format!("postgres://postgres@{addr}/test?sslmode=disable")
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (name, addr) = (self.name.clone(), self.addr.clone());
        // Dropped from async tests: do it on a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url(&addr), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// One test per conformance property, each on a fresh schema (skipped without PostgreSQL).
macro_rules! pg_conformance {
    ($($prop:ident),*) => {
        mod conformance {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $prop() {
                    let Some(db) = Schema::new().await else { return };
                    stagegate::store::conformance::$prop(db.store().await).await;
                }
            )*
        }
    };
}

pg_conformance!(
    empty_store,
    put_get_versions,
    preconditions,
    atomic_commits,
    duplicate_keys,
    conflict_beats_duplicate,
    change_feed,
    deletes,
    recreate_after_delete,
    every_kind_round_trips,
    load_is_a_set,
    concurrent_commits,
    change_signal,
    compaction
);

fn group(name: &str) -> Group {
    Group::new(name).unwrap()
}

/// Several nodes (stores with pools of their own) commit concurrently: read-modify-write
/// counters with optimistic versions and retries, plus creates of their own keys. No update is
/// lost, revisions are consecutive, and followers reading the feed as it grows (each from its
/// own node) end with exactly the records and versions the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_nodes_lose_no_update_and_every_follower_sees_every_change() {
    let Some(db) = Schema::new().await else {
        return;
    };
    const NODES: usize = 3;
    const WRITERS_PER_NODE: usize = 3;
    const INCREMENTS: usize = 8;
    let nodes: Vec<Arc<PostgresStore>> =
        futures_util::future::join_all((0..NODES).map(|_| async { Arc::new(db.store().await) }))
            .await;
    let counters: Vec<Group> = (0..2).map(|i| group(&format!("counter{i}"))).collect();
    for g in &counters {
        let mut g = g.clone();
        g.description = Some("0".into());
        nodes[0]
            .commit(vec![Write::put(Entity::Group(g), Expect::Absent)])
            .await
            .unwrap();
    }
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // followers: replay the feed into a map while the writers run
    let follower_stores: Vec<PostgresStore> =
        futures_util::future::join_all((0..2).map(|_| db.store())).await;
    let followers: Vec<_> = follower_stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let finished = Arc::clone(&finished);
            tokio::spawn(async move {
                let mut seen: BTreeMap<String, Option<(u64, Entity)>> = BTreeMap::new();
                let mut at = 0u64;
                loop {
                    let last_round = finished.load(std::sync::atomic::Ordering::Acquire);
                    let changes = store.changes_since(at, 7).await.unwrap();
                    for c in &changes {
                        assert!(
                            c.revision == at || c.revision == at + 1,
                            "follower {i}: revision {} after {at}: a gap or disorder",
                            c.revision
                        );
                        at = c.revision;
                        seen.insert(
                            c.key.to_string(),
                            c.value.as_ref().map(|v| (v.version, v.value.clone())),
                        );
                    }
                    if changes.is_empty() {
                        if last_round {
                            return (at, seen);
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                }
            })
        })
        .collect();
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WRITERS_PER_NODE {
            let node = Arc::clone(node);
            let counters = counters.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..INCREMENTS {
                    let g = &counters[(n + w + i) % counters.len()];
                    loop {
                        let cur = node.get(&Key::group(&g.id)).await.unwrap().unwrap();
                        let Entity::Group(mut v) = cur.value else {
                            unreachable!()
                        };
                        let count: u64 = v.description.as_deref().unwrap().parse().unwrap();
                        v.description = Some((count + 1).to_string());
                        let mine = group(&format!("n{n}_w{w}_i{i}"));
                        match node
                            .commit(vec![
                                Write::put(Entity::Group(v), Expect::Version(cur.version)),
                                Write::put(Entity::Group(mine), Expect::Absent),
                            ])
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("node {n}: {e}"),
                        }
                    }
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    finished.store(true, std::sync::atomic::Ordering::Release);
    let total = NODES * WRITERS_PER_NODE * INCREMENTS;
    let loaded = nodes[1].load().await.unwrap();
    assert_eq!(
        loaded.revision,
        (counters.len() + total) as u64,
        "one consecutive revision per successful commit"
    );
    let sum: u64 = loaded
        .records
        .iter()
        .filter_map(|r| match &r.value {
            Entity::Group(g) if g.name.starts_with("counter") => {
                Some(g.description.as_deref().unwrap().parse::<u64>().unwrap())
            }
            _ => None,
        })
        .sum();
    assert_eq!(sum, total as u64, "no increment was lost");
    let want: BTreeMap<String, Option<(u64, Entity)>> = loaded
        .records
        .iter()
        .map(|r| {
            (
                r.value.key().to_string(),
                Some((r.version, r.value.clone())),
            )
        })
        .collect();
    for f in followers {
        let (at, seen) = f.await.unwrap();
        assert_eq!(
            at, loaded.revision,
            "the follower reached the last revision"
        );
        assert_eq!(
            seen, want,
            "the follower has exactly the store's records and versions"
        );
    }
}

/// A commit on one node wakes a subscriber on another through NOTIFY, long before its poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_other_nodes_at_once() {
    let Some(db) = Schema::new().await else {
        return;
    };
    let writer = db.store().await;
    let reader = db
        .store()
        .await
        .with_poll_interval(Duration::from_secs(3600));
    let mut rx = reader.subscribe().unwrap();
    // let the listener connect and LISTEN before the commit
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rev = writer
        .commit(vec![Write::put(
            Entity::Group(group("notified")),
            Expect::Absent,
        )])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r >= rev))
        .await
        .expect("woken by NOTIFY within 5 s (the poll is an hour)")
        .unwrap();
}

/// The listening connection is killed: the store reconnects and, by polling, still signals the
/// commits made meanwhile; a control-plane follower on it ends with the writer's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_connection_falls_back_to_polling_and_reconnects() {
    let Some(db) = Schema::new().await else {
        return;
    };
    let writer = ControlPlane::open(db.store().await).await.unwrap();
    let reader_store = db
        .store()
        .await
        .with_poll_interval(Duration::from_millis(200));
    let reader = Arc::new(ControlPlane::open(reader_store).await.unwrap());
    let follower = reader.spawn_follower(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = db.client().await;
    let ours = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'stagegate-listener' \
             AND query LIKE '%stagegate_meta%'",
            &[],
        )
        .await
        .unwrap();
    assert!(!ours.is_empty(), "a listener connection is open");
    for row in &ours {
        let pid: i32 = row.get(0);
        // Killing other tests' listeners too is harmless: each reconnects the same way.
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
    }
    let b = writer
        .create_backend(NewBackend::new("afterTheKill", BackendKind::Mock))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while reader.backend(&b.id).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the change arrives through the reconnected or polling listener");
    assert_eq!(reader.records().await, writer.records().await);
    let f = reader.freshness().await;
    assert_eq!(f.behind(), Some(0));
    follower.stop().await;
}

/// Nodes starting together migrate once; a schema newer than this build is refused, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let Some(db) = Schema::new().await else {
        return;
    };
    let url = db.url();
    let stores = futures_util::future::join_all((0..4).map(|_| PostgresStore::connect(&url))).await;
    for s in &stores {
        assert!(s.is_ok(), "{:?}", s.as_ref().err());
    }
    let client = db.client().await;
    let rows = client
        .query("SELECT version FROM stagegate_schema", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, i64>(0) as u64,
        PostgresStore::schema_version()
    );
    client
        .execute("UPDATE stagegate_schema SET version = 99", &[])
        .await
        .unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("version 99") && msg.contains("newer than this build"),
        "{msg}"
    );
}

/// `sslmode=require` against the local server (no TLS, or TLS with a certificate no trusted CA
/// signed) fails clearly; `disable` works;
/// a malformed URL or sslmode is refused naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_and_bad_urls_are_refused() {
    let Some(db) = Schema::new().await else {
        return;
    };
    let require = db.url().replace("sslmode=disable", "sslmode=require");
    let err = PostgresStore::connect(&require).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("TLS") && msg.contains(&db.addr),
        "the error says TLS failed and names the server: {msg}"
    );
    let prefer = db.url().replace("sslmode=disable", "sslmode=prefer");
    // `prefer` falls back to plain TCP only when the server offers no TLS; one that offers TLS
    // (the machine's server may, with a self-signed certificate) must pass verification.
    if let Err(e) = PostgresStore::connect(&prefer).await {
        assert!(e.to_string().contains("TLS"), "{e}");
    }
    db.store().await; // disable
    for (url, field) in [
        (
            "postgres://postgres@127.0.0.1/test?sslmode=sometimes",
            "sslmode",
        ),
        ("postgres://postgres@127.0.0.1:notaport/test", "port"),
        (
            "postgres://postgres:hunter2@127.0.0.1/test?bogus_option=1",
            "bogus_option",
        ),
    ] {
        let err = PostgresStore::connect(url).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::InvalidConfig(_)),
            "{url}: {err:?}"
        );
        assert!(msg.contains(field), "{url}: {msg}");
        assert!(
            !msg.contains("hunter2"),
            "a password is never repeated: {msg}"
        );
    }
}

/// A TCP relay to PostgreSQL that can be cut, to make the database unreachable mid-test.
struct Relay {
    addr: std::net::SocketAddr,
    tasks: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let t = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                t.lock().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        tasks.lock().push(accept);
        Self { addr, tasks }
    }

    /// Closes every relayed connection and stops accepting new ones.
    fn cut(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

/// While the database is unreachable, admin calls answer 503 `StoreUnavailable` naming the
/// store, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_naming_the_store() {
    let Some(db) = Schema::new().await else {
        return;
    };
    let relay = Relay::to(db.addr.clone()).await;
    let url = db.url().replace(&db.addr, &relay.addr.to_string()) + "&connect_timeout=2";
    let store = PostgresStore::connect(&url).await.unwrap();
    let name = store.name().to_owned();
    assert_eq!(name, format!("postgres {}/test", relay.addr));
    let control = Arc::new(ControlPlane::open(store).await.unwrap());
    let gateway = stagegate::GatewayLayer::new(control.snapshot_handle()).standalone();
    let api = stagegate::admin::AdminApi::new(
        Arc::clone(&control),
        stagegate::model::Secret::new("pg-admin-token"),
        gateway,
    );
    let call = |body: &'static str| {
        let req = http::Request::builder()
            .method("POST")
            .uri("/backends")
            .header("authorization", "Bearer pg-admin-token")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        common::oneshot(api.router(), req)
    };
    let ok = call(r#"{"name": "before_cut", "type": "MOCK"}"#).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    relay.cut();
    let got = call(r#"{"name": "during_cut", "type": "MOCK"}"#).await;
    assert_eq!(got.status, 503, "{}", got.text());
    let body = got.json();
    assert_eq!(body["code"], "StoreUnavailable", "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains(&name), "the message names the store: {msg}");
    let f = control.freshness().await;
    assert!(!f.store_reachable && f.is_stale(Duration::from_secs(3600)));
    assert!(f.store_error.unwrap().contains(&name));
    // nothing changed: the store (reached directly) holds only the first backend
    let direct = db.store().await;
    assert_eq!(direct.load().await.unwrap().records.len(), 1);
}
