//! Options of `perfaudit indexes`.

use std::path::PathBuf;
use std::time::Duration;

use crate::finding::Severity;
use crate::indexes::Options;
use crate::indexes::audit::Scope;
use clap::Args;

use super::parse_duration;

/// The most retries `--lock-retries` accepts: with pauses of up to 8s between
/// attempts, 100 retries already keep a run trying for a quarter of an hour;
/// a lock that stays taken longer needs a person, not more retries.
const MAX_LOCK_RETRIES: i64 = 100;

/// Where `--help` lists the options of `--audit`.
const AUDIT_HEADING: &str = "Audit options";

/// The options that build, which `--audit` (which builds nothing) refuses.
const BUILD_OPTIONS: [&str; 7] = [
    "spec",
    "dry_run",
    "no_concurrently",
    "lock_timeout",
    "transaction_wait_timeout",
    "lock_retries",
    "maintenance_work_mem",
];

/// Options of `perfaudit indexes`.
#[derive(Debug, Args)]
pub struct IndexesArgs {
    /// The indexes to create, as TOML (default: the four payment indexes, on the
    /// payments fixture's table only; see fixtures/indexes.toml for the format)
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,

    /// Without --spec, build the four payment indexes on a payments table that is
    /// not the fixture's (other columns or types), which is otherwise refused
    #[arg(long, conflicts_with = "spec")]
    pub payments_defaults: bool,

    /// Print the plan and the exact DDL; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Build with plain CREATE INDEX, several at once: faster, but writes to the
    /// table wait until the builds end (for empty or offline tables)
    #[arg(long)]
    pub no_concurrently: bool,

    /// How long each statement may wait for a lock on its table before it gives up
    /// and tries again (0: as long as it takes) [default: 5s; 500ms with
    /// --no-concurrently, whose waits stall every writer]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,

    /// How long a concurrent build may wait for other transactions to end: before it
    /// starts, for those open on its table and older snapshots (then nothing is
    /// built), and while it runs (then it is stopped and its unfinished index
    /// dropped) (default, or 0: as long as they take; the session it waits for is
    /// named meanwhile)
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub transaction_wait_timeout: Option<Duration>,

    /// How many times a statement whose lock was not granted is tried again, after
    /// pauses from 0.5s doubling up to 8s (at most 100) [default: 3; 10 with
    /// --no-concurrently]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_LOCK_RETRIES))]
    pub lock_retries: Option<u32>,

    /// maintenance_work_mem for the builds (e.g. 512MB, 2GB); each parallel build
    /// gets this much
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub maintenance_work_mem: Option<String>,

    /// Build nothing: audit the indexes the database has (duplicate, redundant, unused,
    /// INVALID, bloated, larger than their table; foreign keys without one) and print the
    /// DROP INDEX CONCURRENTLY / REINDEX INDEX CONCURRENTLY statements that fix them, never
    /// running them. Read-only; never waits for a lock (a table DDL holds is left out)
    #[arg(long, help_heading = AUDIT_HEADING, conflicts_with_all = BUILD_OPTIONS)]
    pub audit: bool,

    /// With --audit: fail (exit 1) when a finding is at least this severe
    #[arg(long, help_heading = AUDIT_HEADING, value_enum, value_name = "SEVERITY",
          requires = "audit")]
    pub fail_on: Option<Severity>,

    /// With --audit: only the tables of this schema (repeat for more) [default: every schema
    /// but PostgreSQL's own]
    #[arg(long, help_heading = AUDIT_HEADING, value_name = "NAME", requires = "audit")]
    pub schema: Vec<String>,

    /// With --audit: only this table and its partitions (as in SQL: payments,
    /// public.payments, "Odd Name"; repeat for more)
    #[arg(long, help_heading = AUDIT_HEADING, value_name = "TABLE", requires = "audit")]
    pub table: Vec<String>,
}

/// Accepts a size as PostgreSQL writes it: a whole number and an optional
/// unit (`B`, `kB`, `MB`, `GB`, `TB`; kilobytes without one).
fn parse_memory(text: &str) -> Result<String, String> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let unit = text[digits..].trim_start();
    if digits > 0 && ["", "B", "kB", "MB", "GB", "TB"].contains(&unit) {
        Ok(text.to_owned())
    } else {
        Err("expected a size such as 512MB or 2GB (units: B, kB, MB, GB, TB)".into())
    }
}

impl IndexesArgs {
    /// How to build, as the options say.
    pub fn options(&self) -> Options {
        Options {
            dry_run: self.dry_run,
            concurrently: !self.no_concurrently,
            lock_timeout: self.lock_timeout,
            lock_retries: self.lock_retries,
            transaction_wait_timeout: self.transaction_wait_timeout,
            maintenance_work_mem: self.maintenance_work_mem.clone(),
            payments_defaults: self.payments_defaults,
        }
    }

    /// What `--audit` looks at, as the options say.
    pub fn scope(&self) -> Scope {
        Scope {
            schemas: self.schema.clone(),
            tables: self.table.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn lock_retries_are_bounded() {
        let parse = |retries: &str| {
            crate::cli::Cli::try_parse_from(["perfaudit", "indexes", "--lock-retries", retries])
        };
        assert!(parse("0").is_ok());
        assert!(parse("100").is_ok());
        for refused in ["101", "4294967295"] {
            let error = parse(refused).unwrap_err().to_string();
            assert!(error.contains("--lock-retries"), "{refused}: {error}");
        }
    }

    #[test]
    fn the_audit_refuses_the_options_that_build() {
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from(["perfaudit", "indexes"].iter().chain(args))
        };
        assert!(
            parse(&[
                "--audit",
                "--fail-on",
                "warning",
                "--schema",
                "a",
                "--table",
                "b"
            ])
            .is_ok()
        );
        for build in [
            &["--dry-run"][..],
            &["--spec", "x.toml"],
            &["--no-concurrently"],
            &["--lock-timeout", "1s"],
            &["--lock-retries", "1"],
            &["--transaction-wait-timeout", "1s"],
            &["--maintenance-work-mem", "1GB"],
        ] {
            let args: Vec<&str> = ["--audit"].iter().chain(build).copied().collect();
            let error = parse(&args).unwrap_err().to_string();
            assert!(error.contains("cannot be used with"), "{build:?}: {error}");
        }
        for audit_only in [
            &["--fail-on", "info"][..],
            &["--schema", "a"],
            &["--table", "b"],
        ] {
            let error = parse(audit_only).unwrap_err().to_string();
            assert!(error.contains("--audit"), "{audit_only:?}: {error}");
        }
    }

    #[test]
    fn memory_sizes_are_written_as_postgresql_writes_them() {
        assert_eq!(parse_memory("512MB"), Ok("512MB".into()));
        assert_eq!(parse_memory(" 2 GB "), Ok("2 GB".into()));
        assert_eq!(parse_memory("65536"), Ok("65536".into()));
        for bad in ["", "MB", "2gb", "1.5GB", "1GB'; DROP TABLE t; --", "-1MB"] {
            assert!(parse_memory(bad).is_err(), "{bad} accepted");
        }
    }
}
