//! criterion benches for the stages added after the foundation: canonicalization, OpenAPI
//! route matching and validation, the rate limiter (in memory, and through a real
//! redis-server next to a bare PING), certificate identity and zone evaluation, and the
//! observer. Run with `cargo bench --bench stages`; figures in
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/orders/mod.rs"]
mod orders;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use zt::canonical::{PathPolicy, canonicalize};
use zt::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt::limit::{LimitCheck, LimitConfig, LimitKey, Limiter};
use zt::request::HeaderList;
use zt::zones::ZoneConfig;
use zt::{Decision, Guard, RequestView, scopes};

fn canonicalization(c: &mut Criterion) {
    let strict = PathPolicy::default();
    c.bench_function("canonicalize/strict_ok", |b| {
        b.iter(|| canonicalize(black_box("/orders/123456/items/7"), &strict))
    });
    c.bench_function("canonicalize/strict_rejects", |b| {
        b.iter(|| canonicalize(black_box("/orders/%2e%2e/admin"), &strict))
    });
    let normalize = PathPolicy { normalize: true, strip_trailing_slash: true };
    c.bench_function("canonicalize/normalize_rewrites", |b| {
        b.iter(|| canonicalize(black_box("//orders/./12/"), &normalize))
    });
}

fn specs_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs")
}

fn contract(c: &mut Criterion) {
    let twilio =
        Contract::from_file(specs_dir().join("twilio_verify_v2.json"), ContractOptions::default()).unwrap();
    // A deep templated route of the largest spec.
    let path = "/v2/Services/VA0123456789abcdef0123456789abcdef/Entities/user-1/Factors/YF0123456789abcdef0123456789abcdef";
    assert!(matches!(twilio.lookup("POST", path), Lookup::Found { .. }));
    c.bench_function("contract/route_match_twilio_verify", |b| {
        b.iter(|| twilio.lookup(black_box("POST"), black_box(path)))
    });

    // A typical 1 KiB JSON body: a batch of orders, strict mode (closed objects).
    let spec = r#"
openapi: 3.1.0
info: { title: batch, version: "1" }
paths:
  /batch:
    post:
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [orders]
              properties:
                orders:
                  type: array
                  maxItems: 50
                  items:
                    type: object
                    required: [item, quantity]
                    properties:
                      item: { type: string, minLength: 1, maxLength: 64 }
                      quantity: { type: integer, minimum: 1, maximum: 1000 }
                      note: { type: string, maxLength: 256 }
      responses: { "200": { description: ok } }
"#;
    let batch = Contract::from_text(spec, None, ContractOptions::default()).unwrap();
    let orders: Vec<_> = (0..18)
        .map(|i| json!({"item": format!("item number {i}"), "quantity": i + 1, "note": "gift wrap"}))
        .collect();
    let body = json!({ "orders": orders }).to_string();
    assert!((900..1200).contains(&body.len()), "{}", body.len());
    let headers = HeaderList::default().with("content-type", "application/json");
    let Lookup::Found { op, path_params } = batch.lookup("POST", "/batch") else { panic!("POST /batch") };
    let request = ContractRequest {
        path_params: &path_params,
        query: None,
        headers: &headers,
        body: Some(body.as_bytes()),
    };
    assert!(batch.validate_request(op, &request).is_ok());
    c.bench_function("contract/validate_1kib_json_body", |b| {
        b.iter(|| batch.validate_request(op, black_box(&request)))
    });
    // The floor under it: parsing the same body into a `serde_json::Value` (what jsonschema
    // validates), and dropping it.
    c.bench_function("contract/serde_json_value_1kib_baseline", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes())).unwrap())
    });

    let demo = orders::contract().unwrap();
    let Lookup::Found { op, path_params } = demo.lookup("GET", "/orders") else { panic!("GET /orders") };
    let empty = HeaderList::default();
    let query = ContractRequest {
        path_params: &path_params,
        query: Some("limit=50&cursor=abc"),
        headers: &empty,
        body: None,
    };
    assert!(demo.validate_request(op, &query).is_ok());
    c.bench_function("contract/validate_query", |b| b.iter(|| demo.validate_request(op, black_box(&query))));
}

fn limiter(c: &mut Criterion) {
    let config = LimitConfig::from_toml_str("identity = \"1000000/s\"\naddress = \"1000000/s\"\n").unwrap();
    let limiter = Limiter::new(&config).unwrap();
    let subjects: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut i = 0usize;
    c.bench_function("limit/in_memory_check_identity", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            match limiter.check_identity(LimitKey::Identity(&subjects[i]), "GET", "/orders") {
                LimitCheck::Ready(d) => assert!(d.allowed),
                _ => panic!("in-memory checks are immediate"),
            }
        })
    });
}

/// The shared store: one quota check through zt's Redis store (a GCRA script, one round
/// trip) next to a bare `PING` over the same kind of connection, the network floor.
fn redis_limiter(c: &mut Criterion) {
    let Some(server) = support::RedisServer::start() else {
        eprintln!("limit/redis_* skipped: redis-server is not installed");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = LimitConfig::from_toml_str(&format!(
        "identity = \"1000000/s\"\naddress = \"off\"\n[store.redis]\nurl = \"redis://127.0.0.1:{}/\"\n",
        server.port
    ))
    .unwrap();
    let limiter = runtime.block_on(async { Limiter::new(&config) }).unwrap();
    let subjects: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut i = 0usize;
    c.bench_function("limit/redis_check_identity", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            let check = limiter.check_identity(LimitKey::Identity(&subjects[i]), "GET", "/orders");
            let decision = runtime.block_on(check.decision());
            assert!(decision.is_some_and(|d| d.allowed));
        })
    });
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut connection = runtime.block_on(client.get_multiplexed_async_connection()).unwrap();
    c.bench_function("limit/redis_bare_ping", |b| {
        b.iter(|| {
            let pong: String = runtime.block_on(redis::cmd("PING").query_async(&mut connection)).unwrap();
            assert_eq!(pong, "PONG");
        })
    });
}

fn certificates_and_zones(c: &mut Criterion) {
    let pki = support::pki::pki();
    c.bench_function("cert/identity_from_der", |b| {
        b.iter(|| zt::CertificateIdentity::from_der(black_box(&pki.admin.der)).unwrap())
    });
    // The whole check for a bound token over mTLS into a zone with conditions, beside the
    // same request without zones: the difference is the zone stage.
    let zone = ZoneConfig {
        name: "admin".into(),
        routes: vec!["GET /orders".into()],
        require_mtls: true,
        require_bound_token: true,
        spiffe_trust_domains: vec!["prod.example".into()],
        source_cidrs: vec!["127.0.0.0/8".into()],
        ..Default::default()
    };
    let base = || {
        zt::Policy::builder()
            .issuer(
                zt::policy::IssuerConfig::new(support::ISSUER)
                    .audience(support::AUDIENCE)
                    .jwks(support::trusted_jwks()),
            )
            .route("GET", "/orders", scopes::all(["orders:read"]))
    };
    let zoned = Guard::new(base().zone(zone).build()).unwrap();
    let plain = Guard::new(base().build()).unwrap();
    let mut claims = support::claims("root", "orders:read");
    claims["cnf"] = json!({"x5t#S256": pki.admin.thumbprint()});
    let token = support::sign(support::key(jsonwebtoken::Algorithm::ES256), &claims);
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let peer = pki.admin.peer();
    let view = RequestView {
        method: "GET",
        path: "/orders",
        query: None,
        headers: &headers,
        peer_addr: Some("127.0.0.1:40000".parse().unwrap()),
        peer_certificates: Some(&peer),
        body: zt::BodyHint::Empty,
    };
    for guard in [&zoned, &plain] {
        let zt::Check::Ready(v) = guard.check(&view) else { panic!("static keys") };
        assert!(matches!(v, Decision::Admitted(_)), "{v:?}");
    }
    c.bench_function("zones/check_mtls_bound_token_without_zones", |b| {
        b.iter(|| plain.check(black_box(&view)))
    });
    c.bench_function("zones/check_mtls_bound_token_admin_zone", |b| b.iter(|| zoned.check(black_box(&view))));
}

fn observer(c: &mut Criterion) {
    let mut workload = zt::observe::bench::Workload::new(1_000);
    c.bench_function("observe/per_request", |b| b.iter(|| black_box(workload.step())));
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = canonicalization, contract, limiter, redis_limiter, certificates_and_zones, observer
}
criterion_main!(benches);
