//! Detection on fleet-wide figures (issue 15, "Detection"): replicas of the demo (axum and
//! actix) share one real redis-server. An id-enumeration walk spread round-robin over three
//! replicas is stopped near the single-replica threshold, a request rate that no replica
//! sees alone is detected, and Redis never holds the caller's name in clear.
//!
//! The fleet secret comes from the environment (`fleet.secret_env`), which a test cannot
//! set in its own process without `unsafe` (forbidden here): each test runs itself again
//! in a child process with the variable set, and passes when the child does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;
use zt::observe::{ObserverConfig, Rule};

const SECRET_ENV: &str = "ZT_TEST_FLEET_DETECTION_SECRET";
const SECRET: &str = "fleet-detection-test-secret-0123456789";

/// True in the child (run the test body); in the parent, runs `test` in a child process
/// with the secret set, prints its output and asserts that it ran and passed.
fn in_child_with_secret(test: &str) -> bool {
    if std::env::var_os(SECRET_ENV).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SECRET_ENV, SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test} failed in its child process");
    assert!(stdout.contains("1 passed"), "{test} did not run in its child process");
    false
}

fn observer_config(tune: impl FnOnce(&mut zt::observe::DetectionConfig)) -> ObserverConfig {
    let mut config = ObserverConfig::default();
    tune(&mut config.detection);
    config
}

fn fleet_policy(redis: &RedisServer, prefix: &str, observe: &ObserverConfig) -> zt::Policy {
    let mut fleet = zt::fleet::FleetConfig::new(redis.url());
    fleet.prefix = prefix.to_string();
    fleet.secret_env = Some(SECRET_ENV.to_string());
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(observe.clone());
    policy.fleet = Some(fleet);
    policy
}

fn unique(name: &str) -> String {
    format!("{name}-{}-{:x}", std::process::id(), rand::random::<u32>())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Waits for the start of the next epoch-aligned window of `window` when less than `room`
/// of the current one is left, so that a walk is not split across two windows (the fleet's
/// windows are aligned on the epoch). Positioning only: nothing is asserted on time.
async fn room_in_window(window: Duration, room: Duration) {
    let (len, room) = (window.as_millis() as u64, room.as_millis() as u64);
    let left = len - now_ms() % len;
    if left < room {
        tokio::time::sleep(Duration::from_millis(left + 50)).await;
    }
}

/// Waits for the start of the next aligned window.
async fn next_window(window: Duration) {
    let len = window.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(len - now_ms() % len + 50)).await;
}

async fn get(addr: SocketAddr, authorization: &str, path: &str) -> RawResponse {
    raw_request(addr, "GET", path, &[("authorization", authorization), ("user-agent", "Mozilla/5.0")], None)
        .await
}

/// What an enumeration walk over `replicas` (round-robin, one id each) got.
#[derive(Debug)]
struct Walk {
    /// Ids answered (404: the object does not exist) before every replica refused.
    answered: u32,
    /// The first id refused (403 blocked), by any replica.
    first_refused: u32,
    /// Per replica, the first id it refused.
    refused_at: Vec<u32>,
}

async fn walk(replicas: &[SocketAddr], authorization: &str) -> Walk {
    let mut answered = 0;
    let mut refused_at: Vec<Option<u32>> = vec![None; replicas.len()];
    let mut first_refused = None;
    for id in 1..=600u32 {
        let at = (id as usize - 1) % replicas.len();
        let r = get(replicas[at], authorization, &format!("/orders/{id}")).await;
        match r.status {
            404 => answered += 1,
            403 => {
                assert_eq!(r.problem_type().as_deref(), Some("urn:zt:problem:blocked"), "{r:?}");
                first_refused.get_or_insert(id);
                refused_at[at].get_or_insert(id);
            }
            other => panic!("id {id} on replica {at}: unexpected {other}: {r:?}"),
        }
        if refused_at.iter().all(Option::is_some) {
            break;
        }
    }
    let refused_at: Vec<u32> =
        refused_at.into_iter().map(|r| r.expect("every replica refused the walk")).collect();
    Walk { answered, first_refused: first_refused.unwrap_or(0), refused_at }
}

/// Every key under `prefix` with its value(s), as bytes.
async fn dump(redis: &RedisServer, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut c).await.unwrap();
        let value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query_async(&mut c).await.unwrap()],
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut c).await.unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut c).await.unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut c).await.unwrap(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut c).await.unwrap(),
            _ => Vec::new(),
        };
        out.push((key, value.concat()));
    }
    out
}

/// The detection keys hold no name in clear, in their names or their values. Returns how
/// many detection keys there were.
async fn assert_no_clear_names(redis: &RedisServer, prefix: &str, names: &[&str]) -> usize {
    let all = dump(redis, prefix).await;
    let detection: Vec<&(String, Vec<u8>)> =
        all.iter().filter(|(k, _)| k.starts_with(&format!("{prefix}:v1:det:"))).collect();
    for (key, value) in &detection {
        for name in names {
            assert!(!key.contains(name), "{name} in clear in the key {key}");
            let found = value.windows(name.len()).any(|w| w == name.as_bytes());
            assert!(!found, "{name} in clear in the value of {key}");
        }
    }
    let elsewhere: Vec<&str> = all
        .iter()
        .filter(|(key, value)| {
            names.iter().any(|n| key.contains(n) || value.windows(n.len()).any(|w| w == n.as_bytes()))
        })
        .map(|(key, _)| key.as_str())
        .collect();
    println!(
        "redis under {prefix}: {} keys, {} detection keys, none naming {names:?}; other keys naming them: {elsewhere:?}",
        all.len(),
        detection.len()
    );
    detection.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enumeration_walk_over_three_replicas_is_blocked_near_the_single_replica_threshold() {
    if !in_child_with_secret(
        "enumeration_walk_over_three_replicas_is_blocked_near_the_single_replica_threshold",
    ) {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    // A long window: a walk never straddles two (see `room_in_window`).
    let window = Duration::from_secs(600);
    // The threshold the walk measures against: 100 refused ids, so one flush's worth of ids
    // past it is small next to it (the default, 20, leaves the 1.2x bound no room).
    let observe = observer_config(|d| {
        d.window = window;
        d.enumeration_hard_limit = 100;
        d.enumeration_min_distinct = 100;
    });
    let mallory = format!("Bearer {}", token("mallory", "orders:read"));

    // One replica, its own prefix: the threshold this deployment has today.
    let single_prefix = unique("det-single");
    let single = spawn_axum(demo_guard(fleet_policy(&redis, &single_prefix, &observe))).await;
    room_in_window(window, Duration::from_secs(60)).await;
    let one = walk(&[single], &mallory).await;
    println!("single replica: {one:?}");

    // Three replicas (two axum, one actix) on one Redis, another prefix.
    let prefix = unique("det-fleet");
    let policy = || fleet_policy(&redis, &prefix, &observe);
    let replicas = [
        spawn_axum(demo_guard(policy())).await,
        spawn_axum(demo_guard(policy())).await,
        spawn_actix(demo_guard(policy())),
    ];
    room_in_window(window, Duration::from_secs(60)).await;
    let three = walk(&replicas, &mallory).await;
    let ratio = f64::from(three.answered) / f64::from(one.answered.max(1));
    println!(
        "three replicas: {three:?}; answered {} vs {} on one replica: {ratio:.3}x (bound 1.2x; \
         per-replica thresholds would answer about {})",
        three.answered,
        one.answered,
        one.answered * 3
    );
    assert!(one.answered > 0, "{one:?}");
    assert!(
        f64::from(three.answered) <= 1.2 * f64::from(one.answered),
        "the fleet answered {} ids, the single replica {}",
        three.answered,
        one.answered
    );
    // Every replica refuses soon after the first one did (each on the fleet-wide figure).
    let last = three.refused_at.iter().max().copied().unwrap_or(0);
    assert!(
        f64::from(last) <= 1.2 * f64::from(one.first_refused),
        "the last replica refused at id {last}, the single replica at {}",
        one.first_refused
    );
    let keys = assert_no_clear_names(&redis, &prefix, &["mallory", "issuer.test"]).await;
    assert!(keys > 0, "the walk was counted in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_rate_spread_over_replicas_is_detected_on_fleet_wide_figures() {
    if !in_child_with_secret("a_request_rate_spread_over_replicas_is_detected_on_fleet_wide_figures") {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let window = Duration::from_secs(10);
    let (rate_min, per_replica) = (60u32, 30u32);
    let observe = observer_config(|d| {
        d.window = window;
        d.warmup_requests = 3;
        d.rate_min = rate_min;
    });
    let prefix = unique("det-rate");
    let guards = [
        demo_guard(fleet_policy(&redis, &prefix, &observe)),
        demo_guard(fleet_policy(&redis, &prefix, &observe)),
        demo_guard(fleet_policy(&redis, &prefix, &observe)),
    ];
    let replicas = [
        spawn_axum(guards[0].clone()).await,
        spawn_axum(guards[1].clone()).await,
        spawn_actix(guards[2].clone()),
    ];
    let rita = format!("Bearer {}", token("rita", "orders:read"));
    let fired = |guards: &[zt::Guard]| -> Vec<usize> {
        guards
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                g.observer().unwrap().incidents().iter().any(|i| i.rules.contains(&Rule::RequestRate))
            })
            .map(|(i, _)| i)
            .collect()
    };

    // A window of ordinary traffic: the rate rule needs one completed window per replica.
    next_window(window).await;
    for addr in replicas {
        for _ in 0..2 {
            assert_eq!(get(addr, &rita, "/orders").await.status, 200);
        }
    }
    assert!(fired(&guards).is_empty(), "ordinary traffic is no anomaly");

    // The next window: 90 requests round-robin, 30 per replica, each below rate_min alone.
    next_window(window).await;
    let mut statuses = Vec::new();
    for i in 0..per_replica * 3 {
        statuses.push(get(replicas[i as usize % 3], &rita, "/orders").await.status);
    }
    // The default action (throttle) has no limiter to act on here: every request is served.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let on = fired(&guards);
    println!(
        "request rate: {} requests fleet-wide, {per_replica} per replica, rate_min {rate_min}: \
         fired on replicas {on:?}",
        per_replica * 3
    );
    assert!(per_replica < rate_min, "no replica alone sees enough to fire");
    assert!(!on.is_empty(), "the fleet-wide rate was detected");
    assert_no_clear_names(&redis, &prefix, &["rita", "issuer.test"]).await;
}

#[test]
fn a_fleet_without_a_secret_refuses_to_build_with_detection_on() {
    // Nothing connects while building: no server needed.
    let url = "redis://:hunter2@127.0.0.1:1/";
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.observe = Some(ObserverConfig::default());
    policy.fleet = Some(zt::fleet::FleetConfig::new(url));
    let error = orders::guard(policy).err().expect("refused");
    println!("{error}");
    assert!(error.contains("fleet.secret_env"), "{error}");
    assert!(!error.contains("hunter2") && !error.contains("127.0.0.1"), "{error}");
}
