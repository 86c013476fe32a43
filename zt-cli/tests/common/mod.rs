//! Helpers shared by the integration tests: run the built `zt` binary, locate fixtures.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The real-world documents in `shared/specs`, beside the repository.
pub const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/specs");

/// This crate's fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A shared spec by file name.
pub fn spec(name: &str) -> PathBuf {
    Path::new(SPECS).join(name)
}

/// The outcome of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The standard output as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `zt` with these arguments in `dir` (default: a scratch directory without config).
pub fn zt_in(dir: Option<&Path>, args: &[&str]) -> Run {
    let scratch = std::env::temp_dir().join("zt-cli-tests");
    std::fs::create_dir_all(&scratch).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_zt"))
        .args(args)
        .current_dir(dir.unwrap_or(&scratch))
        .env_remove("NO_COLOR")
        .output()
        .expect("run zt");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `zt` with these arguments.
pub fn zt(args: &[&str]) -> Run {
    zt_in(None, args)
}

/// `path` as a string.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The `(rule, pointer)` pairs of a JSON report's findings.
pub fn found(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["pointer"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// The rule ids of a JSON report's findings.
pub fn rules(report: &Value) -> Vec<String> {
    found(report).into_iter().map(|(r, _)| r).collect()
}

/// A unique scratch file with this content.
pub fn scratch_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zt-cli-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}
