//! Shared by the fuzz targets: a test signing key with its JWKS, guards, and a way to finish a
//! decision that waits for keys.
#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zt::policy::{IssuerConfig, Policy};
use zt::{Decision, Denial, Guard, Identity, RequestView, RouteTable};

pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "orders-api";
pub const KID: &str = "fuzz-1";

/// An ES256 key generated once per process, and its public JWKS.
pub struct TestKey {
    pub pair: EcdsaKeyPair,
    pub jwks: String,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("fuzz harness: EC key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("fuzz harness: EC key parse");
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
        .to_string();
        TestKey { pair, jwks }
    }

    /// `b64(header).b64(claims).b64(ES256 signature)`, whatever the header says.
    pub fn sign(&self, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let rng = SystemRandom::new();
        let signature = self.pair.sign(&rng, input.as_bytes()).expect("fuzz harness: ES256 signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The key the guards trust.
pub fn trusted_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate(KID))
}

/// A key nobody trusts, with the same `kid` as the trusted one.
pub fn untrusted_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate(KID))
}

/// The demo's routes and requirements.
pub fn demo_routes() -> RouteTable {
    let mut routes = RouteTable::new();
    for (method, path, requirement) in [
        ("GET", "/health", zt::scopes::public()),
        ("GET", "/orders", zt::scopes::all(["orders:read"])),
        ("POST", "/orders", zt::scopes::all(["orders:write"])),
        ("GET", "/orders/{id}", zt::scopes::all(["orders:read"])),
        ("DELETE", "/orders/{id}", zt::scopes::all(["orders:admin"])),
    ] {
        routes.add(method, path, requirement).expect("fuzz harness: route table");
    }
    routes
}

/// A guard with one issuer keyed by the trusted key (static JWKS: never fetches), the demo
/// routes, and the given path policy.
pub fn demo_guard(paths: zt::canonical::PathPolicy) -> Guard {
    let policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_key().jwks.clone()))
        .paths(paths)
        .build();
    Guard::new(policy)
        .expect("fuzz harness: guard")
        .with_routes(&demo_routes())
        .expect("fuzz harness: guard routes")
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("fuzz harness: tokio runtime")
    })
}

/// What the Guard decided, in the shape the oracles compare.
#[derive(Debug)]
pub enum Outcome {
    /// Admitted, with the verified caller if any.
    Allow(Option<Identity>),
    /// Rejected.
    Deny(Denial),
}

/// A decision for the oracles.
pub struct Verdict {
    pub outcome: Outcome,
    /// The route template the Guard matched, if any.
    pub route: Option<String>,
    /// The normalized path an admitted request is forwarded with, when it was rewritten.
    pub rewritten_path: Option<String>,
}

/// `Guard::decide` (any waits finished on a private runtime).
pub fn decide(guard: &Guard, view: &RequestView<'_>) -> Verdict {
    match runtime().block_on(guard.decide(view)) {
        Decision::Admitted(admitted) => Verdict {
            route: admitted.route().map(str::to_string),
            rewritten_path: admitted.rewritten_path().map(str::to_string),
            outcome: Outcome::Allow(admitted.identity().cloned()),
        },
        Decision::Rejected(rejected) => Verdict {
            route: rejected.route().map(str::to_string),
            rewritten_path: None,
            outcome: Outcome::Deny(rejected.denial().clone()),
        },
    }
}
