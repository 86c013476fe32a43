//! Revocation events: a Shared Signals (SSF 1.0) receiver for CAEP and RISC.
//!
//! A transmitter (the identity provider) pushes Security Event Tokens (SETs, RFC 8417) to
//! the policy's `[signals] push_path` (RFC 8935: `POST`, `Content-Type:
//! application/secevent+jwt`). Each SET is verified before anything is read from it:
//!
//! - a JWS whose header `typ` is `secevent+jwt` (RFC 8417 s.2.3) and whose `alg` is one of
//!   the allowed asymmetric algorithms (`none` and HMAC never are);
//! - signed by a key of the transmitter's JWK set (`jwks_url`, fetched and refreshed like
//!   an issuer's keys, or inline `jwks`);
//! - `iss` the configured transmitter, `aud` containing the configured audience, `iat` no
//!   older than `max_age` (nor in the future beyond one minute), no `exp` needed;
//! - `jti` never seen before: a bounded replay cache, and with a `[fleet]` also a
//!   `SET NX PX` record in the shared store, so a SET replayed to another replica is refused;
//! - an `events` object keyed by event-type URIs.
//!
//! A valid SET is answered `202 Accepted`; an invalid one `400` with the RFC 8935 error
//! body `{"err": "invalid_request" | "invalid_key" | "authentication_failed" |
//! "invalid_issuer" | "invalid_audience", "description": ...}` (a bad signature fails the
//! transmitter's authentication: `authentication_failed`).
//!
//! Events become runtime controls ([`crate::observe::Controls`]):
//!
//! | event | subject | control |
//! | --- | --- | --- |
//! | CAEP `session-revoked` | a session (`complex` with `session`, or `sid`) | the session's tokens (`sid` claim) revoked for `max_token_lifetime` |
//! | CAEP `session-revoked` | a user only | the user's tokens issued before the event revoked |
//! | CAEP `credential-change`, `token-claims-change` | a user | the user's tokens issued before the event revoked |
//! | RISC `account-disabled`, `account-purged` | a user | the subject blocked (`Target::Subject`) for `block_duration` |
//! | any of them | `jwt_id` | that token (`jti`) revoked |
//!
//! Subjects are RFC 9493 identifiers (`sub_id` in the SET, or `subject` in the event):
//! `iss_sub` and `opaque` name the token's `sub`, `email` names a `sub` that is the e-mail
//! address, `jwt_id` a token, `complex` a `user` and/or a `session`. Other formats and event
//! types are accepted (the SET is valid) and counted as ignored.
//!
//! With a fleet, every control an event becomes goes through the shared controls
//! ([`crate::fleet`]): written to the store (acknowledged before the push is answered),
//! pushed to every replica, loaded by a replica started later. When the store does not
//! answer, the control is applied on the receiving replica at once and written by the
//! background writer when the store is back (retried at each resync), so an accepted SET is
//! never lost by the fleet while its receiver runs.
//!
//! Every event is logged (target `zt::signals`, never the SET itself) and counted in
//! `zt_signals_events_total{event,outcome}`; `zt_signals_time_to_block_seconds{event}` is
//! the time from the event (its `event_timestamp`, else the SET's `iat`) to the control
//! being in place; `zt_signals_sets_total{outcome}` counts SETs by outcome.
//!
//! Poll delivery (RFC 8936): with `[signals.poll]`, [`SignalReceiver::poll_once`] POSTs
//! `{"maxEvents": n, "returnImmediately": true, "ack": [...], "setErrs": {...}}` to the
//! transmitter and handles the `sets` it answers, acknowledging them on the next poll;
//! [`SignalReceiver::spawn_poller`] does so every `interval`.
//!
//! ```
//! use zt_core::signals::SignalsConfig;
//!
//! let policy = zt_core::Policy::from_toml_str(r#"
//!     [signals]
//!     issuer = "https://idp.example"
//!     audience = "https://api.example"
//!     jwks_url = "https://idp.example/ssf/jwks"
//!     max_age = "5m"
//! "#).unwrap();
//! let signals: &SignalsConfig = policy.signals.as_ref().unwrap();
//! assert_eq!(signals.push_path, "/zt/signals/push");
//! assert_eq!(signals.block_duration, std::time::Duration::from_secs(86_400));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Reply;
use crate::controls_api::ControlError;
use crate::error::PolicyError;
use crate::guard::Guard;
use crate::keys::{KeyFetcher, KeySource, Lookup, ReqwestFetcher};
use crate::observe::{Observer, Target};
use crate::policy::IssuerConfig;

/// CAEP session revoked.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP credential change.
pub const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// CAEP token claims change.
pub const TOKEN_CLAIMS_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
/// RISC account disabled.
pub const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC account purged.
pub const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";

/// The largest SET accepted.
pub const MAX_SET_BYTES: usize = 64 * 1024;

/// How far in the future a SET's `iat` may be (clock skew).
const FUTURE_SKEW: Duration = Duration::from_secs(60);

/// The policy's `[signals]` section: the transmitter and what its events do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// The transmitter's issuer: every SET's `iss`.
    pub issuer: String,
    /// What every SET's `aud` must contain (this receiver).
    pub audience: String,
    /// The transmitter's JWK set URL (https, or http on loopback).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The transmitter's JWK set, inline (instead of `jwks_url`).
    #[serde(default)]
    pub jwks: Option<String>,
    /// Allowed JWS algorithms (asymmetric only). Default: RS256, PS256, ES256, ES384, EdDSA.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Where SETs are pushed (RFC 8935). Default `/zt/signals/push`.
    #[serde(default = "default_push_path")]
    pub push_path: String,
    /// The environment variable holding the exact `Authorization` header value the
    /// transmitter sends with each push (SSF's `authorization_header` of the stream's
    /// delivery, e.g. `Bearer 3f...`). When set, a push without it (or with another value)
    /// gets 401 `authentication_failed` before the SET is read; the SET's signature is
    /// checked in any case. At least 16 characters; read once when the receiver is built.
    #[serde(default)]
    pub push_authorization_env: Option<String>,
    /// The same value given in code (from a secret manager), instead of
    /// `push_authorization_env`; never read from or written to a policy file.
    #[serde(skip)]
    pub push_authorization: Option<PushAuthorization>,
    /// Poll delivery (RFC 8936), beside or instead of push.
    #[serde(default)]
    pub poll: Option<PollConfig>,
    /// Oldest `iat` accepted (default 5 minutes): also how long a `jti` is remembered.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// Most SET ids remembered against replay (default 100 000).
    #[serde(default = "default_replay_capacity")]
    pub replay_capacity: usize,
    /// The longest lifetime of an access token this API accepts (default 24 h): how long a
    /// session or issued-before revocation is held (no token it covers outlives it).
    #[serde(default = "default_day", with = "humantime_serde")]
    pub max_token_lifetime: Duration,
    /// How long an `account-disabled` / `account-purged` subject stays blocked (default 24 h).
    #[serde(default = "default_day", with = "humantime_serde")]
    pub block_duration: Duration,
}

/// The `Authorization` header value a transmitter must send with each push, given in
/// code ([`SignalsConfig::push_authorization`]). Its `Debug` never shows it.
///
/// ```
/// let value = zt_core::signals::PushAuthorization::new("Bearer 0123456789abcdef");
/// assert!(!format!("{value:?}").contains("0123"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PushAuthorization(Arc<str>);

impl PushAuthorization {
    /// The header value, exactly as the transmitter sends it (e.g. `Bearer <token>`).
    pub fn new(value: impl Into<String>) -> PushAuthorization {
        PushAuthorization(value.into().into())
    }
}

impl std::fmt::Debug for PushAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushAuthorization(<redacted>)")
    }
}

/// `[signals.poll]`: RFC 8936 poll delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The transmitter's poll endpoint (https, or http on loopback).
    pub endpoint: String,
    /// Time between polls (default 30 s).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// The environment variable holding the bearer token for the poll endpoint.
    #[serde(default)]
    pub token_env: Option<String>,
    /// `maxEvents` per poll (default 100).
    #[serde(default = "default_max_events")]
    pub max_events: u32,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "ES384", "EdDSA"].iter().map(|s| s.to_string()).collect()
}
fn default_push_path() -> String {
    "/zt/signals/push".into()
}
fn default_max_age() -> Duration {
    Duration::from_secs(300)
}
fn default_replay_capacity() -> usize {
    100_000
}
fn default_day() -> Duration {
    Duration::from_secs(86_400)
}
fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_max_events() -> u32 {
    100
}

impl SignalsConfig {
    /// A receiver for SETs from `issuer` addressed to `audience`; give it keys with
    /// [`SignalsConfig::jwks_url`] or [`SignalsConfig::jwks`].
    ///
    /// ```
    /// let config = zt_core::signals::SignalsConfig::new("https://idp.example", "api")
    ///     .jwks_url("https://idp.example/jwks");
    /// assert_eq!(config.max_age, std::time::Duration::from_secs(300));
    /// ```
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        SignalsConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            jwks: None,
            algorithms: default_algorithms(),
            push_path: default_push_path(),
            push_authorization_env: None,
            push_authorization: None,
            poll: None,
            max_age: default_max_age(),
            replay_capacity: default_replay_capacity(),
            max_token_lifetime: default_day(),
            block_duration: default_day(),
        }
    }

    /// The transmitter's JWK set URL.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// The transmitter's JWK set, inline.
    pub fn jwks(mut self, json: impl Into<String>) -> Self {
        self.jwks = Some(json.into());
        self
    }
}

/// Why a SET was refused: the RFC 8935 s.2.4 error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Malformed, wrong `typ`, stale, replayed, or without events.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// No acceptable key for the SET (unknown `kid`, algorithm not allowed, keys unavailable).
    #[error("invalid_key: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify: the transmitter is not authenticated.
    #[error("authentication_failed: {0}")]
    AuthenticationFailed(&'static str),
    /// `iss` is not the configured transmitter.
    #[error("invalid_issuer: the SET's issuer is not the configured transmitter")]
    InvalidIssuer,
    /// `aud` does not name this receiver.
    #[error("invalid_audience: the SET is not addressed to this receiver")]
    InvalidAudience,
}

impl SetError {
    /// The RFC 8935 `err` code.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::InvalidRequest(_) => "invalid_request",
            SetError::InvalidKey(_) => "invalid_key",
            SetError::AuthenticationFailed(_) => "authentication_failed",
            SetError::InvalidIssuer => "invalid_issuer",
            SetError::InvalidAudience => "invalid_audience",
        }
    }

    /// The human-readable description (never the SET's content).
    pub fn description(&self) -> String {
        match self {
            SetError::InvalidRequest(d) | SetError::InvalidKey(d) | SetError::AuthenticationFailed(d) => {
                (*d).to_string()
            }
            SetError::InvalidIssuer => "the SET's issuer is not the configured transmitter".into(),
            SetError::InvalidAudience => "the SET is not addressed to this receiver".into(),
        }
    }

    fn reply(&self) -> Reply {
        Reply {
            status: 400,
            headers: vec![("content-type", "application/json".into()), ("cache-control", "no-store".into())],
            body: json!({"err": self.code(), "description": self.description()}).to_string(),
        }
    }
}

/// What one event of a SET did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The event type URI.
    pub event: String,
    /// `applied`, `ignored` (unknown type), `unsupported_subject`, or `failed`.
    pub outcome: &'static str,
}

/// A verified SET: its id and what its events did.
#[derive(Debug, Clone)]
pub struct Received {
    /// The SET's `jti`.
    pub jti: String,
    /// Each event's outcome.
    pub events: Vec<Applied>,
}

/// The receiver: verifies SETs and turns their events into controls. Cheap to clone.
///
/// Built from a Guard whose policy has `[signals]` and `[observe]` (the controls live in
/// the observer); adapters mount it with their routers' `signals()`.
///
/// ```
/// use zt_core::{policy::{IssuerConfig, Policy}, signals::{SignalReceiver, SignalsConfig}, Guard};
///
/// let mut policy = Policy::builder()
///     .issuer(IssuerConfig::new("https://issuer.example").audience("api")
///         .jwks_url("https://issuer.example/jwks"))
///     .build();
/// policy.observe = Some(Default::default());
/// policy.signals = Some(SignalsConfig::new("https://idp.example", "api").jwks_url("https://idp.example/jwks"));
/// let receiver = SignalReceiver::new(&Guard::new(policy).unwrap()).unwrap();
/// let reply = futures_util::FutureExt::now_or_never(
///     receiver.push(Some(b"application/json"), b"{}")).unwrap();
/// assert_eq!(reply.status(), 400);
/// ```
#[derive(Clone)]
pub struct SignalReceiver {
    inner: Arc<Inner>,
}

struct Inner {
    config: SignalsConfig,
    keys: KeySource,
    algorithms: Vec<Algorithm>,
    observer: Observer,
    replay: Mutex<HashMap<String, u64>>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::Fleet>,
    http: reqwest::Client,
    /// The `Authorization` value a push must carry (`push_authorization_env`); never logged.
    push_authorization: Option<String>,
    /// Poll acknowledgements and errors owed to the transmitter.
    owed: Mutex<(Vec<String>, Map<String, Value>)>,
}

impl std::fmt::Debug for SignalReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalReceiver").field("issuer", &self.inner.config.issuer).finish_non_exhaustive()
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn check_url(url: &str, at: &str) -> Result<(), PolicyError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| PolicyError::invalid(at, "not a URL"))?;
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(PolicyError::invalid(at, "must use https (http is allowed for loopback only)")),
    }
}

impl SignalReceiver {
    /// The receiver of the guard's `[signals]`. Errors: no `[signals]`, no `[observe]`, no
    /// or two key sources, a non-https URL, an unknown or symmetric algorithm.
    pub fn new(guard: &Guard) -> Result<SignalReceiver, PolicyError> {
        let shared = &guard.shared;
        let config = shared
            .policy
            .signals
            .clone()
            .ok_or_else(|| PolicyError::invalid("signals", "the policy has no [signals] section"))?;
        let observer = guard
            .observer()
            .cloned()
            .ok_or_else(|| PolicyError::invalid("signals", "the receiver needs monitoring on ([observe])"))?;
        let mut issuer = IssuerConfig::new(&config.issuer);
        issuer.jwks_url = config.jwks_url.clone();
        issuer.jwks = config.jwks.clone();
        if issuer.jwks_url.is_none() && issuer.jwks.is_none() {
            return Err(PolicyError::invalid("signals", "give the transmitter's keys: jwks_url or jwks"));
        }
        let remote = &shared.policy.remote_keys;
        let fetcher: Arc<dyn KeyFetcher> = Arc::new(
            ReqwestFetcher::new(remote.timeout, remote.max_document_bytes)
                .map_err(|e| PolicyError::invalid("signals", e.0))?,
        );
        let keys = KeySource::from_config(&issuer, "signals", remote, &fetcher)?;
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let alg = crate::keys::parse_algorithm(name)
                .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
                .ok_or_else(|| {
                    PolicyError::invalid(
                        "signals.algorithms",
                        format!("{name:?} is not an asymmetric JWS algorithm"),
                    )
                })?;
            algorithms.push(alg);
        }
        if !config.push_path.starts_with('/') {
            return Err(PolicyError::invalid("signals.push_path", "must start with '/'"));
        }
        if let Some(poll) = &config.poll {
            check_url(&poll.endpoint, "signals.poll.endpoint")?;
        }
        let push_authorization = match &config.push_authorization_env {
            None => match &config.push_authorization {
                Some(value) if value.0.trim().len() >= 16 => Some(value.0.trim().to_string()),
                Some(_) => {
                    return Err(PolicyError::invalid(
                        "signals.push_authorization",
                        "the value is shorter than 16 characters",
                    ));
                }
                None => None,
            },
            Some(var) => {
                let value = PolicyError::secret_from_env("signals.push_authorization_env", var, 16)?;
                // Compared as the header arrives, trimmed: the trimmed value is held to the bound.
                if value.trim().len() < 16 {
                    return Err(PolicyError::invalid(
                        "signals.push_authorization_env",
                        format!("the secret in {var} must be at least 16 bytes"),
                    ));
                }
                Some(value.trim().to_string())
            }
        };
        let http = reqwest::Client::builder()
            .timeout(remote.timeout.max(Duration::from_secs(1)))
            .build()
            .map_err(|_| PolicyError::invalid("signals", "cannot build the HTTP client"))?;
        let receiver = SignalReceiver {
            inner: Arc::new(Inner {
                config,
                keys,
                algorithms,
                observer,
                replay: Mutex::new(HashMap::new()),
                #[cfg(feature = "redis")]
                fleet: shared.fleet.clone(),
                http,
                push_authorization,
                owed: Mutex::new((Vec::new(), Map::new())),
            }),
        };
        Ok(receiver)
    }

    /// The configuration.
    pub fn config(&self) -> &SignalsConfig {
        &self.inner.config
    }

    /// The RFC 8935 answer to a pushed SET: `202` once verified and applied, `400` with the
    /// error body otherwise, `401` when `push_authorization_env` is set and the request's
    /// `Authorization` (`authorization`) is not that value.
    pub async fn push_authorized(
        &self,
        authorization: Option<&[u8]>,
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> Reply {
        if let Some(expected) = &self.inner.push_authorization {
            let given = authorization.map(<[u8]>::trim_ascii).unwrap_or_default();
            // Constant time in the value: the comparison must not reveal how much matched.
            if !crate::dpop::constant_time_eq(given, expected.as_bytes()) {
                let e = self.refused(&SetError::AuthenticationFailed(
                    "the push did not carry the transmitter's authorization",
                ));
                let mut reply = e.reply();
                reply.status = 401;
                reply.headers.push(("www-authenticate", "Bearer".into()));
                return reply;
            }
        }
        self.push_unchecked(content_type, body).await
    }

    /// [`SignalReceiver::push_authorized`] without the request's `Authorization`: refused
    /// with 401 when the policy sets `push_authorization_env`.
    pub async fn push(&self, content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        self.push_authorized(None, content_type, body).await
    }

    async fn push_unchecked(&self, content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        let media = content_type
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.split(';').next())
            .map(str::trim);
        if !media.is_some_and(|m| m.eq_ignore_ascii_case("application/secevent+jwt")) {
            return self
                .refused(&SetError::InvalidRequest("the body must be application/secevent+jwt"))
                .reply();
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return self.refused(&SetError::InvalidRequest("the SET is not text")).reply();
        };
        match self.receive(text.trim()).await {
            Ok(_) => Reply {
                status: 202,
                headers: vec![("cache-control", "no-store".into())],
                body: String::new(),
            },
            Err(e) => e.reply(),
        }
    }

    fn refused(&self, e: &SetError) -> SetError {
        metrics::counter!("zt_signals_sets_total", "outcome" => e.code()).increment(1);
        tracing::warn!(target: "zt::signals", err = e.code(), description = %e.description(), "security event token refused");
        e.clone()
    }

    /// Verifies one SET (signature, `typ`, `iss`, `aud`, `iat`, replay) and applies its
    /// events. The entry point of push and poll delivery alike.
    pub async fn receive(&self, set: &str) -> Result<Received, SetError> {
        let claims = self.verify(set).await.map_err(|e| self.refused(&e))?;
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_string();
        self.check_replay(&claims, &jti).await.map_err(|e| self.refused(&e))?;
        metrics::counter!("zt_signals_sets_total", "outcome" => "accepted").increment(1);
        let events = self.apply(&claims, &jti).await;
        Ok(Received { jti, events })
    }

    /// Signature and claims; the claims once every check passed.
    async fn verify(&self, set: &str) -> Result<Map<String, Value>, SetError> {
        let malformed = SetError::InvalidRequest("the SET is not a compact JWS");
        let mut parts = set.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(malformed.clone())?;
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
        let typ_ok =
            typ.eq_ignore_ascii_case("secevent+jwt") || typ.eq_ignore_ascii_case("application/secevent+jwt");
        if !typ_ok {
            return Err(SetError::InvalidRequest("the SET's typ must be secevent+jwt"));
        }
        if header.get("crit").is_some() {
            return Err(SetError::InvalidRequest("unsupported critical header"));
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        let algorithm = crate::keys::parse_algorithm(alg)
            .filter(|a| self.inner.algorithms.contains(a))
            .ok_or(SetError::InvalidKey("the SET's algorithm is not allowed"))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let mut lookup = self.inner.keys.lookup(kid, algorithm);
        if matches!(lookup, Lookup::Fetch | Lookup::Unavailable)
            && let Some(refresh) = self.inner.keys.refresh_for_lookup()
        {
            let _ = refresh.await;
            lookup = self.inner.keys.lookup(kid, algorithm);
        }
        let key = match lookup {
            Lookup::Found(key) if key.algorithm == algorithm => key,
            Lookup::Found(_) => return Err(SetError::InvalidKey("the key does not take this algorithm")),
            Lookup::Missing | Lookup::Fetch => {
                return Err(SetError::InvalidKey("no key of the transmitter matches"));
            }
            Lookup::Unavailable => {
                return Err(SetError::InvalidKey("the transmitter's keys are unavailable"));
            }
        };
        let message = &set.as_bytes()[..h64.len() + 1 + p64.len()];
        if !jsonwebtoken::crypto::verify(s64, message, &key.key, algorithm).unwrap_or(false) {
            return Err(SetError::AuthenticationFailed("the SET's signature does not verify"));
        }
        let claims: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(p64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(SetError::InvalidRequest("the SET's claims are not a JSON object"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.inner.config.issuer.as_str()) {
            return Err(SetError::InvalidIssuer);
        }
        let audience = self.inner.config.audience.as_str();
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(SetError::InvalidAudience);
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or(SetError::InvalidRequest("the SET has no iat"))?;
        let now = secs(self.inner.observer.now()) as f64;
        if iat + self.inner.config.max_age.as_secs_f64() < now {
            return Err(SetError::InvalidRequest("the SET is older than max_age"));
        }
        if iat > now + FUTURE_SKEW.as_secs_f64() {
            return Err(SetError::InvalidRequest("the SET's iat is in the future"));
        }
        if claims.get("jti").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(SetError::InvalidRequest("the SET has no jti"));
        }
        if claims.get("events").and_then(Value::as_object).is_none_or(|e| e.is_empty()) {
            return Err(SetError::InvalidRequest("the SET has no events"));
        }
        Ok(claims)
    }

    /// Refuses a `jti` seen before: locally (bounded, for `max_age` after `iat`), and
    /// fleet-wide with a fleet.
    async fn check_replay(&self, claims: &Map<String, Value>, jti: &str) -> Result<(), SetError> {
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0).max(0.0) as u64;
        let until =
            iat.saturating_add(self.inner.config.max_age.as_secs()).saturating_add(FUTURE_SKEW.as_secs());
        let now = secs(self.inner.observer.now());
        {
            let mut seen = self.inner.replay.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.get(jti).is_some_and(|u| *u > now) {
                return Err(SetError::InvalidRequest("the SET was already received (replayed jti)"));
            }
            if seen.len() >= self.inner.config.replay_capacity {
                seen.retain(|_, u| *u > now);
                if seen.len() >= self.inner.config.replay_capacity {
                    // Forgetting a live jti would let it be replayed: refuse instead.
                    return Err(SetError::InvalidRequest("too many recent SETs; retry later"));
                }
            }
            seen.insert(jti.to_string(), until);
        }
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.inner.fleet {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{}\n{jti}", self.inner.config.issuer).as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let ttl_ms = until.saturating_sub(now).max(1).saturating_mul(1000);
            let mut record = redis::cmd("SET");
            record.arg(fleet.key(&format!("set:{hex}"))).arg(1).arg("NX").arg("PX").arg(ttl_ms);
            match fleet.query::<Option<String>>(&record).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(SetError::InvalidRequest("the SET was already received (replayed jti)"));
                }
                Err(_) => {
                    tracing::warn!(target: "zt::signals", "SET replay checked on this replica only: the shared store did not answer");
                }
            }
        }
        Ok(())
    }

    /// Applies each event.
    async fn apply(&self, claims: &Map<String, Value>, jti: &str) -> Vec<Applied> {
        let mut out = Vec::new();
        let Some(events) = claims.get("events").and_then(Value::as_object) else { return out };
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0);
        for (uri, payload) in events {
            let subject = payload.get("subject").or_else(|| claims.get("sub_id"));
            let subject = Subject::read(subject, payload.get("sid").or_else(|| claims.get("sid")));
            let at = payload.get("event_timestamp").and_then(Value::as_f64).unwrap_or(iat).max(0.0);
            let event_time = UNIX_EPOCH + Duration::from_secs_f64(at.min(1e12));
            let outcome = self.apply_one(uri, &subject, event_time).await;
            let name: &'static str = KNOWN
                .iter()
                .find(|k| **k == uri.as_str())
                .and_then(|k| k.rsplit('/').next())
                .unwrap_or("unknown");
            metrics::counter!("zt_signals_events_total", "event" => name, "outcome" => outcome).increment(1);
            if outcome == "applied" || outcome == "applied_locally" {
                let waited = self.inner.observer.now().duration_since(event_time).unwrap_or_default();
                metrics::histogram!("zt_signals_time_to_block_seconds", "event" => name)
                    .record(waited.as_secs_f64());
            }
            tracing::info!(target: "zt::signals", event = name, outcome, set_jti = %jti, transmitter = %self.inner.config.issuer, "security event");
            out.push(Applied { event: uri.clone(), outcome });
        }
        out
    }

    /// One event as a control: written through the shared store when there is one
    /// (`applied`); when the store does not answer, in place on this replica and written
    /// when it is back (`applied_locally`, WARN); `failed` when the bounded lists are full.
    async fn apply_one(&self, uri: &str, subject: &Subject, at: SystemTime) -> &'static str {
        let controls = self.inner.observer.controls();
        let config = &self.inner.config;
        let now = self.inner.observer.now();
        let hold = now + config.max_token_lifetime;
        let settle = |confirmed: Result<(), ControlError>, fallback: &dyn Fn() -> bool| match confirmed {
            Ok(()) => "applied",
            Err(ControlError::StoreUnavailable { .. }) => {
                tracing::warn!(target: "zt::signals", "the shared store did not answer: the control is in place on this replica and written when the store is back");
                if fallback() { "applied_locally" } else { "failed" }
            }
            Err(_) => "failed",
        };
        match uri {
            SESSION_REVOKED | CREDENTIAL_CHANGE | TOKEN_CLAIMS_CHANGE => {
                if let Some(jti) = &subject.jti {
                    let confirmed = controls.revoke_confirmed(jti, hold).await;
                    return settle(confirmed, &|| controls.revoke(jti, hold).is_ok());
                }
                if uri == SESSION_REVOKED
                    && let Some(sid) = &subject.session
                {
                    let confirmed = controls.revoke_session_confirmed(sid, hold).await;
                    return settle(confirmed, &|| controls.revoke_session(sid, hold).is_ok());
                }
                match &subject.user {
                    // Tokens issued before the event; none issued then outlives `hold`.
                    Some(user) => {
                        let confirmed = controls.revoke_issued_before_confirmed(user, at, hold).await;
                        settle(confirmed, &|| controls.revoke_issued_before(user, at, hold).is_ok())
                    }
                    None => "unsupported_subject",
                }
            }
            ACCOUNT_DISABLED | ACCOUNT_PURGED => {
                if let Some(jti) = &subject.jti {
                    let confirmed = controls.revoke_confirmed(jti, hold).await;
                    return settle(confirmed, &|| controls.revoke(jti, hold).is_ok());
                }
                match &subject.user {
                    Some(user) => {
                        let reason = if uri == ACCOUNT_DISABLED {
                            "signals:account-disabled"
                        } else {
                            "signals:account-purged"
                        };
                        let target = Target::Subject(user.clone());
                        let confirmed = controls
                            .block_target_confirmed(target.clone(), config.block_duration, reason)
                            .await
                            .map(drop);
                        settle(confirmed, &|| {
                            controls.block_target(target.clone(), config.block_duration, reason);
                            true
                        })
                    }
                    None => "unsupported_subject",
                }
            }
            _ => "ignored",
        }
    }

    /// One RFC 8936 poll: sends the acknowledgements and errors owed, handles the SETs the
    /// transmitter answers, and owes their acknowledgement (or error) to the next poll.
    /// Returns how many SETs were received (valid or not).
    pub async fn poll_once(&self) -> Result<usize, PollError> {
        let poll = self.inner.config.poll.as_ref().ok_or(PollError::NotConfigured)?;
        let (ack, errs) = {
            let mut owed = self.inner.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (std::mem::take(&mut owed.0), std::mem::take(&mut owed.1))
        };
        let mut body = json!({"maxEvents": poll.max_events, "returnImmediately": true, "ack": ack});
        if !errs.is_empty() {
            body["setErrs"] = Value::Object(errs.clone());
        }
        let mut request = self
            .inner
            .http
            .post(&poll.endpoint)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(var) = &poll.token_env {
            let token = std::env::var(var).map_err(|_| PollError::MissingToken)?;
            request = request.bearer_auth(token);
        }
        let restore = |ack: Vec<String>, errs: Map<String, Value>| {
            let mut owed = self.inner.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            owed.0.extend(ack);
            owed.1.extend(errs);
        };
        let response = match request.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                restore(ack, errs);
                return Err(PollError::Status(r.status().as_u16()));
            }
            Err(_) => {
                restore(ack, errs);
                return Err(PollError::Unreachable);
            }
        };
        let bytes = response.bytes().await.map_err(|_| PollError::Malformed)?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| PollError::Malformed)?;
        let sets = answer.get("sets").and_then(Value::as_object).ok_or(PollError::Malformed)?;
        let mut acked = Vec::new();
        let mut failed = Map::new();
        for (id, set) in sets {
            let Some(set) = set.as_str() else { continue };
            match self.receive(set).await {
                Ok(_) => acked.push(id.clone()),
                Err(e) => {
                    failed.insert(id.clone(), json!({"err": e.code(), "description": e.description()}));
                }
            }
        }
        let count = sets.len();
        restore(acked, failed);
        Ok(count)
    }

    /// Polls every `interval` on the current Tokio runtime until the receiver is dropped;
    /// false when there is no `[signals.poll]` or no runtime.
    pub fn spawn_poller(&self) -> bool {
        let Some(poll) = &self.inner.config.poll else { return false };
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return false };
        let weak = Arc::downgrade(&self.inner);
        let interval = poll.interval.max(Duration::from_millis(100));
        handle.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let receiver = SignalReceiver { inner };
                if let Err(e) = receiver.poll_once().await {
                    tracing::warn!(target: "zt::signals", error = %e, "polling the transmitter failed");
                }
                drop(receiver);
                tokio::time::sleep(interval).await;
            }
        });
        true
    }
}

const KNOWN: &[&str] =
    &[SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, ACCOUNT_DISABLED, ACCOUNT_PURGED];

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The policy has no `[signals.poll]`.
    #[error("no [signals.poll] is configured")]
    NotConfigured,
    /// The bearer token's environment variable is not set.
    #[error("the poll token's environment variable is not set")]
    MissingToken,
    /// The transmitter could not be reached (or timed out).
    #[error("the transmitter's poll endpoint could not be reached")]
    Unreachable,
    /// The transmitter answered with this status.
    #[error("the transmitter's poll endpoint answered {0}")]
    Status(u16),
    /// The answer is not an RFC 8936 poll response.
    #[error("the transmitter's poll answer is not valid")]
    Malformed,
}

/// Whom an event is about (RFC 9493), as the controls name them.
#[derive(Debug, Default)]
struct Subject {
    user: Option<String>,
    session: Option<String>,
    jti: Option<String>,
}

impl Subject {
    fn read(id: Option<&Value>, sid: Option<&Value>) -> Subject {
        let mut subject = Subject::default();
        if let Some(id) = id {
            subject.add(id, false);
        }
        if subject.session.is_none() {
            subject.session = sid.and_then(Value::as_str).map(str::to_string);
        }
        subject
    }

    fn add(&mut self, id: &Value, as_session: bool) {
        let text = |name: &str| id.get(name).and_then(Value::as_str).map(str::to_string);
        let named = match id.get("format").and_then(Value::as_str) {
            Some("iss_sub") => text("sub"),
            Some("opaque") => text("id"),
            Some("email") => text("email"),
            Some("jwt_id") => {
                self.jti = text("jti");
                None
            }
            Some("complex") => {
                if let Some(user) = id.get("user") {
                    self.add(user, false);
                }
                if let Some(session) = id.get("session") {
                    self.add(session, true);
                }
                None
            }
            _ => None,
        };
        if as_session {
            self.session = named.or_else(|| text("sid"));
        } else if named.is_some() {
            self.user = named;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_identifiers_name_users_sessions_and_tokens() {
        let read = |id: Value| Subject::read(Some(&id), None);
        let s = read(json!({"format": "iss_sub", "iss": "https://i", "sub": "alice"}));
        assert_eq!((s.user.as_deref(), s.session.as_deref(), s.jti.as_deref()), (Some("alice"), None, None));
        assert_eq!(read(json!({"format": "opaque", "id": "u-1"})).user.as_deref(), Some("u-1"));
        assert_eq!(
            read(json!({"format": "email", "email": "a@b.example"})).user.as_deref(),
            Some("a@b.example")
        );
        assert_eq!(
            read(json!({"format": "jwt_id", "iss": "https://i", "jti": "t-1"})).jti.as_deref(),
            Some("t-1")
        );
        let s = read(json!({"format": "complex", "user": {"format": "opaque", "id": "u"},
            "session": {"format": "opaque", "id": "s"}}));
        assert_eq!((s.user.as_deref(), s.session.as_deref()), (Some("u"), Some("s")));
        // Unknown formats name nobody; a `sid` beside the subject names the session.
        let s = Subject::read(
            Some(&json!({"format": "phone_number", "phone_number": "+1"})),
            Some(&json!("s-9")),
        );
        assert_eq!((s.user.as_deref(), s.session.as_deref()), (None, Some("s-9")));
    }

    #[test]
    fn error_codes_are_those_of_rfc_8935() {
        let codes: Vec<_> = [
            SetError::InvalidRequest("x"),
            SetError::InvalidKey("x"),
            SetError::AuthenticationFailed("x"),
            SetError::InvalidIssuer,
            SetError::InvalidAudience,
        ]
        .iter()
        .map(|e| (e.code(), e.reply().status))
        .collect();
        assert_eq!(
            codes,
            [
                ("invalid_request", 400),
                ("invalid_key", 400),
                ("authentication_failed", 400),
                ("invalid_issuer", 400),
                ("invalid_audience", 400)
            ]
        );
    }
}
