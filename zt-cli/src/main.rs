//! `zt`: zero-trust checks for OpenAPI documents and zt policies, for developers and CI.
//!
//! | command | what |
//! |---|---|
//! | `zt lint SPEC...` | zero-trust rules over OpenAPI documents |
//! | `zt diff OLD NEW` | security-relevant, breaking and benign changes between two versions |
//! | `zt inventory-check SPEC INVENTORY.json` | shadow, zombie and unused endpoints, undeclared sensitive data |
//! | `zt policy check FILE` | the start-up validation of a policy file |
//!
//! Exit codes: 0 success; 1 findings at or above `--fail-on` (or an invalid policy);
//! 2 usage or input errors (unreadable files, bad configuration, not an inventory).

#![deny(missing_docs)]

mod config;
mod diff;
mod inventory;
mod lines;
mod lint;
mod policy;
mod report;
mod spec;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{FailOn, LintConfig};
use crate::diff::Class;
use crate::report::{Report, Style};
use crate::spec::Spec;

/// Exit code: findings failed the gate, or the policy is invalid.
const EXIT_FINDINGS: u8 = 1;
/// Exit code: usage or input error.
const EXIT_INPUT: u8 = 2;

/// zt: zero-trust checks for OpenAPI documents and zt policies.
#[derive(Debug, Parser)]
#[command(name = "zt", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Colour in text output: auto = on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One line per finding, then a summary.
    Text,
    /// A JSON document (findings with rule, level, message, file, line, pointer).
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lint OpenAPI documents (JSON or YAML) against zero-trust rules.
    Lint {
        /// The documents.
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        /// Rule configuration (default: ./zt-lint.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Exit 1 when a finding at or above this level remains [default: error, or the config's `fail-on`].
        #[arg(long, value_enum, value_name = "LEVEL")]
        fail_on: Option<FailOn>,
        /// List the rules and exit.
        #[arg(long, exclusive = true)]
        list_rules: bool,
    },
    /// Compare two versions of a document: security-relevant, breaking and benign changes.
    Diff {
        /// The old version.
        old: PathBuf,
        /// The new version.
        new: PathBuf,
        /// Exit 1 when a change of these classes is found (comma-separated; `any`, `never`).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "security", value_name = "CLASSES")]
        fail_on: Vec<DiffFailOn>,
    },
    /// Compare a runtime inventory export with a document: shadow, zombie and unused endpoints.
    InventoryCheck {
        /// The document.
        spec: PathBuf,
        /// The inventory export (JSON, see the README for its shape).
        inventory: PathBuf,
        /// Exit 1 when a finding at or above this level remains.
        #[arg(long, value_enum, default_value = "error", value_name = "LEVEL")]
        fail_on: FailOn,
    },
    /// zt policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file exactly as a service does at start-up.
    Check {
        /// The policy (TOML, or YAML for .yaml/.yml).
        file: PathBuf,
    },
}

/// `--fail-on` classes of `zt diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFailOn {
    /// Security-relevant changes.
    Security,
    /// Breaking changes.
    Breaking,
    /// Benign changes.
    Benign,
    /// Any change.
    Any,
    /// Never fail because of changes.
    Never,
}

/// A failure before a report exists.
struct InputError(String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_INPUT) } else { ExitCode::SUCCESS };
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(InputError(message)) => {
            let _ = writeln!(std::io::stderr(), "zt: error: {message}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, InputError> {
    match &cli.command {
        Command::Lint { list_rules: true, .. } => {
            let mut text = String::new();
            for r in &lint::RULES {
                text.push_str(&format!("{} {:<30} {:<7} {}\n", r.id, r.name, r.level.as_str(), r.short));
            }
            emit(&cli.output, &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { specs, config, fail_on, .. } => {
            let config = load_config(config.as_deref())?;
            let mut loaded = Vec::new();
            for path in specs {
                loaded.push(load_spec(path)?);
            }
            let report = lint::report(&loaded, &config);
            let threshold = fail_on.or(config.fail_on).unwrap_or(FailOn::Error);
            let failed = report.findings.iter().any(|f| threshold.fails(f.level));
            finish(&cli.output, &report, failed)
        }
        Command::Diff { old, new, fail_on } => {
            let old = load_spec(old)?;
            let new = load_spec(new)?;
            let report = diff::diff(&old, &new);
            let fails = |class: &str| {
                fail_on.iter().any(|f| match f {
                    DiffFailOn::Any => true,
                    DiffFailOn::Never => false,
                    DiffFailOn::Security => class == Class::Security.as_str(),
                    DiffFailOn::Breaking => class == Class::Breaking.as_str(),
                    DiffFailOn::Benign => class == Class::Benign.as_str(),
                })
            };
            let failed = report.findings.iter().any(|f| f.class.is_some_and(fails));
            finish(&cli.output, &report, failed)
        }
        Command::InventoryCheck { spec, inventory: path, fail_on } => {
            let spec = load_spec(spec)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
            let endpoints =
                inventory::parse(&text).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
            let report = inventory::check(&spec, &path.display().to_string(), &endpoints);
            let failed = report.findings.iter().any(|f| fail_on.fails(f.level));
            finish(&cli.output, &report, failed)
        }
        Command::Policy(PolicyCommand::Check { file }) => {
            let report = policy::check(file);
            // Warnings (a limit or zone route that matches nothing) are reported, not fatal.
            let failed = report.findings.iter().any(|f| f.level >= report::Level::Error);
            finish(&cli.output, &report, failed)
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<LintConfig, InputError> {
    let catalogue = lint::catalogue();
    match path {
        Some(path) => LintConfig::from_file(path, &catalogue).map_err(InputError),
        None => {
            let default = Path::new("zt-lint.toml");
            if default.is_file() {
                LintConfig::from_file(default, &catalogue).map_err(InputError)
            } else {
                Ok(LintConfig::default())
            }
        }
    }
}

fn load_spec(path: &Path) -> Result<Spec, InputError> {
    Spec::load(path).map_err(|e| InputError(e.to_string()))
}

fn finish(output: &OutputArgs, report: &Report, failed: bool) -> Result<ExitCode, InputError> {
    let text = match output.format {
        Format::Text => {
            let terminal = output.output.is_none() && std::io::stdout().is_terminal();
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let color = match output.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => terminal && !no_color,
            };
            report::text(report, Style { color })
        }
        Format::Json => pretty(&report::json(report))?,
        Format::Sarif => pretty(&report::sarif(report))?,
    };
    emit(output, &text)?;
    Ok(if failed { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS })
}

fn pretty(value: &serde_json::Value) -> Result<String, InputError> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| InputError(format!("cannot render the report: {e}")))
}

fn emit(output: &OutputArgs, text: &str) -> Result<(), InputError> {
    match &output.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| InputError(format!("cannot write {}: {e}", path.display()))),
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => Ok(()),
                // A closed pipe (`zt lint ... | head`) is not an error of ours.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(InputError(format!("cannot write the report: {e}"))),
            }
        }
    }
}
