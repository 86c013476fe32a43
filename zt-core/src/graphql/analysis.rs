//! Bounded walks over an operation: its shape (depth, aliases, fields, root fields),
//! directive counts, estimated cost, and the guarded fields it selects.
//!
//! Every walk over fragments memoizes each fragment once, so a fragment spread many times
//! (or a chain of fragments each spreading the next twice) costs its size once, never
//! exponentially; a fragment met again while it is being walked is a cycle and stops the
//! walk. Counts saturate instead of overflowing, and recursion is capped at
//! [`MAX_FRAMES`] nested selection sets and fragments.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apollo_compiler::ast::{Type, Value};
use apollo_compiler::executable::{ExecutableDocument, Field, Operation, Selection, SelectionSet};
use serde_json::Map;

use super::authz::Rules;
use super::listsize::{ListSize, ListSizes};

/// The deepest any walk recurses (nested selection sets plus fragment spreads).
pub(super) const MAX_FRAMES: usize = 256;
/// The most field selections the authorization walk visits, whatever the configuration.
pub(super) const MAX_WALK_FIELDS: u64 = 100_000;

/// Why a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A fragment spreads itself, directly or through others.
    Cycle,
    /// More nesting than [`MAX_FRAMES`].
    TooDeep,
    /// More fields than the walk may visit.
    TooLarge,
}

/// `__schema` and `__type`: schema introspection (not `__typename`).
pub(super) fn is_schema_introspection(name: &str) -> bool {
    matches!(name, "__schema" | "__type")
}

/// The shape of an operation, fragments expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shape {
    /// Deepest field nesting (`{ a { b } }` is 2); a `__schema`/`__type` subtree counts 1.
    pub(super) depth: u32,
    /// Aliases, a fragment counted each time it is spread.
    pub(super) aliases: u64,
    /// Field selections, a fragment counted each time it is spread.
    pub(super) fields: u64,
}

/// Metrics of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Metrics {
    pub(super) shape: Shape,
    /// Fields at the root of the response, through fragments.
    pub(super) root_fields: u64,
    /// Selects `__schema` or `__type` at its root.
    pub(super) introspection: bool,
}

/// Measures an operation of a (not yet validated) document.
pub(super) fn measure(doc: &ExecutableDocument, op: &Operation) -> Result<Metrics, Stop> {
    let mut shapes = ShapeWalker { doc, memo: HashMap::new() };
    let shape = shapes.set(&op.selection_set, 0)?;
    let mut roots = RootWalker { doc, memo: HashMap::new() };
    let (root_fields, introspection) = roots.set(&op.selection_set, 0)?;
    Ok(Metrics { shape, root_fields, introspection })
}

struct ShapeWalker<'d> {
    doc: &'d ExecutableDocument,
    /// `None` while the fragment is being walked.
    memo: HashMap<&'d str, Option<Shape>>,
}

impl<'d> ShapeWalker<'d> {
    fn set(&mut self, set: &'d SelectionSet, frames: usize) -> Result<Shape, Stop> {
        if frames > MAX_FRAMES {
            return Err(Stop::TooDeep);
        }
        let mut total = Shape::default();
        for selection in &set.selections {
            let part = match selection {
                Selection::Field(field) => {
                    let inner = self.set(&field.selection_set, frames + 1)?;
                    Shape {
                        depth: if is_schema_introspection(&field.name) {
                            1
                        } else {
                            inner.depth.saturating_add(1)
                        },
                        aliases: inner.aliases.saturating_add(u64::from(field.alias.is_some())),
                        fields: inner.fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(inline) => self.set(&inline.selection_set, frames + 1)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    match self.memo.get(name) {
                        Some(Some(shape)) => *shape,
                        Some(None) => return Err(Stop::Cycle),
                        None => match self.doc.fragments.get(name) {
                            // An undefined fragment fails validation later.
                            None => Shape::default(),
                            Some(fragment) => {
                                self.memo.insert(name, None);
                                let shape = self.set(&fragment.selection_set, frames + 1)?;
                                self.memo.insert(name, Some(shape));
                                shape
                            }
                        },
                    }
                }
            };
            total.depth = total.depth.max(part.depth);
            total.aliases = total.aliases.saturating_add(part.aliases);
            total.fields = total.fields.saturating_add(part.fields);
        }
        Ok(total)
    }
}

struct RootWalker<'d> {
    doc: &'d ExecutableDocument,
    memo: HashMap<&'d str, Option<(u64, bool)>>,
}

impl<'d> RootWalker<'d> {
    /// Fields at this level (not inside fields), and whether one is `__schema`/`__type`.
    fn set(&mut self, set: &'d SelectionSet, frames: usize) -> Result<(u64, bool), Stop> {
        if frames > MAX_FRAMES {
            return Err(Stop::TooDeep);
        }
        let (mut count, mut introspection) = (0u64, false);
        for selection in &set.selections {
            let (c, i) = match selection {
                Selection::Field(field) => (1, is_schema_introspection(&field.name)),
                Selection::InlineFragment(inline) => self.set(&inline.selection_set, frames + 1)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    match self.memo.get(name) {
                        Some(Some(found)) => *found,
                        Some(None) => return Err(Stop::Cycle),
                        None => match self.doc.fragments.get(name) {
                            None => (0, false),
                            Some(fragment) => {
                                self.memo.insert(name, None);
                                let found = self.set(&fragment.selection_set, frames + 1)?;
                                self.memo.insert(name, Some(found));
                                found
                            }
                        },
                    }
                }
            };
            count = count.saturating_add(c);
            introspection |= i;
        }
        Ok((count, introspection))
    }
}

/// The most directives on any one location of the document (operations, variable
/// definitions, fragments, fields, spreads, inline fragments), fragments not expanded.
pub(super) fn max_directives(doc: &ExecutableDocument) -> Result<usize, Stop> {
    let mut max = 0;
    for op in doc.operations.iter() {
        max = max.max(op.directives.len());
        for variable in &op.variables {
            max = max.max(variable.directives.len());
        }
        max = max.max(set_directives(&op.selection_set, 0)?);
    }
    for fragment in doc.fragments.values() {
        max = max.max(fragment.directives.len()).max(set_directives(&fragment.selection_set, 0)?);
    }
    Ok(max)
}

fn set_directives(set: &SelectionSet, frames: usize) -> Result<usize, Stop> {
    if frames > MAX_FRAMES {
        return Err(Stop::TooDeep);
    }
    let mut max = 0;
    for selection in &set.selections {
        let here = match selection {
            Selection::Field(field) => {
                field.directives.len().max(set_directives(&field.selection_set, frames + 1)?)
            }
            Selection::InlineFragment(inline) => {
                inline.directives.len().max(set_directives(&inline.selection_set, frames + 1)?)
            }
            Selection::FragmentSpread(spread) => spread.directives.len(),
        };
        max = max.max(here);
    }
    Ok(max)
}

/// How list sizes are estimated.
pub(super) struct CostModel<'a> {
    pub(super) list_size_arguments: &'a [String],
    pub(super) default_list_size: u64,
    /// `@listSize` of the schema's fields.
    pub(super) sizes: &'a ListSizes,
}

/// The estimated cost of an operation with these variable values: each field costs 1; a
/// field with a selection adds the cost of its selection, times its list size for list
/// fields. `__schema`/`__type` cost 1 (introspection is bounded separately). Saturates;
/// `u64::MAX` when a list's size cannot be bounded (a required slicing argument missing).
pub(super) fn cost(
    doc: &ExecutableDocument,
    op: &Operation,
    variables: &Map<String, serde_json::Value>,
    model: &CostModel<'_>,
) -> u64 {
    let mut walker = CostWalker { doc, op, variables, model, memo: HashMap::new() };
    walker.set(&op.selection_set, 0)
}

struct CostWalker<'d, 'a> {
    doc: &'d ExecutableDocument,
    op: &'d Operation,
    variables: &'a Map<String, serde_json::Value>,
    model: &'a CostModel<'a>,
    memo: HashMap<&'d str, Option<u64>>,
}

impl<'d> CostWalker<'d, '_> {
    fn set(&mut self, set: &'d SelectionSet, frames: usize) -> u64 {
        if frames > MAX_FRAMES {
            return u64::MAX;
        }
        let mut total = 0u64;
        for selection in &set.selections {
            let part = match selection {
                Selection::Field(field) => {
                    if is_schema_introspection(&field.name) {
                        1
                    } else {
                        // A list of leaves costs its field only; a list of objects its items.
                        let size = self.list_size(set.ty.as_str(), field);
                        if field.selection_set.selections.is_empty() {
                            if size == u64::MAX { u64::MAX } else { 1 }
                        } else {
                            let inner = self.set(&field.selection_set, frames + 1);
                            inner.saturating_mul(size).saturating_add(1)
                        }
                    }
                }
                Selection::InlineFragment(inline) => self.set(&inline.selection_set, frames + 1),
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    match self.memo.get(name) {
                        Some(Some(cost)) => *cost,
                        // Validation refuses cycles; should one slip through, it is unaffordable.
                        Some(None) => u64::MAX,
                        None => match self.doc.fragments.get(name) {
                            None => 0,
                            Some(fragment) => {
                                self.memo.insert(name, None);
                                let cost = self.set(&fragment.selection_set, frames + 1);
                                self.memo.insert(name, Some(cost));
                                cost
                            }
                        },
                    }
                }
            };
            total = total.saturating_add(part);
        }
        total
    }

    /// 1 for non-list fields; for lists, the size of the outer list (from `@listSize`, else
    /// the configured list-size arguments, else the default), times the default for each
    /// inner list level; never below 1. `u64::MAX`: the size cannot be bounded.
    fn list_size(&self, parent: &str, field: &Field) -> u64 {
        let mut levels = 0u32;
        let mut ty: &Type = &field.definition.ty;
        while let Type::List(inner) | Type::NonNullList(inner) = ty {
            levels += 1;
            ty = inner;
        }
        if levels == 0 {
            return 1;
        }
        let outer = match self.model.sizes.of(parent, field.name.as_str()) {
            Some(rule) => match self.rule_size(rule, field) {
                Some(size) => size,
                None => return u64::MAX,
            },
            None => {
                let sizes = self.model.list_size_arguments.iter().filter_map(|a| self.argument_int(field, a));
                sizes.max().map_or(self.model.default_list_size, clamp_size)
            }
        };
        let inner = self.model.default_list_size.saturating_pow(levels - 1);
        outer.saturating_mul(inner).max(1)
    }

    /// The size `@listSize` gives: the largest slicing argument's value, else `assumedSize`,
    /// else the default; `None` when exactly one slicing argument is required and the
    /// request does not give exactly one.
    fn rule_size(&self, rule: &ListSize, field: &Field) -> Option<u64> {
        let given: Vec<i64> = rule.slicing.iter().filter_map(|a| self.argument_int(field, a)).collect();
        if rule.require_one && given.len() != 1 {
            return None;
        }
        Some(match given.into_iter().max() {
            Some(size) => clamp_size(size),
            None => rule.assumed.unwrap_or(self.model.default_list_size),
        })
    }

    /// The value argument `name` has when the field is executed, as the executor coerces
    /// it: the literal, or the variable's value (its default when not sent; the
    /// argument's schema default when neither), or the schema default when the argument is
    /// absent. `None` for `null`, a non-integer, or no value at all. Integers beyond `i64`
    /// count as `i64::MAX` (never smaller than what was asked for).
    fn argument_int(&self, field: &Field, name: &str) -> Option<i64> {
        let schema_default = || {
            field
                .definition
                .arguments
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.default_value.as_ref())
                .and_then(|v| int_literal(v))
        };
        let Some(given) = field.arguments.iter().find(|a| a.name == name) else {
            return schema_default();
        };
        match given.value.as_ref() {
            Value::Int(i) => Some(i.as_str().parse::<i64>().unwrap_or(i64::MAX)),
            Value::Variable(variable) => match self.variables.get(variable.as_str()) {
                Some(value) => value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX)),
                None => {
                    let declared = self.op.variables.iter().find(|v| v.name == variable.as_str());
                    match declared.and_then(|v| v.default_value.as_ref()) {
                        Some(default) => int_literal(default),
                        None => schema_default(),
                    }
                }
            },
            _ => None,
        }
    }
}

/// A requested size as a list size: negative counts as 0.
fn clamp_size(size: i64) -> u64 {
    u64::try_from(size.max(0)).unwrap_or(0)
}

fn int_literal(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(i.as_str().parse::<i64>().unwrap_or(i64::MAX)),
        _ => None,
    }
}

/// A guarded field the operation selects: its path (schema field names from the root,
/// joined with `.`) and the rules that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Access {
    pub(super) path: String,
    pub(super) rules: Box<[u16]>,
}

/// Every guarded field an operation of a validated document selects, fragments expanded,
/// one entry per distinct path.
pub(super) fn accesses(doc: &ExecutableDocument, op: &Operation, rules: &Rules) -> Result<Vec<Access>, Stop> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let mut walker = AccessWalker { doc, rules, path: Vec::new(), found: BTreeMap::new(), visited: 0 };
    walker.set(&op.selection_set, 0)?;
    Ok(walker
        .found
        .into_iter()
        .map(|(path, rules)| Access { path, rules: rules.into_iter().collect() })
        .collect())
}

struct AccessWalker<'d> {
    doc: &'d ExecutableDocument,
    rules: &'d Rules,
    path: Vec<&'d str>,
    found: BTreeMap<String, BTreeSet<u16>>,
    visited: u64,
}

impl<'d> AccessWalker<'d> {
    fn set(&mut self, set: &'d SelectionSet, frames: usize) -> Result<(), Stop> {
        if frames > MAX_FRAMES {
            return Err(Stop::TooDeep);
        }
        // A guarded type guards every selection on it (fragments on it through unions and
        // interfaces, `__typename`), not only its declared fields: recorded at the path of
        // the field that reaches it (the type name at the root).
        let type_rules = self.rules.of_type(set.ty.as_str());
        if !type_rules.is_empty() && !set.selections.is_empty() {
            let path = if self.path.is_empty() { set.ty.to_string() } else { self.path.join(".") };
            self.found.entry(path).or_default().extend(type_rules.iter().copied());
        }
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    self.visited += 1;
                    if self.visited > MAX_WALK_FIELDS {
                        return Err(Stop::TooLarge);
                    }
                    self.path.push(field.name.as_str());
                    let guarded = self.rules.of(set.ty.as_str(), field.name.as_str());
                    if !guarded.is_empty() {
                        self.found.entry(self.path.join(".")).or_default().extend(guarded.iter().copied());
                    }
                    // Introspection types carry no zt rules.
                    if !is_schema_introspection(&field.name) {
                        self.set(&field.selection_set, frames + 1)?;
                    }
                    self.path.pop();
                }
                Selection::InlineFragment(inline) => self.set(&inline.selection_set, frames + 1)?,
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.doc.fragments.get(&spread.fragment_name) {
                        self.set(&fragment.selection_set, frames + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// How many times the operation selects each root field (schema names, aliases and
/// fragment spreads each counted: `{ a: f b: f }` selects `f` twice), for quotas per root
/// field. `__typename` is not counted.
pub(super) fn root_selections(
    doc: &ExecutableDocument,
    op: &Operation,
) -> Result<BTreeMap<String, u64>, Stop> {
    fn walk<'d>(
        doc: &'d ExecutableDocument,
        set: &'d SelectionSet,
        counts: &mut BTreeMap<String, u64>,
        active: &mut Vec<&'d str>,
        frames: usize,
    ) -> Result<(), Stop> {
        if frames > MAX_FRAMES {
            return Err(Stop::TooDeep);
        }
        for selection in &set.selections {
            match selection {
                Selection::Field(field) if field.name.starts_with("__") => {}
                Selection::Field(field) => {
                    let count = counts.entry(field.name.to_string()).or_default();
                    *count = count.saturating_add(1);
                }
                Selection::InlineFragment(inline) => {
                    walk(doc, &inline.selection_set, counts, active, frames + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if active.contains(&name) {
                        return Err(Stop::Cycle);
                    }
                    if let Some(fragment) = doc.fragments.get(name) {
                        active.push(name);
                        walk(doc, &fragment.selection_set, counts, active, frames + 1)?;
                        active.pop();
                    }
                }
            }
        }
        Ok(())
    }
    let mut counts = BTreeMap::new();
    walk(doc, &op.selection_set, &mut counts, &mut Vec::new(), 0)?;
    Ok(counts)
}
