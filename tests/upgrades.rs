//! Upgrades pass through BOTH adapters untouched, with monitoring and response validation
//! on: a WebSocket handshake through zt gets its 101, and messages then flow both ways
//! (the 101 is never buffered or validated as a body). zt still decides the handshake: an
//! anonymous one is refused with 401 before any upgrade, a caller without the scope with
//! 403. Over real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use zt::contract::{Contract, ContractOptions};
use zt::observe::ObserverConfig;
use zt::policy::{ContractConfig, IssuerConfig, Policy, ResponseValidation};
use zt::scopes;

/// The contract declares the handshake's answer, so response validation applies to it.
const SPEC: &str = r#"
openapi: 3.1.0
info: { title: chat, version: "1" }
paths:
  /chat:
    get:
      responses:
        "101": { description: switching to the WebSocket protocol }
"#;

fn guard() -> zt::Guard {
    let mut policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks()))
        .contract(ContractConfig { responses: ResponseValidation::Block, ..Default::default() })
        .build();
    policy.observe = Some(ObserverConfig::default());
    let contract = Contract::from_text(SPEC, None, ContractOptions::default()).unwrap();
    let guard = zt::Guard::builder(policy).contract(contract).build().unwrap();
    assert!(guard.observer().is_some(), "monitoring is on");
    guard
}

/// An echo server on `/chat` (scope `chat`), behind zt's axum router.
async fn axum_server() -> SocketAddr {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    async fn chat(upgrade: WebSocketUpgrade) -> axum::response::Response {
        upgrade.on_upgrade(|mut socket| async move {
            while let Some(Ok(Message::Text(text))) = socket.recv().await {
                if socket.send(Message::Text(format!("echo {text}").into())).await.is_err() {
                    break;
                }
            }
        })
    }
    let app = zt::axum::Router::new(guard())
        .route("/chat", zt::axum::routing::get(chat), scopes::all(["chat"]))
        .into_axum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
    });
    addr
}

/// The same echo server behind zt's actix router.
fn actix_server() -> SocketAddr {
    use actix_web::{HttpRequest, HttpResponse, web};
    async fn chat(request: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
        let (response, mut session, mut messages) = actix_ws::handle(&request, body)?;
        actix_web::rt::spawn(async move {
            while let Some(Ok(actix_ws::Message::Text(text))) = messages.next().await {
                if session.text(format!("echo {text}")).await.is_err() {
                    break;
                }
            }
        });
        Ok(response)
    }
    let routes = zt::actix::Router::new(guard())
        .route("/chat", zt::actix::get(chat), scopes::all(["chat"]))
        .finish()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().service(routes.service()))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
            let _ = server.await;
        });
    });
    addr
}

/// A WebSocket handshake sent raw (`connection: close`, so a refusal ends the exchange):
/// the status zt or the handler answered.
async fn refused_handshake(addr: SocketAddr, authorization: Option<String>) -> u16 {
    let mut headers = vec![
        ("upgrade", "websocket".to_string()),
        ("sec-websocket-version", "13".to_string()),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_string()),
    ];
    headers.extend(authorization.map(|value| ("authorization", value)));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = raw_request(addr, "GET", "/chat", &headers, None).await;
    assert!(answer.header("x-request-id").is_some(), "zt answered: {answer:?}");
    answer.status
}

/// Opens a WebSocket to `addr` as a client library does.
async fn open(
    addr: SocketAddr,
    authorization: String,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
    request.headers_mut().insert("authorization", authorization.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("handshake");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"), "zt answered the handshake");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through_both_adapters_and_zt_decides_the_handshake() {
    let servers = [("axum", axum_server().await), ("actix", actix_server())];
    for (adapter, addr) in servers {
        assert_eq!(refused_handshake(addr, None).await, 401, "{adapter}: anonymous handshake");
        let reader = Some(format!("Bearer {}", token("alice", "orders:read")));
        assert_eq!(refused_handshake(addr, reader).await, 403, "{adapter}: handshake without the scope");

        let mut socket = open(addr, format!("Bearer {}", token("alice", "chat"))).await;
        for n in 0..3 {
            socket.send(Message::text(format!("hello {n}"))).await.unwrap();
            let answer = socket.next().await.expect("an answer").unwrap();
            assert_eq!(answer.into_text().unwrap().as_str(), format!("echo hello {n}"), "{adapter}");
        }
        socket.close(None).await.unwrap();
    }
}
