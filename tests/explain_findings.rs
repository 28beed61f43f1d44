//! explain's findings on the rentals fixture (fixtures/rentals/), a schema
//! nobody tuned for perfaudit: findings are judged on the statement the
//! user wrote, never on what perfaudit's rewrite added to it.

mod common;

use common::TestDb;
use common::explain::{document, explain_json};
use serde_json::Value;

/// The findings of `statement` as `(code, severity, node type)`.
fn findings(statement: &Value) -> Vec<(String, String, String)> {
    statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            let node = finding["node"]
                .as_u64()
                .map(|id| {
                    statement["nodes"][id as usize]["node_type"]
                        .as_str()
                        .unwrap()
                })
                .unwrap_or("statement");
            (
                finding["code"].as_str().unwrap().to_owned(),
                finding["severity"].as_str().unwrap().to_owned(),
                node.to_owned(),
            )
        })
        .collect()
}

/// An aggregate whose groups the planner overestimates a thousandfold: it
/// estimates the groups of `date_trunc('month', paid_at)` as the distinct
/// values of `paid_at`, and there are 13 months.
const MONTHLY: &str = "SELECT date_trunc('month', paid_at) AS month, count(*) \
                       FROM billing.rental_payment GROUP BY 1";

#[tokio::test]
async fn a_gate_judges_the_users_statement_not_the_limit_the_rewrite_added() {
    let db = TestDb::rentals().await;
    let written = document(
        &explain_json(&db, &["--no-rewrite", "--fail-on", "critical", MONTHLY]),
        1,
    );
    let rewritten_output = explain_json(&db, &["--fail-on", "critical", MONTHLY]);
    let rewritten = document(&rewritten_output, 1);
    let (written, rewritten) = (&written["statements"][0], &rewritten["statements"][0]);
    assert!(
        rewritten["executed"]
            .as_str()
            .unwrap()
            .ends_with("LIMIT 1000"),
        "{rewritten:#}"
    );
    let misestimate = |statement: &Value| {
        findings(statement)
            .into_iter()
            .filter(|(code, ..)| code == "row-misestimate")
            .collect::<Vec<_>>()
    };
    let on_the_aggregate = misestimate(written);
    assert!(
        on_the_aggregate
            .iter()
            .any(|(_, severity, node)| severity == "critical" && node.contains("Aggregate")),
        "{written:#}"
    );
    // The same finding, on the same node, with the same severity: the
    // LIMIT stopped nothing (13 rows of 1,000).
    assert_eq!(misestimate(rewritten), on_the_aggregate, "{rewritten:#}");
    // No finding is attached to the Limit perfaudit added.
    assert_eq!(rewritten["nodes"][0]["node_type"], "Limit");
    assert!(
        rewritten["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["node"] != 0),
        "{rewritten:#}"
    );
}

#[tokio::test]
async fn a_limit_that_stopped_the_scan_still_hides_no_misestimate() {
    let db = TestDb::rentals().await;
    // 96,291 returned rentals; the LIMIT perfaudit added stops after 1,000.
    let report = document(
        &explain_json(
            &db,
            &["SELECT * FROM store.rental WHERE status = 'returned'"],
        ),
        0,
    );
    let statement = &report["statements"][0];
    assert_eq!(statement["nodes"][0]["node_type"], "Limit", "{statement:#}");
    assert_eq!(
        statement["nodes"][0]["actual_rows"], 1000.0,
        "{statement:#}"
    );
    assert!(
        findings(statement)
            .iter()
            .all(|(code, ..)| code != "row-misestimate"),
        "a scan stopped early is no misestimate: {statement:#}"
    );
}

#[tokio::test]
async fn the_sort_an_added_order_by_runs_gets_no_finding() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "work_mem = '64kB'").await;
    let sql = "SELECT * FROM billing.rental_payment WHERE status = 'completed'";
    let sorted = document(
        &explain_json(
            &db,
            &[
                "--no-limit",
                "--order-by",
                "paid_at",
                "--fail-on",
                "warning",
                sql,
            ],
        ),
        0,
    );
    let statement = &sorted["statements"][0];
    assert!(
        statement["executed"]
            .as_str()
            .unwrap()
            .ends_with("ORDER BY paid_at"),
        "{statement:#}"
    );
    assert!(
        statement["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["node_type"] == "Sort"),
        "{statement:#}"
    );
    assert!(
        findings(statement)
            .iter()
            .all(|(code, ..)| code != "sort-spill"),
        "{statement:#}"
    );
    // The same sort, written by the user, spills to disk: a finding.
    let own = document(
        &explain_json(&db, &["--no-limit", &format!("{sql} ORDER BY paid_at")]),
        0,
    );
    assert!(
        findings(&own["statements"][0])
            .iter()
            .any(|(code, ..)| code == "sort-spill"),
        "{own:#}"
    );
}
