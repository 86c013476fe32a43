//! Boundedness and cost of the in-memory limiter, measured rather than assumed.
//!
//! ```sh
//! cargo test -p zt-core --release --test limit_flood -- --ignored --nocapture
//! ```
//!
//! The flood prints the process RSS (`VmRSS` from `/proc/self/status`) before and after
//! 1 000 000 distinct keys per table and asserts that no table holds more than its
//! capacity. The cost test prints the median time of one in-memory check; it asserts
//! nothing about time (machines differ), only that the checks are synchronous.

// Printing the measurements is the point of these tests.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use zt_core::limit::{LimitCheck, LimitConfig, LimitKey, Limiter};

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn ready(check: LimitCheck) -> bool {
    match check {
        LimitCheck::Ready(d) => d.allowed,
        other => panic!("the memory store decides at once, got {other:?}"),
    }
}

#[test]
#[ignore = "floods 1 000 000 keys per table; run in release with --ignored --nocapture"]
fn a_million_keys_stay_within_capacity() {
    const KEYS: u32 = 1_000_000;
    let config = LimitConfig::default();
    let capacity = config.capacity;
    let before = vm_rss_kib();
    let limiter = Limiter::new(&config).unwrap();
    let built = vm_rss_kib();

    let started = Instant::now();
    for i in 0..KEYS {
        ready(limiter.check_address(IpAddr::V4(Ipv4Addr::from(i)), "GET", "/orders"));
    }
    for i in 0..KEYS {
        ready(limiter.check_address(IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64)), "GET", "/orders"));
    }
    let mut name = String::new();
    for i in 0..KEYS {
        name.clear();
        name.push_str("subject-");
        name.push_str(&i.to_string());
        ready(limiter.check_identity(LimitKey::Identity(&name), "GET", "/orders"));
    }
    for i in 0..KEYS {
        limiter.lockout().record_failure(LimitKey::Address(IpAddr::V4(Ipv4Addr::from(i))));
        limiter.tighten(LimitKey::Address(IpAddr::V4(Ipv4Addr::from(i))), 2, Duration::from_secs(60));
    }
    let elapsed = started.elapsed();
    let after = vm_rss_kib();

    let per_rule: Vec<(String, usize)> =
        limiter.rules().map(|r| (r.name().to_string(), r.tracked_keys())).collect();
    println!("capacity per table: {capacity}");
    println!("keys per quota after the flood: {per_rule:?}; lockout table: {}", limiter.lockout().len());
    println!(
        "VmRSS: before {} | limiter built {} | after 5 x {KEYS} distinct keys {} ({:.1} s)",
        mib(before),
        mib(built),
        mib(after),
        elapsed.as_secs_f64()
    );
    for (name, keys) in &per_rule {
        assert!(*keys <= capacity, "{name}: {keys} keys > capacity {capacity}");
    }
    assert!(limiter.tracked_keys() <= capacity * per_rule.len());
    assert!(limiter.lockout().len() <= capacity);
}

#[test]
#[ignore = "prints the median cost of one in-memory check; run in release with --ignored --nocapture"]
fn cost_of_one_in_memory_check() {
    const BATCH: usize = 1000;
    const BATCHES: usize = 2000;
    let config =
        LimitConfig::from_toml_str("identity = { rate = \"1000000/s\" }\naddress = \"1000000/s\"").unwrap();
    let limiter = Limiter::new(&config).unwrap();
    let subjects: Vec<String> = (0..1000).map(|i| format!("user-{i:04}@example.com")).collect();
    let addresses: Vec<IpAddr> = (0..1000u32).map(|i| IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i))).collect();
    let measure = |label: &str, f: &mut dyn FnMut(usize) -> bool| {
        for i in 0..BATCH * 50 {
            std::hint::black_box(f(i));
        }
        let mut per_call: Vec<f64> = (0..BATCHES)
            .map(|b| {
                let start = Instant::now();
                for i in 0..BATCH {
                    std::hint::black_box(f(b * BATCH + i));
                }
                start.elapsed().as_nanos() as f64 / BATCH as f64
            })
            .collect();
        per_call.sort_by(f64::total_cmp);
        println!(
            "{label}: median {:.0} ns, p10 {:.0} ns, p90 {:.0} ns per check",
            per_call[BATCHES / 2],
            per_call[BATCHES / 10],
            per_call[BATCHES * 9 / 10]
        );
    };
    measure("check_identity (1000 subjects)", &mut |i| {
        ready(limiter.check_identity(LimitKey::Identity(&subjects[i % 1000]), "GET", "/orders"))
    });
    measure("check_address (1000 addresses)", &mut |i| {
        ready(limiter.check_address(addresses[i % 1000], "GET", "/orders"))
    });
    measure("lockout().locked (nothing locked)", &mut |i| {
        limiter.lockout().locked(LimitKey::Address(addresses[i % 1000])).is_none()
    });
}
