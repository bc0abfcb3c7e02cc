//! End to end over real TCP against `examples/gateway.rs` running as a separate process: the
//! documented walkthrough, restart persistence, SIGKILL while writing, admin auth, a damaged
//! data file, and export → import into a fresh data directory.
//!
//! The example binary is the one `cargo test` builds next to the test binaries
//! (`target/<profile>/examples/gateway`, so `CARGO_TARGET_DIR` is honoured); when it is missing
//! or older than the sources (e.g. only this test target was built), it is rebuilt once with
//! `cargo build --example gateway` and this test's features.
//! `STAGEGATE_GATEWAY_BIN` points the tests at another binary.
#![cfg(all(
    feature = "admin",
    feature = "redb",
    feature = "redis",
    feature = "sealed",
    unix
))]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token-0123456789";

fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps")
        .to_path_buf()
}

fn gateway_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("STAGEGATE_GATEWAY_BIN") {
            return PathBuf::from(p);
        }
        let bin = target_dir().join("examples").join("gateway");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let newest_source = ["src", "examples", "Cargo.toml", "Cargo.lock"]
            .iter()
            .filter_map(|p| newest_mtime(&root.join(p)))
            .max();
        if built.is_none() || newest_source > built {
            // Missing or stale (e.g. only this test target was built): build it with exactly
            // this test's features.
            let mut features = vec![
                "admin", "cloudapi", "postgres", "redb", "redis", "sealed", "serve",
            ];
            if cfg!(feature = "conformance") {
                features.push("conformance");
            }
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--example",
                    "gateway",
                    "--no-default-features",
                    "--features",
                ])
                .arg(features.join(","))
                .current_dir(root)
                .status()
                .expect("run cargo build --example gateway");
            assert!(status.success(), "cargo build --example gateway failed");
        }
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
}

/// The latest modification time of a file or of anything under a directory.
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

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "stagegate-e2e-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running example gateway.
struct Gateway {
    child: Child,
    admin: String,
    data: String,
    stdout_lines: Vec<String>,
    /// Where its stderr (the logs) goes.
    log: PathBuf,
}

impl Gateway {
    /// Starts the example on free ports with `data_dir`; `token: None` lets it generate one.
    fn start(data_dir: &Path, token: Option<&str>) -> Self {
        Self::start_with(data_dir, token, &[])
    }

    /// [`start`](Self::start) with more arguments.
    fn start_with(data_dir: &Path, token: Option<&str>, args: &[&str]) -> Self {
        // Beside a data directory the gateway is to create, so that it creates it.
        let log = if data_dir.exists() {
            data_dir.join("gateway.log")
        } else {
            data_dir.with_extension("log")
        };
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(gateway_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("STAGEGATE_ADMIN_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(t) = token {
            cmd.args(["--admin-token", t]);
        }
        cmd.args(args);
        let mut child = cmd.spawn().expect("spawn the example gateway");
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
        let (mut admin, mut data, mut lines) = (None, None, Vec::new());
        while admin.is_none() || data.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the gateway did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            if let Some(a) = line.strip_prefix("stagegate admin API listening on ") {
                admin = Some(a.trim().to_owned());
            }
            if let Some(a) = line.strip_prefix("stagegate data plane listening on ") {
                data = Some(a.trim().to_owned());
            }
            lines.push(line);
        }
        Self {
            child,
            admin: admin.unwrap_or_default(),
            data: data.unwrap_or_default(),
            stdout_lines: lines,
            log,
        }
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the gateway exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small HTTP client over real TCP.
#[derive(Clone)]
struct Http {
    client: common::HttpClient,
}

impl Http {
    fn new() -> Self {
        Self {
            client: common::client(),
        }
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<common::Got, String> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(common::collect(res).await)
    }

    /// An admin call with the test token; panics on transport errors.
    async fn admin(
        &self,
        gw: &Gateway,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> common::Got {
        let body = body.map(|b| b.to_string());
        self.send(
            method,
            &format!("{}{path}", gw.admin),
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "application/json"),
            ],
            body.as_deref(),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

impl Http {
    /// A GET with owned headers; panics on transport errors.
    async fn get_with(&self, url: &str, headers: &[(String, String)]) -> common::Got {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send("GET", url, &headers, None)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }
}

/// The headers of a GET of `url` in TEST signed as `app` (as the admin API created it), with a
/// fresh nonce each call.
fn signed_headers(app: &Value, url: &str) -> Vec<(String, String)> {
    let signer = stagegate::auth::Signer::new(
        app["app_key"].as_str().unwrap(),
        stagegate::model::Secret::new(app["app_secret"].as_str().unwrap()),
    )
    .unwrap()
    .with_stage(stagegate::model::Stage::TEST);
    let mut req = Request::get(url).body(()).unwrap();
    signer.sign(&mut req, b"");
    req.headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn id(g: &common::Got) -> String {
    g.json()["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", g.text()))
        .to_owned()
}

/// Sets up a MOCK backend, a group, an AppCode API published in TEST and an authorized app.
/// Returns (api id, app code).
async fn set_up(http: &Http, gw: &Gateway, body: &str) -> (String, String) {
    let (api, app) = set_up_app(http, gw, body).await;
    (api, app["app_code"].as_str().unwrap().to_owned())
}

/// [`set_up`], returning the app as the admin API created it (with its AppKey and secret).
async fn set_up_app(http: &Http, gw: &Gateway, body: &str) -> (String, Value) {
    let b = http
        .admin(
            gw,
            "POST",
            "/backends",
            Some(json!({"name": "e2e_mock", "type": "MOCK"})),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.text());
    let backend = id(&b);
    let r = http
        .admin(
            gw,
            "PUT",
            &format!("/backends/{backend}/stages/TEST"),
            Some(json!({"status": 200, "body": body})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = http
        .admin(gw, "POST", "/groups", Some(json!({"name": "e2e_group"})))
        .await;
    assert_eq!(g.status, 201, "{}", g.text());
    let group = id(&g);
    let a = http
        .admin(
            gw,
            "POST",
            "/apis",
            Some(json!({
                "group_id": group, "name": "e2e_api", "auth": "APP", "appcode_auth": "HEADER",
                "request": {"method": "GET", "path": "/e2e/[x]", "mode": "PASSTHROUGH"},
                "backend": {"backend_id": backend}
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let api = id(&a);
    let p = http
        .admin(
            gw,
            "POST",
            &format!("/apis/{api}/publish"),
            Some(json!({"stage": "TEST"})),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());
    let app = http
        .admin(gw, "POST", "/apps", Some(json!({"name": "e2e_app"})))
        .await;
    assert_eq!(app.status, 201, "{}", app.text());
    let app_json = app.json();
    let app = id(&app);
    let grant = http
        .admin(
            gw,
            "POST",
            &format!("/apis/{api}/authorizations"),
            Some(json!({"app_id": app, "stage": "TEST"})),
        )
        .await;
    assert_eq!(grant.status, 201, "{}", grant.text());
    (api, app_json)
}

async fn call_api(http: &Http, gw: &Gateway, code: &str) -> common::Got {
    http.send(
        "GET",
        &format!("{}/e2e/1", gw.data),
        &[
            ("authorization", &format!("APPCODE {code}")),
            ("x-ca-stage", "TEST"),
        ],
        None,
    )
    .await
    .unwrap()
}

// ----- the walkthrough -----

/// The `sh` blocks of the guide's walkthrough section (`docs/guide.md`, linked from the README),
/// each with the `text` block that follows it (the expected output: every line must appear in
/// that block's output, `...` standing for anything).
fn walkthrough_blocks() -> Vec<(String, Option<String>)> {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md"))
            .expect("docs/guide.md");
    let start = guide
        .find("\n## Walkthrough")
        .expect("the guide's walkthrough section");
    let section = &guide[start + 1..];
    let end = section[1..].find("\n## ").map_or(section.len(), |i| i + 1);
    let doc = &section[..end];
    let mut blocks: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = doc.lines();
    let mut last_was_sh = false;
    while let Some(line) = lines.next() {
        let fence = line.trim_end();
        if let Some(lang) = fence.strip_prefix("```") {
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.trim_end() == "```" {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            match lang {
                "sh" => {
                    blocks.push((body, None));
                    last_was_sh = true;
                }
                "text" if last_was_sh => {
                    if let Some(b) = blocks.last_mut() {
                        b.1 = Some(body);
                    }
                    last_was_sh = false;
                }
                _ => last_was_sh = false,
            }
        } else if !line.trim().is_empty() {
            last_was_sh = false;
        }
    }
    blocks
}

fn expect_in(output: &str, expected: &str, block: &str) {
    for want in expected.lines().filter(|l| !l.trim().is_empty()) {
        let mut rest = output;
        let mut ok = true;
        for piece in want.trim().split("...") {
            match rest.find(piece) {
                Some(i) => rest = &rest[i + piece.len()..],
                None => {
                    ok = false;
                    break;
                }
            }
        }
        assert!(
            ok,
            "walkthrough step\n{block}\nexpected `{want}` in its output:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_runs_against_the_example_gateway() {
    let dir = scratch("walkthrough");
    let data = dir.join("stagegate-data");
    std::fs::create_dir_all(&data).unwrap();
    // No --admin-token: the walkthrough reads the generated one from stagegate-data/admin-token.
    let gw = Gateway::start(&data, None);
    let blocks = walkthrough_blocks();
    assert!(blocks.len() >= 8, "the walkthrough lost its steps");
    let mut script = String::from("set -eu\n");
    for (i, (code, _)) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@block {i}@@'\n{code}"));
    }
    let out = tokio::task::spawn_blocking({
        let (admin, data_url, dir) = (gw.admin.clone(), gw.data.clone(), dir.clone());
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .env("ADMIN", admin)
                .env("GW", data_url)
                .env_remove("TOKEN")
                .output()
                .expect("run bash")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for (i, (code, expected)) in blocks.iter().enumerate() {
        let start = stdout
            .find(&format!("@@block {i}@@"))
            .unwrap_or_else(|| panic!("block {i} did not run:\n{stdout}"));
        let tail = &stdout[start..];
        let end = tail
            .find(&format!("@@block {}@@", i + 1))
            .unwrap_or(tail.len());
        if let Some(e) = expected {
            expect_in(&tail[..end], e, code);
        }
    }
    // The secret never shows in a debug answer.
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    assert!(
        !stdout.contains(token.trim()),
        "the admin token leaked into the output"
    );
    // The walkthrough cleans up after itself: nothing in the reader's directory but the
    // gateway's own data.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "stagegate-data")
        .collect();
    assert!(left.is_empty(), "the walkthrough left {left:?} behind");
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- persistence -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_routes_survive_a_restart_and_the_token_is_generated_once() {
    let dir = scratch("restart");
    let gw = Gateway::start(&dir, None);
    let token_file = dir.join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        gw.stdout_lines.iter().any(|l| l.contains(&token)),
        "a generated token is printed at first start"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    gw.stop();

    // From now on the stored token; use it through --admin-token for the helpers.
    let gw = Gateway::start(&dir, None);
    assert!(
        !gw.stdout_lines.iter().any(|l| l.contains(&token)),
        "the token is printed only once"
    );
    let http = Http::new();
    let no = http
        .send(
            "GET",
            &format!("{}/groups", gw.admin),
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(no.status, 200, "the stored token still works");
    gw.stop();

    let gw = Gateway::start(&dir, Some(TOKEN));
    let (api, code) = set_up(&http, &gw, "persisted").await;
    let before = call_api(&http, &gw, &code).await;
    assert_eq!(before.status, 200, "{}", before.text());
    assert_eq!(before.text(), "persisted");
    let apis_before = http.admin(&gw, "GET", "/apis", None).await.json();
    gw.stop();

    let gw = Gateway::start(&dir, Some(TOKEN));
    let after = call_api(&http, &gw, &code).await;
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(after.text(), "persisted");
    assert_eq!(
        http.admin(&gw, "GET", "/apis", None).await.json(),
        apis_before
    );
    let deps = http
        .admin(&gw, "GET", &format!("/apis/{api}/deployments"), None)
        .await;
    assert_eq!(deps.json()[0]["live"], true);
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_loses_no_acknowledged_change() {
    let dir = scratch("sigkill");
    let http = Http::new();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut n = 0u32;
    for round in 0..10 {
        let gw = Gateway::start(&dir, Some(TOKEN));
        // Everything acknowledged before the last kill is there.
        let listed = http.admin(&gw, "GET", "/groups", None).await.json();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        for a in &acknowledged {
            assert!(
                names.contains(&a.as_str()),
                "round {round}: acknowledged group {a} lost"
            );
        }
        // Write until killed at a random moment.
        let kill_after = Duration::from_millis(50 + u64::from(fastrand::u32(..250)));
        let writer = {
            let http = http.clone();
            let url = format!("{}/groups", gw.admin);
            let start = n;
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = start;
                loop {
                    let name = format!("sk_group_{i}");
                    i += 1;
                    let body = json!({"name": name}).to_string();
                    match http
                        .send(
                            "POST",
                            &url,
                            &[("authorization", &format!("Bearer {TOKEN}"))],
                            Some(&body),
                        )
                        .await
                    {
                        Ok(g) if g.status == 201 => acked.push(name),
                        Ok(g) => panic!("unexpected answer {}: {}", g.status, g.text()),
                        Err(_) => return (acked, i),
                    }
                }
            })
        };
        tokio::time::sleep(kill_after).await;
        gw.kill9();
        let (acked, next) = writer.await.unwrap();
        n = next;
        acknowledged.extend(acked);
    }
    let gw = Gateway::start(&dir, Some(TOKEN));
    let listed = http.admin(&gw, "GET", "/groups", None).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for a in &acknowledged {
        assert!(names.contains(&a.as_str()), "acknowledged group {a} lost");
    }
    assert!(
        acknowledged.len() >= 10,
        "the writer barely wrote: {}",
        acknowledged.len()
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_file_stops_the_start_with_a_clear_error() {
    let dir = scratch("damaged");
    std::fs::write(dir.join("stagegate.redb"), vec![0x5a; 64 * 1024]).unwrap();
    let out = Command::new(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--admin-token", TOKEN])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the data file"), "{stderr}");
    // The file is left alone for the operator to inspect.
    assert_eq!(
        std::fs::read(dir.join("stagegate.redb")).unwrap().len(),
        64 * 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the gateway once per bad value, given as `--flag value` or in `env_var`, and checks
/// that each start fails with `message` before the data file is created.
fn assert_start_refused(
    name: &str,
    flag: &str,
    env_var: &str,
    bad: &[(Option<&str>, Option<&str>)],
    message: &str,
) {
    let dir = scratch(name);
    for (arg, env) in bad {
        let mut cmd = Command::new(gateway_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--admin-token", TOKEN]);
        if let Some(a) = arg {
            cmd.args([flag, a]);
        }
        if let Some(e) = env {
            cmd.env(env_var, e);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{arg:?} {env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{arg:?} {env:?}: {stderr}");
        // refused before the data file is created
        assert!(!dir.join("stagegate.redb").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replay_capacity_worker_count_connection_cap_or_timeout_out_of_range_stops_the_start() {
    // (flag, environment variable, bad values as flag / variable, the error's words)
    let cases: [(&str, &str, [&str; 3], &str, &str); 6] = [
        (
            "--replay-capacity",
            "STAGEGATE_REPLAY_CAPACITY",
            ["0", "many", "-5"],
            "1e9",
            "is not a number of nonces",
        ),
        (
            "--workers",
            "STAGEGATE_WORKERS",
            ["0", "1025", "two"],
            "-1",
            "is not a number of workers (1 to 1024)",
        ),
        (
            "--max-connections",
            "STAGEGATE_MAX_CONNECTIONS",
            ["0", "lots", "-1"],
            "10000001",
            "is not a number of connections (1 to 10000000)",
        ),
        (
            "--header-read-timeout",
            "STAGEGATE_HEADER_READ_TIMEOUT",
            ["0", "-1", "soon"],
            "86401",
            "is not a number of seconds",
        ),
        (
            "--idle-timeout",
            "STAGEGATE_IDLE_TIMEOUT",
            ["0", "NaN", "inf"],
            "-0.5",
            "is not a number of seconds",
        ),
        (
            "--admin-timeout",
            "STAGEGATE_ADMIN_TIMEOUT",
            ["0", "-3", "later"],
            "86401",
            "is not a number of seconds",
        ),
    ];
    for (flag, env_var, flags, env, message) in cases {
        let mut bad: Vec<(Option<&str>, Option<&str>)> =
            flags.iter().map(|f| (Some(*f), None)).collect();
        bad.push((None, Some(env)));
        assert_start_refused(&format!("bad{flag}"), flag, env_var, &bad, message);
    }
}

#[test]
fn a_bad_trusted_proxy_list_stops_the_start() {
    assert_start_refused(
        "bad-trusted-proxies",
        "--trusted-proxies",
        "STAGEGATE_TRUSTED_PROXIES",
        &[
            (Some("10.0.0.0/33"), None),
            (Some("10.0.0.0/8,lb.internal"), None),
            (None, Some("*")),
        ],
        "is neither an IP address nor a CIDR",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_capacity_bounds_the_nonces_remembered() {
    let dir = scratch("replay-capacity");
    // one app may hold a quarter of the capacity: two nonces of eight
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--replay-capacity", "8"]);
    let http = Http::new();
    let (_api, app) = set_up_app(&http, &gw, "signed").await;
    let url = format!("{}/e2e/1", gw.data);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let got = http.get_with(&url, &signed_headers(&app, &url)).await;
        statuses.push((got.status, got.header("x-ca-error-code").map(str::to_owned)));
    }
    // two fresh nonces fit; the third is refused rather than an unexpired nonce forgotten
    assert_eq!(
        statuses,
        [(200, None), (200, None), (503, Some("X503BZ".to_owned()))]
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each data-plane worker accepts on the same address; the replay guard is shared, so the same
/// signed request sent on sixteen connections at once (which the kernel hands to whichever
/// worker accepts first) is accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_serve_every_connection_and_share_one_replay_guard() {
    let dir = scratch("workers");
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--workers", "4"]);
    let http = Http::new();
    let (_api, app) = set_up_app(&http, &gw, "from a worker").await;
    let url = format!("{}/e2e/1", gw.data);
    let headers = signed_headers(&app, &url);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (headers, url) = (headers.clone(), url.clone());
            // a client of its own: a connection of its own
            tokio::spawn(async move { Http::new().get_with(&url, &headers).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        let got = t.await.unwrap();
        if got.status == 200 {
            assert_eq!(got.text(), "from a worker");
            accepted += 1;
        } else {
            assert_eq!(
                got.header("x-ca-error-code"),
                Some("A400NU"),
                "{}",
                got.text()
            );
        }
    }
    assert_eq!(accepted, 1, "a replay is refused whichever worker sees it");
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- admin auth -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_the_right_token_are_refused_and_change_nothing() {
    let dir = scratch("auth");
    let gw = Gateway::start(&dir, Some(TOKEN));
    let http = Http::new();
    let health = http
        .send("GET", &format!("{}/health", gw.admin), &[], None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    // The web console's files are served on the admin listener without the token.
    assert!(
        gw.stdout_lines
            .iter()
            .any(|l| l.contains(&format!("{}/console/", gw.admin))),
        "the console's address is printed: {:?}",
        gw.stdout_lines
    );
    for (path, ty) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
    ] {
        let got = http
            .send("GET", &format!("{}{path}", gw.admin), &[], None)
            .await
            .unwrap();
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.header("content-type"), Some(ty));
        assert!(got.header("content-security-policy").is_some());
    }
    let body = json!({"name": "sneaky_group"}).to_string();
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong-token")],
        vec![("authorization", "Basic dGVzdDp0ZXN0")],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "test-admin-token-0123456789")],
    ] {
        for (method, path) in [
            ("POST", "/groups"),
            ("GET", "/groups"),
            ("GET", "/export"),
            ("DELETE", "/backends/x"),
        ] {
            let got = http
                .send(
                    method,
                    &format!("{}{path}", gw.admin),
                    &headers,
                    Some(&body),
                )
                .await
                .unwrap();
            assert_eq!(got.status, 401, "{method} {path} with {headers:?}");
            assert_eq!(got.json()["code"], "Unauthorized");
            assert!(got.json()["message"].is_string());
        }
    }
    let groups = http.admin(&gw, "GET", "/groups", None).await;
    assert_eq!(groups.json(), json!([]), "nothing changed");
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- export / import -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_data_dir_reproduces_the_behaviour() {
    let (dir_a, dir_b) = (scratch("export-a"), scratch("export-b"));
    let http = Http::new();
    let a = Gateway::start(&dir_a, Some(TOKEN));
    let (_api, code) = set_up(&http, &a, "same answer").await;
    let doc = http.admin(&a, "GET", "/export", None).await;
    assert_eq!(doc.status, 200);

    let b = Gateway::start(&dir_b, Some(TOKEN));
    let imported = http
        .send(
            "POST",
            &format!("{}/import", b.admin),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Some(&doc.text()),
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.text());
    // Survives a restart of the importing gateway too.
    b.stop();
    let b = Gateway::start(&dir_b, Some(TOKEN));

    let (ra, rb) = (
        call_api(&http, &a, &code).await,
        call_api(&http, &b, &code).await,
    );
    assert_eq!(ra.status, 200);
    assert_eq!((ra.status, ra.text()), (rb.status, rb.text()));
    let wrong = "0".repeat(32);
    let (ra, rb) = (
        call_api(&http, &a, &wrong).await,
        call_api(&http, &b, &wrong).await,
    );
    assert_eq!(
        (ra.status, ra.header("x-ca-error-code").map(str::to_owned)),
        (rb.status, rb.header("x-ca-error-code").map(str::to_owned))
    );
    for path in ["/backends", "/groups", "/apis", "/apps"] {
        assert_eq!(
            http.admin(&a, "GET", path, None).await.json(),
            http.admin(&b, "GET", path, None).await.json(),
            "{path}"
        );
    }
    a.stop();
    b.stop();
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

// ----- graceful shutdown and the access log -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_requests_are_logged() {
    let dir = scratch("graceful");
    let upstream = common::upstream("slow").await;
    let gw = Gateway::start(&dir, Some(TOKEN));
    let http = Http::new();
    let b = http
        .admin(
            &gw,
            "POST",
            "/backends",
            Some(json!({"name": "slow_http", "type": "HTTP"})),
        )
        .await;
    let backend = id(&b);
    let r = http
        .admin(
            &gw,
            "PUT",
            &format!("/backends/{backend}/stages/TEST"),
            Some(json!({"url": format!("http://{upstream}")})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = http
        .admin(&gw, "POST", "/groups", Some(json!({"name": "slow_group"})))
        .await;
    let a = http
        .admin(
            &gw,
            "POST",
            "/apis",
            Some(json!({
                "group_id": id(&g), "name": "slow", "auth": "ANONYMOUS",
                "request": {"method": "GET", "path": "/sleep/[ms]"},
                "backend": {"backend_id": backend}
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let p = http
        .admin(
            &gw,
            "POST",
            &format!("/apis/{}/publish", id(&a)),
            Some(json!({"stage": "TEST"})),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());

    let in_flight = {
        let http = http.clone();
        let url = format!("{}/sleep/1500", gw.data);
        tokio::spawn(async move {
            http.send("GET", &url, &[("x-ca-stage", "TEST")], None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    gw.stop(); // SIGTERM, then waits for a successful exit
    let got = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("x-upstream"), Some("slow"));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the gateway waited for it"
    );

    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap();
    let access = log
        .lines()
        .find(|l| l.contains("stagegate::access"))
        .unwrap_or_else(|| panic!("an access log line:\n{log}"));
    for field in [
        "request_id=",
        "group=",
        "api=slow",
        "stage=TEST",
        "app=",
        "status=200",
        "latency_us=",
    ] {
        assert!(access.contains(field), "{field} in {access}");
    }
    // Each admin call is traced with its X-Request-Id; the token never shows.
    let request_id = p.header("x-request-id").expect("an admin request id");
    assert!(
        log.lines()
            .any(|l| l.contains("admin{") && l.contains(request_id) && l.contains("status=201")),
        "the publish call, request id {request_id}, in:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the admin token in the log:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 20 item 4: the example gateway keeps OSS buckets in `<data-dir>/oss`, owner-only, not
/// in the shared temporary directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_buckets_live_owner_only_under_the_data_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("oss");
    let gw = Gateway::start(&dir, Some(TOKEN));
    let http = Http::new();
    let bucket = format!("e2e-{}", fastrand::u32(..));
    let b = http
        .admin(
            &gw,
            "POST",
            "/backends",
            Some(json!({"name": "e2e_oss", "type": "OSS"})),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.text());
    let backend = id(&b);
    let r = http
        .admin(
            &gw,
            "PUT",
            &format!("/backends/{backend}/stages/TEST"),
            Some(json!({"bucket": bucket, "permissions": {"read": true, "write": true}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = http
        .admin(&gw, "POST", "/groups", Some(json!({"name": "oss_group"})))
        .await;
    let group = id(&g);
    let a = http
        .admin(
            &gw,
            "POST",
            "/apis",
            Some(json!({
                "group_id": group, "name": "putObject", "auth": "ANONYMOUS",
                "request": {"method": "PUT", "path": "/o/[name]", "mode": "PASSTHROUGH"},
                "backend": {"backend_id": backend, "oss": {"action": "PutObject", "key": "[name]"}}
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let p = http
        .admin(
            &gw,
            "POST",
            &format!("/apis/{}/publish", id(&a)),
            Some(json!({"stage": "TEST"})),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());
    let put = http
        .send(
            "PUT",
            &format!("{}/o/hello.txt", gw.data),
            &[("x-ca-stage", "TEST")],
            Some("stored"),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.text());
    let root = dir.join("oss");
    assert_eq!(
        std::fs::read_to_string(root.join(&bucket).join("hello.txt")).unwrap(),
        "stored"
    );
    for d in [root.clone(), root.join(&bucket)] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    assert!(
        !std::env::temp_dir()
            .join("stagegate-oss")
            .join(&bucket)
            .exists(),
        "nothing in the shared temp dir"
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `host:port` of a listener URL the gateway printed (`http://127.0.0.1:port`).
fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_time_out_and_idle_connections_do_not_hold_up_shutdown() {
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpStream;
    let dir = scratch("idle");
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--header-read-timeout", "0.5"]);
    let (data, admin) = (
        host_port(&gw.data).to_owned(),
        host_port(&gw.admin).to_owned(),
    );

    // A silent socket on either listener is closed after the header-read timeout.
    for addr in [&data, &admin] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(
            common::closed_within(&mut s, Duration::from_secs(5))
                .await
                .is_some(),
            "a silent connection to {addr} stays open"
        );
    }

    // Kept alive after a request, half a request head, and nothing at all: none of them holds
    // up a shutdown (the grace period for requests in flight is 30 s).
    let http = Http::new();
    let ok = http
        .send("GET", &format!("{}/health", gw.admin), &[], None)
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let mut kept_alive = TcpStream::connect(&admin).await.unwrap();
    kept_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut partial = TcpStream::connect(&data).await.unwrap();
    partial
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let _silent = TcpStream::connect(&data).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    gw.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_caps_open_connections_and_the_admin_api_still_answers() {
    use tokio::net::TcpStream;
    let dir = scratch("cap");
    let gw = Gateway::start_with(
        &dir,
        Some(TOKEN),
        &["--max-connections", "2", "--workers", "2"],
    );
    let data = host_port(&gw.data).to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(&data).await.unwrap());
    }
    // let the workers accept them
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(&data).await.unwrap();
    let got = common::closed_within(&mut third, Duration::from_secs(3))
        .await
        .expect("the connection beyond the cap is closed at once");
    assert!(got.is_empty());
    // The admin listener has a cap of its own.
    let http = Http::new();
    let health = http
        .send("GET", &format!("{}/health", gw.admin), &[], None)
        .await
        .unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
    // Room again once one closes.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = http
        .send("GET", &format!("{}/nothing-here", gw.data), &[], None)
        .await
        .expect("served again below the cap");
    assert_eq!(answered.status, 404);
    drop(held);
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_the_owners_alone_and_one_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // Created by the gateway: 0700, its files 0600.
    let parent = scratch("perm");
    let dir = parent.join("data");
    let gw = Gateway::start(&dir, None);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("stagegate.redb")), 0o600);
    assert_eq!(mode(&dir.join("admin-token")), 0o600);
    gw.stop();

    // A data file left readable by others is restricted on the next start.
    std::fs::set_permissions(
        dir.join("stagegate.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let gw = Gateway::start(&dir, Some(TOKEN));
    assert_eq!(mode(&dir.join("stagegate.redb")), 0o600);
    gw.stop();

    // Writable by the group or by anyone: refused, and nothing in it is touched.
    for (bits, who) in [(0o770, "its group"), (0o777, "anyone"), (0o1777, "anyone")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(bits)).unwrap();
        let before = std::fs::read(dir.join("stagegate.redb")).unwrap();
        let out = Command::new(gateway_bin())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--admin-token", TOKEN])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "started on a {bits:o} data directory"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("can be written by {who}")) && stderr.contains("chmod 700"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(dir.join("stagegate.redb")).unwrap(), before);
    }
    let _ = std::fs::remove_dir_all(&parent);
}

#[cfg(target_os = "linux")]
#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit_at_start() {
    let dir = scratch("nofile");
    // Started with a soft limit of 256 (the hard limit is inherited).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 256 && exec "$0" "$@""#)
        .arg(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--admin-token", TOKEN])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        if line
            .unwrap()
            .starts_with("stagegate data plane listening on ")
        {
            break;
        }
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    assert_eq!(fields[3], fields[4], "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_data_directory_is_told_the_file_is_held() {
    let dir = scratch("held");
    let first = Gateway::start(&dir, Some(TOKEN));
    let out = Command::new(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--admin-token", TOKEN])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = dir.join("stagegate.redb").display().to_string();
    assert!(
        stderr.contains(&format!("{file} is already open")) && !stderr.contains("restore a backup"),
        "{stderr}"
    );
    first.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- several nodes: nonces in Redis, secrets sealed at rest -----

#[test]
fn a_bad_replay_store_or_secrets_key_stops_the_start() {
    assert_start_refused(
        "bad-replay",
        "--replay",
        "STAGEGATE_REPLAY",
        &[
            (Some("redis"), None),
            (Some("Memory"), None),
            (None, Some("127.0.0.1:6379")),
        ],
        "is neither `memory` nor a redis:// URL",
    );
    assert_start_refused(
        "bad-replay-url",
        "--replay",
        "STAGEGATE_REPLAY",
        &[
            (Some("rediss://127.0.0.1"), None),
            (Some("redis://:hunter2@127.0.0.1:port"), None),
            (None, Some("postgres://127.0.0.1/db")),
        ],
        "invalid Redis replay guard url: ",
    );
    assert_start_refused(
        "bad-replay-prefix",
        "--replay-prefix",
        "STAGEGATE_REPLAY_PREFIX",
        &[(Some("with space"), None)],
        "--replay-prefix needs --replay redis://",
    );
    let short = "ab".repeat(31);
    assert_start_refused(
        "bad-secrets-key",
        "--secrets-key",
        "STAGEGATE_SECRETS_KEY",
        &[
            (Some("short"), None),
            (Some(&short), None),
            (None, Some("not base64!")),
        ],
        "invalid secrets key: expected 32 bytes as 64 hex digits or base64",
    );
    // neither a password nor a key is ever repeated
    let dir = scratch("no-echo");
    let out = Command::new(gateway_bin())
        .args(["--data-dir"])
        .arg(&dir)
        .args(["--replay", "redis://:hunter2@127.0.0.1:port"])
        .args(["--secrets-key", "zz-not-a-key-but-a-secret-zz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let out = Command::new(gateway_bin())
        .args(["--data-dir"])
        .arg(&dir)
        .args(["--secrets-key", "zz-not-a-key-but-a-secret-zz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("not-a-key-but"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_throttle_store_or_setting_stops_the_start() {
    assert_start_refused(
        "bad-throttle",
        "--throttle",
        "STAGEGATE_THROTTLE",
        &[(Some("redis"), None), (None, Some("127.0.0.1:6379"))],
        "is neither `local` nor a redis:// URL",
    );
    assert_start_refused(
        "bad-throttle-url",
        "--throttle",
        "STAGEGATE_THROTTLE",
        &[
            (Some("rediss://127.0.0.1"), None),
            (None, Some("redis://:hunter2@127.0.0.1:port")),
        ],
        "invalid Redis throttling counter url: ",
    );
    assert_start_refused(
        "bad-throttle-nodes",
        "--throttle-nodes",
        "STAGEGATE_THROTTLE_NODES",
        &[(Some("0"), None), (None, Some("many"))],
        "is not a whole number from 1 to 100000",
    );
    // tuning a Redis counter that is not asked for is a mistake worth stopping for
    assert_start_refused(
        "throttle-prefix-alone",
        "--throttle-prefix",
        "STAGEGATE_THROTTLE_PREFIX",
        &[(Some("shop:rate:"), None)],
        "--throttle-prefix needs --throttle redis://",
    );
}

/// The Redis the tests share, or `None` after a skip message.
async fn shared_redis() -> Option<String> {
    let addr = common::services::redis_addr();
    match common::services::reachable(&addr).await {
        Ok(()) => Some(addr),
        Err(why) => {
            common::services::skip("Redis", &why);
            None
        }
    }
}

/// Two example gateways (separate data directories, one configuration imported into both) on
/// one Redis: a signed request served by one is refused by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_replayed_to_another_gateway_sharing_redis_is_refused() {
    let Some(addr) = shared_redis().await else {
        return;
    };
    let prefix = format!("{}:", common::services::unique_name("sg_e2e_nonce"));
    let url = format!("redis://{addr}");
    let args = ["--replay", &url, "--replay-prefix", &prefix];
    let (dir_a, dir_b) = (scratch("redis-a"), scratch("redis-b"));
    let http = Http::new();
    let a = Gateway::start_with(&dir_a, Some(TOKEN), &args);
    let (_api, app) = set_up_app(&http, &a, "one of two").await;
    let doc = http.admin(&a, "GET", "/export", None).await;
    assert_eq!(doc.status, 200);
    let b = Gateway::start_with(&dir_b, Some(TOKEN), &args);
    let imported = http
        .send(
            "POST",
            &format!("{}/import", b.admin),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Some(&doc.text()),
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.text());

    let (url_a, url_b) = (format!("{}/e2e/1", a.data), format!("{}/e2e/1", b.data));
    // the path and signature are the same on both nodes; only the address differs
    let headers = signed_headers(&app, &url_a);
    let first = http.get_with(&url_a, &headers).await;
    assert_eq!((first.status, first.text()), (200, "one of two".to_owned()));
    let replayed = http.get_with(&url_b, &headers).await;
    assert_eq!(
        (replayed.status, replayed.header("x-ca-error-code")),
        (400, Some("A400NU")),
        "the replay to the other node is refused"
    );
    // a fresh request is served by either
    let fresh = http.get_with(&url_b, &signed_headers(&app, &url_b)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    a.stop();
    b.stop();
    common::services::delete_redis_keys(&addr, &prefix).await;
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

/// Two example gateways (one configuration imported into both) counting throttling in one
/// Redis: together they admit at most the limit, and at most `batch - 1` fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_counting_in_redis_hold_one_throttling_limit() {
    let Some(addr) = shared_redis().await else {
        return;
    };
    let prefix = format!("{}:", common::services::unique_name("sg_e2e_rate"));
    let url = format!("redis://{addr}");
    let args = [
        "--throttle",
        &url,
        "--throttle-prefix",
        &prefix,
        "--throttle-nodes",
        "2",
        "--throttle-batch",
        "4",
    ];
    let (dir_a, dir_b) = (scratch("rate-a"), scratch("rate-b"));
    let http = Http::new();
    let a = Gateway::start_with(&dir_a, Some(TOKEN), &args);
    let (api, app) = set_up_app(&http, &a, "limited").await;
    let p = http
        .admin(
            &a,
            "POST",
            "/policies",
            Some(json!({"name": "twentyPerHour", "type": "THROTTLING", "unit": "HOUR", "api_default": 20})),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text());
    let bound = http
        .admin(
            &a,
            "POST",
            &format!("/apis/{api}/policies"),
            Some(json!({"policy_id": id(&p), "stage": "TEST"})),
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.text());
    let doc = http.admin(&a, "GET", "/export", None).await;
    let b = Gateway::start_with(&dir_b, Some(TOKEN), &args);
    let imported = http
        .send(
            "POST",
            &format!("{}/import", b.admin),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Some(&doc.text()),
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.text());

    let code = app["app_code"].as_str().unwrap().to_owned();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..60 {
        let got = call_api(&http, if i % 2 == 0 { &a } else { &b }, &code).await;
        match got.status {
            200 => admitted += 1,
            429 => {
                assert_eq!(got.header("x-ca-error-code"), Some("T429PA"));
                refused += 1;
            }
            other => panic!("{other}: {}", got.text()),
        }
    }
    assert_eq!(admitted + refused, 60);
    assert!(
        (20 - 3..=20).contains(&admitted),
        "admitted {admitted}: at most 20, at least 20 - (2 - 1) * (4 - 1)"
    );
    a.stop();
    b.stop();
    common::services::delete_redis_keys(&addr, &prefix).await;
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

/// With Redis unreachable the example gateway still starts; requests carrying a nonce are
/// refused with `X503NS`, AppCode calls are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_refuses_nonce_checks_and_nothing_else() {
    let port = common::dead_port().await;
    let dir = scratch("redis-dead");
    let url = format!("redis://127.0.0.1:{port}");
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--replay", &url]);
    let http = Http::new();
    let (_api, app) = set_up_app(&http, &gw, "no nonce needed").await;
    let data_url = format!("{}/e2e/1", gw.data);
    let got = http
        .get_with(&data_url, &signed_headers(&app, &data_url))
        .await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (503, Some("X503NS"))
    );
    let got = call_api(&http, &gw, app["app_code"].as_str().unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    gw.stop();
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(log.contains("Redis cannot be reached"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every record and the change feed of the data file, as stored (sealed), as text.
async fn stored_data(file: &Path) -> String {
    use stagegate::store::Store as _;
    let store = stagegate::store::RedbStore::open(file).unwrap();
    let loaded = store.load().await.unwrap();
    let feed = store.changes_since(0, usize::MAX).await.unwrap();
    serde_json::to_string(&(loaded, feed)).unwrap()
}

/// `--secrets-key`: the data file never holds an app secret or AppCode; without the key, or
/// with another, the gateway refuses to start and the file is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secrets_key_seals_the_data_file_and_only_that_key_restarts_it() {
    let dir = scratch("sealed");
    let key = "1f".repeat(32);
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--secrets-key", &key]);
    let http = Http::new();
    let (_api, app) = set_up_app(&http, &gw, "sealed at rest").await;
    let secret = app["app_secret"].as_str().unwrap().to_owned();
    let code = app["app_code"].as_str().unwrap().to_owned();
    gw.stop();
    let file = dir.join("stagegate.redb");
    let bytes = std::fs::read(&file).unwrap();
    for s in [&secret, &code] {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is in the data file in clear"
        );
    }
    let before = stored_data(&file).await;

    // another key, given as base64 in the environment, then no key at all
    let other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for (env, words) in [
        (Some(other), "but the secrets key given has id"),
        (None, "but no secrets key was given"),
    ] {
        let mut cmd = Command::new(gateway_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--admin-token", TOKEN])
            .env_remove("STAGEGATE_SECRETS_KEY");
        if let Some(k) = env {
            cmd.env("STAGEGATE_SECRETS_KEY", k);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{stderr}");
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert!(
            stored_data(&file).await == before,
            "a refused start changed the stored data"
        );
    }

    // the right key: everything as before
    let gw = Gateway::start_with(&dir, Some(TOKEN), &["--secrets-key", &key]);
    let data_url = format!("{}/e2e/1", gw.data);
    let got = http
        .get_with(&data_url, &signed_headers(&app, &data_url))
        .await;
    assert_eq!((got.status, got.text()), (200, "sealed at rest".to_owned()));
    assert_eq!(call_api(&http, &gw, &code).await.status, 200);
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- declarative configuration -----

/// The deployments of the one API, through the admin API.
async fn only_api_deployments(http: &Http, gw: &Gateway) -> usize {
    let apis = http.admin(gw, "GET", "/apis", None).await.json();
    let id = apis[0]["id"].as_str().unwrap().to_owned();
    let deps = http
        .admin(gw, "GET", &format!("/apis/{id}/deployments"), None)
        .await
        .json();
    deps.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_is_applied_at_start_again_changes_nothing_and_one_with_errors_stops_it() {
    let upstream = common::upstream("from-config").await;
    let dir = scratch("config");
    let data = dir.join("data");
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[backends]]
name = "users_http"
type = "HTTP"
stages.TEST.url = "http://{upstream}"

[[groups]]
name = "shop_api"

[[apis]]
name = "listUsers"
group = "shop_api"
auth = "ANONYMOUS"
request = {{ method = "GET", path = "/users" }}
backend = {{ name = "users_http" }}
publish = ["TEST"]
"#
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let http = Http::new();
    let call = |gw: &Gateway| {
        let url = format!("{}/users", gw.data);
        let http = http.clone();
        async move {
            http.send("GET", &url, &[("x-ca-stage", "TEST")], None)
                .await
                .unwrap()
        }
    };

    let gw = Gateway::start_with(&data, Some(TOKEN), &["--config", config]);
    assert!(
        gw.stdout_lines
            .iter()
            .any(|l| l
                .ends_with("applied: 3 created, 0 changed, 1 published, 0 unpublished, 0 deleted")),
        "{:?}",
        gw.stdout_lines
    );
    let got = call(&gw).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["tag"], "from-config");
    assert_eq!(only_api_deployments(&http, &gw).await, 1);
    gw.stop();

    // the same file at the next start: nothing changes
    let gw = Gateway::start_with(
        &data,
        Some(TOKEN),
        &["--config", config, "--config-scope", "whole"],
    );
    assert!(
        gw.stdout_lines
            .iter()
            .any(|l| l
                .ends_with("applied: 0 created, 0 changed, 0 published, 0 unpublished, 0 deleted")),
        "{:?}",
        gw.stdout_lines
    );
    assert_eq!(
        only_api_deployments(&http, &gw).await,
        1,
        "no new deployment"
    );
    assert_eq!(call(&gw).await.status, 200);
    gw.stop();

    // a file with errors: the start is refused listing every one, and nothing changes
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"backends": [{"name": "users_http", "type": "HTTP", "stages": {"TEST": {"url": "ftp://x"}}}],
            "groups": [{"name": "shop_api", "base_path": "no-slash"}],
            "apis": [{"name": "listUsers", "group": "shop_api", "request": {"method": "GET", "path": "/users"},
                      "backend": {"name": "users_http"}, "publish": ["PRE"]}]}"#,
    )
    .unwrap();
    let out = Command::new(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--admin-token", TOKEN])
        .env("STAGEGATE_CONFIG", &bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "3 errors in the configuration document",
        "- backend `users_http`: stages.TEST.url: ",
        "- group `shop_api`: ",
        "- api `shop_api/listUsers`: publish: backend `users_http` has no definition in stage PRE",
        "nothing was applied",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let gw = Gateway::start_with(&data, Some(TOKEN), &[]);
    assert_eq!(only_api_deployments(&http, &gw).await, 1);
    let got = call(&gw).await;
    assert_eq!(got.json()["tag"], "from-config", "{}", got.text());
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_scope_or_a_missing_config_file_stops_the_start() {
    assert_start_refused(
        "config-scope",
        "--config-scope",
        "STAGEGATE_CONFIG_SCOPE",
        &[(Some("all"), None), (None, Some("partial"))],
        "is neither `whole` nor `named`",
    );
    assert_start_refused(
        "config-missing",
        "--config",
        "STAGEGATE_CONFIG",
        &[(Some("/nonexistent/gateway.toml"), None)],
        "configuration /nonexistent/gateway.toml: No such file",
    );
}

// ----- metrics and the access log -----

#[tokio::test]
async fn metrics_are_scraped_and_the_access_log_is_json() {
    let dir = scratch("metrics");
    let gw = Gateway::start_with(
        &dir,
        Some(TOKEN),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--workers",
            "2",
        ],
    );
    let metrics_url = gw
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix("stagegate metrics at "))
        .expect("the metrics address is printed")
        .trim()
        .to_owned();
    let http = Http::new();
    let (_api, code) = set_up(&http, &gw, "hello").await;
    for _ in 0..3 {
        let got = call_api(&http, &gw, &code).await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    let wrong = call_api(&http, &gw, "0123456789abcdef0123456789abcdef").await;
    let wrong_code = wrong.header("x-ca-error-code").unwrap().to_owned();
    for i in 0..5 {
        let got = http
            .send("GET", &format!("{}/nowhere/{i}", gw.data), &[], None)
            .await
            .unwrap();
        assert_eq!(got.status, 404);
    }

    let scrape = http.send("GET", &metrics_url, &[], None).await.unwrap();
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some(stagegate::metrics::CONTENT_TYPE)
    );
    let text = scrape.text();
    let groups = http.admin(&gw, "GET", "/groups", None).await.json();
    let group = groups["items"][0]["id"]
        .as_str()
        .or_else(|| groups[0]["id"].as_str())
        .unwrap_or_else(|| panic!("a group id in {groups}"))
        .to_owned();
    let apps = http.admin(&gw, "GET", "/apps", None).await.json();
    let app = apps["items"][0]["id"]
        .as_str()
        .or_else(|| apps[0]["id"].as_str())
        .unwrap_or_else(|| panic!("an app id in {apps}"))
        .to_owned();
    let series = |labels: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("stagegate_requests_total{{{labels}}} "))
                .map(str::to_owned)
        })
    };
    let route = format!(r#"group="{group}",api="e2e_api",stage="TEST""#);
    assert_eq!(
        series(&format!(
            r#"{route},app="{app}",status_class="2xx",error_code="-""#
        ))
        .as_deref(),
        Some("3"),
        "{text}"
    );
    let class = format!("{}xx", wrong.status / 100);
    assert_eq!(
        series(&format!(
            r#"{route},app="-",status_class="{class}",error_code="{wrong_code}""#
        ))
        .as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("stagegate_request_duration_seconds_count{{{route}}} 4")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("stagegate_upstream_duration_seconds_count{{{route}}} 3")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "stagegate_unrouted_requests_total 5"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "stagegate_config_revisions_behind 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("stagegate_config_revision ")
                && l != "stagegate_config_revision 0"),
        "{text}"
    );
    assert!(
        !text.contains("nowhere"),
        "no series from unpublished paths"
    );

    // Every log line is a JSON object; one access line per served request.
    let log_path = gw.log.clone();
    gw.stop();
    let log = std::fs::read_to_string(log_path).unwrap();
    let mut access = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["target"] == "stagegate::access" {
            access.push(v);
        }
    }
    assert_eq!(access.len(), 4, "{log}");
    let ok = &access[0]["fields"];
    assert_eq!(ok["api"], "e2e_api");
    assert_eq!(ok["stage"], "TEST");
    assert_eq!(ok["app"], app.as_str());
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["error_code"], "-");
    for key in [
        "request_id",
        "group",
        "latency_us",
        "upstream_us",
        "gateway_us",
    ] {
        assert!(!ok[key].is_null(), "{key} in {ok}");
    }
    assert_eq!(access[3]["fields"]["error_code"], wrong_code.as_str());
}

// ---- HTTPS: --tls-cert / --tls-key, reloads, --http-listen ----

/// `url` (`https://127.0.0.1:PORT`) as a socket address.
fn https_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

/// Writes a certificate pair for `localhost` (or the given PEM texts) into `dir` as
/// `cert.pem` and `key.pem`, and returns the certificate.
fn write_pair(dir: &Path, pem: (String, String)) -> rustls::pki_types::CertificateDer<'static> {
    // key first: a reload between the two writes sees a mismatch and keeps the old pair
    std::fs::write(dir.join("key.pem"), &pem.1).unwrap();
    std::fs::write(dir.join("cert.pem"), &pem.0).unwrap();
    common::tls::der_of(&pem.0)
}

/// The certificate the listener at `url` serves to a new connection for `sni`.
async fn served_for(url: &str, sni: &str) -> rustls::pki_types::CertificateDer<'static> {
    let config = common::tls::client_config(&[b"http/1.1"]);
    let stream = common::tls::connect(https_addr(url), sni, &config)
        .await
        .unwrap();
    common::tls::served(&stream)
}

/// The certificate the listener at `url` serves to a new connection for `localhost`.
async fn served_by(url: &str) -> rustls::pki_types::CertificateDer<'static> {
    served_for(url, "localhost").await
}

/// Waits (at most 10 s) until the listener at `url` serves `expected` for `sni`.
async fn wait_served_for(
    url: &str,
    sni: &str,
    expected: &rustls::pki_types::CertificateDer<'static>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while &served_for(url, sni).await != expected {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served for {sni}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 10 s) until the listener at `url` serves `expected` for `localhost`.
async fn wait_served(url: &str, expected: &rustls::pki_types::CertificateDer<'static>) {
    wait_served_for(url, "localhost", expected).await;
}

/// The first stdout line of `gw` starting with `prefix`, without it.
fn printed<'a>(gw: &'a Gateway, prefix: &str) -> &'a str {
    gw.stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", gw.stdout_lines))
}

/// One request over plain TCP; the raw response.
async fn raw_http(addr: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_both_listeners_reloads_the_certificate_and_redirects_plain_http() {
    let dir = scratch("tls");
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let first = write_pair(&tls_dir, common::tls::pem_pair(&["localhost"], None));
    let (cert, key) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    let gw = Gateway::start_with(
        &dir.join("data"),
        Some(TOKEN),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(gw.data.starts_with("https://"), "{}", gw.data);
    assert!(gw.admin.starts_with("https://"), "{}", gw.admin);
    // both listeners: TLS with the certificate given, h2 by ALPN, and they answer
    let h2 = common::tls::client_config(&[b"h2", b"http/1.1"]);
    for (url, path, status) in [
        (&gw.data, "/nothing-here", 404),
        (&gw.admin, "/health", 200),
    ] {
        let stream = common::tls::connect(https_addr(url), "localhost", &h2)
            .await
            .unwrap();
        assert_eq!(common::tls::served(&stream), first, "{url}");
        let (got, version) = common::tls::get(stream, "localhost", path).await;
        assert_eq!(
            (got.status, version),
            (status, http::Version::HTTP_2),
            "{url}"
        );
    }
    // plain HTTP on the data port is not served
    let got = raw_http(
        https_addr(&gw.data).to_string().as_str(),
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(!got.starts_with("HTTP/1.1"), "{got}");

    // --http-listen: 308 to the same host, path and query on the HTTPS port
    let plain = printed(&gw, "stagegate plain HTTP listening on http://")
        .split(':')
        .take(2)
        .collect::<Vec<_>>()
        .join(":");
    let got = raw_http(
        &plain,
        "GET /v1/items?page=2 HTTP/1.1\r\nHost: localhost:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 308"), "{got}");
    let port = https_addr(&gw.data).port();
    assert!(
        got.to_ascii_lowercase().contains(&format!(
            "location: https://localhost:{port}/v1/items?page=2\r\n"
        )),
        "{got}"
    );

    // new files: served from the next handshake, no restart (mtime poll)
    let second = write_pair(&tls_dir, common::tls::pem_pair(&["localhost"], None));
    wait_served(&gw.data, &second).await;
    wait_served(&gw.admin, &second).await;

    // a bad new pair (this key does not match): logged, the previous certificate kept
    let (other_cert, _) = common::tls::pem_pair(&["localhost"], None);
    std::fs::write(&cert, other_cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&gw.log)
        .unwrap()
        .contains("still serving the previous one")
    {
        assert!(Instant::now() < deadline, "the bad pair was not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_by(&gw.data).await, second);
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(log.contains("does not match the certificate"), "{log}");

    // SIGHUP reads the files again (and does not end the process)
    let third = write_pair(&tls_dir, common::tls::pem_pair(&["localhost"], None));
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_served(&gw.data, &third).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&gw.log)
        .unwrap()
        .lines()
        .any(|l| l.contains("certificate reloaded") && l.contains("SIGHUP"))
    {
        assert!(Instant::now() < deadline, "no reload on SIGHUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (got, _) = common::tls::get(
        common::tls::connect(https_addr(&gw.admin), "localhost", &h2)
            .await
            .unwrap(),
        "localhost",
        "/health",
    )
    .await;
    assert_eq!(got.status, 200);
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn plain_http_can_be_refused_and_a_plain_admin_listener_off_loopback_is_warned_about() {
    let dir = scratch("tls-refuse");
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    write_pair(&tls_dir, common::tls::pem_pair(&["localhost"], None));
    let gw = Gateway::start_with(
        &dir.join("data"),
        Some(TOKEN),
        &[
            "--tls-cert",
            tls_dir.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            tls_dir.join("key.pem").to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--http-mode",
            "refuse",
            "--admin-tls",
            "off",
            "--admin-listen",
            "0.0.0.0:0",
        ],
    );
    assert!(gw.data.starts_with("https://"), "{}", gw.data);
    assert!(gw.admin.starts_with("http://"), "{}", gw.admin);
    let plain = printed(&gw, "stagegate plain HTTP listening on http://")
        .split(':')
        .take(2)
        .collect::<Vec<_>>()
        .join(":");
    let got = raw_http(
        &plain,
        "GET /anything HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    let lower = got.to_ascii_lowercase();
    assert!(lower.contains("x-ca-error-code: i403pt"), "{got}");
    assert!(got.contains("Invalid protocol HTTP unsupported"), "{got}");
    // the admin listener answers plain HTTP, with a warning at start
    let port = gw.admin.rsplit(':').next().unwrap();
    let got = raw_http(
        &format!("127.0.0.1:{port}"),
        "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(
        log.contains("not on loopback and serves plain HTTP"),
        "{log}"
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the gateway with `args` and checks that it refuses to start with `message`, before
/// the data file is created.
fn assert_args_refused(dir: &Path, args: &[&str], message: &str) {
    assert_refused_with_env(dir, args, &[], message);
}

/// [`assert_args_refused`] with environment variables too.
fn assert_refused_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)], message: &str) {
    let data = dir.join("data");
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--admin-token", TOKEN])
        .args(args);
    for var in [
        "STAGEGATE_TLS_CERT",
        "STAGEGATE_TLS_KEY",
        "STAGEGATE_ADMIN_TLS",
        "STAGEGATE_HTTP_LISTEN",
        "STAGEGATE_HTTP_MODE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!data.join("stagegate.redb").exists(), "{args:?}");
}

#[test]
fn a_bad_certificate_or_key_stops_the_start_naming_the_file_and_the_problem() {
    let dir = scratch("tls-bad");
    let file = |name: &str, content: &str| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (good_cert, good_key) = common::tls::pem_pair(&["localhost"], None);
    let (_, other_key) = common::tls::pem_pair(&["localhost"], None);
    let (cert, key) = (file("cert.pem", &good_cert), file("key.pem", &good_key));
    let garbage = file("garbage.pem", "not a certificate\n");
    let other = file("other-key.pem", &other_key);
    let missing = dir.join("missing.pem").to_str().unwrap().to_owned();
    let (expired_cert, expired_key) = common::tls::pem_pair(&["localhost"], Some((-30, -1)));
    let (expired, expired_key) = (
        file("expired.pem", &expired_cert),
        file("expired-key.pem", &expired_key),
    );
    let (early_cert, early_key) = common::tls::pem_pair(&["localhost"], Some((2, 30)));
    let (early, early_key) = (
        file("early.pem", &early_cert),
        file("early-key.pem", &early_key),
    );
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            format!("--tls-cert {missing}: cannot read the file"),
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &key],
            format!("--tls-cert {garbage}: no PEM `CERTIFICATE` block found"),
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &garbage],
            format!("--tls-key {garbage}: no PEM private key block found"),
        ),
        // the key in place of the certificate
        (
            vec!["--tls-cert", &key, "--tls-key", &key],
            format!("--tls-cert {key}: no PEM `CERTIFICATE` block found"),
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &other],
            format!("--tls-key {other}: does not match the certificate in --tls-cert {cert}"),
        ),
        (
            vec!["--tls-cert", &expired, "--tls-key", &expired_key],
            format!("--tls-cert {expired}: expired on "),
        ),
        (
            vec!["--tls-cert", &early, "--tls-key", &early_key],
            format!("--tls-cert {early}: not valid before "),
        ),
        (
            vec!["--tls-cert", &cert],
            "--tls-cert (STAGEGATE_TLS_CERT) needs --tls-key".into(),
        ),
        (
            vec!["--tls-key", &key],
            "--tls-key (STAGEGATE_TLS_KEY) needs --tls-cert".into(),
        ),
        (
            vec!["--http-listen", "127.0.0.1:0"],
            "--http-listen (STAGEGATE_HTTP_LISTEN) needs --tls-cert and --tls-key".into(),
        ),
        (
            vec!["--admin-tls", "maybe"],
            "--admin-tls must be `on` or `off`, not `maybe`".into(),
        ),
        (
            vec!["--http-mode", "ignore"],
            "--http-mode must be `redirect` or `refuse`, not `ignore`".into(),
        ),
    ];
    for (args, message) in &cases {
        assert_args_refused(&dir, args, message);
    }
    // the same from the environment
    let env_cases: [(&[(&str, &str)], String); 4] = [
        (
            &[("STAGEGATE_TLS_CERT", &cert), ("STAGEGATE_TLS_KEY", &other)],
            format!("--tls-key {other}: does not match the certificate in --tls-cert {cert}"),
        ),
        (
            &[("STAGEGATE_TLS_CERT", &cert)],
            "--tls-cert (STAGEGATE_TLS_CERT) needs --tls-key".into(),
        ),
        (
            &[("STAGEGATE_HTTP_MODE", "ignore")],
            "STAGEGATE_HTTP_MODE must be `redirect` or `refuse`, not `ignore`".into(),
        ),
        (
            &[("STAGEGATE_ADMIN_TLS", "maybe")],
            "STAGEGATE_ADMIN_TLS must be `on` or `off`, not `maybe`".into(),
        ),
    ];
    for (env, message) in &env_cases {
        assert_refused_with_env(&dir, &[], env, message);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_domain_certificate_put_through_the_admin_api_is_served_by_sni_until_deleted() {
    let dir = scratch("tls-domain");
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let default = write_pair(&tls_dir, common::tls::pem_pair(&["localhost"], None));
    let gw = Gateway::start_with(
        &dir.join("data"),
        Some(TOKEN),
        &[
            "--tls-cert",
            tls_dir.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            tls_dir.join("key.pem").to_str().unwrap(),
            "--admin-tls",
            "off",
        ],
    );
    let http = Http::new();
    let g = http
        .admin(
            &gw,
            "POST",
            "/groups",
            Some(json!({"name": "shop_group", "domains": ["shop.example.com"]})),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text());
    let group = id(&g);
    assert_eq!(served_for(&gw.data, "shop.example.com").await, default);
    let (cert, key) = common::tls::pem_pair(&["shop.example.com"], None);
    let path = format!("/groups/{group}/domains/shop.example.com/certificate");
    let put = http
        .admin(
            &gw,
            "PUT",
            &path,
            Some(json!({"certificate": cert, "private_key": key})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let shop = common::tls::der_of(&cert);
    wait_served_for(&gw.data, "shop.example.com", &shop).await;
    // other names keep the default
    assert_eq!(served_for(&gw.data, "other.example.com").await, default);
    let del = http.admin(&gw, "DELETE", &path, None).await;
    assert_eq!(del.status, 204, "{}", del.text());
    wait_served_for(&gw.data, "shop.example.com", &default).await;
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
