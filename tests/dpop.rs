//! DPoP (RFC 9449) through both demos with their default configuration, over real HTTP on
//! 127.0.0.1: valid proofs, each check's refusal with its challenge, a DPoP-bound token
//! presented as Bearer, server nonces, and a proof replayed on a second replica sharing one
//! Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use support::*;

/// The client's DPoP key (a key the issuer does not know: it only signs proofs).
fn client() -> &'static TestKey {
    attacker_ec()
}

fn thumbprint(key: &TestKey) -> String {
    zt::dpop::jwk_thumbprint(key.jwk.as_object().unwrap()).unwrap()
}

/// A DPoP-bound access token for `key`.
fn bound_token(key: &TestKey) -> String {
    let mut claims = claims("alice", "orders:read");
    claims["cnf"] = json!({"jkt": thumbprint(key)});
    sign(support::key(Algorithm::ES256), &claims)
}

fn public_jwk(key: &TestKey) -> Value {
    let mut jwk = key.jwk.clone();
    jwk.as_object_mut().unwrap().retain(|k, _| ["kty", "crv", "x", "y", "n", "e"].contains(&k.as_str()));
    jwk
}

/// A proof by `key` for `method uri`, bound to `token`; `edit` changes header and claims.
fn proof(
    key: &TestKey,
    method: &str,
    uri: &str,
    token: &str,
    edit: impl FnOnce(&mut Value, &mut Value),
) -> String {
    let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)});
    let mut claims = json!({
        "jti": format!("{:x}", rand::random::<u128>()), "htm": method, "htu": uri,
        "iat": now(), "ath": zt::dpop::access_token_hash(token),
    });
    edit(&mut header, &mut claims);
    sign_raw(key, &header, &claims)
}

const URI: &str = "http://127.0.0.1/orders";

async fn get(addr: SocketAddr, authorization: &str, dpop: Option<&str>) -> RawResponse {
    let mut headers = vec![("authorization", authorization)];
    if let Some(proof) = dpop {
        headers.push(("dpop", proof));
    }
    raw_request(addr, "GET", "/orders", &headers, None).await
}

fn challenges(r: &RawResponse) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

async fn servers(policy: zt::Policy) -> Vec<(&'static str, SocketAddr)> {
    vec![("axum", spawn_axum(demo_guard(policy.clone())).await), ("actix", spawn_actix(demo_guard(policy)))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_are_checked_on_both_adapters() {
    let token = bound_token(client());
    for (adapter, addr) in servers(policy_with_jwks(trusted_jwks())).await {
        let auth = format!("DPoP {token}");
        let valid = proof(client(), "GET", URI, &token, |_, _| {});
        let r = get(addr, &auth, Some(&valid)).await;
        assert_eq!(r.status, 200, "{adapter}: valid proof: {}", r.body);
        let r = get(addr, &auth, Some(&valid)).await;
        assert_eq!(
            (r.status, r.problem_type().as_deref()),
            (401, Some("urn:zt:problem:dpop-replayed")),
            "{adapter}"
        );
        let dpop =
            challenges(&r).into_iter().find(|c| c.starts_with("DPoP")).expect("DPoP challenge").to_string();
        assert!(
            dpop.contains("error=\"invalid_dpop_proof\"") && dpop.contains("algs=\"ES256"),
            "{adapter}: {dpop}"
        );
        assert!(!r.body.contains(&token) && !r.body.contains(&valid), "{adapter}: nothing echoed");

        let other = key(Algorithm::ES384);
        let cases: Vec<(&str, String, &str)> = vec![
            ("wrong htm", proof(client(), "POST", URI, &token, |_, _| {}), "dpop-wrong-method"),
            (
                "wrong htu",
                proof(client(), "GET", "http://127.0.0.1/orders/1", &token, |_, _| {}),
                "dpop-wrong-uri",
            ),
            (
                "other host",
                proof(client(), "GET", "http://evil.example/orders", &token, |_, _| {}),
                "dpop-wrong-uri",
            ),
            (
                "missing ath",
                proof(client(), "GET", URI, &token, |_, c| drop(c.as_object_mut().unwrap().remove("ath"))),
                "dpop-missing-claim",
            ),
            (
                "wrong ath",
                proof(client(), "GET", URI, &token, |_, c| {
                    c["ath"] = json!(zt::dpop::access_token_hash("x"))
                }),
                "dpop-wrong-access-token",
            ),
            (
                "stale iat",
                proof(client(), "GET", URI, &token, |_, c| c["iat"] = json!(now() - 600)),
                "dpop-stale",
            ),
            (
                "future iat",
                proof(client(), "GET", URI, &token, |_, c| c["iat"] = json!(now() + 600)),
                "dpop-stale",
            ),
            ("typ", proof(client(), "GET", URI, &token, |h, _| h["typ"] = json!("JWT")), "dpop-wrong-type"),
            (
                "private key in jwk",
                proof(client(), "GET", URI, &token, |h, _| h["jwk"]["d"] = json!("AAAA")),
                "dpop-bad-key",
            ),
            (
                "symmetric alg",
                proof(client(), "GET", URI, &token, |h, _| h["alg"] = json!("HS256")),
                "dpop-algorithm-not-allowed",
            ),
            (
                "none alg",
                proof(client(), "GET", URI, &token, |h, _| h["alg"] = json!("none")),
                "dpop-algorithm-not-allowed",
            ),
            // Signed by the client but carrying another key: the signature fails.
            (
                "foreign jwk",
                proof(client(), "GET", URI, &token, |h, _| h["jwk"] = public_jwk(other)),
                "dpop-bad-key",
            ),
            ("not a jwt", "garbage".to_string(), "dpop-malformed"),
        ];
        for (name, bad, slug) in cases {
            let r = get(addr, &auth, Some(&bad)).await;
            assert_eq!(r.status, 401, "{adapter} {name}: {}", r.body);
            assert_eq!(r.problem_type(), Some(format!("urn:zt:problem:{slug}")), "{adapter} {name}");
        }
        // The proof is valid but by another key than the token's.
        let es384 = key(Algorithm::ES384);
        let mut header = json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": public_jwk(es384)});
        let claims = json!({"jti": "m1", "htm": "GET", "htu": URI, "iat": now(), "ath": zt::dpop::access_token_hash(&token)});
        header["kid"] = json!("client");
        let mismatch = sign_raw(es384, &header, &claims);
        let r = get(addr, &auth, Some(&mismatch)).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:dpop-thumbprint-mismatch"), "{adapter}");
        // No proof with the DPoP scheme.
        let r = get(addr, &auth, None).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:dpop-missing"), "{adapter}");
        // The bound token as a bearer token: refused, as if stolen.
        let r = get(addr, &format!("Bearer {token}"), None).await;
        assert_eq!(r.status, 401, "{adapter}");
        assert_eq!(
            r.problem_type().as_deref(),
            Some("urn:zt:problem:dpop-bound-token-as-bearer"),
            "{adapter}"
        );
        // An unbound token with the DPoP scheme: nothing to prove possession of.
        let plain = support::token("bob", "orders:read");
        let r =
            get(addr, &format!("DPoP {plain}"), Some(&proof(client(), "GET", URI, &plain, |_, _| {}))).await;
        assert_eq!(r.status, 401, "{adapter}");
        // Plain bearer tokens still work, and a missing credential offers both schemes.
        assert_eq!(get(addr, &format!("Bearer {plain}"), None).await.status, 200, "{adapter}");
        let r = raw_request(addr, "GET", "/orders", &[], None).await;
        let offered = challenges(&r);
        assert!(offered.iter().any(|c| c.starts_with("Bearer realm=")), "{adapter}: {offered:?}");
        assert!(offered.iter().any(|c| c.starts_with("DPoP algs=")), "{adapter}: {offered:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_issued_and_required_when_configured() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.dpop.require_nonce = true;
    let token = bound_token(client());
    for (adapter, addr) in servers(policy).await {
        let auth = format!("DPoP {token}");
        let r = get(addr, &auth, Some(&proof(client(), "GET", URI, &token, |_, _| {}))).await;
        assert_eq!(r.status, 401, "{adapter}");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:dpop-nonce-required"), "{adapter}");
        assert!(challenges(&r).iter().any(|c| c.contains("error=\"use_dpop_nonce\"")), "{adapter}");
        let nonce = r.header("dpop-nonce").expect("a DPoP-Nonce").to_string();
        let with_nonce = proof(client(), "GET", URI, &token, |_, c| c["nonce"] = json!(nonce));
        assert_eq!(get(addr, &auth, Some(&with_nonce)).await.status, 200, "{adapter}");
        let forged = proof(client(), "GET", URI, &token, |_, c| c["nonce"] = json!("made-up"));
        let r = get(addr, &auth, Some(&forged)).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:dpop-stale-nonce"), "{adapter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_used_on_one_replica_is_refused_on_another() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.fleet = Some(zt::fleet::FleetConfig::new(redis.url()));
    let first = spawn_axum(demo_guard(policy.clone())).await;
    let second = spawn_actix(demo_guard(policy));
    let token = bound_token(client());
    let auth = format!("DPoP {token}");
    let mut refused = 0;
    for _ in 0..10 {
        let used = proof(client(), "GET", URI, &token, |_, _| {});
        assert_eq!(get(first, &auth, Some(&used)).await.status, 200);
        let r = get(second, &auth, Some(&used)).await;
        if r.problem_type().as_deref() == Some("urn:zt:problem:dpop-replayed") {
            refused += 1;
        }
    }
    eprintln!("replayed proofs refused by the second replica: {refused} of 10");
    assert_eq!(refused, 10, "every proof replayed on the other replica is refused");
}
