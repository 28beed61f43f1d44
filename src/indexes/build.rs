//! Running a plan safely on a live database.
//!
//! - Each statement is sent alone on an autocommit session whose settings
//!   were sent before it (`CREATE INDEX CONCURRENTLY` refuses to run in a
//!   transaction block), through the extended protocol, which the server
//!   refuses to run more than one statement through. The session goes back
//!   to the pool with its settings reset ([`super::session`]).
//! - A lock not granted in time (or a deadlock) is retried a bounded number
//!   of times with a growing pause. `lock_timeout` bounds the lock waits of
//!   every statement but `CREATE INDEX CONCURRENTLY`, which waits for other
//!   transactions after its build: it runs with `lock_timeout = 0`, and
//!   [`super::watch`] stops it only while it waits for its table, and
//!   names what it waits for afterwards. `statement_timeout` is off: a
//!   build cut short leaves an INVALID index. Before it starts, the
//!   transactions it would wait for are waited for ([`super::prewait`]),
//!   so that a wait that runs out leaves nothing behind.
//! - Concurrent builds run one at a time (they conflict on their table, and
//!   wait for each other's snapshots); plain builds run in parallel, each
//!   on its own pooled connection (their SHARE locks do not conflict).
//! - A build is all or nothing: when it fails or is interrupted (its server
//!   work cancelled first), every index it created is dropped again, so no
//!   INVALID index is left behind. A finished build is checked valid and
//!   ready before it is called done.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::plan::{Plan, PlannedIndex, Statement};
use super::prewait;
use super::progress::BuildBar;
use super::session::{BuildSession, SessionSettings};
use super::sql;
use super::watch::{Blocker, Limits, Verdict, Watch, Watched};
use crate::db::Database;
use crate::db::cancel::cancel_backend_until_done;
use crate::db::errors::{query_error, server_message};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::pg::catalog::indexes;
use crate::signal::Signal;
use crate::sql::ident::QualifiedName;
use crate::ui::{Line, Progress};

/// The pause after the first lock not granted; it doubles with each retry.
/// Short, because each attempt has already waited `lock_timeout`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest pause between attempts, so that a run with many retries
/// keeps trying at a steady pace.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How a statement waits for locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWaits {
    /// Bounds each lock wait (zero: as long as it takes).
    pub timeout: Duration,
    /// How many times it is tried again when a lock is not granted.
    pub retries: u32,
}

impl LockWaits {
    /// The lock waits of a run's statements unless the user chose others.
    ///
    /// A concurrent build's lock (SHARE UPDATE EXCLUSIVE) and its drops
    /// conflict with no reader or writer: while one waits in the lock
    /// queue, only DDL and `VACUUM` queue behind it, so it may wait long
    /// (5s, 3 retries). A plain build's SHARE lock (and a plain drop's
    /// ACCESS EXCLUSIVE) conflicts with every writer, and every writer that
    /// comes after it queues behind it for as long as it waits, even when
    /// the build never starts: each wait is kept short (500ms, the
    /// "a few hundred milliseconds" that migration guides such as
    /// strong_migrations advise, longer than ordinary write transactions
    /// last), and tried more often (10 retries: under a minute in all with
    /// the pauses), so that writes stall for at most half a second at a
    /// time.
    pub fn default_for(concurrently: bool) -> LockWaits {
        if concurrently {
            LockWaits {
                timeout: Duration::from_secs(5),
                retries: 3,
            }
        } else {
            LockWaits {
                timeout: Duration::from_millis(500),
                retries: 10,
            }
        }
    }
}

/// How the removal of an unfinished index waits for locks, whatever the
/// build's own settings. `DROP INDEX CONCURRENTLY` waits for every
/// transaction holding a lock on the table (readers too) and blocks no
/// reader or writer meanwhile, so each wait may be longer than a plain
/// build's; the drop of a partitioned index (never concurrent) queues for
/// the table's ACCESS EXCLUSIVE lock, which blocks everything behind it, so
/// not much longer. Tried again with the same pauses as a build: when the
/// cleanup truly cannot drop an index, it says so within about 17.5s
/// (5 waits of 2s, pauses of at most 0.5 + 1 + 2 + 4s).
const CLEANUP_LOCK_WAITS: LockWaits = LockWaits {
    timeout: Duration::from_secs(2),
    retries: 4,
};

/// How builds run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings of the build sessions; their `lock_timeout` also bounds
    /// a concurrent build's wait for its table.
    pub session: SessionSettings,
    /// How many times a statement is tried again when a lock is not granted.
    pub lock_retries: u32,
    /// How long a concurrent build may wait for other transactions to end
    /// (`None`: as long as they take).
    pub transaction_wait_timeout: Option<Duration>,
}

impl Settings {
    /// How the build's statements wait for locks.
    fn lock_waits(&self) -> LockWaits {
        LockWaits {
            timeout: self.session.lock_timeout,
            retries: self.lock_retries,
        }
    }

    /// How `statement` waits for locks. The `ATTACH PARTITION` of an index
    /// that was there before takes ACCESS EXCLUSIVE on an index queries
    /// use, so every query on its partition queues behind it while it
    /// waits: it waits no longer than a plain build's statements (unless
    /// waits are unbounded), however long a concurrent build may wait.
    fn lock_waits_for(&self, statement: &Statement) -> LockWaits {
        let waits = self.lock_waits();
        match &statement.adopts {
            Some(_) if !waits.timeout.is_zero() => LockWaits {
                timeout: waits.timeout.min(LockWaits::default_for(false).timeout),
                ..waits
            },
            _ => waits,
        }
    }
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Its size on disk.
    pub size_bytes: i64,
    /// How long it took, drop of a broken predecessor included.
    pub duration: Duration,
}

/// The connections a run that builds needs at least: the run's own session
/// (which holds the run lock and watches the builds) and one to build on.
const MIN_CONNECTIONS: usize = 2;

/// Runs `plan` on sessions of `database`, watching on `own`, the run's own
/// session; returns, for each planned index, its build if it was built.
pub async fn execute(
    database: &Database,
    own: &Client,
    interrupt: &Interrupt,
    progress: &dyn Progress,
    plan: &Plan,
    settings: &Settings,
) -> Result<Vec<Option<Built>>> {
    let limits = Limits {
        lock: (!settings.session.lock_timeout.is_zero()).then_some(settings.session.lock_timeout),
        transactions: settings.transaction_wait_timeout,
    };
    let watch = Watch::new(progress, limits);
    let runner = Runner {
        database,
        own,
        interrupt,
        progress,
        watch: &watch,
        settings,
        concurrently: plan.concurrently,
        tls: database.tls().clone(),
        failed: Cell::new(false),
    };
    let jobs: Vec<usize> = (0..plan.indexes.len())
        .filter(|&n| plan.indexes[n].action.builds())
        .collect();
    if jobs.is_empty() {
        return Ok(vec![None; plan.indexes.len()]);
    }
    let max_size = database.options().max_size;
    if max_size < MIN_CONNECTIONS {
        return Err(Error::input(format!(
            "building indexes needs --pool-size {MIN_CONNECTIONS} or more: one session \
             keeps other runs out and watches the builds, the others build"
        )));
    }
    // A first session checks the settings before anything is built (the
    // server refuses a bad --maintenance-work-mem), and runs the drops of
    // plain rebuilds: they lock the whole table, so they go before the
    // parallel builds.
    let drops_first = !plan.concurrently;
    let session = runner.session().await?;
    if drops_first {
        for &n in &jobs {
            runner.drop_broken(&session, &plan.indexes[n]).await?;
        }
    }
    session.release().await;
    let workers = if plan.concurrently {
        1
    } else {
        // The run's own session is taken.
        jobs.len().min(max_size - 1)
    };
    let runner = &runner;
    let builds = stream::iter(&jobs)
        .map(|&n| async move {
            let planned = &plan.indexes[n];
            (n, runner.job(planned, !drops_first).await)
        })
        .buffer_unordered(workers)
        .collect::<Vec<_>>();
    // Concurrent builds need the watcher to bound their table lock; plain
    // ones are watched only for their progress bars.
    let results = if plan.concurrently || progress.shown() {
        tokio::select! {
            results = builds => results,
            never = watch.poll(own) => match never {},
        }
    } else {
        builds.await
    };
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
        message.push_str("; once the cause is fixed, run again to build the rest");
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
    /// The watcher stopped it (and it was cancelled on the server), after
    /// `attempts` tries.
    Stopped(Verdict, u32),
    /// A concurrent build was never sent: the transactions it would wait
    /// for did not end in time.
    NotStarted(prewait::Held),
}

impl Failure {
    /// Whether another attempt may succeed: a lock not granted in time,
    /// or a deadlock (PostgreSQL cancelled our side of it).
    fn retryable(&self) -> bool {
        match self {
            Failure::Query(error, _) => lock_failure(error),
            Failure::Stopped(verdict, _) => matches!(verdict, Verdict::LockWait { .. }),
            Failure::Interrupted(_) | Failure::NotStarted(_) => false,
        }
    }

    /// The failure after `attempts` tries.
    fn after(self, attempts: u32) -> Failure {
        match self {
            Failure::Query(error, _) => Failure::Query(error, attempts),
            Failure::Stopped(verdict, _) => Failure::Stopped(verdict, attempts),
            interrupted => interrupted,
        }
    }

    /// What went wrong, in the server's words when it said something.
    fn reason(&self) -> String {
        match self {
            Failure::Query(error, _) => error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
            Failure::Stopped(Verdict::LockWait { .. }, _) => {
                "the lock on the table was not granted in time".to_owned()
            }
            Failure::Stopped(Verdict::TransactionWait { .. }, _) | Failure::NotStarted(_) => {
                "other transactions did not end in time".to_owned()
            }
            Failure::Stopped(Verdict::Lost(reason), _) => {
                format!("the builds could not be watched any more ({reason})")
            }
            Failure::Interrupted(signal) => format!("interrupted by {signal}"),
        }
    }
}

/// Whether the server gave up on a lock: not granted within `lock_timeout`,
/// or a deadlock (PostgreSQL cancelled our side of it).
fn lock_failure(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The pause before attempt `attempt + 1` (counting from 1): doubling up
/// to a ceiling, of which `jitter` (in [0, 1)) picks between half and all,
/// so that runs that failed together (parallel plain builds, two
/// pipelines) do not try again in step.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
        .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) that differs from call to call: the standard
/// library's randomly keyed hasher, fresh keys each time, over the clock.
/// Pauses need no better randomness.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Who holds the lock a statement waited for, in words.
fn holder(blocker: Option<&Blocker>) -> String {
    match blocker {
        Some(blocker) => format!("{} holds a lock on it that conflicts", blocker.describe()),
        None => "another session holds a lock on it that conflicts (a long transaction or DDL)"
            .to_owned(),
    }
}

/// ` in 3 attempts`, or nothing for one.
fn in_attempts(attempts: u32) -> String {
    if attempts == 1 {
        String::new()
    } else {
        format!(" in {attempts} attempts")
    }
}

struct Runner<'a> {
    database: &'a Database,
    /// The run's own session, which cancels the builds' work on the
    /// server.
    own: &'a Client,
    interrupt: &'a Interrupt,
    progress: &'a dyn Progress,
    watch: &'a Watch<'a>,
    settings: &'a Settings,
    concurrently: bool,
    tls: MakeRustlsConnect,
    /// Set by the first failed build: no new build starts after it.
    failed: Cell<bool>,
}

impl Runner<'_> {
    /// A pooled session set up for builds.
    async fn session(&self) -> Result<BuildSession> {
        self.interrupt
            .guard(BuildSession::open(self.database, &self.settings.session))
            .await
    }

    /// Drops the broken index a rebuild replaces, if there is one.
    async fn drop_broken(&self, session: &BuildSession, planned: &PlannedIndex) -> Result<()> {
        let Some(drop) = &planned.drop else {
            return Ok(());
        };
        let what = format!("dropping the INVALID index {}", planned.name.display());
        self.run(session, None, drop, &what, self.settings.lock_waits(), true)
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
        let label = &planned.name.name;
        let what = format!("building index {label} on {}", planned.table.display());
        let session = self.session().await?;
        let mut created = Vec::new();
        let mut adopted = false;
        let built = match self
            .build_on(
                &session,
                planned,
                with_drop,
                &what,
                &mut created,
                &mut adopted,
            )
            .await
        {
            Ok(built) => {
                session.release().await;
                built
            }
            Err(error) => {
                // Once an existing index is attached to it, or when it was
                // there before, the parent index stays: its drop would take
                // the partitions' existing indexes along.
                let kept = (adopted || planned.parts.completing).then_some(&planned.name);
                created.retain(|index| Some(index) != kept);
                return Err(self.clean_up(session, &created, kept, error).await);
            }
        };
        self.progress.say(
            Line::Status,
            &format!(
                "{} {label} on {} in {:.2}s ({})",
                if planned.drop.is_some() {
                    "rebuilt"
                } else {
                    "created"
                },
                planned.table.display(),
                built.duration.as_secs_f64(),
                crate::text::bytes(built.size_bytes)
            ),
        );
        Ok(built)
    }

    /// Builds `planned` on `session`; every index a build statement
    /// creates is added to `created` before it runs, for the cleanup, and
    /// `adopted` is set once an existing index is attached to it.
    async fn build_on(
        &self,
        session: &BuildSession,
        planned: &PlannedIndex,
        with_drop: bool,
        what: &str,
        created: &mut Vec<QualifiedName>,
        adopted: &mut bool,
    ) -> Result<Built> {
        let started = Instant::now();
        if with_drop {
            self.drop_broken(session, planned).await?;
        }
        let watched = self.watch.session(session.pid(), &planned.name.name);
        let bar = BuildBar::start(self.progress, &planned.name.name, session.pid());
        let mut result = Ok(());
        for statement in &planned.build {
            created.extend(statement.creates.clone());
            result = self
                .run(
                    session,
                    Some(&watched),
                    statement,
                    what,
                    self.settings.lock_waits_for(statement),
                    true,
                )
                .await;
            if result.is_err() {
                break;
            }
            *adopted |= statement.adopts.is_some();
        }
        let checked = match result {
            Ok(()) => self.check(session, &planned.name).await,
            Err(failure) => Err(self.error(failure, what)),
        };
        drop(bar);
        checked.map(|size_bytes| Built {
            size_bytes,
            duration: started.elapsed(),
        })
    }

    /// The size of a finished index, once the server says it is valid and
    /// ready.
    async fn check(&self, client: &Client, index: &QualifiedName) -> Result<i64> {
        let state = indexes::state(client, index)
            .await
            .map_err(|e| query_error(&format!("checking index {}", index.display()), &e))?;
        match state {
            Some(state) if state.valid && state.ready => Ok(state.size_bytes),
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
    /// error; gives the session back. An index attached to a partitioned
    /// index goes with it. `kept` is the partitioned index that stays,
    /// INVALID, with what is attached to it.
    async fn clean_up(
        &self,
        session: BuildSession,
        created: &[QualifiedName],
        kept: Option<&QualifiedName>,
        error: Error,
    ) -> Error {
        let error = match kept {
            Some(index) => self.left_behind(
                error,
                &format!(
                    "index {} stays, INVALID until every partition's index is attached to it \
                     (dropping it would drop the existing partitions' indexes attached to it): \
                     run perfaudit indexes again to complete it",
                    index.display()
                ),
            ),
            None => error,
        };
        // Nothing was created when the drop of the INVALID index it
        // replaces failed: that index is still there, as the error says.
        if created.is_empty() {
            session.release().await;
            return error;
        }
        let session = match self.cleanup_session(session).await {
            Ok(session) => session,
            Err(reconnect) => {
                let names: Vec<String> = created.iter().map(QualifiedName::display).collect();
                let advice = format!(
                    "the unfinished {} {} could not be dropped ({reconnect}); once the server is \
                     back, drop {} or run perfaudit indexes again, which rebuilds an INVALID index",
                    crate::text::plural(names.len(), "index", "indexes"),
                    names.join(", "),
                    crate::text::plural(names.len(), "it", "them"),
                );
                return self.left_behind(error, &advice);
            }
        };
        let mut dropped = Vec::new();
        for (n, index) in created.iter().rev().enumerate() {
            match self.drop_leftover(&session, index).await {
                Ok(true) => dropped.push(index.display()),
                Ok(false) => {}
                Err(failure) => {
                    let mut advice = leftover_advice(&session, index, &failure).await;
                    // The parent of a partition's index, created earlier,
                    // is there too.
                    let rest: Vec<String> = created
                        .iter()
                        .rev()
                        .skip(n + 1)
                        .map(QualifiedName::display)
                        .collect();
                    if !rest.is_empty() {
                        advice
                            .push_str(&format!("; left too, not yet dropped: {}", rest.join(", ")));
                    }
                    session.release().await;
                    return self.left_behind(error, &advice);
                }
            }
        }
        session.release().await;
        let note = match dropped.len() {
            0 => "no index was left behind".to_owned(),
            1 => format!("the unfinished index {} was dropped again", dropped[0]),
            _ => format!(
                "the unfinished indexes {} were dropped again",
                dropped.join(", ")
            ),
        };
        if matches!(error, Error::Interrupted(_)) {
            self.progress.say(Line::Status, &note);
        }
        error.with_note(&note)
    }

    /// The session to clean up on: the build's own, or a new one when the
    /// server ended it (`pg_terminate_backend`, a restart), since what the
    /// build left in the catalog outlives the session. Not interruptible:
    /// the signal that may have brought us here must not stop the cleanup.
    async fn cleanup_session(&self, session: BuildSession) -> Result<BuildSession> {
        // An empty query: the error that ended the session can arrive
        // before the client notices the connection is gone.
        if !session.is_closed() && session.batch_execute("").await.is_ok() {
            return Ok(session);
        }
        // Closed first: it may hold the pool's last free slot.
        drop(session);
        BuildSession::open(self.database, &self.settings.session).await
    }

    /// `error`, noting what the cleanup could not remove; when the error is
    /// an interruption, which keeps its own message, the note goes to
    /// stderr too.
    fn left_behind(&self, error: Error, advice: &str) -> Error {
        if matches!(error, Error::Interrupted(_)) {
            self.progress.say(Line::Warning, advice);
        }
        error.with_note(advice)
    }

    /// Drops `index` if it exists and is not attached to a parent index (the
    /// parent's drop takes it along); whether it was dropped.
    async fn drop_leftover(
        &self,
        session: &BuildSession,
        index: &QualifiedName,
    ) -> std::result::Result<bool, Failure> {
        let row = session
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
        let drop = Statement::new(sql::drop_index(index, self.concurrently && !partitioned));
        // Not interruptible: the signal that may have brought us here
        // must not stop the cleanup (a second one exits at once).
        let what = format!("dropping the unfinished index {}", index.display());
        self.run(session, None, &drop, &what, CLEANUP_LOCK_WAITS, false)
            .await?;
        Ok(true)
    }

    async fn analyze(&self, planned: &PlannedIndex, analyze: &Statement) -> Result<()> {
        let session = self.session().await?;
        let started = Instant::now();
        let what = format!(
            "analyzing {} for the statistics of its expression indexes (the indexes are built)",
            planned.table.display()
        );
        let result = self
            .run(
                &session,
                None,
                analyze,
                &what,
                self.settings.lock_waits(),
                true,
            )
            .await;
        session.release().await;
        result.map_err(|failure| self.error(failure, &what))?;
        self.progress.say(
            Line::Status,
            &format!(
                "analyzed {} for the statistics of its expression indexes in {:.2}s",
                planned.table.display(),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// Runs `statement`, each lock wait bounded and tried again as `waits`
    /// says; a leftover of a failed attempt is dropped before the next. A
    /// concurrent build runs guarded by the watcher of its session,
    /// `watched`.
    async fn run(
        &self,
        session: &BuildSession,
        watched: Option<&Watched<'_, '_>>,
        statement: &Statement,
        what: &str,
        waits: LockWaits,
        interruptible: bool,
    ) -> std::result::Result<(), Failure> {
        let attempts = waits.retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let failure = match self
                .run_once(session, watched, statement, waits.timeout, interruptible)
                .await
            {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !failure.retryable() || attempt == attempts {
                return Err(failure.after(attempt));
            }
            if let Some(leftover) = &statement.creates {
                // Boxed: the drop runs through `run` too.
                Box::pin(self.drop_leftover(session, leftover)).await?;
            }
            let pause = backoff(attempt, jitter());
            self.progress.say(
                Line::Status,
                &format!(
                    "{what}: {} (attempt {attempt} of {attempts}); trying again in {:.1}s",
                    failure.reason(),
                    pause.as_secs_f64()
                ),
            );
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

    /// Sends `statement` once, with the session's `lock_timeout` off when
    /// the watcher guards it (and on otherwise); a guarded concurrent build
    /// is sent only once the transactions it would wait for have ended. On
    /// a signal or the watcher's verdict, cancels it on the server and
    /// waits for it to end, so that the session is free for the cleanup.
    async fn run_once(
        &self,
        session: &BuildSession,
        watched: Option<&Watched<'_, '_>>,
        statement: &Statement,
        lock_timeout: Duration,
        interruptible: bool,
    ) -> std::result::Result<(), Failure> {
        let table = statement
            .concurrent_on
            .as_ref()
            .filter(|_| watched.is_some());
        if let Some(table) = table {
            self.wait_before(session, statement, table, interruptible)
                .await?;
        }
        let mut guarded = watched.filter(|_| table.is_some()).map(Watched::guard);
        let lock_timeout = match guarded {
            Some(_) => Duration::ZERO,
            None => lock_timeout,
        };
        session
            .use_lock_timeout(lock_timeout)
            .await
            .map_err(|e| Failure::Query(e, 1))?;
        let query = session.execute_typed(&statement.sql, &[]);
        tokio::pin!(query);
        let verdict = async {
            match &mut guarded {
                Some(guarded) => guarded.verdict().await,
                None => std::future::pending().await,
            }
        };
        let failure = if interruptible {
            tokio::select! {
                biased;
                result = &mut query => return result.map(drop).map_err(|e| Failure::Query(e, 1)),
                signal = self.interrupt.wait() => Failure::Interrupted(signal),
                verdict = verdict => Failure::Stopped(verdict, 1),
            }
        } else {
            tokio::select! {
                biased;
                result = &mut query => return result.map(drop).map_err(|e| Failure::Query(e, 1)),
                verdict = verdict => Failure::Stopped(verdict, 1),
            }
        };
        let ended =
            cancel_backend_until_done(self.own, session.pid(), session, &self.tls, query).await;
        match (failure, ended) {
            // It ended well before the cancel reached it: done is done.
            (Failure::Stopped(..), Ok(_)) => Ok(()),
            (failure, _) => Err(failure),
        }
    }

    /// Waits until the transactions a concurrent build on `table` would
    /// wait for have ended (see [`prewait`]), within the transaction wait
    /// timeout.
    async fn wait_before(
        &self,
        session: &BuildSession,
        statement: &Statement,
        table: &QualifiedName,
        interruptible: bool,
    ) -> std::result::Result<(), Failure> {
        // Named as the watcher names the build: by its index.
        let label = statement
            .creates
            .as_ref()
            .map_or_else(|| table.display(), |index| index.name.clone());
        let wait = prewait::wait(
            session,
            table,
            &label,
            self.settings.transaction_wait_timeout,
            self.progress,
        );
        let held = if interruptible {
            tokio::select! {
                held = wait => held,
                signal = self.interrupt.wait() => return Err(Failure::Interrupted(signal)),
            }
        } else {
            wait.await
        };
        match held.map_err(|e| Failure::Query(e, 1))? {
            Some(held) => Err(Failure::NotStarted(held)),
            None => Ok(()),
        }
    }

    /// The error for a failure while `what`.
    fn error(&self, failure: Failure, what: &str) -> Error {
        let lock_timeout = humantime::format_duration(self.settings.session.lock_timeout);
        match failure {
            Failure::Interrupted(signal) => Error::Interrupted(signal),
            Failure::Stopped(Verdict::LockWait { blocker }, attempts) => Error::database(format!(
                "{what} failed: its lock on the table was not granted within {lock_timeout}{}: \
                 {}; nothing was built: end that transaction (or let that DDL finish) and run \
                 again, or allow longer waits with --lock-timeout and --lock-retries",
                in_attempts(attempts),
                holder(blocker.as_ref())
            )),
            Failure::Stopped(Verdict::TransactionWait { waited, blocker }, _) => {
                Error::database(format!(
                    "{what} stopped: it waited {} for {} to end (--transaction-wait-timeout), \
                     which a concurrent build must before it ends; end that transaction, or \
                     allow a longer wait",
                    crate::text::whole_seconds(waited),
                    blocker.map_or_else(
                        || "other transactions".to_owned(),
                        |b| format!("the transaction of {}", b.describe())
                    )
                ))
            }
            Failure::NotStarted(held) => Error::database(format!(
                "{what} did not start: it waited {} for the transaction of {} to end \
                 (--transaction-wait-timeout): a concurrent build would wait for it (it holds \
                 a lock on the table, or a snapshot older than the build), and so would the \
                 removal of its unfinished index; nothing was built: end that transaction, or \
                 allow a longer wait",
                crate::text::whole_seconds(held.waited),
                held.by.describe()
            )),
            Failure::Stopped(Verdict::Lost(reason), _) => Error::database(format!(
                "{what} was stopped: the run's own session, which watches the builds, failed \
                 ({reason}); run again"
            )),
            Failure::Query(error, attempts) if lock_failure(&error) => Error::database(format!(
                "{what} failed: {}{}, each waiting up to {lock_timeout}: {}; end that \
                     transaction (or let that DDL finish) and run again, or allow longer waits \
                     with --lock-timeout and --lock-retries",
                error
                    .as_db_error()
                    .map_or_else(|| error.to_string(), server_message),
                in_attempts(attempts),
                holder(None)
            )),
            Failure::Query(error, _) => query_error(what, &error),
        }
    }
}

/// What the cleanup says of `index`, which it could not drop (`failure`):
/// what is left exactly (valid or not, maintained by writes or not), who
/// holds up its removal, and the statement that removes it.
async fn leftover_advice(session: &Client, index: &QualifiedName, failure: &Failure) -> String {
    let attempts = match failure {
        Failure::Query(_, attempts) | Failure::Stopped(_, attempts) => *attempts,
        _ => 1,
    };
    let why = format!("{}{}", failure.reason(), in_attempts(attempts));
    let Ok(Some(found)) = indexes::state(session, index).await else {
        return format!(
            "the unfinished index {} could not be dropped ({why}); drop it with DROP INDEX \
             CONCURRENTLY {index}",
            index.display()
        );
    };
    let table = &found.table;
    let state = match (found.valid, found.ready) {
        (true, _) => "valid".to_owned(),
        (false, true) => format!(
            "INVALID but ready: every write to {} maintains it",
            table.display()
        ),
        (false, false) => "INVALID and not ready: writes no longer maintain it".to_owned(),
    };
    let held_by = match prewait::holders(session, table, prewait::Scope::Drop).await {
        Ok(holders) => holders.first().map(|h| {
            format!(
                ", as {} holds a lock on {}: once that transaction ends,",
                h.session.describe(),
                table.display()
            )
        }),
        Err(_) => None,
    };
    format!(
        "the unfinished index {} is left behind, {state}; it could not be dropped ({why}){} \
         drop it with {}, or run perfaudit indexes again, which rebuilds an INVALID index",
        index.display(),
        held_by.unwrap_or_else(|| ";".to_owned()),
        sql::drop_index(index, !found.partitioned)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling_and_jitters_down_to_half() {
        let pauses = |jitter| -> Vec<u64> {
            (1..=7)
                .map(|a| backoff(a, jitter).as_millis() as u64)
                .collect()
        };
        assert_eq!(pauses(0.999_999), [499, 999, 1999, 3999, 7999, 7999, 7999]);
        assert_eq!(pauses(0.0), [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(backoff(u32::MAX, 1.0), MAX_BACKOFF);
        let drawn: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(drawn.iter().all(|j| (0.0..1.0).contains(j)), "{drawn:?}");
        assert!(drawn.iter().any(|j| *j != drawn[0]), "it varies");
    }

    #[test]
    fn plain_builds_wait_for_locks_briefly_and_try_more_often() {
        let concurrent = LockWaits::default_for(true);
        let plain = LockWaits::default_for(false);
        assert!(plain.timeout <= Duration::from_secs(1) && plain.timeout < concurrent.timeout);
        assert!(plain.retries > concurrent.retries);
    }
}
