//! A minimal HTTP/1.1 origin for the load benchmark (`benches/load/run.sh`): answers every
//! request with the same small body, keeps connections alive, logs nothing.
//!
//! ```text
//! cargo run --release --example origin -- [ADDR] [BODY]
//! ```
//!
//! One thread (a current-thread runtime), so the benchmark can pin it to one core and it costs
//! the same for every target. `ADDR` defaults to `127.0.0.1:18081`, `BODY` to `origin`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    let body = Bytes::from(args.next().unwrap_or_else(|| "origin".into()).into_bytes());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        println!(
            "origin listening on http://{}",
            listener.local_addr().expect("addr")
        );
        let shutdown = tokio::signal::ctrl_c();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                            let body = body.clone();
                            async move {
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .header("content-type", "text/plain")
                                        .body(Full::new(body))
                                        .expect("response"),
                                )
                            }
                        });
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    });
}
