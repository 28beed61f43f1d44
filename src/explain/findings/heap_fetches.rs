//! `index-only-heap-fetches`: an index-only scan that went to the table
//! for many of its rows, because the visibility map did not vouch for
//! their pages. VACUUM sets the map; until it runs, "index-only" reads the
//! table too.

use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, percent};
use crate::pg::plan::Node;

/// The rule.
pub const RULE: Rule = Rule {
    code: "index-only-heap-fetches",
    check: Check::EachNode(finding),
    saving: Estimate::NodeOwn,
};

/// Heap fetches below which the table reads cost well under a millisecond.
const MIN_FETCHES: f64 = 1_000.0;

/// The share of the rows fetched from the table from which the scan has
/// lost most of what makes an index-only scan fast.
const FETCHED_SHARE: f64 = 0.10;

fn finding(node: &Node) -> Option<Finding> {
    if node.raw.node_type != "Index Only Scan" {
        return None;
    }
    // PostgreSQL counts heap fetches over all loops, rows per loop.
    let fetches = node.raw.heap_fetches?;
    let rows = node.rows_returned()?;
    if fetches < MIN_FETCHES || fetches < rows * FETCHED_SHARE {
        return None;
    }
    let table = node.raw.relation_name.as_deref().unwrap_or("the table");
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} fetched {} of its {} rows (all loops) from the table ({}): the visibility map \
             does not mark their pages all-visible",
            node.label(),
            count(fetches),
            count(rows),
            percent(fetches / rows.max(1.0))
        ),
        suggestion: format!(
            "VACUUM {table} so that the visibility map marks its pages all-visible again; if \
             it falls behind the writes, make autovacuum visit it sooner (ALTER TABLE ... SET \
             (autovacuum_vacuum_scale_factor = 0.01), and for a table mostly inserted into, \
             autovacuum_vacuum_insert_scale_factor)"
        ),
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

    fn scan(rows: f64, loops: f64, fetches: f64) -> Plan {
        analysed(
            json!({"Node Type": "Index Only Scan", "Index Name": "rental_customer_id_idx",
                   "Relation Name": "rental", "Alias": "rental", "Total Cost": 1.0,
                   "Plan Rows": 1, "Actual Total Time": 5.0, "Actual Rows": rows,
                   "Actual Loops": loops, "Heap Fetches": fetches}),
            0.1,
            5.0,
        )
    }

    #[test]
    fn many_heap_fetches_ask_for_a_vacuum() {
        let findings = RULE.findings(&scan(1_000.0, 10.0, 4_000.0), &Tables::default());
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "Index Only Scan using rental_customer_id_idx on rental fetched 4,000 of its 10,000 \
             rows (all loops) from the table (40%): the visibility map does not mark their \
             pages all-visible"
        );
        assert!(findings[0].suggestion.starts_with("VACUUM rental"));
    }

    #[test]
    fn few_or_rare_heap_fetches_are_fine() {
        assert!(
            RULE.findings(&scan(100_000.0, 1.0, 999.0), &Tables::default())
                .is_empty()
        );
        assert!(
            RULE.findings(&scan(100_000.0, 1.0, 5_000.0), &Tables::default())
                .is_empty()
        );
        assert!(
            RULE.findings(&scan(10_000.0, 1.0, 0.0), &Tables::default())
                .is_empty()
        );
    }
}
