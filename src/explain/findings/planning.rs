//! `planning-exceeds-execution`: planning took longer than running the
//! query, and long enough to matter.

use super::{Check, Estimate, Finding, Rule, Severity, Subject};
use crate::pg::plan::Plan;

/// The rule.
pub const RULE: Rule = Rule {
    code: "planning-exceeds-execution",
    check: Check::Plan(check),
    saving: Estimate::Planning,
};

/// Planning time below which planning outweighing execution is normal for
/// a fast query and not worth acting on.
const MIN_PLANNING_MS: f64 = 1.0;

fn check(plan: &Plan) -> Vec<Finding> {
    let (Some(planning), Some(execution)) = (plan.planning_ms, plan.execution_ms) else {
        return Vec::new();
    };
    if planning < MIN_PLANNING_MS || planning <= execution {
        return Vec::new();
    }
    vec![Finding {
        code: RULE.code,
        severity: Severity::Info,
        subject: Subject::Statement,
        message: format!(
            "planning took {planning:.2} ms, longer than the {execution:.2} ms of execution"
        ),
        suggestion: "if the query runs often, run it as a prepared statement (most drivers \
                     can cache them) so that it is planned once and reused; long planning \
                     comes from many joined tables (join_collapse_limit) or many partitions \
                     (filter on the partition key so that they are pruned)"
            .to_owned(),
        ddl: None,
        saving: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn plan(planning: f64, execution: f64) -> Plan {
        analysed(
            json!({"Node Type": "Result", "Total Cost": 0.01, "Plan Rows": 1,
                   "Actual Total Time": execution, "Actual Rows": 1, "Actual Loops": 1}),
            planning,
            execution,
        )
    }

    #[test]
    fn slow_planning_of_a_fast_query_is_noted() {
        let findings = check(&plan(12.5, 0.4));
        assert_eq!(
            findings[0].message,
            "planning took 12.50 ms, longer than the 0.40 ms of execution"
        );
        assert_eq!(findings[0].node(), None);
    }

    #[test]
    fn fast_planning_is_not() {
        assert!(check(&plan(0.3, 0.05)).is_empty());
        assert!(check(&plan(5.0, 50.0)).is_empty());
    }
}
