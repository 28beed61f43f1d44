//! `hash-spill`: a hash table (of a hash join or a hash aggregate) that did
//! not fit in `work_mem` and was split into batches written to disk.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, work_mem_advice};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "hash-spill",
    check: Check::EachNode(finding),
    saving: Estimate::NodeOwn,
};

fn finding(node: &Node) -> Option<Finding> {
    let raw = &node.raw;
    let memory = raw.peak_memory_usage.unwrap_or(0.0);
    let (batches, kb) = match (raw.hash_batches, raw.hashagg_batches) {
        // A hash join's table: all batches together held about this much.
        (Some(batches), _) if batches > 1.0 => (batches, memory * batches),
        // A hash aggregate: what stayed in memory plus what went to disk.
        (_, Some(batches)) if batches > 1.0 => (batches, memory + raw.disk_usage.unwrap_or(0.0)),
        _ => return None,
    };
    let planned = raw
        .original_hash_batches
        .filter(|original| *original != batches)
        .map(|original| format!(", {} planned", count(original)))
        .unwrap_or_default();
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} spilled to disk in {} batches{planned} because its hash table did not fit in \
             work_mem ({} kB at peak in memory)",
            node.label(),
            count(batches),
            count(memory)
        ),
        suggestion: format!(
            "{}; hash tables may also use hash_mem_multiplier times work_mem",
            work_mem_advice(kb)
        ),
        ddl: None,
        saving: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    #[test]
    fn batched_hash_joins_are_reported() {
        let plan = analysed(
            json!({"Node Type": "Hash", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 30.0, "Actual Rows": 100000, "Actual Loops": 1,
                   "Hash Batches": 4, "Original Hash Batches": 1, "Peak Memory Usage": 4000}),
            0.1,
            30.0,
        );
        let findings = RULE.findings(&plan, &Tables::default());
        assert_eq!(
            findings[0].message,
            "Hash spilled to disk in 4 batches, 1 planned because its hash table did not fit \
             in work_mem (4,000 kB at peak in memory)"
        );
        assert!(
            findings[0].suggestion.contains("'32MB'"),
            "{}",
            findings[0].suggestion
        );
    }

    #[test]
    fn spilled_hash_aggregates_are_reported_and_single_batches_are_not() {
        let aggregate = |batches: u32| {
            analysed(
                json!({"Node Type": "Aggregate", "Total Cost": 1.0, "Plan Rows": 1,
                       "Actual Total Time": 30.0, "Actual Rows": 10, "Actual Loops": 1,
                       "HashAgg Batches": batches, "Peak Memory Usage": 4000,
                       "Disk Usage": 12000}),
                0.1,
                30.0,
            )
        };
        assert_eq!(RULE.findings(&aggregate(5), &Tables::default()).len(), 1);
        assert!(RULE.findings(&aggregate(1), &Tables::default()).is_empty());
    }
}
