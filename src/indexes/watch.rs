//! Watching the builds from the run's own session: what each build session
//! waits for, and when a concurrent build must give up.
//!
//! `lock_timeout` cannot bound only part of a statement, and a
//! `CREATE INDEX CONCURRENTLY` waits for locks twice over: first for its
//! table (a wait worth bounding: nothing is built yet, and trying again
//! later costs nothing), then, after the expensive build, for every
//! transaction older than itself, which are lock waits on their virtual
//! transaction ids. A `lock_timeout` fires in those too, and would throw
//! the build away because some unrelated transaction (an idle session, a
//! report, `pg_dump`) is still open. So a concurrent build runs with
//! `lock_timeout = 0`, and the watcher polls `pg_stat_activity` and
//! `pg_stat_progress_create_index` every [`POLL_INTERVAL`]:
//!
//! - a guarded statement waiting for a lock on a relation longer than
//!   `--lock-timeout` is stopped (and tried again later);
//! - a statement waiting for other transactions to end is never stopped for
//!   that (unless `--transaction-wait-timeout` runs out); the session it
//!   waits for is named on stderr and on its progress bar instead.
//!
//! The watcher also drives the progress bars. The decisions are pure
//! ([`Tracker::see`]); the polling is the I/O around them.

use std::cell::RefCell;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::progress::{self, ProgressRow};
use crate::ui::{Line, Progress};

/// How often the server is asked: a lock wait is cut at most this much
/// after `--lock-timeout`, for one cheap query on an idle session.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a wait lasts before it is reported: waits for writers and old
/// snapshots are part of every concurrent build and usually last
/// milliseconds.
const REPORT_WAITS_AFTER: Duration = Duration::from_secs(1);

/// What a watched session waits for, for each watched server process, and
/// the session it waits for. `pg_blocking_pids` takes the lock manager's
/// locks, so it is asked only of a session waiting for a lock (the CASE),
/// and once per session (the materialized CTE).
const WATCH_SQL: &str = "WITH watched AS MATERIALIZED (
         SELECT a.pid, a.wait_event_type, a.wait_event, p.phase,
                p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done,
                p.partitions_total, p.partitions_done, p.lockers_total, p.lockers_done,
                CASE WHEN a.wait_event_type = 'Lock'
                     THEN coalesce(nullif(p.current_locker_pid, 0)::int4,
                                   (pg_blocking_pids(a.pid))[1]) END AS blocker
         FROM pg_stat_activity a
         LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
         WHERE a.pid = ANY($1)
     )
     SELECT w.pid, w.wait_event_type = 'Lock', w.wait_event IN ('virtualxid', 'transactionid'),
            w.phase, w.blocks_total, w.blocks_done, w.tuples_total, w.tuples_done,
            w.partitions_total, w.partitions_done, w.lockers_total, w.lockers_done,
            w.blocker, b.application_name, b.state,
            extract(epoch FROM now() - b.xact_start)::float8
     FROM watched w LEFT JOIN pg_stat_activity b ON b.pid = w.blocker";

/// What a watched session is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Nothing: it runs (or does I/O).
    #[default]
    Nothing,
    /// A lock on a relation (or another object): bounded by `--lock-timeout`.
    Lock,
    /// Another transaction to end (a lock on its transaction id).
    Transaction,
    /// Before a concurrent build starts: transactions it would wait for
    /// to end ([`super::prewait`]).
    BeforeStart,
}

/// A session another one waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocker {
    /// Its server process.
    pub pid: i32,
    /// Its `application_name`, when this role may see it.
    pub application: Option<String>,
    /// Its state (`idle in transaction`, `active`), when this role may see it.
    pub state: Option<String>,
    /// How long its transaction has been open, when this role may see it.
    pub transaction_age: Option<Duration>,
}

impl Blocker {
    /// `server process 4242 (psql, idle in transaction, its transaction open
    /// for 12s)`.
    pub fn describe(&self) -> String {
        let details: Vec<String> = [
            self.application.clone().filter(|a| !a.is_empty()),
            self.state.clone(),
            self.transaction_age.map(|age| {
                format!(
                    "its transaction open for {}",
                    crate::text::whole_seconds(age)
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if details.is_empty() {
            format!("server process {}", self.pid)
        } else {
            format!("server process {} ({})", self.pid, details.join(", "))
        }
    }
}

/// One look at a watched session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sighting {
    /// What it waits for.
    pub wait: Wait,
    /// Its row in `pg_stat_progress_create_index`, while it builds.
    pub progress: Option<ProgressRow>,
    /// The session it waits for, when it waits for one.
    pub blocker: Option<Blocker>,
}

impl Sighting {
    /// Why the session waits, in words, for a status line.
    fn why(&self) -> &'static str {
        let phase = self.progress.as_ref().map_or("", |p| p.phase.as_str());
        match self.wait {
            Wait::Lock => "it waits for a lock that session holds",
            Wait::BeforeStart => {
                "a concurrent build starts only once the transactions it would wait for have \
                 ended (those open on its table, and older snapshots)"
            }
            _ if phase.starts_with("waiting for writers") => {
                "a concurrent build waits for the transactions writing to its table"
            }
            _ if phase == "waiting for old snapshots" => {
                "a concurrent build waits, before it ends, for every transaction older than it"
            }
            _ => "it waits for that session's transaction to end",
        }
    }
}

/// How long guarded statements may wait; `None`: as long as it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// For a lock on a relation (`--lock-timeout`).
    pub lock: Option<Duration>,
    /// For other transactions to end (`--transaction-wait-timeout`).
    pub transactions: Option<Duration>,
}

/// Why the watcher stopped a guarded statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Its lock was not granted within the lock timeout: nothing was
    /// built yet, and it may be tried again.
    LockWait {
        /// The session holding the lock, if known.
        blocker: Option<Blocker>,
    },
    /// Other transactions did not end within the transaction wait timeout.
    TransactionWait {
        /// How long it waited.
        waited: Duration,
        /// The session it waited for, if known.
        blocker: Option<Blocker>,
    },
    /// The watcher cannot watch any more (its session failed): a statement
    /// that nothing bounds is not left running.
    Lost(String),
}

/// What the watcher does after one look at a session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// A wait worth telling people about, newly seen.
    pub report: Option<String>,
    /// Why a guarded statement must stop now.
    pub verdict: Option<Verdict>,
}

/// What the watcher knows of one session from its earlier looks.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Since when it has waited, and for what.
    waiting: Option<(Wait, Instant)>,
    /// The session last reported as the one it waits for.
    reported: Option<i32>,
}

impl Tracker {
    /// Decides what to do about the guarded statement building `label`,
    /// seen as `sighting` at `now`, bound by `limits`.
    pub fn see(&mut self, label: &str, sighting: &Sighting, now: Instant, limits: &Limits) -> Step {
        if sighting.wait == Wait::Nothing {
            *self = Tracker::default();
            return Step::default();
        }
        let since = match self.waiting {
            Some((wait, since)) if wait == sighting.wait => since,
            _ => {
                self.waiting = Some((sighting.wait, now));
                now
            }
        };
        let waited = now.saturating_duration_since(since);
        let limit = match sighting.wait {
            Wait::Lock => limits.lock,
            _ => limits.transactions,
        };
        let mut step = Step::default();
        if limit.is_some_and(|limit| waited >= limit) {
            let blocker = sighting.blocker.clone();
            step.verdict = Some(match sighting.wait {
                Wait::Lock => Verdict::LockWait { blocker },
                _ => Verdict::TransactionWait { waited, blocker },
            });
        } else if waited >= REPORT_WAITS_AFTER
            && let Some(blocker) = &sighting.blocker
            && self.reported != Some(blocker.pid)
        {
            self.reported = Some(blocker.pid);
            let until = match limit {
                Some(limit) => format!(
                    "perfaudit gives up after {}",
                    humantime::format_duration(limit)
                ),
                None => "perfaudit keeps waiting".to_owned(),
            };
            step.report = Some(format!(
                "{label}: waiting for {}: {}; {until}",
                blocker.describe(),
                sighting.why()
            ));
        }
        step
    }
}

/// One watched session.
struct Entry {
    pid: i32,
    label: String,
    tracker: Tracker,
    /// Where the verdict goes while a guarded statement runs.
    guard: Option<oneshot::Sender<Verdict>>,
}

/// The watcher of one run's build sessions.
pub struct Watch<'a> {
    progress: &'a dyn Progress,
    limits: Limits,
    entries: RefCell<Vec<Entry>>,
    /// Why the watcher stopped watching, once it has.
    lost: RefCell<Option<String>>,
}

impl<'a> Watch<'a> {
    /// A watcher that bounds guarded statements by `limits` and shows what
    /// it sees on `progress`.
    pub fn new(progress: &'a dyn Progress, limits: Limits) -> Watch<'a> {
        Watch {
            progress,
            limits,
            entries: RefCell::new(Vec::new()),
            lost: RefCell::new(None),
        }
    }

    /// Watches the session of server process `pid`, building `label`, until
    /// the returned value is dropped.
    pub fn session(&self, pid: i32, label: &str) -> Watched<'_, 'a> {
        self.entries.borrow_mut().push(Entry {
            pid,
            label: label.to_owned(),
            tracker: Tracker::default(),
            guard: None,
        });
        Watched { watch: self, pid }
    }

    /// Polls the server for the watched sessions until dropped. If it
    /// cannot, guarded statements are stopped (nothing else would bound
    /// their lock waits), and progress stands still.
    pub async fn poll(&self, client: &Client) -> Infallible {
        if let Err(e) = self.poll_until_failure(client).await {
            let reason = e.to_string();
            self.progress.say(
                Line::Detail,
                &format!("the builds cannot be watched: {reason}"),
            );
            for entry in self.entries.borrow_mut().iter_mut() {
                if let Some(guard) = entry.guard.take() {
                    let _ = guard.send(Verdict::Lost(reason.clone()));
                }
            }
            *self.lost.borrow_mut() = Some(reason);
        }
        std::future::pending().await
    }

    async fn poll_until_failure(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        loop {
            let pids: Vec<i32> = self.entries.borrow().iter().map(|e| e.pid).collect();
            if !pids.is_empty() {
                let rows = client
                    .query_typed(WATCH_SQL, &[(&pids, Type::INT4_ARRAY)])
                    .await?;
                let now = Instant::now();
                for row in rows {
                    self.seen(row.get(0), &sighting(&row), now);
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Changes the entry of server process `pid`, if it is watched.
    fn with_entry(&self, pid: i32, change: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.entries.borrow_mut().iter_mut().find(|e| e.pid == pid) {
            change(entry);
        }
    }

    /// Acts on one look at the session of server process `pid`.
    fn seen(&self, pid: i32, sighting: &Sighting, now: Instant) {
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries.iter_mut().find(|e| e.pid == pid) else {
            return;
        };
        progress::show(
            self.progress,
            pid,
            sighting.progress.as_ref(),
            sighting.blocker.as_ref().map(Blocker::describe),
        );
        // Other statements' waits are bounded by the server's lock_timeout.
        if entry.guard.is_none() {
            return;
        }
        let step = entry.tracker.see(&entry.label, sighting, now, &self.limits);
        if let Some(report) = step.report {
            self.progress.say(Line::Status, &report);
        }
        if let Some(verdict) = step.verdict
            && let Some(guard) = entry.guard.take()
        {
            let _ = guard.send(verdict);
        }
    }
}

/// A session being watched; it is forgotten when this is dropped.
pub struct Watched<'w, 'a> {
    watch: &'w Watch<'a>,
    pid: i32,
}

impl<'a> Watched<'_, 'a> {
    /// Guards the statement about to run on the session: the watcher
    /// stops it when it waits beyond the limits, by the returned
    /// [`Guarded`], until that is dropped.
    pub fn guard(&self) -> Guarded<'_, 'a> {
        let (sender, verdict) = oneshot::channel();
        let lost = self.watch.lost.borrow().clone();
        match lost {
            Some(reason) => {
                let _ = sender.send(Verdict::Lost(reason));
            }
            None => self.watch.with_entry(self.pid, |entry| {
                entry.tracker = Tracker::default();
                entry.guard = Some(sender);
            }),
        }
        Guarded {
            watch: self.watch,
            pid: self.pid,
            verdict,
        }
    }
}

impl Drop for Watched<'_, '_> {
    fn drop(&mut self) {
        self.watch
            .entries
            .borrow_mut()
            .retain(|entry| entry.pid != self.pid);
    }
}

/// A guarded statement's line to the watcher.
pub struct Guarded<'w, 'a> {
    watch: &'w Watch<'a>,
    pid: i32,
    verdict: oneshot::Receiver<Verdict>,
}

impl Guarded<'_, '_> {
    /// Waits for the watcher to stop the statement (forever if it never
    /// does).
    pub async fn verdict(&mut self) -> Verdict {
        match (&mut self.verdict).await {
            Ok(verdict) => verdict,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Guarded<'_, '_> {
    fn drop(&mut self) {
        self.watch.with_entry(self.pid, |entry| entry.guard = None);
    }
}

/// A row of [`WATCH_SQL`] as a sighting.
fn sighting(row: &tokio_postgres::Row) -> Sighting {
    let lock: Option<bool> = row.get(1);
    let transaction: Option<bool> = row.get(2);
    let wait = match (lock, transaction) {
        (Some(true), Some(true)) => Wait::Transaction,
        (Some(true), _) => Wait::Lock,
        _ => Wait::Nothing,
    };
    let progress = row.get::<_, Option<String>>(3).map(|phase| ProgressRow {
        phase,
        blocks: (row.get(4), row.get(5)),
        tuples: (row.get(6), row.get(7)),
        partitions: (row.get(8), row.get(9)),
        lockers: (row.get(10), row.get(11)),
    });
    let blocker = row.get::<_, Option<i32>>(12).map(|pid| Blocker {
        pid,
        application: row.get(13),
        state: row.get(14),
        transaction_age: row
            .get::<_, Option<f64>>(15)
            .map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
    });
    Sighting {
        wait,
        progress,
        blocker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocker(pid: i32) -> Blocker {
        Blocker {
            pid,
            application: Some("psql".into()),
            state: Some("idle in transaction".into()),
            transaction_age: Some(Duration::from_millis(12_400)),
        }
    }

    fn waiting(wait: Wait, phase: Option<&str>, pid: i32) -> Sighting {
        Sighting {
            wait,
            progress: phase.map(|phase| ProgressRow {
                phase: phase.into(),
                ..ProgressRow::default()
            }),
            blocker: Some(blocker(pid)),
        }
    }

    const LIMITS: Limits = Limits {
        lock: Some(Duration::from_millis(500)),
        transactions: None,
    };

    #[test]
    fn a_blocker_is_described_with_what_this_role_may_see() {
        assert_eq!(
            blocker(42).describe(),
            "server process 42 (psql, idle in transaction, its transaction open for 12s)"
        );
        let hidden = Blocker {
            pid: 7,
            application: Some(String::new()),
            state: None,
            transaction_age: None,
        };
        assert_eq!(hidden.describe(), "server process 7");
    }

    #[test]
    fn a_guarded_lock_wait_is_stopped_after_the_lock_timeout() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut tracker = Tracker::default();
        let lock = waiting(Wait::Lock, None, 9);
        assert_eq!(tracker.see("idx", &lock, at(0), &LIMITS), Step::default());
        assert_eq!(tracker.see("idx", &lock, at(400), &LIMITS), Step::default());
        assert_eq!(
            tracker.see("idx", &lock, at(500), &LIMITS).verdict,
            Some(Verdict::LockWait {
                blocker: Some(blocker(9))
            })
        );
        // With no limit, the wait goes on and is reported.
        let mut tracker = Tracker::default();
        let unbounded = Limits::default();
        tracker.see("idx", &lock, at(0), &unbounded);
        let step = tracker.see("idx", &lock, at(1_000), &unbounded);
        assert_eq!(step.verdict, None);
        assert_eq!(
            step.report.as_deref(),
            Some(
                "idx: waiting for server process 9 (psql, idle in transaction, its transaction \
                 open for 12s): it waits for a lock that session holds; perfaudit keeps waiting"
            )
        );
    }

    #[test]
    fn waits_for_older_transactions_are_reported_once_per_session_and_not_stopped() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut tracker = Tracker::default();
        let old = waiting(Wait::Transaction, Some("waiting for old snapshots"), 9);
        assert_eq!(tracker.see("idx", &old, at(0), &LIMITS), Step::default());
        let step = tracker.see("idx", &old, at(1), &LIMITS);
        assert_eq!(step.verdict, None, "the lock timeout does not apply");
        let report = step.report.unwrap();
        assert!(
            report.contains("waiting for server process 9")
                && report.contains("every transaction older than it")
                && report.ends_with("perfaudit keeps waiting"),
            "{report}"
        );
        assert_eq!(tracker.see("idx", &old, at(60), &LIMITS), Step::default());
        let next = waiting(Wait::Transaction, Some("waiting for old snapshots"), 10);
        assert!(tracker.see("idx", &next, at(61), &LIMITS).report.is_some());
        // A limit on such waits stops the statement when it runs out.
        let limits = Limits {
            transactions: Some(Duration::from_secs(30)),
            ..LIMITS
        };
        assert_eq!(
            tracker.see("idx", &next, at(90), &limits).verdict,
            Some(Verdict::TransactionWait {
                waited: Duration::from_secs(90),
                blocker: Some(blocker(10))
            })
        );
    }

    #[test]
    fn a_wait_is_timed_from_when_it_began() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut tracker = Tracker::default();
        let lock = waiting(Wait::Lock, None, 9);
        let writers = waiting(
            Wait::Transaction,
            Some("waiting for writers before build"),
            9,
        );
        tracker.see("idx", &lock, at(0), &LIMITS);
        tracker.see("idx", &Sighting::default(), at(400), &LIMITS);
        assert_eq!(tracker.see("idx", &lock, at(600), &LIMITS), Step::default());
        assert_eq!(
            tracker.see("idx", &writers, at(1_200), &LIMITS),
            Step::default(),
            "another kind of wait starts afresh"
        );
        let report = tracker
            .see("idx", &writers, at(2_200), &LIMITS)
            .report
            .unwrap();
        assert!(report.contains("writing to its table"), "{report}");
    }
}
