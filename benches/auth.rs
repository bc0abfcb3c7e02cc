//! Signature verification benchmarks (the data plane's per-request auth cost).

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http::request::Parts;
use stagegate::{
    auth::{ReplayError, ReplayFuture, ReplayGuard, SignaturePolicy, Signer, verify_signature},
    model::Secret,
};

const TS: u64 = 1_525_872_629_832;

/// Always fresh: measures verification, not the nonce store.
struct NoReplay;

impl ReplayGuard for NoReplay {
    fn check_and_remember<'a>(&'a self, _: &'a str, _: &'a str, _: u64) -> ReplayFuture<'a> {
        Box::pin(std::future::ready(Ok::<bool, ReplayError>(true)))
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn signed(mut req: Request<()>, body: &[u8], signer: &Signer) -> Parts {
    signer
        .sign_with(&mut req, body, TS, "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44")
        .expect("valid nonce");
    req.into_parts().0
}

fn bench(c: &mut Criterion) {
    let secret = Secret::new("SECRET_abc123");
    let policy = SignaturePolicy::default();
    let guard = NoReplay;

    // GET, 5 signed headers (key, nonce, stage, timestamp, x-custom), 5 query params.
    let signer = Signer::new("203753385", secret.clone())
        .expect("key")
        .with_stage(stagegate::model::Stage::RELEASE)
        .with_signed_header(http::HeaderName::from_static("x-custom"));
    let get = signed(
        Request::get("/demo/get?e=5&d=4&c=%E6%9D%AD&b=two+words&a=1")
            .header("x-custom", "v")
            .header("user-agent", "bench")
            .body(())
            .expect("request"),
        b"",
        &signer,
    );

    // POST, 1 KiB urlencoded form.
    let plain = Signer::new("203753385", secret.clone()).expect("key");
    let mut form = String::new();
    let mut i = 0;
    while form.len() < 1024 {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(&format!("field{i}=value+with+spaces+%26+symbols"));
        i += 1;
    }
    form.truncate(1024);
    let form = form.into_bytes();
    let post = signed(
        Request::post("/demo/post?q=1")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(())
            .expect("request"),
        &form,
        &plain,
    );

    let lookup = |k: &str| (k == "203753385").then_some(("app", &secret));
    assert!(block_on(verify_signature(&get, None, lookup, &policy, TS, &guard)).is_ok());
    assert!(
        block_on(verify_signature(
            &post,
            Some(&form),
            lookup,
            &policy,
            TS,
            &guard
        ))
        .is_ok()
    );

    let mut group = c.benchmark_group("signature");
    group.bench_function("verify_get_5h_5q", |b| {
        b.iter(|| {
            block_on(verify_signature(
                black_box(&get),
                None,
                lookup,
                &policy,
                black_box(TS),
                &guard,
            ))
        });
    });
    group.bench_function("verify_form_1k", |b| {
        b.iter(|| {
            block_on(verify_signature(
                black_box(&post),
                Some(black_box(&form)),
                lookup,
                &policy,
                black_box(TS),
                &guard,
            ))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
