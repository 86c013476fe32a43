//! Stage 4: who is calling — the bearer token verified (waiting for the issuer's keys when
//! they must be fetched), bound to the connection's certificate when the token says so, or
//! the certificate alone; then the caller's lockout, and failures counted.

use std::sync::Arc;

use crate::cert::CertificateIdentity;
use crate::denial::Reason;
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Presented, Waited};
use crate::identity::Identity;
use crate::limit::{LimitKey, Limiter};
use crate::token::Step;

pub(super) fn run(guard: &Guard, facts: &mut Facts<'_>) -> Flow {
    let shared = &*guard.shared;
    let token = match &facts.credential {
        Presented::Malformed => return Flow::deny(Reason::MalformedCredentials),
        // Mutual TLS alone (service to service): the certificate is the identity.
        Presented::None => {
            if let Some(certificate) = &facts.certificate {
                facts.identity = Some(Identity::from_certificate(certificate.clone()));
                return Flow::Continue;
            }
            let public = facts
                .route
                .and_then(|i| guard.routing.table.get(i))
                .is_some_and(|r| r.requirement.is_public());
            return if public { Flow::Continue } else { Flow::deny(Reason::MissingCredentials) };
        }
        Presented::Bearer(token) => token,
    };
    // After a key fetch, decide with what there is now (never fetch twice).
    let allow_fetch = !matches!(facts.waited.take(), Some(Waited::Keys));
    let limiter = shared.limiter.as_ref();
    let verified = match shared.verifier.verify_with(token, facts.cached.take(), allow_fetch) {
        Step::Done(result) => {
            result.and_then(|identity| bind_certificate(identity, facts.certificate.clone()))
        }
        Step::Fetch(issuer) => {
            let guard = guard.clone();
            return Flow::Wait(Box::pin(async move {
                if let Some(refresh) = guard.shared.verifier.issuers[issuer].keys.refresh() {
                    // A failed fetch keeps the last good set; the stage then decides with what
                    // there is (and fails closed without any set).
                    let _ = refresh.await;
                }
                Waited::Keys
            }));
        }
    };
    let identity = match verified {
        Ok(identity) => identity,
        // A validly signed token that fails its claims (expired, another audience) names a
        // caller, but anyone holding such a token can replay it: counting it against that
        // caller would let a third party lock a victim out. Failures count against the
        // address that presented them; guessing at an account is the application's to
        // report (`Guard::report_authentication_failure`).
        Err(reason) => {
            if let Some(limiter) = limiter {
                record_failure(limiter, facts.client_key, reason);
            }
            return Flow::deny(reason);
        }
    };
    // Quotas, lockout, blocks and ownership all key on the principal: a token that names no
    // caller (no `sub`, `azp` or `client_id`, and no certificate) cannot be told apart from
    // any other such token, so it is refused rather than pooled.
    if !identity.has_principal() {
        return Flow::deny(Reason::InvalidClaims);
    }
    if let Some(limiter) = limiter {
        let key = LimitKey::Identity(identity.principal());
        if limiter.lockout().locked(key).is_some() {
            facts.identity = Some(identity);
            return Flow::deny(Reason::LockedOut);
        }
        // A verified token resets the caller's failure count.
        limiter.lockout().record_success(key);
    }
    facts.identity = Some(identity);
    Flow::Continue
}

/// Attaches the connection's certificate and enforces a token's certificate binding
/// (RFC 8705): a bound token is only valid with the certificate it names.
fn bind_certificate(
    identity: Identity,
    certificate: Option<Arc<CertificateIdentity>>,
) -> Result<Identity, Reason> {
    let identity = match certificate {
        Some(certificate) => identity.with_certificate(certificate),
        None => identity,
    };
    if identity.certificate_binding().is_some() && !identity.is_certificate_bound() {
        return Err(Reason::CertificateBindingMismatch);
    }
    Ok(identity)
}

/// Counts a failed authentication against the client address that presented it.
fn record_failure(limiter: &Limiter, address: Option<std::net::IpAddr>, reason: Reason) {
    if let Some(address) = address.filter(|_| reason.is_authentication_failure()) {
        limiter.lockout().record_failure(LimitKey::Address(address));
    }
}
