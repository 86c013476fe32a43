//! The MCP-style JSON-RPC example (`examples/mcp_tools.rs`) over real HTTP on 127.0.0.1:
//! per-tool scopes, step-up 403s naming the scopes needed, a tool list filtered by scope,
//! and the RFC 9728 metadata with `resource_metadata` in 401 challenges.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The example declares `mod orders` (its dev key) and tests/support needs `crate::orders`.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/mcp_tools.rs"]
mod mcp;
#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use support::*;

const RESOURCE: &str = "http://localhost:8090";

async fn serve() -> SocketAddr {
    let mut policy = zt::Policy::builder()
        .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(RESOURCE).jwks(trusted_jwks()))
        .build();
    policy.resource = Some(zt::resource::ResourceConfig::new(RESOURCE));
    let app = mcp::app(zt::Guard::new(policy).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

fn bearer(scope: &str) -> String {
    let mut claims = claims("alice", scope);
    claims["aud"] = RESOURCE.into();
    format!("Bearer {}", sign(key(Algorithm::ES256), &claims))
}

async fn call(addr: SocketAddr, authorization: &str, body: Value) -> RawResponse {
    let body = body.to_string();
    raw_request(
        addr,
        "POST",
        "/mcp",
        &[("authorization", authorization), ("content-type", "application/json")],
        Some(body.as_bytes()),
    )
    .await
}

fn tool(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_has_its_own_scopes_and_a_missing_one_asks_for_step_up() {
    let addr = serve().await;
    let reader = bearer("orders:read");
    let r = call(addr, &reader, tool("orders.list")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["id"], 7);
    assert!(v["result"]["content"][0]["text"].as_str().unwrap().contains("alice"));

    let r = call(addr, &reader, tool("orders.refund")).await;
    assert_eq!(r.status, 403, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"orders:admin\""),
        "{challenge}"
    );
    assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:insufficient-scope"), "{r:?}");

    let admin = bearer("orders:read orders:write orders:admin");
    assert_eq!(call(addr, &admin, tool("orders.refund")).await.status, 200);
    let r = call(addr, &admin, tool("orders.nope")).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{r:?}");
    let r = call(addr, &admin, json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read"})).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], -32601, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_list_shows_only_what_the_caller_may_call() {
    let addr = serve().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let names = |r: &RawResponse| -> Vec<String> {
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&call(addr, &bearer("orders:read"), list.clone()).await), ["orders.list"]);
    assert_eq!(names(&call(addr, &bearer("orders:read orders:write orders:admin"), list).await).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_calls_are_sent_to_the_metadata() {
    let addr = serve().await;
    let r = raw_request(addr, "POST", "/mcp", &[("content-type", "application/json")], Some(b"{}")).await;
    assert_eq!(r.status, 401, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(&format!("resource_metadata=\"{RESOURCE}/.well-known/oauth-protected-resource\"")),
        "{challenge}"
    );
    let r = raw_request(addr, "GET", "/.well-known/oauth-protected-resource", &[], None).await;
    let doc: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    // `/mcp` only needs a verified caller: the tools' scopes are the handler's, so the
    // metadata lists the route table's (none here).
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
}
