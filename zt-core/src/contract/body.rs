//! Request bodies: media-type negotiation, JSON and form parsing, schema validation.
//!
//! - `Content-Type` is compared by type/subtype, case-insensitively; parameters are ignored
//!   except `charset`, which must be UTF-8 (or absent) for JSON and form bodies. A declared
//!   range (`application/*`, `*/*`) matches; the most specific declaration wins.
//! - `application/json` and every `+json` type (`application/problem+json`) are parsed as JSON
//!   (once, duplicate keys refused, depth bounded) and validated.
//! - `application/x-www-form-urlencoded` bodies become an object (values typed by the
//!   property schemas, arrays as repeated fields or per the `encoding` style, object
//!   properties as JSON text, the OpenAPI default) and are validated like JSON.
//! - Any other declared media type (`application/octet-stream`, `text/plain`, `multipart/*`)
//!   is accepted as it is: its presence and type are checked, its content is not.

use serde_json::{Map, Value};

use super::error::ContractError;
use super::loader::{Loader, Loc};
use super::media::{MediaType, select};
use super::params::{self, coerce};
use super::report::Collector;
use super::schema::{self, Compiled, Direction, SchemaCompiler, Types, View};
use crate::json::{self, push_request_segment};

/// How one form field's text becomes JSON.
enum FieldKind {
    Value(Types),
    /// `None`: one field per item (form, explode); `Some(c)`: one field, items split by `c`.
    List(Types, Option<char>),
    Json,
    Deep(Vec<(String, Types)>),
}

struct FormField {
    name: String,
    kind: FieldKind,
}

/// A declared request-body media type.
pub(super) struct MediaEntry {
    pub(super) schema: Option<Compiled>,
    form: Vec<FormField>,
}

/// A declared request body.
pub(super) struct BodySpec {
    pub(super) required: bool,
    pub(super) media: Vec<(MediaType<'static>, MediaEntry)>,
}

/// Why a request's `Content-Type` was refused.
pub(super) enum Refusal {
    /// 415: absent, malformed, undeclared, or not UTF-8 for JSON/forms; the keyword says which.
    Unsupported(&'static str),
    /// 400: sent more than once.
    Repeated,
}

impl BodySpec {
    /// Compiles a Request Body Object (already dereferenced).
    pub(super) fn compile(
        loader: &mut Loader,
        schemas: &mut SchemaCompiler,
        loc: &Loc,
        object: &Value,
        strict: bool,
    ) -> Result<BodySpec, ContractError> {
        let required = match object.get("required") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(loader.invalid(&loc.child("required"), "required must be a boolean")),
        };
        let content_loc = loc.child("content");
        let content = object
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| loader.invalid(&content_loc, "a request body needs a content map"))?;
        let mut media = Vec::new();
        for (name, entry) in content {
            let entry_loc = content_loc.child(name);
            let range = MediaType::parse(name)
                .ok_or_else(|| loader.invalid(&entry_loc, format!("{name:?} is not a media type")))?
                .into_owned();
            let schema = match entry.get("schema") {
                Some(_) => Some(schemas.compile(
                    loader,
                    &entry_loc.child("schema"),
                    Direction::Request { strict },
                )?),
                None => None,
            };
            let form = match &schema {
                Some(compiled) => form_fields(loader, &entry_loc, entry, compiled)?,
                None => Vec::new(),
            };
            media.push((range, MediaEntry { schema, form }));
        }
        Ok(BodySpec { required, media })
    }

    /// Picks the declared entry for the request's `Content-Type`.
    pub(super) fn negotiate<'t>(
        &self,
        content_type: crate::request::HeaderValue<'t>,
    ) -> Result<(&MediaEntry, MediaType<'t>), Refusal> {
        use crate::request::HeaderValue;
        let text = match content_type {
            HeaderValue::Absent => return Err(Refusal::Unsupported("missing")),
            HeaderValue::Repeated => return Err(Refusal::Repeated),
            HeaderValue::One(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| Refusal::Unsupported("mediaType"))?
            }
        };
        let actual = MediaType::parse(text).ok_or(Refusal::Unsupported("mediaType"))?;
        let entry = select(&self.media, &actual).ok_or(Refusal::Unsupported("mediaType"))?;
        if (actual.is_json() || actual.is_form()) && !actual.utf8() {
            return Err(Refusal::Unsupported("charset"));
        }
        Ok((entry, actual))
    }
}

/// Builds the form-field table from the body schema's properties and the `encoding` map.
fn form_fields(
    loader: &Loader,
    entry_loc: &Loc,
    entry: &Value,
    compiled: &Compiled,
) -> Result<Vec<FormField>, ContractError> {
    let view = View::new(&compiled.bundle);
    let root = view.root();
    let names = view.property_names(root);
    let encoding_loc = entry_loc.child("encoding");
    let encoding = entry.get("encoding").and_then(Value::as_object);
    if let Some(encoding) = encoding {
        for name in encoding.keys() {
            if !names.contains(&name.as_str()) {
                return Err(loader.invalid(
                    &encoding_loc.child(name),
                    "encoding names a property the schema does not declare",
                ));
            }
        }
    }
    let mut fields = Vec::new();
    for name in names {
        let schemas = view.property(root, name);
        let types = view.types_of(&schemas);
        let enc = encoding.and_then(|e| e.get(name));
        let enc_loc = encoding_loc.child(name);
        let content_type = enc.and_then(|e| e.get("contentType")).and_then(Value::as_str);
        let style = match enc.and_then(|e| e.get("style")) {
            None => None,
            Some(Value::String(s))
                if matches!(s.as_str(), "form" | "spaceDelimited" | "pipeDelimited" | "deepObject") =>
            {
                Some(s.as_str())
            }
            Some(_) => {
                return Err(loader.unsupported(
                    &enc_loc.child("style"),
                    "form fields take form, spaceDelimited, pipeDelimited or deepObject",
                ));
            }
        };
        let explode = match enc.and_then(|e| e.get("explode")) {
            None => style.is_none_or(|s| s == "form" || s == "deepObject"),
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(loader.invalid(&enc_loc.child("explode"), "explode must be a boolean")),
        };
        let is_array = types != Types::ALL && types.has(Types::ARRAY) && !types.has(Types::OBJECT);
        let is_object = types != Types::ALL && types.has(Types::OBJECT) && !types.has(Types::ARRAY);
        let kind = if content_type.and_then(MediaType::parse).is_some_and(|m| m.is_json()) {
            FieldKind::Json
        } else if style == Some("deepObject") {
            if !is_object {
                return Err(
                    loader.unsupported(&enc_loc.child("style"), "deepObject is defined only for objects")
                );
            }
            let props = schemas
                .iter()
                .flat_map(|s| view.property_names(s))
                .map(|n| {
                    let declared: Vec<&Value> = schemas.iter().flat_map(|s| view.property(s, n)).collect();
                    (n.to_string(), view.types_of(&declared))
                })
                .collect();
            FieldKind::Deep(props)
        } else if is_array {
            let items: Vec<&Value> = schemas.iter().flat_map(|s| view.items(s)).collect();
            let delimiter = match (explode, style) {
                (true, _) => None,
                (false, Some("spaceDelimited")) => Some(' '),
                (false, Some("pipeDelimited")) => Some('|'),
                (false, _) => Some(','),
            };
            FieldKind::List(view.types_of(&items), delimiter)
        } else if is_object {
            // OpenAPI: the default contentType of an object property is application/json.
            FieldKind::Json
        } else {
            FieldKind::Value(types)
        };
        fields.push(FormField { name: name.to_string(), kind });
    }
    Ok(fields)
}

fn field_pointer(name: &str) -> String {
    let mut pointer = "/body".to_string();
    push_request_segment(&mut pointer, name);
    pointer
}

/// Turns a form body into an object; problems with single fields are recorded.
fn form_object(fields: &[FormField], text: &str, limit: usize, out: &mut Collector) -> Value {
    let pairs = params::pairs(text, "/body", out);
    let mut map = Map::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let deep = name.find('[').and_then(|open| {
            let inner = name[open + 1..].strip_suffix(']')?;
            Some((&name[..open], inner))
        });
        if let Some((base, key)) = deep
            && let Some(field) =
                fields.iter().find(|f| f.name == base && matches!(f.kind, FieldKind::Deep(_)))
        {
            let FieldKind::Deep(props) = &field.kind else { continue };
            let entry = map.entry(base.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                if key.contains('[') || key.contains(']') {
                    out.push(field_pointer(base), "style");
                } else if inner.contains_key(key) {
                    let mut pointer = field_pointer(base);
                    push_request_segment(&mut pointer, key);
                    out.push(pointer, "duplicate");
                } else {
                    let types = props.iter().find(|(n, _)| n == key).map_or(Types::ALL, |(_, t)| *t);
                    inner.insert(key.to_string(), coerce(value, types));
                }
            }
            continue;
        }
        let repeated = seen.contains(&name.as_ref());
        if !repeated {
            seen.push(name);
        }
        match fields.iter().find(|f| f.name == *name).map(|f| &f.kind) {
            Some(FieldKind::List(types, None)) => {
                let entry = map.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.push(coerce(value, *types));
                }
            }
            _ if repeated => out.push(field_pointer(name), "duplicate"),
            Some(FieldKind::List(types, Some(delimiter))) => {
                let items = if value.is_empty() {
                    Vec::new()
                } else {
                    value.split(*delimiter).map(|v| coerce(v, *types)).collect()
                };
                map.insert(name.to_string(), Value::Array(items));
            }
            Some(FieldKind::Json) => match json::parse(value.as_bytes(), limit) {
                Ok(parsed) => {
                    map.insert(name.to_string(), parsed);
                }
                Err(issue) => out.push(format!("{}{}", field_pointer(name), issue.pointer), issue.keyword()),
            },
            Some(FieldKind::Value(types)) => {
                map.insert(name.to_string(), coerce(value, *types));
            }
            // A deepObject field sent without brackets, or an undeclared field: kept as text
            // so the (closed) schema judges it.
            Some(FieldKind::Deep(_)) | None => {
                map.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }
    Value::Object(map)
}

/// Validates a body already matched to `entry`. `limit` is the operation's body limit:
/// the Guard refuses longer bodies while reading them, and a direct caller that did not
/// gets a `size` violation rather than a parse of any length.
pub(super) fn validate(
    entry: &MediaEntry,
    actual: &MediaType<'_>,
    bytes: &[u8],
    limit: usize,
    out: &mut Collector,
) {
    if actual.is_json() {
        match json::parse(bytes, limit) {
            Ok(value) => {
                if let Some(compiled) = &entry.schema {
                    schema::collect(compiled, &value, "/body", out);
                }
            }
            Err(issue) => out.push(format!("/body{}", issue.pointer), issue.keyword()),
        }
    } else if actual.is_form() {
        let Ok(text) = std::str::from_utf8(bytes) else {
            out.push("/body".into(), "encoding");
            return;
        };
        let value = form_object(&entry.form, text, limit, out);
        if let Some(compiled) = &entry.schema {
            schema::collect(compiled, &value, "/body", out);
        }
    }
}
