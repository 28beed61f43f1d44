//! Before a concurrent build starts: waiting for the transactions it would
//! wait for, so that a wait that runs out leaves nothing behind.
//!
//! A `CREATE INDEX CONCURRENTLY` creates its INVALID index first, then waits
//! for the transactions writing to its table and, before it ends, for every
//! transaction of the database with an older snapshot. Stopped in those
//! waits (`--transaction-wait-timeout`, Ctrl-C), it leaves an index that
//! every write maintains, and its removal (`DROP INDEX CONCURRENTLY`) waits
//! in turn for every transaction holding any lock on the table: a long
//! reader of the table (`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT ...
//! FROM payments`) holds up both. So before each concurrent build, the
//! transactions open at that moment that hold a lock on its table or a
//! snapshot in the database are waited for, bounded by the same limit. Only
//! those: a transaction begun later is another (each is told by its virtual
//! transaction id, which a new transaction of the same session does not
//! share), as it is for the build's own waits.
//!
//! Sessions holding a lock that conflicts with the build's own table lock
//! (DDL, `VACUUM`, `LOCK TABLE`) are not waited for here: the build waits
//! for them before it creates anything, bounded by `--lock-timeout` and
//! tried again. Autovacuum is not either: the build does not wait for it.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::watch::{Blocker, Limits, POLL_INTERVAL, Sighting, Tracker, Verdict, Wait};
use crate::sql::ident::QualifiedName;
use crate::ui::{Line, Progress};

/// The transactions of other sessions that hold a lock on table `$1` (in
/// this database), or (when `$2`) a snapshot in this database, by their
/// virtual transaction ids (each transaction holds a lock on its own),
/// longest open first; those holding a lock on the table in one of the
/// modes `$3` are left out. A lock still waited for counts: the server's
/// waits for lockers count waiters too.
const HOLDERS_SQL: &str = "SELECT a.pid, v.virtualxid, a.application_name, a.state,
            extract(epoch FROM now() - a.xact_start)::float8
     FROM pg_locks v
     JOIN pg_stat_activity a ON a.pid = v.pid
     CROSS JOIN LATERAL (
         SELECT array_agg(l.mode) AS modes FROM pg_locks l
         WHERE l.locktype = 'relation' AND l.pid = a.pid AND l.relation = to_regclass($1)
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     ) t
     WHERE v.locktype = 'virtualxid' AND v.granted AND v.virtualxid = v.virtualtransaction
       AND a.pid <> pg_backend_pid() AND a.backend_type <> 'autovacuum worker'
       AND (t.modes IS NOT NULL
            OR ($2 AND a.datname = current_database() AND a.backend_xmin IS NOT NULL))
       AND NOT coalesce(t.modes && $3::text[], false)
     ORDER BY a.xact_start NULLS LAST";

/// The lock modes that conflict with a concurrent build's own lock on its
/// table (SHARE UPDATE EXCLUSIVE): their holders are `--lock-timeout`'s.
const CONFLICTING_MODES: [&str; 5] = [
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// Which transactions [`holders`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those a concurrent build would wait for, but for the holders of
    /// locks that conflict with its own (see the module's documentation).
    Build,
    /// Those a concurrent drop of an index of the table waits for: every
    /// holder of a lock on it.
    Drop,
}

/// A transaction a concurrent build would wait for.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// Its virtual transaction id.
    pub vxid: String,
    /// Its session.
    pub session: Blocker,
}

/// The transactions of `first` that are still open in `now` (both as
/// [`holders`] returns them), longest open first.
pub fn still_open<'a>(first: &[Holder], now: &'a [Holder]) -> Vec<&'a Holder> {
    now.iter()
        .filter(|holder| {
            first
                .iter()
                .any(|f| f.vxid == holder.vxid && f.session.pid == holder.session.pid)
        })
        .collect()
}

/// The transactions of other sessions that `scope` on `table` waits for,
/// now.
pub async fn holders(
    client: &Client,
    table: &QualifiedName,
    scope: Scope,
) -> Result<Vec<Holder>, tokio_postgres::Error> {
    let (snapshots, left_out): (bool, &[&str]) = match scope {
        Scope::Build => (true, &CONFLICTING_MODES),
        Scope::Drop => (false, &[]),
    };
    let rows = client
        .query_typed(
            HOLDERS_SQL,
            &[
                (&table.to_string(), Type::TEXT),
                (&snapshots, Type::BOOL),
                (&left_out, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Holder {
            vxid: row.get(1),
            session: Blocker {
                pid: row.get(0),
                application: row.get(2),
                state: row.get(3),
                transaction_age: row
                    .get::<_, Option<f64>>(4)
                    .map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
            },
        })
        .collect())
}

/// A wait before a build that ran out.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// How long it waited.
    pub waited: Duration,
    /// The longest open of the transactions still waited for.
    pub by: Blocker,
}

/// Waits, on `client` (the build's own session, whose transactions are
/// not counted), until the transactions open now that the concurrent build
/// of `label` on `table` would wait for have ended; gives up after
/// `limit`, saying why. A wait worth knowing about is told on `progress`,
/// as the watcher tells the build's own waits.
pub async fn wait(
    client: &Client,
    table: &QualifiedName,
    label: &str,
    limit: Option<Duration>,
    progress: &dyn Progress,
) -> Result<Option<Held>, tokio_postgres::Error> {
    let first = holders(client, table, Scope::Build).await?;
    let limits = Limits {
        lock: None,
        transactions: limit,
    };
    let mut tracker = Tracker::default();
    let mut now = first.clone();
    loop {
        let Some(oldest) = still_open(&first, &now).first().copied() else {
            return Ok(None);
        };
        let sighting = Sighting {
            wait: Wait::BeforeStart,
            progress: None,
            blocker: Some(oldest.session.clone()),
        };
        let step = tracker.see(label, &sighting, Instant::now(), &limits);
        if let Some(report) = step.report {
            progress.say(Line::Status, &report);
        }
        if let Some(Verdict::TransactionWait { waited, .. }) = step.verdict {
            return Ok(Some(Held {
                waited,
                by: oldest.session.clone(),
            }));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        now = holders(client, table, Scope::Build).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: i32, vxid: &str) -> Holder {
        Holder {
            vxid: vxid.into(),
            session: Blocker {
                pid,
                application: None,
                state: None,
                transaction_age: None,
            },
        }
    }

    #[test]
    fn only_the_transactions_open_at_first_are_waited_for() {
        let first = [holder(10, "3/7"), holder(11, "4/2")];
        // 10 began a new transaction, 12 is new: neither counts.
        let now = [holder(11, "4/2"), holder(10, "3/8"), holder(12, "5/1")];
        assert_eq!(still_open(&first, &now), [&now[0]]);
        assert!(still_open(&first, &[holder(10, "3/8")]).is_empty());
        // A virtual transaction id of a session that ended, reused by
        // another server process, is another transaction.
        assert!(still_open(&first, &[holder(13, "3/7")]).is_empty());
    }
}
