//! Properties over generated input: canonicalization is idempotent and agrees with what the
//! router sees, and both adapters decide every generated request identically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::sync::OnceLock;

use proptest::prelude::*;
use support::*;
use zt::canonical::{PathPolicy, canonicalize};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    })
}

fn servers() -> (SocketAddr, SocketAddr) {
    static ADDRS: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *ADDRS.get_or_init(|| {
        let guard = demo_guard(policy_with_jwks(trusted_jwks()));
        let axum = runtime().block_on(spawn_axum(guard.clone()));
        (axum, spawn_actix(guard))
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("orders".to_string()),
        Just("health".to_string()),
        Just("42".to_string()),
        Just("".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("%25".to_string()),
        Just("%41".to_string()),
        Just("%c0%ae".to_string()),
        Just("a;b".to_string()),
        Just("ORDERS".to_string()),
        "[a-z0-9]{1,6}",
        "[%a-fA-F0-9]{1,6}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 0..4), any::<bool>()).prop_map(|(segs, trailing)| {
        let mut p = format!("/{}", segs.join("/"));
        if trailing && !p.ends_with('/') {
            p.push('/');
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn canonicalization_is_idempotent(p in path(), normalize in any::<bool>(), strip in any::<bool>()) {
        let policy = PathPolicy { normalize, strip_trailing_slash: strip };
        if let Ok(once) = canonicalize(&p, &policy) {
            let twice = canonicalize(&once, &policy).expect("a canonical path stays canonical");
            prop_assert_eq!(once.as_ref(), twice.as_ref());
            // What is accepted contains no ambiguous form any later decoder could split.
            prop_assert!(!once.contains("//") && !once.contains("/./") && !once.contains("/../"));
            prop_assert!(!once.to_ascii_lowercase().contains("%2f") && !once.to_ascii_lowercase().contains("%2e"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn both_adapters_decide_generated_requests_identically(
        p in path(),
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT")],
        auth in 0usize..5,
    ) {
        let (axum, actix) = servers();
        let header = match auth {
            0 => None,
            1 => Some(format!("Bearer {}", token("alice", "orders:read"))),
            2 => Some(format!("Bearer {}", token("root", "orders:read orders:write orders:admin"))),
            3 => Some("Bearer not.a.jwt".to_string()),
            _ => Some("Basic YTpi".to_string()),
        };
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", h.as_str())).collect();
        let (a, b) = runtime().block_on(async {
            (raw_request(axum, method, &p, &headers, None).await, raw_request(actix, method, &p, &headers, None).await)
        });
        // The guard answers both identically; where it forwards, the demo handlers agree too.
        prop_assert_eq!(a.status, b.status, "{} {}", method, p);
        prop_assert_eq!(a.problem_type(), b.problem_type(), "{} {}", method, p);
        prop_assert_eq!(a.header("www-authenticate"), b.header("www-authenticate"));
        // Nothing non-canonical is ever forwarded: a 2xx means the path was canonical.
        if (200..300).contains(&a.status) {
            prop_assert!(canonicalize(&p, &PathPolicy::default()).is_ok(), "forwarded non-canonical {}", p);
        }
    }
}

/// An axum app whose every handler answers with the route axum matched and the route the
/// Guard checked.
fn echo_app() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        use axum::extract::MatchedPath;
        use zt::axum::routing::{delete, get};
        async fn echo(matched: MatchedPath, checked: axum::Extension<zt::Admission>) -> String {
            format!("{}|{}", matched.as_str(), checked.0.route().unwrap_or(""))
        }
        let guard = zt::Guard::new(policy_with_jwks(trusted_jwks())).unwrap();
        let mut router = zt::axum::Router::new(guard);
        for template in [
            "/orders",
            "/orders/{id}",
            "/orders/{id}/items",
            "/orders/{id}/items/{item}",
            "/health",
            "/{tenant}/orders",
        ] {
            router = router.route(template, get(echo), zt::scopes::public());
        }
        router = router.route("/orders/{id}", delete(echo), zt::scopes::public());
        let app = router.into_axum();
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_router_runs_the_route_the_guard_checked(p in path(), method in prop_oneof![Just("GET"), Just("DELETE")]) {
        let addr = echo_app();
        let r = runtime().block_on(raw_request(addr, method, &p, &[], None));
        if r.status == 200 {
            let (matched, checked) = r.body.split_once('|').expect("echo body");
            prop_assert_eq!(matched, checked, "{} {}", method, p);
        } else {
            // Anything not forwarded was refused by the guard itself (problem body).
            prop_assert!(r.problem_type().is_some(), "{} {} -> {} without a zt problem", method, p, r.status);
        }
    }
}
