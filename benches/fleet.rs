//! What the shared store costs (issue 15): the demo's axum app with every stage on (contract,
//! limits, monitoring, a cached ES256 token), its posture in memory against the same posture
//! shared through a `[fleet]` on a real `redis-server` on 127.0.0.1, measured interleaved:
//! blocks of requests alternate between the two apps for a few seconds, so that noise from
//! other work on the machine falls on both alike; the figure is the median block ratio.
//!
//! Then throughput with 32 requests in flight (the store's connection pipelines them), and
//! the store's side: Redis commands per request (from `INFO commandstats`, less the
//! fleet's own background traffic measured over an idle spell of the same length) in the
//! steady state (one caller, cached token) and on cold keys (a new caller per request).
//!
//! `cargo bench --bench fleet` (`ZT_FLEET_SECONDS`, default 6). Needs `redis-server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use tower::ServiceExt;

const BLOCK: u32 = 200;
const SECRET_ENV: &str = "ZT_BENCH_FLEET_SECRET";

fn policy(redis: Option<&support::RedisServer>) -> zt::Policy {
    let mut policy = support::policy_with_jwks(support::trusted_jwks());
    let mut limits = zt::limit::LimitConfig::default();
    // Quotas far above what the bench sends: every request is checked, none refused.
    let rate = zt::limit::Rate::new(1_000_000, Duration::from_secs(1)).unwrap();
    limits.identity = Some(zt::limit::QuotaConfig::new(rate));
    limits.address = Some(zt::limit::QuotaConfig::new(rate));
    policy.limits = Some(limits);
    policy.observe = Some(zt::observe::ObserverConfig::default());
    if let Some(redis) = redis {
        let mut fleet = zt::fleet::FleetConfig::new(redis.url());
        fleet.secret_env = Some(SECRET_ENV.into());
        policy.fleet = Some(fleet);
    }
    policy
}

fn request(authorization: &str) -> axum::http::Request<axum::body::Body> {
    let mut request = axum::http::Request::get("/orders")
        .header("authorization", authorization)
        .header("accept", "application/json")
        .header("user-agent", "bench")
        .body(axum::body::Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

async fn block<A>(app: &A, authorization: &str, n: u32) -> Duration
where
    A: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    let start = Instant::now();
    for _ in 0..n {
        let response = black_box(app.clone().oneshot(request(authorization)).await.unwrap());
        debug_assert_eq!(response.status(), 200);
    }
    start.elapsed()
}

const CONCURRENCY: usize = 32;

/// Requests per second with `CONCURRENCY` requests in flight on one thread.
async fn concurrent<A>(app: &A, authorization: &str) -> f64
where
    A: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    let per_task = 400u32;
    let start = Instant::now();
    let tasks = (0..CONCURRENCY).map(|_| block(app, authorization, per_task));
    futures_util::future::join_all(tasks).await;
    f64::from(per_task) * CONCURRENCY as f64 / start.elapsed().as_secs_f64()
}

/// Commands Redis executed, by name (`INFO commandstats`).
async fn commandstats(redis: &support::RedisServer) -> BTreeMap<String, u64> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut c).await.unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), *v as i64 - before.get(k).copied().unwrap_or(0) as i64))
        .filter(|(k, v)| *v != 0 && k != "info")
        .collect()
}

/// Commands per request over `work`, less the background measured over an idle spell as long.
async fn commands_per_request<F: std::future::Future<Output = u32>>(
    redis: &support::RedisServer,
    work: F,
) -> BTreeMap<String, f64> {
    let before = commandstats(redis).await;
    let start = Instant::now();
    let requests = work.await;
    let took = start.elapsed();
    let after = commandstats(redis).await;
    tokio::time::sleep(took).await;
    let idle = commandstats(redis).await;
    let work = delta(&after, &before);
    let background = delta(&idle, &after);
    work.into_iter()
        .map(|(k, v)| {
            let net = (v - background.get(&k).copied().unwrap_or(0)).max(0);
            (k, net as f64 / f64::from(requests.max(1)))
        })
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn show(map: &BTreeMap<String, f64>) -> String {
    let total: f64 = map.values().sum();
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    format!("{total:.3} ({})", parts.join(", "))
}

fn main() {
    // The fleet secret comes from the environment; a bench cannot set its own (no `unsafe`):
    // run again as a child with it set.
    if std::env::var_os(SECRET_ENV).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args().skip(1))
            .env(SECRET_ENV, "bench-fleet-secret-0123456789abcdef")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to run then.
    }
    let Some(redis) = support::RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let seconds = std::env::var("ZT_FLEET_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let memory_guard = support::demo_guard(policy(None));
        let fleet_guard = support::demo_guard(policy(Some(&redis)));
        assert!(fleet_guard.warm_up().await.is_empty(), "keys loaded");
        assert!(fleet_guard.fleet().is_some_and(|f| f.is_up()), "the fleet synced");
        let memory = orders::axum_app::app(memory_guard, None).expect("demo app");
        let fleet = orders::axum_app::app(fleet_guard, None).expect("demo app");
        let alice = format!("Bearer {}", support::token("alice", "orders:read"));
        for app in [&memory, &fleet] {
            let response = app.clone().oneshot(request(&alice)).await.unwrap();
            assert_eq!(response.status(), 200, "the bench request is admitted");
        }

        let (mut memory_total, mut fleet_total) = (Duration::ZERO, Duration::ZERO);
        let mut ratios = Vec::new();
        let end = Instant::now() + Duration::from_secs(seconds);
        loop {
            let m = block(&memory, &alice, BLOCK).await;
            let f = block(&fleet, &alice, BLOCK).await;
            memory_total += m;
            fleet_total += f;
            ratios.push(f.as_secs_f64() / m.as_secs_f64());
            if Instant::now() >= end {
                break;
            }
        }
        ratios.sort_by(f64::total_cmp);
        let calls = ratios.len() as f64 * f64::from(BLOCK);
        eprintln!(
            "GET /orders, cached ES256 token, every stage on; interleaved blocks of {BLOCK}, {seconds} s"
        );
        eprintln!(
            "memory {:.2} us/request, fleet {:.2} us/request, median block ratio {:.3} ({} blocks)",
            memory_total.as_secs_f64() * 1e6 / calls,
            fleet_total.as_secs_f64() * 1e6 / calls,
            ratios[ratios.len() / 2],
            ratios.len()
        );

        // Throughput with requests in flight together (the multiplexed connection pipelines
        // them): what a loaded replica pays, rather than one request's latency.
        let mut throughput = Vec::new();
        for _ in 0..5 {
            let m = concurrent(&memory, &alice).await;
            let f = concurrent(&fleet, &alice).await;
            throughput.push((m, f));
        }
        let mut ratios: Vec<f64> = throughput.iter().map(|(m, f)| f / m).collect();
        ratios.sort_by(f64::total_cmp);
        let mut ms: Vec<f64> = throughput.iter().map(|(m, _)| *m).collect();
        let mut fs: Vec<f64> = throughput.iter().map(|(_, f)| *f).collect();
        ms.sort_by(f64::total_cmp);
        fs.sort_by(f64::total_cmp);
        eprintln!(
            "{CONCURRENCY} requests in flight, 5 interleaved rounds: memory {:.0} req/s, fleet {:.0} req/s (medians), median ratio {:.3}",
            ms[2], fs[2], ratios[2]
        );

        let steady = commands_per_request(&redis, async {
            block(&fleet, &alice, 2000).await;
            2000
        })
        .await;
        eprintln!("Redis commands per request, steady state (one caller, cached token): {}", show(&steady));
        let cold = commands_per_request(&redis, async {
            for i in 0..300u32 {
                let token = format!("Bearer {}", support::token(&format!("cold-{i}"), "orders:read"));
                let response = fleet.clone().oneshot(request(&token)).await.unwrap();
                assert_eq!(response.status(), 200);
            }
            300
        })
        .await;
        eprintln!("Redis commands per request, cold keys (a new caller per request): {}", show(&cold));
    });
}
