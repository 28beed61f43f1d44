//! `perfaudit explain` against a real PostgreSQL: it reports plans and
//! findings, and whatever it is given, it changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use common::explain::{
    answers, count, document, execute, explain_json, fingerprint, nothing_explained,
    planned_because_of, run, set_for_database, stderr,
};
use serde_json::Value;

fn codes(statement: &Value) -> Vec<String> {
    statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// The statement's `selective-seq-scan` finding.
fn seq_scan_finding(statement: &Value) -> &Value {
    statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "selective-seq-scan")
        .unwrap_or_else(|| panic!("no seq scan finding: {statement:#}"))
}

#[tokio::test]
async fn a_selective_filter_is_a_seq_scan_finding_until_the_index_exists() {
    let db = TestDb::new().await;
    let sql = "SELECT * FROM payments WHERE user_id = 42";
    let before = document(&explain_json(&db, &[sql]), 0);
    let statement = &before["statements"][0];
    let finding = seq_scan_finding(statement);
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("(user_id = 42)"),
        "{finding}"
    );
    assert_eq!(
        finding["ddl"],
        "CREATE INDEX CONCURRENTLY \"idx_payments_user_id\" ON \"public\".\"payments\" \
         (\"user_id\");",
        "{finding}"
    );
    assert!(
        !finding["suggestion"]
            .as_str()
            .unwrap()
            .contains("CREATE INDEX"),
        "the DDL is in `ddl`, not in the prose: {finding}"
    );
    let node = &statement["nodes"][finding["node"].as_u64().unwrap() as usize];
    assert_eq!(node["node_type"], "Seq Scan");

    execute(
        &db,
        "CREATE INDEX idx_payments_user_id ON payments (user_id)",
    )
    .await;
    let after = document(&explain_json(&db, &[sql]), 0);
    let statement = &after["statements"][0];
    assert!(
        !codes(statement).contains(&"selective-seq-scan".to_owned()),
        "{statement:#}"
    );
    let nodes = statement["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["index"] == "idx_payments_user_id"
            && n["node_type"].as_str().unwrap().contains("Index Scan")),
        "no index scan: {nodes:#?}"
    );
}

/// The DDL of the `selective-seq-scan` finding for `sql`.
fn seq_scan_ddl(db: &TestDb, sql: &str) -> String {
    let json = document(&explain_json(db, &[sql]), 0);
    let finding = seq_scan_finding(&json["statements"][0]);
    finding["ddl"]
        .as_str()
        .unwrap_or_else(|| panic!("no DDL: {finding}"))
        .to_owned()
}

#[tokio::test]
async fn the_suggested_index_is_the_one_advise_recommends_in_the_tables_schema() {
    // advise needs HypoPG (common::hypopg reports it missing once)
    if !common::hypopg() {
        return;
    }
    let db = TestDb::new().await;
    // A copy in another schema, off the search_path: the plan names it
    // `payments` alone, as it does public.payments.
    execute(
        &db,
        "CREATE SCHEMA sales; CREATE TABLE sales.payments AS SELECT * FROM payments; \
         ANALYZE sales.payments; CREATE EXTENSION hypopg",
    )
    .await;
    // Failed payments are rare: the index is the user's, under that state.
    let sql = "SELECT * FROM sales.payments WHERE status = 'failed' AND user_id = 42";
    let suggested = seq_scan_ddl(&db, sql);
    assert_eq!(
        suggested,
        "CREATE INDEX CONCURRENTLY \"idx_payments_user_id_where_status_failed\" ON \
         \"sales\".\"payments\" (\"user_id\") WHERE (status = 'failed');"
    );

    let output =
        run(db
            .perfaudit()
            .args(["--format", "json", "advise", "--min-improvement", "10", sql]));
    let advice = document(&output, 0);
    assert_eq!(
        advice["indexes"][0]["ddl"],
        suggested.as_str(),
        "{advice:#}"
    );

    // Pasted as it is, it builds the index, and the finding goes away.
    execute(&db, &suggested).await;
    let json = document(&explain_json(&db, &[sql]), 0);
    assert!(
        !codes(&json["statements"][0]).contains(&"selective-seq-scan".to_owned()),
        "{json:#}"
    );
}

const WRITES: [&str; 4] = [
    "DELETE FROM payments WHERE user_id < 100",
    "UPDATE payments SET amount = amount + 1, status = 'refunded' WHERE status = 'failed'",
    "INSERT INTO payments (user_id, amount, currency, status, method, external_ref, created_at, updated_at)
     SELECT user_id, amount, currency, status, method, gen_random_uuid(), now(), now()
     FROM payments LIMIT 1000",
    "WITH gone AS (DELETE FROM payments WHERE status = 'refunded' RETURNING *)
     SELECT count(*) FROM gone",
];

#[tokio::test]
async fn writes_change_nothing_with_or_without_analyze_writes() {
    let db = TestDb::new().await;
    let original = fingerprint(&db).await;
    for sql in WRITES {
        let planned = document(&explain_json(&db, &[sql]), 0);
        let statement = &planned["statements"][0];
        assert_eq!(statement["analyzed"], false, "{sql}");
        assert_eq!(statement["read_only"], true, "{sql}");
        assert!(
            statement["notes"][0]
                .as_str()
                .unwrap()
                .starts_with("not executed because it is not a plain read"),
            "{statement:#}"
        );
        assert_eq!(fingerprint(&db).await, original, "plain EXPLAIN of {sql}");

        let executed = document(&explain_json(&db, &["--analyze-writes", sql]), 0);
        let statement = &executed["statements"][0];
        assert_eq!(statement["analyzed"], true, "{sql}");
        assert_eq!(statement["rolled_back"], true, "{sql}");
        assert!(
            statement["plan"][0]["Execution Time"].is_number(),
            "{sql} was not executed: {statement:#}"
        );
        assert!(
            statement["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().contains("sequences")),
            "{statement:#}"
        );
        assert_eq!(
            fingerprint(&db).await,
            original,
            "--analyze-writes of {sql}"
        );
    }
}

#[tokio::test]
async fn a_statement_hidden_behind_the_first_never_runs() {
    let db = TestDb::new().await;
    let original = fingerprint(&db).await;
    let inputs = [
        "SELECT 1; DROP TABLE payments",
        "SELECT 1;DROP TABLE payments;",
        "SELECT 1 -- a comment; still a comment\n; DROP TABLE payments",
        "SELECT /* ; */ 1; /* ; */ DROP TABLE payments",
        "SELECT ';'; DROP TABLE payments",
        "SELECT 'it''s; fine'; DROP TABLE payments",
        "SELECT $$ ; $$; DROP TABLE payments",
        "SELECT $tag$ ; $$ ; $tag$; DROP TABLE payments",
        "SELECT E'\\'; DROP TABLE payments; --'; DROP TABLE payments",
    ];
    for sql in inputs {
        let output = explain_json(&db, &[sql]);
        assert_eq!(output.status.code(), Some(2), "{sql}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("is refused, so nothing was run"),
            "{sql}: {}",
            stderr(&output)
        );
        nothing_explained(&output, "input");
    }
    // The same through a file and through stdin.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "SELECT 1;\nDROP TABLE payments;\n").unwrap();
    let output = explain_json(&db, &["-f", file.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("statement 2 (line 2, column 1) is refused"),
        "{}",
        stderr(&output)
    );
    // A ';' inside a string is data, not a separator: this runs, harmlessly.
    let output = explain_json(&db, &["SELECT 'x; DROP TABLE payments'"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(fingerprint(&db).await, original);
}

#[tokio::test]
async fn the_server_refuses_a_second_statement_even_if_the_splitter_missed_it() {
    use perfaudit::explain::mode::Mode;
    use perfaudit::explain::run::{Prepared, Runner, Timeout};
    use perfaudit::interrupt::Interrupt;

    let db = TestDb::new().await;
    let database = db.database();
    let client = database.connection().await.unwrap();
    let interrupt = Interrupt::never();
    let runner = Runner::new(&client, database.tls(), &interrupt);
    let mode = Mode {
        analyze: true,
        read_only: true,
        notes: Vec::new(),
    };
    let smuggled = Prepared::new(
        &mode,
        "SELECT 1; DROP TABLE payments",
        Vec::new(),
        Timeout::Server,
    );
    let err = runner.run(&smuggled, "the test").await.unwrap_err();
    assert!(
        err.to_string().contains("cannot insert multiple commands"),
        "{err}"
    );
    // The connection is usable and out of any transaction afterwards.
    let exists: bool = client
        .query_one("SELECT to_regclass('payments') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(exists);
    let ok = Prepared::new(&mode, "SELECT 1", Vec::new(), Timeout::Server);
    runner.run(&ok, "the test").await.unwrap();
}

#[tokio::test]
async fn an_advisory_lock_is_never_taken_however_the_name_is_written() {
    let db = TestDb::new().await;
    // Another session holds the lock: were the call executed, it would wait
    // for it until the statement timeout.
    let (holder, holder_pid) = db.session().await;
    holder
        .batch_execute("SELECT pg_advisory_lock(42)")
        .await
        .unwrap();
    for sql in [
        "SELECT \"pg_advisory_lock\"(42)",
        "SELECT pg_catalog.\"pg_advisory_lock\"(42)",
        "SELECT * FROM pg_advisory_lock(42)",
        "SELECT PG_ADVISORY_LOCK(42)",
    ] {
        let output = run(db.perfaudit().args([
            "--statement-timeout",
            "3s",
            "--format",
            "json",
            "explain",
            sql,
        ]));
        planned_because_of(&output, "pg_advisory_lock");
    }
    let holders: Vec<i32> = db
        .client()
        .await
        .query_one(
            "SELECT array_agg(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holders, [holder_pid]);
}

/// The replication slots named `name`.
async fn slots(db: &TestDb, name: &str) -> i64 {
    count(
        db,
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
        name,
    )
    .await
}

#[tokio::test]
async fn a_replication_slot_is_never_created_directly_or_through_a_volatile_function() {
    let db = TestDb::new().await;
    // A slot survives the rollback and holds WAL until it is dropped. The
    // test cluster's wal_level (replica, PostgreSQL's default) allows them.
    let direct = format!("{}_direct", db.name);
    let output = explain_json(
        &db,
        &[&format!(
            "SELECT pg_create_physical_replication_slot('{direct}', true)"
        )],
    );
    planned_because_of(&output, "pg_create_physical_replication_slot");
    // The same call inside a function of the user's, which the text does
    // not show: the server says the function is VOLATILE.
    execute(
        &db,
        "CREATE FUNCTION make_slot(slot name) RETURNS text LANGUAGE sql
             AS 'SELECT slot_name::text FROM pg_create_physical_replication_slot(slot, true)'",
    )
    .await;
    let hidden = format!("{}_hidden", db.name);
    let output = explain_json(&db, &[&format!("SELECT make_slot('{hidden}')")]);
    let statement = planned_because_of(&output, "public.make_slot(slot name)");
    assert!(
        statement["class"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("VOLATILE"),
        "{statement:#}"
    );
    let (direct_slots, hidden_slots) = (slots(&db, &direct).await, slots(&db, &hidden).await);
    // Clean up before asserting: a slot left behind would hold WAL.
    execute(
        &db,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
             WHERE slot_name IN ('{direct}', '{hidden}')"
        ),
    )
    .await;
    assert_eq!((direct_slots, hidden_slots), (0, 0));
    // Not even --analyze-writes runs what the SQL shows to outlive the
    // rollback: that flag promises a rolled-back run.
    let output = explain_json(
        &db,
        &[
            "--analyze-writes",
            &format!("SELECT pg_create_physical_replication_slot('{direct}', true)"),
        ],
    );
    let statement = &document(&output, 0)["statements"][0];
    assert_eq!(statement["analyzed"], false, "{statement:#}");
    assert!(
        statement.to_string().contains("even with --analyze-writes"),
        "{statement:#}"
    );
    assert_eq!(slots(&db, &direct).await, 0);
    // A function of the user's that the server calls VOLATILE is run on
    // purpose, and the report says what it did.
    let output = explain_json(
        &db,
        &["--analyze-writes", &format!("SELECT make_slot('{hidden}')")],
    );
    let statement = &document(&output, 0)["statements"][0];
    assert_eq!(statement["analyzed"], true);
    execute(&db, &format!("SELECT pg_drop_replication_slot('{hidden}')")).await;
}

#[tokio::test]
async fn an_aggregate_that_runs_a_volatile_function_is_only_planned() {
    // An aggregate is IMMUTABLE itself; its transition function is what runs.
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE TABLE audit (note text);
         CREATE FUNCTION logging_sum(bigint, bigint) RETURNS bigint LANGUAGE plpgsql
             AS $$ BEGIN INSERT INTO audit VALUES ('summed'); RETURN $1 + $2; END $$;
         CREATE AGGREGATE logged_sum(bigint) (sfunc = logging_sum, stype = bigint, initcond = '0')",
    )
    .await;
    let output = explain_json(&db, &["SELECT logged_sum(user_id) FROM payments"]);
    planned_because_of(&output, "(through function logged_sum(bigint))");
    // The built-in aggregates run as usual.
    let output = explain_json(
        &db,
        &[
            "SELECT count(*), sum(amount), max(created_at), array_agg(id), string_agg(status, ',') \
           FROM payments WHERE user_id = 1",
        ],
    );
    assert_eq!(document(&output, 0)["statements"][0]["analyzed"], true);
}

#[tokio::test]
async fn another_session_is_never_terminated_or_cancelled() {
    let db = TestDb::new().await;
    let (other, pid) = db.session().await;
    for (sql, function) in [
        (
            format!("SELECT pg_terminate_backend({pid})"),
            "pg_terminate_backend",
        ),
        (
            format!("SELECT \"pg_terminate_backend\"({pid}, 1000)"),
            "pg_terminate_backend",
        ),
        (
            format!("SELECT pg_cancel_backend({pid})"),
            "pg_cancel_backend",
        ),
    ] {
        planned_because_of(&explain_json(&db, &[&sql]), function);
        assert!(answers(&other).await, "{sql} reached the other session");
    }
}

#[tokio::test]
async fn harmless_volatile_functions_still_run() {
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE FUNCTION cents(amount numeric) RETURNS bigint LANGUAGE sql IMMUTABLE
             AS 'SELECT (amount * 100)::bigint'",
    )
    .await;
    let sql = "SELECT random(), clock_timestamp(), gen_random_uuid(), pg_sleep(0), \
               pg_total_relation_size('payments'), cents(amount), now() \
               FROM payments WHERE id = 1";
    let statement = &document(&explain_json(&db, &[sql]), 0)["statements"][0];
    assert_eq!(statement["analyzed"], true, "{statement:#}");
    assert_eq!(statement["read_only"], true, "{statement:#}");
    assert_eq!(statement["class"]["kind"], "read", "{statement:#}");
}

#[tokio::test]
async fn what_read_only_stops_and_what_hides_in_a_view() {
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE sql
             AS 'DELETE FROM payments WHERE id < 500 RETURNING id';
         CREATE VIEW deleting AS SELECT sneaky() AS id;
         CREATE VIEW locking AS SELECT pg_try_advisory_lock(7) AS locked",
    )
    .await;
    let original = fingerprint(&db).await;
    // Called by name, the function is VOLATILE: only planned.
    planned_because_of(&explain_json(&db, &["SELECT sneaky()"]), "public.sneaky()");
    // Hidden in a view, the call is not in the text, but the server's
    // parse of the view names it: only planned too.
    let output = explain_json(&db, &["SELECT * FROM deleting"]);
    let statement = planned_because_of(&output, "public.sneaky()");
    assert_eq!(
        statement["guard"]["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == "public.sneaky()")
            .unwrap()["reached_through"],
        "rule _RETURN on view deleting",
        "{statement:#}"
    );
    assert_eq!(fingerprint(&db).await, original);
    // READ ONLY would not stop what is not a write, such as the view's
    // advisory lock: the guard does, even with --analyze-writes.
    for flags in [&[][..], &["--analyze-writes"]] {
        let args = [flags, &["SELECT * FROM locking"]].concat();
        planned_because_of(
            &explain_json(&db, &args),
            "pg_catalog.pg_try_advisory_lock(",
        );
    }
    // Seen only planned, anything is fine.
    let output = explain_json(&db, &["--no-analyze", "SELECT * FROM deleting"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test]
async fn a_statement_timeout_cancels_the_query_on_the_server() {
    let db = TestDb::new().await;
    let started = Instant::now();
    let output = run(db.perfaudit().args([
        "--statement-timeout",
        "1s",
        "explain",
        "SELECT pg_sleep(10)",
    ]));
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("ran longer than the statement timeout (1s) and the server cancelled it"),
        "{}",
        stderr(&output)
    );
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    assert_eq!(db.running("pg_sleep(10)").await, 0);
}

#[tokio::test]
async fn statements_explained_before_a_failure_are_still_reported() {
    let db = TestDb::new().await;
    let output = run(db.perfaudit().args([
        "--statement-timeout",
        "1s",
        "--format",
        "json",
        "explain",
        "SELECT 1; SELECT pg_sleep(10); SELECT 3",
    ]));
    assert!(
        stderr(&output).contains("statement 2 (line 1, column 11)"),
        "{}",
        stderr(&output)
    );
    let json = document(&output, 3);
    let statements = json["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{json}");
    assert_eq!(statements[0]["executed"], "SELECT 1 LIMIT 1000");
}

#[tokio::test]
async fn a_stricter_server_timeout_is_kept_by_default() {
    let db = TestDb::new().await;
    set_for_database(&db, "statement_timeout = '1s'").await;
    let output = run(db.perfaudit().args(["explain", "SELECT pg_sleep(10)"]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("(the server's statement_timeout)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(db.running("pg_sleep(10)").await, 0);
}

#[tokio::test]
async fn ctrl_c_cancels_the_query_on_the_server() {
    let db = TestDb::new().await;
    let child = db
        .perfaudit()
        .args(["explain", "SELECT pg_sleep(30)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    db.wait_until_running("pg_sleep(30)").await;
    common::process::stop_with(child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(db.running("pg_sleep(30)").await, 0);
}

#[tokio::test]
async fn the_rewriters_questions_are_bounded_and_cancelled_on_the_server() {
    let db = TestDb::new().await;
    // The rewriter describes the statement before any run: behind this lock
    // the describe waits.
    let (holder, _) = db.session().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let output = run(db.perfaudit().args([
        "--statement-timeout",
        "1s",
        "explain",
        "SELECT * FROM payments WHERE user_id = 5",
    ]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let child = db
        .perfaudit()
        .args(["explain", "SELECT * FROM payments WHERE user_id = 6"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    db.wait_until_running("user_id = 6").await;
    common::process::stop_with(child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(db.running("user_id = 6").await, 0);
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn params_are_bound_with_the_types_the_server_infers() {
    let db = TestDb::new().await;
    let sql = "SELECT * FROM payments
               WHERE user_id = $1 AND status = $2 AND created_at > $3 AND amount > $4";
    let output = explain_json(
        &db,
        &[
            // As written: the rewriter's LIMIT / ORDER BY would move the filter.
            "--no-rewrite",
            sql,
            "--param",
            "42",
            "--param",
            "completed",
            "--param",
            "2000-01-01 00:00:00+00",
            "--param",
            "1.50",
        ],
    );
    let statement = &document(&output, 0)["statements"][0];
    // The report records what was bound.
    assert_eq!(
        statement["params"],
        serde_json::json!(["42", "completed", "2000-01-01 00:00:00+00", "1.50"])
    );
    let filter = statement["plan"][0]["Plan"]["Filter"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let filter = if filter.is_empty() {
        statement["plan"][0]["Plan"]["Plans"][0]["Filter"]
            .as_str()
            .unwrap()
            .to_owned()
    } else {
        filter
    };
    for bound in [
        "'42'::bigint",
        "'completed'::text",
        "timestamp with time zone",
        "(amount > 1.50)",
    ] {
        assert!(filter.contains(bound), "{bound} not in {filter}");
    }
    assert!(statement["nodes"][0]["actual_rows"].as_f64().unwrap() > 0.0);

    // A value is data, never SQL.
    let original = fingerprint(&db).await;
    let output = explain_json(
        &db,
        &[
            "SELECT * FROM payments WHERE status = $1",
            "--param",
            "x'; DROP TABLE payments; --",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(fingerprint(&db).await, original);
}

#[tokio::test]
async fn bad_params_are_input_errors() {
    let db = TestDb::new().await;
    let sql = "SELECT * FROM payments WHERE user_id = $1 AND created_at > $2";
    let output = explain_json(&db, &[sql, "--param", "42", "--param", "last tuesday"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--param 2 (\"last tuesday\") does not fit $2 in statement 1"),
        "{}",
        stderr(&output)
    );
    let output = explain_json(&db, &[sql, "--param", "42"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("uses $2 but 1 --param value was given"),
        "{}",
        stderr(&output)
    );
    let output = explain_json(&db, &["SELECT 1", "--param", "42"]);
    assert_eq!(output.status.code(), Some(2));
    let output = explain_json(&db, &["SELECT $1 = $2"]);
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn json_has_the_documented_shape() {
    let db = TestDb::new().await;
    let output = explain_json(
        &db,
        &[
            "--runs",
            "3",
            "--warmup",
            "1",
            "SELECT count(*) FROM payments;\n  SELECT * FROM users WHERE id = 7",
        ],
    );
    let document = document(&output, 0);
    let statements = document["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    let second = &statements[1];
    assert_eq!(
        (second["line"].as_u64(), second["column"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(second["original"], "SELECT * FROM users WHERE id = 7");
    // users has its own created_at, which the server confirms.
    assert_eq!(
        second["executed"],
        "SELECT * FROM users WHERE id = 7 ORDER BY created_at DESC LIMIT 1000"
    );
    assert_eq!(second["rewrite"]["enabled"], true);
    let rules: Vec<&str> = second["rewrite"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["order-by", "limit"]);
    assert_eq!(statements[0]["rewrite"]["skipped"][0]["rule"], "order-by");
    assert_eq!(second["class"]["kind"], "read");
    assert_eq!(
        (second["runs"].as_u64(), second["warmup"].as_u64()),
        (Some(3), Some(1))
    );
    for key in ["planning_ms", "execution_ms", "round_trip_ms"] {
        let spread = &second["timing"][key];
        let values: Vec<f64> = ["min", "median", "p95", "max"]
            .iter()
            .map(|k| {
                spread[k]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{key}.{k}: {spread}"))
            })
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{key}: {values:?}");
    }
    assert!(second["buffers"]["first_run"]["hit"].is_number());
    assert!(second["buffers"]["later_runs"]["read"].is_number());
    assert_eq!(second["plan"][0]["Plan"]["Node Type"], "Limit");
    let nodes = second["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["label"], "Limit");
    let node = nodes
        .iter()
        .find(|node| node["label"] == "Index Scan using users_pkey on users")
        .unwrap_or_else(|| panic!("no index scan in {nodes:?}"));
    for key in [
        "id",
        "depth",
        "estimated_rows",
        "actual_rows",
        "loops",
        "total_ms",
        "self_ms",
        "self_share",
    ] {
        assert!(node[key].is_number(), "{key}: {node}");
    }
    assert!(second["costliest_node"].as_u64().unwrap() < nodes.len() as u64);
    assert_eq!(second["rolled_back"], true);
    assert!(second["findings"].is_array());
}

#[tokio::test]
async fn index_probes_on_the_join_key_pass_a_warning_gate() {
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE INDEX idx_payments_user_id ON payments (user_id); ANALYZE payments",
    )
    .await;
    // A nested loop semi join probing that index once per user: the best
    // plan, whose inner filter (amount > 0) is no join column.
    let sql = "SELECT * FROM users u WHERE u.id < 3000 AND EXISTS \
               (SELECT 1 FROM payments p WHERE p.user_id = u.id AND p.amount > 0)";
    let output = explain_json(&db, &["--no-rewrite", "--fail-on", "warning", sql]);
    let statement = &document(&output, 0)["statements"][0];
    let nodes = statement["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n["node_type"] == "Nested Loop" && n["join_type"] == "Semi"),
        "{statement:#}"
    );
    assert!(
        statement["findings"].as_array().unwrap().is_empty(),
        "{statement:#}"
    );
}

#[tokio::test]
async fn nodes_stopped_early_by_design_are_no_misestimate() {
    let db = TestDb::new().await;
    // Each inner run, or subplan run, stops at the first of the ~90,000
    // completed payments it was estimated to read.
    for (sql, stopping) in [
        (
            "SELECT * FROM users u WHERE u.id < 50 AND EXISTS (SELECT 1 FROM payments p \
             WHERE p.status = 'completed' AND p.created_at > u.created_at)",
            "Semi Join",
        ),
        (
            "SELECT u.id, EXISTS (SELECT 1 FROM payments p WHERE p.status = 'completed' \
             AND p.created_at > u.created_at) FROM users u WHERE u.id < 50",
            "SubPlan",
        ),
    ] {
        let output = explain_json(&db, &["--no-rewrite", "--fail-on", "warning", sql]);
        let statement = &document(&output, 0)["statements"][0];
        let labels: Vec<&str> = statement["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["label"].as_str().unwrap())
            .collect();
        assert!(
            labels.iter().any(|label| label.contains(stopping)),
            "{labels:?}"
        );
        assert!(
            !codes(statement).contains(&"row-misestimate".to_owned()),
            "{statement:#}"
        );
    }
}

#[tokio::test]
async fn gates_fail_with_exit_1_and_still_print_the_report() {
    let db = TestDb::new().await;
    let sql = "SELECT * FROM payments WHERE user_id = 42";
    let output = explain_json(&db, &["--max-ms", "0.0001", sql]);
    let report = document(&output, 1);
    assert_eq!(report["statements"][0]["original"], sql);
    assert!(
        stderr(&output)
            .contains("gate failed: statement 1 (line 1, column 1): the median execution time"),
        "{}",
        stderr(&output)
    );
    document(&explain_json(&db, &["--max-ms", "60000", sql]), 0);

    let output = explain_json(&db, &["--fail-on", "warning", sql]);
    document(&output, 1);
    assert!(
        stderr(&output).contains("selective-seq-scan (warning) at or above --fail-on warning"),
        "{}",
        stderr(&output)
    );
    document(&explain_json(&db, &["--fail-on", "critical", sql]), 0);

    let output = explain_json(&db, &["--max-ms", "5", "DELETE FROM payments"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a budget cannot gate what does not run"
    );
}

#[tokio::test]
async fn a_gate_the_servers_word_makes_unmeasurable_runs_nothing_however_late() {
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'",
    )
    .await;
    // Past the first batch explain reads at a time: the statements before
    // it would have run, and been reported, had it been found only when
    // its turn came.
    let sql = format!("{}SELECT bump()", "SELECT 1;\n".repeat(1_000));
    let output = explain_json(&db, &["--max-ms", "60000", &sql]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "--max-ms needs every statement executed, but statement 1001 (line 1001, column 1) \
             is only planned"
        ),
        "{}",
        stderr(&output)
    );
    nothing_explained(&output, "input");
}

#[tokio::test]
async fn no_analyze_executes_nothing() {
    let db = TestDb::new().await;
    // Not folded by the planner: it fails only when executed.
    let sql = "SELECT amount / 0 FROM payments";
    let output = explain_json(&db, &["--no-analyze", sql]);
    let statement = &document(&output, 0)["statements"][0];
    assert_eq!(statement["analyzed"], false);
    assert!(statement["timing"]["execution_ms"].is_null());
    let output = explain_json(&db, &[sql]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("division by zero"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn refused_and_unparsable_statements_are_input_errors() {
    let db = TestDb::new().await;
    for (sql, expected) in [
        (
            "VACUUM payments",
            "VACUUM cannot run inside a transaction block",
        ),
        (
            "CREATE INDEX CONCURRENTLY i ON payments (status)",
            "perfaudit indexes",
        ),
        ("SET work_mem = '1GB'", "SET is not a query"),
        ("SELECT FROM WHERE", "does not parse at line 1, column 13"),
        ("  -- nothing", "no SQL statement to explain"),
    ] {
        let output = explain_json(&db, &[sql]);
        assert_eq!(output.status.code(), Some(2), "{sql}");
        assert!(
            stderr(&output).contains(expected),
            "{sql}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn the_rendered_report_holds_plan_timing_cache_and_findings() {
    let db = TestDb::new().await;
    // The same plan on every run and machine: no parallel workers, and
    // statistics from every row (ANALYZE otherwise samples at random).
    set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    execute(
        &db,
        "ALTER TABLE payments ALTER COLUMN user_id SET STATISTICS 10000; ANALYZE payments",
    )
    .await;
    let output = run(db.perfaudit().args([
        "explain",
        "--runs",
        "2",
        "--warmup",
        "1",
        "SELECT * FROM payments WHERE user_id = 42 ORDER BY created_at",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    // Times and shares change from run to run, and move the padding.
    insta::with_settings!({filters => vec![
        (r"\d+\.\d+%?", "#"),
        (r"[─═┬┼┴╪]+", "─"),
        (r" +", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });
}
