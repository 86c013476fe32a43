//! Stage 6: least privilege — the route's required scopes, evaluated on every call (a
//! cached token caches claims, never a decision).

use crate::denial::{Denial, Reason};
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow};

pub(super) fn run(guard: &Guard, facts: &mut Facts<'_>) -> Flow {
    let Some(route) = facts.route.and_then(|i| guard.routing.table.get(i)) else {
        return Flow::deny(Reason::RouteNotFound);
    };
    let Some(identity) = &facts.identity else {
        // Anonymous: the authenticate stage let it through only on a public route.
        return Flow::Continue;
    };
    match route.requirement.missing_scopes(|s| identity.has_scope(s)) {
        None => Flow::Continue,
        Some(missing) => {
            let mut denial = Denial::new(Reason::InsufficientScope);
            denial.required_scopes = missing.to_vec();
            Flow::Deny(denial)
        }
    }
}
