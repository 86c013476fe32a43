//! `zt inventory-check SPEC INVENTORY.json`: the runtime inventory against the document.
//!
//! # Accepted inventory shape
//!
//! ```json
//! {"endpoints": [
//!   {"method": "GET", "route": "/orders/{id}", "path_shape": "/orders/{n}", "declared": true,
//!    "deprecated": false, "calls": 12, "first_seen": "2025-01-01T00:00:00Z",
//!    "last_seen": "2025-01-02T00:00:00Z", "sensitive": ["email", "payment_card"]}
//! ]}
//! ```
//!
//! - `method` (required) and at least one of `route` (the matched route template, or `null`)
//!   and `path_shape` (the normalised shape of an unmatched path: id-like segments as
//!   `{...}` placeholders).
//! - `calls` (default 0); `declared`, `deprecated`, `first_seen`, `last_seen` optional.
//! - `sensitive` (alias `sensitive_data`): data classes seen in responses: `email`, `phone`,
//!   `payment_card` (alias `card`), `iban`, `national_id` (alias `ssn`), `jwt`, `api_key`,
//!   `private_key`; other names are matched against property names as they are.
//! - The snapshot zt-core's observer serves (`GET /zt/inventory`, `InventorySnapshot`) is
//!   accepted as it is: its `route` holds the template or, for undeclared endpoints, the
//!   path shape, its `sensitive_data` the classes, and other fields (`status`,
//!   `generated_at`, `summary`, ...) are ignored. A bare array of endpoints is accepted too.
//!
//! An endpoint matches an operation with the same method whose template has the same
//! segments, where a `{...}` segment of the shape matches only a parameter segment of the
//! template and a template parameter matches any segment (`HEAD` is not implied by `GET`).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::lines::child;
use crate::lint::normalize;
use crate::report::{Finding, Level, Report, Rule};
use crate::spec::{Op, Spec};

/// One observed endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    /// The HTTP method.
    pub method: String,
    /// The matched route template (or the observer's shape of an undeclared path).
    #[serde(default)]
    pub route: Option<String>,
    /// The shape of an unmatched path.
    #[serde(default)]
    pub path_shape: Option<String>,
    /// The service declared the route (in code or policy).
    #[serde(default)]
    pub declared: Option<bool>,
    /// The service declared the route deprecated.
    #[serde(default)]
    pub deprecated: Option<bool>,
    /// Requests seen.
    #[serde(default)]
    pub calls: u64,
    /// First request, as exported.
    #[serde(default)]
    pub first_seen: Option<String>,
    /// Latest request, as exported.
    #[serde(default)]
    pub last_seen: Option<String>,
    /// Sensitive data classes seen in responses.
    #[serde(default, alias = "sensitive_data")]
    pub sensitive: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InventoryFile {
    Object { endpoints: Vec<Endpoint> },
    List(Vec<Endpoint>),
}

/// Parses an inventory export.
pub fn parse(text: &str) -> Result<Vec<Endpoint>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let file: InventoryFile = serde_json::from_value(value).map_err(|e| {
        format!("not an inventory (expected {{\"endpoints\": [{{\"method\": ..., \"route\" | \"path_shape\": ...}}]}}): {e}")
    })?;
    let endpoints = match file {
        InventoryFile::Object { endpoints } | InventoryFile::List(endpoints) => endpoints,
    };
    for (i, e) in endpoints.iter().enumerate() {
        if e.route.is_none() && e.path_shape.is_none() {
            return Err(format!("endpoints[{i}]: needs \"route\" or \"path_shape\""));
        }
    }
    Ok(endpoints)
}

macro_rules! rule {
    ($id:literal, $name:literal, $level:ident, $short:literal, $why:literal, $help:literal) => {
        Rule { id: $id, name: $name, level: Level::$level, short: $short, rationale: $why, help: $help }
    };
}

/// Every inventory rule.
pub static RULES: [Rule; 4] = [
    rule!(
        "ZI001",
        "shadow-endpoint",
        Error,
        "An endpoint seen at run time (or declared by the service) that the document does not declare.",
        "Undocumented endpoints escape review, contract enforcement and testing (OWASP API9).",
        "Declare it in the document, or remove it from the service."
    ),
    rule!(
        "ZI002",
        "zombie-endpoint",
        Warning,
        "A deprecated operation that is still called.",
        "Deprecated endpoints linger with old, unmaintained security (OWASP API9).",
        "Move the callers off it, then remove it."
    ),
    rule!(
        "ZI003",
        "unused-endpoint",
        Note,
        "A documented operation never seen in the inventory.",
        "Unused endpoints are attack surface without a purpose.",
        "Confirm it is needed; remove it otherwise (mind how long the inventory has been collecting)."
    ),
    rule!(
        "ZI004",
        "undeclared-sensitive-data",
        Error,
        "Sensitive data seen in responses of an endpoint whose response schemas declare no such property.",
        "Data the contract does not declare is leaking (excessive data exposure, OWASP API3).",
        "Stop returning it, or declare it (and review who may receive it)."
    ),
];

/// The rule catalogue as references.
pub fn catalogue() -> Vec<&'static Rule> {
    RULES.iter().collect()
}

fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

/// Property-name fragments (normalised) and formats that declare a data class.
fn hints(class: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match class {
        "email" => (&["email", "mail"], &["email", "idn-email"]),
        "phone" => (&["phone", "mobile", "msisdn", "telephone", "fax", "tel"], &[]),
        "payment_card" | "card" => (&["card", "pan", "ccnumber", "creditcard"], &[]),
        "iban" => (&["iban", "bankaccount", "accountnumber"], &[]),
        "national_id" | "ssn" => (&["ssn", "nationalid", "socialsecurity", "taxid", "tin", "nin"], &[]),
        "jwt" => (&["token", "jwt"], &[]),
        "api_key" => (&["apikey", "key", "secret", "token", "credential"], &[]),
        "private_key" => (&["privatekey", "key", "pem"], &[]),
        _ => (&[], &[]),
    }
}

/// Compares an inventory with a document.
pub fn check(spec: &Spec, inventory_file: &str, endpoints: &[Endpoint]) -> Report {
    let ops = spec.operations();
    let mut findings = Vec::new();
    let mut called = vec![0u64; ops.len()];
    let mut shadow = 0;
    let mut zombie = 0;
    let mut emit = |id: &'static str, pointer: &str, op: Option<String>, message: String| {
        let rule = rule(id);
        findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            level: rule.level,
            class: None,
            message,
            file: spec.file().to_string(),
            line: spec.line(pointer),
            pointer: Some(pointer.to_string()),
            operation: op,
        });
    };
    for e in endpoints {
        let path = e.route.as_deref().or(e.path_shape.as_deref()).unwrap_or_default();
        let method = e.method.to_ascii_uppercase();
        let label = format!("{method} {path}");
        match find(&ops, &method, path) {
            None => {
                shadow += 1;
                let why = if e.declared == Some(true) { "declared by the service but not" } else { "not" };
                let seen = match (&e.first_seen, &e.last_seen) {
                    (Some(f), Some(l)) => format!(", seen {f} .. {l}"),
                    (None, Some(l)) => format!(", last seen {l}"),
                    (Some(f), None) => format!(", first seen {f}"),
                    (None, None) => String::new(),
                };
                let message = format!("{label} ({} calls{seen}) is {why} in the document", e.calls);
                emit("ZI001", "/paths", Some(label.clone()), message);
                if !e.sensitive.is_empty() {
                    let message =
                        format!("{label}, undocumented, returned sensitive data: {}", e.sensitive.join(", "));
                    emit("ZI004", "/paths", Some(label), message);
                }
            }
            Some(i) => {
                let op = &ops[i];
                called[i] += e.calls;
                let op_label = op.label();
                if e.calls > 0 && (op.deprecated() || e.deprecated == Some(true)) {
                    zombie += 1;
                    emit(
                        "ZI002",
                        &op.pointer,
                        Some(op_label.clone()),
                        format!("deprecated {op_label} is still called ({} calls)", e.calls),
                    );
                }
                if !e.sensitive.is_empty() {
                    let declared = response_names(spec, op);
                    let missing: Vec<&str> = e
                        .sensitive
                        .iter()
                        .map(String::as_str)
                        .filter(|class| !declares(&declared, class))
                        .collect();
                    if !missing.is_empty() {
                        emit(
                            "ZI004",
                            &child(&op.pointer, "responses"),
                            Some(op_label.clone()),
                            format!(
                                "{op_label} returned {} data, which no response schema of the operation declares",
                                missing.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut unused = 0;
    for (op, calls) in ops.iter().zip(&called) {
        // A deprecated operation nobody calls is where deprecation should end: no finding.
        if *calls == 0 && !op.deprecated() {
            unused += 1;
            let label = op.label();
            emit(
                "ZI003",
                &op.pointer,
                Some(label.clone()),
                format!("{label} was never called in {inventory_file}"),
            );
        }
    }
    let mut report = Report::new("inventory-check", catalogue());
    report.files = vec![spec.file().to_string(), inventory_file.to_string()];
    report.findings = findings;
    report.facts.insert(
        "endpoints",
        serde_json::json!({
            "documented": ops.len(),
            "observed": endpoints.len(),
            "shadow": shadow,
            "zombie": zombie,
            "unused": unused,
        }),
    );
    report.sort();
    report
}

/// The operation an observed endpoint is, if any.
fn find(ops: &[Op<'_>], method: &str, path: &str) -> Option<usize> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(usize, usize)> = None;
    for (i, op) in ops.iter().enumerate() {
        if op.method != method {
            continue;
        }
        let template: Vec<&str> = op.template.split('/').filter(|s| !s.is_empty()).collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let mut matches = true;
        for (t, s) in template.iter().zip(&segments) {
            let t_param = t.contains('{');
            let s_param = s.starts_with('{') && s.ends_with('}');
            if t == s {
                literal += usize::from(!t_param);
            } else if !t_param || (s_param && !t.starts_with('{')) {
                matches = false;
                break;
            }
        }
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((i, literal));
        }
    }
    best.map(|(i, _)| i)
}

/// Normalised property names and formats of an operation's 2xx/default response schemas.
fn response_names(spec: &Spec, op: &Op<'_>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let Some(responses) = op.value.get("responses").and_then(Value::as_object) else { return names };
    let base = child(&op.pointer, "responses");
    for (code, response) in responses {
        if !(code.starts_with('2') || code == "default") {
            continue;
        }
        let (ptr, response) = spec.deref(child(&base, code), response);
        for (_, schema_ptr, schema) in spec.content_schemas(&ptr, response) {
            collect(spec, schema_ptr, schema, &mut names, &mut seen, 0);
        }
    }
    names
}

fn collect(
    spec: &Spec,
    pointer: String,
    schema: &Value,
    names: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    let (pointer, schema) = spec.deref(pointer, schema);
    if !seen.insert(pointer.clone()) {
        return;
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        names.insert(format!("format:{format}"));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            names.insert(normalize(name));
            collect(spec, child(&child(&pointer, "properties"), name), sub, names, seen, depth + 1);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = schema.get(key).filter(|v| v.is_object()) {
            collect(spec, child(&pointer, key), sub, names, seen, depth + 1);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in schema.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            collect(spec, format!("{pointer}/{key}/{i}"), sub, names, seen, depth + 1);
        }
    }
}

fn declares(names: &BTreeSet<String>, class: &str) -> bool {
    let (fragments, formats) = hints(class);
    let own = normalize(class);
    names.iter().any(|n| match n.strip_prefix("format:") {
        Some(format) => formats.contains(&format),
        None => n.contains(&own) || fragments.iter().any(|f| n.contains(f)),
    })
}
