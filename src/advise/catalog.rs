//! What the catalog says about the relations a workload names: what they
//! are, their columns and statistics, their indexes, a view's definition, a
//! partitioned table's partitions. Read on the pinned session, so names
//! resolve with its `search_path`, as the statements' own names do.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::candidates::ExistingIndex;
use super::extract::RelationName;
use crate::db::errors::query_error;
use crate::error::Result;
use crate::indexes::catalog::{Table, TableKind, partitions};
use crate::sql::ident::{QualifiedName, quote};

/// What a relation is, as far as indexing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A table (or a materialized view): indexable.
    Table,
    /// A partitioned table: indexable, through its partitions.
    Partitioned,
    /// A view: its definition is inlined.
    View,
    /// A foreign table: PostgreSQL cannot index it.
    Foreign,
    /// A sequence, a composite type, ...: nothing to index.
    Other,
}

/// One relation of the workload.
#[derive(Debug)]
pub struct Relation {
    /// Its object id.
    pub oid: u32,
    /// Its schema and name; reports and specs name it by
    /// [`QualifiedName::display`], as `indexes` does.
    pub table: QualifiedName,
    /// What it is.
    pub kind: Kind,
    /// Whether it lives in `pg_catalog`, `information_schema` or TOAST.
    pub system: bool,
    /// A view's definition (`pg_get_viewdef`).
    pub view_definition: Option<String>,
    /// Its columns, with the planner's estimate of their distinct values
    /// (0 when there are no statistics).
    pub columns: HashMap<String, f64>,
    /// Its indexes.
    pub indexes: Vec<ExistingIndex>,
}

/// The relation names taken in each schema, read as needed: an index name
/// must not collide with any of them.
pub type Taken = HashMap<String, HashSet<String>>;

/// Relations looked up so far, by name as written.
pub struct Catalog<'c> {
    client: &'c Client,
    known: HashMap<RelationName, Option<Rc<Relation>>>,
}

impl<'c> Catalog<'c> {
    /// An empty cache over `client`.
    pub fn new(client: &'c Client) -> Catalog<'c> {
        Catalog {
            client,
            known: HashMap::new(),
        }
    }

    /// The relation `name` means here, or `None` when there is none.
    pub async fn relation(&mut self, name: &RelationName) -> Result<Option<Rc<Relation>>> {
        if let Some(known) = self.known.get(name) {
            return Ok(known.clone());
        }
        let found = self.look_up(name).await?.map(Rc::new);
        self.known.insert(name.clone(), found.clone());
        Ok(found)
    }

    async fn look_up(&self, name: &RelationName) -> Result<Option<Relation>> {
        let regclass: Vec<String> = name.iter().map(|part| quote(part)).collect();
        let row = match self
            .client
            .query_opt(
                "SELECT c.oid, n.nspname, c.relname, \
                        c.relkind::text, \
                        n.nspname IN ('pg_catalog', 'information_schema') \
                            OR n.nspname LIKE 'pg\\_toast%', \
                        CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = to_regclass($1)",
                &[&regclass.join(".")],
            )
            .await
        {
            Ok(row) => row,
            // A name the server cannot take (another database's, a malformed
            // one) names nothing here; any other error (no permission on the
            // schema, a timeout) is reported as what it is.
            Err(error)
                if matches!(
                    error.code(),
                    Some(&SqlState::FEATURE_NOT_SUPPORTED | &SqlState::INVALID_NAME)
                ) =>
            {
                None
            }
            Err(error) => return Err(query_error("looking up a table", &error)),
        };
        let Some(row) = row else { return Ok(None) };
        let oid: u32 = row.get(0);
        let kind = match row.get::<_, String>(3).as_str() {
            "r" | "m" => Kind::Table,
            "p" => Kind::Partitioned,
            "v" => Kind::View,
            "f" => Kind::Foreign,
            _ => Kind::Other,
        };
        let (columns, attnames) = self.columns(oid).await?;
        Ok(Some(Relation {
            oid,
            table: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
            kind,
            system: row.get(4),
            view_definition: row.get(5),
            columns,
            indexes: self.indexes(oid, &attnames).await?,
        }))
    }

    /// Column names with their distinct values, and names by number.
    async fn columns(&self, oid: u32) -> Result<(HashMap<String, f64>, HashMap<i16, String>)> {
        let rows = self
            .client
            .query(
                "SELECT a.attnum, a.attname::text, coalesce(( \
                     SELECT CASE WHEN s.n_distinct >= 0 THEN s.n_distinct \
                                 ELSE -s.n_distinct * greatest(c.reltuples, 0) END \
                     FROM pg_stats s \
                     WHERE s.schemaname = n.nspname AND s.tablename = c.relname \
                       AND s.attname = a.attname \
                     ORDER BY s.inherited DESC LIMIT 1), 0)::float8 \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&oid],
            )
            .await
            .map_err(|e| query_error("reading a table's columns", &e))?;
        let mut distinct = HashMap::new();
        let mut names = HashMap::new();
        for row in rows {
            let name: String = row.get(1);
            distinct.insert(name.clone(), row.get(2));
            names.insert(row.get(0), name);
        }
        Ok((distinct, names))
    }

    async fn indexes(
        &self,
        oid: u32,
        attnames: &HashMap<i16, String>,
    ) -> Result<Vec<ExistingIndex>> {
        let rows = self
            .client
            .query(
                "SELECT c.relname::text, i.indkey::int2[], i.indnkeyatts, \
                        i.indisvalid AND i.indisready AND i.indislive AND i.indpred IS NULL \
                            AND am.amname = 'btree' \
                 FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_am am ON am.oid = c.relam \
                 WHERE i.indrelid = $1 ORDER BY c.relname",
                &[&oid],
            )
            .await
            .map_err(|e| query_error("reading a table's indexes", &e))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let keys: Vec<i16> = row.get(1);
                let key_count = usize::try_from(row.get::<_, i16>(2)).unwrap_or(0);
                ExistingIndex {
                    name: row.get(0),
                    // Up to the first expression (attribute number 0).
                    columns: keys
                        .iter()
                        .take(key_count)
                        .map_while(|number| attnames.get(number).cloned())
                        .collect(),
                    usable: row.get(3),
                }
            })
            .collect())
    }

    /// The connection it reads on.
    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// The table `perfaudit indexes` would build an index of `relation` on
    /// (a table or a partitioned one): a partitioned table with every
    /// partition below it.
    pub async fn indexable(&self, relation: &Relation) -> Result<Table> {
        let (kind, partitions) = match relation.kind {
            Kind::Partitioned => (
                TableKind::Partitioned,
                partitions(self.client, relation.oid).await?,
            ),
            _ => (TableKind::Table, Vec::new()),
        };
        Ok(Table {
            oid: relation.oid,
            name: relation.table.clone(),
            kind,
            columns: Vec::new(),
            partitions,
        })
    }

    /// Adds to `taken` the names in `table`'s schema and its partitions'
    /// schemas, those not read yet: where its index and the index's parts go.
    pub async fn read_names(&self, table: &Table, taken: &mut Taken) -> Result<()> {
        for schema in std::iter::once(&table.name.schema)
            .chain(table.partitions.iter().map(|p| &p.name.schema))
        {
            if !taken.contains_key(schema) {
                let names = self.names_in(schema).await?;
                taken.insert(schema.clone(), names);
            }
        }
        Ok(())
    }

    /// The names of every relation in `schema`.
    async fn names_in(&self, schema: &str) -> Result<HashSet<String>> {
        let rows = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                &[&schema],
            )
            .await
            .map_err(|e| query_error("reading the names in a schema", &e))?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }
}
