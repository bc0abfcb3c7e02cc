//! `stagegate::serve::Server` over real loopback sockets: the header-read and idle timeouts, the
//! connection cap, graceful shutdown with idle connections, and the peer address, on the
//! current-thread runtime `#[tokio::test]` gives.
#![cfg(feature = "serve")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use stagegate::ClientAddr;
use stagegate::serve::{ConnectionLimit, Server, WithClientAddr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::closed_within;

/// A running server: its address, the trigger of its shutdown and its task.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Triggers the shutdown and waits (at most `within`) for `serve` to return; how long it took.
    async fn shut_down(mut self, within: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(within, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        started.elapsed()
    }
}

/// Serves `/slow` after 600 ms, anything else at once, answering `peer=<ClientAddr>`.
async fn start(server: Server) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = tower::service_fn(|req: Request<Incoming>| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        let peer = req
            .extensions()
            .get::<ClientAddr>()
            .map(|a| a.0.to_string());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
            "peer={}",
            peer.unwrap_or_default()
        )))))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(
        listener,
        move |peer| WithClientAddr::new(svc, peer),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Sends `GET path` and reads one response (its body is `peer=...`, with a content-length).
async fn get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body.to_owned();
            }
        }
    }
}

fn quick_headers() -> Server {
    Server::new()
        .with_header_read_timeout(Duration::from_millis(300))
        .with_idle_timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let server = start(quick_headers()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let t = Instant::now();
    let got = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("the silent connection is closed");
    assert!(got.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    server.shut_down(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_read_timeout() {
    let server = start(quick_headers()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5))
            .await
            .is_some(),
        "the half-sent head is cut off"
    );
    server.shut_down(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_cut_off() {
    let server = start(quick_headers()).await;
    let s = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // 200 bytes at one every 20 ms would take 4 s; every byte moves, so only the head timeout
    // (300 ms, not reset by bytes) can end it.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(160)
    );
    let writer = tokio::spawn(async move {
        for b in head.bytes() {
            if wr.write_all(&[b]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    });
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickle was not cut off");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    writer.abort();
    server.shut_down(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle_but_not_while_a_request_is_slow() {
    let server = start(
        Server::new()
            .with_header_read_timeout(Duration::from_secs(10))
            .with_idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // The upstream takes 600 ms, twice the idle timeout, and no byte moves meanwhile: still
    // answered, since a request is in flight.
    let body = get(&mut s, "/slow").await;
    assert!(body.starts_with("peer="), "{body}");
    // Kept alive, then idle: closed after about 300 ms.
    let t = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5))
            .await
            .is_some(),
        "the idle kept-alive connection stays open"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    server.shut_down(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_cap_refuses_the_connection_beyond_it_and_recovers_when_one_closes() {
    let limit = ConnectionLimit::new(2);
    let server = start(Server::new().with_connection_limit(limit.clone())).await;
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    get(&mut a, "/").await;
    get(&mut b, "/").await;
    assert_eq!(limit.open(), 2);

    // The third is accepted and closed at once, with no response.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let got = closed_within(&mut c, Duration::from_secs(2))
        .await
        .expect("the connection beyond the cap is closed at once");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_eq!(limit.open(), 2);
    // The two below the cap still work.
    get(&mut a, "/").await;

    // One closes: a new connection is served again.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while limit.open() > 1 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut d = TcpStream::connect(server.addr).await.unwrap();
    assert!(get(&mut d, "/").await.starts_with("peer="));
    drop((a, d));
    server.shut_down(Duration::from_secs(5)).await;
    assert_eq!(limit.open(), 0);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_a_request_in_flight_finish() {
    // A grace period of 30 s, as the example gateway has: nothing here may wait for it.
    let server = start(
        Server::new()
            .with_header_read_timeout(Duration::from_secs(20))
            .with_idle_timeout(Duration::from_secs(20))
            .with_shutdown_grace(Duration::from_secs(30)),
    )
    .await;
    let mut kept_alive = TcpStream::connect(server.addr).await.unwrap();
    get(&mut kept_alive, "/").await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // let the server read all of that
    tokio::time::sleep(Duration::from_millis(100)).await;

    let took = server.shut_down(Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // The request in flight got its whole response.
    let got = closed_within(&mut slow, Duration::from_secs(1))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("peer=127.0.0.1:"), "{text}");
    for (name, s) in [
        ("kept alive", &mut kept_alive),
        ("silent", &mut silent),
        ("partial head", &mut partial),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(1)).await.is_some(),
            "the {name} connection is still open"
        );
    }
}

#[tokio::test]
async fn every_request_carries_the_peer_address() {
    let server = start(Server::new()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let me = s.local_addr().unwrap();
    assert_eq!(get(&mut s, "/").await, format!("peer={me}"));
    assert_eq!(get(&mut s, "/again").await, format!("peer={me}"));
    drop(s);
    server.shut_down(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_does_not_hold_up_shutdown() {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = start(
        Server::new()
            .with_header_read_timeout(Duration::from_secs(10))
            .with_idle_timeout(Duration::from_millis(300)),
    )
    .await;
    // prior-knowledge HTTP/2
    let h2 = |addr| async move {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        (sender, tokio::spawn(conn))
    };
    let (mut sender, conn) = h2(server.addr).await;
    let req = Request::get(format!("http://{}/", server.addr))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"peer=127.0.0.1:"), "{body:?}");
    // Idle: the server closes it.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap()
        .ok();
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    // A fresh idle HTTP/2 connection does not hold up the shutdown either.
    let (_sender, conn) = h2(server.addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let took = server.shut_down(Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    tokio::time::timeout(Duration::from_secs(2), conn)
        .await
        .expect("closed by the shutdown")
        .unwrap()
        .ok();
}
