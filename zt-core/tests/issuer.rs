//! The token issuer: minted tokens verify through a Guard that knows only the published JWK
//! set; keys rotate on an injected clock (pre-published, retired keys kept exactly as long as
//! their tokens live); token exchange only ever narrows; no private key material leaks.
#![cfg(feature = "aws-lc-rs")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use zt_core::issuer::{
    ExchangeError, ExchangeRequest, IssueError, IssuedToken, ManualClock, SigningAlgorithm, TokenIssuer,
    TokenIssuerConfig, TokenRequest,
};
use zt_core::policy::{IssuerConfig, Policy};
use zt_core::request::HeaderList;
use zt_core::{Decision, Guard, Identity, Reason, RequestView, RouteTable, scopes};

const ISS: &str = "https://service-a.test";

/// A Guard for `audience` that trusts exactly the keys in `jwks` (as published right now).
fn guard(jwks: &str, audience: &str) -> Guard {
    let mut routes = RouteTable::new();
    routes.add("GET", "/x", scopes::authenticated()).unwrap();
    Guard::new(
        Policy::builder()
            .issuer(IssuerConfig::new(ISS).audience(audience).required_typ("at+jwt").jwks(jwks))
            .build(),
    )
    .unwrap()
    .with_routes(&routes)
    .unwrap()
}

async fn verify(guard: &Guard, token: &str) -> Result<Identity, Reason> {
    verify_with(guard, token, None).await
}

/// Verifies over a connection that presented `certificate` (mutual TLS).
async fn verify_with(
    guard: &Guard,
    token: &str,
    certificate: Option<&zt_core::PeerCertificates>,
) -> Result<Identity, Reason> {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "GET",
        path: "/x",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: certificate,
        body: zt_core::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(a) => match a.identity().cloned() {
            Some(identity) => Ok(identity),
            None => Err(Reason::MissingCredentials),
        },
        Decision::Rejected(r) => Err(r.reason()),
    }
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn claims(token: &IssuedToken) -> Value {
    segment(token.access_token(), 1)
}

fn kids(jwks: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(jwks).unwrap();
    doc["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

fn config() -> TokenIssuerConfig {
    TokenIssuerConfig::new(ISS).audience("service-a").audience("service-b")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn minted_tokens_verify_through_a_guard_with_the_published_jwks() {
    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let issuer = TokenIssuer::new(config().algorithm(alg)).unwrap();
        let token = issuer
            .mint(
                &TokenRequest::new("worker-7", "service-b")
                    .scopes(["orders:read", "orders:list", "orders:read"])
                    .client_id("batch")
                    .claim("tenant", "acme"),
            )
            .unwrap();
        let header = segment(token.access_token(), 0);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], token.kid());
        let c = claims(&token);
        assert_eq!(c["iss"], ISS);
        assert_eq!(c["sub"], "worker-7");
        assert_eq!(c["aud"], "service-b", "one audience, as a string");
        assert_eq!(c["scope"], "orders:list orders:read");
        assert_eq!(c["client_id"], "batch");
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["iat"], c["nbf"]);
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300, "default lifetime 5 min");
        assert_eq!(URL_SAFE_NO_PAD.decode(c["jti"].as_str().unwrap()).unwrap().len(), 16, "128-bit jti");
        assert!(c.get("cnf").is_none() && c.get("act").is_none());

        let identity = verify(&guard(&issuer.jwks_json(), "service-b"), token.access_token()).await.unwrap();
        assert_eq!(identity.subject(), Some("worker-7"));
        assert_eq!(identity.scopes(), ["orders:list", "orders:read"]);
        assert_eq!(identity.client_id(), Some("batch"));
        // Audience-restricted: another service rejects it.
        assert_eq!(
            verify(&guard(&issuer.jwks_json(), "service-a"), token.access_token()).await.err(),
            Some(Reason::WrongAudience)
        );
        // Another issuer instance's keys do not verify it.
        let stranger = TokenIssuer::new(config().algorithm(alg)).unwrap();
        assert_eq!(
            verify(&guard(&stranger.jwks_json(), "service-b"), token.access_token()).await.err(),
            Some(Reason::UnknownKey)
        );
    }
}

#[test]
fn jwks_publishes_public_members_only_and_debug_shows_no_key_material() {
    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let issuer = TokenIssuer::new(config().algorithm(alg)).unwrap();
        let doc: Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "the current key and the pre-published next key");
        for key in keys {
            let mut members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
            members.sort();
            let expected: &[&str] = match alg {
                SigningAlgorithm::Es256 => &["alg", "crv", "kid", "kty", "use", "x", "y"],
                _ => &["alg", "crv", "kid", "kty", "use", "x"],
            };
            assert_eq!(members, expected, "no `d`, nothing private");
            assert_eq!(key["use"], "sig");
            assert_eq!(key["alg"], alg.as_str());
        }
        let debug = format!("{issuer:?}");
        assert!(debug.contains(&issuer.current_kid()));
        for needle in ["KeyPair", "private", "pkcs8", "\"d\"", "seed"] {
            assert!(!debug.to_lowercase().contains(&needle.to_lowercase()), "{needle} in {debug}");
        }
        let token = issuer.mint(&TokenRequest::new("a", "service-b")).unwrap();
        assert!(!format!("{token:?}").contains(token.access_token()), "the bearer token is redacted");
        assert!(!format!("{token:?}").contains(token.access_token().split('.').nth(2).unwrap()));
    }
}

#[test]
fn mint_refusals_and_lifetime_cap() {
    let issuer = TokenIssuer::new(config().max_lifetime(Duration::from_secs(600))).unwrap();
    let mint = |r: TokenRequest| issuer.mint(&r);
    assert_eq!(mint(TokenRequest::new("a", "service-z")).err(), Some(IssueError::AudienceNotAllowed));
    assert_eq!(mint(TokenRequest::new("", "service-b")).err(), Some(IssueError::InvalidSubject));
    assert_eq!(mint(TokenRequest::new("a", "service-b").scope("a b")).err(), Some(IssueError::InvalidScope));
    assert_eq!(
        mint(TokenRequest::new("a", "service-b").claim("aud", "service-z")).err(),
        Some(IssueError::ReservedClaim("aud".into()))
    );
    assert_eq!(
        mint(TokenRequest::new("a", "service-b").claim("exp", 1)).err(),
        Some(IssueError::ReservedClaim("exp".into()))
    );
    assert_eq!(
        mint(TokenRequest::new("a", "service-b").lifetime(Duration::ZERO)).err(),
        Some(IssueError::InvalidLifetime)
    );
    assert_eq!(
        mint(TokenRequest::new("a", "service-b").certificate_thumbprint("not-a-digest")).err(),
        Some(IssueError::InvalidThumbprint)
    );
    let long = mint(TokenRequest::new("a", "service-b").lifetime(Duration::from_secs(86_400))).unwrap();
    assert_eq!(long.expires_in(), 600, "capped at max_lifetime");
    let short = mint(TokenRequest::new("a", "service-b").lifetime(Duration::from_secs(30))).unwrap();
    assert_eq!(short.expires_in(), 30);
    assert!(short.scopes().is_empty() && claims(&short).get("scope").is_none());
}

/// A client certificate (DER) made for this test.
fn client_certificate() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["client.test".to_string()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn certificate_bound_tokens_carry_cnf() {
    let issuer = TokenIssuer::new(config()).unwrap();
    let der = client_certificate();
    let thumbprint = issuer.certificate_thumbprint(&der).unwrap();
    assert_eq!(thumbprint.len(), 43);
    let token =
        issuer.mint(&TokenRequest::new("a", "service-b").certificate_thumbprint(thumbprint.clone())).unwrap();
    assert_eq!(claims(&token)["cnf"]["x5t#S256"], thumbprint);
    let guard = guard(&issuer.jwks_json(), "service-b");
    let peer = zt_core::PeerCertificates::new(vec![der]);
    assert!(verify_with(&guard, token.access_token(), Some(&peer)).await.is_ok());
    // RFC 8705: without the certificate it is bound to, the token is not valid.
    assert_eq!(verify(&guard, token.access_token()).await.err(), Some(Reason::CertificateBindingMismatch));
}

/// Rotation, driven by a manual clock. The Guard checks `exp`/`iat` against the real clock,
/// so the manual clock starts `BACK` seconds in the past: the token minted at the start and
/// the one minted one rotation later are then both within their lifetimes for the real
/// clock (with minutes of margin; nothing here depends on how fast the test runs).
async fn rotation(alg: SigningAlgorithm) {
    const ROTATE: u64 = 300;
    const LIFETIME: u64 = 600;
    const LEEWAY: u64 = 60;
    const BACK: u64 = 300;
    let t0 = unix_now() - BACK;
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(t0));
    let issuer = TokenIssuer::with_clock(
        config()
            .algorithm(alg)
            .rotation_interval(Duration::from_secs(ROTATE))
            .default_lifetime(Duration::from_secs(LIFETIME))
            .max_lifetime(Duration::from_secs(LIFETIME))
            .leeway(Duration::from_secs(LEEWAY)),
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert_eq!(issuer.jwks_max_age(), Duration::from_secs(ROTATE / 2), "shorter than the rotation interval");

    let jwks_at_start = issuer.jwks_json();
    let [k1, k2] = <[String; 2]>::try_from(kids(&jwks_at_start)).unwrap();
    let old = issuer.mint(&TokenRequest::new("alice", "service-b").scope("x")).unwrap();
    assert_eq!(old.kid(), k1);

    // Not yet due: same key.
    clock.advance(Duration::from_secs(ROTATE - 1));
    assert_eq!(issuer.mint(&TokenRequest::new("alice", "service-b")).unwrap().kid(), k1);

    // Due: the pre-published next key signs; a new next key appears; the old key stays.
    clock.advance(Duration::from_secs(1));
    let new = issuer.mint(&TokenRequest::new("bob", "service-b").scope("x")).unwrap();
    assert_eq!(new.kid(), k2, "after rotation new tokens carry the new kid");
    let jwks_after = issuer.jwks_json();
    let after = kids(&jwks_after);
    assert_eq!(after.len(), 3);
    assert_eq!(after[0], k2);
    assert!(after.contains(&k1), "the old key stays published while its tokens live");
    let k3 = after[1].clone();
    assert!(k3 != k1 && k3 != k2);

    // Verifiers that fetched the set before the rotation already trust the new key ...
    assert_eq!(
        verify(&guard(&jwks_at_start, "service-b"), new.access_token()).await.unwrap().subject(),
        Some("bob")
    );
    // ... and verifiers with the current set still accept the old key's tokens.
    let current = guard(&jwks_after, "service-b");
    assert_eq!(verify(&current, old.access_token()).await.unwrap().subject(), Some("alice"));
    assert_eq!(verify(&current, new.access_token()).await.unwrap().subject(), Some("bob"));

    // The old key signed last at t0 + ROTATE; its last token expires LIFETIME later; LEEWAY
    // on top for verifiers' clocks. One second before that it is still published ...
    let retired_at = t0 + ROTATE;
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(retired_at + LIFETIME + LEEWAY - 1));
    assert!(kids(&issuer.jwks_json()).contains(&k1));
    // ... then it is gone, and a verifier with the new set no longer accepts its tokens.
    clock.advance(Duration::from_secs(1));
    let pruned = issuer.jwks_json();
    assert!(!kids(&pruned).contains(&k1), "the old key disappears once its tokens expired");
    assert_eq!(
        verify(&guard(&pruned, "service-b"), old.access_token()).await.err(),
        Some(Reason::UnknownKey)
    );
}

#[tokio::test]
async fn rotation_es256() {
    rotation(SigningAlgorithm::Es256).await;
}

#[tokio::test]
async fn rotation_eddsa() {
    rotation(SigningAlgorithm::EdDsa).await;
}

#[test]
fn the_key_set_stays_bounded_and_an_idle_issuer_rotates_one_step() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let issuer = TokenIssuer::with_clock(
        config().rotation_interval(Duration::from_secs(120)).max_lifetime(Duration::from_secs(600)),
        Arc::new(clock.clone()),
    )
    .unwrap();
    // retention 660 s / rotation 120 s: at most 6 retired + current + next.
    let mut max = 0;
    for _ in 0..200 {
        clock.advance(Duration::from_secs(37));
        issuer.mint(&TokenRequest::new("a", "service-b")).unwrap();
        max = max.max(kids(&issuer.jwks_json()).len());
    }
    assert!(max <= 8, "{max} keys published");

    // A long idle period: the next key (published all along) takes over, one step only.
    let next = kids(&issuer.jwks_json())[1].clone();
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(issuer.current_kid(), next);
    let published = kids(&issuer.jwks_json());
    assert_eq!(published.len(), 3, "current, next, and the just-retired key: {published:?}");
}

fn clock_secs(clock: &ManualClock) -> u64 {
    use zt_core::issuer::Clock;
    clock.now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn rotation_is_safe_under_concurrent_minting() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let issuer = TokenIssuer::with_clock(
        config().rotation_interval(Duration::from_secs(60)).max_lifetime(Duration::from_secs(300)),
        Arc::new(clock.clone()),
    )
    .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (issuer, clock) = (issuer.clone(), clock.clone());
            scope.spawn(move || {
                for _ in 0..200 {
                    let token = issuer.mint(&TokenRequest::new("a", "service-b")).unwrap();
                    let published = kids(&issuer.jwks_json());
                    // The key that signed it stays published while the token can be valid
                    // (lifetime 300 s + leeway 60 s from its issuance).
                    let age = clock_secs(&clock) - token.issued_at();
                    assert!(age >= 360 || published.iter().any(|k| k == token.kid()), "age {age}");
                }
            });
        }
        for _ in 0..100 {
            clock.advance(Duration::from_secs(7));
            std::thread::yield_now();
        }
    });
    assert!(kids(&issuer.jwks_json()).len() <= 2 + 6);
}

// --- exchange ---------------------------------------------------------------------------

/// A verified identity for service A: minted by `issuer` for "service-a", verified by a Guard.
async fn caller(issuer: &TokenIssuer, request: TokenRequest) -> Identity {
    let token = issuer.mint(&request).unwrap();
    verify(&guard(&issuer.jwks_json(), "service-a"), token.access_token()).await.unwrap()
}

#[tokio::test]
async fn exchange_narrows_scopes_names_the_actor_and_verifies_downstream() {
    let issuer = TokenIssuer::new(config()).unwrap();
    let alice = caller(
        &issuer,
        // Outlives the exchanged token (300 s) even across a second boundary: an exchanged
        // token never outlives its subject token, which would make `expires_in` 299.
        TokenRequest::new("alice", "service-a")
            .scopes(["orders:read", "orders:write"])
            .client_id("web-app")
            .lifetime(std::time::Duration::from_secs(600)),
    )
    .await;
    let token = issuer.exchange(&alice, &ExchangeRequest::new("service-b", ["orders:read"])).unwrap();
    assert_eq!(token.audience(), "service-b");
    assert_eq!(token.scopes(), ["orders:read"]);
    let c = claims(&token);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "web-app");
    assert_eq!(c["act"], serde_json::json!({"sub": "web-app"}));

    let downstream = verify(&guard(&issuer.jwks_json(), "service-b"), token.access_token()).await.unwrap();
    assert_eq!(downstream.scopes(), ["orders:read"], "only the requested scope");
    assert!(!downstream.has_scope("orders:write"));

    // Re-exchanging nests the previous actor (RFC 8693 s.4.1).
    let again = issuer.exchange(&downstream, &ExchangeRequest::new("service-a", ["orders:read"])).unwrap();
    assert_eq!(claims(&again)["act"], serde_json::json!({"sub": "web-app", "act": {"sub": "web-app"}}));

    let body: Value = serde_json::from_str(&token.to_exchange_response()).unwrap();
    assert_eq!(body["access_token"], token.access_token());
    assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "orders:read");
}

#[tokio::test]
async fn exchange_never_widens_and_only_mints_for_allowed_audiences() {
    let issuer = TokenIssuer::new(config()).unwrap();
    let alice = caller(&issuer, TokenRequest::new("alice", "service-a").scope("orders:read")).await;
    let ask = |audience: &str, scopes: &[&str]| {
        issuer.exchange(&alice, &ExchangeRequest::new(audience, scopes.iter().copied()))
    };
    assert_eq!(ask("service-b", &["orders:read", "orders:write"]).err(), Some(ExchangeError::ScopeNotHeld));
    assert_eq!(ask("service-b", &["orders:admin"]).err(), Some(ExchangeError::ScopeNotHeld));
    assert_eq!(ask("service-b", &[]).err(), Some(ExchangeError::ScopeRequired));
    assert_eq!(ask("service-b", &["a b"]).err(), Some(ExchangeError::MalformedScope));
    assert_eq!(ask("service-z", &["orders:read"]).err(), Some(ExchangeError::AudienceNotAllowed));
    assert_eq!(ask("", &["orders:read"]).err(), Some(ExchangeError::MissingAudience));
    assert_eq!(ExchangeError::ScopeNotHeld.code(), "invalid_scope");
    assert_eq!(ExchangeError::AudienceNotAllowed.code(), "invalid_target");
    assert!(ask("service-b", &["orders:read"]).is_ok());
}

#[tokio::test]
async fn exchange_caps_the_lifetime() {
    let clock = ManualClock::new(SystemTime::now());
    let issuer = TokenIssuer::with_clock(config(), Arc::new(clock.clone())).unwrap();
    let long_lived = caller(
        &issuer,
        TokenRequest::new("alice", "service-a").scope("s").lifetime(Duration::from_secs(900)),
    )
    .await;
    let ask = |who: &Identity, lifetime: Option<u64>| {
        let mut request = ExchangeRequest::new("service-b", ["s"]);
        request.lifetime = lifetime.map(Duration::from_secs);
        issuer.exchange(who, &request)
    };
    assert_eq!(ask(&long_lived, None).unwrap().expires_in(), 300, "the default");
    assert_eq!(ask(&long_lived, Some(60)).unwrap().expires_in(), 60, "shorter on request");
    assert_eq!(ask(&long_lived, Some(86_400)).unwrap().expires_in(), 900, "never beyond max_lifetime");
    assert_eq!(ask(&long_lived, Some(0)).err(), Some(ExchangeError::InvalidLifetime));

    // Never beyond the subject token's own expiry.
    let short_lived =
        caller(&issuer, TokenRequest::new("bob", "service-a").scope("s").lifetime(Duration::from_secs(120)))
            .await;
    assert_eq!(ask(&short_lived, None).unwrap().expires_in(), 120);
    clock.advance(Duration::from_secs(100));
    assert_eq!(ask(&short_lived, None).unwrap().expires_in(), 20);
    clock.advance(Duration::from_secs(20));
    assert_eq!(ask(&short_lived, None).err(), Some(ExchangeError::SubjectExpired));

    // Opting out of the subject cap still respects the issuer's maximum.
    let uncapped =
        TokenIssuer::with_clock(config().cap_to_subject_expiry(false), Arc::new(clock.clone())).unwrap();
    assert_eq!(
        uncapped.exchange(&short_lived, &ExchangeRequest::new("service-b", ["s"])).unwrap().expires_in(),
        300
    );
}

#[tokio::test]
async fn exchange_keeps_certificate_binding_and_needs_a_subject() {
    let issuer = TokenIssuer::new(config()).unwrap();
    let der = client_certificate();
    let thumbprint = issuer.certificate_thumbprint(&der).unwrap();
    let minted = issuer
        .mint(&TokenRequest::new("alice", "service-a").scope("s").certificate_thumbprint(thumbprint.clone()))
        .unwrap();
    let peer = zt_core::PeerCertificates::new(vec![der]);
    let bound = verify_with(&guard(&issuer.jwks_json(), "service-a"), minted.access_token(), Some(&peer))
        .await
        .unwrap();
    let token = issuer.exchange(&bound, &ExchangeRequest::new("service-b", ["s"])).unwrap();
    assert_eq!(claims(&token)["cnf"]["x5t#S256"], thumbprint, "a bound token stays bound");

    let no_client = caller(&issuer, TokenRequest::new("carol", "service-a").scope("s")).await;
    let token = issuer.exchange(&no_client, &ExchangeRequest::new("service-b", ["s"])).unwrap();
    assert!(claims(&token).get("act").is_none() && claims(&token).get("client_id").is_none());
}

#[tokio::test]
async fn the_http_answer_of_the_token_endpoint() {
    let issuer = TokenIssuer::new(config()).unwrap();
    let alice = caller(&issuer, TokenRequest::new("alice", "service-a").scopes(["a", "b"])).await;
    let form =
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&audience=service-b&scope=a";
    let ok = issuer.exchange_response(&alice, Some(b"application/x-www-form-urlencoded"), form);
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains(&("cache-control", "no-store".to_string())));
    let body: Value = serde_json::from_str(ok.body()).unwrap();
    assert_eq!(body["scope"], "a");

    let widen =
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&audience=service-b&scope=a+c";
    let refused = issuer.exchange_response(&alice, Some(b"application/x-www-form-urlencoded"), widen);
    assert_eq!(refused.status(), 400);
    assert_eq!(serde_json::from_str::<Value>(refused.body()).unwrap()["error"], "invalid_scope");

    let json = issuer.exchange_response(&alice, Some(b"application/json"), form);
    assert_eq!(serde_json::from_str::<Value>(json.body()).unwrap()["error"], "invalid_request");

    let jwks = issuer.jwks_response();
    assert_eq!(jwks.status(), 200);
    assert!(jwks.headers().contains(&("cache-control", "public, max-age=1800".to_string())));
}
