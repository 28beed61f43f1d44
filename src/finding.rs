//! What every command reports as wrong or worth knowing: one [`Finding`]
//! type (explain's plan diagnostics, indexes' redundant and invalid
//! indexes), with a stable code, a [`Severity`], what it is about and the
//! DDL it suggests.
//! docs/findings.md has a section for each code.

use serde::Serialize;

/// How much a finding matters; `--fail-on` (explain's, and indexes
/// `--audit`'s) compares against it
/// (its values and their help are in `cli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; often expected (a cold cache, a fast query's planning).
    Info,
    /// Likely costs time now or as the data grows.
    Warning,
    /// Costs a lot of time already.
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// Something wrong or worth knowing.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// A stable kebab-case code, matched by pipelines (`selective-seq-scan`).
    pub code: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What it is about.
    pub subject: Subject,
    /// What is wrong, with the numbers that show it.
    pub message: String,
    /// What to do about it, concretely.
    pub suggestion: String,
    /// The statements that do it, one per line, each ending with `;`, when
    /// it is DDL (never only inside `suggestion`'s prose).
    pub ddl: Option<String>,
    /// The time acting on it would save, when it can be estimated.
    pub saving: Option<Saving>,
}

/// The time acting on a finding would save in one run of the statement, at
/// most: the time of the work the fix removes, as this run measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Saving {
    /// Milliseconds.
    pub ms: f64,
    /// That as a fraction (0 to 1) of the statement's execution time.
    pub share: f64,
    /// How it was estimated, in a few words.
    pub basis: &'static str,
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A statement as a whole.
    Statement,
    /// One node of a statement's plan, by its id.
    Node(usize),
    /// An index.
    Index {
        /// Its name (in its table's schema).
        index: String,
        /// Its table, `schema.name`.
        table: String,
        /// What it costs on disk, when known.
        size_bytes: Option<i64>,
    },
}

/// What fails `--fail-on level` among `findings`: `code (severity)` for
/// each finding at least that severe, in their order.
pub fn at_or_above(findings: &[Finding], level: Severity) -> Vec<String> {
    findings
        .iter()
        .filter(|finding| finding.severity >= level)
        .map(|finding| format!("{} ({})", finding.code, finding.severity))
        .collect()
}

impl Finding {
    /// The plan node it points to, if it points to one.
    pub fn node(&self) -> Option<usize> {
        match self.subject {
            Subject::Node(id) => Some(id),
            _ => None,
        }
    }
}
