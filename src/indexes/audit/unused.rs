//! `unused-index`: an index no query has scanned since the statistics were
//! reset, which every insert and every update other than HOT still writes
//! to. An index PostgreSQL needs (for uniqueness, a constraint, or as a
//! partition of a partitioned index) is used even when never scanned; so
//! is an index a foreign key's checks can use, whose scans come only when
//! a referenced row is deleted: dropping it could make each such delete
//! read the whole table (and the audit then report the key as
//! `unindexed-foreign-key`). Of two such indexes that are alike, the
//! duplicate is reported as one.

use super::model::Unit;
use crate::finding::{Finding, Severity};
use crate::pg::catalog::audit::{ForeignKey, Server};
use crate::text::count;

/// Why unused indexes cannot be told here, if they cannot: one note each.
pub fn unjudged(server: &Server) -> Vec<String> {
    let mut notes = Vec::new();
    if server.in_recovery {
        notes.push(
            "the server is a standby: its statistics count only the queries it ran itself, so \
             unused indexes are not reported; audit the primary (and check each standby's \
             pg_stat_user_indexes before dropping anything)"
                .to_owned(),
        );
    }
    if !server.counting {
        notes.push(
            "track_counts is off: no scan is counted, so unused indexes are not reported"
                .to_owned(),
        );
    }
    notes
}

/// A finding for each index of `units` that no scan has used and that
/// none of `foreign_keys` can use.
pub fn findings(units: &[&Unit], foreign_keys: &[ForeignKey], server: &Server) -> Vec<Finding> {
    let since = match &server.stats_reset {
        Some(reset) => format!("the statistics were reset ({reset})"),
        None => "the statistics began (never reset)".to_owned(),
    };
    units
        .iter()
        .filter(|u| u.scans == 0 && !u.index.shape.unique && !u.constrained() && !u.attached())
        .filter(|u| {
            !foreign_keys.iter().any(|key| {
                u.index.table == key.table && u.index.gives(&key.columns, key.columns.len())
            })
        })
        .map(|unit| Finding {
            code: "unused-index",
            severity: Severity::Info,
            subject: unit.subject(),
            message: match unit.writes.index_entries() {
                0 => format!(
                    "no scan since {since}, nor any insert or non-HOT update of {} to cost \
                     it more than its size",
                    unit.table.name.display()
                ),
                _ => format!(
                    "no scan since {since}, while {} inserts and {} non-HOT updates of {} each \
                     wrote to it",
                    count(unit.writes.inserted as f64),
                    count((unit.writes.updated - unit.writes.hot_updated) as f64),
                    unit.table.name.display()
                ),
            },
            suggestion: format!(
                "drop it once sure nothing needs it: scans are counted per server (check each \
                 standby's pg_stat_user_indexes), and a rare query may not have run yet ({})",
                unit.drop_words()
            ),
            ddl: Some(unit.drop_statement()),
            saving: None,
        })
        .collect()
}
