//! Reading what the database has, once, before anything is planned: the
//! spec's tables (columns, partitions), their indexes, the names already
//! taken, and the canonical shape of every index the spec wants.
//!
//! Wanted shapes come from the server itself: inside a transaction that is
//! always rolled back, each wanted index is created on an empty temporary
//! copy of its table (`CREATE TEMP TABLE ... (LIKE table)`), and described
//! with the same query as the existing indexes. The server so checks the
//! whole spec (expressions, operator classes, methods) before anything is
//! built, and deparses expressions and predicates exactly as it deparses
//! those of the existing indexes, which makes them comparable.
//!
//! Every statement holding spec text goes through the extended protocol,
//! where the server refuses more than one statement: no text in a spec can
//! end the statement it is placed in, however a lexer other than the
//! server's reads it. The server's description of each wanted index is
//! then held against the spec (as many keys, `INCLUDE` columns and
//! predicates), so that an expression cannot pass for something else by
//! closing its parentheses early.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::spec::{IndexSpec, Problem, Spec};
use super::sql::{self, Build};
use crate::db::errors::{query_error, server_message};
use crate::error::{Error, Result};
use crate::pg::catalog::indexes::{self, Detail};
use crate::pg::catalog::{Index, RelKind, Shape, Table, TakenName, partition_indexes, partitions};
use crate::sql::ident::{QualifiedName, quote};

/// The spec's tables as found on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecTables {
    /// `server_version_num`, e.g. 150004.
    pub server_version: i32,
    /// The distinct tables found.
    pub tables: Vec<Table>,
    /// For each spec index, its table in `tables`, or `None` if it does not
    /// exist.
    pub of_index: Vec<Option<usize>>,
}

/// Everything the planner needs, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The spec's tables.
    pub tables: SpecTables,
    /// The indexes on those tables.
    pub existing: Vec<Index>,
    /// The shape of each spec index, in spec order.
    pub wanted: Vec<Shape>,
    /// Relations holding names in `names` (see [`read`]).
    pub taken: Vec<TakenName>,
}

/// Finds the spec's tables, their columns and partitions.
pub async fn tables(client: &Client, spec: &Spec) -> Result<SpecTables> {
    let names: Vec<&str> = spec.indexes.iter().map(|i| i.table.as_str()).collect();
    let rows = client
        .query_typed(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum),
                    current_setting('server_version_num')::int4
             FROM unnest($1::text[]) WITH ORDINALITY AS s(name, ord)
             LEFT JOIN pg_class c ON c.oid = to_regclass(s.name)
             LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
             ORDER BY s.ord",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| match e.as_db_error() {
            // to_regclass still rejects names that are not valid SQL names.
            Some(db)
                if ["42", "0A"]
                    .iter()
                    .any(|class| db.code().code().starts_with(class)) =>
            {
                Error::input(format!(
                    "a table name in the index spec is not valid: {}; write it as in SQL, \
                     e.g. payments, public.payments or \"Odd Name\"",
                    db.message()
                ))
            }
            _ => query_error("reading the spec's tables", &e),
        })?;
    let mut found = SpecTables {
        server_version: rows.first().map_or(0, |row| row.get(5)),
        tables: Vec::new(),
        of_index: Vec::new(),
    };
    for row in &rows {
        let Some(oid) = row.get::<_, Option<u32>>(0) else {
            found.of_index.push(None);
            continue;
        };
        if let Some(at) = found.tables.iter().position(|t| t.oid == oid) {
            found.of_index.push(Some(at));
            continue;
        }
        let kind = RelKind::from_relkind(row.get(3));
        let partitions = if kind == RelKind::Partitioned {
            partitions(client, oid).await?
        } else {
            Vec::new()
        };
        found.tables.push(Table {
            oid,
            name: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
            kind,
            columns: row.get(4),
            partitions,
            partition_indexes: Vec::new(),
        });
        found.of_index.push(Some(found.tables.len() - 1));
    }
    Ok(found)
}

/// The columns of table `oid` and their types, as `format_type` writes
/// them.
pub async fn column_types(client: &Client, oid: u32) -> Result<Vec<(String, String)>> {
    let rows = client
        .query_typed(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[(&oid, Type::OID)],
        )
        .await
        .map_err(|e| query_error("reading the columns of the spec's table", &e))?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Reads the indexes on `tables`, which relations hold any of `names`, and
/// the shape of each spec index, in one transaction that is rolled back.
/// `lock_timeout` bounds the wait for the brief share lock that copying a
/// table's definition takes. `problems` are those already found in the
/// spec: the server judges the other indexes, and the spec is refused
/// for all of them together.
pub async fn read(
    client: &Client,
    spec: &Spec,
    tables: SpecTables,
    names: &[QualifiedName],
    lock_timeout: Duration,
    problems: Vec<Problem>,
) -> Result<Catalog> {
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            sql::milliseconds(lock_timeout)
        ))
        .await
        .map_err(|e| query_error("reading the catalog", &e))?;
    let result = read_in_transaction(client, spec, tables, names, problems).await;
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| query_error("reading the catalog", &e))?;
    result
}

async fn read_in_transaction(
    client: &Client,
    spec: &Spec,
    mut tables: SpecTables,
    names: &[QualifiedName],
    problems: Vec<Problem>,
) -> Result<Catalog> {
    let relations: Vec<String> = tables.tables.iter().map(|t| t.name.to_string()).collect();
    let existing = indexes::read(client, &relations, Detail::WithSessions).await?;
    for table in &mut tables.tables {
        table.partition_indexes =
            partition_indexes(client, &table.partitions, Detail::WithSessions).await?;
    }
    let taken = indexes::taken_names(client, names).await?;
    check_shadows_allowed(client).await?;
    let wanted = wanted_shapes(client, spec, &tables, problems).await?;
    Ok(Catalog {
        tables,
        existing,
        wanted,
        taken,
    })
}

/// What the session may do that describing wanted indexes needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    /// The server is a standby.
    in_recovery: bool,
    /// The transaction is read-only (`default_transaction_read_only`).
    read_only: bool,
    /// The role may create temporary tables in the database.
    may_create_temp: bool,
    /// The database, quoted for SQL.
    database: String,
    /// The role, quoted for SQL.
    role: String,
}

/// Fails, saying why and what to do, where temporary tables cannot be made.
async fn check_shadows_allowed(client: &Client) -> Result<()> {
    let row = client
        .query_typed_one(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')::bool,
                    has_database_privilege(current_database(), 'TEMP'),
                    quote_ident(current_database()), quote_ident(current_user)",
            &[],
        )
        .await
        .map_err(|e| query_error("checking the session's privileges", &e))?;
    let session = Session {
        in_recovery: row.get(0),
        read_only: row.get(1),
        may_create_temp: row.get(2),
        database: row.get(3),
        role: row.get(4),
    };
    match shadows_refused(&session) {
        Some(reason) => Err(Error::database(reason)),
        None => Ok(()),
    }
}

/// Why wanted indexes cannot be described in `session`, if they cannot.
fn shadows_refused(session: &Session) -> Option<String> {
    let (why, what_to_do) = if session.in_recovery {
        (
            "the server is a standby (in recovery)".to_owned(),
            "point perfaudit at the primary".to_owned(),
        )
    } else if session.read_only {
        (
            "the session is read-only (default_transaction_read_only is on)".to_owned(),
            "run it where transactions may write".to_owned(),
        )
    } else if !session.may_create_temp {
        (
            "the role may not create temporary tables (no TEMP privilege on the database)"
                .to_owned(),
            format!(
                "GRANT TEMP ON DATABASE {} TO {}, or run it as a role that has it",
                session.database, session.role
            ),
        )
    } else {
        return None;
    };
    Some(format!(
        "perfaudit indexes cannot read the spec's indexes here: {why}; perfaudit describes each \
         wanted index by creating it on an empty temporary copy of its table, in a transaction \
         it rolls back, a dry run too; {what_to_do}"
    ))
}

/// The name of the temporary copy of the `n`-th table.
fn shadow_table(n: usize) -> QualifiedName {
    QualifiedName::new("pg_temp", format!("perfaudit_shape_{n}"))
}

/// The name of the `n`-th spec index on its table's temporary copy.
fn shadow_index(n: usize) -> String {
    format!("perfaudit_wanted_{n}")
}

/// The savepoint each spec index is created under on its table's copy, so
/// that one the server refuses does not end the transaction, and the next
/// is judged too.
const SAVEPOINT: &str = "perfaudit_wanted";

/// The shape of every spec index, as the server describes it once created
/// on its table's empty copy; or the spec's refusal, naming every index
/// the server would not create, with `problems` found before.
async fn wanted_shapes(
    client: &Client,
    spec: &Spec,
    tables: &SpecTables,
    mut problems: Vec<Problem>,
) -> Result<Vec<Shape>> {
    let judged: Vec<usize> = (0..spec.indexes.len())
        .filter(|n| !problems.iter().any(|p| p.n == *n))
        .collect();
    let table_of = |n: usize| tables.of_index[n].expect("checked tables exist");
    for (t, table) in tables.tables.iter().enumerate() {
        if !judged.iter().any(|&n| table_of(n) == t) {
            continue;
        }
        client
            .execute_typed(
                &format!(
                    "CREATE TEMP TABLE {} (LIKE {})",
                    quote(&shadow_table(t).name),
                    table.name
                ),
                &[],
            )
            .await
            .map_err(|e| {
                query_error(
                    &format!("reading the definition of {}", table.name.display()),
                    &e,
                )
            })?;
    }
    for &n in &judged {
        let index = &spec.indexes[n];
        let t = table_of(n);
        let ddl = sql::create_index(index, &shadow_index(n), &shadow_table(t), Build::Plain);
        let savepoint = |verb: &str| format!("{verb} {SAVEPOINT}");
        let checking = |e| query_error("checking the spec's indexes", &e);
        client
            .batch_execute(&savepoint("SAVEPOINT"))
            .await
            .map_err(checking)?;
        match client.execute_typed(&ddl, &[]).await {
            Ok(_) => client.batch_execute(&savepoint("RELEASE")).await,
            Err(error) => {
                let said = spec_error(index, n, &tables.tables[t], t, &error)?;
                problems.push(spec.problem(n, said));
                client.batch_execute(&savepoint("ROLLBACK TO")).await
            }
        }
        .map_err(checking)?;
    }
    let shadows: Vec<String> = (0..tables.tables.len())
        .map(|n| shadow_table(n).to_string())
        .collect();
    let mut described = indexes::read(client, &shadows, Detail::Definitions).await?;
    let mut shapes = Vec::with_capacity(spec.indexes.len());
    for (n, index) in spec.indexes.iter().enumerate() {
        let Some(at) = described
            .iter()
            .position(|index| index.name.name == shadow_index(n))
        else {
            if !problems.iter().any(|p| p.n == n) {
                return Err(Error::database(
                    "reading the shape of the spec's indexes failed: an index vanished",
                ));
            }
            continue;
        };
        let shape = described.swap_remove(at).shape;
        match shape_problem(index, &shape) {
            Some(problem) => problems.push(spec.problem(n, problem)),
            None => shapes.push(shape),
        }
    }
    if problems.is_empty() {
        Ok(shapes)
    } else {
        Err(spec.refuse(&problems))
    }
}

/// What is wrong when the server did not read `index` as the spec wrote
/// it: as many keys, `INCLUDE` columns and predicates. An expression that
/// closes its parentheses early (`a), (b`) would otherwise add keys or
/// clauses.
fn shape_problem(index: &IndexSpec, shape: &Shape) -> Option<String> {
    let counts = [
        ("key columns", index.keys.len(), shape.keys.len()),
        ("INCLUDE columns", index.include.len(), shape.include.len()),
        (
            "predicates",
            usize::from(index.predicate.is_some()),
            usize::from(shape.predicate.is_some()),
        ),
    ];
    let (what, spec, server) = counts.iter().find(|(_, spec, server)| spec != server)?;
    Some(format!(
        "it is not what it says: PostgreSQL reads {server} {what} where the spec lists \
         {spec}; write each expression and `where` as exactly one SQL expression"
    ))
}

/// Why the server would not create the `n`-th spec index on `table`
/// (whose empty copy is the `t`-th): the spec is at fault, unless the
/// connection failed. The server names the copy and the index made on it
/// (`perfaudit_shape_0.amount` in a hint); the message names the table
/// and the index as the spec does.
fn spec_error(
    index: &IndexSpec,
    n: usize,
    table: &Table,
    t: usize,
    error: &tokio_postgres::Error,
) -> Result<String> {
    let Some(db) = error.as_db_error() else {
        return Err(query_error("checking the spec's indexes", error));
    };
    let said = server_message(db)
        .replace(&shadow_index(n), &index.name)
        .replace(&shadow_table(t).name, &table.name.name);
    Ok(format!(
        "it cannot be created on {}: {said}; fix it in the spec{}",
        table.name.display(),
        if *db.code() == SqlState::SYNTAX_ERROR {
            " (each expression and `where` must be exactly one SQL expression)"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_that_cannot_make_temporary_tables_are_told_why() {
        let able = Session {
            in_recovery: false,
            read_only: false,
            may_create_temp: true,
            database: "payments".into(),
            role: "\"App\"".into(),
        };
        assert_eq!(shadows_refused(&able), None);
        let standby = Session {
            in_recovery: true,
            read_only: true,
            ..able.clone()
        };
        let reason = shadows_refused(&standby).unwrap();
        assert!(
            reason.contains("the server is a standby (in recovery)")
                && reason.ends_with("point perfaudit at the primary"),
            "{reason}"
        );
        let read_only = Session {
            read_only: true,
            ..able.clone()
        };
        assert!(shadows_refused(&read_only).unwrap().contains("read-only"));
        let no_temp = Session {
            may_create_temp: false,
            ..able
        };
        assert!(
            shadows_refused(&no_temp)
                .unwrap()
                .contains("GRANT TEMP ON DATABASE payments TO \"App\"")
        );
    }
}
