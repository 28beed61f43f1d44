//! One building `perfaudit indexes` run per database at a time.
//!
//! Two runs at once (two pipelines deploying together) would each see the
//! other's unfinished index as INVALID, and one would drop what the other is
//! building. A run that builds therefore holds a session advisory lock, on
//! the session it reads the catalog with, from before that read until its
//! last build has ended. A second run does not wait for it: the first may
//! build for hours, and it builds what the second wants anyway. It stops at
//! once (exit 3), naming the first run's server process. A dry run takes no
//! lock: it changes nothing.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use crate::db::errors::query_error;
use crate::error::{Error, Result};

/// The two keys of the advisory lock: "perf" and "idxs" in ASCII, so that
/// it can be told apart in `pg_locks` (`classid` 1885696614, `objid`
/// 1768191091, `objsubid` 2).
const KEYS: (i32, i32) = (0x7065_7266, 0x6964_7873);

/// The keys as query parameters.
fn keys() -> [(&'static (dyn ToSql + Sync), Type); 2] {
    [(&KEYS.0, Type::INT4), (&KEYS.1, Type::INT4)]
}

/// Takes the run lock on `client`'s session, or says which run holds it.
pub async fn acquire(client: &Client) -> Result<()> {
    let taken: bool = client
        .query_typed_one("SELECT pg_try_advisory_lock($1, $2)", &keys())
        .await
        .map_err(|e| query_error("taking the lock that keeps runs apart", &e))?
        .get(0);
    if taken {
        return Ok(());
    }
    let holder = client
        .query_typed_opt(
            "SELECT l.pid, extract(epoch FROM now() - a.backend_start)::float8
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = $1::oid AND l.objid = $2::oid
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &keys(),
        )
        .await
        .map_err(|e| query_error("looking for the run that holds the lock", &e))?
        .map(|row| (row.get::<_, i32>(0), row.get::<_, Option<f64>>(1)));
    Err(Error::database(taken_message(holder)))
}

/// Gives the run lock back.
pub async fn release(client: &Client) -> Result<()> {
    client
        .query_typed_one("SELECT pg_advisory_unlock($1, $2)", &keys())
        .await
        .map(drop)
        .map_err(|e| query_error("giving back the lock that keeps runs apart", &e))
}

/// What a run that found the lock taken says; `holder` is the server
/// process holding it, and for how long its session has been open.
fn taken_message(holder: Option<(i32, Option<f64>)>) -> String {
    let who = match holder {
        Some((pid, Some(seconds))) => format!(
            " (its session is server process {pid}, connected {} ago)",
            crate::text::whole_seconds(Duration::from_secs(seconds.max(0.0) as u64))
        ),
        Some((pid, None)) => format!(" (its session is server process {pid})"),
        None => " (it has just ended)".to_owned(),
    };
    format!(
        "another perfaudit indexes run is building indexes in this database{who}; runs take \
         turns, so that none drops an index another is building: wait for it to end, then run \
         again (it may build what this run wants)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_lock_names_the_run_that_holds_it() {
        let message = taken_message(Some((4242, Some(75.6))));
        assert!(
            message.contains("(its session is server process 4242, connected 1m 15s ago)"),
            "{message}"
        );
        assert!(taken_message(Some((7, None))).contains("server process 7)"));
        assert!(taken_message(None).contains("(it has just ended)"));
    }
}
