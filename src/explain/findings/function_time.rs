//! `function-time`: a scan whose own time goes to a user-defined function
//! its condition calls for every row. PostgreSQL charges a function's time
//! (and the blocks the queries inside it read) to the node that calls it,
//! and plain EXPLAIN has no time per function: the evidence is a node that
//! names a function it could not inline (an inlined one leaves only its
//! expression) and spends far more per row than its buffers explain.
//!
//! Fail closed: only a function qualified with a schema other than
//! `pg_catalog` or `information_schema` counts. PostgreSQL writes a
//! function without its schema when the `search_path` finds it, so a
//! user's function there reads like a built-in one and is not judged, and
//! a `Function Scan` names its function without the schema at all.

use super::predicates::expression;
use super::{Check, Estimate, Finding, Rule, Severity, Subject, count, percent};
use crate::pg::plan::{Node, Plan};
use crate::sql::{FunctionCall, expression_calls};

/// The rule.
pub const RULE: Rule = Rule {
    code: "function-time",
    check: Check::Plan(check),
    saving: Estimate::NodeOwn,
};

/// The fewest milliseconds of the node's own time worth a finding: below,
/// rewriting a function saves too little.
const MIN_SELF_MS: f64 = 50.0;

/// The share of the execution the node's own time must take: the function
/// must be where the statement's time goes.
const MIN_SELF_SHARE: f64 = 0.25;

/// The time per row read the node's buffers must leave unexplained: a scan
/// spends well under a microsecond per row on its own work and built-in
/// operators (0.1 to 0.4 µs on the rentals fixture, from cache), so ten is
/// a function's, not the scan's.
const MIN_MS_PER_ROW: f64 = 0.010;

/// What a shared buffer hit explains: finding a cached page and pinning it
/// takes a fraction of a microsecond.
const HIT_MS: f64 = 0.000_2;

/// What a block read from outside shared buffers explains when
/// `track_io_timing` did not measure it: a random read from a slow disk, so
/// that reads never pass for a function's time.
const READ_MS: f64 = 1.0;

/// Schemas of PostgreSQL's own functions.
const BUILT_IN: [&str; 2] = ["pg_catalog", "information_schema"];

fn check(plan: &Plan) -> Vec<Finding> {
    plan.nodes
        .iter()
        .filter_map(|node| finding(plan, node))
        .collect()
}

/// Whether `node` evaluates its conditions on rows it produces itself.
fn calls_per_row(node: &Node) -> bool {
    let kind = node.raw.node_type.as_str();
    // A foreign scan's time is the remote server's; a bitmap index scan
    // only reads an index.
    (kind.ends_with("Scan") && kind != "Foreign Scan" && kind != "Bitmap Index Scan")
        || kind == "Result"
        || kind == "ProjectSet"
}

fn finding(plan: &Plan, node: &Node) -> Option<Finding> {
    if !calls_per_row(node) {
        return None;
    }
    let functions = user_functions(node);
    if functions.is_empty() {
        return None;
    }
    let (own_ms, share) = (node.self_ms?, node.self_share?);
    if own_ms < MIN_SELF_MS || share < MIN_SELF_SHARE {
        return None;
    }
    let hits = plan.own(node, |raw| raw.shared_hit_blocks)?;
    let reads = plan.own(node, |raw| raw.shared_read_blocks)?;
    let read_ms = plan
        .own(node, |raw| raw.io_read_ms)
        .unwrap_or(reads * READ_MS);
    let unexplained = own_ms - hits * HIT_MS - read_ms;
    // Rows returned and thrown away by the filter; each loop evaluates an
    // index condition once, even when it finds nothing.
    let rows =
        (node.rows_returned()? + node.rows_removed_by_filter().unwrap_or(0.0)).max(node.loops());
    let per_row = unexplained / rows;
    if per_row < MIN_MS_PER_ROW {
        return None;
    }
    let names: Vec<String> = functions.iter().map(ToString::to_string).collect();
    let names = names.join(", ");
    Some(Finding {
        code: RULE.code,
        severity: Severity::Warning,
        subject: Subject::Node(node.id),
        message: format!(
            "{} spent {own_ms:.1} ms on its own ({} of the execution), {:.1} µs per row for its \
             {} rows, far beyond what its {} shared blocks explain: its condition calls {names} \
             for every row, and PostgreSQL charges that time to the scan",
            node.label(),
            percent(share),
            per_row * 1000.0,
            count(rows),
            count(hits + reads),
        ),
        suggestion: format!(
            "look at how {names} is declared (\\df+ in psql): mark it IMMUTABLE or STABLE if it \
             is, so that a LANGUAGE sql function whose body is one expression is inlined and a \
             call with constant arguments is evaluated once; give it a COST that says how dear \
             it is, so that cheaper conditions run first; take it out of the WHERE clause where \
             the rows can be narrowed first, or join the table a function queries row by row \
             instead of calling it; and if it is IMMUTABLE, index the expression the condition \
             compares"
        ),
        ddl: None,
        saving: None,
    })
}

/// The user-defined functions the node's filter and index condition call
/// by a schema-qualified name, each once.
fn user_functions(node: &Node) -> Vec<FunctionCall> {
    let mut found: Vec<FunctionCall> = Vec::new();
    let conditions = [&node.raw.filter, &node.raw.index_cond];
    for call in conditions
        .into_iter()
        .flatten()
        .filter_map(|condition| expression(condition))
        .flat_map(|expr| expression_calls(&expr))
    {
        let user = call
            .schema
            .as_deref()
            .is_some_and(|schema| !BUILT_IN.contains(&schema));
        if user && !found.contains(&call) {
            found.push(call);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables::Tables;
    use crate::pg::plan::tests::analysed;
    use serde_json::{Value, json};

    const BALANCE: &str = "(billing.customer_balance(customer_id) > '100'::numeric)";

    /// As PostgreSQL 15 ran `SELECT * FROM store.customer c WHERE
    /// billing.customer_balance(c.customer_id) > 100` on the rentals
    /// fixture: the function's queries' blocks are the scan's too.
    fn scan(filter: &str, ms: f64, hits: f64, reads: f64) -> Value {
        json!({"Node Type": "Seq Scan", "Relation Name": "customer", "Alias": "c",
               "Total Cost": 2809.0, "Plan Rows": 3333, "Actual Total Time": ms,
               "Actual Rows": 5562, "Actual Loops": 1, "Filter": filter,
               "Rows Removed by Filter": 4438, "Shared Hit Blocks": hits,
               "Shared Read Blocks": reads})
    }

    fn findings(root: Value, execution: f64) -> Vec<Finding> {
        RULE.findings(&analysed(root, 1.3, execution), &Tables::default())
    }

    #[test]
    fn a_function_called_for_every_row_is_the_scans_time() {
        let found = findings(scan(BALANCE, 550.8, 376_100.0, 0.0), 551.3);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].node(), Some(0));
        assert_eq!(found[0].severity, Severity::Warning);
        // (550.8 - 376,100 x 0.0002) / 10,000 rows
        assert_eq!(
            found[0].message,
            "Seq Scan on customer c spent 550.8 ms on its own (100% of the execution), 47.6 µs \
             per row for its 10,000 rows, far beyond what its 376,100 shared blocks explain: its \
             condition calls billing.customer_balance() for every row, and PostgreSQL charges \
             that time to the scan"
        );
        assert!(
            found[0]
                .suggestion
                .starts_with("look at how billing.customer_balance() is declared")
        );
    }

    #[test]
    fn an_index_condition_calls_it_once_a_loop() {
        let probe = json!({"Node Type": "Index Scan", "Index Name": "rental_pkey",
                           "Relation Name": "rental", "Alias": "r", "Total Cost": 1.0,
                           "Plan Rows": 1, "Actual Total Time": 0.1, "Actual Rows": 0,
                           "Actual Loops": 1000,
                           "Index Cond": "(rental_id = store.next_rental(o.rental_id))",
                           "Shared Hit Blocks": 3000, "Shared Read Blocks": 0});
        let found = findings(probe, 120.0);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("99.4 µs per row for its 1,000 rows"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn built_in_unqualified_or_explained_time_is_not_a_functions() {
        for (filter, ms, hits, reads, execution) in [
            // Built in, or on the search_path: not told apart, not judged.
            (
                "(lower((email)::text) ~~ 'a%'::text)",
                550.8,
                184.0,
                0.0,
                551.3,
            ),
            (
                "(pg_catalog.lower((email)::text) ~~ 'a%'::text)",
                550.8,
                184.0,
                0.0,
                551.3,
            ),
            (
                "(customer_balance(customer_id) > '100'::numeric)",
                550.8,
                376_100.0,
                0.0,
                551.3,
            ),
            // Too short, or a small share of the execution.
            (BALANCE, 49.0, 1_000.0, 0.0, 49.5),
            (BALANCE, 550.8, 376_100.0, 0.0, 2_300.0),
            // Explained by what the buffers cost: hits, or reads.
            (BALANCE, 550.8, 2_500_000.0, 0.0, 551.3),
            (BALANCE, 550.8, 1_000.0, 500.0, 551.3),
        ] {
            assert!(
                findings(scan(filter, ms, hits, reads), execution).is_empty(),
                "{filter} {ms} {hits} {reads}"
            );
        }
    }
}
