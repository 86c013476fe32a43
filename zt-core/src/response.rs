//! Response validation against the contract (optional, off by default): responses of
//! declared operations are checked against their schema; undeclared fields are reported as
//! data-exposure events and, per the policy, stripped or blocked (502).

use serde_json::Value;

/// What the adapter does with a checked response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Send the response as it is.
    Pass,
    /// Send this body instead (undeclared fields removed); same status and headers.
    Replace(Vec<u8>),
    /// Send a 502 problem instead.
    Block,
}

/// A response to check: carried in the verdict when response validation applies.
#[derive(Debug, Clone)]
pub struct ResponseCheck {
    pub(crate) operation: usize,
    /// Responses larger than this are passed on unchecked (and logged).
    pub limit: usize,
    /// Whether the contract validates the response (`contract.responses` is not `off`);
    /// when it does not, the body is read only to withhold guarded properties.
    pub(crate) validate: bool,
    /// The verified caller, whose scopes decide which `x-zt-scopes` properties it sees.
    pub(crate) caller: Option<crate::identity::Identity>,
    /// The operation's responses have `x-zt-scopes` properties: a body zt cannot read
    /// (a stream, or of unknown or excessive length) is never sent unfiltered.
    pub(crate) guards_fields: bool,
}

impl ResponseCheck {
    /// True when the caller holds `scope` (never without a verified caller).
    pub(crate) fn grants(&self, scope: &str) -> bool {
        self.caller.as_ref().is_some_and(|c| c.has_scope(scope))
    }
}

/// Removes the properties at `pointers` (as reported by the contract: `/body/a/b`).
pub(crate) fn strip(body: &[u8], pointers: &[String]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    for pointer in pointers {
        let Some(path) = pointer.strip_prefix("/body") else { continue };
        let Some((parent, name)) = path.rsplit_once('/') else { continue };
        // A `*` segment names a field whose name was too long or odd to report: drop every
        // undeclared sibling is not possible without the schema, so blocking is left to the
        // caller; here only exact names are removed.
        if name == "*" {
            return None;
        }
        let name = name.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(map)) = value.pointer_mut(parent) {
            map.remove(&name);
        }
    }
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_nested_pointers() {
        let body = br#"{"id":1,"secret":"x","nested":{"keep":1,"drop":2}}"#;
        let out = strip(body, &["/body/secret".into(), "/body/nested/drop".into()]).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            serde_json::json!({"id":1,"nested":{"keep":1}})
        );
        assert!(strip(body, &["/body/*".into()]).is_none());
        assert!(strip(b"not json", &["/body/a".into()]).is_none());
    }
}
