//! `zt policy check FILE`: the start-up validation of a policy, without starting anything.
//!
//! Runs exactly what a service runs: `Policy::from_file` (TOML, or YAML for `.yaml`/`.yml`),
//! then `Guard::new`, which validates and compiles issuers, keys, routes, zones and the
//! contract. Relative paths in the policy (`jwks_file`, `contract.file`, ...) resolve against
//! the working directory, as they do in the service: run the check from the same directory.
//! Remote key sets are not fetched (the guard fetches them in the background once running).

use std::path::Path;

use zt_core::policy::Policy;
use zt_core::{Guard, PolicyError};

use crate::report::{Finding, Level, Report, Rule};

/// The one rule of `policy check`.
pub static RULES: [Rule; 1] = [Rule {
    id: "ZP001",
    name: "policy-invalid",
    level: Level::Error,
    short: "The policy is refused at start-up.",
    rationale: "A service started with this policy fails before serving anything.",
    help: "Fix the entry the message names (file and line, or key path such as issuers[0].jwks_url).",
}];

/// Checks one policy file.
pub fn check(path: &Path) -> Report {
    let file = path.display().to_string();
    let mut report = Report::new("policy check", RULES.iter().collect());
    report.files.push(file.clone());
    let result = Policy::from_file(path).and_then(|policy| {
        let summary = summary(&policy);
        Guard::new(policy).map(|_| summary).map_err(|e| e.locate_in(path))
    });
    match result {
        Ok(summary) => {
            report.facts.insert("policy", summary);
        }
        Err(error) => {
            let (line, at) = match &error {
                PolicyError::Parse { line, .. } => (*line, None),
                PolicyError::Invalid { at, line, .. } => (*line, Some(at.clone())),
                _ => (None, None),
            };
            report.findings.push(Finding {
                rule: RULES[0].id,
                name: RULES[0].name,
                level: Level::Error,
                class: None,
                message: error.to_string(),
                file,
                line,
                pointer: at,
                operation: None,
            });
        }
    }
    report
}

fn summary(policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "valid": true,
        "mode": policy.mode.as_str(),
        "issuers": policy.issuers.len(),
        "routes": policy.routes.len(),
        "zones": policy.zones.len(),
        "contract": policy.contract.as_ref().map(|c| c.file.clone()),
    })
}
