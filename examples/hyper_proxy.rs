//! A bare hyper reverse proxy, the floor under the gateway's cost per request in the load
//! benchmark (`benches/load/run.sh`, row "hyper proxy"): hyper's HTTP/1 server in front of
//! hyper-util's pooled client, on one current-thread runtime, forwarding every request as it
//! came to one origin. No routing, no headers added or removed, no logging.
//!
//! ```text
//! cargo run --release --example hyper_proxy -- [LISTEN] [ORIGIN]
//! ```
//!
//! `LISTEN` defaults to `127.0.0.1:18085`, `ORIGIN` to `127.0.0.1:18081`.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18085".into());
    let origin = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    // checked once here, so each request's URI below is well formed
    if let Err(e) = Uri::try_from(format!("http://{origin}/")) {
        eprintln!("error: the origin `{origin}` is not a host:port ({e})");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(connector);
        let listener = TcpListener::bind(&addr).await.expect("bind");
        println!(
            "hyper proxy listening on http://{}",
            listener.local_addr().expect("addr")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, origin) = (client.clone(), origin.clone());
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                *req.uri_mut() = Uri::try_from(format!("http://{origin}{path}"))
                    .expect("a checked origin and a parsed path make a URI");
                client.request(req)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });
}
