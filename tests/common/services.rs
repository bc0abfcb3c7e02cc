//! Reaching the machine's shared services (PostgreSQL, Redis) and other ecosystems' tools
//! (Chromium, Python, Node) from tests.
//!
//! Where one is unreachable, a test prints why and skips, so `cargo test` passes on a fresh
//! machine. With `STAGEGATE_REQUIRE_SERVICES=1` (set by `.ci/run`) a skip is a failure instead.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

/// True when `STAGEGATE_REQUIRE_SERVICES=1`: every skip must fail the test instead.
pub fn services_required() -> bool {
    std::env::var("STAGEGATE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips the calling test with a message, or panics when services are required.
///
/// Use as `let Some(x) = ... else { return skip("PostgreSQL", &why) };`.
#[track_caller]
pub fn skip(what: &str, why: &str) {
    if services_required() {
        panic!("{what} is required (STAGEGATE_REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!(
        "SKIPPED: {what} unavailable ({why}); set STAGEGATE_REQUIRE_SERVICES=1 to fail instead"
    );
}

/// Whether a TCP listener answers at `addr` within a second.
pub async fn reachable(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: connect timed out")),
    }
}

/// The PostgreSQL address tests use: `STAGEGATE_TEST_PG` or `127.0.0.1:5432`.
pub fn postgres_addr() -> String {
    std::env::var("STAGEGATE_TEST_PG_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".to_owned())
}

/// The Redis address tests use: `STAGEGATE_TEST_REDIS_ADDR` or `127.0.0.1:6379`.
pub fn redis_addr() -> String {
    std::env::var("STAGEGATE_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".to_owned())
}

/// A name unique to this process and call, for a throwaway database, schema or key prefix.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// What a browser test needs: Debian's Chromium (or `STAGEGATE_CHROMIUM`), `node`, and
/// playwright-core installed in `tests/browser` by `npm ci`. Answers the browser and the path
/// of `tests/browser/<script>`, or why the test cannot run.
pub fn browser_tools(script: &str) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    use std::path::{Path, PathBuf};
    let chromium = std::env::var_os("STAGEGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!(
            "{} not found (apt-get install chromium)",
            chromium.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("node --version failed: {}", o.status)),
        Err(e) => return Err(format!("node not found: {e}")),
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Err("playwright-core not installed (run `npm ci` in tests/browser)".into());
    }
    Ok((chromium, dir.join(script)))
}

/// The shared Redis's address, or `None` (the test is skipped, or fails under
/// `STAGEGATE_REQUIRE_SERVICES=1`) when it is unreachable.
pub async fn redis_or_skip() -> Option<String> {
    let addr = redis_addr();
    match reachable(&addr).await {
        Ok(()) => Some(addr),
        Err(why) => {
            skip("Redis", &why);
            None
        }
    }
}

/// A direct client on the Redis at `addr` (`HOST:PORT`), to look at and clean up what a test
/// wrote.
pub async fn redis_connection(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under `prefix` (SCAN, never the blocking KEYS).
pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let (mut cursor, mut out) = (0u64, Vec::new());
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        out.extend(batch);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix` (the test's own) from the Redis at `addr` (`HOST:PORT`),
/// answering how many there were.
pub async fn delete_redis_keys(addr: &str, prefix: &str) -> usize {
    let mut conn = redis_connection(addr).await;
    let keys = redis_keys(&mut conn, prefix).await;
    for k in &keys {
        let _: i64 = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    keys.len()
}
