//! The route table: OpenAPI path templates matched with `matchit`.
//!
//! matchit refuses two routes that put differently named parameters at the same position
//! (`/users/{id}` and `/users/{userId}/posts`), and it supports one parameter per segment,
//! after an optional literal prefix. Templates are therefore inserted with positional names
//! (`{p0}`, `{p1}`, ...) and mapped back to the document's names after a match; a segment
//! such as `{name}.{ext}` or `{id}-summary` is inserted as one positional parameter and split
//! by its literal pieces afterwards (parameters match lazily: `a.b.c` against `{name}.{ext}`
//! gives `name = a`, `ext = b.c`). Literal segments beat parameters, as OpenAPI requires.

use std::collections::HashMap;

use super::operation::Lookup;

enum Piece {
    Literal(String),
    Param(String),
}

enum Slot {
    /// The positional parameter is the template parameter of this name.
    Whole(String),
    /// The positional parameter covers a segment mixing literals and parameters.
    Pattern(Vec<Piece>),
}

struct Candidate {
    slots: Vec<Slot>,
    /// `(method, operation index)`, sorted by method.
    methods: Vec<(String, usize)>,
    /// Literal characters inside pattern slots: more specific candidates are tried first.
    specificity: usize,
    /// The template with parameter names erased: equal shapes are the same path.
    shape: String,
    template: String,
}

struct Group {
    keys: Vec<String>,
    candidates: Vec<Candidate>,
}

/// Compiled routes.
pub(super) struct Router {
    inner: matchit::Router<usize>,
    groups: Vec<Group>,
}

/// Collects `(template, method, operation)` triples.
#[derive(Default)]
pub(super) struct RouterBuilder {
    entries: Vec<(String, String, usize)>,
}

struct Parsed {
    normalized: String,
    slots: Vec<Slot>,
    shape: String,
    specificity: usize,
}

/// Characters a canonical path carries unescaped (RFC 3986 `pchar` minus `%`).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

fn encode_literal(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if is_pchar(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn pieces(segment: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = segment;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').ok_or("unbalanced '{'")?;
            let name = &after[..end];
            if name.is_empty() || name.contains('{') {
                return Err("parameter names must be non-empty and may not contain '{'".into());
            }
            if matches!(out.last(), Some(Piece::Param(_))) {
                return Err("two adjacent parameters cannot be told apart".into());
            }
            out.push(Piece::Param(name.to_string()));
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let literal = &rest[..end];
            if literal.contains('}') {
                return Err("unbalanced '}'".into());
            }
            let mut encoded = String::new();
            encode_literal(literal, &mut encoded);
            out.push(Piece::Literal(encoded));
            rest = &rest[end..];
        }
    }
    Ok(out)
}

fn parse(template: &str) -> Result<(Parsed, Vec<String>), String> {
    let Some(body) = template.strip_prefix('/') else {
        return Err("path templates start with '/'".into());
    };
    let mut parsed =
        Parsed { normalized: String::new(), slots: Vec::new(), shape: String::new(), specificity: 0 };
    let mut names: Vec<String> = Vec::new();
    for segment in body.split('/') {
        let ps = pieces(segment)?;
        parsed.normalized.push('/');
        parsed.shape.push('/');
        let k = parsed.slots.len();
        for p in &ps {
            if let Piece::Param(name) = p {
                if names.contains(name) {
                    return Err(format!("parameter {{{name}}} appears twice"));
                }
                names.push(name.clone());
            }
        }
        match ps.as_slice() {
            [] => {}
            [Piece::Literal(l)] => {
                parsed.normalized.push_str(l);
                parsed.shape.push_str(l);
            }
            [Piece::Param(name)] => {
                parsed.normalized.push_str(&format!("{{p{k}}}"));
                parsed.shape.push_str("{}");
                parsed.slots.push(Slot::Whole(name.clone()));
            }
            [Piece::Literal(l), Piece::Param(name)] => {
                parsed.normalized.push_str(&format!("{l}{{p{k}}}"));
                parsed.shape.push_str(&format!("{l}{{}}"));
                parsed.slots.push(Slot::Whole(name.clone()));
            }
            _ => {
                parsed.normalized.push_str(&format!("{{p{k}}}"));
                for p in &ps {
                    match p {
                        Piece::Literal(l) => {
                            parsed.shape.push_str(l);
                            parsed.specificity += l.len();
                        }
                        Piece::Param(_) => parsed.shape.push_str("{}"),
                    }
                }
                parsed.slots.push(Slot::Pattern(ps));
            }
        }
    }
    Ok((parsed, names))
}

/// The parameter names of a template, in order (`/a/{x}/{y}.json` -> `x`, `y`).
pub(super) fn template_params(template: &str) -> Result<Vec<String>, String> {
    parse(template).map(|(_, names)| names)
}

impl RouterBuilder {
    pub(super) fn add(&mut self, template: &str, method: &str, op: usize) {
        self.entries.push((template.to_string(), method.to_string(), op));
    }

    /// Builds the table; an error names the template and what is wrong with it.
    pub(super) fn build(self) -> Result<Router, (String, String)> {
        let mut inner = matchit::Router::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for (template, method, op) in self.entries {
            let (parsed, _) = parse(&template).map_err(|m| (template.clone(), m))?;
            let group = match by_key.get(&parsed.normalized) {
                Some(&g) => g,
                None => {
                    inner
                        .insert(parsed.normalized.clone(), groups.len())
                        .map_err(|e| (template.clone(), format!("cannot be routed: {e}")))?;
                    by_key.insert(parsed.normalized.clone(), groups.len());
                    let keys = (0..parsed.slots.len()).map(|k| format!("p{k}")).collect();
                    groups.push(Group { keys, candidates: Vec::new() });
                    groups.len() - 1
                }
            };
            let Some(group) = groups.get_mut(group) else {
                return Err((template, "internal route table mismatch".into()));
            };
            match group.candidates.iter_mut().find(|c| c.shape == parsed.shape) {
                Some(existing) if existing.template != template => {
                    return Err((
                        template,
                        format!("is the same path as {} (only parameter names differ)", existing.template),
                    ));
                }
                Some(existing) => existing.methods.push((method, op)),
                None => group.candidates.push(Candidate {
                    slots: parsed.slots,
                    methods: vec![(method, op)],
                    specificity: parsed.specificity,
                    shape: parsed.shape,
                    template,
                }),
            }
        }
        for group in &mut groups {
            group.candidates.sort_by_key(|c| std::cmp::Reverse(c.specificity));
            for c in &mut group.candidates {
                c.methods.sort();
            }
        }
        Ok(Router { inner, groups })
    }
}

/// Splits one raw segment by a pattern's literal pieces; parameters match lazily and are
/// never empty.
fn match_pattern(pieces: &[Piece], raw: &str, out: &mut Vec<(String, String)>) -> bool {
    let mut pos = 0;
    let mut pending: Option<&str> = None;
    for piece in pieces {
        match piece {
            Piece::Param(name) => pending = Some(name),
            Piece::Literal(lit) => match pending.take() {
                Some(name) => {
                    let Some(found) = raw.get(pos + 1..).and_then(|r| r.find(lit.as_str())) else {
                        return false;
                    };
                    let end = pos + 1 + found;
                    let Some(value) = raw.get(pos..end) else { return false };
                    out.push((name.to_string(), value.to_string()));
                    pos = end + lit.len();
                }
                None => {
                    if !raw.get(pos..).is_some_and(|r| r.starts_with(lit.as_str())) {
                        return false;
                    }
                    pos += lit.len();
                }
            },
        }
    }
    match pending {
        Some(name) => match raw.get(pos..) {
            Some(value) if !value.is_empty() => {
                out.push((name.to_string(), value.to_string()));
                true
            }
            _ => false,
        },
        None => pos == raw.len(),
    }
}

impl Router {
    pub(super) fn lookup(&self, method: &str, path: &str) -> Lookup {
        let Ok(found) = self.inner.at(path) else {
            return Lookup::NotFound;
        };
        let Some(group) = self.groups.get(*found.value) else {
            return Lookup::NotFound;
        };
        'candidates: for candidate in &group.candidates {
            let mut params = Vec::with_capacity(candidate.slots.len());
            for (slot, key) in candidate.slots.iter().zip(&group.keys) {
                let Some(raw) = found.params.get(key) else {
                    continue 'candidates;
                };
                match slot {
                    Slot::Whole(name) => params.push((name.clone(), raw.to_string())),
                    Slot::Pattern(pieces) => {
                        if !match_pattern(pieces, raw, &mut params) {
                            continue 'candidates;
                        }
                    }
                }
            }
            return match candidate.methods.iter().find(|(m, _)| m == method) {
                Some(&(_, op)) => Lookup::Found { op, path_params: params },
                None => Lookup::MethodNotAllowed {
                    allowed: candidate.methods.iter().map(|(m, _)| m.clone()).collect(),
                },
            };
        }
        Lookup::NotFound
    }
}
