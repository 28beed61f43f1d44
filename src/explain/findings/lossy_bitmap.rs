//! `lossy-bitmap`: a bitmap heap scan whose bitmap outgrew `work_mem` and
//! kept only which pages match, not which rows, so every row on those
//! pages had to be checked again.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, percent};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "lossy-bitmap",
    check: Check::EachNode(finding),
    saving: Estimate::NodeOwn,
};

fn finding(node: &Node) -> Option<Finding> {
    let lossy = node.raw.lossy_heap_blocks.filter(|lossy| *lossy > 0.0)?;
    let pages = lossy + node.raw.exact_heap_blocks.unwrap_or(0.0);
    let rechecked = node
        .raw
        .rows_removed_by_index_recheck
        .map(|rows| {
            format!(
                "; the recheck threw away {} rows",
                count(rows * node.loops())
            )
        })
        .unwrap_or_default();
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} went lossy on {} of {} pages ({}): its bitmap outgrew work_mem, so every row \
             on those pages was checked again{rechecked}",
            node.label(),
            count(lossy),
            count(pages),
            percent(lossy / pages)
        ),
        suggestion: "give this query more work_mem (SET LOCAL work_mem in its transaction) so \
                     that the bitmap keeps exact row positions, or make the index condition \
                     more selective"
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

    fn heap_scan(lossy: u32) -> Plan {
        analysed(
            json!({"Node Type": "Bitmap Heap Scan", "Relation Name": "payments",
                   "Alias": "payments", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 30.0, "Actual Rows": 5000, "Actual Loops": 1,
                   "Recheck Cond": "(user_id < 100)", "Rows Removed by Index Recheck": 70000,
                   "Exact Heap Blocks": 300, "Lossy Heap Blocks": lossy}),
            0.1,
            30.0,
        )
    }

    #[test]
    fn lossy_pages_are_reported_with_the_recheck_cost() {
        let findings = RULE.findings(&heap_scan(700), &Tables::default());
        assert_eq!(
            findings[0].message,
            "Bitmap Heap Scan on payments went lossy on 700 of 1,000 pages (70%): its bitmap \
             outgrew work_mem, so every row on those pages was checked again; the recheck \
             threw away 70,000 rows"
        );
        assert!(RULE.findings(&heap_scan(0), &Tables::default()).is_empty());
    }
}
