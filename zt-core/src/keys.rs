//! Verification keys: static sets (inline JWKS, JWKS file, PEM, HMAC) and remote sets (JWKS
//! URL, OIDC discovery) with a lock-free read path.
//!
//! Each key's algorithm is pinned when the key is loaded, from the JWK's `kty`/`crv`/`alg`
//! (or the configuration for PEM and HMAC keys). A token's header never chooses the key type:
//! it can only name an algorithm, which must equal the pinned one.
//!
//! Remote sets are held in an [`ArcSwapOption`]: lookups are a pointer load and a small map
//! lookup, never a lock. Refreshes are single-flighted: concurrent callers that need a fetch
//! join one shared future, and no lock is held while it runs. An unknown `kid` triggers at
//! most one refetch per configured interval, so forged key ids cannot cause a fetch storm.
//! When a refresh fails the last good set stays in use; with no set at all, verification
//! fails closed.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::PolicyError;
use crate::policy::{IssuerConfig, RemoteKeysConfig};

/// Most keys accepted in one set; larger sets are truncated (and logged).
const MAX_KEYS_PER_SET: usize = 64;

/// One verification key with its pinned algorithm.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
    /// Identifies the key material, so a cached token can tell its key is still published.
    pub(crate) fingerprint: u64,
    /// The asymmetric key decoded and validated once, when it is loaded. Verifying through
    /// jsonwebtoken decodes the key on every call (aws-lc-rs parses and checks the EC point
    /// or the RSA modulus each time: about 2% of an ES256 verification) and copies the
    /// `DecodingKey` into a boxed verifier. `None` for HMAC secrets, for key material
    /// aws-lc-rs refuses (jsonwebtoken then refuses it too, on each token), and when the
    /// application installed another jsonwebtoken crypto provider, whose choice is kept.
    #[cfg(feature = "aws-lc-rs")]
    parsed: Option<aws_lc_rs::signature::ParsedPublicKey>,
}

impl VerifyKey {
    pub(crate) fn new(kid: Option<String>, algorithm: Algorithm, key: DecodingKey, fingerprint: u64) -> Self {
        VerifyKey {
            #[cfg(feature = "aws-lc-rs")]
            parsed: parsed_public_key(algorithm, &key),
            kid,
            algorithm,
            key,
            fingerprint,
        }
    }

    /// Whether `s64` (the base64url signature of a JWS) signs `message` with this key under
    /// `algorithm`, which the caller already checked is the key's pinned one.
    pub(crate) fn verify(&self, s64: &str, message: &[u8], algorithm: Algorithm) -> bool {
        #[cfg(feature = "aws-lc-rs")]
        if let Some(parsed) = &self.parsed
            && algorithm == self.algorithm
        {
            use base64::Engine as _;
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            // 1 024 bytes hold the largest signature aws-lc-rs verifies (RSA-8192); a longer
            // one goes through a Vec and fails there, as it would through jsonwebtoken.
            let mut buffer = [0u8; 1024];
            return match URL_SAFE_NO_PAD.decode_slice(s64, &mut buffer) {
                Ok(n) => parsed.verify_sig(message, &buffer[..n]).is_ok(),
                Err(base64::DecodeSliceError::OutputSliceTooSmall) => URL_SAFE_NO_PAD
                    .decode(s64)
                    .is_ok_and(|signature| parsed.verify_sig(message, &signature).is_ok()),
                Err(base64::DecodeSliceError::DecodeError(_)) => false,
            };
        }
        matches!(jsonwebtoken::crypto::verify(s64, message, &self.key, algorithm), Ok(true))
    }
}

/// The aws-lc-rs form of `key` for `algorithm`, with the same verification parameters
/// jsonwebtoken's aws-lc-rs provider uses (fixed-length ECDSA signatures, RSA keys of 2 048
/// to 8 192 bits), so a token verifies here exactly when it verifies there. Only while
/// that provider is the process's: an application that installed its own keeps it.
#[cfg(feature = "aws-lc-rs")]
fn parsed_public_key(
    algorithm: Algorithm,
    key: &DecodingKey,
) -> Option<aws_lc_rs::signature::ParsedPublicKey> {
    use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaParameters};
    use jsonwebtoken::crypto::CryptoProvider;
    use jsonwebtoken::{AlgorithmFamily, DecodingKeyKind};

    let provider = CryptoProvider::try_get_default()?;
    if !std::ptr::eq(provider, &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER) {
        return None;
    }
    let rsa = |params: &'static RsaParameters| match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(params, der).ok(),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            sig::RsaPublicKeyComponents { n, e }.to_parsed_public_key(params).ok()
        }
    };
    let raw = |algorithm: &'static dyn sig::VerificationAlgorithm| match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm, bytes).ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => None,
    };
    match (algorithm, key.family()) {
        (Algorithm::ES256, AlgorithmFamily::Ec) => raw(&sig::ECDSA_P256_SHA256_FIXED),
        (Algorithm::ES384, AlgorithmFamily::Ec) => raw(&sig::ECDSA_P384_SHA384_FIXED),
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => raw(&sig::ED25519),
        (Algorithm::RS256, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        (Algorithm::RS384, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        (Algorithm::RS512, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        (Algorithm::PS256, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        (Algorithm::PS384, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        (Algorithm::PS512, AlgorithmFamily::Rsa) => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// An immutable set of keys.
#[derive(Default, Clone)]
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
    /// foldhash rather than SipHash: this map is probed on every request (a cached token
    /// re-checks that its key is still published), and the kids are the issuer's, bounded
    /// by `MAX_KEYS_PER_SET`, so flooding is not a concern.
    by_kid: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl KeySet {
    fn from_keys(keys: Vec<VerifyKey>) -> KeySet {
        let mut set = KeySet::default();
        for key in keys.into_iter().take(MAX_KEYS_PER_SET) {
            if let Some(kid) = &key.kid {
                if set.by_kid.contains_key(kid) {
                    // Two keys with one kid would make the choice ambiguous: keep the first.
                    continue;
                }
                set.by_kid.insert(kid.clone(), set.keys.len());
            }
            set.keys.push(Arc::new(key));
        }
        set
    }

    /// Finds the key for a token: by `kid` when the token names one, else the only key
    /// pinned to the token's algorithm.
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&Arc<VerifyKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).map(|i| &self.keys[*i]),
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithm == algorithm);
                let first = candidates.next()?;
                candidates.next().is_none().then_some(first)
            }
        }
    }

    fn contains(&self, kid: Option<&str>, fingerprint: u64) -> bool {
        match kid {
            Some(kid) => self.by_kid.get(kid).is_some_and(|i| self.keys[*i].fingerprint == fingerprint),
            None => self.keys.iter().any(|k| k.fingerprint == fingerprint),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Pins the algorithm of a JWK from its `kty`, `crv` and `alg`. `None`: not usable for
/// signature verification (encryption keys, symmetric keys, unsupported curves).
fn pinned_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("unsupported OKP curve".into()),
        },
        AlgorithmParameters::RSA(_) => match declared {
            None => Algorithm::RS256,
            Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            Some(KeyAlgorithm::PS256) => Algorithm::PS256,
            Some(KeyAlgorithm::PS384) => Algorithm::PS384,
            Some(KeyAlgorithm::PS512) => Algorithm::PS512,
            Some(_) => return Err("RSA key with a non-signature algorithm".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a JWK set".into());
        }
        _ => return Err("unsupported key type".into()),
    };
    if let Some(declared) = declared
        && KeyAlgorithm::from(alg) != declared
    {
        return Err("the JWK's `alg` does not match its key type".into());
    }
    Ok(alg)
}

/// Parses a JWK set document into verification keys, skipping keys that cannot verify
/// signatures. Fails only when the document itself is not a JWK set.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(document).map_err(|_| "not a JWK set document".to_string())?;
    let mut keys = Vec::new();
    for value in raw.keys {
        let material = serde_json::to_vec(&value).unwrap_or_default();
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::debug!(target: "zt::keys", "skipping a JWK that does not parse");
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let algorithm = match pinned_algorithm(&jwk) {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(target: "zt::keys", why, "skipping a JWK");
                continue;
            }
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            tracing::debug!(target: "zt::keys", "skipping a JWK whose key material is invalid");
            continue;
        };
        keys.push(VerifyKey::new(jwk.common.key_id.clone(), algorithm, key, fingerprint(&[&material])));
    }
    Ok(KeySet::from_keys(keys))
}

/// Parses an algorithm name as configured (`RS256`, `EdDSA`, ...).
pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.parse::<Algorithm>().ok()
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A document fetched from a key endpoint.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    /// The response body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the response carried one.
    pub max_age: Option<Duration>,
}

/// Why a fetch failed. Logged, never shown to callers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Fetches key documents (JWKS, OIDC discovery). Implement this to use your own HTTP
/// client, proxy or CA; [`ReqwestFetcher`] is the default.
pub trait KeyFetcher: Send + Sync + 'static {
    /// GETs `url` and returns its body and `max-age`; any non-200 answer is an error.
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<FetchedDocument, FetchError>> + Send + 'a>>;
}

/// The default fetcher: `reqwest` over rustls, no redirects, bounded body size.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A client with your own CA or proxy:
/// let client = reqwest::Client::builder().build()?;
/// let fetcher = zt_core::keys::ReqwestFetcher::with_client(client, 1 << 20);
/// # let _ = fetcher; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestFetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

impl ReqwestFetcher {
    /// A fetcher with zt's defaults: the given timeout, no redirects.
    pub fn new(timeout: Duration, max_bytes: usize) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError(format!("cannot build HTTP client: {e}")))?;
        Ok(ReqwestFetcher { client, max_bytes })
    }

    /// A fetcher on your own client (custom CA, proxy, timeouts).
    pub fn with_client(client: reqwest::Client, max_bytes: usize) -> Self {
        ReqwestFetcher { client, max_bytes }
    }
}

fn parse_max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse::<u64>().ok().map(Duration::from_secs))
            .flatten()
    })
}

impl KeyFetcher for ReqwestFetcher {
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<FetchedDocument, FetchError>> + Send + 'a>> {
        Box::pin(async move {
            let mut response = self
                .client
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| FetchError(format!("request failed: {e}")))?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(FetchError(format!("unexpected status {}", response.status())));
            }
            let max_age =
                response.headers().get("cache-control").and_then(|v| v.to_str().ok()).and_then(parse_max_age);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| FetchError(format!("body: {e}")))? {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(FetchError("document too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchedDocument { body, max_age })
        })
    }
}

/// Milliseconds since a process-wide origin, for lock-free timestamps in atomics.
fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 can mean "never".
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

struct Snapshot {
    set: KeySet,
    fresh_until_ms: u64,
}

type RefreshFuture = Shared<BoxFuture<'static, Result<(), Arc<str>>>>;

/// Called with the issuer when a refresh finds a published key removed.
pub(crate) type RemovalHook = Box<dyn Fn(&str) + Send + Sync>;

/// A remote key set: a JWKS URL, or one found through OIDC discovery.
pub(crate) struct RemoteKeys {
    issuer: String,
    /// The JWKS URL when configured directly; `None` until discovery finds it.
    jwks_uri: ArcSwapOption<String>,
    discovery: bool,
    snapshot: ArcSwapOption<Snapshot>,
    last_attempt_ms: AtomicU64,
    inflight: Mutex<Option<RefreshFuture>>,
    fetcher: Arc<dyn KeyFetcher>,
    config: RemoteKeysConfig,
    /// Told when a refresh finds that a published key was removed (the fleet tells the
    /// other replicas, which refresh at once instead of at their own next expiry).
    removed: OnceLock<RemovalHook>,
}

/// The answer of a key lookup.
pub(crate) enum Lookup {
    Found(Arc<VerifyKey>),
    Missing,
    /// A refetch is allowed and may find the key: await [`KeySource::refresh`] and retry.
    Fetch,
    /// There has never been a key set and none can be fetched now.
    Unavailable,
}

/// Where one issuer's keys come from.
// Clone: an introspecting issuer's endpoint verifies RFC 9701 answers with the same keys
// (a static set is immutable, a remote one shared).
#[derive(Clone)]
pub(crate) enum KeySource {
    Static(KeySet),
    Remote(Arc<RemoteKeys>),
}

/// `https`, or `http` to a loopback host (or with `remote_keys.dangerous_allow_http`); also
/// used for introspection endpoints.
pub(crate) fn check_url(url: &str, config: &RemoteKeysConfig) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback || config.dangerous_allow_http {
                Ok(())
            } else {
                Err("key URLs must use https (http is allowed for loopback only, or with remote_keys.dangerous_allow_http)".into())
            }
        }
        _ => Err("key URLs must use https".into()),
    }
}

impl KeySource {
    /// Builds the key source of one issuer; `at` names it in errors.
    pub(crate) fn from_config(
        issuer: &IssuerConfig,
        at: &str,
        remote: &RemoteKeysConfig,
        fetcher: &Arc<dyn KeyFetcher>,
    ) -> Result<KeySource, PolicyError> {
        let given = [
            issuer.jwks_url.is_some(),
            issuer.oidc_discovery,
            issuer.jwks_file.is_some(),
            issuer.jwks.is_some(),
            !issuer.pem_keys.is_empty() || !issuer.hmac_secrets.is_empty(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        // An issuer whose tokens are introspected (RFC 7662) may have no keys at all, unless
        // its answers are JWTs (RFC 9701) signed with them.
        if given == 0 && issuer.introspection.as_ref().is_some_and(|i| !i.jwt_response) {
            return Ok(KeySource::Static(KeySet::default()));
        }
        if given != 1 {
            return Err(PolicyError::invalid(
                at,
                "give exactly one key source: jwks_url, oidc_discovery, jwks_file, jwks, or pem_keys/hmac_secrets",
            ));
        }
        if let Some(url) = &issuer.jwks_url {
            check_url(url, remote).map_err(|m| PolicyError::invalid(format!("{at}.jwks_url"), m))?;
            return Ok(KeySource::Remote(Arc::new(RemoteKeys::new(
                issuer,
                Some(url.clone()),
                remote,
                fetcher,
            ))));
        }
        if issuer.oidc_discovery {
            check_url(&issuer.issuer, remote).map_err(|m| PolicyError::invalid(format!("{at}.issuer"), m))?;
            return Ok(KeySource::Remote(Arc::new(RemoteKeys::new(issuer, None, remote, fetcher))));
        }
        let (document, field) = match (&issuer.jwks_file, &issuer.jwks) {
            (Some(file), _) => (
                std::fs::read(file).map_err(|e| {
                    PolicyError::invalid(format!("{at}.jwks_file"), format!("cannot read {file}: {e}"))
                })?,
                "jwks_file",
            ),
            (None, Some(inline)) => (inline.as_bytes().to_vec(), "jwks"),
            (None, None) => return Self::from_pem_and_secrets(issuer, at).map(KeySource::Static),
        };
        let set = parse_jwks(&document).map_err(|m| PolicyError::invalid(format!("{at}.{field}"), m))?;
        if set.len() == 0 {
            return Err(PolicyError::invalid(
                format!("{at}.{field}"),
                "the JWK set has no usable signature key",
            ));
        }
        Ok(KeySource::Static(set))
    }

    fn from_pem_and_secrets(issuer: &IssuerConfig, at: &str) -> Result<KeySet, PolicyError> {
        let mut keys = Vec::new();
        for (i, pem) in issuer.pem_keys.iter().enumerate() {
            let here = format!("{at}.pem_keys[{i}]");
            let algorithm = parse_algorithm(&pem.algorithm).filter(|a| !is_hmac(*a)).ok_or_else(|| {
                PolicyError::invalid(
                    format!("{here}.algorithm"),
                    format!("{:?} is not an asymmetric JWS algorithm", pem.algorithm),
                )
            })?;
            let text = match (&pem.pem, &pem.pem_file) {
                (Some(text), None) => text.clone().into_bytes(),
                (None, Some(file)) => std::fs::read(file).map_err(|e| {
                    PolicyError::invalid(format!("{here}.pem_file"), format!("cannot read {file}: {e}"))
                })?,
                _ => return Err(PolicyError::invalid(&here, "give exactly one of pem or pem_file")),
            };
            let key = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&text),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&text),
                _ => DecodingKey::from_rsa_pem(&text),
            }
            .map_err(|_| {
                PolicyError::invalid(&here, format!("not a valid {:?} public key PEM", algorithm))
            })?;
            keys.push(VerifyKey::new(pem.kid.clone(), algorithm, key, fingerprint(&[&text])));
        }
        for (i, secret) in issuer.hmac_secrets.iter().enumerate() {
            let here = format!("{at}.hmac_secrets[{i}]");
            let algorithm = parse_algorithm(&secret.algorithm).filter(|a| is_hmac(*a)).ok_or_else(|| {
                PolicyError::invalid(format!("{here}.algorithm"), "HMAC secrets take HS256, HS384 or HS512")
            })?;
            let value = match (&secret.secret, &secret.secret_env) {
                (Some(s), None) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    PolicyError::invalid(
                        format!("{here}.secret_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?,
                _ => return Err(PolicyError::invalid(&here, "give exactly one of secret or secret_env")),
            };
            let min = match algorithm {
                Algorithm::HS256 => 32,
                Algorithm::HS384 => 48,
                _ => 64,
            };
            if value.len() < min {
                return Err(PolicyError::invalid(
                    &here,
                    format!("a {algorithm:?} secret needs at least {min} bytes"),
                ));
            }
            let key = DecodingKey::from_secret(value.as_bytes())
                .map_err(|_| PolicyError::invalid(&here, "invalid secret"))?;
            keys.push(VerifyKey::new(
                secret.kid.clone(),
                algorithm,
                key,
                fingerprint(&[value.as_bytes(), b"hmac"]),
            ));
        }
        Ok(KeySet::from_keys(keys))
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup {
        match self {
            KeySource::Static(set) => {
                set.find(kid, algorithm).map_or(Lookup::Missing, |k| Lookup::Found(k.clone()))
            }
            KeySource::Remote(remote) => remote.lookup(kid, algorithm),
        }
    }

    /// True while the key a token was verified with is still published.
    pub(crate) fn still_has(&self, kid: Option<&str>, fingerprint: u64) -> bool {
        match self {
            KeySource::Static(set) => set.contains(kid, fingerprint),
            KeySource::Remote(remote) => remote.still_has(kid, fingerprint),
        }
    }

    /// Fetches the remote set now (single-flighted). Static sets return at once.
    pub(crate) fn refresh(&self) -> Option<RefreshFuture> {
        match self {
            KeySource::Static(_) => None,
            KeySource::Remote(remote) => Some(remote.refresh()),
        }
    }

    /// The fetch a lookup asked for (an unknown `kid`, or no set yet): joins the one under
    /// way, or starts one, unless a fetch was attempted within the unknown-`kid` interval.
    /// That closes a race: a request that found no set while the first fetch was in flight,
    /// and reached here just after it finished, would otherwise fetch a second time.
    pub(crate) fn refresh_for_lookup(&self) -> Option<RefreshFuture> {
        match self {
            KeySource::Static(_) => None,
            KeySource::Remote(remote) => {
                let running = remote.is_refreshing();
                if !running
                    && remote.snapshot.load().is_some()
                    && !remote.may_fetch(remote.config.unknown_kid_refetch_interval)
                {
                    return None;
                }
                Some(remote.refresh())
            }
        }
    }
}

impl RemoteKeys {
    fn new(
        issuer: &IssuerConfig,
        jwks_uri: Option<String>,
        config: &RemoteKeysConfig,
        fetcher: &Arc<dyn KeyFetcher>,
    ) -> Self {
        RemoteKeys {
            issuer: issuer.issuer.clone(),
            discovery: jwks_uri.is_none(),
            jwks_uri: ArcSwapOption::new(jwks_uri.map(Arc::new)),
            snapshot: ArcSwapOption::empty(),
            last_attempt_ms: AtomicU64::new(0),
            inflight: Mutex::new(None),
            fetcher: fetcher.clone(),
            config: config.clone(),
            removed: OnceLock::new(),
        }
    }

    #[cfg(feature = "redis")]
    /// The issuer these keys belong to.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    #[cfg(feature = "redis")]
    /// Calls `hook` (with the issuer) whenever a refresh finds a published key removed.
    pub(crate) fn on_removal(&self, hook: RemovalHook) {
        let _ = self.removed.set(hook);
    }

    #[cfg(feature = "redis")]
    /// Another replica saw this issuer's keys change: refresh now, unless a fetch happened
    /// within the refresh floor (which keeps the issuer safe from a fleet-wide fetch storm;
    /// the next resync asks again).
    pub(crate) fn changed_elsewhere(self: &Arc<Self>) -> bool {
        if !self.may_fetch(self.config.refresh_floor) {
            return false;
        }
        self.refresh_in_background();
        true
    }

    /// A cached token's check: the key is still in the current snapshot. A snapshot past
    /// its freshness is refreshed in the background here too, so a key removed from the
    /// issuer's set stops cached tokens within the set's lifetime even when no uncached
    /// token ever arrives.
    fn still_has(self: &Arc<Self>, kid: Option<&str>, fingerprint: u64) -> bool {
        let guard = self.snapshot.load();
        let Some(snapshot) = guard.as_ref() else { return false };
        if now_ms() > snapshot.fresh_until_ms && self.may_fetch(self.config.refresh_floor) {
            self.refresh_in_background();
        }
        snapshot.set.contains(kid, fingerprint)
    }

    fn may_fetch(&self, interval: Duration) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        last == 0 || now_ms().saturating_sub(last) >= interval.as_millis() as u64
    }

    fn lookup(self: &Arc<Self>, kid: Option<&str>, algorithm: Algorithm) -> Lookup {
        let guard = self.snapshot.load();
        let Some(snapshot) = guard.as_ref() else {
            return if self.may_fetch(self.config.unknown_kid_refetch_interval) || self.is_refreshing() {
                Lookup::Fetch
            } else {
                Lookup::Unavailable
            };
        };
        if now_ms() > snapshot.fresh_until_ms && self.may_fetch(self.config.refresh_floor) {
            self.refresh_in_background();
        }
        match snapshot.set.find(kid, algorithm) {
            Some(key) => Lookup::Found(key.clone()),
            None if self.may_fetch(self.config.unknown_kid_refetch_interval) || self.is_refreshing() => {
                Lookup::Fetch
            }
            None => Lookup::Missing,
        }
    }

    fn is_refreshing(&self) -> bool {
        self.inflight.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let refresh = self.refresh();
            handle.spawn(async move {
                let _ = refresh.await;
            });
        }
    }

    /// Joins the refresh under way, or starts one. The mutex only guards the slot, never
    /// the fetch itself.
    fn refresh(self: &Arc<Self>) -> RefreshFuture {
        let Ok(mut slot) = self.inflight.lock() else {
            // A poisoned slot means a panic elsewhere; fail this refresh rather than panic.
            return futures_util::future::ready(Err::<(), Arc<str>>(Arc::from("refresh state poisoned")))
                .boxed()
                .shared();
        };
        if let Some(running) = slot.as_ref() {
            return running.clone();
        }
        self.last_attempt_ms.store(now_ms(), Ordering::Release);
        let this = Arc::clone(self);
        let future = async move {
            let result = this.fetch_and_store().await;
            if let Err(e) = &result {
                tracing::warn!(target: "zt::keys", issuer = %this.issuer, error = %e, "key set refresh failed; keeping the last good set");
            }
            if let Ok(mut slot) = this.inflight.lock() {
                *slot = None;
            }
            result.map_err(|e| Arc::from(e.0.as_str()))
        }
        .boxed()
        .shared();
        *slot = Some(future.clone());
        future
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        let jwks_uri = match self.jwks_uri.load_full() {
            Some(uri) => uri,
            None => {
                let uri = self.discover().await?;
                self.jwks_uri.store(Some(uri.clone()));
                uri
            }
        };
        let document = tokio::time::timeout(self.config.timeout, self.fetcher.fetch(&jwks_uri))
            .await
            .map_err(|_| FetchError("timed out".into()))??;
        let set = parse_jwks(&document.body).map_err(FetchError)?;
        if set.len() == 0 {
            return Err(FetchError("the JWK set has no usable signature key".into()));
        }
        let ttl = document
            .max_age
            .unwrap_or(self.config.default_refresh)
            .clamp(self.config.refresh_floor, self.config.refresh_ceiling.max(self.config.refresh_floor));
        tracing::debug!(target: "zt::keys", issuer = %self.issuer, keys = set.len(), "key set refreshed");
        let previous = self
            .snapshot
            .swap(Some(Arc::new(Snapshot { set, fresh_until_ms: now_ms() + ttl.as_millis() as u64 })));
        let current = self.snapshot.load();
        if let (Some(previous), Some(current)) = (previous, current.as_ref())
            && previous.set.keys.iter().any(|k| !current.set.contains(k.kid.as_deref(), k.fingerprint))
        {
            tracing::info!(target: "zt::keys", issuer = %self.issuer, "a published key was removed; tokens it signed are refused from now on");
            if let Some(hook) = self.removed.get() {
                hook(&self.issuer);
            }
        }
        Ok(())
    }

    async fn discover(&self) -> Result<Arc<String>, FetchError> {
        debug_assert!(self.discovery);
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let document = tokio::time::timeout(self.config.timeout, self.fetcher.fetch(&url))
            .await
            .map_err(|_| FetchError("discovery timed out".into()))??;
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let found: Discovery = serde_json::from_slice(&document.body)
            .map_err(|_| FetchError("discovery document lacks issuer or jwks_uri".into()))?;
        // OIDC Discovery s.4.3: the document's issuer must be exactly the one configured,
        // or a compromised or confused endpoint could substitute another issuer's keys.
        if found.issuer != self.issuer {
            return Err(FetchError("discovery document names a different issuer".into()));
        }
        check_url(&found.jwks_uri, &self.config).map_err(FetchError)?;
        Ok(Arc::new(found.jwks_uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }

    /// The pre-parsed aws-lc-rs keys accept exactly what jsonwebtoken's provider accepts:
    /// each algorithm's good signature, and neither a changed message nor a changed signature.
    #[cfg(feature = "aws-lc-rs")]
    #[test]
    fn parsed_keys_verify_exactly_as_jsonwebtoken() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let rng = SystemRandom::new();
        let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
        let mut cases: Vec<(Algorithm, DecodingKey, Vec<u8>)> = Vec::new();
        for (alg, signing) in [
            (Algorithm::ES256, &sig::ECDSA_P256_SHA256_FIXED_SIGNING),
            (Algorithm::ES384, &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
            let point = pair.public_key().as_ref();
            let half = (point.len() - 1) / 2;
            let signature = pair.sign(&rng, message).unwrap().as_ref().to_vec();
            // As a JWK gives it (x and y) and as a PEM gives it (the encoded point).
            let x = URL_SAFE_NO_PAD.encode(&point[1..=half]);
            let y = URL_SAFE_NO_PAD.encode(&point[1 + half..]);
            cases.push((alg, DecodingKey::from_ec_components(&x, &y).unwrap(), signature.clone()));
            cases.push((alg, DecodingKey::from_ec_der(point), signature));
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let signature = pair.sign(message).as_ref().to_vec();
        cases.push((Algorithm::EdDSA, DecodingKey::from_ed_components(&x).unwrap(), signature.clone()));
        cases.push((Algorithm::EdDSA, DecodingKey::from_ed_der(pair.public_key().as_ref()), signature));
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        for (alg, encoding) in [
            (Algorithm::RS256, &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding),
            (Algorithm::RS512, &sig::RSA_PKCS1_SHA512),
            (Algorithm::PS256, &sig::RSA_PSS_SHA256),
            (Algorithm::PS384, &sig::RSA_PSS_SHA384),
        ] {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, message, &mut signature).unwrap();
            cases.push((alg, DecodingKey::from_rsa_der(pair.public_key().as_ref()), signature));
        }
        for (alg, key, signature) in cases {
            let key = VerifyKey::new(None, alg, key, 0);
            assert!(key.parsed.is_some(), "{alg:?} is pre-parsed");
            let good = URL_SAFE_NO_PAD.encode(&signature);
            let mut flipped = signature.clone();
            flipped[5] ^= 1;
            let flipped = URL_SAFE_NO_PAD.encode(&flipped);
            let tampered = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ";
            for (s64, msg, expected) in [
                (good.as_str(), &message[..], true),
                (good.as_str(), &tampered[..], false),
                (flipped.as_str(), &message[..], false),
                ("not base64!", &message[..], false),
                ("", &message[..], false),
            ] {
                let reference = matches!(jsonwebtoken::crypto::verify(s64, msg, &key.key, alg), Ok(true));
                assert_eq!(reference, expected, "{alg:?}: jsonwebtoken");
                assert_eq!(key.verify(s64, msg, alg), expected, "{alg:?}: the parsed key");
            }
            // A signature longer than any key's still fails (through the Vec fallback).
            assert!(!key.verify(&"A".repeat(2000), message, alg));
        }
        // A key of one family under another family's algorithm is never pre-parsed.
        let ed = DecodingKey::from_ed_der(&[7u8; 32]);
        assert!(VerifyKey::new(None, Algorithm::ES256, ed, 0).parsed.is_none());
        let hmac = VerifyKey::new(None, Algorithm::HS256, DecodingKey::from_secret(&[1u8; 32]).unwrap(), 0);
        assert!(hmac.parsed.is_none());
    }

    #[test]
    fn symmetric_jwks_keys_are_skipped() {
        let set = parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","alg":"HS256","kid":"h"}]}"#).unwrap();
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn garbage_is_not_a_jwks() {
        assert!(parse_jwks(b"[1,2]").is_err());
        assert!(parse_jwks(b"\xff").is_err());
    }

    #[test]
    fn ec_key_pins_es256_and_rejects_mismatched_alg() {
        let ok = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let set = parse_jwks(ok).unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(set.find(Some("a"), Algorithm::ES256), Some(k) if k.algorithm == Algorithm::ES256));
        let bad = br#"{"keys":[{"kty":"EC","crv":"P-256","alg":"RS256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        assert_eq!(parse_jwks(bad).unwrap().len(), 0);
    }

    #[test]
    fn http_only_for_loopback() {
        let c = RemoteKeysConfig::default();
        assert!(check_url("https://idp.example/jwks", &c).is_ok());
        assert!(check_url("http://127.0.0.1:9/jwks", &c).is_ok());
        assert!(check_url("http://idp.example/jwks", &c).is_err());
        assert!(check_url("ftp://idp.example/jwks", &c).is_err());
    }
}
