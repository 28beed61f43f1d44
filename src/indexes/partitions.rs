//! What an index on a partitioned table does on each partition. A
//! partition that already has an index equivalent to the wanted one keeps
//! it: it is attached (`ALTER INDEX ... ATTACH PARTITION`) instead of a
//! third copy being built beside it, which PostgreSQL would then refuse to
//! let anyone drop. Pure: the partitions' indexes come in as data.

use std::collections::{HashMap, HashSet};

use crate::pg::catalog::{Index, Table};
use crate::sql::ident::QualifiedName;

/// What the wanted index does on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Nothing like it is there: build one (`<index>_<n>`; `ON ONLY` a
    /// partition that is partitioned in turn) and attach it.
    Build,
    /// A valid equivalent index attached to no other: attach it; a
    /// partitioned one brings its own partitions' indexes.
    Reuse(QualifiedName),
    /// An equivalent index that is INVALID (a failed concurrent build):
    /// dropped, built again under its name, and attached.
    Rebuild(QualifiedName),
    /// Already attached to the INVALID index being completed: kept.
    Kept(QualifiedName),
    /// Below a partition whose index is reused or kept whole: its index
    /// comes with that one.
    Covered,
}

/// How an index on a partitioned table comes to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The parent's index is there already (INVALID, some partitions'
    /// indexes missing) and is completed, not created.
    pub completing: bool,
    /// One per partition of the table, in the order of
    /// [`Table::partitions`]; empty for a table that is not partitioned.
    pub parts: Vec<Part>,
}

impl Parts {
    /// The existing indexes attached rather than built again.
    pub fn reused(&self) -> impl Iterator<Item = &QualifiedName> {
        self.parts.iter().filter_map(|part| match part {
            Part::Reuse(index) => Some(index),
            _ => None,
        })
    }

    /// How many partitions get an index built (`Build` or `Rebuild`).
    pub fn built(&self) -> usize {
        self.parts
            .iter()
            .filter(|part| matches!(part, Part::Build | Part::Rebuild(_)))
            .count()
    }
}

/// What the wanted index does on each partition of `table`, given its
/// partitions' indexes ([`Table::partition_indexes`]): `equivalent` says
/// whether one is the wanted index; `completing` is the INVALID
/// partitioned index of the wanted name and shape, if there is one, whose
/// attached indexes are kept.
pub fn plan(
    table: &Table,
    completing: Option<&Index>,
    equivalent: impl Fn(&Index) -> bool,
) -> Parts {
    // For each partition (and the table), the index already there that its
    // partitions' indexes are attached to, when it is being completed.
    let mut kept: HashMap<u32, u32> = HashMap::new();
    if let Some(parent) = completing {
        kept.insert(table.oid, parent.oid);
    }
    let mut covered: HashSet<u32> = HashSet::new();
    let parts = table
        .partitions
        .iter()
        .map(|partition| {
            if covered.contains(&partition.parent) {
                covered.insert(partition.oid);
                return Part::Covered;
            }
            let on = || {
                table
                    .partition_indexes
                    .iter()
                    .filter(move |index| index.table == partition.oid)
            };
            let attached = kept
                .get(&partition.parent)
                .and_then(|parent| on().find(|index| index.attached_to == Some(*parent)));
            if let Some(index) = attached {
                kept.insert(partition.oid, index.oid);
                // A valid one is complete below; an INVALID partitioned one
                // is completed in turn. (An INVALID leaf cannot be detached:
                // the check after the build says the index is not valid.)
                if index.usable {
                    covered.insert(partition.oid);
                }
                return Part::Kept(index.name.clone());
            }
            let free = || on().filter(|index| index.attached_to.is_none() && equivalent(index));
            if let Some(index) = free().find(|index| index.usable) {
                covered.insert(partition.oid);
                return Part::Reuse(index.name.clone());
            }
            // A partitioned index is never rebuilt: its drop would take its
            // partitions' indexes along. Nor one another session works on.
            match free().find(|index| partition.leaf && index.busy.is_none()) {
                Some(index) => Part::Rebuild(index.name.clone()),
                None => Part::Build,
            }
        })
        .collect();
    Parts {
        completing: completing.is_some(),
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::{Busy, BusyWith, Partition, RelKind};

    /// `events` (1): `events_2023` (2), `events_2024` (3, partitioned:
    /// `events_2024_eu` (4), `events_2024_us` (5)), `events_2025` (6).
    fn events(indexes: Vec<Index>) -> Table {
        let partition = |oid, name: &str, parent, leaf| Partition {
            oid,
            name: QualifiedName::new("public", name),
            parent,
            leaf,
        };
        Table {
            oid: 1,
            name: QualifiedName::new("public", "events"),
            kind: RelKind::Partitioned,
            columns: Vec::new(),
            partitions: vec![
                partition(2, "events_2023", 1, true),
                partition(3, "events_2024", 1, false),
                partition(6, "events_2025", 1, true),
                partition(4, "events_2024_eu", 3, true),
                partition(5, "events_2024_us", 3, true),
            ],
            partition_indexes: indexes,
        }
    }

    /// An index `name` (OID `oid`) on partition `table`, on `at` or not.
    fn index(oid: u32, name: &str, table: u32, on_at: bool) -> Index {
        Index {
            oid,
            table,
            ..Index::btree(name, &[if on_at { "at" } else { "id" }], None)
        }
    }

    fn on_at(index: &Index) -> bool {
        index.leading_columns().eq(["at"])
    }

    fn name(name: &str) -> QualifiedName {
        QualifiedName::new("public", name)
    }

    #[test]
    fn equivalent_indexes_are_reused_and_the_rest_built() {
        let mut attached = index(11, "attached_elsewhere", 2, true);
        attached.attached_to = Some(99);
        let mut broken = index(12, "broken", 6, true);
        broken.usable = false;
        let table = events(vec![
            attached,
            index(13, "by_id", 2, false),
            index(14, "eu_at", 4, true),
            broken,
        ]);
        let parts = plan(&table, None, on_at);
        assert_eq!(
            parts.parts,
            [
                Part::Build,
                Part::Build,
                Part::Rebuild(name("broken")),
                Part::Reuse(name("eu_at")),
                Part::Build,
            ],
            "one attached to another index, or of another shape, is no match"
        );
        assert!(!parts.completing);
        assert_eq!(parts.reused().collect::<Vec<_>>(), [&name("eu_at")]);
        assert_eq!(parts.built(), 4);
    }

    #[test]
    fn a_reused_partitioned_index_brings_its_partitions_indexes() {
        let table = events(vec![
            index(20, "y2024_at", 3, true),
            index(21, "eu_at", 4, true),
        ]);
        assert_eq!(
            plan(&table, None, on_at).parts,
            [
                Part::Build,
                Part::Reuse(name("y2024_at")),
                Part::Build,
                Part::Covered,
                Part::Covered,
            ]
        );
    }

    #[test]
    fn an_invalid_index_another_session_builds_or_a_partitioned_one_is_left_alone() {
        let mut busy = index(12, "being_built", 2, true);
        busy.usable = false;
        busy.busy = Some(Busy {
            pid: 7,
            with: BusyWith::IndexLock,
        });
        let mut partial = index(13, "y2024_at", 3, true);
        partial.usable = false;
        let table = events(vec![busy, partial]);
        assert_eq!(plan(&table, None, on_at).parts, vec![Part::Build; 5]);
    }

    #[test]
    fn an_invalid_parent_is_completed_keeping_what_is_attached() {
        let parent = Index {
            usable: false,
            ..index(1000, "idx_at", 1, true)
        };
        let mut kept = index(31, "idx_at_1", 2, true);
        kept.attached_to = Some(1000);
        let mut half = index(32, "idx_at_2", 3, true);
        half.attached_to = Some(1000);
        half.usable = false;
        let mut eu = index(33, "idx_at_4", 4, true);
        eu.attached_to = Some(32);
        let table = events(vec![kept, half, eu, index(34, "mine_2025", 6, true)]);
        let parts = plan(&table, Some(&parent), on_at);
        assert!(parts.completing);
        assert_eq!(
            parts.parts,
            [
                Part::Kept(name("idx_at_1")),
                Part::Kept(name("idx_at_2")),
                Part::Reuse(name("mine_2025")),
                Part::Kept(name("idx_at_4")),
                Part::Build,
            ]
        );
    }
}
