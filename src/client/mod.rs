//! Calling published APIs from Rust: every request signed for an app.
//!
//! - [`Client`]: a ready-made HTTP and HTTPS client (hyper-util's pooled client, rustls with
//!   Mozilla's roots) that signs what it sends and collects the answer. Nothing else to add to
//!   `Cargo.toml`.
//! - [`SigningLayer`] / [`SigningService`]: the signing step as a tower layer, for hyper-util's
//!   client or any tower HTTP service taking `Request<Full<Bytes>>`.
//!
//! Each request gets `X-Ca-Key`, a fresh `X-Ca-Timestamp` and random `X-Ca-Nonce`, `X-Ca-Stage`
//! when the [`Signer`](crate::auth::Signer) has one (without it the gateway serves `RELEASE`),
//! `Content-MD5` for a body that is not a form, `X-Ca-Signature-Headers` and `X-Ca-Signature`,
//! as Alibaba Cloud API Gateway's official SDKs send them ("Use digest authentication to call
//! an API" in its documentation). A form body (`application/x-www-form-urlencoded`) is signed
//! with its parameters, as the protocol has it.
//!
//! # Examples
//!
//! ```no_run
//! use stagegate::auth::Signer;
//! use stagegate::client::Client;
//! use stagegate::model::Stage;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = Signer::new("203753385", "SECRET_abc123")?.with_stage(Stage::TEST);
//! let client = Client::new(signer);
//! let res = client.get("http://127.0.0.1:8080/users/42").await?;
//! println!("{} {}", res.status(), String::from_utf8_lossy(res.body()));
//! let res = client.post_json("http://127.0.0.1:8080/users", r#"{"name":"alice"}"#).await?;
//! let res = client.post_form("http://127.0.0.1:8080/login", &[("user", "alice")]).await?;
//! # let _ = res;
//! # Ok(())
//! # }
//! ```

mod error;
mod ready;
mod signing;

pub use error::ClientError;
pub use ready::{Client, DEFAULT_RESPONSE_LIMIT};
pub use signing::{DEFAULT_REQUEST_LIMIT, SigningLayer, SigningService};
