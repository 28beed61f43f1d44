//! `index-cond-non-leading`: an index scan whose condition constrains only
//! columns after its index's first. A B-tree is ordered by its leading
//! column first, so without a condition on it there is nowhere to seek to:
//! PostgreSQL (before 18's skip scan) reads the index from end to end, on
//! every loop, and checks the condition on each entry.
//!
//! Which column leads is the catalog's to say: the plan gives only the
//! index's name.

use super::predicates::{Constrained, own_columns};
use super::{
    BLOCK_BYTES, Check, Estimate, Finding, Rule, Severity, Subject, count, index_advice, owner,
};
use crate::explain::tables::Tables;
use crate::pg::catalog::Index;
use crate::pg::plan::{Node, Plan};

/// The rule.
pub const RULE: Rule = Rule {
    code: "index-cond-non-leading",
    check: Check::PlanNeedingTables {
        tables: relations,
        check,
    },
    saving: Estimate::NodeWhole,
};

/// The fewest shared blocks, all loops together, worth a finding: 1,000
/// blocks are 8 MB, read from cache in a few milliseconds.
const MIN_BLOCKS: f64 = 1_000.0;

/// The share of the index's pages each loop must read: a seek reads a few
/// pages down the tree and the leaf pages of its range, so half the index
/// per loop is a read of it through, not a seek (and where a skip scan
/// seeks, it reads far less).
const MIN_SHARE: f64 = 0.5;

const INDEX_SCANS: [&str; 3] = ["Index Scan", "Index Only Scan", "Bitmap Index Scan"];

/// An index scan that read enough to be judged once the catalog says how
/// its index is ordered.
struct Candidate<'a> {
    scan: &'a Node,
    /// The node that names the table: the scan, or the `Bitmap Heap Scan`
    /// above a `Bitmap Index Scan`.
    table: &'a Node,
    relation: &'a str,
    index: &'a str,
    condition: &'a str,
    /// Shared blocks hit and read, all loops together.
    blocks: f64,
}

fn candidates(plan: &Plan) -> impl Iterator<Item = Candidate<'_>> {
    plan.nodes.iter().filter_map(|scan| candidate(plan, scan))
}

fn candidate<'a>(plan: &'a Plan, scan: &'a Node) -> Option<Candidate<'a>> {
    if !INDEX_SCANS.contains(&scan.raw.node_type.as_str()) || !scan.executed() {
        return None;
    }
    let hit = plan.own(scan, |raw| raw.shared_hit_blocks)?;
    let read = plan.own(scan, |raw| raw.shared_read_blocks)?;
    let blocks = hit + read;
    if blocks < MIN_BLOCKS {
        return None;
    }
    let table = heap_scan(plan, scan)?;
    Some(Candidate {
        scan,
        table,
        relation: table.raw.relation_name.as_deref()?,
        index: scan.raw.index_name.as_deref()?,
        condition: scan.raw.index_cond.as_deref()?,
        blocks,
    })
}

/// The node that reads the table `scan`'s index points into: the scan
/// itself, or for a `Bitmap Index Scan`, the `Bitmap Heap Scan` above it
/// (through a `BitmapAnd` or `BitmapOr`).
fn heap_scan<'a>(plan: &'a Plan, scan: &'a Node) -> Option<&'a Node> {
    let mut node = scan;
    while node.raw.relation_name.is_none() {
        node = &plan.nodes[node.parent?];
    }
    Some(node)
}

/// The tables whose indexes the rule must know.
fn relations(plan: &Plan) -> Vec<&str> {
    candidates(plan).map(|c| c.relation).collect()
}

fn check(plan: &Plan, tables: &Tables) -> Vec<Finding> {
    candidates(plan)
        .filter_map(|candidate| finding(&candidate, tables))
        .collect()
}

fn finding(candidate: &Candidate, tables: &Tables) -> Option<Finding> {
    let index = tables.index(candidate.relation, candidate.index)?;
    if index.shape.method != "btree" {
        return None;
    }
    // An index led by an expression is not judged: the condition may well
    // be on it.
    let leading = index.shape.keys.first()?.column.as_deref()?;
    let owner = owner(candidate.table);
    // Not judged either when the condition mentions the leading column at
    // all, however (a row comparison, say), or cannot be read.
    if own_columns(candidate.condition, &owner)?
        .iter()
        .any(|column| column == leading)
    {
        return None;
    }
    let constrained = Constrained::parse(candidate.condition, &owner)?;
    let per_pass = candidate.blocks / passes(candidate.scan);
    let pages = index.size_bytes as f64 / BLOCK_BYTES;
    if per_pass < pages * MIN_SHARE {
        return None;
    }
    let advice = index_advice(tables, candidate.relation, &constrained);
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(candidate.scan.id),
        message: message(candidate, index, &constrained, per_pass, pages),
        suggestion: suggestion(candidate.index, index, &constrained, &advice.text),
        ddl: advice.ddl,
        saving: None,
    })
}

/// The times the scan went over the index: once a loop, but the loops of a
/// parallel-aware scan are its processes, sharing one pass.
fn passes(scan: &Node) -> f64 {
    if scan.raw.parallel_aware == Some(true) {
        1.0
    } else {
        scan.loops().max(1.0)
    }
}

fn message(
    candidate: &Candidate,
    index: &Index,
    constrained: &Constrained,
    per_pass: f64,
    pages: f64,
) -> String {
    let passes = passes(candidate.scan);
    let each = if passes > 1.0 {
        format!(
            " on each of its {} loops ({} in all)",
            count(passes),
            count(candidate.blocks)
        )
    } else {
        String::new()
    };
    let key = key(index);
    format!(
        "{} read {} blocks{each} of an index of {} pages: its condition {} constrains {} but \
         not {}, which the index ({}) leads with, so the scan cannot seek and reads the index \
         through",
        candidate.scan.label(),
        count(per_pass.round()),
        count(pages.round()),
        candidate.condition,
        constrained.columns().join(", "),
        key[0],
        key.join(", ")
    )
}

/// The index's key, its expressions as the server writes them.
fn key(index: &Index) -> Vec<&str> {
    index
        .shape
        .keys
        .iter()
        .map(|key| key.definition.as_str())
        .collect()
}

/// An index that leads with the `constrained` columns, as `advice` words
/// it, or `index` (called `name`) rebuilt with them first.
fn suggestion(name: &str, index: &Index, constrained: &Constrained, advice: &str) -> String {
    let key = key(index);
    let mut reordered = constrained.columns();
    for column in &key {
        if !reordered.iter().any(|c| c == column) {
            reordered.push((*column).to_owned());
        }
    }
    format!(
        "an index that leads with the constrained columns seeks to the rows instead; {advice}; \
         or, when no other query needs {name} to lead with {}, rebuild it as ({})",
        key[0],
        reordered.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::findings::tables_to_look_up;
    use crate::explain::tables::{payments, with_index};
    use crate::pg::plan::tests::analysed;
    use serde_json::{Value, json};

    /// The fixture's payments with an index on (user_id, created_at) of
    /// 553 pages.
    fn tables() -> Tables {
        let mut index = Index::btree("payments_user_created", &["user_id", "created_at"], None);
        index.size_bytes = 553 * 8192;
        with_index(payments(), "payments", index)
    }

    /// A bitmap scan of payments whose index scan read `blocks` over
    /// `loops` loops with `condition`.
    fn bitmap(condition: &str, blocks: f64, loops: f64) -> Value {
        json!({"Node Type": "Bitmap Heap Scan", "Relation Name": "payments", "Alias": "p",
               "Total Cost": 1.0, "Plan Rows": 1, "Actual Total Time": 2.2,
               "Actual Rows": 3279, "Actual Loops": loops, "Recheck Cond": condition,
               "Shared Hit Blocks": blocks + 26.0, "Shared Read Blocks": 0,
               "Plans": [{"Node Type": "Bitmap Index Scan", "Parent Relationship": "Outer",
                          "Index Name": "payments_user_created", "Total Cost": 1.0,
                          "Plan Rows": 1, "Actual Total Time": 2.0, "Actual Rows": 3279,
                          "Actual Loops": loops, "Index Cond": condition,
                          "Shared Hit Blocks": blocks, "Shared Read Blocks": 0}]})
    }

    const ON_CREATED_AT: &str =
        "(created_at >= '2024-12-20 00:00:00+00'::timestamp with time zone)";

    fn findings(root: Value) -> Vec<Finding> {
        RULE.findings(&analysed(root, 0.1, 2.5), &tables())
    }

    #[test]
    fn a_condition_on_a_later_column_reads_the_index_through() {
        let found = findings(bitmap(ON_CREATED_AT, 1_100.0, 1.0));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].node(), Some(1));
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[0].message,
            format!(
                "Bitmap Index Scan on payments_user_created read 1,100 blocks of an index of 553 \
                 pages: its condition {ON_CREATED_AT} constrains created_at but not user_id, \
                 which the index (user_id, created_at) leads with, so the scan cannot seek and \
                 reads the index through"
            )
        );
        assert_eq!(
            found[0].ddl.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY \"idx_payments_created_at\" ON \"public\".\"payments\" \
                 (\"created_at\");"
            )
        );
        assert!(
            found[0].suggestion.ends_with(
                "or, when no other query needs payments_user_created to lead with user_id, \
                 rebuild it as (created_at, user_id)"
            ),
            "{}",
            found[0].suggestion
        );
    }

    #[test]
    fn an_inner_index_scan_reads_it_through_on_every_loop() {
        let scan = json!({"Node Type": "Index Only Scan", "Index Name": "payments_user_created",
                          "Relation Name": "payments", "Alias": "p", "Total Cost": 1.0,
                          "Plan Rows": 1, "Actual Total Time": 2.0, "Actual Rows": 1,
                          "Actual Loops": 1000, "Index Cond": "(created_at = o.created_at)",
                          "Heap Fetches": 0, "Shared Hit Blocks": 560_000,
                          "Shared Read Blocks": 0});
        let found = findings(scan);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.starts_with(
                "Index Only Scan using payments_user_created on payments p read 560 blocks on \
                 each of its 1,000 loops (560,000 in all) of an index of 553 pages"
            ),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn the_processes_of_a_parallel_scan_share_one_pass() {
        let scan = json!({"Node Type": "Index Only Scan", "Parallel Aware": true,
                          "Index Name": "payments_user_created", "Relation Name": "payments",
                          "Alias": "p", "Total Cost": 1.0, "Plan Rows": 1,
                          "Actual Total Time": 2.0, "Actual Rows": 1000, "Actual Loops": 3,
                          "Index Cond": ON_CREATED_AT, "Heap Fetches": 0,
                          "Shared Hit Blocks": 556, "Shared Read Blocks": 500});
        let found = findings(scan);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.starts_with(
                "Parallel Index Only Scan using payments_user_created on payments p read 1,056 \
                 blocks of an index of 553 pages"
            ),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn seeks_small_reads_and_unknown_indexes_are_not_judged() {
        for (condition, blocks, loops) in [
            // On the leading column: a seek.
            ("((user_id = 42) AND (created_at >= now()))", 1_100.0, 1.0),
            // Mentions it in a row comparison the classifier does not read.
            ("(ROW(user_id, created_at) > ROW(42, now()))", 1_100.0, 1.0),
            // Too few blocks to matter.
            (ON_CREATED_AT, 999.0, 1.0),
            // A fraction of the index per loop: what a skip scan reads.
            (ON_CREATED_AT, 1_100.0, 10.0),
        ] {
            assert!(
                findings(bitmap(condition, blocks, loops)).is_empty(),
                "{condition} {blocks} {loops}"
            );
        }
        // The catalog does not know the index (a partition's own), or the
        // table.
        let plan = analysed(bitmap(ON_CREATED_AT, 1_100.0, 1.0), 0.1, 2.5);
        assert!(RULE.findings(&plan, &payments()).is_empty());
        assert!(RULE.findings(&plan, &Tables::default()).is_empty());
        // An index led by an expression.
        let mut by_day = Index::btree("payments_user_created", &["user_id", "created_at"], None);
        by_day.shape.keys[0].column = None;
        by_day.size_bytes = 553 * 8192;
        let tables = with_index(payments(), "payments", by_day);
        assert!(RULE.findings(&plan, &tables).is_empty());
    }

    #[test]
    fn the_tables_it_judges_are_looked_up_whatever_else_was_found() {
        let plan = analysed(bitmap(ON_CREATED_AT, 1_100.0, 1.0), 0.1, 2.5);
        assert_eq!(tables_to_look_up(&plan, &[]), ["payments"]);
        let small = analysed(bitmap(ON_CREATED_AT, 999.0, 1.0), 0.1, 2.5);
        assert!(tables_to_look_up(&small, &[]).is_empty());
    }
}
