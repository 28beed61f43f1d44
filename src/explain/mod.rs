//! `perfaudit explain`'s engine: decide how each statement may run, run
//! EXPLAIN on it without changing data, and analyse the plan.
//!
//! - [`pipeline`]: check every statement, then explain each and report it;
//! - [`mode`]: executed or only planned, READ ONLY or not, from the
//!   guard's verdict (pure);
//! - [`run`]: the rolled-back runs on one connection (I/O);
//! - [`timing`]: min / median / p95 / max over runs, cold against warm (pure);
//! - [`plan_change`]: what the rewrite changed in the plan (pure);
//! - [`findings`]: diagnostics, one rule per file (pure);
//! - [`tables`]: what the catalog says about the plan's tables, for the
//!   index a finding asks for (I/O);
//! - [`advised`]: advise's decision on the statement settles those indexes
//!   (pure; [`run::Runner::decide`] asks for it);
//! - [`gate`]: `--max-ms` and `--fail-on` (pure).

pub mod advised;
pub mod findings;
pub mod gate;
pub mod mode;
pub mod pipeline;
mod plan_change;
pub mod run;
pub mod tables;
pub mod timing;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio_postgres::Client;

use crate::advise;
use crate::db::params::TextParam;
use crate::error::{Error, Result};
use crate::guard::{self, Guard, Verdict};
use crate::pg::plan::{Added, Plan, RunSummary};
use crate::rewrite::{Change, Rewrite, Rule, Skip};
use crate::sql::{Class, Item, outliving_reasons};
use crate::ui::Progress;
use findings::Finding;
use mode::{Blockers, Mode, ModeFlags};
use run::{Prepared, Runner, Timeout};
use tables::Tables;
use timing::{CacheComparison, RunMeasurement, Timing};

/// What the rewrite step did to a statement before it was explained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RewriteSummary {
    /// Whether the rewriter ran (`false` with `--no-rewrite`).
    pub enabled: bool,
    /// The clauses added; the executed SQL differs from the original when
    /// there are any.
    pub changes: Vec<Change>,
    /// The rules skipped, with the reason.
    pub skipped: Vec<Skip>,
    /// The `LIMIT` it added, if it added one (`changes` says so in words).
    #[serde(skip)]
    pub added_limit: Option<u64>,
}

impl RewriteSummary {
    /// What the rewrite added to the statement, for the plan to mark.
    pub fn added(&self) -> Added {
        Added {
            limit: self.added_limit,
            order_by: self.changes.iter().any(|c| c.rule == Rule::OrderBy),
        }
    }
}

/// One statement, ready to explain.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its position in the input, from 1.
    pub number: usize,
    /// The statement as the user wrote it, parsed or not.
    pub statement: Item,
    /// The SQL sent inside the EXPLAIN (the rewritten statement).
    pub executed: String,
    /// What the rewrite step did.
    pub rewrite: RewriteSummary,
    /// How it runs.
    pub mode: Mode,
    /// The values of its placeholders `$1..$n`.
    pub params: Vec<TextParam>,
    /// What the server said it would run, when it was asked (only about
    /// statements that would otherwise be executed).
    pub guard: Option<Guard>,
}

impl Job {
    /// Takes the rewriter's result: its SQL is what runs from now on.
    /// `limit` is the LIMIT the rewriter was asked to add, which it did
    /// when its changes say so.
    pub fn apply(&mut self, rewrite: Rewrite, limit: Option<u64>) {
        self.executed = rewrite.rewritten;
        let added_limit = limit.filter(|_| rewrite.changes.iter().any(|c| c.rule == Rule::Limit));
        self.rewrite = RewriteSummary {
            enabled: true,
            changes: rewrite.changes,
            skipped: rewrite.skipped,
            added_limit,
        };
    }

    /// Notes that the rewriter left a statement perfaudit's parser cannot
    /// read as it is.
    pub fn leave_unread(&mut self) {
        let reason = "perfaudit's parser cannot read the statement".to_owned();
        self.rewrite = RewriteSummary {
            enabled: true,
            changes: Vec::new(),
            skipped: [Rule::Limit, Rule::OrderBy]
                .into_iter()
                .map(|rule| Skip {
                    rule,
                    reason: reason.clone(),
                })
                .collect(),
            added_limit: None,
        };
    }

    /// `statement 2 (line 3, column 1)`, for messages.
    pub fn label(&self) -> String {
        let (line, column) = self.statement.position();
        format!("statement {} (line {line}, column {column})", self.number)
    }

    /// Decides how the statement runs from its class, what the SQL shows
    /// to outlive the rollback and what the guard found (`verdict`, empty
    /// when it was not asked); fails when it is refused, or when a gate
    /// needs it executed and it would not be.
    fn decide_mode(&mut self, options: &JobOptions, verdict: Verdict) -> Result<()> {
        let mut outliving = self
            .statement
            .parsed()
            .map(|parsed| outliving_reasons(&parsed.ast))
            .unwrap_or_default();
        outliving.extend(verdict.outliving);
        let blockers = Blockers {
            outliving,
            unresolved: verdict.unresolved,
            planning: verdict.planning,
        };
        self.mode =
            mode::decide(self.statement.class(), options.flags, &blockers).map_err(|reason| {
                Error::input(format!(
                    "{} is refused, so nothing was run: {reason}",
                    self.label()
                ))
            })?;
        if options.needs_execution && !self.mode.analyze {
            return Err(Error::input(format!(
                "--max-ms needs every statement executed, but {} is only planned ({}); add \
                 --analyze-writes or leave it out of the gated input",
                self.label(),
                self.mode.notes.join("; ")
            )));
        }
        Ok(())
    }

    /// Why the statement was or was not executed, one sentence.
    pub fn execution_reason(&self) -> String {
        if let Some(note) = self.mode.notes.first() {
            return note.clone();
        }
        let resolved = match self.guard.as_ref().map(|g| g.resolved_by) {
            Some(guard::Resolution::Server) => "the server resolved every function it runs",
            Some(guard::Resolution::Names) => "every function it names was looked up by name",
            None => "it calls nothing",
        };
        format!(
            "executed in a READ ONLY transaction that was rolled back: {resolved}, and none is \
             VOLATILE or outlives the rollback"
        )
    }

    /// Takes the guard's word: a VOLATILE function makes the statement a
    /// write (planned only unless `--analyze-writes`), with a reason naming
    /// it; what outlives the rollback (a write too) or cannot be resolved
    /// keeps it from running at all.
    fn apply_guard(&mut self, guard: Guard, options: &JobOptions) -> Result<()> {
        let verdict = guard.verdict();
        let volatile: Vec<String> = verdict
            .outliving
            .iter()
            .chain(&verdict.volatile)
            .cloned()
            .collect();
        if !volatile.is_empty() {
            let class = self.statement.class_mut();
            *class = match std::mem::replace(class, Class::Read) {
                Class::Write { reasons: mut known } => {
                    known.extend(volatile);
                    Class::Write { reasons: known }
                }
                _ => Class::Write { reasons: volatile },
            };
        }
        self.guard = Some(guard);
        self.decide_mode(options, verdict)
    }
}

/// Has the server resolve everything `job` would run ([`guard::vet`]),
/// and decides again how it runs. Call it on the SQL
/// that will run (after the rewrite) and before any statement runs: a
/// statement that may no longer be executed fails a gate here, as
/// [`Jobs::make`] does. `timeout` bounds the guard's own transaction.
pub async fn vet(
    client: &Client,
    session: &mut guard::Session,
    job: &mut Job,
    timeout: Timeout,
    options: &JobOptions,
) -> Result<()> {
    if let Class::Unread { reason } = job.statement.class() {
        return guard::server_reads(client, &job.executed, job.params.len(), reason).await;
    }
    // Planned only too: planning can run what the guard finds.
    let writes = matches!(job.statement.class(), Class::Write { .. });
    let guard = guard::vet(
        client,
        session,
        &job.executed,
        job.params.len(),
        writes,
        job.statement.parsed(),
        &timeout.set_local(),
    )
    .await?;
    job.apply_guard(guard, options)
}

/// What decides how the statements of one input run.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// `--no-analyze` and `--analyze-writes`.
    pub flags: ModeFlags,
    /// The `--param` values, for `$1..$n` of every statement.
    pub params: Vec<String>,
    /// Whether a gate needs every statement executed (`--max-ms`).
    pub needs_execution: bool,
}

/// Makes the jobs of one input, a statement at a time (a long input is
/// never held whole): each is checked as it is made (a refusal, a missing
/// `--param`, a gate that cannot be measured) and prepared as the SQL alone
/// shows it, to run as written until a rewrite is applied ([`Job::apply`])
/// and the server has judged what it runs ([`vet`]). [`Jobs::finish`] checks what only the whole input
/// shows. Making every job once before running any is what keeps one bad
/// statement from running the others.
#[derive(Debug)]
pub struct Jobs<'a> {
    options: &'a JobOptions,
    made: usize,
    most_placeholders: usize,
}

impl<'a> Jobs<'a> {
    /// Jobs for the statements of one input, from its first.
    pub fn new(options: &'a JobOptions) -> Self {
        Jobs {
            options,
            made: 0,
            most_placeholders: 0,
        }
    }

    /// The job of the input's next statement.
    pub fn make(&mut self, statement: Item) -> Result<Job> {
        let options = self.options;
        let mut job = Job {
            number: self.made + 1,
            mode: Mode {
                analyze: false,
                read_only: true,
                notes: Vec::new(),
            },
            params: Vec::new(),
            executed: statement.text().to_owned(),
            statement,
            rewrite: RewriteSummary::default(),
            guard: None,
        };
        job.decide_mode(options, Verdict::default())?;
        let needed = job.statement.placeholders();
        if needed > options.params.len() {
            return Err(Error::input(format!(
                "{} uses ${needed} but {}; pass one --param per placeholder, in order \
                 ($1 first)",
                job.label(),
                values_given(options.params.len())
            )));
        }
        self.made += 1;
        self.most_placeholders = self.most_placeholders.max(needed);
        job.params = options.params[..needed]
            .iter()
            .map(|value| TextParam(value.clone()))
            .collect();
        Ok(job)
    }

    /// Checks, once every statement has been made, what only the whole
    /// input shows: that it holds a statement, and that every `--param`
    /// value is used.
    pub fn finish(&self) -> Result<()> {
        if self.made == 0 {
            return Err(Error::input(
                "there is no SQL statement to explain: the input holds only whitespace and \
                 comments",
            ));
        }
        let given = self.options.params.len();
        if given > self.most_placeholders {
            return Err(Error::input(format!(
                "{} but the SQL uses {}; drop the extra values",
                values_given(given),
                match self.most_placeholders {
                    0 => "no placeholder".to_owned(),
                    n => format!("only ${n}"),
                }
            )));
        }
        Ok(())
    }
}

/// `1 --param value was given`, `2 --param values were given`.
fn values_given(count: usize) -> String {
    match count {
        1 => "1 --param value was given".to_owned(),
        n => format!("{n} --param values were given"),
    }
}

/// How many times each statement runs.
#[derive(Debug, Clone, Copy)]
pub struct Repetition {
    /// Runs measured (`--runs`), at least 1.
    pub runs: usize,
    /// Runs before those, not measured (`--warmup`).
    pub warmup: usize,
    /// The statement timeout of each run.
    pub timeout: Timeout,
}

/// The outcome for one statement.
#[derive(Debug)]
pub struct Explained {
    /// What was explained and how.
    pub job: Job,
    /// Runs measured.
    pub runs: usize,
    /// Runs before those.
    pub warmup: usize,
    /// Planning, execution and round trip over the measured runs.
    pub timing: Timing,
    /// Shared buffers of the first measured run against the later ones.
    pub cache: Option<CacheComparison>,
    /// PostgreSQL's own plan document of the representative run, untouched.
    pub document: Box<RawValue>,
    /// That plan, analysed.
    pub plan: Plan,
    /// What the plan shows is wrong.
    pub findings: Vec<Finding>,
    /// How the rewrite changed the plan, when it did (beyond the nodes it
    /// added): one sentence.
    pub plan_change: Option<String>,
}

/// Runs `job` `warmup + runs` times, each rolled back, and analyses the
/// plan of the representative (median) run. `progress` hears of each run
/// when there is more than one.
pub async fn explain(
    runner: &Runner<'_>,
    job: Job,
    repetition: Repetition,
    advise: &advise::Options,
    progress: &dyn Progress,
) -> Result<Explained> {
    let label = job.label();
    let total = (repetition.warmup + repetition.runs.max(1)) as u64;
    let shown = total > 1;
    if shown {
        progress.start(0, &format!("explaining {label}"));
    }
    let ran = |done: u64| {
        if shown {
            progress.advance(0, done, total, None);
        }
    };
    let result = run_and_analyse(runner, job, repetition, advise, &label, &ran).await;
    if shown {
        progress.finish(0);
    }
    result
}

/// [`explain`]'s work; `ran` hears how many runs are done after each.
async fn run_and_analyse(
    runner: &Runner<'_>,
    job: Job,
    repetition: Repetition,
    advise: &advise::Options,
    label: &str,
    ran: &impl Fn(u64),
) -> Result<Explained> {
    let prepared = Prepared::new(
        &job.mode,
        &job.executed,
        job.params.clone(),
        repetition.timeout,
    );
    let mut done = 0;
    for _ in 0..repetition.warmup {
        runner.run(&prepared, label).await?;
        done += 1;
        ran(done);
    }
    let runs = repetition.runs.max(1);
    let mut documents = Vec::with_capacity(runs);
    let mut measurements = Vec::with_capacity(runs);
    for _ in 0..runs {
        let output = runner.run(&prepared, label).await?;
        measurements.push(RunMeasurement {
            summary: RunSummary::from_json(&output.document)?,
            // Microseconds: the clock says no more, and JSON stays readable.
            round_trip_ms: output.round_trip.as_micros() as f64 / 1000.0,
        });
        documents.push(output.document);
        done += 1;
        ran(done);
    }
    let representative = timing::representative_run(&measurements);
    let document = documents.swap_remove(representative);
    let mut plan = Plan::from_json(&document)?;
    plan.mark_added(job.rewrite.added());
    // The statement as written is planned too (never executed), so that the
    // report can say when the rewrite changed the plan.
    let mut plan_change = None;
    let mut written = None;
    if job.executed != job.statement.text() {
        let as_written = Prepared::new(
            &Mode::planned_only(),
            job.statement.text(),
            job.params.clone(),
            repetition.timeout,
        );
        let as_written = Plan::from_json(&runner.run(&as_written, label).await?.document)?;
        plan_change = plan_change::note(&as_written, &plan);
        written = Some(as_written);
    }
    // The catalog is asked only about tables an index finding names, or a
    // rule needs to judge.
    let mut findings = findings::check(&plan, &Tables::default());
    let relations = findings::tables_to_look_up(&plan, &findings);
    let tables = if relations.is_empty() {
        Tables::default()
    } else {
        let tables = runner
            .tables(&relations, job.statement.parsed().map(|p| &p.ast))
            .await?;
        findings = findings::check(&plan, &tables);
        tables
    };
    // advise judges the statement as written: perfaudit's LIMIT lowers the
    // cost of what ran.
    let cost = written.as_ref().unwrap_or(&plan).root().raw.total_cost;
    let decision = runner.decide(&job.statement, cost, advise).await?;
    advised::adopt(&mut findings, &decision, &tables, &plan);
    Ok(Explained {
        runs,
        warmup: repetition.warmup,
        timing: Timing::of(&measurements),
        cache: CacheComparison::of(&measurements),
        document: RawValue::from_string(document)
            .map_err(|e| Error::database(format!("cannot keep the plan document: {e}")))?,
        plan,
        findings,
        plan_change,
        job,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::items;

    fn options(params: &[&str]) -> JobOptions {
        JobOptions {
            params: params.iter().map(|p| p.to_string()).collect(),
            ..JobOptions::default()
        }
    }

    /// Every job of `sql`, as `explain` makes them before running any.
    fn prepare(sql: &str, options: &JobOptions) -> Result<Vec<Job>> {
        let mut jobs = Jobs::new(options);
        let made = items(sql)
            .collect::<Result<Vec<Item>>>()
            .unwrap()
            .into_iter()
            .map(|statement| jobs.make(statement))
            .collect::<Result<Vec<Job>>>()?;
        jobs.finish()?;
        Ok(made)
    }

    #[test]
    fn a_refused_statement_stops_everything_before_it_runs() {
        let err = prepare("SELECT 1; DROP TABLE payments", &options(&[])).unwrap_err();
        assert!(matches!(err, Error::Input(_)));
        assert_eq!(
            err.to_string(),
            "statement 2 (line 1, column 11) is refused, so nothing was run: DROP TABLE is not \
             a query or a DML statement, so EXPLAIN cannot run it"
        );
    }

    #[test]
    fn each_statement_takes_the_params_it_uses() {
        let jobs = prepare(
            "SELECT * FROM t WHERE a = $1 AND b = $2; SELECT $1::int",
            &options(&["1", "x"]),
        )
        .unwrap();
        assert_eq!(jobs[0].params.len(), 2);
        assert_eq!(jobs[1].params, [TextParam("1".into())]);
        assert_eq!(jobs[1].label(), "statement 2 (line 1, column 42)");
    }

    #[test]
    fn missing_and_extra_params_are_input_errors() {
        let err = prepare("SELECT $2::int", &options(&["1"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "statement 1 (line 1, column 1) uses $2 but 1 --param value was given; pass one \
             --param per placeholder, in order ($1 first)"
        );
        let err = prepare("SELECT 1", &options(&["1"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 --param value was given but the SQL uses no placeholder; drop the extra values"
        );
    }

    #[test]
    fn a_time_budget_needs_writes_executed() {
        let gated = JobOptions {
            needs_execution: true,
            ..JobOptions::default()
        };
        let err = prepare("DELETE FROM t", &gated).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--max-ms needs every statement executed")
        );
        let executed = JobOptions {
            flags: ModeFlags {
                analyze_writes: true,
                no_analyze: false,
            },
            ..gated
        };
        assert!(prepare("DELETE FROM t", &executed).unwrap()[0].mode.analyze);
    }

    #[test]
    fn the_guard_makes_a_read_a_write_or_keeps_it_from_running() {
        use guard::{Reached, Resolution, Volatility};
        let options = JobOptions::default();
        let mut jobs = prepare("SELECT make_slot('x'); SELECT f(); SELECT 1", &options).unwrap();
        let found = |functions: Vec<Reached>, unresolved: Vec<String>| Guard {
            resolved_by: Resolution::Server,
            functions,
            unresolved,
        };
        let slot = Reached::new(
            "public".into(),
            "make_slot".into(),
            "slot name",
            Volatility::Volatile,
            "the statement".into(),
        );
        jobs[0]
            .apply_guard(found(vec![slot], Vec::new()), &options)
            .unwrap();
        assert!(!jobs[0].mode.analyze && jobs[2].mode.analyze);
        assert!(
            matches!(jobs[0].statement.class(), Class::Write { reasons }
                if reasons[0].starts_with("public.make_slot(slot name) is VOLATILE")),
            "{:?}",
            jobs[0].statement.class()
        );
        let unresolved = vec!["no function f() exists to call".to_owned()];
        jobs[1]
            .apply_guard(found(Vec::new(), unresolved.clone()), &options)
            .unwrap();
        assert!(!jobs[1].mode.analyze);
        assert!(jobs[1].mode.notes[0].contains("no function f() exists"));
        // A time budget needs it executed: an input error, before any run.
        let gated = JobOptions {
            needs_execution: true,
            ..JobOptions::default()
        };
        let mut jobs = prepare("SELECT f()", &gated).unwrap();
        let err = jobs[0]
            .apply_guard(found(Vec::new(), unresolved), &gated)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--max-ms needs every statement executed"),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_an_input_error() {
        let err = prepare("-- nothing", &options(&[])).unwrap_err();
        assert!(err.to_string().starts_with("there is no SQL statement"));
    }
}
