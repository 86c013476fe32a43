//! Blocks and revocations across replicas (issue 15, Controls): three demo replicas (two
//! axum, one actix) on one real redis-server on 127.0.0.1. A block and a revocation written
//! through the controls API on one replica are enforced by the others (the figures are
//! printed); a replica started later enforces them from its first request; with Redis
//! killed a write answers 503 and every replica keeps enforcing its copy, and detection
//! still blocks locally; with Redis restarted empty the replicas write their copies back,
//! so the others and a new replica enforce what was decided during the outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use zt::fleet::FleetConfig;

fn fleet(url: String) -> FleetConfig {
    let mut config = FleetConfig::new(url);
    config.prefix = "ctl".to_string();
    config.sync_interval = Duration::from_millis(200);
    config.replica_ttl = Duration::from_secs(2);
    config.timeout = Duration::from_millis(500);
    // Detection is on in the demo: its fleet-wide counters need the fleet secret.
    config.secret = Some(zt::fleet::FleetSecret::new("fleet-controls-test-secret-0123"));
    config
}

/// A demo replica's Guard on the shared store, its shared controls loaded.
async fn replica(url: &str) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(zt::observe::ObserverConfig::default());
    policy.fleet = Some(fleet(url.to_string()));
    let guard = demo_guard(policy);
    let problems = guard.warm_up().await;
    assert!(problems.is_empty(), "warm-up: {problems:?}");
    guard
}

async fn get(addr: SocketAddr, path: &str, authorization: &str) -> RawResponse {
    raw_request(addr, "GET", path, &[("authorization", authorization), ("user-agent", "Mozilla/5.0")], None)
        .await
}

/// Polls (bounded) until `addr` answers `path` for `who` with `status`; how long it took.
/// A liveness bound, not a timing assertion: the figure is printed.
async fn until_status(addr: SocketAddr, path: &str, who: &str, status: u16) -> Option<Duration> {
    let started = Instant::now();
    for _ in 0..1000 {
        if get(addr, path, who).await.status == status {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn bearer(sub: &str, scope: &str) -> String {
    format!("Bearer {}", token(sub, scope))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_revocations_hold_on_every_replica_through_outages_and_restarts() {
    let Some(mut redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let url = redis.url();
    // Replica 1's and 2's controls kept for the Shared Signals revocations (sessions).
    let (guard_1, guard_2) = (replica(&url).await, replica(&url).await);
    let replicas = [
        ("axum 1", spawn_axum(guard_1.clone()).await),
        ("axum 2", spawn_axum(guard_2.clone()).await),
        ("actix 3", spawn_actix(replica(&url).await)),
    ];
    let [(_, first), (_, second), (_, third)] = replicas;
    let admin = bearer("root", "zt:admin");
    let alice = bearer("alice", "orders:read");
    let mallory = bearer("mallory", "orders:read");
    for (name, addr) in replicas {
        assert_eq!(get(addr, "/orders", &mallory).await.status, 200, "{name}: nothing blocked yet");
    }

    // A block through the controls API of replica 1: enforced by 2 and 3.
    let block =
        serde_json::json!({"kind": "subject", "value": "mallory", "seconds": 600, "reason": "incident 7"});
    let r = post_json(first, "/zt/controls/blocks", &admin, block.to_string().as_bytes()).await;
    assert_eq!(r.status, 201, "{r:?}");
    for (name, addr) in &replicas[1..] {
        let took = until_status(*addr, "/orders", &mallory, 403).await;
        let took = took.unwrap_or_else(|| panic!("{name}: the block made on replica 1 was never enforced"));
        eprintln!("block written on axum 1 enforced on {name} after {} ms", took.as_millis());
        let r = get(*addr, "/orders", &mallory).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:blocked"), "{name}");
        assert_eq!(get(*addr, "/orders", &alice).await.status, 200, "{name}: others carry on");
    }

    // A revocation on replica 1: the token is refused by 2 and 3.
    let mut revoked_claims = claims("alice", "orders:read");
    revoked_claims["jti"] = serde_json::json!("jti-fleet-1");
    let exp = revoked_claims["exp"].as_u64().unwrap();
    let revoked = format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &revoked_claims));
    for (name, addr) in replicas {
        assert_eq!(get(addr, "/orders", &revoked).await.status, 200, "{name}: not revoked yet");
    }
    let revocation = serde_json::json!({"jti": "jti-fleet-1", "expires_at": exp});
    let r = post_json(first, "/zt/controls/revocations", &admin, revocation.to_string().as_bytes()).await;
    assert_eq!(r.status, 201, "{r:?}");
    for (name, addr) in &replicas[1..] {
        let took = until_status(*addr, "/orders", &revoked, 401).await;
        let took =
            took.unwrap_or_else(|| panic!("{name}: the revocation made on replica 1 was never enforced"));
        eprintln!("revocation written on axum 1 enforced on {name} after {} ms", took.as_millis());
        let r = get(*addr, "/orders", &revoked).await;
        assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:token-revoked"), "{name}");
    }

    // A session revocation (what a CAEP session-revoked event becomes) on replica 1: every
    // replica refuses the session's tokens, the others' sessions carry on.
    let session_token = |sid: &str| {
        let mut c = claims("alice", "orders:read");
        c["sid"] = serde_json::json!(sid);
        format!("Bearer {}", sign(key(jsonwebtoken::Algorithm::ES256), &c))
    };
    let (session_1, session_2) = (session_token("sess-1"), session_token("sess-2"));
    let hour = std::time::SystemTime::now() + Duration::from_secs(3600);
    guard_1.observer().expect("observe on").controls().revoke_session("sess-1", hour).unwrap();
    for (name, addr) in replicas {
        let took = until_status(addr, "/orders", &session_1, 401).await;
        assert!(took.is_some(), "{name}: the session revoked on replica 1 was never refused");
        assert_eq!(get(addr, "/orders", &session_2).await.status, 200, "{name}: another session");
    }

    // An unblock on replica 3 (actix) lifts a block everywhere.
    let eve = bearer("eve", "orders:read");
    let block = serde_json::json!({"kind": "subject", "value": "eve", "seconds": 600});
    assert_eq!(
        post_json(second, "/zt/controls/blocks", &admin, block.to_string().as_bytes()).await.status,
        201
    );
    assert!(until_status(first, "/orders", &eve, 403).await.is_some(), "eve blocked on replica 1");
    let target = serde_json::json!({"kind": "subject", "value": "eve"});
    let r = post_json(third, "/zt/controls/unblock", &admin, target.to_string().as_bytes()).await;
    assert_eq!(r.status, 204, "{r:?}");
    for (name, addr) in &replicas[..2] {
        let took = until_status(*addr, "/orders", &eve, 200).await;
        let took = took.unwrap_or_else(|| panic!("{name}: the unblock made on replica 3 was never applied"));
        eprintln!("unblock written on actix 3 applied on {name} after {} ms", took.as_millis());
    }

    // A replica started now enforces both from its first request (warm-up loaded them).
    let late = spawn_axum(replica(&url).await).await;
    let r = get(late, "/orders", &mallory).await;
    assert_eq!(
        (r.status, r.problem_type().as_deref()),
        (403, Some("urn:zt:problem:blocked")),
        "a new replica"
    );
    let r = get(late, "/orders", &revoked).await;
    assert_eq!((r.status, r.problem_type().as_deref()), (401, Some("urn:zt:problem:token-revoked")));
    assert_eq!(get(late, "/orders", &session_1).await.status, 401, "a new replica: the revoked session");
    assert_eq!(get(late, "/orders", &alice).await.status, 200);

    // Redis killed: a write answers 503 (nothing changed anywhere), the copies hold.
    redis.kill();
    let block = serde_json::json!({"kind": "subject", "value": "oscar", "seconds": 600});
    let r = post_json(first, "/zt/controls/blocks", &admin, block.to_string().as_bytes()).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:controls-unavailable"), "{r:?}");
    assert!(!r.body.contains("127.0.0.1") && !r.body.contains("ctl:"), "no address or key: {}", r.body);
    let oscar = bearer("oscar", "orders:read");
    assert_eq!(get(first, "/orders", &oscar).await.status, 200, "the refused block is not in force");
    let revocation = serde_json::json!({"jti": "jti-fleet-2", "expires_at": exp});
    let r = post_json(second, "/zt/controls/revocations", &admin, revocation.to_string().as_bytes()).await;
    assert_eq!(r.status, 503, "{r:?}");
    for (name, addr) in replicas {
        assert_eq!(get(addr, "/orders", &mallory).await.status, 403, "{name}: the last copy holds");
        assert_eq!(get(addr, "/orders", &revoked).await.status, 401, "{name}: the last copy holds");
        assert_eq!(get(addr, "/orders", &alice).await.status, 200, "{name}");
    }
    // A session revoked on replica 2 while the store is down: in force there at once,
    // written when the store is back.
    guard_2.observer().expect("observe on").controls().revoke_session("sess-2", hour).unwrap();
    assert_eq!(get(second, "/orders", &session_2).await.status, 401, "in force on replica 2 at once");
    // Detection still blocks, on the replica that saw the walk, at once.
    let trudy = bearer("trudy", "orders:read");
    let mut blocked_at = None;
    for id in 1..=400u32 {
        let r = get(second, &format!("/orders/{id}"), &trudy).await;
        if r.status == 403 {
            blocked_at = Some(id);
            break;
        }
        assert_eq!(r.status, 404, "an unknown order, until the block: {r:?}");
    }
    let at = blocked_at.expect("the enumeration during the outage was never blocked");
    eprintln!("enumeration on axum 2 during the outage blocked after {at} ids");
    assert_eq!(get(second, "/orders", &trudy).await.status, 403);

    // Redis back, empty: the replicas write their copies back; what replica 2 decided during
    // the outage reaches the others, and nothing decided before is lost.
    assert!(redis.restart(), "redis restarted");
    let restarted = Instant::now();
    for (name, addr) in [replicas[0], replicas[2]] {
        let took = until_status(addr, "/orders", &trudy, 403).await;
        let took = took.unwrap_or_else(|| panic!("{name}: the outage's automatic block never arrived"));
        eprintln!(
            "automatic block made during the outage enforced on {name} {} ms after the restart",
            took.as_millis()
        );
    }
    eprintln!("copies re-seeded into the emptied store within {} ms", restarted.elapsed().as_millis());
    let fresh = spawn_axum(replica(&url).await).await;
    for (name, addr) in [replicas[0], replicas[2]] {
        let took = until_status(addr, "/orders", &session_2, 401).await;
        assert!(took.is_some(), "{name}: the session revoked during the outage never arrived");
    }
    for (what, who, status) in [
        ("block", &mallory, 403),
        ("revocation", &revoked, 401),
        ("automatic block", &trudy, 403),
        ("session revoked before the outage", &session_1, 401),
        ("session revoked during the outage", &session_2, 401),
    ] {
        assert_eq!(
            get(fresh, "/orders", who).await.status,
            status,
            "a replica started after the restart: {what}"
        );
    }
    assert_eq!(get(fresh, "/orders", &alice).await.status, 200);
    // Writes work again.
    let r = post_json(
        first,
        "/zt/controls/blocks",
        &admin,
        serde_json::json!({"kind": "subject", "value": "oscar", "seconds": 60}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(until_status(third, "/orders", &oscar, 403).await.is_some(), "enforced on actix 3");
}

/// The store's side: a change whose push was lost (written straight into the store, as a
/// script would, without the PUBLISH) reaches every replica at its next resync; a
/// revocation's key ends at the token's `exp` plus the leeway; expired entries are swept
/// by the next write, so the keys do not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_pushes_are_caught_by_the_resync_and_the_store_stays_bounded() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let url = redis.url();
    let replicas =
        [("axum", spawn_axum(replica(&url).await).await), ("actix", spawn_actix(replica(&url).await))];
    let store = zt::fleet::Fleet::new(&fleet(url.clone())).unwrap();
    let key = |name: &str| store.key(&format!("{{ctl}}:{name}"));
    let admin = bearer("root", "zt:admin");
    let victor = bearer("victor", "orders:read");

    let now_ms = u64::try_from(now()).unwrap() * 1000;
    let record = serde_json::json!({"reason": "lost push", "automatic": false, "created_ms": now_ms, "until_ms": now_ms + 600_000});
    let mut write = redis::pipe();
    write
        .cmd("HSET")
        .arg(key("blocks"))
        .arg("subject:victor")
        .arg(record.to_string())
        .ignore()
        .cmd("ZADD")
        .arg(key("blocks:exp"))
        .arg(now_ms + 600_000)
        .arg("subject:victor")
        .ignore()
        .cmd("INCR")
        .arg(key("ver"))
        .ignore();
    store.pipeline::<()>(&write).await.expect("written");
    for (name, addr) in replicas {
        let took = until_status(addr, "/orders", &victor, 403).await;
        let took = took.unwrap_or_else(|| panic!("{name}: a change without its push was never loaded"));
        eprintln!(
            "change without a push loaded by {name} after {} ms (sync_interval 200 ms)",
            took.as_millis()
        );
    }

    // The revocation's end in the store: exp plus the 60 s default leeway.
    let mut revoked_claims = claims("alice", "orders:read");
    revoked_claims["jti"] = serde_json::json!("jti-bounded");
    let exp = revoked_claims["exp"].as_u64().unwrap();
    let revocation = serde_json::json!({"jti": "jti-bounded", "expires_at": exp});
    let (_, first) = replicas[0];
    assert_eq!(
        post_json(first, "/zt/controls/revocations", &admin, revocation.to_string().as_bytes()).await.status,
        201
    );
    let mut score = redis::cmd("ZSCORE");
    score.arg(key("rev:exp")).arg("jti-bounded");
    let ends: f64 = store.query(&score).await.unwrap();
    assert_eq!(ends as u64, (exp + 60) * 1000, "ends at exp + leeway");

    // A one-second block lapses; the next write sweeps it out of both keys.
    let short = serde_json::json!({"kind": "client", "value": "short-lived", "seconds": 1});
    assert_eq!(
        post_json(first, "/zt/controls/blocks", &admin, short.to_string().as_bytes()).await.status,
        201
    );
    let mut count = redis::cmd("HLEN");
    count.arg(key("blocks"));
    assert_eq!(store.query::<u64>(&count).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = serde_json::json!({"kind": "client", "value": "other", "seconds": 600});
    assert_eq!(
        post_json(first, "/zt/controls/blocks", &admin, other.to_string().as_bytes()).await.status,
        201
    );
    assert_eq!(store.query::<u64>(&count).await.unwrap(), 2, "the lapsed block was swept");
    let mut zcount = redis::cmd("ZCARD");
    zcount.arg(key("blocks:exp"));
    assert_eq!(store.query::<u64>(&zcount).await.unwrap(), 2);
    let mut field = redis::cmd("HEXISTS");
    field.arg(key("blocks")).arg("client:short-lived");
    assert_eq!(store.query::<u64>(&field).await.unwrap(), 0);
}
