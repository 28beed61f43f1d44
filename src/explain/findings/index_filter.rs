//! `index-filter-discards`: an index scan that fetches many rows through
//! the index only to throw most of them away with a filter. An index that
//! also covers the filter's columns would fetch only the rows kept.

use super::predicates::Constrained;
use super::{
    Check, Estimate, Finding, Rule, Severity, Subject, count, index_advice, owner, percent,
};
use crate::explain::tables::Tables;
use crate::pg::plan::Node;
use crate::text::plural;

/// The rule.
pub const RULE: Rule = Rule {
    code: "index-filter-discards",
    check: Check::EachNodeWithTables(finding),
    saving: Estimate::NodeOwn,
};

/// The share of the fetched rows the filter must discard: at nine in ten,
/// most of the heap pages visited were visited for nothing.
const DISCARDED_SHARE: f64 = 0.9;

/// The fewest discarded rows worth a finding: fewer cost well under a
/// millisecond.
const MIN_DISCARDED: f64 = 1_000.0;

const INDEX_SCANS: [&str; 3] = ["Index Scan", "Index Only Scan", "Bitmap Heap Scan"];

fn finding(node: &Node, tables: &Tables) -> Option<Finding> {
    if !INDEX_SCANS.contains(&node.raw.node_type.as_str()) {
        return None;
    }
    let filter = node.raw.filter.as_deref()?;
    let kept = node.rows_returned()?;
    let discarded = node.rows_removed_by_filter()?;
    let fetched = kept + discarded;
    if discarded < MIN_DISCARDED || discarded < fetched * DISCARDED_SHARE {
        return None;
    }
    let owner = owner(node);
    let index_condition = node
        .raw
        .index_cond
        .as_deref()
        .or(node.raw.recheck_cond.as_deref());
    let mut key = index_condition
        .and_then(|condition| Constrained::parse(condition, &owner))
        .unwrap_or_default();
    let (suggestion, ddl) = match (
        Constrained::parse(filter, &owner),
        node.raw.relation_name.as_deref(),
    ) {
        (Some(filtered), Some(relation)) => {
            let (count, columns) = (filtered.columns().len(), filtered.columns().join(", "));
            key.extend(filtered);
            let advice = index_advice(tables, relation, &key);
            let text = format!(
                "an index that also covers the filtered {} ({columns}) fetches only the rows \
                 kept; {}",
                plural(count, "column", "columns"),
                advice.text
            );
            (text, advice.ddl)
        }
        _ => (
            "extend the index with the filter's columns so that the index finds only the rows \
             kept"
                .to_owned(),
            None,
        ),
    };
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} fetched {} rows and its filter {filter} threw away {} of them ({})",
            node.label(),
            count(fetched),
            count(discarded),
            percent(discarded / fetched)
        ),
        suggestion,
        ddl,
        saving: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::payments;
    use crate::pg::plan::Plan;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    /// The rule's findings, with the fixture's `payments` in the catalog.
    fn findings_in(plan: &Plan) -> Vec<Finding> {
        RULE.findings(plan, &payments())
    }

    fn index_scan(kept: u32, removed: u32) -> Plan {
        analysed(
            json!({"Node Type": "Index Scan", "Index Name": "idx_payments_user_id",
                   "Relation Name": "payments", "Alias": "payments", "Total Cost": 1.0,
                   "Plan Rows": 10, "Actual Total Time": 3.0, "Actual Rows": kept,
                   "Actual Loops": 1, "Index Cond": "(user_id = 1)",
                   "Filter": "(status = 'failed'::text)", "Rows Removed by Filter": removed}),
            0.1,
            3.0,
        )
    }

    #[test]
    fn suggests_the_index_with_the_filter_columns_appended() {
        let findings = findings_in(&index_scan(100, 2400));
        assert_eq!(
            findings[0].message,
            "Index Scan using idx_payments_user_id on payments fetched 2,500 rows and its \
             filter (status = 'failed'::text) threw away 2,400 of them (96%)"
        );
        assert_eq!(
            findings[0].ddl.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY \"idx_payments_user_id_status\" ON \
                 \"public\".\"payments\" (\"user_id\", \"status\");"
            ),
            "{}",
            findings[0].suggestion
        );
    }

    #[test]
    fn filters_that_keep_enough_or_discard_little_are_fine() {
        assert!(findings_in(&index_scan(1000, 2400)).is_empty());
        assert!(findings_in(&index_scan(1, 900)).is_empty());
    }
}
