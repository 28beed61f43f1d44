//! Running EXPLAIN so that nothing changes.
//!
//! Every run is a transaction of its own: `BEGIN` (`READ ONLY` unless a
//! write is executed on purpose) and the statement timeout in one round
//! trip, then the EXPLAIN with `ROLLBACK` pipelined right behind it in a
//! second. The EXPLAIN goes through the extended protocol, which takes
//! exactly one statement: even if the SQL splitter were wrong, the server
//! would refuse a second statement hidden in the text. The `ROLLBACK` is
//! sent only after the `BEGIN` succeeded, and runs whether the EXPLAIN
//! succeeds or fails.
//!
//! A statement timeout is enforced by the server, which cancels the query
//! itself. Ctrl-C sends a cancel request (a second connection, as psql
//! does), waits for the rollback, and stops.

use std::time::{Duration, Instant};

use sqlparser::ast::Statement;
use tokio_postgres::{Client, SimpleQueryMessage, error::SqlState};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::advised::Decision;
use super::mode::Mode;
use super::tables::Tables;
use crate::advise::{self, Reason, WorkloadStatement};
use crate::db::JsonText;
use crate::db::cancel::cancel_until_done;
use crate::db::errors::query_error;
use crate::db::params::{TextParam, inferred};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::pg::catalog::{hypopg_available, hypopg_schema};
use crate::sql::Item;

/// The statement timeout of each run when `--statement-timeout` is not
/// given: long enough for any query one audits by hand, short enough that a
/// runaway `EXPLAIN ANALYZE` on a live server stops on its own. A stricter
/// server setting is kept.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait, after a cancel request, for the server to stop the
/// query and roll back before giving up on a clean stop.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The statement timeout of each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// `--statement-timeout` given: exactly that.
    Exactly(Duration),
    /// Not given: this, or the server's setting when that is stricter
    /// (see [`Timeout::resolve`]).
    AtMost(Duration),
    /// `--statement-timeout 0`, or a stricter server setting: the server's
    /// `statement_timeout`, whatever it is.
    Server,
}

impl Timeout {
    /// The timeout for the `--statement-timeout` flag's value.
    pub fn from_flag(flag: Option<Duration>) -> Timeout {
        match flag {
            None => Timeout::AtMost(DEFAULT_STATEMENT_TIMEOUT),
            Some(duration) if duration.is_zero() => Timeout::Server,
            Some(duration) => Timeout::Exactly(duration),
        }
    }

    /// Settles `AtMost` against the server's setting, read once here so
    /// that each run sets a plain value: `Exactly` the limit, or `Server`
    /// when the server's is stricter.
    pub async fn resolve(self, client: &Client) -> Result<Timeout> {
        let Timeout::AtMost(limit) = self else {
            return Ok(self);
        };
        let messages = client
            .simple_query("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
            .await
            .map_err(|e| query_error("reading the server's statement_timeout", &e))?;
        let server_ms: u64 = messages
            .iter()
            .find_map(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
                _ => None,
            })
            .ok_or_else(|| {
                Error::database(
                    "reading the server's statement_timeout failed: the server returned no value",
                )
            })?;
        Ok(Timeout::lower(limit, Duration::from_millis(server_ms)))
    }

    /// `limit`, unless the server's non-zero setting is stricter.
    fn lower(limit: Duration, server: Duration) -> Timeout {
        if !server.is_zero() && server <= limit {
            Timeout::Server
        } else {
            Timeout::Exactly(limit)
        }
    }

    /// The statements that bound work outside the runs' transactions (the
    /// rewriter's questions to the server) the same way, and then undo it:
    /// `RESET` goes back to the session's startup value.
    pub fn for_session(self) -> Option<(String, &'static str)> {
        match self {
            Timeout::Exactly(d) | Timeout::AtMost(d) => Some((
                format!("SET statement_timeout = {}", d.as_millis().max(1)),
                "RESET statement_timeout",
            )),
            Timeout::Server => None,
        }
    }

    /// The statement that sets it for the current transaction only.
    pub fn set_local(self) -> String {
        match self {
            Timeout::Exactly(d) | Timeout::AtMost(d) => {
                format!("; SET LOCAL statement_timeout = {}", d.as_millis().max(1))
            }
            Timeout::Server => String::new(),
        }
    }

    /// `(5s)`, for messages.
    fn describe(self) -> String {
        match self {
            Timeout::Exactly(d) | Timeout::AtMost(d) => {
                format!("({})", humantime::format_duration(d))
            }
            Timeout::Server => "(the server's statement_timeout)".to_owned(),
        }
    }
}

/// What every run of one statement sends, built once.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `BEGIN [READ ONLY]` and the timeout, one round trip.
    begin: String,
    /// The EXPLAIN of the one statement.
    explain: String,
    /// The `--param` values for `$1..$n`.
    params: Vec<TextParam>,
    /// For messages.
    timeout: Timeout,
}

impl Prepared {
    /// What to send to explain `statement` (one statement's text) in `mode`.
    pub fn new(mode: &Mode, statement: &str, params: Vec<TextParam>, timeout: Timeout) -> Self {
        let begin = if mode.read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        };
        Prepared {
            begin: format!("{begin}{}", timeout.set_local()),
            explain: mode.explain_sql(statement),
            params,
            timeout,
        }
    }
}

/// What one run returned.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// PostgreSQL's JSON plan document, as it sent it.
    pub document: String,
    /// The client's wall time for the EXPLAIN statement.
    pub round_trip: Duration,
}

/// Runs prepared statements on one connection, each run rolled back.
pub struct Runner<'a> {
    client: &'a Client,
    tls: &'a MakeRustlsConnect,
    interrupt: &'a Interrupt,
}

impl<'a> Runner<'a> {
    /// A runner on `client`, which connected with `tls` (a cancel request
    /// opens a connection of its own with it).
    pub fn new(client: &'a Client, tls: &'a MakeRustlsConnect, interrupt: &'a Interrupt) -> Self {
        Runner {
            client,
            tls,
            interrupt,
        }
    }

    /// One run of `prepared`; `label` names the statement in messages.
    /// On Ctrl-C the query is cancelled on the server and rolled back
    /// before `Err(Interrupted)` returns.
    pub async fn run(&self, prepared: &Prepared, label: &str) -> Result<RunOutput> {
        self.interrupt.check()?;
        let work = self.rolled_back(prepared, label);
        tokio::pin!(work);
        tokio::select! {
            biased;
            signal = self.interrupt.wait() => {
                // Errors are moot: we stop either way, and the server rolls
                // back when the connection closes.
                let cancelled = cancel_until_done(self.client, self.tls, work);
                let _ = tokio::time::timeout(CANCEL_GRACE, cancelled).await;
                Err(Error::Interrupted(signal))
            }
            result = &mut work => result,
        }
    }

    /// What the catalog says about `relations` (as a plan names them), read
    /// on the connection (and so with the `search_path`) that ran
    /// `statement`. Catalog reads only: on Ctrl-C they are dropped, and
    /// nothing is left behind.
    pub async fn tables(
        &self,
        relations: &[&str],
        statement: Option<&Statement>,
    ) -> Result<Tables> {
        self.interrupt
            .guard(super::tables::look_up(self.client, relations, statement))
            .await
    }

    /// What decides the indexes of the findings about `statement`, as the
    /// user wrote it, whose plan's estimated cost is `cost`
    /// ([`super::advised`]): advise's search on it, with HypoPG; advise's
    /// own reason, without asking, for a plan below `--min-cost`; or, with
    /// no HypoPG to prove anything, why the findings' DDL is unproven.
    /// Dropped on Ctrl-C: it only plans.
    pub async fn decide(
        &self,
        statement: &Item,
        cost: f64,
        options: &advise::Options,
    ) -> Result<Decision> {
        if cost < options.min_cost {
            return Ok(Decision::Skipped(Reason::LowCost {
                cost,
                min_cost: options.min_cost,
            }));
        }
        let work = async {
            let ready = hypopg_schema(self.client).await?.is_some()
                || (options.create_extension && hypopg_available(self.client).await?);
            if !ready {
                return Ok(Decision::Unproven(
                    "HypoPG is not installed in this database (CREATE EXTENSION hypopg)".to_owned(),
                ));
            }
            let (line, column) = statement.position();
            let statement = WorkloadStatement {
                text: statement.text().to_owned(),
                line: Some(line),
                column: Some(column),
                usage: None,
                parsed: statement.parsed().map(|p| p.ast.clone()).ok_or_else(|| {
                    "perfaudit's SQL parser cannot read it, so advise finds no candidate".to_owned()
                }),
            };
            let advice = advise::advise_statement(self.client, &statement, options).await?;
            Ok(Decision::Advised(advice))
        };
        self.interrupt.guard(work).await
    }

    async fn rolled_back(&self, prepared: &Prepared, label: &str) -> Result<RunOutput> {
        if let Err(e) = self.client.batch_execute(&prepared.begin).await {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(query_error(
                &format!("starting the transaction for {label}"),
                &e,
            ));
        }
        let params = inferred(&prepared.params);
        let started = Instant::now();
        let explain = async {
            let rows = self.client.query_typed(&prepared.explain, &params).await;
            (rows, started.elapsed())
        };
        // Both are sent at once; the ROLLBACK runs after the EXPLAIN,
        // whether it succeeded or not.
        let ((rows, round_trip), rollback) =
            tokio::join!(explain, self.client.batch_execute("ROLLBACK"));
        let rows = rows.map_err(|e| explain_error(label, &e, prepared))?;
        rollback.map_err(|e| query_error(&format!("rolling back {label}"), &e))?;
        let document = rows
            .first()
            .and_then(|row| row.try_get::<_, JsonText>(0).ok())
            .ok_or_else(|| {
                Error::database(format!(
                    "EXPLAIN of {label} returned no plan; please report this with the \
                     PostgreSQL version"
                ))
            })?;
        Ok(RunOutput {
            document: document.0,
            round_trip,
        })
    }
}

/// The error of a failed EXPLAIN, told as what happened and what to do.
fn explain_error(label: &str, error: &tokio_postgres::Error, prepared: &Prepared) -> Error {
    let Some(db) = error.as_db_error() else {
        return query_error(&format!("explaining {label}"), error);
    };
    let code = db.code();
    if *code == SqlState::QUERY_CANCELED && db.message().contains("statement timeout") {
        Error::database(format!(
            "{label} ran longer than the statement timeout {} and the server cancelled it; \
             nothing was changed; raise --statement-timeout to give it longer",
            prepared.timeout.describe()
        ))
    } else if let Some(n) = db.where_().and_then(bound_parameter) {
        let value = prepared
            .params
            .get(n.wrapping_sub(1))
            .map(|p| format!(" ({:?})", p.0))
            .unwrap_or_default();
        Error::input(format!(
            "--param {n}{value} does not fit ${n} in {label}: {}; give a value of the type \
             PostgreSQL infers for ${n}",
            db.message()
        ))
    } else if *code == SqlState::SYNTAX_ERROR {
        Error::input(format!(
            "PostgreSQL does not read {label}: {}",
            db.message()
        ))
    } else if *code == SqlState::INDETERMINATE_DATATYPE {
        Error::input(format!(
            "PostgreSQL cannot tell the type of a placeholder in {label}: {}; add a cast \
             such as $1::bigint",
            db.message()
        ))
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        Error::input(format!(
            "{label} reads like a query but tried to write ({}), perhaps in a function it \
             calls (planning runs IMMUTABLE and STABLE ones too); perfaudit explains in a READ \
             ONLY transaction, so nothing was written",
            db.message()
        ))
    } else {
        query_error(&format!("explaining {label}"), error)
    }
}

/// The `n` of `unnamed portal parameter $n = '...'`, the context PostgreSQL
/// gives an error in converting a bound value.
fn bound_parameter(context: &str) -> Option<usize> {
    let (_, after) = context.split_once("portal parameter $")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(analyze: bool, read_only: bool) -> Mode {
        Mode {
            analyze,
            read_only,
            notes: Vec::new(),
        }
    }

    #[test]
    fn each_run_begins_with_its_mode_and_timeout() {
        let timeout = Timeout::from_flag(Some(Duration::from_millis(1500)));
        let prepared = Prepared::new(&mode(true, true), "SELECT 1", Vec::new(), timeout);
        assert_eq!(
            prepared.begin,
            "BEGIN READ ONLY; SET LOCAL statement_timeout = 1500"
        );
        assert_eq!(
            prepared.explain,
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT 1"
        );
        let server = Prepared::new(
            &mode(true, false),
            "DELETE FROM t",
            Vec::new(),
            Timeout::from_flag(Some(Duration::ZERO)),
        );
        assert_eq!(server.begin, "BEGIN");
    }

    #[test]
    fn bind_errors_name_the_parameter() {
        assert_eq!(
            bound_parameter("unnamed portal parameter $2 = '...'"),
            Some(2)
        );
        assert_eq!(bound_parameter("unnamed portal parameter $13"), Some(13));
        assert_eq!(bound_parameter("SQL function \"f\""), None);
    }

    #[test]
    fn the_default_timeout_keeps_a_stricter_server_setting() {
        assert_eq!(
            Timeout::from_flag(None),
            Timeout::AtMost(DEFAULT_STATEMENT_TIMEOUT)
        );
        let minute = Duration::from_secs(60);
        assert_eq!(
            Timeout::lower(minute, Duration::ZERO),
            Timeout::Exactly(minute)
        );
        assert_eq!(
            Timeout::lower(minute, Duration::from_secs(3600)),
            Timeout::Exactly(minute)
        );
        assert_eq!(
            Timeout::lower(minute, Duration::from_secs(5)),
            Timeout::Server
        );
    }
}
