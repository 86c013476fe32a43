//! Findings and their three renderings: human text, JSON, and SARIF 2.1.0.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How serious a finding is (ordered: `note < warning < error`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Note,
    /// Should be fixed.
    Warning,
    /// Must be fixed.
    Error,
}

impl Level {
    /// `error`, `warning` or `note` (also the SARIF level).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A rule: stable id, name, default level and documentation.
#[derive(Debug)]
pub struct Rule {
    /// Stable id (`ZT001`).
    pub id: &'static str,
    /// Stable kebab-case name (`missing-security`).
    pub name: &'static str,
    /// The default level.
    pub level: Level,
    /// One line: what is found.
    pub short: &'static str,
    /// One line: why it matters.
    pub rationale: &'static str,
    /// How to fix it.
    pub help: &'static str,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule id.
    pub rule: &'static str,
    /// The rule name.
    pub name: &'static str,
    /// The level (after configuration).
    pub level: Level,
    /// For `zt diff`: `security`, `breaking` or `benign`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    /// What was found.
    pub message: String,
    /// The file it concerns.
    pub file: String,
    /// The 1-based line, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The JSON pointer (documents) or key path (policies), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The operation (`GET /orders/{id}`), where one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// The result of one command.
#[derive(Debug)]
pub struct Report {
    /// The command (`lint`, `diff`, `inventory-check`, `policy check`).
    pub command: &'static str,
    /// The rule catalogue of the command (SARIF `tool.driver.rules`).
    pub rules: Vec<&'static Rule>,
    /// The files examined.
    pub files: Vec<String>,
    /// The findings, sorted by file, line, rule.
    pub findings: Vec<Finding>,
    /// Extra facts for the JSON output and the text summary (e.g. counts).
    pub facts: BTreeMap<&'static str, Value>,
}

impl Report {
    /// An empty report.
    pub fn new(command: &'static str, rules: Vec<&'static Rule>) -> Report {
        Report { command, rules, files: Vec::new(), findings: Vec::new(), facts: BTreeMap::new() }
    }

    /// Sorts the findings for stable output.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (&a.file, a.line.unwrap_or(0), a.rule, &a.pointer, &a.message).cmp(&(
                &b.file,
                b.line.unwrap_or(0),
                b.rule,
                &b.pointer,
                &b.message,
            ))
        });
    }

    /// Number of findings at each level.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |l: Level| self.findings.iter().filter(|f| f.level == l).count();
        (count(Level::Error), count(Level::Warning), count(Level::Note))
    }
}

/// Text colours, off unless asked for.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Emit ANSI colour codes.
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn level(self, level: Level) -> String {
        let code = match level {
            Level::Error => "1;31",
            Level::Warning => "1;33",
            Level::Note => "1;36",
        };
        self.paint(code, level.as_str())
    }
}

/// Human-readable text: one line per finding, then a summary.
pub fn text(report: &Report, style: Style) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let place = match f.line {
            Some(line) => format!("{}:{line}", f.file),
            None => f.file.clone(),
        };
        let class = f.class.map(|c| format!(" ({c})")).unwrap_or_default();
        let _ = write!(
            out,
            "{}: {}[{}]{class}: {}",
            style.paint("1", &place),
            style.level(f.level),
            f.rule,
            f.message
        );
        if let Some(pointer) = &f.pointer {
            // JSON pointers as URI fragments (`#/paths/~1orders/get`, `#` for the root);
            // policy key paths as they are.
            let shown = if pointer.is_empty() || pointer.starts_with('/') {
                format!("at #{pointer}")
            } else {
                format!("at {pointer}")
            };
            let _ = write!(out, " {}", style.paint("2", &shown));
        }
        out.push('\n');
    }
    let (errors, warnings, notes) = report.counts();
    let files = report.files.len();
    let _ = writeln!(
        out,
        "{}: {errors} error(s), {warnings} warning(s), {notes} note(s) in {files} file(s)",
        report.command
    );
    for (key, value) in &report.facts {
        let _ = writeln!(out, "  {key}: {}", fact_text(value));
    }
    out
}

fn fact_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            map.iter().map(|(k, v)| format!("{k} {}", fact_text(v))).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// The JSON rendering (`--format json`).
pub fn json(report: &Report) -> Value {
    let (errors, warnings, notes) = report.counts();
    json!({
        "tool": "zt",
        "version": env!("CARGO_PKG_VERSION"),
        "command": report.command,
        "files": report.files,
        "summary": { "error": errors, "warning": warnings, "note": notes },
        "facts": report.facts,
        "findings": report.findings,
    })
}

/// The SARIF 2.1.0 rendering (`--format sarif`), for GitHub code scanning.
pub fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = report
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.short },
                "fullDescription": { "text": format!("{} {}", r.short, r.rationale) },
                "defaultConfiguration": { "level": r.level.as_str() },
                "help": {
                    "text": format!("{}\n\n{}", r.rationale, r.help),
                    "markdown": format!("**{}** ({})\n\n{}\n\n{}", r.name, r.id, r.rationale, r.help),
                },
                "properties": { "tags": ["security", "zero-trust"] },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut physical = json!({ "artifactLocation": { "uri": to_uri(&f.file) } });
            if let Some(line) = f.line {
                physical["region"] = json!({ "startLine": line.max(1) });
            }
            let mut location = json!({ "physicalLocation": physical });
            if let Some(pointer) = &f.pointer {
                let name = f.operation.clone().unwrap_or_else(|| pointer.clone());
                location["logicalLocations"] =
                    json!([{ "name": name, "fullyQualifiedName": pointer, "kind": "object" }]);
            }
            let mut properties = serde_json::Map::new();
            if let Some(pointer) = &f.pointer {
                properties.insert("pointer".into(), json!(pointer));
            }
            if let Some(class) = f.class {
                properties.insert("class".into(), json!(class));
            }
            if let Some(op) = &f.operation {
                properties.insert("operation".into(), json!(op));
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": f.level.as_str(),
                "message": { "text": f.message },
                "locations": [location],
            });
            if let Some(index) = report.rules.iter().position(|r| r.id == f.rule) {
                result["ruleIndex"] = json!(index);
            }
            if !properties.is_empty() {
                result["properties"] = Value::Object(properties);
            }
            result
        })
        .collect();
    let mut driver = json!({
        "name": "zt",
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    // `informationUri` must be a URI: named only when the package declares a repository.
    if !env!("CARGO_PKG_REPOSITORY").is_empty() {
        driver["informationUri"] = json!(env!("CARGO_PKG_REPOSITORY"));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "automationDetails": { "id": format!("zt/{}/", report.command.replace(' ', "-")) },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// A file path as a relative URI reference: `/` separators, no `./`, reserved characters
/// percent-encoded.
pub fn to_uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
