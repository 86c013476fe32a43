//! Stage 8: the caller's own quota — per principal, else per client address — which may
//! wait for the shared store.

use crate::denial::{Denial, Reason};
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Waited};
use crate::identity::Identity;
use crate::limit::{LimitCheck, LimitKey, RateDecision, RouteAccess};
use crate::request::RequestView;

pub(super) fn run(guard: &Guard, _view: &RequestView<'_>, facts: &mut Facts<'_>) -> Flow {
    let Some(limiter) = &guard.shared.limiter else { return Flow::Continue };
    let decision = match facts.waited.take() {
        Some(Waited::CallerQuota(decision)) => decision,
        _ => {
            let key = match (facts.identity.as_ref().map(Identity::principal), facts.client_key) {
                (Some(principal), _) => LimitKey::Identity(principal),
                (None, Some(address)) => LimitKey::Address(address),
                (None, None) => return Flow::Continue,
            };
            let Some(route) = facts.route.and_then(|i| guard.routing.table.get(i)) else {
                return Flow::Continue;
            };
            let access =
                if route.requirement.is_public() { RouteAccess::Public } else { RouteAccess::Protected };
            // The matched route's method: a `HEAD` served by a `GET` route spends the `GET`
            // route's quota (its handler does the same work).
            match limiter.check_identity_on(key, route.method, route.template, access) {
                LimitCheck::Unlimited => return Flow::Continue,
                LimitCheck::Ready(decision) => decision,
                LimitCheck::Pending(pending) => {
                    return Flow::Wait(Box::pin(async move { Waited::CallerQuota(pending.await) }));
                }
            }
        }
    };
    judge(decision, facts)
}

/// Admits (keeping the tighter decision for the response headers) or refuses: 429 when the
/// quota is spent, 503 when a fail-closed shared store cannot be reached.
pub(super) fn judge(decision: RateDecision, facts: &mut Facts<'_>) -> Flow {
    let reason = match (decision.unavailable, decision.allowed) {
        (true, _) => Reason::LimiterUnavailable,
        (false, false) => Reason::RateLimited,
        (false, true) => {
            facts.add_rate(Some(decision));
            return Flow::Continue;
        }
    };
    let mut denial = Denial::new(reason);
    denial.headers = decision.headers();
    Flow::Deny(denial)
}
