//! Response validation: the body against the schema declared for the status, and the
//! fields the schema never declares (a data-exposure signal, OWASP API3).

use serde_json::Value;

use super::error::ContractError;
use super::loader::{Loader, Loc};
use super::media::{MediaType, select};
use super::report::{Collector, ResponseReport, Withheld};
use super::schema::{self, Compiled, Direction, SCOPES_MARK, SchemaCompiler, View};
use crate::json::{self, push_request_segment};

/// Instance nodes one undeclared-field walk may visit.
const WALK_BUDGET: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKey {
    Exact(u16),
    /// `2XX`: the hundreds digit.
    Class(u16),
    Default,
}

struct ResponseEntry {
    /// Declared media types and their schemas.
    media: Vec<(MediaType<'static>, Media)>,
}

/// One declared media type's schema.
struct Media {
    compiled: Option<Compiled>,
    /// The schema names a property with `x-zt-scopes`: found once here, not by walking the
    /// whole schema on every response (issue 17: that walk showed in the profile of every
    /// `GET /orders` of the demo).
    guards_fields: bool,
}

/// An operation's declared responses.
pub(super) struct ResponseSpec {
    entries: Vec<(StatusKey, ResponseEntry)>,
    /// Some response schema names a property with `x-zt-scopes`.
    guards_fields: bool,
}

/// True when `value` (a converted schema) carries [`SCOPES_MARK`] anywhere.
fn mentions_scopes(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key(SCOPES_MARK) || map.values().any(mentions_scopes),
        Value::Array(items) => items.iter().any(mentions_scopes),
        _ => false,
    }
}

fn status_key(code: &str) -> Option<StatusKey> {
    if code == "default" {
        return Some(StatusKey::Default);
    }
    let bytes = code.as_bytes();
    if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
        return None;
    }
    let class = u16::from(bytes[0] - b'0');
    if bytes[1..].eq_ignore_ascii_case(b"XX") {
        return Some(StatusKey::Class(class));
    }
    code.parse::<u16>().ok().map(StatusKey::Exact)
}

impl ResponseSpec {
    /// No responses declared: nothing is checked.
    pub(super) fn none() -> Self {
        ResponseSpec { entries: Vec::new(), guards_fields: false }
    }

    /// Compiles a Responses Object.
    pub(super) fn compile(
        loader: &mut Loader,
        schemas: &mut SchemaCompiler,
        loc: &Loc,
        object: &Value,
    ) -> Result<ResponseSpec, ContractError> {
        let map = object.as_object().ok_or_else(|| loader.invalid(loc, "responses must be an object"))?;
        let mut entries = Vec::new();
        for (code, response) in map {
            if code.starts_with("x-") {
                continue;
            }
            let code_loc = loc.child(code);
            let key = status_key(code).ok_or_else(|| {
                loader.invalid(&code_loc, "response keys are status codes, 1XX..5XX or default")
            })?;
            if !response.is_object() {
                return Err(loader.invalid(&code_loc, "a response must be an object"));
            }
            let (resp_loc, resolved) = loader.deref(code_loc)?;
            let mut media = Vec::new();
            if let Some(content) = resolved.get("content") {
                let content_loc = resp_loc.child("content");
                let content = content
                    .as_object()
                    .ok_or_else(|| loader.invalid(&content_loc, "content must be an object"))?;
                for (name, entry) in content {
                    let entry_loc = content_loc.child(name);
                    let range = MediaType::parse(name)
                        .ok_or_else(|| loader.invalid(&entry_loc, format!("{name:?} is not a media type")))?
                        .into_owned();
                    let compiled = match entry.get("schema") {
                        Some(_) => {
                            Some(schemas.compile(loader, &entry_loc.child("schema"), Direction::Response)?)
                        }
                        None => None,
                    };
                    let guards_fields = compiled.as_ref().is_some_and(|c| mentions_scopes(&c.bundle));
                    media.push((range, Media { compiled, guards_fields }));
                }
            }
            entries.push((key, ResponseEntry { media }));
        }
        let guards_fields =
            entries.iter().flat_map(|(_, e)| e.media.iter()).any(|(_, media)| media.guards_fields);
        Ok(ResponseSpec { entries, guards_fields })
    }

    /// True when some response names a property that needs a scope (`x-zt-scopes`).
    pub(super) fn guards_fields(&self) -> bool {
        self.guards_fields
    }

    /// Removes the properties the caller may not see (`x-zt-scopes` it does not hold all
    /// of) from a JSON response body, wherever the schema for `status` puts them.
    pub(super) fn withhold(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        has_scope: &dyn Fn(&str) -> bool,
    ) -> Withheld {
        if !self.guards_fields || body.is_empty() {
            return Withheld::Nothing;
        }
        let Some(entry) = self.find(status) else { return Withheld::Nothing };
        let Some(actual) = content_type.and_then(MediaType::parse) else { return Withheld::Nothing };
        let Some(Media { compiled: Some(compiled), guards_fields }) = select(&entry.media, &actual) else {
            return Withheld::Nothing;
        };
        if !actual.is_json() || !guards_fields {
            return Withheld::Nothing;
        }
        // The guarded properties of a body that cannot be read cannot be found: fail closed.
        let Ok(mut value) = json::parse(body, json::BOUNDED_BY_CALLER) else { return Withheld::Unreadable };
        let view = View::new(&compiled.bundle);
        let mut fields = Vec::new();
        let mut pointer = "/body".to_string();
        withhold_in(view, &[view.root()], &mut value, &mut pointer, has_scope, &mut fields);
        if fields.is_empty() {
            return Withheld::Nothing;
        }
        match serde_json::to_vec(&value) {
            Ok(body) => Withheld::Removed { body, fields },
            Err(_) => Withheld::Unreadable,
        }
    }

    fn find(&self, status: u16) -> Option<&ResponseEntry> {
        let by = |key: StatusKey| self.entries.iter().find(|(k, _)| *k == key).map(|(_, e)| e);
        by(StatusKey::Exact(status))
            .or_else(|| by(StatusKey::Class(status / 100)))
            .or_else(|| by(StatusKey::Default))
    }

    /// Validates one response.
    pub(super) fn validate(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        max: usize,
    ) -> ResponseReport {
        let mut out = Collector::new(max);
        let mut report = ResponseReport::default();
        if self.entries.is_empty() {
            return report;
        }
        let Some(entry) = self.find(status) else {
            out.push("/status".into(), "undeclared");
            return out.into_report(report);
        };
        // Empty bodies are not judged: HEAD and 304 responses carry none by design.
        if body.is_empty() {
            return report;
        }
        if entry.media.is_empty() {
            out.push("/body".into(), "unexpected");
            return out.into_report(report);
        }
        let Some(text) = content_type else {
            out.push("/header/content-type".into(), "missing");
            return out.into_report(report);
        };
        let Some(actual) = MediaType::parse(text) else {
            out.push("/header/content-type".into(), "mediaType");
            return out.into_report(report);
        };
        let Some(Media { compiled, .. }) = select(&entry.media, &actual) else {
            out.push("/header/content-type".into(), "mediaType");
            return out.into_report(report);
        };
        if !actual.is_json() {
            return report;
        }
        // Bounded by the caller: the Guard validates at most `ResponseCheck::limit` bytes.
        let value = match json::parse(body, json::BOUNDED_BY_CALLER) {
            Ok(value) => value,
            Err(issue) => {
                out.push(format!("/body{}", issue.pointer), issue.keyword());
                return out.into_report(report);
            }
        };
        if let Some(compiled) = compiled {
            schema::collect(compiled, &value, "/body", &mut out);
            let view = View::new(&compiled.bundle);
            let mut walk = Walk { view, found: Vec::new(), max, budget: WALK_BUDGET, truncated: false };
            let mut pointer = "/body".to_string();
            walk.visit(&[view.root()], &value, &mut pointer);
            report.undeclared_fields = walk.found;
            report.truncated = walk.truncated;
        }
        out.into_report(report)
    }
}

/// True when one of `schemas` (or what it applies in place) requires a scope the caller
/// does not hold.
fn needs_other_scopes(view: View<'_>, schemas: &[&Value], has_scope: &dyn Fn(&str) -> bool) -> bool {
    schemas.iter().flat_map(|s| view.expand(s)).any(|s| {
        s.get(SCOPES_MARK)
            .and_then(Value::as_array)
            .is_some_and(|scopes| scopes.iter().any(|scope| !scope.as_str().is_some_and(has_scope)))
    })
}

/// Removes, in place, the properties of `instance` whose schemas need a scope the caller
/// lacks; records each removal's pointer once (array items as `*`: `/body/*/note`). The
/// body was bounded (and its nesting by the JSON reader), so the walk is too.
fn withhold_in<'a>(
    view: View<'a>,
    schemas: &[&'a Value],
    instance: &mut Value,
    pointer: &mut String,
    has_scope: &dyn Fn(&str) -> bool,
    fields: &mut Vec<String>,
) {
    match instance {
        Value::Object(map) => {
            let maps: Vec<&'a Value> = schemas.iter().flat_map(|s| view.open_maps(s)).collect();
            map.retain(|key, value| {
                let len = pointer.len();
                push_request_segment(pointer, key);
                let props: Vec<&'a Value> = schemas.iter().flat_map(|s| view.property(s, key)).collect();
                let applicable = if props.is_empty() { &maps } else { &props };
                let keep = !needs_other_scopes(view, applicable, has_scope);
                if keep {
                    withhold_in(view, applicable, value, pointer, has_scope, fields);
                } else if !fields.contains(pointer) {
                    fields.push(pointer.clone());
                }
                pointer.truncate(len);
                keep
            });
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let mut applicable: Vec<&'a Value> =
                    schemas.iter().flat_map(|s| view.prefix_item(s, i)).collect();
                if applicable.is_empty() {
                    applicable = schemas.iter().flat_map(|s| view.items(s)).collect();
                }
                let len = pointer.len();
                pointer.push_str("/*");
                withhold_in(view, &applicable, item, pointer, has_scope, fields);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

struct Walk<'a> {
    view: View<'a>,
    found: Vec<String>,
    max: usize,
    budget: usize,
    truncated: bool,
}

impl<'a> Walk<'a> {
    /// Visits `instance` with every schema that applies to it, recording property names
    /// that no schema names. Objects described by no property at all (free-form) are not
    /// judged; map-like schemas (`additionalProperties: {schema}`, `patternProperties`)
    /// declare every name.
    fn visit(&mut self, schemas: &[&'a Value], instance: &Value, pointer: &mut String) {
        if self.budget == 0 {
            self.truncated = true;
            return;
        }
        self.budget -= 1;
        match instance {
            Value::Object(map) => {
                let expanded: Vec<&'a Value> = schemas.iter().flat_map(|s| self.view.expand(s)).collect();
                let describes = expanded
                    .iter()
                    .any(|s| s.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty()));
                let maps: Vec<&'a Value> = schemas.iter().flat_map(|s| self.view.open_maps(s)).collect();
                if !describes && maps.is_empty() {
                    return;
                }
                for (key, value) in map {
                    let len = pointer.len();
                    push_request_segment(pointer, key);
                    let props: Vec<&'a Value> =
                        schemas.iter().flat_map(|s| self.view.property(s, key)).collect();
                    if !props.is_empty() {
                        self.visit(&props, value, pointer);
                    } else if !maps.is_empty() {
                        self.visit(&maps, value, pointer);
                    } else if self.found.len() < self.max {
                        self.found.push(pointer.clone());
                    } else {
                        self.truncated = true;
                    }
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mut applicable: Vec<&'a Value> =
                        schemas.iter().flat_map(|s| self.view.prefix_item(s, i)).collect();
                    if applicable.is_empty() {
                        applicable = schemas.iter().flat_map(|s| self.view.items(s)).collect();
                    }
                    if applicable.is_empty() {
                        return;
                    }
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    self.visit(&applicable, item, pointer);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
}
