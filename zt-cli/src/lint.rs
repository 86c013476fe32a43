//! `zt lint`: zero-trust rules over OpenAPI documents.
//!
//! Documents are read by zt-core's loader and compiled by its contract compiler (a document
//! the runtime would refuse is finding `ZT000`); the rules then walk the loaded document.
//! Schemas reached through a same-document `$ref` are checked once, at the component's own
//! location; references to other files are not followed (lint those files as well).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::config::LintConfig;
use crate::lines::child;
use crate::report::{Finding, Level, Report, Rule};
use crate::spec::{Op, Security, Spec, types_of};

macro_rules! rule {
    ($id:literal, $name:literal, $level:ident, $short:literal, $why:literal, $help:literal) => {
        Rule { id: $id, name: $name, level: Level::$level, short: $short, rationale: $why, help: $help }
    };
}

/// Every lint rule.
pub static RULES: [Rule; 16] = [
    rule!(
        "ZT000",
        "contract-load",
        Error,
        "The document cannot be loaded or compiled as a zt contract.",
        "zt refuses such a document at start-up, so it cannot be enforced as written.",
        "Fix the construct the message names (file and JSON pointer)."
    ),
    rule!(
        "ZT001",
        "missing-security",
        Error,
        "Operation without a security requirement that is not explicitly public.",
        "Zero trust means every operation states who may call it; an operation that says nothing is public by accident.",
        "Add `security` to the operation or the document, or mark a public operation with `security: []`."
    ),
    rule!(
        "ZT002",
        "oauth-scopes-missing",
        Warning,
        "OAuth2/OpenID Connect requirement without scopes.",
        "Any valid token of the issuer is then enough: least privilege needs a scope per capability.",
        "List the scopes the operation needs, e.g. `- oauth: [orders:read]`."
    ),
    rule!(
        "ZT003",
        "shared-read-write-scope",
        Warning,
        "The same scope guards read (GET/HEAD) and write (POST/PUT/PATCH/DELETE) operations.",
        "A token handed out to read data can then change it.",
        "Use distinct scopes for reads and writes (`orders:read`, `orders:write`)."
    ),
    rule!(
        "ZT004",
        "admin-without-dedicated-scope",
        Warning,
        "Administrative-looking operation (DELETE, or admin/internal/manage/debug in path or operationId) without a dedicated scope.",
        "Privileged operations reachable with an ordinary credential are the classic broken function-level authorization (OWASP API5).",
        "Require a scope used only by administrative operations (e.g. `orders:admin`)."
    ),
    rule!(
        "ZT005",
        "open-request-object",
        Warning,
        "Request object schema without `additionalProperties: false` or `unevaluatedProperties: false`.",
        "Undeclared properties invite mass assignment (OWASP API3). Not reported where zt's strict mode (`runtime-strict`, default on, or the operation's `x-zt-strict`) closes the object at run time: objects that declare properties and no `additionalProperties` of their own.",
        "Close the object with `additionalProperties: false`, or `unevaluatedProperties: false` on a composition (allOf/oneOf)."
    ),
    rule!(
        "ZT006",
        "unbounded-string",
        Warning,
        "Request string without `maxLength` (and without enum, const, a bounded format or an anchored bounded pattern).",
        "Unbounded input is a resource-consumption and injection surface (OWASP API4).",
        "Add `maxLength`, an `enum`, or a format such as `date`, `date-time` or `uuid`."
    ),
    rule!(
        "ZT007",
        "unbounded-array",
        Warning,
        "Request array without `maxItems`.",
        "Unbounded arrays let one request carry unbounded work (OWASP API4).",
        "Add `maxItems`."
    ),
    rule!(
        "ZT008",
        "unbounded-number",
        Warning,
        "Request number or integer without both a lower and an upper bound.",
        "Negative quantities, huge page sizes and overflowing ids are classic abuse.",
        "Add `minimum` and `maximum` (or the exclusive forms), or an `enum`."
    ),
    rule!(
        "ZT009",
        "unconstrained-path-parameter",
        Warning,
        "Path parameter without `pattern`, `format`, `enum` or a numeric/boolean type.",
        "Identifiers are the target of object-level authorization attacks (OWASP API1); a free-form one also reaches the handler with any text.",
        "Constrain the parameter, e.g. `pattern: '^[0-9]{1,12}$'` or `format: uuid`."
    ),
    rule!(
        "ZT010",
        "missing-401-response",
        Note,
        "Secured operation without a documented 401 response.",
        "Clients and reviewers should see that the operation refuses missing or invalid credentials.",
        "Document `401` (or `4XX`), e.g. with an RFC 9457 problem schema."
    ),
    rule!(
        "ZT011",
        "missing-403-response",
        Note,
        "Secured operation without a documented 403 response.",
        "Authorization failures (insufficient scope, wrong zone) are part of the contract.",
        "Document `403` (or `4XX`)."
    ),
    rule!(
        "ZT012",
        "missing-429-response",
        Note,
        "Secured operation without a documented 429 response.",
        "Rate limiting is part of the contract; clients need to know to back off (Retry-After).",
        "Document `429` (or `4XX`)."
    ),
    rule!(
        "ZT013",
        "insecure-server",
        Error,
        "Server URL over plain http (other than localhost).",
        "Credentials and data would travel in clear text.",
        "Use https:// server URLs."
    ),
    rule!(
        "ZT014",
        "sensitive-response-property",
        Warning,
        "Response schema with a sensitive-looking property (password, secret, token, api key, card number, CVV, SSN...).",
        "Secrets and regulated data in responses are excessive data exposure (OWASP API3).",
        "Remove the property from responses, mark it `writeOnly: true`, or return a masked form."
    ),
    rule!(
        "ZT015",
        "write-without-request-body",
        Note,
        "POST/PUT/PATCH operation without a declared request body.",
        "zt rejects bodies an operation does not declare; a write method without one is either a mistake in the document or an undocumented input channel.",
        "Declare the `requestBody` with its schema (or document why the operation takes none)."
    ),
];

/// The rule catalogue as references.
pub fn catalogue() -> Vec<&'static Rule> {
    RULES.iter().collect()
}

fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

const MAX_DEPTH: usize = 64;
const ADMIN_WORDS: [&str; 4] = ["admin", "internal", "manage", "debug"];
const BOUNDED_FORMATS: [&str; 11] = [
    "date",
    "date-time",
    "time",
    "full-date",
    "uuid",
    "ipv4",
    "ipv6",
    "hostname",
    "int32",
    "int64",
    "duration",
];

struct Linter<'a> {
    spec: &'a Spec,
    config: &'a LintConfig,
    findings: Vec<Finding>,
    emitted: HashSet<(&'static str, String, String)>,
    /// Schemas checked, with `part` and whether strict mode applied.
    request_seen: HashSet<(String, bool, bool)>,
    response_seen: HashSet<String>,
    /// Whether zt's strict mode applies to the operation being checked (ZT005).
    strict: bool,
}

/// Lints one loaded document.
pub fn lint(spec: &Spec, config: &LintConfig) -> Vec<Finding> {
    let mut linter = Linter {
        spec,
        config,
        findings: Vec::new(),
        emitted: HashSet::new(),
        request_seen: HashSet::new(),
        response_seen: HashSet::new(),
        strict: config.runtime_strict(),
    };
    linter.run();
    linter.findings
}

/// Lints documents into a report (files that cannot be read are errors of the caller).
pub fn report(specs: &[Spec], config: &LintConfig) -> Report {
    let mut report =
        Report::new("lint", catalogue().into_iter().filter(|r| config.level(r).is_some()).collect());
    let mut operations = 0;
    for spec in specs {
        report.files.push(spec.file().to_string());
        operations += spec.operations().len();
        report.findings.extend(lint(spec, config));
    }
    report.facts.insert("operations", operations.into());
    report.sort();
    report
}

impl Linter<'_> {
    fn emit(&mut self, id: &'static str, pointer: &str, op: Option<&Op<'_>>, message: String) {
        let rule = rule(id);
        let Some(level) = self.config.level(rule) else { return };
        if let Some(op) = op
            && ignored(op.value, id)
        {
            return;
        }
        if !self.emitted.insert((id, pointer.to_string(), message.clone())) {
            return;
        }
        self.findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            level,
            class: None,
            message,
            file: self.spec.file().to_string(),
            line: self.spec.line(pointer),
            pointer: Some(pointer.to_string()),
            operation: op.map(Op::label),
        });
    }

    fn run(&mut self) {
        if let Some(error) = &self.spec.compile_error {
            let same_file = error.file().is_none_or(|f| f == self.spec.file());
            let pointer = error.pointer().filter(|_| same_file).unwrap_or("");
            self.emit("ZT000", pointer, None, error.to_string());
        }
        let ops = self.spec.operations();
        for op in &ops {
            self.operation(op);
        }
        self.scope_sharing(&ops);
        self.admin(&ops);
        for (pointer, url) in self.spec.servers() {
            if insecure_url(url) {
                self.emit("ZT013", &pointer, None, format!("server {url} is plain http"));
            }
        }
    }

    fn operation(&mut self, op: &Op<'_>) {
        let label = op.label();
        // The operation's `x-zt-strict` overrides the runtime's contract setting, as in zt.
        self.strict =
            op.value.get("x-zt-strict").and_then(Value::as_bool).unwrap_or(self.config.runtime_strict());
        match &op.security {
            Security::Undeclared => self.emit(
                "ZT001",
                &op.pointer,
                Some(op),
                format!("{label} has no security requirement and is not marked public (`security: []`)"),
            ),
            Security::Public { .. } => {}
            Security::Required { alternatives, .. } => {
                for alt in alternatives {
                    for scheme in &alt.schemes {
                        if matches!(scheme.kind.as_str(), "oauth2" | "openIdConnect")
                            && scheme.scopes.is_empty()
                        {
                            let message = format!(
                                "{label}: {} scheme {:?} is required without any scope",
                                scheme.kind, scheme.name
                            );
                            self.emit("ZT002", &scheme.pointer, Some(op), message);
                        }
                    }
                }
                let responses = op.value.get("responses").and_then(Value::as_object);
                let has = |code: &str| {
                    responses.is_some_and(|r| {
                        r.contains_key(code) || r.contains_key("4XX") || r.contains_key("4xx")
                    })
                };
                let at = child(&op.pointer, "responses");
                for (code, id) in [("401", "ZT010"), ("403", "ZT011"), ("429", "ZT012")] {
                    if !has(code) {
                        self.emit(
                            id,
                            &at,
                            Some(op),
                            format!("{label} is secured but documents no {code} response"),
                        );
                    }
                }
            }
        }
        if matches!(op.method.as_str(), "POST" | "PUT" | "PATCH") && op.value.get("requestBody").is_none() {
            self.emit("ZT015", &op.pointer, Some(op), format!("{label} declares no request body"));
        }
        for (pointer, param) in &op.params {
            self.parameter(op, pointer, param);
        }
        if let Some(body) = op.value.get("requestBody") {
            let (body_ptr, body) = self.spec.deref(child(&op.pointer, "requestBody"), body);
            for (_, schema_ptr, schema) in self.spec.content_schemas(&body_ptr, body) {
                self.request_schema(schema_ptr, schema, false, false, 0);
            }
        }
        if let Some(responses) = op.value.get("responses").and_then(Value::as_object) {
            let responses_ptr = child(&op.pointer, "responses");
            for (code, response) in responses {
                let (response_ptr, response) = self.spec.deref(child(&responses_ptr, code), response);
                for (_, schema_ptr, schema) in self.spec.content_schemas(&response_ptr, response) {
                    self.response_schema(schema_ptr, schema, 0);
                }
            }
        }
    }

    fn parameter(&mut self, op: &Op<'_>, pointer: &str, param: &Value) {
        let location = param.get("in").and_then(Value::as_str).unwrap_or_default();
        let name = param.get("name").and_then(Value::as_str).unwrap_or_default();
        let schema = match param.get("schema") {
            Some(s) => Some((child(pointer, "schema"), s)),
            None => self.spec.content_schemas(pointer, param).into_iter().next().map(|(_, p, s)| (p, s)),
        };
        let Some((schema_ptr, schema)) = schema else { return };
        let is_path = location == "path";
        if is_path {
            let (_, resolved) = self.spec.deref(schema_ptr.clone(), schema);
            let constrained = ["pattern", "format", "enum", "const"]
                .iter()
                .any(|k| resolved.get(k).is_some())
                || types_of(resolved).iter().any(|t| matches!(t.as_str(), "integer" | "number" | "boolean"));
            if !constrained && !self.spec.is_foreign_ref(resolved) {
                self.emit(
                    "ZT009",
                    pointer,
                    Some(op),
                    format!("{}: path parameter {name:?} accepts any text", op.label()),
                );
            }
        }
        self.request_schema(schema_ptr, schema, false, is_path, 0);
    }

    /// True when zt's strict mode closes this request object at run time: it applies, the
    /// schema sets no `additionalProperties` of its own (explicit `true` or a schema stays
    /// open), and it declares properties itself or through what it composes (free-form
    /// objects stay open).
    fn strict_closes(&self, schema: &Value) -> bool {
        self.strict && schema.get("additionalProperties").is_none() && self.declares_properties(schema, 0)
    }

    fn declares_properties(&self, schema: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let (_, schema) = self.spec.deref(String::new(), schema);
        let non_empty = |key: &str| schema.get(key).and_then(Value::as_object).is_some_and(|m| !m.is_empty());
        if non_empty("properties") || non_empty("patternProperties") {
            return true;
        }
        ["allOf", "anyOf", "oneOf"].iter().any(|keyword| {
            schema
                .get(*keyword)
                .and_then(Value::as_array)
                .is_some_and(|parts| parts.iter().any(|part| self.declares_properties(part, depth + 1)))
        })
    }

    /// Checks a schema that describes request input. `part`: a branch of a composition
    /// (its closedness is the composing schema's business). `path_param`: the root schema of
    /// a path parameter (ZT009 covers its strings).
    fn request_schema(
        &mut self,
        pointer: String,
        schema: &Value,
        part: bool,
        path_param: bool,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let (pointer, schema) = self.spec.deref(pointer, schema);
        if !schema.is_object() || self.spec.is_foreign_ref(schema) {
            return;
        }
        if !self.request_seen.insert((pointer.clone(), part, self.strict)) {
            return;
        }
        if schema.get("readOnly").and_then(Value::as_bool) == Some(true) {
            return;
        }
        let types = types_of(schema);
        let enumerated = schema.get("enum").is_some() || schema.get("const").is_some();
        if !enumerated {
            if types.iter().any(|t| t == "string") && !path_param && !bounded_string(schema) {
                self.emit("ZT006", &pointer, None, "string without maxLength".into());
            }
            if types.iter().any(|t| t == "integer" || t == "number") {
                let low = schema.get("minimum").is_some() || schema.get("exclusiveMinimum").is_some();
                let high = schema.get("maximum").is_some() || schema.get("exclusiveMaximum").is_some();
                if !(low && high) {
                    let missing = match (low, high) {
                        (false, false) => "minimum and maximum",
                        (false, true) => "minimum",
                        _ => "maximum",
                    };
                    self.emit("ZT008", &pointer, None, format!("number without {missing}"));
                }
            }
        }
        if types.iter().any(|t| t == "array") {
            if schema.get("maxItems").is_none() {
                self.emit("ZT007", &pointer, None, "array without maxItems".into());
            }
            if let Some(items) = schema.get("items") {
                self.request_schema(child(&pointer, "items"), items, false, false, depth + 1);
            }
            for (i, item) in
                schema.get("prefixItems").and_then(Value::as_array).into_iter().flatten().enumerate()
            {
                self.request_schema(format!("{pointer}/prefixItems/{i}"), item, false, false, depth + 1);
            }
        }
        let object_like = types.iter().any(|t| t == "object");
        let strict_closes = self.strict_closes(schema);
        if object_like && !part && !closed(schema) && !strict_closes {
            self.emit(
                "ZT005",
                &pointer,
                None,
                "request object accepts undeclared properties (no additionalProperties: false)".into(),
            );
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let props_ptr = child(&pointer, "properties");
            for (name, sub) in props {
                self.request_schema(child(&props_ptr, name), sub, false, false, depth + 1);
            }
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            self.request_schema(child(&pointer, "additionalProperties"), extra, false, false, depth + 1);
        }
        let mut composed_object = false;
        let mut alternatives_closed = true;
        let mut has_alternatives = false;
        for keyword in ["allOf", "anyOf", "oneOf"] {
            let Some(parts) = schema.get(keyword).and_then(Value::as_array) else { continue };
            for (i, sub) in parts.iter().enumerate() {
                let sub_ptr = format!("{pointer}/{keyword}/{i}");
                let (_, resolved) = self.spec.deref(sub_ptr.clone(), sub);
                if types_of(resolved).iter().any(|t| t == "object") {
                    composed_object = true;
                }
                if keyword != "allOf" {
                    has_alternatives = true;
                    alternatives_closed &=
                        closed(resolved) || !types_of(resolved).iter().any(|t| t == "object");
                }
                self.request_schema(sub_ptr, sub, true, false, depth + 1);
            }
        }
        let closed_by_alternatives = has_alternatives && alternatives_closed && schema.get("allOf").is_none();
        if composed_object
            && !object_like
            && !part
            && !closed(schema)
            && !closed_by_alternatives
            && !strict_closes
        {
            self.emit(
                "ZT005",
                &pointer,
                None,
                "composed request object accepts undeclared properties (no unevaluatedProperties: false)"
                    .into(),
            );
        }
    }

    /// Looks for sensitive-looking properties in a response schema.
    fn response_schema(&mut self, pointer: String, schema: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let (pointer, schema) = self.spec.deref(pointer, schema);
        if !schema.is_object() || !self.response_seen.insert(pointer.clone()) {
            return;
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let props_ptr = child(&pointer, "properties");
            for (name, sub) in props {
                let sub_ptr = child(&props_ptr, name);
                let (_, resolved) = self.spec.deref(sub_ptr.clone(), sub);
                let write_only = resolved.get("writeOnly").and_then(Value::as_bool) == Some(true)
                    || sub.get("writeOnly").and_then(Value::as_bool) == Some(true);
                let password_format = resolved.get("format").and_then(Value::as_str) == Some("password");
                if !write_only && (sensitive_name(name) || password_format) {
                    self.emit(
                        "ZT014",
                        &sub_ptr,
                        None,
                        format!("response property {name:?} looks sensitive (secret, credential or regulated data)"),
                    );
                }
                self.response_schema(sub_ptr, sub, depth + 1);
            }
        }
        for keyword in ["items", "additionalProperties"] {
            if let Some(sub) = schema.get(keyword).filter(|v| v.is_object()) {
                self.response_schema(child(&pointer, keyword), sub, depth + 1);
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            for (i, sub) in schema.get(keyword).and_then(Value::as_array).into_iter().flatten().enumerate() {
                self.response_schema(format!("{pointer}/{keyword}/{i}"), sub, depth + 1);
            }
        }
    }

    /// ZT003: scopes shared by reads and writes.
    fn scope_sharing(&mut self, ops: &[Op<'_>]) {
        let mut readers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for op in ops.iter().filter(|o| o.is_read()) {
            for scope in scopes_of(op) {
                readers.entry(scope).or_default().push(op.label());
            }
        }
        for op in ops.iter().filter(|o| o.is_write()) {
            let Security::Required { pointer, .. } = &op.security else { continue };
            for scope in scopes_of(op) {
                if let Some(reads) = readers.get(scope) {
                    let shown: Vec<&str> = reads.iter().take(3).map(String::as_str).collect();
                    let more = if reads.len() > 3 {
                        format!(" and {} more", reads.len() - 3)
                    } else {
                        String::new()
                    };
                    let message = format!(
                        "{}: scope {scope:?} also guards reads ({}{more})",
                        op.label(),
                        shown.join(", ")
                    );
                    let at =
                        if pointer.starts_with(&op.pointer) { pointer.clone() } else { op.pointer.clone() };
                    self.emit("ZT003", &at, Some(op), message);
                }
            }
        }
    }

    /// ZT004: administrative operations need a scope no ordinary operation uses.
    fn admin(&mut self, ops: &[Op<'_>]) {
        let is_admin = |op: &Op<'_>| {
            op.method == "DELETE" || {
                let text =
                    format!("{} {}", op.template, op.operation_id().unwrap_or_default()).to_ascii_lowercase();
                ADMIN_WORDS.iter().any(|w| text.contains(w))
            }
        };
        let ordinary: BTreeSet<&str> = ops.iter().filter(|o| !is_admin(o)).flat_map(scopes_of).collect();
        for op in ops.iter().filter(|o| is_admin(o)) {
            let problem = match &op.security {
                Security::Undeclared => None, // ZT001 already says it
                Security::Public { .. } => Some("is public".to_string()),
                Security::Required { alternatives, .. } => {
                    let weak = alternatives.iter().find(|alt| !alt.scopes().any(|s| !ordinary.contains(s)));
                    weak.map(|alt| {
                        let scopes: Vec<&str> = alt.scopes().collect();
                        if scopes.is_empty() {
                            "requires no scope".to_string()
                        } else {
                            format!(
                                "is reachable with scopes also used by ordinary operations ({})",
                                scopes.join(", ")
                            )
                        }
                    })
                }
            };
            if let Some(problem) = problem {
                let message = format!("administrative-looking operation {} {problem}", op.label());
                self.emit("ZT004", &op.pointer, Some(op), message);
            }
        }
    }
}

/// `x-zt-lint-ignore: [ZT010, missing-403-response]` on an operation.
fn ignored(op: &Value, id: &str) -> bool {
    let name = rule(id).name;
    op.get("x-zt-lint-ignore")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().filter_map(Value::as_str).any(|s| s.eq_ignore_ascii_case(id) || s == name))
}

fn scopes_of<'a>(op: &'a Op<'_>) -> Vec<&'a str> {
    match &op.security {
        Security::Required { alternatives, .. } => {
            let mut out: Vec<&str> = alternatives.iter().flat_map(|a| a.scopes()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
        _ => Vec::new(),
    }
}

fn closed(schema: &Value) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
        || schema.get("unevaluatedProperties") == Some(&Value::Bool(false))
}

fn bounded_string(schema: &Value) -> bool {
    schema.get("maxLength").is_some()
        || schema.get("format").and_then(Value::as_str).is_some_and(|f| BOUNDED_FORMATS.contains(&f))
        || schema.get("pattern").and_then(Value::as_str).is_some_and(bounded_pattern)
}

/// An anchored pattern without unbounded quantifiers (`*`, `+`, `{n,}`) bounds the length.
pub fn bounded_pattern(pattern: &str) -> bool {
    if !pattern.starts_with('^') || !pattern.ends_with('$') || pattern.ends_with("\\$") {
        return false;
    }
    let bytes = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' | b'+' if !in_class => return false,
            b'{' if !in_class => {
                let rest = &pattern[i + 1..];
                if let Some(end) = rest.find('}')
                    && rest[..end].ends_with(',')
                {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

/// Lower case without `_`, `-`, `.` and spaces.
pub fn normalize(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, '_' | '-' | '.' | ' ')).flat_map(char::to_lowercase).collect()
}

/// Property names that suggest secrets, credentials or regulated data.
pub fn sensitive_name(name: &str) -> bool {
    const CONTAINS: [&str; 12] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "apikey",
        "privatekey",
        "cardnumber",
        "creditcard",
        "socialsecurity",
        "cvv",
        "securitycode",
        "pincode",
    ];
    const EXACT: [&str; 12] = [
        "ssn",
        "cvc",
        "pan",
        "pin",
        "card",
        "token",
        "jwt",
        "taxid",
        "nationalid",
        "sessionid",
        "iban",
        "otp",
    ];
    const HARMLESS_TOKENS: [&str; 7] =
        ["page", "next", "prev", "continuation", "cursor", "sync", "pagination"];
    let n = normalize(name);
    if CONTAINS.iter().any(|c| n.contains(c)) || EXACT.contains(&n.as_str()) {
        return true;
    }
    n.ends_with("token") && !HARMLESS_TOKENS.iter().any(|h| n.starts_with(h)) && !n.ends_with("tokens")
}

/// `http://` to a host other than loopback.
pub fn insecure_url(url: &str) -> bool {
    let Some(rest) = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &url[7..]) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default().to_string()
    };
    let host = host.to_ascii_lowercase();
    !(host == "localhost" || host.ends_with(".localhost") || host.starts_with("127.") || host == "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(bounded_pattern("^[0-9]{1,12}$"));
        assert!(bounded_pattern("^YK[0-9a-fA-F]{32}$"));
        assert!(!bounded_pattern("^[a-z]+$"));
        assert!(!bounded_pattern("^[a-z]{2,}$"));
        assert!(!bounded_pattern("[a-z]{2}"));
        assert!(bounded_pattern("^[+*]{2}$"));
    }

    #[test]
    fn names() {
        assert!(sensitive_name("password"));
        assert!(sensitive_name("client_secret"));
        assert!(sensitive_name("access_token"));
        assert!(sensitive_name("API-Key"));
        assert!(!sensitive_name("next_page_token"));
        assert!(!sensitive_name("page_token"));
        assert!(!sensitive_name("name"));
        assert!(!sensitive_name("span"));
    }

    #[test]
    fn urls() {
        assert!(insecure_url("http://api.example.com/v1"));
        assert!(insecure_url("HTTP://{host}/v1"));
        assert!(!insecure_url("https://api.example.com"));
        assert!(!insecure_url("http://localhost:8080"));
        assert!(!insecure_url("http://127.0.0.1/x"));
        assert!(!insecure_url("http://[::1]:80/"));
        assert!(!insecure_url("/relative"));
    }
}
