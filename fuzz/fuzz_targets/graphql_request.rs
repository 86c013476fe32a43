//! GraphQL requests against the demo schema (`examples/orders.graphql`, the demo's limits),
//! through `GraphqlSchema::check` as the Guard calls it.
//!
//! Input: byte 0 picks the caller (bits 0..2: anonymous, no scopes, `orders:read`,
//! `orders:read orders:write`, `orders:admin orders:read`, `zt:admin orders:read`,
//! `orders:write`, `orders:admin`) and the
//! transport (bit 3: GET with the rest as the query string, else POST with the rest as the
//! JSON body).
//!
//! Properties: never panics; whatever is accepted is a document the demo's executor takes
//! (it parses and validates against the same SDL with apollo-compiler); nothing accepted
//! selects `internalNote` unless the caller holds `orders:admin`; introspection is accepted
//! only for `zt:admin`; no mutation is accepted over GET; an anonymous caller never gets
//! `orders`, `order` or `createOrder`; nothing accepted reaches an order or a customer
//! (`orders`, `order`, `customer`) without `orders:read`, whatever the path (issue 14,
//! finding 2).
#![no_main]

use std::sync::OnceLock;

use apollo_compiler::executable::{Selection, SelectionSet};
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

/// The documents of a request as the executor reads them (`query` of each member).
fn documents(get: bool, rest: &[u8]) -> Vec<String> {
    if get {
        return form_urlencoded::parse(rest)
            .filter(|(name, _)| name == "query")
            .map(|(_, value)| value.into_owned())
            .collect();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return Vec::new() };
    let members = match value {
        serde_json::Value::Array(members) => members,
        other => vec![other],
    };
    members.iter().filter_map(|m| m.get("query")?.as_str().map(str::to_string)).collect()
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
    let texts = documents(get, rest);
    assert_eq!(texts.len(), operations.len(), "accepted operations without documents");
    for text in texts {
        let document = ExecutableDocument::parse_and_validate(executor_schema(), &text, "q.graphql");
        let Ok(document) = document else { panic!("accepted a document the executor refuses") };
        let names = field_names(&document);
        assert!(holds("orders:admin") || !names.iter().any(|n| n == "internalNote"), "internalNote for {caller:?}");
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
});
