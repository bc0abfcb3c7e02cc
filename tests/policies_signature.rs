//! The gateway-to-backend signature against vector B1 in `tests/data/signature-vectors.json` (Alibaba's backend
//! demo's own expected value), and the verifier layer a Rust backend mounts.

use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use stagegate::policy::{
    BackendSignature, SignedRequest, VerifyBackendSignatureLayer, backend_string_to_sign,
};

fn b1() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/signature-vectors.json"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "B1")
        .expect("B1 in the vectors file")
        .clone()
}

/// B1's request: its headers, the `QueryKey*` parameters in the query, the `FormKey*`
/// parameters in a form body.
fn b1_request(v: &Value) -> (http::request::Parts, bytes::Bytes) {
    let mut query = Vec::new();
    let mut form = Vec::new();
    for (k, val) in v["params"].as_object().unwrap() {
        let pair = format!("{k}={}", val.as_str().unwrap());
        if k.starts_with("Form") {
            form.push(pair);
        } else {
            query.push(pair);
        }
    }
    let uri = format!("{}?{}", v["uri"].as_str().unwrap(), query.join("&"));
    let mut b = Request::builder()
        .method(v["method"].as_str().unwrap())
        .uri(uri)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
    for (k, val) in v["headers"].as_object().unwrap() {
        b = b.header(k.as_str(), val.as_str().unwrap());
    }
    let (parts, ()) = b.body(()).unwrap().into_parts();
    (parts, bytes::Bytes::from(form.join("&")))
}

#[test]
fn b1_string_to_sign_is_byte_exact() {
    let v = b1();
    let (parts, body) = b1_request(&v);
    let sts = backend_string_to_sign(&SignedRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: Some(&body),
    });
    assert_eq!(sts, v["string_to_sign"].as_str().unwrap());
}

async fn through_verifier(
    parts: http::request::Parts,
    body: bytes::Bytes,
    secret: &str,
) -> (u16, String) {
    let v = b1();
    let layer = VerifyBackendSignatureLayer::new([BackendSignature {
        key: v["signature_key"].as_str().unwrap().into(),
        secret: secret.into(),
    }]);
    let backend = tower::service_fn(|req: Request<Full<bytes::Bytes>>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
    });
    let svc = tower::Layer::layer(&layer, backend);
    let res = tower::ServiceExt::oneshot(svc, Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test]
async fn the_verifier_accepts_b1_and_refuses_any_change() {
    let v = b1();
    let secret = v["signature_secret"].as_str().unwrap();
    let signature = v["signature"].as_str().unwrap();
    let (mut parts, body) = b1_request(&v);
    parts
        .headers
        .insert("x-ca-proxy-signature", signature.parse().unwrap());
    // Accepted: the inner service gets the body unchanged.
    let (status, text) = through_verifier(parts.clone(), body.clone(), secret).await;
    assert_eq!(status, 200);
    assert_eq!(text, "FormKey1=FormValue1&FormKey2=FormValue2");
    // A changed form value, header value, path, or secret: refused before the backend.
    let (status, _) = through_verifier(
        parts.clone(),
        "FormKey1=x&FormKey2=FormValue2".into(),
        secret,
    )
    .await;
    assert_eq!(status, 401);
    let mut changed = parts.clone();
    changed
        .headers
        .insert("headerkey1", "HeaderValueX".parse().unwrap());
    assert_eq!(through_verifier(changed, body.clone(), secret).await.0, 401);
    let mut moved = parts.clone();
    moved.uri = "/demo/other?QueryKey1=QueryValue1&QueryKey2=QueryValue2"
        .parse()
        .unwrap();
    assert_eq!(through_verifier(moved, body.clone(), secret).await.0, 401);
    assert_eq!(
        through_verifier(parts.clone(), body.clone(), "OtherSecret1")
            .await
            .0,
        401
    );
    // No signature at all, or an unknown key name.
    let mut bare = parts.clone();
    bare.headers.remove("x-ca-proxy-signature");
    assert_eq!(through_verifier(bare, body.clone(), secret).await.0, 401);
    let mut unknown = parts;
    unknown.headers.insert(
        "x-ca-proxy-signature-secret-key",
        "NoSuchKey".parse().unwrap(),
    );
    assert_eq!(through_verifier(unknown, body, secret).await.0, 401);
}

#[test]
fn the_signer_and_the_verifier_agree_on_a_json_post() {
    let key = BackendSignature {
        key: "DemoKey1".into(),
        secret: "DemoSecret1".into(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-ca-request-id", "ABC".parse().unwrap());
    let sts = stagegate::policy::sign_backend_request(
        &key,
        &Method::POST,
        "/pay",
        Some("b=2&a=1"),
        &mut headers,
        Some(b"{\"amount\":1}"),
    );
    assert_eq!(
        headers["x-ca-proxy-signature-headers"],
        "x-ca-proxy-signature-secret-key,x-ca-request-id"
    );
    // The MD5 line checked independently: printf '{"amount":1}' | openssl dgst -md5 -binary | base64
    assert_eq!(
        sts,
        "POST\nqoQ1HOPB19+8PJS74nePFw==\nx-ca-proxy-signature-secret-key:DemoKey1\nx-ca-request-id:ABC\n/pay?a=1&b=2"
    );
}
