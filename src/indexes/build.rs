//! Running a plan safely on a live database.
//!
//! - Each statement is sent alone on an autocommit session whose settings
//!   were sent before it (`CREATE INDEX CONCURRENTLY` refuses to run in a
//!   transaction block), through the extended protocol, which the server
//!   refuses to run more than one statement through.
//! - `lock_timeout` bounds every lock wait; a lock not granted (or a
//!   deadlock) is retried a bounded number of times with a growing pause.
//!   `statement_timeout` is off: a build cut short leaves an INVALID index.
//! - Concurrent builds run one at a time (they conflict on their table, and
//!   wait for each other's snapshots); plain builds run in parallel, each
//!   on its own pooled connection (their SHARE locks do not conflict).
//! - A build is all or nothing: when it fails or is interrupted (its server
//!   work cancelled first), every index it created is dropped again, so no
//!   INVALID index is left behind. A finished build is checked valid and
//!   ready before it is called done.

use std::cell::Cell;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use futures_util::stream::{self, StreamExt};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::catalog::INDEX_SIZE_SQL;
use super::plan::{Plan, PlannedIndex, Statement};
use super::progress::Progress;
use super::sql::{self, QualifiedName};
use crate::db::Database;
use crate::db::errors::{query_error, server_message};
use crate::error::{Error, Result};
use crate::interrupt::{Interrupt, Signal};

/// The pause after the first lock not granted; it doubles with each retry.
/// Short, because each attempt has already waited `lock_timeout`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest pause between attempts, so that a run with many retries
/// keeps trying at a steady pace.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How builds run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `lock_timeout` of every statement (zero: wait as long as it takes).
    pub lock_timeout: Duration,
    /// How many times a statement is tried again when a lock is not granted.
    pub lock_retries: u32,
    /// `maintenance_work_mem` for the builds, as PostgreSQL writes sizes.
    pub maintenance_work_mem: Option<String>,
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Its size on disk.
    pub size_bytes: i64,
    /// How long it took, drop of a broken predecessor included.
    pub duration: Duration,
}

/// Runs `plan`; returns, for each planned index, its build if it was built.
pub async fn execute(
    database: &Database,
    interrupt: &Interrupt,
    progress: &Progress,
    plan: &Plan,
    settings: &Settings,
) -> Result<Vec<Option<Built>>> {
    let runner = Runner {
        database,
        interrupt,
        progress,
        settings,
        concurrently: plan.concurrently,
        tls: crate::db::tls::connector(database.settings())?,
        failed: Cell::new(false),
    };
    let jobs: Vec<usize> = (0..plan.indexes.len())
        .filter(|&n| plan.indexes[n].action.builds())
        .collect();
    if jobs.is_empty() {
        return Ok(vec![None; plan.indexes.len()]);
    }
    // A first session checks the settings before anything is built (the
    // server refuses a bad --maintenance-work-mem), and runs the drops of
    // plain rebuilds: they lock the whole table, so they go before the
    // parallel builds.
    let drops_first = !plan.concurrently;
    let (client, _) = runner.session().await?;
    if drops_first {
        for &n in &jobs {
            runner.drop_broken(&client, &plan.indexes[n]).await?;
        }
    }
    drop(client);
    let poller = if progress.drawing() && database.options().max_size > 1 {
        Some(interrupt.guard(database.connection()).await?)
    } else {
        None
    };
    let workers = if plan.concurrently {
        1
    } else {
        let free = database.options().max_size - usize::from(poller.is_some());
        jobs.len().min(free).max(1)
    };
    let runner = &runner;
    let builds = stream::iter(&jobs)
        .map(|&n| async move {
            let planned = &plan.indexes[n];
            (n, runner.job(planned, !drops_first).await)
        })
        .buffer_unordered(workers)
        .collect::<Vec<_>>();
    let results = match &poller {
        Some(client) => tokio::select! {
            results = builds => results,
            never = progress.poll(client) => match never {},
        },
        None => builds.await,
    };
    drop(poller);
    let mut outcome: Vec<Option<Built>> = vec![None; plan.indexes.len()];
    let mut errors = Vec::new();
    for (n, result) in results {
        match result {
            Ok(built) => outcome[n] = built,
            Err(error) => errors.push(error),
        }
    }
    if let Some(error) = first_error(errors, plan, &outcome, &jobs) {
        return Err(error);
    }
    for planned in &plan.indexes {
        if let Some(analyze) = &planned.analyze {
            runner.analyze(planned, analyze).await?;
        }
    }
    Ok(outcome)
}

/// The error to report: an interruption first, else the first failure,
/// with what happened to the other builds.
fn first_error(
    mut errors: Vec<Error>,
    plan: &Plan,
    outcome: &[Option<Built>],
    jobs: &[usize],
) -> Option<Error> {
    if let Some(at) = errors
        .iter()
        .position(|e| matches!(e, Error::Interrupted(_)))
    {
        return Some(errors.swap_remove(at));
    }
    let first = errors.first()?;
    let built: Vec<String> = jobs
        .iter()
        .filter(|&&n| outcome[n].is_some())
        .map(|&n| plan.indexes[n].name.display())
        .collect();
    let mut message = first.to_string();
    if errors.len() > 1 {
        message.push_str(&format!(" ({} other builds failed too)", errors.len() - 1));
    }
    if !built.is_empty() {
        message.push_str(&format!("; built and kept: {}", built.join(", ")));
    }
    let rest = jobs.len() - built.len() - errors.len();
    if rest > 0 {
        message.push_str(&format!("; {rest} more not attempted"));
    }
    if !built.is_empty() || rest > 0 {
        message.push_str("; run again to build the rest");
    }
    Some(match first {
        Error::Input(_) => Error::Input(message),
        _ => Error::Database(message),
    })
}

/// Why a statement did not complete.
enum Failure {
    /// A signal arrived; the statement was cancelled on the server.
    Interrupted(Signal),
    /// The server or the connection failed it, after `attempts` tries.
    Query(tokio_postgres::Error, u32),
}

/// Whether another attempt may succeed: a lock not granted in time, or a
/// deadlock (PostgreSQL cancelled our side of it).
fn retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The pause before attempt `attempt + 1` (counting from 1).
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

struct Runner<'a> {
    database: &'a Database,
    interrupt: &'a Interrupt,
    progress: &'a Progress,
    settings: &'a Settings,
    concurrently: bool,
    tls: MakeRustlsConnect,
    /// Set by the first failed build: no new build starts after it.
    failed: Cell<bool>,
}

impl Runner<'_> {
    /// A pooled session set up for builds, and its server process id when
    /// progress is polled.
    async fn session(&self) -> Result<(Object, Option<i32>)> {
        let client = self.interrupt.guard(self.database.connection()).await?;
        self.set_up(&client).await?;
        let pid = if self.progress.drawing() {
            let row = client
                .query_typed_one("SELECT pg_backend_pid()", &[])
                .await
                .map_err(|e| query_error("setting up the session for index builds", &e))?;
            Some(row.get(0))
        } else {
            None
        };
        Ok((client, pid))
    }

    /// Sends the settings of every build session.
    async fn set_up(&self, client: &Client) -> Result<()> {
        let mut setup = format!(
            "SET lock_timeout = {}; SET statement_timeout = 0",
            sql::milliseconds(self.settings.lock_timeout)
        );
        if let Some(memory) = &self.settings.maintenance_work_mem {
            setup.push_str(&format!(
                "; SET maintenance_work_mem = '{}'",
                memory.replace('\'', "''")
            ));
        }
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| match e.code() {
                Some(code) if *code == SqlState::INVALID_PARAMETER_VALUE => Error::input(format!(
                    "--maintenance-work-mem {} is refused: {}; give a size such as 256MB or 2GB",
                    self.settings
                        .maintenance_work_mem
                        .as_deref()
                        .unwrap_or_default(),
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), server_message)
                )),
                _ => query_error("setting up the session for index builds", &e),
            })
    }

    /// The session to clean up on: the build's own, or a new one when the
    /// server ended it (`pg_terminate_backend`, a restart), since what the
    /// build left in the catalog outlives the session. Not interruptible:
    /// the signal that may have brought us here must not stop the cleanup.
    async fn cleanup_session(&self, client: Object) -> Result<Object> {
        // An empty query: the error that ended the session can arrive
        // before the client notices the connection is gone.
        if !client.is_closed() && client.batch_execute("").await.is_ok() {
            return Ok(client);
        }
        // Given back first: it may hold the pool's last free slot, and the
        // pool discards a closed connection.
        drop(client);
        let fresh = self.database.connection().await?;
        self.set_up(&fresh).await?;
        Ok(fresh)
    }

    /// Drops the broken index a rebuild replaces, if there is one.
    async fn drop_broken(&self, client: &Client, planned: &PlannedIndex) -> Result<()> {
        let Some(drop) = &planned.drop else {
            return Ok(());
        };
        let what = format!("dropping the INVALID index {}", planned.name.display());
        self.run(client, drop, &what, true)
            .await
            .map_err(|failure| self.error(failure, &what))
    }

    /// One index, start to finish; `None` when it was not attempted
    /// because another build failed first.
    async fn job(&self, planned: &PlannedIndex, with_drop: bool) -> Result<Option<Built>> {
        self.interrupt.check()?;
        if self.failed.get() {
            return Ok(None);
        }
        let result = self.build(planned, with_drop).await;
        if result.is_err() {
            self.failed.set(true);
        }
        result.map(Some)
    }

    async fn build(&self, planned: &PlannedIndex, with_drop: bool) -> Result<Built> {
        let started = Instant::now();
        let label = &planned.name.name;
        let what = format!("building index {label} on {}", planned.table.display());
        let (client, pid) = self.session().await?;
        if with_drop {
            self.drop_broken(&client, planned).await?;
        }
        let bar = self.progress.start(label, pid);
        let mut created = Vec::new();
        let mut result = Ok(());
        for statement in &planned.build {
            created.extend(statement.creates.clone());
            result = self.run(&client, statement, &what, true).await;
            if result.is_err() {
                break;
            }
        }
        let checked = match result {
            Ok(()) => self.check(&client, &planned.name).await,
            Err(failure) => Err(self.error(failure, &what)),
        };
        drop(bar);
        match checked {
            Ok(size_bytes) => {
                let duration = started.elapsed();
                self.progress.note(format!(
                    "{} {label} on {} in {:.2}s ({})",
                    if planned.drop.is_some() {
                        "rebuilt"
                    } else {
                        "created"
                    },
                    planned.table.display(),
                    duration.as_secs_f64(),
                    crate::report::bytes(size_bytes)
                ));
                Ok(Built {
                    size_bytes,
                    duration,
                })
            }
            Err(error) => Err(self.clean_up(client, &created, error).await),
        }
    }

    /// The size of a finished index, once the server says it is valid and
    /// ready.
    async fn check(&self, client: &Client, index: &QualifiedName) -> Result<i64> {
        let row = client
            .query_typed_opt(
                &format!(
                    "SELECT i.indisvalid AND i.indisready, {INDEX_SIZE_SQL}
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE i.indexrelid = to_regclass($1)::oid"
                ),
                &[(&index.to_string(), Type::TEXT)],
            )
            .await
            .map_err(|e| query_error(&format!("checking index {}", index.display()), &e))?;
        match row {
            Some(row) if row.get::<_, bool>(0) => Ok(row.get(1)),
            Some(_) => Err(Error::database(format!(
                "index {} was built but PostgreSQL does not mark it valid and ready",
                index.display()
            ))),
            None => Err(Error::database(format!(
                "index {} is missing after its build; another session may have dropped it",
                index.display()
            ))),
        }
    }

    /// Drops what a failed build created, newest first, and says so in the
    /// error. An index attached to a partitioned index goes with it.
    async fn clean_up(&self, client: Object, created: &[QualifiedName], error: Error) -> Error {
        let client = match created {
            [] => client,
            _ => match self.cleanup_session(client).await {
                Ok(client) => client,
                Err(reconnect) => {
                    let names: Vec<String> = created.iter().map(QualifiedName::display).collect();
                    let advice = format!(
                        "the unfinished {} {} could not be dropped ({reconnect}); once the server \
                         is back, drop {} or run perfaudit indexes again, which rebuilds an \
                         INVALID index",
                        if names.len() == 1 { "index" } else { "indexes" },
                        names.join(", "),
                        if names.len() == 1 { "it" } else { "them" },
                    );
                    return self.left_behind(error, &advice);
                }
            },
        };
        let mut dropped = Vec::new();
        for index in created.iter().rev() {
            match self.drop_leftover(&client, index).await {
                Ok(true) => dropped.push(index.display()),
                Ok(false) => {}
                Err(failure) => {
                    let reason = match failure {
                        Failure::Query(e, _) => e
                            .as_db_error()
                            .map_or_else(|| e.to_string(), server_message),
                        Failure::Interrupted(signal) => format!("interrupted by {signal}"),
                    };
                    let advice = format!(
                        "the unfinished index {} could not be dropped ({reason}); drop it with \
                         DROP INDEX CONCURRENTLY {index}",
                        index.display()
                    );
                    return self.left_behind(error, &advice);
                }
            }
        }
        let note = match dropped.len() {
            0 => "no index was left behind".to_owned(),
            1 => format!("the unfinished index {} was dropped again", dropped[0]),
            _ => format!(
                "the unfinished indexes {} were dropped again",
                dropped.join(", ")
            ),
        };
        if matches!(error, Error::Interrupted(_)) {
            self.progress.note(&note);
        }
        with_note(error, &note)
    }

    /// `error`, noting what the cleanup could not remove; when the error is an
    /// interruption, which keeps its own message, the note goes to stderr.
    fn left_behind(&self, error: Error, advice: &str) -> Error {
        if matches!(error, Error::Interrupted(_)) {
            self.progress.warn(advice);
        }
        with_note(error, advice)
    }

    /// Drops `index` if it exists and is not attached to a parent index (the
    /// parent's drop takes it along); whether it was dropped.
    async fn drop_leftover(
        &self,
        client: &Client,
        index: &QualifiedName,
    ) -> std::result::Result<bool, Failure> {
        let row = client
            .query_typed_opt(
                "SELECT c.relkind = 'I',
                        EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid)
                 FROM pg_class c WHERE c.oid = to_regclass($1)::oid",
                &[(&index.to_string(), Type::TEXT)],
            )
            .await
            .map_err(|e| Failure::Query(e, 1))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (partitioned, attached): (bool, bool) = (row.get(0), row.get(1));
        if attached {
            return Ok(false);
        }
        let drop = Statement {
            sql: sql::drop_index(index, self.concurrently && !partitioned),
            creates: None,
        };
        // Not interruptible: the signal that may have brought us here
        // must not stop the cleanup (a second one exits at once).
        let what = format!("dropping the unfinished index {}", index.display());
        self.run(client, &drop, &what, false).await?;
        Ok(true)
    }

    async fn analyze(&self, planned: &PlannedIndex, analyze: &Statement) -> Result<()> {
        let (client, _) = self.session().await?;
        let started = Instant::now();
        let what = format!(
            "analyzing {} for the statistics of its expression indexes (the indexes are built)",
            planned.table.display()
        );
        self.run(&client, analyze, &what, true)
            .await
            .map_err(|failure| self.error(failure, &what))?;
        self.progress.note(format!(
            "analyzed {} for the statistics of its expression indexes in {:.2}s",
            planned.table.display(),
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Runs `statement`, trying again while a lock is not granted, up to
    /// the retries allowed; a leftover of a failed attempt is dropped
    /// before the next.
    async fn run(
        &self,
        client: &Client,
        statement: &Statement,
        what: &str,
        interruptible: bool,
    ) -> std::result::Result<(), Failure> {
        let attempts = self.settings.lock_retries + 1;
        let mut attempt = 1;
        loop {
            let error = match self.run_once(client, &statement.sql, interruptible).await {
                Ok(()) => return Ok(()),
                Err(Failure::Query(error, _)) => error,
                Err(interrupted) => return Err(interrupted),
            };
            if !retryable(&error) || attempt == attempts {
                return Err(Failure::Query(error, attempt));
            }
            if let Some(leftover) = &statement.creates {
                // Boxed: the drop runs through `run` too.
                Box::pin(self.drop_leftover(client, leftover)).await?;
            }
            let pause = backoff(attempt);
            self.progress.note(format!(
                "{what}: {} (attempt {attempt} of {attempts}); trying again in {:.1}s",
                error
                    .as_db_error()
                    .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
                pause.as_secs_f64()
            ));
            if interruptible {
                tokio::select! {
                    signal = self.interrupt.wait() => return Err(Failure::Interrupted(signal)),
                    () = tokio::time::sleep(pause) => {}
                }
            } else {
                tokio::time::sleep(pause).await;
            }
            attempt += 1;
        }
    }

    /// Sends `sql` once. On a signal, cancels it on the server and waits for
    /// it to end, so that the session is free for the cleanup.
    async fn run_once(
        &self,
        client: &Client,
        sql: &str,
        interruptible: bool,
    ) -> std::result::Result<(), Failure> {
        let query = client.execute_typed(sql, &[]);
        tokio::pin!(query);
        let signal = if interruptible {
            tokio::select! {
                biased;
                result = &mut query => return result.map(drop).map_err(|e| Failure::Query(e, 1)),
                signal = self.interrupt.wait() => signal,
            }
        } else {
            return query.await.map(drop).map_err(|e| Failure::Query(e, 1));
        };
        if let Err(e) = client.cancel_token().cancel_query(self.tls.clone()).await {
            self.progress
                .warn(format!("could not cancel the statement on the server: {e}"));
        }
        let _ = query.await;
        Err(Failure::Interrupted(signal))
    }

    /// The error for a failure while `what`.
    fn error(&self, failure: Failure, what: &str) -> Error {
        match failure {
            Failure::Interrupted(signal) => Error::Interrupted(signal),
            Failure::Query(error, attempts) if retryable(&error) => Error::database(format!(
                "{what} failed: {} ({attempts} attempts, each waiting up to {}); another session \
                 holds a conflicting lock (a long transaction or DDL): find it in pg_locks and \
                 pg_stat_activity and run again, or allow longer waits with --lock-timeout and \
                 --lock-retries",
                error
                    .as_db_error()
                    .map_or_else(|| error.to_string(), server_message),
                humantime::format_duration(self.settings.lock_timeout)
            )),
            Failure::Query(error, _) => query_error(what, &error),
        }
    }
}

/// `error` with `note` added to its message; an interruption stays as it is
/// (the caller tells its cleanup on stderr).
fn with_note(error: Error, note: &str) -> Error {
    match error {
        Error::Input(message) => Error::Input(format!("{message}; {note}")),
        Error::Database(message) => Error::Database(format!("{message}; {note}")),
        Error::Gate(message) => Error::Gate(format!("{message}; {note}")),
        interrupted @ Error::Interrupted(_) => interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        let pauses: Vec<u64> = (1..=7).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn notes_keep_the_kind_of_error() {
        let error = with_note(Error::database("building failed"), "nothing left");
        assert!(matches!(&error, Error::Database(m) if m == "building failed; nothing left"));
        let interrupted = with_note(Error::Interrupted(Signal::Interrupt), "x");
        assert!(matches!(interrupted, Error::Interrupted(Signal::Interrupt)));
    }
}
