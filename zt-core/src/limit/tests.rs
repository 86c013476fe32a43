use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::request::HeaderList;

fn limiter(toml: &str) -> (Limiter, ManualClock) {
    let manual = ManualClock::new();
    let config = LimitConfig::from_toml_str(toml).unwrap();
    let limiter = Limiter::builder(&config).clock(manual.clock()).build().unwrap();
    (limiter, manual)
}

fn ready(check: LimitCheck) -> RateDecision {
    match check {
        LimitCheck::Ready(d) => d,
        other => panic!("expected a ready decision, got {other:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn burst_then_refusal_then_refill() {
    // 60/m: one request per second on average, burst 3.
    let (l, clock) = limiter("identity = { rate = \"60/m\", burst = 3 }\naddress = \"off\"");
    let alice = LimitKey::Identity("alice");
    let d: Vec<RateDecision> = (0..3).map(|_| ready(l.check_identity(alice, "GET", "/x"))).collect();
    assert!(d.iter().all(|d| d.allowed));
    assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0]);
    assert_eq!(d[0].limit, 3);
    assert_eq!(d[0].window, Duration::from_secs(3));
    assert_eq!(d[0].reset, Duration::from_secs(1));
    assert_eq!(d[2].reset, Duration::from_secs(3));

    let refused = ready(l.check_identity(alice, "GET", "/x"));
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(refused.reset, Duration::from_secs(3));
    assert_eq!(refused.retry_after_secs(), Some(1));

    // Other keys are unaffected.
    assert!(ready(l.check_identity(LimitKey::Identity("bob"), "GET", "/x")).allowed);

    // Half an interval later: still refused, with half the wait.
    clock.advance(Duration::from_millis(500));
    let refused = ready(l.check_identity(alice, "GET", "/x"));
    assert_eq!(refused.retry_after, Some(Duration::from_millis(500)));
    assert_eq!(refused.retry_after_secs(), Some(1));

    // One interval: exactly one more request.
    clock.advance(Duration::from_millis(500));
    assert!(ready(l.check_identity(alice, "GET", "/x")).allowed);
    assert!(!ready(l.check_identity(alice, "GET", "/x")).allowed);

    // A full window: the whole burst again.
    clock.advance(Duration::from_secs(3));
    let d = ready(l.check_identity(alice, "GET", "/x"));
    assert!(d.allowed);
    assert_eq!(d.remaining, 2);
}

#[test]
fn default_burst_is_twice_the_count() {
    let (l, _clock) = limiter("identity = \"5/s\"\naddress = \"off\"");
    let key = LimitKey::Identity("carol");
    let allowed = (0..20).filter(|_| ready(l.check_identity(key, "GET", "/")).allowed).count();
    assert_eq!(allowed, 10);
    let d = ready(l.check_identity(key, "GET", "/"));
    assert_eq!(d.policy_header(), "\"default\";q=10;w=2");
}

#[test]
fn anonymous_calls_are_keyed_by_grouped_address() {
    let (l, _clock) = limiter("identity = { rate = \"1/h\", burst = 1 }\naddress = \"off\"");
    let a = LimitKey::Address(ip("2001:db8:1:2::1"));
    let b = LimitKey::Address(ip("2001:db8:1:2:ffff::2"));
    assert!(ready(l.check_identity(a, "GET", "/")).allowed);
    assert!(!ready(l.check_identity(b, "GET", "/")).allowed, "same /64, same key");
    assert!(ready(l.check_identity(LimitKey::Address(ip("2001:db8:1:3::1")), "GET", "/")).allowed);
    // An identity that looks like an address is still another key.
    assert!(ready(l.check_identity(LimitKey::Identity("2001:db8:1:2::"), "GET", "/")).allowed);
    // IPv4-mapped IPv6 is the IPv4 address.
    let v4 = ip("192.0.2.1");
    assert!(ready(l.check_identity(LimitKey::Address(v4), "GET", "/")).allowed);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(!ready(l.check_identity(LimitKey::Address(mapped), "GET", "/")).allowed);
}

#[test]
fn address_ceiling_and_route_overrides() {
    let (l, _clock) = limiter(
        r#"
        identity = { rate = "100/m", burst = 100 }
        address = { rate = "100/m", burst = 5 }
        [[routes]]
        method = "post"
        path = "/login"
        rate = "5/m"
        burst = 2
        per = "address"
        [[routes]]
        method = "GET"
        path = "/export/{id}"
        rate = "1/h"
        burst = 1
        name = "export"
        "#,
    );
    let addr = ip("203.0.113.9");
    // The login route has its own, stricter address quota.
    let d = ready(l.check_address(addr, "POST", "/login"));
    assert_eq!(&*d.policy, "post_login");
    assert!(ready(l.check_address(addr, "POST", "/login")).allowed);
    assert!(!ready(l.check_address(addr, "POST", "/login")).allowed);
    // Other routes use the default ceiling, with its own state.
    let d = ready(l.check_address(addr, "GET", "/orders"));
    assert!(d.allowed);
    assert_eq!((&*d.policy, d.limit), ("address", 5));
    // Method matters.
    assert_eq!(&*ready(l.check_address(addr, "GET", "/login")).policy, "address");
    // The export route has its own identity quota.
    let key = LimitKey::Identity("dave");
    let d = ready(l.check_identity(key, "GET", "/export/{id}"));
    assert_eq!((&*d.policy, d.allowed), ("export", true));
    assert!(!ready(l.check_identity(key, "GET", "/export/{id}")).allowed);
    assert!(ready(l.check_identity(key, "GET", "/orders")).allowed);
    assert_eq!(
        l.rules().map(|r| r.name().to_string()).collect::<Vec<_>>(),
        ["default", "address", "post_login", "export"]
    );
}

#[test]
fn quotas_can_be_off() {
    let (l, _clock) = limiter("identity = \"off\"\naddress = \"off\"");
    assert!(matches!(l.check_address(ip("192.0.2.1"), "GET", "/"), LimitCheck::Unlimited));
    assert!(matches!(l.check_identity(LimitKey::Identity("x"), "GET", "/"), LimitCheck::Unlimited));
}

#[test]
fn tightening_divides_the_quota_and_expires() {
    let (l, clock) = limiter("identity = { rate = \"100/m\", burst = 100 }\naddress = \"off\"");
    let key = LimitKey::Identity("mallory");
    l.tighten(key, 10, Duration::from_secs(60));
    let first = ready(l.check_identity(key, "GET", "/"));
    assert_eq!((first.limit, first.remaining), (10, 9));
    let allowed = 1 + (0..50).filter(|_| ready(l.check_identity(key, "GET", "/")).allowed).count();
    assert_eq!(allowed, 10);
    // Others keep the full quota.
    assert_eq!(ready(l.check_identity(LimitKey::Identity("trent"), "GET", "/")).remaining, 99);
    // After the tightening ends the key refills at the normal rate.
    clock.advance(Duration::from_secs(61));
    let d = ready(l.check_identity(key, "GET", "/"));
    assert!(d.allowed);
    assert_eq!(d.limit, 100);
    // Factors 0 and 1 change nothing; huge factors are capped at the burst.
    l.tighten(LimitKey::Identity("peggy"), 1, Duration::from_secs(60));
    assert_eq!(ready(l.check_identity(LimitKey::Identity("peggy"), "GET", "/")).limit, 100);
    l.tighten(LimitKey::Identity("victor"), u32::MAX, Duration::from_secs(60));
    let d = ready(l.check_identity(LimitKey::Identity("victor"), "GET", "/"));
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 1, 0));
    assert!(!ready(l.check_identity(LimitKey::Identity("victor"), "GET", "/")).allowed);
}

#[test]
fn tightening_an_address_covers_its_group() {
    let (l, _clock) = limiter("address = { rate = \"100/m\", burst = 10 }");
    l.tighten(LimitKey::Address(ip("2001:db8:5:5::1")), 5, Duration::from_secs(60));
    let d = ready(l.check_address(ip("2001:db8:5:5::99"), "GET", "/"));
    assert_eq!(d.limit, 2);
}

#[test]
fn headers_on_success_switch() {
    let (on, _c) = limiter("identity = \"10/s\"\nheaders_on_success = true");
    let (off, _c2) = limiter("identity = \"10/s\"");
    let key = LimitKey::Identity("x");
    let d = ready(on.check_identity(key, "GET", "/"));
    assert_eq!(on.response_headers(&d).len(), 2);
    let d = ready(off.check_identity(key, "GET", "/"));
    assert!(off.response_headers(&d).is_empty());
    let mut refused = d.clone();
    refused.allowed = false;
    refused.retry_after = Some(Duration::from_millis(1));
    assert_eq!(off.response_headers(&refused)[0], ("retry-after", "1".to_string()));
}

#[test]
fn stores_are_bounded_by_capacity() {
    let (l, _clock) = limiter("capacity = 1000\nidentity = \"10/s\"\naddress = \"10/s\"");
    for i in 0..200_000u32 {
        ready(l.check_address(IpAddr::V4(Ipv4Addr::from(i)), "GET", "/"));
        if i % 10_000 == 0 {
            assert!(l.tracked_keys() <= 1000);
        }
    }
    for i in 0..50_000u32 {
        ready(l.check_identity(LimitKey::Identity(&format!("user-{i}")), "GET", "/"));
        ready(l.check_address(IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64)), "GET", "/"));
    }
    let per_rule: Vec<usize> = l.rules().map(|r| r.tracked_keys()).collect();
    assert!(per_rule.iter().all(|n| *n <= 1000), "{per_rule:?}");
    assert!(per_rule.iter().all(|n| *n >= 900), "tables stay nearly full: {per_rule:?}");
}

#[test]
fn hot_keys_survive_a_flood_of_new_keys() {
    let (l, _clock) = limiter("capacity = 1000\nidentity = { rate = \"1/h\", burst = 2 }\naddress = \"off\"");
    let victim = LimitKey::Identity("hot");
    assert!(ready(l.check_identity(victim, "GET", "/")).allowed);
    assert!(ready(l.check_identity(victim, "GET", "/")).allowed);
    for i in 0..100_000u32 {
        ready(l.check_identity(LimitKey::Identity(&i.to_string()), "GET", "/"));
        if i % 500 == 0 {
            // The attacker keeps hitting its exhausted key: it must stay exhausted.
            assert!(!ready(l.check_identity(victim, "GET", "/")).allowed, "evicted after {i} new keys");
        }
    }
}

#[test]
fn invalid_configs_name_their_entry() {
    let err = |toml: &str| {
        let config = LimitConfig::from_toml_str(toml).unwrap();
        Limiter::new(&config).unwrap_err().to_string()
    };
    assert!(err("trusted_proxies = [\"10.0.0.0/8\", \"bogus\"]").contains("limits.trusted_proxies[1]"));
    assert!(err("capacity = 0").contains("limits.capacity"));
    assert!(err("identity = { rate = \"5/s\", burst = 0 }").contains("limits.identity"));
    assert!(err("address = { rate = \"1/d\", burst = 4000000 }").contains("limits.address"));
    assert!(
        err("[[routes]]\nmethod = \"GET\"\npath = \"orders\"\nrate = \"1/s\"")
            .contains("limits.routes[0].path")
    );
    assert!(
        err("[[routes]]\nmethod = \"G T\"\npath = \"/o\"\nrate = \"1/s\"")
            .contains("limits.routes[0].method")
    );
    let dup = "[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"1/s\"\n[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"2/s\"\nname = \"o2\"";
    assert!(err(dup).contains("limits.routes[1]"));
    let clash = "[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"1/s\"\nname = \"default\"";
    assert!(err(clash).contains("limits.routes[0].name"));
    let bad_name = "[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"1/s\"\nname = \"a b\"";
    assert!(err(bad_name).contains("limits.routes[0].name"));
    // Same route, different `per`: fine.
    let both = "[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"1/s\"\n[[routes]]\nmethod = \"GET\"\npath = \"/o\"\nrate = \"2/s\"\nper = \"address\"\nname = \"o-addr\"";
    assert!(Limiter::new(&LimitConfig::from_toml_str(both).unwrap()).is_ok());
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_store_needs_the_feature() {
    let config = LimitConfig::from_toml_str("[store.redis]\nurl = \"redis://127.0.0.1\"").unwrap();
    assert!(Limiter::new(&config).unwrap_err().to_string().contains("limits.store"));
}

#[cfg(feature = "redis")]
#[test]
fn redis_config_is_validated_without_connecting() {
    let ok = LimitConfig::from_toml_str("[store.redis]\nurl = \"redis://127.0.0.1:1\"").unwrap();
    let l = Limiter::new(&ok).unwrap();
    assert_eq!(l.store_kind(), "redis");
    let bad = LimitConfig::from_toml_str("[store.redis]\nurl = \"http://user:secret@x\"").unwrap();
    let err = Limiter::new(&bad).unwrap_err().to_string();
    assert!(err.contains("limits.store.redis.url"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let zero = LimitConfig::from_toml_str("[store.redis]\nurl = \"redis://x\"\ntimeout = \"0s\"").unwrap();
    assert!(Limiter::new(&zero).unwrap_err().to_string().contains("limits.store.redis.timeout"));
}

#[test]
fn client_key_uses_trusted_proxies() {
    let (l, _clock) = limiter("trusted_proxies = [\"10.0.0.0/8\"]\nipv6_prefix = 56");
    let headers = HeaderList::default().with("x-forwarded-for", "1.1.1.1, 2001:db8:aa:bbcc::1");
    let proxy = Some("10.0.0.1:443".parse().unwrap());
    assert_eq!(l.client_address(proxy, &headers), Some(ip("2001:db8:aa:bbcc::1")));
    assert_eq!(l.client_key(proxy, &headers), Some(ip("2001:db8:aa:bb00::")));
    let stranger = Some("192.0.2.50:443".parse().unwrap());
    assert_eq!(l.client_key(stranger, &headers), Some(ip("192.0.2.50")));
}

#[test]
fn derived_names() {
    assert_eq!(derived_name("POST", "/orders/{id}"), "post_orders_id");
    assert_eq!(derived_name("GET", "/"), "get");
    assert_eq!(derived_name("GET", "/a//b-c/"), "get_a_b_c");
}

#[test]
fn limiter_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Limiter>();
    fn assert_send<T: Send>() {}
    assert_send::<PendingLimit>();
}

#[test]
fn tightening_is_an_event_without_addresses_in_text() {
    let (l, _clock) = limiter("");
    let (_, events) = test_events::capture(|| {
        l.tighten(LimitKey::Address(ip("198.51.100.23")), 4, Duration::from_secs(90))
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].message, "quota tightened");
    assert_eq!(events[0].field("client.address"), Some("198.51.100.23"));
    assert_eq!(events[0].field("zt.tighten.factor"), Some("4"));
    assert_eq!(events[0].field("zt.tighten.duration_ms"), Some("90000"));
    assert!(!events[0].message.contains("198.51"));
}

#[test]
fn concurrent_checks_never_overshoot() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // The clock is frozen: exactly the burst may pass, however the threads interleave
    // (including the race to create the key).
    for round in 0..20 {
        let (l, _clock) = limiter("identity = { rate = \"1/h\", burst = 50 }\naddress = \"off\"");
        let allowed = AtomicUsize::new(0);
        let key = format!("shared-{round}");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..40 {
                        if ready(l.check_identity(LimitKey::Identity(&key), "GET", "/")).allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 50);
    }
}

#[cfg(feature = "redis")]
#[test]
fn a_mirrored_tat_only_moves_later_and_is_what_the_fallback_starts_from() {
    let manual = ManualClock::new();
    let quota = QuotaConfig { rate: Rate::new(60, Duration::from_secs(60)).unwrap(), burst: Some(10) };
    let rule = QuotaRule::new("m".into(), &quota, 100, manual.clock()).unwrap();
    let key = key::KeyDigest::of(LimitKey::Identity("alice"));
    assert_eq!(rule.ahead(key), Duration::ZERO, "an unseen key has its whole quota");
    // The store said: whole again in 10 s (the burst spent).
    rule.mirror(key, Duration::from_secs(10));
    assert_eq!(rule.ahead(key), Duration::from_secs(10));
    // An older, laxer answer does not give quota back.
    rule.mirror(key, Duration::from_secs(2));
    assert_eq!(rule.ahead(key), Duration::from_secs(10));
    assert!(!rule.check_digest(key, 1).allowed, "the fallback starts from the spent quota");
    manual.advance(Duration::from_secs(1));
    assert!(rule.check_digest(key, 1).allowed, "one interval later, one request");
    assert!(!rule.check_digest(key, 1).allowed);
}

/// A store on a port nothing listens on: every check fails fast (connection refused).
#[cfg(feature = "redis")]
fn unreachable_store(fail_mode: FailMode) -> (RedisStore, Arc<QuotaRule>) {
    let mut config = RedisConfig::new("redis://127.0.0.1:1/");
    config.fail_mode = fail_mode;
    config.retry_interval = Duration::from_secs(3600);
    let store = RedisStore::new(&config, LimitClock::monotonic()).unwrap();
    let quota = QuotaConfig { rate: Rate::new(60, Duration::from_secs(3600)).unwrap(), burst: Some(6) };
    let rule = Arc::new(QuotaRule::new("h".into(), &quota, 100, LimitClock::monotonic()).unwrap());
    (store, rule)
}

#[cfg(feature = "redis")]
async fn decide(store: &RedisStore, rule: &Arc<QuotaRule>, who: &str, access: RouteAccess) -> RateDecision {
    store.check_on(rule, LimitKey::Identity(who), 1, 1, access).decision().await.unwrap()
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_fallback_starts_after_consecutive_failures_and_decides_by_fail_mode() {
    let (store, rule) = unreachable_store(FailMode::Bounded);
    for i in 0..FAILURES_TO_FALLBACK {
        assert!(!store.is_down(), "not in fallback after {i} failures");
        // Each failed check is still decided (by the fallback), never an error.
        let d = decide(&store, &rule, "alice", RouteAccess::Protected).await;
        assert!(d.allowed && d.fallback, "{d:?}");
    }
    assert!(store.is_down(), "in fallback after {FAILURES_TO_FALLBACK} consecutive failures");
    // In fallback: decided at once, without a round trip.
    assert!(matches!(
        store.check_on(&rule, LimitKey::Identity("bob"), 1, 1, RouteAccess::Protected),
        LimitCheck::Ready(_)
    ));

    let (closed, rule) = unreachable_store(FailMode::FailClosed);
    for _ in 0..FAILURES_TO_FALLBACK {
        let d = decide(&closed, &rule, "alice", RouteAccess::Protected).await;
        assert!(d.unavailable, "fail_closed refuses protected routes: {d:?}");
    }
    // A public route (health) keeps the whole local quota: six of six, then refused as a
    // single replica would refuse it, never unavailable.
    for i in 0..6 {
        let d = decide(&closed, &rule, "probe", RouteAccess::Public).await;
        assert!(d.allowed && !d.unavailable, "public check {i}: {d:?}");
    }
    let d = decide(&closed, &rule, "probe", RouteAccess::Public).await;
    assert!(!d.allowed && !d.unavailable, "{d:?}");
}
