//! Options of `perfaudit advise`.

use std::path::PathBuf;

use clap::Args;

use super::SqlArgs;
use crate::advise::{DEFAULT_MIN_COST, DEFAULT_MIN_IMPROVEMENT};

/// Options of `perfaudit advise`.
#[derive(Debug, Args)]
// The SQL is not needed when the workload comes from pg_stat_statements.
#[command(mut_arg("sql", |arg| arg.required_unless_present_any(["file", "from_stat_statements"])))]
pub struct AdviseArgs {
    #[command(flatten)]
    pub input: SqlArgs,

    /// Take the workload from pg_stat_statements: this database's statements with the most
    /// total execution time
    #[arg(long, conflicts_with_all = ["sql", "file"])]
    pub from_stat_statements: bool,

    /// With --from-stat-statements: how many statements to take [default: 20]
    // (`requires` would be met by the flag's default, so conflicts say it.)
    #[arg(long, value_name = "N", conflicts_with_all = ["sql", "file"],
          value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    /// Recommend an index only where it lowers a statement's plan cost by at least this much
    #[arg(long, default_value_t = DEFAULT_MIN_IMPROVEMENT, value_name = "PERCENT",
          value_parser = parse_percent)]
    pub min_improvement: f64,

    /// Leave statements whose plan costs less than this alone (they are cheap already)
    #[arg(long, default_value_t = DEFAULT_MIN_COST, value_name = "COST", value_parser = parse_cost)]
    pub min_cost: f64,

    /// Also write the recommended indexes as a spec that `perfaudit indexes --spec FILE` builds
    #[arg(long, value_name = "FILE")]
    pub write_spec: Option<PathBuf>,
}

/// A percentage above 0 and at most 100.
fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 =
        text.trim().trim_end_matches('%').parse().map_err(|_| {
            format!("\"{text}\" is not a number (expected a percentage such as 50)")
        })?;
    if value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a percentage above 0 and at most 100"
        ))
    }
}

/// A plan cost: a finite number, 0 or more.
fn parse_cost(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!(
            "\"{text}\" is not a plan cost (expected a number, 0 or more, such as 100)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<super::AdviseArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["perfaudit", "advise"], args].concat())?;
        match cli.command {
            Command::Advise(args) => Ok(args),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn the_workload_comes_from_sql_or_pg_stat_statements() {
        assert!(parse(&["SELECT 1"]).is_ok());
        assert!(parse(&["-f", "w.sql"]).is_ok());
        let args = parse(&["--from-stat-statements", "--top", "5"]).unwrap();
        assert_eq!(args.top, Some(5));
        assert!(parse(&[]).is_err(), "a workload is required");
        assert!(parse(&["SELECT 1", "--from-stat-statements"]).is_err());
        assert!(parse(&["SELECT 1", "--top", "5"]).is_err());
        assert!(parse(&["--top", "5"]).is_err());
    }

    #[test]
    fn thresholds_are_checked() {
        let args = parse(&["SELECT 1", "--min-improvement", "30%", "--min-cost", "0"]).unwrap();
        assert_eq!((args.min_improvement, args.min_cost), (30.0, 0.0));
        assert_eq!(parse(&["SELECT 1"]).unwrap().min_improvement, 50.0);
        for bad in [
            ["--min-improvement", "0"],
            ["--min-improvement", "150"],
            ["--min-cost", "-1"],
        ] {
            assert!(
                parse(&[&["SELECT 1"][..], &bad].concat()).is_err(),
                "{bad:?}"
            );
        }
    }
}
