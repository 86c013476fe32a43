//! Stage 9: what can be decided before the body is read — the OpenAPI operation's
//! parameters and media type, or a GraphQL endpoint's GET request; body framing and size.

use crate::contract::{ContractRequest, Lookup, ViolationKind, Violations};
use crate::denial::{Denial, Reason};
use crate::graphql::GraphqlRequestBody;
use crate::guard::engine::Guard;
use crate::guard::facts::{Facts, Flow, Framing};
use crate::guard::graphql::{graphql_denial, record_operations};
use crate::policy::ResponseValidation;
use crate::request::{BodyHint, RequestView};
use crate::response::ResponseCheck;

/// Responses larger than this are not validated (passed on, logged).
const RESPONSE_CHECK_LIMIT: usize = 1 << 20;

pub(super) fn run(guard: &Guard, view: &RequestView<'_>, facts: &mut Facts<'_>) -> Flow {
    let shared = &*guard.shared;
    let Some(index) = facts.route else { return Flow::deny(Reason::RouteNotFound) };
    let (Some(route), Some(info)) = (guard.routing.table.get(index), guard.routing.info.get(index)) else {
        return Flow::deny(Reason::RouteNotFound);
    };
    let mut limit = info.body_limit;
    if let Some(schema) = &info.graphql {
        // A GraphQL endpoint's contract is its schema.
        match (view.method, facts.framing) {
            ("GET" | "HEAD", _) => {
                let request = GraphqlRequestBody::Get { query: view.query.unwrap_or("") };
                match schema.check(request, facts.identity.as_ref()) {
                    Ok(operations) => {
                        facts.graphql_pressure = Some(schema.config().pressure(&operations));
                        facts.graphql_operation =
                            record_operations(&facts.span, &facts.request_id, route.template, &operations);
                    }
                    Err(denial) => {
                        return Flow::Deny(graphql_denial(shared, &denial, view.headers, &facts.request_id));
                    }
                }
            }
            (_, Framing::Body { .. } | Framing::Unknown) if !is_json(view) => {
                return Flow::deny(Reason::UnsupportedMediaType);
            }
            // A POST without a body carries no GraphQL request (the check says so).
            (_, Framing::NoBody) => {
                return match schema.check(GraphqlRequestBody::Json(b""), None) {
                    Ok(_) => Flow::deny(Reason::MalformedRequest),
                    Err(denial) => {
                        Flow::Deny(graphql_denial(shared, &denial, view.headers, &facts.request_id))
                    }
                };
            }
            (_, Framing::Body { .. } | Framing::Unknown | Framing::Invalid) => {
                facts.graphql_body = Some(schema.clone())
            }
        }
    } else if let Some(contract) = &shared.contract {
        facts.operation = match info.operation {
            Some(op) => Some(op),
            // A route registered under another template than the contract's (allowed with
            // `contract.allow_undeclared_routes`): the contract's own router decides.
            None => match contract.lookup(route.method, &facts.path) {
                Lookup::Found { op, path_params } => {
                    facts.operation_params = Some(path_params);
                    if let Some(operation) = contract.operation(op) {
                        limit = operation.body_limit;
                    }
                    Some(op)
                }
                _ => None,
            },
        };
        if let Some(op) = facts.operation {
            // Read the response to validate it, or to withhold the properties that need a
            // scope (`x-zt-scopes`) from callers without it, whatever the validation mode.
            let validate = shared.contract_config.responses != ResponseValidation::Off;
            let guards_fields = contract.guards_response_fields(op);
            // A `HEAD` response carries no body: nothing to validate or withhold.
            if (validate || guards_fields) && view.method != "HEAD" {
                facts.response_check = Some(ResponseCheck {
                    operation: op,
                    limit: RESPONSE_CHECK_LIMIT,
                    validate,
                    caller: facts.identity.clone(),
                    guards_fields,
                });
            }
            let checked = match facts.framing {
                // 415 before reading a body that could never be accepted.
                Framing::Body { .. } => contract.check_media_type(op, view.headers),
                // No body: parameters (and a required body's absence) are checked now.
                Framing::NoBody => contract.validate_request(
                    op,
                    &ContractRequest {
                        path_params: facts.operation_params(),
                        query: view.query,
                        headers: view.headers,
                        body: None,
                    },
                ),
                // The body phase checks everything once the body is known (media type too).
                Framing::Unknown | Framing::Invalid => Ok(()),
            };
            if let Err(violations) = checked {
                return Flow::Deny(violation_denial(violations));
            }
        }
    }
    match facts.framing {
        Framing::NoBody => {
            facts.graphql_body = None;
            Flow::Continue
        }
        Framing::Invalid => Flow::deny(Reason::MalformedRequest),
        // Early 413: Content-Length already says it is too large.
        Framing::Body { declared: Some(n) } if n > limit as u64 => Flow::deny(Reason::PayloadTooLarge),
        Framing::Body { .. } | Framing::Unknown => {
            facts.body_limit = Some(limit);
            Flow::Continue
        }
    }
}

/// True when the body is declared `application/json` (parameters such as `charset` allowed).
fn is_json(view: &RequestView<'_>) -> bool {
    let Some(value) = view.headers.nth("content-type", 0) else { return false };
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(b"application/json")
        && view.headers.nth("content-type", 1).is_none()
}

/// Body framing: from the headers when the request has framing headers, else from what the
/// adapter knows of the body.
pub(crate) fn framing(view: &RequestView<'_>) -> Framing {
    let mut declared: Option<u64> = None;
    let mut index = 0;
    while let Some(value) = view.headers.nth("content-length", index) {
        index += 1;
        let Some(n) = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()) else {
            return Framing::Invalid;
        };
        if declared.is_some_and(|d| d != n) {
            return Framing::Invalid;
        }
        declared = Some(n);
    }
    let chunked = view.headers.nth("transfer-encoding", 0).is_some();
    if chunked && declared.is_some() {
        // Both framings at once is the request-smuggling shape (RFC 9112 s.6.3).
        return Framing::Invalid;
    }
    match declared {
        Some(0) => Framing::NoBody,
        Some(n) => Framing::Body { declared: Some(n) },
        None if chunked => Framing::Body { declared: None },
        None => match view.body {
            BodyHint::Empty | BodyHint::Exact(0) => Framing::NoBody,
            BodyHint::Exact(n) => Framing::Body { declared: Some(n) },
            BodyHint::Unknown => Framing::Unknown,
        },
    }
}

/// The denial for contract violations: the reason by kind, the violations listed.
pub(crate) fn violation_denial(violations: Violations) -> Denial {
    let reason = match violations.kind {
        ViolationKind::Parameters => Reason::InvalidParameters,
        ViolationKind::Body => Reason::InvalidBody,
        ViolationKind::UnsupportedMediaType => Reason::UnsupportedMediaType,
        ViolationKind::MethodOverride => Reason::MethodOverride,
    };
    let mut denial = Denial::new(reason);
    denial.violations = violations
        .items
        .into_iter()
        .map(|v| crate::denial::Violation { pointer: v.pointer, keyword: v.keyword })
        .collect();
    denial.violations_truncated = violations.truncated;
    denial
}
