//! `sort-spill`: a sort that did not fit in `work_mem` and sorted through
//! temporary files on disk: a `Sort`, the groups of an `Incremental Sort`,
//! or the sorts an aggregate runs for `DISTINCT` or `ORDER BY` inside it.

use super::{
    Check, Estimate, Finding, Rule, Severity, Subject, count, owner, temp_written_kb,
    work_mem_advice,
};
use crate::pg::plan::{Node, Plan, SortGroups};

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
    let Spill { how, kb } = spill(plan, node)?;
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
            "{} spilled to disk ({how}) because its rows did not fit in work_mem",
            node.label(),
        ),
        suggestion,
        ddl: None,
        saving: None,
    })
}

/// How a sort spilled, in words, and the kB it put on disk.
struct Spill {
    how: String,
    kb: f64,
}

/// The spill of `node`: what the sort says of itself, else the temporary
/// files it wrote, which catches what its own figures do not show (a
/// parallel worker's sort on disk where the leader's fit in memory, an
/// aggregate's sort for `count(DISTINCT ...)`).
fn spill(plan: &Plan, node: &Node) -> Option<Spill> {
    let raw = &node.raw;
    let sorts = match raw.node_type.as_str() {
        "Sort" | "Incremental Sort" => true,
        // Hashed aggregates are hash-spill's.
        "Aggregate" => matches!(raw.strategy.as_deref(), Some("Plain" | "Sorted")),
        _ => false,
    };
    if !sorts {
        return None;
    }
    if raw.sort_space_type.as_deref() == Some("Disk") {
        let kb = raw.sort_space_used.unwrap_or(0.0);
        let method = raw.sort_method.as_deref().unwrap_or("external sort");
        return Some(Spill {
            how: format!("{method}, {} kB of temporary files", count(kb)),
            kb,
        });
    }
    let groups = [
        ("full-sort", &raw.full_sort_groups),
        ("pre-sorted", &raw.presorted_groups),
    ];
    if let Some(spill) = groups
        .into_iter()
        .filter_map(|(kind, groups)| groups_spill(kind, groups.as_ref()?))
        .max_by(|a, b| a.kb.total_cmp(&b.kb))
    {
        return Some(spill);
    }
    let kb = temp_written_kb(plan, node)?;
    Some(Spill {
        how: format!("it wrote {} kB of temporary files", count(kb)),
        kb,
    })
}

/// The spill of an incremental sort's `kind` groups, when some sorted on
/// disk: each group is sorted on its own, so the largest is what work_mem
/// must hold.
fn groups_spill(kind: &str, groups: &SortGroups) -> Option<Spill> {
    let kb = groups.sort_space_disk?.peak;
    Some(Spill {
        how: format!(
            "{} in its {} {kind} groups, {} kB of temporary files at most for one group",
            groups.sort_methods_used.join(", "),
            count(groups.group_count),
            count(kb)
        ),
        kb,
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
    fn incremental_sorts_that_spilled_a_group_are_reported() {
        // As PostgreSQL 15 prints it (store.rental ORDER BY customer_id,
        // rental_id with work_mem = 64kB).
        let plan = analysed(
            json!({"Node Type": "Incremental Sort", "Total Cost": 1.0, "Plan Rows": 100000,
                   "Actual Total Time": 45.9, "Actual Rows": 100000, "Actual Loops": 1,
                   "Sort Key": ["customer_id", "rental_id"], "Presorted Key": ["customer_id"],
                   "Full-sort Groups": {"Group Count": 2475, "Sort Methods Used": ["quicksort"],
                       "Sort Space Memory": {"Average Sort Space Used": 30,
                                             "Peak Sort Space Used": 30}},
                   "Pre-sorted Groups": {"Group Count": 87,
                       "Sort Methods Used": ["external merge"],
                       "Sort Space Disk": {"Average Sort Space Used": 56,
                                           "Peak Sort Space Used": 56}},
                   "Temp Written Blocks": 8,
                   "Plans": [{"Node Type": "Index Scan", "Index Name": "rental_customer_id_idx",
                              "Relation Name": "rental", "Alias": "rental", "Total Cost": 1.0,
                              "Plan Rows": 100000, "Actual Total Time": 33.9,
                              "Actual Rows": 100000, "Actual Loops": 1,
                              "Temp Written Blocks": 0}]}),
            0.1,
            48.9,
        );
        let findings = RULE.findings(&plan, &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].node(), Some(0));
        assert_eq!(
            findings[0].message,
            "Incremental Sort spilled to disk (external merge in its 87 pre-sorted groups, 56 kB \
             of temporary files at most for one group) because its rows did not fit in work_mem"
        );
        assert!(findings[0].suggestion.contains("'8MB'"));
    }

    /// A node of `node_type` whose subtree wrote `blocks` temporary blocks,
    /// above a scan that wrote `below`.
    fn writing(node_type: &str, strategy: &str, blocks: f64, below: f64) -> Plan {
        let mut scan = scan();
        scan["Temp Written Blocks"] = json!(below);
        analysed(
            json!({"Node Type": node_type, "Strategy": strategy, "Total Cost": 1.0,
                   "Plan Rows": 1, "Actual Total Time": 80.0, "Actual Rows": 1,
                   "Actual Loops": 1, "Sort Method": "quicksort", "Sort Space Used": 25,
                   "Sort Space Type": "Memory", "Temp Written Blocks": blocks,
                   "Plans": [scan]}),
            0.1,
            80.0,
        )
    }

    #[test]
    fn temporary_files_a_sort_wrote_itself_are_a_spill() {
        // A parallel worker's sort on disk: the leader's own figures say
        // Memory; count(DISTINCT ...) sorts inside a plain aggregate.
        for (node_type, strategy) in [("Sort", ""), ("Aggregate", "Plain")] {
            let findings = RULE.findings(
                &writing(node_type, strategy, 2_500.0, 0.0),
                &Tables::default(),
            );
            assert_eq!(findings.len(), 1, "{node_type}");
            assert!(
                findings[0].message.ends_with(
                    "spilled to disk (it wrote 20,000 kB of temporary files) because \
                                its rows did not fit in work_mem"
                ),
                "{}",
                findings[0].message
            );
            assert!(findings[0].suggestion.contains("'64MB'"));
        }
        // What a hash join below wrote is not the sort's; a hashed
        // aggregate's files are hash-spill's.
        for plan in [
            writing("Sort", "", 2_500.0, 2_500.0),
            writing("Aggregate", "Hashed", 2_500.0, 0.0),
        ] {
            assert!(RULE.findings(&plan, &Tables::default()).is_empty());
        }
    }

    #[test]
    fn memory_sorts_are_fine() {
        assert!(
            RULE.findings(&sort("Memory", "quicksort"), &Tables::default())
                .is_empty()
        );
    }
}
