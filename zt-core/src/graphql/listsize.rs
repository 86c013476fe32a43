//! `@listSize` on field definitions, in the style of the GraphQL cost directives
//! specification (IBM, `directive @listSize(assumedSize: Int, slicingArguments: [String!],
//! sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION`):
//! the upper bound the server really honours for a list field, so the cost estimate never
//! assumes fewer items than the resolver returns.
//!
//! - `slicingArguments`: the arguments whose value bounds the list (`limit`, `first`); the
//!   largest given counts. A slicing argument that is absent or `null` counts as its schema
//!   default, else as `assumedSize`, else as the endpoint's `default_list_size`.
//! - `assumedSize`: the most items the field returns when no slicing argument bounds it
//!   (the resolver's own cap).
//! - `requireOneSlicingArgument` (default `true`, as the specification says): exactly one
//!   slicing argument must be given a value; otherwise the operation's cost is unbounded
//!   and it is refused (`COST_LIMIT`).
//! - `sizedFields` (connections) is refused at start-up: zt does not estimate through it,
//!   and a directive zt does not honour must not look honoured.

use std::collections::HashMap;

use apollo_compiler::ast::{self, Type, Value};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Node, Schema};

use super::GraphqlError;

/// The directive's name (also under Federation's `federation__` prefix).
pub(super) const LIST_SIZE: [&str; 2] = ["listSize", "federation__listSize"];

/// Added to an SDL that does not declare `@listSize` itself.
pub(super) const LIST_SIZE_DEFINITION: &str = "directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION\n";

/// The list-size rule of one field definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListSize {
    /// The size when no slicing argument bounds the list.
    pub(super) assumed: Option<u64>,
    /// The arguments bounding the list (empty: `assumed` alone decides).
    pub(super) slicing: Vec<String>,
    /// Exactly one slicing argument must be given.
    pub(super) require_one: bool,
}

/// `@listSize` of every field definition that carries it: type name -> field name -> rule.
#[derive(Debug, Default)]
pub(super) struct ListSizes {
    fields: HashMap<String, HashMap<String, ListSize>>,
}

impl ListSizes {
    /// The rule of `parent.field`, if it has one.
    pub(super) fn of(&self, parent: &str, field: &str) -> Option<&ListSize> {
        self.fields.get(parent)?.get(field)
    }

    /// Reads and checks every `@listSize` of a valid schema.
    pub(super) fn compile(schema: &Schema) -> Result<ListSizes, GraphqlError> {
        let mut sizes = ListSizes::default();
        for (type_name, ty) in &schema.types {
            let fields = match ty {
                ExtendedType::Object(t) => &t.fields,
                ExtendedType::Interface(t) => &t.fields,
                _ => continue,
            };
            for (field_name, field) in fields {
                let coordinate = format!("{type_name}.{field_name}");
                let mut found = None;
                for directive in field.directives.iter() {
                    let name = directive.name.as_str();
                    if !LIST_SIZE.contains(&name) {
                        continue;
                    }
                    if found.is_some() {
                        return Err(bad(&coordinate, name, "is given twice"));
                    }
                    found = Some(read(directive, field, &coordinate)?);
                }
                if let Some(rule) = found {
                    sizes
                        .fields
                        .entry(type_name.to_string())
                        .or_default()
                        .insert(field_name.to_string(), rule);
                }
            }
        }
        Ok(sizes)
    }
}

fn bad(coordinate: &str, directive: &str, message: &str) -> GraphqlError {
    GraphqlError::Directive { coordinate: format!("{coordinate} @{directive}"), message: message.to_string() }
}

fn read(
    directive: &ast::Directive,
    field: &ast::FieldDefinition,
    coordinate: &str,
) -> Result<ListSize, GraphqlError> {
    let name = directive.name.as_str();
    let bad = |message: &str| bad(coordinate, name, message);
    if !matches!(field.ty, Type::List(_) | Type::NonNullList(_)) {
        return Err(bad("applies to list fields only"));
    }
    if directive.specified_argument_by_name("sizedFields").is_some_and(|v| !v.is_null()) {
        return Err(bad("sizedFields is not supported: put @listSize on the list fields themselves"));
    }
    let assumed = match directive.specified_argument_by_name("assumedSize").map(|v| v.as_ref()) {
        None | Some(Value::Null) => None,
        Some(Value::Int(i)) => match i.as_str().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(bad("assumedSize must be an integer of at least 0")),
        },
        Some(_) => return Err(bad("assumedSize must be an integer")),
    };
    let mut slicing = Vec::new();
    if let Some(value) = directive.specified_argument_by_name("slicingArguments") {
        for item in as_list(value) {
            let Value::String(argument) = item.as_ref() else {
                return Err(bad("slicingArguments must be strings"));
            };
            // A slicing argument is an Int argument of the field itself.
            let Some(definition) = field.arguments.iter().find(|a| a.name == argument.as_str()) else {
                return Err(bad(&format!("slicing argument {argument:?} is not an argument of the field")));
            };
            if definition.ty.inner_named_type().as_str() != "Int" || definition.ty.is_list() {
                return Err(bad(&format!("slicing argument {argument:?} must be of type Int")));
            }
            slicing.push(argument.clone());
        }
    }
    let require_one =
        match directive.specified_argument_by_name("requireOneSlicingArgument").map(|v| v.as_ref()) {
            None | Some(Value::Null) => true,
            Some(Value::Boolean(b)) => *b,
            Some(_) => return Err(bad("requireOneSlicingArgument must be a boolean")),
        };
    if assumed.is_none() && slicing.is_empty() {
        return Err(bad("needs assumedSize or slicingArguments"));
    }
    // Without slicing arguments there is nothing to require.
    let require_one = require_one && !slicing.is_empty();
    Ok(ListSize { assumed, slicing, require_one })
}

fn as_list(value: &Node<Value>) -> &[Node<Value>] {
    match value.as_ref() {
        Value::List(items) => items,
        _ => std::slice::from_ref(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(sdl: &str) -> Result<ListSizes, GraphqlError> {
        let schema = Schema::parse_and_validate(format!("{LIST_SIZE_DEFINITION}{sdl}"), "s.graphql").unwrap();
        ListSizes::compile(&schema)
    }

    #[test]
    fn reads_the_directive() {
        let s = sizes(
            r#"type Query {
                 a(limit: Int): [Int] @listSize(assumedSize: 100, slicingArguments: ["limit"], requireOneSlicingArgument: false)
                 b: [Int] @listSize(assumedSize: 5)
                 c(first: Int!): [Int] @listSize(slicingArguments: "first")
                 d: [Int]
               }"#,
        )
        .unwrap();
        assert_eq!(
            s.of("Query", "a"),
            Some(&ListSize { assumed: Some(100), slicing: vec!["limit".into()], require_one: false })
        );
        assert_eq!(
            s.of("Query", "b"),
            Some(&ListSize { assumed: Some(5), slicing: vec![], require_one: false })
        );
        assert_eq!(s.of("Query", "c").map(|r| r.require_one), Some(true));
        assert_eq!(s.of("Query", "d"), None);
    }

    #[test]
    fn misuse_is_a_start_up_error() {
        for sdl in [
            r#"type Query { a: Int @listSize(assumedSize: 1) }"#,
            r#"type Query { a: [Int] @listSize }"#,
            r#"type Query { a: [Int] @listSize(slicingArguments: ["limit"]) }"#,
            r#"type Query { a(limit: String): [Int] @listSize(slicingArguments: ["limit"]) }"#,
            r#"type Query { a: [Int] @listSize(assumedSize: -1) }"#,
            r#"type Query { a: [Int] @listSize(assumedSize: 1, sizedFields: ["x"]) }"#,
        ] {
            assert!(matches!(sizes(sdl), Err(GraphqlError::Directive { .. })), "{sdl}");
        }
    }
}
