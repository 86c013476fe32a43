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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_controls_over_http_block_unblock_and_revoke_in_both_adapters() {
    let servers = [("axum", spawn_axum(guard()).await), ("actix", spawn_actix(guard()))];
    for (name, addr) in servers {
        let admin = format!("Bearer {}", token("root", "zt:admin"));
        let alice = format!("Bearer {}", token("alice", "orders:read"));
        let post = |path: &'static str, who: String, body: serde_json::Value| async move {
            let body = body.to_string();
            post_json(addr, path, &who, body.as_bytes()).await
        };
        let get = |path: &'static str, who: String| async move {
            raw_request(addr, "GET", path, &[("authorization", &who)], None).await
        };
        assert_eq!(get("/orders", alice.clone()).await.status, 200, "{name}");

        // Only zt:admin may use the controls.
        let block =
            serde_json::json!({"kind": "subject", "value": "alice", "seconds": 600, "reason": "incident 42"});
        let r = post("/zt/controls/blocks", alice.clone(), block.clone()).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:insufficient-scope"), "{name}: {r:?}");
        // The contract checks the body: an unknown kind or an hour count out of range is a 400.
        let bad = serde_json::json!({"kind": "tenant", "value": "x", "seconds": 600});
        assert_eq!(post("/zt/controls/blocks", admin.clone(), bad).await.status, 400, "{name}");
        let bad = serde_json::json!({"kind": "address", "value": "not-an-ip", "seconds": 600});
        assert_eq!(post("/zt/controls/blocks", admin.clone(), bad).await.status, 400, "{name}");

        let r = post("/zt/controls/blocks", admin.clone(), block).await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        let created: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (created["target"].as_str(), created["automatic"].as_bool()),
            (Some("subject:alice"), Some(false))
        );
        let r = get("/orders", alice.clone()).await;
        assert_eq!((r.status, r.problem_type().as_deref()), (403, Some("urn:zt:problem:blocked")), "{name}");
        let listed: serde_json::Value =
            serde_json::from_str(&get("/zt/controls", admin.clone()).await.body).unwrap();
        assert!(
            listed["blocks"].as_array().unwrap().iter().any(|b| b["target"] == "subject:alice"),
            "{listed}"
        );

        let target = serde_json::json!({"kind": "subject", "value": "alice"});
        assert_eq!(post("/zt/controls/unblock", admin.clone(), target.clone()).await.status, 204, "{name}");
        assert_eq!(post("/zt/controls/unblock", admin.clone(), target).await.status, 404, "{name}");
        assert_eq!(get("/orders", alice.clone()).await.status, 200, "{name}: unblocked");

        // Revoking a token by jti: it is refused from then on; another token of alice is not.
        let mut claims = claims("alice", "orders:read");
        claims["jti"] = serde_json::json!(format!("jti-{name}"));
        let exp = claims["exp"].as_u64().unwrap();
        let revoked = format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &claims));
        assert_eq!(get("/orders", revoked.clone()).await.status, 200, "{name}");
        let revocation = serde_json::json!({"jti": format!("jti-{name}"), "expires_at": exp});
        assert_eq!(post("/zt/controls/revocations", admin.clone(), revocation).await.status, 201, "{name}");
        let r = get("/orders", revoked).await;
        assert_eq!(
            (r.status, r.problem_type().as_deref()),
            (401, Some("urn:zt:problem:token-revoked")),
            "{name}"
        );
        assert_eq!(get("/orders", alice).await.status, 200, "{name}");
    }
}
