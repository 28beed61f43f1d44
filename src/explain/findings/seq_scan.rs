//! `selective-seq-scan`: a sequential scan of a large table that keeps few
//! of the rows it reads. An index on the filter's columns would read only
//! the rows kept. The partitions of one table scanned below one `Append`
//! are judged together, as the one table they are.

use super::predicates::Constrained;
use super::{
    Check, Estimate, Finding, Rule, Severity, Subject, count, index_advice, owner, percent,
};
use crate::explain::tables::Tables;
use crate::pg::plan::{Node, Plan};
use crate::text::plural;

/// The rule.
pub const RULE: Rule = Rule {
    code: "selective-seq-scan",
    check: Check::PlanWithTables(check),
    saving: Estimate::NodeWhole,
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

/// Nodes whose children are scanned one after another as one relation:
/// the partitions of a partitioned table (or the branches of a UNION ALL).
const APPEND_NODES: [&str; 2] = ["Append", "Merge Append"];

fn check(plan: &Plan, tables: &Tables) -> Vec<Finding> {
    scans(plan, tables)
        .iter()
        .filter_map(|scans| finding(plan, scans, tables))
        .collect()
}

/// The filtered sequential scans of `plan`, those of one table below one
/// `Append` together: the partitions of a partitioned table are judged as
/// the one table they are, so that fifty small partitions read whole are
/// not fifty small scans. Until the catalog says which table each belongs
/// to, every scan below one `Append` counts as one table's.
fn scans<'a>(plan: &'a Plan, tables: &Tables) -> Vec<Vec<&'a Node>> {
    // Keyed by the Append above (if any) and the table (if known).
    type Key = (Option<usize>, Option<u32>);
    let mut groups: Vec<(Key, Vec<&Node>)> = Vec::new();
    for node in &plan.nodes {
        let (Some(_), Some(relation)) = (&node.raw.filter, &node.raw.relation_name) else {
            continue;
        };
        if node.raw.node_type != "Seq Scan" || node.rows_returned().is_none() {
            continue;
        }
        let append = node
            .parent
            .filter(|&parent| APPEND_NODES.contains(&plan.nodes[parent].raw.node_type.as_str()));
        let key = match append {
            Some(_) => (append, tables.table(relation).map(|table| table.oid)),
            None => (None, None),
        };
        match groups
            .iter_mut()
            .find(|(k, _)| append.is_some() && *k == key)
        {
            Some((_, scans)) => scans.push(node),
            None => groups.push((key, vec![node])),
        }
    }
    groups.into_iter().map(|(_, scans)| scans).collect()
}

/// The finding about `scans`, sequential scans of one table (one scan, or
/// the partitions one `Append` reads), when together they read many rows
/// and kept few.
fn finding(plan: &Plan, scans: &[&Node], tables: &Tables) -> Option<Finding> {
    let first = scans.first()?;
    let filter = first.raw.filter.as_deref()?;
    let relation = first.raw.relation_name.as_deref()?;
    let (mut read, mut kept) = (0.0, 0.0);
    for scan in scans {
        let returned = scan.rows_returned()?;
        kept += returned;
        read += returned + scan.rows_removed_by_filter()?;
    }
    if read < LARGE_TABLE_ROWS || kept > read * SELECTIVE_SHARE {
        return None;
    }
    let (suggestion, ddl) = match Constrained::parse(filter, &owner(first)) {
        Some(columns) => {
            let advice = index_advice(tables, relation, &columns);
            let text = format!(
                "an index on the filtered {} ({}) reads only the rows kept; {}",
                plural(columns.columns().len(), "column", "columns"),
                columns.columns().join(", "),
                advice.text
            );
            (text, advice.ddl)
        }
        None => (
            format!(
                "no index on a column of {relation} serves this filter as written, since it \
                 compares no column itself with a value (a cast or a function of a column, an \
                 OR): compare the columns themselves, joined by AND, and index those (ts::date = \
                 '2024-03-01' becomes the range ts >= '2024-03-01' AND ts < '2024-03-02'), or index the expression itself where all its \
                 functions are IMMUTABLE, so that PostgreSQL can read only the rows kept"
            ),
            None,
        ),
    };
    let (subject, what) = match scans {
        [scan] => (scan.id, scan.label()),
        _ => {
            let append = first.parent?;
            let table = tables
                .table(relation)
                .map_or_else(|| "one table".to_owned(), |t| t.name.display());
            (
                append,
                format!(
                    "{} over {} sequential scans of partitions of {table}",
                    plan.nodes[append].label(),
                    scans.len()
                ),
            )
        }
    };
    Some(Finding {
        code: RULE.code,
        severity: if read >= CRITICAL_ROWS {
            Severity::Critical
        } else {
            Severity::Warning
        },
        subject: Subject::Node(subject),
        message: format!(
            "{what} read {} rows and kept {} ({}): the filter {filter} threw the rest away",
            count(read),
            count(kept),
            percent(kept / read)
        ),
        suggestion,
        ddl,
        saving: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::payments;
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
             perfaudit advise proves it with a hypothetical index first; the finding's DDL \
             builds it without blocking writes"
        );
        assert_eq!(
            finding.ddl.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY \"idx_payments_user_id_status\" ON \
                 \"public\".\"payments\" (\"user_id\", \"status\");"
            )
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
