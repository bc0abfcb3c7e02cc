//! `RedbStore`: the conformance suite, persistence, damaged files, hostile input, concurrency and
//! crashes (a child process killed while it commits).
#![cfg(all(feature = "redb", feature = "conformance"))]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stagegate::model::{ApiDefinition, BackendId, Group, GroupId, Stage};
use stagegate::store::{
    Change, CommitSync, Deployment, Entity, EntityKind, Expect, Key, Loaded, RedbStore, Store,
    StoreError, Versioned, Write,
};

/// A database file that is removed when the test is done with it.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "stagegate-redb-test-{}-{name}-{n}.redb",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh store whose file is already unlinked (the open handle keeps it alive on Unix), so the
/// conformance suite leaves nothing behind.
fn fresh_store() -> RedbStore {
    let db = TempDb::new("conformance");
    RedbStore::open(db.path()).expect("open a new store")
}

stagegate::store_conformance!(redb_store_conforms, async { fresh_store() });

/// The same, committing in one phase (one `fsync` per commit).
fn fresh_one_phase_store() -> RedbStore {
    let db = TempDb::new("conformance-one-phase");
    RedbStore::open(db.path())
        .expect("open a new store")
        .with_commit_sync(CommitSync::OnePhase)
}

stagegate::store_conformance!(redb_store_conforms_committing_in_one_phase, async {
    fresh_one_phase_store()
});

fn group(name: &str) -> Group {
    Group::new(name).expect("valid group name")
}

async fn snapshot(s: &RedbStore) -> (Loaded, Vec<Change>) {
    let mut loaded = s.load().await.expect("load");
    loaded.records.sort_by_key(|r| r.value.key());
    let feed = s.changes_since(0, usize::MAX).await.expect("feed");
    (loaded, feed)
}

/// A store with a little history: puts, an update, a delete and a batch.
async fn populate(s: &RedbStore) -> Vec<Group> {
    let gs: Vec<Group> = (0..6).map(|i| group(&format!("group_pop{i}"))).collect();
    for g in &gs[..3] {
        s.commit(vec![Write::put(Entity::Group(g.clone()), Expect::Absent)])
            .await
            .expect("put");
    }
    let mut changed = gs[0].clone();
    changed.description = Some("needle-description-for-the-flip-test".into());
    s.commit(vec![Write::put(
        Entity::Group(changed.clone()),
        Expect::Version(1),
    )])
    .await
    .expect("update");
    s.commit(vec![Write::delete(
        Key::group(&gs[1].id),
        Expect::Version(1),
    )])
    .await
    .expect("delete");
    s.commit(
        gs[3..]
            .iter()
            .map(|g| Write::put(Entity::Group(g.clone()), Expect::Absent))
            .collect(),
    )
    .await
    .expect("batch");
    let mut out = gs;
    out[0] = changed;
    out
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let db = TempDb::new("reopen");
    let s = RedbStore::open(db.path()).unwrap();
    let gs = populate(&s).await;
    let before = snapshot(&s).await;
    assert_eq!(before.0.revision, 6);
    assert_eq!(before.0.records.len(), 5);
    drop(s);

    let s = RedbStore::open(db.path()).unwrap();
    assert_eq!(
        snapshot(&s).await,
        before,
        "records, versions, revision and feed"
    );
    assert_eq!(s.revision().await.unwrap(), 6);
    let got = s.get(&Key::group(&gs[0].id)).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.value, Entity::Group(gs[0].clone()));
    assert!(s.get(&Key::group(&gs[1].id)).await.unwrap().is_none());

    // Later commits carry on from where the file left off.
    let mut g = gs[0].clone();
    g.description = None;
    assert_eq!(
        s.commit(vec![Write::put(Entity::Group(g), Expect::Version(2))])
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        s.get(&Key::group(&gs[0].id))
            .await
            .unwrap()
            .unwrap()
            .version,
        3
    );
    // A key deleted before the reopen starts again at version 1.
    assert_eq!(
        s.commit(vec![Write::put(
            Entity::Group(gs[1].clone()),
            Expect::Absent
        )])
        .await
        .unwrap(),
        8
    );
    assert_eq!(
        s.get(&Key::group(&gs[1].id))
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

/// One-phase commits are as durable across a reopen; the choice belongs to the handle, not to
/// the file.
#[tokio::test]
async fn one_phase_commits_survive_a_reopen() {
    let db = TempDb::new("one-phase");
    let s = RedbStore::open(db.path())
        .unwrap()
        .with_commit_sync(CommitSync::OnePhase);
    assert_eq!(s.commit_sync(), CommitSync::OnePhase);
    let gs = populate(&s).await;
    let before = snapshot(&s).await;
    assert_eq!(before.0.revision, 6);
    drop(s);

    let s = RedbStore::open(db.path()).unwrap();
    assert_eq!(s.commit_sync(), CommitSync::TwoPhase);
    assert_eq!(snapshot(&s).await, before, "records, revision and feed");
    let got = s.get(&Key::group(&gs[0].id)).await.unwrap().unwrap();
    assert_eq!(got.value, Entity::Group(gs[0].clone()));
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_while_the_first_is_alive() {
    let db = TempDb::new("locked");
    let s = RedbStore::open(db.path()).unwrap();
    let r = RedbStore::open(db.path());
    let Err(e @ StoreError::Locked { .. }) = r else {
        panic!("{r:?}");
    };
    // The error says which file, and that it is held.
    let message = e.to_string();
    assert!(
        message.contains(&db.path().display().to_string()) && message.contains("already open"),
        "{message}"
    );
    drop(s);
    RedbStore::open(db.path()).expect("open once the first store is gone");
}

fn assert_refused(r: Result<RedbStore, StoreError>, what: &str) {
    match r {
        Err(e @ StoreError::Corrupt { .. }) => eprintln!("{what}: {e}"),
        other => panic!("{what}: expected a Corrupt error, got {other:?}"),
    }
}

#[test]
fn garbage_files_are_refused() {
    let mut noise = vec![0u8; 256 * 1024];
    getrandom::fill(&mut noise).unwrap();
    let cases: [(&str, Vec<u8>); 5] = [
        ("text", b"this is certainly not a database\n".to_vec()),
        ("noise", noise),
        ("zeros", vec![0u8; 64 * 1024]),
        ("one byte", vec![b'r']),
        ("json", br#"{"records": []}"#.to_vec()),
    ];
    for (what, bytes) in cases {
        let db = TempDb::new("garbage");
        std::fs::write(db.path(), &bytes).unwrap();
        assert_refused(RedbStore::open(db.path()), what);
        assert_eq!(
            std::fs::read(db.path()).unwrap(),
            bytes,
            "{what}: a refused file is left as it was"
        );
    }
    // An empty file is a new database, as redb treats it.
    let db = TempDb::new("empty");
    std::fs::write(db.path(), b"").unwrap();
    let s = RedbStore::open(db.path()).expect("an empty file is a new store");
    drop(s);
}

/// A populated database's bytes and its contents, and the file closed.
async fn reference_db(name: &str) -> (TempDb, Vec<u8>, (Loaded, Vec<Change>)) {
    let db = TempDb::new(name);
    let s = RedbStore::open(db.path()).unwrap();
    populate(&s).await;
    let contents = snapshot(&s).await;
    drop(s);
    let bytes = std::fs::read(db.path()).unwrap();
    (db, bytes, contents)
}

/// How a damaged file is opened: plainly (each record verified as it is read) or with redb's
/// whole-file integrity check first.
type Open = fn(&Path) -> Result<RedbStore, StoreError>;

const OPENS: [(&str, Open); 2] = [
    ("open", |p| RedbStore::open(p)),
    ("open_verified", |p| RedbStore::open_verified(p)),
];

/// Opens `bytes` as a database both ways: either it is refused (at open or when read), or it
/// reads back exactly `expected`. Returns whether it was refused; both ways must agree on that
/// when the data itself is damaged, and `open_verified` may refuse more (redb's own pages).
async fn refused_or_intact(bytes: &[u8], expected: &(Loaded, Vec<Change>), what: &str) -> bool {
    let mut refused = false;
    for (how, open) in OPENS {
        refused |= refused_or_intact_by(open, bytes, expected, &format!("{what} ({how})")).await;
    }
    refused
}

async fn refused_or_intact_by(
    open: Open,
    bytes: &[u8],
    expected: &(Loaded, Vec<Change>),
    what: &str,
) -> bool {
    let db = TempDb::new("damaged");
    std::fs::write(db.path(), bytes).unwrap();
    match open(db.path()) {
        Err(StoreError::Corrupt { .. }) => true,
        Err(e) => panic!("{what}: refused, but not as Corrupt: {e:?}"),
        Ok(s) => {
            let got = async {
                let mut loaded = s.load().await?;
                loaded.records.sort_by_key(|r| r.value.key());
                let feed = s.changes_since(0, usize::MAX).await?;
                Ok::<_, StoreError>((loaded, feed))
            }
            .await;
            match got {
                Ok(got) => assert_eq!(&got, expected, "{what}: opened with different data"),
                // Damage found on read, not at open: still an error, never wrong data.
                Err(StoreError::Corrupt { .. }) => return true,
                Err(e) => panic!("{what}: read failed, but not as Corrupt: {e:?}"),
            }
            false
        }
    }
}

#[tokio::test]
async fn a_truncated_database_is_refused_or_intact() {
    let (_db, bytes, expected) = reference_db("truncate").await;
    let len = bytes.len();
    let mut refused = 0;
    let mut cuts = vec![
        len - 1,
        len - 512,
        len - 4096,
        len / 2,
        8192,
        4096,
        320,
        100,
        10,
    ];
    cuts.retain(|&c| c < len);
    for cut in cuts {
        if refused_or_intact(&bytes[..cut], &expected, &format!("cut at {cut}/{len}")).await {
            refused += 1;
        }
    }
    assert!(refused > 0, "no truncation was noticed");
}

#[tokio::test]
async fn flipped_bytes_are_refused_or_harmless() {
    let (_db, bytes, expected) = reference_db("flip").await;
    let len = bytes.len();
    let (mut refused, mut harmless) = (0, 0);
    // Past the 4 KiB header page, through the middle to the end, at varying offsets within pages.
    let mut offset = 4096 + 17;
    while offset < len {
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0xFF;
        if refused_or_intact(&damaged, &expected, &format!("flip at {offset}/{len}")).await {
            refused += 1;
        } else {
            harmless += 1;
        }
        offset += 1021;
    }
    eprintln!("flips: {refused} refused, {harmless} harmless (unused pages)");
    // A flip inside the live record itself must be noticed.
    let needle = b"needle-description-for-the-flip-test";
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "the record is stored in clear");
    let mut damaged = bytes.clone();
    for &i in &hits {
        damaged[i + 3] ^= 0x01;
    }
    // Each way on its own: the plain open by the record's checksum, the verified one by redb's.
    for (how, open) in OPENS {
        assert!(
            refused_or_intact_by(open, &damaged, &expected, "flip in the record").await,
            "a flipped byte in a live record was not noticed ({how})"
        );
    }
}

#[tokio::test]
async fn header_damage_is_refused_or_harmless() {
    let (_db, bytes, expected) = reference_db("header").await;
    // The super-header: magic, god byte (9), layout and the two commit slots. Flipping the god
    // byte's primary bit selects the other commit slot; here (a closed file) that slot's layout
    // no longer fits the file and the open is refused. In general it could name the previous
    // commit, intact and checksummed: the one flip that redb cannot tell from a real state.
    // Every byte of the first 64 (magic, god byte, layout), then a stride through the slots: each
    // open verifies and commits (two fsyncs), so all 320 would take many seconds.
    for offset in (0..64).chain((64..320).step_by(5)) {
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0xFF;
        refused_or_intact(&damaged, &expected, &format!("header flip at {offset}")).await;
    }
}

#[tokio::test]
async fn a_foreign_redb_database_is_refused() {
    let db = TempDb::new("foreign");
    {
        let d = redb::Database::create(db.path()).unwrap();
        let t = d.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("theirs");
            let mut table = t.open_table(def).unwrap();
            table.insert(1, 2).unwrap();
        }
        t.commit().unwrap();
    }
    assert_refused(RedbStore::open(db.path()), "a foreign redb database");
}

const META: redb::TableDefinition<'static, &str, u64> = redb::TableDefinition::new("meta");
const RECORDS: redb::TableDefinition<'static, &str, &[u8]> = redb::TableDefinition::new("records");
const LOG: redb::TableDefinition<'static, (u64, u32), &[u8]> = redb::TableDefinition::new("log");

/// Changes the file behind the store's back, through redb.
fn tamper(path: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let d = redb::Database::open(path).unwrap();
    let t = d.begin_write().unwrap();
    f(&t);
    t.commit().unwrap();
}

#[test]
fn an_unknown_schema_version_is_refused() {
    let db = TempDb::new("schema");
    drop(RedbStore::open(db.path()).unwrap());
    tamper(db.path(), |t| {
        t.open_table(META)
            .unwrap()
            .insert("schema_version", 3)
            .unwrap();
    });
    match RedbStore::open(db.path()) {
        Err(StoreError::Corrupt { key, reason }) => {
            assert!(key.ends_with("meta/schema_version"), "{key}");
            assert!(reason.contains("schema version 3"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    tamper(db.path(), |t| {
        t.open_table(META)
            .unwrap()
            .remove("schema_version")
            .unwrap();
    });
    assert_refused(RedbStore::open(db.path()), "no schema version");
}

#[tokio::test]
async fn an_undecodable_record_is_corrupt_and_names_its_key() {
    let db = TempDb::new("record");
    let g = group("group_bad");
    let key = Key::group(&g.id);
    {
        let s = RedbStore::open(db.path()).unwrap();
        s.commit(vec![Write::put(Entity::Group(g.clone()), Expect::Absent)])
            .await
            .unwrap();
    }
    let name = key.to_string();
    tamper(db.path(), |t| {
        t.open_table(RECORDS)
            .unwrap()
            .insert(name.as_str(), b"{not json".as_slice())
            .unwrap();
    });
    let s = RedbStore::open(db.path()).unwrap();
    for r in [
        s.get(&key).await.map(|_| ()),
        s.load().await.map(|_| ()),
        s.commit(vec![Write::put(Entity::Group(g.clone()), Expect::Any)])
            .await
            .map(|_| ()),
    ] {
        match r {
            Err(StoreError::Corrupt { key: k, .. }) => assert_eq!(k, name),
            other => panic!("expected Corrupt naming {name}, got {other:?}"),
        }
    }
    drop(s);
    // A valid record filed under another key is just as corrupt.
    let other = group("group_other");
    let json = serde_json::to_vec(&stagegate::store::Versioned {
        value: Entity::Group(other),
        version: 1,
    })
    .unwrap();
    tamper(db.path(), |t| {
        t.open_table(RECORDS)
            .unwrap()
            .insert(name.as_str(), json.as_slice())
            .unwrap();
    });
    let s = RedbStore::open(db.path()).unwrap();
    assert!(matches!(s.get(&key).await, Err(StoreError::Corrupt { key: k, .. }) if k == name));
}

/// `load` decodes on several threads once a file holds a few thousand records: the records come
/// out exactly as one thread gives them, in the same order, and of two damaged records far apart
/// the first in key order is the one reported, whatever the thread count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_on_several_threads_gives_what_one_thread_gives() {
    let db = TempDb::new("threads");
    let groups: Vec<Group> = (0..3000).map(|i| group(&format!("group_t{i}"))).collect();
    {
        let s = RedbStore::open(db.path()).unwrap();
        for chunk in groups.chunks(500) {
            s.commit(
                chunk
                    .iter()
                    .map(|g| Write::put(Entity::Group(g.clone()), Expect::Absent))
                    .collect(),
            )
            .await
            .unwrap();
        }
    }
    let load = |threads: usize| {
        let path = db.path().to_path_buf();
        async move {
            let s = RedbStore::open(&path)
                .unwrap()
                .with_load_threads(std::num::NonZeroUsize::new(threads).unwrap());
            assert_eq!(s.load_threads(), threads);
            s.load().await
        }
    };
    let one = load(1).await.unwrap();
    assert_eq!(one.records.len(), groups.len());
    assert_eq!(one.revision, 6);
    for threads in [2, 3, 8] {
        let many = load(threads).await.unwrap();
        assert_eq!(many.revision, one.revision);
        assert_eq!(many.records, one.records, "{threads} threads");
    }
    // the records table is in key order: damage the 2 500th and then the 700th key
    let keys: Vec<String> = one
        .records
        .iter()
        .map(|r| r.value.key().to_string())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "load gives the records in key order");
    for at in [2500, 700] {
        tamper(db.path(), |t| {
            t.open_table(RECORDS)
                .unwrap()
                .insert(keys[at].as_str(), b"\x01garbage".as_slice())
                .unwrap();
        });
    }
    for threads in [1, 2, 8] {
        match load(threads).await {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, keys[700], "{threads} threads"),
            other => panic!(
                "{threads} threads: expected Corrupt naming {}, got {other:?}",
                keys[700]
            ),
        }
    }
}

/// A file of schema version 1 (records and change feed in JSON, as stagegate wrote them before
/// the binary format) opens, reads back, takes new writes, and is marked version 2.
#[tokio::test]
async fn a_json_file_of_schema_version_1_still_works() {
    let db = TempDb::new("json-v1");
    drop(RedbStore::open(db.path()).unwrap());
    let (a, b) = (group("group_json_a"), group("group_json_b"));
    let records: Vec<Versioned<Entity>> = [(&a, 1), (&b, 2)]
        .into_iter()
        .map(|(g, version)| Versioned {
            value: Entity::Group(g.clone()),
            version,
        })
        .collect();
    let feed: Vec<Change> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Change {
            revision: i as u64 + 1,
            key: r.value.key(),
            value: Some(r.clone()),
        })
        .collect();
    tamper(db.path(), |t| {
        let mut meta = t.open_table(META).unwrap();
        meta.insert("schema_version", 1).unwrap();
        meta.insert("revision", 2).unwrap();
        let mut table = t.open_table(RECORDS).unwrap();
        for r in &records {
            let json = serde_json::to_vec(r).unwrap();
            table
                .insert(r.value.key().to_string().as_str(), json.as_slice())
                .unwrap();
        }
        let mut log = t.open_table(LOG).unwrap();
        for c in &feed {
            log.insert((c.revision, 0), serde_json::to_vec(c).unwrap().as_slice())
                .unwrap();
        }
    });
    let s = RedbStore::open(db.path()).expect("a version 1 file opens");
    let (loaded, changes) = snapshot(&s).await;
    let mut expected = records.clone();
    expected.sort_by_key(|r| r.value.key());
    assert_eq!(loaded.records, expected);
    assert_eq!(loaded.revision, 2);
    assert_eq!(changes, feed);
    // A JSON record is updated in place (its version read from the JSON), and reads back.
    let mut renamed = b.clone();
    renamed.description = Some("now binary".into());
    s.commit(vec![Write::put(
        Entity::Group(renamed.clone()),
        Expect::Version(2),
    )])
    .await
    .expect("update a JSON record");
    let got = s.get(&Key::group(&b.id)).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (Entity::Group(renamed), 3));
    assert_eq!(s.changes_since(2, 10).await.unwrap().len(), 1);
    drop(s);
    // The file now says version 2; it reopens either way.
    let d = redb::Database::open(db.path()).unwrap();
    let version = {
        use redb::ReadableDatabase as _;
        let t = d.begin_read().unwrap();
        let meta = t.open_table(META).unwrap();
        meta.get("schema_version").unwrap().unwrap().value()
    };
    assert_eq!(version, 2);
    drop(d);
    let s = RedbStore::open_verified(db.path()).unwrap();
    assert_eq!(s.load().await.unwrap().records.len(), 2);
}

fn deployment(version: &str) -> Deployment {
    let api = ApiDefinition::new(
        GroupId::generate(),
        "api_odd",
        "GET",
        "/x",
        BackendId::generate(),
    )
    .expect("api");
    Deployment {
        api_id: api.id.clone(),
        stage: Stage::TEST,
        version: version.into(),
        description: None,
        deployed_at: jiff::Timestamp::now(),
        snapshot: api,
    }
}

#[tokio::test]
async fn hostile_input_round_trips() {
    let db = TempDb::new("hostile");
    let s = RedbStore::open(db.path()).unwrap();

    // A huge record: 8 MiB of description.
    let mut big = group("group_huge");
    big.description = Some("x".repeat(8 << 20));
    s.commit(vec![Write::put(Entity::Group(big.clone()), Expect::Absent)])
        .await
        .unwrap();

    // Keys with separators, traversal, control characters, NUL, non-ASCII, empty and long parts.
    let odd = [
        "",
        " ",
        "a/b",
        "/",
        "../../etc/passwd",
        "%2F%00",
        "nul\0inside",
        "line\nbreak\ttab\r",
        "é🦀\u{202e}",
        "\u{ffff}",
        "quote\"back\\slash",
    ];
    let long = "k".repeat(64 * 1024);
    let mut entities: Vec<Entity> = odd
        .iter()
        .copied()
        .chain([long.as_str()])
        .map(|v| Entity::Deployment(deployment(v)))
        .collect();
    entities.push(Entity::Group(big));
    s.commit(
        entities[..entities.len() - 1]
            .iter()
            .cloned()
            .map(|e| Write::put(e, Expect::Absent))
            .collect(),
    )
    .await
    .unwrap();
    drop(s);

    let s = RedbStore::open(db.path()).unwrap();
    for e in &entities {
        let got = s.get(&e.key()).await.unwrap().expect("present");
        assert_eq!(&got.value, e, "{:?}", e.key().id.get(..40));
    }
    assert_eq!(s.load().await.unwrap().records.len(), entities.len());
    for id in ["", "\0", "a/b", "group/x"] {
        let k = Key {
            kind: EntityKind::Group,
            id: id.into(),
        };
        assert!(s.get(&k).await.unwrap().is_none());
    }
    // Deleting an odd key works and is fed.
    let k = entities[2].key();
    let rev = s
        .commit(vec![Write::delete(k.clone(), Expect::Version(1))])
        .await
        .unwrap();
    let feed = s.changes_since(rev - 1, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].key, k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_one_wins_and_revisions_stay_consecutive() {
    let db = TempDb::new("race");
    let s = Arc::new(RedbStore::open(db.path()).unwrap());
    let g = group("group_race");
    let key = Key::group(&g.id);
    s.commit(vec![Write::put(Entity::Group(g.clone()), Expect::Absent)])
        .await
        .unwrap();
    for round in 1..=3u64 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = Arc::clone(&s);
                let mut g = g.clone();
                g.description = Some(format!("round {round} writer {i}"));
                tokio::spawn(async move {
                    s.commit(vec![Write::put(Entity::Group(g), Expect::Version(round))])
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one writer wins");
        assert_eq!(s.get(&key).await.unwrap().unwrap().version, round + 1);
    }
    // Writers on distinct keys all succeed, each with its own revision.
    let start = s.revision().await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..4 {
                    let g = group(&format!("group_t{t}_{i}"));
                    revs.push(
                        s.commit(vec![Write::put(Entity::Group(g), Expect::Absent)])
                            .await
                            .unwrap(),
                    );
                }
                revs
            })
        })
        .collect();
    let mut revs = Vec::new();
    for t in tasks {
        revs.extend(t.await.unwrap());
    }
    revs.sort_unstable();
    assert_eq!(revs, (start + 1..=start + 24).collect::<Vec<_>>());
    let feed = s.changes_since(start, usize::MAX).await.unwrap();
    assert_eq!(
        feed.iter().map(|c| c.revision).collect::<Vec<_>>(),
        revs,
        "the feed holds every commit once, in order"
    );
}

#[tokio::test]
async fn compaction_drops_old_feed_entries_durably() {
    let db = TempDb::new("compact");
    let s = RedbStore::open(db.path()).unwrap();
    populate(&s).await; // revisions 1..=6, 7 changes
    assert_eq!(
        s.compact_log_before(1).await.unwrap(),
        0,
        "nothing before 1"
    );
    assert_eq!(s.compact_log_before(4).await.unwrap(), 3);
    assert!(matches!(
        s.changes_since(2, 10).await,
        Err(StoreError::Compacted(2))
    ));
    assert_eq!(
        s.changes_since(3, 10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.revision)
            .collect::<Vec<_>>(),
        [4, 5, 6, 6, 6]
    );
    assert_eq!(s.compact_log_before(2).await.unwrap(), 0, "never backwards");
    drop(s);

    let s = RedbStore::open(db.path()).unwrap();
    assert!(matches!(
        s.changes_since(0, 10).await,
        Err(StoreError::Compacted(0))
    ));
    assert_eq!(s.changes_since(3, 10).await.unwrap().len(), 5);
    // Far in the future: capped at the current revision.
    assert_eq!(s.compact_log_before(1000).await.unwrap(), 5);
    assert!(s.changes_since(6, 10).await.unwrap().is_empty());
    assert!(s.changes_since(5, 10).await.is_err());
    let g = group("group_after");
    s.commit(vec![Write::put(Entity::Group(g), Expect::Absent)])
        .await
        .unwrap();
    assert_eq!(s.changes_since(6, 10).await.unwrap().len(), 1);
    assert_eq!(s.load().await.unwrap().records.len(), 6, "records are kept");
}

const CRASH_CHILD_ENV: &str = "STAGEGATE_REDB_CRASH_CHILD";

/// Not a test on its own: with `STAGEGATE_REDB_CRASH_CHILD` set to a database path, it commits
/// in a loop and prints `ACK <revision>` after each commit returns, until it is killed (or after
/// a bound, should its parent have died). Without the variable it does nothing.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = RedbStore::open(&path).expect("child open");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let mut g = group("group_crash");
            g.description = Some("y".repeat(3000));
            let rev = s
                .commit(vec![Write::put(Entity::Group(g), Expect::Absent)])
                .await
                .expect("child commit");
            println!("ACK {rev}");
        }
    });
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) % n
}

#[tokio::test]
async fn acknowledged_commits_survive_sigkill() {
    let db = TempDb::new("crash");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut runs = 0;
    let mut acked_total = 0;
    while runs < 10 && (runs < 3 || started.elapsed() < Duration::from_secs(8)) {
        runs += 1;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CRASH_CHILD_ENV, db.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the test binary as a writer");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rev) = line.strip_prefix("ACK ").and_then(|r| r.parse().ok()) {
                    let _ = tx.send(rev);
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(10));
        assert!(first.is_ok(), "run {runs}: the writer acknowledged nothing");
        std::thread::sleep(Duration::from_millis(random_below(120)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut acked: Vec<u64> = first.into_iter().collect();
        acked.extend(rx.try_iter());
        acked_total += acked.len();
        let last = *acked.last().unwrap();

        let s = RedbStore::open(db.path()).expect("the store opens cleanly after a SIGKILL");
        let revision = s.revision().await.unwrap();
        assert!(
            revision >= last,
            "run {runs}: acknowledged {last}, found {revision}"
        );
        let feed = s.changes_since(0, usize::MAX).await.unwrap();
        let revs: Vec<u64> = feed.iter().map(|c| c.revision).collect();
        assert_eq!(
            revs,
            (1..=revision).collect::<Vec<_>>(),
            "run {runs}: every commit is in the feed, once, in order"
        );
        for r in &acked {
            let c = &feed[(*r - 1) as usize];
            let v = c.value.as_ref().expect("a put");
            assert_eq!(
                s.get(&c.key).await.unwrap().as_ref(),
                Some(v),
                "run {runs}: acknowledged revision {r} is readable"
            );
        }
        assert_eq!(s.load().await.unwrap().records.len() as u64, revision);
    }
    eprintln!(
        "{runs} writers killed, {acked_total} acknowledged commits checked in {:?}",
        started.elapsed()
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_is_its_owners_alone_whether_new_or_left_readable_by_others() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = TempDb::new("mode");
    drop(RedbStore::open(db.path()).unwrap());
    assert_eq!(mode(db.path()), 0o600);

    // Left world-readable (by an older build, a copy): restricted on open, and intact.
    std::fs::set_permissions(db.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = RedbStore::open(db.path()).unwrap();
    assert_eq!(mode(db.path()), 0o600);
    assert_eq!(s.revision().await.unwrap(), 0);
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_named_with_the_cause() {
    let missing = std::env::temp_dir()
        .join(format!("stagegate-no-such-dir-{}", std::process::id()))
        .join("stagegate.redb");
    let r = RedbStore::open(&missing);
    let Err(e @ StoreError::Io { .. }) = r else {
        panic!("{r:?}");
    };
    let message = e.to_string();
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("No such file"),
        "{message}"
    );
}

/// The feed is compacted behind the retention window by the commits themselves (and stays so
/// after a reopen); a control plane behind the window resyncs from the records and ends with
/// exactly the writer's state.
#[tokio::test]
async fn the_feed_is_bounded_by_the_retention_window_and_a_lagging_node_resyncs() {
    let db = TempDb::new("retention");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(db.path()).unwrap().with_log_retention(3));
    let writer = stagegate::ControlPlane::open_shared(Arc::clone(&store))
        .await
        .unwrap();
    let reader = stagegate::ControlPlane::open_shared(Arc::clone(&store))
        .await
        .unwrap();
    let doomed = writer
        .create_backend(stagegate::control::NewBackend::new(
            "doomed",
            stagegate::model::BackendKind::Mock,
        ))
        .await
        .unwrap();
    reader.follow().await.unwrap();
    writer.delete_backend(&doomed.id).await.unwrap();
    for i in 0..20 {
        writer
            .create_backend(stagegate::control::NewBackend::new(
                format!("window{i}"),
                stagegate::model::BackendKind::Mock,
            ))
            .await
            .unwrap();
    }
    assert_eq!(store.revision().await.unwrap(), 22);
    assert!(matches!(
        store.changes_since(18, 100).await,
        Err(StoreError::Compacted(18))
    ));
    assert_eq!(
        store.changes_since(19, 100).await.unwrap().len(),
        3,
        "exactly the window is kept"
    );
    reader.follow().await.unwrap();
    assert_eq!(reader.records().await, writer.records().await);
    assert!(
        reader.backend(&doomed.id).await.is_err(),
        "the delete was not missed"
    );
    drop((writer, reader, store));
    let reopened = RedbStore::open(db.path()).unwrap();
    assert!(matches!(
        reopened.changes_since(1, 100).await,
        Err(StoreError::Compacted(1))
    ));
    assert_eq!(reopened.changes_since(19, 100).await.unwrap().len(), 3);
    assert_eq!(reopened.load().await.unwrap().records.len(), 20);
}
