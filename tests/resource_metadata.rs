//! Protected-resource metadata (RFC 9728) through both demos over real HTTP on 127.0.0.1:
//! the document generated from the policy and the route table, `resource_metadata` in every
//! 401 challenge (Bearer and DPoP), the resource accepted as the tokens' audience, and
//! the start-up check that every issuer accepts it (RFC 8707).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use support::*;

const RESOURCE: &str = "http://localhost:8080";
const METADATA_URL: &str = "http://localhost:8080/.well-known/oauth-protected-resource";

/// The demo's own policy, as `cargo run --example ...` builds it with no variables set
/// (a `[resource]` of `http://localhost:<port>`), on the tests' keys.
fn demo_policy() -> zt::Policy {
    let config = orders::DemoConfig::from_env().expect("demo config");
    let mut policy = config.policy(None).expect("demo policy");
    policy.issuers[0].jwks = Some(trusted_jwks());
    policy.issuers[0].issuer = ISSUER.into();
    policy.issuers[0].audiences.retain(|a| a != &config.issuer_and_audience().unwrap().1);
    policy.issuers[0].audiences.push(AUDIENCE.into());
    policy
}

async fn demos() -> Vec<(&'static str, SocketAddr)> {
    let policy = demo_policy();
    assert_eq!(policy.resource.as_ref().map(|r| r.identifier.as_str()), Some(RESOURCE));
    vec![("axum", spawn_axum(demo_guard(policy.clone())).await), ("actix", spawn_actix(demo_guard(policy)))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_demos_serve_the_metadata_generated_from_policy_and_routes() {
    for (name, addr) in demos().await {
        let r = raw_request(addr, "GET", "/.well-known/oauth-protected-resource", &[], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "{name}");
        let doc: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(doc["resource"], RESOURCE, "{name}");
        assert_eq!(doc["authorization_servers"], serde_json::json!([ISSUER]), "{name}");
        let scopes: Vec<&str> =
            doc["scopes_supported"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for scope in ["orders:read", "orders:write", "orders:admin", "zt:admin"] {
            assert!(scopes.contains(&scope), "{name}: {scope} missing from {scopes:?}");
        }
        assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]), "{name}");
        assert!(doc["dpop_signing_alg_values_supported"].as_array().is_some_and(|a| !a.is_empty()), "{name}");
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true, "{name}");
        // Public: a bad credential is still verified (and refused), none is needed.
        let r = raw_request(addr, "POST", "/.well-known/oauth-protected-resource", &[], Some(b"{}")).await;
        assert_eq!(r.status, 405, "{name}: only GET");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_401_challenge_names_the_metadata() {
    for (name, addr) in demos().await {
        for authorization in [None, Some("Bearer not-a-token".to_string())] {
            let headers: Vec<(&str, &str)> =
                authorization.iter().map(|a| ("authorization", a.as_str())).collect();
            let r = raw_request(addr, "GET", "/orders", &headers, None).await;
            assert_eq!(r.status, 401, "{name}: {r:?}");
            let challenges: Vec<&str> = r
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(challenges.iter().any(|c| c.starts_with("Bearer ")), "{name}: {challenges:?}");
            assert!(challenges.iter().any(|c| c.starts_with("DPoP ")), "{name}: {challenges:?}");
            for challenge in &challenges {
                assert!(
                    challenge.contains(&format!("resource_metadata=\"{METADATA_URL}\"")),
                    "{name}: {challenge}"
                );
            }
        }
        // A 403 is not a challenge to authenticate: no metadata pointer there.
        let reader = format!("Bearer {}", token("alice", "orders:read"));
        let r = raw_request(addr, "DELETE", "/orders/1", &[("authorization", &reader)], None).await;
        assert_eq!(r.status, 403, "{name}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_the_resource_is_accepted_and_one_for_another_api_is_refused() {
    for (name, addr) in demos().await {
        let mut for_resource = claims("alice", "orders:read");
        for_resource["aud"] = RESOURCE.into();
        let token = sign(key(Algorithm::ES256), &for_resource);
        let r =
            raw_request(addr, "GET", "/orders", &[("authorization", &format!("Bearer {token}"))], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let mut elsewhere = claims("alice", "orders:read");
        elsewhere["aud"] = "https://another-api.example".into();
        let token = sign(key(Algorithm::ES256), &elsewhere);
        let r =
            raw_request(addr, "GET", "/orders", &[("authorization", &format!("Bearer {token}"))], None).await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
    }
}

#[test]
fn a_resource_its_issuers_do_not_accept_as_audience_refuses_to_start() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.resource = Some(zt::resource::ResourceConfig::new("https://api.example"));
    let error = zt::Guard::new(policy).err().expect("refused").to_string();
    assert!(error.contains("resource.identifier") && error.contains("RFC 8707"), "{error}");
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.resource = Some(zt::resource::ResourceConfig::new("http://api.example"));
    let error = zt::Guard::new(policy).err().expect("refused").to_string();
    assert!(error.contains("https"), "plain http off loopback: {error}");
    // resource_metadata() without a [resource] is an error when the router is finished.
    let routes = zt::actix::Router::new(zt::Guard::new(policy_with_jwks(trusted_jwks())).unwrap())
        .resource_metadata()
        .finish();
    assert!(routes.is_err());
}
