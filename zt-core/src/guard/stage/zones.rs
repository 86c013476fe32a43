//! Stage 7: segmentation — the route's trust zone, then ownership bindings.

use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow};
use crate::identity::Identity;

pub(super) fn run(guard: &Guard, facts: &mut Facts<'_>) -> Flow {
    let zones = &guard.shared.zones;
    if zones.is_empty() && zones.bindings.is_empty() {
        return Flow::Continue;
    }
    let Some(info) = facts.route.and_then(|i| guard.routing.info.get(i)) else {
        return Flow::Continue;
    };
    let zone = match info.zone {
        Ok(Some(index)) => zones.zone(index),
        Ok(None) => None,
        Err(reason) => return Flow::deny(reason),
    };
    if let Some(zone) = zone
        && let Err(reason) = zone.admit(facts.identity.as_ref(), facts.client_ip, crate::token::unix_now())
    {
        return Flow::deny(reason);
    }
    if zones.bindings.is_empty() {
        return Flow::Continue;
    }
    match zones.check_bindings(&facts.params, facts.identity.as_ref()) {
        Ok(()) => Flow::Continue,
        Err(reason) => {
            let template = facts.route.and_then(|i| guard.routing.table.get(i)).map(|r| r.template.clone());
            let _entered = facts.span.enter();
            tracing::event!(
                target: "zt::security",
                tracing::Level::WARN,
                event.action = "zt.bola_attempt",
                zt.request_id = facts.request_id.as_str(),
                http.route = template.as_deref().unwrap_or(""),
                user.id = facts.identity.as_ref().map_or("", Identity::principal),
                "object access outside the caller's ownership"
            );
            Flow::deny(reason)
        }
    }
}
