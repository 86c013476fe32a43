//! The Redis rate store against a real `redis-server`, started by the tests themselves on a
//! free loopback port (`--save "" --appendonly no`: nothing touches the disk).
//!
//! Run: `cargo test -p zt-core --features redis --test limit_redis`. Without `redis-server`
//! on PATH the tests print why and pass; CI installs it (`apt-get install redis-server`).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use zt_core::limit::{FAILURES_TO_FALLBACK, LimitConfig, LimitKey, Limiter, ManualClock, RateDecision};

// ---------------------------------------------------------------------------------------
// A redis-server child process.

struct RedisServer {
    child: Option<Child>,
    port: u16,
}

fn redis_server_available() -> bool {
    let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok();
    if !found {
        eprintln!(
            "SKIPPED: `redis-server` is not on PATH; install it (apt-get install redis-server) to run this test"
        );
    }
    found
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = RedisServer { child: Some(child), port };
        // Readiness, not timing: poll until it answers PING (giving up after ~10 s).
        for _ in 0..400 {
            if server.command(&["PING"]).is_some_and(|reply| reply == "+PONG") {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command over a fresh connection; returns the first reply line.
    fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_string())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------
// Captured `zt::limit` events.

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}").trim_matches('"').to_string();
        if field.name() == "message" {
            self.0.message = text;
        } else {
            self.0.fields.push((field.name().to_string(), text));
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() != "zt::limit" {
            return;
        }
        let mut captured =
            Captured { level: *event.metadata().level(), message: String::new(), fields: Vec::new() };
        event.record(&mut Fields(&mut captured));
        self.0.lock().unwrap().push(captured);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

// ---------------------------------------------------------------------------------------

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("zt-test-{}-{nanos}", std::process::id())
}

fn replica(url: &str, prefix: &str, fail_mode: &str) -> (Limiter, ManualClock) {
    let config = LimitConfig::from_toml_str(&format!(
        r#"
        identity = {{ rate = "4/h", burst = 4 }}
        address = "off"
        [store.redis]
        url = "{url}"
        prefix = "{prefix}"
        timeout = "500ms"
        retry_interval = "1s"
        fail_mode = "{fail_mode}"
        "#
    ))
    .unwrap();
    let clock = ManualClock::new();
    let limiter = Limiter::builder(&config).clock(clock.clock()).build().unwrap();
    assert_eq!(limiter.store_kind(), "redis");
    (limiter, clock)
}

/// `who`'s checks on each limiter in turn: whether each was admitted.
async fn checks_in_turn(limiters: [&Limiter; 4], who: &str) -> Vec<bool> {
    let mut admitted = Vec::new();
    for limiter in limiters {
        admitted.push(check(limiter, who).await.allowed);
    }
    admitted
}

async fn check(limiter: &Limiter, who: &str) -> RateDecision {
    limiter.check_identity(LimitKey::Identity(who), "GET", "/orders").decision().await.unwrap()
}

/// Probes until the store answers again: each round moves the replica's clock past the retry
/// interval (so the next check is a probe) and gives the restarted server a moment.
async fn until_recovered(limiter: &Limiter, clock: &ManualClock, who: &str) -> RateDecision {
    for _ in 0..200 {
        clock.advance(Duration::from_secs(1));
        let decision = check(limiter, who).await;
        if !decision.fallback && !decision.unavailable {
            return decision;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the Redis store did not recover");
}

#[tokio::test]
async fn one_quota_shared_by_two_replicas_survives_an_outage() {
    if !redis_server_available() {
        return;
    }
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let mut server = RedisServer::start(free_port());
    let prefix = unique_prefix();
    let (a, clock_a) = replica(&server.url(), &prefix, "fallback_local");
    let (b, clock_b) = replica(&server.url(), &prefix, "fail_closed");

    // One shared quota of 4: two from each replica, then both refuse.
    let mut remaining = Vec::new();
    for limiter in [&a, &a, &b, &b] {
        let d = check(limiter, "alice").await;
        assert!(d.allowed && !d.fallback && !d.unavailable, "{d:?}");
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [3, 2, 1, 0]);
    for limiter in [&a, &b] {
        let d = check(limiter, "alice").await;
        assert!(!d.allowed && !d.fallback, "{d:?}");
        // Redis's clock runs on; the wait is at most one emission interval (15 min).
        let retry = d.retry_after.unwrap();
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(15 * 60), "{retry:?}");
        assert!(d.reset >= retry && d.reset <= Duration::from_secs(60 * 60), "{d:?}");
        assert_eq!(&*d.policy, "default");
        assert_eq!(d.limit, 4);
    }
    // Other keys have their own quota.
    assert!(check(&b, "bob").await.allowed);

    // Keys are namespaced and expire when the quota is whole again (bounded Redis memory).
    let key = format!("{prefix}:default:i:alice");
    let ttl: i64 = server.command(&["PTTL", &key]).unwrap().trim_start_matches(':').parse().unwrap();
    assert!(ttl > 0 && ttl <= 60 * 60 * 1000, "PTTL {ttl}");
    assert!(capture.take().is_empty(), "no events while healthy");

    // Outage: kill the server. Every failed check is decided by the fail mode at once, from
    // what Redis last said (alice's quota is spent: no fresh local quota for her); the switch
    // into fallback (and its event) comes after FAILURES_TO_FALLBACK consecutive failures.
    server.kill();
    for _ in 0..FAILURES_TO_FALLBACK {
        let d = check(&a, "alice").await;
        assert!(d.fallback && !d.allowed && !d.unavailable, "fallback_local starts from the mirror: {d:?}");
        let d = check(&b, "alice").await;
        assert!(d.unavailable && !d.allowed, "fail_closed: {d:?}");
        assert_eq!(d.headers(), vec![("retry-after", "1".to_string())]);
    }
    // A key Redis never answered for gets the whole quota locally (one store of its own:
    // no fleet to share it with): 4, then refusals.
    let mut allowed = 0;
    for _ in 0..6 {
        let d = check(&a, "frank").await;
        assert!(d.fallback, "{d:?}");
        allowed += u32::from(d.allowed);
    }
    assert_eq!(allowed, 4, "the local fallback still enforces the quota");

    let events = capture.take();
    let warnings: Vec<&Captured> = events.iter().filter(|e| e.level == Level::WARN).collect();
    assert_eq!(warnings.len(), 2, "one WARN per replica per outage: {events:?}");
    let modes: Vec<&str> = warnings.iter().filter_map(|e| e.field("zt.fail_mode")).collect();
    assert_eq!(modes, ["fallback_local", "fail_closed"]);
    assert!(warnings.iter().all(|e| e.field("zt.store") == Some("redis") && e.field("error.type").is_some()));

    // Recovery on the same port. The new server starts empty, and is repaired from the
    // replicas' mirrors: alice's spent quota is not given back.
    let _server = RedisServer::start(server.port);
    let d = until_recovered(&a, &clock_a, "alice").await;
    assert!(!d.allowed, "{d:?}");
    let d = until_recovered(&b, &clock_b, "alice").await;
    assert!(!d.allowed, "{d:?}");
    // Shared again: bob took one (on b) before the outage, three left across both
    // replicas. b's first check hands Redis what b knows (the floor is a maximum: had a,
    // which never saw bob, charged first, b's floor would have been below a's fresh TAT).
    let bobs: Vec<bool> = checks_in_turn([&b, &a, &b, &a], "bob").await;
    assert_eq!(bobs, [true, true, true, false]);

    let events = capture.take();
    let recovered: Vec<&Captured> =
        events.iter().filter(|e| e.message == "rate-limit store recovered").collect();
    assert_eq!(recovered.len(), 2, "{events:?}");
    assert!(recovered.iter().all(|e| e.level == Level::INFO && e.field("zt.outage_ms").is_some()));
}

#[tokio::test]
async fn a_slow_redis_counts_as_an_outage() {
    if !redis_server_available() {
        return;
    }
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = RedisServer::start(free_port());
    let (a, clock) = replica(&server.url(), &unique_prefix(), "fallback_local");
    assert!(!check(&a, "carol").await.fallback);

    // CLIENT PAUSE .. WRITE holds every script until unpaused: our check must time out.
    assert_eq!(server.command(&["CLIENT", "PAUSE", "60000", "WRITE"]).as_deref(), Some("+OK"));
    for _ in 0..FAILURES_TO_FALLBACK {
        let d = check(&a, "carol").await;
        assert!(d.fallback && d.allowed, "{d:?}");
    }
    let events = capture.take();
    assert_eq!(events.len(), 1, "one event, at the switch into fallback: {events:?}");
    assert_eq!(events[0].field("error.type"), Some("timeout"));

    assert_eq!(server.command(&["CLIENT", "UNPAUSE"]).as_deref(), Some("+OK"));
    // Carol had 1 from Redis and 3 from the fallback: her quota of 4 is spent, shared again.
    let d = until_recovered(&a, &clock, "carol").await;
    assert!(!d.allowed, "what the fallback admitted was charged to the shared quota: {d:?}");
}

#[tokio::test]
async fn a_flushed_script_is_reloaded() {
    if !redis_server_available() {
        return;
    }
    let server = RedisServer::start(free_port());
    let (a, _clock) = replica(&server.url(), &unique_prefix(), "fail_closed");
    assert_eq!(check(&a, "dan").await.remaining, 3);
    assert_eq!(server.command(&["SCRIPT", "FLUSH"]).as_deref(), Some("+OK"));
    let d = check(&a, "dan").await;
    assert!(d.allowed && !d.unavailable, "NOSCRIPT answered by reloading: {d:?}");
    assert_eq!(d.remaining, 2);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_falls_back() {
    // Needs no server: nothing listens on a port we just released.
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let url = format!("redis://127.0.0.1:{}", free_port());
    let (a, _clock) = replica(&url, &unique_prefix(), "fallback_local");
    for _ in 0..FAILURES_TO_FALLBACK {
        let d = check(&a, "erin").await;
        assert!(d.fallback && d.allowed, "{d:?}");
    }
    let events = capture.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::WARN);
    // During the outage, checks are decided at once (no probe until the retry interval).
    assert!(matches!(
        a.check_identity(LimitKey::Identity("erin"), "GET", "/orders"),
        zt_core::limit::LimitCheck::Ready(_)
    ));
}
