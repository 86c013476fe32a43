//! OpenAPI schemas -> JSON Schema 2020-12, compiled once with `jsonschema`.
//!
//! Each use of a schema (a parameter, a request body media type, a response media type)
//! becomes one self-contained JSON Schema: the converted schema plus a `$defs` section with
//! every component it reaches. `$ref`s are kept as `$ref`s into `$defs`, so recursive
//! schemas stay finite. Components are converted once per *variant* and shared:
//!
//! - direction: in requests `readOnly` properties are forbidden (and not required), in
//!   responses `writeOnly` ones; inside `not`/`if`/`contains`/`propertyNames` nothing is
//!   rewritten, because there a rewrite would invert or blur the meaning;
//! - strictness and openness: strict request schemas are closed with
//!   `unevaluatedProperties: false`, which (unlike `additionalProperties: false`) sees the
//!   properties evaluated by `allOf`/`oneOf`/`anyOf`/`$ref` subschemas. Only the outermost
//!   schema at an instance location is closed; the branches it composes are converted "open",
//!   otherwise each branch would reject the others' properties.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, ValidationError, Validator};
use serde_json::{Map, Value, json};

use super::error::ContractError;
use super::loader::{Loader, Loc};
use super::report::Collector;
use crate::json::push_request_segment;

/// Keywords that make other subschemas evaluate properties of the same instance: where one
/// is present, only `unevaluatedProperties` closes the object correctly.
const IN_PLACE_APPLICATORS: [&str; 9] =
    ["allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "dependentSchemas"];

/// An annotation (unknown keywords assert nothing) on objects zt closed with
/// `additionalProperties: false`, so their violations read `unevaluatedProperties` like every
/// other property zt's strict mode refuses.
const CLOSED_MARK: &str = "x-zt-closed";

/// The keyword that marks a `readOnly` property in a request schema (always fails).
pub(super) const READ_ONLY_MARK: &str = "x-zt-readOnly";
/// The keyword that marks a `writeOnly` property in a response schema (always fails).
pub(super) const WRITE_ONLY_MARK: &str = "x-zt-writeOnly";
/// The keyword beside `type: integer` in request schemas: a number must be written as an
/// integer that fits 64 bits (see [`WrittenInteger`]).
const INTEGER_MARK: &str = "x-zt-integer";
/// The OpenAPI extension on a response property schema naming the scopes a caller needs to
/// see it (`x-zt-scopes: [orders:admin]`: every one listed). Kept in converted response
/// schemas as an annotation (it asserts nothing) for the withholding walk.
pub(super) const SCOPES_MARK: &str = "x-zt-scopes";
/// Most scopes one `x-zt-scopes` lists.
const MAX_PROPERTY_SCOPES: usize = 16;
/// Bounds the recursion of the conversion (schema nesting plus chains of components).
const MAX_SCHEMA_DEPTH: usize = 200;
/// Bounds the analysis walks (flags through references, in-place expansion).
const MAX_ANALYSIS_DEPTH: usize = 32;
/// Bounds the schemas one in-place expansion may collect.
const MAX_EXPANSION: usize = 128;

/// The OpenAPI version family of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// 3.0.x: schemas are an extended subset of draft 4/5 (`nullable`, boolean exclusives).
    V30,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V31,
}

/// Which side of the exchange a schema use describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Direction {
    /// Request parameters and bodies: `readOnly` forbidden; closed when `strict`.
    Request {
        /// Close object schemas with `unevaluatedProperties: false`.
        strict: bool,
    },
    /// Response bodies: `writeOnly` forbidden; never closed (undeclared fields are reported
    /// separately).
    Response,
    /// Inside `not`, `if`, `contains`, `propertyNames`: converted without rewrites.
    Neutral,
}

impl Direction {
    fn closes(self) -> bool {
        matches!(self, Direction::Request { strict: true })
    }

    fn forbidden(self) -> Option<(&'static str, &'static str)> {
        match self {
            Direction::Request { .. } => Some(("readOnly", READ_ONLY_MARK)),
            Direction::Response => Some(("writeOnly", WRITE_ONLY_MARK)),
            Direction::Neutral => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Ctx {
    dir: Direction,
    /// A branch of an in-place composition: the composing schema decides closedness.
    open: bool,
    depth: usize,
}

impl Ctx {
    fn inplace(self) -> Ctx {
        Ctx { open: true, depth: self.depth + 1, ..self }
    }
    fn child(self) -> Ctx {
        Ctx { open: false, depth: self.depth + 1, ..self }
    }
    fn neutral(self) -> Ctx {
        Ctx { dir: Direction::Neutral, open: false, depth: self.depth + 1 }
    }
}

/// A compiled schema use: the validator and the bundled schema it was built from (kept for
/// value coercion and the undeclared-field walk).
#[derive(Clone)]
pub(super) struct Compiled {
    pub(super) validator: Arc<Validator>,
    pub(super) bundle: Arc<Value>,
}

struct Def {
    loc: Loc,
    value: Value,
    deps: Vec<usize>,
}

/// Converts and compiles every schema use of one document.
pub(super) struct SchemaCompiler {
    version: Version,
    defs: Vec<Def>,
    index: HashMap<(Loc, Direction, bool), usize>,
    /// Components entered since the instance location last changed: a `$ref` back into
    /// this chain would recurse without consuming input.
    chain: Vec<Loc>,
    describes: HashMap<Loc, bool>,
    cache: HashMap<String, Compiled>,
}

/// Keywords copied unchanged (assertions and annotations of 2020-12 that hold no schema).
const KEPT: &[&str] = &[
    "type",
    "const",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "dependentRequired",
    "format",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
];

/// Sibling keywords that do not change what a `$ref` accepts.
fn is_annotation(key: &str) -> bool {
    key.starts_with("x-")
        || matches!(
            key,
            "description"
                | "title"
                | "summary"
                | "example"
                | "examples"
                | "default"
                | "deprecated"
                | "readOnly"
                | "writeOnly"
                | "$comment"
                | "externalDocs"
                | "xml"
        )
}

/// `x-zt-scopes`: an array of 1 to [`MAX_PROPERTY_SCOPES`] scope names (non-empty, no
/// whitespace), as OAuth scope tokens are.
fn valid_scopes(value: &Value) -> bool {
    value.as_array().is_some_and(|scopes| {
        (1..=MAX_PROPERTY_SCOPES).contains(&scopes.len())
            && scopes.iter().all(|s| {
                s.as_str()
                    .is_some_and(|s| !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace))
            })
    })
}

fn def_ref(index: usize) -> Value {
    json!({ "$ref": format!("#/$defs/d{index}") })
}

impl SchemaCompiler {
    /// The `x-zt-scopes` of a schema, checked, when it is used in a response (elsewhere it
    /// is checked and then, like any `x-` annotation, asserts nothing).
    fn scopes_mark(
        &self,
        loader: &Loader,
        loc: &Loc,
        map: &Map<String, Value>,
        ctx: Ctx,
    ) -> Result<Option<Value>, ContractError> {
        let Some(scopes) = map.get(SCOPES_MARK) else { return Ok(None) };
        if !valid_scopes(scopes) {
            return Err(loader.invalid(
                &loc.child(SCOPES_MARK),
                format!("must list 1 to {MAX_PROPERTY_SCOPES} scope names (no whitespace)"),
            ));
        }
        Ok((ctx.dir == Direction::Response).then(|| scopes.clone()))
    }

    pub(super) fn new(version: Version) -> Self {
        SchemaCompiler {
            version,
            defs: Vec::new(),
            index: HashMap::new(),
            chain: Vec::new(),
            describes: HashMap::new(),
            cache: HashMap::new(),
        }
    }

    /// Converts the schema at `loc` for `dir` and compiles it.
    pub(super) fn compile(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        dir: Direction,
    ) -> Result<Compiled, ContractError> {
        let schema = loader.get(loc).cloned().ok_or_else(|| loader.invalid(loc, "no such schema"))?;
        self.compile_value(loader, loc, &schema, dir)
    }

    /// Converts `schema` (found at `loc`) for `dir` and compiles it.
    pub(super) fn compile_value(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        dir: Direction,
    ) -> Result<Compiled, ContractError> {
        self.chain.clear();
        let mut deps = Vec::new();
        let root = self.convert(loader, loc, schema, Ctx { dir, open: false, depth: 0 }, &mut deps)?;
        let bundle = self.bundle(root, &deps);
        let key = bundle.to_string();
        if let Some(compiled) = self.cache.get(&key) {
            return Ok(compiled.clone());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .offline()
            .with_keyword(READ_ONLY_MARK, forbidden_factory)
            .with_keyword(WRITE_ONLY_MARK, forbidden_factory)
            .with_keyword(INTEGER_MARK, written_integer_factory)
            .with_format("byte", is_base64)
            .build(&bundle)
            .map_err(|e| self.build_error(loader, loc, &e))?;
        let compiled = Compiled { validator: Arc::new(validator), bundle: Arc::new(bundle) };
        self.cache.insert(key, compiled.clone());
        Ok(compiled)
    }

    fn build_error(&self, loader: &Loader, loc: &Loc, error: &ValidationError<'_>) -> ContractError {
        // The validator reports where in the bundle it choked; map `$defs/dN/...` back to the
        // component's own location so the pointer names the document construct.
        let path = error.instance_path().as_str();
        let mut at = loc.clone();
        if let Some(rest) = path.strip_prefix("/$defs/d") {
            let (index, tail) = rest.split_once('/').map_or((rest, ""), |(i, t)| (i, t));
            if let Some(def) = index.parse::<usize>().ok().and_then(|i| self.defs.get(i)) {
                at = def.loc.clone();
                if !tail.is_empty() {
                    at.pointer = format!("{}/{tail}", at.pointer);
                }
            }
        } else if !path.is_empty() {
            at.pointer = format!("{}{path}", at.pointer);
        }
        let mut message = error.to_string();
        if message.len() > 400 {
            let mut cut = 400;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        ContractError::Schema { file: loader.file_name(at.file), pointer: at.pointer, message }
    }

    fn bundle(&self, root: Value, deps: &[usize]) -> Value {
        let mut seen = BTreeSet::new();
        let mut stack = deps.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i)
                && let Some(def) = self.defs.get(i)
            {
                stack.extend(def.deps.iter().copied());
            }
        }
        if seen.is_empty() {
            return root;
        }
        let defs: Map<String, Value> = seen
            .iter()
            .filter_map(|&i| self.defs.get(i).map(|d| (format!("d{i}"), d.value.clone())))
            .collect();
        match root {
            Value::Object(mut map) => {
                map.insert("$defs".into(), Value::Object(defs));
                Value::Object(map)
            }
            other => json!({ "allOf": [other], "$defs": defs }),
        }
    }

    /// Converts a subschema at a new instance location (a property, an item): the chain of
    /// in-place components starts afresh there.
    fn descend(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        ctx: Ctx,
        deps: &mut Vec<usize>,
    ) -> Result<Value, ContractError> {
        let saved = std::mem::take(&mut self.chain);
        let result = self.convert(loader, loc, schema, ctx, deps);
        self.chain = saved;
        result
    }

    fn def(
        &mut self,
        loader: &mut Loader,
        from: &Loc,
        reference: &str,
        ctx: Ctx,
        deps: &mut Vec<usize>,
    ) -> Result<usize, ContractError> {
        let target = loader.resolve(from, reference)?;
        if self.chain.contains(&target) {
            return Err(ContractError::Reference {
                file: loader.file_name(from.file),
                pointer: from.pointer.clone(),
                reference: reference.to_string(),
                message:
                    "this $ref cycle never descends into a property or item, so it would recurse forever"
                        .into(),
            });
        }
        let open = ctx.open && ctx.dir.closes();
        let id = (target.clone(), ctx.dir, open);
        if let Some(&i) = self.index.get(&id) {
            deps.push(i);
            return Ok(i);
        }
        let value = loader.get(&target).cloned().ok_or_else(|| loader.invalid(&target, "no such schema"))?;
        let i = self.defs.len();
        self.defs.push(Def { loc: target.clone(), value: Value::Null, deps: Vec::new() });
        self.index.insert(id, i);
        self.chain.push(target.clone());
        let mut own = Vec::new();
        let result =
            self.convert(loader, &target, &value, Ctx { dir: ctx.dir, open, depth: ctx.depth + 1 }, &mut own);
        self.chain.pop();
        let converted = result?;
        if let Some(def) = self.defs.get_mut(i) {
            def.value = converted;
            def.deps = own;
        }
        deps.push(i);
        Ok(i)
    }

    fn convert(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        ctx: Ctx,
        deps: &mut Vec<usize>,
    ) -> Result<Value, ContractError> {
        if ctx.depth > MAX_SCHEMA_DEPTH {
            return Err(loader.invalid(loc, format!("schemas nest deeper than {MAX_SCHEMA_DEPTH} levels")));
        }
        let map = match schema {
            Value::Bool(_) => return Ok(schema.clone()),
            Value::Object(map) => map,
            _ => return Err(loader.invalid(loc, "a schema must be an object (or a boolean in OpenAPI 3.1)")),
        };
        if let Some(reference) = map.get("$ref") {
            let reference = reference
                .as_str()
                .ok_or_else(|| loader.invalid(&loc.child("$ref"), "$ref must be a string"))?
                .to_string();
            // In 3.0 the siblings of `$ref` are ignored by definition; in 3.1 annotation
            // siblings change nothing. Either way the reference stands for the whole schema
            // and inherits this position's openness.
            if self.version == Version::V30 || map.keys().all(|k| k == "$ref" || is_annotation(k)) {
                let i = self.def(loader, loc, &reference, ctx, deps)?;
                let mut reference = def_ref(i);
                // The scopes a property needs stay beside the reference to its schema.
                if let Some(scopes) = self.scopes_mark(loader, loc, map, ctx)?
                    && let Value::Object(r) = &mut reference
                {
                    r.insert(SCOPES_MARK.into(), scopes);
                }
                return Ok(reference);
            }
        }
        let nullable = self.version == Version::V30 && map.get("nullable") == Some(&Value::Bool(true));
        if nullable && !map.contains_key("type") {
            // `nullable` without `type` (typically next to `allOf`/`oneOf`): null or the rest.
            let mut rest = map.clone();
            rest.remove("nullable");
            let inner =
                self.convert(loader, loc, &Value::Object(rest), Ctx { depth: ctx.depth + 1, ..ctx }, deps)?;
            return Ok(json!({ "anyOf": [{ "type": "null" }, inner] }));
        }
        let forbidden = ctx.dir.forbidden();
        let mut out = Map::new();
        if let Some(scopes) = self.scopes_mark(loader, loc, map, ctx)? {
            out.insert(SCOPES_MARK.into(), scopes);
        }
        for (key, value) in map {
            let at = loc.child(key);
            match key.as_str() {
                "$ref" => {
                    // 3.1 with assertion siblings: `$ref` is one more in-place applicator.
                    let reference = value.as_str().unwrap_or_default().to_string();
                    let i = self.def(loader, loc, &reference, ctx.inplace(), deps)?;
                    out.insert(key.clone(), json!(format!("#/$defs/d{i}")));
                }
                "properties" => {
                    let props = value.as_object().ok_or_else(|| loader.invalid(&at, "must be an object"))?;
                    let mut converted = Map::new();
                    for (name, sub) in props {
                        let sub_loc = at.child(name);
                        if let Some((flag, mark)) = forbidden
                            && self.flagged(loader, &sub_loc, sub, flag, 0)?
                        {
                            converted.insert(name.clone(), json!({ mark: true }));
                            continue;
                        }
                        converted
                            .insert(name.clone(), self.descend(loader, &sub_loc, sub, ctx.child(), deps)?);
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                "patternProperties" | "dependentSchemas" => {
                    let entries =
                        value.as_object().ok_or_else(|| loader.invalid(&at, "must be an object"))?;
                    let mut converted = Map::new();
                    for (name, sub) in entries {
                        let sub_loc = at.child(name);
                        let sub = if key == "patternProperties" {
                            self.descend(loader, &sub_loc, sub, ctx.child(), deps)?
                        } else {
                            self.convert(loader, &sub_loc, sub, ctx.inplace(), deps)?
                        };
                        converted.insert(name.clone(), sub);
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                "additionalProperties" | "unevaluatedProperties" | "unevaluatedItems" => {
                    out.insert(key.clone(), self.descend(loader, &at, value, ctx.child(), deps)?);
                }
                "items" => {
                    if value.is_array() {
                        return Err(loader.unsupported(
                            &at,
                            "tuple-form items (an array); use prefixItems (OpenAPI 3.1) or a single schema",
                        ));
                    }
                    out.insert(key.clone(), self.descend(loader, &at, value, ctx.child(), deps)?);
                }
                "prefixItems" => {
                    let items = value.as_array().ok_or_else(|| loader.invalid(&at, "must be an array"))?;
                    let mut converted = Vec::with_capacity(items.len());
                    for (i, sub) in items.iter().enumerate() {
                        converted.push(self.descend(loader, &at.index(i), sub, ctx.child(), deps)?);
                    }
                    out.insert(key.clone(), Value::Array(converted));
                }
                "contains" | "propertyNames" => {
                    out.insert(key.clone(), self.descend(loader, &at, value, ctx.neutral(), deps)?);
                }
                "not" | "if" => {
                    out.insert(key.clone(), self.convert(loader, &at, value, ctx.neutral(), deps)?);
                }
                "then" | "else" => {
                    out.insert(key.clone(), self.convert(loader, &at, value, ctx.inplace(), deps)?);
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let branches = value
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .ok_or_else(|| loader.invalid(&at, "must be a non-empty array of schemas"))?;
                    // `oneOf` alternatives that make up the whole object are closed one by
                    // one, so that exactly the alternative whose properties were sent
                    // matches; open, several alternatives would match and `oneOf` would fail.
                    // `allOf` parts, and `anyOf` alternatives (whose matches combine), stay
                    // open for the composing schema to close.
                    let branch_ctx = if key == "oneOf" && !ctx.open && oneof_is_whole(map) {
                        Ctx { open: false, depth: ctx.depth + 1, ..ctx }
                    } else {
                        ctx.inplace()
                    };
                    let mut converted = Vec::with_capacity(branches.len());
                    for (i, sub) in branches.iter().enumerate() {
                        converted.push(self.convert(loader, &at.index(i), sub, branch_ctx, deps)?);
                    }
                    out.insert(key.clone(), Value::Array(converted));
                }
                "required" => {
                    let names = value
                        .as_array()
                        .filter(|a| a.iter().all(Value::is_string))
                        .ok_or_else(|| loader.invalid(&at, "must be an array of property names"))?;
                    let skip = match forbidden {
                        Some((flag, _)) => self.flagged_names(loader, loc, schema, flag, 0)?,
                        None => HashSet::new(),
                    };
                    let kept: Vec<Value> = names
                        .iter()
                        .filter(|n| n.as_str().is_none_or(|n| !skip.contains(n)))
                        .cloned()
                        .collect();
                    out.insert(key.clone(), Value::Array(kept));
                }
                "type" => {
                    let converted = match value {
                        Value::String(t) if nullable && t != "null" => json!([t, "null"]),
                        Value::Array(types) if nullable && !types.contains(&json!("null")) => {
                            let mut types = types.clone();
                            types.push(json!("null"));
                            Value::Array(types)
                        }
                        Value::String(_) | Value::Array(_) => value.clone(),
                        _ => return Err(loader.invalid(&at, "type must be a string or an array of strings")),
                    };
                    out.insert(key.clone(), converted);
                }
                "enum" => {
                    let mut options = value
                        .as_array()
                        .cloned()
                        .ok_or_else(|| loader.invalid(&at, "enum must be an array"))?;
                    if nullable && !options.contains(&Value::Null) {
                        options.push(Value::Null);
                    }
                    out.insert(key.clone(), Value::Array(options));
                }
                "minimum" | "maximum" => {
                    // 3.0: `exclusiveMinimum: true` turns `minimum` into the 2020-12 numeric
                    // `exclusiveMinimum`.
                    let exclusive = if key == "minimum" { "exclusiveMinimum" } else { "exclusiveMaximum" };
                    if map.get(exclusive) == Some(&Value::Bool(true)) {
                        out.insert(exclusive.to_string(), value.clone());
                    } else {
                        out.insert(key.clone(), value.clone());
                    }
                }
                // Boolean (3.0) exclusives were folded into `minimum`/`maximum` above and
                // fall through to the ignored keywords below.
                "exclusiveMinimum" | "exclusiveMaximum" if !value.is_boolean() => {
                    out.insert(key.clone(), value.clone());
                }
                "$schema" => {
                    let dialect = value.as_str().unwrap_or_default();
                    if !is_supported_dialect(dialect) {
                        return Err(
                            loader.unsupported(&at, "only the JSON Schema 2020-12 / OpenAPI 3.1 dialect")
                        );
                    }
                }
                "$id" | "$anchor" | "$dynamicRef" | "$dynamicAnchor" | "$recursiveRef"
                | "$recursiveAnchor" | "$vocabulary" => {
                    return Err(loader.unsupported(
                        &at,
                        format!("{key} inside a schema; reference components by JSON pointer ($ref: '#/components/...')"),
                    ));
                }
                "additionalItems" | "dependencies" => {
                    return Err(loader.unsupported(
                        &at,
                        format!("{key} is not a JSON Schema 2020-12 keyword (use prefixItems/items or dependentSchemas)"),
                    ));
                }
                k if KEPT.contains(&k) => {
                    out.insert(key.clone(), value.clone());
                }
                // `nullable`, `example`, `discriminator`, `xml`, `externalDocs`, `$defs`,
                // `definitions`, `$comment`, `x-*` and unknown keywords are annotations: they
                // assert nothing (unknown keywords are annotations in 2020-12 as well).
                _ => {}
            }
        }
        add_integer_bounds(map, &mut out);
        if matches!(ctx.dir, Direction::Request { .. }) {
            mark_integer(&mut out);
        }
        if ctx.dir.closes()
            && !ctx.open
            && !map.contains_key("additionalProperties")
            && !map.contains_key("unevaluatedProperties")
            && self.describes_properties(loader, loc, schema, 0)?
        {
            // Without in-place applicators nothing but this schema's own `properties` and
            // `patternProperties` can evaluate a property, so `additionalProperties: false`
            // closes it exactly as `unevaluatedProperties: false` would, and validates several
            // times faster (no annotation collection). Violations are still reported as
            // `unevaluatedProperties` (the mark below), whichever keyword closed the object.
            if IN_PLACE_APPLICATORS.iter().any(|k| map.contains_key(*k)) {
                out.insert("unevaluatedProperties".into(), Value::Bool(false));
            } else {
                out.insert("additionalProperties".into(), Value::Bool(false));
                out.insert(CLOSED_MARK.into(), Value::Bool(true));
            }
        }
        Ok(Value::Object(out))
    }

    /// True when a property schema carries `flag` (`readOnly`/`writeOnly`) itself, through
    /// its `$ref`, or through a single-branch `allOf` (the 3.0 idiom for annotating a `$ref`).
    fn flagged(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        flag: &str,
        depth: usize,
    ) -> Result<bool, ContractError> {
        if depth > MAX_ANALYSIS_DEPTH {
            return Ok(false);
        }
        if schema.get(flag) == Some(&Value::Bool(true)) {
            return Ok(true);
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = loader.resolve(loc, reference)?;
            let value = loader.get(&target).cloned().unwrap_or(Value::Null);
            return self.flagged(loader, &target, &value, flag, depth + 1);
        }
        if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            return self.flagged(loader, &loc.child("allOf").index(0), only, flag, depth + 1);
        }
        Ok(false)
    }

    /// Names of the properties flagged `flag` in this schema and the schemas it composes
    /// in place: they are dropped from `required` in that direction.
    fn flagged_names(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        flag: &str,
        depth: usize,
    ) -> Result<HashSet<String>, ContractError> {
        let mut names = HashSet::new();
        if depth > MAX_ANALYSIS_DEPTH {
            return Ok(names);
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                if self.flagged(loader, &loc.child("properties").child(name), sub, flag, 0)? {
                    names.insert(name.clone());
                }
            }
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = loader.resolve(loc, reference)?;
            let value = loader.get(&target).cloned().unwrap_or(Value::Null);
            names.extend(self.flagged_names(loader, &target, &value, flag, depth + 1)?);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                for (i, sub) in branches.iter().enumerate() {
                    names.extend(self.flagged_names(
                        loader,
                        &loc.child(key).index(i),
                        sub,
                        flag,
                        depth + 1,
                    )?);
                }
            }
        }
        Ok(names)
    }

    /// True when the schema names properties, itself or through what it composes in place.
    /// Free-form objects (`{type: object}` with no properties) are not closed by strict mode:
    /// closing them would accept only `{}`.
    fn describes_properties(
        &mut self,
        loader: &mut Loader,
        loc: &Loc,
        schema: &Value,
        depth: usize,
    ) -> Result<bool, ContractError> {
        if depth > MAX_ANALYSIS_DEPTH {
            return Ok(false);
        }
        let Some(map) = schema.as_object() else { return Ok(false) };
        let non_empty = |key: &str| map.get(key).and_then(Value::as_object).is_some_and(|m| !m.is_empty());
        if non_empty("properties") || non_empty("patternProperties") {
            return Ok(true);
        }
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let target = loader.resolve(loc, reference)?;
            if let Some(&known) = self.describes.get(&target) {
                if known {
                    return Ok(true);
                }
            } else {
                // Provisionally false: a cycle back here adds nothing new.
                self.describes.insert(target.clone(), false);
                let value = loader.get(&target).cloned().unwrap_or(Value::Null);
                let result = self.describes_properties(loader, &target, &value, depth + 1)?;
                self.describes.insert(target, result);
                if result {
                    return Ok(true);
                }
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = map.get(key).and_then(Value::as_array) {
                for (i, sub) in branches.iter().enumerate() {
                    if self.describes_properties(loader, &loc.child(key).index(i), sub, depth + 1)? {
                        return Ok(true);
                    }
                }
            }
        }
        for key in ["then", "else"] {
            if let Some(sub) = map.get(key)
                && self.describes_properties(loader, &loc.child(key), sub, depth + 1)?
            {
                return Ok(true);
            }
        }
        if let Some(entries) = map.get("dependentSchemas").and_then(Value::as_object) {
            for (name, sub) in entries {
                if self.describes_properties(
                    loader,
                    &loc.child("dependentSchemas").child(name),
                    sub,
                    depth + 1,
                )? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// True when a schema's `oneOf` is all it says about properties: nothing beside it names
/// properties or composes other schemas in place.
fn oneof_is_whole(map: &Map<String, Value>) -> bool {
    ["properties", "patternProperties", "allOf", "anyOf", "$ref", "dependentSchemas", "if", "then", "else"]
        .iter()
        .all(|k| !map.contains_key(*k))
}

pub(super) fn is_supported_dialect(dialect: &str) -> bool {
    let dialect = dialect.trim_end_matches('#');
    dialect == "https://json-schema.org/draft/2020-12/schema"
        || dialect.starts_with("https://spec.openapis.org/oas/3.1/dialect")
}

/// `format: int32`/`int64` on integers are range assertions in OpenAPI; JSON Schema treats
/// them as unknown formats, so they become `minimum`/`maximum` unless bounds are declared.
fn add_integer_bounds(source: &Map<String, Value>, out: &mut Map<String, Value>) {
    let (low, high) = match source.get("format").and_then(Value::as_str) {
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("int64") => (i64::MIN, i64::MAX),
        _ => return,
    };
    let integer = match out.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    if !integer {
        return;
    }
    if !out.contains_key("minimum") && !out.contains_key("exclusiveMinimum") {
        out.insert("minimum".into(), json!(low));
    }
    if !out.contains_key("maximum") && !out.contains_key("exclusiveMaximum") {
        out.insert("maximum".into(), json!(high));
    }
}

/// Adds [`INTEGER_MARK`] to a request schema whose `type` admits integers but not every
/// number.
fn mark_integer(out: &mut Map<String, Value>) {
    let has = |t: &str| match out.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
        _ => false,
    };
    if has("integer") && !has("number") {
        out.insert(INTEGER_MARK.into(), Value::Bool(true));
    }
}

/// What `type: integer` admits in a request: a number written as an integer that fits
/// `i64` or `u64`. JSON Schema also counts `60.0`, `6e1` and `1e20` as integers, but a
/// handler's integer parser (`serde` into `u32`, `str::parse::<i64>`, most languages' JSON
/// libraries) refuses them, so admitting them hands the handler a value it fails on.
/// Anything but a number is left to `type` itself.
struct WrittenInteger;

impl<'i> Keyword<'i> for WrittenInteger {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(
                "an integer must be written without a fraction or exponent and fit 64 bits",
            ))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance {
            Value::Number(n) => n.is_i64() || n.is_u64(),
            _ => true,
        }
    }
}

fn written_integer_factory<'a>(
    _parent: &'a Map<String, Value>,
    _value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    Ok(Box::new(WrittenInteger))
}

fn is_base64(value: &str) -> bool {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    STANDARD.decode(value).is_ok() || STANDARD_NO_PAD.decode(value).is_ok()
}

/// The keyword behind the readOnly/writeOnly marks: any instance fails.
struct Forbidden;

impl<'i> Keyword<'i> for Forbidden {
    fn validate(&self, _instance: &'i Value) -> Result<(), ValidationError<'i>> {
        Err(ValidationError::custom("this property may not be sent in this direction"))
    }

    fn is_valid(&self, _instance: &'i Value) -> bool {
        false
    }
}

fn forbidden_factory<'a>(
    _parent: &'a Map<String, Value>,
    _value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    Ok(Box::new(Forbidden))
}

/// Validates `instance` and records each error as a violation under `prefix` (e.g. `/body`):
/// pointers and keywords only, never the offending value.
///
/// When a branch of a composition fails, JSON Schema drops the annotations of that branch,
/// so the closing `unevaluatedProperties: false` also reports every property the failed
/// branch declared. Those reports only echo the real failure (already reported), so names
/// that the closing schema declares somewhere in its composition are left out.
pub(super) fn collect(compiled: &Compiled, instance: &Value, prefix: &str, out: &mut Collector) {
    // Most requests are valid: `is_valid` short-circuits and builds no errors, so the
    // error walk only runs for the ones that fail.
    if compiled.validator.is_valid(instance) {
        return;
    }
    let view = View::new(&compiled.bundle);
    for error in compiled.validator.iter_errors(instance) {
        let mut base = prefix.to_string();
        for segment in error.instance_path().as_str().split('/').skip(1) {
            // Segments are escaped already; names chosen by the client are kept only when
            // short and printable (`push_request_segment` applies the same rule).
            if segment.len() <= 64 && segment.bytes().all(|b| b.is_ascii_graphic()) {
                base.push('/');
                base.push_str(segment);
            } else {
                base.push_str("/*");
            }
        }
        match error.kind() {
            ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let schema_path = error.schema_path().as_str();
                let owner = schema_path
                    .strip_suffix("/unevaluatedProperties")
                    .and_then(|p| if p.is_empty() { Some(view.root()) } else { view.root().pointer(p) });
                let declared = owner.map(|o| view.property_names(o)).unwrap_or_default();
                for name in unexpected.iter().filter(|n| !declared.contains(&n.as_str())) {
                    let mut pointer = base.clone();
                    push_request_segment(&mut pointer, name);
                    out.push(pointer, "unevaluatedProperties");
                }
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let owner = error
                    .schema_path()
                    .as_str()
                    .strip_suffix("/additionalProperties")
                    .and_then(|p| if p.is_empty() { Some(view.root()) } else { view.root().pointer(p) });
                let closed_by_zt = owner.is_some_and(|o| o.get(CLOSED_MARK).is_some());
                let keyword = if closed_by_zt { "unevaluatedProperties" } else { "additionalProperties" };
                for name in unexpected {
                    let mut pointer = base.clone();
                    push_request_segment(&mut pointer, name);
                    out.push(pointer, keyword);
                }
            }
            ValidationErrorKind::Required { property } => {
                let mut pointer = base;
                push_request_segment(&mut pointer, property.as_str().unwrap_or_default());
                out.push(pointer, "required");
            }
            ValidationErrorKind::Custom { keyword, .. } if keyword == READ_ONLY_MARK => {
                out.push(base, "readOnly")
            }
            ValidationErrorKind::Custom { keyword, .. } if keyword == WRITE_ONLY_MARK => {
                out.push(base, "writeOnly")
            }
            // Not an integer as zt reads `type: integer`: the `type` rule failed.
            ValidationErrorKind::Custom { keyword, .. } if keyword == INTEGER_MARK => out.push(base, "type"),
            kind => out.push(base, kind.keyword()),
        }
        if out.is_full() {
            break;
        }
    }
}

/// JSON types, as a small set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Types(u8);

impl Types {
    pub(super) const NULL: Types = Types(1);
    pub(super) const BOOLEAN: Types = Types(2);
    pub(super) const INTEGER: Types = Types(4);
    pub(super) const NUMBER: Types = Types(8);
    pub(super) const STRING: Types = Types(16);
    pub(super) const ARRAY: Types = Types(32);
    pub(super) const OBJECT: Types = Types(64);
    pub(super) const ALL: Types = Types(127);
    const NONE: Types = Types(0);

    pub(super) fn has(self, other: Types) -> bool {
        self.0 & other.0 != 0
    }

    fn with(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    fn named(name: &str) -> Types {
        match name {
            "null" => Types::NULL,
            "boolean" => Types::BOOLEAN,
            "integer" => Types::INTEGER,
            "number" => Types::NUMBER,
            "string" => Types::STRING,
            "array" => Types::ARRAY,
            "object" => Types::OBJECT,
            _ => Types::NONE,
        }
    }

    fn of(value: &Value) -> Types {
        match value {
            Value::Null => Types::NULL,
            Value::Bool(_) => Types::BOOLEAN,
            Value::Number(n) if n.is_i64() || n.is_u64() => Types::INTEGER,
            Value::Number(_) => Types::NUMBER,
            Value::String(_) => Types::STRING,
            Value::Array(_) => Types::ARRAY,
            Value::Object(_) => Types::OBJECT,
        }
    }
}

/// Read-only analysis of a compiled bundle: which types a schema admits, which properties
/// it names. Used to turn strings (query values, form fields) into typed JSON values and to
/// find undeclared response fields. Every walk is bounded.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    root: &'a Value,
}

impl<'a> View<'a> {
    pub(super) fn new(root: &'a Value) -> Self {
        View { root }
    }

    /// The bundle's root schema.
    pub(super) fn root(&self) -> &'a Value {
        self.root
    }

    fn target(&self, reference: &str) -> Option<&'a Value> {
        let key = reference.strip_prefix("#/$defs/")?;
        self.root.get("$defs")?.get(key)
    }

    /// The schema and every schema it applies in place (`$ref`, `allOf`, `anyOf`, `oneOf`,
    /// `then`, `else`), without duplicates.
    pub(super) fn expand(&self, schema: &'a Value) -> Vec<&'a Value> {
        let mut out: Vec<&'a Value> = Vec::new();
        let mut stack = vec![schema];
        while let Some(s) = stack.pop() {
            if out.len() >= MAX_EXPANSION {
                break;
            }
            if out.iter().any(|seen| std::ptr::eq(*seen, s)) {
                continue;
            }
            out.push(s);
            if let Some(target) = s.get("$ref").and_then(Value::as_str).and_then(|r| self.target(r)) {
                stack.push(target);
            }
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(branches) = s.get(key).and_then(Value::as_array) {
                    stack.extend(branches.iter().rev());
                }
            }
            for key in ["then", "else"] {
                if let Some(sub) = s.get(key) {
                    stack.push(sub);
                }
            }
        }
        out
    }

    /// The JSON types the schema may admit (all of them when it does not say).
    pub(super) fn types(&self, schema: &'a Value) -> Types {
        let mut declared = Types::NONE;
        let mut constrained = false;
        for s in self.expand(schema) {
            match s.get("type") {
                Some(Value::String(t)) => {
                    declared = declared.with(Types::named(t));
                    constrained = true;
                }
                Some(Value::Array(ts)) => {
                    for t in ts.iter().filter_map(Value::as_str) {
                        declared = declared.with(Types::named(t));
                    }
                    constrained = true;
                }
                _ => {
                    if let Some(options) = s.get("enum").and_then(Value::as_array) {
                        for option in options {
                            declared = declared.with(Types::of(option));
                        }
                        constrained = true;
                    } else if let Some(constant) = s.get("const") {
                        declared = declared.with(Types::of(constant));
                        constrained = true;
                    }
                }
            }
        }
        if constrained && declared != Types::NONE { declared } else { Types::ALL }
    }

    /// The schemas declared for property `name`, across the in-place expansion.
    pub(super) fn property(&self, schema: &'a Value, name: &str) -> Vec<&'a Value> {
        self.expand(schema)
            .into_iter()
            .filter_map(|s| s.get("properties").and_then(|p| p.get(name)))
            .collect()
    }

    /// Every property name declared across the in-place expansion.
    pub(super) fn property_names(&self, schema: &'a Value) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = Vec::new();
        for s in self.expand(schema) {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for name in props.keys() {
                    if !names.contains(&name.as_str()) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }

    /// The `items` schemas across the in-place expansion.
    pub(super) fn items(&self, schema: &'a Value) -> Vec<&'a Value> {
        self.expand(schema).into_iter().filter_map(|s| s.get("items")).collect()
    }

    /// The `prefixItems[index]` schemas across the in-place expansion.
    pub(super) fn prefix_item(&self, schema: &'a Value, index: usize) -> Vec<&'a Value> {
        self.expand(schema)
            .into_iter()
            .filter_map(|s| s.get("prefixItems").and_then(|p| p.get(index)))
            .collect()
    }

    /// Schemas that declare property names as data (a map): `additionalProperties` given as
    /// a schema, and every `patternProperties` entry. `additionalProperties: true` declares
    /// nothing: it only tolerates extra names.
    pub(super) fn open_maps(&self, schema: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for s in self.expand(schema) {
            if let Some(extra @ Value::Object(_)) = s.get("additionalProperties") {
                out.push(extra);
            }
            if let Some(patterns) = s.get("patternProperties").and_then(Value::as_object) {
                out.extend(patterns.values());
            }
        }
        out
    }

    /// Union of the types of several schemas.
    pub(super) fn types_of(&self, schemas: &[&'a Value]) -> Types {
        if schemas.is_empty() {
            return Types::ALL;
        }
        schemas.iter().fold(Types::NONE, |acc, s| acc.with(self.types(s)))
    }
}
