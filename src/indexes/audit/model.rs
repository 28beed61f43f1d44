//! The indexes an audit judges, each with what it costs and what needs it.
//! A partitioned index and the indexes attached to it on the partitions
//! are one index: its size and scans are theirs added up, its table's size
//! and writes are the partitions'; an attached index is never advised to
//! be dropped (PostgreSQL refuses: only its partitioned index can be).

use std::collections::HashMap;

use super::super::advice;
use super::{Facts, Locked};
use crate::finding::Subject;
use crate::pg::catalog::audit::{AuditedTable, Writes};
use crate::pg::catalog::{ConstraintKind, Index, Partition, RelKind, Table, Usage};
use crate::sql::ident::QualifiedName;

/// One index as an audit sees it.
#[derive(Debug, Clone)]
pub struct Unit<'a> {
    /// The index.
    pub index: &'a Index,
    /// What the audit read about it.
    pub usage: &'a Usage,
    /// Its table.
    pub table: &'a AuditedTable,
    /// The name of the partitioned index it is attached to, when it is and
    /// that index was read.
    pub parent: Option<&'a QualifiedName>,
    /// Its size: its own pages, or for a partitioned index its partitions'.
    pub size_bytes: i64,
    /// Its scans: its own, or for a partitioned index its partitions'.
    pub scans: i64,
    /// The scans of what is kept or dropped with it: its own, or for an
    /// attached index those of the partitioned index at the top of its
    /// tree.
    pub whole_scans: i64,
    /// Its table's size (heap and TOAST; a partitioned table's partitions').
    pub table_bytes: i64,
    /// The rows its table took since the statistics were reset.
    pub writes: Writes,
}

impl Unit<'_> {
    /// Its table and name, as findings name them.
    pub fn key(&self) -> (String, String) {
        (self.table.name.display(), self.index.name.name.clone())
    }

    /// What a finding about it is about.
    pub fn subject(&self) -> Subject {
        Subject::Index {
            index: self.index.name.name.clone(),
            table: self.table.name.display(),
            size_bytes: Some(self.size_bytes),
        }
    }

    /// Whether it is attached to a partitioned index.
    pub fn attached(&self) -> bool {
        self.usage.parent.is_some()
    }

    /// Whether it backs a constraint (its copies on partitions too).
    pub fn constrained(&self) -> bool {
        self.index.backs_constraint || !self.usage.constraints.is_empty()
    }

    /// Whether it backs a primary key.
    pub fn primary_key(&self) -> bool {
        self.usage
            .constraints
            .iter()
            .any(|c| c.kind == ConstraintKind::PrimaryKey)
    }

    /// Why PostgreSQL would refuse to drop it, if it would: the constraints
    /// that need it, or the partitioned index it is attached to.
    pub fn kept_because(&self) -> Option<String> {
        if let Some(parent) = self.usage.parent {
            let parent = self
                .parent
                .map_or_else(|| format!("OID {parent}"), |name| name.name.clone());
            return Some(format!(
                "it is attached to the partitioned index {parent}, and PostgreSQL drops it only \
                 with that one"
            ));
        }
        let needs: Vec<String> = self
            .usage
            .constraints
            .iter()
            .map(|c| match c.kind {
                ConstraintKind::ForeignKey => format!(
                    "the FOREIGN KEY {} of {} references its columns",
                    c.name,
                    c.table.display()
                ),
                kind => format!("it backs the {} constraint {}", kind.words(), c.name),
            })
            .collect();
        match (needs.is_empty(), self.index.backs_constraint) {
            (false, _) => Some(format!(
                "{}, and PostgreSQL drops no index a constraint needs",
                needs.join("; ")
            )),
            (true, true) => Some("a constraint needs it".to_owned()),
            (true, false) => None,
        }
    }

    /// The statement that drops it.
    pub fn drop_statement(&self) -> String {
        advice::drop_statement(&self.index.name, self.usage.partitioned)
    }

    /// How the drop goes, for suggestions.
    pub fn drop_words(&self) -> &'static str {
        if self.usage.partitioned {
            "a partitioned index cannot be dropped concurrently: give the DROP's brief ACCESS \
             EXCLUSIVE locks on the table and its partitions a short lock_timeout"
        } else {
            "DROP INDEX CONCURRENTLY blocks no reads or writes"
        }
    }
}

/// The indexes of `facts` that the audit judges: those with what it read
/// about them, on a table it audits, by table and name.
pub fn units(facts: &Facts) -> Vec<Unit<'_>> {
    let tables: HashMap<u32, &AuditedTable> = facts.tables.iter().map(|t| (t.oid, t)).collect();
    let table_children = children(facts.tables.iter().map(|t| (t.oid, t.parent)));
    let index_children = children(
        facts
            .indexes
            .iter()
            .filter_map(|i| Some((i.usage.as_ref()?.oid, i.usage.as_ref()?.parent))),
    );
    let by_oid: HashMap<u32, &Index> = facts
        .indexes
        .iter()
        .filter_map(|i| Some((i.usage.as_ref()?.oid, i)))
        .collect();
    let block_size = facts.server.block_size;
    let usages = |oids: &[u32]| -> Vec<&Usage> {
        oids.iter()
            .filter_map(|oid| by_oid.get(oid)?.usage.as_ref())
            .collect()
    };
    let scans = |oid: u32| -> i64 {
        usages(&tree(oid, &index_children))
            .iter()
            .map(|u| u.scans)
            .sum()
    };
    facts
        .indexes
        .iter()
        .filter_map(|index| {
            let usage = index.usage.as_ref()?;
            let table = *tables.get(&index.table)?;
            let mut root = usage.oid;
            while let Some(parent) = by_oid.get(&root).and_then(|i| i.usage.as_ref()?.parent) {
                root = parent;
            }
            let parts = usages(&tree(usage.oid, &index_children));
            let part_tables: Vec<&AuditedTable> = tree(table.oid, &table_children)
                .iter()
                .filter_map(|oid| tables.get(oid).copied())
                .collect();
            Some(Unit {
                index,
                usage,
                table,
                parent: usage
                    .parent
                    .and_then(|parent| Some(&by_oid.get(&parent)?.name)),
                size_bytes: parts.iter().map(|u| u.pages).sum::<i64>() * block_size,
                scans: scans(usage.oid),
                whole_scans: scans(root),
                table_bytes: part_tables.iter().map(|t| t.pages).sum::<i64>() * block_size,
                writes: part_tables
                    .iter()
                    .fold(Writes::default(), |sum, t| sum + t.writes),
            })
        })
        .collect()
}

/// The children of each parent, from `(oid, parent)` pairs.
fn children(pairs: impl Iterator<Item = (u32, Option<u32>)>) -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (oid, parent) in pairs {
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(oid);
        }
    }
    children
}

/// `root` and everything below it.
fn tree(root: u32, children: &HashMap<u32, Vec<u32>>) -> Vec<u32> {
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&oid) = found.get(next) {
        found.extend(children.get(&oid).into_iter().flatten());
        next += 1;
    }
    found
}

/// The rows of `table`, a partitioned table's being its partitions' (as
/// last counted; a table never counted has none).
pub fn rows(table: &AuditedTable, tables: &[AuditedTable]) -> f64 {
    let by_oid: HashMap<u32, &AuditedTable> = tables.iter().map(|t| (t.oid, t)).collect();
    let children = children(tables.iter().map(|t| (t.oid, t.parent)));
    tree(table.oid, &children)
        .iter()
        .filter_map(|oid| by_oid.get(oid))
        .filter(|t| t.kind != RelKind::Partitioned)
        .map(|t| t.rows.max(0.0))
        .sum()
}

/// `table` as an index is built on it: a partitioned table with the
/// partitions below it in `tables`, parents before their children, as
/// [`crate::pg::catalog::partitions`] lists them.
pub fn table(table: &AuditedTable, tables: &[AuditedTable]) -> Table {
    let by_oid: HashMap<u32, &AuditedTable> = tables.iter().map(|t| (t.oid, t)).collect();
    let children = children(tables.iter().map(|t| (t.oid, t.parent)));
    let mut partitions = Vec::new();
    let mut level: Vec<u32> = vec![table.oid];
    while !level.is_empty() {
        let mut below: Vec<&AuditedTable> = level
            .iter()
            .flat_map(|oid| children.get(oid).into_iter().flatten())
            .filter_map(|oid| by_oid.get(oid).copied())
            .collect();
        below.sort_by(|a, b| (&a.name.schema, &a.name.name).cmp(&(&b.name.schema, &b.name.name)));
        partitions.extend(below.iter().map(|t| Partition {
            oid: t.oid,
            name: t.name.clone(),
            parent: t.parent.unwrap_or(table.oid),
            leaf: t.kind != RelKind::Partitioned,
        }));
        level = below.iter().map(|t| t.oid).collect();
    }
    Table {
        oid: table.oid,
        name: table.name.clone(),
        kind: table.kind,
        columns: Vec::new(),
        partitions,
        partition_indexes: Vec::new(),
    }
}

/// `tables` without the partition trees (from the top partitioned table
/// down) that hold a table DDL has locked, and those locked tables: a
/// partitioned index judged without some of its partitions' indexes could
/// look unused when it is not.
pub fn without_locked(tables: Vec<AuditedTable>) -> (Vec<AuditedTable>, Vec<Locked>) {
    let parents: HashMap<u32, u32> = tables
        .iter()
        .filter_map(|t| Some((t.oid, t.parent?)))
        .collect();
    let root = |mut oid: u32| {
        while let Some(parent) = parents.get(&oid) {
            oid = *parent;
        }
        oid
    };
    let locked: Vec<Locked> = tables
        .iter()
        .filter_map(|t| {
            Some(Locked {
                table: t.name.clone(),
                pid: t.locked_by?,
            })
        })
        .collect();
    let locked_roots: Vec<u32> = tables
        .iter()
        .filter(|t| t.locked_by.is_some())
        .map(|t| root(t.oid))
        .collect();
    let tables = tables
        .into_iter()
        .filter(|t| !locked_roots.contains(&root(t.oid)))
        .collect();
    (tables, locked)
}
