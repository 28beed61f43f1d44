//! Options of `perfaudit explain`.

use clap::Args;

use super::{RewriteFlags, SqlArgs};
use crate::finding::Severity;

/// Where `--help` lists the options below, apart from the global ones.
const HEADING: &str = "Explain options";

/// Options of `perfaudit explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: SqlArgs,

    /// Runs to measure for each statement (timing shows min / median / p95 / max)
    #[arg(long, help_heading = HEADING, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub runs: u32,

    /// Runs before the measured ones, not measured (they warm the cache)
    #[arg(long, help_heading = HEADING, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub warmup: u32,

    /// Plain EXPLAIN: show the plan without executing the statement (planning still evaluates
    /// IMMUTABLE and STABLE functions, read-only)
    #[arg(long, help_heading = HEADING)]
    pub no_analyze: bool,

    /// Also execute writes (INSERT, UPDATE, DELETE, MERGE, SELECT FOR UPDATE, ...) inside a
    /// transaction that is rolled back; they hold row locks and fire triggers while they run.
    /// Calls whose effects outlive a rollback (setval, advisory locks, dblink, ...) never run
    #[arg(long, help_heading = HEADING, conflicts_with = "no_analyze")]
    pub analyze_writes: bool,

    /// Explain the statements as written, without the rewriter's LIMIT / ORDER BY
    #[arg(long, help_heading = HEADING)]
    pub no_rewrite: bool,

    #[command(flatten)]
    pub rewrite: RewriteFlags,

    /// The value of the next placeholder ($1, then $2, ...); repeat for each. The server
    /// parses it with the type it infers for the placeholder; it is never spliced into SQL
    #[arg(long = "param", help_heading = HEADING, value_name = "VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,

    /// Print each plan node's details under its row: its conditions (Index Cond, Filter, Join
    /// Filter, Hash Cond, ...) with the rows they removed, sort key and method, hash batches,
    /// heap fetches, workers, buffers and I/O timing (the JSON always has them)
    #[arg(long, help_heading = HEADING)]
    pub details: bool,

    /// Fail (exit 1) when a statement's median execution time is over this many milliseconds
    #[arg(long, help_heading = HEADING, value_name = "MS", conflicts_with = "no_analyze", value_parser = parse_ms)]
    pub max_ms: Option<f64>,

    /// Fail (exit 1) when a finding is at least this severe
    #[arg(long, help_heading = HEADING, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
}

/// A non-negative number of milliseconds, fractions allowed.
fn parse_ms(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
        _ => Err("expected a number of milliseconds such as 5 or 2.5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_non_negative_milliseconds() {
        assert_eq!(parse_ms("2.5"), Ok(2.5));
        assert_eq!(parse_ms("0"), Ok(0.0));
        assert!(parse_ms("-1").is_err());
        assert!(parse_ms("5ms").is_err());
        assert!(parse_ms("NaN").is_err());
    }
}
