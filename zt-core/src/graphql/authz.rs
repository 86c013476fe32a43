//! Field authorization from the SDL: `@authenticated` and `@requiresScopes`.
//!
//! Each `(type, field)` of the schema gets the list of rules that must all hold to select
//! it, compiled once:
//!
//! - the directives on the field definition;
//! - the directives on the type that defines it (fields inherit their type's rules);
//! - the directives on the type it returns (object, interface, scalar or enum), so a field
//!   returning a guarded type is guarded too;
//! - and, for selections the schema declares no field for (`__typename`, fragments on a
//!   guarded type through a union or an interface), the rules of the object or interface
//!   type the selection set is on ([`Rules::of_type`]);
//! - across interfaces, both ways: an object's field also carries the rules of the same
//!   field on every interface it implements, and an interface's field carries the rules of
//!   that field on every implementation (a selection through the interface may reach any).
//!
//! `@requiresScopes(scopes: [[String!]!]!)` is an OR of AND-sets, exactly
//! [`Requirement::Scopes`]: `[["a", "b"], ["c"]]` is (a and b) or c; an empty inner set
//! means "any authenticated caller". Input coercion applies as for any GraphQL value:
//! `scopes: "a"` is `[["a"]]`.

use std::collections::{BTreeSet, HashMap};

use apollo_compiler::ast::{self, DirectiveLocation, Value};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Node, Schema};

use super::GraphqlError;
use crate::scopes::Requirement;

/// The directive names zt reads (also under Federation's `federation__` prefix).
pub(super) const AUTHENTICATED: [&str; 2] = ["authenticated", "federation__authenticated"];
/// See [`AUTHENTICATED`].
pub(super) const REQUIRES_SCOPES: [&str; 2] = ["requiresScopes", "federation__requiresScopes"];

/// Added to an SDL that does not declare the directives itself.
pub(super) const AUTHENTICATED_DEFINITION: &str =
    "directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n";
/// See [`AUTHENTICATED_DEFINITION`].
pub(super) const REQUIRES_SCOPES_DEFINITION: &str = "directive @requiresScopes(scopes: [[String!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n";

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rule {
    /// Any verified caller.
    Authenticated,
    /// A verified caller whose scopes satisfy the requirement.
    Scopes(Requirement),
}

/// Who is asking, as far as field rules are concerned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Who<'a> {
    pub(super) authenticated: bool,
    pub(super) scopes: &'a [String],
}

impl Rule {
    pub(super) fn allows(&self, who: Who<'_>) -> bool {
        match self {
            Rule::Authenticated => who.authenticated,
            Rule::Scopes(requirement) => {
                who.authenticated
                    && requirement.missing_scopes(|s| who.scopes.iter().any(|g| g == s)).is_none()
            }
        }
    }
}

/// The compiled rules of a schema.
#[derive(Debug, Default)]
pub(super) struct Rules {
    rules: Vec<Rule>,
    /// type name -> field name -> indices into `rules` (only guarded fields are present).
    fields: HashMap<String, HashMap<String, Box<[u16]>>>,
    /// The rules object and interface types carry themselves (only guarded types present):
    /// they hold for every selection on the type, `__typename` and type conditions of
    /// fragments included, not only for the fields the schema declares.
    types: HashMap<String, Box<[u16]>>,
}

impl Rules {
    /// The rules guarding `parent.field` (empty when unguarded).
    pub(super) fn of(&self, parent: &str, field: &str) -> &[u16] {
        self.fields.get(parent).and_then(|fields| fields.get(field)).map_or(&[], |ids| ids)
    }

    /// The rules an object or interface type carries itself (empty when unguarded): they
    /// guard any selection set on the type, so `... on Order { __typename }` through a union
    /// or an interface needs what `Order` needs.
    pub(super) fn of_type(&self, name: &str) -> &[u16] {
        self.types.get(name).map_or(&[], |ids| ids)
    }

    pub(super) fn rule(&self, id: u16) -> Option<&Rule> {
        self.rules.get(usize::from(id))
    }

    /// True when any field of the schema is guarded.
    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Compiles the rules of a valid schema.
    pub(super) fn compile(schema: &Schema) -> Result<Rules, GraphqlError> {
        refuse_unsupported_locations(schema)?;
        let mut rules = Rules::default();
        // The rules each type carries itself (objects, interfaces, scalars, enums).
        let mut type_rules: HashMap<&str, Vec<u16>> = HashMap::new();
        for (name, ty) in &schema.types {
            let directives = match ty {
                ExtendedType::Object(t) => &t.directives,
                ExtendedType::Interface(t) => &t.directives,
                ExtendedType::Scalar(t) => &t.directives,
                ExtendedType::Enum(t) => &t.directives,
                ExtendedType::Union(_) | ExtendedType::InputObject(_) => continue,
            };
            let ids = rules.intern_all(directives.iter().map(|d| &***d), name.as_str())?;
            if !ids.is_empty() {
                if matches!(ty, ExtendedType::Object(_) | ExtendedType::Interface(_)) {
                    rules.types.insert(name.to_string(), ids.clone().into_boxed_slice());
                }
                type_rules.insert(name.as_str(), ids);
            }
        }
        // Own rules of each field: its directives, its type's, its return type's.
        let mut base: HashMap<(&str, &str), BTreeSet<u16>> = HashMap::new();
        for (type_name, ty) in &schema.types {
            let fields = match ty {
                ExtendedType::Object(t) => &t.fields,
                ExtendedType::Interface(t) => &t.fields,
                _ => continue,
            };
            for (field_name, field) in fields {
                let coordinate = format!("{type_name}.{field_name}");
                let mut ids: BTreeSet<u16> = rules
                    .intern_all(field.directives.iter().map(|d| &**d), &coordinate)?
                    .into_iter()
                    .collect();
                ids.extend(type_rules.get(type_name.as_str()).into_iter().flatten());
                ids.extend(type_rules.get(field.ty.inner_named_type().as_str()).into_iter().flatten());
                base.insert((type_name.as_str(), field_name.as_str()), ids);
            }
        }
        // Across interfaces, both ways.
        let implementers = schema.implementers_map();
        for (type_name, ty) in &schema.types {
            let (fields, interfaces) = match ty {
                ExtendedType::Object(t) => (&t.fields, &t.implements_interfaces),
                ExtendedType::Interface(t) => (&t.fields, &t.implements_interfaces),
                _ => continue,
            };
            let mut related: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
            if let Some(imp) = implementers.get(type_name) {
                related.extend(imp.objects.iter().map(Name::as_str));
                related.extend(imp.interfaces.iter().map(Name::as_str));
            }
            for field_name in fields.keys() {
                let mut ids =
                    base.get(&(type_name.as_str(), field_name.as_str())).cloned().unwrap_or_default();
                for other in &related {
                    if let Some(more) = base.get(&(*other, field_name.as_str())) {
                        ids.extend(more);
                    }
                }
                if !ids.is_empty() {
                    rules
                        .fields
                        .entry(type_name.to_string())
                        .or_default()
                        .insert(field_name.to_string(), ids.into_iter().collect());
                }
            }
        }
        Ok(rules)
    }

    fn intern_all<'a>(
        &mut self,
        directives: impl Iterator<Item = &'a ast::Directive>,
        coordinate: &str,
    ) -> Result<Vec<u16>, GraphqlError> {
        let mut ids = Vec::new();
        for directive in directives {
            if let Some(rule) = rule_of(directive, coordinate)? {
                ids.push(self.intern(rule, coordinate)?);
            }
        }
        Ok(ids)
    }

    fn intern(&mut self, rule: Rule, coordinate: &str) -> Result<u16, GraphqlError> {
        let index = match self.rules.iter().position(|r| *r == rule) {
            Some(index) => index,
            None => {
                self.rules.push(rule);
                self.rules.len() - 1
            }
        };
        u16::try_from(index).map_err(|_| GraphqlError::Directive {
            coordinate: coordinate.to_string(),
            message: "more than 65536 distinct access rules".into(),
        })
    }
}

/// The rule a directive application expresses, if it is one of zt's.
fn rule_of(directive: &ast::Directive, coordinate: &str) -> Result<Option<Rule>, GraphqlError> {
    let name = directive.name.as_str();
    if AUTHENTICATED.contains(&name) {
        return Ok(Some(Rule::Authenticated));
    }
    if !REQUIRES_SCOPES.contains(&name) {
        return Ok(None);
    }
    let bad = |message: &str| GraphqlError::Directive {
        coordinate: format!("{coordinate} @{name}"),
        message: message.to_string(),
    };
    let Some(scopes) = directive.specified_argument_by_name("scopes") else {
        return Err(bad("the `scopes` argument is required"));
    };
    // Input coercion: a single value stands for a list of one, at both levels.
    let mut alternatives = Vec::new();
    for set in as_list(scopes) {
        let mut all = Vec::new();
        for scope in as_list(set) {
            match scope.as_ref() {
                Value::String(s) => all.push(s.clone()),
                _ => return Err(bad("scopes must be strings, as in [[\"orders:read\"]]")),
            }
        }
        alternatives.push(all);
    }
    let requirement = Requirement::Scopes(alternatives);
    requirement.validate().map_err(|message| bad(&message))?;
    Ok(Some(Rule::Scopes(requirement)))
}

fn as_list(value: &Node<Value>) -> &[Node<Value>] {
    match value.as_ref() {
        Value::List(items) => items,
        _ => std::slice::from_ref(value),
    }
}

fn is_zt_directive(name: &str) -> bool {
    AUTHENTICATED.contains(&name) || REQUIRES_SCOPES.contains(&name)
}

/// zt enforces its directives on field definitions, objects, interfaces, scalars and enums.
/// A schema that applies them elsewhere (possible when it declares them with more
/// locations) is refused rather than half-enforced.
fn refuse_unsupported_locations(schema: &Schema) -> Result<(), GraphqlError> {
    let supported = [
        DirectiveLocation::FieldDefinition,
        DirectiveLocation::Object,
        DirectiveLocation::Interface,
        DirectiveLocation::Scalar,
        DirectiveLocation::Enum,
    ];
    for (name, definition) in &schema.directive_definitions {
        if !is_zt_directive(name.as_str()) {
            continue;
        }
        if let Some(location) = definition.locations.iter().find(|l| !supported.contains(l)) {
            return Err(GraphqlError::Directive {
                coordinate: format!("@{name}"),
                message: format!(
                    "declared on {location}, where zt cannot enforce it; declare it on \
                     FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM only"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sdl: &str) -> Result<Rules, GraphqlError> {
        let sdl = format!("{AUTHENTICATED_DEFINITION}{REQUIRES_SCOPES_DEFINITION}{sdl}");
        let schema = Schema::parse_and_validate(sdl, "s.graphql").unwrap();
        Rules::compile(&schema)
    }

    fn who(scopes: &[String]) -> Who<'_> {
        Who { authenticated: true, scopes }
    }

    fn allowed(rules: &Rules, parent: &str, field: &str, scopes: &[&str]) -> bool {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        rules.of(parent, field).iter().all(|id| rules.rule(*id).unwrap().allows(who(&scopes)))
    }

    #[test]
    fn field_type_and_return_type_rules() {
        let r = rules(
            r#"type Query { a: A @requiresScopes(scopes: [["x", "y"], ["z"]]) b: B open: String s: Secret }
               type A { id: ID }
               type B @authenticated { id: ID }
               scalar Secret @requiresScopes(scopes: "s")"#,
        )
        .unwrap();
        assert!(allowed(&r, "Query", "a", &["z"]));
        assert!(allowed(&r, "Query", "a", &["x", "y"]));
        assert!(!allowed(&r, "Query", "a", &["x"]));
        assert!(r.of("Query", "open").is_empty());
        assert!(r.of("A", "id").is_empty());
        // B's own fields inherit; fields returning B are guarded.
        assert_eq!(r.of("B", "id").len(), 1);
        assert_eq!(r.of("Query", "b").len(), 1);
        let anonymous = Who { authenticated: false, scopes: &[] };
        assert!(!r.rule(r.of("B", "id")[0]).unwrap().allows(anonymous));
        assert!(allowed(&r, "Query", "s", &["s"]));
        assert!(!allowed(&r, "Query", "s", &[]));
    }

    #[test]
    fn interfaces_both_ways() {
        let r = rules(
            r#"type Query { node: Node }
               interface Node { id: ID! secret: String }
               type Public implements Node { id: ID! secret: String }
               type Private implements Node { id: ID! secret: String @requiresScopes(scopes: [["p"]]) }
               type Other implements Node { id: ID! @authenticated secret: String }"#,
        )
        .unwrap();
        assert!(!allowed(&r, "Node", "secret", &[]));
        assert!(allowed(&r, "Node", "secret", &["p"]));
        assert!(r.of("Public", "secret").is_empty());
        assert_eq!(r.of("Node", "id").len(), 1);
    }

    #[test]
    fn bad_directives_are_start_up_errors() {
        assert!(matches!(
            rules(r#"type Query { a: String @requiresScopes(scopes: []) }"#),
            Err(GraphqlError::Directive { .. })
        ));
        assert!(matches!(
            rules(r#"type Query { a: String @requiresScopes(scopes: [["has space"]]) }"#),
            Err(GraphqlError::Directive { .. })
        ));
        // Declared with a location zt does not enforce.
        let sdl = r#"directive @authenticated on FIELD_DEFINITION | ARGUMENT_DEFINITION
                     type Query { a(x: Int @authenticated): String }"#;
        let schema = Schema::parse_and_validate(sdl, "s.graphql").unwrap();
        assert!(matches!(Rules::compile(&schema), Err(GraphqlError::Directive { .. })));
        // An empty AND-set: any authenticated caller.
        let r = rules(r#"type Query { a: String @requiresScopes(scopes: [[]]) }"#).unwrap();
        assert!(allowed(&r, "Query", "a", &[]));
    }
}
