//! `index-larger-than-table`: an index that takes more room than the data
//! it indexes, which usually means it is bloated or holds more than its
//! queries need (many or wide columns, expressions, INCLUDE).

use super::model::Unit;
use crate::finding::{Finding, Severity};
use crate::text::bytes;

/// The size an index needs for a finding: below it, a small table's index
/// outgrows its table as a matter of course (an empty table has none, its
/// index a page or two).
const MIN_BYTES: i64 = 1 << 20;

/// A finding for each index of `units` larger than its table (heap and
/// TOAST; a partitioned index and table, their partitions'), judged once
/// for a partitioned index, not for each partition.
pub fn findings(units: &[&Unit]) -> Vec<Finding> {
    units
        .iter()
        .filter(|u| !u.attached() && u.size_bytes >= MIN_BYTES && u.size_bytes > u.table_bytes)
        .map(|unit| Finding {
            code: "index-larger-than-table",
            severity: Severity::Info,
            subject: unit.subject(),
            message: format!(
                "{} on disk, more than its table {} ({}, with TOAST)",
                bytes(unit.size_bytes),
                unit.table.name.display(),
                bytes(unit.table_bytes)
            ),
            suggestion: "if index-bloat reports it too, rebuild it; otherwise check that each \
                         of its columns, expressions and INCLUDE columns serves a query"
                .to_owned(),
            ddl: None,
            saving: None,
        })
        .collect()
}
