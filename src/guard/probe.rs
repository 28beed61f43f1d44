//! The probe: the server parses a statement as the body of a temporary
//! `BEGIN ATOMIC` function, in a transaction that is rolled back, and
//! hands back its parse tree.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use crate::db::describe::describe;
use crate::db::errors::{query_error, server_message};
use crate::db::params::INFERRED;
use crate::error::Result;
use crate::sql::ident::quote;

/// The name of the function the probe creates; the transaction that
/// creates it is always rolled back.
const PROBE: &str = "pg_temp.perfaudit_guard";

/// Has the server parse `statement`, which perfaudit's parser could not
/// read (`reason`), without running it: a statement the server does not
/// read either is bad input, found before anything runs.
pub async fn server_reads(
    client: &Client,
    statement: &str,
    placeholders: usize,
    reason: &str,
) -> Result<()> {
    match describe(client, statement, &vec![INFERRED; placeholders])
        .await
        .map_err(|e| query_error("having the server parse the statement", &e))?
    {
        Ok(_) => Ok(()),
        Err(error) => match error.as_db_error() {
            Some(db) if *db.code() == SqlState::SYNTAX_ERROR => Err(crate::Error::input(format!(
                "{reason}, and the server does not read it either: {}",
                db.message()
            ))),
            _ => Err(query_error("having the server parse the statement", &error)),
        },
    }
}

/// What the probe learnt.
pub(super) enum Probe {
    /// The statement's parse tree.
    Parsed(String),
    /// The server could not take the statement as a function body (it
    /// does not parse or resolve, or cannot be a function's statement).
    Rejected(String),
    /// The function cannot or must not be created here: a read-only
    /// session, a standby, no TEMP privilege, or an event trigger that
    /// creating it would fire.
    Unavailable(String),
}

/// Has the server parse `statement` as the body of a temporary function,
/// in a transaction that is rolled back, and returns its parse tree.
pub(super) async fn probe(
    client: &Client,
    statement: &str,
    placeholders: usize,
    timeout_sql: &str,
) -> Result<Probe> {
    let arguments = match parameter_types(client, statement, placeholders).await? {
        Ok(types) => types,
        Err(reason) => return Ok(Probe::Rejected(reason)),
    };
    // The body ends on a line of its own, so that a trailing `--` comment
    // cannot swallow the END. The extended protocol takes one statement
    // only: text that would close the body early and add another is
    // refused whole.
    let create = format!(
        "CREATE FUNCTION {PROBE}({arguments}) RETURNS void LANGUAGE sql BEGIN ATOMIC\n\
         {statement}\n;\nEND"
    );
    let tree_sql =
        format!("SELECT prosqlbody::text FROM pg_catalog.pg_proc WHERE oid = '{PROBE}'::regproc");
    // The session's transactions are READ ONLY by default meanwhile
    // ([`enter`]); this one creates the function, and is rolled back.
    client
        .batch_execute(&format!("BEGIN READ WRITE{timeout_sql}"))
        .await
        .map_err(|e| query_error("starting the guard's transaction", &e))?;
    let no_params: [(&(dyn ToSql + Sync), Type); 0] = [];
    let (created, tree, rollback) = tokio::join!(
        client.query_typed(&create, &no_params),
        client.query_typed(&tree_sql, &no_params),
        client.batch_execute("ROLLBACK"),
    );
    rollback.map_err(|e| query_error("rolling back the guard's transaction", &e))?;
    if let Err(error) = created {
        return match error.as_db_error() {
            Some(db)
                if matches!(
                    *db.code(),
                    SqlState::READ_ONLY_SQL_TRANSACTION | SqlState::INSUFFICIENT_PRIVILEGE
                ) =>
            {
                Ok(Probe::Unavailable(db.message().to_owned()))
            }
            Some(db) => Ok(Probe::Rejected(server_message(db))),
            None => Err(query_error(
                "having the server resolve the statement",
                &error,
            )),
        };
    }
    let rows = tree.map_err(|e| query_error("reading the statement's parse tree", &e))?;
    let tree = rows
        .first()
        .and_then(|row| row.get::<_, Option<String>>(0))
        .unwrap_or_default();
    Ok(Probe::Parsed(tree))
}

/// The types the server infers for `$1..$n` of `statement`, as an argument
/// list (`"pg_catalog"."int4", ...`); `Err` when it cannot describe it.
async fn parameter_types(
    client: &Client,
    statement: &str,
    placeholders: usize,
) -> Result<std::result::Result<String, String>> {
    if placeholders == 0 {
        return Ok(Ok(String::new()));
    }
    match describe(client, statement, &vec![INFERRED; placeholders])
        .await
        .map_err(|e| query_error("describing the statement's parameters", &e))?
    {
        Ok(described) => Ok(Ok(described
            .params
            .iter()
            .map(|ty| format!("{}.{}", quote(ty.schema()), quote(ty.name())))
            .collect::<Vec<_>>()
            .join(", "))),
        Err(error) => match error.as_db_error() {
            Some(db) => Ok(Err(server_message(db))),
            None => Err(query_error("describing the statement's parameters", &error)),
        },
    }
}
