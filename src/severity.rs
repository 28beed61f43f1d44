//! How much a finding matters, shared by every command's findings (explain's
//! plan diagnostics, indexes' redundant and invalid indexes).

use serde::Serialize;

/// How much a finding matters; `explain --fail-on` compares against it
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
