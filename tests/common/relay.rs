//! A TCP relay the test owns and can cut, in front of a shared server (Redis) that is never
//! stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the relay does with traffic.
pub const PASS: u8 = 0;
/// Close every connection, and every new one at once.
pub const DROP: u8 = 1;
/// Keep connections open but move no byte.
pub const HANG: u8 = 2;

/// A TCP relay to the shared Redis that the test owns and can cut: the shared server is never
/// stopped.
pub struct Relay {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
}

impl Relay {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let m = Arc::clone(&mode);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (m, upstream) = (Arc::clone(&m), upstream.clone());
                tokio::spawn(async move {
                    match m.load(Ordering::SeqCst) {
                        DROP => {
                            let _ = client.shutdown().await;
                            return;
                        }
                        HANG => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => {}
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    tokio::pin!(copy);
                    // Watch the mode while copying: a cut ends (DROP) or freezes (HANG) the pipe.
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            () = tokio::time::sleep(Duration::from_millis(10)) => {
                                match m.load(Ordering::SeqCst) {
                                    DROP => return,
                                    HANG => {
                                        tokio::time::sleep(Duration::from_secs(30)).await;
                                        return;
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { addr, mode }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}
