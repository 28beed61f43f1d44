//! What the catalog says about the tables a plan scans, so that an index
//! finding writes the index as `perfaudit advise` would: its equality
//! columns ordered by the planner's distinct values, named as advise names
//! it, schema-qualified, in the statements `perfaudit indexes` runs.
//!
//! A partition stands for the partitioned table at the root of its tree:
//! its index is that table's, built on every partition.
//!
//! A plan names a table without its schema (`Schema` comes only with
//! `EXPLAIN (VERBOSE)`, which also qualifies every column of the filters
//! the report shows), so each name is resolved on the server, on the
//! connection that ran the EXPLAIN and with its `search_path`: as the
//! statement wrote it when it wrote it schema-qualified, else as the plan
//! names it.

use std::cell::RefCell;
use std::collections::HashMap;

use sqlparser::ast::Statement;
use tokio_postgres::Client;

use crate::error::Result;
use crate::indexes::ddl;
use crate::pg::catalog::{Index, RelKind, Relations, Table, Taken};
use crate::sql::scans::{RelationName, statement_scans};

/// The tables of one plan the catalog knows, by the name the plan gives
/// them (`Relation Name`).
#[derive(Debug, Default)]
pub struct Tables {
    known: HashMap<String, Known>,
    taken: Taken,
    /// The DDL [`Tables::advice`] gave, each with the table it indexes
    /// (`schema.name`, as advise names it), so that advise's decision can
    /// replace it.
    given: RefCell<Vec<(String, String)>>,
}

/// One indexable table.
#[derive(Debug)]
struct Known {
    table: Table,
    /// Its indexes.
    indexes: Vec<Index>,
    /// The planner's estimate of each column's distinct values (0 when
    /// there are no statistics).
    distinct: HashMap<String, f64>,
}

impl Tables {
    /// Records what the catalog says about the table the plan calls
    /// `relation`: `table` and its columns' distinct values. The names
    /// taken where its index would go are read into `taken` beforehand.
    fn insert(&mut self, relation: &str, known: Known) {
        self.known.insert(relation.to_owned(), known);
    }

    /// The table an index for `relation` goes on (for a partition, the
    /// partitioned table at its root), when the catalog knows it.
    pub fn table(&self, relation: &str) -> Option<&Table> {
        self.known.get(relation).map(|known| &known.table)
    }

    /// The index of `relation` the plan calls `name`, when the catalog
    /// knows it (a partition's own indexes are not its root's, and so not
    /// known).
    pub fn index(&self, relation: &str, name: &str) -> Option<&Index> {
        self.known
            .get(relation)?
            .indexes
            .iter()
            .find(|index| index.name.name == name)
    }

    /// The number of distinct values of `column` of `relation` (0 when
    /// unknown): what orders an index's equality columns.
    pub fn distinct(&self, relation: &str, column: &str) -> f64 {
        self.known
            .get(relation)
            .and_then(|known| known.distinct.get(column))
            .copied()
            .unwrap_or(0.0)
    }

    /// What to do for a B-tree index of `key` on `relation`, whose first
    /// `equality` columns are compared for equality: nothing, when an index
    /// there already gives it; else build it, without blocking writes, with
    /// the statements `perfaudit advise` writes. `None` when the table is
    /// unknown.
    pub fn advice(
        &self,
        relation: &str,
        key: &[String],
        equality: usize,
    ) -> Option<IndexAdvice<'_>> {
        let known = self.known.get(relation)?;
        if let Some(index) = known.indexes.iter().find(|i| i.gives(key, equality)) {
            return Some(IndexAdvice::Exists(index));
        }
        let wanted = ddl::Wanted::columns(key);
        let name = ddl::free_name(&known.table, &wanted, &self.taken);
        let built = ddl::build(&known.table, &name, &wanted);
        self.given
            .borrow_mut()
            .push((built.clone(), known.table.name.display()));
        Some(IndexAdvice::Build(built))
    }

    /// The table (`schema.name`) the index `built` (DDL [`Tables::advice`]
    /// gave) goes on.
    pub fn table_of(&self, built: &str) -> Option<String> {
        self.given
            .borrow()
            .iter()
            .find(|(ddl, _)| ddl == built)
            .map(|(_, table)| table.clone())
    }
}

/// What to do for an index a finding asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexAdvice<'a> {
    /// This index already gives it.
    Exists(&'a Index),
    /// Build it with these statements, one per line.
    Build(String),
}

/// Looks up, on `client`, the tables a plan calls `relations`, resolving
/// those names through the ones `statement` writes (when perfaudit's
/// parser read it). A name that resolves to no table (or to one the
/// catalog cannot index) is left out.
pub async fn look_up(
    client: &Client,
    relations: &[&str],
    statement: Option<&Statement>,
) -> Result<Tables> {
    let written: Vec<RelationName> = statement
        .map(statement_scans)
        .unwrap_or_default()
        .into_iter()
        .map(|scan| scan.relation)
        .collect();
    let mut catalog = Relations::new(client);
    // The partitioned tables the statement names, with their partitions:
    // a plan names a partition without its schema, which need not be on
    // the search_path.
    let mut partitioned = Vec::new();
    for name in &written {
        if let Some(found) = catalog.relation(name).await?
            && found.kind == RelKind::Partitioned
        {
            let table = catalog.indexable(&found).await?;
            partitioned.push((found, table));
        }
    }
    let mut tables = Tables::default();
    for &relation in relations {
        let of_written = partitioned
            .iter()
            .find(|(_, table)| table.partitions.iter().any(|p| p.name.name == relation));
        let (found, table) = match of_written {
            Some((found, table)) => (found.clone(), table.clone()),
            None => {
                let Some(mut found) = catalog
                    .relation(&resolvable_name(relation, &written))
                    .await?
                else {
                    continue;
                };
                // A partition is indexed through the partitioned table at
                // the root of its tree, which builds the index on every
                // partition.
                if let Some(root) = &found.partition_of
                    && let Some(root) = catalog
                        .relation(&vec![root.schema.clone(), root.name.clone()])
                        .await?
                {
                    found = root;
                }
                if !found.kind.indexable() {
                    continue;
                }
                let table = catalog.indexable(&found).await?;
                (found, table)
            }
        };
        // Each schema's names are read once, whichever table is in it.
        catalog.read_names(&table, &mut tables.taken).await?;
        tables.insert(
            relation,
            Known {
                table,
                indexes: found.indexes.clone(),
                distinct: found.columns.clone(),
            },
        );
    }
    Ok(tables)
}

/// The name to look `relation` (as the plan names it) up by: the one
/// schema-qualified name the statement writes for it, else the plan's name,
/// which the server resolves through its `search_path` as it did the
/// statement's unqualified names (and those of the views it reads).
fn resolvable_name(relation: &str, written: &[RelationName]) -> RelationName {
    let mut qualified = written
        .iter()
        .filter(|name| name.len() > 1 && name.last().is_some_and(|last| last == relation));
    match (qualified.next(), qualified.next()) {
        (Some(only), None) => only.clone(),
        _ => vec![relation.to_owned()],
    }
}

/// What the catalog says about the fixture's `public.payments`, for tests:
/// `user_id` more distinct than `status`, and an index already named
/// `idx_payments_user_id_status_created_at`.
#[cfg(test)]
pub fn payments() -> Tables {
    use crate::sql::ident::QualifiedName;
    let table = Table {
        oid: 1,
        name: QualifiedName::new("public", "payments"),
        kind: crate::pg::catalog::RelKind::Table,
        columns: Vec::new(),
        partitions: Vec::new(),
        partition_indexes: Vec::new(),
    };
    let distinct = [("user_id", 4000.0), ("status", 4.0), ("amount", 0.0)]
        .into_iter()
        .map(|(c, n)| (c.to_owned(), n))
        .collect();
    let mut tables = Tables::default();
    tables.taken.insert(
        "public".to_owned(),
        ["payments", "idx_payments_user_id_status_created_at"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
    );
    tables.insert(
        "payments",
        Known {
            table,
            indexes: Vec::new(),
            distinct,
        },
    );
    tables
}

/// `tables` with `index` on `relation` too, for tests.
#[cfg(test)]
pub fn with_index(mut tables: Tables, relation: &str, index: Index) -> Tables {
    if let Some(known) = tables.known.get_mut(relation) {
        known.indexes.push(index);
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<RelationName> {
        list.iter()
            .map(|name| name.split('.').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn a_plan_name_resolves_as_the_statement_qualified_it() {
        let written = names(&["sales.orders", "payments", "archive.payments", "x.payments"]);
        assert_eq!(resolvable_name("orders", &written), ["sales", "orders"]);
        // Unqualified, or qualified two ways: the search_path decides.
        assert_eq!(resolvable_name("payments", &written), ["payments"]);
        assert_eq!(resolvable_name("users", &written), ["users"]);
    }
}
