//! Compiles a whole document: version, paths, operations, routes, security.

use std::path::PathBuf;

use serde_json::Value;

use super::body::BodySpec;
use super::error::ContractError;
use super::loader::{Loader, Loc};
use super::operation::{ContractOptions, Operation};
use super::params::{self, Param, QueryPlan};
use super::response::ResponseSpec;
use super::router::{self, RouterBuilder};
use super::schema::{SchemaCompiler, Version};
use super::security;

/// A compiled document: the parts of a [`Contract`](super::Contract).
pub(super) struct CompiledContract {
    pub(super) operations: Vec<Operation>,
    pub(super) compiled: Vec<CompiledOp>,
    pub(super) router: router::Router,
    pub(super) options: ContractOptions,
}

/// The per-operation validation plan, parallel to [`Contract::operations`](super::Contract::operations).
pub(super) struct CompiledOp {
    pub(super) params: Vec<Param>,
    pub(super) plan: QueryPlan,
    pub(super) body: Option<BodySpec>,
    pub(super) responses: ResponseSpec,
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const PATH_ITEM_FIELDS: [&str; 5] = ["$ref", "summary", "description", "servers", "parameters"];

fn version(loader: &Loader) -> Result<Version, ContractError> {
    let root = loader.root();
    let file = loader.file_name(0);
    let Some(found) = root.get("openapi") else {
        let found = root.get("swagger").map(|v| format!("swagger {}", v.as_str().unwrap_or("?")));
        return Err(ContractError::Version { file, found });
    };
    let text = found.as_str().unwrap_or_default();
    let mut parts = text.splitn(3, '.');
    let (major, minor, patch) = (parts.next(), parts.next(), parts.next());
    let patch_ok = patch.is_some_and(|p| {
        let digits = p.split('-').next().unwrap_or_default();
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    match (major, minor, patch_ok) {
        (Some("3"), Some("0"), true) => Ok(Version::V30),
        (Some("3"), Some("1"), true) => Ok(Version::V31),
        _ => Err(ContractError::Version {
            file,
            found: Some(found.as_str().map_or_else(|| found.to_string(), str::to_string)),
        }),
    }
}

fn flag(loader: &Loader, object: &Value, loc: &Loc, key: &str) -> Result<Option<bool>, ContractError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(loader.invalid(&loc.child(key), format!("{key} must be a boolean"))),
    }
}

fn text(loader: &Loader, object: &Value, loc: &Loc, key: &str) -> Result<Option<String>, ContractError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(loader.invalid(&loc.child(key), format!("{key} must be a non-empty string"))),
    }
}

/// Reads a `parameters` array: each entry dereferenced, keyed by `(in, name)`.
fn parameter_list(
    loader: &mut Loader,
    loc: &Loc,
    value: Option<&Value>,
) -> Result<Vec<(Loc, Value)>, ContractError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let entries = value.as_array().ok_or_else(|| loader.invalid(loc, "parameters must be an array"))?;
    let mut out: Vec<(Loc, Value)> = Vec::new();
    for i in 0..entries.len() {
        let (at, object) = loader.deref(loc.index(i))?;
        if out.iter().any(|(_, other)| same_parameter(other, &object)) {
            return Err(
                loader.invalid(&loc.index(i), "a parameter with this name and location is declared twice")
            );
        }
        out.push((at, object));
    }
    Ok(out)
}

fn same_parameter(a: &Value, b: &Value) -> bool {
    let key = |v: &Value| {
        let location = v.get("in").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let name = if location == "header" { name.to_ascii_lowercase() } else { name.to_string() };
        (location, name)
    };
    key(a) == key(b)
}

struct Ctx<'a> {
    options: &'a ContractOptions,
    global_security: Option<Value>,
}

/// Compiles a document into the parts of a contract.
pub(super) fn compile(
    document: Value,
    name: Option<String>,
    dir: Option<PathBuf>,
    key: Option<PathBuf>,
    options: ContractOptions,
) -> Result<CompiledContract, ContractError> {
    let mut loader = Loader::new(document, name, dir, key);
    let root_loc = Loc { file: 0, pointer: String::new() };
    if !loader.root().is_object() {
        return Err(loader.invalid(&root_loc, "an OpenAPI document is an object"));
    }
    let version = version(&loader)?;
    if version == Version::V31
        && let Some(dialect) = loader.root().get("jsonSchemaDialect")
        && !dialect.as_str().is_some_and(super::schema::is_supported_dialect)
    {
        return Err(loader.unsupported(
            &root_loc.child("jsonSchemaDialect"),
            "only the JSON Schema 2020-12 / OpenAPI 3.1 dialect",
        ));
    }
    let paths_loc = root_loc.child("paths");
    let paths = loader
        .root()
        .get("paths")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| loader.invalid(&paths_loc, "the document needs a paths object"))?;
    if let Some(schemes) = loader.root().get("components").and_then(|c| c.get("securitySchemes"))
        && !schemes.is_object()
    {
        return Err(
            loader.invalid(&root_loc.child("components").child("securitySchemes"), "must be an object")
        );
    }
    let ctx = Ctx { options: &options, global_security: loader.root().get("security").cloned() };
    let mut schemas = SchemaCompiler::new(version);
    let mut operations = Vec::new();
    let mut compiled = Vec::new();
    let mut routes = RouterBuilder::default();
    for (template, item) in &paths {
        if template.starts_with("x-") {
            continue;
        }
        let item_loc = paths_loc.child(template);
        if !item.is_object() {
            return Err(loader.invalid(&item_loc, "a path item must be an object"));
        }
        let names = router::template_params(template).map_err(|m| loader.invalid(&item_loc, m))?;
        let (resolved_loc, item) = loader.deref(item_loc)?;
        let Some(fields) = item.as_object() else {
            return Err(loader.invalid(&resolved_loc, "a path item must be an object"));
        };
        for field in fields.keys() {
            if !METHODS.contains(&field.as_str())
                && !PATH_ITEM_FIELDS.contains(&field.as_str())
                && !field.starts_with("x-")
            {
                return Err(loader.invalid(&resolved_loc.child(field), "unknown path item field"));
            }
        }
        let shared = parameter_list(&mut loader, &resolved_loc.child("parameters"), item.get("parameters"))?;
        for method in METHODS {
            let Some(object) = item.get(method) else { continue };
            let op_loc = resolved_loc.child(method);
            let (operation, plan) = compile_operation(
                &mut loader,
                &mut schemas,
                &ctx,
                &op_loc,
                object,
                template,
                method,
                &names,
                &shared,
            )?;
            routes.add(template, &operation.method, operations.len());
            operations.push(operation);
            compiled.push(plan);
        }
    }
    let router =
        routes.build().map_err(|(template, message)| loader.invalid(&paths_loc.child(&template), message))?;
    Ok(CompiledContract { operations, compiled, router, options })
}

#[allow(clippy::too_many_arguments)]
fn compile_operation(
    loader: &mut Loader,
    schemas: &mut SchemaCompiler,
    ctx: &Ctx<'_>,
    loc: &Loc,
    object: &Value,
    template: &str,
    method: &str,
    names: &[String],
    shared: &[(Loc, Value)],
) -> Result<(Operation, CompiledOp), ContractError> {
    if !object.is_object() {
        return Err(loader.invalid(loc, "an operation must be an object"));
    }
    let strict = flag(loader, object, loc, "x-zt-strict")?.unwrap_or(ctx.options.strict);
    let body_limit = match object.get("x-zt-body-limit") {
        None => ctx.options.default_body_limit,
        Some(v) => v.as_u64().filter(|n| *n > 0).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            loader.invalid(&loc.child("x-zt-body-limit"), "must be a positive integer (bytes)")
        })?,
    };
    let zone = text(loader, object, loc, "x-zt-zone")?;
    let operation_id = text(loader, object, loc, "operationId")?;
    let deprecated = flag(loader, object, loc, "deprecated")?.unwrap_or(false);
    let tags = match object.get("tags") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| loader.invalid(&loc.child("tags"), "tags must be an array of strings"))?,
    };

    // Operation-level parameters override path-level ones with the same name and location.
    let own = parameter_list(loader, &loc.child("parameters"), object.get("parameters"))?;
    let mut declared: Vec<(Loc, Value)> =
        shared.iter().filter(|(_, s)| !own.iter().any(|(_, o)| same_parameter(s, o))).cloned().collect();
    declared.extend(own);
    let mut parameters = Vec::new();
    for (at, value) in &declared {
        if let Some(p) = params::compile(loader, schemas, at, value, strict)? {
            parameters.push(p);
        }
    }
    for name in names {
        if !parameters.iter().any(|p| p.location == params::In::Path && p.name == *name) {
            return Err(loader.invalid(loc, format!("the path parameter {{{name}}} is not declared")));
        }
    }
    for (at, value) in &declared {
        let is_path = value.get("in").and_then(Value::as_str) == Some("path");
        let name = value.get("name").and_then(Value::as_str).unwrap_or_default();
        if is_path && !names.iter().any(|n| n == name) {
            return Err(loader
                .invalid(at, format!("path parameter {name:?} does not appear in the template {template}")));
        }
    }
    let plan = QueryPlan::new(&parameters).map_err(|m| loader.invalid(&loc.child("parameters"), m))?;

    let body = match object.get("requestBody") {
        None => None,
        Some(_) => {
            let (at, resolved) = loader.deref(loc.child("requestBody"))?;
            Some(BodySpec::compile(loader, schemas, &at, &resolved, strict)?)
        }
    };
    let responses = match object.get("responses") {
        None => ResponseSpec::none(),
        Some(value) => ResponseSpec::compile(loader, schemas, &loc.child("responses"), value)?,
    };
    let requirement = match (object.get("security"), &ctx.global_security) {
        (Some(value), _) => Some(security::requirement(loader, &loc.child("security"), value)?),
        (None, Some(global)) => {
            Some(security::requirement(loader, &Loc { file: 0, pointer: "/security".into() }, global)?)
        }
        (None, None) => None,
    };
    let operation = Operation {
        method: method.to_ascii_uppercase(),
        template: template.to_string(),
        operation_id,
        requirement,
        strict,
        body_limit,
        has_body: body.is_some(),
        body_required: body.as_ref().is_some_and(|b| b.required),
        deprecated,
        tags,
        zone,
    };
    Ok((operation, CompiledOp { params: parameters, plan, body, responses }))
}
