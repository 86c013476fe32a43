//! GraphQL at the Guard: operations recorded on the span, denials rendered GraphQL-shaped.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use tracing::Span;

use super::engine::Shared;
use crate::denial::{Denial, Reason};
#[cfg(not(feature = "graphql"))]
use crate::graphql::{GraphqlConfig, GraphqlRequestBody};
use crate::graphql::{GraphqlDenial, OperationInfo};
use crate::identity::Identity;
use crate::limit::{LimitCheck, LimitKey, Per, RateDecision};
use crate::request::{HeaderLookup, RequestView};
use crate::telemetry::RequestId;

/// What the Guard holds for a GraphQL endpoint: its compiled schema.
#[cfg(feature = "graphql")]
pub(crate) use crate::graphql::GraphqlSchema as EndpointSchema;

/// What the Guard holds for a GraphQL endpoint in a build without the `graphql` feature: a
/// type with no values, since no endpoint can be declared there (the build refuses a policy
/// that names one). The Guard's GraphQL paths stay written once, and compile to nothing.
#[cfg(not(feature = "graphql"))]
#[derive(Debug)]
pub(crate) enum EndpointSchema {}

#[cfg(not(feature = "graphql"))]
impl EndpointSchema {
    pub(crate) fn check(
        &self,
        _request: GraphqlRequestBody<'_>,
        _caller: Option<&Identity>,
    ) -> Result<Vec<OperationInfo>, GraphqlDenial> {
        match *self {}
    }

    pub(crate) fn config(&self) -> &GraphqlConfig {
        match *self {}
    }
}

/// Separates the observer keys of a batch's operations in the one key
/// [`record_operations`] returns (operation labels are GraphQL names or `#hash`, route
/// templates have no newline): the first is the request's record, every other one gets an
/// inventory entry of its own ([`Observation::finish`](super::observation::Observation)).
pub(crate) const BATCH_KEY_SEPARATOR: char = '\n';

/// Records accepted GraphQL operations, every one of a batch (issue 14, finding 12): on the
/// span (names, types and document hashes, comma-separated in batch order; the total
/// cost), an event per operation for batches, the `zt_graphql_operations_total` counter per
/// operation type; logs a report-only safelist miss; and returns the observer's key: every
/// operation's, separated by [`BATCH_KEY_SEPARATOR`].
pub(crate) fn record_operations(
    span: &Span,
    request_id: &RequestId,
    template: &str,
    operations: &[OperationInfo],
) -> Option<String> {
    operations.first()?;
    if !span.is_disabled() {
        let join =
            |f: &dyn Fn(&OperationInfo) -> &str| operations.iter().map(f).collect::<Vec<_>>().join(",");
        span.record("graphql.operation.name", join(&|o| o.name.as_deref().unwrap_or("")).as_str());
        span.record("graphql.operation.type", join(&|o| o.kind.as_str()).as_str());
        span.record("zt.graphql.document_hash", join(&|o| o.hash.as_str()).as_str());
        span.record("zt.graphql.cost", operations.iter().fold(0u64, |sum, o| sum.saturating_add(o.cost)));
    }
    let batch = operations.len() > 1;
    for (index, operation) in operations.iter().enumerate() {
        metrics::counter!("zt_graphql_operations_total", "type" => operation.kind.as_str()).increment(1);
        if batch {
            let _entered = span.enter();
            tracing::event!(
                target: "zt::graphql",
                tracing::Level::INFO,
                zt.request_id = request_id.as_str(),
                http.route = template,
                zt.graphql.batch_index = index,
                graphql.operation.name = operation.name.as_deref().unwrap_or(""),
                graphql.operation.type = operation.kind.as_str(),
                zt.graphql.document_hash = operation.hash.as_str(),
                zt.graphql.cost = operation.cost,
                "GraphQL batch operation"
            );
        }
        if operation.safelisted == Some(false) {
            let _entered = span.enter();
            tracing::event!(
                target: "zt::decision",
                tracing::Level::WARN,
                zt.request_id = request_id.as_str(),
                zt.decision = "would_deny",
                zt.reason = "graphql-persisted-query-not-allowed",
                http.route = template,
                graphql.operation.name = operation.name.as_deref().unwrap_or(""),
                zt.graphql.document_hash = operation.hash.as_str(),
                "GraphQL operation outside the safelist (report-only safelisting)"
            );
        }
    }
    // Detection and inventory key on the operation: its label, the name (or a prefix of
    // the document hash) of operations the endpoint knows, `{other}` for the rest.
    let keys: Vec<String> = operations
        .iter()
        .map(|o| {
            let label = if o.label.is_empty() { crate::graphql::OTHER_OPERATIONS } else { o.label.as_str() };
            format!("{template} {} {label}", o.kind.as_str())
        })
        .collect();
    Some(keys.join(&BATCH_KEY_SEPARATOR.to_string()))
}

/// A GraphQL denial as a zt denial: GraphQL-shaped body (`application/graphql-response+json`
/// when the client accepts it), the standard status, challenge and `Allow` headers.
pub(crate) fn graphql_denial(
    shared: &Shared,
    denial: &GraphqlDenial,
    headers: &dyn HeaderLookup,
    request_id: &RequestId,
) -> Denial {
    let mut zt_denial = Denial::new(Reason::Graphql(denial.reason));
    let mut rendered = shared.render(&zt_denial, request_id);
    let media = crate::graphql::response_media_type(headers.nth("accept", 0));
    for (name, value) in &mut rendered.headers {
        if *name == "content-type" {
            *value = media.to_string();
        }
    }
    if let Some(allow) = denial.allow() {
        rendered.headers.push(("allow", allow.to_string()));
    }
    rendered.body = denial.body(request_id.as_str());
    zt_denial.rendered = Some(Box::new(rendered));
    zt_denial
}

/// What charging an admitted GraphQL request's quotas decided
/// ([`charge_operations`]).
pub(crate) enum Charged {
    /// Every quota had room. (The route's own RateLimit headers stay the ones the
    /// decision sent: a per-field quota is reported only when it refuses.)
    Admitted,
    /// A quota was spent (429) or a fail-closed store was unreachable (503).
    Denied(Denial),
    /// The shared store answers later: await, then the same two outcomes.
    Wait(QuotaWait),
}

/// The shared store's answer to a request's GraphQL quotas: the tightest decision, or the
/// denial.
pub(crate) type QuotaWait = Pin<Box<dyn Future<Output = Result<Option<RateDecision>, Denial>> + Send>>;

/// Charges the quotas per GraphQL root field or operation, and the route quota's unit
/// per mutation root field ([`Limiter::graphql_charges`](crate::limit::Limiter::graphql_charges)),
/// for an admitted request on `method template`: keyed by the verified caller's principal
/// (the client address when anonymous) or by the client address, as each quota says.
///
/// The body phase calls it after `GraphqlSchema::check`
/// accepted the operations (issue 14, finding 4: a batch of 50 aliased `createOrder` takes
/// 50 units of the quota it shares with `POST /orders`, or is refused whole).
pub(crate) fn charge_operations(
    shared: &Shared,
    view: &RequestView<'_>,
    identity: Option<&Identity>,
    template: &str,
    operations: &[OperationInfo],
) -> Charged {
    let Some(limiter) = &shared.limiter else { return Charged::Admitted };
    let client_key: Option<IpAddr> = limiter.client_key(view.peer_addr, view.headers);
    let method = view.method;
    let mut admitted: Option<RateDecision> = None;
    let mut pending = Vec::new();
    for charge in limiter.graphql_charges(method, template, operations) {
        let key = match (charge.per(), identity.map(Identity::principal), client_key) {
            (Per::Identity, Some(principal), _) => LimitKey::Identity(principal),
            (_, _, Some(address)) => LimitKey::Address(address),
            // Nothing to key by (no peer address): the route quota already applied.
            _ => continue,
        };
        match limiter.charge(&charge, key) {
            LimitCheck::Unlimited => {}
            LimitCheck::Ready(decision) => match judge(decision, admitted.take()) {
                Ok(tighter) => admitted = tighter,
                Err(denial) => return Charged::Denied(denial),
            },
            LimitCheck::Pending(future) => pending.push(future),
        }
    }
    if pending.is_empty() {
        return Charged::Admitted;
    }
    Charged::Wait(Box::pin(async move {
        let mut admitted = admitted;
        for future in pending {
            admitted = judge(future.await, admitted)?;
        }
        Ok(admitted)
    }))
}

/// A decision against the tightest so far: refused (429) or unavailable (503) denies.
fn judge(decision: RateDecision, so_far: Option<RateDecision>) -> Result<Option<RateDecision>, Denial> {
    let reason = match (decision.unavailable, decision.allowed) {
        (true, _) => Reason::LimiterUnavailable,
        (false, false) => Reason::RateLimited,
        (false, true) => {
            return Ok(Some(match so_far {
                Some(earlier) => earlier.tighter(decision),
                None => decision,
            }));
        }
    };
    let mut denial = Denial::new(reason);
    denial.headers = decision.headers();
    Err(denial)
}
