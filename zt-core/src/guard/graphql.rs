//! GraphQL at the Guard: operations recorded on the span, denials rendered GraphQL-shaped.

use tracing::Span;

use super::engine::Shared;
use crate::denial::{Denial, Reason};
use crate::graphql::{GraphqlDenial, OperationInfo};
use crate::request::HeaderLookup;
use crate::telemetry::RequestId;

/// Records accepted GraphQL operations on the span (name, type, document hash), logs a
/// report-only safelist miss, and returns the observer's operation key.
pub(crate) fn record_operations(
    span: &Span,
    request_id: &RequestId,
    template: &str,
    operations: &[OperationInfo],
) -> Option<String> {
    let first = operations.first()?;
    if !span.is_disabled() {
        let names: Vec<&str> = operations.iter().map(|o| o.name.as_deref().unwrap_or("")).collect();
        span.record("graphql.operation.name", names.join(",").as_str());
        span.record("graphql.operation.type", first.kind.as_str());
        span.record("zt.graphql.document_hash", first.hash.as_str());
        span.record("zt.graphql.cost", operations.iter().map(|o| o.cost).sum::<u64>());
    }
    for operation in operations.iter().filter(|o| o.safelisted == Some(false)) {
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
    // Detection and inventory key on the operation: named operations by name, anonymous
    // ones by a prefix of their document hash. Bounded by the inventory's limits.
    let label = match &first.name {
        Some(name) => name.clone(),
        None => format!("#{}", &first.hash[..first.hash.len().min(12)]),
    };
    Some(format!("{template} {} {label}", first.kind.as_str()))
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
