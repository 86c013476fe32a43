//! Quotas and lockout across replicas (issue 15, "Quotas" and "Lockout"): three demo
//! replicas (two axum, one actix) sharing one real redis-server through their `[fleet]`,
//! driven over real HTTP on 127.0.0.1.
//!
//! - one quota across the replicas, against the single-replica figure;
//! - Redis killed mid-load, then restarted empty: no 5xx on the data route, `/health`
//!   always 200, and what the fleet admits during the outage within the `bounded` fail
//!   mode's bound (`b + r·T`); Redis restarted empty does not give spent quotas back;
//! - a Redis slowed past the timeout by a delaying TCP proxy (written here): the same bound;
//! - lockout at the threshold fleet-wide (not threshold × N), kept by a restarted replica,
//!   and with Redis down each replica locking at threshold / N.
//!
//! Every figure is printed (eprintln!). Bounds are computed from measured durations; no
//! test asserts how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zt::fleet::FleetConfig;
use zt::limit::LimitConfig;

/// Three replicas, as the load balancer of the tests sees them.
const N: usize = 3;

/// A fleet configuration for tests: quick heartbeats and resyncs, the default timeout.
fn fleet(url: &str, prefix: &str) -> FleetConfig {
    let mut config = FleetConfig::new(url);
    config.prefix = prefix.to_string();
    config.sync_interval = Duration::from_millis(200);
    config.replica_ttl = Duration::from_secs(2);
    config.timeout = Duration::from_millis(100);
    config
}

fn guard(limits: &str, fleet: Option<FleetConfig>) -> zt::Guard {
    let mut policy = policy_with_jwks(trusted_jwks());
    policy.limits = Some(LimitConfig::from_toml_str(limits).unwrap());
    policy.fleet = fleet;
    demo_guard(policy)
}

/// Starts one replica (`actix` or axum) on `fleet` once its first sync completed.
async fn replica(limits: &str, fleet: &FleetConfig, actix: bool) -> (zt::Guard, SocketAddr) {
    let guard = guard(limits, Some(fleet.clone()));
    guard.warm_up().await;
    let addr = if actix { spawn_actix(guard.clone()) } else { spawn_axum(guard.clone()).await };
    (guard, addr)
}

/// Three replicas (the second one actix) that count each other as live.
async fn replicas(limits: &str, fleet: &FleetConfig) -> (Vec<zt::Guard>, Vec<SocketAddr>) {
    let mut guards = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..N {
        let (guard, addr) = replica(limits, fleet, i == 1).await;
        guards.push(guard);
        addrs.push(addr);
    }
    let live = eventually(|| guards.iter().all(|g| g.fleet().unwrap().live_replicas() == N as u32)).await;
    assert!(live, "every replica counts {N} live replicas");
    (guards, addrs)
}

async fn orders(addr: SocketAddr, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    raw_request(addr, "GET", "/orders", &[("authorization", auth.as_str())], None).await.status
}

/// What one stretch of load saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    admitted: u32,
    refused: u32,
    server_errors: u32,
    other: u32,
    health_failures: u32,
    requests: u32,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.admitted += other.admitted;
        self.refused += other.refused;
        self.server_errors += other.server_errors;
        self.other += other.other;
        self.health_failures += other.health_failures;
        self.requests += other.requests;
    }
}

/// Sends `/orders` with `token` round-robin over `replicas` for `length` (and `/health` to
/// each replica every third request), one request at a time.
async fn load(replicas: &[SocketAddr], token: &str, length: Duration, start: usize) -> Tally {
    let mut tally = Tally::default();
    let began = Instant::now();
    let mut i = start;
    while began.elapsed() < length {
        let addr = replicas[i % replicas.len()];
        match orders(addr, token).await {
            200 => tally.admitted += 1,
            429 => tally.refused += 1,
            s if s >= 500 => tally.server_errors += 1,
            _ => tally.other += 1,
        }
        tally.requests += 1;
        if i.is_multiple_of(3) && raw_request(addr, "GET", "/health", &[], None).await.status != 200 {
            tally.health_failures += 1;
        }
        i += 1;
    }
    tally
}

/// Sends exactly `count` requests round-robin; the statuses' tally.
async fn burst(replicas: &[SocketAddr], token: &str, count: usize) -> Tally {
    let mut tally = Tally::default();
    for i in 0..count {
        match orders(replicas[i % replicas.len()], token).await {
            200 => tally.admitted += 1,
            429 => tally.refused += 1,
            s if s >= 500 => tally.server_errors += 1,
            _ => tally.other += 1,
        }
        tally.requests += 1;
    }
    tally
}

fn redis() -> Option<RedisServer> {
    let server = RedisServer::start();
    if server.is_none() {
        eprintln!("SKIPPED: redis-server is not installed");
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_quota_across_three_replicas() {
    let Some(redis) = redis() else { return };
    // 30 at once, then one every 10 s: the sustained part is negligible over the run.
    let limits = "identity = { rate = \"6/m\", burst = 30 }\naddress = \"off\"\n";
    let requests = 90;
    // The single-quota figure: one replica alone, its quota in memory.
    let single = spawn_axum(guard(limits, None)).await;
    let alone = burst(&[single], &token("alice", "orders:read"), requests).await;
    let (_guards, addrs) = replicas(limits, &fleet(&redis.url(), "one-quota")).await;
    let shared = burst(&addrs, &token("alice", "orders:read"), requests).await;
    eprintln!(
        "one quota: {requests} requests admitted {} by one replica, {} by {N} replicas sharing Redis \
         (without sharing: up to {})",
        alone.admitted,
        shared.admitted,
        alone.admitted as usize * N
    );
    assert_eq!(shared.server_errors + shared.other, 0, "{shared:?}");
    let (fleet_wide, single_figure) = (f64::from(shared.admitted), f64::from(alone.admitted));
    assert!(
        (fleet_wide - single_figure).abs() <= 0.1 * single_figure,
        "admitted {fleet_wide} across replicas, {single_figure} by one: within 10%"
    );
}

/// The caller's quota: rate 2/s, burst 10 (the bound of the `bounded` fail mode over `t`
/// is `b + r·t`). `/health` has a quota of its own, shared too (anonymous: keyed by the
/// address), that the probes never exhaust: a refused probe would be the outage's doing.
const OUTAGE_LIMITS: &str = "identity = { rate = \"120/m\", burst = 10 }\n\
                             address = { rate = \"60000/m\", burst = 10000 }\n\
                             [[routes]]\nmethod = \"GET\"\npath = \"/health\"\n\
                             rate = \"60000/m\"\nburst = 10000\n";
const RATE_PER_SEC: f64 = 2.0;
const BURST: f64 = 10.0;

fn bound(over: Duration) -> f64 {
    BURST + RATE_PER_SEC * over.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_then_restarted_empty_stays_within_the_bound() {
    let Some(mut redis) = redis() else { return };
    let (_guards, addrs) = replicas(OUTAGE_LIMITS, &fleet(&redis.url(), "outage")).await;
    let token = token("carol", "orders:read");
    let started = Instant::now();
    let before = load(&addrs, &token, Duration::from_millis(1500), 0).await;

    redis.kill();
    let killed = Instant::now();
    let outage = load(&addrs, &token, Duration::from_secs(3), 1).await;
    assert!(redis.restart(), "redis-server restarts (empty) on the same port");
    let outage_length = killed.elapsed();
    let after = load(&addrs, &token, Duration::from_secs(2), 2).await;
    let total = started.elapsed();

    let mut all = before;
    all.add(outage);
    all.add(after);
    eprintln!("before the kill ({} requests): admitted {}", before.requests, before.admitted);
    eprintln!(
        "Redis down for {outage_length:?} ({} requests): admitted {} (bound b + r·T = {:.1}; \
         without sharing {N} whole quotas would be {:.1})",
        outage.requests,
        outage.admitted,
        bound(outage_length),
        N as f64 * bound(outage_length)
    );
    eprintln!("after the restart ({} requests): admitted {}", after.requests, after.admitted);
    eprintln!(
        "whole run {total:?} ({} requests): admitted {} (one quota: {:.1}); 5xx {}, /health failures {}",
        all.requests,
        all.admitted,
        bound(total),
        all.server_errors,
        all.health_failures
    );
    assert_eq!(all.server_errors, 0, "no 5xx on the data route: {all:?}");
    assert_eq!(all.other, 0, "only 200 and 429: {all:?}");
    assert_eq!(all.health_failures, 0, "/health is always 200");
    assert!(f64::from(outage.admitted) <= bound(outage_length), "outage within b + r·T");
    // Restarted empty, Redis is repaired from the replicas' mirrors: the run as a whole
    // stays within one quota (one cell per replica of slack for the floors' margin).
    assert!(f64::from(all.admitted) <= bound(total) + N as f64, "no quota given back by the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_does_not_reset_spent_quotas() {
    let Some(mut redis) = redis() else { return };
    // One request a minute after a burst of 12.
    let limits = "identity = { rate = \"1/m\", burst = 12 }\naddress = \"off\"\n";
    let (_guards, addrs) = replicas(limits, &fleet(&redis.url(), "restart")).await;
    let token = token("dave", "orders:read");
    let started = Instant::now();
    let spent = burst(&addrs, &token, 24).await;
    assert_eq!(spent.admitted, 12, "the burst, once across the replicas: {spent:?}");
    assert!(redis.restart(), "redis-server restarts (empty) on the same port");
    let again = burst(&addrs, &token, 24).await;
    let allowed = (started.elapsed().as_secs_f64() / 60.0).ceil();
    eprintln!(
        "Redis restarted empty: {} of 24 admitted after the restart (the sustained rate allows {allowed}; \
         a reset quota would admit 12)",
        again.admitted
    );
    assert_eq!(again.server_errors + again.other, 0, "{again:?}");
    assert!(f64::from(again.admitted) <= allowed, "the spent quota stays spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_protected_routes_but_never_fails_health_when_redis_is_down() {
    let Some(mut redis) = redis() else { return };
    let limits = format!("fail_mode = \"fail_closed\"\n{OUTAGE_LIMITS}");
    let (guards, addrs) = replicas(&limits, &fleet(&redis.url(), "closed")).await;
    let token = token("frank", "orders:read");
    let up = load(&addrs, &token, Duration::from_millis(500), 0).await;
    assert_eq!((up.server_errors, up.health_failures), (0, 0), "{up:?}");
    redis.kill();
    let down = load(&addrs, &token, Duration::from_secs(2), 1).await;
    eprintln!(
        "fail_closed, Redis down ({} requests): {} answered 503 on /orders, {} admitted; /health failures {}",
        down.requests, down.server_errors, down.admitted, down.health_failures
    );
    assert_eq!(down.health_failures, 0, "the load balancer's probe never fails because Redis is down");
    assert!(down.server_errors > 0, "protected routes are refused (503), nothing passes unmetered");
    // The failures before the switch into fallback are decided by the fail mode too:
    // fail_closed admits nothing on a protected route while Redis cannot answer.
    assert_eq!(down.admitted, 0, "{down:?}");
    let r = orders(addrs[0], &token).await;
    assert_eq!(r, 503);
    drop(guards);
}

/// A TCP proxy to `target` that holds every chunk from the server for `delay` (shared,
/// changeable), keeping their order: latency without loss.
async fn delaying_proxy(target: u16, delay: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let delay = delay.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                tokio::spawn(async move {
                    while let Some((due, chunk)) = receive.recv().await {
                        tokio::time::sleep_until(due.into()).await;
                        if client_write.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    let Ok(n) = server_read.read(&mut buffer).await else { return };
                    if n == 0 {
                        return;
                    }
                    let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                    if send.send((due, buffer[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_slower_than_the_timeout_counts_as_down_and_stays_within_the_bound() {
    let Some(redis) = redis() else { return };
    let delay = Arc::new(AtomicU64::new(0));
    let port = delaying_proxy(redis.port, delay.clone()).await;
    let config = fleet(&format!("redis://127.0.0.1:{port}/"), "slow");
    let (_guards, addrs) = replicas(OUTAGE_LIMITS, &config).await;
    let token = token("erin", "orders:read");
    let before = load(&addrs, &token, Duration::from_millis(1500), 0).await;

    // Three times the 100 ms timeout: every answer comes, too late.
    delay.store(300, Ordering::SeqCst);
    let slowed = Instant::now();
    let slow = load(&addrs, &token, Duration::from_secs(3), 1).await;
    delay.store(0, Ordering::SeqCst);
    let slow_length = slowed.elapsed();
    let after = load(&addrs, &token, Duration::from_secs(2), 2).await;

    eprintln!("before the delay ({} requests): admitted {}", before.requests, before.admitted);
    eprintln!(
        "Redis 300 ms slow (timeout 100 ms) for {slow_length:?} ({} requests): admitted {} (bound b + r·T = {:.1})",
        slow.requests,
        slow.admitted,
        bound(slow_length)
    );
    eprintln!("after the delay ({} requests): admitted {}", after.requests, after.admitted);
    let mut all = before;
    all.add(slow);
    all.add(after);
    assert_eq!(all.server_errors, 0, "no 5xx on the data route: {all:?}");
    assert_eq!(all.other, 0, "only 200 and 429: {all:?}");
    assert_eq!(all.health_failures, 0, "/health is always 200");
    assert!(f64::from(slow.admitted) <= bound(slow_length), "slow Redis within b + r·T");
    assert!(after.admitted > 0, "quotas work again once Redis is fast: {after:?}");
}

const LOCKOUT_LIMITS: &str = "identity = \"off\"\naddress = \"off\"\n[lockout]\nthreshold = 6\n\
                              window = \"1m\"\nbase = \"30s\"\nmax = \"5m\"\n";
const THRESHOLD: u32 = 6;

/// An expired token: a failed authentication, counted against the calling address.
/// A failed verification that counts toward a lockout: a token for another audience (an
/// expired one would not: expiry is not a guess, see `Lockout::counts`).
fn bad_token() -> String {
    let mut foreign = claims("mallory", "orders:read");
    foreign["aud"] = serde_json::json!("another-relying-party");
    sign(key(jsonwebtoken::Algorithm::ES256), &foreign)
}

async fn orders_from(from: IpAddr, addr: SocketAddr, token: &str) -> RawResponse {
    let auth = format!("Bearer {token}");
    raw_request_from(Some(from), addr, "GET", "/orders", &[("authorization", auth.as_str())], None).await
}

fn locked_out(r: &RawResponse) -> bool {
    r.status == 429 && r.problem_type().as_deref() == Some("urn:zt:problem:locked-out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_fleet_wide_survives_a_replica_restart_and_divides_when_redis_is_down() {
    let Some(mut redis) = redis() else { return };
    let config = fleet(&redis.url(), "lockout");
    let (guards, addrs) = replicas(LOCKOUT_LIMITS, &config).await;
    let bad = bad_token();

    // Guesses from one address, spread round-robin: counted once, fleet-wide.
    let attacker: IpAddr = "127.0.0.5".parse().unwrap();
    let mut guesses = 0;
    let mut locked = false;
    for i in 0..(THRESHOLD as usize * N + 3) {
        let r = orders_from(attacker, addrs[i % N], &bad).await;
        if locked_out(&r) {
            locked = true;
            break;
        }
        assert_eq!(r.status, 401, "guess {i}: {r:?}");
        guesses += 1;
    }
    eprintln!(
        "lockout across {N} replicas: locked after {guesses} guesses (threshold {THRESHOLD}; \
         per-replica counting would allow {})",
        THRESHOLD as usize * N
    );
    assert!(locked, "the address is locked out");
    // The threshold, plus at most the guesses that arrive while the lock is on its way
    // (one script round trip and one pub/sub delivery; with sequential guesses, about one
    // per other replica): never threshold × N.
    assert!(guesses <= THRESHOLD + N as u32, "locked at the threshold fleet-wide, not after {guesses}");
    for (i, addr) in addrs.iter().enumerate() {
        let r = orders_from(attacker, *addr, &token("alice", "orders:read")).await;
        assert!(locked_out(&r), "replica {i} refuses the locked address: {r:?}");
    }

    // A replica started after the lock (a restart, a scale-out) loads it before serving.
    let (_restarted, fresh) = replica(LOCKOUT_LIMITS, &config, false).await;
    let r = orders_from(attacker, fresh, &token("alice", "orders:read")).await;
    eprintln!("restarted replica: the locked address gets {} ({:?})", r.status, r.problem_type());
    assert!(locked_out(&r), "a restarted replica keeps the lockout: {r:?}");
    let other: IpAddr = "127.0.0.6".parse().unwrap();
    assert_eq!(orders_from(other, fresh, &token("alice", "orders:read")).await.status, 200);

    // Redis down: each replica counts alone, at threshold / N.
    redis.kill();
    assert!(
        eventually(|| guards.iter().all(|g| !g.fleet().unwrap().is_up())).await,
        "every replica sees the outage"
    );
    let walker: IpAddr = "127.0.0.7".parse().unwrap();
    let mut down_guesses = 0;
    let mut refused_by = [false; N];
    for i in 0..(THRESHOLD as usize * N + 3) {
        let r = orders_from(walker, addrs[i % N], &bad).await;
        if locked_out(&r) {
            refused_by[i % N] = true;
            if refused_by.iter().all(|&r| r) {
                break;
            }
            continue;
        }
        assert_eq!(r.status, 401, "guess {i} with Redis down: {r:?}");
        down_guesses += 1;
    }
    let share = (THRESHOLD / N as u32).max(1);
    eprintln!(
        "lockout with Redis down: every replica locked after {down_guesses} guesses in all \
         (each at {share} = threshold / {N}; bound {})",
        share * N as u32
    );
    assert!(refused_by.iter().all(|&r| r), "every replica locked the address by itself");
    assert!(down_guesses <= share * N as u32, "at most threshold guesses fleet-wide with Redis down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_factor_set_on_one_replica_applies_on_all_until_it_expires() {
    let Some(redis) = redis() else { return };
    let config =
        LimitConfig::from_toml_str("identity = { rate = \"6000/m\", burst = 1000 }\naddress = \"off\"\n")
            .unwrap();
    let fleet_config = fleet(&redis.url(), "throttle");
    let limiters: Vec<zt::limit::Limiter> = (0..2)
        .map(|_| {
            let fleet = zt::fleet::Fleet::new(&fleet_config).unwrap();
            zt::limit::Limiter::builder(&config).fleet(fleet).build().unwrap()
        })
        .collect();
    let alice = zt::limit::LimitKey::Identity("iss|alice");
    let quota = |limiter: &zt::limit::Limiter| {
        let check = limiter.check_identity(alice, "GET", "/orders");
        async move { check.decision().await.unwrap() }
    };
    let first = quota(&limiters[1]).await;
    assert_eq!((first.allowed, first.limit, first.fallback), (true, 1000, false), "{first:?}");
    // Detection on replica 0 throttles alice to a tenth for a moment.
    limiters[0].tighten(alice, 10, Duration::from_secs(1));
    let mut seen = None;
    for _ in 0..200 {
        let d = quota(&limiters[1]).await;
        if d.limit == 100 {
            seen = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let throttled = seen.expect("replica 1 charges the factor replica 0 set");
    eprintln!("throttle shared: replica 1 sees q={} after replica 0 tightened by 10", throttled.limit);
    // Bob is not throttled anywhere.
    let bob = limiters[1].check_identity(zt::limit::LimitKey::Identity("iss|bob"), "GET", "/orders");
    assert_eq!(bob.decision().await.unwrap().limit, 1000);
    // The factor expires with its duration, on every replica.
    let mut restored = false;
    for _ in 0..400 {
        if quota(&limiters[1]).await.limit == 1000 {
            restored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(restored, "the shared factor expires");
}
