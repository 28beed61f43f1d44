//! The HypoPG session: one pinned connection on which hypothetical indexes
//! are created, plans are costed with plain `EXPLAIN` (nothing executes),
//! and everything is reset before the connection returns to the pool.
//!
//! Hypothetical indexes live in the backend's memory only and are seen
//! only by `EXPLAIN` without `ANALYZE` in the same session: no other
//! session, no real query, no catalog ever sees them. Planning evaluates
//! functions (an IMMUTABLE one with constant arguments is folded, a STABLE
//! one may be run for its selectivity), and a function can be mislabelled:
//! the session is one read-only transaction (`BEGIN READ ONLY`), so a
//! write such a function attempts fails instead of being committed.
//!
//! One transaction, rolled back at the end, because behind a transaction
//! pooler (PgBouncer's `pool_mode = transaction`) only a transaction keeps
//! one server connection: hypothetical indexes, settings and prepared
//! statements are the server process's, and would be left to, or missed
//! on, whichever connection the pooler hands over next. So the settings
//! are `SET LOCAL`, each step the server may refuse runs under a savepoint
//! (a refusal would abort the transaction), and [`Session::reset`] removes
//! the hypothetical indexes and deallocates the statements it prepared
//! (neither is undone by a rollback) before the ROLLBACK. [`with_session`]
//! resets after success and after an error; after Ctrl-C, or when the
//! reset fails, it closes the connection instead, which ends the server
//! process (or, behind a pooler, its use of one) and everything the
//! session held.

use deadpool_postgres::Object;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::db::JsonText;
use crate::db::errors::{query_error, refusal};
use crate::db::savepoint::under_savepoint;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::pg::catalog::hypopg_schema;
use crate::pg::plan::Plan;

/// How long planning may wait for a table lock (another session's `ALTER
/// TABLE`, say). Waiting longer would hold our own lock on the tables
/// planned so far and queue other sessions behind us.
pub const LOCK_TIMEOUT: &str = "2s";

/// The prefix of the statements advise prepares, so they are recognisable in
/// `pg_prepared_statements` and `pg_stat_activity`.
pub const PREPARED_PREFIX: &str = "perfaudit_advise_";

/// The savepoint right after the session's settings: the reset rolls back
/// to it first, so that it runs even after an error aborted the
/// transaction.
const SESSION_SAVEPOINT: &str = "perfaudit_session";

/// A hypothetical index, as HypoPG created it.
#[derive(Debug, Clone)]
pub struct Hypothetical {
    /// HypoPG's object id for it.
    pub oid: u32,
    /// Its name, as plans show it (`<13456>btree_payments_user_id`).
    pub name: String,
    /// HypoPG's estimate of its size, in bytes.
    pub size: i64,
}

/// What a plain `EXPLAIN` says about a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanCost {
    /// The top node's total cost.
    pub cost: f64,
    /// The rows it returns, or for a write the rows it writes (the rows
    /// under its `ModifyTable`).
    pub rows: f64,
    /// Every index the plan reads, by name.
    pub indexes: Vec<String>,
}

/// A statement the server would not plan (or index), with the server's
/// reason, one line.
pub type Refusal = String;

/// The pinned connection with HypoPG ready.
pub struct Session<'c> {
    client: &'c Client,
    /// The schema HypoPG's functions live in, quoted.
    hypopg: String,
    /// Statements prepared and not yet deallocated.
    prepared: Vec<String>,
    counter: usize,
}

/// Runs `work` on a session pinned to `connection`, then resets the
/// session; the connection goes back to the pool only when the reset
/// succeeded, and is closed otherwise (the server process ends, and all the
/// session held with it).
///
/// A signal stops `work` at its next step: the statement in flight is
/// cancelled (`tls` reaches the server for that) and the connection closed
/// rather than reset. A cancel request reaches the server process
/// asynchronously and could strike whatever the session ran next — the
/// reset, or the next user of a pooled connection — so a cancelled session
/// is never reused.
pub async fn with_session<T>(
    connection: Object,
    tls: MakeRustlsConnect,
    interrupt: &Interrupt,
    create_extension: bool,
    work: impl AsyncFnOnce(&mut Session<'_>) -> Result<T>,
) -> Result<T> {
    let client: &Client = &connection;
    let cancel = client.cancel_token();
    let mut session = match interrupt
        .guard(Session::open(client, create_extension))
        .await
    {
        Ok(session) => session,
        Err(error) => {
            // It may have stopped halfway through its SETs.
            drop(Object::take(connection));
            return Err(error);
        }
    };
    let outcome = tokio::select! {
        biased;
        signal = interrupt.wait() => Err(signal),
        result = work(&mut session) => Ok(result),
    };
    let result = match outcome {
        Err(signal) => {
            let _ = cancel.cancel_query(tls).await;
            drop(Object::take(connection));
            return Err(Error::Interrupted(signal));
        }
        Ok(result) => result,
    };
    if session.reset().await.is_err() {
        drop(Object::take(connection));
    }
    result
}

/// Runs `work` on a session opened on `client`, a connection its caller
/// keeps using (explain's), then leaves the session as it found it. On an
/// error the reset is still tried; the caller's own error handling decides
/// what becomes of the connection.
pub async fn on_client<T>(
    client: &Client,
    create_extension: bool,
    work: impl AsyncFnOnce(&mut Session<'_>) -> Result<T>,
) -> Result<T> {
    let mut session = match Session::open(client, create_extension).await {
        Ok(session) => session,
        Err(error) => {
            // It may have stopped inside its transaction; outside one, the
            // ROLLBACK is only a warning.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(error);
        }
    };
    let result = work(&mut session).await;
    let reset = session.reset().await;
    let value = result?;
    reset?;
    Ok(value)
}

impl<'c> Session<'c> {
    /// Finds HypoPG (creating it first when asked, in a transaction of its
    /// own since it writes) and opens the session's transaction: generic
    /// plans for statements with parameters, a lock timeout.
    async fn open(client: &'c Client, create_extension: bool) -> Result<Session<'c>> {
        if create_extension
            && let Err(error) = client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS hypopg")
                .await
        {
            return Err(match error.code() {
                Some(&SqlState::UNDEFINED_FILE) => missing_hypopg(client).await?,
                _ => query_error("creating the hypopg extension", &error),
            });
        }
        let Some(hypopg) = hypopg_schema(client).await? else {
            return Err(missing_hypopg(client).await?);
        };
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan; \
                 SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SAVEPOINT {SESSION_SAVEPOINT}"
            ))
            .await
            .map_err(|e| query_error("preparing the advise session", &e))?;
        Ok(Session {
            client,
            hypopg,
            prepared: Vec::new(),
            counter: 0,
        })
    }

    /// The connection, for catalog queries.
    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// Runs `step`, whose failure the caller tolerates, under a savepoint
    /// ([`under_savepoint`]), so that the session's transaction survives it.
    pub async fn refusable<T, E>(
        &self,
        step: impl AsyncFnOnce(&'c Client) -> std::result::Result<T, E>,
    ) -> Result<std::result::Result<T, E>> {
        under_savepoint(self.client, step)
            .await
            .map_err(|e| query_error("running a step of the advise session", &e))
    }

    /// Creates a hypothetical index from `ddl` (a `CREATE INDEX` statement).
    /// The inner `Err` is the server's refusal (a type without a B-tree
    /// operator class, say).
    pub async fn create_index(&self, ddl: &str) -> Result<Result<Hypothetical, Refusal>> {
        let sql = format!(
            "SELECT h.indexrelid, h.indexname, {0}.hypopg_relation_size(h.indexrelid) \
             FROM {0}.hypopg_create_index($1) h",
            self.hypopg
        );
        match self
            .refusable(async |client| client.query_typed_one(&sql, &[(&ddl, Type::TEXT)]).await)
            .await?
        {
            Ok(row) => Ok(Ok(Hypothetical {
                oid: row.get(0),
                name: row.get(1),
                size: row.get(2),
            })),
            Err(error) => statement_refusal(error, "creating a hypothetical index"),
        }
    }

    /// Removes one hypothetical index.
    pub async fn drop_index(&self, index: &Hypothetical) -> Result<()> {
        let sql = format!("SELECT {}.hypopg_drop_index($1)", self.hypopg);
        self.client
            .execute_typed(&sql, &[(&index.oid, Type::OID)])
            .await
            .map(|_| ())
            .map_err(|e| query_error("removing a hypothetical index", &e))
    }

    /// Removes every hypothetical index.
    pub async fn drop_all(&self) -> Result<()> {
        self.client
            .batch_execute(&format!("SELECT {}.hypopg_reset()", self.hypopg))
            .await
            .map_err(|e| query_error("removing the hypothetical indexes", &e))
    }

    /// The plan of `text` by plain `EXPLAIN`: nothing runs. A statement with
    /// `parameters` (`$1`...) is prepared and explained as a generic plan,
    /// fresh each time, since a cached plan would not see indexes created
    /// since. The inner `Err` is the server's refusal to plan it.
    pub async fn explain(
        &mut self,
        text: &str,
        parameters: usize,
    ) -> Result<Result<PlanCost, Refusal>> {
        if parameters == 0 {
            return self
                .explain_plain(&format!("EXPLAIN (FORMAT JSON) {text}"))
                .await;
        }
        let name = format!("{PREPARED_PREFIX}{}", self.counter);
        self.counter += 1;
        // Recorded before it is sent: if we stop mid-way, the reset still
        // knows to deallocate it.
        self.prepared.push(name.clone());
        // The extended protocol takes one statement only, whatever the text.
        let prepare = format!("PREPARE {name} AS {text}");
        if let Err(error) = self
            .refusable(async |client| client.execute_typed(&prepare, &[]).await)
            .await?
        {
            self.prepared.pop();
            return statement_refusal(error, "preparing the statement");
        }
        let nulls = vec!["NULL"; parameters].join(", ");
        let plan = self
            .explain_plain(&format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})"))
            .await;
        self.deallocate(&name).await?;
        plan
    }

    async fn explain_plain(&self, sql: &str) -> Result<Result<PlanCost, Refusal>> {
        // One round trip (unnamed statement, no separate prepare): this runs
        // once per statement and candidate.
        match self
            .refusable(async |client| client.query_typed_one(sql, &[]).await)
            .await?
        {
            Ok(row) => {
                let document: JsonText = row.get(0);
                Ok(summarize(&document.0))
            }
            Err(error) => statement_refusal(error, "running EXPLAIN"),
        }
    }

    async fn deallocate(&mut self, name: &str) -> Result<()> {
        let deallocate = format!("DEALLOCATE {name}");
        match self
            .refusable(async |client| client.batch_execute(&deallocate).await)
            .await?
        {
            Ok(()) => {}
            // Never prepared (we stopped before the server saw it).
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_PSTATEMENT) => {}
            Err(error) => return Err(query_error("deallocating a prepared statement", &error)),
        }
        self.prepared.retain(|n| n != name);
        Ok(())
    }

    /// Leaves the session as it found it: no hypothetical index, none of
    /// our prepared statements, its transaction (and with it the settings)
    /// rolled back. Both are removed inside the transaction, on the server
    /// connection that holds them.
    async fn reset(&mut self) -> Result<()> {
        self.client
            .batch_execute(&format!("ROLLBACK TO SAVEPOINT {SESSION_SAVEPOINT}"))
            .await
            .map_err(|e| query_error("resetting the advise session", &e))?;
        self.drop_all().await?;
        for name in self.prepared.clone() {
            self.deallocate(&name).await?;
        }
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| query_error("resetting the advise session", &e))
    }
}

/// A server error about the statement itself becomes a refusal (reported
/// per statement); a lost connection or a shutdown stays an error.
fn statement_refusal<T>(error: tokio_postgres::Error, context: &str) -> Result<Result<T, Refusal>> {
    Ok(Err(refusal(error, context)?))
}

/// The error for a database without HypoPG, with how to get it.
async fn missing_hypopg(client: &Client) -> Result<Error> {
    let row = client
        .query_typed_one(
            "SELECT current_database(), current_setting('server_version_num')::int / 10000, \
             EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')",
            &[],
        )
        .await
        .map_err(|e| query_error("looking for the hypopg extension", &e))?;
    Ok(missing_hypopg_message(row.get(0), row.get(1), row.get(2)))
}

/// What to do about a missing HypoPG, given the database, the server's major
/// version and whether the server has the extension's files.
fn missing_hypopg_message(database: String, major: i32, available: bool) -> Error {
    Error::database(if available {
        format!(
            "the HypoPG extension is installed on the server but not created in database \
             \"{database}\"; run CREATE EXTENSION hypopg; there (as its owner or a superuser), \
             then run perfaudit advise again"
        )
    } else {
        format!(
            "the HypoPG extension, which advise needs to test indexes without building them, \
             is not installed on the server; install it (Debian/Ubuntu: apt-get install \
             postgresql-{major}-hypopg), run CREATE EXTENSION hypopg; in database \
             \"{database}\", then run perfaudit advise again"
        )
    })
}

/// The cost and the indexes of an `EXPLAIN (FORMAT JSON)` document, read
/// with explain's plan model.
fn summarize(document: &str) -> Result<PlanCost, Refusal> {
    let model = Plan::from_json(document).map_err(|e| e.to_string())?;
    let mut indexes: Vec<String> = Vec::new();
    for name in model.nodes.iter().filter_map(|n| n.raw.index_name.as_ref()) {
        if !indexes.contains(name) {
            indexes.push(name.clone());
        }
    }
    let root = model.root();
    let rows = match (root.raw.node_type.as_str(), model.children(root).next()) {
        ("ModifyTable", Some(written)) => written.raw.plan_rows,
        _ => root.raw.plan_rows,
    };
    Ok(PlanCost {
        cost: root.raw.total_cost,
        rows,
        indexes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_hypopg_says_how_to_get_it() {
        let not_created = missing_hypopg_message("shop".into(), 15, true).to_string();
        assert!(
            not_created.contains("not created in database \"shop\"; run CREATE EXTENSION hypopg;"),
            "{not_created}"
        );
        let not_installed = missing_hypopg_message("shop".into(), 16, false).to_string();
        assert!(
            not_installed.contains("apt-get install postgresql-16-hypopg"),
            "{not_installed}"
        );
        assert!(not_installed.contains("CREATE EXTENSION hypopg;"));
    }

    #[test]
    fn a_plan_gives_its_cost_and_every_index_it_reads() {
        let explain = serde_json::json!([{"Plan": {
            "Node Type": "Nested Loop", "Total Cost": 120.5,
            "Plans": [
                {"Node Type": "Index Scan", "Index Name": "<1>btree_payments_user_id",
                 "Total Cost": 8.0},
                {"Node Type": "Bitmap Heap Scan", "Total Cost": 9.0, "Plans": [
                    {"Node Type": "Bitmap Index Scan", "Index Name": "users_pkey"}
                ]}
            ]
        }}]);
        assert_eq!(
            summarize(&explain.to_string()),
            Ok(PlanCost {
                cost: 120.5,
                rows: 0.0,
                indexes: vec!["<1>btree_payments_user_id".into(), "users_pkey".into()]
            })
        );
        assert!(summarize("[]").is_err());
    }
}
