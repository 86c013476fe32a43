//! Bearer tokens: where they are read from, and how a JWT is verified.
//!
//! Verification order: structure -> header (`alg` must not be `none`, no `crit`) -> issuer
//! (from the unverified `iss`, only to pick that issuer's keys) -> key (by `kid`, with its
//! pinned algorithm, which must equal the header's) -> signature -> claims. Claims are only
//! interpreted after the signature verified.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::denial::Reason;
use crate::error::PolicyError;
use crate::identity::Identity;
use crate::introspect::{Answer, Introspector};
use crate::keys::{KeyFetcher, KeySource, Lookup};
use crate::policy::{IssuerConfig, RemoteKeysConfig, TokenConfig};
use crate::request::{HeaderValue, RequestView};

/// What the request carries as a credential.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    None,
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` (RFC 9449): the proof comes in the `DPoP` header.
    Dpop(&'a str),
    /// Malformed, repeated, or sent in more than one way.
    Malformed,
}

/// Whether `b` is an RFC 6750 `b64token` character. Comparisons only, no table and no
/// branch: with [`is_b64token`] folding without an early exit, the compiler checks many
/// bytes per instruction (tokens are hundreds of bytes, and this runs on every request).
#[inline]
fn is_b64token_byte(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64token_byte(b))
}

/// Parses `Authorization: Bearer <token>` (or `DPoP <token>` when `dpop`; the flag says
/// which). `Ok(None)`: another scheme. `known` answers for a token already accepted before
/// (see [`extract_with`]).
fn parse_authorization<'v>(
    value: &'v [u8],
    dpop: bool,
    known: &mut dyn FnMut(&str) -> bool,
) -> Result<Option<(&'v str, bool)>, ()> {
    let value = std::str::from_utf8(value).map_err(|_| ())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let is_dpop = dpop && scheme.eq_ignore_ascii_case("dpop");
    if !scheme.eq_ignore_ascii_case("bearer") && !is_dpop {
        return if scheme.is_empty() { Err(()) } else { Ok(None) };
    }
    let token = rest.trim_matches(' ');
    if known(token) || is_b64token(token) { Ok(Some((token, is_dpop))) } else { Err(()) }
}

fn single<'a>(found: &mut Option<&'a str>, value: &'a str) -> Result<(), ()> {
    if found.replace(value).is_some() { Err(()) } else { Ok(()) }
}

/// Reads the credential from the enabled sources. More than one -> malformed.
#[cfg(test)]
pub(crate) fn extract<'a>(view: &RequestView<'a>, config: &TokenConfig, dpop: bool) -> Credential<'a> {
    extract_with(view, config, dpop, &mut |_| false)
}

/// Reads the request's credential, where `known(token)` says that this exact
/// `Authorization` token was accepted before (it is in the verified-token cache, so it
/// passed this very check when it was first presented): its characters are then not
/// checked again. The check reads every byte of a token of hundreds (about 900
/// instructions, 8% of a cached request's decision); the cache probe is made anyway, once,
/// by the caller's `known`.
pub(crate) fn extract_with<'a>(
    view: &RequestView<'a>,
    config: &TokenConfig,
    dpop: bool,
    known: &mut dyn FnMut(&str) -> bool,
) -> Credential<'a> {
    let mut found: Option<&'a str> = None;
    let mut with_dpop = false;
    let result: Result<(), ()> = (|| {
        match view.headers.get_one("authorization") {
            HeaderValue::Absent => {}
            HeaderValue::Repeated => return Err(()),
            HeaderValue::One(v) => {
                if let Some((token, is_dpop)) = parse_authorization(v, dpop, known)? {
                    single(&mut found, token)?;
                    with_dpop = is_dpop;
                }
            }
        }
        if let Some(name) = &config.header {
            match view.headers.get_one(name) {
                HeaderValue::Absent => {}
                HeaderValue::Repeated => return Err(()),
                HeaderValue::One(v) => {
                    let token = std::str::from_utf8(v).map_err(|_| ())?.trim_matches(' ');
                    if !is_b64token(token) {
                        return Err(());
                    }
                    single(&mut found, token)?;
                }
            }
        }
        if let Some(cookie) = &config.cookie {
            let mut from_cookie: Option<&'a str> = None;
            let mut bad = false;
            // Cookies may arrive in several headers (HTTP/2 splits them): read them all.
            let mut index = 0;
            while let Some(value) = view.headers.nth("cookie", index) {
                index += 1;
                let Ok(text) = std::str::from_utf8(value) else {
                    bad = true;
                    continue;
                };
                for pair in text.split(';') {
                    let Some((name, v)) = pair.trim().split_once('=') else { continue };
                    if name == cookie {
                        let v = v.trim_matches('"');
                        if !is_b64token(v) || from_cookie.replace(v).is_some() {
                            bad = true;
                        }
                    }
                }
            }
            if bad {
                return Err(());
            }
            if let Some(token) = from_cookie {
                single(&mut found, token)?;
            }
        }
        if config.dangerous_allow_query_token
            && let Some(query) = view.query
        {
            for pair in query.split('&') {
                if let Some(v) = pair.strip_prefix("access_token=") {
                    if !is_b64token(v) {
                        return Err(());
                    }
                    single(&mut found, v)?;
                }
            }
        }
        Ok(())
    })();
    match (result, found) {
        (Err(()), _) => Credential::Malformed,
        (Ok(()), Some(t)) if t.len() > config.max_token_length => Credential::Malformed,
        (Ok(()), Some(t)) if with_dpop => Credential::Dpop(t),
        (Ok(()), Some(t)) => Credential::Bearer(t),
        (Ok(()), None) => Credential::None,
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// One issuer, compiled.
pub(crate) struct IssuerVerifier {
    pub(crate) issuer: String,
    audiences: Vec<String>,
    skip_audience: bool,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_age: Option<u64>,
    typ: Option<String>,
    required_claims: Vec<String>,
    claim_values: Vec<(String, Value)>,
    pub(crate) keys: KeySource,
}

/// A verified token kept in the cache: the claims, and what is needed to re-check that
/// they still hold (times, and that the key is still published).
pub(crate) struct CachedToken {
    identity: Identity,
    issuer: usize,
    kid: Option<String>,
    fingerprint: u64,
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// All issuers plus the verified-token cache.
pub(crate) struct Verifier {
    pub(crate) issuers: Vec<IssuerVerifier>,
    by_issuer: HashMap<String, usize>,
    cache: Option<quick_cache::sync::Cache<String, Arc<CachedToken>>>,
    /// The one issuer that introspects opaque tokens (RFC 7662, [`crate::introspect`]),
    /// by index, with its endpoint.
    introspection: Option<(usize, Introspector)>,
}

/// The result of a synchronous verification attempt.
pub(crate) enum Step {
    Done(Result<Identity, Reason>),
    /// The issuer's keys must be fetched first; then call again with `allow_fetch = false`.
    Fetch(usize),
    /// An opaque token (or one of an `opaque_only` issuer) with no usable cached answer:
    /// await [`Verifier::introspect`].
    Introspect,
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// The claims: one JSON object, read by zt's one strict reader ([`crate::json`]: RFC 7519
/// s.4 lets a parser reject duplicate member names or take the last; other parsers may take
/// the first, so duplicates are refused, at any depth). The token, and so its payload, was
/// bounded by `tokens.max_token_length` before verification.
fn claims_object(payload: &[u8]) -> Option<Map<String, Value>> {
    match crate::json::parse(payload, crate::json::BOUNDED_BY_CALLER) {
        Ok(Value::Object(claims)) => Some(claims),
        _ => None,
    }
}

/// A claim that must be a NumericDate when present (`exp`, `nbf`, `iat`, RFC 7519 s.4.1;
/// `auth_time`, OpenID Connect Core s.2): `Ok(None)` when absent, the whole
/// seconds when it is one, [`Reason::InvalidClaims`] otherwise (null included).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => numeric_date_value(v).map(Some).ok_or(Reason::InvalidClaims),
    }
}

/// A NumericDate as whole seconds since the epoch: any JSON number at or after the epoch,
/// written as an integer, with a fraction or an exponent (`1700000000`, `1700000000.25`,
/// `1.7e9`), since RFC 7519 s.2 allows non-integer values. The fraction is dropped (a
/// second at most, inside any leeway). `None` for anything else: a string (even of
/// digits), a boolean, null, a negative or non-finite number.
pub(crate) fn numeric_date_value(value: &Value) -> Option<u64> {
    let Value::Number(n) = value else { return None };
    if let Some(whole) = n.as_u64() {
        return Some(whole);
    }
    // Negative integers fail here too; `as` saturates beyond u64::MAX (year 5e11).
    n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)
}

impl IssuerVerifier {
    fn check_times(&self, exp: u64, nbf: Option<u64>, iat: Option<u64>, now: u64) -> Result<(), Reason> {
        if now >= exp.saturating_add(self.leeway) {
            return Err(Reason::TokenExpired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(Reason::TokenNotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(Reason::TokenNotYetValid);
        }
        if let Some(max_age) = self.max_age {
            match iat {
                None => return Err(Reason::InvalidClaims),
                Some(iat) if now.saturating_sub(iat) > max_age.saturating_add(self.leeway) => {
                    return Err(Reason::InvalidClaims);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), Reason> {
        if self.skip_audience {
            return Ok(());
        }
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.iter().any(|x| x == a),
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).any(|a| self.audiences.iter().any(|x| x == a))
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(Reason::WrongAudience) }
    }

    /// The issuer's own claim rules: `required_claims` and `claim_values`.
    fn check_claim_rules(&self, claims: &Map<String, Value>) -> Result<(), Reason> {
        for name in &self.required_claims {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(Reason::InvalidClaims);
            }
        }
        for (name, value) in &self.claim_values {
            if claims.get(name) != Some(value) {
                return Err(Reason::InvalidClaims);
            }
        }
        Ok(())
    }

    fn check_typ(&self, typ: Option<&str>) -> Result<(), Reason> {
        let Some(required) = &self.typ else { return Ok(()) };
        let typ = typ.ok_or(Reason::InvalidClaims)?;
        let bare =
            if typ.len() > 12 && typ[..12].eq_ignore_ascii_case("application/") { &typ[12..] } else { typ };
        if bare.eq_ignore_ascii_case(required) { Ok(()) } else { Err(Reason::InvalidClaims) }
    }
}

impl Verifier {
    pub(crate) fn new(
        issuers: &[IssuerConfig],
        tokens: &TokenConfig,
        remote: &RemoteKeysConfig,
        fetcher: &Arc<dyn KeyFetcher>,
    ) -> Result<Verifier, PolicyError> {
        let mut compiled = Vec::new();
        let mut by_issuer = HashMap::new();
        let mut introspection: Option<(usize, Introspector)> = None;
        for (i, cfg) in issuers.iter().enumerate() {
            let at = format!("issuers[{i}]");
            if cfg.issuer.is_empty() {
                return Err(PolicyError::invalid(format!("{at}.issuer"), "the issuer must not be empty"));
            }
            if by_issuer.insert(cfg.issuer.clone(), i).is_some() {
                return Err(PolicyError::invalid(
                    format!("{at}.issuer"),
                    "this issuer is configured twice; a key never serves two issuers",
                ));
            }
            if cfg.audiences.is_empty() && !cfg.dangerous_skip_audience_check {
                return Err(PolicyError::invalid(
                    format!("{at}.audiences"),
                    "name at least one audience (or set dangerous_skip_audience_check)",
                ));
            }
            let mut algorithms = Vec::new();
            for (j, name) in cfg.algorithms.iter().enumerate() {
                let alg = crate::keys::parse_algorithm(name).ok_or_else(|| {
                    PolicyError::invalid(
                        format!("{at}.algorithms[{j}]"),
                        format!("unknown algorithm {name:?}"),
                    )
                })?;
                algorithms.push(alg);
            }
            let keys = KeySource::from_config(cfg, &at, remote, fetcher)?;
            if let Some(config) = &cfg.introspection {
                // An opaque token names no issuer: sending it to several endpoints in turn
                // would hand one issuer's live tokens to another, so only one may introspect.
                if introspection.is_some() {
                    return Err(PolicyError::invalid(
                        format!("{at}.introspection"),
                        "only one issuer may configure introspection (an opaque token names no issuer, and is never sent to two)",
                    ));
                }
                introspection = Some((i, Introspector::new(cfg, config, &at, remote, keys.clone())?));
            }
            compiled.push(IssuerVerifier {
                issuer: cfg.issuer.clone(),
                audiences: cfg.audiences.clone(),
                skip_audience: cfg.dangerous_skip_audience_check,
                algorithms,
                leeway: cfg.leeway.map_or(60, |d| d.as_secs()),
                max_age: cfg.max_token_age.map(|d| d.as_secs()),
                typ: cfg.required_typ.as_ref().map(|t| t.trim_start_matches("application/").to_string()),
                required_claims: cfg.required_claims.clone(),
                claim_values: cfg.claim_values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                keys,
            });
        }
        if tokens.cache && tokens.cache_capacity == 0 {
            return Err(PolicyError::invalid(
                "tokens.cache_capacity",
                "must be at least 1 (or set tokens.cache = false)",
            ));
        }
        let cache = tokens.cache.then(|| quick_cache::sync::Cache::new(tokens.cache_capacity));
        Ok(Verifier { issuers: compiled, by_issuer, cache, introspection })
    }

    /// Number of verified tokens currently cached.
    /// True when `token` is in the verified-token cache (its signature was checked before).
    /// The cache entry for `token`, if it was verified before. Looked up once per request:
    /// the Guard uses the answer both to skip the anonymous ceiling and to verify.
    pub(crate) fn cached(&self, token: &str) -> Option<Arc<CachedToken>> {
        self.cache.as_ref().and_then(|c| c.get(token))
    }

    pub(crate) fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Verifies `token` without waiting for I/O, given its cache entry ([`Verifier::cached`]).
    /// With `allow_fetch`, a missing key whose issuer may be refetched yields [`Step::Fetch`].
    pub(crate) fn verify_with(
        &self,
        token: &str,
        cached: Option<Arc<CachedToken>>,
        allow_fetch: bool,
    ) -> Step {
        let now = unix_now();
        // Opaque tokens (and every token of an `opaque_only` issuer) are introspected: from
        // the introspection cache without waiting, else after a call.
        if let Some((index, introspector)) = &self.introspection
            && self.introspects(*index, introspector, token)
        {
            return match introspector.cached(&introspector.digest(token)) {
                Some(answer) => Step::Done(self.judge_introspected(*index, &answer, now)),
                None => Step::Introspect,
            };
        }
        if let Some(cache) = &self.cache
            && let Some(hit) = cached
        {
            {
                let issuer = &self.issuers[hit.issuer];
                let valid = issuer.check_times(hit.exp, hit.nbf, hit.iat, now);
                if valid.is_ok() && issuer.keys.still_has(hit.kid.as_deref(), hit.fingerprint) {
                    return Step::Done(Ok(hit.identity.clone()));
                }
                cache.remove(token);
                if let Err(reason) = valid {
                    return Step::Done(Err(reason));
                }
                // The key was removed: verify from scratch, which now fails as it should.
            }
        }
        self.verify_uncached(token, allow_fetch, now)
    }

    /// Whether `token` goes to the introspection endpoint of issuer `index`: it is not a
    /// JWT, or its (unverified, only used to choose) `iss` names an `opaque_only` issuer.
    fn introspects(&self, index: usize, introspector: &Introspector, token: &str) -> bool {
        !crate::introspect::looks_like_jwt(token)
            || (introspector.opaque_only
                && crate::introspect::unverified_issuer(token).as_deref()
                    == Some(self.issuers[index].issuer.as_str()))
    }

    /// Introspects `token` (after [`Step::Introspect`]): the answer, from a call or one in
    /// flight, judged like a fresh one.
    pub(crate) async fn introspect(&self, token: &str) -> Result<Identity, Reason> {
        let Some((index, introspector)) = &self.introspection else { return Err(Reason::MalformedToken) };
        match introspector.answer(token).await {
            Ok(answer) => self.judge_introspected(*index, &answer, unix_now()),
            Err(failure) => Err(introspector.failed(failure)),
        }
    }

    /// Judges an introspection answer's facts now, as for a JWT's claims: `iss`, times,
    /// audience, `jti`, the issuer's claim rules. Done on every use of a cached answer,
    /// which therefore never carries a decision, only facts.
    fn judge_introspected(&self, index: usize, answer: &Answer, now: u64) -> Result<Identity, Reason> {
        let Answer::Active { claims, identity, exp, nbf, iat, .. } = answer else {
            return Err(Reason::TokenInactive);
        };
        let issuer = &self.issuers[index];
        if claims.get("iss").is_some_and(|iss| iss.as_str() != Some(issuer.issuer.as_str())) {
            return Err(Reason::UntrustedIssuer);
        }
        // RFC 7662 makes `exp` optional: without one, the answer's cache lifetime bounds it.
        issuer.check_times(exp.unwrap_or(u64::MAX), *nbf, *iat, now)?;
        issuer.check_audience(claims)?;
        crate::identity::token_id(claims).map_err(|()| Reason::InvalidClaims)?;
        issuer.check_claim_rules(claims)?;
        Ok(identity.clone())
    }

    fn verify_uncached(&self, token: &str, allow_fetch: bool, now: u64) -> Step {
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        let Ok(header_bytes) = URL_SAFE_NO_PAD.decode(h64) else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        // The whole header must be UTF-8 JSON (RFC 7515 s.4, RFC 8259 s.8.1): serde skips
        // unknown members without checking them, and a stricter component must never read
        // the same token differently.
        let Ok(header_text) = std::str::from_utf8(&header_bytes) else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        // Read strictly first ([`crate::json`]), so no member is skipped unchecked.
        let Some(header) = crate::json::parse(header_text.as_bytes(), crate::json::BOUNDED_BY_CALLER)
            .ok()
            .and_then(|value| serde_json::from_value::<RawHeader>(value).ok())
        else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        if header.alg.eq_ignore_ascii_case("none") {
            return Step::Done(Err(Reason::AlgorithmNotAllowed));
        }
        if header.crit.is_some() {
            // zt understands no JWS extension, so any `crit` list is unsupported (RFC 7515
            // s.4.1.11); an empty or malformed one is invalid anyway.
            return Step::Done(Err(Reason::UnsupportedCriticalHeader));
        }
        let Some(algorithm) = crate::keys::parse_algorithm(&header.alg) else {
            return Step::Done(Err(Reason::AlgorithmNotAllowed));
        };
        if s64.is_empty() {
            return Step::Done(Err(Reason::MalformedToken));
        }
        let Ok(payload) = URL_SAFE_NO_PAD.decode(p64) else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        let Some(claims) = claims_object(&payload) else {
            return Step::Done(Err(Reason::MalformedToken));
        };
        let Some(issuer_index) =
            claims.get("iss").and_then(Value::as_str).and_then(|iss| self.by_issuer.get(iss)).copied()
        else {
            return Step::Done(Err(Reason::UntrustedIssuer));
        };
        let issuer = &self.issuers[issuer_index];
        if !issuer.algorithms.is_empty() && !issuer.algorithms.contains(&algorithm) {
            return Step::Done(Err(Reason::AlgorithmNotAllowed));
        }
        let key = match issuer.keys.lookup(header.kid.as_deref(), algorithm) {
            Lookup::Found(key) => key,
            Lookup::Fetch if allow_fetch => return Step::Fetch(issuer_index),
            Lookup::Missing | Lookup::Fetch => return Step::Done(Err(Reason::UnknownKey)),
            Lookup::Unavailable => return Step::Done(Err(Reason::KeysUnavailable)),
        };
        if key.algorithm != algorithm {
            return Step::Done(Err(Reason::AlgorithmNotAllowed));
        }
        let message_len = h64.len() + 1 + p64.len();
        let message = &token.as_bytes()[..message_len];
        if !key.verify(s64, message, algorithm) {
            return Step::Done(Err(Reason::InvalidSignature));
        }
        // Signature verified: now the claims may be interpreted.
        let result = (|| {
            issuer.check_typ(header.typ.as_deref())?;
            let exp = numeric_date(&claims, "exp")?.ok_or(Reason::InvalidClaims)?;
            let nbf = numeric_date(&claims, "nbf")?;
            let iat = numeric_date(&claims, "iat")?;
            // Read when a zone asks how old the authentication is (`max_token_age`): a
            // value that is not a NumericDate is refused here, never silently replaced by
            // `iat` there.
            numeric_date(&claims, "auth_time")?;
            issuer.check_times(exp, nbf, iat, now)?;
            issuer.check_audience(&claims)?;
            // A `jti` no revocation could name (not a string or an integer) is refused.
            crate::identity::token_id(&claims).map_err(|()| Reason::InvalidClaims)?;
            issuer.check_claim_rules(&claims)?;
            Ok((exp, nbf, iat))
        })();
        let (exp, nbf, iat) = match result {
            Ok(t) => t,
            Err(reason) => {
                return Step::Done(Err(reason));
            }
        };
        let identity = Identity::from_jwt_claims(&issuer.issuer, claims);
        if let Some(cache) = &self.cache {
            cache.insert(
                token.to_string(),
                Arc::new(CachedToken {
                    identity: identity.clone(),
                    issuer: issuer_index,
                    kid: key.kid.clone(),
                    fingerprint: key.fingerprint,
                    exp,
                    nbf,
                    iat,
                }),
            );
        }
        Step::Done(Ok(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HeaderList;

    #[test]
    fn numeric_dates_are_any_non_negative_json_number() {
        let read = |text: &str| numeric_date_value(&serde_json::from_str::<Value>(text).unwrap());
        for (text, want) in [
            ("1700000000", Some(1_700_000_000)),
            ("1700000000.75", Some(1_700_000_000)),
            ("1.7e9", Some(1_700_000_000)),
            ("17E8", Some(1_700_000_000)),
            ("0", Some(0)),
            ("-0.0", Some(0)),
            ("18446744073709551615", Some(u64::MAX)),
            ("1e30", Some(u64::MAX)),
            ("-1", None),
            ("-0.5", None),
            ("\"1700000000\"", None),
            ("true", None),
            ("null", None),
            ("[1]", None),
            ("{}", None),
        ] {
            assert_eq!(read(text), want, "{text}");
        }
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"iat": 1.5, "auth_time": "x", "nbf": null}"#).unwrap();
        assert_eq!(numeric_date(&claims, "iat"), Ok(Some(1)));
        assert_eq!(numeric_date(&claims, "exp"), Ok(None), "absent");
        assert_eq!(numeric_date(&claims, "auth_time"), Err(Reason::InvalidClaims));
        assert_eq!(numeric_date(&claims, "nbf"), Err(Reason::InvalidClaims), "null is not a date");
    }

    fn view<'a>(headers: &'a HeaderList, query: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            method: "GET",
            path: "/",
            query,
            headers,
            peer_addr: None,
            peer_certificates: None,
            body: crate::BodyHint::Empty,
        }
    }

    #[test]
    fn b64token_bytes_are_exactly_rfc6750() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), expected, "byte {b:#04x}");
        }
        assert!(is_b64token("abc.DEF-_~+/09=="));
        assert!(!is_b64token("abc def"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("abc\u{e9}"));
    }

    #[test]
    fn bearer_parsing() {
        let cfg = TokenConfig::default();
        let h = HeaderList::default().with("authorization", "bearer abc.def.ghi");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Bearer("abc.def.ghi"));
        let h = HeaderList::default().with("authorization", "BEARER  abc");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Bearer("abc"));
        let h = HeaderList::default().with("authorization", "Bearer ");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
        let h = HeaderList::default().with("authorization", "Bearer a b");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
        let h = HeaderList::default().with("authorization", "Basic dXNlcjpwYXNz");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::None);
        let h = HeaderList::default().with("authorization", "Bearer a").with("authorization", "Bearer a");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
        let h = HeaderList::default().with("authorization", [0xffu8, 0x20, 0x41]);
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
        // The DPoP scheme (RFC 9449), only when accepted; another scheme otherwise.
        let h = HeaderList::default().with("authorization", "DPoP abc.def.ghi");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Dpop("abc.def.ghi"));
        assert_eq!(extract(&view(&h, None), &cfg, false), Credential::None);
        let h = HeaderList::default().with("authorization", "dpop a b");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
    }

    /// `known` is asked about the `Authorization` token only, and only it skips the
    /// character check; the other rules (scheme, one credential, length) still hold.
    #[test]
    fn known_tokens_skip_only_the_character_check() {
        let mut cfg = TokenConfig::default();
        let mut asked = Vec::new();
        let h = HeaderList::default().with("authorization", "Bearer abc.def.ghi");
        let mut known = |t: &str| {
            asked.push(t.to_string());
            true
        };
        assert_eq!(extract_with(&view(&h, None), &cfg, true, &mut known), Credential::Bearer("abc.def.ghi"));
        assert_eq!(asked, ["abc.def.ghi"]);
        // Unknown: checked as ever.
        let h = HeaderList::default().with("authorization", "Bearer a b");
        assert_eq!(extract_with(&view(&h, None), &cfg, true, &mut |_| false), Credential::Malformed);
        // Known still leaves the length limit and the one-credential rule.
        cfg.max_token_length = 5;
        let h = HeaderList::default().with("authorization", "Bearer abcdefgh");
        assert_eq!(extract_with(&view(&h, None), &cfg, true, &mut |_| true), Credential::Malformed);
        cfg.max_token_length = 4096;
        cfg.dangerous_allow_query_token = true;
        let h = HeaderList::default().with("authorization", "Bearer abc");
        assert_eq!(
            extract_with(&view(&h, Some("access_token=abc")), &cfg, true, &mut |_| true),
            Credential::Malformed
        );
    }

    #[test]
    fn query_tokens_only_when_enabled_and_never_two_credentials() {
        let mut cfg = TokenConfig::default();
        let h = HeaderList::default();
        assert_eq!(extract(&view(&h, Some("access_token=abc")), &cfg, true), Credential::None);
        cfg.dangerous_allow_query_token = true;
        assert_eq!(extract(&view(&h, Some("x=1&access_token=abc")), &cfg, true), Credential::Bearer("abc"));
        let h2 = HeaderList::default().with("authorization", "Bearer abc");
        assert_eq!(extract(&view(&h2, Some("access_token=abc")), &cfg, true), Credential::Malformed);
    }

    #[test]
    fn cookie_source() {
        let cfg = TokenConfig { cookie: Some("at".into()), ..Default::default() };
        let h = HeaderList::default().with("cookie", "a=1; at=tok.en.x; b=2");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Bearer("tok.en.x"));
        let h = HeaderList::default().with("cookie", "at=x; at=y");
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
    }

    #[test]
    fn oversized_tokens_are_malformed() {
        let cfg = TokenConfig { max_token_length: 10, ..Default::default() };
        let h = HeaderList::default().with("authorization", format!("Bearer {}", "a".repeat(11)));
        assert_eq!(extract(&view(&h, None), &cfg, true), Credential::Malformed);
    }

    #[test]
    fn strict_object_rejects_duplicates() {
        assert!(claims_object(br#"{"iss":"a","iss":"b"}"#).is_none());
        assert!(claims_object(br#"{"iss":"a"}"#).is_some());
        assert!(claims_object(b"[1]").is_none());
    }
}
