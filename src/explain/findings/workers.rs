//! `parallel-workers-missing`: a Gather that started fewer workers than
//! its plan counted on, so the leader and the workers it got did all the
//! work the plan spread over more.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "parallel-workers-missing",
    check: Check::EachNode(finding),
    saving: Estimate::Unknown,
};

fn finding(node: &Node) -> Option<Finding> {
    let planned = node.raw.workers_planned?;
    let launched = node.raw.workers_launched?;
    if launched >= planned {
        return None;
    }
    Some(Finding {
        code: RULE.code,
        severity: if launched == 0.0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        subject: Subject::Node(node.id),
        message: format!(
            "{} planned {} parallel workers and started {}: the server had no more to give",
            node.label(),
            count(planned),
            count(launched)
        ),
        suggestion: "the server's worker pool was used up (max_parallel_workers, and \
                     max_worker_processes, which also counts other background workers) when it \
                     ran; raise them if this is common, or expect this query to be slower when \
                     many run at once"
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

    fn gather(planned: f64, launched: f64) -> Plan {
        analysed(
            json!({"Node Type": "Gather", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 5.0, "Actual Rows": 1, "Actual Loops": 1,
                   "Workers Planned": planned, "Workers Launched": launched}),
            0.1,
            5.0,
        )
    }

    #[test]
    fn missing_workers_are_said_none_is_a_warning() {
        let none = RULE.findings(&gather(2.0, 0.0), &Tables::default());
        assert_eq!(none[0].severity, Severity::Warning);
        assert_eq!(
            none[0].message,
            "Gather planned 2 parallel workers and started 0: the server had no more to give"
        );
        let some = RULE.findings(&gather(4.0, 2.0), &Tables::default());
        assert_eq!(some[0].severity, Severity::Info);
        assert!(
            RULE.findings(&gather(2.0, 2.0), &Tables::default())
                .is_empty()
        );
    }
}
