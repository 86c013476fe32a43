//! Variable values against the operation's declared types (GraphQL input coercion rules,
//! checked, not converted).
//!
//! Built-in scalars are exact, per the GraphQL specification's input coercion (October
//! 2021) and exactly as a spec-following executor (apollo-compiler's) coerces JSON
//! variables, so whatever zt admits the executor runs: `Int` is a JSON integer within 32
//! bits signed (`5.0`, `-0.0` and `5e0` are floats, refused: the specification accepts
//! integer values only); `Float` a float, or an integer of magnitude below 2^53 - 1
//! (larger integers are not exactly representable); `String` a string; `Boolean` a
//! boolean; `ID` a string or an integer within 64 bits signed. Enums must name a declared value;
//! input objects must not carry undeclared fields, must carry their required ones, and
//! `@oneOf` input objects exactly one non-null field. A single value where a list is
//! declared is a list of one. Custom scalars accept any JSON value (zt cannot know their
//! rules). Variables the operation does not declare are refused. Work is bounded by the
//! JSON nesting limit; errors name the variable path, never the value.

use apollo_compiler::Schema;
use apollo_compiler::ast::Type;
use apollo_compiler::executable::Operation;
use apollo_compiler::schema::ExtendedType;
use serde_json::{Map, Value};

/// Checks `values` against `op`'s variable definitions; on failure, the path of the first
/// offending value (`$input.items[2].quantity`; `$*` for an undeclared variable, `.*` for
/// an undeclared input field: names the caller made up are not repeated).
pub(super) fn check(schema: &Schema, op: &Operation, values: &Map<String, Value>) -> Result<(), String> {
    // Keys are unique: more values than definitions means an undeclared one (and keeps the
    // search below at most definitions x definitions).
    if values.len() > op.variables.len()
        || values.keys().any(|name| !op.variables.iter().any(|v| v.name == name.as_str()))
    {
        return Err("$*".into());
    }
    for definition in &op.variables {
        let name = definition.name.as_str();
        match values.get(name) {
            Some(value) => {
                let mut path = format!("${name}");
                check_value(schema, &definition.ty, value, &mut path, 0)?;
            }
            None if definition.default_value.is_none() && definition.ty.is_non_null() => {
                return Err(format!("${name}"));
            }
            None => {}
        }
    }
    Ok(())
}

/// Nesting bound for input values (JSON is already bounded at 64).
const MAX_VALUE_DEPTH: usize = 64;

fn check_value(
    schema: &Schema,
    ty: &Type,
    value: &Value,
    path: &mut String,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(path.clone());
    }
    if value.is_null() {
        return if ty.is_non_null() { Err(path.clone()) } else { Ok(()) };
    }
    let named = match ty {
        Type::List(inner) | Type::NonNullList(inner) => {
            return match value {
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{index}]"));
                        check_value(schema, inner, item, path, depth + 1)?;
                        path.truncate(len);
                    }
                    Ok(())
                }
                single => check_value(schema, inner, single, path, depth + 1),
            };
        }
        Type::Named(name) | Type::NonNullNamed(name) => name,
    };
    let fits = match schema.types.get(named) {
        Some(ExtendedType::Scalar(_)) => match named.as_str() {
            "Int" => is_int32(value),
            "Float" => is_float(value),
            "String" => value.is_string(),
            "Boolean" => value.is_boolean(),
            "ID" => value.is_string() || value.is_i64(),
            _ => true,
        },
        Some(ExtendedType::Enum(enumeration)) => {
            value.as_str().is_some_and(|s| enumeration.values.contains_key(s))
        }
        Some(ExtendedType::InputObject(input)) => {
            let Value::Object(members) = value else {
                return Err(path.clone());
            };
            if members.keys().any(|k| !input.fields.contains_key(k.as_str())) {
                path.push_str(".*");
                return Err(path.clone());
            }
            if input.directives.get("oneOf").is_some()
                && members.values().filter(|v| !v.is_null()).count() != 1
            {
                return Err(path.clone());
            }
            for (field_name, field) in &input.fields {
                let len = path.len();
                path.push('.');
                path.push_str(field_name.as_str());
                match members.get(field_name.as_str()) {
                    Some(member) => check_value(schema, &field.ty, member, path, depth + 1)?,
                    None if field.default_value.is_none() && field.ty.is_non_null() => {
                        return Err(path.clone());
                    }
                    None => {}
                }
                path.truncate(len);
            }
            true
        }
        // Output types cannot be variable types (validation refuses them).
        _ => false,
    };
    if fits { Ok(()) } else { Err(path.clone()) }
}

/// An integer JSON number (never a float, even integral) within `i32`.
fn is_int32(value: &Value) -> bool {
    value.as_i64().is_some_and(|i| i32::try_from(i).is_ok())
}

/// The largest integer JavaScript (and an f64) represents exactly, `2^53 - 1`.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A float, or an integer of magnitude below [`MAX_SAFE_INTEGER`].
fn is_float(value: &Value) -> bool {
    value.is_f64() || value.as_f64().is_some_and(|f| f.abs() < MAX_SAFE_INTEGER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::ExecutableDocument;
    use serde_json::json;

    const SDL: &str = r#"
        type Query { f(a: Int, b: [Int!], c: In, d: E, e: ID, s: String, x: Json, o: One, fl: Float, bo: Boolean): Int }
        input In { req: String! opt: Int def: Int = 3 nested: [In!] }
        input One @oneOf { a: Int b: String }
        enum E { RED GREEN }
        scalar Json
        directive @oneOf on INPUT_OBJECT
    "#;

    fn run(vars: &str, values: Value) -> Result<(), String> {
        let schema = Schema::parse_and_validate(SDL, "s.graphql").unwrap();
        let query = format!("query Q{vars} {{ f }}");
        let doc = ExecutableDocument::parse(&schema, query, "q.graphql").unwrap();
        let op = doc.operations.get(Some("Q")).unwrap();
        let Value::Object(values) = values else { panic!() };
        check(&schema, op, &values)
    }

    #[test]
    fn scalars() {
        assert!(run("($a: Int)", json!({"a": 5})).is_ok());
        // Issue 14 finding 6: integers only, as the specification and the executor say.
        assert_eq!(run("($a: Int)", json!({"a": 5.0})), Err("$a".into()));
        assert_eq!(run("($a: Int)", json!({"a": -0.0})), Err("$a".into()));
        assert_eq!(run("($a: Int)", json!({"a": 2_147_483_648i64})), Err("$a".into()));
        assert!(run("($a: Int)", json!({"a": -2_147_483_648i64})).is_ok());
        assert_eq!(run("($e: ID)", json!({"e": u64::MAX})), Err("$e".into()));
        assert!(run("($e: ID)", json!({"e": i64::MIN})).is_ok());
        assert!(run("($fl: Float)", json!({"fl": 1e300})).is_ok());
        assert!(run("($fl: Float)", json!({"fl": 9_007_199_254_740_990i64})).is_ok());
        assert_eq!(run("($fl: Float)", json!({"fl": 9_007_199_254_740_993i64})), Err("$fl".into()));
        assert_eq!(run("($a: Int)", json!({"a": "5"})), Err("$a".into()));
        assert_eq!(run("($a: Int)", json!({"a": 5_000_000_000i64})), Err("$a".into()));
        assert_eq!(run("($a: Int)", json!({"a": 1.5})), Err("$a".into()));
        assert!(run("($a: Int)", json!({"a": null})).is_ok());
        assert!(run("($a: Int)", json!({})).is_ok());
        assert_eq!(run("($a: Int!)", json!({})), Err("$a".into()));
        assert_eq!(run("($a: Int!)", json!({"a": null})), Err("$a".into()));
        assert!(run("($a: Int! = 1)", json!({})).is_ok());
        assert!(run("($e: ID)", json!({"e": 7})).is_ok());
        assert!(run("($e: ID)", json!({"e": "x"})).is_ok());
        assert_eq!(run("($e: ID)", json!({"e": true})), Err("$e".into()));
        assert!(
            run("($s: String, $fl: Float, $bo: Boolean)", json!({"s": "", "fl": 1, "bo": false})).is_ok()
        );
        assert_eq!(run("($bo: Boolean)", json!({"bo": "true"})), Err("$bo".into()));
        assert!(run("($x: Json)", json!({"x": {"any": [1, "thing"]}})).is_ok());
        assert_eq!(run("($a: Int)", json!({"a": 1, "zz": 2})), Err("$*".into()));
    }

    #[test]
    fn enums_lists_and_input_objects() {
        assert!(run("($d: E)", json!({"d": "RED"})).is_ok());
        assert_eq!(run("($d: E)", json!({"d": "BLUE"})), Err("$d".into()));
        assert!(run("($b: [Int!])", json!({"b": [1, 2]})).is_ok());
        assert!(run("($b: [Int!])", json!({"b": 1})).is_ok());
        assert_eq!(run("($b: [Int!])", json!({"b": [1, null]})), Err("$b[1]".into()));
        assert!(run("($c: In)", json!({"c": {"req": "x"}})).is_ok());
        assert_eq!(run("($c: In)", json!({"c": {}})), Err("$c.req".into()));
        assert_eq!(run("($c: In)", json!({"c": {"req": "x", "admin": true}})), Err("$c.*".into()));
        assert_eq!(
            run("($c: In)", json!({"c": {"req": "x", "nested": [{"req": "y"}, {"req": 1}]}})),
            Err("$c.nested[1].req".into())
        );
        assert_eq!(run("($c: In)", json!({"c": "x"})), Err("$c".into()));
        assert!(run("($o: One)", json!({"o": {"a": 1}})).is_ok());
        assert_eq!(run("($o: One)", json!({"o": {"a": 1, "b": "x"}})), Err("$o".into()));
    }
}
