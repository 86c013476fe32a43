//! GraphQL under zero trust, against the demo schema `examples/orders.graphql` with the
//! demo limits (depth 8, aliases 20, root fields 10, batch 5, introspection for zt:admin).
#![cfg(feature = "graphql")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zt_core::graphql::{
    GraphqlConfig, GraphqlDenial, GraphqlReason, GraphqlRequestBody, GraphqlSchema, OperationInfo,
    OperationKind,
};

const SDL: &str = include_str!("../../examples/orders.graphql");

fn demo_config() -> GraphqlConfig {
    GraphqlConfig {
        max_depth: 8,
        max_aliases: 20,
        max_root_fields: 10,
        max_batch: 5,
        ..GraphqlConfig::default()
    }
}

fn demo() -> GraphqlSchema {
    GraphqlSchema::from_sdl(SDL, demo_config()).unwrap()
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// POSTs `body` as a caller holding `granted` (`None`: anonymous).
fn post_as(
    schema: &GraphqlSchema,
    body: &Value,
    granted: Option<&[&str]>,
) -> Result<Vec<OperationInfo>, GraphqlDenial> {
    let granted = granted.map(scopes);
    let text = body.to_string();
    schema.check_with_scopes(GraphqlRequestBody::Json(text.as_bytes()), granted.as_deref())
}

fn reader(schema: &GraphqlSchema, query: &str) -> Result<Vec<OperationInfo>, GraphqlDenial> {
    post_as(schema, &json!({ "query": query }), Some(&["orders:read"]))
}

fn reason(result: Result<Vec<OperationInfo>, GraphqlDenial>) -> GraphqlReason {
    result.unwrap_err().reason
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Rendered body of a denial, checked for leaks: no suggestions, nothing of `secrets`.
fn safe_body(denial: &GraphqlDenial, secrets: &[&str]) -> String {
    let body = denial.body("req-1");
    let lower = body.to_lowercase();
    assert!(!lower.contains("did you mean"), "{body}");
    for secret in secrets {
        assert!(!body.contains(secret), "{secret:?} leaked into {body}");
    }
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["errors"][0]["extensions"]["code"], denial.code());
    assert_eq!(
        parsed["errors"][0]["extensions"]["type"],
        format!("urn:zt:problem:{}", denial.problem_slug())
    );
    assert_eq!(parsed["errors"][0]["extensions"]["request_id"], "req-1");
    body
}

// ---------------------------------------------------------------- valid operations

#[test]
fn a_valid_query_with_the_right_scope_passes() {
    let s = demo();
    let query = "query Recent($n: Int) { orders(limit: $n) { id item quantity customer { name } } }";
    let body = json!({"query": query, "operationName": "Recent", "variables": {"n": 3}});
    let info = post_as(&s, &body, Some(&["orders:read"])).unwrap();
    assert_eq!(info.len(), 1);
    let op = &info[0];
    assert_eq!(op.name.as_deref(), Some("Recent"));
    assert_eq!(op.kind, OperationKind::Query);
    assert_eq!(op.hash, sha256_hex(query));
    assert_eq!(op.depth, 3);
    // orders: 1 + 3 x (id 1 + item 1 + quantity 1 + customer (1 + name 1)) = 1 + 3 x 5
    assert_eq!(op.cost, 16);
    assert_eq!(
        (op.aliases, op.root_fields, op.introspection, op.persisted, op.safelisted),
        (0, 1, false, false, None)
    );
    // The same document again (now cached) with another variable value: cost follows it.
    let body = json!({"query": query, "variables": {"n": 50}});
    assert_eq!(post_as(&s, &body, Some(&["orders:read"])).unwrap()[0].cost, 1 + 50 * 5);
}

#[test]
fn a_valid_mutation_with_the_right_scope_passes() {
    let s = demo();
    let body = json!({
        "query": "mutation Create($item: String!, $q: Int!) { createOrder(item: $item, quantity: $q) { id owner } }",
        "variables": {"item": "book", "q": 2}
    });
    let info = post_as(&s, &body, Some(&["orders:write"])).unwrap();
    assert_eq!(info[0].kind, OperationKind::Mutation);
    let denial = post_as(&s, &body, Some(&["orders:read"])).unwrap_err();
    assert_eq!((denial.reason, denial.status()), (GraphqlReason::ForbiddenField, 403));
    assert_eq!(denial.field_paths, ["createOrder"]);
    let denial = post_as(&s, &body, None).unwrap_err();
    assert_eq!((denial.reason, denial.status()), (GraphqlReason::Unauthenticated, 401));
    assert_eq!(denial.field_paths, ["createOrder"]);
}

#[test]
fn typename_is_open_and_public() {
    let s = demo();
    assert!(post_as(&s, &json!({"query": "{ __typename }"}), None).is_ok());
}

#[test]
fn get_runs_queries_only() {
    let s = demo();
    let granted = scopes(&["orders:read", "orders:write"]);
    let get = |query: &str| s.check_with_scopes(GraphqlRequestBody::Get { query }, Some(&granted));
    let ok = get("query=query+One%28%24id%3A+ID%21%29+%7B+order%28id%3A+%24id%29+%7B+id+%7D+%7D&variables=%7B%22id%22%3A%227%22%7D&operationName=One").unwrap();
    assert_eq!(ok[0].name.as_deref(), Some("One"));
    let denial =
        get("query=mutation+%7B+createOrder%28item%3A%22a%22%2C+quantity%3A1%29+%7B+id+%7D+%7D").unwrap_err();
    assert_eq!(
        (denial.reason, denial.status(), denial.allow()),
        (GraphqlReason::MutationOverGet, 405, Some("POST"))
    );
    assert_eq!(denial.code(), "MUTATION_OVER_GET");
    // A document with a query and a mutation: the selected one decides.
    let both = "query=query+Q+%7B+orders+%7B+id+%7D+%7D+mutation+M+%7B+createOrder%28item%3A%22a%22%2C+quantity%3A1%29+%7B+id+%7D+%7D";
    assert!(get(&format!("{both}&operationName=Q")).is_ok());
    assert_eq!(reason(get(&format!("{both}&operationName=M"))), GraphqlReason::MutationOverGet);
    // Repeated or unknown parameters are refused.
    assert_eq!(reason(get("query=%7B__typename%7D&query=%7B__typename%7D")), GraphqlReason::BadRequest);
    assert_eq!(reason(get("query=%7B__typename%7D&debug=1")), GraphqlReason::BadRequest);
    // GET can be switched off.
    let post_only =
        GraphqlSchema::from_sdl(SDL, GraphqlConfig { allow_get: false, ..demo_config() }).unwrap();
    let denial = post_only
        .check_with_scopes(GraphqlRequestBody::Get { query: "query=%7B__typename%7D" }, None)
        .unwrap_err();
    assert_eq!((denial.reason, denial.allow()), (GraphqlReason::GetNotAllowed, Some("POST")));
}

// ---------------------------------------------------------------- validation

#[test]
fn unknown_fields_types_and_arguments_are_refused_without_suggestions() {
    let s = demo();
    for (query, secret) in [
        ("{ orders { itme } }", "itme"),
        ("{ orders(limt: 5) { id } }", "limt"),
        ("{ ordrs { id } }", "ordrs"),
        ("{ orders { ... on Ordr { id } } }", "Ordr"),
        ("query($x: Strin) { orders { id } }", "Strin"),
        ("{ orders { id ...Missing } }", "Missing"),
        ("{ order { id } }", "order(id"),
        ("{ orders { customer } }", "customer {"),
        ("query { orders { id } } query { orders { id } }", "anonymous"),
    ] {
        let denial = reader(&s, query).unwrap_err();
        assert_eq!((denial.reason, denial.status()), (GraphqlReason::ValidationFailed, 400), "{query}");
        assert_eq!(denial.code(), "GRAPHQL_VALIDATION_FAILED");
        let body = safe_body(&denial, &[secret, "item", "Order.", "orders.graphql"]);
        assert!(denial.field_paths.is_empty(), "{body}");
    }
    // Locations point into the caller's document.
    let denial = reader(&s, "{\n  orders { itme }\n}").unwrap_err();
    assert_eq!(denial.locations.first().map(|l| l.line), Some(2));
}

#[test]
fn syntax_errors_are_parse_failures() {
    let s = demo();
    for query in ["{ orders { id }", "query ( { }", "", "{ orders(limit: \"unterminated) { id } }", "}"] {
        let denial = reader(&s, query).unwrap_err();
        assert_eq!(denial.reason, GraphqlReason::ParseFailed, "{query:?}");
        safe_body(&denial, &["unterminated", "Unterminated", "expected"]);
    }
}

#[test]
fn variables_are_validated_against_their_declared_types() {
    let s = demo();
    let query = "query($n: Int) { orders(limit: $n) { id } }";
    for (variables, path) in [
        (json!({"n": "ten-SECRET"}), "$n"),
        (json!({"n": 1.5}), "$n"),
        (json!({"n": 99999999999i64}), "$n"),
        (json!({"n": [1, 2]}), "$n"),
        (json!({"n": 1, "extra": "SECRET"}), "$*"),
    ] {
        let denial = post_as(&s, &json!({"query": query, "variables": variables}), Some(&["orders:read"]))
            .unwrap_err();
        assert_eq!((denial.reason, denial.status()), (GraphqlReason::InvalidVariables, 400), "{variables}");
        assert_eq!(denial.field_paths, [path]);
        safe_body(&denial, &["SECRET", "99999999999", "extra"]);
    }
    // Required variables must be present and non-null.
    let create = "mutation($item: String!, $q: Int!) { createOrder(item: $item, quantity: $q) { id } }";
    let denial = post_as(&s, &json!({"query": create, "variables": {"item": "x"}}), Some(&["orders:write"]))
        .unwrap_err();
    assert_eq!(
        (denial.reason, denial.field_paths.as_slice()),
        (GraphqlReason::InvalidVariables, &["$q".to_string()][..])
    );
    let denial =
        post_as(&s, &json!({"query": create, "variables": {"item": null, "q": 1}}), Some(&["orders:write"]))
            .unwrap_err();
    assert_eq!(denial.field_paths, ["$item"]);
    // A variable declared with a type its use does not accept fails validation.
    let denial = reader(&s, "query($n: String) { orders(limit: $n) { id } }").unwrap_err();
    assert_eq!(denial.reason, GraphqlReason::ValidationFailed);
    // Literal arguments are typed too.
    assert_eq!(reason(reader(&s, "{ orders(limit: \"5\") { id } }")), GraphqlReason::ValidationFailed);
}

// ---------------------------------------------------------------- limits

#[test]
fn depth_is_measured_through_fragments() {
    let s = demo();
    // Depth 8 is the limit: orders(1) customer(2) orders(3) customer(4) orders(5) customer(6) orders(7) id(8).
    let ok = "{ orders(limit: 1) { customer { orders(limit: 1) { customer { orders(limit: 1) { customer { orders(limit: 1) { id } } } } } } } }";
    assert_eq!(reader(&s, ok).unwrap()[0].depth, 8);
    let deep = "{ orders { customer { orders { customer { orders { customer { orders { customer { id } } } } } } } } }";
    let denial = reader(&s, deep).unwrap_err();
    assert_eq!(
        (denial.reason, denial.code(), denial.status()),
        (GraphqlReason::DepthLimit, "DEPTH_LIMIT", 400)
    );
    // The same depth hidden in fragments and inline fragments.
    let fragments = r#"
        query Deep { orders { ...A } }
        fragment A on Order { customer { ...B } }
        fragment B on Customer { orders { ... on Order { customer { ...C } } } }
        fragment C on Customer { orders { customer { orders { customer { id } } } } }
    "#;
    assert_eq!(reason(reader(&s, fragments)), GraphqlReason::DepthLimit);
    // Far deeper than any limit: still a clean denial (the parser's recursion bound or ours).
    let very_deep = format!("{{ {}id{} }}", "orders { customer { ".repeat(40), " } }".repeat(40));
    assert_eq!(reason(reader(&s, &very_deep)), GraphqlReason::DepthLimit);
}

#[test]
fn alias_bombs_are_refused() {
    let s = demo();
    let aliases: String = (0..21).map(|i| format!("a{i}: id ")).collect();
    let denial = reader(&s, &format!("{{ orders(limit: 1) {{ {aliases} }} }}")).unwrap_err();
    assert_eq!((denial.reason, denial.code()), (GraphqlReason::AliasLimit, "ALIAS_LIMIT"));
    let twenty: String = (0..20).map(|i| format!("a{i}: id ")).collect();
    assert!(reader(&s, &format!("{{ orders(limit: 1) {{ {twenty} }} }}")).is_ok());
    // Aliases inside a fragment count every time it is spread.
    let spread = r#"
        { orders(limit: 1) { ...F customer { orders(limit: 1) { ...F } } } }
        fragment F on Order { a: id b: id c: id d: id e: id f: id g: id h: id i: id j: id k: id }
    "#;
    assert_eq!(reason(reader(&s, spread)), GraphqlReason::AliasLimit);
}

#[test]
fn root_fields_are_limited() {
    let s = demo();
    let roots: String = (0..11).map(|i| format!("o{i}: order(id: {i}) {{ id }} ")).collect();
    let denial = reader(&s, &format!("{{ {roots} }}")).unwrap_err();
    assert_eq!((denial.reason, denial.code()), (GraphqlReason::RootFieldLimit, "ROOT_FIELD_LIMIT"));
    let ten: String = (0..10).map(|i| format!("o{i}: order(id: {i}) {{ id }} ")).collect();
    assert_eq!(reader(&s, &format!("{{ {ten} }}")).unwrap()[0].root_fields, 10);
}

#[test]
fn fragment_cycles_are_refused_without_looping() {
    let s = demo();
    for query in [
        "{ orders { ...A } } fragment A on Order { customer { ...B } } fragment B on Customer { orders { ...A } }",
        "{ orders { ...A } } fragment A on Order { ...A }",
        "{ orders { ...A } } fragment A on Order { ... on Order { ...B } } fragment B on Order { id ...A }",
    ] {
        let denial = reader(&s, query).unwrap_err();
        assert_eq!(denial.reason, GraphqlReason::ValidationFailed, "{query}");
    }
}

#[test]
fn fragment_fan_out_is_bounded() {
    // Each fragment spreads the next twice: 2^12 expanded selections from a tiny document.
    let s = demo();
    let mut query = String::from("{ orders(limit: 1) { ...F0 } }\n");
    for i in 0..12 {
        query.push_str(&format!("fragment F{i} on Order {{ ...F{} ...F{} }}\n", i + 1, i + 1));
    }
    query.push_str("fragment F12 on Order { id item }");
    // Expanded, it selects far more fields than the cost allows; the analysis memoizes
    // fragments, so this returns at once (a hang would time the test out).
    let denial = reader(&s, &query).unwrap_err();
    assert_eq!(denial.reason, GraphqlReason::CostLimit);
}

#[test]
fn directive_floods_are_refused() {
    let s = demo();
    let flood = "{ orders { id @skip(if: false) @skip(if: false) @skip(if: false) @skip(if: false) @skip(if: false) @skip(if: false) } }";
    let denial = reader(&s, flood).unwrap_err();
    assert_eq!((denial.reason, denial.code()), (GraphqlReason::DirectiveLimit, "DIRECTIVE_LIMIT"));
    // Also on fragment spreads, inline fragments and operations.
    let on_spread = "{ orders { ...F @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) } } fragment F on Order { id }";
    assert_eq!(reason(reader(&s, on_spread)), GraphqlReason::DirectiveLimit);
    // Within the limit, duplicates of a non-repeatable directive are a validation error.
    let two = "{ orders { id @skip(if: false) @skip(if: false) } }";
    assert_eq!(reason(reader(&s, two)), GraphqlReason::ValidationFailed);
    assert!(reader(&s, "{ orders { id @skip(if: false) @include(if: true) } }").is_ok());
}

#[test]
fn oversized_documents_and_requests_are_refused() {
    let s = demo();
    let padding = "#".repeat(16 * 1024);
    let big = format!("{{ orders {{ id }} }}\n{padding}");
    let denial = reader(&s, &big).unwrap_err();
    assert_eq!(
        (denial.reason, denial.code(), denial.status()),
        (GraphqlReason::DocumentTooLarge, "DOCUMENT_TOO_LARGE", 400)
    );
    let huge_body = json!({"query": "{ orders { id } }", "variables": {"pad": "x".repeat(70 * 1024)}});
    let denial = post_as(&s, &huge_body, Some(&["orders:read"])).unwrap_err();
    assert_eq!((denial.reason, denial.status()), (GraphqlReason::RequestTooLarge, 413));
    // Many tokens in few bytes.
    let tokens = format!("{{ orders {{ id {} }} }}", "id ".repeat(2000));
    assert!(tokens.len() < 16 * 1024);
    assert_eq!(reason(reader(&s, &tokens)), GraphqlReason::TokenLimit);
    let commas = format!("{{ orders {{ id {} }} }}", ",".repeat(3000));
    assert_eq!(reason(reader(&s, &commas)), GraphqlReason::TokenLimit);
}

#[test]
fn cost_is_estimated_from_list_sizes() {
    let s = demo();
    // orders(100) x customer x orders(100): 1 + 100 x (1 + (1 + 100 x 1)) = 10201.
    let query = "{ orders(limit: 100) { customer { orders(limit: 100) { id } } } }";
    let denial = reader(&s, query).unwrap_err();
    assert_eq!((denial.reason, denial.code()), (GraphqlReason::CostLimit, "COST_LIMIT"));
    // Without `limit`, the resolver's own cap (`@listSize(assumedSize: 100)`):
    // 1 + 100 x (1 + (1 + 5 x 1)) = 701, and the same nesting without limits is refused.
    assert_eq!(reader(&s, "{ orders { customer { orders(limit: 5) { id } } } }").unwrap()[0].cost, 701);
    assert_eq!(reason(reader(&s, "{ orders { customer { orders { id } } } }")), GraphqlReason::CostLimit);
    // Variables drive the estimate.
    let body = json!({"query": "query($a: Int, $b: Int) { orders(limit: $a) { customer { orders(limit: $b) { id } } } }",
                      "variables": {"a": 30, "b": 40}});
    assert_eq!(reason(post_as(&s, &body, Some(&["orders:read"]))), GraphqlReason::CostLimit);
    let body = json!({"query": "query($a: Int = 2) { orders(limit: $a) { id } }"});
    assert_eq!(post_as(&s, &body, Some(&["orders:read"])).unwrap()[0].cost, 3);
    // A list size of 0 counts as 1.
    assert_eq!(reader(&s, "{ orders(limit: 0) { id item } }").unwrap()[0].cost, 3);
}

#[test]
fn batches_are_off_by_default_and_bounded() {
    let op = json!({"query": "{ orders { id } }"});
    let off = GraphqlSchema::from_sdl(SDL, GraphqlConfig::default()).unwrap();
    let denial = post_as(&off, &json!([op.clone()]), Some(&["orders:read"])).unwrap_err();
    assert_eq!((denial.reason, denial.code()), (GraphqlReason::BatchLimit, "BATCH_LIMIT"));
    let s = demo();
    let five = json!(vec![op.clone(); 5]);
    assert_eq!(post_as(&s, &five, Some(&["orders:read"])).unwrap().len(), 5);
    let six = json!(vec![op.clone(); 6]);
    assert_eq!(reason(post_as(&s, &six, Some(&["orders:read"]))), GraphqlReason::BatchLimit);
    assert_eq!(reason(post_as(&s, &json!([]), Some(&["orders:read"]))), GraphqlReason::BatchLimit);
    // One bad member refuses the whole batch, naming its index.
    let mixed = json!([op.clone(), {"query": "{ orders { internalNote } }"}, op]);
    let denial = post_as(&s, &mixed, Some(&["orders:read"])).unwrap_err();
    assert_eq!((denial.reason, denial.batch_index), (GraphqlReason::ForbiddenField, Some(1)));
    assert_eq!(
        serde_json::from_str::<Value>(&denial.body("r")).unwrap()["errors"][0]["extensions"]["batch_index"],
        1
    );
}

// ---------------------------------------------------------------- authorization

#[test]
fn introspection_needs_the_admin_scope() {
    let s = demo();
    let query = "{ __schema { queryType { name } types { name fields { name type { name kind ofType { name kind ofType { name } } } } } } }";
    let denial = post_as(&s, &json!({"query": query}), Some(&["orders:read"])).unwrap_err();
    assert_eq!(
        (denial.reason, denial.code(), denial.status()),
        (GraphqlReason::IntrospectionDisabled, "INTROSPECTION_DISABLED", 403)
    );
    assert_eq!(
        reason(post_as(&s, &json!({"query": "{ __type(name: \"Order\") { name } }"}), None)),
        GraphqlReason::IntrospectionDisabled
    );
    let info = post_as(&s, &json!({"query": query}), Some(&["zt:admin"])).unwrap();
    assert!(info[0].introspection);
    // Hidden behind a fragment at the root.
    let hidden = "{ ...F } fragment F on Query { __schema { types { name } } }";
    assert_eq!(
        reason(post_as(&s, &json!({"query": hidden}), Some(&["orders:read"]))),
        GraphqlReason::IntrospectionDisabled
    );
    // Nobody, when no scope is configured.
    let never = GraphqlSchema::from_sdl(SDL, GraphqlConfig { introspection_scopes: vec![], ..demo_config() })
        .unwrap();
    assert_eq!(
        reason(post_as(&never, &json!({"query": query}), Some(&["zt:admin"]))),
        GraphqlReason::IntrospectionDisabled
    );
}

#[test]
fn the_full_graphiql_introspection_query_passes_for_admins() {
    let s = demo();
    let info = post_as(&s, &json!({"query": INTROSPECTION_QUERY}), Some(&["zt:admin"])).unwrap();
    assert!(info[0].introspection);
    // Nested list fields beyond the compiler's introspection bound are refused.
    let nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    assert_eq!(
        reason(post_as(&s, &json!({"query": nested}), Some(&["zt:admin"]))),
        GraphqlReason::DepthLimit
    );
}

#[test]
fn fields_needing_orders_admin_are_refused_as_a_whole() {
    let s = demo();
    let query =
        "{ orders(limit: 5) { id item internalNote customer { orders(limit: 5) { internalNote } } } }";
    let denial = reader(&s, query).unwrap_err();
    assert_eq!(
        (denial.reason, denial.code(), denial.status()),
        (GraphqlReason::ForbiddenField, "FORBIDDEN_FIELD", 403)
    );
    assert_eq!(denial.field_paths, ["orders.customer.orders.internalNote", "orders.internalNote"]);
    let body: Value = serde_json::from_str(&safe_body(&denial, &[])).unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["paths"],
        json!(["orders.customer.orders.internalNote", "orders.internalNote"])
    );
    // Through a fragment, with an alias: the path names the schema field, not the alias.
    let aliased = "{ mine: orders { ...N } } fragment N on Order { secret: internalNote }";
    assert_eq!(reader(&s, aliased).unwrap_err().field_paths, ["orders.internalNote"]);
    // With both scopes it passes.
    assert!(post_as(&s, &json!({"query": query}), Some(&["orders:read", "orders:admin"])).is_ok());
    // Admin alone cannot list orders: `Order` and `Customer` need orders:read wherever
    // they are reached, so every path into them is named.
    let denial = post_as(&s, &json!({"query": query}), Some(&["orders:admin"])).unwrap_err();
    assert_eq!(
        denial.field_paths,
        [
            "orders",
            "orders.customer",
            "orders.customer.orders",
            "orders.customer.orders.internalNote",
            "orders.id",
            "orders.internalNote",
            "orders.item"
        ]
    );
}

#[test]
fn type_level_directives_are_inherited() {
    let sdl = r#"
        type Query { me: Account  accounts: [Account!]! @authenticated  status: Status  public: String }
        type Account @requiresScopes(scopes: [["accounts:read"], ["admin"]]) { id: ID! email: String }
        enum Status @authenticated { UP DOWN }
    "#;
    let s = GraphqlSchema::from_sdl(sdl, GraphqlConfig::default()).unwrap();
    let ask = |q: &str, granted: Option<&[&str]>| post_as(&s, &json!({ "query": q }), granted);
    assert!(ask("{ public }", None).is_ok());
    let denial = ask("{ me { email } }", Some(&[])).unwrap_err();
    assert_eq!(
        (denial.reason, denial.field_paths.clone()),
        (GraphqlReason::ForbiddenField, vec!["me".to_string(), "me.email".into()])
    );
    assert!(ask("{ me { email } }", Some(&["admin"])).is_ok());
    assert!(ask("{ accounts { id } }", Some(&["accounts:read"])).is_ok());
    assert_eq!(ask("{ status }", None).unwrap_err().reason, GraphqlReason::Unauthenticated);
    assert!(ask("{ status }", Some(&[])).is_ok());
}

#[test]
fn undeclared_directives_are_injected_and_declared_ones_respected() {
    // The demo SDL declares them; the same schema without the declarations works alike.
    let bare: String = SDL.lines().filter(|l| !l.starts_with("directive @")).collect::<Vec<_>>().join("\n");
    let s = GraphqlSchema::from_sdl(&bare, demo_config()).unwrap();
    assert_eq!(reason(reader(&s, "{ orders { internalNote } }")), GraphqlReason::ForbiddenField);
    // A declaration allowing places zt does not enforce is a start-up error.
    let wide = format!("directive @authenticated on FIELD_DEFINITION | INPUT_FIELD_DEFINITION\n{bare}");
    assert!(GraphqlSchema::from_sdl(&wide, demo_config()).is_err());
    // An empty scope list can never be satisfied: refused at start-up.
    let empty = bare.replace(r#"[["orders:admin"]]"#, "[]");
    assert!(GraphqlSchema::from_sdl(&empty, demo_config()).is_err());
}

// ---------------------------------------------------------------- safelisting

#[test]
fn safelisting_refuses_unregistered_operations() {
    let registered = "query Mine { orders { id item } }";
    let config = GraphqlConfig {
        safelist: Some(vec![sha256_hex(registered)]),
        persisted_documents: vec!["query ById($id: ID!) { order(id: $id) { id } }".into()],
        ..demo_config()
    };
    let s = GraphqlSchema::from_sdl(SDL, config.clone()).unwrap();
    assert_eq!(reader(&s, registered).unwrap()[0].safelisted, Some(true));
    let denial = reader(&s, "{ orders { id } }").unwrap_err();
    assert_eq!(
        (denial.reason, denial.code(), denial.status()),
        (GraphqlReason::PersistedQueryNotAllowed, "PERSISTED_QUERY_NOT_ALLOWED", 403)
    );
    // A whitespace change is another document.
    assert_eq!(
        reason(reader(&s, "query Mine { orders { id item }}")),
        GraphqlReason::PersistedQueryNotAllowed
    );
    // A registered document named by its hash alone (persisted query).
    let by_id = "query ById($id: ID!) { order(id: $id) { id } }";
    let apq = |hash: &str| json!({"variables": {"id": "7"}, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let info = post_as(&s, &apq(&sha256_hex(by_id)), Some(&["orders:read"])).unwrap();
    assert_eq!(
        (info[0].persisted, info[0].name.as_deref(), info[0].safelisted),
        (true, Some("ById"), Some(true))
    );
    // ... still authorized per caller.
    assert_eq!(reason(post_as(&s, &apq(&sha256_hex(by_id)), Some(&[]))), GraphqlReason::ForbiddenField);
    // An unknown hash: the APQ "not found" answer.
    let denial = post_as(&s, &apq(&"0".repeat(64)), Some(&["orders:read"])).unwrap_err();
    assert_eq!(
        (denial.reason, denial.message()),
        (GraphqlReason::PersistedQueryNotFound, "PersistedQueryNotFound")
    );
    // A hash that does not match the document sent.
    let mismatched = json!({"query": registered, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0".repeat(64)}}});
    assert_eq!(reason(post_as(&s, &mismatched, Some(&["orders:read"]))), GraphqlReason::BadRequest);
    // Report-only: not refused, flagged.
    let report =
        GraphqlSchema::from_sdl(SDL, GraphqlConfig { safelist_report_only: true, ..config }).unwrap();
    assert_eq!(reader(&report, "{ orders { id } }").unwrap()[0].safelisted, Some(false));
}

#[test]
fn persisted_queries_without_safelisting() {
    let by_id = "query ById($id: ID!) { order(id: $id) { id } }";
    let s = GraphqlSchema::from_sdl(
        SDL,
        GraphqlConfig { persisted_documents: vec![by_id.into()], ..demo_config() },
    )
    .unwrap();
    let apq = json!({"variables": {"id": "7"}, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(by_id)}}});
    assert_eq!(post_as(&s, &apq, Some(&["orders:read"])).unwrap()[0].safelisted, None);
    assert!(reader(&s, "{ orders { id } }").is_ok());
    // A persisted document over the limits is a start-up error.
    let deep = "{ orders { customer { orders { customer { orders { customer { orders { customer { id } } } } } } } } }";
    assert!(
        GraphqlSchema::from_sdl(
            SDL,
            GraphqlConfig { persisted_documents: vec![deep.into()], ..demo_config() }
        )
        .is_err()
    );
}

// ---------------------------------------------------------------- malformed requests

#[test]
fn malformed_requests_are_bad_requests() {
    let s = demo();
    let granted = scopes(&["orders:read"]);
    for body in [
        &b"not json"[..],
        b"{\"query\": \"{ orders { id } }\", \"query\": \"{ orders { internalNote } }\"}",
        b"{\"query\": \"{ orders { id } }\", \"extra\": 1}",
        b"{\"operationName\": \"X\"}",
        b"{\"query\": 42}",
        b"\"{ orders { id } }\"",
        b"{\"query\": \"{ orders { id } }\", \"variables\": \"{}\"}",
        b"{\"query\": \"{ orders { id } }\"} trailing",
    ] {
        let denial = s.check_with_scopes(GraphqlRequestBody::Json(body), Some(&granted)).unwrap_err();
        assert_eq!(
            (denial.reason, denial.status()),
            (GraphqlReason::BadRequest, 400),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn no_input_ever_panics_or_hangs() {
    let s = demo();
    let granted = scopes(&["orders:read", "orders:admin", "zt:admin"]);
    let seed_query = r#"query Q($n: Int = 3, $id: ID!) @skip(if: false) {
        a: orders(limit: $n) { ...F customer { name orders { id } } }
        order(id: $id) { ... on Order { id internalNote } }
        __schema { types { name } }
    }
    fragment F on Order { id item quantity owner }"#;
    // Every prefix of a rich document.
    for end in 0..=seed_query.len() {
        if let Some(prefix) = seed_query.get(..end) {
            let body = json!({"query": prefix, "variables": {"id": "1"}}).to_string();
            let _ = s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted));
        }
    }
    // Deterministic pseudo-random byte mutations of the document and of the JSON body.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}()[]:$@!.,\"#\\ \n=abcdefqxyz_0123456789-\x00\xff";
    // More in release: ZT_GRAPHQL_FUZZ_ITERATIONS=200000 cargo test --release ...
    let iterations =
        std::env::var("ZT_GRAPHQL_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(800);
    for _ in 0..iterations {
        let mut bytes =
            json!({"query": seed_query, "variables": {"id": "1", "n": 2}}).to_string().into_bytes();
        for _ in 0..(next() % 6 + 1) {
            let at = (next() as usize) % bytes.len();
            bytes[at] = alphabet[(next() as usize) % alphabet.len()];
        }
        let _ = s.check_with_scopes(GraphqlRequestBody::Json(&bytes), Some(&granted));
        let mut doc = seed_query.as_bytes().to_vec();
        for _ in 0..(next() % 6 + 1) {
            let at = (next() as usize) % doc.len();
            doc[at] = alphabet[(next() as usize) % alphabet.len()];
        }
        let body = json!({"query": String::from_utf8_lossy(&doc), "variables": {"id": "1"}}).to_string();
        let _ = s.check_with_scopes(GraphqlRequestBody::Json(body.as_bytes()), Some(&granted));
        let raw = String::from_utf8_lossy(&doc).replace('&', "%26");
        let _ =
            s.check_with_scopes(GraphqlRequestBody::Get { query: &format!("query={raw}") }, Some(&granted));
    }
}

#[test]
fn denials_never_echo_values() {
    let s = demo();
    let marker = "Zx9SECRET";
    let attempts = [
        json!({"query": format!("{{ orders(limit: \"{marker}\") {{ id }} }}")}),
        json!({"query": format!("{{ order(id: \"{marker}\") {{ {marker} }} }}")}),
        json!({"query": format!("{{ orders {{ nope }} }} # {marker}")}),
        json!({"query": "query($n: Int) { orders(limit: $n) { id } }", "variables": {"n": marker}}),
        json!({"query": "query($n: Int) { orders(limit: $n) { id } }", "variables": {"n": 1, marker: 1}}),
        json!({"query": format!("{{ {marker}: orders {{ internalNote }} }}")}),
        json!({"query": format!("query {marker} {{ orders {{ id }} }}"), "operationName": "Other"}),
        json!({"query": format!("{{ orders {{ id }}"), "operationName": marker}),
    ];
    for attempt in attempts {
        let denial = post_as(&s, &attempt, Some(&["orders:read"])).unwrap_err();
        safe_body(&denial, &[marker]);
        assert!(!format!("{denial:?}").contains(marker));
    }
}

// ---------------------------------------------------------------- a real identity

#[tokio::test]
async fn a_verified_identity_from_the_guard_is_authorized_by_its_scopes() {
    use zt_core::policy::{IssuerConfig, Policy};
    use zt_core::request::HeaderList;
    use zt_core::{Decision, Guard, RequestView, RouteTable, scopes as route_scopes};

    const SECRET: &str = "a-graphql-test-secret-that-is-long-enough";
    let mut routes = RouteTable::new();
    routes.add("POST", "/graphql", route_scopes::authenticated()).unwrap();
    let guard = Guard::new(
        Policy::builder()
            .issuer(
                IssuerConfig::new("https://issuer.example")
                    .audience("orders-api")
                    .hmac_secret("HS256", SECRET, None),
            )
            .build(),
    )
    .unwrap()
    .with_routes(&routes)
    .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://issuer.example", "aud": "orders-api", "sub": "alice", "exp": now + 300,
                "iat": now, "scope": "orders:read"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    let headers = HeaderList::default().with("authorization", format!("Bearer {token}"));
    let view = RequestView {
        method: "POST",
        path: "/graphql",
        query: None,
        headers: &headers,
        peer_addr: None,
        peer_certificates: None,
        body: zt_core::BodyHint::Empty,
    };
    let Some(identity) = (match guard.decide(&view).await {
        Decision::Admitted(a) => a.identity().cloned(),
        Decision::Rejected(_) => None,
    }) else {
        panic!("token not accepted")
    };

    let s = demo();
    let ok = br#"{"query": "{ orders { id } }"}"#;
    assert!(s.check(GraphqlRequestBody::Json(ok), Some(&identity)).is_ok());
    let admin = br#"{"query": "{ orders { internalNote } }"}"#;
    let denial = s.check(GraphqlRequestBody::Json(admin), Some(&identity)).unwrap_err();
    assert_eq!(denial.reason, GraphqlReason::ForbiddenField);
    assert_eq!(
        s.check(GraphqlRequestBody::Json(ok), None).unwrap_err().reason,
        GraphqlReason::Unauthenticated
    );
}

/// The query GraphiQL sends.
const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;
