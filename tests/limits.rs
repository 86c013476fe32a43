//! Abuse protection over real HTTP against both demo services: per-identity quotas with
//! 429 + Retry-After + RateLimit headers, isolation between identities, the trusted-proxy
//! rule for X-Forwarded-For, brute-force lockout and its expiry, and (with a real
//! redis-server) one global quota shared by two guards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use zt::limit::LimitConfig;

fn guard(limits: &str) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.limits = Some(LimitConfig::from_toml_str(limits).unwrap());
    demo_guard(policy)
}

async fn servers(limits: &str) -> [(&'static str, SocketAddr); 2] {
    // Separate guards: each adapter gets its own (in-memory) quotas.
    [("axum", spawn_axum(guard(limits)).await), ("actix", spawn_actix(guard(limits)))]
}

async fn get(addr: SocketAddr, token: &str, extra: &[(&str, &str)]) -> RawResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    raw_request(addr, "GET", "/orders", &headers, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exhaustion_answers_429_with_headers_and_spares_other_identities() {
    let limits = "identity = { rate = \"3/m\", burst = 3 }\naddress = \"off\"\nheaders_on_success = true\n";
    for (name, addr) in servers(limits).await {
        let alice = token("alice", "orders:read");
        for i in 0..3 {
            let r = get(addr, &alice, &[]).await;
            assert_eq!(r.status, 200, "{name} call {i}");
            assert!(r.header("ratelimit").is_some_and(|v| v.contains("\"default\"")), "{name}: {r:?}");
            assert!(r.header("ratelimit-policy").is_some_and(|v| v.contains("q=3")), "{name}: {r:?}");
        }
        let r = get(addr, &alice, &[]).await;
        assert_eq!(r.status, 429, "{name}");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:rate-limited"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1, "{name}: Retry-After is never 0");
        assert!(r.header("ratelimit").is_some_and(|v| v.contains("r=0")), "{name}: {r:?}");
        // Another identity has its own quota.
        assert_eq!(get(addr, &token("bob", "orders:read"), &[]).await.status, 200, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_only_honoured_from_trusted_proxies() {
    // Anonymous calls (no token) on a public route are keyed by client address.
    let untrusted = "identity = \"off\"\naddress = { rate = \"2/m\", burst = 2 }\n";
    for (name, addr) in servers(untrusted).await {
        for i in 0..2 {
            let spoof = format!("10.0.0.{i}");
            let r = raw_request(addr, "GET", "/health", &[("x-forwarded-for", &spoof)], None).await;
            assert_eq!(r.status, 200, "{name}");
        }
        // A client cannot pick a fresh key with a header: the peer (127.0.0.1) is the key.
        let r = raw_request(addr, "GET", "/health", &[("x-forwarded-for", "10.9.9.9")], None).await;
        assert_eq!(r.status, 429, "{name}: spoofed XFF ignored");
    }
    let trusted =
        "identity = \"off\"\naddress = { rate = \"2/m\", burst = 2 }\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    for (name, addr) in servers(trusted).await {
        for _ in 0..2 {
            let r = raw_request(addr, "GET", "/health", &[("x-forwarded-for", "203.0.113.7")], None).await;
            assert_eq!(r.status, 200, "{name}");
        }
        let r = raw_request(addr, "GET", "/health", &[("x-forwarded-for", "203.0.113.7")], None).await;
        assert_eq!(r.status, 429, "{name}: that client's quota is spent");
        // A different client behind the same trusted proxy has its own quota; the walk goes
        // right to left, so a client-supplied left-most entry does not matter.
        let r =
            raw_request(addr, "GET", "/health", &[("x-forwarded-for", "203.0.113.7, 198.51.100.20")], None)
                .await;
        assert_eq!(r.status, 200, "{name}: the right-most untrusted hop is the client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_tokens_lock_the_address_out_until_it_expires() {
    let limits = "identity = \"off\"\naddress = \"off\"\n[lockout]\nthreshold = 3\nwindow = \"1m\"\nbase = \"1s\"\nmax = \"4s\"\n";
    for (name, addr) in servers(limits).await {
        // Expired tokens are not guesses (their signature verified): they never count, so a
        // client whose token lapsed is not locked out while its refresh lands.
        let mut expired = claims("mallory", "orders:read");
        expired["exp"] = serde_json::json!(now() - 3600);
        let expired = sign(key(jsonwebtoken::Algorithm::ES256), &expired);
        for _ in 0..6 {
            assert_eq!(get(addr, &expired, &[]).await.status, 401, "{name}");
        }
        assert_eq!(
            get(addr, &token("alice", "orders:read"), &[]).await.status,
            200,
            "{name}: expiry is no attack"
        );
        // Tokens for another audience are failures that count.
        let mut foreign = claims("mallory", "orders:read");
        foreign["aud"] = serde_json::json!("another-relying-party");
        let bad = sign(key(jsonwebtoken::Algorithm::ES256), &foreign);
        for _ in 0..3 {
            assert_eq!(get(addr, &bad, &[]).await.status, 401, "{name}");
        }
        // Locked out: even a valid token from this address waits.
        let r = get(addr, &token("alice", "orders:read"), &[]).await;
        assert_eq!(r.status, 429, "{name}");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:locked-out"));
        assert!(r.header("retry-after").is_some());
        // The lockout expires on its own.
        let mut passed = false;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if get(addr, &token("alice", "orders:read"), &[]).await.status == 200 {
                passed = true;
                break;
            }
        }
        assert!(passed, "{name}: lockout expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_1_replayed_bad_tokens_never_lock_out_the_subject_they_name() {
    // An attacker holding validly signed tokens that name a victim (expired ones, ID tokens
    // for another audience) replays them from many addresses: the victim's own valid token
    // keeps working. The failures count against the presenting addresses.
    let limits = "identity = \"off\"\naddress = \"off\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n[lockout]\nthreshold = 3\nwindow = \"1m\"\nbase = \"30s\"\nmax = \"1m\"\n";
    for (name, addr) in servers(limits).await {
        let mut expired = claims("victim", "orders:read");
        expired["exp"] = serde_json::json!(now() - 3600);
        let mut foreign = claims("victim", "orders:read");
        foreign["aud"] = serde_json::json!("another-relying-party");
        for (i, bad) in
            [expired, foreign].iter().map(|c| sign(key(jsonwebtoken::Algorithm::ES256), c)).enumerate()
        {
            for j in 1..=5 {
                let from = format!("198.51.{i}.{j}");
                assert_eq!(get(addr, &bad, &[("x-forwarded-for", &from)]).await.status, 401, "{name}");
            }
        }
        let r = get(addr, &token("victim", "orders:read"), &[("x-forwarded-for", "198.51.100.9")]).await;
        assert_eq!(r.status, 200, "{name}: the victim is not locked out: {r:?}");
        // The attacker's own address is: three failures from one address (expired tokens
        // never count, see above; tokens for another audience do).
        let mut foreign = claims("victim", "orders:read");
        foreign["aud"] = serde_json::json!("another-relying-party");
        let bad = sign(key(jsonwebtoken::Algorithm::ES256), &foreign);
        for _ in 0..3 {
            get(addr, &bad, &[("x-forwarded-for", "203.0.113.66")]).await;
        }
        let r = get(addr, &token("alice", "orders:read"), &[("x-forwarded-for", "203.0.113.66")]).await;
        assert_eq!(r.status, 429, "{name}: the guessing address is locked out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_the_application_reports_lock_out_that_principal_in_both() {
    let limits = "identity = \"off\"\naddress = \"off\"\n[lockout]\nthreshold = 3\nwindow = \"1m\"\nbase = \"30s\"\nmax = \"1m\"\n";
    let (a, b) = (guard(limits), guard(limits));
    let servers = [("axum", a.clone(), spawn_axum(a).await), ("actix", b.clone(), spawn_actix(b))];
    for (name, guard, addr) in servers {
        let principal = format!("{ISSUER}|sub:mallory");
        assert_eq!(guard.report_authentication_failure(&principal), None, "{name}");
        assert_eq!(guard.report_authentication_failure(&principal), None, "{name}");
        assert!(guard.report_authentication_failure(&principal).is_some(), "{name}: third failure locks");
        let r = get(addr, &token("mallory", "orders:read"), &[]).await;
        assert_eq!(r.status, 429, "{name}: the principal is locked out");
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:locked-out"), "{name}");
        // Another caller from the same address is not.
        assert_eq!(get(addr, &token("alice", "orders:read"), &[]).await.status, 200, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_logs_would_be_429s_but_forwards() {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.mode = zt::Mode::Report;
    policy.limits = Some(LimitConfig::from_toml_str("identity = { rate = \"1/m\", burst = 1 }\n").unwrap());
    let addr = spawn_axum(demo_guard(policy)).await;
    let t = token("alice", "orders:read");
    for _ in 0..4 {
        assert_eq!(get(addr, &t, &[]).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_guards_sharing_redis_enforce_one_global_quota() {
    let Some(redis) = RedisServer::start() else {
        // CI installs redis-server (.ci/run); a developer machine may not have it.
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let limits = format!(
        "identity = {{ rate = \"4/m\", burst = 4 }}\naddress = \"off\"\n[store.redis]\nurl = \"redis://127.0.0.1:{}/\"\nfail_mode = \"fail_closed\"\n",
        redis.port
    );
    // Two replicas, one axum and one actix, one Redis.
    let a = spawn_axum(guard(&limits)).await;
    let b = spawn_actix(guard(&limits));
    let t = token("carol", "orders:read");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let addr = if i % 2 == 0 { a } else { b };
        statuses.push(get(addr, &t, &[]).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "{statuses:?}: one quota across replicas");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    // Redis goes away: fail_closed answers 503, never an unchecked 200.
    drop(redis);
    let r = get(a, &token("dave", "orders:read"), &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:limiter-unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_admit_anonymous_and_first_token_requests() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    // Default limits (identity and per-address quotas), only the store shared.
    let limits = format!("[store.redis]\nurl = \"redis://127.0.0.1:{}/\"\n", redis.port);
    let replicas =
        [spawn_axum(guard(&limits)).await, spawn_actix(guard(&limits)), spawn_axum(guard(&limits)).await];
    for (i, addr) in replicas.into_iter().enumerate() {
        // A store that waits (Redis) must never turn into a 503 on a replica's first calls.
        let r = raw_request(addr, "GET", "/health", &[], None).await;
        assert_eq!(r.status, 200, "replica {i}: anonymous /health: {r:?}");
        let r = get(addr, &token(&format!("newcomer-{i}"), "orders:read"), &[]).await;
        assert_eq!(r.status, 200, "replica {i}: first request of a new token: {r:?}");
        let r = get(addr, &token("shared-caller", "orders:read"), &[]).await;
        assert_eq!(r.status, 200, "replica {i}: a token every replica sees: {r:?}");
    }
}

/// The `q` (quota) of a response's `RateLimit-Policy`, e.g. 1000 in `"default";q=1000;w=10`.
fn quota(r: &RawResponse) -> Option<u32> {
    r.header("ratelimit-policy")?
        .split(';')
        .find_map(|p| p.trim().strip_prefix("q="))
        .and_then(|q| q.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_throttle_shrinks_the_callers_quota_and_no_one_elses() {
    // Detection tuned so that a burst of a few requests is an anomaly: a short window, a
    // short warm-up, and a request-rate rule (default action: throttle) that fires at 10
    // requests in a window, or more than the caller's own baseline.
    let window = Duration::from_secs(2);
    let detection = zt::observe::DetectionConfig {
        window,
        warmup_requests: 2,
        rate_min: 10,
        rate_factor: 1.0,
        ..Default::default()
    };
    assert_eq!(zt::observe::Rule::RequestRate.default_action(), zt::observe::Action::Throttle);
    let limits =
        "identity = { rate = \"6000/m\", burst = 1000 }\naddress = \"off\"\nheaders_on_success = true\n";
    let guard = || {
        let mut policy = policy_with_jwks(trusted_jwks());
        policy.limits = Some(LimitConfig::from_toml_str(limits).unwrap());
        policy.observe =
            Some(zt::observe::ObserverConfig { detection: detection.clone(), ..Default::default() });
        demo_guard(policy)
    };
    let servers = [("axum", spawn_axum(guard()).await), ("actix", spawn_actix(guard()))];
    let (alice, bob) = (token("alice", "orders:read"), token("bob", "orders:read"));
    // Warm-up: a few requests form the callers' first window (their baseline).
    for (name, addr) in servers {
        for caller in [&alice, &bob] {
            for _ in 0..3 {
                let r = get(addr, caller, &[]).await;
                assert_eq!((r.status, quota(&r)), (200, Some(1000)), "{name}: {r:?}");
            }
        }
    }
    // The window is wall-clock time (the Guard's observer reads the system clock): let the
    // first one end, so that the callers are scored against their baselines.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    for (name, addr) in servers {
        // Alice bursts until the observer throttles her (bounded: the rule needs 10).
        let mut throttled = None;
        for i in 0..1000 {
            let r = get(addr, &alice, &[]).await;
            assert_eq!(r.status, 200, "{name} request {i}: {r:?}");
            match quota(&r) {
                Some(1000) => continue,
                q => {
                    throttled = Some((i, q));
                    break;
                }
            }
        }
        // A tenth of the quota (throttle_factor 0.1): each request costs ten.
        let (after, q) = throttled.unwrap_or_else(|| panic!("{name}: the throttle never fired"));
        assert_eq!(q, Some(100), "{name}: after {after} requests");
        assert!(after >= 10, "{name}: only the burst (10 in the window) tightens, not {after} requests");
        let r = get(addr, &alice, &[]).await;
        assert_eq!(quota(&r), Some(100), "{name}: the throttle lasts: {r:?}");
        // Bob, from the same address, keeps his whole quota.
        let r = get(addr, &bob, &[]).await;
        assert_eq!(
            (r.status, quota(&r)),
            (200, Some(1000)),
            "{name}: another caller is not throttled: {r:?}"
        );
    }
}
