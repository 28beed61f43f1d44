//! Every command's JSON document, byte for byte, on both fixtures: the
//! contract pipelines parse. What the server measures afresh on each run
//! (times, buffer counts, memory) is masked; everything else, key order and
//! whitespace included, must stay as the snapshot holds it.

mod common;

use std::process::Output;

use common::TestDb;

/// Keys whose numbers a run measures rather than derives: PostgreSQL's own
/// plan keys, perfaudit's timings and what is drawn from them (the shares
/// of time, the costliest node: of a partitioned scan's near-equal parts,
/// which took longest differs from run to run).
const MEASURED: &str = r#"(("[^"]*(Time|time|_ms|Blocks|Buffers|Memory|Batches|Buckets|Workers Launched|Heap Fetches|Rows Removed by Index Recheck|Peak|self_share|costliest_node)[^"]*"|"(min|median|p95|max)"): )-?[0-9][0-9.e+-]*"#;

/// A JSON document with its measured numbers masked.
fn masked(output: &Output) -> String {
    let stdout = String::from_utf8(output.stdout.clone()).expect("UTF-8 output");
    assert!(
        serde_json::from_str::<serde_json::Value>(&stdout).is_ok(),
        "not one JSON document (exit {:?}): {stdout}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn snapshot(name: &str, output: &Output) {
    let text = masked(output);
    insta::with_settings!({filters => vec![(MEASURED, "$1[measured]")]}, {
        insta::assert_snapshot!(name, text);
    });
}

/// Statistics read from every row, so that estimates and costs are the same
/// on every run (a sample of 30,000 rows differs from load to load).
/// HypoPG is created too, for advise.
async fn prepare(db: &TestDb) {
    common::explain::execute(
        db,
        "CREATE EXTENSION hypopg; SET default_statistics_target = 10000; ANALYZE",
    )
    .await;
}

fn json(db: &TestDb, args: &[&str]) -> Output {
    db.perfaudit()
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("run perfaudit")
}

const PAYMENTS_WORKLOAD: &str = "SELECT * FROM payments WHERE user_id = 42;\n\
     SELECT status, count(*) FROM payments GROUP BY status;\n\
     DELETE FROM payments WHERE id = 1;\n\
     SELECT * FROM payments WHERE created_at > date_trunc('day', now()) - interval '1 day' ORDER BY created_at;\n";

const RENTALS_WORKLOAD: &str = "SELECT * FROM store.rental WHERE customer_id = 42 ORDER BY rented_at;\n\
     SELECT * FROM billing.rental_payment WHERE staff_id = 7 AND paid_at >= '2024-06-01' AND paid_at < '2024-07-01';\n\
     SELECT r.rental_id, p.amount FROM store.rental r JOIN billing.rental_payment p USING (rental_id) WHERE r.status = 'open' AND r.rented_at < '2024-12-01';\n\
     SELECT * FROM billing.invoice WHERE customer_id = 9;\n\
     SELECT * FROM store.customer WHERE lower(email) = 'someone@example.com';\n\
     UPDATE store.rental SET status = 'lost' WHERE rental_id = 5;\n";

#[tokio::test]
async fn payments_documents() {
    let db = TestDb::new().await;
    prepare(&db).await;
    let workload = std::env::temp_dir().join(format!("perfaudit-json-{}.sql", std::process::id()));
    std::fs::write(&workload, PAYMENTS_WORKLOAD).unwrap();
    let workload = workload.to_str().unwrap();

    snapshot("payments_explain", &json(&db, &["explain", "-f", workload]));
    snapshot(
        "payments_explain_no_analyze",
        &json(
            &db,
            &[
                "explain",
                "--no-analyze",
                "SELECT * FROM payments WHERE amount > 100",
            ],
        ),
    );
    snapshot("payments_advise", &json(&db, &["advise", "-f", workload]));
    snapshot("payments_rewrite", &json(&db, &["rewrite", "-f", workload]));
    snapshot(
        "payments_indexes_dry_run",
        &json(&db, &["indexes", "--dry-run"]),
    );
    snapshot("payments_indexes", &json(&db, &["indexes"]));
    snapshot("payments_indexes_again", &json(&db, &["indexes"]));
    std::fs::remove_file(workload).unwrap();
}

#[tokio::test]
async fn rentals_documents() {
    let db = TestDb::rentals().await;
    prepare(&db).await;
    let workload =
        std::env::temp_dir().join(format!("perfaudit-json-r-{}.sql", std::process::id()));
    std::fs::write(&workload, RENTALS_WORKLOAD).unwrap();
    let workload = workload.to_str().unwrap();

    snapshot("rentals_explain", &json(&db, &["explain", "-f", workload]));
    snapshot("rentals_advise", &json(&db, &["advise", "-f", workload]));
    snapshot("rentals_rewrite", &json(&db, &["rewrite", "-f", workload]));
    std::fs::remove_file(workload).unwrap();
}
