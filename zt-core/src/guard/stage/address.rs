//! Stage 3: abuse protection before any signature work — blocks of the client's address or
//! network, its lockout, and the per-address ceiling.

use crate::denial::{Denial, Reason};
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Waited};
use crate::limit::{LimitKey, RouteAccess};
use crate::request::RequestView;

pub(super) fn run(guard: &Guard, _view: &RequestView<'_>, facts: &mut Facts<'_>) -> Flow {
    let shared = &*guard.shared;
    if let Some(observer) = &shared.observer
        && let Some(block) = observer.controls().is_blocked(None, facts.client_ip)
    {
        return Flow::Deny(super::controls::blocked(&block, facts, observer));
    }
    let (Some(limiter), Some(key)) = (&shared.limiter, facts.client_key) else {
        return Flow::Continue;
    };
    let decision = match facts.waited.take() {
        Some(Waited::AddressQuota(decision)) => decision,
        _ => {
            if let Some(remaining) = limiter.lockout().locked(LimitKey::Address(key)) {
                return Flow::Deny(locked_out(remaining));
            }
            // A token already in the verified cache costs no signature work: it skips the
            // anonymous ceiling (callers behind one NAT are not throttled as one).
            if facts.cached.is_some() {
                return Flow::Continue;
            }
            let Some(route) = guard.routing.table.get(facts.route.unwrap_or(usize::MAX)) else {
                return Flow::Continue;
            };
            // Public routes (health, readiness) keep the whole local quota in an outage, under
            // every fail mode: a load balancer's probe never fails because the store is down.
            let access =
                if route.requirement.is_public() { RouteAccess::Public } else { RouteAccess::Protected };
            // The matched route's method (a `HEAD` on a `GET` route counts as that route).
            match limiter.check_address_on(key, route.method, route.template, access) {
                crate::limit::LimitCheck::Unlimited => return Flow::Continue,
                crate::limit::LimitCheck::Ready(decision) => decision,
                crate::limit::LimitCheck::Pending(pending) => {
                    return Flow::Wait(Box::pin(async move { Waited::AddressQuota(pending.await) }));
                }
            }
        }
    };
    super::quota::judge(decision, facts)
}

/// A 429 for a locked-out address or caller, with `Retry-After` rounded up.
pub(super) fn locked_out(remaining: std::time::Duration) -> Denial {
    let mut denial = Denial::new(Reason::LockedOut);
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    denial.headers.push(("retry-after", secs.max(1).to_string()));
    denial
}
