//! GraphQL fixtures shared by the criterion bench (`benches/graphql.rs`) and the zt-core
//! scale tests: a typical 1 KiB query on the demo schema, and a generated schema of
//! real-world size with a query over it.
#![allow(dead_code)]

/// A dashboard query of about 1 KiB: named operation, variables with defaults, aliases,
/// a fragment spread twice, nested lists.
pub const TYPICAL_QUERY: &str = r#"# Dashboard of the orders service: recent orders, one order in detail.
# Variables: $limit (page size), $id (the order shown), $related (its customer's history).
query OrderDashboard($limit: Int = 20, $id: ID!, $related: Int = 5, $withNotes: Boolean = false) {
    recent: orders(limit: $limit) {
        ...OrderSummary
        customer {
            ...CustomerSummary
        }
    }
    selected: order(id: $id) {
        ...OrderSummary
        owner
        customer {
            ...CustomerSummary
            history: orders(limit: $related) {
                ...OrderSummary
                customer @skip(if: $withNotes) {
                    id
                }
            }
        }
    }
    again: order(id: $id) {
        id
        item
        quantity
        owner
    }
}

# Shared selections.
fragment OrderSummary on Order {
    id
    item
    quantity
    owner
    __typename
}

fragment CustomerSummary on Customer {
    id
    name
    __typename
}
"#;

/// Generates an SDL with `types` object types in the shape of a real API: a `Node`
/// interface, timestamps, enums, connections with `first`, links between types (with
/// cycles), input objects for mutations, and scopes on a tenth of the types and fields.
pub fn large_sdl(types: usize) -> String {
    let mut sdl = String::from(
        "interface Node { id: ID! }\n\
         interface Timestamped { createdAt: String! updatedAt: String }\n\
         enum Status { ACTIVE SUSPENDED ARCHIVED DELETED }\n\
         scalar DateTime\n",
    );
    sdl.push_str("type Query {\n  node(id: ID!): Node\n");
    for i in 0..types.min(100) {
        sdl.push_str(&format!(
            "  t{i}(id: ID!): T{i}\n  allT{i}(first: Int = 10, after: String, status: Status): T{i}Connection! @requiresScopes(scopes: [[\"read:t{}\"], [\"admin\"]])\n",
            i % 10
        ));
    }
    sdl.push_str("}\ntype Mutation {\n");
    for i in 0..types.min(50) {
        sdl.push_str(&format!(
            "  updateT{i}(input: T{i}Input!): T{i} @requiresScopes(scopes: [[\"write:t{}\"]])\n",
            i % 10
        ));
    }
    sdl.push_str("}\n");
    for i in 0..types {
        let next = (i + 1) % types;
        let other = (i * 7 + 3) % types;
        let guard = if i % 10 == 0 { " @authenticated" } else { "" };
        sdl.push_str(&format!(
            "type T{i} implements Node & Timestamped{guard} {{\n  id: ID!\n  createdAt: String!\n  updatedAt: String\n  \
             name: String!\n  description: String\n  status: Status!\n  score: Float\n  count: Int!\n  tags: [String!]!\n  \
             at: DateTime\n  next: T{next}\n  related(first: Int, last: Int): [T{other}!]!\n  \
             secret: String @requiresScopes(scopes: [[\"secret:t{i}\"]])\n}}\n\
             type T{i}Edge {{ cursor: String! node: T{i}! }}\n\
             type T{i}Connection {{ edges: [T{i}Edge!]! totalCount: Int! }}\n\
             input T{i}Input {{ id: ID! name: String description: String status: Status tags: [String!] }}\n"
        ));
    }
    sdl
}

pub const LARGE_QUERY: &str = r#"
query Browse($first: Int = 5, $id: ID!) {
  allT3(first: $first, status: ACTIVE) {
    totalCount
    edges { cursor node { ...Basics next { id name related(first: 3) { id name } } } }
  }
  t3(id: $id) { ...Basics tags }
}
fragment Basics on T3 { id name status createdAt }
"#;
