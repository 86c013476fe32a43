//! Cold verification, zt against raw `jsonwebtoken::decode`, measured interleaved: blocks of
//! 50 zt checks and 50 raw decodes alternate for a few seconds per algorithm, so that noise
//! from other work on the machine falls on both sides alike. The criterion benches in
//! `pipeline.rs` measure each side in its own time window, which on a shared machine can move
//! their ratio by 30 %; this one gives the ratio the `<= 1.15` target is about.
//!
//! `cargo bench --bench verify_interleaved` (ZT_AB_SECONDS per algorithm, default 8).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../examples/orders/mod.rs"]
mod orders;

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use zt::request::HeaderList;
use zt::{Check, Decision, Guard, RequestView, RouteTable};

const BLOCK: u32 = 50;

fn guard_without_cache() -> Guard {
    let mut policy = support::policy_with_jwks(support::trusted_jwks());
    policy.tokens.cache = false;
    let mut routes = RouteTable::new();
    for (method, path, scopes) in orders::ROUTES {
        routes.add(method, path, orders::requirement(scopes)).expect("demo route");
    }
    Guard::new(policy).expect("guard").with_routes(&routes).expect("routes")
}

fn allowed(check: Check) -> bool {
    matches!(check, Check::Ready(Decision::Admitted(admitted)) if admitted.identity().is_some())
}

fn main() {
    let seconds = std::env::var("ZT_AB_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let guard = guard_without_cache();
    eprintln!("interleaved blocks of {BLOCK}, {seconds} s per algorithm");
    eprintln!(
        "{:8} {:>12} {:>12} {:>16} {:>18} {:>8}",
        "alg", "zt", "raw", "ratio of totals", "median block ratio", "blocks"
    );
    for (alg, name) in [(Algorithm::ES256, "ES256"), (Algorithm::RS256, "RS256"), (Algorithm::EdDSA, "EdDSA")]
    {
        let key = support::key(alg);
        let token = support::sign(key, &support::claims("alice", "orders:read"));
        let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
        let view = RequestView {
            method: "GET",
            path: "/orders",
            query: None,
            headers: &headers,
            peer_addr: None,
            peer_certificates: None,
            body: zt::BodyHint::Empty,
        };
        let jwk: Jwk = serde_json::from_value(key.jwk.clone()).expect("jwk");
        let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[support::ISSUER]);
        validation.set_audience(&[support::AUDIENCE]);
        assert!(allowed(guard.check(&view)), "zt allows the token");
        assert_eq!(guard.cached_tokens(), 0, "the cache must be off");
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).expect("raw decode");

        let (mut zt_total, mut raw_total) = (Duration::ZERO, Duration::ZERO);
        let mut ratios = Vec::new();
        let end = Instant::now() + Duration::from_secs(seconds);
        // At least one block, however short the time.
        loop {
            let start = Instant::now();
            for _ in 0..BLOCK {
                black_box(guard.check(black_box(&view)));
            }
            let zt = start.elapsed();
            let start = Instant::now();
            for _ in 0..BLOCK {
                let _ = black_box(jsonwebtoken::decode::<serde_json::Value>(
                    black_box(&token),
                    &decoding,
                    &validation,
                ));
            }
            let raw = start.elapsed();
            zt_total += zt;
            raw_total += raw;
            ratios.push(zt.as_secs_f64() / raw.as_secs_f64());
            if Instant::now() >= end {
                break;
            }
        }
        ratios.sort_by(f64::total_cmp);
        let calls = (ratios.len() as f64) * f64::from(BLOCK);
        eprintln!(
            "{name:8} {:>9.2} us {:>9.2} us {:>16.3} {:>18.3} {:>8}",
            zt_total.as_secs_f64() * 1e6 / calls,
            raw_total.as_secs_f64() * 1e6 / calls,
            zt_total.as_secs_f64() / raw_total.as_secs_f64(),
            ratios[ratios.len() / 2],
            ratios.len(),
        );
    }
}
