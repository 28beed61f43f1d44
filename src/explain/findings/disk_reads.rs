//! `disk-reads-dominate`: most shared blocks the query touched were not in
//! shared buffers and had to be read from the operating system (its page
//! cache or the disk).

use super::{BLOCK_BYTES, Check, Estimate, Finding, Rule, Severity, Subject, count, percent};
use crate::pg::plan::{Node, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "disk-reads-dominate",
    check: Check::Plan(check),
    saving: Estimate::ReadTime,
};

/// Blocks read below which it does not matter: 1,000 blocks are 8 MB,
/// read in milliseconds even from a cold cache.
const MIN_READ_BLOCKS: f64 = 1_000.0;

fn check(plan: &Plan) -> Vec<Finding> {
    let root = plan.root();
    let (Some(hit), Some(read)) = (root.raw.shared_hit_blocks, root.raw.shared_read_blocks) else {
        return Vec::new();
    };
    if read < MIN_READ_BLOCKS || read <= hit {
        return Vec::new();
    }
    let reader = plan
        .nodes
        .iter()
        .max_by(|a, b| own_reads(plan, a).total_cmp(&own_reads(plan, b)))
        .unwrap_or(root);
    vec![Finding {
        code: RULE.code,
        severity: Severity::Info,
        subject: Subject::Node(reader.id),
        message: format!(
            "{} of {} shared blocks ({}, {:.0} MB) were not in shared buffers and were read \
             from the operating system, most of them by {}",
            count(read),
            count(hit + read),
            percent(read / (hit + read)),
            read * BLOCK_BYTES / 1_048_576.0,
            reader.label()
        ),
        suggestion: "a first run after a restart or on fresh data reads cold: run with \
                     --warmup 1 --runs 5 to see whether the reads persist; if they do, the \
                     working set outgrows shared_buffers or the query reads more than it needs \
                     (see the other findings)"
            .to_owned(),
        ddl: None,
        saving: None,
    }]
}

/// Blocks the node read itself.
fn own_reads(plan: &Plan, node: &Node) -> f64 {
    plan.own(node, |raw| raw.shared_read_blocks).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn plan(hit: u32, read: u32) -> Plan {
        analysed(
            json!({"Node Type": "Aggregate", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 50.0, "Actual Rows": 1, "Actual Loops": 1,
                   "Shared Hit Blocks": hit, "Shared Read Blocks": read,
                   "Plans": [{"Node Type": "Seq Scan", "Relation Name": "payments",
                              "Alias": "payments", "Total Cost": 1.0, "Plan Rows": 1,
                              "Actual Total Time": 45.0, "Actual Rows": 100000,
                              "Actual Loops": 1, "Shared Hit Blocks": hit,
                              "Shared Read Blocks": read}]}),
            0.1,
            50.0,
        )
    }

    #[test]
    fn cold_reads_point_at_the_node_reading() {
        let findings = check(&plan(100, 1400));
        assert_eq!(findings[0].node(), Some(1));
        assert_eq!(
            findings[0].message,
            "1,400 of 1,500 shared blocks (93%, 11 MB) were not in shared buffers and were \
             read from the operating system, most of them by Seq Scan on payments"
        );
    }

    #[test]
    fn warm_or_small_reads_are_fine() {
        assert!(check(&plan(1500, 0)).is_empty());
        assert!(check(&plan(100, 900)).is_empty());
        assert!(check(&plan(2000, 1500)).is_empty());
    }
}
