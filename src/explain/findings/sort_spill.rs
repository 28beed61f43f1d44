//! `sort-spill`: a sort that did not fit in `work_mem` and sorted through
//! temporary files on disk.

use super::{Check, Finding, Rule, Severity, Subject, count, work_mem_advice};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "sort-spill",
    check: Check::EachNode(finding),
};

fn finding(node: &Node) -> Option<Finding> {
    if node.raw.sort_space_type.as_deref() != Some("Disk") {
        return None;
    }
    let kb = node.raw.sort_space_used.unwrap_or(0.0);
    let mut suggestion = work_mem_advice(kb);
    if let Some(key) = node.raw.sort_key.as_ref().filter(|key| !key.is_empty()) {
        suggestion.push_str(&format!(
            "; or let an index on ({}) return the rows already in order",
            key.join(", ")
        ));
    }
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} spilled to disk ({}, {} kB of temporary files) because its rows did not fit \
             in work_mem",
            node.label(),
            node.raw.sort_method.as_deref().unwrap_or("external sort"),
            count(kb)
        ),
        suggestion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::Plan;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn sort(space_type: &str, method: &str) -> Plan {
        analysed(
            json!({"Node Type": "Sort", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 80.0, "Actual Rows": 100000, "Actual Loops": 1,
                   "Sort Key": ["p.created_at DESC"], "Sort Method": method,
                   "Sort Space Used": 20000, "Sort Space Type": space_type}),
            0.1,
            80.0,
        )
    }

    #[test]
    fn disk_sorts_get_work_mem_and_index_advice() {
        let findings = RULE.findings(&sort("Disk", "external merge"), &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "Sort spilled to disk (external merge, 20,000 kB of temporary files) because its \
             rows did not fit in work_mem"
        );
        assert!(
            findings[0]
                .suggestion
                .contains("SET LOCAL work_mem = '64MB'")
        );
        assert!(
            findings[0]
                .suggestion
                .contains("index on (p.created_at DESC)")
        );
    }

    #[test]
    fn memory_sorts_are_fine() {
        assert!(
            RULE.findings(&sort("Memory", "quicksort"), &Tables::default())
                .is_empty()
        );
    }
}
