//! The pipeline of `perfaudit explain`: check every statement, then explain
//! each on one connection, hand it to the report as soon as it is done, and
//! apply the gates.
//!
//! The input is read in passes, a batch of statements at a time: one
//! ([`check`]) checks what the SQL alone shows before connecting; one, only
//! when a gate needs every statement executed or the server must read what
//! perfaudit's parser cannot, rewrites each statement and has the guard
//! judge it before anything runs; the last rewrites, judges, runs and
//! reports. No pass keeps a syntax tree or a result beyond its batch, so
//! memory stays flat however many statements the input holds.

use tokio_postgres::Client;

use super::gate::{Gates, Measured};
use super::run::{Runner, Timeout};
use super::{Explained, Job, JobOptions, Jobs, Repetition};
use crate::advise;
use crate::db::Database;
use crate::db::cancel::cancellable;
use crate::db::errors::query_error;
use crate::error::Result;
use crate::guard;
use crate::interrupt::Interrupt;
use crate::rewrite::{self, RewriteOptions};
use crate::sql::{self, Class, Statements};
use crate::ui::Progress;

/// Statements held at a time. A batch's syntax trees are kept while the
/// rewriter asks the server about them (its statement timeout is set and
/// reset once a batch, not once a statement), then dropped as each
/// statement is reported.
const BATCH: usize = 1000;

/// What `perfaudit explain` runs with.
#[derive(Debug, Clone)]
pub struct Options {
    /// How each statement becomes a job.
    pub jobs: JobOptions,
    /// `None` with `--no-rewrite`.
    pub rewrite: Option<RewriteOptions>,
    /// Runs measured (`--runs`).
    pub runs: usize,
    /// Runs before those, not measured (`--warmup`).
    pub warmup: usize,
    /// `--max-ms` and `--fail-on`.
    pub gates: Gates,
    /// How advise decides the indexes findings suggest.
    pub advise: advise::Options,
}

/// Explains every statement of `text` ([`check`]ed first) on one
/// connection of `database`, handing each result to `report` as soon as
/// it is done, and returns why statements fail the gates (empty when none
/// does). Stops at the first statement that fails.
pub async fn explain_all(
    database: &Database,
    text: &str,
    checked: &Checked,
    options: &Options,
    interrupt: &Interrupt,
    progress: &dyn Progress,
    report: impl AsyncFnMut(&Explained) -> Result<()>,
) -> Result<Vec<String>> {
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
        database,
        client: &client,
        interrupt,
        progress,
        options,
        repetition: Repetition {
            runs: options.runs,
            warmup: options.warmup,
            timeout,
        },
    };
    // The guard may refuse a statement (planning it would run what no
    // rollback undoes) or make one that a gate needs executed only planned,
    // and the server may not read what perfaudit's parser cannot: with more
    // than one statement, all of it is found before the first runs.
    if checked.statements > 1 || options.jobs.needs_execution || checked.unread {
        explainer.judge_all(text).await?;
    }
    let mut failures = Vec::new();
    explainer.all(text, report, &mut failures).await?;
    Ok(failures)
}

/// What the check pass keeps of an input.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// How many statements it holds.
    statements: usize,
    /// Whether one is a statement perfaudit's parser cannot read, which
    /// the server must read before anything runs.
    unread: bool,
}

/// Checks every statement of `text` as [`Jobs`] does, without a server:
/// a refused statement, a missing `--param` or an unmeasurable gate runs
/// nothing at all.
pub async fn check(text: &str, options: &JobOptions, interrupt: &Interrupt) -> Result<Checked> {
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
    database: &'a Database,
    client: &'a Client,
    interrupt: &'a Interrupt,
    progress: &'a dyn Progress,
    options: &'a Options,
    repetition: Repetition,
}

impl Explainer<'_> {
    /// Rewrites, runs and reports the statements of `text`, a batch at a
    /// time, and adds why each fails a gate to `failures`. Stops at the
    /// first statement that fails, and quietly when stdout is closed.
    async fn all(
        &self,
        text: &str,
        mut report: impl AsyncFnMut(&Explained) -> Result<()>,
        failures: &mut Vec<String>,
    ) -> Result<()> {
        let runner = Runner::new(self.client, self.database.tls(), self.interrupt);
        self.prepared_batches(text, async |batch| {
            for job in batch {
                let result = super::explain(
                    &runner,
                    job,
                    self.repetition,
                    &self.options.advise,
                    self.progress,
                )
                .await?;
                let label = result.job.label();
                failures.extend(self.options.gates.failures([Measured {
                    label: &label,
                    median_ms: result.timing.execution_ms.map(|spread| spread.median),
                    findings: &result.findings,
                }]));
                report(&result).await?;
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
        let interrupt = self.interrupt;
        let mut jobs = Jobs::new(&self.options.jobs);
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
                match (&self.options.rewrite, job.statement.parsed()) {
                    (Some(options), Some(parsed)) => {
                        let rewritten = rewrite::server::rewrite(client, parsed, options).await?;
                        job.apply(rewritten, options.limit);
                    }
                    (Some(_), None) => job.leave_unread(),
                    (None, _) => {}
                }
                super::vet(client, &mut session, job, timeout, &self.options.jobs).await?;
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
        cancellable(client, self.database.tls(), self.interrupt, prepare_all).await
    }
}
