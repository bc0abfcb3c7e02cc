//! Pre-signs requests for the load benchmark (`benches/load/run.sh`), because wrk cannot
//! compute HMACs: every request gets its own nonce (the gateway remembers nonces for the
//! 15-minute window and refuses a replay), all share one timestamp (valid for 15 minutes).
//!
//! ```text
//! cargo run --release --example sign_requests -- APP_KEY APP_SECRET PATH_AND_QUERY COUNT > signed.txt
//! ```
//!
//! Output, read by `benches/load/signed.lua`: a first line with every header of a signed
//! request, tab-separated `name: value`, the nonce and signature values replaced by `%N` and
//! `%S`; then `COUNT` lines `nonce signature`.

use std::io::Write as _;

use stagegate::auth::Signer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, secret, path, count] = args.as_slice() else {
        eprintln!("usage: sign_requests APP_KEY APP_SECRET PATH_AND_QUERY COUNT");
        std::process::exit(2);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let signer = Signer::new(key, secret.clone()).expect("app key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    // A per-run prefix keeps nonces distinct across runs against the same gateway.
    let run = format!("{ts:x}{:08x}", fastrand::u32(..));
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for i in 0..count {
        let nonce = format!("{run}-{i}");
        let mut req = http::Request::get(format!("http://bench{path}"))
            .body(())
            .expect("request");
        let signed = signer.sign_with(&mut req, b"", ts, &nonce).expect("sign");
        if i == 0 {
            let mut first = true;
            for (name, value) in req.headers() {
                let value = match name.as_str() {
                    "x-ca-nonce" => "%N",
                    "x-ca-signature" => "%S",
                    _ => value.to_str().expect("ascii header"),
                };
                if !first {
                    out.write_all(b"\t").expect("write");
                }
                first = false;
                write!(out, "{name}: {value}").expect("write");
            }
            out.write_all(b"\n").expect("write");
        }
        writeln!(out, "{nonce} {}", signed.signature).expect("write");
    }
    out.flush().expect("flush");
}
