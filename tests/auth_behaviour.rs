//! Behaviour of data-plane authentication beyond the vectors: client variants, replay,
//! hostile input, AppCodes, secrecy. Public API only.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::request::Parts;
use http::{HeaderValue, Request};
use stagegate::{
    auth::{
        AuthError, MemoryReplayGuard, ReplayError, ReplayGuard, SignaturePolicy, Signer, Verified,
        appcode_from_request, appcode_matches, check_signature, verify_signature,
    },
    model::{AppCodeMode, Secret, SignatureMethod},
};

const KEY: &str = "203753385";
const SECRET: &str = "SECRET_abc123";
const TS: u64 = 1_525_872_629_832;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn secret() -> Secret {
    Secret::new(SECRET)
}

fn verify_at(
    parts: &Parts,
    body: &[u8],
    policy: &SignaturePolicy,
    now: u64,
    guard: &dyn ReplayGuard,
) -> Result<Verified<&'static str>, AuthError> {
    let s = secret();
    let lookup = |k: &str| (k == KEY).then_some(("app", s.clone()));
    let body = (!body.is_empty()).then_some(body);
    block_on(verify_signature(parts, body, lookup, policy, now, guard))
}

fn verify(parts: &Parts, body: &[u8]) -> Result<Verified<&'static str>, AuthError> {
    verify_at(
        parts,
        body,
        &SignaturePolicy::default(),
        TS,
        &MemoryReplayGuard::new(),
    )
}

fn signed(req: Request<()>, body: &[u8], nonce: &str) -> Parts {
    let mut req = req;
    Signer::new(KEY, SECRET)
        .unwrap()
        .sign_with(&mut req, body, TS, nonce)
        .unwrap();
    req.into_parts().0
}

/// Re-signs `parts` by hand with the given signed-header list (as a client spelled it).
fn resign(parts: &mut Parts, list: &str, body: &[u8]) {
    parts.headers.insert(
        "x-ca-signature-headers",
        HeaderValue::from_str(list).unwrap(),
    );
    let form = stagegate::auth::is_form(&parts.headers).then_some(body);
    let sts = stagegate::auth::string_to_sign(&parts.method, &parts.uri, &parts.headers, form);
    let sig = stagegate::auth::sign(SignatureMethod::HmacSha256, SECRET.as_bytes(), &sts);
    parts
        .headers
        .insert("x-ca-signature", HeaderValue::from_str(&sig).unwrap());
}

#[test]
fn header_name_spelling_is_kept_and_order_does_not_matter() {
    let base = signed(Request::get("/p").body(()).unwrap(), b"", "n");
    for list in [
        "x-ca-key,x-ca-nonce,x-ca-timestamp",
        "X-Ca-Timestamp,X-Ca-Key,X-Ca-Nonce",
        "X-CA-NONCE, x-Ca-Key ,X-ca-timestamp",
    ] {
        let mut parts = base.clone();
        resign(&mut parts, list, b"");
        assert!(verify(&parts, b"").is_ok(), "{list}");
        // The server's string-to-sign shows the client's spelling.
        let mut bad = parts.clone();
        bad.headers
            .insert("x-ca-signature", HeaderValue::from_static("AAAA"));
        let msg = verify(&bad, b"").unwrap_err().wire_message();
        for name in list.split(',') {
            assert!(msg.contains(&format!("#{}:", name.trim())), "{msg}");
        }
    }
}

#[test]
fn unicode_and_plus_in_query() {
    // Python clients send `+` for a space, Node sends `%20`: both sign a space.
    let a = signed(
        Request::get("/s?q=a+b&c=%E6%9D%AD").body(()).unwrap(),
        b"",
        "n",
    );
    let mut b = a.clone();
    b.uri = "/s?q=a%20b&c=%E6%9D%AD".parse().unwrap();
    assert!(verify(&a, b"").is_ok());
    assert!(verify(&b, b"").is_ok());
    let sts = stagegate::auth::string_to_sign(&a.method, &a.uri, &a.headers, None);
    assert!(sts.ends_with("/s?c=杭&q=a b"), "{sts}");
}

#[test]
fn form_post_form_wins_over_query() {
    let body = b"b=fromForm&FormKey1=FormValue1";
    let req = Request::post("/demo/post?b=fromQuery&a=1")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(())
        .unwrap();
    let mut req2 = req;
    let s = Signer::new(KEY, SECRET)
        .unwrap()
        .sign_with(&mut req2, body, TS, "n")
        .unwrap();
    assert!(
        s.string_to_sign
            .ends_with("/demo/post?FormKey1=FormValue1&a=1&b=fromForm")
    );
    let parts = req2.into_parts().0;
    assert!(!parts.headers.contains_key("content-md5"));
    // The spec's rule (signature vector J1): the form's value is signed, and verifies.
    assert!(verify(&parts, body).is_ok());
    // But the query's could reach the backend: a gateway refuses a key in both with
    // different values (a tampered URL must not ride on a signed form).
    let strict = SignaturePolicy::default().with_conflicting_params_refused(true);
    let err = verify_at(&parts, body, &strict, TS, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(
        (err.code(), err.status().as_u16()),
        ("A400PC", 400),
        "{err:?}"
    );
    assert!(verify(&parts, b"b=other&FormKey1=FormValue1").is_err());

    // The same value in both places, or keys in one place only, are fine.
    for (uri, body) in [
        ("/demo/post?b=same&a=1", &b"b=same&FormKey1=FormValue1"[..]),
        ("/demo/post?a=1", &b"b=x&FormKey1=FormValue1"[..]),
        ("/demo/post?b=x+y", &b"b=x%20y"[..]),
    ] {
        let mut req = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(())
            .unwrap();
        Signer::new(KEY, SECRET)
            .unwrap()
            .sign_with(&mut req, body, TS, "n")
            .unwrap();
        let parts = req.into_parts().0;
        let guard = MemoryReplayGuard::new();
        assert!(
            verify_at(&parts, body, &strict, TS, &guard).is_ok(),
            "{uri}"
        );
    }
}

#[test]
fn a_signed_amount_cannot_be_changed_in_the_url() {
    // The report: a signed form `amount=1&to=alice`, and `?amount=1000&to=mallory`
    // added to the URL afterwards.
    let body = b"amount=1&to=alice";
    let mut req = Request::post("/pay")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap();
    Signer::new(KEY, SECRET)
        .unwrap()
        .sign_with(&mut req, body, TS, "n")
        .unwrap();
    let mut parts = req.into_parts().0;
    parts.uri = "/pay?amount=1000&to=mallory".parse().unwrap();
    let strict = SignaturePolicy::default().with_conflicting_params_refused(true);
    let err = verify_at(&parts, body, &strict, TS, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(
        err,
        AuthError::ConflictingParameter {
            name: "amount".into()
        }
    );
}

#[test]
fn a_nonce_is_remembered_while_its_timestamp_is_accepted() {
    const MIN: u64 = 60 * 1000;
    // A timestamp 14.5 minutes ahead of the gateway's clock is accepted until 29.5 minutes
    // from now: its nonce must be refused for all that time, not just for 15 minutes.
    let ahead = TS + 29 * MIN / 2;
    let mut req = Request::get("/p").body(()).unwrap();
    Signer::new(KEY, SECRET)
        .unwrap()
        .sign_with(&mut req, b"", ahead, "n-ahead")
        .unwrap();
    let parts = req.into_parts().0;
    let guard = MemoryReplayGuard::new();
    let policy = SignaturePolicy::default();
    assert!(verify_at(&parts, b"", &policy, TS, &guard).is_ok());
    for later in [16 * MIN, 29 * MIN] {
        assert_eq!(
            verify_at(&parts, b"", &policy, TS + later, &guard).unwrap_err(),
            AuthError::NonceUsed,
            "{later}"
        );
    }
    // Once the timestamp is no longer accepted, the replay fails on that.
    assert_eq!(
        verify_at(&parts, b"", &policy, TS + 30 * MIN, &guard).unwrap_err(),
        AuthError::TimestampExpired
    );
}

#[test]
fn a_sent_nonce_or_timestamp_must_be_signed() {
    let base = signed(Request::get("/p").body(()).unwrap(), b"", "n-unsigned");
    for (list, name) in [
        ("x-ca-key,x-ca-timestamp", "X-Ca-Nonce"),
        ("x-ca-key,x-ca-nonce", "X-Ca-Timestamp"),
        ("x-ca-key", "X-Ca-Timestamp"),
    ] {
        let mut parts = base.clone();
        resign(&mut parts, list, b"");
        let guard = MemoryReplayGuard::new();
        let err = verify_at(&parts, b"", &SignaturePolicy::default(), TS, &guard).unwrap_err();
        assert_eq!(err, AuthError::UnsignedHeader { name }, "{list}");
        assert_eq!((err.code(), err.status().as_u16()), ("A400UH", 400));
        assert!(guard.is_empty(), "a refused request records no nonce");
    }
    // Listed in any spelling, they are signed.
    let mut parts = base;
    resign(&mut parts, "X-Ca-Nonce,X-CA-TIMESTAMP,x-ca-key", b"");
    assert!(verify(&parts, b"").is_ok());
}

#[test]
fn forced_nonce_checks_need_a_signed_time() {
    let forced = SignaturePolicy::default().with_force_nonce(true);
    let date_of = |ms: u64| {
        let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap()).unwrap();
        jiff::fmt::rfc2822::to_string(&ts.to_zoned(jiff::tz::TimeZone::UTC))
            .unwrap()
            .replace("+0000", "GMT")
    };
    let iot = |date: Option<String>| {
        let mut b = Request::get("/iot/thing")
            .header("accept", "application/json")
            .header("x-ca-key", KEY)
            .header("x-ca-nonce", "iot-nonce");
        if let Some(d) = date {
            b = b.header("date", d);
        }
        let mut parts = b.body(()).unwrap().into_parts().0;
        resign(&mut parts, "x-ca-key,x-ca-nonce", b"");
        parts
    };
    let guard = MemoryReplayGuard::new();
    // No time at all: refused before the nonce is recorded.
    let err = verify_at(&iot(None), b"", &forced, TS, &guard).unwrap_err();
    assert_eq!(
        err,
        AuthError::MissingHeader {
            name: "X-Ca-Timestamp"
        }
    );
    assert!(guard.is_empty());
    // `Date` is the time of a client that sends no timestamp, held to the same skew.
    let fresh = iot(Some(date_of(TS - 60_000)));
    assert!(verify_at(&fresh, b"", &forced, TS, &guard).is_ok());
    let stale = iot(Some(date_of(TS - 16 * 60_000)));
    assert_eq!(
        verify_at(&stale, b"", &forced, TS, &MemoryReplayGuard::new()).unwrap_err(),
        AuthError::TimestampExpired
    );
    let junk = iot(Some("yesterday".to_owned()));
    assert_eq!(
        verify_at(&junk, b"", &forced, TS, &MemoryReplayGuard::new()).unwrap_err(),
        AuthError::InvalidTimestamp
    );
    // Without forced checks a Date is not read (the IoT vector signs a 2018 Date).
    assert!(
        verify_at(
            &stale,
            b"",
            &SignaturePolicy::default(),
            TS,
            &MemoryReplayGuard::new()
        )
        .is_ok()
    );
}

#[test]
fn without_a_nonce_a_signed_request_can_be_replayed_unless_nonces_are_forced() {
    // The documented decision: the nonce is optional (Alibaba's signature documentation, and the IoT client sends
    // none), so an API that does not force nonce checks accepts a replay within the
    // timestamp's skew. Forcing nonce checks closes it.
    let mut parts = signed(Request::get("/p").body(()).unwrap(), b"", "unused");
    parts.headers.remove("x-ca-nonce");
    resign(&mut parts, "x-ca-key,x-ca-timestamp", b"");
    let guard = MemoryReplayGuard::new();
    let lax = SignaturePolicy::default();
    assert!(verify_at(&parts, b"", &lax, TS, &guard).is_ok());
    assert!(verify_at(&parts, b"", &lax, TS + 1_000, &guard).is_ok());
    let forced = lax.with_force_nonce(true);
    assert_eq!(
        verify_at(&parts, b"", &forced, TS, &guard).unwrap_err(),
        AuthError::MissingHeader { name: "X-Ca-Nonce" }
    );
}

#[test]
fn repeated_x_ca_headers_are_refused() {
    let base = signed(
        Request::get("/p")
            .header("x-ca-stage", "TEST")
            .body(())
            .unwrap(),
        b"",
        "n",
    );
    for name in ["x-ca-stage", "x-ca-key", "x-ca-nonce", "x-ca-custom"] {
        let mut parts = base.clone();
        let first = parts
            .headers
            .get(name)
            .cloned()
            .unwrap_or(HeaderValue::from_static("a"));
        parts.headers.insert(name, first);
        parts
            .headers
            .append(name, HeaderValue::from_static("RELEASE"));
        let err = verify(&parts, b"").unwrap_err();
        assert_eq!(
            err,
            AuthError::DuplicateHeader {
                name: name.to_owned()
            }
        );
        assert_eq!(err.code(), "A400DH");
    }
    // Other repeated headers are the backend's business.
    let mut parts = base;
    parts
        .headers
        .append("accept-language", HeaderValue::from_static("de"));
    parts
        .headers
        .append("accept-language", HeaderValue::from_static("fr"));
    assert!(verify(&parts, b"").is_ok());
}

#[test]
fn an_unsigned_stage_is_refused_only_when_required() {
    let unsigned = signed(
        Request::get("/p")
            .header("x-ca-stage", "RELEASE")
            .body(())
            .unwrap(),
        b"",
        "n",
    );
    let strict = SignaturePolicy::default().with_signed_stage(true);
    let err = verify_at(&unsigned, b"", &strict, TS, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(err, AuthError::UnsignedHeader { name: "X-Ca-Stage" });
    // off by default (the demo client cannot sign it)
    assert!(verify(&unsigned, b"").is_ok());
    let mut req = Request::get("/p").body(()).unwrap();
    Signer::new(KEY, SECRET)
        .unwrap()
        .with_stage(stagegate::model::Stage::RELEASE)
        .sign_with(&mut req, b"", TS, "n")
        .unwrap();
    let parts = req.into_parts().0;
    assert!(verify_at(&parts, b"", &strict, TS, &MemoryReplayGuard::new()).is_ok());
    // without a stage header there is nothing to sign
    let plain = signed(Request::get("/p").body(()).unwrap(), b"", "n");
    assert!(verify_at(&plain, b"", &strict, TS, &MemoryReplayGuard::new()).is_ok());
}

#[test]
fn a_signed_header_named_in_connection_is_refused() {
    let mut req = Request::get("/p")
        .header("x-custom-a", "signed")
        .body(())
        .unwrap();
    Signer::new(KEY, SECRET)
        .unwrap()
        .with_signed_header(http::HeaderName::from_static("x-custom-a"))
        .sign_with(&mut req, b"", TS, "n")
        .unwrap();
    let parts = req.into_parts().0;
    assert!(verify(&parts, b"").is_ok());
    for connection in ["X-Custom-A", "keep-alive, x-custom-a", "close,x-ca-nonce "] {
        let mut p = parts.clone();
        p.headers
            .insert("connection", HeaderValue::from_static(connection));
        let err = verify(&p, b"").unwrap_err();
        assert_eq!(err.code(), "I400HD", "{connection}");
        assert!(err.wire_message().contains("Connection"), "{connection}");
    }
    // Naming unsigned headers is fine.
    let mut p = parts;
    p.headers.insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-other"),
    );
    assert!(verify(&p, b"").is_ok());
}

#[test]
fn json_and_octet_stream_with_md5() {
    for ct in [
        "application/json; charset=utf-8",
        "application/octet-stream",
    ] {
        let body = "{\"name\":\"测试\"}".as_bytes();
        let parts = signed(
            Request::put("/v1/items/42")
                .header("content-type", ct)
                .body(())
                .unwrap(),
            body,
            "n",
        );
        assert!(parts.headers.contains_key("content-md5"));
        assert!(verify(&parts, body).is_ok(), "{ct}");
        let err = verify(&parts, b"{}").unwrap_err();
        assert_eq!(err.wire_message(), "Invalid Content-MD5");
        assert_eq!(err.code(), "A400CM");
        // MD5 sent with an empty body.
        assert_eq!(verify(&parts, b"").unwrap_err().code(), "A400CM");
    }
}

#[test]
fn date_without_timestamp_is_accepted() {
    // The IoT Tea client: Date instead of X-Ca-Timestamp, no nonce.
    let mut parts = Request::get("/iot/thing")
        .header("date", "Wed, 09 May 2018 13:30:29 GMT")
        .header("accept", "application/json")
        .header("x-ca-key", KEY)
        .header("x-ca-signaturemethod", "HmacSHA256")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    resign(&mut parts, "x-ca-key,x-ca-signaturemethod", b"");
    assert!(
        verify_at(
            &parts,
            b"",
            &SignaturePolicy::default(),
            0,
            &MemoryReplayGuard::new()
        )
        .is_ok()
    );
    // ... unless the API forces a nonce.
    let forced = SignaturePolicy::default().with_force_nonce(true);
    let err = verify_at(&parts, b"", &forced, 0, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(err.code(), "I400MH");
    assert_eq!(err.wire_message(), "Header `X-Ca-Nonce` is Required");
}

#[test]
fn replayed_nonce_and_forgeries_do_not_burn_nonces() {
    let guard = MemoryReplayGuard::new();
    let policy = SignaturePolicy::default();
    let parts = signed(Request::get("/p").body(()).unwrap(), b"", "nonce-1");
    // A forged copy (bad signature) fails without consuming the nonce.
    let mut forged = parts.clone();
    forged
        .headers
        .insert("x-ca-signature", HeaderValue::from_static("AAAA"));
    assert_eq!(
        verify_at(&forged, b"", &policy, TS, &guard)
            .unwrap_err()
            .code(),
        "A403IS"
    );
    assert!(guard.is_empty());
    assert!(verify_at(&parts, b"", &policy, TS, &guard).is_ok());
    let err = verify_at(&parts, b"", &policy, TS + 1, &guard).unwrap_err();
    assert_eq!(
        (err.code(), err.wire_message().as_str()),
        ("A400NU", "Nonce Used")
    );
}

#[test]
fn concurrent_replays_exactly_one_fresh() {
    let guard = Arc::new(MemoryReplayGuard::new());
    let parts = Arc::new(signed(Request::get("/p").body(()).unwrap(), b"", "same"));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let guard = Arc::clone(&guard);
            let parts = Arc::clone(&parts);
            std::thread::spawn(move || {
                verify_at(&parts, b"", &SignaturePolicy::default(), TS, &*guard).is_ok()
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|o| *o)
        .count();
    assert_eq!(ok, 1);
}

#[test]
fn full_nonce_store_refuses() {
    let guard = MemoryReplayGuard::new().with_max_entries(1);
    let a = signed(Request::get("/p").body(()).unwrap(), b"", "a");
    let b = signed(Request::get("/p").body(()).unwrap(), b"", "b");
    let policy = SignaturePolicy::default();
    assert!(verify_at(&a, b"", &policy, TS, &guard).is_ok());
    let err = verify_at(&b, b"", &policy, TS, &guard).unwrap_err();
    assert_eq!(
        err,
        AuthError::ReplayStore(ReplayError::Full { capacity: 1 })
    );
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn sha1_signer_round_trip_needs_policy() {
    let mut req = Request::get("/p").body(()).unwrap();
    Signer::new(KEY, SECRET)
        .unwrap()
        .with_method(SignatureMethod::HmacSha1)
        .sign(&mut req, b"");
    let parts = req.into_parts().0;
    let now = parts.headers["x-ca-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let strict = SignaturePolicy::default();
    let err = verify_at(&parts, b"", &strict, now, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(err.code(), "A400SM");
    let lax = strict.with_method(SignatureMethod::HmacSha1);
    assert!(verify_at(&parts, b"", &lax, now, &MemoryReplayGuard::new()).is_ok());
    // Unknown method names are refused too.
    let mut odd = parts;
    odd.headers
        .insert("x-ca-signature-method", HeaderValue::from_static("HmacMD5"));
    let err = verify_at(&odd, b"", &lax, now, &MemoryReplayGuard::new()).unwrap_err();
    assert_eq!(err.wire_message(), "Invalid Signature Method `HmacMD5`");
}

#[test]
fn foreign_scheme_is_missing_credentials() {
    // Huawei APIG's SDK-HMAC-SHA256 signer.
    let parts = Request::get("/p")
        .header(
            "authorization",
            "SDK-HMAC-SHA256 Access=abc, SignedHeaders=host;x-sdk-date, Signature=00ff",
        )
        .header("x-sdk-date", "20180509T133029Z")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let err = verify(&parts, b"").unwrap_err();
    assert_eq!(err, AuthError::MissingCredentials);
    assert_eq!(err.code(), "A400MA");
    assert_eq!(
        appcode_from_request(&parts, AppCodeMode::HeaderQuery),
        Ok(None)
    );
}

#[test]
fn missing_or_bad_signing_headers() {
    let parts = signed(Request::get("/p").body(()).unwrap(), b"", "n");
    let mut p = parts.clone();
    p.headers.remove("x-ca-signature");
    assert_eq!(
        verify(&p, b"").unwrap_err().wire_message(),
        "Header `X-Ca-Signature` is Required"
    );
    let mut p = parts.clone();
    p.headers
        .insert("x-ca-timestamp", HeaderValue::from_static("15258726x9832"));
    assert_eq!(
        verify(&p, b"").unwrap_err().wire_message(),
        "Invalid Timestamp"
    );
    let mut p = parts.clone();
    p.headers
        .insert("x-ca-timestamp", HeaderValue::from_static("-1"));
    assert_eq!(verify(&p, b"").unwrap_err(), AuthError::InvalidTimestamp);
    let mut p = parts;
    p.headers.insert("x-ca-key", HeaderValue::from_static(""));
    assert_eq!(verify(&p, b"").unwrap_err(), AuthError::MissingCredentials);
}

#[test]
fn hostile_header_values_error_without_panic() {
    let base = signed(Request::get("/p").body(()).unwrap(), b"", "n");

    // 10k signed-header names.
    let list: Vec<String> = (0..10_000).map(|i| format!("x-h{i}")).collect();
    let mut p = base.clone();
    p.headers.insert(
        "x-ca-signature-headers",
        HeaderValue::from_str(&list.join(",")).unwrap(),
    );
    assert_eq!(verify(&p, b"").unwrap_err().code(), "I400HD");

    // Non-UTF-8 bytes everywhere.
    for name in [
        "x-ca-key",
        "x-ca-signature",
        "x-ca-signature-method",
        "x-ca-timestamp",
        "x-ca-nonce",
        "x-ca-signature-headers",
        "content-md5",
        "accept",
        "date",
        "content-type",
    ] {
        let mut p = base.clone();
        p.headers
            .insert(name, HeaderValue::from_bytes(b"\xff\xfe\x80abc").unwrap());
        assert!(verify(&p, b"").is_err(), "{name}");
    }

    // A huge nonce, a huge signature, an empty list.
    let mut p = base.clone();
    p.headers.insert(
        "x-ca-nonce",
        HeaderValue::from_str(&"n".repeat(5000)).unwrap(),
    );
    assert_eq!(verify(&p, b"").unwrap_err().code(), "I400HD");
    let mut p = base.clone();
    p.headers.insert(
        "x-ca-signature",
        HeaderValue::from_str(&"A".repeat(100_000)).unwrap(),
    );
    assert_eq!(verify(&p, b"").unwrap_err().code(), "A403IS");
    let mut p = base.clone();
    p.headers
        .insert("x-ca-signature-headers", HeaderValue::from_static(",,, ,"));
    // The request's nonce and timestamp are then unsigned.
    assert_eq!(verify(&p, b"").unwrap_err().code(), "A400UH");
    // Timestamp overflow.
    let mut p = base;
    p.headers.insert(
        "x-ca-timestamp",
        HeaderValue::from_static("99999999999999999999999"),
    );
    assert_eq!(verify(&p, b"").unwrap_err().code(), "A400IT");
}

#[test]
fn appcodes() {
    let parts = |req: http::request::Builder| req.body(()).unwrap().into_parts().0;
    let header = parts(Request::get("/p").header("authorization", "APPCODE 0123abcd"));
    assert_eq!(
        appcode_from_request(&header, AppCodeMode::Header)
            .unwrap()
            .as_deref(),
        Some("0123abcd")
    );
    let err = appcode_from_request(&header, AppCodeMode::Disable).unwrap_err();
    assert_eq!(
        err.wire_message(),
        "AppCode authentication is disabled for this API"
    );

    // The keyword is literal upper-case, one space.
    let lower = parts(Request::get("/p").header("authorization", "appcode 0123abcd"));
    assert_eq!(appcode_from_request(&lower, AppCodeMode::Header), Ok(None));
    let empty = parts(Request::get("/p").header("authorization", "APPCODE "));
    assert_eq!(
        appcode_from_request(&empty, AppCodeMode::Header),
        Err(AuthError::InvalidAppCode)
    );

    // The query form only under HeaderQuery.
    let query = parts(Request::get("/p?x=1&AppCode=c%20d"));
    assert_eq!(appcode_from_request(&query, AppCodeMode::Header), Ok(None));
    assert_eq!(appcode_from_request(&query, AppCodeMode::Disable), Ok(None));
    assert_eq!(
        appcode_from_request(&query, AppCodeMode::HeaderQuery)
            .unwrap()
            .as_deref(),
        Some("c d")
    );

    // Wrong AppCode.
    let presented = appcode_from_request(&header, AppCodeMode::Header)
        .unwrap()
        .unwrap();
    assert!(appcode_matches("0123abcd", &presented));
    assert!(!appcode_matches("0123abce", &presented));
    assert!(!appcode_matches("0123abc", &presented));
    assert_eq!(AuthError::InvalidAppCode.code(), "A401AC");
    assert_eq!(
        AuthError::InvalidAppCode.status(),
        http::StatusCode::UNAUTHORIZED
    );
}

#[test]
fn secrets_never_leak() {
    let s = secret();
    let signer = Signer::new(KEY, s.clone()).unwrap();
    for text in [
        format!("{s:?}"),
        format!("{s}"),
        format!("{s:#?}"),
        format!("{signer:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
    // Errors from every failure path.
    let parts = signed(Request::get("/p").body(()).unwrap(), b"", "n");
    let mut bad = parts.clone();
    bad.headers
        .insert("x-ca-signature", HeaderValue::from_static("AAAA"));
    let wrong_key = {
        let mut p = parts;
        p.headers
            .insert("x-ca-key", HeaderValue::from_static("nope"));
        p
    };
    for p in [&bad, &wrong_key] {
        let e = verify(p, b"").unwrap_err();
        for text in [format!("{e}"), format!("{e:?}"), e.wire_message()] {
            assert!(!text.contains(SECRET), "{text}");
        }
    }
}

#[test]
fn check_signature_leaves_the_nonce_to_the_caller() {
    let parts = signed(Request::get("/p").body(()).unwrap(), b"", "n-7");
    let s = secret();
    let checked = check_signature(
        &parts,
        None,
        |k: &str| (k == KEY).then_some((1u32, &s)),
        &SignaturePolicy::default(),
        TS,
    )
    .unwrap();
    assert_eq!(checked.nonce(), Some("n-7"));
    let guard = MemoryReplayGuard::new();
    let v = block_on(checked.consume_nonce(&guard)).unwrap();
    assert_eq!((v.app, v.app_key.as_str()), (1, KEY));
}

#[test]
fn verification_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let parts = signed(Request::get("/p").body(()).unwrap(), b"", "n");
    let s = secret();
    let guard = MemoryReplayGuard::new();
    let policy = SignaturePolicy::default();
    let fut = verify_signature(
        &parts,
        None,
        |_: &str| Some(("app", &s)),
        &policy,
        TS,
        &guard,
    );
    assert_send(&fut);
    assert!(block_on(fut).is_ok());
}
