//! [`PostgresStore`]: the store of a cluster of gateway nodes, on PostgreSQL (feature
//! `postgres`).
//!
//! Built on tokio-postgres with a deadpool-postgres connection pool, and TLS through rustls
//! (tokio-postgres-rustls; no OpenSSL).
//!
//! # Why no node serves stale configuration
//!
//! - **One revision counter, updated inside each commit.** A commit locks the single row of
//!   `stagegate_meta` (`SELECT ... FOR UPDATE`), checks every precondition against the records
//!   as they are once it holds the lock, writes, sets `revision = revision + 1` and commits. So
//!   commits are serialized: revisions are consecutive and assigned in commit order, and commit
//!   `N` is visible before commit `N + 1` can even start writing. A PostgreSQL sequence would not
//!   do: numbers it hands out can commit out of order, and a reader at `N` would skip a change
//!   that commits later with a smaller number. Here a reader (each read is one repeatable-read
//!   snapshot) sees a prefix of the history, never a history with a hole.
//! - **Optimistic versions checked under the lock.** Two nodes updating one record at the same
//!   version: the second to take the lock finds the first's version and gets
//!   [`StoreError::Conflict`]; no update is lost.
//! - **Wake-ups by `LISTEN`/`NOTIFY`, with polling behind them.** Each commit sends
//!   `pg_notify` with its revision in the same transaction (PostgreSQL delivers it at commit, in
//!   commit order). [`Store::subscribe`] starts one listening connection per store that
//!   forwards those revisions; it also asks for the revision every
//!   [`poll_interval`](PostgresStore::with_poll_interval), and after a lost connection
//!   reconnects and asks at once, so a lost notification delays a follower by at most that
//!   interval. The channel is named after the schema (`stagegate_<schema>`).
//! - **Bounded growth.** Each commit drops the change-feed entries that fall out of the
//!   retention window ([`with_log_retention`](PostgresStore::with_log_retention), default
//!   [`DEFAULT_LOG_RETENTION`]); a reader further behind gets [`StoreError::Compacted`] and
//!   reloads the records.
//!
//! # Schema and migrations
//!
//! The tables live in the connection's current schema (set it with
//! `options=-csearch_path%3Dname` in the URL). Their layout is versioned in
//! `stagegate_schema`; [`PostgresStore::connect`] applies the migrations this build knows, in
//! one transaction under a transaction-scoped advisory lock (so nodes starting together migrate
//! once), and refuses a schema newer than it knows with [`StoreError::SchemaTooNew`].
//!
//! # TLS
//!
//! `sslmode` in the URL is honoured: `disable` (plain TCP), `prefer` (the default: TLS when the
//! server offers it, plain TCP when it does not) and `require` (refused with a clear error when
//! the server has no TLS). Whenever TLS is used the server's certificate is verified, against
//! Mozilla's roots by default or the roots of the [`rustls::ClientConfig`] given to
//! [`PostgresStore::connect_with_tls`]: stricter than libpq, whose `prefer` and `require`
//! encrypt without verifying. A server offering TLS with a certificate no trusted CA signed is
//! refused, even with `prefer`; use `sslmode=disable` only on a trusted network.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, IsolationLevel};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::memory::check_writes;
use super::{
    BoxFuture, Change, DEFAULT_LOG_RETENTION, Entity, Key, Loaded, Revision, Store, StoreError,
    Versioned, Write, retained_floor, signal_revision,
};

/// The migrations, in order: migration `i` (from 0) brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("postgres/001_initial.sql")];

/// The newest schema version this build knows.
const SCHEMA_VERSION: u64 = MIGRATIONS.len() as u64;

/// The default number of pooled connections.
const DEFAULT_POOL_SIZE: usize = 8;

/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a pooled connection before the store counts as unavailable.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`PostgresStore::with_poll_interval`]: 5 s.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The `application_name` of the listening connection (to tell it apart in `pg_stat_activity`).
const LISTENER_NAME: &str = "stagegate-listener";

/// A [`Store`] in PostgreSQL, shared by every gateway node that connects to the same database
/// and schema. See the module docs for how commits, the feed and wake-ups work.
///
/// # Examples
///
/// ```no_run
/// use stagegate::ControlPlane;
/// use stagegate::store::PostgresStore;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://gateway@db.internal/gateway?sslmode=require").await?;
/// let cp = ControlPlane::open(store).await?;
/// # Ok(()) }
/// ```
pub struct PostgresStore {
    pool: Pool,
    /// How operators know the store: `postgres host:port/db` (never the password).
    name: String,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The `NOTIFY` channel of this schema.
    channel: String,
    retention: u64,
    poll: Duration,
    signal: watch::Sender<Revision>,
    /// The listening task, started by the first [`Store::subscribe`]; aborted on drop.
    listener: OnceLock<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("store", &self.name)
            .field("channel", &self.channel)
            .field("retention", &self.retention)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get() {
            task.abort();
        }
        self.pool.close();
    }
}

/// The ring provider with Mozilla's roots.
fn default_tls_config() -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt as _;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_webpki_roots()
        .with_no_client_auth()
}

/// An error with its causes, `a: b: c` (tokio-postgres keeps the cause out of `Display`).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// `postgres host:port/db`, for messages.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres {}/{db}", hosts.join(","))
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `NOTIFY` channel of `schema`, cut to PostgreSQL's 63-byte identifier limit.
fn channel_for(schema: &str) -> String {
    let mut c = format!("stagegate_{schema}");
    while c.len() > 63 {
        c.pop();
    }
    c
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string), with
    /// TLS as its `sslmode` says against Mozilla's roots, migrates the schema and returns the
    /// store.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidConfig`] for a URL that does not parse (the message does not repeat
    /// the URL, which may hold a password), [`StoreError::Unavailable`] when the database cannot
    /// be reached (or TLS is required and the server has none), [`StoreError::SchemaTooNew`]
    /// for a schema of a newer stagegate, [`StoreError::Backend`] when a migration fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::store::{PostgresStore, StoreError};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let e = PostgresStore::connect("postgres://u@h/db?sslmode=sometimes").await.unwrap_err();
    /// assert!(matches!(e, StoreError::InvalidConfig(_)));
    /// assert!(e.to_string().contains("sslmode"), "{e}");
    /// # });
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_tls(url, default_tls_config()).await
    }

    /// Like [`connect`](Self::connect), with TLS configured by `tls` (your own CA roots, a
    /// client certificate).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use stagegate::store::PostgresStore;
    /// # async fn run() -> Result<(), stagegate::store::StoreError> {
    /// let roots = rustls::RootCertStore::empty(); // add your CA here
    /// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    ///     .with_safe_default_protocol_versions()
    ///     .unwrap()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let store = PostgresStore::connect_with_tls("postgres://gateway@db/gateway?sslmode=require", tls).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_tls(
        url: &str,
        tls: rustls::ClientConfig,
    ) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::InvalidConfig(format!("the PostgreSQL URL does not parse: {}", chain(&e)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let name = describe(&config);
        let tls = MakeRustlsConnect::new(tls);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(DEFAULT_POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::InvalidConfig(format!("the connection pool: {e}")))?;
        let mut store = Self {
            pool,
            name,
            config,
            tls,
            channel: String::new(),
            retention: DEFAULT_LOG_RETENTION,
            poll: DEFAULT_POLL_INTERVAL,
            signal: watch::Sender::new(0),
            listener: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        let schema = store.migrate().await?;
        store.channel = channel_for(&schema);
        let revision = store.read_revision().await?;
        store.signal.send_replace(revision);
        Ok(store)
    }

    /// Keeps the changes of the last `revisions` commits in the change feed (at least 1; the
    /// default is [`DEFAULT_LOG_RETENTION`]): each commit deletes the entries that fall out of
    /// the window in its own transaction.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use stagegate::store::PostgresStore;
    /// # async fn run() -> Result<(), stagegate::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://gateway@db/gateway").await?.with_log_retention(100_000);
    /// assert_eq!(store.log_retention(), 100_000);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_log_retention(mut self, revisions: u64) -> Self {
        self.retention = revisions.max(1);
        self
    }

    /// How many revisions of change feed the store keeps.
    #[must_use]
    pub fn log_retention(&self) -> u64 {
        self.retention
    }

    /// How often the listening connection asks for the revision even without a notification
    /// (default 5 s), and how long it waits before reconnecting after losing its connection:
    /// the longest a lost notification delays a wake-up. Set it before the first
    /// [`Store::subscribe`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use stagegate::store::PostgresStore;
    /// # async fn run() -> Result<(), stagegate::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://gateway@db/gateway")
    ///     .await?
    ///     .with_poll_interval(Duration::from_secs(1));
    /// assert_eq!(store.poll_interval(), Duration::from_secs(1));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// The listening connection's poll interval.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// The store as messages name it: `postgres host:port/database`, never the password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use stagegate::store::PostgresStore;
    /// # async fn run() -> Result<(), stagegate::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://gateway:secret@db:5433/gw").await?;
    /// assert_eq!(store.name(), "postgres db:5433/gw");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema version this build of stagegate writes (and the newest it opens).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(stagegate::store::PostgresStore::schema_version() >= 1);
    /// ```
    #[must_use]
    pub fn schema_version() -> u64 {
        SCHEMA_VERSION
    }

    fn unavailable(&self, e: &(dyn std::error::Error + 'static)) -> StoreError {
        StoreError::Unavailable {
            store: self.name.clone(),
            source: chain(e).into(),
        }
    }

    /// A database error is the store's failure; anything else (I/O, a closed connection, a
    /// timeout) means the database cannot be reached.
    fn pg_err(&self, e: &tokio_postgres::Error) -> StoreError {
        if e.as_db_error().is_some() {
            StoreError::Backend(format!("{}: {}", self.name, chain(e)).into())
        } else {
            self.unavailable(e)
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => self.pg_err(&e),
            other => self.unavailable(&other),
        })
    }

    /// Applies the migrations this build knows under an advisory lock; returns the schema.
    async fn migrate(&self) -> Result<String, StoreError> {
        let mut client = self.client().await?;
        let err = |e: tokio_postgres::Error| self.pg_err(&e);
        let tx = client.transaction().await.map_err(err)?;
        let schema: Option<String> = tx
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(err)?
            .get(0);
        let Some(schema) = schema else {
            return Err(StoreError::InvalidConfig(format!(
                "{}: no current schema (the search_path names no schema that exists)",
                self.name
            )));
        };
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.stagegate_schema'))",
            &[],
        )
        .await
        .map_err(err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS stagegate_schema (version bigint NOT NULL)")
            .await
            .map_err(err)?;
        let found: Option<i64> = tx
            .query_opt("SELECT max(version) FROM stagegate_schema", &[])
            .await
            .map_err(err)?
            .and_then(|r| r.get(0));
        let found = to_u64(found.unwrap_or(0));
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                store: self.name.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(sql).await.map_err(|e| {
                StoreError::Backend(
                    format!(
                        "{}: migration to schema version {} failed: {}",
                        self.name,
                        i + 1,
                        chain(&e)
                    )
                    .into(),
                )
            })?;
        }
        if found < SCHEMA_VERSION {
            tx.execute("DELETE FROM stagegate_schema", &[])
                .await
                .map_err(err)?;
            tx.execute(
                "INSERT INTO stagegate_schema (version) VALUES ($1)",
                &[&to_i64(SCHEMA_VERSION)],
            )
            .await
            .map_err(err)?;
            tracing::info!(store = %self.name, from = found, to = SCHEMA_VERSION, "store schema migrated");
        }
        tx.commit().await.map_err(err)?;
        Ok(schema)
    }

    async fn read_revision(&self) -> Result<Revision, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT revision FROM stagegate_meta WHERE id = 1", &[])
            .await
            .map_err(|e| self.pg_err(&e))?;
        Ok(to_u64(row.get(0)))
    }

    async fn do_load(&self) -> Result<Loaded, StoreError> {
        let mut client = self.client().await?;
        let err = |e: tokio_postgres::Error| self.pg_err(&e);
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err)?;
        let revision = tx
            .query_one("SELECT revision FROM stagegate_meta WHERE id = 1", &[])
            .await
            .map_err(err)?;
        let rows = tx
            .query("SELECT key, version, value FROM stagegate_records", &[])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let records = rows
            .iter()
            .map(|r| decode_record(r.get(0), r.get(1), r.get(2)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded {
            revision: to_u64(revision.get(0)),
            records,
        })
    }

    async fn do_get(&self, key: &Key) -> Result<Option<Versioned<Entity>>, StoreError> {
        let client = self.client().await?;
        let k = key.to_string();
        let row = client
            .query_opt(
                "SELECT key, version, value FROM stagegate_records WHERE key = $1",
                &[&k],
            )
            .await
            .map_err(|e| self.pg_err(&e))?;
        row.map(|r| decode_record(r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    async fn do_commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        if writes.is_empty() {
            return self.read_revision().await;
        }
        let mut client = self.client().await?;
        let err = |e: tokio_postgres::Error| self.pg_err(&e);
        let tx = client.transaction().await.map_err(err)?;
        // The one lock every commit takes first: commits run one after another, in the order
        // they get it, and each sees every earlier one (read committed reads anew per statement).
        let meta = tx
            .query_one(
                "SELECT revision, log_floor FROM stagegate_meta WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(err)?;
        let current = to_u64(meta.get(0));
        let floor = to_u64(meta.get(1));
        let keys: Vec<String> = writes.iter().map(|w| w.key().to_string()).collect();
        let found: HashMap<String, i64> = tx
            .query(
                "SELECT key, version FROM stagegate_records WHERE key = ANY($1)",
                &[&keys],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        check_writes(&writes, |k| found.get(&k.to_string()).map(|v| to_u64(*v)))?;
        let revision = current + 1;
        let mut put_keys = Vec::new();
        let mut put_versions = Vec::new();
        let mut put_values = Vec::new();
        let mut deleted = Vec::new();
        let mut log = Vec::new();
        for (w, k) in writes.into_iter().zip(keys) {
            let change = match w {
                Write::Put { entity, .. } => {
                    let version = found.get(&k).map_or(1, |v| to_u64(*v) + 1);
                    let value = Versioned {
                        value: entity,
                        version,
                    };
                    put_values.push(encode(&k, &value.value)?);
                    put_versions.push(to_i64(version));
                    put_keys.push(k.clone());
                    Change {
                        revision,
                        key: value.value.key(),
                        value: Some(value),
                    }
                }
                Write::Delete { key, .. } => {
                    if !found.contains_key(&k) {
                        continue; // deleting what is not there changes nothing
                    }
                    deleted.push(k.clone());
                    Change {
                        revision,
                        key,
                        value: None,
                    }
                }
            };
            log.push(encode(&k, &change)?);
        }
        if !put_keys.is_empty() {
            tx.execute(
                "INSERT INTO stagegate_records (key, version, value) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[]) \
                 ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value",
                &[&put_keys, &put_versions, &put_values],
            )
            .await
            .map_err(err)?;
        }
        if !deleted.is_empty() {
            tx.execute(
                "DELETE FROM stagegate_records WHERE key = ANY($1)",
                &[&deleted],
            )
            .await
            .map_err(err)?;
        }
        if !log.is_empty() {
            let seqs: Vec<i32> = (0..i32::try_from(log.len()).unwrap_or(i32::MAX)).collect();
            tx.execute(
                "INSERT INTO stagegate_log (revision, seq, change) \
                 SELECT $1, s, c FROM UNNEST($2::int[], $3::text[]) AS u(s, c)",
                &[&to_i64(revision), &seqs, &log],
            )
            .await
            .map_err(err)?;
        }
        let new_floor = retained_floor(revision, self.retention).max(floor);
        if new_floor > floor {
            tx.execute(
                "DELETE FROM stagegate_log WHERE revision <= $1",
                &[&to_i64(new_floor)],
            )
            .await
            .map_err(err)?;
        }
        tx.execute(
            "UPDATE stagegate_meta SET revision = $1, log_floor = $2 WHERE id = 1",
            &[&to_i64(revision), &to_i64(new_floor)],
        )
        .await
        .map_err(err)?;
        // Delivered to listeners when (and only if) the transaction commits, in commit order.
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channel, &revision.to_string()],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        signal_revision(&self.signal, revision);
        Ok(revision)
    }

    async fn do_changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let mut client = self.client().await?;
        let err = |e: tokio_postgres::Error| self.pg_err(&e);
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err)?;
        let floor = to_u64(
            tx.query_one("SELECT log_floor FROM stagegate_meta WHERE id = 1", &[])
                .await
                .map_err(err)?
                .get(0),
        );
        if revision < floor {
            return Err(StoreError::Compacted(revision));
        }
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let mut rows = tx
            .query(
                "SELECT revision, seq, change FROM stagegate_log WHERE revision > $1 \
                 ORDER BY revision, seq LIMIT $2",
                &[&to_i64(revision), &limit],
            )
            .await
            .map_err(err)?;
        // Whole commits only: finish the last one the limit cut into.
        if let Some(last) = rows.last()
            && i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit
        {
            let (rev, seq): (i64, i32) = (last.get(0), last.get(1));
            rows.extend(
                tx.query(
                    "SELECT revision, seq, change FROM stagegate_log \
                     WHERE revision = $1 AND seq > $2 ORDER BY seq",
                    &[&rev, &seq],
                )
                .await
                .map_err(err)?,
            );
        }
        tx.commit().await.map_err(err)?;
        rows.iter()
            .map(|r| {
                let (rev, seq, text): (i64, i32, &str) = (r.get(0), r.get(1), r.get(2));
                let name = format!("stagegate_log/{rev}/{seq}");
                let change: Change =
                    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                        key: name.clone(),
                        reason: e.to_string(),
                    })?;
                if change.revision != to_u64(rev) {
                    return Err(StoreError::Corrupt {
                        key: name,
                        reason: format!("the entry is of revision {}", change.revision),
                    });
                }
                Ok(change)
            })
            .collect()
    }

    async fn do_compact(&self, before: Revision) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let err = |e: tokio_postgres::Error| self.pg_err(&e);
        let tx = client.transaction().await.map_err(err)?;
        let meta = tx
            .query_one(
                "SELECT revision, log_floor FROM stagegate_meta WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(err)?;
        let (revision, floor) = (to_u64(meta.get(0)), to_u64(meta.get(1)));
        let new_floor = before.saturating_sub(1).min(revision);
        if new_floor <= floor {
            return Ok(0);
        }
        let removed = tx
            .execute(
                "DELETE FROM stagegate_log WHERE revision <= $1",
                &[&to_i64(new_floor)],
            )
            .await
            .map_err(err)?;
        tx.execute(
            "UPDATE stagegate_meta SET log_floor = $1 WHERE id = 1",
            &[&to_i64(new_floor)],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(removed)
    }

    /// Starts the listening task (once).
    fn start_listener(&self) {
        self.listener.get_or_init(|| {
            let listener = Listener {
                config: self.config.clone(),
                tls: self.tls.clone(),
                channel: self.channel.clone(),
                signal: self.signal.clone(),
                poll: self.poll,
                name: self.name.clone(),
            };
            self.runtime.spawn(listener.run())
        });
    }
}

fn encode<T: serde::Serialize>(key: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("encoding {key}: {e}").into()))
}

fn decode_record(key: &str, version: i64, value: &str) -> Result<Versioned<Entity>, StoreError> {
    let entity: Entity = serde_json::from_str(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    if !entity.has_key(key) {
        return Err(StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("the record stored under this key is {}", entity.key()),
        });
    }
    Ok(Versioned {
        value: entity,
        version: to_u64(version),
    })
}

/// The listening connection: `LISTEN`s on the schema's channel and forwards each notified
/// revision to the store's signal; asks for the revision every `poll` too, and reconnects after
/// `poll` when the connection is lost (asking at once after reconnecting).
struct Listener {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: String,
    signal: watch::Sender<Revision>,
    poll: Duration,
    name: String,
}

impl Listener {
    async fn run(mut self) {
        self.config.application_name(LISTENER_NAME);
        loop {
            if let Err(e) = self.session().await {
                tracing::warn!(store = %self.name, error = %e, "store listener lost; polling until it reconnects");
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One connection's life: returns when it ends.
    async fn session(&self) -> Result<(), String> {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| chain(&e))?;
        let signal = self.signal.clone();
        // Drives the connection and forwards notifications; ends when the connection does.
        let mut driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if let Ok(rev) = n.payload().parse::<Revision>() {
                            signal_revision(&signal, rev);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return chain(&e),
                }
            }
            "the connection closed".to_owned()
        });
        let result = async {
            client
                .batch_execute(&format!("LISTEN {}", quote_ident(&self.channel)))
                .await
                .map_err(|e| chain(&e))?;
            loop {
                // Whatever was missed while not listening (or a lost notification).
                let row = client
                    .query_one("SELECT revision FROM stagegate_meta WHERE id = 1", &[])
                    .await
                    .map_err(|e| chain(&e))?;
                signal_revision(&self.signal, to_u64(row.get(0)));
                tokio::select! {
                    ended = &mut driver => {
                        return Err(ended.unwrap_or_else(|e| e.to_string()));
                    }
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        }
        .await;
        driver.abort();
        result
    }
}

impl Store for PostgresStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        Box::pin(self.do_load())
    }

    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        Box::pin(self.do_get(key))
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(self.do_commit(writes))
    }

    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        Box::pin(self.do_changes_since(revision, limit))
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(self.read_revision())
    }

    fn subscribe(&self) -> Option<watch::Receiver<Revision>> {
        self.start_listener();
        Some(self.signal.subscribe())
    }

    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.do_compact(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_named_without_its_password() {
        let c: tokio_postgres::Config = "postgres://gw:hunter2@db.example:5433/gateway"
            .parse()
            .unwrap();
        assert_eq!(describe(&c), "postgres db.example:5433/gateway");
    }

    #[test]
    fn channels_fit_postgres_identifiers() {
        assert_eq!(channel_for("public"), "stagegate_public");
        let long = "s".repeat(80);
        assert_eq!(channel_for(&long).len(), 63);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_migrations_are_numbered_from_one() {
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as u64);
        assert!(MIGRATIONS[0].contains("CREATE TABLE stagegate_meta"));
    }
}
