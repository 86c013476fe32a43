//! FOR COMPARISON ONLY: the zt orders demo's API rebuilt on the peer stack a user assembles
//! today from existing crates, so that `scripts/bench_peers.sh` can measure zt against it:
//!
//! - axum 0.7 (what jwt-authorizer 0.15 is built on);
//! - jwt-authorizer: bearer JWT verification from a JWKS file, `iss`/`aud`/`exp` checked, one
//!   authorizer (and layer) per required scope, with a claims check on `scope`;
//! - tower_governor: a per-peer-address rate limit, set so loose that it never throttles the
//!   benchmark (only its cost is measured);
//! - jsonschema: the demo contract's `NewOrder` schema, validated by hand in the `POST
//!   /orders` handler, and hand-written checks of the `GET /orders` query and the order id.
//!
//! It is not part of zt, not a dependency of it, and not meant to be deployed.
//!
//! Environment: `ZT_LISTEN` (default 127.0.0.1:8082), `ZT_JWKS` (path of a JWKS file,
//! required: the zt demo's dev JWKS), `ZT_ISSUER` (default `https://issuer.example`),
//! `ZT_AUDIENCE` (default `orders-api`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::{Deserialize, Serialize};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;

/// The `NewOrder` schema of examples/orders.openapi.yaml, as JSON Schema.
const NEW_ORDER_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["item", "quantity"],
  "properties": {
    "item": { "type": "string", "minLength": 1, "maxLength": 64 },
    "quantity": { "type": "integer", "minimum": 1, "maximum": 1000 },
    "note": { "type": "string", "maxLength": 256 }
  }
}"#;

/// The demo's request body limit.
const BODY_LIMIT: usize = 16 * 1024;
/// Most orders kept, as in the demo.
const MAX_ORDERS: usize = 10_000;

#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: String,
}

impl Claims {
    fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }
    fn owner(&self) -> &str {
        self.sub.as_deref().unwrap_or("anonymous")
    }
}

#[derive(Debug, Clone, Serialize)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    owner: String,
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    quantity: u32,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

struct App {
    store: Mutex<(u64, VecDeque<Order>)>,
    new_order: jsonschema::Validator,
}

type Shared = Arc<App>;

fn problem(status: StatusCode, title: &str) -> Response {
    let body = serde_json::json!({"type": "about:blank", "title": title, "status": status.as_u16()});
    (status, [("content-type", "application/problem+json")], body.to_string()).into_response()
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [("content-type", "application/json")], body).into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "serialization failed"),
    }
}

/// `^[0-9]{1,12}$`, as the contract says.
fn order_id(id: &str) -> Option<u64> {
    if id.is_empty() || id.len() > 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn list_orders(
    State(app): State<Shared>,
    JwtClaims(claims): JwtClaims<Claims>,
    params: Option<Query<ListParams>>,
) -> Response {
    let Some(Query(params)) = params else {
        return problem(StatusCode::BAD_REQUEST, "invalid query");
    };
    if params.limit.is_some_and(|l| !(1..=100).contains(&l))
        || params.cursor.as_ref().is_some_and(|c| c.chars().count() > 64)
    {
        return problem(StatusCode::BAD_REQUEST, "invalid query");
    }
    let Ok(store) = app.store.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable");
    };
    let mine: Vec<&Order> = store.1.iter().filter(|o| o.owner == claims.owner()).collect();
    json(StatusCode::OK, &mine)
}

async fn create_order(
    State(app): State<Shared>,
    JwtClaims(claims): JwtClaims<Claims>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected application/json");
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    if !app.new_order.is_valid(&value) {
        return problem(StatusCode::BAD_REQUEST, "body violates the NewOrder schema");
    }
    let Ok(new) = serde_json::from_value::<NewOrder>(value) else {
        return problem(StatusCode::BAD_REQUEST, "body violates the NewOrder schema");
    };
    let Ok(mut store) = app.store.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable");
    };
    store.0 += 1;
    let order = Order {
        id: store.0,
        item: new.item,
        quantity: new.quantity,
        note: new.note,
        owner: claims.owner().into(),
    };
    if store.1.len() >= MAX_ORDERS {
        store.1.pop_front();
    }
    store.1.push_back(order.clone());
    json(StatusCode::CREATED, &order)
}

async fn get_order(
    State(app): State<Shared>,
    JwtClaims(claims): JwtClaims<Claims>,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = order_id(&id) else {
        return problem(StatusCode::BAD_REQUEST, "invalid order id");
    };
    let Ok(store) = app.store.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable");
    };
    match store.1.iter().find(|o| o.id == id && o.owner == claims.owner()) {
        Some(order) => json(StatusCode::OK, order),
        None => problem(StatusCode::NOT_FOUND, "no such order"),
    }
}

async fn delete_order(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(id) = order_id(&id) else {
        return problem(StatusCode::BAD_REQUEST, "invalid order id");
    };
    let Ok(mut store) = app.store.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable");
    };
    let before = store.1.len();
    store.1.retain(|o| o.id != id);
    if store.1.len() < before {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, "no such order")
    }
}

/// One authorizer per required scope: jwt-authorizer checks claims per authorizer.
async fn authorizer(
    jwks: &str,
    issuer: &str,
    audience: &str,
    scope: &'static str,
) -> Result<Authorizer<Claims>, Box<dyn std::error::Error>> {
    let validation = Validation::new().iss(&[issuer]).aud(&[audience]).leeway(60);
    Ok(JwtAuthorizer::from_jwks(jwks)
        .validation(validation)
        .check(move |c: &Claims| c.has_scope(scope))
        .build()
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let listen: SocketAddr = var("ZT_LISTEN").unwrap_or_else(|| "127.0.0.1:8082".into()).parse()?;
    let jwks = var("ZT_JWKS").ok_or("ZT_JWKS: the path of a JWKS file is required")?;
    let issuer = var("ZT_ISSUER").unwrap_or_else(|| "https://issuer.example".into());
    let audience = var("ZT_AUDIENCE").unwrap_or_else(|| "orders-api".into());

    let schema: serde_json::Value = serde_json::from_str(NEW_ORDER_SCHEMA)?;
    let new_order = jsonschema::validator_for(&schema).map_err(|e| format!("NewOrder schema: {e}"))?;
    let app: Shared = Arc::new(App { store: Mutex::new((0, VecDeque::new())), new_order });

    let read = authorizer(&jwks, &issuer, &audience, "orders:read").await?;
    let write = authorizer(&jwks, &issuer, &audience, "orders:write").await?;
    let admin = authorizer(&jwks, &issuer, &audience, "orders:admin").await?;

    // Loose enough never to throttle the benchmark: a burst of a million per peer address,
    // one more every microsecond.
    let governor = Arc::new(
        GovernorConfigBuilder::default()
            .per_nanosecond(1_000)
            .burst_size(1_000_000)
            .finish()
            .ok_or("tower_governor configuration")?,
    );

    let reads = Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/:id", get(get_order))
        .route_layer(read.into_layer());
    let writes = Router::new().route("/orders", post(create_order)).route_layer(write.into_layer());
    let admins = Router::new().route("/orders/:id", delete(delete_order)).route_layer(admin.into_layer());
    let router = Router::new()
        .route("/health", get(health))
        .merge(reads)
        .merge(writes)
        .merge(admins)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(GovernorLayer { config: governor })
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::warn!(%listen, "orders API on axum 0.7 + jwt-authorizer + tower_governor + jsonschema (BENCHMARK PEER ONLY) listening");
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
