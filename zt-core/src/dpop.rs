//! DPoP proof-of-possession at the resource server (RFC 9449).
//!
//! A DPoP-bound access token names the public key of its client (`cnf.jkt`, the key's RFC
//! 7638 thumbprint). Each request then carries `Authorization: DPoP <token>` and a fresh
//! proof in the `DPoP` header: a JWT signed by that key, saying which request it is for.
//! A stolen token is useless without the private key, and a captured proof is useless for
//! any other request or a second time.
//!
//! [`DpopVerifier::verify`] checks a proof as RFC 9449 s.4.3 lists, in this order:
//! 1. one compact JWS; header `typ` is `dpop+jwt`; `alg` is asymmetric and allowed
//!    ([`DpopConfig::algorithms`]); `jwk` is a public key (no private members) of a type
//!    that fits `alg`;
//! 2. the signature verifies with that `jwk`;
//! 3. claims: `jti` (a non-empty string), `htm` equals the request method, `htu` equals the
//!    request URI without query and fragment, after syntax- and scheme-based normalization
//!    (RFC 3986 s.6.2.2, s.6.2.3: case of scheme and host, default port, percent-encoding
//!    of unreserved characters), `iat` within [`DpopConfig::max_age`] in the past and
//!    [`DpopConfig::leeway`] in the future, `ath` the base64url SHA-256 of the access token;
//!    a server nonce when [`DpopConfig::require_nonce`] is on (rotating, stateless: any
//!    replica with the same secret accepts another's nonce);
//! 4. the key's thumbprint equals the token's `cnf.jkt`;
//! 5. the proof was not seen before: its `jti` is remembered (per key) for the window in a
//!    bounded cache ([`DpopConfig::replay_capacity`], default 100 000: a full cache evicts
//!    the least used entries; with a shared store the Guard also records the proof there,
//!    so one replica refuses a proof already used on another).
//!
//! Errors never echo the proof, the token or the key.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::PolicyError;

/// Largest proof accepted, in bytes (a proof holds one public key: RSA 4096 fits easily).
pub const MAX_PROOF_BYTES: usize = 4096;

/// DPoP settings (the policy's `[dpop]` table).
///
/// ```
/// use zt_core::dpop::DpopConfig;
///
/// let config: DpopConfig = toml::from_str(r#"
///     algorithms = ["ES256", "EdDSA"]
///     max_age = "30s"
/// "#).unwrap();
/// assert!(config.enabled);
/// assert_eq!(config.leeway.as_secs(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopConfig {
    /// Accept `Authorization: DPoP` (default true). DPoP-bound tokens presented as Bearer
    /// are refused whatever this says.
    pub enabled: bool,
    /// Proof algorithms accepted (default ES256, ES384, EdDSA, RS256, PS256). Symmetric
    /// algorithms and `none` are never accepted.
    pub algorithms: Vec<String>,
    /// Oldest `iat` accepted (default 60 s): also how long a proof's `jti` is remembered.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How far in the future `iat` may be (clock skew; default 5 s).
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Require a server nonce (`DPoP-Nonce`, RFC 9449 s.8; default false).
    pub require_nonce: bool,
    /// How long a server nonce is valid (default 5 min; the previous one is still accepted
    /// for one more period, so a rotation never fails a request in flight).
    #[serde(with = "humantime_serde")]
    pub nonce_lifetime: Duration,
    /// The environment variable holding the nonce secret (at least 16 bytes), the same on
    /// every replica. Without one, a random secret per process: nonces then only work on
    /// the replica that issued them.
    pub nonce_secret_env: Option<String>,
    /// The origins (`https://api.example.com`) requests are addressed to; `htu` must name
    /// one of them. Empty (default): the request's `Host` header, with `https` or `http`.
    pub origins: Vec<String>,
    /// Most proof ids remembered against replay (default 100 000).
    pub replay_capacity: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        DpopConfig {
            enabled: true,
            algorithms: ["ES256", "ES384", "EdDSA", "RS256", "PS256"].iter().map(|s| s.to_string()).collect(),
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            require_nonce: false,
            nonce_lifetime: Duration::from_secs(300),
            nonce_secret_env: None,
            origins: Vec::new(),
            replay_capacity: 100_000,
        }
    }
}

/// Why a proof was refused. Every kind is answered `401` with
/// `WWW-Authenticate: DPoP error="invalid_dpop_proof"`, except [`DpopError::NonceRequired`]
/// and [`DpopError::StaleNonce`] (`error="use_dpop_nonce"` with a fresh `DPoP-Nonce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// No `DPoP` header, or more than one.
    #[error("exactly one DPoP proof header is required")]
    Missing,
    /// Not a compact JWS with JSON header and claims, or too large.
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's typ must be dpop+jwt")]
    WrongType,
    /// `alg` is `none`, symmetric, or not in the allow-list.
    #[error("the DPoP proof's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// `jwk` is missing, holds private key material, or does not fit `alg`.
    #[error("the DPoP proof's key is missing, private or unusable")]
    BadKey,
    /// The signature does not verify with the proof's key.
    #[error("the DPoP proof's signature is invalid")]
    InvalidSignature,
    /// A required claim is missing or of the wrong type.
    #[error("the DPoP proof lacks a required claim")]
    MissingClaim,
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for another method")]
    WrongMethod,
    /// `htu` is not the request's URI.
    #[error("the DPoP proof is for another URI")]
    WrongUri,
    /// `iat` is older than the window, or in the future.
    #[error("the DPoP proof is not fresh")]
    Stale,
    /// `ath` is not the hash of the presented access token.
    #[error("the DPoP proof is not bound to this access token")]
    WrongAccessToken,
    /// The key's thumbprint is not the token's `cnf.jkt`.
    #[error("the DPoP proof's key is not the one the token is bound to")]
    ThumbprintMismatch,
    /// The proof was used before.
    #[error("the DPoP proof was already used")]
    Replayed,
    /// A nonce is required and the proof has none.
    #[error("a DPoP nonce is required")]
    NonceRequired,
    /// The proof's nonce is not one this service issued recently.
    #[error("the DPoP nonce is stale or unknown")]
    StaleNonce,
}

impl DpopError {
    /// The `error` of the `WWW-Authenticate: DPoP` challenge.
    pub fn challenge_error(self) -> &'static str {
        match self {
            DpopError::NonceRequired | DpopError::StaleNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// A short slug for events and spans (`dpop-replayed`, ...).
    pub fn slug(self) -> &'static str {
        match self {
            DpopError::Missing => "dpop-missing",
            DpopError::Malformed => "dpop-malformed",
            DpopError::WrongType => "dpop-wrong-type",
            DpopError::AlgorithmNotAllowed => "dpop-algorithm-not-allowed",
            DpopError::BadKey => "dpop-bad-key",
            DpopError::InvalidSignature => "dpop-invalid-signature",
            DpopError::MissingClaim => "dpop-missing-claim",
            DpopError::WrongMethod => "dpop-wrong-method",
            DpopError::WrongUri => "dpop-wrong-uri",
            DpopError::Stale => "dpop-stale",
            DpopError::WrongAccessToken => "dpop-wrong-access-token",
            DpopError::ThumbprintMismatch => "dpop-thumbprint-mismatch",
            DpopError::Replayed => "dpop-replayed",
            DpopError::NonceRequired => "dpop-nonce-required",
            DpopError::StaleNonce => "dpop-stale-nonce",
        }
    }
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request's `Host` (or `:authority`), when known.
    pub host: Option<&'a str>,
    /// The request path as received (without the query).
    pub path: &'a str,
    /// The access token presented with `Authorization: DPoP`.
    pub access_token: &'a str,
    /// The token's `cnf.jkt`.
    pub bound_thumbprint: &'a str,
    /// Now, in Unix seconds.
    pub now: u64,
}

/// A proof that passed every check but the shared replay record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// A digest of the key's thumbprint and the proof's `jti`: the replay record's name.
    pub replay_key: [u8; 32],
    /// Until when the proof would be accepted (Unix seconds): how long to remember it.
    pub remember_until: u64,
}

/// Verifies DPoP proofs. Cheap to clone.
#[derive(Clone)]
pub struct DpopVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: DpopConfig,
    algorithms: Vec<Algorithm>,
    origins: Vec<(String, String)>,
    nonce_secret: [u8; 32],
    /// Proof ids seen (digest of thumbprint and jti) -> until when they are remembered.
    seen: quick_cache::sync::Cache<[u8; 32], u64>,
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl DpopVerifier {
    /// Validates the configuration. Errors name the entry (`dpop.*`).
    pub fn new(config: &DpopConfig) -> Result<DpopVerifier, PolicyError> {
        let mut algorithms = Vec::new();
        for (i, name) in config.algorithms.iter().enumerate() {
            match crate::keys::parse_algorithm(name) {
                Some(alg) if is_asymmetric(alg) => algorithms.push(alg),
                _ => {
                    return Err(PolicyError::invalid(
                        format!("dpop.algorithms[{i}]"),
                        format!("{name:?} is not an asymmetric JWS algorithm"),
                    ));
                }
            }
        }
        if config.enabled && algorithms.is_empty() {
            return Err(PolicyError::invalid("dpop.algorithms", "name at least one algorithm"));
        }
        if config.max_age.is_zero() || config.nonce_lifetime.is_zero() {
            return Err(PolicyError::invalid("dpop", "max_age and nonce_lifetime must be longer than zero"));
        }
        if config.replay_capacity == 0 {
            return Err(PolicyError::invalid("dpop.replay_capacity", "must be at least 1"));
        }
        let mut origins = Vec::new();
        for (i, origin) in config.origins.iter().enumerate() {
            let parsed = parse_origin(origin).ok_or_else(|| {
                PolicyError::invalid(
                    format!("dpop.origins[{i}]"),
                    "must be an origin like https://api.example.com",
                )
            })?;
            origins.push(parsed);
        }
        let nonce_secret = match &config.nonce_secret_env {
            Some(name) => {
                let value = PolicyError::secret_from_env("dpop.nonce_secret_env", name, 16)?;
                Sha256::digest(value.as_bytes()).into()
            }
            None => rand::random::<[u8; 32]>(),
        };
        Ok(DpopVerifier {
            inner: Arc::new(Inner {
                config: config.clone(),
                algorithms,
                origins,
                nonce_secret,
                seen: quick_cache::sync::Cache::new(config.replay_capacity),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DpopConfig {
        &self.inner.config
    }

    /// The accepted algorithms, space-separated (the challenge's `algs`).
    pub fn algorithm_names(&self) -> String {
        self.inner.config.algorithms.join(" ")
    }

    /// Checks `proof` (the `DPoP` header's value) for `request`, and records it against
    /// replay in this process. The shared replay record (across replicas) is the caller's:
    /// [`VerifiedProof::replay_key`] until [`VerifiedProof::remember_until`].
    ///
    /// ```
    /// use zt_core::dpop::{DpopConfig, DpopError, DpopVerifier, ProofRequest};
    ///
    /// let verifier = DpopVerifier::new(&DpopConfig::default()).unwrap();
    /// let request = ProofRequest {
    ///     method: "GET", host: Some("api.example.com"), path: "/orders",
    ///     access_token: "eyJ...", bound_thumbprint: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    ///     now: 1_700_000_000,
    /// };
    /// assert_eq!(verifier.verify("not-a-jwt", &request), Err(DpopError::Malformed));
    /// ```
    pub fn verify(&self, proof: &str, request: &ProofRequest<'_>) -> Result<VerifiedProof, DpopError> {
        let inner = &*self.inner;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(DpopError::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed);
        };
        let header = decode_object(h64).ok_or(DpopError::Malformed)?;
        let claims = decode_object(p64).ok_or(DpopError::Malformed)?;
        if s64.is_empty() {
            return Err(DpopError::Malformed);
        }
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(DpopError::WrongType);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(crate::keys::parse_algorithm)
            .filter(|alg| is_asymmetric(*alg) && inner.algorithms.contains(alg))
            .ok_or(DpopError::AlgorithmNotAllowed)?;
        if header.contains_key("crit") {
            return Err(DpopError::Malformed);
        }
        let jwk_value = header.get("jwk").and_then(Value::as_object).ok_or(DpopError::BadKey)?;
        const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        if PRIVATE.iter().any(|member| jwk_value.contains_key(*member)) {
            return Err(DpopError::BadKey);
        }
        let jwk: Jwk =
            serde_json::from_value(Value::Object(jwk_value.clone())).map_err(|_| DpopError::BadKey)?;
        if !key_fits(&jwk, alg) {
            return Err(DpopError::BadKey);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::BadKey)?;
        let message = &proof.as_bytes()[..h64.len() + 1 + p64.len()];
        if !jsonwebtoken::crypto::verify(s64, message, &key, alg).unwrap_or(false) {
            return Err(DpopError::InvalidSignature);
        }
        // Signed by the key it carries: the claims may be read now.
        let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let jti = text("jti").ok_or(DpopError::MissingClaim)?;
        let htm = text("htm").ok_or(DpopError::MissingClaim)?;
        let htu = text("htu").ok_or(DpopError::MissingClaim)?;
        let iat = claims.get("iat").and_then(Value::as_u64).ok_or(DpopError::MissingClaim)?;
        let ath = text("ath").ok_or(DpopError::MissingClaim)?;
        if htm != request.method {
            return Err(DpopError::WrongMethod);
        }
        if !self.uri_matches(htu, request) {
            return Err(DpopError::WrongUri);
        }
        let oldest = request.now.saturating_sub(inner.config.max_age.as_secs());
        let newest = request.now.saturating_add(inner.config.leeway.as_secs());
        if iat < oldest || iat > newest {
            return Err(DpopError::Stale);
        }
        if ath != access_token_hash(request.access_token) {
            return Err(DpopError::WrongAccessToken);
        }
        if inner.config.require_nonce {
            let nonce = text("nonce").ok_or(DpopError::NonceRequired)?;
            if !self.nonce_is_current(nonce, request.now) {
                return Err(DpopError::StaleNonce);
            }
        }
        let thumbprint = jwk_thumbprint(jwk_value).ok_or(DpopError::BadKey)?;
        if !constant_time_eq(thumbprint.as_bytes(), request.bound_thumbprint.as_bytes()) {
            return Err(DpopError::ThumbprintMismatch);
        }
        let mut digest = Sha256::new();
        digest.update(thumbprint.as_bytes());
        digest.update([0]);
        digest.update(jti.as_bytes());
        let replay_key: [u8; 32] = digest.finalize().into();
        let remember_until = iat.saturating_add(inner.config.max_age.as_secs()).max(newest);
        if inner.seen.get(&replay_key).is_some_and(|until| until >= request.now) {
            return Err(DpopError::Replayed);
        }
        inner.seen.insert(replay_key, remember_until);
        Ok(VerifiedProof { replay_key, remember_until })
    }

    fn uri_matches(&self, htu: &str, request: &ProofRequest<'_>) -> bool {
        let Some((origin, path)) = split_uri(htu) else { return false };
        let Some(path) = normalize_path(path) else { return false };
        let Some(expected_path) = normalize_path(request.path) else { return false };
        if path != expected_path {
            return false;
        }
        if self.inner.origins.is_empty() {
            let Some(host) = request.host else { return false };
            let Some((scheme, authority)) = parse_origin(&origin) else { return false };
            let host = host.to_ascii_lowercase();
            let host = strip_default_port(&scheme, &host);
            (scheme == "https" || scheme == "http") && authority == host
        } else {
            parse_origin(&origin).is_some_and(|o| self.inner.origins.contains(&o))
        }
    }

    /// The current server nonce (for `DPoP-Nonce`): a time bucket and its MAC, so every
    /// replica sharing the secret accepts it without shared state.
    pub fn nonce(&self, now: u64) -> String {
        self.nonce_for(now / self.inner.config.nonce_lifetime.as_secs().max(1))
    }

    fn nonce_for(&self, bucket: u64) -> String {
        let mut mac = Sha256::new();
        mac.update(self.inner.nonce_secret);
        mac.update(bucket.to_be_bytes());
        let tag = mac.finalize();
        let mut bytes = bucket.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn nonce_is_current(&self, nonce: &str, now: u64) -> bool {
        let bucket = now / self.inner.config.nonce_lifetime.as_secs().max(1);
        [bucket, bucket.saturating_sub(1)]
            .iter()
            .any(|b| constant_time_eq(self.nonce_for(*b).as_bytes(), nonce.as_bytes()))
    }
}

/// The RFC 9449 `ath`: base64url of the SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The RFC 7638 thumbprint of a public JWK (as a JSON object): base64url SHA-256 of its
/// required members in lexicographic order. `None` for key types without a thumbprint here
/// (EC, RSA and OKP have one).
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    // serde_json escapes strings as JSON requires; the members are base64url or names.
    let canonical = match member("kty")? {
        "EC" => serde_json::json!({"crv": member("crv")?, "kty": "EC", "x": member("x")?, "y": member("y")?}),
        "RSA" => serde_json::json!({"e": member("e")?, "kty": "RSA", "n": member("n")?}),
        "OKP" => serde_json::json!({"crv": member("crv")?, "kty": "OKP", "x": member("x")?}),
        _ => return None,
    };
    // serde_json's map is ordered by key (no `preserve_order` feature): lexicographic.
    let text = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes())))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match crate::json::parse(&bytes, crate::json::BOUNDED_BY_CALLER).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => matches!(
            (p.curve.clone(), alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(p) => p.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA,
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        _ => false,
    }
}

/// `scheme://authority` and the path of an absolute URI (query and fragment dropped).
fn split_uri(uri: &str) -> Option<(String, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((format!("{scheme}://{authority}"), path))
}

/// An origin as (scheme, authority), lowercased, with the scheme's default port dropped.
fn parse_origin(origin: &str) -> Option<(String, String)> {
    let (scheme, authority) = origin.trim_end_matches('/').split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "https" || scheme == "http")
        || authority.is_empty()
        || authority.contains(['/', '@', '?', '#'])
    {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = strip_default_port(&scheme, &authority);
    Some((scheme, authority))
}

fn strip_default_port(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority).to_string()
}

/// A path with percent-encodings of unreserved characters decoded and the others'
/// hex digits uppercased (RFC 3986 s.6.2.2.1-2); `None` for a malformed encoding.
fn normalize_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    const NOW: u64 = 1_700_000_000;

    /// An ES256 key pair: the private key for signing, the public JWK for the header.
    fn es256() -> (EncodingKey, Map<String, Value>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
        )
        .unwrap();
        use aws_lc_rs::signature::KeyPair;
        let public = pair.public_key().as_ref();
        let (x, y) = (&public[1..33], &public[33..65]);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
        let Value::Object(jwk) = jwk else { unreachable!() };
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn proof(key: &EncodingKey, header: Value, claims: Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{h}.{c}");
        let alg = match header["alg"].as_str() {
            Some("ES256") => Algorithm::ES256,
            Some("HS256") => Algorithm::HS256,
            _ => Algorithm::ES256,
        };
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    struct Case {
        key: EncodingKey,
        jwk: Map<String, Value>,
        token: &'static str,
    }

    fn case() -> Case {
        let (key, jwk) = es256();
        Case { key, jwk, token: "the.access.token" }
    }

    impl Case {
        fn header(&self) -> Value {
            serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
        }
        fn claims(&self) -> Value {
            serde_json::json!({
                "jti": rand::random::<u64>().to_string(), "htm": "POST",
                "htu": "https://api.example.com/orders", "iat": NOW, "ath": access_token_hash(self.token),
            })
        }
        fn request(&self) -> ProofRequest<'static> {
            let jkt: &'static str = Box::leak(jwk_thumbprint(&self.jwk).unwrap().into_boxed_str());
            ProofRequest {
                method: "POST",
                host: Some("API.example.com:443"),
                path: "/orders",
                access_token: self.token,
                bound_thumbprint: jkt,
                now: NOW,
            }
        }
        fn with(&self, header: Value, claims: Value) -> String {
            proof(&self.key, header, claims)
        }
    }

    fn verifier(config: DpopConfig) -> DpopVerifier {
        DpopVerifier::new(&config).unwrap()
    }

    #[test]
    fn a_valid_proof_passes_once() {
        let c = case();
        let v = verifier(DpopConfig::default());
        let p = c.with(c.header(), c.claims());
        assert!(v.verify(&p, &c.request()).is_ok());
        assert_eq!(v.verify(&p, &c.request()), Err(DpopError::Replayed));
    }

    #[test]
    fn each_check_refuses_its_case() {
        let c = case();
        let v = verifier(DpopConfig::default());
        let r = c.request();
        let mut claims = c.claims();
        claims["htm"] = "GET".into();
        assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::WrongMethod));
        for htu in
            ["https://api.example.com/other", "https://evil.example/orders", "ftp://api.example.com/orders"]
        {
            let mut claims = c.claims();
            claims["htu"] = htu.into();
            assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::WrongUri), "{htu}");
        }
        // Normalization: case, default port, unreserved percent-encoding, query dropped.
        let mut claims = c.claims();
        claims["htu"] = "HTTPS://api.EXAMPLE.com:443/%6Frders?x=1#f".into();
        assert!(v.verify(&c.with(c.header(), claims), &r).is_ok());
        let mut claims = c.claims();
        claims["ath"] = access_token_hash("another.token").into();
        assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::WrongAccessToken));
        let mut claims = c.claims();
        claims.as_object_mut().unwrap().remove("ath");
        assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::MissingClaim));
        for iat in [NOW - 61, NOW + 6] {
            let mut claims = c.claims();
            claims["iat"] = iat.into();
            assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::Stale), "iat {iat}");
        }
        let mut header = c.header();
        header["typ"] = "JWT".into();
        assert_eq!(v.verify(&c.with(header, c.claims()), &r), Err(DpopError::WrongType));
        // A private member in the key.
        let mut header = c.header();
        header["jwk"]["d"] = "AAAA".into();
        assert_eq!(v.verify(&c.with(header, c.claims()), &r), Err(DpopError::BadKey));
        // Symmetric and none.
        let mut header = c.header();
        header["alg"] = "HS256".into();
        let hs = proof(&EncodingKey::from_secret(b"secret").unwrap(), header, c.claims());
        assert_eq!(v.verify(&hs, &r), Err(DpopError::AlgorithmNotAllowed));
        let mut header = c.header();
        header["alg"] = "none".into();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(c.claims().to_string())
        );
        assert!(matches!(v.verify(&none, &r), Err(DpopError::AlgorithmNotAllowed | DpopError::Malformed)));
        // Another key's thumbprint.
        let other = case();
        let mut r2 = r;
        r2.bound_thumbprint = Box::leak(jwk_thumbprint(&other.jwk).unwrap().into_boxed_str());
        assert_eq!(v.verify(&c.with(c.header(), c.claims()), &r2), Err(DpopError::ThumbprintMismatch));
        // Signed by another key than the one it carries.
        let forged = proof(&other.key, c.header(), c.claims());
        assert_eq!(v.verify(&forged, &r), Err(DpopError::InvalidSignature));
        assert_eq!(v.verify("a.b", &r), Err(DpopError::Malformed));
        assert_eq!(v.verify(&"a".repeat(MAX_PROOF_BYTES + 1), &r), Err(DpopError::Malformed));
    }

    #[test]
    fn nonces_rotate_and_are_required_when_configured() {
        let c = case();
        let v = verifier(DpopConfig { require_nonce: true, ..DpopConfig::default() });
        let r = c.request();
        assert_eq!(v.verify(&c.with(c.header(), c.claims()), &r), Err(DpopError::NonceRequired));
        let mut claims = c.claims();
        claims["nonce"] = v.nonce(NOW).into();
        assert!(v.verify(&c.with(c.header(), claims), &r).is_ok());
        // The previous period's nonce still works; older ones and forgeries do not.
        let mut claims = c.claims();
        claims["nonce"] = v.nonce(NOW - 300).into();
        assert!(v.verify(&c.with(c.header(), claims), &r).is_ok());
        for nonce in [v.nonce(NOW - 600), "forged".to_string()] {
            let mut claims = c.claims();
            claims["nonce"] = nonce.into();
            assert_eq!(v.verify(&c.with(c.header(), claims), &r), Err(DpopError::StaleNonce));
        }
        assert_eq!(DpopError::StaleNonce.challenge_error(), "use_dpop_nonce");
    }

    #[test]
    fn configured_origins_and_thumbprints() {
        let c = case();
        let v =
            verifier(DpopConfig { origins: vec!["https://api.example.com".into()], ..DpopConfig::default() });
        let mut r = c.request();
        r.host = Some("attacker.example"); // ignored: the configured origin decides
        assert!(v.verify(&c.with(c.header(), c.claims()), &r).is_ok());
        // RFC 7638 s.3.1's example key and thumbprint.
        let example = serde_json::json!({
            "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        let Value::Object(example) = example else { unreachable!() };
        assert_eq!(jwk_thumbprint(&example).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert!(
            DpopVerifier::new(&DpopConfig { algorithms: vec!["HS256".into()], ..DpopConfig::default() })
                .is_err()
        );
        assert!(
            DpopVerifier::new(&DpopConfig {
                origins: vec!["api.example.com".into()],
                ..DpopConfig::default()
            })
            .is_err()
        );
    }
}
