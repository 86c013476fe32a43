//! The demo on actix-web.

use std::sync::Arc;

use super::graphql::GraphqlService;
use super::{OrderStore, Reply};
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use zt::actix::{Identity, Router, Routes, delete, get, post};
use zt::{Guard, PolicyError};

fn reply(r: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.body {
        Some(body) => HttpResponse::build(status).content_type(r.content_type).body(body),
        None => HttpResponse::new(status),
    }
}

fn owner(who: &Identity) -> &str {
    // The principal (issuer and subject, else client id, else certificate), never the bare
    // `sub`: two clients without a subject must not share their orders.
    who.principal()
}

async fn health(store: Data<OrderStore>) -> HttpResponse {
    reply(store.health())
}
async fn list_orders(store: Data<OrderStore>, who: Identity) -> HttpResponse {
    reply(store.list(owner(&who)))
}
async fn create_order(store: Data<OrderStore>, who: Identity, body: Bytes) -> HttpResponse {
    reply(store.create(owner(&who), &body))
}
async fn get_order(store: Data<OrderStore>, who: Identity, id: Path<String>) -> HttpResponse {
    reply(store.get(owner(&who), &id))
}
async fn delete_order(store: Data<OrderStore>, id: Path<String>) -> HttpResponse {
    reply(store.delete(&id))
}

fn accept(request: &HttpRequest) -> Option<&str> {
    request.headers().get("accept").and_then(|v| v.to_str().ok())
}
async fn graphql_post(
    store: Data<OrderStore>,
    service: Data<GraphqlService>,
    who: Identity,
    request: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    reply(service.post(&store, owner(&who), &body, accept(&request)))
}
async fn graphql_get(
    store: Data<OrderStore>,
    service: Data<GraphqlService>,
    who: Identity,
    request: HttpRequest,
) -> HttpResponse {
    reply(service.get(&store, owner(&who), request.query_string(), accept(&request)))
}

/// The demo routes for a guard (also used by the conformance tests).
pub fn routes(guard: Guard, dev_jwks: Option<String>) -> Result<Routes, PolicyError> {
    let handlers = [get(health), get(list_orders), post(create_order), get(get_order), delete(delete_order)];
    let inventory_guard = guard.clone();
    let router_has_resource = guard.resource().is_some();
    let router_has_signals = guard.receives_signals();
    let mut router = Router::new(guard);
    let inventory = move || {
        let guard = inventory_guard.clone();
        async move { reply(super::inventory(&guard)) }
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
    for ((_, path, scopes), handler) in super::ROUTES.iter().zip(handlers) {
        router = router.route(path, handler, super::requirement(scopes));
    }
    router = router.route(super::GRAPHQL_PATH, post(graphql_post), super::graphql_requirement()).route(
        super::GRAPHQL_PATH,
        get(graphql_get),
        super::graphql_requirement(),
    );
    if let Some(jwks) = dev_jwks {
        let jwks = Arc::new(jwks);
        let serve = move || {
            let jwks = jwks.clone();
            async move { HttpResponse::Ok().content_type("application/json").body(jwks.as_str().to_owned()) }
        };
        router = router.route("/.well-known/jwks.json", get(serve), zt::scopes::public());
    }
    router.finish()
}

/// Builds the actix server on a bound listener.
pub fn server(
    routes: Routes,
    listener: std::net::TcpListener,
    workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    let store = Data::new(OrderStore::default());
    let graphql = Data::new(GraphqlService::new().map_err(std::io::Error::other)?);
    Ok(HttpServer::new(move || {
        App::new().app_data(store.clone()).app_data(graphql.clone()).service(routes.service())
    })
    .workers(workers)
    // HTTP/1.1 and HTTP/2 over cleartext (prior knowledge), as the axum demo serves.
    .listen_auto_h2c(listener)?
    .run())
}

/// Builds the actix server over TLS (mutual TLS when the config has a client CA).
pub fn server_tls(
    routes: Routes,
    listener: std::net::TcpListener,
    workers: usize,
    tls: zt::tls::TlsConfig,
) -> std::io::Result<actix_web::dev::Server> {
    let store = Data::new(OrderStore::default());
    let graphql = Data::new(GraphqlService::new().map_err(std::io::Error::other)?);
    Ok(HttpServer::new(move || {
        App::new().app_data(store.clone()).app_data(graphql.clone()).service(routes.service())
    })
    .workers(workers)
    .on_connect(zt::actix::tls::on_connect)
    .listen_rustls_0_23(listener, tls.server_config())?
    .run())
}
