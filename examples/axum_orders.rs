//! The orders API on axum behind zt. `cargo run --example axum_orders` (dev mode: prints
//! tokens). Environment: ZT_LISTEN, ZT_ISSUER, ZT_AUDIENCE, ZT_JWKS, ZT_MODE (see README).

mod orders;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orders::{DemoConfig, DevKey, OrderStore, Reply};
use zt::axum::routing::{delete, get, post};
use zt::axum::{Identity, Router};
use zt::Guard;

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

fn owner(who: &Identity) -> &str {
    who.subject().unwrap_or("anonymous")
}

async fn health(State(app): State<App>) -> Response {
    reply(app.store.health())
}
async fn list_orders(State(app): State<App>, who: Identity) -> Response {
    reply(app.store.list(owner(&who)))
}
async fn create_order(State(app): State<App>, who: Identity, body: Bytes) -> Response {
    reply(app.store.create(owner(&who), &body))
}
async fn get_order(State(app): State<App>, who: Identity, Path(id): Path<String>) -> Response {
    reply(app.store.get(owner(&who), &id))
}
async fn delete_order(State(app): State<App>, Path(id): Path<String>) -> Response {
    reply(app.store.delete(&id))
}

/// The demo app for a guard (also used by the conformance tests).
pub fn app(guard: Guard, dev_jwks: Option<String>) -> axum::Router {
    let handlers = [
        get(health),
        get(list_orders),
        post(create_order),
        get(get_order),
        delete(delete_order),
    ];
    let mut router = Router::new(guard);
    for ((_, path, scopes), handler) in orders::ROUTES.iter().zip(handlers) {
        router = router.route(path, handler, orders::requirement(scopes));
    }
    if let Some(jwks) = dev_jwks {
        let serve = move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        };
        router = router.route("/.well-known/jwks.json", get(serve), zt::scopes::public());
    }
    router.into_axum().with_state(App { store: Arc::new(OrderStore::default()) })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = DemoConfig::from_env()?;
    let dev = if config.jwks.is_none() { Some(DevKey::generate()?) } else { None };
    let guard = Guard::new(config.policy(dev.as_ref()))?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    if let Some(dev) = &dev {
        dev.print_banner(&config, "axum");
    }
    tracing::info!(listen = %config.listen, mode = config.mode.as_str(), "axum orders demo listening");
    let app = app(guard, dev.map(|d| d.jwks));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
