//! `row-misestimate`: the planner expected a row count off by an order of
//! magnitude or more. Every choice above that node (join method, join
//! order, scan type) was made for the wrong number of rows.

use super::predicates::Constrained;
use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, owner};
use crate::pg::plan::{Node, Plan};
use crate::sql::ident::ident;

/// The rule.
pub const RULE: Rule = Rule {
    code: "row-misestimate",
    check: Check::Plan(check),
    saving: Estimate::Unknown,
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
    // A node that is stopped early returns fewer rows than the planner
    // estimated for running it to completion: not a misestimate.
    let stopped_early = !under && stopped_early(plan, node);
    factor >= FACTOR && larger >= MIN_ROWS && !stopped_early
}

/// Whether something above the node may stop reading it before it has
/// returned all its rows.
fn stopped_early(plan: &Plan, node: &Node) -> bool {
    let mut child = node;
    while let Some(parent) = child.parent.map(|id| &plan.nodes[id]) {
        if cuts_short(plan, parent, child) {
            return true;
        }
        child = parent;
    }
    false
}

/// Whether `parent` may stop reading its child `child` early, by design.
/// The `Limit` perfaudit's rewrite added stops it only when it returned
/// all the rows it was given.
fn cuts_short(plan: &Plan, parent: &Node, child: &Node) -> bool {
    let relationship = child.raw.parent_relationship.as_deref();
    let inner = relationship == Some("Inner");
    match parent.raw.node_type.as_str() {
        // An EXISTS subplan stops at its first row, an ANY at its first
        // match; PostgreSQL does not say which a subplan is, so none counts.
        _ if matches!(relationship, Some("SubPlan" | "InitPlan")) => true,
        "Limit" if plan.added.limit.is_some_and(|(id, _)| id == parent.id) => {
            plan.added.limit_stopped(parent)
        }
        "Limit" => true,
        // Each side is read only until the other is exhausted.
        "Merge Join" => true,
        // A semi or anti join needs one inner match per outer row, and so
        // does a join whose inner side is unique.
        "Nested Loop" => {
            inner
                && (matches!(parent.raw.join_type.as_deref(), Some("Semi" | "Anti"))
                    || parent.raw.inner_unique == Some(true))
        }
        _ => false,
    }
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
        subject: Subject::Node(node.id),
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
        ddl: None,
        saving: None,
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
    use crate::pg::plan::tests::analysed;
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
        assert_eq!(findings[0].node(), Some(1));
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

    /// `scan` (100,000 rows expected) under `parent` as its `relationship`
    /// child, beside an outer child when `parent` is a join.
    fn under(parent: Value, relationship: &str, scan: Value) -> Plan {
        let mut parent = parent;
        let mut scan = scan;
        scan["Parent Relationship"] = json!(relationship);
        let outer = json!({"Node Type": "Index Scan", "Relation Name": "users", "Alias": "u",
                           "Parent Relationship": "Outer", "Total Cost": 1.0, "Plan Rows": 50,
                           "Actual Total Time": 0.1, "Actual Rows": 50, "Actual Loops": 1});
        parent["Plans"] = match relationship {
            "Inner" => json!([outer, scan]),
            _ => json!([scan]),
        };
        analysed(parent, 0.1, 5.0)
    }

    fn join(node_type: &str, join_type: &str, inner_unique: bool) -> Value {
        json!({"Node Type": node_type, "Join Type": join_type, "Inner Unique": inner_unique,
               "Total Cost": 20.0, "Plan Rows": 50, "Actual Total Time": 6.0,
               "Actual Rows": 50, "Actual Loops": 1})
    }

    #[test]
    fn nodes_that_stop_early_by_design_are_not_over_estimates() {
        let stopped = || scan(100_000.0, 3.0, "(status = 'completed'::text)");
        let plans = [
            // The inner side of a semi or anti join stops at its first match.
            under(join("Nested Loop", "Semi", false), "Inner", stopped()),
            under(join("Nested Loop", "Anti", false), "Inner", stopped()),
            // So does a unique inner side: one match is all there can be.
            under(join("Nested Loop", "Inner", true), "Inner", stopped()),
            // EXISTS and ANY subplans stop at their first row.
            under(
                over(scan(1.0, 1.0, "(a = 1)"), "Result", 1.0, 1.0),
                "SubPlan",
                stopped(),
            ),
            under(
                over(scan(1.0, 1.0, "(a = 1)"), "Result", 1.0, 1.0),
                "InitPlan",
                stopped(),
            ),
            // A merge join stops reading one side when the other is done.
            under(join("Merge Join", "Inner", false), "Inner", stopped()),
        ];
        for plan in &plans {
            assert!(check(plan).is_empty(), "{:?}", check(plan));
        }
        // Below them, what comes back in excess is still a misestimate.
        let excess = under(
            join("Nested Loop", "Semi", false),
            "Inner",
            scan(10.0, 5_000.0, "(status = 'completed'::text)"),
        );
        assert_eq!(check(&excess).len(), 1);
        // And an ordinary inner side that returns too few rows is one.
        let inner = under(join("Nested Loop", "Inner", false), "Inner", stopped());
        assert_eq!(check(&inner).len(), 1);
    }

    #[test]
    fn a_real_semi_join_stopping_early_is_not_reported() {
        // PostgreSQL 15: SELECT * FROM users u WHERE u.id < 50 AND EXISTS
        // (SELECT 1 FROM payments p WHERE p.status = 'completed' AND
        // p.created_at > u.created_at); the inner side expected 90,007 rows
        // and stopped after 21.
        let plan = analysed(
            json!({"Node Type": "Nested Loop", "Join Type": "Semi", "Total Cost": 47539.1,
                   "Plan Rows": 16, "Actual Total Time": 0.057, "Actual Rows": 49,
                   "Actual Loops": 1, "Inner Unique": false,
                   "Join Filter": "(p.created_at > u.created_at)",
                   "Plans": [
                       {"Node Type": "Index Scan", "Parent Relationship": "Outer",
                        "Index Name": "users_pkey", "Relation Name": "users", "Alias": "u",
                        "Total Cost": 9.14, "Plan Rows": 49, "Actual Total Time": 0.02,
                        "Actual Rows": 49, "Actual Loops": 1, "Index Cond": "(id < 50)"},
                       {"Node Type": "Materialize", "Parent Relationship": "Inner",
                        "Total Cost": 3201.03, "Plan Rows": 90007, "Actual Total Time": 0.0,
                        "Actual Rows": 3, "Actual Loops": 49,
                        "Plans": [
                            {"Node Type": "Seq Scan", "Parent Relationship": "Outer",
                             "Relation Name": "payments", "Alias": "p", "Total Cost": 2751.0,
                             "Plan Rows": 90007, "Actual Total Time": 0.012, "Actual Rows": 21,
                             "Actual Loops": 1, "Filter": "(status = 'completed'::text)",
                             "Rows Removed by Filter": 2}]}]}),
            0.8,
            0.104,
        );
        assert!(check(&plan).is_empty(), "{:?}", check(&plan));
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
