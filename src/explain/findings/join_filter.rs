//! `join-filter-discards`: a join that paired many rows only for its
//! `Join Filter` to throw nearly all of them away. The condition is not one
//! the join can match rows on (an inequality, an `OR`, a function of a
//! column), so every pair is built and tested.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, percent};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "join-filter-discards",
    check: Check::EachNode(finding),
    saving: Estimate::NodeOwn,
};

/// Pairs thrown away below which building them costs little.
const MIN_DISCARDED: f64 = 10_000.0;

/// The share of the pairs thrown away from which nearly all the join's work
/// is wasted.
const DISCARDED_SHARE: f64 = 0.90;

/// Pairs thrown away from which the waste is critical: a million row pairs
/// is tens of milliseconds on every execution.
const CRITICAL_DISCARDED: f64 = 1_000_000.0;

fn finding(node: &Node) -> Option<Finding> {
    let filter = node.raw.join_filter.as_deref()?;
    // Both per loop, as PostgreSQL prints them.
    let discarded = node.raw.rows_removed_by_join_filter? * node.loops();
    let kept = node.rows_returned()?;
    if discarded < MIN_DISCARDED || discarded < (discarded + kept) * DISCARDED_SHARE {
        return None;
    }
    Some(Finding {
        code: RULE.code,
        severity: if discarded >= CRITICAL_DISCARDED {
            Severity::Critical
        } else {
            Severity::Warning
        },
        subject: Subject::Node(node.id),
        message: format!(
            "{}'s join filter {filter} threw away {} of the {} row pairs it built ({})",
            node.label(),
            count(discarded),
            count(discarded + kept),
            percent(discarded / (discarded + kept))
        ),
        suggestion: "write the join condition as equalities of the two sides' columns, so that \
                     a hash or merge join (or an index on the inner side) matches the rows \
                     instead of testing every pair; keep what is not an equality as a filter \
                     beside them"
            .to_owned(),
        ddl: None,
        saving: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::Plan;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn join(kept: f64, discarded: f64) -> Plan {
        analysed(
            json!({"Node Type": "Nested Loop", "Join Type": "Inner", "Total Cost": 1.0,
                   "Plan Rows": 1, "Actual Total Time": 90.0, "Actual Rows": kept,
                   "Actual Loops": 1, "Join Filter": "(r.rented_at < p.paid_at)",
                   "Rows Removed by Join Filter": discarded}),
            0.1,
            90.0,
        )
    }

    #[test]
    fn a_join_filter_that_discards_nearly_every_pair_is_a_finding() {
        let findings = RULE.findings(&join(1_000.0, 915_000.0), &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            findings[0].message,
            "Nested Loop's join filter (r.rented_at < p.paid_at) threw away 915,000 of the \
             916,000 row pairs it built (100%)"
        );
        let huge = RULE.findings(&join(1.0, 2_000_000.0), &Tables::default());
        assert_eq!(huge[0].severity, Severity::Critical);
    }

    #[test]
    fn small_or_useful_join_filters_are_fine() {
        assert!(
            RULE.findings(&join(10.0, 9_000.0), &Tables::default())
                .is_empty()
        );
        assert!(
            RULE.findings(&join(50_000.0, 50_000.0), &Tables::default())
                .is_empty()
        );
    }
}
