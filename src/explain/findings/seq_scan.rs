//! `selective-seq-scan`: a sequential scan of a large table that keeps few
//! of the rows it reads. An index on the filter's columns would read only
//! the rows kept.

use super::predicates::Constrained;
use super::{Check, Finding, Rule, Severity, Subject, count, index_advice, owner, percent};
use crate::explain::tables::Tables;
use crate::pg::plan::Node;
use crate::text::plural;

/// The rule.
pub const RULE: Rule = Rule {
    code: "selective-seq-scan",
    check: Check::EachNodeWithTables(finding),
};

/// Rows read below which a sequential scan costs well under a millisecond,
/// and the planner is usually right to prefer it to an index.
const LARGE_TABLE_ROWS: f64 = 10_000.0;

/// The largest share of the rows read a filter may keep for an index to
/// pay off: above about 10%, fetching rows one by one through an index
/// costs more than reading the whole table in order.
const SELECTIVE_SHARE: f64 = 0.10;

/// Rows read from which the scan is critical: a million rows per execution
/// is tens of milliseconds of CPU even from cache, on every call.
const CRITICAL_ROWS: f64 = 1_000_000.0;

fn finding(node: &Node, tables: &Tables) -> Option<Finding> {
    if node.raw.node_type != "Seq Scan" {
        return None;
    }
    let filter = node.raw.filter.as_deref()?;
    let relation = node.raw.relation_name.as_deref()?;
    let kept = node.rows_returned()?;
    let read = kept + node.rows_removed_by_filter()?;
    if read < LARGE_TABLE_ROWS || kept > read * SELECTIVE_SHARE {
        return None;
    }
    let suggestion = match Constrained::parse(filter, &owner(node)) {
        Some(columns) => format!(
            "an index on the filtered {} ({}) reads only the rows kept; {}",
            plural(columns.columns().len(), "column", "columns"),
            columns.columns().join(", "),
            index_advice(tables, relation, &columns)
        ),
        None => format!(
            "rewrite the filter as comparisons of {relation}'s columns with values, joined by \
             AND, and index those columns, so that PostgreSQL can read only the rows kept"
        ),
    };
    Some(Finding {
        code: RULE.code,
        severity: if read >= CRITICAL_ROWS {
            Severity::Critical
        } else {
            Severity::Warning
        },
        subject: Subject::Node(node.id),
        message: format!(
            "{} read {} rows and kept {} ({}): the filter {filter} threw the rest away",
            node.label(),
            count(read),
            count(kept),
            percent(kept / read)
        ),
        suggestion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::payments;
    use crate::pg::plan::Plan;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    /// The rule's findings, with the fixture's `payments` in the catalog.
    fn findings_in(plan: &Plan) -> Vec<Finding> {
        RULE.findings(plan, &payments())
    }

    fn scan(filter: &str, kept: f64, removed: f64) -> Plan {
        analysed(
            json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "payments",
                   "Total Cost": 3000.0, "Plan Rows": 25, "Actual Total Time": 8.0,
                   "Actual Rows": kept, "Actual Loops": 1, "Filter": filter,
                   "Rows Removed by Filter": removed}),
            0.1,
            8.0,
        )
    }

    #[test]
    fn names_the_filter_columns_and_the_index() {
        let findings = findings_in(&scan(
            "((status = 'failed'::text) AND (user_id = 42))",
            23.0,
            99_977.0,
        ));
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(
            (finding.code, finding.severity),
            ("selective-seq-scan", Severity::Warning)
        );
        assert_eq!(
            finding.message,
            "Seq Scan on payments read 100,000 rows and kept 23 (0.02%): the filter \
             ((status = 'failed'::text) AND (user_id = 42)) threw the rest away"
        );
        assert_eq!(
            finding.suggestion,
            "an index on the filtered columns (status, user_id) reads only the rows kept; \
             perfaudit advise proves it with a hypothetical index first: CREATE INDEX \
             CONCURRENTLY \"idx_payments_user_id_status\" ON \"public\".\"payments\" \
             (\"user_id\", \"status\");"
        );
    }

    #[test]
    fn small_tables_and_unselective_filters_are_fine() {
        assert!(findings_in(&scan("(user_id = 42)", 1.0, 5_000.0)).is_empty());
        assert!(findings_in(&scan("(status = 'completed'::text)", 90_000.0, 10_000.0)).is_empty());
    }

    #[test]
    fn huge_scans_are_critical_and_odd_filters_still_get_advice() {
        let findings = findings_in(&scan("(lower(currency) = 'usd'::text)", 10.0, 2_000_000.0));
        assert_eq!(findings[0].severity, Severity::Critical);
        assert!(
            findings[0].suggestion.contains("joined by AND"),
            "{:?}",
            findings[0]
        );
    }
}
