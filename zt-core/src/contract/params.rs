//! Parameters: path, query, header and cookie values, deserialized per their OpenAPI style
//! into JSON values and validated against their schemas.
//!
//! Decoding rules (the same for every request, documented in the module root):
//! - path and query values are percent-decoded exactly once; in the query `+` is a space
//!   (as in every form decoder the frameworks use); bytes that are not UTF-8 after decoding
//!   are a violation (`encoding`);
//! - delimiters of array and object styles are split *after* decoding, so an encoded
//!   delimiter (`%2C`) still delimits: the application, which also sees decoded text, cannot
//!   read a value differently than it was validated;
//! - header and cookie values are not percent-decoded (neither do the frameworks).
//!
//! Values become JSON by the schema's types: a text that is a JSON number becomes a number
//! when the schema admits numbers, `true`/`false` a boolean when it admits booleans, and
//! everything else stays a string (so `limit=abc` fails with `type`).

use std::borrow::Cow;
use std::collections::HashMap;

use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};

use super::error::ContractError;
use super::loader::{Loader, Loc};
use super::media::MediaType;
use super::operation::ContractRequest;
use super::report::Collector;
use super::schema::{self, Compiled, Direction, SchemaCompiler, Types, View};
use crate::json::{self, push_request_segment, push_segment};

/// More query pairs than this is refused outright (`limit`): bounded work per request.
const MAX_QUERY_PAIRS: usize = 1000;
/// More cookies than this is refused outright.
const MAX_COOKIES: usize = 256;
/// Repeated header lines read for one header name.
const MAX_HEADER_LINES: usize = 64;

/// Where a parameter is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    fn parse(s: &str) -> Option<In> {
        Some(match s {
            "path" => In::Path,
            "query" => In::Query,
            "header" => In::Header,
            "cookie" => In::Cookie,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// OpenAPI serialization styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
    Simple,
    Label,
    Matrix,
}

impl Style {
    fn parse(s: &str) -> Option<Style> {
        Some(match s {
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            _ => return None,
        })
    }

    fn default_for(location: In) -> Style {
        match location {
            In::Path | In::Header => Style::Simple,
            In::Query | In::Cookie => Style::Form,
        }
    }

    fn valid_in(self, location: In) -> bool {
        match location {
            In::Path => matches!(self, Style::Simple | Style::Label | Style::Matrix),
            In::Query => {
                matches!(self, Style::Form | Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject)
            }
            In::Header => self == Style::Simple,
            In::Cookie => self == Style::Form,
        }
    }

    /// The delimiter of array items (and object entries) when not exploded.
    fn delimiter(self) -> char {
        match self {
            Style::SpaceDelimited => ' ',
            Style::PipeDelimited => '|',
            _ => ',',
        }
    }
}

/// How a parameter's text becomes a JSON value.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    Scalar(Types),
    Array(Types),
    Object {
        /// Declared properties and their types.
        props: Vec<(String, Types)>,
    },
    /// `content: {application/json: ...}`: the value is a JSON text.
    Json,
}

impl Shape {
    /// Derives the shape from a compiled schema.
    pub(super) fn of(compiled: &Compiled) -> Shape {
        let view = View::new(&compiled.bundle);
        let root = view.root();
        let types = view.types(root);
        if types != Types::ALL && types.has(Types::ARRAY) && !types.has(Types::OBJECT) {
            let items = view.items(root);
            return Shape::Array(view.types_of(&items));
        }
        if types != Types::ALL && types.has(Types::OBJECT) && !types.has(Types::ARRAY) {
            let props = view
                .property_names(root)
                .into_iter()
                .map(|name| (name.to_string(), view.types_of(&view.property(root, name))))
                .collect();
            return Shape::Object { props };
        }
        Shape::Scalar(types)
    }

    fn prop_types(&self, name: &str) -> Types {
        match self {
            Shape::Object { props } => props.iter().find(|(n, _)| n == name).map_or(Types::ALL, |(_, t)| *t),
            _ => Types::ALL,
        }
    }
}

/// One compiled parameter.
pub(super) struct Param {
    /// The name as declared (lower-cased for headers).
    pub(super) name: String,
    pub(super) location: In,
    pub(super) required: bool,
    pub(super) style: Style,
    pub(super) explode: bool,
    pub(super) allow_empty: bool,
    pub(super) shape: Shape,
    /// `None` for `content` parameters without a schema (any JSON).
    pub(super) schema: Option<Compiled>,
    /// `/query/limit`, `/header/x-rate`, ...
    pub(super) pointer: String,
}

impl Param {
    /// Several occurrences are the encoding itself (form-exploded arrays), not pollution.
    fn repeats(&self) -> bool {
        matches!(self.shape, Shape::Array(_)) && self.explode && self.style != Style::DeepObject
    }

    /// Form-exploded objects spread their properties over the query (`?x=1&y=2`).
    fn spreads(&self) -> bool {
        self.location == In::Query
            && self.style == Style::Form
            && self.explode
            && matches!(self.shape, Shape::Object { .. })
    }
}

/// Compiles a Parameter Object (already dereferenced). `None` for header parameters the
/// OpenAPI specification says to ignore (`Accept`, `Content-Type`, `Authorization`).
pub(super) fn compile(
    loader: &mut Loader,
    schemas: &mut SchemaCompiler,
    loc: &Loc,
    object: &Value,
    strict: bool,
) -> Result<Option<Param>, ContractError> {
    if !object.is_object() {
        return Err(loader.invalid(loc, "a parameter must be an object"));
    }
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| loader.invalid(&loc.child("name"), "a parameter needs a non-empty name"))?;
    let location_text = object
        .get("in")
        .and_then(Value::as_str)
        .ok_or_else(|| loader.invalid(&loc.child("in"), "a parameter needs `in`"))?;
    let location = In::parse(location_text).ok_or_else(|| {
        loader.unsupported(
            &loc.child("in"),
            format!("parameter location {location_text:?} (use path, query, header or cookie)"),
        )
    })?;
    if location == In::Header
        && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }
    let flag = |key: &str| -> Result<Option<bool>, ContractError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(loader.invalid(&loc.child(key), format!("{key} must be a boolean"))),
        }
    };
    let required = flag("required")?.unwrap_or(false);
    if location == In::Path && !required {
        return Err(loader.invalid(&loc.child("required"), "path parameters must be `required: true`"));
    }
    let allow_empty = flag("allowEmptyValue")?.unwrap_or(false) && location == In::Query;
    let allow_reserved = flag("allowReserved")?.unwrap_or(false);
    let explicit_explode = flag("explode")?;
    let style = match object.get("style") {
        None => Style::default_for(location),
        Some(v) => {
            let text =
                v.as_str().ok_or_else(|| loader.invalid(&loc.child("style"), "style must be a string"))?;
            Style::parse(text)
                .ok_or_else(|| loader.invalid(&loc.child("style"), format!("unknown style {text:?}")))?
        }
    };
    if !style.valid_in(location) {
        return Err(loader.unsupported(
            &loc.child("style"),
            format!("style {style:?} is not defined for {} parameters", location.name()),
        ));
    }
    let explode = explicit_explode.unwrap_or(style == Style::Form);
    let dir = Direction::Request { strict };
    let (schema, shape) = match (object.get("schema"), object.get("content")) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(loader.invalid(loc, "a parameter needs exactly one of `schema` and `content`"));
        }
        (Some(_), None) => {
            let compiled = schemas.compile(loader, &loc.child("schema"), dir)?;
            let shape = Shape::of(&compiled);
            (Some(compiled), shape)
        }
        (None, Some(content)) => {
            let content_loc = loc.child("content");
            let entries = content
                .as_object()
                .filter(|m| m.len() == 1)
                .ok_or_else(|| loader.invalid(&content_loc, "content must map exactly one media type"))?;
            let Some((media, entry)) = entries.iter().next() else {
                return Err(loader.invalid(&content_loc, "content must map exactly one media type"));
            };
            if !MediaType::parse(media).is_some_and(|m| m.is_json()) {
                return Err(loader.unsupported(
                    &content_loc.child(media),
                    "parameters with non-JSON content (only application/json and +json are understood)",
                ));
            }
            let compiled = match entry.get("schema") {
                Some(_) => Some(schemas.compile(loader, &content_loc.child(media).child("schema"), dir)?),
                None => None,
            };
            (compiled, Shape::Json)
        }
    };
    let structured = matches!(shape, Shape::Array(_) | Shape::Object { .. });
    if allow_reserved && structured && location == In::Query {
        return Err(loader.unsupported(
            &loc.child("allowReserved"),
            "allowReserved on an array or object: reserved characters would collide with the style's delimiters",
        ));
    }
    if style == Style::DeepObject && (!matches!(shape, Shape::Object { .. }) || !explode) {
        return Err(loader
            .unsupported(&loc.child("style"), "deepObject is defined only for objects with explode: true"));
    }
    if location == In::Cookie && explode && matches!(shape, Shape::Object { .. }) {
        return Err(loader.unsupported(
            &loc.child("explode"),
            "exploded object cookies (one cookie per property); declare `explode: false`",
        ));
    }
    let name = if location == In::Header { name.to_ascii_lowercase() } else { name.to_string() };
    let mut pointer = format!("/{}", location.name());
    push_segment(&mut pointer, &name);
    Ok(Some(Param { name, location, required, style, explode, allow_empty, shape, schema, pointer }))
}

/// Query names to parameter indexes. Built from the spec once and only read per request (no
/// caller-chosen insertions, so no flooding concern): the fast hasher, not SipHash.
type NameMap = HashMap<String, usize, foldhash::fast::RandomState>;

/// How query names map to an operation's parameters.
#[derive(Default)]
pub(super) struct QueryPlan {
    exact: NameMap,
    deep: NameMap,
    spread: NameMap,
    free_form: Option<usize>,
}

impl QueryPlan {
    /// Builds the plan; an error names the conflicting parameter name.
    pub(super) fn new(params: &[Param]) -> Result<QueryPlan, String> {
        let mut plan = QueryPlan::default();
        let claim = |map: &mut NameMap, name: &str, index: usize| -> Result<(), String> {
            if map.insert(name.to_string(), index).is_some() {
                return Err(format!("query name {name:?} is claimed by two parameters"));
            }
            Ok(())
        };
        for (index, p) in params.iter().enumerate().filter(|(_, p)| p.location == In::Query) {
            if p.style == Style::DeepObject {
                claim(&mut plan.deep, &p.name, index)?;
            } else if p.spreads() {
                let Shape::Object { props } = &p.shape else { continue };
                if props.is_empty() && plan.free_form.replace(index).is_some() {
                    return Err("two free-form exploded object parameters cannot be told apart".into());
                }
                for (prop, _) in props {
                    claim(&mut plan.spread, prop, index)?;
                }
            } else {
                claim(&mut plan.exact, &p.name, index)?;
            }
        }
        for name in plan.spread.keys() {
            if plan.exact.contains_key(name) {
                return Err(format!(
                    "query name {name:?} is both a parameter and a property of an exploded object"
                ));
            }
        }
        Ok(plan)
    }
}

/// Decodes one percent-encoded component exactly once; `None` when the result is not UTF-8.
/// Borrows when there is nothing to decode (the common case: no allocation).
pub(super) fn decode(raw: &str, plus_is_space: bool) -> Option<Cow<'_, str>> {
    let plus = plus_is_space && raw.contains('+');
    if !plus && !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    if plus {
        let spaced = raw.replace('+', " ");
        return percent_decode_str(&spaced).decode_utf8().ok().map(|text| Cow::Owned(text.into_owned()));
    }
    percent_decode_str(raw).decode_utf8().ok()
}

/// A text that is a JSON number, as a number.
fn json_number(text: &str) -> Option<Number> {
    let first = text.bytes().next()?;
    if !(first == b'-' || first.is_ascii_digit()) || !text.bytes().all(|b| b"0123456789+-.eE".contains(&b)) {
        return None;
    }
    serde_json::from_str::<Number>(text).ok()
}

/// Turns a text into the JSON value the schema's types call for.
pub(super) fn coerce(text: &str, types: Types) -> Value {
    if (types.has(Types::INTEGER) || types.has(Types::NUMBER))
        && let Some(number) = json_number(text)
    {
        return Value::Number(number);
    }
    if types.has(Types::BOOLEAN) {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_string())
}

/// Parses a single-valued parameter text per its style and shape; the error is a keyword.
fn parse_value(p: &Param, text: &str) -> Result<Value, &'static str> {
    let trim = p.location == In::Header;
    let body = match p.style {
        Style::Label => text.strip_prefix('.').ok_or("style")?,
        Style::Matrix => return parse_matrix(p, text),
        _ => text,
    };
    match &p.shape {
        Shape::Scalar(types) => Ok(coerce(body, *types)),
        // Bounded by the server's request-line and header limits.
        Shape::Json => json::parse(body.as_bytes(), json::BOUNDED_BY_CALLER).map_err(|e| e.keyword()),
        Shape::Array(types) => {
            if body.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            let delimiter = if p.style == Style::Label && p.explode { '.' } else { p.style.delimiter() };
            Ok(Value::Array(
                body.split(delimiter)
                    .map(|item| coerce(if trim { item.trim() } else { item }, *types))
                    .collect(),
            ))
        }
        Shape::Object { .. } => {
            let delimiter = if p.style == Style::Label && p.explode { '.' } else { p.style.delimiter() };
            parse_object(p, body, delimiter, p.explode, trim)
        }
    }
}

/// `k1,v1,k2,v2` (not exploded) or `k1=v1,k2=v2` (exploded), split by `delimiter`.
fn parse_object(
    p: &Param,
    text: &str,
    delimiter: char,
    exploded: bool,
    trim: bool,
) -> Result<Value, &'static str> {
    let mut map = Map::new();
    if text.is_empty() {
        return Ok(Value::Object(map));
    }
    let mut insert = |key: &str, value: &str| -> Result<(), &'static str> {
        let (key, value) = if trim { (key.trim(), value.trim()) } else { (key, value) };
        if map.contains_key(key) {
            return Err("duplicate");
        }
        map.insert(key.to_string(), coerce(value, p.shape.prop_types(key)));
        Ok(())
    };
    if exploded {
        for entry in text.split(delimiter) {
            let (key, value) = entry.split_once('=').ok_or("style")?;
            insert(key, value)?;
        }
    } else {
        let parts: Vec<&str> = text.split(delimiter).collect();
        if !parts.len().is_multiple_of(2) {
            return Err("style");
        }
        for pair in parts.chunks(2) {
            if let [key, value] = pair {
                insert(key, value)?;
            }
        }
    }
    Ok(Value::Object(map))
}

/// Matrix style: `;id=5`, `;id=3,4,5`, `;id=3;id=4`, `;id=R,100,G,200`, `;R=100;G=200`.
fn parse_matrix(p: &Param, text: &str) -> Result<Value, &'static str> {
    let rest = text.strip_prefix(';').ok_or("style")?;
    let named = |entry: &str| -> Result<String, &'static str> {
        match entry.split_once('=') {
            Some((n, v)) if n == p.name => Ok(v.to_string()),
            None if entry == p.name => Ok(String::new()),
            _ => Err("style"),
        }
    };
    match &p.shape {
        Shape::Array(types) if p.explode => {
            let items =
                rest.split(';').map(|e| named(e).map(|v| coerce(&v, *types))).collect::<Result<_, _>>()?;
            Ok(Value::Array(items))
        }
        Shape::Object { .. } if p.explode => parse_object(p, rest, ';', true, false),
        Shape::Object { .. } => parse_object(p, &named(rest)?, ',', false, false),
        Shape::Array(types) => {
            let value = named(rest)?;
            if value.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            Ok(Value::Array(value.split(',').map(|v| coerce(v, *types)).collect()))
        }
        Shape::Scalar(types) => Ok(coerce(&named(rest)?, *types)),
        Shape::Json => json::parse(named(rest)?.as_bytes(), json::BOUNDED_BY_CALLER).map_err(|e| e.keyword()),
    }
}

fn check(p: &Param, value: &Value, prefix: &str, out: &mut Collector) {
    if let Some(compiled) = &p.schema {
        schema::collect(compiled, value, prefix, out);
    }
}

fn check_text(p: &Param, text: &str, out: &mut Collector) {
    match parse_value(p, text) {
        Ok(value) => check(p, &value, &p.pointer, out),
        Err(keyword) => out.push(p.pointer.clone(), keyword),
    }
}

/// Validates every parameter of an operation.
pub(super) fn validate(
    params: &[Param],
    plan: &QueryPlan,
    strict: bool,
    request: &ContractRequest<'_>,
    out: &mut Collector,
) {
    for p in params.iter().filter(|p| p.location == In::Path) {
        match request.path_params.iter().find(|(n, _)| *n == p.name) {
            None => out.push(p.pointer.clone(), "missing"),
            Some((_, raw)) => match decode(raw, false) {
                None => out.push(p.pointer.clone(), "encoding"),
                Some(text) => check_text(p, &text, out),
            },
        }
    }
    validate_query(params, plan, strict, request.query, out);
    for p in params.iter().filter(|p| p.location == In::Header) {
        validate_header(p, request, out);
    }
    if params.iter().any(|p| p.location == In::Cookie) {
        let cookies = parse_cookies(request);
        for p in params.iter().filter(|p| p.location == In::Cookie) {
            validate_cookie(p, &cookies, out);
        }
    }
}

/// Splits a query (or form body) into decoded pairs; pairs that do not decode are reported
/// and left out. Empty pieces (`a=1&&b=2`) are skipped, as form decoders do.
pub(super) fn pairs<'a>(
    raw: &'a str,
    prefix: &str,
    out: &mut Collector,
) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut result = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        if result.len() >= MAX_QUERY_PAIRS {
            out.push(prefix.to_string(), "limit");
            break;
        }
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let Some(name) = decode(name, true) else {
            out.push(prefix.to_string(), "encoding");
            continue;
        };
        let Some(value) = decode(value, true) else {
            let mut pointer = prefix.to_string();
            push_request_segment(&mut pointer, &name);
            out.push(pointer, "encoding");
            continue;
        };
        result.push((name, value));
    }
    result
}

/// `name[key]` -> `(name, Ok(key))`; nested brackets are not part of deepObject:
/// `(name, Err(()))`.
fn deep_key(name: &str) -> Option<(&str, Result<&str, ()>)> {
    let open = name.find('[')?;
    let inner = name.get(open + 1..)?.strip_suffix(']')?;
    let base = name.get(..open)?;
    if inner.contains('[') || inner.contains(']') {
        return Some((base, Err(())));
    }
    Some((base, Ok(inner)))
}

/// The entries of parameter `i` in a list sorted by parameter index.
fn run_of<T>(sorted: &[(usize, T)], i: usize) -> &[(usize, T)] {
    let start = sorted.partition_point(|(j, _)| *j < i);
    let end = sorted.partition_point(|(j, _)| *j <= i);
    sorted.get(start..end).unwrap_or_default()
}

fn validate_query(
    params: &[Param],
    plan: &QueryPlan,
    strict: bool,
    query: Option<&str>,
    out: &mut Collector,
) {
    let pairs = pairs(query.unwrap_or(""), "/query", out);
    // Values by parameter index, in arrival order. Sorted vectors rather than maps: most
    // queries have a handful of pairs, and this runs on every request.
    let mut exact: Vec<(usize, &str)> = Vec::new();
    let mut grouped: Vec<(usize, (&str, &str))> = Vec::new();
    for (name, value) in &pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        if let Some(&i) = plan.exact.get(name) {
            exact.push((i, value));
            continue;
        }
        if let Some((base, key)) = deep_key(name)
            && let Some(&i) = plan.deep.get(base)
        {
            match key {
                Ok(key) => grouped.push((i, (key, value))),
                Err(()) => {
                    out.push(params.get(i).map_or_else(|| "/query".into(), |p| p.pointer.clone()), "style")
                }
            }
            continue;
        }
        if let Some(&i) = plan.spread.get(name).or(plan.free_form.as_ref()) {
            grouped.push((i, (name, value)));
            continue;
        }
        if strict {
            let mut pointer = "/query".to_string();
            push_request_segment(&mut pointer, name);
            out.push(pointer, "unknown");
        }
    }
    // Stable sorts: each parameter's values stay in arrival order.
    exact.sort_by_key(|(i, _)| *i);
    grouped.sort_by_key(|(i, _)| *i);
    for (i, p) in params.iter().enumerate().filter(|(_, p)| p.location == In::Query) {
        if p.style == Style::DeepObject || p.spreads() {
            let entries = run_of(&grouped, i);
            if entries.is_empty() {
                if p.required {
                    out.push(p.pointer.clone(), "missing");
                }
                continue;
            }
            let mut map = Map::new();
            let deep = p.style == Style::DeepObject;
            for &(_, (key, value)) in entries {
                if map.contains_key(key) {
                    let mut pointer = if deep { p.pointer.clone() } else { "/query".into() };
                    push_request_segment(&mut pointer, key);
                    out.push(pointer, "duplicate");
                    continue;
                }
                map.insert(key.to_string(), coerce(value, p.shape.prop_types(key)));
            }
            check(p, &Value::Object(map), if deep { &p.pointer } else { "/query" }, out);
            continue;
        }
        let values = run_of(&exact, i);
        match values {
            [] => {
                if p.required {
                    out.push(p.pointer.clone(), "missing");
                }
            }
            _ if p.repeats() => {
                if values.iter().any(|(_, v)| v.is_empty()) && !p.allow_empty {
                    out.push(p.pointer.clone(), "empty");
                    continue;
                }
                let types = match p.shape {
                    Shape::Array(t) => t,
                    _ => Types::ALL,
                };
                let items = values.iter().map(|(_, v)| coerce(v, types)).collect();
                check(p, &Value::Array(items), &p.pointer, out);
            }
            [(_, value)] => {
                if value.is_empty() {
                    if !p.allow_empty {
                        out.push(p.pointer.clone(), "empty");
                    }
                    continue;
                }
                check_text(p, value, out);
            }
            _ => out.push(p.pointer.clone(), "duplicate"),
        }
    }
}

fn header_lines<'a>(request: &'a ContractRequest<'_>, name: &str) -> Vec<&'a [u8]> {
    (0..MAX_HEADER_LINES).map_while(|i| request.headers.nth(name, i)).collect()
}

fn validate_header(p: &Param, request: &ContractRequest<'_>, out: &mut Collector) {
    let lines = header_lines(request, &p.name);
    if lines.is_empty() {
        if p.required {
            out.push(p.pointer.clone(), "missing");
        }
        return;
    }
    if lines.len() > 1 && !matches!(p.shape, Shape::Array(_)) {
        out.push(p.pointer.clone(), "duplicate");
        return;
    }
    let mut texts = Vec::with_capacity(lines.len());
    for line in lines {
        match std::str::from_utf8(line) {
            Ok(text) => texts.push(text.trim()),
            Err(_) => {
                out.push(p.pointer.clone(), "encoding");
                return;
            }
        }
    }
    // Repeated lines of a list header are one list (RFC 9110 5.3).
    check_text(p, &texts.join(","), out);
}

/// All cookies of the request, in order, from every `Cookie` line (HTTP/2 splits them).
fn parse_cookies(request: &ContractRequest<'_>) -> Vec<(String, String)> {
    let mut cookies = Vec::new();
    for line in header_lines(request, "cookie") {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        for piece in text.split(';') {
            if cookies.len() >= MAX_COOKIES {
                return cookies;
            }
            let piece = piece.trim();
            let Some((name, value)) = piece.split_once('=') else { continue };
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            cookies.push((name.trim().to_string(), value.to_string()));
        }
    }
    cookies
}

fn validate_cookie(p: &Param, cookies: &[(String, String)], out: &mut Collector) {
    let values: Vec<&str> = cookies.iter().filter(|(n, _)| *n == p.name).map(|(_, v)| v.as_str()).collect();
    match values.as_slice() {
        [] => {
            if p.required {
                out.push(p.pointer.clone(), "missing");
            }
        }
        _ if p.repeats() => {
            let types = match p.shape {
                Shape::Array(t) => t,
                _ => Types::ALL,
            };
            let items = values.iter().map(|v| coerce(v, types)).collect();
            check(p, &Value::Array(items), &p.pointer, out);
        }
        [value] => check_text(p, value, out),
        _ => out.push(p.pointer.clone(), "duplicate"),
    }
}
