//! LOAD-TEST BASELINE ONLY: the orders API of `axum_orders` on plain axum with NO zt. No
//! authentication, no authorization: every caller is "anonymous" and may do anything. Never
//! deploy it. It exists so that `scripts/load.sh` can measure what zt costs, against the
//! same routes, handlers, store and tracing subscriber.
//!
//! `cargo run --release --example axum_orders_unprotected`. Environment: ZT_LISTEN (default
//! 127.0.0.1:8081).

mod orders;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use orders::{OrderStore, Reply};

/// Every order belongs to this owner: there is no verified caller.
const OWNER: &str = "anonymous";

#[derive(Clone)]
struct App {
    store: Arc<OrderStore>,
}

fn reply(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.body {
        Some(body) => (status, [("content-type", "application/json")], body).into_response(),
        None => status.into_response(),
    }
}

async fn health(State(app): State<App>) -> Response {
    reply(app.store.health())
}
async fn list_orders(State(app): State<App>) -> Response {
    reply(app.store.list(OWNER))
}
async fn create_order(State(app): State<App>, body: Bytes) -> Response {
    reply(app.store.create(OWNER, &body))
}
async fn get_order(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.store.get(OWNER, &id))
}
async fn delete_order(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.store.delete(&id))
}

fn app() -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", get(get_order).delete(delete_order))
        .with_state(App { store: Arc::new(OrderStore::default()) })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The same subscriber as `axum_orders`, so that only zt differs between the two.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen =
        std::env::var("ZT_LISTEN").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "127.0.0.1:8081".into());
    let listen: SocketAddr =
        listen.parse().map_err(|_| format!("ZT_LISTEN: {listen:?} is not an address like 127.0.0.1:8081"))?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::warn!(%listen, "axum orders demo WITHOUT zt (load-test baseline, no access control) listening");
    axum::serve(listener, app().into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
