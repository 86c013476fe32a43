//! The shared store itself, against real redis-server processes on 127.0.0.1: the bus, the
//! heartbeat (live replica count) and resync over one server, over TLS with a client
//! certificate, through Sentinel and on a three-node Cluster; and a key removed from an
//! issuer's JWKS stopping cached tokens on every replica.
//!
//! The per-control suites (quotas and lockout, blocks and revocations, detection) are in
//! `fleet_limits.rs`, `fleet_controls.rs` and `fleet_detection.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use jsonwebtoken::Algorithm;
use support::*;
use zt::fleet::{Fleet, FleetConfig, FleetError, FleetListener, FleetTlsConfig, SentinelConfig};
use zt::policy::{IssuerConfig, Policy, RemoteKeysConfig};
use zt::request::HeaderList;
use zt::{Decision, Guard, Reason, RequestView, RouteTable};

/// redis-server processes with the given arguments on free ports, killed on drop.
struct Servers {
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn installed() -> bool {
    Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl Servers {
    fn new(name: &str) -> Servers {
        let dir = std::env::temp_dir().join(format!("zt-fleet-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Servers { children: Vec::new(), dir }
    }

    /// Starts one redis-server (`args` after the config file, if any) and waits for `port`.
    fn spawn(&mut self, config: Option<&str>, args: &[String], port: u16) {
        let mut command = Command::new("redis-server");
        if let Some(text) = config {
            let path = self.dir.join(format!("{port}.conf"));
            std::fs::write(&path, text).unwrap();
            command.arg(path);
        }
        let child =
            command.args(args).current_dir(&self.dir).stdout(Stdio::null()).spawn().expect("redis-server");
        self.children.push(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on {port} did not start");
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }
}

fn plain_args(port: u16) -> Vec<String> {
    ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Records what the bus delivers and counts resyncs.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<String>>,
    resyncs: AtomicUsize,
}

struct RecorderListener(Arc<Recorder>);

impl FleetListener for RecorderListener {
    fn on_message(&self, body: &str) {
        self.0.messages.lock().unwrap().push(body.to_string());
    }

    fn resync(&self, _fleet: Fleet) -> BoxFuture<'static, Result<(), FleetError>> {
        self.0.resyncs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn fast(mut config: FleetConfig, prefix: &str) -> FleetConfig {
    config.prefix = prefix.to_string();
    config.sync_interval = Duration::from_millis(200);
    config.replica_ttl = Duration::from_secs(2);
    config.timeout = Duration::from_millis(500);
    config
}

/// Two replicas on one store: both sync, count each other, and hear each other's
/// announcements (never their own); commands work.
async fn two_replicas_share_a_bus(config: FleetConfig, label: &str) {
    let a = Fleet::new(&config).expect("fleet a");
    let b = Fleet::new(&config).expect("fleet b");
    let (heard_a, heard_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.listen("test", Arc::new(RecorderListener(heard_a.clone())));
    b.listen("test", Arc::new(RecorderListener(heard_b.clone())));
    let started = Instant::now();
    assert!(a.synced(Duration::from_secs(10)).await, "{label}: replica a synced");
    assert!(b.synced(Duration::from_secs(10)).await, "{label}: replica b synced");
    eprintln!("{label}: both replicas synced after {:?}", started.elapsed());
    assert!(
        eventually(|| a.live_replicas() == 2 && b.live_replicas() == 2).await,
        "{label}: two live replicas"
    );
    assert!(a.is_up() && b.is_up());

    let mut set = redis::cmd("SET");
    set.arg(a.key("probe")).arg("42");
    a.query::<()>(&set).await.expect("SET");
    let mut get = redis::cmd("GET");
    get.arg(b.key("probe"));
    assert_eq!(b.query::<Option<String>>(&get).await.expect("GET"), Some("42".into()));

    // Retry the announcement until heard: the subscription may still be settling.
    let sent = Instant::now();
    let mut heard = false;
    for _ in 0..50 {
        a.publish("test", "hello from a").await.expect("publish");
        if eventually(|| !heard_b.messages.lock().unwrap().is_empty()).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "{label}: b hears a");
    eprintln!("{label}: announcement heard after {:?}", sent.elapsed());
    assert_eq!(heard_b.messages.lock().unwrap()[0], "hello from a");
    assert!(heard_a.messages.lock().unwrap().is_empty(), "{label}: a replica does not hear itself");
    let before = heard_b.resyncs.load(Ordering::SeqCst);
    assert!(
        eventually(|| heard_b.resyncs.load(Ordering::SeqCst) > before + 2).await,
        "{label}: periodic resync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_server() {
    if !installed() {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let redis = RedisServer::start().expect("redis");
    two_replicas_share_a_bus(fast(FleetConfig::new(redis.url()), "plain"), "one server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_server_over_tls_with_client_certificates() {
    if !installed() {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let pki = pki::pki();
    let mut servers = Servers::new("tls");
    let (cert, key, ca) = (
        servers.file("server.pem", &pki.server.cert_pem),
        servers.file("server.key", &pki.server.key_pem),
        servers.file("ca.pem", &pki.ca_pem),
    );
    let (client_cert, client_key) =
        (servers.file("client.pem", &pki.admin.cert_pem), servers.file("client.key", &pki.admin.key_pem));
    let port = free_port();
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    servers.spawn(None, &args, port);

    let mut config = fast(FleetConfig::new(format!("rediss://127.0.0.1:{port}/")), "tls");
    config.tls = Some(FleetTlsConfig {
        ca_file: Some(ca.clone()),
        cert_file: Some(client_cert),
        key_file: Some(client_key),
    });
    two_replicas_share_a_bus(config.clone(), "tls").await;

    // Without a client certificate the server refuses the handshake: the fleet is down,
    // never silently connected.
    let mut anonymous = config;
    anonymous.tls = Some(FleetTlsConfig { ca_file: Some(ca), cert_file: None, key_file: None });
    let fleet = Fleet::new(&anonymous).expect("fleet");
    assert!(!fleet.synced(Duration::from_secs(2)).await, "no sync without a client certificate");
    let mut ping = redis::cmd("PING");
    ping.arg("x");
    assert!(fleet.query::<String>(&ping).await.is_err());
    assert!(!fleet.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_a_sentinel_primary() {
    if !installed() {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let mut servers = Servers::new("sentinel");
    let primary = free_port();
    servers.spawn(None, &plain_args(primary), primary);
    let sentinel = free_port();
    let config = format!(
        "port {sentinel}\nbind 127.0.0.1\nsentinel monitor zt-primary 127.0.0.1 {primary} 1\nsentinel down-after-milliseconds zt-primary 5000\n"
    );
    servers.spawn(Some(&config), &["--sentinel".to_string()], sentinel);
    let fleet = FleetConfig {
        url: None,
        sentinel: Some(SentinelConfig {
            master: "zt-primary".into(),
            urls: vec![format!("redis://127.0.0.1:{sentinel}/")],
        }),
        ..FleetConfig::new("unused")
    };
    two_replicas_share_a_bus(fast(fleet, "sentinel"), "sentinel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_cluster() {
    if !installed() {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let mut servers = Servers::new("cluster");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for &port in &ports {
        let mut args = plain_args(port);
        args.extend(
            ["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")]
                .iter()
                .map(|s| s.to_string()),
        );
        servers.spawn(None, &args, port);
    }
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    for port in &ports {
        create.arg(format!("127.0.0.1:{port}"));
    }
    let status = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli");
    assert!(status.success(), "cluster created");
    // Wait until every slot is served.
    for _ in 0..200 {
        let out = Command::new("redis-cli")
            .args(["-p", &ports[0].to_string(), "cluster", "info"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = FleetConfig {
        url: None,
        cluster: ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect(),
        ..FleetConfig::new("unused")
    };
    two_replicas_share_a_bus(fast(config, "cluster"), "cluster").await;
}

#[test]
fn configuration_errors_name_the_entry_and_never_the_url() {
    let secret_url = "redis://user:hunter2@127.0.0.1:1/";
    let both = FleetConfig { cluster: vec![secret_url.into()], ..FleetConfig::new(secret_url) };
    let e = Fleet::new(&both).unwrap_err().to_string();
    assert!(e.contains("fleet") && e.contains("exactly one"), "{e}");
    let bad = FleetConfig::new("http://user:hunter2@example.com/");
    let e = Fleet::new(&bad).unwrap_err().to_string();
    assert!(e.contains("fleet.url") && !e.contains("hunter2"), "{e}");
    let zero = FleetConfig { sync_interval: Duration::ZERO, ..FleetConfig::new("redis://127.0.0.1:1/") };
    assert!(Fleet::new(&zero).unwrap_err().to_string().contains("fleet.sync_interval"));
    let braces = FleetConfig { prefix: "a{b}".into(), ..FleetConfig::new("redis://127.0.0.1:1/") };
    assert!(Fleet::new(&braces).unwrap_err().to_string().contains("fleet.prefix"));
    let ttl = FleetConfig { replica_ttl: Duration::from_secs(1), ..FleetConfig::new("redis://127.0.0.1:1/") };
    assert!(Fleet::new(&ttl).unwrap_err().to_string().contains("fleet.replica_ttl"));
    let secret = FleetConfig {
        secret_env: Some("ZT_TEST_UNSET_SECRET".into()),
        ..FleetConfig::new("redis://127.0.0.1:1/")
    };
    assert!(Fleet::new(&secret).unwrap_err().to_string().contains("ZT_TEST_UNSET_SECRET"));
    // The Debug form never shows the password either.
    assert!(!format!("{both:?}").contains("hunter2"));
    // A policy file with the section parses, and unknown fields are refused.
    let policy =
        Policy::from_toml_str("[fleet]\nurl = \"redis://127.0.0.1:6379/\"\nsync_interval = \"1s\"\n")
            .unwrap();
    assert_eq!(policy.fleet.unwrap().sync_interval, Duration::from_secs(1));
    assert!(Policy::from_toml_str("[fleet]\nurl = \"redis://127.0.0.1:6379/\"\nsync = \"1s\"\n").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_down_and_never_synced() {
    let port = free_port(); // nothing listens there
    let fleet = Fleet::new(&fast(FleetConfig::new(format!("redis://127.0.0.1:{port}/")), "down")).unwrap();
    assert!(!fleet.synced(Duration::from_millis(800)).await);
    assert!(!fleet.is_up());
    assert_eq!(fleet.sync_age(), None);
    let mut ping = redis::cmd("PING");
    ping.arg("x");
    assert!(fleet.query::<String>(&ping).await.is_err());
}

// --- A key removed from the issuer's set stops cached tokens on every replica ---

#[derive(Default)]
struct Jwks {
    document: Mutex<String>,
    max_age: AtomicUsize,
    hits: AtomicUsize,
}

async fn serve_jwks(State(s): State<Arc<Jwks>>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let body = s.document.lock().unwrap().clone();
    let cache = format!("max-age={}", s.max_age.load(Ordering::SeqCst));
    ([("content-type", "application/json".to_string()), ("cache-control", cache)], body).into_response()
}

async fn jwks_server(document: String, max_age: usize) -> (Arc<Jwks>, String) {
    let state = Arc::new(Jwks {
        document: Mutex::new(document),
        max_age: AtomicUsize::new(max_age),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/jwks", axum::routing::get(serve_jwks)).with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, format!("http://{addr}/jwks"))
}

fn replica(jwks_url: &str, fleet: Option<FleetConfig>) -> Guard {
    let mut routes = RouteTable::new();
    routes.add("GET", "/orders", zt::scopes::authenticated()).unwrap();
    let remote = RemoteKeysConfig {
        refresh_floor: Duration::from_millis(100),
        unknown_kid_refetch_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let mut builder = Policy::builder()
        .issuer(IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks_url(jwks_url))
        .remote_keys(remote);
    if let Some(fleet) = fleet {
        builder = builder.fleet(fleet);
    }
    Guard::new(builder.build()).unwrap().with_routes(&routes).unwrap()
}

async fn check(guard: &Guard, token: &str) -> Result<(), Reason> {
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "GET",
        path: "/orders",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt::BodyHint::Empty,
    };
    match guard.decide(&view).await {
        Decision::Admitted(_) => Ok(()),
        Decision::Rejected(r) => Err(r.reason()),
    }
}

/// Polls `guard` with `token` until it is refused; the time it took.
async fn until_refused(guard: &Guard, token: &str, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if check(guard, token).await == Err(Reason::UnknownKey) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_on_one_replica_stops_cached_tokens_on_all() {
    if !installed() {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let redis = RedisServer::start().expect("redis");
    let old = key(Algorithm::RS256);
    let new = rotated_rsa();
    // A long max-age: without the fleet, replicas would keep the old set for an hour.
    let (server, url) = jwks_server(jwks(&[old]), 3600).await;
    let fleet = fast(FleetConfig::new(redis.url()), "keys");
    let replicas: Vec<Guard> = (0..3).map(|_| replica(&url, Some(fleet.clone()))).collect();
    for guard in &replicas {
        guard.warm_up().await;
    }
    let old_token = sign(old, &claims("alice", "x"));
    for guard in &replicas {
        assert_eq!(check(guard, &old_token).await, Ok(()));
        assert_eq!(guard.cached_tokens(), 1, "cached on every replica");
    }

    // The issuer drops the old key. Replica 0 learns it from a token signed by the new key.
    *server.document.lock().unwrap() = jwks(&[new]);
    tokio::time::sleep(Duration::from_millis(150)).await; // past the refresh floor
    let new_token = sign(new, &claims("bob", "x"));
    assert_eq!(check(&replicas[0], &new_token).await, Ok(()));
    assert_eq!(check(&replicas[0], &old_token).await, Err(Reason::UnknownKey));
    for (i, guard) in replicas.iter().enumerate().skip(1) {
        let took = until_refused(guard, &old_token, Duration::from_secs(10)).await;
        eprintln!(
            "replica {i}: cached token of the removed key refused after {took:?} (sync interval 200 ms)"
        );
        assert!(took.is_some(), "replica {i} stops the cached token");
    }
    eprintln!("JWKS fetches in all: {}", server.hits.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_refresh_an_expired_key_set_without_any_uncached_token() {
    let old = key(Algorithm::RS256);
    let (server, url) = jwks_server(jwks(&[old]), 1).await;
    // No fleet: the replica's own refresh, driven by cached tokens alone.
    let guard = replica(&url, None);
    let token = sign(old, &claims("alice", "x"));
    assert_eq!(check(&guard, &token).await, Ok(()));
    *server.document.lock().unwrap() = jwks(&[rotated_rsa()]);
    let took = until_refused(&guard, &token, Duration::from_secs(10)).await;
    eprintln!("cached token refused {took:?} after its key left the set (max-age 1 s)");
    assert!(took.is_some(), "a cached token stops once the set's max-age has passed");
}
