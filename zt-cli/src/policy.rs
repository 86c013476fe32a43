//! `zt policy check FILE`: the start-up validation of a policy, without starting anything.
//!
//! Runs exactly what a service runs: `Policy::from_file` (TOML, or YAML for `.yaml`/`.yml`),
//! then `Guard::new`, which validates and compiles issuers, keys, routes, zones and the
//! contract. Relative paths in the policy (`jwks_file`, `contract.file`, ...) resolve against
//! the working directory, as they do in the service: run the check from the same directory.
//! Remote key sets are not fetched (the guard fetches them in the background once running).
//!
//! A valid policy is summarised (mode, issuers, routes, zones, the contract and its number of
//! operations); `[limits.routes]` entries and zone routes that name no route of the policy
//! or the contract are warnings (ZP002, ZP003): unless the service registers that route in
//! code, the entry protects nothing, and a service that does not fails at start-up.

use std::path::Path;

use zt_core::policy::Policy;
use zt_core::{Guard, PolicyError};

use crate::report::{Finding, Level, Report, Rule};

/// The rules of `policy check`.
pub static RULES: [Rule; 3] = [
    Rule {
        id: "ZP001",
        name: "policy-invalid",
        level: Level::Error,
        short: "The policy is refused at start-up.",
        rationale: "A service started with this policy fails before serving anything.",
        help: "Fix the entry the message names (file and line, or key path such as issuers[0].jwks_url).",
    },
    Rule {
        id: "ZP002",
        name: "limit-matches-nothing",
        level: Level::Warning,
        short: "A `[[limits.routes]]` entry names no route of the policy or the contract.",
        rationale: "A quota on a route nobody serves limits nothing (often a typo in the method or template).",
        help: "Name the route exactly as registered (`GET` and `/orders/{id}`), or register it in code.",
    },
    Rule {
        id: "ZP003",
        name: "zone-route-matches-nothing",
        level: Level::Warning,
        short: "A zone lists a route that is not in the policy or the contract.",
        rationale: "A zone entry for a route nobody serves protects nothing (often a typo).",
        help: "List the route as `METHOD /template`, exactly as registered, or register it in code.",
    },
];

/// Checks one policy file.
pub fn check(path: &Path) -> Report {
    let file = path.display().to_string();
    let mut report = Report::new("policy check", RULES.iter().collect());
    report.files.push(file.clone());
    let result = Policy::from_file(path).and_then(|policy| {
        let contract = contract_routes(&policy)?;
        let summary = summary(&policy, contract.as_ref().map(Vec::len));
        Guard::new(policy.clone()).map(|_| (summary, policy, contract)).map_err(|e| e.locate_in(path))
    });
    match result {
        Ok((summary, policy, contract)) => {
            report.facts.insert("policy", summary);
            for (rule, at, message) in unmatched(&policy, contract.as_deref().unwrap_or_default()) {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let line = line_of(&text, &at);
                report.findings.push(finding(rule, Level::Warning, message, &file, line, Some(at)));
            }
        }
        Err(error) => {
            // The finding carries file, line and key path itself: the message is the error
            // alone, so each is printed once.
            let (line, at, message) = match &error {
                PolicyError::Parse { line, message, .. } => (*line, None, message.clone()),
                PolicyError::Invalid { at, line, message, .. } => (*line, Some(at.clone()), message.clone()),
                other => (None, None, other.to_string()),
            };
            report.findings.push(finding(&RULES[0], Level::Error, message, &file, line, at));
        }
    }
    report
}

fn finding(
    rule: &'static Rule,
    level: Level,
    message: String,
    file: &str,
    line: Option<usize>,
    pointer: Option<String>,
) -> Finding {
    Finding {
        rule: rule.id,
        name: rule.name,
        level,
        class: None,
        message,
        file: file.to_string(),
        line,
        pointer,
        operation: None,
    }
}

/// The `(METHOD, template)` of every contract operation, when the policy names a contract
/// file (read from the working directory, as the service does).
fn contract_routes(policy: &Policy) -> Result<Option<Vec<(String, String)>>, PolicyError> {
    let Some(config) = policy.contract.as_ref().filter(|c| !c.file.is_empty()) else { return Ok(None) };
    let contract = zt_core::contract::Contract::from_file(&config.file, Default::default()).map_err(|e| {
        PolicyError::Invalid { file: None, line: None, at: "contract.file".into(), message: e.to_string() }
    })?;
    Ok(Some(
        contract
            .operations()
            .iter()
            .map(|op| (op.method.to_ascii_uppercase(), op.template.clone()))
            .collect(),
    ))
}

/// Limits and zone routes that name no route of the policy or the contract.
fn unmatched(policy: &Policy, contract: &[(String, String)]) -> Vec<(&'static Rule, String, String)> {
    let known = |method: &str, path: &str| {
        let method = method.to_ascii_uppercase();
        policy.routes.iter().any(|r| r.method.eq_ignore_ascii_case(&method) && r.path == path)
            || contract.iter().any(|(m, p)| *m == method && p == path)
    };
    let mut out = Vec::new();
    if let Some(limits) = &policy.limits {
        for (i, route) in limits.routes.iter().enumerate() {
            if !known(&route.method, &route.path) {
                out.push((
                    &RULES[1],
                    format!("limits.routes[{i}]"),
                    format!(
                        "the quota on {} {} matches no route of the policy or the contract",
                        route.method, route.path
                    ),
                ));
            }
        }
    }
    for (i, zone) in policy.zones.iter().enumerate() {
        for (j, entry) in zone.routes.iter().enumerate() {
            let matched = entry.trim().split_once(' ').is_some_and(|(m, p)| known(m, p.trim()));
            if !matched {
                out.push((
                    &RULES[2],
                    format!("zones[{i}].routes[{j}]"),
                    format!(
                        "zone {:?} lists {entry:?}, which matches no route of the policy or the contract",
                        zone.name
                    ),
                ));
            }
        }
    }
    out
}

/// The line of a key path's table in TOML or YAML text (the `[[limits.routes]]` or
/// `[[zones]]` entry, counted), for the warning to point at.
fn line_of(text: &str, at: &str) -> Option<usize> {
    let (table, index) = at.split_once('[')?;
    let index: usize = index.split(']').next()?.parse().ok()?;
    let header = format!("[[{table}]]");
    let mut seen = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim() == header {
            if seen == index {
                return Some(n + 1);
            }
            seen += 1;
        }
    }
    None
}

fn summary(policy: &Policy, contract_operations: Option<usize>) -> serde_json::Value {
    serde_json::json!({
        "valid": true,
        "mode": policy.mode.as_str(),
        "issuers": policy.issuers.len(),
        "routes": policy.routes.len(),
        "zones": policy.zones.len(),
        "contract": policy.contract.as_ref().map(|c| c.file.clone()),
        "contract_operations": contract_operations,
    })
}
