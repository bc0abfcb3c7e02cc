//! The bundled example gateway: the data plane, the admin API and the embedded durable store in
//! one process.
//!
//! ```text
//! cargo run --example gateway -- [--listen 127.0.0.1:8080] [--admin-listen 127.0.0.1:9080]
//!                                [--data-dir ./stagegate-data] [--admin-token TOKEN]
//!                                [--replay memory|redis://HOST:PORT] [--secrets-key KEY]
//!                                [--config gateway.toml] [--config-scope whole|named]
//!                                [--metrics-listen 127.0.0.1:9090] [--log-format text|json]
//!                                [--store DIR|postgres://...] [--max-staleness 10s]
//!                                [--throttle local|redis://HOST:PORT] [--throttle-nodes N]
//!                                [--tls-cert FILE --tls-key FILE] [--admin-tls on|off]
//!                                [--http-listen ADDR] [--http-mode redirect|refuse]
//! ```
//!
//! With `--tls-cert` and `--tls-key` the data plane serves HTTPS (rustls on ring; HTTP/2 and
//! HTTP/1.1 by ALPN; session resumption by tickets and a session cache), and so does the admin
//! listener unless `--admin-tls off`. The pair is checked at start (it parses, the key matches
//! the certificate, the certificate is within its validity period): a bad one stops the start
//! with a message naming the file and the problem. The files are read again on SIGHUP and
//! whenever they change (checked every 2 s); a bad new pair is logged and the previous
//! certificate kept, and connections already open are not disturbed. Certificates of group
//! domains, put through the admin API (`PUT /groups/{id}/domains/{domain}/certificate`), are
//! served by SNI beside the default one from the moment they are stored. With
//! `--http-listen`, plain HTTP on that address is redirected to HTTPS (308) or refused (403
//! `I403PT`, `--http-mode refuse`). An admin listener off loopback without TLS is warned about
//! at start.
//!
//! With `--metrics-listen`, Prometheus metrics (`stagegate::metrics`) are served at
//! `GET /metrics` on that address, without a token: bind it where only your scraper reaches.
//! `--log-format json` writes every log line, the `stagegate::access` line included, as one
//! JSON object.
//!
//! Each flag can also come from the environment (`STAGEGATE_LISTEN`, `STAGEGATE_ADMIN_LISTEN`,
//! `STAGEGATE_DATA_DIR`, `STAGEGATE_ADMIN_TOKEN`, `STAGEGATE_REPLAY`, `STAGEGATE_SECRETS_KEY`,
//! ...); a flag wins over the environment.
//!
//! With `--store postgres://…` several nodes share one configuration: each follows the
//! database's change feed and serves what any node commits; `GET /health` on the admin
//! listener reports the store's reachability and how fresh the node is, and answers 503 once
//! it has not been known current for `--max-staleness`. With `--replay redis://…` every gateway node pointed at that Redis shares one nonce store,
//! so a signed request replayed to another node is refused there too; while Redis cannot be
//! reached, requests carrying a nonce are refused with `X503NS`. With `--throttle redis://…`
//! throttling limits hold across every node pointed at that Redis (tokens leased in batches,
//! so a request well under its limit never waits for Redis); while Redis cannot be reached each
//! node counts alone, up to the limit over `--throttle-nodes`. With `--secrets-key`, app
//! secrets and AppCodes are sealed in the data file; a node started without that key, or with
//! another, refuses to start and changes nothing. Without a
//! token, one is generated at first start, stored as `admin-token` (mode 0600) in the data
//! directory and printed once. Logs go to stderr (`RUST_LOG` filters them; default `info`,
//! with one `stagegate::access` line per data-plane request and one `stagegate::admin` span per
//! admin call, with its `X-Request-Id`; credentials never show). Ctrl-C or SIGTERM stops accepting, closes
//! idle connections at once and lets in-flight requests finish (at most 30 s).
//!
//! With `--config FILE` (env `STAGEGATE_CONFIG`), the declarative configuration document in
//! FILE (JSON, or TOML for a `.toml` file) is applied at start, after the store is opened and
//! before anything listens: provisioning is one file under version control. Applying the same
//! file again at the next start changes nothing (no new deployment). A file with errors stops
//! the start with every error listed, and changes nothing. With `--config-scope whole` (the
//! default) the file is the whole configuration (what it does not name is deleted); with
//! `named`, only what it names is created or changed.
//!
//! Both listeners are served by `stagegate::serve::Server`: a connection must send its request
//! head within the header-read timeout (also the longest an HTTP/1 connection waits idle for its
//! next request), one with nothing in flight is closed after the idle timeout, and each listener
//! has a cap on open connections (one beyond it is closed at once). At start the soft limit on
//! open files is raised to the hard limit, as nginx does, and the data plane's default cap is
//! sized to fit under it.
//!
//! The admin listener also answers Alibaba Cloud's CloudAPI (2016-07-14) protocol: `POST /` (or
//! `GET /?Action=...`) with an `x-acs-action` header or an `Action` parameter goes to
//! `stagegate::cloudapi`, so the official SDKs with `endpoint` = the admin address and
//! `protocol="http"` manage this gateway. Calls are signed with access key pairs given with
//! `--access-key ID:SECRET` (repeatable) or `STAGEGATE_ACCESS_KEYS` (comma-separated), or created
//! with `POST /access-keys` on the admin API (kept in `access-keys`, mode 0600, in the data
//! directory).
//!
//! Arguments are parsed by hand: a few `--name value` flags do not justify a CLI crate in the
//! dependency tree of everyone who runs `cargo test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use stagegate::admin::AdminApi;
use stagegate::auth::{RedisReplayGuard, RedisReplayGuardBuilder};
use stagegate::backend::{Backends, LocalObjectStores};
use stagegate::cloudapi::{AccessKeys, CloudApi, CloudApiRoute};
use stagegate::control::{ConfigDocument, ConfigFormat, PlanScope};
use stagegate::metrics::GatewayMetrics;
use stagegate::policy::{LocalCounter, RateCounter, RedisCounter, RedisCounterBuilder};
use stagegate::serve::{Certificates, ConnectionLimit, PlainHttp, Server};
use stagegate::store::{
    CommitSync, PostgresStore, RedbStore, SealedStore, SecretsKey, Store, StoreError,
};
use stagegate::{
    ControlPlane, GatewayLayer,
    auth::MemoryReplayGuard,
    layer::{AppAuthenticator, TrustedProxies},
    model::Secret,
};
use tokio::net::TcpListener;

/// The file the store keeps its data in, inside the data directory.
const DB_FILE: &str = "stagegate.redb";
/// The directory OSS buckets are kept in (one directory per bucket), inside the data directory.
const OSS_DIR: &str = "oss";
/// The file access key pairs made with `POST /access-keys` are kept in, inside the data directory.
const ACCESS_KEY_FILE: &str = "access-keys";
/// The file a generated admin token is kept in, inside the data directory.
const TOKEN_FILE: &str = "admin-token";
/// Open connections the admin API accepts at once.
const ADMIN_MAX_CONNECTIONS: usize = 128;
/// The data plane's cap on open connections when `--max-connections` is not given (lowered to
/// fit the descriptor limit).
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

struct Config {
    listen: String,
    admin_listen: String,
    data_dir: PathBuf,
    store: StoreSpec,
    max_staleness: Duration,
    admin_token: Option<String>,
    admin_body_limit: Option<usize>,
    admin_timeout: Duration,
    commit_sync: CommitSync,
    verify_on_open: bool,
    replay_capacity: usize,
    replay: Replay,
    replay_prefix: Option<String>,
    throttle: Throttle,
    throttle_prefix: Option<String>,
    throttle_nodes: Option<u32>,
    throttle_batch: Option<u32>,
    secrets_key: Option<SecretsKey>,
    workers: usize,
    max_connections: Option<usize>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    config: Option<PathBuf>,
    config_scope: PlanScope,
    access_keys: Vec<(String, Secret)>,
    metrics_listen: Option<String>,
    log_json: bool,
    trusted_proxies: TrustedProxies,
    tls: Option<TlsFiles>,
    admin_tls: bool,
    http_listen: Option<String>,
    http_mode: HttpMode,
}

/// The default certificate's files (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// What the plain-HTTP listener (`--http-listen`) answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpMode {
    /// 308 to the same URL over HTTPS.
    Redirect,
    /// 403 `I403PT`.
    Refuse,
}

/// Where the configuration is kept.
enum StoreSpec {
    /// The embedded file in the data directory (the default).
    Redb,
    /// PostgreSQL, shared by every node pointed at it (the URL may hold a password: never
    /// printed).
    Postgres(String),
}

/// Where throttling counts requests.
enum Throttle {
    /// In this process (the default): exact on one node.
    Local,
    /// Leased from Redis, shared by every node pointed at it.
    Redis(RedisCounterBuilder),
}

/// Where nonces are remembered.
enum Replay {
    /// In this process (the default).
    Memory,
    /// In Redis, shared by every node pointed at it.
    Redis(RedisReplayGuardBuilder),
}

const USAGE: &str =
    "usage: gateway [--listen ADDR] [--admin-listen ADDR] [--data-dir DIR] [--admin-token TOKEN]
               [--config FILE] [--config-scope whole|named] [...]

  --listen        data plane address   (env STAGEGATE_LISTEN, default 127.0.0.1:8080)
  --admin-listen  admin API address    (env STAGEGATE_ADMIN_LISTEN, default 127.0.0.1:9080)
  --data-dir      state directory      (env STAGEGATE_DATA_DIR, default ./stagegate-data)
  --store PATH|postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=..&options=-csearch_path%3DSCHEMA]
                  where the configuration is kept: a directory (the same as --data-dir: the
                  embedded file, the default) or a PostgreSQL database shared by every node
                  pointed at it. Each node follows the database's change feed (LISTEN/NOTIFY,
                  and a poll every second behind it) and serves the changes any node commits.
                  While the database cannot be reached the data plane serves the last
                  configuration it applied and admin writes answer 503 StoreUnavailable; the
                  node catches up by itself once it is back (env STAGEGATE_STORE)
  --max-staleness DURATION  GET /health on the admin listener answers 503 \"stale\" once the
                  node has not been known to hold the store's latest change for this long
                  (e.g. 500ms, 5s, 1m; env STAGEGATE_MAX_STALENESS, default 10s)
  --admin-token   admin bearer token   (env STAGEGATE_ADMIN_TOKEN, default: generated once)
  --config FILE   a configuration document (JSON, or TOML for a .toml file) applied at start;
                  a file with errors stops the start, listing every one (env STAGEGATE_CONFIG)
  --config-scope whole|named  whole (default): the file is the whole configuration, what it
                  does not name is deleted; named: only what it names is created or changed
                  (env STAGEGATE_CONFIG_SCOPE)
  --access-key ID:SECRET  an access key pair for the CloudAPI endpoint on the admin listener
                  (repeatable; env STAGEGATE_ACCESS_KEYS, comma-separated; more pairs can be
                  made with POST /access-keys, kept in the data directory)
  --admin-body-limit BYTES  largest admin request body, e.g. for a big POST /import
                  (env STAGEGATE_ADMIN_BODY_LIMIT, default 1 MiB)
  --admin-timeout SECONDS  longest an admin call may take before it is answered 503 Timeout
                  (a change it makes is still applied whole)
                  (env STAGEGATE_ADMIN_TIMEOUT, default 30)
  --commit-sync two-phase|one-phase  fsyncs per store commit: two (default; damage to the last
                  commit is refused at start) or one (faster changes on a slow disk; a damaged
                  last commit is rolled back instead) (env STAGEGATE_COMMIT_SYNC)
  --verify-on-open  verify every page of the data file before starting (redb's integrity check:
                  a read of the whole file; without it every record is still verified as it is
                  loaded) (env STAGEGATE_VERIFY_ON_OPEN=1)
  --replay-capacity N  nonces the replay guard remembers (15 minutes each, or while their
                  timestamp is accepted; 48 bytes each); one app may hold a quarter of them.
                  When full (or an app holds its share), new signed requests are refused with
                  X503BZ rather than a replay let through: size it for your signed requests
                  per second times 900, and four times one app's
                  (env STAGEGATE_REPLAY_CAPACITY, default 1000000)
  --replay memory|redis://[:PASSWORD@]HOST[:PORT][/DB]  where nonces are remembered: in this
                  process (default), or in Redis, shared by every node pointed at it, so a
                  request replayed to another node is refused there too. While Redis cannot be
                  reached (500 ms per check), requests carrying a nonce are refused with
                  X503NS, never accepted unchecked (env STAGEGATE_REPLAY)
  --replay-prefix PREFIX  the prefix of the nonce keys in Redis: nodes that share nonces share
                  it (env STAGEGATE_REPLAY_PREFIX, default stagegate:nonce:)
  --throttle local|redis://[:PASSWORD@]HOST[:PORT][/DB]  where throttling policies count: in
                  this process (default, exact on one node), or in Redis, so a limit holds
                  across every node pointed at it. Each node leases tokens in batches and
                  admits from memory; the cluster never admits more than a limit, and at most
                  (nodes - 1) * (batch - 1) fewer. A separate flag from --replay (which may name
                  the same Redis): nonces fail closed, throttling fails open. While Redis cannot
                  be reached (100 ms per lease), each node counts alone, up to the limit over
                  --throttle-nodes per window (env STAGEGATE_THROTTLE)
  --throttle-prefix PREFIX  the prefix of the counters' keys in Redis: nodes that count together
                  share it (env STAGEGATE_THROTTLE_PREFIX, default stagegate:rate:)
  --throttle-nodes N  how many nodes share the Redis counters: grants shrink as a window fills,
                  and in an outage each node admits up to ceil(limit / N) per window
                  (env STAGEGATE_THROTTLE_NODES, default 1)
  --throttle-batch N  the most tokens a node leases at once (env STAGEGATE_THROTTLE_BATCH,
                  default 16)
  --secrets-key KEY  seal app secrets and AppCodes in the data file with this key: 32 bytes as
                  64 hex digits or base64 (`openssl rand -hex 32`); prefer the environment,
                  as arguments show in `ps`. A data file sealed with a key opens only with it:
                  without it, or with another, the gateway refuses to start and changes
                  nothing. Plaintext secrets already stored are sealed at start
                  (env STAGEGATE_SECRETS_KEY)
  --workers N     data-plane threads, each with its own single-threaded runtime and upstream
                  connections, all accepting on the one address (env STAGEGATE_WORKERS,
                  default: the CPUs this process may use)
  --max-connections N  open data-plane connections at once, all workers together; one beyond
                  it is closed at once (env STAGEGATE_MAX_CONNECTIONS, default 10000, lowered
                  to fit the open-files limit; the admin API takes at most 128)
  --header-read-timeout SECONDS  a connection's request head must arrive within this; also the
                  longest an HTTP/1 connection waits idle for its next request, on both
                  listeners (env STAGEGATE_HEADER_READ_TIMEOUT, default 10)
  --idle-timeout SECONDS  a connection with no request in flight and no byte moving is closed
                  after this, on both listeners (env STAGEGATE_IDLE_TIMEOUT, default 60)
  --metrics-listen ADDR  serve Prometheus metrics at GET /metrics on this address, without a
                  token: bind it where only your scraper reaches (env STAGEGATE_METRICS_LISTEN,
                  default: off)
  --log-format text|json  log lines as text (default) or one JSON object each
                  (env STAGEGATE_LOG_FORMAT)
  --trusted-proxies CIDR[,CIDR..]  believe X-Forwarded-For / X-Real-IP (the client's address,
                  for IP access control, CaClientIp and logs) and X-Forwarded-Proto /
                  Forwarded: proto= (HTTPS) only from peers in these networks; by default from
                  nobody (env STAGEGATE_TRUSTED_PROXIES)
  --tls-cert FILE --tls-key FILE  serve HTTPS with this certificate chain and private key (PEM;
                  the key PKCS#8, PKCS#1 or SEC1): the data plane, and the admin listener unless
                  --admin-tls off. HTTP/2 and HTTP/1.1 are offered by ALPN, sessions resume by
                  ticket or cache. A file that does not parse, a key that does not match the
                  certificate or a certificate out of its validity period stops the start. The
                  files are read again on SIGHUP and when they change (checked every 2 s): a
                  bad new pair is logged and the previous certificate kept. Group domains'
                  certificates (admin API) are served by SNI beside this default one
                  (env STAGEGATE_TLS_CERT, STAGEGATE_TLS_KEY)
  --admin-tls on|off  whether the admin listener serves HTTPS too when --tls-cert is given
                  (env STAGEGATE_ADMIN_TLS, default on); an admin listener off loopback without
                  TLS is warned about at start: its bearer token would cross the network in clear
  --http-listen ADDR  with --tls-cert: also listen for plain HTTP on ADDR, answered as
                  --http-mode says; nothing there reaches an API (env STAGEGATE_HTTP_LISTEN)
  --http-mode redirect|refuse  redirect (default): 308 to the same host, path and query over
                  https on the data plane's port; refuse: 403 I403PT (env STAGEGATE_HTTP_MODE)";

fn parse_args() -> Result<Config, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut cfg = Config {
        listen: env("STAGEGATE_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into()),
        admin_listen: env("STAGEGATE_ADMIN_LISTEN").unwrap_or_else(|| "127.0.0.1:9080".into()),
        data_dir: env("STAGEGATE_DATA_DIR").map_or_else(|| "stagegate-data".into(), PathBuf::from),
        store: StoreSpec::Redb,
        max_staleness: stagegate::admin::DEFAULT_MAX_STALENESS,
        admin_token: env("STAGEGATE_ADMIN_TOKEN"),
        admin_body_limit: None,
        admin_timeout: stagegate::admin::DEFAULT_ADMIN_TIMEOUT,
        commit_sync: CommitSync::default(),
        verify_on_open: env("STAGEGATE_VERIFY_ON_OPEN").is_some_and(|v| v != "0"),
        replay_capacity: MemoryReplayGuard::DEFAULT_MAX_ENTRIES,
        replay: Replay::Memory,
        replay_prefix: env("STAGEGATE_REPLAY_PREFIX"),
        throttle: Throttle::Local,
        throttle_prefix: env("STAGEGATE_THROTTLE_PREFIX"),
        throttle_nodes: None,
        throttle_batch: None,
        secrets_key: None,
        workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        max_connections: None,
        header_read_timeout: stagegate::serve::DEFAULT_HEADER_READ_TIMEOUT,
        idle_timeout: stagegate::serve::DEFAULT_IDLE_TIMEOUT,
        config: env("STAGEGATE_CONFIG").map(PathBuf::from),
        config_scope: PlanScope::Whole,
        access_keys: Vec::new(),
        metrics_listen: env("STAGEGATE_METRICS_LISTEN"),
        log_json: false,
        trusted_proxies: TrustedProxies::default(),
        tls: None,
        admin_tls: true,
        http_listen: env("STAGEGATE_HTTP_LISTEN"),
        http_mode: HttpMode::Redirect,
    };
    if let Some(v) = env("STAGEGATE_TRUSTED_PROXIES") {
        cfg.trusted_proxies = v
            .parse()
            .map_err(|e| format!("STAGEGATE_TRUSTED_PROXIES: {e}"))?;
    }
    let (mut tls_cert, mut tls_key) = (
        env("STAGEGATE_TLS_CERT").map(PathBuf::from),
        env("STAGEGATE_TLS_KEY").map(PathBuf::from),
    );
    if let Some(v) = env("STAGEGATE_ADMIN_TLS") {
        cfg.admin_tls = parse_on_off("STAGEGATE_ADMIN_TLS", &v)?;
    }
    if let Some(v) = env("STAGEGATE_HTTP_MODE") {
        cfg.http_mode = parse_http_mode("STAGEGATE_HTTP_MODE", &v)?;
    }
    if let Some(v) = env("STAGEGATE_CONFIG_SCOPE") {
        cfg.config_scope = parse_scope("STAGEGATE_CONFIG_SCOPE", &v)?;
    }
    if let Some(v) = env("STAGEGATE_ACCESS_KEYS") {
        for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            cfg.access_keys.push(
                AccessKeys::parse_pair(pair).map_err(|e| format!("STAGEGATE_ACCESS_KEYS: {e}"))?,
            );
        }
    }
    if let Some(v) = env("STAGEGATE_LOG_FORMAT") {
        cfg.log_json = parse_log_format("STAGEGATE_LOG_FORMAT", &v)?;
    }
    if let Some(v) = env("STAGEGATE_STORE") {
        parse_store(&mut cfg, "STAGEGATE_STORE", v)?;
    }
    if let Some(v) = env("STAGEGATE_MAX_STALENESS") {
        cfg.max_staleness = parse_duration("STAGEGATE_MAX_STALENESS", &v)?;
    }
    if let Some(v) = env("STAGEGATE_MAX_CONNECTIONS") {
        cfg.max_connections = Some(parse_max_connections("STAGEGATE_MAX_CONNECTIONS", &v)?);
    }
    if let Some(v) = env("STAGEGATE_HEADER_READ_TIMEOUT") {
        cfg.header_read_timeout = parse_seconds("STAGEGATE_HEADER_READ_TIMEOUT", &v)?;
    }
    if let Some(v) = env("STAGEGATE_ADMIN_TIMEOUT") {
        cfg.admin_timeout = parse_seconds("STAGEGATE_ADMIN_TIMEOUT", &v)?;
    }
    if let Some(v) = env("STAGEGATE_IDLE_TIMEOUT") {
        cfg.idle_timeout = parse_seconds("STAGEGATE_IDLE_TIMEOUT", &v)?;
    }
    if let Some(v) = env("STAGEGATE_WORKERS") {
        cfg.workers = parse_workers("STAGEGATE_WORKERS", &v)?;
    }
    if let Some(v) = env("STAGEGATE_REPLAY_CAPACITY") {
        cfg.replay_capacity = parse_capacity("STAGEGATE_REPLAY_CAPACITY", &v)?;
    }
    if let Some(v) = env("STAGEGATE_REPLAY") {
        cfg.replay = parse_replay("STAGEGATE_REPLAY", &v)?;
    }
    if let Some(v) = env("STAGEGATE_THROTTLE") {
        cfg.throttle = parse_throttle("STAGEGATE_THROTTLE", &v)?;
    }
    if let Some(v) = env("STAGEGATE_THROTTLE_NODES") {
        cfg.throttle_nodes = Some(parse_u32("STAGEGATE_THROTTLE_NODES", &v)?);
    }
    if let Some(v) = env("STAGEGATE_THROTTLE_BATCH") {
        cfg.throttle_batch = Some(parse_u32("STAGEGATE_THROTTLE_BATCH", &v)?);
    }
    if let Some(v) = env("STAGEGATE_SECRETS_KEY") {
        cfg.secrets_key = Some(parse_secrets_key("STAGEGATE_SECRETS_KEY", &v)?);
    }
    if let Some(v) = env("STAGEGATE_COMMIT_SYNC") {
        cfg.commit_sync = parse_commit_sync(&v)?;
    }
    if let Some(v) = env("STAGEGATE_ADMIN_BODY_LIMIT") {
        cfg.admin_body_limit = Some(
            v.parse()
                .map_err(|_| format!("STAGEGATE_ADMIN_BODY_LIMIT `{v}` is not a number"))?,
        );
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--listen" => cfg.listen = value()?,
            "--admin-listen" => cfg.admin_listen = value()?,
            "--data-dir" => cfg.data_dir = PathBuf::from(value()?),
            "--store" => parse_store(&mut cfg, "--store", value()?)?,
            "--max-staleness" => {
                cfg.max_staleness = parse_duration("--max-staleness", &value()?)?;
            }
            "--admin-token" => cfg.admin_token = Some(value()?),
            "--config" => cfg.config = Some(PathBuf::from(value()?)),
            "--config-scope" => cfg.config_scope = parse_scope("--config-scope", &value()?)?,
            "--access-key" => cfg
                .access_keys
                .push(AccessKeys::parse_pair(&value()?).map_err(|e| format!("--access-key: {e}"))?),
            "--admin-body-limit" => {
                let v = value()?;
                cfg.admin_body_limit = Some(
                    v.parse()
                        .map_err(|_| format!("--admin-body-limit `{v}` is not a number"))?,
                );
            }
            "--admin-timeout" => cfg.admin_timeout = parse_seconds("--admin-timeout", &value()?)?,
            "--commit-sync" => cfg.commit_sync = parse_commit_sync(&value()?)?,
            "--replay-capacity" => {
                cfg.replay_capacity = parse_capacity("--replay-capacity", &value()?)?;
            }
            "--replay" => cfg.replay = parse_replay("--replay", &value()?)?,
            "--replay-prefix" => cfg.replay_prefix = Some(value()?),
            "--throttle" => cfg.throttle = parse_throttle("--throttle", &value()?)?,
            "--throttle-prefix" => cfg.throttle_prefix = Some(value()?),
            "--throttle-nodes" => {
                cfg.throttle_nodes = Some(parse_u32("--throttle-nodes", &value()?)?);
            }
            "--throttle-batch" => {
                cfg.throttle_batch = Some(parse_u32("--throttle-batch", &value()?)?);
            }
            "--secrets-key" => {
                cfg.secrets_key = Some(parse_secrets_key("--secrets-key", &value()?)?);
            }
            "--workers" => cfg.workers = parse_workers("--workers", &value()?)?,
            "--max-connections" => {
                cfg.max_connections = Some(parse_max_connections("--max-connections", &value()?)?);
            }
            "--header-read-timeout" => {
                cfg.header_read_timeout = parse_seconds("--header-read-timeout", &value()?)?;
            }
            "--idle-timeout" => cfg.idle_timeout = parse_seconds("--idle-timeout", &value()?)?,
            "--metrics-listen" => cfg.metrics_listen = Some(value()?),
            "--log-format" => cfg.log_json = parse_log_format("--log-format", &value()?)?,
            "--trusted-proxies" => {
                cfg.trusted_proxies = value()?
                    .parse()
                    .map_err(|e| format!("--trusted-proxies: {e}"))?;
            }
            "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
            "--admin-tls" => cfg.admin_tls = parse_on_off("--admin-tls", &value()?)?,
            "--http-listen" => cfg.http_listen = Some(value()?),
            "--http-mode" => cfg.http_mode = parse_http_mode("--http-mode", &value()?)?,
            "--verify-on-open" if inline.is_none() => cfg.verify_on_open = true,
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    cfg.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err("--tls-cert (STAGEGATE_TLS_CERT) needs --tls-key (STAGEGATE_TLS_KEY): the certificate's private key".into());
        }
        (None, Some(_)) => return Err("--tls-key (STAGEGATE_TLS_KEY) needs --tls-cert (STAGEGATE_TLS_CERT): the certificate chain".into()),
    };
    if cfg.http_listen.is_some() && cfg.tls.is_none() {
        return Err("--http-listen (STAGEGATE_HTTP_LISTEN) needs --tls-cert and --tls-key: the plain-HTTP listener redirects to or refuses in favour of HTTPS".into());
    }
    if let Some(prefix) = cfg.replay_prefix.take() {
        let Replay::Redis(builder) = cfg.replay else {
            return Err("--replay-prefix needs --replay redis://...".into());
        };
        let builder = builder.with_key_prefix(prefix);
        builder
            .clone()
            .build()
            .map_err(|e| format!("--replay-prefix: {e}"))?;
        cfg.replay = Replay::Redis(builder);
    }
    let tuned = [
        ("--throttle-prefix", cfg.throttle_prefix.is_some()),
        ("--throttle-nodes", cfg.throttle_nodes.is_some()),
        ("--throttle-batch", cfg.throttle_batch.is_some()),
    ];
    match &mut cfg.throttle {
        Throttle::Local => {
            if let Some((flag, _)) = tuned.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} needs --throttle redis://..."));
            }
        }
        Throttle::Redis(builder) => {
            let mut b = builder.clone();
            if let Some(prefix) = cfg.throttle_prefix.take() {
                b = b.with_key_prefix(prefix);
            }
            if let Some(n) = cfg.throttle_nodes {
                b = b.with_nodes(n);
            }
            if let Some(n) = cfg.throttle_batch {
                b = b.with_batch(n);
            }
            b.clone().build().map_err(|e| {
                let flag = match e.field {
                    "key_prefix" => "--throttle-prefix",
                    "nodes" => "--throttle-nodes",
                    "batch" => "--throttle-batch",
                    _ => "--throttle",
                };
                format!("{flag}: {e}")
            })?;
            *builder = b;
        }
    }
    Ok(cfg)
}

/// `local`, or a Redis URL (checked now; never repeated in a message: it may hold a password).
fn parse_throttle(name: &str, v: &str) -> Result<Throttle, String> {
    if v == "local" {
        return Ok(Throttle::Local);
    }
    if !v.contains("://") {
        return Err(format!(
            "{name} `{v}` is neither `local` nor a redis:// URL"
        ));
    }
    let builder = RedisCounter::builder(v);
    builder
        .clone()
        .build()
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Throttle::Redis(builder))
}

/// A whole number from 1 to 100 000 (the checks of its own setting come after).
fn parse_u32(name: &str, v: &str) -> Result<u32, String> {
    let n = parse_count(name, v, 1..=100_000, "a whole number from 1 to 100000")?;
    u32::try_from(n).map_err(|_| format!("{name} `{v}` is too large"))
}

/// `text` or `json`: whether log lines are JSON objects.
fn parse_log_format(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "text" => Ok(false),
        "json" => Ok(true),
        _ => Err(format!("{name} must be `text` or `json`, not `{v}`")),
    }
}

/// `on` or `off`.
fn parse_on_off(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{name} must be `on` or `off`, not `{v}`")),
    }
}

/// `redirect` or `refuse`.
fn parse_http_mode(name: &str, v: &str) -> Result<HttpMode, String> {
    match v {
        "redirect" => Ok(HttpMode::Redirect),
        "refuse" => Ok(HttpMode::Refuse),
        _ => Err(format!("{name} must be `redirect` or `refuse`, not `{v}`")),
    }
}

/// A `postgres://` URL (checked now; never repeated in a message: it may hold a password), or
/// else a data directory.
fn parse_store(cfg: &mut Config, name: &str, v: String) -> Result<(), String> {
    let scheme = v.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            v.parse::<tokio_postgres::Config>().map_err(|e| {
                format!("{name}: the PostgreSQL URL does not parse ({e}); it is not repeated here as it may hold a password")
            })?;
            cfg.store = StoreSpec::Postgres(v);
        }
        Some(other) => {
            return Err(format!(
                "{name}: `{other}://` is not a store this gateway knows: give a directory or a postgres:// URL"
            ));
        }
        None => {
            cfg.store = StoreSpec::Redb;
            cfg.data_dir = PathBuf::from(v);
        }
    }
    Ok(())
}

/// A duration such as `500ms`, `5s`, `2m` or `1h` (a bare number is seconds): more than 0, at
/// most a day.
fn parse_duration(name: &str, v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>().map(|n| n * scale) {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{name} `{v}` is not a duration such as 500ms, 5s or 1m (more than 0, at most 24h)"
        )),
    }
}

/// `memory`, or a Redis URL (checked now; never repeated in a message: it may hold a password).
fn parse_replay(name: &str, v: &str) -> Result<Replay, String> {
    if v == "memory" {
        return Ok(Replay::Memory);
    }
    if !v.contains("://") {
        return Err(format!(
            "{name} `{v}` is neither `memory` nor a redis:// URL"
        ));
    }
    let builder = RedisReplayGuard::builder(v);
    builder
        .clone()
        .build()
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Replay::Redis(builder))
}

/// A secrets key (never repeated in a message).
fn parse_secrets_key(name: &str, v: &str) -> Result<SecretsKey, String> {
    SecretsKey::parse(v).map_err(|e| format!("{name}: {e}"))
}

/// A plan scope: `whole` or `named`.
fn parse_scope(name: &str, v: &str) -> Result<PlanScope, String> {
    PlanScope::parse(v).map_err(|_| format!("{name} `{v}` is neither `whole` nor `named`"))
}

/// The largest configuration file read at start.
const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the configuration document in `path` (before anything else is opened: a missing or
/// malformed file changes nothing).
fn read_config(path: &Path) -> Result<ConfigDocument, String> {
    let what = |e: &dyn std::fmt::Display| format!("configuration {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| what(&e))?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| what(&e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(what(&format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    ConfigDocument::parse(&text, ConfigFormat::from_path(path))
        .map_err(|e| format!("{}; nothing was applied", what(&e)))
}

/// Applies the configuration document read from `path` (all or nothing) and says what it
/// changed.
async fn apply_config(
    control: &ControlPlane,
    path: &Path,
    doc: &ConfigDocument,
    scope: PlanScope,
) -> Result<(), String> {
    let plan = control
        .apply_document(doc, scope)
        .await
        .map_err(|e| format!("configuration {}: {e}; nothing was applied", path.display()))?;
    for step in &plan.steps {
        tracing::info!(config = %path.display(), "{step}");
    }
    let (create, change, publish, unpublish, delete) = plan.counts();
    println!(
        "configuration {} applied: {create} created, {change} changed, {publish} published, {unpublish} unpublished, {delete} deleted",
        path.display()
    );
    Ok(())
}

/// A replay-guard capacity: a whole number of nonces, at least one.
fn parse_capacity(name: &str, v: &str) -> Result<usize, String> {
    parse_count(name, v, 1..=usize::MAX, "a number of nonces (1 or more)")
}

/// A number of data-plane workers: 1 to 1024.
fn parse_workers(name: &str, v: &str) -> Result<usize, String> {
    parse_count(name, v, 1..=1024, "a number of workers (1 to 1024)")
}

/// A cap on open connections: 1 to 10 million.
fn parse_max_connections(name: &str, v: &str) -> Result<usize, String> {
    parse_count(
        name,
        v,
        1..=10_000_000,
        "a number of connections (1 to 10000000)",
    )
}

/// A timeout in seconds (fractions allowed): more than 0, at most a day.
fn parse_seconds(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{name} `{v}` is not a number of seconds (more than 0, at most 86400)"
        )),
    }
}

/// Raises the soft limit on open files to the hard limit, as nginx does (the common soft limit
/// of 1024 is what idle sockets exhausted), and returns the soft limit now in force.
fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The data plane's cap on open connections: as configured, else the default lowered so that
/// every connection (and the upstream connection it may hold) fits under the open-files limit,
/// with room for the admin API's connections and the process's own files.
fn data_max_connections(configured: Option<usize>, open_files: Option<u64>) -> usize {
    configured.unwrap_or_else(|| {
        let fits = open_files.map_or(DEFAULT_MAX_CONNECTIONS, |n| {
            let spare = n.saturating_sub(ADMIN_MAX_CONNECTIONS as u64 + 64) / 2;
            usize::try_from(spare).unwrap_or(usize::MAX)
        });
        fits.clamp(1, DEFAULT_MAX_CONNECTIONS)
    })
}

/// A whole number within `range`; else an error naming the flag or variable and `what`.
fn parse_count(
    name: &str,
    v: &str,
    range: std::ops::RangeInclusive<usize>,
    what: &str,
) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{name} `{v}` is not {what}")),
    }
}

fn parse_commit_sync(v: &str) -> Result<CommitSync, String> {
    match v {
        "two-phase" => Ok(CommitSync::TwoPhase),
        "one-phase" => Ok(CommitSync::OnePhase),
        _ => Err(format!(
            "commit sync `{v}` is neither `two-phase` nor `one-phase`"
        )),
    }
}

/// The admin token: given, else the stored one, else a new one stored with mode 0600.
fn admin_token(cfg: &Config) -> Result<(Secret, Option<PathBuf>), String> {
    if let Some(t) = &cfg.admin_token {
        return Ok((Secret::new(t.clone()), None));
    }
    let path = cfg.data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((Secret::new(t.trim()), None)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let token = Secret::generate();
    write_private(&path, token.expose())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((token, Some(path)))
}

/// Creates the data directory owner-only (mode 0700) if it is missing, and refuses one that
/// group or others may write to: whoever can write there can replace the data file (every app
/// secret and AppCode) or the admin token.
fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)
            .map_err(|e| format!("cannot read the data directory {}: {e}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(format!(
                "the data directory {} can be written by {} (mode {:o}); whoever can write \
                 there can replace the data file or the admin token: make it the gateway \
                 user's alone (`chmod 700 {}`) or choose another --data-dir",
                dir.display(),
                if mode & 0o002 != 0 {
                    "anyone"
                } else {
                    "its group"
                },
                mode & 0o7777,
                dir.display()
            ));
        }
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// A default certificate this close to its end is warned about at every load.
const EXPIRY_WARNING_DAYS: i64 = 14;
/// How often the certificate files are checked for a change.
const TLS_POLL: Duration = Duration::from_secs(2);

/// Reads and checks the certificate pair in `files` with `stagegate::tls::CertificatePair`:
/// the chain and key parse, the key matches the certificate, the certificate is within its
/// validity period. Errors name the file and the problem. The one place that decides whether
/// a pair may be served (at start and at every reload).
fn load_certificate(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    use stagegate::tls::{CertError, CertificatePair, MAX_PEM_LEN};
    let (cert_path, key_path) = (files.cert.display(), files.key.display());
    let read = |path: &Path, flag: &str| -> Result<String, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("{flag} {}: cannot read the file: {e}", path.display()))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_PEM_LEN as u64 + 1),
            &mut bytes,
        )
        .map_err(|e| format!("{flag} {}: cannot read the file: {e}", path.display()))?;
        String::from_utf8(bytes)
            .map_err(|_| format!("{flag} {}: not a PEM text (not UTF-8)", path.display()))
    };
    let cert_pem = read(&files.cert, "--tls-cert")?;
    let key_pem = read(&files.key, "--tls-key")?;
    let pair = CertificatePair::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
        CertError::KeyMismatch => format!(
            "--tls-key {key_path}: does not match the certificate in --tls-cert {cert_path}"
        ),
        e if e.field() == "private_key" => format!("--tls-key {key_path}: {}", e.reason()),
        e => format!("--tls-cert {cert_path}: {}", e.reason()),
    })?;
    tracing::info!(
        cert = %cert_path,
        names = ?pair.dns_names(),
        not_after = %pair.not_after(),
        sha256 = pair.sha256_fingerprint(),
        "default certificate loaded"
    );
    let left = pair.not_after().as_second() - jiff::Timestamp::now().as_second();
    if left < EXPIRY_WARNING_DAYS * 86_400 {
        tracing::warn!(
            cert = %cert_path,
            not_after = %pair.not_after(),
            "the default certificate expires within {EXPIRY_WARNING_DAYS} days: replace the files (they are read again on SIGHUP or when they change)"
        );
    }
    Ok(pair.certified_key())
}

/// Serves the group domains' certificates (uploaded through the admin API, on any node) by
/// SNI beside the default one, and again each time they change, until `stop` turns true.
async fn follow_domain_certificates(
    control: Arc<ControlPlane>,
    certs: Arc<Certificates>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = control.watch_certificates();
    loop {
        let domains: Vec<_> = control
            .domain_certificates()
            .await
            .into_iter()
            .filter(|(name, _)| match Certificates::check_name(name) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "a domain certificate cannot be served by SNI");
                    false
                }
            })
            .collect();
        let count = domains.len();
        match certs.replace_domains(domains) {
            Ok(()) => tracing::info!(domains = count, "domain certificates in force"),
            Err(e) => tracing::error!(error = %e, "domain certificates not replaced"),
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// When a file was last changed, and its length: a new pair written in place shows here.
fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads the certificate files again on SIGHUP (`hangup`) and whenever they change (checked
/// every [`TLS_POLL`]), and serves the new pair from the next handshake on. A pair that fails
/// [`load_certificate`] is logged and the previous certificate kept.
async fn watch_certificate(
    files: TlsFiles,
    certs: Arc<Certificates>,
    mut hangup: Hangup,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stamps = || (file_stamp(&files.cert), file_stamp(&files.key));
    let mut seen = stamps();
    let mut tick = tokio::time::interval(TLS_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = tokio::select! {
            () = hangup.recv() => "SIGHUP",
            _ = tick.tick() => {
                let now = stamps();
                if now == seen {
                    continue;
                }
                seen = now;
                "the files changed"
            }
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match load_certificate(&files) {
            Ok(key) => {
                certs.set_default(Some(key));
                tracing::info!(cert = %files.cert.display(), reason, "certificate reloaded: new handshakes get it");
            }
            Err(e) => tracing::error!(
                reason,
                error = %e,
                "the new certificate is refused; still serving the previous one"
            ),
        }
    }
}

/// SIGHUP, as a stream of wake-ups (never on other platforms).
struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    /// Installs the handler (before the addresses are printed: a SIGHUP after that is never
    /// the default action, which ends the process).
    fn install() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal =
                signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

// Start-up, signals and the first data-plane worker run on the main thread's single-threaded
// runtime; see `serve_data` for why the data plane is a set of these rather than one
// work-stealing runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    if cfg.log_json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    let config = cfg.config.as_deref().map(read_config).transpose()?;
    // The certificate is checked before anything is opened: a bad pair changes nothing.
    let tls = match &cfg.tls {
        Some(files) => {
            let certs = Arc::new(Certificates::new());
            certs.set_default(Some(load_certificate(files)?));
            let config = Certificates::server_config(&certs)
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            Some((files.clone(), certs, Arc::new(config)))
        }
        None => None,
    };
    let data_tls = tls.as_ref().map(|(_, _, config)| Arc::clone(config));
    let admin_tls = data_tls.clone().filter(|_| cfg.admin_tls);
    prepare_data_dir(&cfg.data_dir)?;
    let (control, store_label) = match &cfg.store {
        StoreSpec::Redb => {
            let db = cfg.data_dir.join(DB_FILE);
            let open = if cfg.verify_on_open {
                RedbStore::open_verified
            } else {
                RedbStore::open
            };
            let store = open(&db)
                .map_err(|e| match e {
                    // Not damage: another gateway (or this one, still stopping) holds the file.
                    StoreError::Locked { .. } | StoreError::Io { .. } => {
                        format!("cannot open the data file: {}", error_chain(&e))
                    }
                    _ => format!(
                        "cannot open the data file {}: {} (the gateway refuses to start rather than lose data; restore a backup or move the file away)",
                        db.display(),
                        error_chain(&e)
                    ),
                })?
                .with_commit_sync(cfg.commit_sync);
            let label = db.display().to_string();
            (open_control(store, &cfg, &label).await?, label)
        }
        StoreSpec::Postgres(url) => {
            // The error names the store (host and database), never the URL's password.
            let store = PostgresStore::connect(url)
                .await
                .map_err(|e| format!("cannot open the store: {}", error_chain(&e)))?;
            let label = store.name().to_owned();
            (open_control(store, &cfg, &label).await?, label)
        }
    };
    let control = Arc::new(control);
    if let (Some(path), Some(doc)) = (&cfg.config, &config) {
        apply_config(&control, path, doc, cfg.config_scope).await?;
    }
    // Every node follows the store: a change any node commits is applied here when the store
    // signals it, and at least every poll (a lost signal or a dropped listener delays it by
    // at most that). With the embedded file this node is the only writer; following costs a
    // read per poll and keeps /health's freshness current.
    let _follower = control.spawn_follower(follow_poll(cfg.max_staleness));
    let (token, generated) = admin_token(&cfg)?;

    // In memory: one replay guard for every worker, so a nonce is refused whichever worker sees
    // it again. In Redis: one guard (one connection) per worker, driven by that worker's own
    // runtime; Redis is the one store they share.
    let memory_auth =
        AppAuthenticator::new(MemoryReplayGuard::new().with_max_entries(cfg.replay_capacity));
    let auth = || -> Result<AppAuthenticator, String> {
        match &cfg.replay {
            Replay::Memory => Ok(memory_auth.clone()),
            Replay::Redis(builder) => Ok(AppAuthenticator::new(
                builder
                    .clone()
                    .build()
                    .map_err(|e| format!("--replay: {e}"))?,
            )),
        }
    };
    if let Replay::Redis(builder) = &cfg.replay {
        let probe = builder
            .clone()
            .build()
            .map_err(|e| format!("--replay: {e}"))?;
        match probe.ping().await {
            Ok(()) => tracing::info!(redis = ?probe, "nonces are kept in Redis"),
            Err(e) => tracing::warn!(
                redis = ?probe,
                error = %e,
                "Redis cannot be reached: requests carrying a nonce are refused with X503NS until it is back"
            ),
        }
    }
    // One throttling counter for every worker: a node counts (and leases from Redis) once,
    // whichever worker serves the request.
    let redis_counter = match &cfg.throttle {
        Throttle::Local => None,
        Throttle::Redis(builder) => {
            let c = builder
                .clone()
                .build()
                .map_err(|e| format!("--throttle: {e}"))?;
            tracing::info!(redis = ?c, "throttling counts across the cluster in Redis");
            Some(Arc::new(c))
        }
    };
    let counter: Arc<dyn RateCounter> = match &redis_counter {
        Some(c) => Arc::clone(c) as Arc<dyn RateCounter>,
        None => Arc::new(LocalCounter::new()),
    };
    // A gateway per worker (and one for the admin API's debugging), each with its own upstream
    // connection pool, so a connection is only ever used by the runtime that drives it.
    // OSS buckets live under the data directory (owner-only), never in the shared temp dir.
    let backends =
        Backends::new().with_object_stores(LocalObjectStores::new(cfg.data_dir.join(OSS_DIR)));
    // One registry for every worker: each worker's gateway counts into it.
    let metrics = cfg.metrics_listen.as_ref().map(|_| GatewayMetrics::new());
    let gateway = || -> Result<stagegate::GatewayService, String> {
        let layer = GatewayLayer::new(control.snapshot_handle())
            .with_authenticator(auth()?)
            .with_backends(backends.clone())
            .with_trusted_proxies(cfg.trusted_proxies.clone())
            .with_rate_counter(Arc::clone(&counter));
        Ok(match &metrics {
            Some(m) => layer.with_metrics(m.clone()),
            None => layer,
        }
        .standalone())
    };
    let mut admin = AdminApi::new(Arc::clone(&control), token.clone(), gateway()?)
        .with_timeout(cfg.admin_timeout)
        .with_max_staleness(cfg.max_staleness);
    if let Some(limit) = cfg.admin_body_limit {
        admin = admin.with_body_limit(limit);
    }
    // The CloudAPI endpoint shares the admin listener: `/` with an action goes to it.
    let keys =
        AccessKeys::persisted(cfg.data_dir.join(ACCESS_KEY_FILE)).map_err(|e| e.to_string())?;
    for (id, secret) in cfg.access_keys.clone() {
        keys.insert_static(id, secret)
            .map_err(|e| format!("--access-key / STAGEGATE_ACCESS_KEYS: {e}"))?;
    }
    let cloudapi = CloudApi::new(Arc::clone(&control), keys.clone());
    let admin = tower::Layer::layer(
        &cloudapi.layer(),
        admin.with_access_keys(keys.clone()).router(),
    );
    let metrics_listener = match &cfg.metrics_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };

    let data_listener = std::net::TcpListener::bind(&cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let admin_listener = std::net::TcpListener::bind(&cfg.admin_listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.admin_listen))?;
    let data_addr = data_listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let http_listener = match &cfg.http_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    if admin_tls.is_none() && !admin_addr.ip().is_loopback() {
        tracing::warn!(
            %admin_addr,
            "the admin listener is not on loopback and serves plain HTTP: the admin token crosses the network in clear; give --tls-cert and --tls-key (and not --admin-tls off)"
        );
    }

    let open_files = raise_open_files_limit();
    let data_limit = ConnectionLimit::new(data_max_connections(cfg.max_connections, open_files));
    let server = Server::new()
        .with_header_read_timeout(cfg.header_read_timeout)
        .with_idle_timeout(cfg.idle_timeout)
        .with_shutdown_grace(SHUTDOWN_GRACE);
    // One cap for all workers: they accept on one listener, and a full worker must not refuse
    // a connection another one has room for.
    let data_server = server.clone().with_connection_limit(data_limit.clone());
    let admin_server = server.with_max_connections(ADMIN_MAX_CONNECTIONS);

    let shutdown = shutdown_signal()?;
    let hangup = Hangup::install()?;
    if let Some(path) = generated {
        println!(
            "admin token (generated, stored in {}): {}",
            path.display(),
            token.expose()
        );
    }
    if let Some(l) = &metrics_listener {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        println!("stagegate metrics at http://{addr}/metrics");
    }
    let (data_scheme, admin_scheme) = (
        if data_tls.is_some() { "https" } else { "http" },
        if admin_tls.is_some() { "https" } else { "http" },
    );
    // before the admin line: tests stop reading stdout once they have both addresses
    if let Some(l) = &http_listener {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let answer = match cfg.http_mode {
            HttpMode::Redirect => "redirects to https (308)",
            HttpMode::Refuse => "refuses (403 I403PT)",
        };
        println!("stagegate plain HTTP listening on http://{addr}: {answer}");
    }
    println!("stagegate data plane listening on {data_scheme}://{data_addr}");
    println!(
        "stagegate web console at {admin_scheme}://{admin_addr}/console/ (sign in with the admin token)"
    );
    println!(
        "stagegate CloudAPI endpoint at {admin_scheme}://{admin_addr}/ ({} access keys)",
        keys.ids().len()
    );
    println!("stagegate admin API listening on {admin_scheme}://{admin_addr}");
    println!("stagegate data in {store_label}");
    tracing::info!(
        %data_addr,
        %admin_addr,
        data = %store_label,
        max_connections = data_limit.max(),
        open_files_limit = open_files,
        tls = data_tls.is_some(),
        admin_tls = admin_tls.is_some(),
        "stagegate started"
    );

    // The admin API runs on a thread and runtime of its own: a console change (and the snapshot
    // rebuild and durable commit it makes) is answered promptly while the data plane runs flat
    // out, and never holds up a data-plane worker.
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let metrics_task = match (metrics_listener, metrics.clone()) {
        (Some(listener), Some(metrics)) => Some(tokio::spawn(serve_metrics(
            listener,
            metrics_router(metrics, Arc::clone(&control), redis_counter.clone()),
            admin_server.clone(),
            admin_stopped.clone(),
        ))),
        _ => None,
    };
    let plain_task = http_listener.map(|listener| {
        let answer = match cfg.http_mode {
            HttpMode::Redirect => PlainHttp::redirect(data_addr.port()),
            HttpMode::Refuse => PlainHttp::refuse(),
        };
        tokio::spawn(serve_plain(
            listener,
            answer,
            // its own cap, as large as the data plane's: redirects must not crowd out HTTPS
            admin_server.clone().with_max_connections(data_limit.max()),
            admin_stopped.clone(),
        ))
    });
    let watch_tasks = tls.map(|(files, certs, _)| {
        [
            tokio::spawn(follow_domain_certificates(
                Arc::clone(&control),
                Arc::clone(&certs),
                admin_stopped.clone(),
            )),
            tokio::spawn(watch_certificate(
                files,
                certs,
                hangup,
                admin_stopped.clone(),
            )),
        ]
    });
    let admin_thread = spawn_admin(
        admin_listener,
        admin,
        admin_server,
        admin_tls,
        admin_stopped,
    )
    .map_err(|e| format!("cannot start the admin API: {e}"))?;

    let (stop_data, data_stopped) = tokio::sync::watch::channel(false);
    // Every data-plane worker has a thread of its own, and this (main) thread keeps the
    // control work: following the store, its connections, the metrics listener. A change's
    // feed read and snapshot rebuild then never run between two requests on a worker's
    // single-threaded runtime, where a request would wait for all of it; the OS scheduler
    // shares the CPU instead, and wakes a worker when its request arrives.
    let mut workers = Vec::with_capacity(cfg.workers);
    for i in 0..cfg.workers {
        let listener = data_listener
            .try_clone()
            .map_err(|e| format!("cannot share the data plane listener: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start data-plane worker {i}: {e}"))?;
        let (gateway, stopped, server) = (gateway()?, data_stopped.clone(), data_server.clone());
        let tls = data_tls.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("stagegate-worker-{i}"))
                .spawn(move || rt.block_on(serve_data(listener, gateway, server, tls, stopped)))
                .map_err(|e| format!("cannot start data-plane worker {i}: {e}"))?,
        );
    }
    drop((data_listener, data_server, data_tls, data_stopped));
    shutdown.await;
    tracing::info!("shutting down: letting in-flight requests finish");
    let _ = stop_data.send(true);
    let _ = stop_admin.send(true);
    // every worker and the admin thread drain their own connections within the same 30 s
    let tasks = [metrics_task, plain_task].into_iter().flatten();
    for t in tasks.chain(watch_tasks.into_iter().flatten()) {
        let _ = t.await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
        admin_thread.join()
    })
    .await;
    Ok(())
}

/// How often the follower looks at the store when no signal comes: every second, or more
/// often when the staleness bound is shorter (so /health never reports a current node stale).
fn follow_poll(max_staleness: Duration) -> Duration {
    (max_staleness / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Opens the control plane on `store` (sealed under the secrets key when one is given),
/// loading everything it holds: a node that was down starts from the store as it is now,
/// whatever notifications it missed.
async fn open_control<S: Store>(
    store: S,
    cfg: &Config,
    label: &str,
) -> Result<ControlPlane, String> {
    // Every sealed secret is checked before anything else happens: no key, or the wrong one,
    // stops here with nothing changed.
    let sealing = cfg.secrets_key.as_ref().map(|k| k.id().to_owned());
    let store = SealedStore::open(store, cfg.secrets_key.clone())
        .await
        .map_err(|e| format!("cannot open {label}: {}", error_chain(&e)))?;
    if let Some(key_id) = &sealing {
        let sealed = store.seal_existing().await.map_err(|e| {
            format!(
                "cannot seal the secrets already in {label}: {}",
                error_chain(&e)
            )
        })?;
        tracing::info!(
            key_id = %key_id,
            sealed_now = sealed,
            "app secrets and AppCodes are sealed at rest"
        );
    }
    ControlPlane::open(store)
        .await
        .map_err(|e| format!("cannot load {label}: {}", error_chain(&e)))
}

/// One data-plane worker: accepts on its copy of the listener and serves each connection on
/// this thread's runtime until `stop` turns true; then lets its connections finish.
///
/// This is nginx's model (a worker per core, the kernel handing each new connection to
/// whichever worker accepts it first) with a single-threaded tokio runtime per worker. A
/// request then never leaves its thread: the upstream connection it takes from this worker's
/// pool is driven by the same runtime, and no wake-up crosses threads. In five paired load runs
/// on one core, against one work-stealing runtime, the signed API went from 0.43-0.51x nginx's
/// requests per second to 0.59-0.79x and the anonymous one from 0.70-0.95x to 0.72-0.90x
/// (`benches/performance-log.md`). What it gives up is stealing: a worker whose connections
/// are all busy does not hand requests to an idle one, which matters for few long-lived
/// connections on many cores (run fewer workers then).
async fn serve_data(
    listener: std::net::TcpListener,
    gateway: stagegate::GatewayService,
    server: Server,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "a data-plane worker cannot listen");
            return;
        }
    };
    // The peer is set once per connection, not as an extension of each request.
    let make = move |peer| gateway.clone().with_client_addr(peer);
    match tls {
        Some(config) => {
            server
                .serve_tls(listener, config, make, stopped(stop))
                .await
        }
        None => server.serve(listener, make, stopped(stop)).await,
    }
}

/// Serves the plain-HTTP listener (`--http-listen`) on the main runtime until `stop` turns
/// true: every request is redirected to HTTPS or refused, as `answer` says.
async fn serve_plain(
    listener: std::net::TcpListener,
    answer: PlainHttp,
    server: Server,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the plain-HTTP listener cannot listen");
            return;
        }
    };
    server
        .serve(listener, move |_peer| answer, stopped(stop))
        .await;
}

/// `GET /metrics`: the configuration gauges (and the throttling store's, with `--throttle
/// redis://…`) read now, then every metric as Prometheus text.
fn metrics_router(
    metrics: GatewayMetrics,
    control: Arc<ControlPlane>,
    throttle: Option<Arc<RedisCounter>>,
) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (metrics, control) = (metrics.clone(), Arc::clone(&control));
            let throttle = throttle.clone();
            async move {
                metrics.observe_freshness(&control.freshness().await);
                if let Some(c) = &throttle {
                    metrics.observe_throttle_store(&c.stats());
                }
                (
                    [(http::header::CONTENT_TYPE, stagegate::metrics::CONTENT_TYPE)],
                    metrics.render(),
                )
            }
        }),
    )
}

/// Serves the metrics listener on the main runtime until `stop` turns true.
async fn serve_metrics(
    listener: std::net::TcpListener,
    router: axum::Router,
    server: Server,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the metrics listener cannot listen");
            return;
        }
    };
    server
        .serve(listener, move |_peer| router.clone(), stopped(stop))
        .await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Serves the admin API on its own thread with a single-threaded runtime, until `stop` turns
/// true; then lets its connections finish.
fn spawn_admin(
    listener: std::net::TcpListener,
    admin: CloudApiRoute<axum::Router>,
    server: Server,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("stagegate-admin".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the admin API cannot listen");
                        return;
                    }
                };
                let make = move |_peer| admin.clone();
                match tls {
                    Some(config) => {
                        server
                            .serve_tls(listener, config, make, stopped(stop))
                            .await;
                    }
                    None => server.serve(listener, make, stopped(stop)).await,
                }
            });
        })
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives once the addresses are printed is never missed.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
