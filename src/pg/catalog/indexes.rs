//! Indexes as the server describes them: `pg_index`, read in one place.
//! An existing index and a wanted one (created on an empty temporary copy
//! of its table) are described by the same query, so that two indexes
//! serving the same queries have equal [`Shape`]s. An audit reads the same
//! rows with what it judges them by ([`Usage`]).

use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::RelKind;
use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::ident::QualifiedName;

/// SQL for the size of index `i` (a `pg_index` row whose `pg_class` row is
/// `c`): the sum over its partitions for a partitioned index, which has no
/// storage of its own.
const INDEX_SIZE_SQL: &str = "CASE WHEN c.relkind = 'I' \
     THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(i.indexrelid) p) \
     ELSE pg_relation_size(i.indexrelid) END::int8";

/// SQL for the size of index `i` as the catalog last counted it
/// (`relpages`, as of its build or the last `VACUUM` or `ANALYZE`), which
/// an audit reads instead of [`INDEX_SIZE_SQL`]: `pg_relation_size` and
/// `pg_partition_tree` lock the relations they measure, so they queue
/// behind DDL, and an audit of a whole database must never wait. A
/// partitioned index counts 0 here: its partitions are rows of their own.
const CATALOG_SIZE_SQL: &str =
    "(greatest(c.relpages, 0)::int8 * current_setting('block_size')::int8)";

/// SQL for the options of each key of index `i` (a `pg_index` row), as
/// [`KeyShape::options`]: a collation other than the column's (for an
/// expression, other than none or its type's: an expression's own
/// collation, derived from its arguments, is not in the catalog, so such a
/// key shows one it may not need), an operator class that is not its
/// type's default, `DESC`, and NULLs placed otherwise than by default.
const KEY_OPTIONS_SQL: &str = "ARRAY(
         SELECT concat_ws(' ',
                    CASE WHEN i.indcollation[k - 1] NOT IN
                              (0, coalesce(a.attcollation, t.typcollation))
                         THEN 'COLLATE ' || (SELECT quote_ident(l.collname) FROM pg_collation l
                                             WHERE l.oid = i.indcollation[k - 1]) END,
                    CASE WHEN NOT o.opcdefault THEN quote_ident(o.opcname) END,
                    CASE WHEN i.indoption[k - 1] & 1 = 1 THEN 'DESC' END,
                    CASE i.indoption[k - 1] & 3 WHEN 2 THEN 'NULLS FIRST'
                                                WHEN 1 THEN 'NULLS LAST' END)
         FROM generate_series(1, i.indnkeyatts) AS k
         JOIN pg_opclass o ON o.oid = i.indclass[k - 1]
         JOIN pg_attribute x ON x.attrelid = i.indexrelid AND x.attnum = k
         JOIN pg_type t ON t.oid = x.atttypid
         LEFT JOIN pg_attribute a ON i.indkey[k - 1] <> 0
              AND a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1]
         ORDER BY k)";

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
    /// The column, when the key is a plain column (not an expression).
    pub column: Option<String>,
    /// What `CREATE INDEX` would write after the column or expression,
    /// as the server names it (`COLLATE "C" text_pattern_ops DESC NULLS
    /// LAST`): empty for a plain key (see [`KeyShape::is_plain`]).
    pub options: String,
}

impl KeyShape {
    /// Whether the key is what `CREATE INDEX` makes of a bare column or
    /// expression: its type's default operator class, its own collation,
    /// ascending with NULLs last. An index advise or explain asks for has
    /// only such keys.
    pub fn is_plain(&self) -> bool {
        self.options.is_empty()
    }
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

/// Where an index is stored. Neither changes which queries it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storage {
    /// `WITH (fillfactor = ...)`: how full its leaf pages are built.
    pub fillfactor: Option<u32>,
    /// `TABLESPACE`, by name (`None`: the database's default).
    pub tablespace: Option<String>,
}

/// An index on a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// Its OID.
    pub oid: u32,
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
    /// Its size on disk (all partitions' for a partitioned index); with
    /// [`Detail::Audit`], its own pages as the catalog counted them (none
    /// for a partitioned index: see [`Usage`]).
    pub size_bytes: i64,
    /// Another session working on it right now, if one is (read with
    /// [`Detail::WithSessions`] and [`Detail::Audit`]).
    pub busy: Option<Busy>,
    /// What an audit judges it by (read only with [`Detail::Audit`]).
    pub usage: Option<Usage>,
    /// For a partition's index, the OID of the partitioned index it is
    /// attached to (`ALTER INDEX ... ATTACH PARTITION`), if it is.
    pub attached_to: Option<u32>,
    /// Its fill factor and tablespace.
    pub storage: Storage,
}

/// What an audit knows of an index beyond its shape. Nothing here takes a
/// lock on the index or its table: the catalog and the statistics
/// collector's counters only.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Its OID.
    pub oid: u32,
    /// Whether it is a partitioned index (on a partitioned table), whose
    /// partitions are indexes of their own.
    pub partitioned: bool,
    /// The partitioned index it is a partition of (attached to), if any:
    /// PostgreSQL drops it only with that one.
    pub parent: Option<u32>,
    /// The constraints that need it (not their copies on partitions), by
    /// kind, then name.
    pub constraints: Vec<Constraint>,
    /// Index scans since the statistics were reset (`idx_scan`); a
    /// partitioned index counts none itself, its partitions count theirs.
    pub scans: i64,
    /// `relpages`: its pages as the catalog last counted them.
    pub pages: i64,
    /// `reltuples`: its entries as last counted (-1: never counted).
    pub tuples: f64,
    /// Its fillfactor, in percent (a B-tree's default is 90).
    pub fillfactor: i32,
    /// For a B-tree with storage, each column's statistics (key columns,
    /// then `INCLUDE` columns), `None` where `pg_stats` has none; empty for
    /// other indexes.
    pub columns: Vec<Option<ColumnStats>>,
}

/// What `pg_stats` says about one column of an index: of its table's
/// column, or of the index's own for an expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStats {
    /// The fraction of entries that are NULL.
    pub null_frac: f64,
    /// The average width of a value, in bytes.
    pub avg_width: f64,
    /// Whether its type is `name`, whose width `pg_stats` overstates
    /// (stored at 64 bytes, counted as its text).
    pub is_name: bool,
}

/// A constraint that needs an index: PostgreSQL refuses to drop the index
/// while the constraint is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: ConstraintKind,
    /// The table it is defined on (for a foreign key, the referencing one).
    pub table: QualifiedName,
}

/// The kinds of constraint an index can back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConstraintKind {
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `UNIQUE`.
    Unique,
    /// `EXCLUDE`.
    Exclusion,
    /// A `FOREIGN KEY` referencing the index's columns.
    ForeignKey,
}

impl ConstraintKind {
    fn from_contype(contype: &str) -> Option<ConstraintKind> {
        match contype {
            "p" => Some(ConstraintKind::PrimaryKey),
            "u" => Some(ConstraintKind::Unique),
            "x" => Some(ConstraintKind::Exclusion),
            "f" => Some(ConstraintKind::ForeignKey),
            _ => None,
        }
    }

    /// As SQL names it: `PRIMARY KEY`, `FOREIGN KEY`.
    pub fn words(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "PRIMARY KEY",
            ConstraintKind::Unique => "UNIQUE",
            ConstraintKind::Exclusion => "EXCLUDE",
            ConstraintKind::ForeignKey => "FOREIGN KEY",
        }
    }
}

impl Index {
    /// Its leading key columns, up to the first expression.
    pub fn leading_columns(&self) -> impl Iterator<Item = &str> {
        self.shape
            .keys
            .iter()
            .map_while(|key| key.column.as_deref())
    }

    /// Whether its key, an expression of it or its predicate reads
    /// `column` (a word of an expression counts, which can only make an
    /// update look less HOT than it is): what decides whether an update
    /// that sets the column is HOT.
    pub fn reads(&self, column: &str) -> bool {
        let said = |text: &str| crate::text::words(text).any(|word| word == column);
        self.shape.keys.iter().any(|key| match &key.column {
            Some(name) => name == column,
            None => said(&key.definition),
        }) || self.shape.predicate.as_deref().is_some_and(said)
            || self.shape.include.iter().any(|name| name == column)
    }

    /// Whether the planner can use it for any query on its leading
    /// columns: a usable (valid, ready and live), non-partial B-tree.
    pub fn serves_any_query(&self) -> bool {
        self.usable && self.shape.predicate.is_none() && self.shape.method == "btree"
    }

    /// Whether it already gives a B-tree index on `key`, whose first
    /// `equality` columns are compared for equality (so serve in any
    /// order): it serves any query on its leading columns, those start with
    /// the equality columns in some order, then the rest of `key` in order.
    /// explain and advise both ask this before they suggest an index.
    pub fn gives(&self, key: &[String], equality: usize) -> bool {
        let leading: Vec<&str> = self.leading_columns().collect();
        let equality = equality.min(key.len());
        self.serves_any_query()
            && leading.len() >= key.len()
            && key[..equality]
                .iter()
                .all(|column| leading[..equality].contains(&column.as_str()))
            && leading[equality..]
                .iter()
                .zip(&key[equality..])
                .all(|(a, b)| a == b)
    }

    /// A valid B-tree on plain `columns` of `public.t`, for tests.
    #[cfg(test)]
    pub fn btree(name: &str, columns: &[&str], predicate: Option<&str>) -> Index {
        Index {
            oid: 0,
            table: 1,
            name: QualifiedName::new("public", name),
            shape: Shape {
                method: "btree".to_owned(),
                unique: false,
                keys: columns
                    .iter()
                    .map(|column| KeyShape {
                        definition: (*column).to_owned(),
                        opclass: 0,
                        option: 0,
                        collation: 0,
                        column: Some((*column).to_owned()),
                        options: String::new(),
                    })
                    .collect(),
                include: Vec::new(),
                predicate: predicate.map(str::to_owned),
            },
            usable: true,
            backs_constraint: false,
            size_bytes: 0,
            busy: None,
            usage: None,
            attached_to: None,
            storage: Storage::default(),
        }
    }
}

/// How much [`read`] reads about each index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// What it is.
    Definitions,
    /// What it is, and which other session works on it right now (from
    /// `pg_locks` and `pg_stat_progress_create_index`): what a build
    /// needs to know.
    WithSessions,
    /// What it is, who works on it, and its [`Usage`], with its size as the
    /// catalog counted it: what an audit needs, read without a lock.
    Audit,
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

/// The indexes on `relations` (quoted, qualified names), by table in the
/// order of their names, then by index name.
pub async fn read(client: &Client, relations: &[String], detail: Detail) -> Result<Vec<Index>> {
    let (ctes, busy_join) = match detail {
        Detail::Definitions => (
            "",
            "LEFT JOIN (SELECT NULL::int4, NULL::int4, NULL::text) busy(pid, kind, command) ON true"
                .to_owned(),
        ),
        Detail::WithSessions | Detail::Audit => {
            (BUSY_CTES, format!("LEFT JOIN LATERAL ({BUSY_SQL}) busy ON true"))
        }
    };
    let (size, usage) = match detail {
        Detail::Audit => (CATALOG_SIZE_SQL, USAGE_SQL),
        _ => (INDEX_SIZE_SQL, ""),
    };
    let rows = client
        .query_typed(
            &format!(
                "{ctes}
             SELECT i.indrelid, n.nspname::text, c.relname::text, am.amname::text,
                    i.indisunique, i.indisvalid AND i.indisready AND i.indislive,
                    i.indnkeyatts::int4,
                    ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                          FROM generate_series(1, i.indnatts) AS k ORDER BY k),
                    i.indclass::oid[], i.indoption::int2[], i.indcollation::oid[],
                    pg_get_expr(i.indpred, i.indrelid, true),
                    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid),
                    {size},
                    busy.pid, busy.kind, busy.command,
                    ARRAY(SELECT a.attname::text FROM generate_series(1, i.indnkeyatts) AS k
                          LEFT JOIN pg_attribute a ON i.indkey[k - 1] <> 0
                               AND a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1]
                          ORDER BY k),
                    {KEY_OPTIONS_SQL},
                    i.indexrelid,
                    (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid),
                    (SELECT o.option_value::int4 FROM pg_options_to_table(c.reloptions) o
                     WHERE o.option_name = 'fillfactor'),
                    (SELECT s.spcname::text FROM pg_tablespace s WHERE s.oid = c.reltablespace)
                    {usage}
             FROM unnest($1::text[]) AS r(name)
             JOIN pg_index i ON i.indrelid = to_regclass(r.name)::oid
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_am am ON am.oid = c.relam
             {busy_join}
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
            let plain_columns: Vec<Option<String>> = row.get(17);
            let key_options: Vec<String> = row.get(18);
            let keys = columns
                .into_iter()
                .enumerate()
                .map(|(k, definition)| KeyShape {
                    definition,
                    opclass: opclasses.get(k).copied().unwrap_or_default(),
                    option: options.get(k).copied().unwrap_or_default(),
                    collation: collations.get(k).copied().unwrap_or_default(),
                    column: plain_columns.get(k).cloned().flatten(),
                    options: key_options.get(k).cloned().unwrap_or_default(),
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
            Index {
                oid: row.get(19),
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
                usage: (detail == Detail::Audit).then(|| read_usage(row)),
                attached_to: row.get(20),
                storage: Storage {
                    fillfactor: row.get::<_, Option<i32>>(21).map(|f| f as u32),
                    tablespace: row.get(22),
                },
            }
        })
        .collect())
}

/// The columns [`Detail::Audit`] adds (see [`read_usage`]), none of which locks
/// a relation: the catalog, `pg_stats`, and the statistics collector's
/// counters. Statistics of the index's columns are read only for a B-tree
/// with storage, whose bloat they estimate: of the table's column for a
/// column, of the index's own for an expression (`ANALYZE` gathers those).
const USAGE_SQL: &str = ",
                    i.indexrelid, c.relkind = 'I',
                    (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid LIMIT 1),
                    (SELECT coalesce(json_agg(json_build_array(k.conname, k.contype, kn.nspname,
                                                               kc.relname)
                                              ORDER BY k.conname), '[]')
                     FROM pg_constraint k JOIN pg_class kc ON kc.oid = k.conrelid
                     JOIN pg_namespace kn ON kn.oid = kc.relnamespace
                     WHERE k.conindid = i.indexrelid AND k.conparentid = 0),
                    pg_stat_get_numscans(i.indexrelid), greatest(c.relpages, 0)::int8,
                    c.reltuples::float8,
                    coalesce((SELECT o.option_value::int4 FROM pg_options_to_table(c.reloptions) o
                              WHERE o.option_name = 'fillfactor'), 90),
                    CASE WHEN am.amname = 'btree' AND c.relkind = 'i' THEN
                        (SELECT json_agg(json_build_array(s.null_frac, s.avg_width,
                                                          a.atttypid = 'name'::regtype)
                                         ORDER BY k)
                         FROM generate_series(1, i.indnatts) AS k
                         JOIN pg_attribute a
                           ON (i.indkey[k - 1] <> 0 AND a.attrelid = i.indrelid
                               AND a.attnum = i.indkey[k - 1])
                           OR (i.indkey[k - 1] = 0 AND a.attrelid = i.indexrelid AND a.attnum = k)
                         LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND NOT s.inherited
                              AND s.tablename = CASE WHEN i.indkey[k - 1] = 0 THEN c.relname
                                                     ELSE t.relname END
                              AND s.attname = a.attname)
                    END";

/// The [`Usage`] in a row read with [`Detail::Audit`] (its columns from 18).
fn read_usage(row: &Row) -> Usage {
    let constraints: Value = row.get(26);
    let mut constraints: Vec<Constraint> = constraints
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|constraint| {
            let text = |n: usize| constraint.get(n)?.as_str();
            Some(Constraint {
                name: text(0)?.to_owned(),
                kind: ConstraintKind::from_contype(text(1)?)?,
                table: QualifiedName::new(text(2)?, text(3)?),
            })
        })
        .collect();
    constraints.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let columns: Option<Value> = row.get(31);
    let columns = columns
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|column| {
            Some(ColumnStats {
                null_frac: column.get(0)?.as_f64()?,
                avg_width: column.get(1)?.as_f64()?,
                is_name: column.get(2)?.as_bool()?,
            })
        })
        .collect();
    Usage {
        oid: row.get(23),
        partitioned: row.get(24),
        parent: row.get(25),
        constraints,
        scans: row.get(27),
        pages: row.get(28),
        tuples: row.get(29),
        fillfactor: row.get(30),
        columns,
    }
}

/// What the server says of one index now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// `indisvalid`: queries may use it.
    pub valid: bool,
    /// `indisready`: writes maintain it.
    pub ready: bool,
    /// Whether it is a partitioned index.
    pub partitioned: bool,
    /// Its table.
    pub table: QualifiedName,
    /// Its size on disk (all partitions' for a partitioned index).
    pub size_bytes: i64,
}

/// The state of `index`, `None` when there is no such index: what a build
/// checks once it ran, and what a failed cleanup tells of what it left.
pub async fn state(
    client: &Client,
    index: &QualifiedName,
) -> std::result::Result<Option<IndexState>, tokio_postgres::Error> {
    let row = client
        .query_typed_opt(
            &format!(
                "SELECT i.indisvalid, i.indisready, c.relkind = 'I', n.nspname::text,
                        t.relname::text, {INDEX_SIZE_SQL}
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 WHERE i.indexrelid = to_regclass($1)::oid"
            ),
            &[(&index.to_string(), Type::TEXT)],
        )
        .await?;
    Ok(row.map(|row| IndexState {
        valid: row.get(0),
        ready: row.get(1),
        partitioned: row.get(2),
        table: QualifiedName::new(row.get::<_, String>(3), row.get::<_, String>(4)),
        size_bytes: row.get(5),
    }))
}

/// Which relations hold any of `names`, and what they are.
pub async fn taken_names(client: &Client, names: &[QualifiedName]) -> Result<Vec<TakenName>> {
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
            let holder = match index_of {
                Some(_) => format!("an index on {}", row.get::<_, String>(4)),
                None => RelKind::from_relkind(row.get(2)).words().to_owned(),
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

    fn key(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn an_index_gives_equality_columns_in_any_order_then_the_rest_in_order() {
        let index = Index::btree(
            "rental_customer_id_idx",
            &["customer_id", "rented_at"],
            None,
        );
        assert!(index.gives(&key(&["customer_id"]), 1));
        assert!(index.gives(&key(&["rented_at", "customer_id"]), 2));
        assert!(index.gives(&key(&["customer_id", "rented_at"]), 1));
        assert!(
            !index.gives(&key(&["rented_at", "customer_id"]), 1),
            "range first"
        );
        assert!(!index.gives(&key(&["rented_at"]), 1));
        assert!(!index.gives(&key(&["customer_id", "rented_at", "status"]), 2));
        let partial = Index::btree("open", &["customer_id"], Some("returned_at IS NULL"));
        assert!(!partial.gives(&key(&["customer_id"]), 1));
        let invalid = Index {
            usable: false,
            ..Index::btree("left_by_a_failed_build", &["customer_id"], None)
        };
        assert!(!invalid.gives(&key(&["customer_id"]), 1));
    }
}
