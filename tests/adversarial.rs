//! Issue 14's findings that take a sequence of requests (a flood, a block then a request),
//! each run against BOTH demo services (axum and actix-web) over real HTTP on 127.0.0.1.
//! Single-request findings are in the shared table (`tests/support/cases.rs`).
//!
//! Requests that must come from a given client address bind their socket to it: every
//! address in 127.0.0.0/8 is loopback, so "a colleague behind the same NAT" and "the
//! address an operator blocked" are real TCP peers, without trusting any header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};
use support::*;
use zt::observe::ObserverConfig;

/// The demo policy with monitoring, detection and the runtime controls on (the library's
/// defaults), and no rate limits: what a test sees is the observer's doing alone.
fn observed_policy() -> zt::Policy {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(ObserverConfig::default());
    policy
}

/// Both demos, each with its own guard (and so its own observer) built by `policy`.
async fn demos(policy: impl Fn() -> zt::Policy) -> [(&'static str, SocketAddr); 2] {
    let axum = spawn_axum(demo_guard(policy())).await;
    let actix = spawn_actix(demo_guard(policy()));
    [("axum", axum), ("actix", actix)]
}

/// One HTTP/1.1 request sent from the client address `from` (a loopback address).
async fn request_from(
    from: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> RawResponse {
    let from: IpAddr = from.parse().expect("address");
    raw_request_from(Some(from), addr, method, path, headers, body).await
}

fn bearer(sub: &str, scope: &str) -> String {
    format!("Bearer {}", token(sub, scope))
}

/// `POST {path}` to the controls API as an admin (from 127.0.0.1).
async fn control(addr: SocketAddr, path: &str, body: &Value) -> RawResponse {
    let admin = bearer("root", "zt:admin");
    let headers = [("authorization", admin.as_str()), ("content-type", "application/json")];
    raw_request(addr, "POST", path, &headers, Some(body.to_string().as_bytes())).await
}

async fn health_from(from: &str, addr: SocketAddr) -> u16 {
    request_from(from, addr, "GET", "/health", &[], None).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_8_blocks_written_in_another_spelling_match_the_canonical_address() {
    for (name, addr) in demos(observed_policy).await {
        // An IPv4-mapped IPv6 spelling blocks the IPv4 address the client really has.
        let block = json!({"kind": "address", "value": "::ffff:127.0.0.7", "seconds": 600});
        let r = control(addr, "/zt/controls/blocks", &block).await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        let created: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(created["target"], "address:127.0.0.7", "{name}: stored as clients are keyed");
        let r = request_from("127.0.0.7", addr, "GET", "/health", &[], None).await;
        assert_eq!((r.status, r.problem_type().as_deref()), (403, Some("urn:zt:problem:blocked")), "{name}");
        assert_eq!(health_from("127.0.0.8", addr).await, 200, "{name}: only that address");
        // Lifted in yet another spelling of it.
        let target = json!({"kind": "address", "value": "0:0:0:0:0:ffff:7f00:7"});
        assert_eq!(control(addr, "/zt/controls/unblock", &target).await.status, 204, "{name}");
        assert_eq!(health_from("127.0.0.7", addr).await, 200, "{name}: unblocked");

        // A network given as a mapped CIDR is that IPv4 network; host bits are cleared.
        for (value, canonical, inside, outside) in [
            ("::ffff:127.9.0.0/112", "network:127.9.0.0/16", "127.9.200.1", "127.10.0.1"),
            ("127.11.22.33/16", "network:127.11.0.0/16", "127.11.0.9", "127.12.0.9"),
        ] {
            let block = json!({"kind": "network", "value": value, "seconds": 600});
            let r = control(addr, "/zt/controls/blocks", &block).await;
            assert_eq!(r.status, 201, "{name} {value}: {r:?}");
            let created: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(created["target"], canonical, "{name} {value}");
            assert_eq!(health_from(inside, addr).await, 403, "{name} {value}: {inside} is in it");
            assert_eq!(health_from(outside, addr).await, 200, "{name} {value}: {outside} is not");
        }
        let target = json!({"kind": "network", "value": "127.9.0.0/16"});
        assert_eq!(control(addr, "/zt/controls/unblock", &target).await.status, 204, "{name}");
        assert_eq!(health_from("127.9.200.1", addr).await, 200, "{name}");
        // A bare address still stands for the configured network around it (/24).
        let block = json!({"kind": "network", "value": "::ffff:127.13.0.200", "seconds": 600});
        let r = control(addr, "/zt/controls/blocks", &block).await;
        assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["target"], "network:127.13.0.0/24");
        assert_eq!(health_from("127.13.0.1", addr).await, 403, "{name}");
        assert_eq!(health_from("127.13.1.1", addr).await, 200, "{name}");
        // The operator's own address was never caught.
        assert_eq!(raw_request(addr, "GET", "/health", &[], None).await.status, 200, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_5_anonymous_401_floods_never_block_a_colleague_behind_the_same_address() {
    let admin = bearer("root", "zt:admin");
    for (name, addr) in demos(observed_policy).await {
        // 105 anonymous reads of distinct orders from one address (a NAT): all refused.
        for n in 1..=105 {
            let r = request_from("127.0.5.5", addr, "GET", &format!("/orders/{n}"), &[], None).await;
            assert_eq!(r.status, 401, "{name}: request {n}: {r:?}");
        }
        // A colleague behind the same address with a valid token keeps working.
        let colleague = bearer("carol", "orders:read");
        let headers = [("authorization", colleague.as_str())];
        let r = request_from("127.0.5.5", addr, "GET", "/orders/1", &headers, None).await;
        assert_eq!(r.status, 404, "{name}: no such order, not blocked: {r:?}");
        let r = request_from("127.0.5.5", addr, "GET", "/orders", &headers, None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let listed = raw_request(addr, "GET", "/zt/controls", &[("authorization", &admin)], None).await;
        let listed: Value = serde_json::from_str(&listed.body).unwrap();
        assert_eq!(listed["blocks"], json!([]), "{name}: nothing was blocked");

        // A verified caller walking the id space still is enumeration, blocked (the hard
        // limit before warm-up is 100 distinct ids in a window; a window may end midway).
        let mallory = bearer("mallory", "orders:read");
        let headers = [("authorization", mallory.as_str())];
        let mut blocked_at = None;
        for n in 1..=300 {
            let r = request_from("127.0.5.6", addr, "GET", &format!("/orders/{n}"), &headers, None).await;
            if r.status == 403 {
                assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:blocked"), "{name}");
                blocked_at = Some(n);
                break;
            }
            assert_eq!(r.status, 404, "{name}: {r:?}");
        }
        assert!(blocked_at.is_some(), "{name}: an authenticated enumeration is still blocked");
        // ... and only the enumerating principal is: not the address it came from.
        let r =
            request_from("127.0.5.6", addr, "GET", "/orders", &[("authorization", &colleague)], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
    }
}

/// The demo policy with one zone for every route: authentication at most an hour old.
fn zoned_policy() -> zt::Policy {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.zones.push(zt::zones::ZoneConfig {
        name: "default".into(),
        max_token_age: Some(std::time::Duration::from_secs(3600)),
        ..Default::default()
    });
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_9_max_token_age_reads_auth_time_whatever_its_numeric_form() {
    let es = key(jsonwebtoken::Algorithm::ES256);
    let now = now() as f64;
    let with_auth_time = |auth_time: Value| {
        let mut c = claims("alice", "orders:read");
        c["auth_time"] = auth_time;
        format!("Bearer {}", sign(es, &c))
    };
    for (name, addr) in demos(zoned_policy).await {
        // A login six hours ago fails a one-hour rule, however the NumericDate is written
        // (the token itself was issued a moment ago: `iat` must not stand in for it).
        for old in [json!(now as i64 - 6 * 3600), json!(now - 6.0 * 3600.0 + 0.5), json!(1.7e9)] {
            let r =
                raw_request(addr, "GET", "/orders", &[("authorization", &with_auth_time(old.clone()))], None)
                    .await;
            assert_eq!(r.status, 401, "{name} auth_time {old}: {r:?}");
            assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:authentication-too-old"), "{name}");
        }
        // A recent login passes, integral or not.
        for recent in [json!(now as i64 - 60), json!(now - 60.25)] {
            let r = raw_request(
                addr,
                "GET",
                "/orders",
                &[("authorization", &with_auth_time(recent.clone()))],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{name} auth_time {recent}: {r:?}");
        }
        // Without `auth_time`, `iat` stands for the authentication.
        let r =
            raw_request(addr, "GET", "/orders", &[("authorization", &bearer("alice", "orders:read"))], None)
                .await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_7_integral_floats_never_reach_the_controls_as_non_integers() {
    let admin = bearer("root", "zt:admin");
    let exp = now() + 600;
    for (name, addr) in demos(observed_policy).await {
        // The demo's contract is in front of the controls: an `integer` written as a float
        // is refused there (400, the member named), never a 500 and never half-applied.
        for (path, body, member) in [
            (
                "/zt/controls/blocks",
                json!({"kind": "subject", "value": "mallory", "seconds": 60.0}),
                "/body/seconds",
            ),
            (
                "/zt/controls/blocks",
                json!({"kind": "subject", "value": "mallory", "seconds": 6e1}),
                "/body/seconds",
            ),
            ("/zt/controls/revocations", json!({"jti": "j-1", "expires_at": 1.7e9}), "/body/expires_at"),
            ("/zt/controls/revocations", json!({"jti": 4711.0, "expires_at": exp}), "/body/jti"),
        ] {
            let r = control(addr, path, &body).await;
            assert_eq!(r.status, 400, "{name} {body}: {r:?}");
            assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:invalid-body"), "{name} {body}");
            assert!(r.body.contains(member), "{name} {body}: names {member}: {}", r.body);
        }
        let listed = raw_request(addr, "GET", "/zt/controls", &[("authorization", &admin)], None).await;
        let listed: Value = serde_json::from_str(&listed.body).unwrap();
        assert_eq!(
            (listed["blocks"].clone(), listed["revocations"].clone()),
            (json!([]), json!(0)),
            "{name}"
        );
        // Integers are taken.
        let body = json!({"kind": "subject", "value": "mallory", "seconds": 60});
        assert_eq!(control(addr, "/zt/controls/blocks", &body).await.status, 201, "{name}");
        let body = json!({"jti": 4711, "expires_at": exp});
        assert_eq!(control(addr, "/zt/controls/revocations", &body).await.status, 201, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adv14_13_rest_withholds_note_from_callers_without_the_admin_scope_as_graphql_does() {
    let writer = bearer("alice", "orders:read orders:write");
    let admin = bearer("alice", "orders:read orders:admin");
    for (name, addr) in demos(observed_policy).await {
        let r = post_json(
            addr,
            "/orders",
            &writer,
            br#"{"item":"lamp","quantity":1,"note":"ship to the back door"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        let created: Value = serde_json::from_str(&r.body).unwrap();
        assert!(created.get("note").is_none(), "{name}: the creation's answer withholds it too: {created}");
        assert_eq!(created["item"], "lamp", "{name}: the rest is kept");
        let id = created["id"].as_u64().unwrap();
        let path = format!("/orders/{id}");
        // Same order, same owner: only the caller's scopes differ.
        let r = raw_request(addr, "GET", &path, &[("authorization", &writer)], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert!(!r.body.contains("back door"), "{name}: GET /orders/{{id}} leaks note: {}", r.body);
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &writer)], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert!(!r.body.contains("back door"), "{name}: GET /orders leaks note: {}", r.body);
        let listed: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(listed[0]["item"], "lamp", "{name}: {listed}");
        // The admin scope sees it, on REST as on GraphQL (`internalNote`).
        let r = raw_request(addr, "GET", &path, &[("authorization", &admin)], None).await;
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap()["note"],
            "ship to the back door",
            "{name}"
        );
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &admin)], None).await;
        assert!(r.body.contains("back door"), "{name}: {}", r.body);
        let query = json!({"query": format!("{{ order(id: \"{id}\") {{ item internalNote }} }}")});
        let r = post_json(addr, "/graphql", &writer, query.to_string().as_bytes()).await;
        assert!(!r.body.contains("back door"), "{name}: GraphQL agrees: {}", r.body);
    }
}
