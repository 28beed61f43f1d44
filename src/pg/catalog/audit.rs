//! What an audit of a database's indexes reads besides the indexes
//! themselves ([`super::indexes::read`] with `Detail::Audit`): the server
//! and its statistics, the tables audited, and their foreign keys.
//!
//! Every query here reads the catalog and the statistics collector's
//! counters only: none locks a table or an index, so none waits behind DDL
//! (`pg_relation_size` and `pg_partition_tree`, which do, are not used).
//! The indexes' definitions are another matter: `pg_get_indexdef` and
//! `pg_get_expr` take a share lock on the table, so [`tables`] says which
//! tables DDL has locked, whose indexes an audit leaves alone.

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::RelKind;
use crate::db::errors::query_error;
use crate::error::{Error, Result};
use crate::sql::ident::QualifiedName;

/// The schemas PostgreSQL keeps for itself: the catalogs, TOAST, and the
/// sessions' temporary schemas (a regular expression on `nspname`).
const SYSTEM_SCHEMAS: &str = "^(pg_catalog|information_schema|pg_toast.*|pg_temp_.*)$";

/// What the server says about itself and its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `server_version_num`, e.g. 150004.
    pub version: i32,
    /// A standby: its statistics count only its own queries.
    pub in_recovery: bool,
    /// `track_counts`: without it, no scan is ever counted.
    pub counting: bool,
    /// When the database's statistics were last reset, ISO 8601 in UTC;
    /// `None` when they never were.
    pub stats_reset: Option<String>,
    /// `block_size`, in bytes.
    pub block_size: i64,
    /// The server's `MAXALIGN`, guessed from its platform as the
    /// well-known bloat estimate does: 8 on 64-bit, else 4.
    pub maxalign: i64,
}

/// Reads [`Server`].
pub async fn server(client: &Client) -> Result<Server> {
    let row = client
        .query_typed_one(
            "SELECT current_setting('server_version_num')::int4, pg_is_in_recovery(),
                    current_setting('track_counts')::bool,
                    to_char(d.stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    current_setting('block_size')::int8,
                    CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64' THEN 8 ELSE 4 END::int8
             FROM pg_stat_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| query_error("reading the server's statistics", &e))?;
    Ok(Server {
        version: row.get(0),
        in_recovery: row.get(1),
        counting: row.get(2),
        stats_reset: row.get(3),
        block_size: row.get(4),
        maxalign: row.get(5),
    })
}

/// Which tables an audit looks at: all of the database's own (outside the
/// system schemas, not an extension's), or those of some schemas, or some
/// tables. A partitioned table comes with its partitions wherever they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Schema names (`--schema`); empty: every schema.
    pub schemas: Vec<String>,
    /// Table names as SQL writes them (`--table`); empty: every table.
    pub tables: Vec<String>,
}

/// A table audited (a partition is one too).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedTable {
    /// Its OID.
    pub oid: u32,
    /// Its name.
    pub name: QualifiedName,
    /// What it is.
    pub kind: RelKind,
    /// The partitioned table it is a partition of, if it is one.
    pub parent: Option<u32>,
    /// Its pages and its TOAST table's, as the catalog last counted them.
    pub pages: i64,
    /// `reltuples`: its rows as last counted (-1: never counted; a
    /// partitioned table's are its partitions').
    pub rows: f64,
    /// Rows written since the statistics were reset.
    pub writes: Writes,
    /// Another session holding or awaiting an ACCESS EXCLUSIVE lock on it
    /// (DDL under way), if one is: reading its indexes' definitions
    /// (`pg_get_indexdef`, `pg_get_expr`) would wait behind it.
    pub locked_by: Option<i32>,
}

/// Rows a table took since the statistics were reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Writes {
    /// `n_tup_ins`.
    pub inserted: i64,
    /// `n_tup_upd`.
    pub updated: i64,
    /// `n_tup_hot_upd`: updates that wrote no index entry.
    pub hot_updated: i64,
}

impl Writes {
    /// The writes that add an entry to every index of the table: inserts
    /// and updates other than HOT ones.
    pub fn index_entries(&self) -> i64 {
        self.inserted + self.updated - self.hot_updated
    }
}

impl std::ops::Add for Writes {
    type Output = Writes;

    fn add(self, other: Writes) -> Writes {
        Writes {
            inserted: self.inserted + other.inserted,
            updated: self.updated + other.updated,
            hot_updated: self.hot_updated + other.hot_updated,
        }
    }
}

/// Checks that the schemas and tables `scope` names exist and are tables,
/// and returns the tables' OIDs. A wrong name is bad input.
async fn resolve(client: &Client, scope: &Scope) -> Result<Vec<u32>> {
    let rows = client
        .query_typed(
            "SELECT s.name, s.name ~ $2 FROM unnest($1::text[]) AS s(name)
             WHERE s.name ~ $2 OR NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = s.name)",
            &[
                (&scope.schemas, Type::TEXT_ARRAY),
                (&SYSTEM_SCHEMAS, Type::TEXT),
            ],
        )
        .await
        .map_err(|e| query_error("reading the schemas", &e))?;
    if let Some(row) = rows.first() {
        return Err(Error::input(format!(
            "schema \"{}\" (of --schema) {}",
            row.get::<_, String>(0),
            if row.get(1) {
                "is PostgreSQL's own; an audit looks at the database's own schemas"
            } else {
                "does not exist"
            }
        )));
    }
    let mut oids = Vec::with_capacity(scope.tables.len());
    for name in &scope.tables {
        let row = client
            .query_typed_one(
                "SELECT c.oid, c.relkind::text, n.nspname ~ $2 FROM (SELECT to_regclass($1)) r(oid)
                 LEFT JOIN pg_class c ON c.oid = r.oid
                 LEFT JOIN pg_namespace n ON n.oid = c.relnamespace",
                &[(name, Type::TEXT), (&SYSTEM_SCHEMAS, Type::TEXT)],
            )
            .await
            .map_err(|e| match e.as_db_error() {
                // to_regclass still rejects names that are not valid SQL names.
                Some(db) if ["42", "0A"].iter().any(|c| db.code().code().starts_with(c)) => {
                    Error::input(format!(
                        "--table {name} is not a valid table name: {}; write it as in SQL, \
                         e.g. payments, public.payments or \"Odd Name\"",
                        db.message()
                    ))
                }
                _ => query_error("reading the tables of --table", &e),
            })?;
        let Some(oid) = row.get::<_, Option<u32>>(0) else {
            return Err(Error::input(format!(
                "table {name} (of --table) does not exist (or is not on the search_path, or \
                 you may not see it)"
            )));
        };
        let kind = RelKind::from_relkind(row.get(1));
        if !kind.indexable() || row.get::<_, bool>(2) {
            return Err(Error::input(format!(
                "{name} (of --table) is {}; --table takes the database's own tables, \
                 partitioned tables and materialized views",
                if kind.indexable() {
                    "a system catalog"
                } else {
                    kind.words()
                }
            )));
        }
        oids.push(oid);
    }
    Ok(oids)
}

/// The tables `scope` covers, by name: a partition is covered when its
/// partitioned table is; an extension's tables and the system's never are.
pub async fn tables(client: &Client, scope: &Scope) -> Result<Vec<AuditedTable>> {
    let oids = resolve(client, scope).await?;
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&SYSTEM_SCHEMAS, Type::TEXT),
        (&scope.schemas, Type::TEXT_ARRAY),
        (&oids, Type::OID_ARRAY),
    ];
    let rows = client
        .query_typed(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                    (SELECT h.inhparent FROM pg_inherits h
                     WHERE c.relispartition AND h.inhrelid = c.oid LIMIT 1),
                    greatest(c.relpages, 0)::int8
                        + coalesce((SELECT greatest(x.relpages, 0) FROM pg_class x
                                    WHERE x.oid = c.reltoastrelid), 0)::int8,
                    c.reltuples::float8,
                    pg_stat_get_tuples_inserted(c.oid), pg_stat_get_tuples_updated(c.oid),
                    pg_stat_get_tuples_hot_updated(c.oid),
                    (SELECT l.pid FROM pg_locks l
                     WHERE l.locktype = 'relation' AND l.relation = c.oid
                       AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
                       AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid()
                     ORDER BY l.granted DESC, l.pid LIMIT 1)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL (SELECT coalesce(pg_partition_root(c.oid), c.oid)) root(oid)
             JOIN pg_class rc ON rc.oid = root.oid
             JOIN pg_namespace rn ON rn.oid = rc.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm') AND rn.nspname !~ $1
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.classid = 'pg_class'::regclass AND d.objid = root.oid
                                 AND d.deptype = 'e')
               AND (cardinality($2::text[]) = 0 OR rn.nspname = ANY ($2))
               AND (cardinality($3::oid[]) = 0 OR c.oid = ANY ($3)
                    OR EXISTS (SELECT 1 FROM pg_partition_ancestors(c.oid) a
                               WHERE a.relid = ANY ($3)))
             ORDER BY n.nspname, c.relname",
            &params,
        )
        .await
        .map_err(|e| query_error("reading the tables to audit", &e))?;
    Ok(rows
        .iter()
        .map(|row| AuditedTable {
            oid: row.get(0),
            name: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
            kind: RelKind::from_relkind(row.get(3)),
            parent: row.get(4),
            pages: row.get(5),
            rows: row.get(6),
            writes: Writes {
                inserted: row.get(7),
                updated: row.get(8),
                hot_updated: row.get(9),
            },
            locked_by: row.get(10),
        })
        .collect())
}

/// A foreign key: its table's rows point at another table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Its name.
    pub name: String,
    /// The OID of the referencing table.
    pub table: u32,
    /// The referencing columns, in the constraint's order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references: QualifiedName,
}

/// The foreign keys defined on `tables` (OIDs), not their copies on
/// partitions, by table and name.
pub async fn foreign_keys(client: &Client, tables: &[u32]) -> Result<Vec<ForeignKey>> {
    let rows = client
        .query_typed(
            "SELECT k.conname::text, k.conrelid,
                    ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                          ORDER BY u.n),
                    fn.nspname::text, fc.relname::text
             FROM pg_constraint k
             JOIN pg_class fc ON fc.oid = k.confrelid
             JOIN pg_namespace fn ON fn.oid = fc.relnamespace
             WHERE k.contype = 'f' AND k.conparentid = 0 AND k.conrelid = ANY ($1)
             ORDER BY k.conrelid, k.conname",
            &[(&tables, Type::OID_ARRAY)],
        )
        .await
        .map_err(|e| query_error("reading the foreign keys", &e))?;
    Ok(rows
        .iter()
        .map(|row| ForeignKey {
            name: row.get(0),
            table: row.get(1),
            columns: row.get(2),
            references: QualifiedName::new(row.get::<_, String>(3), row.get::<_, String>(4)),
        })
        .collect())
}
