//! Generated traffic against the two Twilio specifications: for every operation a valid
//! request built from the spec (path parameters, query parameters, a form or JSON body with
//! the required fields, values that satisfy their schemas) must be accepted, and each of a
//! fixed set of mutations (wrong type, value out of range or too long, unknown query
//! parameter, unknown body field, missing required field, duplicated parameter) must be
//! rejected at the right pointer. The generator is small, bounded and deterministic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use zt_core::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt_core::request::HeaderList;

fn spec(name: &str) -> Option<(PathBuf, Value)> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/specs")).join(name);
    if !path.is_file() {
        eprintln!("SKIPPED: {} is absent (clone shared/ beside the repository)", path.display());
        return None;
    }
    let doc = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Some((path, doc))
}

/// xorshift64*: deterministic choices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Follows `#/...` references (bounded).
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => value = doc.pointer(pointer).expect("reference resolves"),
            None => break,
        }
    }
    value
}

fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Generates a string matching the small regex subset the specs use: literals, classes
/// with ranges, `\d`, `{n}`/`{n,m}`/`+`/`*`/`?`, anchors.
fn from_pattern(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.trim_start_matches('^').trim_end_matches('$').chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let atom: char;
        match chars[i] {
            '[' => {
                let end = chars[i..].iter().position(|&c| c == ']')? + i;
                atom = *chars.get(i + 1)?;
                if atom == '^' {
                    return None;
                }
                i = end + 1;
            }
            '\\' => {
                atom = match chars.get(i + 1)? {
                    'd' => '7',
                    'w' => 'a',
                    c if !c.is_alphanumeric() => *c,
                    _ => return None,
                };
                i += 2;
            }
            '(' | ')' | '|' | '.' => return None,
            c => {
                atom = c;
                i += 1;
            }
        }
        let mut count = 1;
        match chars.get(i) {
            Some('{') => {
                let end = chars[i..].iter().position(|&c| c == '}')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                count = inner.split(',').next()?.parse().ok()?;
                i = end + 1;
            }
            Some('+') => i += 1,
            Some('*') | Some('?') => {
                count = 0;
                i += 1;
            }
            _ => {}
        }
        for _ in 0..count {
            out.push(atom);
        }
    }
    Some(out)
}

/// A value satisfying `schema`; `None` when the generator cannot tell.
fn generate(doc: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Option<Value> {
    let schema = resolve(doc, schema);
    if depth > 8 {
        return None;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let options: Vec<&Value> = options.iter().filter(|v| !v.is_null()).collect();
        return Some(options[rng.below(options.len())].clone());
    }
    Some(match type_of(schema) {
        "integer" => {
            let low = schema.get("minimum").and_then(Value::as_i64).unwrap_or(1);
            let high = schema.get("maximum").and_then(Value::as_i64).unwrap_or(low + 100);
            json!(low + (rng.below((high - low + 1).min(1000) as usize) as i64))
        }
        "number" => json!(0.5),
        "boolean" => json!(rng.below(2) == 0),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            json!([generate(doc, &items, rng, depth + 1)?])
        }
        "object" => {
            let mut map = Map::new();
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = name.as_str()?;
                let prop = props.and_then(|p| p.get(name)).cloned().unwrap_or(json!({}));
                map.insert(name.to_string(), generate(doc, &prop, rng, depth + 1)?);
            }
            Value::Object(map)
        }
        _ => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                return from_pattern(pattern).map(Value::String);
            }
            let text = match schema.get("format").and_then(Value::as_str) {
                Some("uri") => "https://example.com/callback".to_string(),
                Some("date-time") => "2024-01-02T03:04:05Z".to_string(),
                Some("date") => "2024-01-02".to_string(),
                Some("email") => "someone@example.com".to_string(),
                Some("phone-number") => "+15555550100".to_string(),
                _ => {
                    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(1) as usize;
                    let max = schema.get("maxLength").and_then(Value::as_u64).unwrap_or(64) as usize;
                    "v".repeat(min.clamp(1, max.max(1)))
                }
            };
            Value::String(text)
        }
    })
}

/// Text form of a scalar for query strings and form bodies.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(_) => value.to_string(),
        other => other.to_string(),
    }
}

#[derive(Clone)]
struct Field {
    name: String,
    schema: Value,
    value: Value,
}

#[derive(Clone, Copy, PartialEq)]
enum BodyKind {
    Form,
    Json,
}

#[derive(Clone)]
struct Case {
    method: String,
    template: String,
    path: Vec<Field>,
    query: Vec<Field>,
    headers: Vec<(String, String)>,
    body: Option<(BodyKind, Vec<Field>)>,
    /// The body's required property names.
    required: Vec<String>,
    /// Raw additions: duplicated pairs or keys.
    extra_query: Vec<(String, String)>,
    extra_body: Vec<(String, Value)>,
}

impl Case {
    fn path(&self) -> String {
        let mut path = self.template.clone();
        for f in &self.path {
            path = path.replace(&format!("{{{}}}", f.name), &text(&f.value));
        }
        path
    }

    fn query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for f in &self.query {
            match &f.value {
                Value::Array(items) => {
                    for item in items {
                        s.append_pair(&f.name, &text(item));
                    }
                }
                v => {
                    s.append_pair(&f.name, &text(v));
                }
            }
        }
        for (n, v) in &self.extra_query {
            s.append_pair(n, v);
        }
        s.finish()
    }

    fn body(&self) -> Option<(&'static str, String)> {
        let (kind, fields) = self.body.as_ref()?;
        let entries =
            fields.iter().map(|f| (f.name.clone(), f.value.clone())).chain(self.extra_body.iter().cloned());
        Some(match kind {
            BodyKind::Form => {
                let mut s = form_urlencoded::Serializer::new(String::new());
                for (name, value) in entries {
                    match &value {
                        Value::Array(items) => {
                            for item in items {
                                s.append_pair(&name, &text(item));
                            }
                        }
                        v => {
                            s.append_pair(&name, &text(v));
                        }
                    }
                }
                ("application/x-www-form-urlencoded", s.finish())
            }
            // Written by hand so that a duplicated key really appears twice.
            BodyKind::Json => {
                let members: Vec<String> =
                    entries.map(|(n, v)| format!("{}:{}", Value::String(n), v)).collect();
                ("application/json", format!("{{{}}}", members.join(",")))
            }
        })
    }

    fn run(&self, contract: &Contract) -> Result<(), Vec<(String, String)>> {
        let path = self.path();
        let Lookup::Found { op, path_params } = contract.lookup(&self.method, &path) else {
            panic!("{} {path} does not route", self.method);
        };
        assert_eq!(contract.operations()[op].template, self.template);
        let query = self.query();
        let mut headers = HeaderList::default();
        for (n, v) in &self.headers {
            headers = headers.with(n, v);
        }
        let body = self.body();
        if let Some((content_type, _)) = &body {
            headers = headers.with("content-type", content_type);
        }
        let request = ContractRequest {
            path_params: &path_params,
            query: (!query.is_empty()).then_some(query.as_str()),
            headers: &headers,
            body: body.as_ref().map(|(_, b)| b.as_bytes()),
        };
        contract
            .validate_request(op, &request)
            .map_err(|v| v.items.into_iter().map(|i| (i.pointer, i.keyword)).collect())
    }
}

fn build_case(doc: &Value, template: &str, method: &str, op: &Value, rng: &mut Rng) -> Case {
    let mut case = Case {
        method: method.to_ascii_uppercase(),
        template: template.to_string(),
        path: Vec::new(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
        required: Vec::new(),
        extra_query: Vec::new(),
        extra_body: Vec::new(),
    };
    for param in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        let param = resolve(doc, param);
        let name = param["name"].as_str().unwrap().to_string();
        let schema = resolve(doc, &param["schema"]).clone();
        let value =
            generate(doc, &schema, rng, 0).unwrap_or_else(|| panic!("cannot generate {name} of {template}"));
        match param["in"].as_str().unwrap() {
            "path" => case.path.push(Field { name, schema, value }),
            "query" => case.query.push(Field { name, schema, value }),
            "header" => case.headers.push((name.to_ascii_lowercase(), text(&value))),
            other => panic!("unexpected location {other}"),
        }
    }
    if let Some(content) = op.get("requestBody").map(|b| resolve(doc, b)).and_then(|b| b.get("content")) {
        let (media, entry) = content.as_object().unwrap().iter().next().unwrap();
        let kind = if media == "application/json" { BodyKind::Json } else { BodyKind::Form };
        let schema = resolve(doc, &entry["schema"]);
        let props = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut fields = Vec::new();
        // Every required field plus up to two optional scalars, chosen by the seed.
        let optional: Vec<&String> = props
            .keys()
            .filter(|k| !required.contains(&k.as_str()))
            .filter(|k| matches!(type_of(resolve(doc, &props[*k])), "string" | "integer" | "boolean"))
            .collect();
        let mut chosen: Vec<&str> = required.clone();
        for _ in 0..2.min(optional.len()) {
            let pick = optional[rng.below(optional.len())];
            if !chosen.contains(&pick.as_str()) {
                chosen.push(pick);
            }
        }
        for name in chosen {
            let schema = resolve(doc, &props[name]).clone();
            let value = generate(doc, &schema, rng, 0)
                .unwrap_or_else(|| panic!("cannot generate {name} of {template}"));
            fields.push(Field { name: name.to_string(), schema, value });
        }
        case.required = required.iter().map(|r| r.to_string()).collect();
        case.body = Some((kind, fields));
    }
    case
}

/// A mutation: the changed case and what must be reported (pointer, accepted keywords).
struct Mutation {
    label: &'static str,
    case: Case,
    pointer: String,
    keywords: &'static [&'static str],
}

fn is_scalar(f: &Field) -> bool {
    !f.value.is_array() && !f.value.is_object()
}

fn mutations(valid: &Case, rng: &mut Rng) -> Vec<Mutation> {
    let mut out = Vec::new();
    let body_fields = valid.body.as_ref().map(|(_, f)| f.clone()).unwrap_or_default();
    let pick = |rng: &mut Rng, candidates: Vec<(bool, usize)>| -> Option<(bool, usize)> {
        (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())])
    };
    // (in body?, index) of typed scalar fields.
    let typed: Vec<(bool, usize)> = valid
        .query
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(type_of(&f.schema), "integer" | "number" | "boolean"))
        .map(|(i, _)| (false, i))
        .chain(
            body_fields
                .iter()
                .enumerate()
                .filter(|(_, f)| matches!(type_of(&f.schema), "integer" | "number" | "boolean"))
                .map(|(i, _)| (true, i)),
        )
        .collect();

    // 1. Wrong type.
    if let Some((in_body, i)) = pick(rng, typed.clone()) {
        let mut case = valid.clone();
        let target = if in_body { &mut case.body.as_mut().unwrap().1[i] } else { &mut case.query[i] };
        target.value = json!("zz-not-a-number");
        let pointer = format!("/{}/{}", if in_body { "body" } else { "query" }, target.name);
        out.push(Mutation { label: "wrong type", case, pointer, keywords: &["type"] });
    }

    // 2. Out of range / too long: a bounded integer, else a length-limited string, else the
    //    pattern of a path parameter.
    let bounded: Vec<(bool, usize)> = typed
        .iter()
        .copied()
        .filter(|&(b, i)| {
            let f = if b { &body_fields[i] } else { &valid.query[i] };
            type_of(&f.schema) == "integer"
                && (f.schema.get("maximum").is_some() || f.schema.get("minimum").is_some())
        })
        .collect();
    let long: Vec<(bool, usize)> = valid
        .query
        .iter()
        .enumerate()
        .filter(|(_, f)| f.schema.get("maxLength").is_some())
        .map(|(i, _)| (false, i))
        .chain(
            body_fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.schema.get("maxLength").is_some())
                .map(|(i, _)| (true, i)),
        )
        .collect();
    if let Some((in_body, i)) = pick(rng, bounded) {
        let mut case = valid.clone();
        let target = if in_body { &mut case.body.as_mut().unwrap().1[i] } else { &mut case.query[i] };
        let (value, keyword): (Value, &'static [&'static str]) =
            match target.schema.get("maximum").and_then(Value::as_i64) {
                Some(max) => (json!(max + 1), &["maximum"]),
                None => (json!(target.schema["minimum"].as_i64().unwrap() - 1), &["minimum"]),
            };
        target.value = value;
        let pointer = format!("/{}/{}", if in_body { "body" } else { "query" }, target.name);
        out.push(Mutation { label: "out of range", case, pointer, keywords: keyword });
    } else if let Some((in_body, i)) = pick(rng, long) {
        let mut case = valid.clone();
        let target = if in_body { &mut case.body.as_mut().unwrap().1[i] } else { &mut case.query[i] };
        let max = target.schema["maxLength"].as_u64().unwrap() as usize;
        target.value = json!("a".repeat(max + 1));
        let pointer = format!("/{}/{}", if in_body { "body" } else { "query" }, target.name);
        out.push(Mutation { label: "too long", case, pointer, keywords: &["maxLength", "pattern"] });
    } else if let Some(i) = valid.path.iter().position(|f| f.schema.get("pattern").is_some()) {
        let mut case = valid.clone();
        let target = &mut case.path[i];
        let old = text(&target.value);
        target.value = json!(format!("ZZ{}", &old[2..]));
        let pointer = format!("/path/{}", target.name);
        out.push(Mutation { label: "path pattern", case, pointer, keywords: &["pattern"] });
    }

    // 3. Unknown query parameter.
    let mut case = valid.clone();
    case.extra_query.push(("ZzUnknown".into(), "1".into()));
    out.push(Mutation {
        label: "unknown query parameter",
        case,
        pointer: "/query/ZzUnknown".into(),
        keywords: &["unknown"],
    });

    // 4. Unknown body field.
    if valid.body.is_some() {
        let mut case = valid.clone();
        case.extra_body.push(("ZzUnknownField".into(), json!("x")));
        out.push(Mutation {
            label: "unknown body field",
            case,
            pointer: "/body/ZzUnknownField".into(),
            keywords: &["unevaluatedProperties"],
        });
    }

    // 5. Missing required field (body), else missing required query parameter.
    if let Some((_, fields)) = &valid.body
        && let Some(i) = fields.iter().position(|f| valid.required.contains(&f.name))
    {
        let mut case = valid.clone();
        let name = case.body.as_mut().unwrap().1.remove(i).name;
        out.push(Mutation {
            label: "missing required field",
            case,
            pointer: format!("/body/{name}"),
            keywords: &["required"],
        });
    }

    // 6. Duplicated parameter: a scalar body field, else a scalar query parameter.
    let dup_body: Vec<usize> =
        body_fields.iter().enumerate().filter(|(_, f)| is_scalar(f)).map(|(i, _)| i).collect();
    let dup_query: Vec<usize> =
        valid.query.iter().enumerate().filter(|(_, f)| is_scalar(f)).map(|(i, _)| i).collect();
    if !dup_body.is_empty() {
        let f = &body_fields[dup_body[rng.below(dup_body.len())]];
        let mut case = valid.clone();
        case.extra_body.push((f.name.clone(), f.value.clone()));
        out.push(Mutation {
            label: "duplicated body field",
            case,
            pointer: format!("/body/{}", f.name),
            keywords: &["duplicate"],
        });
    } else if !dup_query.is_empty() {
        let f = &valid.query[dup_query[rng.below(dup_query.len())]];
        let mut case = valid.clone();
        case.extra_query.push((f.name.clone(), text(&f.value)));
        out.push(Mutation {
            label: "duplicated query parameter",
            case,
            pointer: format!("/query/{}", f.name),
            keywords: &["duplicate"],
        });
    }
    out
}

fn exercise(name: &str, expected_operations: usize) {
    let Some((path, doc)) = spec(name) else { return };
    let contract = Contract::from_file(&path, ContractOptions::default()).unwrap();
    assert_eq!(contract.operations().len(), expected_operations);
    let mut rng = Rng(0x5EED_2024_0000_0001);
    let (mut valid_cases, mut rejected_cases, mut failures) = (0, 0, Vec::new());
    let mut labels = std::collections::BTreeMap::<&str, usize>::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            let Some(op) = item.get(method) else { continue };
            // Two valid variants per operation (different optional fields and values).
            for _ in 0..2 {
                let case = build_case(&doc, template, method, op, &mut rng);
                valid_cases += 1;
                if let Err(found) = case.run(&contract) {
                    failures.push(format!("valid {} {template}: {found:?}", case.method));
                    continue;
                }
                for m in mutations(&case, &mut rng) {
                    *labels.entry(m.label).or_default() += 1;
                    rejected_cases += 1;
                    match m.case.run(&contract) {
                        Ok(()) => {
                            failures.push(format!("{} on {} {template}: accepted", m.label, case.method))
                        }
                        Err(found) => {
                            let hit = found
                                .iter()
                                .any(|(p, k)| *p == m.pointer && m.keywords.contains(&k.as_str()));
                            if !hit {
                                failures.push(format!(
                                    "{} on {} {template}: expected {} {:?}, got {found:?}",
                                    m.label, case.method, m.pointer, m.keywords
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{name}: {valid_cases} valid requests accepted, {rejected_cases} mutations rejected: {labels:?}"
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(valid_cases, expected_operations * 2);
    for label in ["wrong type", "unknown query parameter", "unknown body field", "missing required field"] {
        assert!(labels.get(label).copied().unwrap_or(0) > 0, "no {label} mutations in {name}");
    }
}

#[test]
fn twilio_messaging_generated_traffic() {
    exercise("twilio_messaging_v1.json", 58);
}

#[test]
fn twilio_verify_generated_traffic() {
    exercise("twilio_verify_v2.json", 57);
}
