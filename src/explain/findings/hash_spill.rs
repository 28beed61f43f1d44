//! `hash-spill`: a hash table (of a hash join or a hash aggregate) that did
//! not fit in `work_mem` and was split into batches written to disk.

use super::{
    Check, Estimate, Finding, Rule, Severity, Subject, count, temp_written_kb, work_mem_advice,
};
use crate::pg::plan::{Node, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "hash-spill",
    check: Check::Plan(check),
    saving: Estimate::NodeOwn,
};

fn check(plan: &Plan) -> Vec<Finding> {
    plan.nodes
        .iter()
        .filter_map(|node| finding(plan, node))
        .collect()
}

fn finding(plan: &Plan, node: &Node) -> Option<Finding> {
    let Spill { how, kb } = spill(plan, node)?;
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} spilled to disk {how} because its hash table did not fit in work_mem ({} kB at \
             peak in memory)",
            node.label(),
            count(node.raw.peak_memory_usage.unwrap_or(0.0))
        ),
        suggestion: format!(
            "{}; hash tables may also use hash_mem_multiplier times work_mem",
            work_mem_advice(kb)
        ),
        ddl: None,
        saving: None,
    })
}

/// How a hash table spilled, in words, and about what it held in all.
struct Spill {
    how: String,
    kb: f64,
}

/// The spill of `node`: the batches it reports, else the temporary files it
/// wrote, which catches what its own figures do not show (a parallel
/// worker's hash aggregate on disk where the leader's fit in memory).
fn spill(plan: &Plan, node: &Node) -> Option<Spill> {
    let raw = &node.raw;
    let hashes = match raw.node_type.as_str() {
        // A hash join's outer batches follow its Hash's: one finding, there.
        "Hash" => true,
        "Aggregate" | "SetOp" => matches!(raw.strategy.as_deref(), Some("Hashed" | "Mixed")),
        _ => false,
    };
    if !hashes {
        return None;
    }
    let memory = raw.peak_memory_usage.unwrap_or(0.0);
    let (batches, kb) = match (raw.hash_batches, raw.hashagg_batches) {
        // A hash join's table: all batches together held about this much.
        (Some(batches), _) if batches > 1.0 => (batches, memory * batches),
        // A hash aggregate: what stayed in memory plus what went to disk.
        (_, Some(batches)) if batches > 1.0 => (batches, memory + raw.disk_usage.unwrap_or(0.0)),
        _ => {
            let kb = temp_written_kb(plan, node)?;
            return Some(Spill {
                how: format!("(it wrote {} kB of temporary files)", count(kb)),
                kb: memory + kb,
            });
        }
    };
    let planned = raw
        .original_hash_batches
        .filter(|original| *original != batches)
        .map(|original| format!(", {} planned", count(original)))
        .unwrap_or_default();
    Some(Spill {
        how: format!("in {} batches{planned}", count(batches)),
        kb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::Plan;
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
                json!({"Node Type": "Aggregate", "Strategy": "Hashed", "Total Cost": 1.0,
                       "Plan Rows": 1, "Actual Total Time": 30.0, "Actual Rows": 10,
                       "Actual Loops": 1, "HashAgg Batches": batches, "Peak Memory Usage": 4000,
                       "Disk Usage": 12000}),
                0.1,
                30.0,
            )
        };
        assert_eq!(RULE.findings(&aggregate(5), &Tables::default()).len(), 1);
        assert!(RULE.findings(&aggregate(1), &Tables::default()).is_empty());
    }

    /// A hashed aggregate, in one batch, whose subtree wrote `blocks`
    /// temporary blocks, `below` of them by the scan below it.
    fn aggregate_writing(blocks: f64, below: f64) -> Plan {
        analysed(
            json!({"Node Type": "Aggregate", "Strategy": "Hashed", "Total Cost": 1.0,
                   "Plan Rows": 1, "Actual Total Time": 30.0, "Actual Rows": 10,
                   "Actual Loops": 1, "HashAgg Batches": 1, "Peak Memory Usage": 4000,
                   "Temp Written Blocks": blocks,
                   "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 1.0,
                              "Plan Rows": 1, "Actual Total Time": 10.0, "Actual Rows": 10,
                              "Actual Loops": 1, "Temp Written Blocks": below}]}),
            0.1,
            30.0,
        )
    }

    #[test]
    fn temporary_files_a_hash_table_wrote_itself_are_a_spill() {
        // A parallel worker's aggregate spilled where the leader's did not.
        let findings = RULE.findings(&aggregate_writing(1_000.0, 0.0), &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "HashAggregate spilled to disk (it wrote 8,000 kB of temporary files) because its \
             hash table did not fit in work_mem (4,000 kB at peak in memory)"
        );
        assert!(findings[0].suggestion.contains("'32MB'"));
        assert!(
            RULE.findings(&aggregate_writing(1_000.0, 1_000.0), &Tables::default())
                .is_empty()
        );
    }

    #[test]
    fn a_hash_joins_outer_batches_are_its_hashs_finding() {
        let plan = analysed(
            json!({"Node Type": "Hash Join", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 50.0, "Actual Rows": 10, "Actual Loops": 1,
                   "Temp Written Blocks": 928,
                   "Plans": [
                       {"Node Type": "Seq Scan", "Relation Name": "r", "Total Cost": 1.0,
                        "Plan Rows": 1, "Actual Total Time": 10.0, "Actual Rows": 10,
                        "Actual Loops": 1, "Temp Written Blocks": 0},
                       {"Node Type": "Hash", "Total Cost": 1.0, "Plan Rows": 1,
                        "Actual Total Time": 10.0, "Actual Rows": 10, "Actual Loops": 1,
                        "Hash Batches": 16, "Original Hash Batches": 16,
                        "Peak Memory Usage": 100, "Temp Written Blocks": 154}]}),
            0.1,
            50.0,
        );
        let findings = RULE.findings(&plan, &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].node(), Some(2));
        assert_eq!(
            findings[0].message,
            "Hash spilled to disk in 16 batches because its hash table did not fit in work_mem \
             (100 kB at peak in memory)"
        );
    }
}
