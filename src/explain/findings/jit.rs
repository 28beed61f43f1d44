//! `jit-dominates`: JIT compilation took a large share of a short query's
//! execution. JIT pays off when a query evaluates expressions over many
//! rows; the planner decides from the plan's estimated cost alone, so a
//! query estimated dear but quick to run compiles for longer than it runs.

use super::{Check, Estimate, Finding, Rule, Saving, Severity, Subject, count, percent};
use crate::pg::plan::{GATHER_NODES, Jit, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "jit-dominates",
    check: Check::Plan(check),
    saving: Estimate::ByRule,
};

/// The share of the execution time JIT must take: from about a third, the
/// query would run markedly faster interpreted, whatever compiling saved.
const MIN_SHARE: f64 = 0.30;

/// The fewest milliseconds of JIT worth a finding: below, a setting saves
/// less than the variation between runs.
const MIN_JIT_MS: f64 = 10.0;

fn check(plan: &Plan) -> Vec<Finding> {
    let (Some(jit), Some(execution)) = (plan.jit, plan.execution_ms) else {
        return Vec::new();
    };
    let Some(total) = jit.timing.map(|timing| timing.total) else {
        return Vec::new();
    };
    // PostgreSQL adds up what every process compiled; they compile side by
    // side, so the wall clock saw about one process's share.
    let processes = processes(plan);
    let wall = total / processes;
    if wall < MIN_JIT_MS || wall < execution * MIN_SHARE {
        return Vec::new();
    }
    let took = if processes > 1.0 {
        format!(
            "{total:.1} ms in its {} processes, about {wall:.1} ms each side by side",
            count(processes)
        )
    } else {
        format!("{total:.1} ms")
    };
    vec![Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Statement,
        message: format!(
            "JIT compilation of {} functions took {took}, {} of the {execution:.1} ms of \
             execution",
            count(jit.functions),
            percent(wall / execution)
        ),
        suggestion: suggestion(jit, plan.root().raw.total_cost),
        ddl: None,
        saving: Saving::of(wall, plan, "the JIT compilation's wall time"),
    }]
}

/// The leader and the parallel workers the plan started: each compiles its
/// own code.
fn processes(plan: &Plan) -> f64 {
    let workers: f64 = plan
        .nodes
        .iter()
        .filter(|node| GATHER_NODES.contains(&node.raw.node_type.as_str()))
        .filter_map(|node| node.raw.workers_launched)
        .sum();
    1.0 + workers
}

/// What to set for a plan of estimated `cost` that compiled as `jit` says.
fn suggestion(jit: Jit, cost: f64) -> String {
    let mut suggestion = format!(
        "the plan's estimated cost ({}) crossed jit_above_cost, yet the query runs too briefly \
         to repay compiling: raise jit_above_cost above that cost for this query or its role, or \
         turn JIT off for it (SET LOCAL jit = off in its transaction)",
        count(cost.round())
    );
    if jit.options.inlining || jit.options.optimization {
        suggestion.push_str(
            "; inlining and optimisation, usually most of the time, ran because the cost also \
             crossed jit_inline_above_cost and jit_optimize_above_cost: raising those keeps the \
             cheaper compilation",
        );
    }
    suggestion
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::tests::document;
    use serde_json::{Value, json};

    /// A plan of `root` that ran for `execution` ms, `jit` its JIT section.
    fn plan(root: Value, execution: f64, jit: Value) -> Plan {
        let mut document: Value = serde_json::from_str(&document(root, 0.7, execution)).unwrap();
        document[0]["JIT"] = jit;
        Plan::from_json(&document.to_string()).unwrap()
    }

    fn aggregate() -> Value {
        json!({"Node Type": "Aggregate", "Total Cost": 150000.0, "Plan Rows": 1,
               "Actual Total Time": 120.0, "Actual Rows": 1, "Actual Loops": 1})
    }

    /// As PostgreSQL 15 prints it with jit_above_cost = 0.
    fn jit(total: f64, optimized: bool) -> Value {
        json!({"Functions": 7,
               "Options": {"Inlining": optimized, "Optimization": optimized,
                           "Expressions": true, "Deforming": true},
               "Timing": {"Generation": 0.562, "Inlining": 47.654, "Optimization": 25.375,
                          "Emission": 20.139, "Total": total}})
    }

    #[test]
    fn compiling_most_of_a_short_query_is_reported() {
        let findings = RULE.findings(
            &plan(aggregate(), 128.8, jit(93.7, true)),
            &Tables::default(),
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].node(), None);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            findings[0].message,
            "JIT compilation of 7 functions took 93.7 ms, 73% of the 128.8 ms of execution"
        );
        assert!(
            findings[0]
                .suggestion
                .starts_with("the plan's estimated cost (150,000) crossed jit_above_cost"),
            "{}",
            findings[0].suggestion
        );
        assert!(findings[0].suggestion.contains("jit_optimize_above_cost"));
        let plain = RULE.findings(
            &plan(aggregate(), 128.8, jit(93.7, false)),
            &Tables::default(),
        );
        assert!(!plain[0].suggestion.contains("jit_optimize_above_cost"));
    }

    #[test]
    fn parallel_workers_compile_side_by_side() {
        let gathered = json!({"Node Type": "Gather", "Total Cost": 150000.0, "Plan Rows": 1,
                              "Workers Planned": 2, "Workers Launched": 2,
                              "Actual Total Time": 100.0, "Actual Rows": 3, "Actual Loops": 1,
                              "Plans": [aggregate()]});
        // 90 ms in three processes: 30 ms of the 100 ms each.
        let findings = RULE.findings(
            &plan(gathered.clone(), 100.0, jit(90.0, true)),
            &Tables::default(),
        );
        assert_eq!(
            findings[0].message,
            "JIT compilation of 7 functions took 90.0 ms in its 3 processes, about 30.0 ms each \
             side by side, 30% of the 100.0 ms of execution"
        );
        assert!(
            RULE.findings(&plan(gathered, 100.0, jit(87.0, true)), &Tables::default())
                .is_empty()
        );
    }

    #[test]
    fn jit_that_is_short_or_a_small_share_is_fine() {
        for (execution, total) in [(20.0, 9.0), (1000.0, 250.0)] {
            assert!(
                RULE.findings(
                    &plan(aggregate(), execution, jit(total, true)),
                    &Tables::default()
                )
                .is_empty(),
                "{total} of {execution}"
            );
        }
        // Without ANALYZE, nothing was compiled.
        let planned = Plan::from_json(
            &json!([{"Plan": {"Node Type": "Result", "Total Cost": 1.0, "Plan Rows": 1}}])
                .to_string(),
        )
        .unwrap();
        assert!(RULE.findings(&planned, &Tables::default()).is_empty());
    }
}
