//! `unindexed-foreign-key`: a foreign key whose referencing columns no
//! index leads with. Each DELETE of a referenced row, and each UPDATE of
//! its key, makes PostgreSQL look for referencing rows; without such an
//! index, by reading the whole referencing table.

use std::collections::BTreeSet;

use super::Facts;
use super::model::{self, Unit};
use crate::finding::{Finding, Severity, Subject};
use crate::indexes::ddl;
use crate::pg::catalog::Taken;
use crate::pg::catalog::audit::{AuditedTable, ForeignKey};
use crate::sql::ident::QualifiedName;
use crate::text::{count, plural};

/// The rows a referencing table needs before its missing index is a
/// warning: reading 5,000 rows takes about a millisecond, paid for each
/// referenced row deleted (a thousand deletes, a second). Below that, the
/// scan is cheap and the finding is info.
const MIN_ROWS: f64 = 5_000.0;

/// One index to suggest: on `columns` of `table`, for these foreign keys.
struct Wanted<'a> {
    table: &'a AuditedTable,
    columns: &'a [String],
    keys: Vec<&'a ForeignKey>,
}

/// A finding for each index that foreign keys on the audited tables lack.
/// Keys on the same columns (in any order), or on leading columns of
/// another's, share one index: the longest.
pub fn findings(facts: &Facts, units: &[Unit]) -> Vec<Finding> {
    let mut keys: Vec<(&AuditedTable, &ForeignKey)> = facts
        .foreign_keys
        .iter()
        .filter_map(|key| Some((facts.tables.iter().find(|t| t.oid == key.table)?, key)))
        .filter(|(_, key)| {
            !units.iter().any(|u| {
                u.index.table == key.table && u.index.gives(&key.columns, key.columns.len())
            })
        })
        .collect();
    keys.sort_by_key(|(table, key)| {
        (
            table.name.display(),
            std::cmp::Reverse(key.columns.len()),
            key.name.clone(),
        )
    });
    let mut wanted: Vec<Wanted> = Vec::new();
    for (table, key) in keys {
        let set: BTreeSet<&String> = key.columns.iter().collect();
        let covering = wanted.iter_mut().find(|w| {
            w.table.oid == table.oid
                && w.columns.len() >= set.len()
                && w.columns[..set.len()].iter().collect::<BTreeSet<_>>() == set
        });
        match covering {
            Some(covering) => covering.keys.push(key),
            None => wanted.push(Wanted {
                table,
                columns: &key.columns,
                keys: vec![key],
            }),
        }
    }
    let mut taken = facts.taken.clone();
    wanted
        .iter()
        .map(|wanted| finding(wanted, facts, &mut taken))
        .collect()
}

/// The finding for `wanted`, its index named clear of `taken`, which then
/// holds its names too.
fn finding(wanted: &Wanted, facts: &Facts, taken: &mut Taken) -> Finding {
    let table = model::table(wanted.table, &facts.tables);
    let index = ddl::Wanted::columns(wanted.columns);
    let name = ddl::free_name(&table, &index, taken);
    for part in std::iter::once(QualifiedName::new(&table.name.schema, &name))
        .chain(ddl::partition_names(&name, &table))
    {
        taken.entry(part.schema).or_default().insert(part.name);
    }
    let rows = model::rows(wanted.table, &facts.tables);
    let columns = wanted.columns.join(", ");
    let keys: Vec<String> = wanted
        .keys
        .iter()
        .map(|key| format!("{} (to {})", key.name, key.references.display()))
        .collect();
    let referenced: BTreeSet<String> = wanted
        .keys
        .iter()
        .map(|key| key.references.display())
        .collect();
    let referenced: Vec<String> = referenced.into_iter().collect();
    Finding {
        code: "unindexed-foreign-key",
        severity: if rows >= MIN_ROWS {
            Severity::Warning
        } else {
            Severity::Info
        },
        subject: Subject::Index {
            index: name.clone(),
            table: table.name.display(),
            size_bytes: None,
        },
        message: format!(
            "no index leads with ({columns}), the columns of foreign {} {}: each DELETE from {}, \
             or UPDATE of its key, reads all {} rows of {} for the rows referencing it",
            plural(keys.len(), "key", "keys"),
            keys.join(" and "),
            referenced.join(" or "),
            count(rows.round()),
            table.name.display()
        ),
        suggestion: format!(
            "build an index on ({columns}); the DDL names it {name} and builds it without \
             blocking writes{}",
            if table.partitions.is_empty() {
                ""
            } else {
                ", partition by partition"
            }
        ),
        ddl: Some(ddl::build(&table, &name, &index)),
        saving: None,
    }
}
