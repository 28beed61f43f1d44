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
use tokio_postgres::types::{ToSql, Type};

use super::spec::{IndexSpec, Spec};
use super::sql::{self, Build};
use crate::db::errors::{query_error, server_message};
use crate::error::{Error, Result};
use crate::sql::ident::{QualifiedName, quote};

/// SQL for the size of index `i` (a `pg_index` row whose `pg_class` row is
/// `c`): the sum over its partitions for a partitioned index, which has no
/// storage of its own.
pub const INDEX_SIZE_SQL: &str = "CASE WHEN c.relkind = 'I' \
     THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(i.indexrelid) p) \
     ELSE pg_relation_size(i.indexrelid) END::int8";

/// What kind of relation a spec's table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// An ordinary table.
    Table,
    /// A partitioned table: its indexes are built partition by partition.
    Partitioned,
    /// A materialized view (it can be indexed like a table).
    MaterializedView,
    /// Anything else (a view, a sequence, ...), described in words.
    Other(&'static str),
}

impl TableKind {
    fn from_relkind(relkind: &str) -> TableKind {
        match relkind {
            "r" => TableKind::Table,
            "p" => TableKind::Partitioned,
            "m" => TableKind::MaterializedView,
            "v" => TableKind::Other("a view"),
            "f" => TableKind::Other("a foreign table"),
            "S" => TableKind::Other("a sequence"),
            "c" => TableKind::Other("a composite type"),
            "i" | "I" => TableKind::Other("an index"),
            "t" => TableKind::Other("a TOAST table"),
            _ => TableKind::Other("not a table"),
        }
    }
}

/// A table the spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its OID.
    pub oid: u32,
    /// Its name.
    pub name: QualifiedName,
    /// What it is.
    pub kind: TableKind,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// For a partitioned table, every partition below it, parents before
    /// their children.
    pub partitions: Vec<Partition>,
}

/// A partition of a partitioned table (at any depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its OID.
    pub oid: u32,
    /// Its name.
    pub name: QualifiedName,
    /// The OID of the table it is a partition of.
    pub parent: u32,
    /// Whether it holds rows itself (not partitioned further).
    pub leaf: bool,
}

/// The spec's tables as found on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `server_version_num`, e.g. 150004.
    pub server_version: i32,
    /// The distinct tables found.
    pub tables: Vec<Table>,
    /// For each spec index, its table in `tables`, or `None` if it does not
    /// exist.
    pub of_index: Vec<Option<usize>>,
}

/// One key column of an index, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShape {
    /// The column name or the deparsed expression (`pg_get_indexdef`).
    pub definition: String,
    /// The operator class.
    pub opclass: u32,
    /// `indoption`: sort order and nulls placement.
    pub option: i16,
    /// The collation (0 for none).
    pub collation: u32,
}

/// What an index is, independently of its name: two indexes with the same
/// shape on the same table serve the same queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The access method.
    pub method: String,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// The key, in order.
    pub keys: Vec<KeyShape>,
    /// The `INCLUDE` columns.
    pub include: Vec<String>,
    /// The deparsed predicate of a partial index.
    pub predicate: Option<String>,
}

/// An index already on one of the spec's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingIndex {
    /// The OID of its table.
    pub table: u32,
    /// Its name.
    pub name: QualifiedName,
    /// What it is.
    pub shape: Shape,
    /// `indisvalid AND indisready AND indislive`: queries use it. An index
    /// left by a failed concurrent build is not.
    pub usable: bool,
    /// Whether a constraint (primary key, unique, exclusion, a foreign key
    /// that references it) depends on it.
    pub backs_constraint: bool,
    /// Its size on disk (all partitions' for a partitioned index).
    pub size_bytes: i64,
    /// Another session working on it right now, if one is.
    pub busy: Option<Busy>,
}

/// Another session working on an index right now: building it (an index
/// under construction is not valid yet), rebuilding or dropping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Its server process.
    pub pid: i32,
    /// How it shows.
    pub with: BusyWith,
}

/// How a session working on an index shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusyWith {
    /// `pg_stat_progress_create_index` names the index: the command, e.g.
    /// `CREATE INDEX CONCURRENTLY`.
    Build(String),
    /// It holds a lock on the index that only DDL takes (a concurrent drop
    /// or `REINDEX` holds one for its whole length).
    IndexLock,
    /// The index is not valid and the session holds the lock on its table
    /// that a concurrent build takes, while what it builds is hidden from
    /// this role (progress of other roles' sessions needs
    /// `pg_read_all_stats`).
    TableLock,
}

/// Who is working on which index, read once per query: the builds in
/// progress and the locks only DDL takes, held by other sessions in this
/// database (OIDs are per database).
const BUSY_CTES: &str = "WITH progress AS (
         SELECT p.pid, p.relid, p.index_relid, p.command FROM pg_stat_progress_create_index p
         WHERE p.pid <> pg_backend_pid()
           AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ), ddl_locks AS (
         SELECT l.pid, l.relation, l.mode FROM pg_locks l
         WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                          'ExclusiveLock', 'AccessExclusiveLock')
     )";

/// The session working on index `i` (a `pg_index` row), most certain
/// first, as `pid, kind, command` (kinds as in [`BusyWith`], from 1).
const BUSY_SQL: &str = "SELECT b.pid, b.kind, b.command FROM (
         SELECT p.pid, 1 AS kind, p.command FROM progress p WHERE p.index_relid = i.indexrelid
         UNION ALL
         SELECT l.pid, 2, NULL FROM ddl_locks l WHERE l.relation = i.indexrelid
         UNION ALL
         SELECT l.pid, 3, NULL FROM ddl_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE NOT (i.indisvalid AND i.indisready AND i.indislive)
           AND l.relation = i.indrelid AND l.mode = 'ShareUpdateExclusiveLock'
           AND a.backend_type = 'client backend'
           AND NOT EXISTS (SELECT 1 FROM progress p WHERE p.pid = l.pid AND p.relid IS NOT NULL)
     ) b ORDER BY b.kind, b.pid LIMIT 1";

/// A relation that already holds a name the plan would give an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenName {
    /// The name.
    pub name: QualifiedName,
    /// What holds it, in words ("a table", "an index on public.users").
    pub holder: String,
    /// The table, when the holder is an index.
    pub index_of: Option<u32>,
}

/// Everything the planner needs, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The spec's tables.
    pub tables: Tables,
    /// The indexes on those tables.
    pub existing: Vec<ExistingIndex>,
    /// The shape of each spec index, in spec order.
    pub wanted: Vec<Shape>,
    /// Relations holding names in `names` (see [`read`]).
    pub taken: Vec<TakenName>,
}

/// Finds the spec's tables, their columns and partitions.
pub async fn tables(client: &Client, spec: &Spec) -> Result<Tables> {
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
    let mut found = Tables {
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
        let kind = TableKind::from_relkind(row.get(3));
        let partitions = if kind == TableKind::Partitioned {
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
        });
        found.of_index.push(Some(found.tables.len() - 1));
    }
    Ok(found)
}

/// Every partition below `table`, parents before their children.
pub async fn partitions(client: &Client, table: u32) -> Result<Vec<Partition>> {
    let rows = client
        .query_typed(
            "SELECT t.relid::oid, t.parentrelid::oid, t.isleaf, n.nspname::text, c.relname::text
             FROM pg_partition_tree($1) t
             JOIN pg_class c ON c.oid = t.relid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE t.level > 0
             ORDER BY t.level, n.nspname, c.relname",
            &[(&table, Type::OID)],
        )
        .await
        .map_err(|e| query_error("reading the partitions", &e))?;
    Ok(rows
        .iter()
        .map(|row| Partition {
            oid: row.get(0),
            parent: row.get(1),
            leaf: row.get(2),
            name: QualifiedName::new(row.get::<_, String>(3), row.get::<_, String>(4)),
        })
        .collect())
}

/// Reads the indexes on `tables`, which relations hold any of `names`, and
/// the shape of each spec index, in one transaction that is rolled back.
/// `lock_timeout` bounds the wait for the brief share lock that copying a
/// table's definition takes.
pub async fn read(
    client: &Client,
    spec: &Spec,
    tables: Tables,
    names: &[QualifiedName],
    lock_timeout: Duration,
) -> Result<Catalog> {
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            sql::milliseconds(lock_timeout)
        ))
        .await
        .map_err(|e| query_error("reading the catalog", &e))?;
    let result = read_in_transaction(client, spec, tables, names).await;
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| query_error("reading the catalog", &e))?;
    result
}

async fn read_in_transaction(
    client: &Client,
    spec: &Spec,
    tables: Tables,
    names: &[QualifiedName],
) -> Result<Catalog> {
    let relations: Vec<String> = tables.tables.iter().map(|t| t.name.to_string()).collect();
    let existing = indexes(client, &relations).await?;
    let taken = taken_names(client, names).await?;
    check_shadows_allowed(client).await?;
    let wanted = wanted_shapes(client, spec, &tables).await?;
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

async fn wanted_shapes(client: &Client, spec: &Spec, tables: &Tables) -> Result<Vec<Shape>> {
    for (n, table) in tables.tables.iter().enumerate() {
        client
            .execute_typed(
                &format!(
                    "CREATE TEMP TABLE {} (LIKE {})",
                    quote(&shadow_table(n).name),
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
    for (n, index) in spec.indexes.iter().enumerate() {
        let table = tables.of_index[n].expect("tables are checked before shapes are read");
        let ddl = sql::create_index(index, &shadow_index(n), &shadow_table(table), Build::Plain);
        client
            .execute_typed(&ddl, &[])
            .await
            .map_err(|e| spec_error(index, &tables.tables[table], &e))?;
    }
    let shadows: Vec<String> = (0..tables.tables.len())
        .map(|n| shadow_table(n).to_string())
        .collect();
    let mut described = indexes(client, &shadows).await?;
    spec.indexes
        .iter()
        .enumerate()
        .map(|(n, index)| {
            let at = described
                .iter()
                .position(|index| index.name.name == shadow_index(n))
                .ok_or_else(|| {
                    Error::database(
                        "reading the shape of the spec's indexes failed: an index vanished",
                    )
                })?;
            let shape = described.swap_remove(at).shape;
            check_shape(index, &shape)?;
            Ok(shape)
        })
        .collect()
}

/// Checks that the server read `index` as the spec wrote it: as many keys,
/// `INCLUDE` columns and predicates. An expression that closes its
/// parentheses early (`a), (b`) would otherwise add keys or clauses.
fn check_shape(index: &IndexSpec, shape: &Shape) -> Result<()> {
    let counts = [
        ("key columns", index.keys.len(), shape.keys.len()),
        ("INCLUDE columns", index.include.len(), shape.include.len()),
        (
            "predicates",
            usize::from(index.predicate.is_some()),
            usize::from(shape.predicate.is_some()),
        ),
    ];
    match counts.iter().find(|(_, spec, server)| spec != server) {
        None => Ok(()),
        Some((what, spec, server)) => Err(Error::input(format!(
            "index \"{}\" of the spec is not what it says: PostgreSQL reads {server} {what} \
             where the spec lists {spec}; write each expression and `where` as exactly one \
             SQL expression",
            index.name
        ))),
    }
}

/// A spec index the server would not create: the spec is at fault, unless
/// the connection failed.
fn spec_error(index: &IndexSpec, table: &Table, error: &tokio_postgres::Error) -> Error {
    match error.as_db_error() {
        Some(db) => Error::input(format!(
            "index \"{}\" of the spec cannot be created on {}: {}; fix it in the spec{}",
            index.name,
            table.name.display(),
            server_message(db),
            if *db.code() == SqlState::SYNTAX_ERROR {
                " (each expression and `where` must be exactly one SQL expression)"
            } else {
                ""
            }
        )),
        None => query_error("checking the spec's indexes", error),
    }
}

/// The indexes on `relations` (quoted, qualified names).
async fn indexes(client: &Client, relations: &[String]) -> Result<Vec<ExistingIndex>> {
    let rows = client
        .query_typed(
            &format!(
                "{BUSY_CTES}
             SELECT i.indrelid, n.nspname::text, c.relname::text, am.amname::text,
                    i.indisunique, i.indisvalid AND i.indisready AND i.indislive,
                    i.indnkeyatts::int4,
                    ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                          FROM generate_series(1, i.indnatts) AS k ORDER BY k),
                    i.indclass::oid[], i.indoption::int2[], i.indcollation::oid[],
                    pg_get_expr(i.indpred, i.indrelid, true),
                    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid),
                    {INDEX_SIZE_SQL},
                    busy.pid, busy.kind, busy.command
             FROM unnest($1::text[]) AS r(name)
             JOIN pg_index i ON i.indrelid = to_regclass(r.name)::oid
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_am am ON am.oid = c.relam
             LEFT JOIN LATERAL ({BUSY_SQL}) busy ON true
             ORDER BY r.name, c.relname"
            ),
            &[(&relations, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| query_error("reading the existing indexes", &e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let key_count = row.get::<_, i32>(6) as usize;
            let mut columns: Vec<String> = row.get(7);
            let include = columns.split_off(key_count.min(columns.len()));
            let opclasses: Vec<u32> = row.get(8);
            let options: Vec<i16> = row.get(9);
            let collations: Vec<u32> = row.get(10);
            let keys = columns
                .into_iter()
                .enumerate()
                .map(|(k, definition)| KeyShape {
                    definition,
                    opclass: opclasses.get(k).copied().unwrap_or_default(),
                    option: options.get(k).copied().unwrap_or_default(),
                    collation: collations.get(k).copied().unwrap_or_default(),
                })
                .collect();
            let busy = row.get::<_, Option<i32>>(14).map(|pid| Busy {
                pid,
                with: match (row.get::<_, i32>(15), row.get::<_, Option<String>>(16)) {
                    (1, Some(command)) => BusyWith::Build(command),
                    (1 | 2, _) => BusyWith::IndexLock,
                    _ => BusyWith::TableLock,
                },
            });
            ExistingIndex {
                table: row.get(0),
                name: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                shape: Shape {
                    method: row.get(3),
                    unique: row.get(4),
                    keys,
                    include,
                    predicate: row.get(11),
                },
                usable: row.get(5),
                backs_constraint: row.get(12),
                size_bytes: row.get(13),
                busy,
            }
        })
        .collect())
}

async fn taken_names(client: &Client, names: &[QualifiedName]) -> Result<Vec<TakenName>> {
    let schemas: Vec<&str> = names.iter().map(|n| n.schema.as_str()).collect();
    let relations: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
    let params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&schemas, Type::TEXT_ARRAY), (&relations, Type::TEXT_ARRAY)];
    let rows = client
        .query_typed(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, i.indrelid,
                    i.indrelid::regclass::text
             FROM unnest($1::text[], $2::text[]) AS w(schema, name)
             JOIN pg_namespace n ON n.nspname = w.schema
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
             LEFT JOIN pg_index i ON i.indexrelid = c.oid",
            &params,
        )
        .await
        .map_err(|e| query_error("reading the names already taken", &e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let index_of: Option<u32> = row.get(3);
            let holder = match (index_of, TableKind::from_relkind(row.get(2))) {
                (Some(_), _) => format!("an index on {}", row.get::<_, String>(4)),
                (None, TableKind::Table | TableKind::Partitioned) => "a table".into(),
                (None, TableKind::MaterializedView) => "a materialized view".into(),
                (None, TableKind::Other(what)) => what.into(),
            };
            TakenName {
                name: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                holder,
                index_of,
            }
        })
        .collect())
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
