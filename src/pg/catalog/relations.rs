//! What the catalog says about the relations statements name: what they
//! are, their columns and statistics, their indexes, a view's definition, a
//! partitioned table's partitions. Read on the session that runs the
//! statements, so names resolve with its `search_path`, as theirs do.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::indexes::{self, Detail, Index};
use super::{RelKind, Table, partition_indexes, partitions};
use crate::db::errors::query_error;
use crate::db::savepoint::under_savepoint;
use crate::error::Result;
use crate::sql::ident::{QualifiedName, quote};
use crate::sql::scans::RelationName;

/// One relation, as a statement names it.
#[derive(Debug)]
pub struct Relation {
    /// Its object id.
    pub oid: u32,
    /// Its schema and name; reports and specs name it by
    /// [`QualifiedName::display`], as `indexes` does.
    pub table: QualifiedName,
    /// What it is.
    pub kind: RelKind,
    /// Whether it lives in `pg_catalog`, `information_schema` or TOAST.
    pub system: bool,
    /// A view's definition (`pg_get_viewdef`).
    pub view_definition: Option<String>,
    /// For a partition, the partitioned table at the root of its tree.
    pub partition_of: Option<QualifiedName>,
    /// Its columns, with the planner's estimate of their distinct values
    /// (0 when there are no statistics).
    pub columns: HashMap<String, f64>,
    /// Its indexes.
    pub indexes: Vec<Index>,
}

/// The relation names taken in each schema, read as needed: an index name
/// must not collide with any of them.
pub type Taken = HashMap<String, HashSet<String>>;

/// Relations looked up so far, by name as written.
pub struct Relations<'c> {
    client: &'c Client,
    known: HashMap<RelationName, Option<Rc<Relation>>>,
    /// Whether `client` is inside a transaction that a name the server
    /// refuses must not abort (advise's HypoPG session).
    in_transaction: bool,
}

impl<'c> Relations<'c> {
    /// An empty cache over `client`.
    pub fn new(client: &'c Client) -> Relations<'c> {
        Relations {
            client,
            known: HashMap::new(),
            in_transaction: false,
        }
    }

    /// An empty cache over `client`, which holds a transaction open that
    /// must survive a lookup the server refuses: each lookup runs under a
    /// savepoint.
    pub fn in_transaction(client: &'c Client) -> Relations<'c> {
        Relations {
            in_transaction: true,
            ..Relations::new(client)
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
        let regclass = regclass.join(".");
        let query = async |client: &Client| {
            client
                .query_typed_opt(
                    "SELECT c.oid, n.nspname, c.relname, \
                        c.relkind::text, \
                        n.nspname IN ('pg_catalog', 'information_schema') \
                            OR n.nspname LIKE 'pg\\_toast%', \
                        CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END, \
                        (SELECT ARRAY[rn.nspname::text, r.relname::text] \
                         FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace \
                         WHERE c.relispartition AND r.oid = pg_partition_root(c.oid)) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = to_regclass($1)",
                    &[(&regclass, Type::TEXT)],
                )
                .await
        };
        let found = if self.in_transaction {
            under_savepoint(self.client, query)
                .await
                .map_err(|e| query_error("looking up a table", &e))?
        } else {
            query(self.client).await
        };
        let row = match found {
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
        let table = QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2));
        let indexes = indexes::read(self.client, &[table.to_string()], Detail::Definitions).await?;
        Ok(Some(Relation {
            oid,
            table,
            kind: RelKind::from_relkind(row.get(3)),
            system: row.get(4),
            view_definition: row.get(5),
            partition_of: row
                .get::<_, Option<Vec<String>>>(6)
                .and_then(|root| Some(QualifiedName::new(root.first()?, root.get(1)?))),
            columns: self.columns(oid).await?,
            indexes,
        }))
    }

    /// Column names with their distinct values.
    async fn columns(&self, oid: u32) -> Result<HashMap<String, f64>> {
        let rows = self
            .client
            .query_typed(
                "SELECT a.attname::text, coalesce(( \
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
                &[(&oid, Type::OID)],
            )
            .await
            .map_err(|e| query_error("reading a table's columns", &e))?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// The connection it reads on.
    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// The table `perfaudit indexes` would build an index of `relation` on
    /// (a table or a partitioned one): a partitioned table with every
    /// partition below it and their indexes, which an index on it attaches
    /// where they are equivalent.
    pub async fn indexable(&self, relation: &Relation) -> Result<Table> {
        let partitions = match relation.kind {
            RelKind::Partitioned => partitions(self.client, relation.oid).await?,
            _ => Vec::new(),
        };
        Ok(Table {
            oid: relation.oid,
            name: relation.table.clone(),
            kind: relation.kind,
            columns: Vec::new(),
            partition_indexes: partition_indexes(self.client, &partitions, Detail::Definitions)
                .await?,
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
            .query_typed(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                &[(&schema, Type::NAME)],
            )
            .await
            .map_err(|e| query_error("reading the names in a schema", &e))?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }
}
