//! The demo on axum.

use std::sync::Arc;

use super::graphql::GraphqlService;
use super::{OrderStore, Reply};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use zt::Guard;
use zt::axum::routing::{delete, get, post};
use zt::axum::{GuardedApp, Identity, Router};

#[derive(Clone)]
struct App {
    store: Arc<OrderStore>,
    graphql: Arc<GraphqlService>,
}

fn reply(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.body {
        Some(body) => (status, [("content-type", r.content_type)], body).into_response(),
        None => status.into_response(),
    }
}

fn owner(who: &Identity) -> &str {
    // The principal (issuer and subject, else client id, else certificate), never the bare
    // `sub`: two clients without a subject must not share their orders.
    who.principal()
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

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get("accept").and_then(|v| v.to_str().ok())
}
async fn graphql_post(State(app): State<App>, who: Identity, headers: HeaderMap, body: Bytes) -> Response {
    reply(app.graphql.post(&app.store, owner(&who), &body, accept(&headers)))
}
async fn graphql_get(
    State(app): State<App>,
    who: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    reply(app.graphql.get(&app.store, owner(&who), query.as_deref().unwrap_or(""), accept(&headers)))
}

fn inventory_reply(guard: &Guard) -> Response {
    reply(super::inventory(guard))
}

/// The demo app for a guard (also used by the conformance tests).
pub fn app(guard: Guard, dev_jwks: Option<String>) -> Result<GuardedApp, String> {
    let handlers = [get(health), get(list_orders), post(create_order), get(get_order), delete(delete_order)];
    let guard_for_inventory = guard.clone();
    let router_has_resource = guard.resource().is_some();
    let router_has_signals = guard.receives_signals();
    let mut router = Router::new(guard);
    for ((_, path, scopes), handler) in super::ROUTES.iter().zip(handlers) {
        router = router.route(path, handler, super::requirement(scopes));
    }
    router = router.route(super::GRAPHQL_PATH, post(graphql_post), super::graphql_requirement()).route(
        super::GRAPHQL_PATH,
        get(graphql_get),
        super::graphql_requirement(),
    );
    if let Some(jwks) = dev_jwks {
        let serve = move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        };
        router = router.route("/.well-known/jwks.json", get(serve), zt::scopes::public());
    }
    // The runtime API inventory (monitoring on): admins only.
    let inventory_guard = guard_for_inventory;
    let inventory = move || {
        let guard = inventory_guard.clone();
        async move { inventory_reply(&guard) }
    };
    router = router.route("/zt/inventory", get(inventory), zt::scopes::all(["zt:admin"]));
    // Runtime controls (block, unblock, revoke): zt:admin only, enforced even in
    // report-only mode.
    router = router.controls("/zt/controls");
    // RFC 9728 metadata, when the policy names the API as a protected resource.
    if router_has_resource {
        router = router.resource_metadata();
    }
    // Shared Signals (CAEP/RISC) pushed by the transmitter, when configured.
    if router_has_signals {
        router = router.signals();
    }
    let graphql = Arc::new(GraphqlService::new()?);
    Ok(router.with_state(App { store: Arc::new(OrderStore::default()), graphql }).into_axum())
}
