//! The demo binaries as users run them: `ZT_*` environment variables, dev mode with printed
//! tokens, JWKS from a file and from a URL, report mode. Real processes, real HTTP on
//! 127.0.0.1. (`cargo test` builds the examples these tests start.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/orders/mod.rs"]
mod orders;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/demo_env-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join(name)
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

struct Demo {
    child: Child,
    addr: SocketAddr,
    stderr: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a demo and waits (bounded) until `/health` answers.
async fn start(name: &str, env: &[(&str, String)]) -> Demo {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match launch(name, env).await {
            Ok(demo) => return demo,
            // `free_addr` probes a port and releases it; a parallel test may bind it before
            // the demo does. Only that failure is retried, with fresh ports.
            Err(demo)
                if attempt < ATTEMPTS && demo.stderr.iter().any(|l| l.contains("Address already in use")) => {
            }
            Err(demo) => panic!("{name} did not come up; stderr: {:?}", demo.stderr),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// One start of a demo: `Err` with its stderr when it exits or does not answer in time.
async fn launch(name: &str, env: &[(&str, String)]) -> Result<Demo, Demo> {
    let addr = free_addr();
    let mut cmd = Command::new(example(name));
    cmd.env_clear()
        .env("ZT_LISTEN", addr.to_string())
        .env("ZT_METRICS_LISTEN", free_addr().to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e} (built by cargo test?)"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut demo = Demo { child, addr, stderr: Vec::new() };
    for _ in 0..300 {
        while let Ok(line) = rx.try_recv() {
            demo.stderr.push(line);
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let r = raw_request(addr, "GET", "/health", &[], None).await;
            if r.status == 200 {
                // Collect what was printed before the first request (the dev banner).
                tokio::time::sleep(Duration::from_millis(50)).await;
                while let Ok(line) = rx.try_recv() {
                    demo.stderr.push(line);
                }
                return Ok(demo);
            }
        }
        if let Ok(Some(_)) = demo.child.try_wait() {
            // Exited: collect its last words (the reader thread ends with the pipe).
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
                demo.stderr.push(line);
            }
            return Err(demo);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(demo)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_prints_working_tokens() {
    for name in ["axum_orders", "actix_orders"] {
        let demo = start(name, &[]).await;
        let tokens: Vec<&str> = demo.stderr.iter().filter_map(|l| l.strip_prefix("TOKEN=")).collect();
        assert_eq!(tokens.len(), 3, "{name}: {:?}", demo.stderr);
        assert!(demo.stderr.iter().any(|l| l.contains("DEV MODE")));
        let r =
            raw_request(demo.addr, "GET", "/orders", &[("authorization", &bearer(tokens[0]))], None).await;
        assert_eq!(r.status, 200, "{name}");
        let r = raw_request(demo.addr, "DELETE", "/orders/1", &[("authorization", &bearer(tokens[0]))], None)
            .await;
        assert_eq!(r.status, 403, "{name}");
        let r = raw_request(demo.addr, "DELETE", "/orders/1", &[("authorization", &bearer(tokens[2]))], None)
            .await;
        assert_eq!(r.status, 404, "{name}: admin may delete; there is no order 1");
        let jwks = raw_request(demo.addr, "GET", "/.well-known/jwks.json", &[], None).await;
        assert!(
            jwks.body.contains("\"kty\":\"EC\"") && !jwks.body.contains("\"d\""),
            "{name}: public key only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_issuer_audience_and_mode_from_the_environment() {
    let path = std::env::temp_dir().join(format!("zt-demo-jwks-{}.json", std::process::id()));
    std::fs::write(&path, trusted_jwks()).unwrap();
    let env = vec![
        ("ZT_JWKS", path.display().to_string()),
        ("ZT_ISSUER", ISSUER.to_string()),
        ("ZT_AUDIENCE", AUDIENCE.to_string()),
    ];
    for name in ["axum_orders", "actix_orders"] {
        let demo = start(name, &env).await;
        assert!(!demo.stderr.iter().any(|l| l.contains("DEV MODE")), "{name}");
        let reader = bearer(&token("alice", "orders:read"));
        assert_eq!(
            raw_request(demo.addr, "GET", "/orders", &[("authorization", &reader)], None).await.status,
            200
        );
        let r = post_json(demo.addr, "/orders", &reader, b"{\"item\":\"x\",\"quantity\":1}").await;
        assert_eq!(r.status, 403, "{name}");
        let mut report = env.clone();
        report.push(("ZT_MODE", "report".into()));
        drop(demo);
        let demo = start(name, &report).await;
        let r = post_json(demo.addr, "/orders", &reader, b"{\"item\":\"x\",\"quantity\":1}").await;
        assert_eq!(r.status, 201, "{name}: report mode forwards");
    }
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_from_the_environment() {
    // One demo in dev mode serves its JWKS; a second demo trusts it by URL.
    let issuer_demo = start("axum_orders", &[]).await;
    let token = issuer_demo.stderr.iter().find_map(|l| l.strip_prefix("TOKEN=")).unwrap().to_string();
    let url = format!("http://{}/.well-known/jwks.json", issuer_demo.addr);
    for name in ["axum_orders", "actix_orders"] {
        let demo = start(name, &[("ZT_JWKS", url.clone())]).await;
        let r = raw_request(demo.addr, "GET", "/orders", &[("authorization", &bearer(&token))], None).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
    }
}

#[test]
fn bad_environment_is_a_clear_startup_error() {
    for name in ["axum_orders", "actix_orders"] {
        let out = Command::new(example(name)).env_clear().env("ZT_MODE", "audit").output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ZT_MODE"), "{name}: {stderr}");
        let out = Command::new(example(name))
            .env_clear()
            .env("ZT_JWKS", "http://keys.invalid/jwks")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("issuers[0].jwks_url"), "{name}");
    }
}
