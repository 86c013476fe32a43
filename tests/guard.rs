//! The Guard through its framework-neutral API: claim rules, token sources, key
//! configuration, the verified-token cache, and start-up errors that name the entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::*;
use zt::policy::{IssuerConfig, Policy, TokenConfig};
use zt::request::HeaderList;
use zt::{Decision, Guard, PolicyError, Reason, RequestView, scopes};

fn with_route(issuer: IssuerConfig) -> Policy {
    Policy::builder().issuer(issuer).route("GET", "/orders", scopes::all(["orders:read"])).build()
}

fn trusted() -> IssuerConfig {
    IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(trusted_jwks())
}

async fn decide(guard: &Guard, headers: &HeaderList, query: Option<&str>) -> Result<Option<String>, Reason> {
    let view = RequestView {
        method: "GET",
        path: "/orders",
        query,
        headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(a) => Ok(a.identity().and_then(|i| i.subject().map(str::to_string))),
        Decision::Rejected(r) => Err(r.reason()),
    }
}

async fn decide_token(guard: &Guard, token: &str) -> Result<Option<String>, Reason> {
    decide(guard, &HeaderList::default().with("authorization", format!("Bearer {token}")), None).await
}

fn es(c: &serde_json::Value) -> String {
    sign(key(Algorithm::ES256), c)
}

#[tokio::test]
async fn max_token_age_typ_and_required_claims() {
    let g = Guard::new(with_route(
        trusted().max_token_age(Duration::from_secs(300)).required_typ("at+jwt").required_claim("tenant"),
    ))
    .unwrap();
    let key = key(Algorithm::ES256);
    let typed =
        |c: &serde_json::Value| sign_raw(key, &json!({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}), c);
    let mut ok = claims("alice", "orders:read");
    ok["tenant"] = json!("t1");
    assert_eq!(decide_token(&g, &typed(&ok)).await, Ok(Some("alice".into())));
    // `application/at+jwt` is the same media type.
    let t = sign_raw(key, &json!({"alg": "ES256", "kid": key.kid, "typ": "application/at+jwt"}), &ok);
    assert!(decide_token(&g, &t).await.is_ok());
    // Wrong or missing typ.
    assert_eq!(decide_token(&g, &es(&ok)).await, Err(Reason::InvalidClaims));
    let t = sign_raw(key, &json!({"alg": "ES256", "kid": key.kid, "typ": "JWT"}), &ok);
    assert_eq!(decide_token(&g, &t).await, Err(Reason::InvalidClaims));
    // Missing required claim.
    assert_eq!(decide_token(&g, &typed(&claims("alice", "orders:read"))).await, Err(Reason::InvalidClaims));
    // Too old (iat an hour ago, still unexpired).
    let mut old = ok.clone();
    old["iat"] = json!(now() - 3600);
    assert_eq!(decide_token(&g, &typed(&old)).await, Err(Reason::InvalidClaims));
    // No iat at all when an age limit is set.
    let mut no_iat = ok.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(decide_token(&g, &typed(&no_iat)).await, Err(Reason::InvalidClaims));
}

#[tokio::test]
async fn leeway_applies_to_exp_and_nbf() {
    let g = Guard::new(with_route(trusted().leeway(Duration::from_secs(120)))).unwrap();
    let mut c = claims("alice", "orders:read");
    c["exp"] = json!(now() - 60);
    assert!(decide_token(&g, &es(&c)).await.is_ok(), "within leeway");
    c["exp"] = json!(now() - 180);
    assert_eq!(decide_token(&g, &es(&c)).await, Err(Reason::TokenExpired));
    let mut c = claims("alice", "orders:read");
    c["nbf"] = json!(now() + 60);
    assert!(decide_token(&g, &es(&c)).await.is_ok());
    c["nbf"] = json!(now() + 600);
    assert_eq!(decide_token(&g, &es(&c)).await, Err(Reason::TokenNotYetValid));
    // Non-numeric dates are invalid, not ignored.
    let mut c = claims("alice", "orders:read");
    c["exp"] = json!("tomorrow");
    assert_eq!(decide_token(&g, &es(&c)).await, Err(Reason::InvalidClaims));
}

#[tokio::test]
async fn cached_tokens_expire_with_the_token() {
    let g = Guard::new(with_route(trusted().leeway(Duration::ZERO))).unwrap();
    let mut c = claims("alice", "orders:read");
    c["exp"] = json!(now() + 2);
    let t = es(&c);
    assert!(decide_token(&g, &t).await.is_ok());
    assert_eq!(g.cached_tokens(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(decide_token(&g, &t).await, Err(Reason::TokenExpired));
    assert_eq!(g.cached_tokens(), 0, "the expired entry is dropped");
}

#[tokio::test]
async fn scopes_are_evaluated_on_every_call_not_cached() {
    // One token, two routes with different requirements: the cached claims never carry a
    // decision from one route to the other.
    let policy = Policy::builder()
        .issuer(trusted())
        .route("GET", "/orders", scopes::all(["orders:read"]))
        .route("DELETE", "/orders/{id}", scopes::all(["orders:admin"]))
        .build();
    let g = Guard::new(policy).unwrap();
    let t = token("alice", "orders:read");
    let headers = HeaderList::default().with("authorization", format!("Bearer {t}"));
    assert!(decide(&g, &headers, None).await.is_ok());
    let view = RequestView {
        method: "DELETE",
        path: "/orders/1",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    match g.decide(&view).await {
        Decision::Rejected(r) => {
            assert_eq!(r.reason(), Reason::InsufficientScope);
            assert_eq!(r.denial().required_scopes, ["orders:admin"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cache_is_bounded_and_can_be_turned_off() {
    let tokens = TokenConfig { cache_capacity: 50, ..Default::default() };
    let g = Guard::new(
        Policy::builder()
            .issuer(trusted())
            .tokens(tokens)
            .route("GET", "/orders", scopes::authenticated())
            .build(),
    )
    .unwrap();
    for i in 0..300 {
        assert!(decide_token(&g, &token(&format!("u{i}"), "")).await.is_ok());
    }
    assert!(g.cached_tokens() <= 50, "{} cached", g.cached_tokens());
    let off = TokenConfig { cache: false, ..Default::default() };
    let g = Guard::new(
        Policy::builder()
            .issuer(trusted())
            .tokens(off)
            .route("GET", "/orders", scopes::authenticated())
            .build(),
    )
    .unwrap();
    assert!(decide_token(&g, &token("a", "")).await.is_ok());
    assert_eq!(g.cached_tokens(), 0);
}

#[tokio::test]
async fn cookie_header_and_query_sources_are_opt_in() {
    let t = token("alice", "orders:read");
    let cookie_cfg = TokenConfig {
        cookie: Some("at".into()),
        header: Some("x-access-token".into()),
        ..Default::default()
    };
    let g = Guard::new(
        Policy::builder()
            .issuer(trusted())
            .tokens(cookie_cfg)
            .route("GET", "/orders", scopes::all(["orders:read"]))
            .build(),
    )
    .unwrap();
    assert!(
        decide(&g, &HeaderList::default().with("cookie", format!("theme=dark; at={t}")), None).await.is_ok()
    );
    assert!(decide(&g, &HeaderList::default().with("x-access-token", &t), None).await.is_ok());
    // Two credentials are never "first one wins".
    let both =
        HeaderList::default().with("cookie", format!("at={t}")).with("authorization", format!("Bearer {t}"));
    assert_eq!(decide(&g, &both, None).await, Err(Reason::MalformedCredentials));
    // Query tokens are ignored unless enabled.
    let default = Guard::new(with_route(trusted())).unwrap();
    let q = format!("access_token={t}");
    assert_eq!(decide(&default, &HeaderList::default(), Some(&q)).await, Err(Reason::MissingCredentials));
    assert_eq!(
        decide(&default, &HeaderList::default().with("cookie", format!("at={t}")), None).await,
        Err(Reason::MissingCredentials)
    );
    let query_cfg = TokenConfig { dangerous_allow_query_token: true, ..Default::default() };
    let g = Guard::new(
        Policy::builder()
            .issuer(trusted())
            .tokens(query_cfg)
            .route("GET", "/orders", scopes::all(["orders:read"]))
            .build(),
    )
    .unwrap();
    assert!(decide(&g, &HeaderList::default(), Some(&q)).await.is_ok());
}

#[tokio::test]
async fn hmac_only_with_an_explicit_secret_and_pem_keys_are_pinned() {
    let secret = "0123456789abcdef0123456789abcdef-long-enough";
    let g = Guard::new(with_route(IssuerConfig::new(ISSUER).audience(AUDIENCE).hmac_secret(
        "HS256",
        secret,
        Some("h1"),
    )))
    .unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("h1".into());
    let t = jsonwebtoken::encode(
        &h,
        &claims("svc", "orders:read"),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(decide_token(&g, &t).await, Ok(Some("svc".into())));
    // HS384 with the same secret: not the pinned algorithm.
    let mut h = Header::new(Algorithm::HS384);
    h.kid = Some("h1".into());
    let t = jsonwebtoken::encode(
        &h,
        &claims("svc", "orders:read"),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(decide_token(&g, &t).await, Err(Reason::AlgorithmNotAllowed));

    // A PEM public key, pinned to ES256.
    let pem =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ec256.pub.pem")).unwrap();
    let g = Guard::new(with_route(IssuerConfig::new(ISSUER).audience(AUDIENCE).pem_key("ES256", &pem, None)))
        .unwrap();
    let es = key(Algorithm::ES256);
    // Without a kid, the only key pinned to the token's algorithm is used.
    let no_kid =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("p", "orders:read"), &es.encoding)
            .unwrap();
    assert_eq!(decide_token(&g, &no_kid).await, Ok(Some("p".into())));
    // The same key cannot be used as ES384 or EdDSA.
    let as_eddsa = sign_raw(es, &serde_json::json!({"alg": "EdDSA"}), &claims("p", "orders:read"));
    assert_eq!(decide_token(&g, &as_eddsa).await, Err(Reason::UnknownKey));
    let truncated = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE";
    assert!(
        Guard::new(with_route(
            IssuerConfig::new(ISSUER).audience(AUDIENCE).pem_key("ES256", truncated, None)
        ))
        .is_err()
    );
    // The PEM's key type must fit the pinned algorithm.
    assert!(
        Guard::new(with_route(IssuerConfig::new(ISSUER).audience(AUDIENCE).pem_key("RS256", &pem, None)))
            .is_err()
    );
}

#[tokio::test]
async fn algorithm_allow_list_narrows_keys() {
    let mut issuer = trusted();
    issuer.algorithms = vec!["EdDSA".into()];
    let g = Guard::new(with_route(issuer)).unwrap();
    assert!(decide_token(&g, &sign(key(Algorithm::EdDSA), &claims("a", "orders:read"))).await.is_ok());
    assert_eq!(decide_token(&g, &token("a", "orders:read")).await, Err(Reason::AlgorithmNotAllowed));
}

#[tokio::test]
async fn multiple_issuers_keep_their_own_keys() {
    let other_iss = "https://other.test";
    let policy = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(jwks(&[key(Algorithm::ES256)])))
        .issuer(IssuerConfig::new(other_iss).audience(AUDIENCE).jwks(jwks(&[key(Algorithm::EdDSA)])))
        .route("GET", "/orders", scopes::all(["orders:read"]))
        .build();
    let g = Guard::new(policy).unwrap();
    let mut c = claims("o", "orders:read");
    c["iss"] = json!(other_iss);
    assert!(decide_token(&g, &sign(key(Algorithm::EdDSA), &c)).await.is_ok());
    // The other issuer's token signed with the first issuer's key: that key does not serve it.
    assert_eq!(decide_token(&g, &sign(key(Algorithm::ES256), &c)).await, Err(Reason::UnknownKey));
}

fn invalid_at(err: PolicyError) -> String {
    match err {
        PolicyError::Invalid { at, .. } => at,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn bad_policies_fail_at_startup_naming_the_entry() {
    let no_aud = Policy::builder().issuer(IssuerConfig::new(ISSUER).jwks(trusted_jwks())).build();
    assert_eq!(invalid_at(Guard::new(no_aud).err().unwrap()), "issuers[0].audiences");
    let http = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience("a").jwks_url("http://keys.example/jwks"))
        .build();
    assert_eq!(invalid_at(Guard::new(http).err().unwrap()), "issuers[0].jwks_url");
    let two = Policy::builder().issuer(trusted().jwks_url("https://x/jwks")).build();
    assert_eq!(invalid_at(Guard::new(two).err().unwrap()), "issuers[0]");
    let none = Policy::builder().issuer(IssuerConfig::new(ISSUER).audience("a")).build();
    assert_eq!(invalid_at(Guard::new(none).err().unwrap()), "issuers[0]");
    let dup = Policy::builder().issuer(trusted()).issuer(trusted()).build();
    assert_eq!(invalid_at(Guard::new(dup).err().unwrap()), "issuers[1].issuer");
    let short = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience("a").hmac_secret("HS256", "short", None))
        .build();
    assert_eq!(invalid_at(Guard::new(short).err().unwrap()), "issuers[0].hmac_secrets[0]");
    let bad_alg =
        Policy::builder().issuer(IssuerConfig::new(ISSUER).audience("a").pem_key("none", "x", None)).build();
    assert_eq!(invalid_at(Guard::new(bad_alg).err().unwrap()), "issuers[0].pem_keys[0].algorithm");
    let bad_jwks =
        Policy::builder().issuer(IssuerConfig::new(ISSUER).audience("a").jwks("{\"keys\":[]}")).build();
    assert_eq!(invalid_at(Guard::new(bad_jwks).err().unwrap()), "issuers[0].jwks");
    let mut bad_route = Policy::builder().issuer(trusted()).build();
    bad_route.routes.push(zt::policy::RouteConfig {
        zone: None,
        method: "GET".into(),
        path: "/x".into(),
        public: false,
        scopes: None,
    });
    assert_eq!(invalid_at(Guard::new(bad_route).err().unwrap()), "routes[0]");
    let missing_file = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience("a").jwks_file("/nonexistent/jwks.json"))
        .build();
    let err = Guard::new(missing_file).err().unwrap();
    assert!(err.to_string().contains("issuers[0].jwks_file"), "{err}");
    // Errors never carry key material or secrets.
    let secret_err = Guard::new(
        Policy::builder()
            .issuer(IssuerConfig::new(ISSUER).audience("a").hmac_secret("HS256", "tiny-secret", None))
            .build(),
    )
    .err()
    .unwrap();
    assert!(!secret_err.to_string().contains("tiny-secret"));
}

#[test]
fn policy_files_toml_and_yaml() {
    let dir = std::env::temp_dir().join(format!("zt-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("zt.toml");
    std::fs::write(
        &toml_path,
        format!(
            "realm = \"orders\"\n[[issuers]]\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\njwks = '''{}'''\n\n[[routes]]\nmethod = \"GET\"\npath = \"/orders\"\nscopes = [[\"orders:read\"]]\n",
            trusted_jwks()
        ),
    )
    .unwrap();
    let g = Guard::from_policy_file(&toml_path).unwrap();
    assert_eq!(g.realm(), "orders");
    let yaml_path = dir.join("zt.yaml");
    std::fs::write(
        &yaml_path,
        "mode: report\nissuers:\n  - issuer: https://i\n    audiences: [a]\n    jwks_url: https://i/jwks\n",
    )
    .unwrap();
    assert_eq!(Guard::from_policy_file(&yaml_path).unwrap().mode(), zt::Mode::Report);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "realm = \"x\"\n\n[[issuers]]\nissuer = \"i\"\naudience = [\"typo\"]\n").unwrap();
    let err = Guard::from_policy_file(&bad).err().unwrap();
    match &err {
        PolicyError::Parse { file, line, .. } => {
            assert!(file.as_deref().unwrap().ends_with("bad.toml"));
            assert_eq!(*line, Some(5));
        }
        other => panic!("{other:?}"),
    }
    // Semantic errors name the file, the key path and the line.
    let semantic = dir.join("semantic.toml");
    std::fs::write(&semantic, "realm = \"x\"\n\n[[issuers]]\nissuer = \"i\"\naudiences = [\"a\"]\njwks_url = \"http://keys.invalid/jwks\"\n").unwrap();
    match Guard::from_policy_file(&semantic).err().unwrap() {
        PolicyError::Invalid { file, line, at, .. } => {
            assert!(file.unwrap().ends_with("semantic.toml"));
            assert_eq!(at, "issuers[0].jwks_url");
            assert_eq!(line, Some(6));
        }
        other => panic!("{other:?}"),
    }
    let semantic_yaml = dir.join("semantic.yaml");
    std::fs::write(
        &semantic_yaml,
        "realm: x\nissuers:\n  - issuer: i\n    audiences: [a]\n    jwks_url: http://keys.invalid/jwks\n",
    )
    .unwrap();
    match Guard::from_policy_file(&semantic_yaml).err().unwrap() {
        PolicyError::Invalid { line, at, .. } => {
            assert_eq!(at, "issuers[0].jwks_url");
            assert_eq!(line, Some(5));
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}
