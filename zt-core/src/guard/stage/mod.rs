//! The stages of a request's decision, in their one fixed order.
//!
//! Each stage is a function over the request and its [`Facts`]: it continues, denies, or
//! waits (and then runs again with the wait's result). The order is a security property —
//! nothing is authorized before it is authenticated, no signature is checked before the
//! per-address ceiling, no body is read before the caller is known — so it is written down
//! once, here, as data, and there is no way to add, drop or reorder a stage at run time.

mod address;
mod authenticate;
mod authorize;
mod contract;
mod controls;
mod credential;
mod quota;
mod route;
mod zones;

use super::engine::Guard;
use super::facts::{Facts, Flow};
use crate::request::RequestView;

pub(crate) use contract::violation_denial;
pub(crate) use credential::CERTIFICATE_CACHE;

/// One stage of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Canonical path, route match (404/405), method override, body framing.
    Route,
    /// Client certificate, client address, the presented credential.
    Credential,
    /// Blocks of the address or its network, address lockout, the per-address ceiling
    /// (skipped for a token already verified).
    AddressAbuse,
    /// Token verification (may wait for keys), certificate binding, principal, lockout.
    Authenticate,
    /// Revoked tokens and blocks of the caller.
    Controls,
    /// The route's required scopes.
    Authorize,
    /// Trust zone and ownership bindings.
    Zones,
    /// The caller's own quota (may wait for the shared store).
    Quota,
    /// What the contract or the GraphQL schema can decide before the body.
    Contract,
}

/// The order of the stages.
pub(crate) const ORDER: [Stage; 9] = [
    Stage::Route,
    Stage::Credential,
    Stage::AddressAbuse,
    Stage::Authenticate,
    Stage::Controls,
    Stage::Authorize,
    Stage::Zones,
    Stage::Quota,
    Stage::Contract,
];

/// Runs one stage.
pub(crate) fn run<'a>(stage: Stage, guard: &Guard, view: &RequestView<'a>, facts: &mut Facts<'a>) -> Flow {
    match stage {
        Stage::Route => route::run(guard, view, facts),
        Stage::Credential => credential::run(guard, view, facts),
        Stage::AddressAbuse => address::run(guard, view, facts),
        Stage::Authenticate => authenticate::run(guard, view, facts),
        Stage::Controls => controls::run(guard, facts),
        Stage::Authorize => authorize::run(guard, facts),
        Stage::Zones => zones::run(guard, facts),
        Stage::Quota => quota::run(guard, view, facts),
        Stage::Contract => contract::run(guard, view, facts),
    }
}
