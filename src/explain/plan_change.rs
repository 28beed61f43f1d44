//! Whether perfaudit's rewrite changed the plan: a `LIMIT` can turn a
//! serial hash aggregate into a parallel sorted one, an `ORDER BY` an
//! index scan into a sort. The statement as written is planned (never
//! executed) beside the one that ran, and the report says so plainly when
//! the two plans differ beyond the nodes the rewrite added.

use crate::pg::plan::{AddedNodes, Node, Plan};

/// How many nodes from the top a plan is summed up by.
const SHOWN_NODES: usize = 3;

/// A note for the report when `executed` (the rewritten statement's plan,
/// its added nodes marked) differs from `written` (the statement as the
/// user wrote it, planned): `None` when they are the same plan.
pub fn note(written: &Plan, executed: &Plan) -> Option<String> {
    let written_nodes = own_nodes(written, &written.added);
    let executed_nodes = own_nodes(executed, &executed.added);
    let kinds =
        |nodes: &[&Node]| -> Vec<String> { nodes.iter().map(|node| node.label()).collect() };
    if kinds(&written_nodes) == kinds(&executed_nodes) {
        return None;
    }
    let parallel = match (is_parallel(&written_nodes), is_parallel(&executed_nodes)) {
        (true, false) => ": a parallel plan became serial",
        (false, true) => ": a serial plan became parallel",
        _ => "",
    };
    Some(format!(
        "the rewrite changed the plan{parallel}; as written, PostgreSQL plans {}; as \
         rewritten, {} beneath what the rewrite added; the findings judge the rewritten plan",
        summary(&written_nodes),
        summary(&executed_nodes)
    ))
}

/// The nodes of `plan` but those the rewrite added, in pre-order.
fn own_nodes<'a>(plan: &'a Plan, added: &AddedNodes) -> Vec<&'a Node> {
    plan.nodes
        .iter()
        .filter(|node| !added.contains(node.id))
        .collect()
}

fn is_parallel(nodes: &[&Node]) -> bool {
    nodes
        .iter()
        .any(|node| matches!(node.raw.node_type.as_str(), "Gather" | "Gather Merge"))
}

/// `HashAggregate ← Append ← Seq Scan on t (and 14 more nodes)`.
fn summary(nodes: &[&Node]) -> String {
    let shown: Vec<String> = nodes.iter().take(SHOWN_NODES).map(|n| n.label()).collect();
    let more = nodes.len().saturating_sub(SHOWN_NODES);
    let mut text = shown.join(" ← ");
    if more > 0 {
        text.push_str(&format!(" (and {more} more nodes)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::plan::Added;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn scan(parallel: bool) -> serde_json::Value {
        json!({"Node Type": "Seq Scan", "Relation Name": "t", "Alias": "t", "Total Cost": 1.0,
               "Plan Rows": 1, "Actual Total Time": 1.0, "Actual Rows": 1, "Actual Loops": 1,
               "Parallel Aware": parallel, "Parent Relationship": "Outer"})
    }

    fn limited(below: serde_json::Value) -> Plan {
        let mut plan = analysed(
            json!({"Node Type": "Limit", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 1.0, "Actual Rows": 1, "Actual Loops": 1,
                   "Plans": [below]}),
            0.1,
            1.0,
        );
        plan.mark_added(Added {
            limit: Some(1000),
            order_by: false,
        });
        plan
    }

    #[test]
    fn the_nodes_the_rewrite_added_are_no_change() {
        let written = analysed(scan(false), 0.1, 1.0);
        assert_eq!(note(&written, &limited(scan(false))), None);
    }

    #[test]
    fn a_parallel_plan_that_became_serial_is_said_plainly() {
        let written = analysed(
            json!({"Node Type": "Gather", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 1.0, "Actual Rows": 1, "Actual Loops": 1,
                   "Plans": [scan(true)]}),
            0.1,
            1.0,
        );
        let note = note(&written, &limited(scan(false))).unwrap();
        assert_eq!(
            note,
            "the rewrite changed the plan: a parallel plan became serial; as written, \
             PostgreSQL plans Gather ← Parallel Seq Scan on t; as rewritten, Seq Scan on t \
             beneath what the rewrite added; the findings judge the rewritten plan"
        );
    }
}
