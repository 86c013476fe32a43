//! The orders demo, shared by `axum_orders` and `actix_orders` (and the conformance tests):
//! configuration from `ZT_*` variables, dev-mode keys, and a framework-neutral order store.
#![allow(dead_code)]

pub mod actix_app;
pub mod axum_app;
pub mod graphql;

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

/// A guard for `policy` that enforces the demo contract, and the demo GraphQL schema on
/// `/graphql` (unless the policy file declares that endpoint itself, `[[graphql]]`).
pub fn guard(policy: Policy) -> Result<zt::Guard, String> {
    guard_with(policy, true)
}

/// [`guard`], with the OpenAPI contract enforced or not (`ZT_CONTRACT=off`, for measuring
/// the contract stage's cost).
pub fn guard_with(policy: Policy, enforce_contract: bool) -> Result<zt::Guard, String> {
    let declared = policy.graphql.iter().any(|g| g.path == GRAPHQL_PATH);
    let mut builder = zt::Guard::builder(policy);
    if enforce_contract {
        builder = builder.contract(contract()?);
    }
    if !declared {
        builder = builder.graphql(GRAPHQL_PATH, graphql::guarded_schema()?);
    }
    builder.build().map_err(|e| e.to_string())
}

/// The demo's GraphQL endpoint.
pub const GRAPHQL_PATH: &str = "/graphql";

/// Who may reach `/graphql` at all (the route's floor): a caller holding any of the demo's
/// scopes. The schema's `@requiresScopes` narrow it field by field.
pub fn graphql_requirement() -> Requirement {
    zt::scopes::any(["orders:read", "orders:write", "zt:admin"])
}

/// Settings from the environment.
pub struct DemoConfig {
    pub listen: SocketAddr,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub jwks: Option<String>,
    pub mode: Option<Mode>,
    /// `ZT_POLICY`: a policy file (e.g. examples/orders.policy.toml); the variables above
    /// override its basics.
    pub policy_file: Option<String>,
    /// `ZT_RATE` / `ZT_RATE_BURST` / `ZT_RATE_ANON` / `ZT_TRUSTED_PROXIES`; `ZT_REDIS_URL`
    /// (`redis://`, `rediss://`): the `[fleet]` the replicas share, with its secret in
    /// `ZT_FLEET_SECRET`.
    pub rate: Option<String>,
    pub rate_burst: Option<String>,
    pub rate_anon: Option<String>,
    pub trusted_proxies: Option<String>,
    pub redis_url: Option<String>,
    /// `ZT_RESOURCE`: this API's OAuth resource identifier (RFC 9728 metadata at
    /// `/.well-known/oauth-protected-resource`, named in 401 challenges, accepted as the
    /// tokens' audience). Default `http://localhost:<port>` (`https` with TLS).
    pub resource: Option<String>,
    /// `ZT_INTROSPECTION_URL` / `ZT_INTROSPECTION_CLIENT_ID`: the issuer's RFC 7662
    /// introspection endpoint for opaque tokens, with the client id zt authenticates as
    /// (`client_secret_basic`, the secret in `ZT_INTROSPECTION_SECRET`).
    pub introspection_url: Option<String>,
    pub introspection_client_id: Option<String>,
    /// `ZT_SIGNALS_ISSUER` / `ZT_SIGNALS_JWKS_URL` (/ `ZT_SIGNALS_AUDIENCE`, default the
    /// resource identifier): a Shared Signals transmitter whose SETs (CAEP, RISC) are pushed
    /// to `POST /zt/signals/push` and become revocations and blocks. With
    /// `ZT_SIGNALS_PUSH_AUTHORIZATION` set, each push must also carry that exact
    /// `Authorization` header value (the stream's `authorization_header`).
    pub signals_issuer: Option<String>,
    pub signals_jwks_url: Option<String>,
    pub signals_audience: Option<String>,
    /// `ZT_METRICS_LISTEN`: where Prometheus scrapes the KPIs (default 127.0.0.1:9464).
    pub metrics_listen: SocketAddr,
    /// `ZT_TLS_CERT` / `ZT_TLS_KEY` / `ZT_CLIENT_CA`: serve over TLS (mutual TLS with a CA).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub client_ca: Option<String>,
    /// `ZT_CONTRACT` / `ZT_LIMITS` / `ZT_OBSERVE` (`on`, the default, or `off`): stage
    /// switches for measuring each stage's cost under load (`scripts/load_stages.sh`).
    /// Switching a stage off weakens the service; never do it in production.
    pub contract_on: bool,
    pub limits_on: bool,
    pub observe_on: bool,
    /// `ZT_TOKEN_CACHE` (`on`, the default, or `off`): the verified-token cache; `off`
    /// verifies the ES256 signature of every request (`scripts/bench_peers.sh`'s cache-off
    /// figure). Slower, never weaker.
    pub token_cache_on: bool,
}

/// The environment variable the demo reads the fleet-wide secret from (with `ZT_REDIS_URL`,
/// unless the policy file names another): every replica must have the same one.
pub const FLEET_SECRET_ENV: &str = "ZT_FLEET_SECRET";
/// The `Authorization` value a Shared Signals transmitter sends with each push.
pub const SIGNALS_PUSH_AUTHORIZATION_ENV: &str = "ZT_SIGNALS_PUSH_AUTHORIZATION";

/// Where the demo reads its introspection client secret from (with `ZT_INTROSPECTION_URL`).
pub const INTROSPECTION_SECRET_ENV: &str = "ZT_INTROSPECTION_SECRET";

/// An `on`/`off` switch from the environment (unset: on).
fn switch(name: &str) -> Result<bool, String> {
    match std::env::var(name).ok().as_deref() {
        None | Some("" | "on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(format!("{name}: {other:?} is neither \"on\" nor \"off\"")),
    }
}

impl DemoConfig {
    pub fn from_env() -> Result<DemoConfig, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = var("ZT_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen
            .parse()
            .map_err(|_| format!("ZT_LISTEN: {listen:?} is not an address like 127.0.0.1:8080"))?;
        let mode = match var("ZT_MODE") {
            None => None,
            Some(m) => Some(m.parse().map_err(|e| format!("ZT_MODE: {e}"))?),
        };
        let metrics = var("ZT_METRICS_LISTEN").unwrap_or_else(|| "127.0.0.1:9464".into());
        let metrics_listen =
            metrics.parse().map_err(|_| format!("ZT_METRICS_LISTEN: {metrics:?} is not an address"))?;
        Ok(DemoConfig {
            listen,
            metrics_listen,
            issuer: var("ZT_ISSUER"),
            audience: var("ZT_AUDIENCE"),
            jwks: var("ZT_JWKS"),
            mode,
            policy_file: var("ZT_POLICY"),
            rate: var("ZT_RATE"),
            rate_burst: var("ZT_RATE_BURST"),
            rate_anon: var("ZT_RATE_ANON"),
            trusted_proxies: var("ZT_TRUSTED_PROXIES"),
            redis_url: var("ZT_REDIS_URL"),
            resource: var("ZT_RESOURCE"),
            introspection_url: var("ZT_INTROSPECTION_URL"),
            introspection_client_id: var("ZT_INTROSPECTION_CLIENT_ID"),
            signals_issuer: var("ZT_SIGNALS_ISSUER"),
            signals_jwks_url: var("ZT_SIGNALS_JWKS_URL"),
            signals_audience: var("ZT_SIGNALS_AUDIENCE"),
            tls_cert: var("ZT_TLS_CERT"),
            tls_key: var("ZT_TLS_KEY"),
            client_ca: var("ZT_CLIENT_CA"),
            contract_on: switch("ZT_CONTRACT")?,
            limits_on: switch("ZT_LIMITS")?,
            observe_on: switch("ZT_OBSERVE")?,
            token_cache_on: switch("ZT_TOKEN_CACHE")?,
        })
    }

    /// True when no key source is configured anywhere: the demo generates a dev key.
    pub fn needs_dev_key(&self) -> Result<bool, String> {
        if self.jwks.is_some() {
            return Ok(false);
        }
        let policy = self.base_policy()?;
        Ok(policy.issuers.first().is_none_or(|i| {
            i.jwks_url.is_none()
                && i.jwks_file.is_none()
                && i.jwks.is_none()
                && !i.oidc_discovery
                && i.pem_keys.is_empty()
        }))
    }

    /// The demo guard: the policy plus the demo contract.
    pub fn guard(&self, dev: Option<&DevKey>) -> Result<zt::Guard, String> {
        guard_with(self.policy(dev)?, self.contract_on)
    }

    fn base_policy(&self) -> Result<Policy, String> {
        match &self.policy_file {
            Some(file) => Policy::from_file(file).map_err(|e| format!("ZT_POLICY: {e}")),
            None => Ok(Policy::builder().max_body_bytes(BODY_LIMIT).build()),
        }
    }

    /// The effective issuer and audience (environment, else policy file, else defaults).
    pub fn issuer_and_audience(&self) -> Result<(String, String), String> {
        let policy = self.base_policy()?;
        let first = policy.issuers.first();
        let issuer = self
            .issuer
            .clone()
            .or(first.map(|i| i.issuer.clone()))
            .unwrap_or_else(|| "https://issuer.example".into());
        let audience = self
            .audience
            .clone()
            .or(first.and_then(|i| i.audiences.first().cloned()))
            .unwrap_or_else(|| "orders-api".into());
        Ok((issuer, audience))
    }

    /// The policy: `ZT_POLICY` (if any), with issuer, audience, keys, mode and limits from the
    /// environment on top; the dev key's inline set when no key source is configured.
    pub fn policy(&self, dev: Option<&DevKey>) -> Result<Policy, String> {
        let mut policy = self.base_policy()?;
        let (issuer_name, audience) = self.issuer_and_audience()?;
        if policy.issuers.is_empty() {
            policy.issuers.push(IssuerConfig::new(&issuer_name));
        }
        let issuer = &mut policy.issuers[0];
        issuer.issuer = issuer_name;
        if self.audience.is_some() || issuer.audiences.is_empty() {
            issuer.audiences = vec![audience.clone()];
        }
        match (&self.jwks, dev) {
            (Some(j), _) => {
                issuer.jwks_url = None;
                issuer.jwks_file = None;
                issuer.jwks = None;
                issuer.oidc_discovery = false;
                if j.starts_with("http://") || j.starts_with("https://") {
                    issuer.jwks_url = Some(j.clone());
                } else {
                    issuer.jwks_file = Some(j.clone());
                }
            }
            (None, Some(dev)) => issuer.jwks = Some(dev.jwks.clone()),
            (None, None) => {}
        }
        if policy.realm.is_none() {
            policy.realm = Some(audience);
        }
        match (&self.introspection_url, &self.introspection_client_id) {
            (Some(url), Some(client_id)) => {
                policy.issuers[0].introspection = Some(
                    zt::introspect::IntrospectionConfig::new(url, client_id)
                        .client_secret_env(INTROSPECTION_SECRET_ENV),
                );
            }
            (None, None) => {}
            _ => return Err("ZT_INTROSPECTION_URL and ZT_INTROSPECTION_CLIENT_ID go together".into()),
        }
        // The API as an OAuth protected resource (RFC 9728): its identifier is also an
        // audience tokens for it may carry (RFC 8707), beside `ZT_AUDIENCE`.
        if policy.resource.is_none() || self.resource.is_some() {
            let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
            let identifier = self
                .resource
                .clone()
                .unwrap_or_else(|| format!("{scheme}://localhost:{}", self.listen.port()));
            policy.resource = Some(zt::resource::ResourceConfig::new(identifier));
        }
        if let Some(resource) = &policy.resource {
            for issuer in &mut policy.issuers {
                if !issuer.audiences.contains(&resource.identifier) {
                    issuer.audiences.push(resource.identifier.clone());
                }
            }
        }
        if let Some(mode) = self.mode {
            policy.mode = mode;
        }
        // `ZT_REDIS_URL`: the replicas share one posture through this Redis (quotas,
        // lockouts, blocks, revocations, detection counters, key-set changes, DPoP replay).
        if let Some(url) = &self.redis_url {
            let mut fleet = policy.fleet.take().unwrap_or_else(|| zt::fleet::FleetConfig::new(url));
            fleet.url = Some(url.clone());
            fleet.sentinel = None;
            fleet.cluster = Vec::new();
            if fleet.secret_env.is_none() {
                fleet.secret_env = Some(FLEET_SECRET_ENV.to_string());
            }
            policy.fleet = Some(fleet);
        }
        match (&self.signals_issuer, &self.signals_jwks_url) {
            (Some(issuer), Some(jwks_url)) => {
                let audience = self
                    .signals_audience
                    .clone()
                    .or_else(|| policy.resource.as_ref().map(|r| r.identifier.clone()))
                    .ok_or("ZT_SIGNALS_AUDIENCE: no resource identifier to default to")?;
                let mut signals = zt::signals::SignalsConfig::new(issuer, audience).jwks_url(jwks_url);
                // The transmitter's own `Authorization` on each push, when the stream has one.
                if std::env::var_os(SIGNALS_PUSH_AUTHORIZATION_ENV).is_some() {
                    signals.push_authorization_env = Some(SIGNALS_PUSH_AUTHORIZATION_ENV.to_string());
                }
                policy.signals = Some(signals);
            }
            (None, None) => {}
            _ => return Err("ZT_SIGNALS_ISSUER and ZT_SIGNALS_JWKS_URL go together".into()),
        }
        policy.limits = match self.limits_on {
            true => Some(self.limits(policy.limits.take())?),
            false => None,
        };
        // Monitoring, detection and the runtime inventory: on (library defaults) unless the
        // policy file configures them.
        if !self.observe_on {
            policy.observe = None;
        } else if policy.observe.is_none() {
            policy.observe = Some(zt::observe::ObserverConfig::default());
        }
        if !self.token_cache_on {
            policy.tokens.cache = false;
        }
        Ok(policy)
    }

    /// Rate limits: on by default (the library's defaults), tuned by the `ZT_RATE*` variables.
    fn limits(&self, base: Option<zt::limit::LimitConfig>) -> Result<zt::limit::LimitConfig, String> {
        let mut toml = String::new();
        if let Some(rate) = &self.rate {
            match &self.rate_burst {
                Some(burst) => toml.push_str(&format!("identity = {{ rate = {rate:?}, burst = {burst} }}\n")),
                None => toml.push_str(&format!("identity = {rate:?}\n")),
            }
        }
        if let Some(anon) = &self.rate_anon {
            toml.push_str(&format!("address = {anon:?}\n"));
        }
        if let Some(proxies) = &self.trusted_proxies {
            let list: Vec<String> = proxies.split(',').map(|p| format!("{:?}", p.trim())).collect();
            toml.push_str(&format!("trusted_proxies = [{}]\n", list.join(", ")));
        }
        let from_env = zt::limit::LimitConfig::from_toml_str(&toml)
            .map_err(|e| format!("ZT_RATE*/ZT_TRUSTED_PROXIES: {e}"))?;
        let mut limits = base.unwrap_or_default();
        if self.rate.is_some() {
            limits.identity = from_env.identity;
        }
        if self.rate_anon.is_some() {
            limits.address = from_env.address;
        }
        if self.trusted_proxies.is_some() {
            limits.trusted_proxies = from_env.trusted_proxies;
        }
        Ok(limits)
    }

    /// TLS settings, when `ZT_TLS_CERT` and `ZT_TLS_KEY` are set (`ZT_CLIENT_CA` adds
    /// optional client-certificate verification: the admin zone then requires it).
    pub fn tls(&self) -> Result<Option<zt::tls::TlsConfig>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            if self.tls_cert.is_some() || self.tls_key.is_some() || self.client_ca.is_some() {
                return Err("ZT_TLS_CERT and ZT_TLS_KEY go together (ZT_CLIENT_CA needs both)".into());
            }
            return Ok(None);
        };
        let mut builder = zt::tls::TlsConfig::builder().server_cert_files(cert, key);
        if let Some(ca) = &self.client_ca {
            builder = builder.client_ca_file(ca).client_auth(zt::tls::ClientAuth::Optional);
        }
        builder.build().map(Some).map_err(|e| format!("TLS: {e}"))
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
        let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", config.listen);
        let (issuer, audience) = config.issuer_and_audience().unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!(
            "\n=== zt {framework} orders demo: DEV MODE (ephemeral key, NOT FOR PRODUCTION) ===\n"
        ));
        out.push_str(&format!(
            "issuer {issuer} | audience {audience} | JWKS at {base}/.well-known/jwks.json\n"
        ));
        for (sub, scope) in [
            ("alice", "orders:read"),
            ("alice", "orders:read orders:write"),
            ("admin", "orders:read orders:write orders:admin zt:admin"),
        ] {
            let token = self.token(&issuer, &audience, sub, scope);
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
    /// An integer as integer parsers take it: zt's contract refuses `2.0` and `2e0` (JSON
    /// Schema would count them), so one reaching here is a bypass.
    quantity: u64,
    #[serde(default)]
    note: Option<String>,
}

/// A framework-neutral answer: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Option<String>,
    pub content_type: &'static str,
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply {
        status,
        body: Some(serde_json::to_string(value).unwrap_or_default()),
        content_type: "application/json",
    }
}

fn problem(status: u16, title: &str) -> Reply {
    let problem = serde_json::json!({"type": "about:blank", "title": title, "status": status});
    Reply { content_type: "application/problem+json", ..json(status, &problem) }
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

/// The runtime API inventory as JSON (404 problem when monitoring is off).
pub fn inventory(guard: &zt::Guard) -> Reply {
    match guard.observer() {
        Some(observer) => json(200, &observer.inventory().snapshot()),
        None => problem(404, "monitoring is off"),
    }
}

/// Most orders kept in all; beyond this a new order is refused (the demo's state stays
/// bounded without one writer evicting other users' orders).
pub const MAX_ORDERS: usize = 10_000;

/// Most orders kept per owner; beyond this the owner's own oldest order is dropped, never
/// another owner's (issue 14, finding 4: the store used to be one global FIFO).
pub const MAX_ORDERS_PER_OWNER: usize = 500;

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
        // The Guard enforces the contract: an invalid order reaching this handler is a bypass,
        // reported as a server error so tests and fuzzers (schemathesis) flag it.
        let Ok(new) = serde_json::from_slice::<NewOrder>(body) else {
            return contract_bypass("POST /orders body");
        };
        let valid_item = (1..=64).contains(&new.item.chars().count());
        let valid_note = new.note.as_ref().is_none_or(|n| n.chars().count() <= 256);
        let Some(quantity) = Some(new.quantity).filter(|q| (1..=1000).contains(q)).map(|q| q as u32) else {
            return contract_bypass("POST /orders quantity");
        };
        if !valid_item || !valid_note {
            return contract_bypass("POST /orders body");
        }
        match self.insert(owner, new.item, quantity, new.note) {
            Some(order) => json(201, &order),
            None => problem(503, "the order store is full"),
        }
    }

    /// Stores a new order for `owner`: beyond [`MAX_ORDERS_PER_OWNER`] the owner's own
    /// oldest order is dropped; `None` when the store is full with other owners' orders
    /// ([`MAX_ORDERS`]) or unavailable.
    pub fn insert(&self, owner: &str, item: String, quantity: u32, note: Option<String>) -> Option<Order> {
        let mut guard = self.inner.lock().ok()?;
        let mine = guard.1.iter().filter(|o| o.owner == owner).count();
        if mine >= MAX_ORDERS_PER_OWNER {
            let oldest = guard.1.iter().position(|o| o.owner == owner)?;
            guard.1.remove(oldest);
        } else if guard.1.len() >= MAX_ORDERS {
            return None;
        }
        guard.0 += 1;
        let order = Order { id: guard.0, item, quantity, note, owner: owner.to_string() };
        guard.1.push_back(order.clone());
        Some(order)
    }

    /// `owner`'s newest orders, at most `limit`.
    pub fn orders_of(&self, owner: &str, limit: usize) -> Vec<Order> {
        let Ok(guard) = self.inner.lock() else { return Vec::new() };
        guard.1.iter().rev().filter(|o| o.owner == owner).take(limit).cloned().collect()
    }

    /// `owner`'s order `id`, if there is one.
    pub fn find(&self, owner: &str, id: u64) -> Option<Order> {
        let guard = self.inner.lock().ok()?;
        guard.1.iter().find(|o| o.id == id && o.owner == owner).cloned()
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
        if guard.1.len() < before {
            Reply { status: 204, body: None, content_type: "application/json" }
        } else {
            problem(404, "no such order")
        }
    }
}
