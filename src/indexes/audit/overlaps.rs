//! `duplicate-index` and `redundant-index`: an index another index on the
//! same table makes unneeded (see [`advice::overlap`]). Of two duplicates,
//! the one to keep is the one PostgreSQL needs or the planner uses (see
//! [`keep_rank`]); an index needed for uniqueness, by a constraint, or
//! attached to a partitioned index is never advised to be dropped.
//!
//! Partitions are tables like any other here: an index a partition has of
//! its own duplicates the index attached there by the partitioned table's,
//! which stays. Two attached indexes that overlap are left to their
//! partitioned indexes, which overlap too and are judged on their table.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::model::Unit;
use crate::finding::Finding;
use crate::indexes::advice::{self, Overlap};

/// A finding for each usable index another usable one makes unneeded.
pub fn findings(units: &[Unit]) -> Vec<Finding> {
    let mut by_table: HashMap<u32, Vec<&Unit>> = HashMap::new();
    for unit in units.iter().filter(|u| u.index.usable) {
        by_table.entry(unit.table.oid).or_default().push(unit);
    }
    units
        .iter()
        .filter(|a| a.index.usable)
        .filter_map(|a| {
            let (overlap, b) = by_table[&a.table.oid]
                .iter()
                .filter(|b| b.usage.oid != a.usage.oid)
                .filter_map(|b| Some((overlap(a, b)?, *b)))
                .min_by_key(|(overlap, b)| {
                    (*overlap != Overlap::DUPLICATE, Reverse(keep_rank(b)))
                })?;
            finding(overlap, a, b)
        })
        .collect()
}

/// How `a` adds nothing to `b`, when `a` is the one to report: of two
/// duplicates, the one with the lower [`keep_rank`]; an index that enforces
/// uniqueness `b` does not, never.
fn overlap(a: &Unit, b: &Unit) -> Option<Overlap> {
    let overlap = advice::overlap(&a.index.shape, &b.index.shape)?;
    let same_uniqueness =
        !a.index.shape.unique || (b.index.shape.unique && overlap == Overlap::DUPLICATE);
    let reported = if overlap == Overlap::DUPLICATE {
        keep_rank(a) < keep_rank(b)
    } else {
        // The shorter of a primary key and a longer index is needed.
        !a.constrained() && !a.attached()
    };
    (same_uniqueness && reported).then_some(overlap)
}

/// Which of two duplicates to keep, the greater: one a primary key needs,
/// then any constraint, then one attached to a partitioned index (which
/// cannot be dropped alone), then a unique one, then the one the planner
/// used more (an attached index counts its partitioned index's scans: the
/// two are kept or dropped together), then the first by name.
fn keep_rank<'a>(unit: &'a Unit) -> (bool, bool, bool, bool, i64, Reverse<&'a str>) {
    (
        unit.primary_key(),
        unit.constrained(),
        unit.attached(),
        unit.index.shape.unique,
        unit.whole_scans,
        Reverse(unit.index.name.name.as_str()),
    )
}

fn finding(overlap: Overlap, a: &Unit, b: &Unit) -> Option<Finding> {
    let mut message =
        advice::overlap_message(overlap, &a.index.shape, &b.index.name.name, &b.index.shape);
    if let Some(why) = b.kept_because() {
        message.push_str(&format!(
            "; {} is the one to keep: {why}",
            b.index.name.name
        ));
    }
    let (suggestion, ddl) = match a.kept_because() {
        // Both attached: their partitioned indexes overlap as well.
        Some(_) if a.attached() => return None,
        Some(why) => (
            format!(
                "it cannot simply be dropped: {why}; if that constraint is not needed besides \
                 what {} gives, drop the constraint (ALTER TABLE ... DROP CONSTRAINT), which \
                 drops the index",
                b.index.name.name
            ),
            None,
        ),
        None => (
            format!(
                "{} ({})",
                advice::overlap_suggestion(overlap),
                a.drop_words()
            ),
            Some(a.drop_statement()),
        ),
    };
    Some(Finding {
        code: overlap.code,
        severity: overlap.severity,
        subject: a.subject(),
        message,
        suggestion,
        ddl,
        saving: None,
    })
}
