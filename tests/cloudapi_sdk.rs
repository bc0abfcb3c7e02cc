//! The official CloudAPI SDKs, unmodified, drive the example gateway (issue #26).
//!
//! For each SDK (Python `alibabacloud-cloudapi20160714` 4.9.0 in `target/sdk-venv`, Node
//! `@alicloud/cloudapi20160714` 4.7.8 in `tests/sdk/node`, both installed by `.ci/run`) and each
//! signature scheme (the default ACS3-HMAC-SHA256 and RPC v1 HMAC-SHA1), the scripts under
//! `tests/sdk/` run the seed's workflow against the example gateway's admin listener; between
//! their phases this test calls the published API on the data plane, signed with the app the SDK
//! created: RELEASE and TEST answer from their backends, the modified TEST model re-points the
//! live API, deleting it unpublishes it. The scripts also check that a wrong secret, an unknown
//! key, a stale timestamp and a replayed nonce raise the SDK's exception with Alibaba's codes.
//! Without Python, Node or the installed packages the tests skip (they fail under
//! `STAGEGATE_REQUIRE_SERVICES=1`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::services;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

const AK: &str = "LTAIsdkTestKey0001";
const SK: &str = "sdk-test-secret-0123456789abcdef";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn gateway_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("STAGEGATE_GATEWAY_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().unwrap();
        let target = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        // the same features as tests/example_gateway.rs builds it with, so that the two never
        // rebuild the crate for each other
        let mut features = vec!["admin", "cloudapi", "redb", "serve"];
        if cfg!(feature = "conformance") {
            features.push("conformance");
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "gateway", "--no-default-features"])
            .arg("--features")
            .arg(features.join(","))
            .current_dir(root())
            .status()
            .expect("run cargo build --example gateway");
        assert!(status.success(), "cargo build --example gateway failed");
        target.join("examples").join("gateway")
    })
}

/// The example gateway with one access key pair given on the command line.
struct Gateway {
    child: Child,
    admin: String,
    data: String,
    dir: PathBuf,
}

impl Gateway {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(services::unique_name("stagegate-cloudapi-sdk"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let mut child = Command::new(gateway_bin())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--admin-token", "sdk-test-admin-token-0123"])
            .args(["--access-key", &format!("{AK}:{SK}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env_remove("STAGEGATE_ACCESS_KEYS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the example gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut admin, mut data) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (admin.is_none() || data.is_none()) && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(a) = line.strip_prefix("stagegate admin API listening on http://") {
                admin = Some(a.trim().to_owned());
            }
            if let Some(a) = line.strip_prefix("stagegate data plane listening on http://") {
                data = Some(a.trim().to_owned());
            }
        }
        // keep draining stdout so the gateway never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            admin: admin.expect("the gateway printed its admin address"),
            data: data.expect("the gateway printed its data-plane address"),
            dir,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("log"));
    }
}

#[derive(Clone, Copy)]
enum Sdk {
    Python,
    Node,
}

impl Sdk {
    /// The interpreter and script, or why they are not available.
    fn command(self) -> Result<(PathBuf, PathBuf), String> {
        match self {
            Self::Python => {
                let py = root().join("target/sdk-venv/bin/python");
                if !py.exists() {
                    return Err(format!(
                        "{} missing (.ci/run makes it: python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/python/requirements.txt)",
                        py.display()
                    ));
                }
                let ok = Command::new(&py)
                    .args(["-c", "import alibabacloud_cloudapi20160714.client"])
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(
                        "alibabacloud-cloudapi20160714 is not installed in target/sdk-venv".into(),
                    );
                }
                Ok((py, root().join("tests/sdk/python/workflow.py")))
            }
            Self::Node => {
                let pkg = root().join("tests/sdk/node/node_modules/@alicloud/cloudapi20160714");
                if !pkg.exists() {
                    return Err(
                        "tests/sdk/node/node_modules missing (.ci/run runs npm ci there)".into(),
                    );
                }
                let node = PathBuf::from("node");
                if Command::new(&node).arg("--version").output().is_err() {
                    return Err("node is not on PATH".into());
                }
                Ok((node, root().join("tests/sdk/node/workflow.js")))
            }
        }
    }
}

/// Runs one phase of the SDK script; panics with its output when it fails.
fn phase(sdk: (&Path, &Path), env: &[(&str, String)], name: &str, state: &Value) -> Value {
    let out = Command::new(sdk.0)
        .arg(sdk.1)
        .arg(name)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CLOUDAPI_STATE", state.to_string())
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "phase {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("phase {name}: {e}: {stdout}"))
}

/// GET `path` on the data plane in `stage`, signed with the SDK-created app.
async fn call(gw: &Gateway, state: &Value, stage: &str, path: &str) -> common::Got {
    let url = format!("http://{}{path}", gw.data);
    let signer = stagegate::auth::Signer::new(
        state["app_key"].as_str().unwrap(),
        stagegate::model::Secret::new(state["app_secret"].as_str().unwrap()),
    )
    .unwrap()
    .with_stage(stage.parse::<stagegate::model::Stage>().unwrap());
    let mut req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
    signer.sign(&mut req, b"");
    let res = tokio::time::timeout(Duration::from_secs(20), common::client().request(req))
        .await
        .expect("data plane answered in time")
        .expect("data plane reachable");
    common::collect(res).await
}

async fn run(sdk: Sdk, scheme: &str) {
    let (bin, script) = match sdk.command() {
        Ok(c) => c,
        Err(why) => return services::skip("the official CloudAPI SDK", &why),
    };
    let gw = Gateway::start();
    let (test, release, test2) = (
        common::upstream("test").await,
        common::upstream("release").await,
        common::upstream("test2").await,
    );
    let env = vec![
        ("CLOUDAPI_ENDPOINT", gw.admin.clone()),
        ("CLOUDAPI_AK", AK.to_owned()),
        ("CLOUDAPI_SK", SK.to_owned()),
        ("CLOUDAPI_SIGNATURE", scheme.to_owned()),
        ("CLOUDAPI_SUFFIX", format!("s{}", fastrand::u32(1000..9999))),
        ("UPSTREAM_TEST", test.to_string()),
        ("UPSTREAM_RELEASE", release.to_string()),
        ("UPSTREAM_TEST2", test2.to_string()),
    ];
    let sdk = (bin.as_path(), script.as_path());
    let st = phase(sdk, &env, "setup", &Value::Null);
    assert_eq!(
        st["refused_deploy_exception"]
            .as_str()
            .map(|s| s.starts_with("Client")),
        Some(true)
    );
    let path = format!("{}/abc", st["path_prefix"].as_str().unwrap());

    // RELEASE answers from the RELEASE model, with the declared parameters mapped
    let r = call(&gw, &st, "RELEASE", &path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["tag"], "release");
    assert_eq!(j["path"], "/echo/abc");
    assert_eq!(j["query"], "quantity=7");
    // TEST follows the modified TEST model without a redeploy
    let r = call(&gw, &st, "TEST", &path).await;
    assert_eq!(
        (r.status, r.json()["tag"].clone()),
        (200, "test2".into()),
        "{}",
        r.text()
    );
    // PRE was refused at deploy: nothing there
    assert_eq!(
        call(&gw, &st, "PRE", &path).await.header("x-ca-error-code"),
        Some("I404NF")
    );

    phase(sdk, &env, "cascade", &st);
    let r = call(&gw, &st, "TEST", &path).await;
    assert_eq!(
        r.header("x-ca-error-code"),
        Some("I404NF"),
        "deleting the model unpublished TEST"
    );
    assert_eq!(
        call(&gw, &st, "RELEASE", &path).await.json()["tag"],
        "release"
    );

    let errors = phase(sdk, &env, "errors", &st);
    for case in [
        "wrong_secret",
        "unknown_key",
        "stale_timestamp",
        "replayed_nonce",
    ] {
        assert!(
            errors[case]
                .as_str()
                .is_some_and(|e| e.starts_with("Client")),
            "{case}: {errors}"
        );
    }

    phase(sdk, &env, "teardown", &st);
    assert_eq!(
        call(&gw, &st, "RELEASE", &path)
            .await
            .header("x-ca-error-code"),
        Some("I404NF")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_drives_the_seed_workflow_with_acs3_signatures() {
    run(Sdk::Python, "v3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_drives_the_seed_workflow_with_rpc_v1_signatures() {
    run(Sdk::Python, "v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_drives_the_seed_workflow_with_acs3_signatures() {
    run(Sdk::Node, "v3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_drives_the_seed_workflow_with_rpc_v1_signatures() {
    run(Sdk::Node, "v2").await;
}
