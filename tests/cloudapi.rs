//! The CloudAPI endpoint through the public API, in process: signing by both schemes, every
//! refusal naming what is wrong and changing nothing, the layer's fall-through, the admin API's
//! access keys, and an action's effect live on the data plane's next request.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use stagegate::ControlPlane;
use stagegate::cloudapi::signature::{
    acs3_canonical_request, acs3_signature, acs3_string_to_sign, content_sha256, percent_encode,
    rpc_signature, rpc_string_to_sign,
};
use stagegate::cloudapi::{AccessKeys, CloudApi};
use stagegate::store::MemoryStore;

const AK: &str = "LTAIinProcess0001";
const SK: &str = "in-process-secret-0123456789";
const SIGNED: &str =
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn nonce() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn query_string(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything a test may vary about an ACS3 request.
struct Acs3<'a> {
    action: &'a str,
    query: Vec<(&'a str, &'a str)>,
    form: Option<String>,
    secret: &'a str,
    key: &'a str,
    version: &'a str,
    date: String,
    nonce: String,
    signed: &'a str,
    /// Sent instead of the signed body (tampering).
    sent_body: Option<String>,
    content_type: &'a str,
}

impl<'a> Acs3<'a> {
    fn new(action: &'a str, query: Vec<(&'a str, &'a str)>) -> Self {
        Self {
            action,
            query,
            form: None,
            secret: SK,
            key: AK,
            version: "2016-07-14",
            date: now(),
            nonce: nonce(),
            signed: SIGNED,
            sent_body: None,
            content_type: "application/x-www-form-urlencoded",
        }
    }

    fn build(&self) -> Request<Full<Bytes>> {
        let body = self.form.clone().unwrap_or_default();
        let sha = content_sha256(body.as_bytes());
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "admin.local".into()),
            ("x-acs-action".into(), self.action.into()),
            ("x-acs-content-sha256".into(), sha.clone()),
            ("x-acs-date".into(), self.date.clone()),
            ("x-acs-signature-nonce".into(), self.nonce.clone()),
            ("x-acs-version".into(), self.version.into()),
        ];
        if self.form.is_some() {
            headers.push(("content-type".into(), self.content_type.into()));
        }
        headers.sort();
        let signed = if self.form.is_some() && self.signed == SIGNED {
            "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        } else {
            self.signed
        };
        let signed_list: Vec<(String, String)> = signed
            .split(';')
            .filter_map(|n| headers.iter().find(|(h, _)| h == n).cloned())
            .collect();
        let q: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let canonical = acs3_canonical_request("POST", &q, &signed_list, signed, &sha);
        let sig = acs3_signature(self.secret, &acs3_string_to_sign(&canonical));
        let mut b = Request::post(format!("/?{}", query_string(&self.query)));
        for (k, v) in &headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b = b.header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}",
                self.key, signed
            ),
        );
        b.body(Full::new(Bytes::from(
            self.sent_body.clone().unwrap_or(body),
        )))
        .unwrap()
    }
}

/// An RPC v1 request (`GET`, everything in the query, as the older core SDK sends).
fn rpc(action: &str, extra: &[(&str, &str)], secret: &str, method: &str) -> Request<Full<Bytes>> {
    let (ts, n) = (now(), nonce());
    let mut params: Vec<(&str, &str)> = vec![
        ("Action", action),
        ("Version", "2016-07-14"),
        ("Format", "JSON"),
        ("AccessKeyId", AK),
        ("SignatureMethod", method),
        ("SignatureVersion", "1.0"),
        ("Timestamp", &ts),
        ("SignatureNonce", &n),
        ("SignatureType", ""),
    ];
    params.extend_from_slice(extra);
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sig = rpc_signature(secret, &rpc_string_to_sign("GET", &owned));
    params.push(("Signature", &sig));
    Request::get(format!("/?{}", query_string(&params)))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

struct Fx {
    control: Arc<ControlPlane>,
    api: CloudApi,
    keys: AccessKeys,
}

async fn fx() -> Fx {
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let keys = AccessKeys::new();
    keys.insert_pair(AK, SK).unwrap();
    let api = CloudApi::new(Arc::clone(&control), keys.clone());
    Fx { control, api, keys }
}

impl Fx {
    async fn send(&self, req: Request<Full<Bytes>>) -> (u16, Value) {
        let got = common::oneshot(self.api.clone(), req).await;
        assert_eq!(
            got.header("content-type"),
            Some("application/json;charset=utf-8")
        );
        (got.status, got.json())
    }

    async fn ok(&self, req: Request<Full<Bytes>>) -> Value {
        let (status, body) = self.send(req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["RequestId"].as_str().map(str::len), Some(36), "{body}");
        body
    }

    /// Sends `req`, expects a refusal with `code` whose message names `names`, and checks that
    /// the configuration did not change.
    async fn refused(&self, req: Request<Full<Bytes>>, status: u16, code: &str, names: &str) {
        let before = self.control.records().await.len();
        let (got, body) = self.send(req).await;
        assert_eq!((got, body["Code"].as_str()), (status, Some(code)), "{body}");
        let msg = body["Message"].as_str().unwrap();
        assert!(msg.contains(names), "`{names}` not in {msg}");
        assert!(!msg.contains(SK), "the message leaks the secret");
        assert_eq!(body["RequestId"].as_str().map(str::len), Some(36));
        assert_eq!(
            self.control.records().await.len(),
            before,
            "a refusal changed something"
        );
    }
}

#[tokio::test]
async fn both_signature_schemes_are_accepted_and_answers_are_pascal_case() {
    let f = fx().await;
    let b = f
        .ok(Acs3::new(
            "CreateBackend",
            vec![
                ("BackendName", "echo_backend"),
                ("BackendType", "HTTP"),
                ("Description", "a + b"),
            ],
        )
        .build())
        .await;
    let id = b["BackendId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let info = f
        .ok(rpc(
            "DescribeBackendInfo",
            &[("BackendId", &id)],
            SK,
            "HMAC-SHA1",
        ))
        .await;
    assert_eq!(info["BackendInfo"]["BackendName"], "echo_backend");
    assert_eq!(info["BackendInfo"]["Description"], "a + b");
    // a form body is merged with the query and signed (ACS3 hashes it)
    let mut req = Acs3::new("CreateApiGroup", vec![("GroupName", "seed_group")]);
    req.form = Some("Description=from+the+body%21".into());
    let g = f.ok(req.build()).await;
    assert_eq!(g["Description"], "from the body!");
}

#[tokio::test]
async fn bad_signatures_keys_dates_and_nonces_are_refused_with_alibabas_codes() {
    let f = fx().await;
    let q = || vec![("BackendName", "x_backend"), ("BackendType", "HTTP")];
    let mut r = Acs3::new("CreateBackend", q());
    r.secret = "not-the-secret-at-all";
    f.refused(r.build(), 400, "SignatureDoesNotMatch", "signature")
        .await;
    let mut r = Acs3::new("CreateBackend", q());
    r.key = "LTAIunknown";
    f.refused(r.build(), 404, "InvalidAccessKeyId.NotFound", "access key")
        .await;
    let mut r = Acs3::new("CreateBackend", q());
    r.date = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(16))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    f.refused(r.build(), 400, "InvalidTimeStamp.Expired", "expired")
        .await;
    let mut r = Acs3::new("CreateBackend", q());
    r.date = "yesterday".into();
    f.refused(r.build(), 400, "InvalidTimeStamp.Format", "yesterday")
        .await;
    // a body changed after signing no longer matches x-acs-content-sha256
    let mut r = Acs3::new("CreateBackend", q());
    r.form = Some("Description=signed".into());
    r.sent_body = Some("Description=tampered".into());
    f.refused(r.build(), 400, "SignatureDoesNotMatch", "signature")
        .await;
    // headers that must be signed
    let mut r = Acs3::new("CreateBackend", q());
    r.signed = "host;x-acs-action;x-acs-content-sha256;x-acs-signature-nonce;x-acs-version";
    f.refused(r.build(), 400, "IncompleteSignature", "x-acs-date")
        .await;
    // a replayed nonce
    let first = Acs3::new("DescribeApiGroups", vec![]);
    let mut again = Acs3::new("DescribeApiGroups", vec![]);
    again.nonce.clone_from(&first.nonce);
    f.ok(first.build()).await;
    f.refused(again.build(), 400, "SignatureNonceUsed", "nonce")
        .await;
    // RPC: a wrong secret, an unsupported method
    f.refused(
        rpc("DescribeApis", &[], "wrong-secret-0123456789", "HMAC-SHA1"),
        400,
        "SignatureDoesNotMatch",
        "signature",
    )
    .await;
    f.refused(
        rpc("DescribeApis", &[], SK, "HMAC-SHA256"),
        400,
        "InvalidParameter",
        "SignatureMethod",
    )
    .await;
    // unsigned
    let unsigned = Request::post("/?Action=DescribeApis")
        .body(Full::new(Bytes::new()))
        .unwrap();
    f.refused(unsigned, 400, "IncompleteSignature", "Authorization")
        .await;
    // a removed key is refused from the next call on
    assert!(f.keys.remove(AK).unwrap());
    f.refused(
        Acs3::new("DescribeApis", vec![]).build(),
        404,
        "InvalidAccessKeyId.NotFound",
        "access key",
    )
    .await;
}

#[tokio::test]
async fn malformed_and_hostile_parameters_name_the_field_and_change_nothing() {
    let f = fx().await;
    let b = f
        .ok(Acs3::new(
            "CreateBackend",
            vec![("BackendName", "seed_backend"), ("BackendType", "HTTP")],
        )
        .build())
        .await;
    let bid = b["BackendId"].as_str().unwrap().to_owned();
    let cases: Vec<(Acs3<'_>, u16, &str, &str)> = vec![
        (
            Acs3::new("CreateBackend", vec![("BackendType", "HTTP")]),
            400,
            "MissingParameter",
            "BackendName",
        ),
        (
            Acs3::new(
                "CreateBackend",
                vec![("BackendName", "b_two"), ("BackendType", "GOPHER")],
            ),
            400,
            "InvalidParameter",
            "BackendType",
        ),
        (
            Acs3::new(
                "CreateBackend",
                vec![("BackendName", "b_two"), ("BackendType", "FC_EVENT")],
            ),
            400,
            "UnsupportedParameter",
            "BackendType",
        ),
        (
            Acs3::new(
                "CreateBackend",
                vec![("BackendName", "seed_backend"), ("BackendType", "HTTP")],
            ),
            400,
            "RepeatedBackendName",
            "seed_backend",
        ),
        (
            Acs3::new(
                "CreateBackendModel",
                vec![
                    ("BackendId", &bid),
                    ("BackendType", "HTTP"),
                    ("StageName", "TEST"),
                    ("BackendModelData", "{not json"),
                ],
            ),
            400,
            "InvalidParameter",
            "BackendModelData",
        ),
        (
            Acs3::new(
                "CreateBackendModel",
                vec![
                    ("BackendId", &bid),
                    ("BackendType", "HTTP"),
                    ("StageName", "TEST"),
                    (
                        "BackendModelData",
                        r#"{"ServiceAddress":"http://h","VpcConfig":{}}"#,
                    ),
                ],
            ),
            400,
            "UnsupportedParameter",
            "BackendModelData.VpcConfig",
        ),
        (
            Acs3::new(
                "CreateBackendModel",
                vec![
                    ("BackendId", &bid),
                    ("BackendType", "HTTP"),
                    ("StageName", "TEST"),
                    ("BackendModelData", r#"{"ServiceAddress":"ftp://h"}"#),
                ],
            ),
            400,
            "InvalidParameter",
            "BackendModelData",
        ),
        (
            Acs3::new(
                "CreateBackendModel",
                vec![
                    ("BackendId", &bid),
                    ("BackendType", "HTTP"),
                    ("StageName", "no stage!"),
                    ("BackendModelData", r#"{"ServiceAddress":"http://h"}"#),
                ],
            ),
            400,
            "InvalidParameter",
            "StageName",
        ),
        (
            Acs3::new(
                "DescribeBackendInfo",
                vec![("BackendId", "0123456789abcdef0123456789abcdef")],
            ),
            404,
            "NotFoundBackend",
            "not found",
        ),
        (
            Acs3::new("DescribeBackendList", vec![("PageSize", "100000")]),
            400,
            "InvalidParameter",
            "PageSize",
        ),
        (
            Acs3::new("CreateApp", vec![("AppName", "x")]),
            400,
            "InvalidParameter",
            "name",
        ),
        (
            Acs3::new(
                "SetAppsAuthorities",
                vec![
                    ("ApiId", "0123456789abcdef0123456789abcdef"),
                    ("AppIds", ""),
                    ("StageName", "TEST"),
                ],
            ),
            400,
            "MissingParameter",
            "AppIds",
        ),
        (
            Acs3::new("LaunchRockets", vec![]),
            404,
            "InvalidAction.NotFound",
            "LaunchRockets",
        ),
    ];
    for (req, status, code, names) in cases {
        f.refused(req.build(), status, code, names).await;
    }
    let mut v = Acs3::new("DescribeApis", vec![]);
    v.version = "2018-01-01";
    f.refused(v.build(), 400, "InvalidVersion", "2018-01-01")
        .await;
    // the same name in the query and the body
    let mut dup = Acs3::new("CreateApiGroup", vec![("GroupName", "g_one")]);
    dup.form = Some("GroupName=g_two".into());
    f.refused(dup.build(), 400, "InvalidParameter", "GroupName")
        .await;
    // bytes that are not UTF-8 once decoded
    let mut bad = Acs3::new("CreateApiGroup", vec![("GroupName", "g_one")]);
    bad.form = Some("Description=%FF%FE".into());
    f.refused(bad.build(), 400, "InvalidParameter", "UTF-8")
        .await;
    // a body that is not a form
    let mut json_body = Acs3::new("DescribeApis", vec![]);
    json_body.form = Some(r#"{"a":1}"#.into());
    json_body.content_type = "application/json";
    f.refused(json_body.build(), 400, "InvalidParameter", "Content-Type")
        .await;
    // an oversized body is refused before anything is parsed
    let small = CloudApi::new(Arc::clone(&f.control), f.keys.clone()).with_body_limit(1024);
    let mut big = Acs3::new("CreateApiGroup", vec![("GroupName", "g_big")]);
    big.form = Some(format!("Description={}", "a".repeat(4096)));
    let got = common::oneshot(small, big.build()).await;
    assert_eq!(
        (got.status, got.json()["Code"].as_str()),
        (413, Some("RequestBodyTooLarge"))
    );
    // CreateApi: fields stagegate cannot honour are refused, not dropped
    let group = f
        .ok(Acs3::new("CreateApiGroup", vec![("GroupName", "seed_group")]).build())
        .await;
    let gid = group["GroupId"].as_str().unwrap().to_owned();
    let rc = r#"{"RequestHttpMethod":"GET","RequestPath":"/x"}"#;
    let base = |extra: Vec<(&'static str, &'static str)>| {
        let mut q = vec![
            ("GroupId", gid.as_str()),
            ("ApiName", "seed_api"),
            ("Visibility", "PRIVATE"),
            ("RequestConfig", rc),
            ("BackendEnable", "True"),
            ("BackendId", bid.as_str()),
        ];
        q.extend(extra);
        q
    };
    for (extra, names) in [
        (vec![("AuthType", "APPOPENID")], "AuthType"),
        (vec![("DisableInternet", "true")], "DisableInternet"),
        (vec![("WebSocketApiType", "REGISTER")], "WebSocketApiType"),
        (
            vec![("ServiceConfig", r#"{"Mock":"TRUE","MockResult":"x"}"#)],
            "ServiceConfig.Mock",
        ),
        (
            vec![(
                "RequestParameters",
                r#"[{"ApiParameterName":"a","Location":"QUERY","JsonScheme":"{}"}]"#,
            )],
            "JsonScheme",
        ),
        (
            vec![(
                "RequestParameters",
                r#"[{"ApiParameterName":"a","Location":"QUERY","Frobnicate":1}]"#,
            )],
            "RequestParameters.Frobnicate",
        ),
        (
            vec![("RequestParameters", r#"{"not":"an array"}"#)],
            "RequestParameters",
        ),
        (vec![("ForceNonceCheck", "maybe")], "ForceNonceCheck"),
    ] {
        let req = Acs3::new("CreateApi", base(extra)).build();
        f.refused(
            req,
            400,
            if names == "RequestParameters" || names == "ForceNonceCheck" {
                "InvalidParameter"
            } else {
                "UnsupportedParameter"
            },
            names,
        )
        .await;
    }
    let no_backend = Acs3::new(
        "CreateApi",
        vec![
            ("GroupId", gid.as_str()),
            ("ApiName", "seed_api"),
            ("RequestConfig", rc),
        ],
    );
    f.refused(
        no_backend.build(),
        400,
        "UnsupportedParameter",
        "BackendEnable",
    )
    .await;
}

#[tokio::test]
async fn an_action_is_live_on_the_data_plane_at_the_next_request_and_deploy_needs_a_model() {
    let f = fx().await;
    let upstream = common::upstream("cloudapi").await;
    let gateway = stagegate::GatewayLayer::new(f.control.snapshot_handle()).standalone();
    let b = f
        .ok(Acs3::new(
            "CreateBackend",
            vec![("BackendName", "live_backend"), ("BackendType", "HTTP")],
        )
        .build())
        .await;
    let bid = b["BackendId"].as_str().unwrap().to_owned();
    let data = format!(r#"{{"ServiceAddress":"http://{upstream}"}}"#);
    f.ok(Acs3::new(
        "CreateBackendModel",
        vec![
            ("BackendId", &bid),
            ("BackendType", "HTTP"),
            ("StageName", "TEST"),
            ("BackendModelData", &data),
        ],
    )
    .build())
        .await;
    let g = f
        .ok(Acs3::new("CreateApiGroup", vec![("GroupName", "live_group")]).build())
        .await;
    let gid = g["GroupId"].as_str().unwrap().to_owned();
    let api = f
        .ok(Acs3::new("CreateApi", vec![
            ("GroupId", &gid), ("ApiName", "live_api"), ("Visibility", "PUBLIC"), ("AuthType", "ANONYMOUS"),
            ("RequestConfig", r#"{"RequestHttpMethod":"GET","RequestPath":"/live","RequestMode":"PASSTHROUGH"}"#),
            ("ServiceConfig", r#"{"ServicePath":"/backend/live","ServiceTimeout":3000}"#),
            ("BackendEnable", "true"), ("BackendId", &bid),
        ]).build())
        .await;
    let aid = api["ApiId"].as_str().unwrap().to_owned();
    let get = || {
        Request::get("/live")
            .header("x-ca-stage", "TEST")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(common::oneshot(gateway.clone(), get()).await.status, 404);
    f.ok(Acs3::new(
        "DeployApi",
        vec![
            ("GroupId", &gid),
            ("ApiId", &aid),
            ("StageName", "TEST"),
            ("Description", "first"),
        ],
    )
    .build())
        .await;
    let got = common::oneshot(gateway.clone(), get()).await;
    assert_eq!(
        (got.status, got.json()["path"].clone()),
        (200, "/backend/live".into()),
        "{}",
        got.text()
    );
    // no RELEASE model: the deploy is refused and names the stage
    f.refused(
        Acs3::new(
            "DeployApi",
            vec![
                ("GroupId", &gid),
                ("ApiId", &aid),
                ("StageName", "RELEASE"),
                ("Description", "x"),
            ],
        )
        .build(),
        400,
        "NotFoundBackendModel",
        "RELEASE",
    )
    .await;
    let history = f
        .ok(Acs3::new("DescribeHistoryApis", vec![("ApiId", &aid)]).build())
        .await;
    assert_eq!(history["ApiHisItems"]["ApiHisItem"][0]["Status"], "ONLINE");
    f.ok(Acs3::new(
        "AbolishApi",
        vec![("GroupId", &gid), ("ApiId", &aid), ("StageName", "TEST")],
    )
    .build())
        .await;
    assert_eq!(common::oneshot(gateway, get()).await.status, 404);
}

#[tokio::test]
async fn the_layer_sends_cloudapi_calls_to_the_endpoint_and_the_rest_to_the_admin_api() {
    let f = fx().await;
    let gateway = stagegate::GatewayLayer::new(f.control.snapshot_handle()).standalone();
    let admin = stagegate::admin::AdminApi::new(
        Arc::clone(&f.control),
        stagegate::model::Secret::new("admin-token-0123456789"),
        gateway,
    )
    .with_access_keys(f.keys.clone());
    let svc = tower_layer::Layer::layer(&f.api.layer(), admin.router());
    let bearer = "Bearer admin-token-0123456789";
    let admin_req = |method: &str, path: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", bearer)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    // the admin API keeps its routes, its token and its answers
    let got = common::oneshot(svc.clone(), admin_req("GET", "/backends", "")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    // a CloudAPI call reaches the endpoint without the admin token
    let got = common::oneshot(svc.clone(), Acs3::new("DescribeApis", vec![]).build()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.json()["ApiSummarys"].is_object());
    // access keys: created with the secret shown once, listed without it, usable, removed
    let got = common::oneshot(svc.clone(), admin_req("POST", "/access-keys", "{}")).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let (id, secret) = (
        got.json()["access_key_id"].as_str().unwrap().to_owned(),
        got.json()["access_key_secret"].as_str().unwrap().to_owned(),
    );
    let listed = common::oneshot(svc.clone(), admin_req("GET", "/access-keys", ""))
        .await
        .text();
    assert!(
        listed.contains(&id) && !listed.contains(&secret) && !listed.contains(SK),
        "{listed}"
    );
    let mut with_new = Acs3::new("DescribeApis", vec![]);
    with_new.key = &id;
    with_new.secret = &secret;
    assert_eq!(
        common::oneshot(svc.clone(), with_new.build()).await.status,
        200
    );
    // bad bodies are refused, and create nothing
    for body in [r#"{"access_key_secret":"mine"}"#, "[", "{\"a\":1}"] {
        let got = common::oneshot(svc.clone(), admin_req("POST", "/access-keys", body)).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text());
    }
    assert_eq!(f.keys.ids().len(), 2);
    // without the admin token the key routes are closed
    let anon = Request::get("/access-keys")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(common::oneshot(svc.clone(), anon).await.status, 401);
    let got = common::oneshot(
        svc.clone(),
        admin_req("DELETE", &format!("/access-keys/{id}"), ""),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = common::oneshot(
        svc.clone(),
        admin_req("DELETE", &format!("/access-keys/{id}"), ""),
    )
    .await;
    assert_eq!(got.status, 404);
    let mut with_old = Acs3::new("DescribeApis", vec![]);
    with_old.key = &id;
    with_old.secret = &secret;
    let got = common::oneshot(svc, with_old.build()).await;
    assert_eq!(got.json()["Code"], "InvalidAccessKeyId.NotFound");
}
