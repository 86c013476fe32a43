//! Stage 4: who is calling — the bearer token verified (waiting for the issuer's keys when
//! they must be fetched), bound to the connection's certificate when the token says so, or
//! the certificate alone; then the caller's lockout, and failures counted.

use std::sync::Arc;

use crate::cert::CertificateIdentity;
use crate::denial::Reason;
use crate::dpop::{DpopError, ProofRequest, VerifiedProof};
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Presented, Proof, Waited};
use crate::identity::Identity;
use crate::limit::{LimitKey, Limiter};
use crate::request::{HeaderValue, RequestView};
use crate::token::Step;

pub(super) fn run(guard: &Guard, view: &RequestView<'_>, facts: &mut Facts<'_>) -> Flow {
    let shared = &*guard.shared;
    let waited = facts.waited.take();
    // Resumed after the shared replay record of a DPoP proof: the token and the proof were
    // verified before the wait.
    if let Some(Waited::DpopReplay(outcome)) = waited {
        let Some(identity) = facts.identity.take() else {
            return Flow::deny(Reason::Dpop(DpopError::Replayed));
        };
        return match outcome {
            Some(false) => {
                if let Some(limiter) = shared.limiter.as_ref() {
                    record_failure(limiter, facts.client_key, Reason::Dpop(DpopError::Replayed));
                }
                Flow::deny(Reason::Dpop(DpopError::Replayed))
            }
            Some(true) => admit(shared.limiter.as_ref(), facts, identity),
            None => {
                // The store did not answer: this replica's own record still refused a
                // replay here; say that the fleet-wide one was skipped.
                metrics::counter!("zt_dpop_replay_unchecked_total").increment(1);
                tracing::warn!(target: "zt::fleet", "DPoP replay checked on this replica only: the shared store did not answer");
                admit(shared.limiter.as_ref(), facts, identity)
            }
        };
    }
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
    let allow_fetch = !matches!(waited, Some(Waited::Keys));
    let limiter = shared.limiter.as_ref();
    // Resumed after an opaque token's introspection (RFC 7662): its judged answer.
    let step = match waited {
        Some(Waited::Introspected(result)) => Step::Done(result),
        _ => shared.verifier.verify_with(token, facts.cached.take(), allow_fetch),
    };
    let verified = match step {
        Step::Done(result) => {
            result.and_then(|identity| bind_certificate(identity, facts.certificate.clone()))
        }
        Step::Fetch(issuer) => {
            let guard = guard.clone();
            return Flow::Wait(Box::pin(async move {
                if let Some(refresh) = guard.shared.verifier.issuers[issuer].keys.refresh_for_lookup() {
                    // A failed fetch keeps the last good set; the stage then decides with what
                    // there is (and fails closed without any set).
                    let _ = refresh.await;
                }
                Waited::Keys
            }));
        }
        Step::Introspect => {
            let guard = guard.clone();
            let token = token.to_string();
            return Flow::Wait(Box::pin(async move {
                Waited::Introspected(guard.shared.verifier.introspect(&token).await)
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
    let (identity, proof) = match possession(guard, view, &facts.proof, token, identity) {
        Ok(checked) => checked,
        Err(reason) => {
            if let Some(limiter) = limiter {
                record_failure(limiter, facts.client_key, reason);
            }
            return Flow::deny(reason);
        }
    };
    #[cfg(feature = "redis")]
    if let (Some(fleet), Some(proof)) = (&shared.fleet, proof) {
        // One replica must refuse a proof already used on another: record it fleet-wide.
        facts.identity = Some(identity);
        let fleet = fleet.clone();
        let hex: String = proof.replay_key.iter().map(|b| format!("{b:02x}")).collect();
        let ttl_ms =
            proof.remember_until.saturating_sub(crate::token::unix_now()).max(1).saturating_mul(1000);
        return Flow::Wait(Box::pin(async move {
            let mut record = redis::cmd("SET");
            record.arg(fleet.key(&format!("dpop:{hex}"))).arg(1).arg("NX").arg("PX").arg(ttl_ms);
            let outcome = fleet.query::<Option<String>>(&record).await.ok().map(|set| set.is_some());
            Waited::DpopReplay(outcome)
        }));
    }
    #[cfg(not(feature = "redis"))]
    let _ = proof;
    admit(limiter, facts, identity)
}

/// The verified caller's own lockout, then its failure count reset.
fn admit(limiter: Option<&Limiter>, facts: &mut Facts<'_>, identity: Identity) -> Flow {
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

/// Proof of possession (RFC 9449): a DPoP-bound token needs the DPoP scheme and a valid
/// proof; the DPoP scheme needs a DPoP-bound token. Returns the identity (marked when
/// possession was proven) and the proof to record fleet-wide.
fn possession(
    guard: &Guard,
    view: &RequestView<'_>,
    proof: &Proof<'_>,
    token: &str,
    identity: Identity,
) -> Result<(Identity, Option<VerifiedProof>), Reason> {
    let header = match (proof, identity.dpop_binding()) {
        (Proof::NotUsed, None) => return Ok((identity, None)),
        (Proof::NotUsed, Some(_)) => return Err(Reason::DpopBoundTokenAsBearer),
        // The DPoP scheme with a token bound to no key: nothing to prove possession of.
        (_, None) => return Err(Reason::Dpop(DpopError::ThumbprintMismatch)),
        (Proof::Missing, Some(_)) => return Err(Reason::Dpop(DpopError::Missing)),
        (Proof::Header(header), Some(_)) => header,
    };
    // The DPoP scheme is only read when a verifier exists.
    let Some(verifier) = &guard.shared.dpop else { return Err(Reason::Dpop(DpopError::Malformed)) };
    let host = match view.headers.get_one("host") {
        HeaderValue::One(value) => std::str::from_utf8(value).ok(),
        HeaderValue::Absent | HeaderValue::Repeated => None,
    };
    let request = ProofRequest {
        method: view.method,
        host,
        path: view.path,
        access_token: token,
        bound_thumbprint: identity.dpop_binding().unwrap_or_default(),
        now: crate::token::unix_now(),
    };
    let verified = verifier.verify(header, &request).map_err(Reason::Dpop)?;
    Ok((identity.with_proof_of_possession(), Some(verified)))
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
    // An expired (validly signed) token is not a guess: it never counts (see `Lockout::counts`).
    if let Some(address) = address.filter(|_| crate::limit::Lockout::counts(reason)) {
        limiter.lockout().record_failure(LimitKey::Address(address));
    }
}
