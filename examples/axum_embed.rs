//! stagegate mounted inside an existing axum application.
//!
//! ```sh
//! cargo run --example axum_embed
//! curl http://127.0.0.1:3000/health           # the app's own route
//! curl http://127.0.0.1:3000/hello/world      # a published API, served by the gateway layer
//! curl http://127.0.0.1:3000/elsewhere        # neither: axum's 404
//! ```
//!
//! The app is served with `into_make_service_with_connect_info::<SocketAddr>()`: axum then
//! puts each connection's peer address into every request as `ConnectInfo<SocketAddr>`, and
//! the gateway layer (feature `axum`, which `admin` also turns on) reads it as the client's
//! address, for the backend's `X-Forwarded-For` and the `CaClientIp` system parameter. Served
//! with plain `axum::serve(listener, app)`, the client's address would be unknown.

use std::net::SocketAddr;

use axum::{Router, routing::get};
use stagegate::control::{NewBackend, NewGroup};
use stagegate::model::{ApiDefinition, BackendKind, MockDefinition, Stage, StageDefinition};
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let control = ControlPlane::open(MemoryStore::new()).await?;
    let backend = control
        .create_backend(NewBackend::new("helloMock", BackendKind::Mock))
        .await?;
    let def = StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: [("content-type".to_owned(), "text/plain".to_owned())].into(),
        body: "hello from the gateway\n".into(),
    });
    control
        .set_stage_definition(&backend.id, Stage::RELEASE, def)
        .await?;
    let group = control
        .create_group(NewGroup {
            name: "hello_group".into(),
            ..Default::default()
        })
        .await?;
    let api =
        ApiDefinition::new(group.id, "sayHello", "GET", "/hello/{name}", backend.id)?.anonymous();
    let api = control.create_api(api).await?;
    // No `X-Ca-Stage` header means RELEASE: publish there.
    control.publish(&api.id, Stage::RELEASE, None).await?;

    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .layer(GatewayLayer::new(control.snapshot_handle()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
