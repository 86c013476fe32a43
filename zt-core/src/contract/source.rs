//! The loaded (uncompiled) form of a document, for tools that inspect the document itself
//! (the `zt` command-line linter and differ) rather than enforce it.

use std::path::Path;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::error::ContractError;
use super::loader;

/// An OpenAPI document file exactly as [`Contract::from_file`](super::Contract::from_file)
/// reads it: the same parser (`.json` as JSON, anything else as YAML), the same size limit
/// and the same errors, with its text kept so that tools can map JSON pointers to lines.
///
/// `$ref`s are not expanded (recursive schemas have no finite expansion):
/// [`SourceDocument::resolve`] follows one same-document reference.
///
/// ```no_run
/// let doc = zt_core::contract::load_document("openapi.yaml")?;
/// let title = doc.value().pointer("/info/title");
/// # let _ = title;
/// # Ok::<(), zt_core::contract::ContractError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SourceDocument {
    file: String,
    text: String,
    value: Value,
}

/// Reads and parses a document file the way [`Contract::from_file`](super::Contract::from_file)
/// does, without compiling it. Errors are [`ContractError::Io`] and [`ContractError::Syntax`].
pub fn load_document(path: impl AsRef<Path>) -> Result<SourceDocument, ContractError> {
    let path = path.as_ref();
    let (value, canonical) = loader::read_file(path)?;
    let file = path.display().to_string();
    // `read_file` read this very file a moment ago; a second read only keeps the text.
    let text = std::fs::read_to_string(&canonical)
        .map_err(|e| ContractError::Io { file: file.clone(), message: e.to_string() })?;
    Ok(SourceDocument { file, text, value })
}

impl SourceDocument {
    /// The file name as given to [`load_document`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The document text (to map JSON pointers to lines).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed document.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Resolves a same-document reference (`#/components/schemas/Order`, percent-encoded
    /// fragment as in the contract loader) to its JSON pointer and value. `None` for
    /// references to other files or URLs, plain-name anchors and missing targets.
    pub fn resolve(&self, reference: &str) -> Option<(String, &Value)> {
        let fragment = reference.strip_prefix('#')?;
        let pointer = percent_decode_str(fragment).decode_utf8().ok()?.into_owned();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return None;
        }
        let value = self.value.pointer(&pointer)?;
        Some((pointer, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_resolves_like_the_contract_loader() {
        let dir = std::env::temp_dir().join(format!("zt-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("doc.yaml");
        std::fs::write(
            &path,
            "openapi: 3.1.0\ncomponents:\n  schemas:\n    a b:\n      type: string\n    200: {}\n",
        )
        .unwrap();
        let doc = load_document(&path).unwrap();
        assert_eq!(doc.file(), path.display().to_string());
        assert!(doc.text().starts_with("openapi"));
        let (pointer, value) = doc.resolve("#/components/schemas/a%20b").unwrap();
        assert_eq!(pointer, "/components/schemas/a b");
        assert_eq!(value["type"], "string");
        assert!(doc.resolve("#/components/schemas/200").is_some(), "integer keys become strings");
        assert!(doc.resolve("#/components/schemas/missing").is_none());
        assert!(doc.resolve("other.yaml#/x").is_none());
        assert!(doc.resolve("#anchor").is_none());
        assert!(matches!(load_document(dir.join("missing.yaml")), Err(ContractError::Io { .. })));
        std::fs::write(&path, "a: [").unwrap();
        assert!(matches!(load_document(&path), Err(ContractError::Syntax { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
