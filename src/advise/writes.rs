//! What an index costs the workload's writes, weighed against what it
//! saves its reads. Pure.
//!
//! Every index takes an entry for each row inserted, and for each row an
//! UPDATE changes, unless the update is HOT: when no indexed column
//! changes, PostgreSQL keeps the new row version on the same page and
//! writes no index entry at all. An index on a column an UPDATE sets ends
//! that: from then on each such update writes an entry in every index of
//! the table.

use serde::Serialize;

use crate::sql::writes::Change;

/// What one index entry costs, in the planner's units: one random page
/// (`random_page_cost`'s default), the leaf page the entry goes to.
pub const ENTRY_COST: f64 = 4.0;

/// One write of the workload to a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWrite {
    /// The statement, by index into the workload.
    pub statement: usize,
    /// What it does.
    pub change: Change,
    /// The rows it writes, as the planner estimates them.
    pub rows: f64,
    /// How often it runs, relative to the workload's other statements.
    pub weight: f64,
}

/// What one index costs the writes to its table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteCost {
    /// The UPDATEs that are HOT now and would no longer be, by their
    /// number in the workload (from 1).
    pub hot_lost: Vec<usize>,
    /// What the writes would pay for the index, in planner cost units.
    pub cost: f64,
    /// What it saves the statements it serves, alike.
    pub read_saving: f64,
}

impl WriteCost {
    /// Whether the writes pay more for the index than its reads save.
    pub fn tips(&self) -> bool {
        self.cost > self.read_saving
    }
}

/// The write cost of an index reading `reads` (its key's and predicate's
/// columns) on a table whose `existing` indexes read `indexed`, under
/// `writes`, against the `read_saving` it brings.
pub fn write_cost(
    reads: &[String],
    indexed: &[String],
    existing: usize,
    writes: &[TableWrite],
    read_saving: f64,
) -> WriteCost {
    let mut hot_lost = Vec::new();
    let mut cost = 0.0;
    for write in writes {
        let entries = match &write.change {
            Change::Insert => 1.0,
            Change::Update { sets } => {
                let sets_any = |columns: &[String]| sets.iter().any(|c| columns.contains(c));
                if sets_any(indexed) {
                    // Not HOT already: one entry more, in this index.
                    1.0
                } else if sets_any(reads) {
                    hot_lost.push(write.statement + 1);
                    (existing + 1) as f64
                } else {
                    0.0
                }
            }
        };
        cost += entries * write.rows * write.weight * ENTRY_COST;
    }
    WriteCost {
        hot_lost,
        cost,
        read_saving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn update(statement: usize, sets: &[&str], rows: f64) -> TableWrite {
        TableWrite {
            statement,
            change: Change::Update {
                sets: strings(sets),
            },
            rows,
            weight: 1.0,
        }
    }

    #[test]
    fn an_index_on_a_column_an_update_sets_ends_its_hot_updates() {
        let writes = [
            // HOT today; the index on status ends it: 4 indexes + the new one.
            update(2, &["status"], 10.0),
            // Sets an indexed column already: one entry more.
            update(3, &["customer_id"], 1.0),
            // Stays HOT.
            update(4, &["note"], 100.0),
            TableWrite {
                statement: 5,
                change: Change::Insert,
                rows: 2.0,
                weight: 3.0,
            },
        ];
        let cost = write_cost(
            &strings(&["status"]),
            &strings(&["customer_id", "rental_id"]),
            4,
            &writes,
            100.0,
        );
        assert_eq!(cost.hot_lost, [3]);
        assert_eq!(cost.cost, (5.0 * 10.0 + 1.0 + 6.0) * ENTRY_COST);
        assert!(cost.tips());
        assert!(!write_cost(&strings(&["note_id"]), &[], 4, &writes[..1], 1.0).tips());
    }
}
