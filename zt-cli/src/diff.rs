//! `zt diff OLD NEW`: what changed between two versions of a document, classified as
//! security-relevant (the API accepts more, or asks less of callers), breaking (existing
//! clients may fail) or benign.
//!
//! Operations are matched by method and path template with parameter names erased
//! (`/orders/{id}` = `/orders/{orderId}`). Request schemas that accept more input are
//! security-relevant; request schemas that accept less are breaking. Response schemas that
//! may now carry other values or miss fields are breaking. Schemas are compared keyword by
//! keyword through properties, items and compositions (same-document `$ref`s followed, each
//! pair of locations once).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::lines::child;
use crate::lint::insecure_url;
use crate::report::{Finding, Level, Report, Rule};
use crate::spec::{Op, Security, Spec, nullable, param_key, types_of};

/// How a change is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Class {
    /// The API accepts more, or asks less of its callers.
    Security,
    /// Existing clients may fail.
    Breaking,
    /// Neither.
    Benign,
}

impl Class {
    /// `security`, `breaking` or `benign`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Security => "security",
            Class::Breaking => "breaking",
            Class::Benign => "benign",
        }
    }

    fn level(self) -> Level {
        match self {
            Class::Security => Level::Error,
            Class::Breaking => Level::Warning,
            Class::Benign => Level::Note,
        }
    }
}

macro_rules! rule {
    ($id:literal, $name:literal, $level:ident, $short:literal, $why:literal, $help:literal) => {
        Rule { id: $id, name: $name, level: Level::$level, short: $short, rationale: $why, help: $help }
    };
}

/// Every change kind.
pub static RULES: [Rule; 11] = [
    rule!(
        "ZD001",
        "operation-removed",
        Warning,
        "An operation was removed.",
        "Clients calling it will get 404/405.",
        "Deprecate first, remove after clients have moved."
    ),
    rule!(
        "ZD002",
        "operation-added",
        Note,
        "An operation was added (security-relevant when it is public or declares no security).",
        "New operations are new attack surface.",
        "Review its security requirement and input constraints."
    ),
    rule!(
        "ZD003",
        "security-weakened",
        Error,
        "Security weakened: requirement dropped, operation made public, scope removed, weaker alternative added, trust zone removed, or plain-http server added.",
        "Callers need less to reach the operation than before.",
        "Confirm the change is intended and reviewed; restore the requirement otherwise."
    ),
    rule!(
        "ZD004",
        "security-tightened",
        Warning,
        "Security tightened: requirement added or scope added.",
        "Existing clients' tokens may no longer suffice.",
        "Coordinate the new scopes with client owners."
    ),
    rule!(
        "ZD005",
        "request-schema-loosened",
        Error,
        "A request schema accepts more: constraint removed or relaxed, enum widened, type widened, required removed, object opened, pattern or format removed, strict mode disabled.",
        "Input validation is a security control; loosening it widens what reaches the handler.",
        "Confirm the handler copes with the wider input; restore the constraint otherwise."
    ),
    rule!(
        "ZD006",
        "request-schema-tightened",
        Warning,
        "A request schema accepts less: constraint added or tightened, enum or type narrowed, required added, object closed, property removed.",
        "Requests valid before are now rejected.",
        "Version the API or coordinate with clients."
    ),
    rule!(
        "ZD007",
        "required-input-added",
        Warning,
        "A required parameter or request body was added, or an input became required.",
        "Requests valid before now miss an input.",
        "Make the new input optional with a default, or version the API."
    ),
    rule!(
        "ZD008",
        "input-removed",
        Warning,
        "A parameter, request body or request media type was removed.",
        "zt rejects unknown parameters and bodies in strict mode: clients still sending them fail.",
        "Keep accepting the input until clients have moved."
    ),
    rule!(
        "ZD009",
        "response-field-removed",
        Warning,
        "A response property was removed.",
        "Clients reading it break.",
        "Deprecate the field first."
    ),
    rule!(
        "ZD010",
        "response-changed",
        Warning,
        "A response may now carry other values: type widened or changed, enum widened, field no longer required, success response removed.",
        "Clients parsing the old shape break.",
        "Version the response or keep the old shape."
    ),
    rule!(
        "ZD011",
        "benign-change",
        Note,
        "A change that neither weakens security nor breaks clients (optional input added, response field added, deprecation...).",
        "Listed for completeness.",
        "Nothing to do."
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

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Dir {
    Request,
    Response,
}

/// Which side of a change a finding points at.
#[derive(Clone, Copy)]
enum Side {
    Old,
    New,
}

struct Differ<'a> {
    old: &'a Spec,
    new: &'a Spec,
    findings: Vec<Finding>,
    seen: HashSet<(String, String, Dir)>,
}

/// Compares two documents.
pub fn diff(old: &Spec, new: &Spec) -> Report {
    let mut differ = Differ { old, new, findings: Vec::new(), seen: HashSet::new() };
    differ.run();
    let mut report = Report::new("diff", catalogue());
    report.files = vec![old.file().to_string(), new.file().to_string()];
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    for class in [Class::Security, Class::Breaking, Class::Benign] {
        classes.insert(
            class.as_str(),
            differ.findings.iter().filter(|f| f.class == Some(class.as_str())).count(),
        );
    }
    report.facts.insert("changes", serde_json::to_value(classes).unwrap_or_default());
    report.findings = differ.findings;
    report.sort();
    report
}

/// `/orders/{}`: the template with parameter names erased.
pub fn shape(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

impl<'a> Differ<'a> {
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        id: &'static str,
        class: Class,
        side: Side,
        pointer: &str,
        op: Option<&str>,
        message: String,
    ) {
        let spec = match side {
            Side::Old => self.old,
            Side::New => self.new,
        };
        let rule = rule(id);
        self.findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            level: class.level(),
            class: Some(class.as_str()),
            message,
            file: spec.file().to_string(),
            line: spec.line(pointer),
            pointer: Some(pointer.to_string()),
            operation: op.map(str::to_string),
        });
    }

    fn run(&mut self) {
        let old_ops = self.old.operations();
        let new_ops = self.new.operations();
        let key = |op: &Op<'_>| (op.method.clone(), shape(&op.template));
        let old_map: BTreeMap<_, &Op<'_>> = old_ops.iter().map(|o| (key(o), o)).collect();
        let new_map: BTreeMap<_, &Op<'_>> = new_ops.iter().map(|o| (key(o), o)).collect();
        for (k, old) in &old_map {
            if !new_map.contains_key(k) {
                let label = old.label();
                self.change(
                    "ZD001",
                    Class::Breaking,
                    Side::Old,
                    &old.pointer,
                    Some(&label),
                    format!("{label} was removed"),
                );
            }
        }
        for (k, new) in &new_map {
            let label = new.label();
            match old_map.get(k) {
                None => {
                    let (class, how) = match &new.security {
                        Security::Undeclared => (Class::Security, " without any security requirement"),
                        Security::Public { .. } => (Class::Security, " as a public operation"),
                        Security::Required { .. } => (Class::Benign, ""),
                    };
                    self.change(
                        "ZD002",
                        class,
                        Side::New,
                        &new.pointer,
                        Some(&label),
                        format!("{label} was added{how}"),
                    );
                }
                Some(old) => self.operation(old, new),
            }
        }
        let old_insecure: BTreeSet<&str> =
            self.old.servers().into_iter().map(|(_, u)| u).filter(|u| insecure_url(u)).collect();
        for (pointer, url) in self.new.servers() {
            if insecure_url(url) && !old_insecure.contains(url) {
                self.change(
                    "ZD003",
                    Class::Security,
                    Side::New,
                    &pointer,
                    None,
                    format!("plain-http server {url} was added"),
                );
            }
        }
    }

    fn operation(&mut self, old: &Op<'a>, new: &Op<'a>) {
        let label = new.label();
        let op = Some(label.as_str());
        self.security(old, new, &label);
        let zone = |o: &Op<'_>| o.value.get("x-zt-zone").and_then(Value::as_str).map(str::to_string);
        match (zone(old), zone(new)) {
            (Some(a), None) => self.change(
                "ZD003",
                Class::Security,
                Side::New,
                &new.pointer,
                op,
                format!("{label}: trust zone {a:?} was removed"),
            ),
            (Some(a), Some(b)) if a != b => self.change(
                "ZD003",
                Class::Security,
                Side::New,
                &new.pointer,
                op,
                format!("{label}: trust zone changed from {a:?} to {b:?}"),
            ),
            _ => {}
        }
        let strict = |o: &Op<'_>| o.value.get("x-zt-strict").and_then(Value::as_bool).unwrap_or(true);
        if strict(old) && !strict(new) {
            self.change(
                "ZD005",
                Class::Security,
                Side::New,
                &new.pointer,
                op,
                format!("{label}: strict mode was disabled (x-zt-strict: false)"),
            );
        }
        if !old.deprecated() && new.deprecated() {
            self.change(
                "ZD011",
                Class::Benign,
                Side::New,
                &new.pointer,
                op,
                format!("{label} was deprecated"),
            );
        }
        self.parameters(old, new, &label);
        self.request_body(old, new, &label);
        self.responses(old, new, &label);
    }

    fn security(&mut self, old: &Op<'a>, new: &Op<'a>, label: &str) {
        let op = Some(label);
        let at = match &new.security {
            Security::Public { pointer } | Security::Required { pointer, .. } => pointer.clone(),
            Security::Undeclared => new.pointer.clone(),
        };
        match (&old.security, &new.security) {
            (Security::Required { .. }, Security::Undeclared) => self.change(
                "ZD003",
                Class::Security,
                Side::New,
                &at,
                op,
                format!("{label}: the security requirement was dropped"),
            ),
            (Security::Required { .. }, Security::Public { .. }) => {
                self.change("ZD003", Class::Security, Side::New, &at, op, format!("{label} was made public"))
            }
            (Security::Undeclared, Security::Public { .. }) => self.change(
                "ZD011",
                Class::Benign,
                Side::New,
                &at,
                op,
                format!("{label} is now explicitly public"),
            ),
            (Security::Public { .. } | Security::Undeclared, Security::Required { .. }) => self.change(
                "ZD004",
                Class::Breaking,
                Side::New,
                &at,
                op,
                format!("{label} now requires credentials"),
            ),
            (
                Security::Required { alternatives: before, .. },
                Security::Required { alternatives: after, .. },
            ) => {
                let tokens = |alt: &crate::spec::Alternative| -> BTreeSet<String> {
                    let mut set = BTreeSet::new();
                    for s in &alt.schemes {
                        set.insert(format!("{}:{}", s.kind, s.name));
                        for scope in &s.scopes {
                            set.insert(format!("{}:{}#{scope}", s.kind, s.name));
                        }
                    }
                    set
                };
                let before: Vec<BTreeSet<String>> = before.iter().map(tokens).collect();
                let after: Vec<BTreeSet<String>> = after.iter().map(tokens).collect();
                for n in &after {
                    if !before.iter().any(|o| o.is_subset(n)) {
                        let missing = before
                            .iter()
                            .map(|o| o.difference(n).cloned().collect::<Vec<_>>())
                            .min_by_key(Vec::len)
                            .unwrap_or_default();
                        self.change(
                            "ZD003",
                            Class::Security,
                            Side::New,
                            &at,
                            op,
                            format!(
                                "{label}: security weakened: an alternative no longer needs {}",
                                readable(&missing)
                            ),
                        );
                    }
                }
                for o in &before {
                    if !after.iter().any(|n| n.is_subset(o)) {
                        let added = after
                            .iter()
                            .map(|n| n.difference(o).cloned().collect::<Vec<_>>())
                            .min_by_key(Vec::len)
                            .unwrap_or_default();
                        self.change(
                            "ZD004",
                            Class::Breaking,
                            Side::New,
                            &at,
                            op,
                            format!("{label}: callers now also need {}", readable(&added)),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn parameters(&mut self, old: &Op<'a>, new: &Op<'a>, label: &str) {
        let op = Some(label);
        let required = |p: &Value| p.get("required").and_then(Value::as_bool).unwrap_or(false);
        // Path parameters are matched by position: renaming `{id}` to `{orderId}` is no change.
        let index = |o: &Op<'a>| -> BTreeMap<(String, String), (String, &'a Value)> {
            let positions = template_params(&o.template);
            o.params
                .iter()
                .map(|(ptr, p)| {
                    let (location, name) = param_key(p);
                    let key = match positions.iter().position(|n| *n == name) {
                        Some(i) if location == "path" => (location, format!("#{}", i + 1)),
                        _ => (location, name),
                    };
                    (key, (ptr.clone(), *p))
                })
                .collect()
        };
        let before = index(old);
        let after = index(new);
        for ((location, key), (ptr, p)) in &before {
            let name = display_name(p, key);
            if !after.contains_key(&(location.clone(), key.clone())) {
                self.change(
                    "ZD008",
                    Class::Breaking,
                    Side::Old,
                    ptr,
                    op,
                    format!("{label}: {location} parameter {name:?} was removed"),
                );
            }
        }
        for ((location, key), (ptr, p)) in &after {
            let name = display_name(p, key);
            match before.get(&(location.clone(), key.clone())) {
                None if required(p) => self.change(
                    "ZD007",
                    Class::Breaking,
                    Side::New,
                    ptr,
                    op,
                    format!("{label}: required {location} parameter {name:?} was added"),
                ),
                None => self.change(
                    "ZD011",
                    Class::Benign,
                    Side::New,
                    ptr,
                    op,
                    format!("{label}: optional {location} parameter {name:?} was added"),
                ),
                Some((old_ptr, old_p)) => {
                    if !required(old_p) && required(p) {
                        self.change(
                            "ZD007",
                            Class::Breaking,
                            Side::New,
                            ptr,
                            op,
                            format!("{label}: {location} parameter {name:?} became required"),
                        );
                    }
                    if required(old_p) && !required(p) {
                        self.change(
                            "ZD011",
                            Class::Benign,
                            Side::New,
                            ptr,
                            op,
                            format!("{label}: {location} parameter {name:?} became optional"),
                        );
                    }
                    let what = format!("{label}: {location} parameter {name:?}");
                    if let (Some(a), Some(b)) = (param_schema(old_p, old_ptr), param_schema(p, ptr)) {
                        self.schema(a, b, Dir::Request, &what, label, 0);
                    }
                }
            }
        }
    }

    fn request_body(&mut self, old: &Op<'a>, new: &Op<'a>, label: &str) {
        let op = Some(label);
        let body = |spec: &'a Spec, o: &Op<'a>| {
            o.value.get("requestBody").map(|b| spec.deref(child(&o.pointer, "requestBody"), b))
        };
        let required = |b: &Value| b.get("required").and_then(Value::as_bool).unwrap_or(false);
        match (body(self.old, old), body(self.new, new)) {
            (None, Some((ptr, b))) => {
                let (id, class, what) = if required(b) {
                    ("ZD007", Class::Breaking, "a required request body was added")
                } else {
                    ("ZD011", Class::Benign, "an optional request body was added")
                };
                self.change(id, class, Side::New, &ptr, op, format!("{label}: {what}"));
            }
            (Some((ptr, _)), None) => self.change(
                "ZD008",
                Class::Breaking,
                Side::Old,
                &ptr,
                op,
                format!("{label}: the request body was removed"),
            ),
            (Some((old_ptr, a)), Some((new_ptr, b))) => {
                if !required(a) && required(b) {
                    self.change(
                        "ZD007",
                        Class::Breaking,
                        Side::New,
                        &new_ptr,
                        op,
                        format!("{label}: the request body became required"),
                    );
                }
                let before = self.old.content_schemas(&old_ptr, a);
                let after = self.new.content_schemas(&new_ptr, b);
                for (media, ptr, _) in &before {
                    if !after.iter().any(|(m, _, _)| m == media) {
                        self.change(
                            "ZD008",
                            Class::Breaking,
                            Side::Old,
                            ptr,
                            op,
                            format!("{label}: request media type {media} was removed"),
                        );
                    }
                }
                for (media, ptr, schema) in &after {
                    match before.iter().find(|(m, _, _)| m == media) {
                        None => self.change(
                            "ZD011",
                            Class::Benign,
                            Side::New,
                            ptr,
                            op,
                            format!("{label}: request media type {media} was added"),
                        ),
                        Some((_, old_ptr, old_schema)) => {
                            let what = format!("{label}: request body ({media})");
                            self.schema(
                                (old_ptr.clone(), old_schema),
                                (ptr.clone(), schema),
                                Dir::Request,
                                &what,
                                label,
                                0,
                            );
                        }
                    }
                }
            }
            (None, None) => {}
        }
    }

    fn responses(&mut self, old: &Op<'a>, new: &Op<'a>, label: &str) {
        let op = Some(label);
        let list = |spec: &'a Spec, o: &Op<'a>| -> BTreeMap<String, (String, &'a Value)> {
            let base = child(&o.pointer, "responses");
            o.value
                .get("responses")
                .and_then(Value::as_object)
                .map(|r| {
                    r.iter().map(|(code, v)| (code.clone(), spec.deref(child(&base, code), v))).collect()
                })
                .unwrap_or_default()
        };
        let before = list(self.old, old);
        let after = list(self.new, new);
        for (code, (ptr, _)) in &before {
            if !after.contains_key(code) {
                let (id, class) =
                    if code.starts_with('2') { ("ZD010", Class::Breaking) } else { ("ZD011", Class::Benign) };
                self.change(id, class, Side::Old, ptr, op, format!("{label}: response {code} was removed"));
            }
        }
        for (code, (ptr, response)) in &after {
            let Some((old_ptr, old_response)) = before.get(code) else {
                self.change(
                    "ZD011",
                    Class::Benign,
                    Side::New,
                    ptr,
                    op,
                    format!("{label}: response {code} was added"),
                );
                continue;
            };
            let a = self.old.content_schemas(old_ptr, old_response);
            let b = self.new.content_schemas(ptr, response);
            for (media, schema_ptr, schema) in &b {
                if let Some((_, old_schema_ptr, old_schema)) = a.iter().find(|(m, _, _)| m == media) {
                    let what = format!("{label}: response {code} ({media})");
                    self.schema(
                        (old_schema_ptr.clone(), old_schema),
                        (schema_ptr.clone(), schema),
                        Dir::Response,
                        &what,
                        label,
                        0,
                    );
                }
            }
        }
    }

    /// Reports a loosening or tightening in the right class for the direction.
    fn judge(&mut self, dir: Dir, looser: bool, pointer: &str, label: &str, message: String) {
        let op = Some(label);
        let (id, class) = match (dir, looser) {
            (Dir::Request, true) => ("ZD005", Class::Security),
            (Dir::Request, false) => ("ZD006", Class::Breaking),
            (Dir::Response, true) => ("ZD010", Class::Breaking),
            (Dir::Response, false) => ("ZD011", Class::Benign),
        };
        self.change(id, class, Side::New, pointer, op, message);
    }

    fn schema(
        &mut self,
        old: (String, &Value),
        new: (String, &Value),
        dir: Dir,
        what: &str,
        label: &str,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let (optr, a) = self.old.deref(old.0, old.1);
        let (nptr, b) = self.new.deref(new.0, new.1);
        if !self.seen.insert((optr.clone(), nptr.clone(), dir)) {
            return;
        }
        let (Some(ao), Some(bo)) = (a.as_object(), b.as_object()) else {
            if a != b {
                self.judge(dir, b == &Value::Bool(true), &nptr, label, format!("{what}: schema changed"));
            }
            return;
        };
        if dir == Dir::Request && bo.get("readOnly") == Some(&Value::Bool(true)) {
            return;
        }
        let p = nptr.as_str();
        // Types.
        let ta: BTreeSet<String> = types_of(a).into_iter().collect();
        let tb: BTreeSet<String> = types_of(b).into_iter().collect();
        let widen = |from: &BTreeSet<String>, to: &BTreeSet<String>| {
            // `number` admits every `integer`.
            to.iter().any(|t| !(from.contains(t) || (t == "integer" && from.contains("number"))))
                || (to.is_empty() && !from.is_empty())
        };
        if ta != tb {
            let wider = widen(&ta, &tb);
            let narrower = widen(&tb, &ta);
            let shown = |s: &BTreeSet<String>| {
                if s.is_empty() { "any".to_string() } else { s.iter().cloned().collect::<Vec<_>>().join("|") }
            };
            let message = format!("{what}: type changed from {} to {}", shown(&ta), shown(&tb));
            if wider {
                self.judge(dir, true, p, label, message.clone());
            }
            if narrower {
                self.judge(dir, false, p, label, message);
            }
        }
        if !nullable(a) && nullable(b) {
            self.judge(dir, true, p, label, format!("{what}: now nullable"));
        }
        if nullable(a) && !nullable(b) {
            self.judge(dir, false, p, label, format!("{what}: no longer nullable"));
        }
        // Upper bounds: removed or raised is looser.
        for key in ["maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"] {
            self.bound(ao.get(key), bo.get(key), key, true, dir, p, what, label);
        }
        // Lower bounds: removed or lowered is looser.
        for key in ["minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"] {
            self.bound(ao.get(key), bo.get(key), key, false, dir, p, what, label);
        }
        for key in ["pattern", "format", "const", "multipleOf"] {
            match (ao.get(key), bo.get(key)) {
                (Some(x), None) => {
                    self.judge(dir, true, p, label, format!("{what}: {key} {} was removed", short(x)))
                }
                (None, Some(y)) => {
                    self.judge(dir, false, p, label, format!("{what}: {key} {} was added", short(y)))
                }
                (Some(x), Some(y)) if x != y => {
                    let message = format!("{what}: {key} changed from {} to {}", short(x), short(y));
                    // A changed pattern may accept more: treat it as both.
                    self.judge(dir, true, p, label, message.clone());
                    self.judge(dir, false, p, label, message);
                }
                _ => {}
            }
        }
        if bo.get("uniqueItems") != ao.get("uniqueItems") {
            let before = ao.get("uniqueItems") == Some(&Value::Bool(true));
            let after = bo.get("uniqueItems") == Some(&Value::Bool(true));
            if before != after {
                self.judge(
                    dir,
                    before,
                    p,
                    label,
                    format!("{what}: uniqueItems {}", if after { "added" } else { "removed" }),
                );
            }
        }
        // Enums.
        match (ao.get("enum").and_then(Value::as_array), bo.get("enum").and_then(Value::as_array)) {
            (Some(_), None) => self.judge(dir, true, p, label, format!("{what}: enum was removed")),
            (None, Some(_)) => self.judge(dir, false, p, label, format!("{what}: enum was added")),
            (Some(x), Some(y)) => {
                let added: Vec<String> = y.iter().filter(|v| !x.contains(v)).map(short).collect();
                let removed: Vec<String> = x.iter().filter(|v| !y.contains(v)).map(short).collect();
                if !added.is_empty() {
                    self.judge(dir, true, p, label, format!("{what}: enum widened by {}", added.join(", ")));
                }
                if !removed.is_empty() {
                    self.judge(
                        dir,
                        false,
                        p,
                        label,
                        format!("{what}: enum narrowed, removed {}", removed.join(", ")),
                    );
                }
            }
            (None, None) => {}
        }
        // Required properties.
        let names = |o: &serde_json::Map<String, Value>| -> BTreeSet<String> {
            o.get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let (ra, rb) = (names(ao), names(bo));
        for name in ra.difference(&rb) {
            let message = match dir {
                Dir::Request => format!("{what}: property {name:?} is no longer required"),
                Dir::Response => format!("{what}: property {name:?} is no longer guaranteed (not required)"),
            };
            self.judge(dir, true, p, label, message);
        }
        for name in rb.difference(&ra) {
            self.judge(dir, false, p, label, format!("{what}: property {name:?} became required"));
        }
        // Openness.
        let open = |o: &serde_json::Map<String, Value>| {
            !(o.get("additionalProperties") == Some(&Value::Bool(false))
                || o.get("unevaluatedProperties") == Some(&Value::Bool(false)))
        };
        let objecty = !ta.is_empty() && ta.contains("object") || ao.contains_key("properties");
        if objecty && !open(ao) && open(bo) {
            self.judge(
                dir,
                true,
                p,
                label,
                format!("{what}: object opened (additionalProperties: false removed)"),
            );
        }
        if objecty && open(ao) && !open(bo) {
            self.judge(dir, false, p, label, format!("{what}: object closed to undeclared properties"));
        }
        // Properties.
        let empty = serde_json::Map::new();
        let pa = ao.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let pb = bo.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        for (name, sub) in pa {
            if !pb.contains_key(name) {
                let old_ptr = child(&child(&optr, "properties"), name);
                let write_only = sub.get("writeOnly") == Some(&Value::Bool(true));
                match dir {
                    Dir::Response if !write_only => self.change(
                        "ZD009",
                        Class::Breaking,
                        Side::Old,
                        &old_ptr,
                        Some(label),
                        format!("{what}: response property {name:?} was removed"),
                    ),
                    Dir::Response => {}
                    Dir::Request => {
                        self.judge(dir, false, p, label, format!("{what}: property {name:?} was removed"))
                    }
                }
            }
        }
        for (name, sub) in pb {
            let sub_ptr = child(&child(&nptr, "properties"), name);
            match pa.get(name) {
                None => self.change(
                    "ZD011",
                    Class::Benign,
                    Side::New,
                    &sub_ptr,
                    Some(label),
                    format!("{what}: property {name:?} was added"),
                ),
                Some(old_sub) => {
                    let old_ptr = child(&child(&optr, "properties"), name);
                    self.schema(
                        (old_ptr, old_sub),
                        (sub_ptr, sub),
                        dir,
                        &format!("{what}.{name}"),
                        label,
                        depth + 1,
                    );
                }
            }
        }
        // Items and maps.
        for key in ["items", "additionalProperties"] {
            if let (Some(x), Some(y)) = (ao.get(key), bo.get(key))
                && x.is_object()
                && y.is_object()
            {
                let suffix = if key == "items" { "[]" } else { ".*" };
                self.schema(
                    (child(&optr, key), x),
                    (child(&nptr, key), y),
                    dir,
                    &format!("{what}{suffix}"),
                    label,
                    depth + 1,
                );
            }
        }
        // Compositions, position by position.
        for key in ["allOf", "anyOf", "oneOf"] {
            let x = ao.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let y = bo.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            if x.len() != y.len() {
                // More allOf parts constrain more; more anyOf/oneOf alternatives admit more.
                let looser = (key == "allOf") == (y.len() < x.len());
                self.judge(
                    dir,
                    looser,
                    p,
                    label,
                    format!("{what}: {key} went from {} to {} schemas", x.len(), y.len()),
                );
            }
            for (i, (sx, sy)) in x.iter().zip(y).enumerate() {
                self.schema(
                    (format!("{optr}/{key}/{i}"), sx),
                    (format!("{nptr}/{key}/{i}"), sy),
                    dir,
                    what,
                    label,
                    depth + 1,
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bound(
        &mut self,
        a: Option<&Value>,
        b: Option<&Value>,
        key: &str,
        upper: bool,
        dir: Dir,
        pointer: &str,
        what: &str,
        label: &str,
    ) {
        // OpenAPI 3.0 boolean exclusive bounds modify minimum/maximum; compare them as flags.
        if let (Some(Value::Bool(_)), _) | (_, Some(Value::Bool(_))) = (a, b) {
            let x = a == Some(&Value::Bool(true));
            let y = b == Some(&Value::Bool(true));
            if x != y {
                self.judge(
                    dir,
                    x,
                    pointer,
                    label,
                    format!("{what}: {key} {}", if y { "set" } else { "unset" }),
                );
            }
            return;
        }
        match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
            (Some(x), None) => {
                self.judge(dir, true, pointer, label, format!("{what}: {key} {x} was removed"))
            }
            (None, Some(y)) => self.judge(dir, false, pointer, label, format!("{what}: {key} {y} was added")),
            (Some(x), Some(y)) if x != y => {
                let looser = if upper { y > x } else { y < x };
                let verb = if looser { "relaxed" } else { "tightened" };
                self.judge(dir, looser, pointer, label, format!("{what}: {key} {verb} from {x} to {y}"));
            }
            _ => {}
        }
    }
}

/// The parameter names of a template, in order.
fn template_params(template: &str) -> Vec<String> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

fn display_name(p: &Value, key: &str) -> String {
    p.get("name").and_then(Value::as_str).unwrap_or(key).to_string()
}

fn param_schema<'v>(p: &'v Value, pointer: &str) -> Option<(String, &'v Value)> {
    if let Some(schema) = p.get("schema") {
        return Some((child(pointer, "schema"), schema));
    }
    let content = p.get("content")?.as_object()?;
    let (media, entry) = content.iter().next()?;
    Some((child(&child(&child(pointer, "content"), media), "schema"), entry.get("schema")?))
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 { format!("{}...", text.chars().take(57).collect::<String>()) } else { text }
}

fn readable(tokens: &[String]) -> String {
    if tokens.is_empty() {
        return "anything".into();
    }
    tokens
        .iter()
        .map(|t| match t.split_once('#') {
            Some((scheme, scope)) => {
                format!("scope {scope:?} ({})", scheme.split_once(':').map_or(scheme, |(_, n)| n))
            }
            None => format!("scheme {:?}", t.split_once(':').map_or(t.as_str(), |(_, n)| n)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(shape("/orders/{id}"), "/orders/{}");
        assert_eq!(shape("/a/{x}.{ext}"), "/a/{}.{}");
    }
}
