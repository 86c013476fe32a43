//! An OpenAPI document loaded through zt-core, with the views the commands share:
//! operations (path-level parameters merged, `$ref`s followed), their effective security,
//! and pointer -> line mapping.

use std::path::Path;

use serde_json::Value;
use zt_core::contract::{Contract, ContractError, ContractOptions, SourceDocument, load_document};

use crate::lines::{LineIndex, child};

/// HTTP methods of a path item, in the contract's order.
pub const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Reference chains longer than this are not followed.
const MAX_REF_HOPS: usize = 32;

/// A loaded document.
pub struct Spec {
    doc: SourceDocument,
    lines: LineIndex,
    /// Why zt-core's contract compiler refuses the document, if it does.
    pub compile_error: Option<ContractError>,
}

/// One operation of a document.
pub struct Op<'a> {
    /// Upper-case method.
    pub method: String,
    /// The path template as written.
    pub template: String,
    /// The JSON pointer of the operation object.
    pub pointer: String,
    /// The operation object.
    pub value: &'a Value,
    /// Parameters (path-level ones merged, operation-level ones win): pointer and object,
    /// references followed.
    pub params: Vec<(String, &'a Value)>,
    /// The effective security.
    pub security: Security,
}

impl Op<'_> {
    /// `GET /orders/{id}`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The `operationId`, if any.
    pub fn operation_id(&self) -> Option<&str> {
        self.value.get("operationId").and_then(Value::as_str)
    }

    /// `deprecated: true`.
    pub fn deprecated(&self) -> bool {
        self.value.get("deprecated").and_then(Value::as_bool).unwrap_or(false)
    }

    /// A read method (GET, HEAD).
    pub fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// A write method (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// The security that applies to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// No `security` on the operation or the document.
    Undeclared,
    /// `security: []` or an empty requirement object.
    Public {
        /// Where it is declared.
        pointer: String,
    },
    /// One or more requirement objects (OR).
    Required {
        /// Where it is declared (the operation's `security`, else `/security`).
        pointer: String,
        /// The alternatives.
        alternatives: Vec<Alternative>,
    },
}

/// One requirement object: every scheme is needed (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The pointer of the requirement object.
    pub pointer: String,
    /// The schemes.
    pub schemes: Vec<SchemeUse>,
}

impl Alternative {
    /// Every scope named by the alternative.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.schemes.iter().flat_map(|s| s.scopes.iter().map(String::as_str))
    }
}

/// A scheme named in a requirement object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeUse {
    /// The scheme name.
    pub name: String,
    /// Its `type` (`oauth2`, `http`, ...; empty when the scheme is not defined).
    pub kind: String,
    /// The scopes (or roles) listed.
    pub scopes: Vec<String>,
    /// The pointer of the scopes array.
    pub pointer: String,
}

impl Spec {
    /// Loads a document with zt-core's loader and compiles it with zt-core's contract
    /// compiler (the compile error, if any, is kept: linting goes on without it).
    pub fn load(path: &Path) -> Result<Spec, ContractError> {
        let doc = load_document(path)?;
        let json = doc.value().is_object() && doc.text().trim_start().starts_with('{');
        let lines = LineIndex::new(doc.text(), json);
        let compile_error = Contract::from_file(path, ContractOptions::default()).err();
        Ok(Spec { doc, lines, compile_error })
    }

    /// The file name as given.
    pub fn file(&self) -> &str {
        self.doc.file()
    }

    /// The document.
    pub fn root(&self) -> &Value {
        self.doc.value()
    }

    /// The line of a pointer (or its nearest ancestor).
    pub fn line(&self, pointer: &str) -> Option<usize> {
        self.lines.line_of(pointer)
    }

    /// Follows `$ref`s from `(pointer, value)` to the first non-reference (same-document
    /// references only; others are left as they are).
    pub fn deref<'a>(&'a self, pointer: String, value: &'a Value) -> (String, &'a Value) {
        let mut current = (pointer, value);
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = current.1.get("$ref").and_then(Value::as_str) else {
                return current;
            };
            match self.doc.resolve(reference) {
                Some(next) => current = next,
                None => return current,
            }
        }
        current
    }

    /// True when `value` is a reference this tool cannot follow (another file, a URL).
    pub fn is_foreign_ref(&self, value: &Value) -> bool {
        value.get("$ref").and_then(Value::as_str).is_some_and(|r| self.doc.resolve(r).is_none())
    }

    /// Every operation, in document order of paths, then method order.
    pub fn operations(&self) -> Vec<Op<'_>> {
        let mut out = Vec::new();
        let Some(paths) = self.root().get("paths").and_then(Value::as_object) else {
            return out;
        };
        for (template, item) in paths {
            if template.starts_with("x-") {
                continue;
            }
            let (item_ptr, item) = self.deref(child("/paths", template), item);
            let shared = self.param_list(&child(&item_ptr, "parameters"), item.get("parameters"));
            for method in METHODS {
                let Some(value) = item.get(method).filter(|v| v.is_object()) else { continue };
                let pointer = child(&item_ptr, method);
                let own = self.param_list(&child(&pointer, "parameters"), value.get("parameters"));
                let mut params: Vec<(String, &Value)> = shared
                    .iter()
                    .filter(|(_, s)| !own.iter().any(|(_, o)| same_param(s, o)))
                    .cloned()
                    .collect();
                params.extend(own);
                let security = self.security_of(&pointer, value);
                out.push(Op {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    pointer,
                    value,
                    params,
                    security,
                });
            }
        }
        out
    }

    fn param_list<'a>(&'a self, pointer: &str, value: Option<&'a Value>) -> Vec<(String, &'a Value)> {
        let Some(items) = value.and_then(Value::as_array) else { return Vec::new() };
        items
            .iter()
            .enumerate()
            .map(|(i, p)| self.deref(format!("{pointer}/{i}"), p))
            .filter(|(_, p)| p.is_object() && !self.is_foreign_ref(p))
            .collect()
    }

    /// The security that applies to the operation at `pointer`.
    pub fn security_of(&self, pointer: &str, op: &Value) -> Security {
        let (at, value) = match (op.get("security"), self.root().get("security")) {
            (Some(v), _) => (child(pointer, "security"), v),
            (None, Some(v)) => ("/security".to_string(), v),
            (None, None) => return Security::Undeclared,
        };
        let Some(items) = value.as_array() else { return Security::Undeclared };
        if items.is_empty() {
            return Security::Public { pointer: at };
        }
        let mut alternatives = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let alt_ptr = format!("{at}/{i}");
            let Some(schemes) = item.as_object() else { continue };
            if schemes.is_empty() {
                return Security::Public { pointer: alt_ptr };
            }
            let schemes = schemes
                .iter()
                .map(|(name, scopes)| SchemeUse {
                    name: name.clone(),
                    kind: self.scheme_kind(name),
                    scopes: scopes
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default(),
                    pointer: child(&alt_ptr, name),
                })
                .collect();
            alternatives.push(Alternative { pointer: alt_ptr, schemes });
        }
        Security::Required { pointer: at, alternatives }
    }

    /// The `type` of a security scheme (empty when undefined).
    pub fn scheme_kind(&self, name: &str) -> String {
        let Some(scheme) = self.root().pointer("/components/securitySchemes").and_then(|s| s.get(name))
        else {
            return String::new();
        };
        let (_, scheme) = self.deref(String::new(), scheme);
        scheme.get("type").and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// Every `(pointer, url)` of `servers` (document, path items, operations).
    pub fn servers(&self) -> Vec<(String, &str)> {
        fn add<'v>(pointer: &str, value: Option<&'v Value>, out: &mut Vec<(String, &'v str)>) {
            for (i, server) in value.and_then(Value::as_array).into_iter().flatten().enumerate() {
                if let Some(url) = server.get("url").and_then(Value::as_str) {
                    out.push((format!("{pointer}/servers/{i}/url"), url));
                }
            }
        }
        let mut out = Vec::new();
        add("", self.root().get("servers"), &mut out);
        if let Some(paths) = self.root().get("paths").and_then(Value::as_object) {
            for (template, item) in paths {
                let item_ptr = child("/paths", template);
                add(&item_ptr, item.get("servers"), &mut out);
                for method in METHODS {
                    if let Some(op) = item.get(method) {
                        add(&child(&item_ptr, method), op.get("servers"), &mut out);
                    }
                }
            }
        }
        out
    }

    /// `(pointer, schema)` of every media type under a `content` map at `pointer`.
    pub fn content_schemas<'a>(
        &'a self,
        pointer: &str,
        holder: &'a Value,
    ) -> Vec<(String, String, &'a Value)> {
        let mut out = Vec::new();
        if let Some(content) = holder.get("content").and_then(Value::as_object) {
            let content_ptr = child(pointer, "content");
            for (media, entry) in content {
                if let Some(schema) = entry.get("schema") {
                    out.push((media.clone(), child(&child(&content_ptr, media), "schema"), schema));
                }
            }
        }
        out
    }
}

fn same_param(a: &Value, b: &Value) -> bool {
    param_key(a) == param_key(b)
}

/// `(in, name)` of a parameter; header names compare case-insensitively.
pub fn param_key(p: &Value) -> (String, String) {
    let location = p.get("in").and_then(Value::as_str).unwrap_or_default().to_string();
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    let name = if location == "header" { name.to_ascii_lowercase() } else { name.to_string() };
    (location, name)
}

/// The JSON types a schema admits (`type` as string or array, `null` left out), or those
/// its keywords imply when `type` is absent.
pub fn types_of(schema: &Value) -> Vec<String> {
    let mut out: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    out.retain(|t| t != "null");
    if schema.get("type").is_none() {
        if schema.get("properties").is_some() || schema.get("additionalProperties").is_some() {
            out.push("object".into());
        }
        if schema.get("items").is_some() || schema.get("prefixItems").is_some() {
            out.push("array".into());
        }
    }
    out
}

/// The schema admits `null` (`nullable: true` in 3.0, `null` in the type array in 3.1).
pub fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool).unwrap_or(false)
        || schema.get("type").and_then(Value::as_array).is_some_and(|a| a.iter().any(|t| t == "null"))
}
