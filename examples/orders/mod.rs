//! The orders demo, shared by `axum_orders` and `actix_orders` (and the conformance tests):
//! configuration from `ZT_*` variables, dev-mode keys, and a framework-neutral order store.
#![allow(dead_code)]

pub mod actix_app;
pub mod axum_app;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zt::policy::{IssuerConfig, Policy};
use zt::{Mode, Requirement};

/// The demo's routes and their requirements: one table, used by both frameworks.
pub const ROUTES: [(&str, &str, &[&str]); 5] = [
    ("GET", "/health", &[]),
    ("GET", "/orders", &["orders:read"]),
    ("POST", "/orders", &["orders:write"]),
    ("GET", "/orders/{id}", &["orders:read"]),
    ("DELETE", "/orders/{id}", &["orders:admin"]),
];

/// The requirement of a demo route.
pub fn requirement(scopes: &[&str]) -> Requirement {
    if scopes.is_empty() { zt::scopes::public() } else { zt::scopes::all(scopes.iter().copied()) }
}

/// The demo's request body limit (16 KiB).
pub const BODY_LIMIT: usize = 16 * 1024;

/// The demo's OpenAPI contract, compiled into the binary (both demos enforce it).
pub const OPENAPI: &str = include_str!("../orders.openapi.yaml");

/// The compiled demo contract.
pub fn contract() -> Result<zt::contract::Contract, String> {
    let options = zt::contract::ContractOptions { default_body_limit: BODY_LIMIT, ..Default::default() };
    zt::contract::Contract::from_text(OPENAPI, None, options).map_err(|e| format!("demo contract: {e}"))
}

/// A guard for `policy` that enforces the demo contract.
pub fn guard(policy: Policy) -> Result<zt::Guard, String> {
    zt::Guard::builder(policy).contract(contract()?).build().map_err(|e| e.to_string())
}

/// Settings from the environment.
pub struct DemoConfig {
    pub listen: SocketAddr,
    pub issuer: String,
    pub audience: String,
    pub jwks: Option<String>,
    pub mode: Mode,
}

impl DemoConfig {
    pub fn from_env() -> Result<DemoConfig, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = var("ZT_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen
            .parse()
            .map_err(|_| format!("ZT_LISTEN: {listen:?} is not an address like 127.0.0.1:8080"))?;
        let mode = match var("ZT_MODE") {
            None => Mode::Enforce,
            Some(m) => m.parse().map_err(|e| format!("ZT_MODE: {e}"))?,
        };
        Ok(DemoConfig {
            listen,
            issuer: var("ZT_ISSUER").unwrap_or_else(|| "https://issuer.example".into()),
            audience: var("ZT_AUDIENCE").unwrap_or_else(|| "orders-api".into()),
            jwks: var("ZT_JWKS"),
            mode,
        })
    }

    /// The policy: JWKS URL or file from `ZT_JWKS`, else the dev key's inline set.
    /// The demo guard: the policy plus the demo contract.
    pub fn guard(&self, dev: Option<&DevKey>) -> Result<zt::Guard, String> {
        guard(self.policy(dev))
    }

    pub fn policy(&self, dev: Option<&DevKey>) -> Policy {
        let mut issuer = IssuerConfig::new(&self.issuer).audience(&self.audience);
        issuer = match (&self.jwks, dev) {
            (Some(j), _) if j.starts_with("http://") || j.starts_with("https://") => issuer.jwks_url(j),
            (Some(file), _) => issuer.jwks_file(file),
            (None, Some(dev)) => issuer.jwks(dev.jwks.clone()),
            (None, None) => issuer,
        };
        Policy::builder()
            .realm(&self.audience)
            .mode(self.mode)
            .max_body_bytes(BODY_LIMIT)
            .issuer(issuer)
            .build()
    }
}

/// An ephemeral ES256 key for dev mode. Never use outside local development.
pub struct DevKey {
    pub encoding: jsonwebtoken::EncodingKey,
    pub jwks: String,
    pub kid: String,
}

impl DevKey {
    pub fn generate() -> Result<DevKey, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "key generation failed")?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| "key parse failed")?;
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let kid = format!("dev-{}", &URL_SAFE_NO_PAD.encode(&point[1..9]));
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
        .to_string();
        Ok(DevKey { encoding: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), jwks, kid })
    }

    /// A token for `sub` with `scope`, valid for an hour.
    pub fn token(&self, issuer: &str, audience: &str, sub: &str, scope: &str) -> String {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": issuer, "aud": audience, "sub": sub, "scope": scope,
            "iat": now, "exp": now + 3600, "client_id": "zt-demo-cli",
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap_or_default()
    }

    /// Prints dev tokens and curl lines.
    pub fn print_banner(&self, config: &DemoConfig, framework: &str) {
        let base = format!("http://{}", config.listen);
        let mut out = String::new();
        out.push_str(&format!(
            "\n=== zt {framework} orders demo: DEV MODE (ephemeral key, NOT FOR PRODUCTION) ===\n"
        ));
        out.push_str(&format!(
            "issuer {} | audience {} | JWKS at {base}/.well-known/jwks.json\n",
            config.issuer, config.audience
        ));
        for (sub, scope) in [
            ("alice", "orders:read"),
            ("alice", "orders:read orders:write"),
            ("admin", "orders:read orders:write orders:admin"),
        ] {
            let token = self.token(&config.issuer, &config.audience, sub, scope);
            out.push_str(&format!("\n# {sub} with scope \"{scope}\" (valid 1 h)\nTOKEN={token}\n"));
        }
        out.push_str(&format!(
            "\ncurl -s {base}/health\ncurl -s -H \"Authorization: Bearer $TOKEN\" {base}/orders\n\
             curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"item\":\"book\",\"quantity\":2}}' {base}/orders\n\
             curl -s -X DELETE -H \"Authorization: Bearer $TOKEN\" {base}/orders/1\n"
        ));
        eprintln!("{out}");
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An order.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: u64,
    pub item: String,
    pub quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub owner: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    item: String,
    quantity: u32,
    #[serde(default)]
    note: Option<String>,
}

/// A framework-neutral answer: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Option<String>,
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply { status, body: Some(serde_json::to_string(value).unwrap_or_default()) }
}

fn problem(status: u16, title: &str) -> Reply {
    json(status, &serde_json::json!({"type": "about:blank", "title": title, "status": status}))
}

/// `^[0-9]{1,12}$`, as the contract says.
fn order_id(id: &str) -> Option<u64> {
    (!id.is_empty() && id.len() <= 12 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.parse().ok())
        .flatten()
}

fn contract_bypass(what: &str) -> Reply {
    tracing::error!(what, "a request the contract forbids reached the handler");
    problem(500, "contract bypass")
}

/// Most orders kept; the oldest is dropped beyond this (the demo's state stays bounded).
pub const MAX_ORDERS: usize = 10_000;

/// The demo's in-memory store. Every call names the verified caller: orders are only
/// visible to their owner.
#[derive(Default)]
pub struct OrderStore {
    inner: Mutex<(u64, VecDeque<Order>)>,
}

impl OrderStore {
    pub fn health(&self) -> Reply {
        json(200, &serde_json::json!({"status": "ok"}))
    }

    pub fn list(&self, owner: &str) -> Reply {
        let Ok(guard) = self.inner.lock() else {
            return problem(500, "store unavailable");
        };
        let mine: Vec<&Order> = guard.1.iter().filter(|o| o.owner == owner).collect();
        json(200, &mine)
    }

    pub fn create(&self, owner: &str, body: &[u8]) -> Reply {
        let Ok(new) = serde_json::from_slice::<NewOrder>(body) else {
            return problem(400, "invalid order");
        };
        if new.item.is_empty()
            || new.item.len() > 64
            || !(1..=1000).contains(&new.quantity)
            || new.note.as_ref().is_some_and(|n| n.len() > 256)
        {
            return problem(400, "invalid order");
        }
        let Ok(mut guard) = self.inner.lock() else {
            return problem(500, "store unavailable");
        };
        guard.0 += 1;
        let order = Order {
            id: guard.0,
            item: new.item,
            quantity: new.quantity,
            note: new.note,
            owner: owner.to_string(),
        };
        if guard.1.len() >= MAX_ORDERS {
            guard.1.pop_front();
        }
        guard.1.push_back(order.clone());
        json(201, &order)
    }

    pub fn get(&self, owner: &str, id: &str) -> Reply {
        let Ok(id) = id.parse::<u64>() else {
            return problem(404, "no such order");
        };
        let Ok(guard) = self.inner.lock() else {
            return problem(500, "store unavailable");
        };
        match guard.1.iter().find(|o| o.id == id && o.owner == owner) {
            Some(order) => json(200, order),
            None => problem(404, "no such order"),
        }
    }

    pub fn delete(&self, id: &str) -> Reply {
        let Ok(id) = id.parse::<u64>() else {
            return problem(404, "no such order");
        };
        let Ok(mut guard) = self.inner.lock() else {
            return problem(500, "store unavailable");
        };
        let before = guard.1.len();
        guard.1.retain(|o| o.id != id);
        if guard.1.len() < before { Reply { status: 204, body: None } } else { problem(404, "no such order") }
    }
}
