//! Stage 2: what the request presents — its connection's client certificate, its client
//! address, and its credential (with the verified-token cache consulted once).

use std::borrow::Cow;
use std::sync::Arc;

use crate::cert::CertificateIdentity;
use crate::denial::Reason;
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Presented, Proof};
use crate::request::{HeaderValue, PeerCertificates, RequestView};
use crate::token::{self, Credential};

/// Most parsed client certificates kept (a connection's certificate is parsed once).
pub(crate) const CERTIFICATE_CACHE: usize = 1024;

pub(super) fn run<'a>(guard: &Guard, view: &RequestView<'a>, facts: &mut Facts<'a>) -> Flow {
    let shared = &*guard.shared;
    if let Some(chain) = view.peer_certificates {
        match certificate(guard, chain) {
            Some(certificate) => facts.certificate = Some(certificate),
            None => return Flow::deny(Reason::InvalidClientCertificate),
        }
    }
    match &shared.limiter {
        Some(_) if view.peer_addr.is_none() => warn_no_peer_address(),
        _ => {}
    }
    match &shared.limiter {
        Some(limiter) => {
            facts.client_ip = limiter.client_address(view.peer_addr, view.headers);
            facts.client_key = limiter.client_key(view.peer_addr, view.headers);
        }
        None => facts.client_ip = view.peer_addr.map(|a| a.ip()),
    }
    let own_authentication =
        facts.route.and_then(|i| guard.routing.info.get(i)).is_some_and(|info| info.own_authentication);
    if own_authentication {
        // The endpoint authenticates its caller itself (the Shared Signals push): a
        // transmitter's `Authorization` is not an access token for the Guard to verify.
        facts.credential = Presented::None;
        return Flow::Continue;
    }
    // The verified-token cache is probed once, while the `Authorization` token is read: a
    // token found there skips the character check it passed when it was first presented.
    let mut probed: Option<(*const u8, usize, Option<Arc<token::CachedToken>>)> = None;
    let mut known = |candidate: &str| {
        let hit = shared.verifier.cached(candidate);
        let found = hit.is_some();
        probed = Some((candidate.as_ptr(), candidate.len(), hit));
        found
    };
    let credential = token::extract_with(view, &shared.policy.tokens, shared.dpop.is_some(), &mut known);
    // The probe's answer, when it was for the very token presented (the same bytes of the
    // request, not only equal text); otherwise the token came from elsewhere: probe it now.
    let mut cached = |token: &str| match probed.take() {
        Some((at, len, hit)) if std::ptr::eq(at, token.as_ptr()) && len == token.len() => hit,
        _ => shared.verifier.cached(token),
    };
    facts.credential = match credential {
        Credential::None => Presented::None,
        Credential::Malformed => Presented::Malformed,
        Credential::Bearer(token) => {
            facts.cached = cached(token);
            Presented::Bearer(Cow::Borrowed(token))
        }
        Credential::Dpop(token) => {
            facts.cached = cached(token);
            facts.proof = match view.headers.get_one("dpop") {
                HeaderValue::One(value) => match std::str::from_utf8(value) {
                    Ok(proof) => Proof::Header(Cow::Borrowed(proof.trim_matches(' '))),
                    Err(_) => Proof::Missing,
                },
                HeaderValue::Absent | HeaderValue::Repeated => Proof::Missing,
            };
            Presented::Bearer(Cow::Borrowed(token))
        }
    };
    Flow::Continue
}

/// The parsed identity of a verified client certificate (cached by DER); `None` when the
/// leaf does not parse.
fn certificate(guard: &Guard, chain: &PeerCertificates) -> Option<Arc<CertificateIdentity>> {
    let leaf = chain.leaf()?;
    let cache = &guard.shared.certificates;
    if let Some(found) = cache.get(leaf) {
        return Some(found);
    }
    let parsed = Arc::new(CertificateIdentity::from_der(leaf).ok()?);
    cache.insert(leaf.to_vec(), parsed.clone());
    Some(parsed)
}

/// Logged once per process: limits are configured but the adapter passes no peer address,
/// so per-address ceilings, lockouts and anonymous quotas cannot key on the caller (they
/// see every request as coming from nowhere).
fn warn_no_peer_address() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::error!(
            target: "zt::config",
            "zt: rate limits and lockout are configured but the server passes no peer address; \
             per-address limits cannot apply (axum: serve with \
             `into_make_service_with_connect_info::<std::net::SocketAddr>()`)"
        );
    });
}
