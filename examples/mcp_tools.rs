//! An MCP-style JSON-RPC endpoint behind zt (issue 16): one `POST /mcp` route that any
//! verified caller may reach, where each method, and each tool of `tools/call`, has its own
//! required scopes. zt verifies the token (Bearer or DPoP), serves the RFC 9728 metadata the
//! MCP authorization specification asks for, and names it in every 401; the handler answers
//! a tool the token's scopes do not cover with a 403 `insufficient_scope` naming the scopes
//! that would (step-up), and lists only the tools the caller may call.
//!
//! `cargo run --example mcp_tools` (dev mode: prints a token per scope set and curl lines;
//! `ZT_LISTEN`, default 127.0.0.1:8090).
#![allow(clippy::print_stdout)]

mod orders;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use zt::axum::{GuardedApp, Router, routing::post};
use zt::{Admission, Guard, scopes};

/// The tools, with the scopes each needs (any caller reaches `/mcp`; the tool decides).
pub const TOOLS: &[(&str, &str, &[&str])] = &[
    ("orders.list", "List the caller's orders", &["orders:read"]),
    ("orders.create", "Create an order", &["orders:write"]),
    ("orders.refund", "Refund an order", &["orders:admin"]),
];

/// JSON-RPC methods other than `tools/call`, with their scopes (empty: any verified caller).
const METHODS: &[(&str, &[&str])] = &[("initialize", &[]), ("tools/list", &[]), ("ping", &[])];

fn rpc_result(id: &Value, result: Value) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})).into_response()
}

fn reply(admission: &Admission, scopes: &[&str]) -> Response {
    let reply = admission.reject_for_scopes(scopes);
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        response = response.header(*name, value.as_str());
    }
    response.body(axum::body::Body::from(reply.body().to_string())).unwrap_or_default()
}

/// The caller holds every scope of `needed`.
fn allowed(admission: &Admission, needed: &[&str]) -> bool {
    admission.identity().is_some_and(|who| needed.iter().all(|s| who.has_scope(s)))
}

async fn mcp(Extension(admission): Extension<Admission>, Json(request): Json<Value>) -> Response {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return rpc_error(&id, -32600, "invalid request: no method");
    };
    if method == "tools/call" {
        let Some(name) = request.pointer("/params/name").and_then(Value::as_str) else {
            return rpc_error(&id, -32602, "invalid params: no tool name");
        };
        let Some((_, _, needed)) = TOOLS.iter().find(|(tool, _, _)| *tool == name) else {
            return rpc_error(&id, -32602, "unknown tool");
        };
        if !allowed(&admission, needed) {
            return reply(&admission, needed);
        }
        let who = admission.identity().and_then(|i| i.subject()).unwrap_or_default();
        return rpc_result(
            &id,
            json!({"content": [{"type": "text", "text": format!("{name} ran for {who}")}]}),
        );
    }
    let Some((_, needed)) = METHODS.iter().find(|(m, _)| *m == method) else {
        return rpc_error(&id, -32601, "method not found");
    };
    if !allowed(&admission, needed) {
        return reply(&admission, needed);
    }
    match method {
        "tools/list" => {
            // Only what this caller may call: the list is not a map of what to attack.
            let tools: Vec<Value> = TOOLS
                .iter()
                .filter(|(_, _, needed)| allowed(&admission, needed))
                .map(|(name, description, _)| json!({"name": name, "description": description}))
                .collect();
            rpc_result(&id, json!({"tools": tools}))
        }
        "initialize" => {
            rpc_result(&id, json!({"serverInfo": {"name": "zt-mcp-example"}, "capabilities": {"tools": {}}}))
        }
        _ => rpc_result(&id, json!({})),
    }
}

/// The app: `POST /mcp` for any verified caller, and the RFC 9728 metadata (the policy
/// must have a `[resource]`).
pub fn app(guard: Guard) -> Result<GuardedApp, String> {
    Router::new(guard)
        .route("/mcp", post(mcp), scopes::authenticated())
        .resource_metadata()
        .try_into_axum()
        .map_err(|e| e.to_string())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let listen: SocketAddr =
        std::env::var("ZT_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into()).parse()?;
    let resource = format!("http://localhost:{}", listen.port());
    // A dev key for the example only: a real service trusts its issuer's JWKS.
    let dev = orders::DevKey::generate()?;
    let issuer = "https://issuer.example";
    let mut policy = zt::Policy::builder()
        .issuer(zt::policy::IssuerConfig::new(issuer).audience(&resource).jwks(dev.jwks.clone()))
        .build();
    policy.resource = Some(zt::resource::ResourceConfig::new(&resource));
    let app = app(Guard::new(policy)?)?;
    println!("=== zt MCP tools example: DEV MODE (ephemeral key, NOT FOR PRODUCTION) ===");
    for scope in ["orders:read", "orders:read orders:write orders:admin"] {
        let token = dev.token(issuer, &resource, "alice", scope);
        println!(
            "# {scope}\ncurl -s http://{listen}/mcp -H 'authorization: Bearer {token}' \\\n  -H 'content-type: application/json' \\\n  -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"orders.refund\"}}}}'\n"
        );
    }
    println!("curl -s http://{listen}/.well-known/oauth-protected-resource");
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
