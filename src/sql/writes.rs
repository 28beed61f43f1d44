//! The table a write statement adds rows to or changes, and how: what an
//! index on that table costs it. Pure: no catalog, no server.

use sqlparser::ast::{AssignmentTarget, ObjectNamePart, Statement, TableFactor, TableObject};

use super::ident::{fold, fold_name};
use super::scans::RelationName;

/// A write to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The table as written.
    pub relation: RelationName,
    /// What it does to the table's rows.
    pub change: Change,
}

/// What a write does to its table's rows, as its indexes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New rows: an entry in every index.
    Insert,
    /// Rows changed in these columns: an entry in every index unless the
    /// update is HOT (no indexed column changes).
    Update {
        /// The columns it sets.
        sets: Vec<String>,
    },
}

/// The write `statement` makes, when it is an `INSERT` or `UPDATE` of a
/// named table (a `DELETE` adds no index entry).
pub fn statement_write(statement: &Statement) -> Option<Write> {
    match statement {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => Some(Write {
                relation: fold_name(name)?,
                change: Change::Insert,
            }),
            _ => None,
        },
        Statement::Update(update) => {
            let TableFactor::Table { name, .. } = &update.table.relation else {
                return None;
            };
            let mut sets: Vec<String> = Vec::new();
            for assignment in &update.assignments {
                let names = match &assignment.target {
                    AssignmentTarget::ColumnName(name) => vec![name],
                    AssignmentTarget::Tuple(names) => names.iter().collect(),
                };
                for name in names {
                    if let Some(ObjectNamePart::Identifier(column)) = name.0.last() {
                        let column = fold(column);
                        if !sets.contains(&column) {
                            sets.push(column);
                        }
                    }
                }
            }
            Some(Write {
                relation: fold_name(name)?,
                change: Change::Update { sets },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;

    fn write(sql: &str) -> Option<Write> {
        statement_write(&parse_statements(sql).unwrap().remove(0).ast)
    }

    #[test]
    fn inserts_and_updates_name_their_table_and_what_they_set() {
        assert_eq!(
            write("INSERT INTO Billing.\"Pay\" (a) VALUES (1)"),
            Some(Write {
                relation: vec!["billing".into(), "Pay".into()],
                change: Change::Insert,
            })
        );
        assert_eq!(
            write(
                "UPDATE store.rental r SET status = 'returned', (Returned_At, x) = (now(), 1) WHERE rental_id = 5"
            ),
            Some(Write {
                relation: vec!["store".into(), "rental".into()],
                change: Change::Update {
                    sets: vec!["status".into(), "returned_at".into(), "x".into()]
                },
            })
        );
        assert_eq!(write("DELETE FROM payments WHERE id = 1"), None);
        assert_eq!(write("SELECT 1"), None);
    }
}
