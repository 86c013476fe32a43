//! Start-up errors of the contract engine: each names the file and the JSON pointer of the
//! offending construct, so a bad document is fixed without guessing.

/// An OpenAPI document that cannot be loaded or compiled into a [`Contract`](super::Contract).
///
/// Every variant that concerns a construct inside a document carries the file it was read
/// from (`None` for a document passed as a value) and the JSON pointer of the construct in
/// that file (e.g. `/paths/~1orders/post/requestBody/content/application~1json/schema`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// A document file could not be read.
    #[error("cannot read OpenAPI document {file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// The text is neither valid JSON nor valid YAML, or holds values JSON cannot represent.
    #[error("{}: not a valid JSON or YAML document: {message}", shown(file.as_deref()))]
    Syntax {
        /// The file, when read from one.
        file: Option<String>,
        /// What is wrong (with line and column when the parser reports them).
        message: String,
    },
    /// The `openapi` field is missing or names a version other than 3.0.x or 3.1.x.
    #[error(
        "{}#/openapi: unsupported OpenAPI version {}: zt reads 3.0.x and 3.1.x documents",
        shown(file.as_deref()),
        found.as_deref().map(|v| format!("{v:?}")).unwrap_or_else(|| "(missing)".into())
    )]
    Version {
        /// The file, when read from one.
        file: Option<String>,
        /// The version found, if any.
        found: Option<String>,
    },
    /// A construct is malformed (wrong type, missing required field, conflicting entries).
    #[error("{}: {message}", at(file.as_deref(), pointer))]
    Invalid {
        /// The file, when read from one.
        file: Option<String>,
        /// The JSON pointer of the construct in that file.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// A well-formed construct zt cannot enforce faithfully; it is refused rather than
    /// silently ignored.
    #[error("{}: unsupported: {message}", at(file.as_deref(), pointer))]
    Unsupported {
        /// The file, when read from one.
        file: Option<String>,
        /// The JSON pointer of the construct in that file.
        pointer: String,
        /// What is not supported, and what to use instead.
        message: String,
    },
    /// A `$ref` cannot be resolved (remote URL, missing file, missing target, cycle).
    #[error("{}: cannot resolve $ref {reference:?}: {message}", at(file.as_deref(), pointer))]
    Reference {
        /// The file holding the `$ref`.
        file: Option<String>,
        /// The JSON pointer of the object holding the `$ref`.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it cannot be resolved.
        message: String,
    },
    /// The JSON Schema compiled from a schema in the document was rejected by the validator
    /// (for example an invalid `pattern` regular expression or a misspelled `type`).
    #[error("{}: invalid schema: {message}", at(file.as_deref(), pointer))]
    Schema {
        /// The file, when read from one.
        file: Option<String>,
        /// The JSON pointer of the schema (as close to the offending keyword as known).
        pointer: String,
        /// The validator's complaint.
        message: String,
    },
}

impl ContractError {
    /// The JSON pointer of the offending construct, when the error concerns one.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            ContractError::Invalid { pointer, .. }
            | ContractError::Unsupported { pointer, .. }
            | ContractError::Reference { pointer, .. }
            | ContractError::Schema { pointer, .. } => Some(pointer),
            ContractError::Version { .. } => Some("/openapi"),
            ContractError::Io { .. } | ContractError::Syntax { .. } => None,
        }
    }

    /// The file the error concerns, when the document was read from one.
    pub fn file(&self) -> Option<&str> {
        match self {
            ContractError::Io { file, .. } => Some(file),
            ContractError::Syntax { file, .. }
            | ContractError::Version { file, .. }
            | ContractError::Invalid { file, .. }
            | ContractError::Unsupported { file, .. }
            | ContractError::Reference { file, .. }
            | ContractError::Schema { file, .. } => file.as_deref(),
        }
    }
}

fn shown(file: Option<&str>) -> &str {
    file.unwrap_or("OpenAPI document")
}

fn at(file: Option<&str>, pointer: &str) -> String {
    format!("{}#{pointer}", shown(file))
}
