//! Command-line definitions (clap), and nothing else: parsing values into
//! domain types happens here, behaviour lives in the library modules.
//!
//! Each command's options live in a file of their own under `cli/`.

mod advise;
mod explain;
mod indexes;
mod rewrite;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::context::DatabaseOptions;
use crate::db::PoolOptions;
use crate::db::settings::MAX_TIMEOUT;
use crate::finding::Severity;
use crate::input::SqlSource;
use crate::ui::{Format, UiOptions};

pub use advise::AdviseArgs;
pub use explain::ExplainArgs;
pub use indexes::IndexesArgs;
pub use rewrite::{RewriteArgs, RewriteFlags};

/// A PostgreSQL performance auditor: is this query fast, and do its indexes exist?
#[derive(Debug, Parser)]
#[command(name = "perfaudit", version, about, long_about = None, max_term_width = 100)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES_HELP: &str = "\
Exit codes: 0 success, 1 a gate failed, 2 bad input, 3 database error, 70 internal error (the runtime or \
the signal listener did not start, the output could not be written), 130 interrupted (143 on SIGTERM, \
129 on SIGHUP). A closed output (| head) ends the run quietly with 0.";

/// Options that every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Connection URL or key=value conninfo [default: DATABASE_URL; otherwise the libpq
    /// variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ...]
    #[arg(short = 'd', long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Start a throwaway local PostgreSQL seeded with the payments fixture, and remove it on exit
    /// (DATABASE_URL and the PG* variables are then ignored)
    #[arg(long, global = true, conflicts_with = "database_url")]
    pub scratch: bool,

    /// Rows of payments to seed with --scratch
    #[arg(long, global = true, default_value_t = 100_000, value_name = "N")]
    pub scratch_rows: u64,

    /// Connections the pool opens at most (they open only when needed)
    #[arg(long, global = true, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub pool_size: u16,

    /// How long to wait for a free pooled connection
    #[arg(long, global = true, default_value = "30s", value_name = "DUR", value_parser = parse_duration)]
    pub pool_timeout: Duration,

    /// How long to wait for a connection to be established; 0 waits as long as it takes
    /// [default: 5s, or PGCONNECT_TIMEOUT]
    #[arg(long, global = true, value_name = "DUR", value_parser = parse_connect_timeout)]
    pub connect_timeout: Option<Duration>,

    /// Server-side statement_timeout for every session [explain's runs default to 60s, or the
    /// server's setting when stricter; 0 keeps the server's setting]
    #[arg(long, global = true, value_name = "DUR", value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,

    /// Output format: tables for people, one JSON document for pipelines
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Never draw progress bars (they are drawn only on a terminal, and never with JSON)
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Say more about what is happening (on stderr): where perfaudit
    /// connects, the scratch cluster, each index build
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl GlobalArgs {
    /// What the options say about output.
    pub fn ui_options(&self) -> UiOptions {
        UiOptions {
            format: self.format,
            quiet: self.quiet,
            verbose: self.verbose,
            no_progress: self.no_progress,
        }
    }

    /// What the options say about the database.
    pub fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions {
            database_url: self.database_url.clone(),
            scratch_rows: self.scratch.then_some(self.scratch_rows),
            connect_timeout: self.connect_timeout,
            pool: PoolOptions {
                max_size: usize::from(self.pool_size),
                wait_timeout: self.pool_timeout,
                statement_timeout: self.statement_timeout,
            },
        }
    }
}

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Format] {
        &[Format::Table, Format::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Format::Table => PossibleValue::new("table").help("Tables for people"),
            Format::Json => {
                PossibleValue::new("json").help("One JSON document on stdout, for pipelines")
            }
        })
    }
}

impl ValueEnum for Severity {
    fn value_variants<'a>() -> &'a [Severity] {
        &[Severity::Info, Severity::Warning, Severity::Critical]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            Severity::Info => (
                "info",
                "Worth knowing; often expected (a cold cache, a fast query's planning)",
            ),
            Severity::Warning => ("warning", "Likely costs time now or as the data grows"),
            Severity::Critical => ("critical", "Costs a lot of time already"),
        };
        Some(PossibleValue::new(name).help(help))
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the recommended indexes safely (concurrently, with lock timeouts and repair)
    Indexes(IndexesArgs),
    /// Show what the rewriter would do to SQL (LIMIT and ORDER BY where safe); no database needed
    Rewrite(RewriteArgs),
    /// Rewrite, then run EXPLAIN (ANALYZE, BUFFERS) without changing data, and report
    Explain(ExplainArgs),
    /// Recommend the indexes a workload needs, tested with hypothetical indexes (HypoPG)
    Advise(AdviseArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// Where SQL comes from: an argument, a file, or stdin.
#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    /// The SQL to audit; `-` reads standard input
    #[arg(
        value_name = "SQL",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub sql: Option<String>,

    /// Read the SQL from a file (`-` for standard input); it may hold several statements
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl SqlArgs {
    /// Where the SQL is.
    pub fn source(&self) -> SqlSource {
        SqlSource::of(self.sql.as_deref(), self.file.as_deref())
    }
}

/// Parses a duration such as `5s`, `250ms`, `2min` or `1h 30m`; a bare number
/// is seconds, as in libpq's `connect_timeout`. Every duration flag of every
/// command is parsed here, so each refuses the same: a duration longer than
/// [`MAX_TIMEOUT`], PostgreSQL's longest `statement_timeout` and
/// `lock_timeout`, is bad input (exit 2) before anything connects.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e} (expected a duration such as 5s, 250ms or 2min)"))?,
    };
    if duration > MAX_TIMEOUT {
        return Err(format!(
            "longer than {}, the longest duration perfaudit accepts (PostgreSQL's longest \
             timeout)",
            humantime::format_duration(MAX_TIMEOUT)
        ));
    }
    Ok(duration)
}

/// Parses `--connect-timeout`: a duration, where `0` means no limit, as
/// `connect_timeout=0` does for libpq (and in a connection string here).
/// No limit is `Duration::MAX`, as in
/// [`ConnectionSettings::connect_timeout`](crate::db::ConnectionSettings::connect_timeout).
pub fn parse_connect_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    Ok(if timeout.is_zero() {
        Duration::MAX
    } else {
        timeout
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn durations_past_the_longest_timeout_are_refused() {
        assert_eq!(parse_duration("2147483647ms"), Ok(MAX_TIMEOUT));
        assert_eq!(
            parse_duration("2147483"),
            Ok(Duration::from_secs(2_147_483))
        );
        for text in [
            "2147483648ms",
            "2147484",
            "100000h",
            "99999999999999h",
            "18446744073709551615",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
            assert!(parse_connect_timeout(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_zero_connect_timeout_waits_forever() {
        assert_eq!(parse_connect_timeout("0"), Ok(Duration::MAX));
        assert_eq!(parse_connect_timeout("0s"), Ok(Duration::MAX));
        assert_eq!(parse_connect_timeout("3s"), Ok(Duration::from_secs(3)));
    }
}
