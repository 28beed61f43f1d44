//! What the catalog says about relations and their indexes: the one place
//! perfaudit reads `pg_class` for what a relation is, `pg_partition_tree`
//! for its partitions and `pg_index` for its indexes. explain, advise and
//! indexes all read through here, so a table, a partition and an index
//! mean the same thing in each.
//!
//! - [`relations`]: a relation by the name a statement writes, with its
//!   columns' statistics and its indexes, cached per session;
//! - [`indexes`]: every index of a set of tables, described the same way
//!   for an existing index and a wanted one, so that they compare;
//! - [`audit`]: what an audit of a database's indexes reads besides them
//!   (the tables in scope, their foreign keys, the statistics), without a
//!   lock;
//! - [`stats`]: what the planner knows of the values an index would hold,
//!   for the estimate of its size.

pub mod audit;
pub mod indexes;
pub mod relations;
pub mod stats;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::ident::QualifiedName;

pub use indexes::{
    Busy, BusyWith, ColumnStats, Constraint, ConstraintKind, Index, KeyShape, Shape, Storage,
    TakenName, Usage,
};
pub use relations::{Relation, Relations, Taken};

/// The schema of the hypopg extension, quoted for SQL, when the database
/// has it.
pub async fn hypopg_schema(client: &Client) -> Result<Option<String>> {
    let row = client
        .query_typed_opt(
            "SELECT quote_ident(n.nspname) FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'",
            &[],
        )
        .await
        .map_err(|e| query_error("looking for the hypopg extension", &e))?;
    Ok(row.map(|row| row.get(0)))
}

/// Whether the server has HypoPG's files, so that `CREATE EXTENSION
/// hypopg` would work.
pub async fn hypopg_available(client: &Client) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')",
            &[],
        )
        .await
        .map_err(|e| query_error("looking for the hypopg extension", &e))?;
    Ok(row.get(0))
}

/// What a relation is (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// An ordinary table.
    Table,
    /// A partitioned table: indexed through its partitions.
    Partitioned,
    /// A materialized view: indexed like a table.
    MaterializedView,
    /// A view: its definition is what is read.
    View,
    /// A foreign table: PostgreSQL cannot index it.
    Foreign,
    /// A sequence.
    Sequence,
    /// A composite type's relation.
    CompositeType,
    /// An index, partitioned or not.
    Index,
    /// A TOAST table.
    Toast,
    /// A kind this version of perfaudit does not know.
    Unknown,
}

impl RelKind {
    /// The kind a `relkind` letter names.
    pub fn from_relkind(relkind: &str) -> RelKind {
        match relkind {
            "r" => RelKind::Table,
            "p" => RelKind::Partitioned,
            "m" => RelKind::MaterializedView,
            "v" => RelKind::View,
            "f" => RelKind::Foreign,
            "S" => RelKind::Sequence,
            "c" => RelKind::CompositeType,
            "i" | "I" => RelKind::Index,
            "t" => RelKind::Toast,
            _ => RelKind::Unknown,
        }
    }

    /// Whether an index can be built on it.
    pub fn indexable(self) -> bool {
        matches!(
            self,
            RelKind::Table | RelKind::Partitioned | RelKind::MaterializedView
        )
    }

    /// What it is, in words, for messages ("a view"); a partitioned table
    /// is "a table" there, as people call it.
    pub fn words(self) -> &'static str {
        match self {
            RelKind::Table | RelKind::Partitioned => "a table",
            RelKind::MaterializedView => "a materialized view",
            RelKind::View => "a view",
            RelKind::Foreign => "a foreign table",
            RelKind::Sequence => "a sequence",
            RelKind::CompositeType => "a composite type",
            RelKind::Index => "an index",
            RelKind::Toast => "a TOAST table",
            RelKind::Unknown => "not a table",
        }
    }
}

/// A table an index goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Its OID.
    pub oid: u32,
    /// Its name.
    pub name: QualifiedName,
    /// What it is.
    pub kind: RelKind,
    /// Its columns, in order (read where needed: empty otherwise).
    pub columns: Vec<String>,
    /// For a partitioned table, every partition below it, parents before
    /// their children.
    pub partitions: Vec<Partition>,
    /// The indexes of those partitions (each [`Index::table`] a
    /// partition's OID): those equivalent to a wanted index are attached
    /// rather than built again.
    pub partition_indexes: Vec<Index>,
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

/// The indexes of `partitions` (none when there are none), read as
/// `detail` says.
pub async fn partition_indexes(
    client: &Client,
    partitions: &[Partition],
    detail: indexes::Detail,
) -> Result<Vec<Index>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = partitions.iter().map(|p| p.name.to_string()).collect();
    indexes::read(client, &names, detail).await
}
