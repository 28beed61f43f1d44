//! `perfaudit advise` against a real PostgreSQL with HypoPG, on the 100k-row
//! payments fixture: what it recommends, what it refuses to, and that it
//! leaves nothing behind — no index, no session state.

mod common;

use std::cell::Cell;

use std::process::Output;

use perfaudit::advise::{self, Options, workload};
use perfaudit::db::{Database, PoolOptions, ScratchCluster, ScratchOptions};
use perfaudit::interrupt::{Interrupt, Trigger};
use perfaudit::signal::Signal;
use perfaudit::ui::{Line, Progress, Unseen};
use serde_json::Value;

use common::{Fixture, TestDb};

/// A payments database with HypoPG created; `None` when HypoPG is not
/// installed, which one test of this binary reports (common::hypopg).
async fn hypopg_db() -> Option<TestDb> {
    hypopg_db_with_rows(common::DEFAULT_ROWS).await
}

/// A database of `rows` payments with HypoPG created, or `None`.
async fn hypopg_db_with_rows(rows: u64) -> Option<TestDb> {
    common::hypopg_db(Fixture::Payments { rows }).await
}

/// Every index of the database, with its definition.
async fn all_indexes(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT schemaname || '.' || indexname || ': ' || indexdef FROM pg_indexes \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn run(db: &TestDb, args: &[&str]) -> Output {
    db.perfaudit()
        .args(["--format", "json", "advise"])
        .args(args)
        .output()
        .unwrap()
}

/// Runs advise, checks it succeeded and created no index, and returns its
/// JSON document.
async fn advise_json(db: &TestDb, args: &[&str]) -> Value {
    let before = all_indexes(db).await;
    let output = run(db, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(all_indexes(db).await, before, "advise changed pg_indexes");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The (table, columns) of each index in a JSON list.
fn shapes(indexes: &Value) -> Vec<(String, Vec<String>)> {
    indexes
        .as_array()
        .unwrap()
        .iter()
        .map(|index| {
            let columns = index["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (index["table"].as_str().unwrap().to_owned(), columns)
        })
        .collect()
}

fn payments(columns: &[&str]) -> (String, Vec<String>) {
    table("public.payments", columns)
}

fn table(name: &str, columns: &[&str]) -> (String, Vec<String>) {
    (
        name.to_owned(),
        columns.iter().map(|c| c.to_string()).collect(),
    )
}

/// Whether the index `regclass` exists and is valid.
async fn index_is_valid(client: &tokio_postgres::Client, regclass: &str) -> bool {
    client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = $1::text::regclass",
            &[&regclass],
        )
        .await
        .unwrap()
        .get(0)
}

fn reason(statement: &Value) -> &str {
    statement["reason"].as_str().unwrap_or_default()
}

/// Asserts the statement gets no index, for a reason that starts so.
fn assert_no_index(statement: &Value, reason_start: &str) {
    assert_eq!(statement["indexes"], serde_json::json!([]), "{statement}");
    assert!(reason(statement).starts_with(reason_start), "{statement}");
}

fn cost(statement: &Value, key: &str) -> f64 {
    statement[key].as_f64().unwrap()
}

/// The session is one transaction: a name the server refuses to look up
/// (another database's) names no table, and must not abort the session for
/// the statements after it.
#[tokio::test]
async fn a_name_the_server_refuses_leaves_the_next_statements_advised() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "SELECT * FROM otherdb.public.payments WHERE user_id = 1;\n\
         SELECT * FROM payments WHERE user_id = $1;\n",
    )
    .unwrap();
    let json = advise_json(&db, &["-f", file.path().to_str().unwrap()]).await;
    assert_eq!(shapes(&json["indexes"]), [payments(&["user_id"])]);
}

#[tokio::test]
async fn equality_on_user_id_recommends_user_id() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let json = advise_json(&db, &["SELECT * FROM payments WHERE user_id = $1"]).await;
    assert_eq!(shapes(&json["indexes"]), [payments(&["user_id"])]);
    let statement = &json["statements"][0];
    assert_eq!(shapes(&statement["indexes"]), [payments(&["user_id"])]);
    assert!(statement["reason"].is_null());
    assert_eq!(
        (&statement["line"], &statement["column"]),
        (&1.into(), &1.into())
    );
    assert!(cost(statement, "cost_after") <= cost(statement, "cost_before") / 2.0);
    let index = &json["indexes"][0];
    assert_eq!(index["name"], "idx_payments_user_id");
    assert_eq!(
        index["ddl"],
        "CREATE INDEX CONCURRENTLY \"idx_payments_user_id\" ON \"public\".\"payments\" \
         (\"user_id\");"
    );
    // The estimate is the built index's size, within a quarter.
    let estimate = index["size_bytes"].as_f64().unwrap();
    let client = db.client().await;
    client
        .batch_execute(index["ddl"].as_str().unwrap())
        .await
        .unwrap();
    let built: i64 = client
        .query_one("SELECT pg_relation_size('idx_payments_user_id')", &[])
        .await
        .unwrap()
        .get(0);
    let error = estimate / built as f64 - 1.0;
    assert!(error.abs() <= 0.25, "estimated {estimate}, built {built}");
}

#[tokio::test]
async fn two_equalities_recommend_the_more_selective_column_first() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let json = advise_json(
        &db,
        &["SELECT * FROM payments WHERE status = $2 AND user_id = $1"],
    )
    .await;
    // user_id has ~4000 distinct values, status 4: user_id leads, and the
    // index then also serves lookups by user_id alone.
    assert_eq!(shapes(&json["indexes"]), [payments(&["user_id", "status"])]);
}

#[tokio::test]
async fn order_by_with_limit_recommends_the_sort_column() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let json = advise_json(
        &db,
        &["SELECT * FROM payments ORDER BY created_at DESC LIMIT 10"],
    )
    .await;
    assert_eq!(shapes(&json["indexes"]), [payments(&["created_at"])]);
    let statement = &json["statements"][0];
    assert!(cost(statement, "cost_after") < cost(statement, "cost_before") / 100.0);
}

#[tokio::test]
async fn a_statement_an_index_already_serves_gets_nothing() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    db.client()
        .await
        .batch_execute("CREATE INDEX payments_by_user ON payments (user_id, created_at)")
        .await
        .unwrap();
    let json = advise_json(&db, &["SELECT * FROM payments WHERE user_id = $1"]).await;
    assert_eq!(json["indexes"], serde_json::json!([]));
    let statement = &json["statements"][0];
    assert_no_index(statement, "already indexed: \"payments_by_user\"");
    assert_eq!(statement["cost_before"], statement["cost_after"]);
}

#[tokio::test]
async fn a_tiny_table_gets_nothing() {
    let Some(db) = hypopg_db_with_rows(100).await else {
        return;
    };
    let json = advise_json(&db, &["SELECT * FROM payments WHERE user_id = 3"]).await;
    assert_eq!(json["indexes"], serde_json::json!([]));
    assert_no_index(&json["statements"][0], "low cost: the plan costs");
}

#[tokio::test]
async fn a_value_most_rows_have_gets_nothing_a_rare_one_may() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let sql = "SELECT * FROM payments WHERE status = 'completed';\n\
               SELECT * FROM payments WHERE status = 'refunded'";
    let json = advise_json(&db, &["--min-improvement", "30", sql]).await;
    let completed = &json["statements"][0];
    assert_no_index(completed, "below threshold: the planner would use none");
    // 2% of the rows: a (status) index pays, past a 30% threshold.
    assert_eq!(
        shapes(&json["statements"][1]["indexes"]),
        [payments(&["status"])]
    );

    // The default threshold, 50%, is more than that index saves, or its
    // partial twin on the rare value.
    let json = advise_json(&db, &["SELECT * FROM payments WHERE status = 'refunded'"]).await;
    let refunded = &json["statements"][0];
    assert_no_index(
        refunded,
        "below threshold: the best candidate, (status) WHERE status = 'refunded', lowers",
    );
}

#[tokio::test]
async fn a_workload_gets_the_fewest_indexes_that_serve_it() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let sql = "SELECT * FROM payments WHERE user_id = $1;\n\
               SELECT * FROM payments WHERE user_id = $1 AND status = $2;\n\
               SELECT id FROM payments ORDER BY created_at DESC LIMIT 20;\n\
               SELECT count(*) FROM payments WHERE user_id = $1 AND status = 'failed'";
    let json = advise_json(&db, &[sql]).await;
    // One composite serves the three lookups rather than (user_id) plus
    // (user_id, status).
    assert_eq!(
        shapes(&json["indexes"]),
        [payments(&["user_id", "status"]), payments(&["created_at"])]
    );
    let served: Vec<_> = json["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| shapes(&s["indexes"]))
        .collect();
    assert_eq!(
        served,
        [
            vec![payments(&["user_id", "status"])],
            vec![payments(&["user_id", "status"])],
            vec![payments(&["created_at"])],
            vec![payments(&["user_id", "status"])],
        ]
    );
    assert_eq!(json["summary"]["improved"], 4);
}

#[tokio::test]
async fn views_and_materialized_views() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    db.client()
        .await
        .batch_execute(
            "CREATE VIEW pending_payments AS \
                 SELECT id, user_id AS customer, amount FROM payments WHERE status = 'pending'; \
             CREATE MATERIALIZED VIEW payments_copy AS SELECT * FROM payments; \
             ANALYZE payments_copy",
        )
        .await
        .unwrap();
    let json = advise_json(
        &db,
        &["SELECT * FROM pending_payments WHERE customer = $1;\n\
           SELECT * FROM payments_copy WHERE external_ref = $1"],
    )
    .await;
    // The view's own predicate joins the outer one on the base table.
    assert_eq!(
        shapes(&json["statements"][0]["indexes"]),
        [payments(&["user_id", "status"])]
    );
    assert_eq!(
        shapes(&json["statements"][1]["indexes"]),
        [table("public.payments_copy", &["external_ref"])]
    );
}

#[tokio::test]
async fn partitioned_tables_get_an_index_built_partition_by_partition() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE events (id bigint, k int, payload text) PARTITION BY RANGE (id); \
             CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (50000); \
             CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (50000) TO (100000); \
             INSERT INTO events SELECT g, g % 1000, 'x' FROM generate_series(0, 99999) g; \
             ANALYZE events",
        )
        .await
        .unwrap();
    let json = advise_json(&db, &["SELECT * FROM events WHERE k = $1"]).await;
    assert_eq!(shapes(&json["indexes"]), [table("public.events", &["k"])]);
    let ddl = json["indexes"][0]["ddl"].as_str().unwrap();
    assert_eq!(
        ddl,
        "CREATE INDEX \"idx_events_k\" ON ONLY \"public\".\"events\" (\"k\");\n\
         CREATE INDEX CONCURRENTLY \"idx_events_k_1\" ON \"public\".\"events_a\" (\"k\");\n\
         ALTER INDEX \"public\".\"idx_events_k\" ATTACH PARTITION \"public\".\"idx_events_k_1\";\n\
         CREATE INDEX CONCURRENTLY \"idx_events_k_2\" ON \"public\".\"events_b\" (\"k\");\n\
         ALTER INDEX \"public\".\"idx_events_k\" ATTACH PARTITION \"public\".\"idx_events_k_2\";"
    );
    // The statements work as given, one at a time, and leave a valid index.
    for statement in ddl.lines() {
        client.batch_execute(statement).await.unwrap();
    }
    assert!(index_is_valid(&client, "idx_events_k").await);
}

#[tokio::test]
async fn ctes_inline_unless_materialized() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let json = advise_json(
        &db,
        &["WITH mine AS (SELECT * FROM payments WHERE amount > 10) \
             SELECT * FROM mine WHERE user_id = $1;\n\
           WITH everything AS MATERIALIZED (SELECT * FROM payments) \
             SELECT * FROM everything WHERE user_id = $1"],
    )
    .await;
    let inlined = &json["statements"][0];
    assert_eq!(shapes(&inlined["indexes"])[0].1[0], "user_id", "{inlined}");
    // A materialized CTE is computed whole: no index on it is reachable.
    let materialized = &json["statements"][1];
    assert_no_index(materialized, "below threshold: the planner would use none");
}

#[tokio::test]
async fn update_and_delete_are_planned_never_run() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let client = db.client().await;
    let fingerprint = "SELECT count(*), sum(hashtext(status || id)) FROM payments";
    let before: (i64, i64) = {
        let row = client.query_one(fingerprint, &[]).await.unwrap();
        (row.get(0), row.get(1))
    };
    let json = advise_json(
        &db,
        &[
            "UPDATE payments SET status = 'failed' WHERE external_ref = $1;\n\
           DELETE FROM payments WHERE user_id = $1 AND created_at < now() - interval '300 days'",
        ],
    )
    .await;
    assert_eq!(
        shapes(&json["statements"][0]["indexes"]),
        [payments(&["external_ref"])]
    );
    assert_eq!(
        shapes(&json["statements"][1]["indexes"])[0].1[0],
        "user_id",
        "{json}"
    );
    let row = client.query_one(fingerprint, &[]).await.unwrap();
    assert_eq!((row.get(0), row.get(1)), before, "the data changed");
}

#[tokio::test]
async fn quoted_schema_table_and_column_names_and_the_spec() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA \"Sales\"; \
             CREATE TABLE \"Sales\".\"Order Lines\" (id bigint, \"Customer Id\" bigint, qty int); \
             INSERT INTO \"Sales\".\"Order Lines\" \
                 SELECT g, g % 5000, 1 FROM generate_series(1, 100000) g; \
             ANALYZE \"Sales\".\"Order Lines\"",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("advised.toml");
    let json = advise_json(
        &db,
        &[
            "--write-spec",
            spec.to_str().unwrap(),
            "SELECT qty FROM \"Sales\".\"Order Lines\" WHERE \"Customer Id\" = $1",
        ],
    )
    .await;
    assert_eq!(
        shapes(&json["indexes"]),
        [table("\"Sales\".\"Order Lines\"", &["Customer Id"])]
    );
    let ddl = json["indexes"][0]["ddl"].as_str().unwrap();
    assert_eq!(
        ddl,
        "CREATE INDEX CONCURRENTLY \"idx_Order Lines_Customer Id\" ON \"Sales\".\"Order Lines\" \
         (\"Customer Id\");"
    );
    let written: toml::Value = toml::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    assert_eq!(
        written,
        toml::from_str(
            "[[index]]\nname = \"idx_Order Lines_Customer Id\"\n\
             table = '\"Sales\".\"Order Lines\"'\ncolumns = [\"Customer Id\"]\n"
        )
        .unwrap()
    );
    // `perfaudit indexes` builds the spec as written.
    let output = db
        .perfaudit()
        .args([
            "--format",
            "json",
            "indexes",
            "--spec",
            spec.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(index_is_valid(&client, "\"Sales\".\"idx_Order Lines_Customer Id\"").await);
}

#[tokio::test]
async fn statements_without_advice_say_why() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    // A foreign table on a server that does not exist: it must never be
    // contacted.
    db.client()
        .await
        .batch_execute(
            "CREATE EXTENSION postgres_fdw; \
             CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw \
                 OPTIONS (host 'nowhere.invalid'); \
             CREATE FOREIGN TABLE remote_payments (id bigint, user_id bigint) SERVER elsewhere",
        )
        .await
        .unwrap();
    let json = advise_json(
        &db,
        &["SELECT 1;\n\
           SELECT * FROM pg_class WHERE relname = $1;\n\
           SELECT * FROM no_such_table;\n\
           SELECT * FROM payments WHERE user_id = $1 OR $2 IS NULL;\n\
           SELECT count(*) FROM payments;\n\
           VACUUM payments;\n\
           SELECT * FROM remote_payments WHERE user_id = $1"],
    )
    .await;
    let reasons: Vec<&str> = json["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| reason(s).split(':').next().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "no tables",
            "system catalogs only",
            "table missing",
            "could not plan",
            "nothing to index",
            "not a query",
            "foreign table"
        ],
        "{json}"
    );
    assert!(
        reason(&json["statements"][3]).contains("could not determine data type of parameter $2"),
        "{json}"
    );
}

#[tokio::test]
async fn without_hypopg_it_says_how_to_get_it() {
    // HypoPG installed on the server, not created in the database.
    if !common::hypopg() {
        return;
    }
    let db = TestDb::new().await;
    let output = run(&db, &["SELECT * FROM payments WHERE user_id = $1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("is installed on the server but not created in database")
            && stderr.contains("run CREATE EXTENSION hypopg;"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn a_schema_it_may_not_read_is_an_error_not_a_missing_table() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let role = format!("{}_reader", db.name);
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA secret; CREATE TABLE secret.t (a int); CREATE ROLE \"{role}\" LOGIN"
        ))
        .await
        .unwrap();
    let mut as_reader = db.settings.clone();
    as_reader.user = role;
    let output = common::perfaudit()
        .args(["--database-url", &as_reader.to_conninfo()])
        .args(["advise", "SELECT * FROM secret.t WHERE a = 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("permission denied for schema secret"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sql_that_does_not_parse_is_bad_input() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let output = run(&db, &["SELECT * FROM payments;\nSELECT * FROM WHERE"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not parse at line 2, column 15"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_scratch_cluster_gets_hypopg_created() {
    if !common::hypopg() {
        return;
    }
    let output = common::perfaudit()
        .args([
            "--scratch",
            "--format",
            "json",
            "advise",
            "SELECT * FROM payments WHERE user_id = $1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shapes(&json["indexes"]), [payments(&["user_id"])]);
}

#[tokio::test]
async fn without_pg_stat_statements_it_says_how_to_get_it() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let output = run(&db, &["--from-stat-statements"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("shared_preload_libraries")
            && stderr.contains("CREATE EXTENSION pg_stat_statements"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_workload_can_come_from_pg_stat_statements() {
    if !common::hypopg() {
        return;
    }
    // A cluster of its own: pg_stat_statements must be preloaded.
    let cluster = ScratchCluster::start(&ScratchOptions {
        settings: vec![(
            "shared_preload_libraries".into(),
            "pg_stat_statements".into(),
        )],
        ..ScratchOptions::default()
    })
    .await
    .unwrap();
    let settings = cluster.settings("postgres");
    let database = Database::new(settings.clone(), PoolOptions::default()).unwrap();
    let client = database.connection().await.unwrap();
    perfaudit::db::fixture::load(&client, common::DEFAULT_ROWS)
        .await
        .unwrap();
    client
        .batch_execute("CREATE EXTENSION hypopg; CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    for user in [42_i64, 7, 1000] {
        client
            .query("SELECT * FROM payments WHERE user_id = $1", &[&user])
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "SELECT * FROM payments WHERE currency = 'INR' ORDER BY created_at LIMIT 3;
             SELECT count(*) FROM payments WHERE description = 'hypopg_reset() in a string'",
        )
        .await
        .unwrap();
    // Utility statements that ran longer than every query must not crowd
    // the queries out of --top.
    for _ in 0..3 {
        client.batch_execute("ANALYZE payments").await.unwrap();
    }
    let advise = |top: &str| {
        let output = common::perfaudit()
            .args(["--database-url", &settings.to_conninfo()])
            .args(["--format", "json", "advise", "--from-stat-statements"])
            .args(["--top", top])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let json = advise("5");
    let statements = json["statements"].as_array().unwrap();
    let lookup = statements
        .iter()
        .find(|s| s["original"] == "SELECT * FROM payments WHERE user_id = $1")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(shapes(&lookup["indexes"]), [payments(&["user_id"])]);
    assert!(
        lookup["line"].is_null() && lookup["column"].is_null(),
        "{lookup}"
    );
    // What pg_stat_statements counted, and the time the index saves: the
    // lookups' time in proportion to the cost it saves them. A minute of
    // statistics makes no rate a day.
    let usage = &lookup["usage"];
    assert_eq!(usage["calls"], 3.0, "{lookup}");
    let total = usage["total_ms"].as_f64().unwrap();
    let saved = &lookup["indexes"][0]["time_saved"];
    let share =
        1.0 - lookup["cost_after"].as_f64().unwrap() / lookup["cost_before"].as_f64().unwrap();
    assert!(
        (saved["ms"].as_f64().unwrap() - total * share).abs() < 1e-6,
        "{lookup}"
    );
    assert!(saved["ms_per_day"].is_null(), "{lookup}");
    // pg_stat_statements replaced the constants with $1, $2...
    let sorted = statements
        .iter()
        .find(|s| s["original"].as_str().unwrap().contains("currency = $1"))
        .unwrap_or_else(|| panic!("{json}"));
    assert!(sorted["cost_before"].is_number(), "{sorted}");
    // A query that only mentions HypoPG is workload; HypoPG's calls are not.
    assert!(
        statements
            .iter()
            .any(|s| s["original"].as_str().unwrap().contains("description = $1")),
        "{json}"
    );
    // Utility statements (CREATE EXTENSION, ANALYZE...), which ran longer,
    // are not workload, and --top counts only what is: the 3 statements
    // that read the tables and the 2 that wrote them (the seeding), of the
    // 5 asked for.
    assert_eq!(statements.len(), 5, "{json}");
    assert!(
        statements.iter().all(|s| {
            let original = s["original"].as_str().unwrap();
            (original.starts_with("SELECT") || original.starts_with("INSERT"))
                && !original.contains("hypopg_create_index")
        }),
        "{json}"
    );
    // The first run left advise's own catalog reads in pg_stat_statements:
    // they, and every other read of catalogs only, are not workload.
    let all = advise("1000");
    let statements = all["statements"].as_array().unwrap();
    assert!(
        statements
            .iter()
            .all(|s| !s["original"].as_str().unwrap().contains("pg_")),
        "{all}"
    );
    assert_eq!(statements.len(), 5, "{all}");
}

#[tokio::test]
async fn functions_that_planning_runs_cannot_write() {
    // Planning folds an IMMUTABLE function with constant arguments: one
    // that lies about its volatility and writes must not get its way.
    let Some(db) = hypopg_db().await else {
        return;
    };
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE audit (note text);
             CREATE SEQUENCE counter;
             CREATE FUNCTION writer(int) RETURNS int LANGUAGE plpgsql
                 AS $$ BEGIN INSERT INTO audit VALUES ('planned'); RETURN $1; END $$;
             CREATE FUNCTION sneaky(int) RETURNS int LANGUAGE sql IMMUTABLE
                 AS $$ SELECT writer($1) $$;
             CREATE FUNCTION sneaky_next() RETURNS bigint LANGUAGE sql IMMUTABLE
                 AS $$ SELECT nextval('counter') $$;",
        )
        .await
        .unwrap();
    let json = advise_json(
        &db,
        &["SELECT * FROM payments WHERE user_id = sneaky(42); \
             SELECT * FROM payments WHERE id = sneaky_next()"],
    )
    .await;
    for statement in json["statements"].as_array().unwrap() {
        assert!(
            reason(statement).contains("read-only transaction"),
            "{statement}"
        );
    }
    let audit: i64 = client
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 0);
    let called: bool = client
        .query_one("SELECT is_called FROM counter", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!called, "nextval ran");
}

/// The state of the pooled session, to compare before and after advise.
async fn session_state(client: &tokio_postgres::Client) -> (i32, String, String, i64, i64) {
    let row = client
        .query_one(
            "SELECT pg_backend_pid(), \
                    current_setting('plan_cache_mode') || ' ' \
                        || current_setting('default_transaction_read_only'), \
                    current_setting('lock_timeout'), \
                    (SELECT count(*) FROM hypopg_list_indexes), \
                    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// A pool of one connection, so advise and the checks share a session.
fn one_connection(db: &TestDb) -> Database {
    Database::new(
        db.settings.clone(),
        PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        },
    )
    .unwrap()
}

fn options() -> Options {
    Options {
        min_improvement: advise::DEFAULT_MIN_IMPROVEMENT,
        min_cost: advise::DEFAULT_MIN_COST,
        create_extension: false,
    }
}

const SESSION_WORKLOAD: &str = "SELECT * FROM payments WHERE user_id = $1 AND status = $2;\n\
     SELECT * FROM payments WHERE user_id = $1 OR $2 IS NULL;\n\
     SELECT * FROM payments ORDER BY created_at LIMIT 5";

#[tokio::test]
async fn the_pooled_session_is_reset_after_advise() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let database = one_connection(&db);
    let before = session_state(&database.connection().await.unwrap()).await;
    let workload = workload::from_sql(SESSION_WORKLOAD).unwrap();
    let advice = advise::advise(
        &database,
        &workload,
        &options(),
        &Interrupt::never(),
        &Unseen,
    )
    .await
    .unwrap();
    assert_eq!(advice.indexes.len(), 2, "{advice:?}");
    assert_eq!(
        session_state(&database.connection().await.unwrap()).await,
        before
    );
}

/// Progress that fires an interrupt at a given step, and counts them.
struct InterruptAt {
    step: u64,
    trigger: Trigger,
    steps: Cell<u64>,
}

impl Progress for InterruptAt {
    fn shown(&self) -> bool {
        false
    }
    fn start(&self, _: i32, _: &str) {}
    fn advance(&self, _: i32, done: u64, _: u64, _: Option<&str>) {
        self.steps.set(done);
        if done == self.step {
            self.trigger.fire(Signal::Interrupt);
        }
    }
    fn finish(&self, _: i32) {}
    fn say(&self, _: Line, _: &str) {}
}

#[tokio::test]
async fn an_interrupt_stops_advise_and_closes_its_session() {
    let Some(db) = hypopg_db().await else {
        return;
    };
    let database = one_connection(&db);
    let before = session_state(&database.connection().await.unwrap()).await;
    let indexes = all_indexes(&db).await;
    let workload = workload::from_sql(SESSION_WORKLOAD).unwrap();
    let (interrupt, trigger) = Interrupt::manual();
    // Stops while a hypothetical index exists.
    let progress = InterruptAt {
        step: 2,
        trigger,
        steps: Cell::new(0),
    };
    let result = advise::advise(&database, &workload, &options(), &interrupt, &progress).await;
    let steps = progress.steps.get();
    assert!(
        matches!(
            result,
            Err(perfaudit::Error::Interrupted(Signal::Interrupt))
        ),
        "{result:?}"
    );
    assert_eq!(steps, 2, "advise went on after the interrupt");
    // The cancelled session was closed, not returned: the pool opens a
    // fresh one, and the old server process goes away.
    let after = session_state(&database.connection().await.unwrap()).await;
    assert_ne!(after.0, before.0, "the interrupted session was reused");
    assert_eq!(
        (&after.1, &after.2, after.3, after.4),
        (&before.1, &before.2, 0, 0)
    );
    let client = db.client().await;
    let mut gone = false;
    for _ in 0..100 {
        let alive: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                &[&before.0],
            )
            .await
            .unwrap()
            .get(0);
        if !alive {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the interrupted session's server process is still there"
    );
    assert_eq!(all_indexes(&db).await, indexes);
}
