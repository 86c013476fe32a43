//! Shared by the integration tests and benchmarks: test keys for every algorithm, token
//! minting, and the two demo services started on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pki;

use std::net::SocketAddr;
use std::sync::OnceLock;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "orders-api";

/// A signing key with the JWK that publishes it.
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn load(file: &str, alg: Algorithm, kid: &str) -> TestKey {
    let pem = std::fs::read(format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"))).expect("test key");
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("valid test key");
    let jwk = Jwk::from_encoding_key(&encoding, alg).expect("jwk");
    let mut jwk = serde_json::to_value(jwk).expect("jwk json");
    jwk["kid"] = json!(kid);
    TestKey { alg, kid: kid.to_string(), encoding, jwk }
}

/// Every supported asymmetric algorithm, one trusted key each.
pub fn keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            load("rsa.pem", Algorithm::RS256, "rs256"),
            load("rsa.pem", Algorithm::RS384, "rs384"),
            load("rsa.pem", Algorithm::RS512, "rs512"),
            load("rsa.pem", Algorithm::PS256, "ps256"),
            load("rsa.pem", Algorithm::PS384, "ps384"),
            load("rsa.pem", Algorithm::PS512, "ps512"),
            load("ec256.pem", Algorithm::ES256, "es256"),
            load("ec384.pem", Algorithm::ES384, "es384"),
            load("ed25519.pem", Algorithm::EdDSA, "eddsa"),
        ]
    })
}

/// The trusted key for `alg`.
pub fn key(alg: Algorithm) -> &'static TestKey {
    keys().iter().find(|k| k.alg == alg).expect("key for alg")
}

/// Keys nobody trusts: a second RSA key (rotation) and an attacker's EC key.
pub fn rotated_rsa() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| load("rsa2.pem", Algorithm::RS256, "rs256-next"))
}
pub fn attacker_ec() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| load("attacker_ec256.pem", Algorithm::ES256, "es256"))
}

/// A JWK set document.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// The JWKS of all trusted keys.
pub fn trusted_jwks() -> String {
    jwks(&keys().iter().collect::<Vec<_>>())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Standard claims for `sub` with `scope`, valid for 10 minutes.
pub fn claims(sub: &str, scope: &str) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope, "iat": now, "exp": now + 600, "client_id": "test-client"})
}

/// Signs `claims` with `key`, header `kid` set.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

/// A token from the ES256 key.
pub fn token(sub: &str, scope: &str) -> String {
    sign(key(Algorithm::ES256), &claims(sub, scope))
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a hand-made header and payload and the given signature bytes.
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// Starts the axum demo on 127.0.0.1 with `guard`; returns its address.
pub async fn spawn_axum(guard: zt::Guard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = crate::orders::axum_app::app(guard, None).expect("demo app");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

/// Starts the actix demo on 127.0.0.1 in its own thread and runtime; returns its address.
pub fn spawn_actix(guard: zt::Guard) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let routes = crate::orders::actix_app::routes(guard, None).expect("routes");
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = crate::orders::actix_app::server(routes, listener, 1).expect("server");
            let _ = server.await;
        });
    });
    addr
}

/// The demo guard (demo contract enforced) for a policy.
pub fn demo_guard(policy: zt::Policy) -> zt::Guard {
    crate::orders::guard(policy).expect("demo guard")
}

/// The demo guard for a JWKS (inline), with issuer and audience of the tests.
pub fn policy_with_jwks(jwks: String) -> zt::Policy {
    zt::Policy::builder()
        .realm(AUDIENCE)
        .max_body_bytes(crate::orders::BODY_LIMIT)
        .issuer(zt::policy::IssuerConfig::new(ISSUER).audience(AUDIENCE).jwks(jwks))
        .build()
}

/// Signs a hand-made header (any members, e.g. `crit`) and claims with `key`.
pub fn sign_raw(key: &TestKey, header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, key.alg).expect("sign");
    format!("{message}.{signature}")
}

/// A response read off the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The problem `type`, when the body is a problem document.
    pub fn problem_type(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("type")?.as_str().map(str::to_string)
    }
}

/// `POST path` with a JSON body and an `Authorization` value (e.g. `Bearer ...`).
pub async fn post_json(addr: SocketAddr, path: &str, authorization: &str, body: &[u8]) -> RawResponse {
    raw_request(
        addr,
        "POST",
        path,
        &[("authorization", authorization), ("content-type", "application/json")],
        Some(body),
    )
    .await
}

/// A redis-server on a free 127.0.0.1 port (no persistence), stopped on drop; `None` when
/// `redis-server` is not installed or does not start. [`RedisServer::kill`] and
/// [`RedisServer::restart`] stop it and start it again, empty, on the same port (an outage,
/// then a restart that lost every key).
pub struct RedisServer {
    child: Option<std::process::Child>,
    /// Its port.
    pub port: u16,
}

#[allow(dead_code)]
impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut server = RedisServer { child: None, port };
        server.launch().then_some(server)
    }

    fn launch(&mut self) -> bool {
        let port = self.port.to_string();
        let Ok(child) = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            return false;
        };
        // Dropped (and the process killed) if it never accepts connections.
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill();
        false
    }

    /// The URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with no keys; true once it accepts connections.
    pub fn restart(&mut self) -> bool {
        self.kill();
        self.launch()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one HTTP/1.1 request exactly as given (no path normalization) and reads the whole
/// response. Raw on purpose: HTTP clients normalize the paths these tests must send.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> RawResponse {
    raw_request_from(None, addr, method, path, headers, body).await
}

/// [`raw_request`] from the client address `from` (a loopback address such as
/// `127.0.0.7`), so the server sees that peer without trusting any header.
pub async fn raw_request_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(from) = from {
        socket.bind(SocketAddr::new(from, 0)).expect("bind source");
    }
    let mut stream = socket.connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let chunked = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if let Some(body) = body
        && !chunked
    {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    RawResponse { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits (bounded) until `f` holds; a liveness helper, not a timing assertion.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    f()
}
