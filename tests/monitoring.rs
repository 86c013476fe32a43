//! Monitoring through both demo services: an id-enumeration attack is detected and the
//! attacker blocked (403 `urn:zt:problem:blocked`) while other callers carry on; the
//! runtime inventory is served to `zt:admin` only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use support::*;

fn guard() -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    demo_guard(policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enumeration_is_detected_and_blocked_in_both_adapters() {
    let servers = [("axum", spawn_axum(guard()).await), ("actix", spawn_actix(guard()))];
    for (name, addr) in servers {
        let mallory = format!("Bearer {}", token("mallory", "orders:read"));
        let alice = format!("Bearer {}", token("alice", "orders:read"));
        let mut blocked_at = None;
        for id in 1..=400u32 {
            let r = raw_request(
                addr,
                "GET",
                &format!("/orders/{id}"),
                &[("authorization", &mallory), ("user-agent", "Mozilla/5.0")],
                None,
            )
            .await;
            if r.status == 403 {
                assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:blocked"), "{name}: {r:?}");
                blocked_at = Some(id);
                break;
            }
            assert_eq!(r.status, 404, "{name}: an unknown order, until the block");
        }
        let at = blocked_at.unwrap_or_else(|| panic!("{name}: the enumeration was never blocked"));
        assert!(at <= 101, "{name}: blocked after {at} ids (hard limit 100 during warm-up)");
        // The block holds for the attacker, not for anyone else.
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &mallory)], None).await;
        assert_eq!(r.status, 403, "{name}");
        let r = raw_request(addr, "GET", "/orders", &[("authorization", &alice)], None).await;
        assert_eq!(r.status, 200, "{name}");
        // The inventory saw the traffic; only zt:admin may read it.
        let r = raw_request(addr, "GET", "/zt/inventory", &[("authorization", &alice)], None).await;
        assert_eq!(r.status, 403, "{name}");
        let admin = format!("Bearer {}", token("ops", "zt:admin"));
        let r = raw_request(addr, "GET", "/zt/inventory", &[("authorization", &admin)], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let inventory: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(r.body.contains("/orders/{id}"), "{name}: {inventory}");
    }
}
