//! GraphQL requests against the demo schema (`examples/orders.graphql`, the demo's limits),
//! through `GraphqlSchema::check` as the Guard calls it.
//!
//! Input: byte 0 picks the caller (bits 0..2: anonymous, no scopes, `orders:read`,
//! `orders:read orders:write`, `orders:admin orders:read`, `zt:admin orders:read`,
//! `orders:write`, `orders:admin`) and the
//! transport (bit 3: GET with the rest as the query string, else POST with the rest as the
//! JSON body).
//!
//! Properties: never panics; whatever is accepted the demo's executor takes, read as the
//! executor reads it (issue 14, finding 6): each document parses and validates against the
//! same SDL with apollo-compiler, its operation is selectable by the request's
//! `operationName` (an empty one over GET is none, GraphQL over HTTP), and its variables
//! pass the executor's own input coercion (`apollo_compiler::request::
//! coerce_variable_values`: Int within 32 bits and never a float, ID a string or an i64, ...);
//! the real work is within budget (finding 3): with list sizes as the executor bounds them
//! (`limit`, else 100), the cost summed over the batch is at most `max_cost`; nothing accepted
//! selects `internalNote` unless the caller holds `orders:admin`; introspection is accepted
//! only for `zt:admin`; no mutation is accepted over GET; an anonymous caller never gets
//! `orders`, `order` or `createOrder`; nothing accepted reaches an order or a customer
//! (`orders`, `order`, `customer`) without `orders:read`, whatever the path (issue 14,
//! finding 2).
#![no_main]

use std::sync::OnceLock;

use apollo_compiler::ast::Value;
use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use libfuzzer_sys::fuzz_target;
use zt::graphql::{GraphqlConfig, GraphqlRequestBody, GraphqlSchema, OperationKind};

const SDL: &str = include_str!("../../examples/orders.graphql");

fn guarded() -> &'static GraphqlSchema {
    static SCHEMA: OnceLock<GraphqlSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let config = GraphqlConfig {
            max_depth: 8,
            max_aliases: 20,
            max_root_fields: 10,
            max_batch: 5,
            introspection_scopes: vec!["zt:admin".into()],
            ..GraphqlConfig::default()
        };
        GraphqlSchema::from_sdl(SDL, config).expect("fuzz harness: the demo schema compiles")
    })
}

fn executor_schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_and_validate(SDL, "orders.graphql").expect("fuzz harness: SDL"))
}

const CALLERS: [Option<&[&str]>; 8] = [
    None,
    Some(&[]),
    Some(&["orders:read"]),
    Some(&["orders:read", "orders:write"]),
    Some(&["orders:admin", "orders:read"]),
    Some(&["zt:admin", "orders:read"]),
    Some(&["orders:write"]),
    Some(&["orders:admin"]),
];

/// Every field name selected anywhere in the document (operations and fragments).
fn field_names(document: &ExecutableDocument) -> Vec<String> {
    fn walk(set: &SelectionSet, out: &mut Vec<String>) {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    out.push(field.name.to_string());
                    walk(&field.selection_set, out);
                }
                Selection::InlineFragment(inline) => walk(&inline.selection_set, out),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    for operation in document.operations.iter() {
        walk(&operation.selection_set, &mut out);
    }
    for fragment in document.fragments.values() {
        walk(&fragment.selection_set, &mut out);
    }
    out
}

/// One request as the demo executor reads it (`examples/orders/graphql.rs`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutorRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<JsonMap>,
}

/// The requests of a body or query string as the executor reads them; `None` when the
/// executor would refuse the transport itself (a "contract bypass").
fn requests(get: bool, rest: &[u8]) -> Option<Vec<ExecutorRequest>> {
    if get {
        let mut request = ExecutorRequest { query: None, operation_name: None, variables: None };
        for (name, value) in form_urlencoded::parse(rest) {
            match &*name {
                "query" => request.query = Some(value.into_owned()),
                "operationName" => {
                    request.operation_name = Some(value.into_owned()).filter(|n| !n.is_empty())
                }
                "variables" => request.variables = serde_json::from_str::<Option<JsonMap>>(&value).ok()?,
                _ => {}
            }
        }
        return Some(vec![request]);
    }
    let value = serde_json::from_slice::<serde_json::Value>(rest).ok()?;
    let members = match value {
        serde_json::Value::Array(members) => members,
        other => vec![other],
    };
    members.into_iter().map(|m| serde_json::from_value(m).ok()).collect()
}

/// The most orders a list field returns (`MAX_LIST` in the demo executor).
const MAX_LIST: u64 = 100;
/// The demo's `max_cost` (zt's default).
const MAX_COST: u64 = 1000;

/// The work an operation really asks of the executor: each field 1, an object field its
/// selection's cost, times the items a list really returns (`limit` clamped to 0..=100,
/// else 100). Saturates.
fn real_cost(document: &ExecutableDocument, set: &SelectionSet, variables: &JsonMap) -> u64 {
    let mut total = 0u64;
    for selection in &set.selections {
        let part = match selection {
            Selection::Field(field) => {
                if field.selection_set.selections.is_empty()
                    || matches!(field.name.as_str(), "__schema" | "__type")
                {
                    1
                } else {
                    let inner = real_cost(document, &field.selection_set, variables);
                    let items = if field.definition.ty.is_list() { list_items(field, variables) } else { 1 };
                    inner.saturating_mul(items).saturating_add(1)
                }
            }
            Selection::InlineFragment(inline) => real_cost(document, &inline.selection_set, variables),
            Selection::FragmentSpread(spread) => match document.fragments.get(&spread.fragment_name) {
                Some(fragment) => real_cost(document, &fragment.selection_set, variables),
                None => 0,
            },
        };
        total = total.saturating_add(part);
    }
    total
}

fn list_items(field: &Field, variables: &JsonMap) -> u64 {
    let limit = field.arguments.iter().find(|a| a.name == "limit").and_then(|a| match a.value.as_ref() {
        Value::Int(i) => i.as_str().parse::<i64>().ok(),
        Value::Variable(name) => variables.get(name.as_str()).and_then(|v| v.as_i64()),
        _ => None,
    });
    match limit {
        Some(n) => u64::try_from(n).unwrap_or(0).min(MAX_LIST),
        None => MAX_LIST,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let caller = CALLERS[usize::from(selector & 7)];
    let get = selector & 8 != 0;
    let scopes: Option<Vec<String>> = caller.map(|s| s.iter().map(|s| s.to_string()).collect());
    let request = if get {
        let Ok(query) = std::str::from_utf8(rest) else { return };
        GraphqlRequestBody::Get { query }
    } else {
        GraphqlRequestBody::Json(rest)
    };
    let Ok(operations) = guarded().check_with_scopes(request, scopes.as_deref()) else { return };
    let holds = |scope: &str| caller.is_some_and(|s| s.contains(&scope));
    for operation in &operations {
        assert!(!(get && operation.kind == OperationKind::Mutation), "mutation accepted over GET");
        assert!(!operation.introspection || holds("zt:admin"), "introspection for {caller:?}");
    }
    // Persisted-query requests carry no document; the demo configures none, so an accepted
    // request always has one per operation.
    let Some(requests) = requests(get, rest) else { panic!("accepted a request the executor cannot read") };
    assert_eq!(requests.len(), operations.len(), "accepted operations without documents");
    let mut work = 0u64;
    for request in requests {
        let Some(text) = request.query else { panic!("accepted a request without a document") };
        let document = ExecutableDocument::parse_and_validate(executor_schema(), &text, "q.graphql");
        let Ok(document) = document else { panic!("accepted a document the executor refuses") };
        let Ok(operation) = document.operations.get(request.operation_name.as_deref()) else {
            panic!("accepted an operation the executor cannot select")
        };
        let variables = request.variables.unwrap_or_default();
        let Ok(coerced) = coerce_variable_values(executor_schema(), operation, &variables) else {
            panic!("accepted variables the executor refuses")
        };
        work = work.saturating_add(real_cost(&document, &operation.selection_set, &coerced));
        let names = field_names(&document);
        assert!(
            holds("orders:admin") || !names.iter().any(|n| n == "internalNote"),
            "internalNote for {caller:?}"
        );
        assert!(
            holds("orders:read")
                || !names.iter().any(|n| matches!(n.as_str(), "orders" | "order" | "customer")),
            "order data for {caller:?}"
        );
        if caller.is_none() {
            assert!(
                !names.iter().any(|n| matches!(n.as_str(), "orders" | "order" | "createOrder")),
                "anonymous caller reached a scoped field"
            );
        }
    }
    assert!(work <= MAX_COST, "accepted a request costing {work} for real (max_cost {MAX_COST})");
});
