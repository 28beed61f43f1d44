//! `nested-loop-inner-loops`: a nested loop that runs its inner side once
//! per outer row, thousands of times, and spends a good share of the
//! query there. A hash join would read the inner side once; an index would
//! make each inner run cheap.

use super::predicates::Constrained;
use super::{
    Check, Estimate, Finding, Rule, Severity, Subject, count, index_advice, owner, percent,
};
use crate::explain::tables::Tables;
use crate::pg::plan::{Node, Plan};
use crate::text::plural;

/// The rule.
pub const RULE: Rule = Rule {
    code: "nested-loop-inner-loops",
    check: Check::PlanWithTables(check),
    saving: Estimate::InnerSide,
};

/// Inner runs from which a nested loop is worth a look: below a thousand,
/// even a slowish inner side rarely adds up.
const MANY_LOOPS: f64 = 1_000.0;

/// The share of the execution time the inner side must take to matter:
/// many cheap index probes are what a nested loop is good at.
const SIGNIFICANT_SHARE: f64 = 0.10;

/// The time the inner side must take, all runs together, to matter: the
/// most another join method or index could save. Below 50 ms a share can
/// be large and still not worth a change (a 6 ms query spending 5 ms in
/// index probes is fast), and a `--fail-on warning` gate must not fail
/// good SQL over it.
const MIN_INNER_MS: f64 = 50.0;

/// How far below the truth the outer side's estimate must be to blame it
/// for the choice of a nested loop (see `row-misestimate`).
const UNDERESTIMATE_FACTOR: f64 = 10.0;

fn check(plan: &Plan, tables: &Tables) -> Vec<Finding> {
    plan.nodes
        .iter()
        .filter(|node| node.raw.node_type == "Nested Loop")
        .filter_map(|node| finding(plan, tables, node))
        .collect()
}

fn finding(plan: &Plan, tables: &Tables, node: &Node) -> Option<Finding> {
    let mut children = plan.children(node);
    let (outer, inner) = (children.next()?, children.next()?);
    let loops = inner.loops();
    let inner_ms = inner.total_ms?;
    let share = inner_ms / plan.execution_ms.filter(|ms| *ms > 0.0)?;
    if loops < MANY_LOOPS || share < SIGNIFICANT_SHARE || inner_ms < MIN_INNER_MS {
        return None;
    }
    let outer_tables: Vec<&str> = plan.subtree(outer).flat_map(owner).collect();
    // Each inner run is an index probe on the join key: the nested loop
    // does what it is good at, and an index would not make it cheaper.
    if probes_join_key(plan, inner, &outer_tables) {
        return None;
    }
    let scan = scanned(plan, inner);
    let scans_whole_table = scan.raw.node_type == "Seq Scan";
    let mut suggestion = Vec::new();
    let mut ddl = None;
    if let Some((relation, columns)) = inner_join_columns(node, scan, &outer_tables) {
        let advice = index_advice(tables, relation, &columns);
        suggestion.push(format!(
            "index the inner side's join {} so that each inner run is one index probe; {}",
            plural(columns.columns().len(), "column", "columns"),
            advice.text
        ));
        ddl = advice.ddl;
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
        subject: Subject::Node(node.id),
        message: format!(
            "{} ran its inner side ({}) {} times, {:.1} ms in all ({} of the execution)",
            node.label(),
            inner.label(),
            count(loops),
            inner_ms,
            percent(share)
        ),
        suggestion: suggestion.join("; "),
        ddl,
        saving: None,
    })
}

/// Whether a node of the inner side seeks an index with the join key: its
/// index condition compares a column with one of the outer side's.
fn probes_join_key(plan: &Plan, inner: &Node, outer_tables: &[&str]) -> bool {
    plan.subtree(inner).any(|node| {
        node.raw.index_cond.as_deref().is_some_and(|condition| {
            Constrained::joined(condition, &owner(node), outer_tables).is_some()
        })
    })
}

/// The node that reads the inner side's table: the inner node itself, or
/// the node below a `Materialize` or `Memoize` that keeps its rows.
fn scanned<'a>(plan: &'a Plan, inner: &'a Node) -> &'a Node {
    let mut node = inner;
    while node.raw.relation_name.is_none()
        && let [only] = node.children.as_slice()
    {
        node = &plan.nodes[*only];
    }
    node
}

/// The inner table and the columns of the index that turns each inner run
/// into a probe: its join columns, those its filter or the loop's join
/// filter compare with the outer side's columns (never those compared with
/// values, which a probe would not use).
fn inner_join_columns<'a>(
    join: &Node,
    scan: &'a Node,
    outer_tables: &[&str],
) -> Option<(&'a str, Constrained)> {
    let relation = scan.raw.relation_name.as_deref()?;
    let mut columns = Constrained::default();
    for condition in [&scan.raw.filter, &join.raw.join_filter]
        .into_iter()
        .flatten()
    {
        if let Some(found) = Constrained::joined(condition, &owner(scan), outer_tables) {
            columns.extend(found);
        }
    }
    (!columns.is_empty()).then_some((relation, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::payments;
    use crate::pg::plan::tests::analysed;
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

    /// The one finding of `plan`: critical, suggesting the index on
    /// `payments (user_id)`.
    fn critical_with_user_id_index(plan: &Plan) -> Finding {
        let mut findings = check(plan, &payments());
        assert_eq!(findings.len(), 1, "{findings:?}");
        let finding = findings.remove(0);
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(
            finding.ddl.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY \"idx_payments_user_id\" ON \"public\".\"payments\" \
                 (\"user_id\");"
            ),
            "{}",
            finding.suggestion
        );
        finding
    }

    #[test]
    fn a_scanned_inner_side_is_critical_and_gets_its_index() {
        let inner = json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "p",
                           "Parent Relationship": "Inner", "Total Cost": 1.0, "Plan Rows": 1,
                           "Actual Total Time": 0.02, "Actual Rows": 1, "Actual Loops": 4000,
                           "Filter": "(p.user_id = u.id)"});
        let finding = critical_with_user_id_index(&nested_loop(inner, 10));
        assert_eq!(
            finding.message,
            "Nested Loop ran its inner side (Seq Scan on payments p) 4,000 times, 80.0 ms in \
             all (80% of the execution)"
        );
        assert!(
            finding
                .suggestion
                .contains("expected 10 outer rows and got 4,000")
        );
    }

    /// The plan PostgreSQL 15 gives `SELECT * FROM users u WHERE u.id < 3000
    /// AND EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id AND
    /// p.amount > 0)` with an index on `payments (user_id)`: 3,000 index
    /// probes, the best plan there is; `per_loop_ms` scales the probes.
    fn semi_join_probing_an_index(per_loop_ms: f64) -> Plan {
        let inner_ms = per_loop_ms * 2999.0;
        analysed(
            json!({"Node Type": "Nested Loop", "Join Type": "Semi", "Total Cost": 1620.47,
                   "Plan Rows": 2983, "Actual Total Time": inner_ms + 1.3,
                   "Actual Rows": 2999, "Actual Loops": 1, "Inner Unique": false,
                   "Plans": [
                       {"Node Type": "Seq Scan", "Parent Relationship": "Outer",
                        "Relation Name": "users", "Alias": "u", "Total Cost": 84.0,
                        "Plan Rows": 2999, "Actual Total Time": 0.529, "Actual Rows": 2999,
                        "Actual Loops": 1, "Filter": "(id < 3000)",
                        "Rows Removed by Filter": 1001},
                       {"Node Type": "Index Scan", "Parent Relationship": "Inner",
                        "Index Name": "idx_payments_user_id", "Relation Name": "payments",
                        "Alias": "p", "Total Cost": 2.92, "Plan Rows": 25,
                        "Actual Total Time": per_loop_ms, "Actual Rows": 1, "Actual Loops": 2999,
                        "Index Cond": "(user_id = u.id)", "Filter": "(amount > '0'::numeric)",
                        "Rows Removed by Filter": 0}]}),
            1.07,
            inner_ms + 1.5,
        )
    }

    #[test]
    fn index_probes_on_the_join_key_are_what_a_nested_loop_is_good_at() {
        // As measured: 6 ms in all, 80% of the execution.
        assert!(check(&semi_join_probing_an_index(0.002), &payments()).is_empty());
        // Slower probes: still one probe per outer row on the join key.
        assert!(check(&semi_join_probing_an_index(0.1), &payments()).is_empty());
    }

    #[test]
    fn join_columns_are_those_compared_with_the_outer_side() {
        // The join condition is the loop's; the inner filter compares with a
        // constant and names no join column.
        let plan = analysed(
            json!({"Node Type": "Nested Loop", "Join Type": "Inner", "Total Cost": 1.0,
                   "Plan Rows": 10, "Actual Total Time": 400.0, "Actual Rows": 4000,
                   "Actual Loops": 1, "Join Filter": "(p.user_id = u.id)",
                   "Plans": [
                       {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "u",
                        "Total Cost": 1.0, "Plan Rows": 4000, "Actual Total Time": 1.0,
                        "Actual Rows": 4000, "Actual Loops": 1},
                       {"Node Type": "Materialize", "Parent Relationship": "Inner",
                        "Total Cost": 1.0, "Plan Rows": 100, "Actual Total Time": 0.09,
                        "Actual Rows": 100, "Actual Loops": 4000,
                        "Plans": [
                            {"Node Type": "Seq Scan", "Relation Name": "payments",
                             "Alias": "p", "Total Cost": 1.0, "Plan Rows": 100,
                             "Actual Total Time": 5.0, "Actual Rows": 100, "Actual Loops": 1,
                             "Filter": "(amount > '0'::numeric)"}]}]}),
            0.1,
            400.0,
        );
        let finding = critical_with_user_id_index(&plan);
        assert!(
            !finding.suggestion.contains("amount"),
            "{}",
            finding.suggestion
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
        assert!(check(&nested_loop(probe(0.001, 4000), 4000), &payments()).is_empty());
        assert!(check(&nested_loop(probe(0.5, 100), 100), &payments()).is_empty());
        // 40% of a fast query, 40 ms in all: not worth changing.
        assert!(check(&nested_loop(probe(0.01, 4000), 4000), &payments()).is_empty());
        let findings = check(&nested_loop(probe(0.02, 4000), 4000), &payments());
        assert_eq!(findings[0].severity, Severity::Warning);
    }
}
