//! Every command's JSON document, byte for byte, on both fixtures: the
//! contract pipelines parse. What the server measures afresh on each run
//! (times, buffer counts, memory) is masked; everything else, key order and
//! whitespace included, must stay as the snapshot holds it. Each document
//! is also checked against its command's JSON Schema in docs/json/, which
//! docs/json.md publishes.

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use common::TestDb;

/// Keys whose numbers a run measures rather than derives: PostgreSQL's own
/// plan keys, perfaudit's timings and what is drawn from them (the shares
/// of time, the costliest node: of a partitioned scan's near-equal parts,
/// which took longest differs from run to run).
const MEASURED: &str = r#"(("[^"]*(Time|time|_ms|Blocks|Buffers|Memory|Batches|Buckets|Workers Launched|Heap Fetches|Rows Removed by Index Recheck|Peak|self_share|costliest_node)[^"]*"|"(min|median|p95|max|ms|share)"): )-?[0-9][0-9.e+-]*"#;

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

/// The JSON Schema of `command`'s document (docs/json/<command>.schema.json),
/// as a validator.
fn schema(command: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/json")
        .join(format!("{command}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    jsonschema::draft202012::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("{}: not a JSON Schema: {e}", path.display()));
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Why `document` does not conform to the schema of `command`: one line per
/// violation, with where it is; empty when it conforms.
fn violations(command: &str, document: &Value) -> Vec<String> {
    schema(command)
        .iter_errors(document)
        .map(|error| format!("at {}: {error}", error.instance_path()))
        .collect()
}

/// `command`'s document in `output`, byte for byte as the snapshot `name`
/// holds it (measured numbers masked), and conforming to its schema.
fn snapshot(command: &str, name: &str, output: &Output) {
    let text = masked(output);
    let document: Value = serde_json::from_str(&text).expect("one JSON document");
    let violations = violations(command, &document);
    assert!(
        violations.is_empty(),
        "{name}: the {command} document does not conform to docs/json/{command}.schema.json \
         (change the schema and docs/json.md with the output, or fix the output):\n{}",
        violations.join("\n")
    );
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

/// `sql` in a file of its own, removed when dropped.
fn workload(sql: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, sql.as_bytes()).unwrap();
    file
}

#[tokio::test]
async fn payments_documents() {
    // advise's documents need HypoPG (common::hypopg reports it missing once)
    if !common::hypopg() {
        return;
    }
    let db = TestDb::new().await;
    prepare(&db).await;
    let file = workload(PAYMENTS_WORKLOAD);
    let workload = file.path().to_str().unwrap();

    snapshot(
        "explain",
        "payments_explain",
        &json(&db, &["explain", "-f", workload]),
    );
    snapshot(
        "explain",
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
    snapshot(
        "advise",
        "payments_advise",
        &json(&db, &["advise", "-f", workload]),
    );
    snapshot(
        "rewrite",
        "payments_rewrite",
        &json(&db, &["rewrite", "-f", workload]),
    );
    snapshot(
        "indexes",
        "payments_indexes_dry_run",
        &json(&db, &["indexes", "--dry-run"]),
    );
    snapshot("indexes", "payments_indexes", &json(&db, &["indexes"]));
    snapshot(
        "indexes",
        "payments_indexes_again",
        &json(&db, &["indexes"]),
    );
}

#[tokio::test]
async fn rentals_documents() {
    // advise's documents need HypoPG (common::hypopg reports it missing once)
    if !common::hypopg() {
        return;
    }
    let db = TestDb::rentals().await;
    prepare(&db).await;
    let file = workload(RENTALS_WORKLOAD);
    let workload = file.path().to_str().unwrap();

    snapshot(
        "explain",
        "rentals_explain",
        &json(&db, &["explain", "-f", workload]),
    );
    snapshot(
        "advise",
        "rentals_advise",
        &json(&db, &["advise", "-f", workload]),
    );
    snapshot(
        "rewrite",
        "rentals_rewrite",
        &json(&db, &["rewrite", "-f", workload]),
    );
}

#[tokio::test]
async fn rentals_audit_document() {
    // The fixture as loaded: nothing scanned yet (see its README).
    let db = TestDb::rentals().await;
    snapshot(
        "indexes",
        "rentals_indexes_audit",
        &json(&db, &["indexes", "--audit"]),
    );
}

/// The schema check can fail: a document missing a required key, or with
/// a value outside a closed set, or with a key no schema knows, is refused.
#[test]
fn the_schemas_refuse_what_the_documents_must_not_be() {
    let rewrite = json!({"statements": [{
        "line": 1, "column": 1,
        "original": "SELECT 1", "rewritten": "SELECT 1 LIMIT 1000",
        "changes": [{"rule": "limit", "detail": "LIMIT 1000"}],
        "skipped": [{"rule": "order-by", "reason": "..."}]
    }]});
    assert_eq!(violations("rewrite", &rewrite), Vec::<String>::new());

    let mut missing = rewrite.clone();
    missing["statements"][0]
        .as_object_mut()
        .unwrap()
        .remove("rewritten");
    let found = violations("rewrite", &missing);
    assert!(
        found.len() == 1 && found[0].contains("\"rewritten\" is a required property"),
        "{found:?}"
    );

    let mut unknown_rule = rewrite.clone();
    unknown_rule["statements"][0]["changes"][0]["rule"] = json!("offset");
    assert_eq!(violations("rewrite", &unknown_rule).len(), 1);

    let mut extra = rewrite;
    extra["statements"][0]["extra"] = json!(true);
    assert_eq!(violations("rewrite", &extra).len(), 1);

    let indexes = json!({"indexes": [], "findings": [{
        "code": "redundant-index", "severity": "severe", "index": "i", "table": "public.t",
        "size_bytes": 8192, "message": "...", "suggestion": "...", "ddl": null,
        "saving": null
    }]});
    assert_eq!(violations("indexes", &indexes).len(), 1);
    let audit = json!({"audit": {"tables": 1, "indexes": 2, "stats_reset": null,
                                 "standby": false, "notes": []},
                       "findings": []});
    assert_eq!(violations("indexes", &audit), Vec::<String>::new());
    let mut both = audit.clone();
    both["indexes"] = json!([]);
    assert_eq!(
        violations("indexes", &both).len(),
        1,
        "a build's or an audit's"
    );
    let mut unknown_code = audit;
    unknown_code["findings"] = json!([{
        "code": "slow-index", "severity": "info", "index": "i", "table": "public.t",
        "size_bytes": null, "message": "...", "suggestion": "...", "ddl": null, "saving": null
    }]);
    assert_eq!(violations("indexes", &unknown_code).len(), 1);

    let advise = json!({"statements": [], "indexes": []});
    let found = violations("advise", &advise);
    assert!(
        found.len() == 1 && found[0].contains("\"summary\" is a required property"),
        "{found:?}"
    );

    let explain = json!({"statements": [{"line": 1}]});
    assert!(!violations("explain", &explain).is_empty());
}
