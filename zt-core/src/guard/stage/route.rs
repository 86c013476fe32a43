//! Stage 1: one canonical path, matched against the route table (default deny).

use super::contract::framing;
use crate::denial::Reason;
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow};
use crate::request::RequestView;

pub(super) fn run<'a>(guard: &Guard, view: &RequestView<'a>, facts: &mut Facts<'a>) -> Flow {
    let Ok(path) = crate::canonical::canonicalize(view.path, &guard.shared.policy.paths) else {
        return Flow::deny(Reason::InvalidPath);
    };
    let found = match guard.routing.table.find(view.method, &path, Some(&mut facts.params)) {
        Ok(found) => found,
        Err(denial) => return Flow::Deny(denial),
    };
    if !facts.span.is_disabled() {
        facts.span.record("http.route", &**found.template);
        facts.span.record("zt.required_scopes", found.described);
    }
    facts.route = Some(found.index);
    facts.path = path;
    if has_method_override(view) {
        return Flow::deny(Reason::MethodOverride);
    }
    facts.framing = framing(view);
    Flow::Continue
}

/// Method override in any form: never honoured, always refused.
fn has_method_override(view: &RequestView<'_>) -> bool {
    view.headers.has_any(&crate::contract::METHOD_OVERRIDE_HEADERS)
        || view.query.is_some_and(|q| q.split('&').any(|p| p == "_method" || p.starts_with("_method=")))
}
