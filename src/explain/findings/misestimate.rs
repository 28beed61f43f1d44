//! `row-misestimate`: the planner expected a row count off by an order of
//! magnitude or more. Every choice above that node (join method, join
//! order, scan type) was made for the wrong number of rows.

use super::predicates::Constrained;
use super::{Check, Finding, Rule, Severity, count, owner};
use crate::explain::plan::{Node, Plan};
use crate::sql::ident;

/// The rule.
pub const RULE: Rule = Rule {
    code: "row-misestimate",
    check: Check::Plan(check),
};

/// The factor from which an estimate is off: an order of magnitude is
/// where the planner's choice of join method and scan type flips.
const FACTOR: f64 = 10.0;

/// The factor from which a misestimate is critical: plans chosen for a
/// thousandth of the real rows are usually badly wrong.
const CRITICAL_FACTOR: f64 = 1_000.0;

/// The fewest rows (estimated or actual, the larger) worth a finding:
/// 1 row expected and 10 found changes no plan.
const MIN_ROWS: f64 = 100.0;

fn check(plan: &Plan) -> Vec<Finding> {
    let off: Vec<bool> = plan.nodes.iter().map(|n| is_off(plan, n)).collect();
    plan.nodes
        .iter()
        .filter(|node| off[node.id])
        // Report where the error starts: nodes above inherit it.
        .filter(|node| !plan.subtree(node).skip(1).any(|below| off[below.id]))
        .map(finding)
        .collect()
}

fn is_off(plan: &Plan, node: &Node) -> bool {
    let Some((factor, under)) = node.misestimate() else {
        return false;
    };
    let larger = node.raw.plan_rows.max(node.raw.actual_rows.unwrap_or(0.0));
    // Below a Limit, a node stops early and returns fewer rows than the
    // planner estimated for running to completion: not a misestimate.
    let stopped_early = !under && below_limit(plan, node);
    factor >= FACTOR && larger >= MIN_ROWS && !stopped_early
}

fn below_limit(plan: &Plan, node: &Node) -> bool {
    std::iter::successors(node.parent, |&id| plan.nodes[id].parent)
        .any(|id| plan.nodes[id].raw.node_type == "Limit")
}

fn finding(node: &Node) -> Finding {
    let (factor, under) = node.misestimate().unwrap_or((1.0, false));
    let estimated = node.raw.plan_rows;
    let actual = node.raw.actual_rows.unwrap_or(0.0);
    Finding {
        code: RULE.code,
        severity: if factor >= CRITICAL_FACTOR {
            Severity::Critical
        } else {
            Severity::Warning
        },
        node: Some(node.id),
        message: format!(
            "{} was estimated at {} rows and returned {}{}: {:.0}x {} than planned",
            node.label(),
            count(estimated),
            count(actual),
            if node.loops() > 1.0 { " per loop" } else { "" },
            factor,
            if under { "more" } else { "fewer" }
        ),
        suggestion: suggestion(node),
    }
}

fn suggestion(node: &Node) -> String {
    let Some(relation) = node.raw.relation_name.as_deref() else {
        return format!(
            "the estimate goes wrong at this {}: ANALYZE the tables below it; when the columns \
             it joins or groups by are correlated, CREATE STATISTICS (ndistinct, dependencies) \
             on them helps, and for skewed columns so does a higher statistics target \
             (ALTER TABLE ... ALTER COLUMN ... SET STATISTICS 1000)",
            node.raw.node_type
        );
    };
    let columns = columns_of(node);
    let name = statistics_name(relation, &columns);
    let relation = ident(relation);
    let mut advice = format!("refresh the statistics: ANALYZE {relation};");
    if columns.len() >= 2 {
        advice.push_str(&format!(
            " if it stays off, {} are probably correlated, which PostgreSQL assumes they are \
             not: CREATE STATISTICS {name} ON {} FROM {relation}; ANALYZE {relation};",
            columns.join(" and "),
            columns.join(", ")
        ));
    } else {
        advice.push_str(
            " if it stays off, the column's values are skewed beyond what the statistics \
             sample: raise its target (ALTER TABLE ... ALTER COLUMN ... SET STATISTICS 1000) \
             and ANALYZE again",
        );
    }
    advice
}

/// The columns the node's conditions constrain.
fn columns_of(node: &Node) -> Vec<String> {
    let conditions = [
        &node.raw.filter,
        &node.raw.index_cond,
        &node.raw.recheck_cond,
    ];
    let mut columns = Constrained::default();
    for condition in conditions.into_iter().flatten() {
        if let Some(found) = Constrained::parse(condition, &owner(node)) {
            columns.extend(found);
        }
    }
    columns.columns()
}

/// `payments_currency_method_stats`, within PostgreSQL's 63-byte names.
fn statistics_name(relation: &str, columns: &[String]) -> String {
    let mut name = relation.to_owned();
    for column in columns {
        name.push('_');
        name.push_str(column.trim_matches('"'));
    }
    name.push_str("_stats");
    while name.len() > 63 {
        name.pop();
    }
    ident(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::plan::tests::analysed;
    use serde_json::{Value, json};

    fn scan(estimated: f64, actual: f64, filter: &str) -> Value {
        json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "payments",
               "Total Cost": 10.0, "Plan Rows": estimated, "Actual Total Time": 5.0,
               "Actual Rows": actual, "Actual Loops": 1, "Filter": filter})
    }

    fn over(child: Value, node_type: &str, estimated: f64, actual: f64) -> Value {
        json!({"Node Type": node_type, "Total Cost": 20.0, "Plan Rows": estimated,
               "Actual Total Time": 6.0, "Actual Rows": actual, "Actual Loops": 1,
               "Plans": [child]})
    }

    #[test]
    fn reports_where_the_error_starts_with_statistics_advice() {
        let scan = scan(
            50.0,
            5_000.0,
            "((currency = 'EUR'::bpchar) AND (method = 'card'::text))",
        );
        let plan = analysed(over(scan, "Sort", 50.0, 5_000.0), 0.1, 6.0);
        let findings = check(&plan);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].node, Some(1));
        assert_eq!(
            findings[0].message,
            "Seq Scan on payments was estimated at 50 rows and returned 5,000: 100x more than planned"
        );
        assert!(
            findings[0].suggestion.contains(
                "CREATE STATISTICS payments_currency_method_stats ON currency, method \
                     FROM payments;"
            ),
            "{}",
            findings[0].suggestion
        );
    }

    #[test]
    fn small_counts_limits_and_near_misses_are_not_reported() {
        assert!(check(&analysed(scan(1.0, 12.0, "(a = 1)"), 0.1, 5.0)).is_empty());
        assert!(check(&analysed(scan(100.0, 900.0, "(a = 1)"), 0.1, 5.0)).is_empty());
        let limited = over(scan(100_000.0, 10.0, "(a = 1)"), "Limit", 10.0, 10.0);
        assert!(check(&analysed(limited, 0.1, 5.0)).is_empty());
    }

    #[test]
    fn joins_get_join_advice_and_huge_errors_are_critical() {
        let join = json!({"Node Type": "Hash Join", "Join Type": "Inner", "Total Cost": 1.0,
                          "Plan Rows": 1, "Actual Total Time": 1.0, "Actual Rows": 5000,
                          "Actual Loops": 1});
        let findings = check(&analysed(join, 0.1, 1.0));
        assert_eq!(findings[0].severity, Severity::Critical);
        assert!(
            findings[0]
                .suggestion
                .contains("CREATE STATISTICS (ndistinct, dependencies)")
        );
    }
}
