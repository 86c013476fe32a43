//! Opaque access tokens: OAuth 2.0 token introspection (RFC 7662).
//!
//! An issuer may name an introspection endpoint (`[issuers.introspection]`). Then:
//!
//! - a token that is not a JWT (not three dot-separated parts with a decodable JSON JWS
//!   header) is sent to that endpoint, and
//! - with `opaque_only = true`, every token whose (unverified) `iss` names that issuer is
//!   introspected as well, even when it looks like a JWT.
//!
//! **Which issuer for an opaque token.** An opaque token names no issuer, and sending a
//! bearer token to an authorization server that did not issue it hands that server a live
//! credential. So zt never tries several endpoints in turn: at most one issuer of a policy
//! may configure introspection, and building the Guard fails otherwise.
//!
//! **The answer.** Only an RFC 7662 JSON answer (`application/json`, HTTP 200, at most
//! 64 KiB, strictly parsed: duplicate members refused) is accepted. `active: false` becomes
//! [`Reason::TokenInactive`] (401 `invalid_token`). For an
//! active token, `iss` (when present) must be the issuer, `exp`/`nbf`/`iat` are checked with
//! the issuer's leeway, `aud` must name one of the issuer's audiences (like a JWT: required
//! unless `dangerous_skip_audience_check`), and the issuer's `required_claims` and
//! `claim_values` apply. The members become the caller's [`Identity`]:
//! subject, scopes (`scope`), client id, `exp`, and `cnf` (so DPoP `jkt` and mTLS
//! `x5t#S256` bindings are enforced exactly as for JWTs).
//!
//! **JWT answers (RFC 9701).** With `jwt_response = true`, zt asks for
//! `application/token-introspection+jwt` and accepts only that: a JWS with
//! `typ: token-introspection+jwt`, signed with one of the issuer's keys (so the issuer needs
//! a key source; its algorithm pinned as for access tokens, `none` and `crit` refused),
//! whose `iss` is the issuer, whose `aud` names this client (`client_id`), with an `iat`,
//! and whose `token_introspection` member is the RFC 7662 answer. Encrypted answers are not
//! supported.
//!
//! **The cache never carries a decision.** Entries are keyed by SHA-256 over the issuer,
//! the endpoint and the token, and hold only the token's facts; every request checks those
//! facts again (times, audience) and the later stages evaluate the route's scopes on every
//! call (the lesson of Oathkeeper CVE-2021-32701). An active entry lives until the token's
//! `exp` or `cache_max` after the answer, whichever is first; an inactive one for
//! `inactive_ttl`. Failures are never cached. The cache holds at most `cache_capacity`
//! entries per issuer (default 10 000).
//!
//! **Bounded.** Concurrent requests with the same token share one call (single flight).
//! At most `max_concurrent` calls are in flight; a request that would need one more is not
//! queued but fails at once, per `fail_mode`. Each call has a `timeout`.
//!
//! **Failures** (endpoint down, slow, a non-200 status, an answer that is not RFC 7662,
//! too many calls in flight) are never a reason to admit: with `fail_mode = "closed"` (the
//! default) the caller gets 503 `introspection-unavailable` with `Retry-After`; with
//! `fail_mode = "invalid_token"` a 401 `invalid_token`, for clients that only recover by
//! fetching a new token. Each failure logs a WARN event (target `zt::introspection`, with
//! the issuer and the outcome, never the token or the client secret) and counts in
//! `zt_introspection_requests_total{outcome}`; answers count there too (`active`,
//! `inactive`), and cache hits in `zt_introspection_cache_hits_total`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = zt_core::Policy::from_toml_str(r#"
//!     [[issuers]]
//!     issuer = "https://as.example"
//!     audiences = ["orders-api"]
//!
//!     [issuers.introspection]
//!     endpoint = "https://as.example/oauth2/introspect"
//!     client_id = "orders-api"
//!     client_secret_env = "INTROSPECTION_SECRET"
//!     auth = "client_secret_basic"
//!     cache_max = "5m"
//!     inactive_ttl = "10s"
//!     timeout = "2s"
//!     max_concurrent = 16
//!     fail_mode = "closed"
//! "#)?;
//! let introspection = policy.issuers[0].introspection.as_ref().expect("configured");
//! assert_eq!(introspection.max_concurrent, 16);
//! // The issuer needs no key source: its tokens are introspected. Building the Guard
//! // (`Guard::new(policy)`) reads INTROSPECTION_SECRET, and fails naming the variable
//! // (never a value) when it is not set.
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::future::{BoxFuture, FutureExt, Shared, WeakShared};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::denial::Reason;
use crate::error::PolicyError;
use crate::identity::Identity;
use crate::policy::{IssuerConfig, RemoteKeysConfig};

/// Largest introspection answer read (bytes); a longer one is a failed call.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The media type of RFC 9701 answers.
const JWT_ANSWER: &str = "application/token-introspection+jwt";

/// Per-issuer introspection (RFC 7662), `[issuers.introspection]`. See the
/// [module documentation](self) for how tokens are chosen, cached and judged.
///
/// ```
/// use zt_core::introspect::{ClientAuth, IntrospectionConfig};
/// let config = IntrospectionConfig::new("https://as.example/introspect", "orders-api")
///     .client_secret_env("INTROSPECTION_SECRET");
/// assert_eq!(config.auth, ClientAuth::ClientSecretBasic);
/// assert_eq!(config.max_concurrent, 16);
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The introspection endpoint. `https`, or `http` for a loopback host only (or with
    /// `remote_keys.dangerous_allow_http`).
    pub endpoint: String,
    /// This resource server's client id at the authorization server.
    pub client_id: String,
    /// The environment variable holding the client secret (`client_secret_basic` and
    /// `client_secret_post`); read once, when the Guard is built. Never logged.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Or the client secret itself (prefer `client_secret_env`: a policy file is easily
    /// shared). Never shown by `Debug`.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// How zt authenticates to the endpoint (default `client_secret_basic`).
    #[serde(default)]
    pub auth: ClientAuth,
    /// For `private_key_jwt` (RFC 7523): the PEM file of the signing key (PKCS#8 EC P-256
    /// for `ES256`, RSA for `RS256`).
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// For `private_key_jwt`: `ES256` (default) or `RS256`.
    #[serde(default)]
    pub private_key_alg: Option<String>,
    /// Introspect every token of this issuer, JWTs included (default `false`: only tokens
    /// that are not JWTs).
    #[serde(default)]
    pub opaque_only: bool,
    /// Longest an active answer is reused (default 5 min); never beyond the token's `exp`.
    #[serde(default = "default_cache_max", with = "humantime_serde")]
    pub cache_max: Duration,
    /// How long an inactive answer is reused (default 10 s).
    #[serde(default = "default_inactive_ttl", with = "humantime_serde")]
    pub inactive_ttl: Duration,
    /// Most answers cached for this issuer (default 10 000).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
    /// Budget of one call, connection included (default 2 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most calls in flight at once (default 16); a request needing one more fails at once
    /// per `fail_mode`.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// What a request gets when the endpoint cannot answer (default `closed`: 503).
    #[serde(default)]
    pub fail_mode: IntrospectionFailMode,
    /// Ask for, and accept only, signed JWT answers (RFC 9701), verified with the issuer's
    /// keys (default `false`: RFC 7662 JSON).
    #[serde(default)]
    pub jwt_response: bool,
}

fn default_cache_max() -> Duration {
    Duration::from_secs(300)
}
fn default_inactive_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_cache_capacity() -> usize {
    10_000
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_max_concurrent() -> usize {
    16
}

impl IntrospectionConfig {
    /// Introspection at `endpoint` as `client_id`, with the defaults (`client_secret_basic`;
    /// name the secret's variable with [`IntrospectionConfig::client_secret_env`]).
    pub fn new(endpoint: impl Into<String>, client_id: impl Into<String>) -> Self {
        IntrospectionConfig {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret_env: None,
            client_secret: None,
            auth: ClientAuth::default(),
            private_key_file: None,
            private_key_alg: None,
            opaque_only: false,
            cache_max: default_cache_max(),
            inactive_ttl: default_inactive_ttl(),
            cache_capacity: default_cache_capacity(),
            timeout: default_timeout(),
            max_concurrent: default_max_concurrent(),
            fail_mode: IntrospectionFailMode::default(),
            jwt_response: false,
        }
    }

    /// Names the environment variable holding the client secret.
    pub fn client_secret_env(mut self, name: impl Into<String>) -> Self {
        self.client_secret_env = Some(name.into());
        self
    }

    /// Sets the client secret itself (prefer [`IntrospectionConfig::client_secret_env`]).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sets the client authentication method.
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }
}

impl std::fmt::Debug for IntrospectionConfig {
    // The secret is never shown, only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .field("private_key_file", &self.private_key_file)
            .field("private_key_alg", &self.private_key_alg)
            .field("opaque_only", &self.opaque_only)
            .field("cache_max", &self.cache_max)
            .field("inactive_ttl", &self.inactive_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("timeout", &self.timeout)
            .field("max_concurrent", &self.max_concurrent)
            .field("fail_mode", &self.fail_mode)
            .field("jwt_response", &self.jwt_response)
            .finish()
    }
}

/// Client authentication at the introspection endpoint (RFC 7662 s.2.1 requires one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 s.2.3.1), the default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with `private_key_file` (RFC 7523 s.2.2).
    PrivateKeyJwt,
}

/// What a request gets when introspection cannot answer. Neither mode admits: without an
/// answer there is no identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectionFailMode {
    /// 503 `introspection-unavailable` with `Retry-After` (default): the client retries.
    #[default]
    Closed,
    /// 401 `invalid_token`: the client fetches a new token.
    InvalidToken,
}

/// How one call authenticates.
enum Credentials {
    /// The precomputed `Authorization: Basic` value.
    Basic(String),
    Post {
        client_id: String,
        secret: String,
    },
    Jwt {
        client_id: String,
        key: Box<jsonwebtoken::EncodingKey>,
        alg: jsonwebtoken::Algorithm,
    },
}

/// The facts of one introspection answer, as cached. No decision: checked on every use.
pub(crate) enum Answer {
    Active {
        /// The answer's members (what the identity is built from).
        claims: Map<String, Value>,
        identity: Identity,
        exp: Option<u64>,
        nbf: Option<u64>,
        iat: Option<u64>,
        /// When this entry stops being reused.
        until: Instant,
    },
    Inactive {
        until: Instant,
    },
}

impl Answer {
    fn until(&self) -> Instant {
        match self {
            Answer::Active { until, .. } | Answer::Inactive { until } => *until,
        }
    }
}

/// Why a call gave no answer (the `outcome` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Timeout,
    Unreachable,
    Status,
    BadAnswer,
    Overloaded,
    /// The `private_key_jwt` assertion could not be signed.
    Assertion,
    /// An RFC 9701 answer whose signature, key, `typ`, `iss`, `aud` or `iat` is wrong.
    InvalidJwt,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Unreachable => "unreachable",
            Failure::Status => "bad_status",
            Failure::BadAnswer => "bad_answer",
            Failure::Overloaded => "overloaded",
            Failure::Assertion => "client_assertion_failed",
            Failure::InvalidJwt => "invalid_jwt_answer",
        }
    }
}

type CallFuture = BoxFuture<'static, Result<Arc<Answer>, Failure>>;
type Call = Shared<CallFuture>;
/// A call in flight, by its generation (so a finished call never unlists a newer one).
type InFlight = (u64, WeakShared<CallFuture>);

struct Inner {
    issuer: String,
    client_id: String,
    /// With `jwt_response`: the issuer's keys, which sign the answers.
    jwt_keys: Option<crate::keys::KeySource>,
    endpoint: String,
    client: reqwest::Client,
    credentials: Credentials,
    cache_max: Duration,
    inactive_ttl: Duration,
    timeout: Duration,
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Answer>>,
    /// Calls in flight by token digest. Weak: when every waiter is gone, the call is
    /// dropped (its [`Unlist`] removes the entry and its permit returns).
    inflight: Mutex<HashMap<[u8; 32], InFlight>>,
    generation: AtomicU64,
    permits: Arc<tokio::sync::Semaphore>,
}

/// The introspection of one issuer, compiled.
pub(crate) struct Introspector {
    inner: Arc<Inner>,
    pub(crate) opaque_only: bool,
    pub(crate) fail_mode: IntrospectionFailMode,
}

/// Removes a call's in-flight entry when the call ends or is dropped.
struct Unlist {
    inner: Arc<Inner>,
    key: [u8; 32],
    generation: u64,
}

impl Drop for Unlist {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inner.inflight.lock()
            && map.get(&self.key).is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.key);
        }
    }
}

fn secret_from_env(at: &str, config: &IntrospectionConfig) -> Result<String, PolicyError> {
    match (&config.client_secret, &config.client_secret_env) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::invalid(
                format!("{at}.client_secret"),
                "give client_secret or client_secret_env, not both",
            ));
        }
        (Some(secret), None) if !secret.is_empty() => return Ok(secret.clone()),
        (Some(_), None) => {
            return Err(PolicyError::invalid(format!("{at}.client_secret"), "must not be empty"));
        }
        (None, _) => {}
    }
    let Some(name) = config.client_secret_env.as_deref().filter(|n| !n.is_empty()) else {
        return Err(PolicyError::invalid(
            format!("{at}.client_secret_env"),
            "name the environment variable holding the client secret",
        ));
    };
    match std::env::var(name) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        // The variable's name only: never its value.
        _ => Err(PolicyError::invalid(
            format!("{at}.client_secret_env"),
            format!("the environment variable {name} is not set (or empty)"),
        )),
    }
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Introspector {
    /// Compiles `issuer`'s introspection; `at` names it in errors.
    pub(crate) fn new(
        issuer: &IssuerConfig,
        config: &IntrospectionConfig,
        at: &str,
        remote: &RemoteKeysConfig,
        keys: crate::keys::KeySource,
    ) -> Result<Introspector, PolicyError> {
        let at = format!("{at}.introspection");
        crate::keys::check_url(&config.endpoint, remote)
            .map_err(|m| PolicyError::invalid(format!("{at}.endpoint"), m.replace("key URLs", "URLs")))?;
        if config.client_id.is_empty() {
            return Err(PolicyError::invalid(format!("{at}.client_id"), "must not be empty"));
        }
        if config.max_concurrent == 0 {
            return Err(PolicyError::invalid(format!("{at}.max_concurrent"), "must be at least 1"));
        }
        if config.cache_capacity == 0 {
            return Err(PolicyError::invalid(format!("{at}.cache_capacity"), "must be at least 1"));
        }
        if config.timeout.is_zero() {
            return Err(PolicyError::invalid(format!("{at}.timeout"), "must be more than zero"));
        }
        let credentials = match config.auth {
            ClientAuth::ClientSecretBasic => {
                let secret = secret_from_env(&at, config)?;
                // RFC 6749 s.2.3.1: both are form-encoded before they are joined.
                let pair = format!("{}:{}", form_encode(&config.client_id), form_encode(&secret));
                Credentials::Basic(format!("Basic {}", STANDARD.encode(pair)))
            }
            ClientAuth::ClientSecretPost => Credentials::Post {
                client_id: config.client_id.clone(),
                secret: secret_from_env(&at, config)?,
            },
            ClientAuth::PrivateKeyJwt => {
                let Some(file) = &config.private_key_file else {
                    return Err(PolicyError::invalid(
                        format!("{at}.private_key_file"),
                        "private_key_jwt needs the PEM file of the signing key",
                    ));
                };
                let pem = std::fs::read(file).map_err(|e| {
                    PolicyError::invalid(format!("{at}.private_key_file"), format!("cannot read {file}: {e}"))
                })?;
                let (alg, key) = match config.private_key_alg.as_deref().unwrap_or("ES256") {
                    "ES256" => (jsonwebtoken::Algorithm::ES256, jsonwebtoken::EncodingKey::from_ec_pem(&pem)),
                    "RS256" => {
                        (jsonwebtoken::Algorithm::RS256, jsonwebtoken::EncodingKey::from_rsa_pem(&pem))
                    }
                    other => {
                        return Err(PolicyError::invalid(
                            format!("{at}.private_key_alg"),
                            format!("{other:?} is not supported (ES256 or RS256)"),
                        ));
                    }
                };
                // The parser's error may quote key material: say only what failed.
                let key = key.map_err(|_| {
                    PolicyError::invalid(
                        format!("{at}.private_key_file"),
                        format!("{file} is not a PEM private key for {alg:?}"),
                    )
                })?;
                Credentials::Jwt { client_id: config.client_id.clone(), key: Box::new(key), alg }
            }
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PolicyError::invalid(at.clone(), format!("cannot build the HTTP client: {e}")))?;
        Ok(Introspector {
            inner: Arc::new(Inner {
                issuer: issuer.issuer.clone(),
                client_id: config.client_id.clone(),
                jwt_keys: config.jwt_response.then_some(keys),
                endpoint: config.endpoint.clone(),
                client,
                credentials,
                cache_max: config.cache_max,
                inactive_ttl: config.inactive_ttl,
                timeout: config.timeout,
                cache: quick_cache::sync::Cache::new(config.cache_capacity),
                inflight: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                permits: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent)),
            }),
            opaque_only: config.opaque_only,
            fail_mode: config.fail_mode,
        })
    }

    /// The cache key: SHA-256 over issuer, endpoint and token (length-prefixed, so no two
    /// triples share an input).
    pub(crate) fn digest(&self, token: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [self.inner.issuer.as_bytes(), self.inner.endpoint.as_bytes(), token.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }

    /// The cached answer for a token digest, while it may still be reused.
    pub(crate) fn cached(&self, key: &[u8; 32]) -> Option<Arc<Answer>> {
        let hit = self.inner.cache.get(key)?;
        if hit.until() <= Instant::now() {
            self.inner.cache.remove(key);
            return None;
        }
        metrics::counter!("zt_introspection_cache_hits_total").increment(1);
        Some(hit)
    }

    /// What a request gets when the endpoint gave no answer (calls are counted where they
    /// are made; a refusal to call, `overloaded`, here).
    pub(crate) fn failed(&self, failure: Failure) -> Reason {
        if failure == Failure::Overloaded {
            metrics::counter!("zt_introspection_requests_total", "outcome" => failure.label()).increment(1);
        }
        tracing::warn!(
            target: "zt::introspection",
            issuer = %self.inner.issuer,
            outcome = failure.label(),
            "token introspection gave no answer; the request is refused"
        );
        match self.fail_mode {
            IntrospectionFailMode::Closed => Reason::IntrospectionUnavailable,
            IntrospectionFailMode::InvalidToken => Reason::TokenInactive,
        }
    }

    /// The answer for `token`: from the cache, from a call in flight for the same token,
    /// or from a new call when one more may be in flight.
    pub(crate) async fn answer(&self, token: &str) -> Result<Arc<Answer>, Failure> {
        let key = self.digest(token);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let call = {
            let Ok(mut map) = self.inner.inflight.lock() else { return Err(Failure::Overloaded) };
            match map.get(&key).and_then(|(_, weak)| weak.upgrade()) {
                Some(call) => call,
                None => {
                    // No queue: over the bound, refuse now rather than wait in line.
                    let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                        return Err(Failure::Overloaded);
                    };
                    let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
                    let unlist = Unlist { inner: self.inner.clone(), key, generation };
                    let inner = self.inner.clone();
                    let token = token.to_string();
                    let call: Call = async move {
                        let _permit = permit;
                        let _unlist = unlist;
                        let answer = inner.call(&token).await.map(Arc::new);
                        if let Ok(answer) = &answer {
                            inner.cache.insert(key, answer.clone());
                        }
                        answer
                    }
                    .boxed()
                    .shared();
                    if let Some(weak) = call.downgrade() {
                        map.insert(key, (generation, weak));
                    }
                    call
                }
            }
        };
        call.await
    }
}

impl Inner {
    /// One call to the endpoint (the whole exchange within `timeout`), counted by outcome.
    async fn call(&self, token: &str) -> Result<Answer, Failure> {
        let result = tokio::time::timeout(self.timeout, self.post(token)).await;
        let result = result.unwrap_or(Err(Failure::Timeout));
        let outcome = match &result {
            Ok(Answer::Active { .. }) => "active",
            Ok(Answer::Inactive { .. }) => "inactive",
            Err(failure) => failure.label(),
        };
        metrics::counter!("zt_introspection_requests_total", "outcome" => outcome).increment(1);
        result
    }

    async fn post(&self, token: &str) -> Result<Answer, Failure> {
        // The form is finished before any await (its serializer is not `Send`).
        let (body, authorization) = self.form(token)?;
        let media_type = if self.jwt_keys.is_some() { JWT_ANSWER } else { "application/json" };
        let mut request = self.client.post(&self.endpoint).header("accept", media_type);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { Failure::Timeout } else { Failure::Unreachable })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(Failure::Status);
        }
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type));
        if !json {
            return Err(Failure::BadAnswer);
        }
        let body = read_bounded(response).await?;
        match &self.jwt_keys {
            None => self.parse(&body),
            Some(keys) => {
                let answer = self.verify_jwt_answer(keys, &body).await?;
                self.parse_object(answer)
            }
        }
    }

    /// The request body (RFC 7662 s.2.1, with the client's credentials when they go in the
    /// form) and the `Authorization` value when they go there.
    fn form(&self, token: &str) -> Result<(String, Option<&str>), Failure> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("token_type_hint", "access_token");
        let mut authorization = None;
        match &self.credentials {
            Credentials::Basic(value) => authorization = Some(value.as_str()),
            Credentials::Post { client_id, secret } => {
                form.append_pair("client_id", client_id);
                form.append_pair("client_secret", secret);
            }
            Credentials::Jwt { client_id, key, alg } => {
                let now = crate::token::unix_now();
                let jti: [u8; 16] = rand::random();
                let claims = serde_json::json!({
                    "iss": client_id,
                    "sub": client_id,
                    "aud": self.endpoint,
                    "iat": now,
                    "exp": now + 60,
                    "jti": URL_SAFE_NO_PAD.encode(jti),
                });
                let assertion = jsonwebtoken::encode(&jsonwebtoken::Header::new(*alg), &claims, key)
                    .map_err(|_| Failure::Assertion)?;
                form.append_pair("client_id", client_id);
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", &assertion);
            }
        }
        Ok((form.finish(), authorization))
    }

    /// Reads an RFC 7662 answer: a JSON object whose `active` is a boolean.
    fn parse(&self, body: &[u8]) -> Result<Answer, Failure> {
        let Ok(Value::Object(claims)) = crate::json::parse(body, MAX_ANSWER_BYTES) else {
            return Err(Failure::BadAnswer);
        };
        self.parse_object(claims)
    }

    /// Verifies an RFC 9701 answer and returns its `token_introspection` member. The same
    /// order as for access tokens: structure, header, key (pinned algorithm), signature,
    /// and only then the claims.
    async fn verify_jwt_answer(
        &self,
        keys: &crate::keys::KeySource,
        body: &[u8],
    ) -> Result<Map<String, Value>, Failure> {
        use crate::keys::Lookup;
        let text = std::str::from_utf8(body).map_err(|_| Failure::InvalidJwt)?.trim();
        let mut parts = text.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::InvalidJwt);
        };
        let decode = |part: &str| -> Result<Map<String, Value>, Failure> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Failure::InvalidJwt)?;
            match crate::json::parse(&bytes, MAX_ANSWER_BYTES) {
                Ok(Value::Object(object)) => Ok(object),
                _ => Err(Failure::InvalidJwt),
            }
        };
        let header = decode(h64)?;
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case("token-introspection+jwt") || header.contains_key("crit") {
            return Err(Failure::InvalidJwt);
        }
        let algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .filter(|alg| !alg.eq_ignore_ascii_case("none"))
            .and_then(crate::keys::parse_algorithm)
            .ok_or(Failure::InvalidJwt)?;
        let kid = header.get("kid").and_then(Value::as_str);
        let key = match keys.lookup(kid, algorithm) {
            Lookup::Found(key) => key,
            Lookup::Fetch => {
                // A new signing key: fetch the set once (single-flighted), then decide.
                if let Some(refresh) = keys.refresh_for_lookup() {
                    let _ = refresh.await;
                }
                match keys.lookup(kid, algorithm) {
                    Lookup::Found(key) => key,
                    _ => return Err(Failure::InvalidJwt),
                }
            }
            Lookup::Missing | Lookup::Unavailable => return Err(Failure::InvalidJwt),
        };
        if key.algorithm != algorithm {
            return Err(Failure::InvalidJwt);
        }
        let message = &text.as_bytes()[..h64.len() + 1 + p64.len()];
        if !matches!(jsonwebtoken::crypto::verify(s64, message, &key.key, algorithm), Ok(true)) {
            return Err(Failure::InvalidJwt);
        }
        let mut claims = decode(p64)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Failure::InvalidJwt);
        }
        let for_us = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.client_id,
            Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !for_us || claims.get("iat").and_then(crate::token::numeric_date_value).is_none() {
            return Err(Failure::InvalidJwt);
        }
        match claims.remove("token_introspection") {
            Some(Value::Object(answer)) => Ok(answer),
            _ => Err(Failure::InvalidJwt),
        }
    }

    /// Reads the members of an RFC 7662 answer: `active` must be a boolean.
    fn parse_object(&self, mut claims: Map<String, Value>) -> Result<Answer, Failure> {
        let now = Instant::now();
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Ok(Answer::Inactive { until: now + self.inactive_ttl }),
            _ => return Err(Failure::BadAnswer),
        }
        let date = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(v) => crate::token::numeric_date_value(v).map(Some).ok_or(Failure::BadAnswer),
        };
        let (exp, nbf, iat) = (date("exp")?, date("nbf")?, date("iat")?);
        let mut lifetime = self.cache_max;
        if let Some(exp) = exp {
            lifetime = lifetime.min(Duration::from_secs(exp.saturating_sub(crate::token::unix_now())));
        }
        let identity = Identity::from_introspection(&self.issuer, claims.clone());
        Ok(Answer::Active { claims, identity, exp, nbf, iat, until: now + lifetime })
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Failure::BadAnswer);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(Failure::Timeout),
            Err(_) => return Err(Failure::Unreachable),
        }
    }
}

/// Whether `token` is a JWS compact JWT by its shape: three parts, the first a base64url
/// JSON object. Anything else is an opaque token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|v| v.is_object())
}

/// The unverified `iss` of a JWT-shaped token, only to tell whether an `opaque_only`
/// issuer must introspect it (nothing is trusted from it).
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_keys() -> crate::keys::KeySource {
        crate::keys::KeySource::Static(crate::keys::KeySet::default())
    }

    fn introspector(auth: ClientAuth) -> Result<Introspector, PolicyError> {
        let issuer = IssuerConfig::new("https://as.example").audience("api");
        let config = IntrospectionConfig {
            client_secret_env: Some("ZT_TEST_INTROSPECTION_SECRET_UNSET".into()),
            ..IntrospectionConfig::new("https://as.example/introspect", "api").auth(auth)
        };
        Introspector::new(&issuer, &config, "issuers[0]", &RemoteKeysConfig::default(), no_keys())
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"));
        assert!(!looks_like_jwt("2YotnFZFEjr1zCsicMWpAA"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.e30"));
        assert!(!looks_like_jwt("WyJ4Il0.e30.c2ln"), "a JSON array is not a JWS header");
    }

    #[test]
    fn a_missing_secret_is_named_by_its_variable_only() {
        let Err(error) = introspector(ClientAuth::ClientSecretBasic) else {
            panic!("built without a secret")
        };
        let text = error.to_string();
        assert!(text.contains("ZT_TEST_INTROSPECTION_SECRET_UNSET"), "{text}");
        assert!(introspector(ClientAuth::PrivateKeyJwt).is_err(), "private_key_jwt needs a key file");
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let issuer = IssuerConfig::new("https://as.example").audience("api");
        let remote = RemoteKeysConfig::default();
        let mut config =
            IntrospectionConfig::new("http://as.example/introspect", "api").auth(ClientAuth::PrivateKeyJwt);
        let Err(error) = Introspector::new(&issuer, &config, "issuers[0]", &remote, no_keys()) else {
            panic!("plain http accepted")
        };
        assert!(error.to_string().contains("endpoint"), "{error}");
        config.endpoint = "http://127.0.0.1:9/introspect".into();
        let Err(error) = Introspector::new(&issuer, &config, "issuers[0]", &remote, no_keys()) else {
            panic!("built without a key file")
        };
        assert!(error.to_string().contains("private_key_file"), "{error}");
    }

    #[test]
    fn digests_differ_by_issuer_endpoint_and_token() {
        let issuer = IssuerConfig::new("https://as.example").audience("api");
        let remote = RemoteKeysConfig::default();
        let build = |issuer: &IssuerConfig, endpoint: &str| {
            let config = IntrospectionConfig::new(endpoint, "api").client_secret("s");
            Introspector::new(issuer, &config, "issuers[0]", &remote, no_keys()).expect("builds")
        };
        let a = build(&issuer, "https://as.example/introspect");
        let b = build(&issuer, "https://as.example/introspect2");
        let c =
            build(&IssuerConfig::new("https://as2.example").audience("api"), "https://as.example/introspect");
        assert_eq!(a.digest("t"), a.digest("t"));
        assert_ne!(a.digest("t"), a.digest("u"));
        assert_ne!(a.digest("t"), b.digest("t"));
        assert_ne!(a.digest("t"), c.digest("t"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let config = IntrospectionConfig::new("https://as.example/i", "api").client_secret("hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn answers_are_rfc7662_objects_with_a_boolean_active() {
        let issuer = IssuerConfig::new("https://as.example").audience("api");
        let config = IntrospectionConfig::new("https://as.example/i", "api").client_secret("s");
        let introspector =
            Introspector::new(&issuer, &config, "issuers[0]", &RemoteKeysConfig::default(), no_keys())
                .expect("builds");
        let inner = &introspector.inner;
        assert!(matches!(inner.parse(br#"{"active":false}"#), Ok(Answer::Inactive { .. })));
        assert!(matches!(
            inner.parse(br#"{"active":true,"sub":"a","scope":"x y"}"#),
            Ok(Answer::Active { .. })
        ));
        assert_eq!(inner.parse(br#"{"active":"true"}"#).err(), Some(Failure::BadAnswer));
        assert_eq!(inner.parse(br#"{"sub":"a"}"#).err(), Some(Failure::BadAnswer));
        assert_eq!(inner.parse(br#"{"active":true,"active":false}"#).err(), Some(Failure::BadAnswer));
        assert_eq!(inner.parse(br#"{"active":true,"exp":"soon"}"#).err(), Some(Failure::BadAnswer));
        assert_eq!(inner.parse(b"[true]").err(), Some(Failure::BadAnswer));
    }
}
