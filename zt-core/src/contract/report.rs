//! What validation finds: violations (request) and reports (response), and the bounded
//! collector every check writes into. A leaf module shared by parameters, bodies,
//! responses and schemas.

use std::fmt;

use serde::Serialize;

/// The class of a request's violations, which decides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Path, query, header or cookie parameters (400).
    Parameters,
    /// The body (400).
    Body,
    /// The body's media type is not declared (415).
    UnsupportedMediaType,
    /// A method-override header or `_method` parameter was sent (400).
    MethodOverride,
}

impl ViolationKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> u16 {
        match self {
            ViolationKind::UnsupportedMediaType => 415,
            ViolationKind::Parameters | ViolationKind::Body | ViolationKind::MethodOverride => 400,
        }
    }
}

/// One failed check: where and which rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Violation {
    /// A JSON pointer into the request (`/path/id`, `/query/limit`, `/header/x-rate`,
    /// `/cookie/session`, `/body/items/0/qty`) or response (`/body/...`, `/status`).
    pub pointer: String,
    /// The failed rule (see the module documentation).
    pub keyword: String,
}

/// Why a request does not match its operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violations {
    /// The class, which decides the status: `Parameters` when any parameter failed, else
    /// `Body`; `UnsupportedMediaType` and `MethodOverride` stand alone.
    pub kind: ViolationKind,
    /// At most [`ContractOptions::max_violations`](super::ContractOptions::max_violations) violations, parameters first.
    pub items: Vec<Violation>,
    /// More violations existed than were reported.
    pub truncated: bool,
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request violates the API contract ({:?}):", self.kind)?;
        for v in &self.items {
            write!(f, " {} ({});", v.pointer, v.keyword)?;
        }
        if self.truncated {
            write!(f, " ...")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// What [`Contract::validate_response`](super::Contract::validate_response) found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResponseReport {
    /// Schema violations (at most [`ContractOptions::max_violations`](super::ContractOptions::max_violations)).
    pub violations: Vec<Violation>,
    /// Pointers of body properties that the response schema does not declare anywhere,
    /// even where it leaves `additionalProperties` open: a data-exposure signal. Free-form
    /// objects and maps (`additionalProperties: {schema}`) declare every name.
    pub undeclared_fields: Vec<String>,
    /// More violations or undeclared fields existed than were reported.
    pub truncated: bool,
}

/// What [`Contract::withhold_response`](super::Contract::withhold_response) did to a
/// response body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Withheld {
    /// Nothing the caller may not see: send the body as it is.
    Nothing,
    /// Properties were removed: send `body` instead (same status; drop the original
    /// `Content-Length`).
    Removed {
        /// The body without them.
        body: Vec<u8>,
        /// Where they were, once per schema position (`/body/note`; array items as `*`:
        /// `/body/*/note`): safe to log, never a value.
        fields: Vec<String>,
    },
    /// The response declares guarded properties but its body is not readable JSON: they
    /// cannot be found, so none of the body may be sent (fail closed).
    Unreadable,
}

impl ResponseReport {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.undeclared_fields.is_empty()
    }
}

impl Violations {
    pub(super) fn single(kind: ViolationKind, pointer: &str, keyword: &str) -> Violations {
        Violations {
            kind,
            items: vec![Violation { pointer: pointer.to_string(), keyword: keyword.to_string() }],
            truncated: false,
        }
    }
}

/// Collects violations up to a bound.
pub(super) struct Collector {
    items: Vec<Violation>,
    max: usize,
    truncated: bool,
}

impl Collector {
    pub(super) fn new(max: usize) -> Self {
        Collector { items: Vec::new(), max, truncated: false }
    }

    /// Records a finding. One finding per pointer: the first wins (later ones at the same
    /// place are consequences, such as `required` after a field failed to decode), except
    /// that `readOnly`/`writeOnly` replace the generic "unevaluated" report of the property.
    pub(super) fn push(&mut self, pointer: String, keyword: &str) {
        let specific = keyword == "readOnly" || keyword == "writeOnly";
        if let Some(existing) = self.items.iter_mut().find(|v| v.pointer == pointer) {
            if specific
                && (existing.keyword == "unevaluatedProperties" || existing.keyword == "additionalProperties")
            {
                existing.keyword = keyword.to_string();
            }
            return;
        }
        if self.items.len() >= self.max {
            self.truncated = true;
            return;
        }
        self.items.push(Violation { pointer, keyword: keyword.to_string() });
    }

    pub(super) fn is_full(&self) -> bool {
        self.truncated
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The request's violations, of `kind`.
    pub(super) fn into_violations(self, kind: ViolationKind) -> Violations {
        Violations { kind, items: self.items, truncated: self.truncated }
    }

    pub(super) fn into_report(self, mut report: ResponseReport) -> ResponseReport {
        report.violations = self.items;
        report.truncated |= self.truncated;
        report
    }
}
