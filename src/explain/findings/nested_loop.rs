//! `nested-loop-inner-loops`: a nested loop that runs its inner side once
//! per outer row, thousands of times, and spends a good share of the
//! query there. A hash join would read the inner side once; an index would
//! make each inner run cheap.

use super::predicates::Constrained;
use super::{Check, Finding, Rule, Severity, count, create_index, owner, percent};
use crate::explain::plan::{Node, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "nested-loop-inner-loops",
    check: Check::Plan(check),
};

/// Inner runs from which a nested loop is worth a look: below a thousand,
/// even a slowish inner side rarely adds up.
const MANY_LOOPS: f64 = 1_000.0;

/// The share of the execution time the inner side must take to matter:
/// many cheap index probes are what a nested loop is good at.
const SIGNIFICANT_SHARE: f64 = 0.10;

/// How far below the truth the outer side's estimate must be to blame it
/// for the choice of a nested loop (see `row-misestimate`).
const UNDERESTIMATE_FACTOR: f64 = 10.0;

fn check(plan: &Plan) -> Vec<Finding> {
    plan.nodes
        .iter()
        .filter(|node| node.raw.node_type == "Nested Loop")
        .filter_map(|node| finding(plan, node))
        .collect()
}

fn finding(plan: &Plan, node: &Node) -> Option<Finding> {
    let mut children = plan.children(node);
    let (outer, inner) = (children.next()?, children.next()?);
    let loops = inner.loops();
    let inner_ms = inner.total_ms?;
    let share = inner_ms / plan.execution_ms.filter(|ms| *ms > 0.0)?;
    if loops < MANY_LOOPS || share < SIGNIFICANT_SHARE {
        return None;
    }
    let scans_whole_table = inner.raw.node_type == "Seq Scan";
    let mut suggestion = Vec::new();
    if let Some(fix) = inner_index(inner) {
        suggestion.push(fix);
    }
    if let Some((factor, true)) = outer
        .misestimate()
        .filter(|(f, _)| *f >= UNDERESTIMATE_FACTOR)
    {
        suggestion.push(format!(
            "the planner expected {} outer rows and got {} ({factor:.0}x more): with a right \
             estimate (ANALYZE the outer side's tables) it would likely choose a hash join",
            count(outer.raw.plan_rows * outer.loops()),
            count(outer.rows_returned().unwrap_or(0.0)),
        ));
    }
    if suggestion.is_empty() {
        suggestion.push(
            "index the inner side's join columns so that each inner run is one index probe, or \
             check the outer side's row estimate: a hash join reads the inner side only once"
                .to_owned(),
        );
    }
    Some(Finding {
        code: RULE.code,
        severity: if scans_whole_table {
            Severity::Critical
        } else {
            Severity::Warning
        },
        node: Some(node.id),
        message: format!(
            "{} ran its inner side ({}) {} times, {:.1} ms in all ({} of the execution)",
            node.label(),
            inner.label(),
            count(loops),
            inner_ms,
            percent(share)
        ),
        suggestion: suggestion.join("; "),
    })
}

/// The index that turns each inner run into a probe, when the inner side
/// is a table scan whose condition names its join columns.
fn inner_index(inner: &Node) -> Option<String> {
    let relation = inner.raw.relation_name.as_deref()?;
    let condition = inner
        .raw
        .filter
        .as_deref()
        .or(inner.raw.join_filter.as_deref())?;
    let columns = Constrained::parse(condition, &owner(inner))?;
    Some(format!(
        "index the inner side's join column{} so that each inner run is one index probe: {}",
        if columns.columns().len() == 1 {
            ""
        } else {
            "s"
        },
        create_index(relation, &columns.index_key())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::plan::tests::analysed;
    use serde_json::{Value, json};

    fn nested_loop(inner: Value, outer_estimate: u32) -> Plan {
        analysed(
            json!({"Node Type": "Nested Loop", "Join Type": "Inner", "Total Cost": 1.0,
                   "Plan Rows": 10, "Actual Total Time": 100.0, "Actual Rows": 4000,
                   "Actual Loops": 1,
                   "Plans": [
                       {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "u",
                        "Total Cost": 1.0, "Plan Rows": outer_estimate, "Actual Total Time": 1.0,
                        "Actual Rows": 4000, "Actual Loops": 1},
                       inner]}),
            0.1,
            100.0,
        )
    }

    #[test]
    fn a_scanned_inner_side_is_critical_and_gets_its_index() {
        let inner = json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "p",
                           "Parent Relationship": "Inner", "Total Cost": 1.0, "Plan Rows": 1,
                           "Actual Total Time": 0.02, "Actual Rows": 1, "Actual Loops": 4000,
                           "Filter": "(p.user_id = u.id)"});
        let findings = check(&nested_loop(inner, 10));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Critical);
        assert_eq!(
            findings[0].message,
            "Nested Loop ran its inner side (Seq Scan on payments p) 4,000 times, 80.0 ms in \
             all (80% of the execution)"
        );
        assert!(
            findings[0]
                .suggestion
                .contains("CREATE INDEX CONCURRENTLY ON payments (user_id);"),
            "{}",
            findings[0].suggestion
        );
        assert!(
            findings[0]
                .suggestion
                .contains("expected 10 outer rows and got 4,000")
        );
    }

    #[test]
    fn cheap_or_few_inner_runs_are_fine() {
        let probe = |ms: f64, loops: u32| {
            json!({"Node Type": "Index Scan", "Index Name": "payments_pkey",
                   "Relation Name": "payments", "Alias": "p", "Total Cost": 1.0,
                   "Plan Rows": 1, "Actual Total Time": ms, "Actual Rows": 1,
                   "Actual Loops": loops})
        };
        assert!(check(&nested_loop(probe(0.001, 4000), 4000)).is_empty());
        assert!(check(&nested_loop(probe(0.5, 100), 100)).is_empty());
        let findings = check(&nested_loop(probe(0.01, 4000), 4000));
        assert_eq!(findings[0].severity, Severity::Warning);
    }
}
