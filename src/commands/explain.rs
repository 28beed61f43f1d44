//! `perfaudit explain`: read and check every statement, then explain each
//! on one connection, print the report, and apply the gates.

use indicatif::ProgressBar;

use crate::cli::{ExplainArgs, Format};
use crate::context::Context;
use crate::db::cancel::cancellable;
use crate::db::errors::query_error;
use crate::error::{Error, Result};
use crate::explain::gate::{Gates, Measured};
use crate::explain::mode::ModeFlags;
use crate::explain::run::{Runner, Timeout};
use crate::explain::{self, JobOptions, Repetition, guard};
use crate::report;
use crate::rewrite;
use crate::sql;

/// Runs `perfaudit explain`.
pub async fn run(context: &Context, args: ExplainArgs) -> Result<()> {
    let text = crate::input::read_sql(&args.input, &context.interrupt).await?;
    let options = JobOptions {
        flags: ModeFlags {
            no_analyze: args.no_analyze,
            analyze_writes: args.analyze_writes,
        },
        params: args.params,
        needs_execution: args.max_ms.is_some(),
    };
    // Everything is checked before connecting: a refused statement, a
    // missing --param or an unmeasurable gate runs nothing at all.
    let mut jobs = explain::jobs(sql::items(&text).collect::<Result<_>>()?, &options)?;

    let database = context.database().await?;
    let interrupt = &context.interrupt;
    // Dropping these futures on Ctrl-C leaves nothing running on the server.
    let client = interrupt.guard(database.connection()).await?;
    let timeout = interrupt
        .guard(Timeout::from_flag(database.options().statement_timeout).resolve(&client))
        .await?;
    // The server's questions before the runs (the rewriter's describe and
    // catalog reads, the guard's) have the runs' timeout, since one can
    // queue behind a lock, and a signal cancels them on the server; they
    // run READ ONLY (guard::enter).
    let bound = timeout.for_session();
    let rewrite_options = (!args.no_rewrite).then(|| args.rewrite.options());
    let prepare_all = async {
        if let Some((set, _)) = &bound {
            client
                .batch_execute(set)
                .await
                .map_err(|e| query_error("bounding the questions before the runs", &e))?;
        }
        let session = guard::enter(&client).await?;
        for job in &mut jobs {
            // With the server at hand the rewriter resolves ORDER BY for
            // `SELECT *` and has the server check what it produced.
            match (&rewrite_options, job.statement.parsed()) {
                (Some(options), Some(parsed)) => {
                    let rewritten = rewrite::server::rewrite(&client, parsed, options).await?;
                    job.apply(rewritten);
                }
                (Some(_), None) => job.leave_unread(),
                (None, _) => {}
            }
            // Then the guard judges the SQL that will run, before any runs.
            explain::vet(&client, session, job, timeout, &options).await?;
        }
        guard::leave(&client).await?;
        if let Some((_, reset)) = &bound {
            client
                .batch_execute(reset)
                .await
                .map_err(|e| query_error("bounding the questions before the runs", &e))?;
        }
        Ok(())
    };
    cancellable(&client, database.tls(), interrupt, prepare_all).await?;
    let repetition = Repetition {
        runs: args.runs as usize,
        warmup: args.warmup as usize,
        timeout,
    };
    let runner = Runner::new(&client, database.tls(), interrupt);
    let mut results = Vec::with_capacity(jobs.len());
    let mut failure = None;
    for job in jobs {
        let total = (repetition.runs + repetition.warmup) as u64;
        let progress = if total > 1 {
            context.ui.bar(total, format!("explaining {}", job.label()))
        } else {
            ProgressBar::hidden()
        };
        let result = explain::explain(&runner, job, repetition, &progress).await;
        progress.finish_and_clear();
        match result {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }

    // The statements explained before one failed are still reported (a
    // pipeline keeps their JSON); the exit code is then the failure's.
    if failure.is_none() || !results.is_empty() {
        match context.ui.format() {
            Format::Json => report::print_json(&report::explain::json(&results))?,
            Format::Table => report::print(&report::explain::render(&results, &context.ui))?,
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    let gates = Gates {
        max_ms: args.max_ms,
        fail_on: args.fail_on,
    };
    let labels: Vec<String> = results.iter().map(|r| r.job.label()).collect();
    let failures = gates.failures(results.iter().zip(&labels).map(|(result, label)| Measured {
        label,
        median_ms: result.timing.execution_ms.map(|spread| spread.median),
        findings: &result.findings,
    }));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Gate(format!("gate failed: {}", failures.join("; "))))
    }
}
