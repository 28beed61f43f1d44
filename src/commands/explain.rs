//! `perfaudit explain`: check every statement, then explain each on one
//! connection, report it as soon as it is done, and apply the gates.
//!
//! The input is read in passes, a batch of statements at a time: one
//! checks what the SQL alone shows before connecting; one, only when a
//! gate needs every statement executed or the server must read what
//! perfaudit's parser cannot, rewrites each statement and has the guard
//! judge it before anything runs; the last rewrites, judges, runs and
//! reports. No pass keeps a syntax tree or a result beyond its batch, so
//! memory stays flat however many statements the input holds.

use std::io::{self, BufWriter, Write};

use tokio_postgres::Client;

use crate::cli::ExplainArgs;
use crate::context::Context;
use crate::db::Database;
use crate::db::cancel::cancellable;
use crate::db::errors::query_error;
use crate::error::{Error, Result};
use crate::explain::gate::{Gates, Measured};
use crate::explain::mode::ModeFlags;
use crate::explain::run::{Runner, Timeout};
use crate::explain::{self, Job, JobOptions, Jobs, Repetition, guard};
use crate::interrupt::Interrupt;
use crate::report::explain::ExplainReport;
use crate::report::output_error;
use crate::rewrite::{self, RewriteOptions};
use crate::sql::{self, Class, Statements};
use crate::ui::Bars;

/// Statements held at a time. A batch's syntax trees are kept while the
/// rewriter asks the server about them (its statement timeout is set and
/// reset once a batch, not once a statement), then dropped as each
/// statement is reported.
const BATCH: usize = 1000;

/// Runs `perfaudit explain`.
pub async fn run(context: &Context, args: ExplainArgs) -> Result<()> {
    let text = crate::input::read_sql(&args.input.source(), &context.interrupt).await?;
    let options = JobOptions {
        flags: ModeFlags {
            no_analyze: args.no_analyze,
            analyze_writes: args.analyze_writes,
        },
        params: args.params,
        needs_execution: args.max_ms.is_some(),
    };
    let interrupt = &context.interrupt;
    // What the SQL alone shows is checked before connecting: a refused
    // statement, a missing --param or an unmeasurable gate runs nothing
    // at all.
    let checked = check(&text, &options, interrupt).await?;

    let database = context.database().await?;
    // Dropping these futures on Ctrl-C leaves nothing running on the server.
    let client = interrupt.guard(database.connection()).await?;
    let timeout = interrupt
        .guard(Timeout::from_flag(database.options().statement_timeout).resolve(&client))
        .await?;
    // Before the server reads any statement: a database where reading one
    // can run what no rollback undoes gets none.
    interrupt
        .guard(guard::refuse_parse_hazards(&client))
        .await?;
    let explainer = Explainer {
        context,
        database,
        client: &client,
        options: &options,
        // With the server at hand the rewriter resolves ORDER BY for
        // `SELECT *` and has the server check what it produced.
        rewrite: (!args.no_rewrite).then(|| args.rewrite.options()),
        repetition: Repetition {
            runs: args.runs as usize,
            warmup: args.warmup as usize,
            timeout,
        },
        gates: Gates {
            max_ms: args.max_ms,
            fail_on: args.fail_on,
        },
    };
    // The guard may refuse a statement (planning it would run what no
    // rollback undoes) or make one that a gate needs executed only planned,
    // and the server may not read what perfaudit's parser cannot: with more
    // than one statement, all of it is found before the first runs.
    if checked.statements > 1 || options.needs_execution || checked.unread {
        explainer.judge_all(&text).await?;
    }
    let mut report = ExplainReport::new(&context.ui, BufWriter::new(io::stdout().lock()));
    let mut failures = Vec::new();
    let outcome = explainer.all(&text, &mut report, &mut failures).await;
    // The statements explained before one failed are still reported (a
    // pipeline keeps their JSON); the exit code is then the failure's.
    let finished = report.finish().map_err(output_error);
    outcome?;
    finished?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Gate(format!("gate failed: {}", failures.join("; "))))
    }
}

/// What the check pass keeps of an input.
struct Checked {
    /// How many statements it holds.
    statements: usize,
    /// Whether one is a statement perfaudit's parser cannot read, which
    /// the server must read before anything runs.
    unread: bool,
}

/// Checks every statement of `text` as [`Jobs`] does, without a server.
async fn check(text: &str, options: &JobOptions, interrupt: &Interrupt) -> Result<Checked> {
    let mut jobs = Jobs::new(options);
    let mut statements = sql::items(text);
    let mut checked = Checked {
        statements: 0,
        unread: false,
    };
    loop {
        let batch = next_batch(&mut statements, &mut jobs, interrupt).await?;
        if batch.is_empty() {
            break;
        }
        checked.statements += batch.len();
        checked.unread |= batch
            .iter()
            .any(|job| matches!(job.statement.class(), Class::Unread { .. }));
    }
    jobs.finish()?;
    Ok(checked)
}

/// The jobs of the next [`BATCH`] statements at most; empty at the end.
async fn next_batch(
    statements: &mut Statements<'_>,
    jobs: &mut Jobs<'_>,
    interrupt: &Interrupt,
) -> Result<Vec<Job>> {
    let mut batch = Vec::new();
    for statement in statements.by_ref().take(BATCH) {
        // Reading awaits nothing else: giving the runtime its turn once
        // the task's budget is spent lets the signal listener, a task on
        // this same thread, run.
        tokio::task::consume_budget().await;
        interrupt.check()?;
        batch.push(jobs.make(statement?)?);
    }
    Ok(batch)
}

/// What every statement of one run is explained with.
struct Explainer<'a> {
    context: &'a Context,
    database: &'a Database,
    client: &'a Client,
    options: &'a JobOptions,
    /// `None` with `--no-rewrite`.
    rewrite: Option<RewriteOptions>,
    repetition: Repetition,
    gates: Gates,
}

impl Explainer<'_> {
    /// Rewrites, runs and reports the statements of `text`, a batch at a
    /// time, and adds why each fails a gate to `failures`. Stops at the
    /// first statement that fails, and quietly when stdout is closed.
    async fn all(
        &self,
        text: &str,
        report: &mut ExplainReport<impl Write>,
        failures: &mut Vec<String>,
    ) -> Result<()> {
        let runner = Runner::new(self.client, self.database.tls(), &self.context.interrupt);
        self.prepared_batches(text, async |batch| {
            for job in batch {
                let progress = Bars::new(&self.context.ui);
                let result = explain::explain(&runner, job, self.repetition, &progress).await?;
                let label = result.job.label();
                failures.extend(self.gates.failures([Measured {
                    label: &label,
                    median_ms: result.timing.execution_ms.map(|spread| spread.median),
                    findings: &result.findings,
                }]));
                report.statement(&result).map_err(output_error)?;
            }
            Ok(())
        })
        .await
    }

    /// Judges every statement of `text` as [`Explainer::all`] would, and
    /// keeps nothing: a statement the guard keeps from running that a gate
    /// needs measured, or one the server does not read, fails here, before
    /// anything runs.
    async fn judge_all(&self, text: &str) -> Result<()> {
        self.prepared_batches(text, async |_| Ok(())).await
    }

    /// Hands `each` the statements of `text` a batch at a time, made and
    /// checked ([`Jobs`]), rewritten and judged ([`Explainer::prepare`]).
    async fn prepared_batches(
        &self,
        text: &str,
        mut each: impl AsyncFnMut(Vec<Job>) -> Result<()>,
    ) -> Result<()> {
        let interrupt = &self.context.interrupt;
        let mut jobs = Jobs::new(self.options);
        let mut statements = sql::items(text);
        loop {
            let mut batch = next_batch(&mut statements, &mut jobs, interrupt).await?;
            if batch.is_empty() {
                return Ok(());
            }
            self.prepare(&mut batch).await?;
            each(batch).await?;
        }
    }

    /// Rewrites the statements of `batch` and has the guard judge the SQL
    /// that will run ([`explain::vet`]). The questions to the server (a
    /// describe can queue behind a lock) have the runs' timeout and run
    /// READ ONLY ([`guard::enter`]), and a signal cancels them on the
    /// server.
    async fn prepare(&self, batch: &mut [Job]) -> Result<()> {
        let client = self.client;
        let timeout = self.repetition.timeout;
        let bound = timeout.for_session();
        let prepare_all = async {
            if let Some((set, _)) = &bound {
                client
                    .batch_execute(set)
                    .await
                    .map_err(|e| query_error("bounding the questions before the runs", &e))?;
            }
            let mut session = guard::enter(client).await?;
            for job in batch.iter_mut() {
                match (&self.rewrite, job.statement.parsed()) {
                    (Some(options), Some(parsed)) => {
                        let rewritten = rewrite::server::rewrite(client, parsed, options).await?;
                        job.apply(rewritten);
                    }
                    (Some(_), None) => job.leave_unread(),
                    (None, _) => {}
                }
                explain::vet(client, &mut session, job, timeout, self.options).await?;
            }
            guard::leave(client).await?;
            if let Some((_, reset)) = &bound {
                client
                    .batch_execute(reset)
                    .await
                    .map_err(|e| query_error("bounding the questions before the runs", &e))?;
            }
            Ok(())
        };
        let interrupt = &self.context.interrupt;
        cancellable(client, self.database.tls(), interrupt, prepare_all).await
    }
}
