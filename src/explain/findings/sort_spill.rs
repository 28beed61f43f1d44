//! `sort-spill`: a sort that did not fit in `work_mem` and sorted through
//! temporary files on disk.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, owner, work_mem_advice};
use crate::pg::plan::{Node, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "sort-spill",
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
    if node.raw.sort_space_type.as_deref() != Some("Disk") {
        return None;
    }
    let kb = node.raw.sort_space_used.unwrap_or(0.0);
    let mut suggestion = work_mem_advice(kb);
    if let Some((table, key)) = index_order(plan, node) {
        suggestion.push_str(&format!(
            "; or let an index on {table} ({}) return the rows already in order",
            key.join(", ")
        ));
    }
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} spilled to disk ({}, {} kB of temporary files) because its rows did not fit \
             in work_mem",
            node.label(),
            node.raw.sort_method.as_deref().unwrap_or("external sort"),
            count(kb)
        ),
        suggestion,
        ddl: None,
        saving: None,
    })
}

/// The table and key of an index that would return the sort's rows in
/// order, when one provably could: the sort reads one sequential scan
/// directly, and sorts by plain columns of it (an expression such as
/// `date_trunc('month', ts)` may not be indexable at all, and rows that
/// come out of a join or an aggregate no index of one table orders).
fn index_order<'a>(plan: &'a Plan, sort: &'a Node) -> Option<(&'a str, Vec<String>)> {
    let scan = plan.children(sort).next()?;
    let table = scan.raw.relation_name.as_deref()?;
    if scan.raw.node_type != "Seq Scan" {
        return None;
    }
    let owners = owner(scan);
    let key = sort.raw.sort_key.as_ref().filter(|key| !key.is_empty())?;
    key.iter()
        .map(|item| {
            let (column, direction) = item.split_once(' ').unwrap_or((item, ""));
            let column = match column.split_once('.') {
                Some((qualifier, column)) if owners.contains(&qualifier) => column,
                Some(_) => return None,
                None => column,
            };
            let plain = column
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            plain.then(|| format!("{column} {direction}").trim_end().to_owned())
        })
        .collect::<Option<Vec<_>>>()
        .map(|key| (table, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::Plan;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    fn sort_of(key: &str, below: serde_json::Value, space_type: &str, method: &str) -> Plan {
        analysed(
            json!({"Node Type": "Sort", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 80.0, "Actual Rows": 100000, "Actual Loops": 1,
                   "Sort Key": [key], "Sort Method": method,
                   "Sort Space Used": 20000, "Sort Space Type": space_type,
                   "Plans": [below]}),
            0.1,
            80.0,
        )
    }

    fn scan() -> serde_json::Value {
        json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "p",
               "Total Cost": 1.0, "Plan Rows": 1, "Actual Total Time": 10.0,
               "Actual Rows": 100000, "Actual Loops": 1, "Parent Relationship": "Outer"})
    }

    fn sort(space_type: &str, method: &str) -> Plan {
        sort_of("p.created_at DESC", scan(), space_type, method)
    }

    #[test]
    fn no_index_is_suggested_that_could_not_order_the_rows() {
        let join = json!({"Node Type": "Hash Join", "Total Cost": 1.0, "Plan Rows": 1,
                          "Actual Total Time": 10.0, "Actual Rows": 100000, "Actual Loops": 1,
                          "Parent Relationship": "Outer", "Plans": [scan(), scan()]});
        for plan in [
            // Not IMMUTABLE over timestamptz: PostgreSQL refuses the index.
            sort_of(
                "(date_trunc('month'::text, p.created_at))",
                scan(),
                "Disk",
                "external merge",
            ),
            sort_of("(count(*)) DESC", scan(), "Disk", "external merge"),
            sort_of("other.created_at", scan(), "Disk", "external merge"),
            sort_of("p.created_at", join, "Disk", "external merge"),
        ] {
            let findings = RULE.findings(&plan, &Tables::default());
            assert_eq!(findings.len(), 1);
            assert!(
                !findings[0].suggestion.contains("index"),
                "{:?}",
                findings[0]
            );
        }
    }

    #[test]
    fn disk_sorts_get_work_mem_and_index_advice() {
        let findings = RULE.findings(&sort("Disk", "external merge"), &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "Sort spilled to disk (external merge, 20,000 kB of temporary files) because its \
             rows did not fit in work_mem"
        );
        assert!(
            findings[0]
                .suggestion
                .contains("SET LOCAL work_mem = '64MB'")
        );
        assert!(
            findings[0]
                .suggestion
                .contains("index on payments (created_at DESC)")
        );
    }

    #[test]
    fn memory_sorts_are_fine() {
        assert!(
            RULE.findings(&sort("Memory", "quicksort"), &Tables::default())
                .is_empty()
        );
    }
}
