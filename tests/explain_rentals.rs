//! explain on the rentals fixture (fixtures/rentals/), a schema nobody tuned
//! for perfaudit: findings are judged on the statement the user wrote
//! (never on what perfaudit's rewrite added to it), the partitions of one
//! table together, no DDL is suggested that an index already gives or
//! PostgreSQL refuses, and valid SQL perfaudit's parser cannot read is
//! planned, never refused.

mod common;

use common::TestDb;
use common::explain::{document, explain_json};
use perfaudit::sql::ident::quote;
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
    let rewritten = document(&explain_json(&db, &["--fail-on", "critical", MONTHLY]), 1);
    // The document says why the run failed, as the exit code does.
    assert_eq!(rewritten["error"]["kind"], "gate", "{rewritten:#}");
    assert_eq!(rewritten["error"]["exit_code"], 1, "{rewritten:#}");
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
    // The report says plainly that the LIMIT changed the plan.
    let change = rewritten["plan_change"].as_str().unwrap_or_default();
    assert!(
        change.starts_with("the rewrite changed the plan: a serial plan became parallel"),
        "{rewritten:#}"
    );
    assert_eq!(written["plan_change"], Value::Null, "{written:#}");
    // The halves of the parallel aggregate are named as PEV2 names them, and
    // each node carries what PostgreSQL printed of it.
    let labels: Vec<&str> = rewritten["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.iter().any(|l| l.starts_with("Finalize "))
            && labels.iter().any(|l| l.starts_with("Partial ")),
        "{labels:?}"
    );
    let gather = rewritten["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["node_type"] == "Gather Merge")
        .unwrap();
    assert!(
        gather["workers_planned"].as_f64().unwrap() > 0.0,
        "{gather:#}"
    );
    assert!(gather["workers_launched"].is_number(), "{gather:#}");
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

/// The `selective-seq-scan` findings of `statement`.
fn seq_scan_findings(statement: &Value) -> Vec<&Value> {
    found(statement, "selective-seq-scan")
        .into_iter()
        .map(|(finding, _)| finding)
        .collect()
}

#[tokio::test]
async fn small_partitions_read_whole_are_one_large_scan() {
    let db = TestDb::rentals().await;
    // Serial, so that rows are counted exactly (parallel workers' counts
    // are averages per loop, rounded).
    common::explain::set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    // 55 partitions of about 5,800 rows each: each alone is below the
    // 10,000 rows from which a sequential scan is worth a finding.
    common::explain::execute(
        &db,
        "CREATE TABLE billing.ledger (entry_id int, account int, amount numeric) \
             PARTITION BY HASH (entry_id);
         DO $$ BEGIN FOR i IN 0..54 LOOP
             EXECUTE format('CREATE TABLE billing.ledger_%s PARTITION OF billing.ledger \
                             FOR VALUES WITH (MODULUS 55, REMAINDER %s)', i, i);
         END LOOP; END $$;
         INSERT INTO billing.ledger SELECT g, g % 5000, g / 100.0 FROM generate_series(1, 320000) g;
         ANALYZE billing.ledger;",
    )
    .await;
    let report = document(
        &explain_json(
            &db,
            &[
                "--no-rewrite",
                "SELECT * FROM billing.ledger WHERE account = 42",
            ],
        ),
        0,
    );
    let statement = &report["statements"][0];
    let found = seq_scan_findings(statement);
    assert_eq!(found.len(), 1, "{statement:#}");
    let finding = found[0];
    let node = &statement["nodes"][finding["node"].as_u64().unwrap() as usize];
    assert_eq!(node["node_type"], "Append", "{statement:#}");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("55 sequential scans of partitions of billing.ledger")
            && message.contains("read 320,000 rows and kept 64 "),
        "{message}"
    );
    // The index goes on the partitioned table, which builds it on every
    // partition: not on the one partition the plan happened to name.
    let ddl = finding["ddl"].as_str().unwrap();
    assert!(
        ddl.starts_with("CREATE INDEX \"idx_ledger_account\" ON ONLY \"billing\".\"ledger\""),
        "{ddl}"
    );
}

#[tokio::test]
async fn a_partitioned_table_gets_one_finding_and_its_index_on_the_parent() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    // staff_id has no index; every partition holds 22,000-26,000 rows.
    let report = document(
        &explain_json(
            &db,
            &[
                "--no-rewrite",
                "SELECT * FROM billing.rental_payment WHERE staff_id = 7",
            ],
        ),
        0,
    );
    let statement = &report["statements"][0];
    let found = seq_scan_findings(statement);
    assert_eq!(
        found.len(),
        1,
        "one finding, not one per partition: {statement:#}"
    );
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("13 sequential scans of partitions of billing.rental_payment")
            && message.contains("read 300,000 rows"),
        "{message}"
    );
    assert!(
        found[0]["ddl"]
            .as_str()
            .unwrap()
            .contains("ON ONLY \"billing\".\"rental_payment\" (\"staff_id\")"),
        "{:#}",
        found[0]
    );
    // A scan the plan prunes to one partition gets the parent's index too.
    let pruned = document(
        &explain_json(
            &db,
            &[
                "--no-rewrite",
                "SELECT * FROM billing.rental_payment WHERE staff_id = 7 \
                 AND paid_at >= '2024-06-01' AND paid_at < '2024-07-01'",
            ],
        ),
        0,
    );
    let statement = &pruned["statements"][0];
    let found = seq_scan_findings(statement);
    assert_eq!(found.len(), 1, "{statement:#}");
    assert!(
        found[0]["ddl"]
            .as_str()
            .unwrap()
            .contains("ON ONLY \"billing\".\"rental_payment\""),
        "{:#}",
        found[0]
    );
}

#[tokio::test]
async fn no_index_is_suggested_that_an_existing_one_already_gives() {
    let db = TestDb::rentals().await;
    // rental_customer_id_idx (customer_id, rented_at) exists; comparing a
    // cast of the column keeps the planner off it.
    for sql in [
        "SELECT * FROM store.rental WHERE customer_id::text = '42'",
        "SELECT * FROM store.rental WHERE customer_id::text = '42' AND rented_at::date = '2024-03-01'",
    ] {
        let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
        let statement = &report["statements"][0];
        let found = seq_scan_findings(statement);
        assert_eq!(found.len(), 1, "{statement:#}");
        let suggestion = found[0]["suggestion"].as_str().unwrap();
        assert_eq!(found[0]["ddl"], Value::Null, "{suggestion}");
        assert!(
            suggestion.starts_with("an index on the filtered")
                && suggestion.contains("the index rental_customer_id_idx already leads with"),
            "{sql}: {suggestion}"
        );
    }
}

#[tokio::test]
async fn a_spilled_sort_gets_an_index_only_where_one_could_order_the_rows() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "work_mem = '64kB'").await;
    let spill = |sql: &str| {
        let report = document(&explain_json(&db, &["--no-limit", sql]), 0);
        let statement = report["statements"][0].clone();
        statement["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "sort-spill")
            .unwrap_or_else(|| panic!("no sort-spill: {statement:#}"))["suggestion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // rented_at is timestamptz: date_trunc over it is not IMMUTABLE, and
    // PostgreSQL refuses an index on it.
    let by_month = spill(
        "SELECT date_trunc('month', rented_at) AS month, rental_id FROM store.rental ORDER BY 1",
    );
    assert!(!by_month.contains("index"), "{by_month}");
    let by_column = spill("SELECT rental_id, returned_at FROM store.rental ORDER BY returned_at");
    assert!(
        by_column.contains("an index on rental (returned_at)"),
        "{by_column}"
    );
}

/// Valid PostgreSQL that sqlparser 0.64 cannot read, each the smallest
/// reproduction docs/commands/explain.md lists for reporting upstream.
const UNREAD: &[&str] = &[
    "SELECT (address).* FROM store.store",
    "SELECT concat(VARIADIC ARRAY['a', 'b'])",
    "SELECT count(*) OVER (ORDER BY rented_at RANGE BETWEEN '1 day'::interval PRECEDING \
     AND CURRENT ROW) FROM store.rental",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) \
     SEARCH DEPTH FIRST BY n SET ord SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) \
     CYCLE n SET is_cycle USING path SELECT * FROM t",
    "SELECT SUBSTRING('abc' SIMILAR 'a%' ESCAPE '#')",
    "SELECT COLLATION FOR ('foo')",
    "SELECT * FROM store.store a, store.store b WHERE a *= b",
    "TABLE store.category",
    "SELECT * FROM ROWS FROM (generate_series(1, 3), generate_series(1, 2))",
    "SELECT sum(rental_id) OVER (ORDER BY rental_id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING \
     EXCLUDE CURRENT ROW) FROM store.rental",
];

#[tokio::test]
async fn valid_sql_the_parser_cannot_read_is_planned_never_refused() {
    let db = TestDb::rentals().await;
    for sql in UNREAD {
        let report = document(&explain_json(&db, &[sql]), 0);
        let statement = &report["statements"][0];
        assert_eq!(statement["class"]["kind"], "unread", "{sql}: {statement:#}");
        assert_eq!(statement["analyzed"], false, "{sql}");
        assert_eq!(
            statement["executed"], statement["original"],
            "run unmodified: {sql}"
        );
        let note = statement["notes"][0].as_str().unwrap();
        assert!(
            note.contains("perfaudit's parser cannot read it"),
            "{sql}: {note}"
        );
        assert!(
            statement["nodes"]
                .as_array()
                .is_some_and(|nodes| !nodes.is_empty()),
            "planned: {sql}"
        );
    }
    // What the parser does read of the same family runs as usual.
    for sql in [
        "SELECT * FROM json_to_record('{\"a\": 1}') AS x(a int)",
        "SELECT r.status, count(*) FROM store.rental r GROUP BY GROUPING SETS ((r.status), ())",
        "SELECT U&'d\\0061t\\+000061'",
    ] {
        let report = document(&explain_json(&db, &[sql]), 0);
        assert_eq!(report["statements"][0]["analyzed"], true, "{sql}");
    }
}

#[tokio::test]
async fn a_parallel_scan_counts_rows_and_rows_removed_in_one_unit() {
    let db = TestDb::rentals().await;
    for setting in [
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
    ] {
        common::explain::set_for_database(&db, setting).await;
    }
    let report = document(
        &explain_json(
            &db,
            &[
                "--no-rewrite",
                "SELECT * FROM store.rental WHERE status = 'lost'",
            ],
        ),
        0,
    );
    let statement = &report["statements"][0];
    let scan = statement["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["node_type"] == "Seq Scan")
        .unwrap_or_else(|| panic!("{statement:#}"));
    let loops = scan["loops"].as_f64().unwrap();
    assert!(loops > 1.0, "a parallel scan: {scan:#}");
    // Both per loop: over all loops they make the table's 100,000 rows
    // (each per-loop figure is rounded by PostgreSQL).
    let per_loop =
        scan["actual_rows"].as_f64().unwrap() + scan["rows_removed_by_filter"].as_f64().unwrap();
    let total = per_loop * loops;
    assert!(
        (total - 100_000.0).abs() <= 2.0 * loops,
        "{total} rows over {loops} loops: {scan:#}"
    );
}

#[tokio::test]
async fn a_join_filter_that_discards_nearly_every_pair_is_a_finding() {
    let db = TestDb::rentals().await;
    // Not an equality: the nested loop builds every pair, 16 categories by
    // 100,000 rentals, and keeps a few hundred.
    let sql = "SELECT c.name, r.rental_id FROM store.category c \
               JOIN store.rental r ON r.rental_id + 0 BETWEEN c.category_id * 1000 \
                                                          AND c.category_id * 1000 + 10";
    let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
    let statement = &report["statements"][0];
    let found: Vec<&Value> = statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "join-filter-discards")
        .collect();
    assert_eq!(found.len(), 1, "{statement:#}");
    assert_eq!(found[0]["severity"], "critical", "{:#}", found[0]);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("threw away 1,599,824 of the 1,600,000 row pairs"),
        "{message}"
    );
}

#[tokio::test]
async fn every_suggested_index_is_proven_with_hypopg_or_said_unproven() {
    // HypoPG is what proves (common::hypopg reports it missing once).
    if !common::hypopg() {
        return;
    }
    let db = TestDb::rentals().await;
    let suggestion = |report: &Value| -> (String, Value) {
        let statement = &report["statements"][0];
        let found = seq_scan_findings(statement);
        assert_eq!(found.len(), 1, "{statement:#}");
        (
            found[0]["suggestion"].as_str().unwrap().to_owned(),
            found[0]["ddl"].clone(),
        )
    };
    let by_staff = "SELECT * FROM store.rental WHERE staff_id = 3";
    // Without HypoPG in the database: the DDL, said to be unproven.
    let (said, ddl) = suggestion(&document(
        &explain_json(&db, &["--no-rewrite", by_staff]),
        0,
    ));
    assert!(said.contains("unproven (HypoPG is not installed"), "{said}");
    assert!(ddl.is_string(), "{said}");

    common::explain::execute(&db, "CREATE EXTENSION hypopg").await;
    let (said, ddl) = suggestion(&document(
        &explain_json(&db, &["--no-rewrite", by_staff]),
        0,
    ));
    assert!(
        said.contains(
            "perfaudit advise, trying candidate indexes as hypothetical indexes (HypoPG), \
             chose (staff_id): the statement's estimated cost falls from"
        ),
        "{said}"
    );
    assert_eq!(
        ddl,
        "CREATE INDEX CONCURRENTLY \"idx_rental_staff_id\" ON \"store\".\"rental\" (\"staff_id\");"
    );
    // An index on rented_at cannot serve a comparison of rented_at::date:
    // the planner does not use it, and no DDL is given.
    let by_day = "SELECT * FROM store.rental WHERE rented_at::date = '2024-03-01'";
    let (said, ddl) = suggestion(&document(&explain_json(&db, &["--no-rewrite", by_day]), 0));
    assert_eq!(ddl, Value::Null, "{said}");
    assert!(
        said.contains("no index on a column of rental serves this filter as written")
            && said.contains("becomes the range"),
        "{said}"
    );
    // An index the planner uses but that saves little is not worth what it
    // costs every write: advise's 50% rule, so the two commands agree.
    let open = "SELECT r.rental_id, p.amount FROM store.rental r \
                JOIN billing.rental_payment p USING (rental_id) \
                WHERE r.status = 'open' AND r.rented_at < '2024-12-01'";
    let report = document(&explain_json(&db, &["--no-rewrite", open]), 0);
    let statement = &report["statements"][0];
    let with_ddl: Vec<&Value> = statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ddl"].is_string())
        .collect();
    assert!(with_ddl.is_empty(), "{statement:#}");
    assert!(
        statement["findings"]
            .to_string()
            .contains("less than --min-improvement 50%"),
        "{statement:#}"
    );
}

/// Statements of the rentals workload, each with its `--param` values:
/// plain and partitioned scans, partition pruning, casts and functions of a
/// column, expression and partial indexes, joins, sorts, a view, quoted
/// names and a write.
const WORKLOAD: &[(&str, &[&str])] = &[
    ("SELECT * FROM store.rental WHERE staff_id = 3", &[]),
    (
        "SELECT * FROM billing.rental_payment WHERE staff_id = 7",
        &[],
    ),
    (
        "SELECT * FROM billing.rental_payment WHERE staff_id = 7 \
         AND paid_at >= '2024-03-01' AND paid_at < '2024-04-01'",
        &[],
    ),
    (
        "SELECT * FROM store.rental WHERE rented_at::date = '2024-03-01'",
        &[],
    ),
    (
        "SELECT * FROM billing.rental_payment \
         WHERE date_trunc('month', paid_at) = '2024-03-01'",
        &[],
    ),
    (
        "SELECT r.rental_id, p.amount FROM store.rental r \
         JOIN billing.rental_payment p USING (rental_id) \
         WHERE r.status = 'open' AND r.rented_at < '2024-12-01'",
        &[],
    ),
    (
        "SELECT * FROM store.customer WHERE lower(email) = 'c42@example.com'",
        &[],
    ),
    (
        "SELECT * FROM store.rental WHERE customer_id = $1 ORDER BY rented_at DESC LIMIT 10",
        &["42"],
    ),
    (
        "SELECT * FROM store.rental ORDER BY returned_at DESC LIMIT 20",
        &[],
    ),
    (
        "SELECT s.full_name, count(*) FROM store.staff s JOIN store.rental r USING (staff_id) \
         WHERE r.staff_id = $1 GROUP BY s.full_name",
        &["4"],
    ),
    ("SELECT * FROM store.inventory WHERE store_id = 2", &[]),
    (
        "SELECT \"Body\" FROM store.\"StoreNotes\" WHERE \"StoreId\" = 3",
        &[],
    ),
    (
        "SELECT * FROM store.rental_detail WHERE customer_id = 42 AND rented_at > '2024-06-01'",
        &[],
    ),
    (
        "UPDATE store.rental SET staff_id = staff_id WHERE staff_id = 5 AND status = 'open'",
        &[],
    ),
];

/// Checks that `statement`'s findings come by estimated saving, the
/// largest first, those without one last, and that a scan's saving is the
/// scan's time.
fn assert_ranked_by_saving(statement: &Value) {
    let findings = statement["findings"].as_array().unwrap();
    let savings: Vec<f64> = findings
        .iter()
        .map(|f| f["saving"]["ms"].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(
        savings.windows(2).all(|pair| pair[0] >= pair[1]),
        "{savings:?}: {statement:#}"
    );
    let execution = statement["timing"]["execution_ms"]["median"].as_f64();
    for finding in findings
        .iter()
        .filter(|f| f["code"] == "selective-seq-scan")
    {
        let node = &statement["nodes"][finding["node"].as_u64().unwrap() as usize];
        let saving = &finding["saving"];
        assert_eq!(saving["ms"], node["total_ms"], "{finding:#}\n{node:#}");
        assert_eq!(saving["basis"], "the node's time with all below it");
        let share = saving["share"].as_f64().unwrap();
        let expected = node["total_ms"].as_f64().unwrap() / execution.unwrap();
        assert!(
            (share - expected.min(1.0)).abs() < 0.01,
            "{share} {expected}"
        );
    }
}

/// The DDL statements of a statement's suggestions, each on its line, in
/// the order they run.
fn ddl_lines(ddl: impl Iterator<Item = String>) -> Vec<String> {
    ddl.flat_map(|ddl| ddl.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The schemas and names of the indexes `ddl` creates.
fn created(ddl: &[String]) -> Vec<(String, String)> {
    let create =
        regex::Regex::new(r#"^CREATE INDEX (?:CONCURRENTLY )?"([^"]+)" ON (?:ONLY )?"([^"]+)"\."#)
            .unwrap();
    ddl.iter()
        .filter_map(|line| {
            let found = create.captures(line)?;
            Some((found[2].to_owned(), found[1].to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn explain_and_advise_agree_and_every_suggested_index_is_built_valid_new_and_used() {
    let Some(db) = common::hypopg_db(common::Fixture::Rentals).await else {
        return;
    };
    let client = db.client().await;
    let (mut suggested, mut declined) = (0, 0);
    for (sql, params) in WORKLOAD {
        let mut args: Vec<&str> = Vec::new();
        for param in *params {
            args.extend(["--param", param]);
        }
        args.push(sql);
        let explained = document(&explain_json(&db, &args), 0);
        assert_ranked_by_saving(&explained["statements"][0]);
        let from_explain = ddl_lines(
            explained["statements"][0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["ddl"].as_str().map(str::to_owned)),
        );
        let advised = document(
            &common::explain::run(db.perfaudit().args(["--format", "json", "advise", sql])),
            0,
        );
        let from_advise = ddl_lines(
            advised["indexes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["ddl"].as_str().unwrap().to_owned()),
        );
        assert_eq!(
            from_explain, from_advise,
            "{sql}: explain and advise disagree\n{explained:#}\n{advised:#}"
        );
        if from_explain.is_empty() {
            declined += 1;
            continue;
        }
        suggested += 1;
        // Accepted by the server: built, and valid.
        for line in &from_explain {
            client
                .batch_execute(line)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {line}: {e}"));
        }
        let names = created(&from_explain);
        for (schema, name) in &names {
            let relation = format!("{}.{}", quote(schema), quote(name));
            let row = client
                .query_one(
                    "SELECT n.indisvalid, \
                            (SELECT count(*) FROM pg_index o \
                              WHERE o.indrelid = n.indrelid AND o.indexrelid <> n.indexrelid \
                                AND o.indpred IS NULL AND o.indexprs IS NULL AND o.indisvalid \
                                AND (o.indkey::text = n.indkey::text \
                                     OR o.indkey::text LIKE n.indkey::text || ' %')) \
                     FROM pg_index n WHERE n.indexrelid = $1::text::regclass",
                    &[&relation],
                )
                .await
                .unwrap_or_else(|e| panic!("{sql}: {relation}: {e}"));
            let (valid, equivalent): (bool, i64) = (row.get(0), row.get(1));
            assert!(valid, "{sql}: {relation} is not valid");
            assert_eq!(equivalent, 0, "{sql}: an index already gave {relation}");
        }
        // Used by the planner for that statement.
        let plan = plan_text(&client, sql, params).await;
        assert!(
            names.iter().any(|(_, name)| plan.contains(name.as_str())),
            "{sql}: the plan uses none of {names:?}:\n{plan}"
        );
        // Back to the fixture's indexes for the next statement.
        for (schema, name) in names
            .iter()
            .filter(|(_, name)| !name.ends_with(char::is_numeric))
        {
            client
                .batch_execute(&format!("DROP INDEX {}.{}", quote(schema), quote(name)))
                .await
                .unwrap();
        }
    }
    // The workload asks both questions.
    assert!(
        suggested >= 3 && declined >= 3,
        "{suggested} suggested, {declined} declined"
    );
}

/// The plain `EXPLAIN` of `sql` with `params` (text, typed by the server
/// as it types explain's `--param`), as one string.
async fn plan_text(client: &tokio_postgres::Client, sql: &str, params: &[&str]) -> String {
    let explain = if params.is_empty() {
        format!("EXPLAIN {sql}")
    } else {
        client
            .batch_execute(&format!("PREPARE agreement AS {sql}"))
            .await
            .unwrap();
        let values: Vec<String> = params.iter().map(|p| format!("'{p}'")).collect();
        format!("EXPLAIN EXECUTE agreement({})", values.join(", "))
    };
    let mut plan = String::new();
    for message in client.simple_query(&explain).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            plan.push_str(row.get(0).unwrap());
            plan.push('\n');
        }
    }
    if !params.is_empty() {
        client.batch_execute("DEALLOCATE agreement").await.unwrap();
    }
    plan
}

/// The findings of `code` in `statement`, each with the type of its node.
fn found<'a>(statement: &'a Value, code: &str) -> Vec<(&'a Value, String)> {
    statement["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| {
            let node = f["node"].as_u64().map_or(Value::Null, |id| {
                statement["nodes"][id as usize]["node_type"].clone()
            });
            (f, node.as_str().unwrap_or("statement").to_owned())
        })
        .collect()
}

#[tokio::test]
async fn sorts_that_spill_where_no_sort_method_says_so_are_found() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "work_mem = '64kB'").await;
    common::explain::set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    let explain = |sql: &str| {
        let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
        report["statements"][0].clone()
    };
    // rental_customer_id_idx gives the rows by customer_id: each customer's
    // rentals are sorted by rental_id on their own, the largest (customer
    // 1's 946) on disk.
    let incremental = explain("SELECT * FROM store.rental ORDER BY customer_id, rental_id");
    let spills = found(&incremental, "sort-spill");
    assert_eq!(spills.len(), 1, "{incremental:#}");
    let (finding, node) = &spills[0];
    assert_eq!(node, "Incremental Sort", "{incremental:#}");
    assert_eq!(finding["severity"], "warning");
    assert_eq!(
        finding["message"],
        "Incremental Sort spilled to disk (external merge in its 87 pre-sorted groups, 56 kB \
         of temporary files at most for one group) because its rows did not fit in work_mem"
    );
    // Sorted by all three keys but rental_id, each group is small enough.
    let in_memory =
        explain("SELECT * FROM store.rental ORDER BY customer_id, rented_at, rental_id");
    assert!(
        in_memory["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["node_type"] == "Incremental Sort"),
        "{in_memory:#}"
    );
    assert!(found(&in_memory, "sort-spill").is_empty(), "{in_memory:#}");
    // count(DISTINCT ...) sorts inside the aggregate, which says nothing
    // of it but the temporary files it wrote.
    let distinct = explain("SELECT count(DISTINCT returned_at) FROM store.rental");
    let spills = found(&distinct, "sort-spill");
    assert_eq!(spills.len(), 1, "{distinct:#}");
    assert_eq!(spills[0].1, "Aggregate", "{distinct:#}");
    assert_eq!(
        spills[0].0["message"],
        "Aggregate spilled to disk (it wrote 2,624 kB of temporary files) because its rows did \
         not fit in work_mem"
    );
}

#[tokio::test]
async fn jit_that_outlasts_a_short_query_is_a_finding() {
    let db = TestDb::rentals().await;
    // A hundred rows: JIT only because every threshold is 0.
    let sql = "SELECT status, count(*) FROM store.rental WHERE rental_id < 100 GROUP BY status";
    let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
    let statement = &report["statements"][0];
    assert_eq!(statement["plan"][0]["JIT"], Value::Null, "{statement:#}");
    assert!(
        found(statement, "jit-dominates").is_empty(),
        "{statement:#}"
    );

    for setting in [
        "jit_above_cost = 0",
        "jit_inline_above_cost = 0",
        "jit_optimize_above_cost = 0",
    ] {
        common::explain::set_for_database(&db, setting).await;
    }
    let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
    let statement = &report["statements"][0];
    let document = &statement["plan"][0];
    let jit = found(statement, "jit-dominates");
    assert_eq!(jit.len(), 1, "{statement:#}");
    let (finding, node) = &jit[0];
    assert_eq!(node, "statement");
    assert_eq!(finding["severity"], "warning");
    let message = finding["message"].as_str().unwrap();
    let total = document["JIT"]["Timing"]["Total"].as_f64().unwrap();
    let execution = document["Execution Time"].as_f64().unwrap();
    assert!(
        message.starts_with(&format!(
            "JIT compilation of {} functions took {total:.1} ms, ",
            document["JIT"]["Functions"]
        )) && message.ends_with(&format!("of the {execution:.1} ms of execution")),
        "{message}"
    );
    let suggestion = finding["suggestion"].as_str().unwrap();
    assert!(
        suggestion.contains("SET LOCAL jit = off")
            && suggestion.contains("jit_optimize_above_cost"),
        "{suggestion}"
    );
}

#[tokio::test]
async fn an_index_searched_without_its_leading_column_is_read_through() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    // Wide rows, so that the planner prefers reading a whole index of
    // (customer_id, paid_at) to the table; vacuumed, for an index-only scan.
    // VACUUM marks a page all-visible only once the commit that wrote its
    // rows is flushed, which the harness's cluster does not wait for.
    common::explain::execute(
        &db,
        "SET LOCAL synchronous_commit = on;
         CREATE TABLE billing.payment_note AS \
             SELECT payment_id, customer_id, paid_at, repeat('x', 200) AS memo \
             FROM billing.rental_payment;
         CREATE INDEX payment_note_customer_paid ON billing.payment_note (customer_id, paid_at)",
    )
    .await;
    common::explain::execute(&db, "VACUUM ANALYZE billing.payment_note").await;
    let explain = |sql: &str| {
        let report = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
        report["statements"][0].clone()
    };
    // The 3,065 late payments of January 2025.
    let late = explain("SELECT count(*) FROM billing.payment_note WHERE paid_at >= '2025-01-01'");
    let found_there = found(&late, "index-cond-non-leading");
    assert_eq!(found_there.len(), 1, "{late:#}");
    let (finding, node) = &found_there[0];
    assert_eq!(node, "Index Only Scan", "{late:#}");
    assert_eq!(finding["severity"], "warning");
    let scan = &late["nodes"][finding["node"].as_u64().unwrap() as usize];
    let blocks =
        scan["shared_hit_blocks"].as_f64().unwrap() + scan["shared_read_blocks"].as_f64().unwrap();
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Index Only Scan using payment_note_customer_paid on payment_note read {} blocks of \
             an index of 1,158 pages: its condition (paid_at >= ",
            perfaudit::explain::findings::count(blocks)
        )) && message.ends_with(
            "constrains paid_at but not customer_id, which the index (customer_id, paid_at) \
             leads with, so the scan cannot seek and reads the index through"
        ),
        "{message}"
    );
    assert!(blocks >= 1_100.0, "{scan:#}");
    assert_eq!(
        finding["ddl"],
        "CREATE INDEX CONCURRENTLY \"idx_payment_note_paid_at\" ON \"billing\".\"payment_note\" \
         (\"paid_at\");"
    );
    assert!(
        finding["suggestion"]
            .as_str()
            .unwrap()
            .ends_with("rebuild it as (paid_at, customer_id)"),
        "{finding:#}"
    );
    // With its leading column, the same index seeks.
    let seek = explain(
        "SELECT count(*) FROM billing.payment_note WHERE customer_id = 42 AND paid_at >= '2024-06-01'",
    );
    assert!(
        seek["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["label"]
                .as_str()
                .is_some_and(|label| label.contains("using payment_note_customer_paid"))),
        "{seek:#}"
    );
    assert!(
        found(&seek, "index-cond-non-leading").is_empty(),
        "{seek:#}"
    );
}

#[tokio::test]
async fn a_function_the_filter_calls_for_every_row_is_charged_to_the_scan() {
    let db = TestDb::rentals().await;
    common::explain::set_for_database(&db, "max_parallel_workers_per_gather = 0").await;
    // Warm: without track_io_timing, a block read could have taken as long
    // as a slow disk takes, and the reads of a cold copy would explain the
    // time.
    let explain = |sql: &str| {
        let report = document(
            &explain_json(&db, &["--no-rewrite", "--warmup", "1", sql]),
            0,
        );
        report["statements"][0].clone()
    };
    // LANGUAGE sql, STABLE, but a query with an aggregate: never inlined,
    // run for each of the 10,000 customers.
    let balances = explain(
        "SELECT customer_id FROM store.customer WHERE billing.customer_balance(customer_id) > 100",
    );
    let found_there = found(&balances, "function-time");
    assert_eq!(found_there.len(), 1, "{balances:#}");
    let (finding, node) = &found_there[0];
    assert_eq!(node, "Seq Scan", "{balances:#}");
    assert_eq!(finding["severity"], "warning");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.starts_with("Seq Scan on customer spent ")
            && message.contains(" µs per row for its 10,000 rows, far beyond what its ")
            && message.contains(
                "its condition calls billing.customer_balance() for every row, and PostgreSQL \
                 charges that time to the scan"
            ),
        "{message}"
    );
    // The same function for a hundred customers of a few rentals each
    // (customers 1 to 3 have hundreds) costs too little to matter.
    let few = explain(
        "SELECT customer_id FROM store.customer \
         WHERE customer_id BETWEEN 5001 AND 5100 AND billing.customer_balance(customer_id) > 100",
    );
    assert!(found(&few, "function-time").is_empty(), "{few:#}");
    // late_fee (SQL-standard body, IMMUTABLE) is inlined: the plan shows
    // its expression, charged to the scan as any built-in operator's time.
    let fees = explain(
        "SELECT rental_id FROM store.rental r \
         WHERE billing.late_fee(r.rented_at, r.returned_at, 3) > 10",
    );
    assert!(!fees["nodes"].to_string().contains("late_fee"), "{fees:#}");
    assert!(found(&fees, "function-time").is_empty(), "{fees:#}");
}

#[tokio::test]
async fn explain_and_advise_attach_a_partitions_own_index_rather_than_build_another() {
    let Some(db) = common::hypopg_db(common::Fixture::Rentals).await else {
        return;
    };
    common::explain::execute(
        &db,
        "CREATE INDEX rp_2024_03_staff ON billing.rental_payment_2024_03 (staff_id)",
    )
    .await;
    // Pruned to June: a plan that used March's index would be "already
    // indexed" to advise.
    let sql = "SELECT * FROM billing.rental_payment WHERE staff_id = 7 \
               AND paid_at >= '2024-06-01' AND paid_at < '2024-07-01'";
    let attach = "ALTER INDEX \"billing\".\"idx_rental_payment_staff_id\" ATTACH PARTITION \
                  \"billing\".\"rp_2024_03_staff\";";
    let explained = document(&explain_json(&db, &["--no-rewrite", sql]), 0);
    let statement = &explained["statements"][0];
    let found = seq_scan_findings(statement);
    assert_eq!(found.len(), 1, "{statement:#}");
    let advised = document(
        &common::explain::run(db.perfaudit().args(["--format", "json", "advise", sql])),
        0,
    );
    for ddl in [
        found[0]["ddl"].as_str().unwrap(),
        advised["indexes"][0]["ddl"].as_str().unwrap(),
    ] {
        assert!(ddl.ends_with(attach), "{ddl}");
        assert!(
            !ddl.contains("ON \"billing\".\"rental_payment_2024_03\""),
            "nothing is built on March: {ddl}"
        );
        assert_eq!(
            ddl.matches("CREATE INDEX CONCURRENTLY").count(),
            12,
            "{ddl}"
        );
    }
}
