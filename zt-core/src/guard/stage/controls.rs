//! Stage 5: the runtime controls — a revoked token, a blocked or challenged caller.

use crate::denial::{Denial, Reason};
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow};
use crate::observe::{Block, Hint, HintRequest, Observer};

pub(super) fn run(guard: &Guard, facts: &mut Facts<'_>) -> Flow {
    let (Some(observer), Some(identity)) = (&guard.shared.observer, &facts.identity) else {
        return Flow::Continue;
    };
    let hint = observer.verdict_hint(&HintRequest {
        caller: Some(identity),
        subject: None,
        // The address stage already refused blocked addresses and networks: only the
        // caller's own names are left to look up.
        client_ip: None,
        jti: identity.token_id(),
    });
    match hint {
        Hint::Proceed => Flow::Continue,
        Hint::Block(block) | Hint::Challenge(block) => Flow::Deny(blocked(&block, facts, observer)),
        Hint::Revoked => Flow::deny(Reason::TokenRevoked),
    }
}

/// The denial for a block or challenge from the observer's controls.
pub(super) fn blocked(block: &Block, facts: &Facts<'_>, observer: &Observer) -> Denial {
    let mut denial = Denial::new(Reason::Blocked);
    denial.rendered = Some(Box::new(block.response(facts.request_id.as_str(), observer.now())));
    denial
}
