//! Reading documents (JSON or YAML) and resolving `$ref`s across them.
//!
//! A contract may span several files: the root document and the files its `$ref`s name by
//! relative path (`common.yaml#/components/schemas/Money`). Each file is read once, on first
//! reference, and kept for the whole compilation. Only same-document (`#/...`) and
//! relative-file references are followed; URLs and absolute paths are refused so that
//! compiling a contract never touches the network or wanders the file system.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};

use super::error::ContractError;

/// Larger documents are refused: a contract is configuration, and the biggest public
/// specifications are a few MiB.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Bounds the number of distinct files one contract may pull in.
const MAX_FILES: usize = 64;
/// Bounds a chain of references to references (`A -> B -> C ...`).
const MAX_REF_HOPS: usize = 32;
/// Nesting bound when converting YAML into JSON values.
const MAX_YAML_DEPTH: usize = 256;

/// A location in one of the loaded files: file index and JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Loc {
    pub(super) file: usize,
    pub(super) pointer: String,
}

impl Loc {
    /// The location of a member or element below this one.
    pub(super) fn child(&self, segment: &str) -> Loc {
        let mut pointer = self.pointer.clone();
        crate::json::push_segment(&mut pointer, segment);
        Loc { file: self.file, pointer }
    }

    /// The location of an array element below this one.
    pub(super) fn index(&self, index: usize) -> Loc {
        Loc { file: self.file, pointer: format!("{}/{index}", self.pointer) }
    }
}

struct DocFile {
    /// Shown in errors.
    name: Option<String>,
    /// Relative `$ref`s in this file resolve against this directory.
    dir: Option<PathBuf>,
    /// Canonical path, to read each file once.
    key: Option<PathBuf>,
    root: Value,
}

/// All files of one contract.
pub(super) struct Loader {
    files: Vec<DocFile>,
}

/// Reads and parses a document file: `.json` as JSON, anything else as YAML (which also
/// accepts JSON).
pub(super) fn read_file(path: &Path) -> Result<(Value, PathBuf), ContractError> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| ContractError::Io { file: name.clone(), message: e.to_string() };
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&canonical).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ContractError::Io { file: name, message: format!("larger than {MAX_FILE_BYTES} bytes") });
    }
    let text = std::fs::read_to_string(&canonical).map_err(io)?;
    let is_json = canonical.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value =
        parse_text(&text, is_json).map_err(|message| ContractError::Syntax { file: Some(name), message })?;
    Ok((value, canonical))
}

/// Parses document text: JSON when `is_json`, otherwise YAML (a text that opens with `{`
/// is tried as JSON first, which is faster and exact). YAML goes through
/// `serde_yaml_ng::Value` because YAML mapping keys may be integers (`200:` response codes),
/// which JSON objects cannot hold.
pub(super) fn parse_text(text: &str, is_json: bool) -> Result<Value, String> {
    if is_json {
        return serde_json::from_str(text).map_err(|e| e.to_string());
    }
    if text.trim_start().starts_with('{')
        && let Ok(value) = serde_json::from_str(text)
    {
        return Ok(value);
    }
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    yaml.apply_merge().map_err(|e| e.to_string())?;
    yaml_to_json(yaml, 0)
}

fn yaml_to_json(value: serde_yaml_ng::Value, depth: usize) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    if depth > MAX_YAML_DEPTH {
        return Err(format!("nesting deeper than {MAX_YAML_DEPTH} levels"));
    }
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(Number::from_f64(f).ok_or("NaN and infinite numbers have no JSON form")?)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(|v| yaml_to_json(v, depth + 1)).collect::<Result<_, _>>()?)
        }
        Y::Mapping(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    _ => return Err("mapping keys must be scalars".into()),
                };
                map.insert(key, yaml_to_json(v, depth + 1)?);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, depth + 1)?,
    })
}

/// True when a reference starts with a URI scheme (`https:`, `file:`, `urn:`, `C:`).
fn has_scheme(reference: &str) -> bool {
    let Some(colon) = reference.find(':') else { return false };
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

impl Loader {
    /// A loader whose file 0 is the root document.
    pub(super) fn new(root: Value, name: Option<String>, dir: Option<PathBuf>, key: Option<PathBuf>) -> Self {
        Loader { files: vec![DocFile { name, dir, key, root }] }
    }

    /// The root document.
    pub(super) fn root(&self) -> &Value {
        &self.files[0].root
    }

    /// The display name of a file (for errors).
    pub(super) fn file_name(&self, file: usize) -> Option<String> {
        self.files.get(file).and_then(|f| f.name.clone())
    }

    /// The value at a location, if it exists.
    pub(super) fn get(&self, loc: &Loc) -> Option<&Value> {
        self.files.get(loc.file).and_then(|f| f.root.pointer(&loc.pointer))
    }

    /// An [`ContractError::Invalid`] for a location.
    pub(super) fn invalid(&self, loc: &Loc, message: impl Into<String>) -> ContractError {
        ContractError::Invalid {
            file: self.file_name(loc.file),
            pointer: loc.pointer.clone(),
            message: message.into(),
        }
    }

    /// An [`ContractError::Unsupported`] for a location.
    pub(super) fn unsupported(&self, loc: &Loc, message: impl Into<String>) -> ContractError {
        ContractError::Unsupported {
            file: self.file_name(loc.file),
            pointer: loc.pointer.clone(),
            message: message.into(),
        }
    }

    fn reference_error(&self, from: &Loc, reference: &str, message: impl Into<String>) -> ContractError {
        ContractError::Reference {
            file: self.file_name(from.file),
            pointer: from.pointer.clone(),
            reference: reference.to_string(),
            message: message.into(),
        }
    }

    /// Resolves `reference`, written in the object at `from`, to a location, reading the
    /// referenced file on first use. The target must exist.
    pub(super) fn resolve(&mut self, from: &Loc, reference: &str) -> Result<Loc, ContractError> {
        let (path_part, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if has_scheme(path_part) || path_part.starts_with("//") {
            return Err(self.reference_error(
                from,
                reference,
                "only same-document (#/...) and relative-file references are supported, never URLs",
            ));
        }
        let pointer = percent_decode_str(fragment)
            .decode_utf8()
            .map_err(|_| self.reference_error(from, reference, "the fragment is not valid UTF-8"))?
            .into_owned();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(self.reference_error(
                from,
                reference,
                "only JSON-pointer fragments are supported (#/components/...), not plain-name anchors",
            ));
        }
        let file =
            if path_part.is_empty() { from.file } else { self.load_relative(from, reference, path_part)? };
        let target = Loc { file, pointer };
        if self.get(&target).is_none() {
            return Err(self.reference_error(from, reference, "no such location in the target document"));
        }
        Ok(target)
    }

    fn load_relative(
        &mut self,
        from: &Loc,
        reference: &str,
        path_part: &str,
    ) -> Result<usize, ContractError> {
        if path_part.starts_with('/') || path_part.starts_with('\\') {
            return Err(self.reference_error(
                from,
                reference,
                "absolute file paths are not supported; use a relative path",
            ));
        }
        let relative = percent_decode_str(path_part)
            .decode_utf8()
            .map_err(|_| self.reference_error(from, reference, "the file path is not valid UTF-8"))?
            .into_owned();
        let Some(dir) = self.files.get(from.file).and_then(|f| f.dir.clone()) else {
            return Err(self.reference_error(
                from,
                reference,
                "a relative file reference needs a base directory (load with Contract::from_file or pass base_dir)",
            ));
        };
        let full = dir.join(&relative);
        let canonical = std::fs::canonicalize(&full).map_err(|e| {
            self.reference_error(from, reference, format!("cannot read {}: {e}", full.display()))
        })?;
        if let Some(index) = self.files.iter().position(|f| f.key.as_deref() == Some(canonical.as_path())) {
            return Ok(index);
        }
        if self.files.len() >= MAX_FILES {
            return Err(self.reference_error(
                from,
                reference,
                format!("more than {MAX_FILES} referenced files"),
            ));
        }
        let (root, canonical) = read_file(&canonical)?;
        self.files.push(DocFile {
            name: Some(full.display().to_string()),
            dir: canonical.parent().map(Path::to_path_buf),
            key: Some(canonical),
            root,
        });
        Ok(self.files.len() - 1)
    }

    /// Follows a chain of Reference Objects (`{"$ref": ...}`) starting at `loc` and returns
    /// the location and a copy of the first non-reference object. Used for path items,
    /// parameters, request bodies, responses and security schemes; schemas keep their
    /// `$ref`s (see `schema.rs`).
    pub(super) fn deref(&mut self, loc: Loc) -> Result<(Loc, Value), ContractError> {
        let mut current = loc;
        let mut seen: Vec<Loc> = Vec::new();
        for _ in 0..MAX_REF_HOPS {
            let value =
                self.get(&current).cloned().ok_or_else(|| self.invalid(&current, "no such location"))?;
            let Some(reference) = value.get("$ref") else {
                return Ok((current, value));
            };
            let Some(reference) = reference.as_str() else {
                return Err(self.invalid(&current.child("$ref"), "$ref must be a string"));
            };
            let next = self.resolve(&current, reference)?;
            if seen.contains(&next) || next == current {
                return Err(self.reference_error(&current, reference, "reference cycle"));
            }
            seen.push(current);
            current = next;
        }
        Err(self.invalid(&current, format!("more than {MAX_REF_HOPS} chained references")))
    }
}
