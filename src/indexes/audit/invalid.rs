//! `invalid-index`: an index queries never use, left by a failed or
//! cancelled concurrent build, or a partitioned index some partition's
//! index was never attached to.

use super::model::Unit;
use crate::finding::{Finding, Severity};
use crate::indexes::advice;

/// A finding for each INVALID index no other session is working on (one
/// being built, rebuilt or dropped right now is not valid yet, and must not
/// be touched).
pub fn findings(units: &[Unit]) -> Vec<Finding> {
    units
        .iter()
        .filter(|u| !u.index.usable && u.index.busy.is_none())
        .map(finding)
        .collect()
}

fn finding(unit: &Unit) -> Finding {
    let name = &unit.index.name;
    let message = if unit.usage.partitioned {
        "INVALID: a partitioned index is valid only once every partition has an index attached \
         to it (left by CREATE INDEX ON ONLY, or a build of its partitions that stopped half-way); \
         queries on the partitions use the indexes that are attached"
            .to_owned()
    } else {
        advice::INVALID.to_owned()
    };
    let (suggestion, ddl) = match unit.kept_because() {
        // An attached index cannot be dropped, but can be rebuilt.
        Some(_) if unit.attached() => (
            "rebuild it (REINDEX INDEX CONCURRENTLY blocks no reads or writes)".to_owned(),
            Some(advice::reindex_statement(name)),
        ),
        Some(why) => (
            format!(
                "keep it: {why}; build and attach the missing partitions' indexes (perfaudit \
                 indexes does, from a spec), and it becomes valid"
            ),
            None,
        ),
        None if unit.usage.partitioned => (
            format!("drop it ({})", unit.drop_words()),
            Some(unit.drop_statement()),
        ),
        None => (
            format!(
                "drop it ({}); or rebuild it with REINDEX INDEX CONCURRENTLY {name}, if its \
                 build failed for a reason that is gone (a unique build fails again on the \
                 same duplicates)",
                unit.drop_words()
            ),
            Some(unit.drop_statement()),
        ),
    };
    Finding {
        code: "invalid-index",
        severity: Severity::Warning,
        subject: unit.subject(),
        message,
        suggestion,
        ddl,
        saving: None,
    }
}
