//! OpenAPI `security` -> [`Requirement`].
//!
//! A `security` array is an OR of requirement objects; each requirement object is an AND of
//! schemes, so it becomes one AND-set of scopes:
//! - `oauth2` and `openIdConnect` schemes contribute their listed scopes;
//! - `apiKey`, `http` and `mutualTLS` schemes need a verified identity but contribute no
//!   scopes (zt authenticates bearer JWTs; such a requirement reads "authenticated"), except
//!   that role names an OpenAPI 3.1 document lists for them are required as scopes too,
//!   which fails closed rather than dropping a stated condition;
//! - an empty requirement object (`{}`) makes authentication optional: the operation is
//!   public; `security: []` likewise.

use serde_json::Value;

use super::error::ContractError;
use super::loader::{Loader, Loc};
use crate::scopes::Requirement;

/// Maps a `security` array (at `loc`) to a requirement.
pub(super) fn requirement(
    loader: &mut Loader,
    loc: &Loc,
    value: &Value,
) -> Result<Requirement, ContractError> {
    let alternatives = value.as_array().ok_or_else(|| loader.invalid(loc, "security must be an array"))?;
    if alternatives.is_empty() {
        return Ok(Requirement::Public);
    }
    let mut sets: Vec<Vec<String>> = Vec::new();
    let mut public = false;
    for (i, alternative) in alternatives.iter().enumerate() {
        let alt_loc = loc.index(i);
        let schemes = alternative
            .as_object()
            .ok_or_else(|| loader.invalid(&alt_loc, "a security requirement must be an object"))?;
        if schemes.is_empty() {
            public = true;
            continue;
        }
        let mut set: Vec<String> = Vec::new();
        for (name, scopes) in schemes {
            let scheme_loc = alt_loc.child(name);
            let scopes = scopes
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .ok_or_else(|| loader.invalid(&scheme_loc, "scopes must be an array of strings"))?;
            let defined = Loc { file: 0, pointer: String::from("/components/securitySchemes") }.child(name);
            if loader.get(&defined).is_none() {
                return Err(loader.invalid(
                    &scheme_loc,
                    format!("security scheme {name:?} is not defined in components.securitySchemes"),
                ));
            }
            let (scheme_at, scheme) = loader.deref(defined)?;
            let kind = scheme.get("type").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kind, "oauth2" | "openIdConnect" | "apiKey" | "http" | "mutualTLS") {
                return Err(
                    loader.unsupported(&scheme_at.child("type"), format!("security scheme type {kind:?}"))
                );
            }
            for scope in scopes.iter().filter_map(Value::as_str) {
                if !set.iter().any(|s| s == scope) {
                    set.push(scope.to_string());
                }
            }
        }
        sets.push(set);
    }
    if public {
        return Ok(Requirement::Public);
    }
    let requirement = Requirement::Scopes(sets);
    requirement.validate().map_err(|message| loader.invalid(loc, message))?;
    Ok(requirement)
}
