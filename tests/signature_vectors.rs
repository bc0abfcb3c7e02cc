//! Every client-signature vector of `tests/data/signature-vectors.json`, both directions,
//! plus tampering: through the public API only.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use http::request::Parts;
use http::{HeaderName, HeaderValue, Request};
use serde_json::Value;
use stagegate::{
    auth::{
        AuthError, MemoryReplayGuard, SignaturePolicy, Verified, is_form, sign, string_to_sign,
        verify, verify_signature,
    },
    model::{Secret, SignatureMethod},
};

/// Polls a future that never waits (the in-memory guard answers at once).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A request rebuilt from a vector.
struct Case {
    id: String,
    method: SignatureMethod,
    app_key: String,
    secret: Secret,
    timestamp: u64,
    string_to_sign: String,
    signature: String,
    parts: Parts,
    body: Vec<u8>,
}

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/signature-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors file");
    let json: Value = serde_json::from_str(&text).expect("vectors json");
    json["vectors"].as_array().expect("vectors array").clone()
}

/// Percent-encodes only what `http::Uri` refuses (non-ASCII), as a client would send it.
fn wire_url(url: &str) -> String {
    percent_encoding::utf8_percent_encode(url, percent_encoding::CONTROLS).to_string()
}

/// Rebuilds the request a vector describes. Headers not given explicitly are taken from
/// the fixed lines and the signed-header lines of the vector's string-to-sign.
fn case(v: &Value) -> Case {
    let id = v["id"].as_str().unwrap().to_owned();
    let sts = v["string_to_sign"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = sts.split('\n').collect();
    let signed_list = v["x_ca_signature_headers"].as_str().unwrap();
    let n_signed = signed_list.split(',').count();
    assert_eq!(lines.len(), 5 + n_signed + 1, "{id}: line count");

    let mut req = Request::builder()
        .method(v["method"].as_str().unwrap())
        .uri(wire_url(v["url"].as_str().unwrap()));
    let mut given: Vec<(String, String)> = Vec::new();
    if let Some(h) = v["headers"].as_object() {
        for (k, val) in h {
            given.push((k.clone(), val.as_str().unwrap().to_owned()));
        }
    }
    let fixed = ["Accept", "Content-MD5", "Content-Type", "Date"];
    for (name, value) in fixed.iter().zip(&lines[1..5]) {
        if !value.is_empty() && !given.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            given.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    for line in &lines[5..5 + n_signed] {
        let (name, value) = line.split_once(':').unwrap();
        if !given.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            given.push((name.to_owned(), value.to_owned()));
        }
    }
    for (k, val) in &given {
        req = req.header(k.as_str(), val.as_str());
    }
    req = req
        .header("X-Ca-Signature-Headers", signed_list)
        .header("X-Ca-Signature", v["signature"].as_str().unwrap());

    let body: Vec<u8> = if let Some(b) = v["body"].as_str() {
        b.as_bytes().to_vec()
    } else if let Some(b) = v["body_utf8"].as_str() {
        b.as_bytes().to_vec()
    } else if let Some(form) = v["form"].as_object() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, val) in form {
            ser.append_pair(k, val.as_str().unwrap());
        }
        ser.finish().into_bytes()
    } else {
        Vec::new()
    };
    let (parts, ()) = req.body(()).unwrap().into_parts();
    let method = SignatureMethod::parse(v["algorithm"].as_str().unwrap()).unwrap();
    let timestamp = lines[5..5 + n_signed]
        .iter()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-ca-timestamp"))
        })
        .map(|(_, t)| t.parse().unwrap())
        .unwrap();
    Case {
        id,
        method,
        app_key: v["app_key"].as_str().unwrap().to_owned(),
        secret: Secret::new(v["app_secret"].as_str().unwrap()),
        timestamp,
        string_to_sign: sts,
        signature: v["signature"].as_str().unwrap().to_owned(),
        parts,
        body,
    }
}

/// The client-signature vectors (B1 is the gateway-to-backend signature of the policies, a
/// different algorithm outside this module).
fn client_cases() -> Vec<Case> {
    let all = vectors();
    let cases: Vec<Case> = all
        .iter()
        .filter(|v| v.get("app_key").is_some())
        .map(case)
        .collect();
    let skipped: Vec<&str> = all
        .iter()
        .filter(|v| v.get("app_key").is_none())
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["B1"]);
    assert_eq!(cases.len(), 9);
    cases
}

fn policy() -> SignaturePolicy {
    SignaturePolicy::default().with_method(SignatureMethod::HmacSha1)
}

fn run(c: &Case, parts: &Parts, body: &[u8]) -> Result<Verified<String>, AuthError> {
    run_with(c, parts, body, &policy(), c.timestamp + 1_000)
}

fn run_with(
    c: &Case,
    parts: &Parts,
    body: &[u8],
    policy: &SignaturePolicy,
    now: u64,
) -> Result<Verified<String>, AuthError> {
    let guard = MemoryReplayGuard::new();
    let lookup = |k: &str| (k == c.app_key).then(|| ("app-1".to_owned(), &c.secret));
    let body = (!body.is_empty()).then_some(body);
    block_on(verify_signature(parts, body, lookup, policy, now, &guard))
}

fn form_of<'a>(parts: &Parts, body: &'a [u8]) -> Option<&'a [u8]> {
    is_form(&parts.headers).then_some(body)
}

fn tweak(b: u8) -> u8 {
    if b == b'z' { b'y' } else { b'z' }
}

#[test]
fn string_to_sign_matches_every_vector() {
    for c in client_cases() {
        let ours = string_to_sign(
            &c.parts.method,
            &c.parts.uri,
            &c.parts.headers,
            form_of(&c.parts, &c.body),
        );
        assert_eq!(ours, c.string_to_sign, "{}", c.id);
    }
}

#[test]
fn sign_reproduces_every_vector() {
    for c in client_cases() {
        let sig = sign(c.method, c.secret.expose().as_bytes(), &c.string_to_sign);
        assert_eq!(sig, c.signature, "{}", c.id);
        assert!(verify(
            c.method,
            c.secret.expose().as_bytes(),
            &c.string_to_sign,
            &c.signature
        ));
    }
}

#[test]
fn verifier_accepts_every_vector() {
    for c in client_cases() {
        let ok = run(&c, &c.parts, &c.body).unwrap_or_else(|e| panic!("{}: {e:?}", c.id));
        assert_eq!(ok.app, "app-1");
        assert_eq!(ok.app_key, c.app_key);
        assert_eq!(ok.method, c.method);
    }
}

#[test]
fn any_signature_byte_change_is_rejected() {
    for c in client_cases() {
        for i in 0..c.signature.len() {
            let mut sig = c.signature.clone().into_bytes();
            sig[i] = tweak(sig[i]);
            let mut parts = c.parts.clone();
            parts
                .headers
                .insert("x-ca-signature", HeaderValue::from_bytes(&sig).unwrap());
            let err = run(&c, &parts, &c.body).unwrap_err();
            assert_eq!(err.code(), "A403IS", "{} byte {i}", c.id);
        }
    }
}

#[test]
fn any_signed_header_byte_change_is_rejected() {
    for c in client_cases() {
        let mut names: Vec<HeaderName> = c
            .parts
            .headers
            .get("x-ca-signature-headers")
            .unwrap()
            .to_str()
            .unwrap()
            .split(',')
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect();
        for fixed in ["accept", "content-md5", "content-type", "date"] {
            if c.parts.headers.contains_key(fixed) {
                names.push(HeaderName::from_static(fixed));
            }
        }
        for name in names {
            let value = c.parts.headers[&name].as_bytes().to_vec();
            for i in 0..value.len() {
                let mut v = value.clone();
                v[i] = tweak(v[i]);
                let mut parts = c.parts.clone();
                parts
                    .headers
                    .insert(name.clone(), HeaderValue::from_bytes(&v).unwrap());
                assert!(
                    run(&c, &parts, &c.body).is_err(),
                    "{}: {name} byte {i} accepted",
                    c.id
                );
            }
        }
    }
}

#[test]
fn any_body_byte_change_is_rejected() {
    for c in client_cases().into_iter().filter(|c| !c.body.is_empty()) {
        for i in 0..c.body.len() {
            let mut body = c.body.clone();
            body[i] = tweak(body[i]);
            let err = run(&c, &c.parts, &body).unwrap_err();
            assert!(
                matches!(err.code(), "A403IS" | "A400CM"),
                "{} byte {i}: {err:?}",
                c.id
            );
        }
        // Dropping the body entirely is also caught.
        assert!(run(&c, &c.parts, b"").is_err(), "{}", c.id);
    }
}

#[test]
fn any_query_byte_change_is_rejected_unless_ignored_by_the_spec() {
    let mut checked = 0;
    for c in client_cases() {
        let Some(pq) = c.parts.uri.path_and_query() else {
            continue;
        };
        let Some(q_start) = pq.as_str().find('?') else {
            continue;
        };
        let original = c.parts.uri.to_string();
        let offset = original.len() - pq.as_str().len() + q_start + 1;
        for i in offset..original.len() {
            let mut url = original.clone().into_bytes();
            url[i] = tweak(url[i]);
            let mut parts = c.parts.clone();
            parts.uri = String::from_utf8(url).unwrap().parse().unwrap();
            let sts = string_to_sign(
                &parts.method,
                &parts.uri,
                &parts.headers,
                form_of(&parts, &c.body),
            );
            let result = run(&c, &parts, &c.body);
            if sts == c.string_to_sign {
                // Only J1's shadowed values (a repeated key, a key the form overrides)
                // are outside the string-to-sign.
                assert_eq!(c.id, "J1", "byte {i} ignored");
                assert!(result.is_ok());
            } else {
                assert_eq!(result.unwrap_err().code(), "A403IS", "{} byte {i}", c.id);
                checked += 1;
            }
        }
    }
    assert!(checked > 50);
}

#[test]
fn mismatch_message_echoes_the_server_string_to_sign() {
    let c = client_cases().into_iter().find(|c| c.id == "V1").unwrap();
    let mut parts = c.parts.clone();
    parts
        .headers
        .insert("x-ca-signature", HeaderValue::from_static("AAAA"));
    let err = run(&c, &parts, &c.body).unwrap_err();
    assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(
        err.wire_message(),
        format!(
            "Invalid Signature, Server StringToSign:`{}`",
            c.string_to_sign.replace('\n', "#")
        )
    );
}

#[test]
fn wrong_secret_and_unknown_key() {
    for c in client_cases() {
        let wrong = Secret::new("SECRET_abc124");
        let guard = MemoryReplayGuard::new();
        let lookup = |_: &str| Some(((), &wrong));
        let err = block_on(verify_signature(
            &c.parts,
            Some(&c.body),
            lookup,
            &policy(),
            c.timestamp,
            &guard,
        ))
        .unwrap_err();
        assert_eq!(err.code(), "A403IS");

        let none = |_: &str| None::<((), &Secret)>;
        let err = block_on(verify_signature(
            &c.parts,
            Some(&c.body),
            none,
            &policy(),
            c.timestamp,
            &guard,
        ))
        .unwrap_err();
        assert_eq!(err.code(), "A400IK");
        assert_eq!(err.wire_message(), "Invalid AppKey");
        assert!(guard.is_empty(), "failed requests must not burn nonces");
    }
}

#[test]
fn timestamp_window_is_fifteen_minutes_both_ways() {
    let min = 60 * 1000;
    for c in client_cases() {
        for now in [c.timestamp + 20 * min, c.timestamp - 20 * min] {
            let err = run_with(&c, &c.parts, &c.body, &policy(), now).unwrap_err();
            assert_eq!(err.wire_message(), "Timestamp Expired", "{}", c.id);
        }
        for now in [c.timestamp + 15 * min, c.timestamp - 15 * min] {
            assert!(
                run_with(&c, &c.parts, &c.body, &policy(), now).is_ok(),
                "{}",
                c.id
            );
        }
    }
}

#[test]
fn sha1_needs_the_policy() {
    let c = client_cases().into_iter().find(|c| c.id == "P1").unwrap();
    let strict = SignaturePolicy::default();
    let err = run_with(&c, &c.parts, &c.body, &strict, c.timestamp).unwrap_err();
    assert!(matches!(err, AuthError::SignatureMethodNotAllowed { .. }));
    assert!(run_with(&c, &c.parts, &c.body, &policy(), c.timestamp).is_ok());
}
