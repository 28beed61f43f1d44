//! The rentals fixture (fixtures/rentals/) is what its README says, and
//! `perfaudit explain` reads realistic queries of it: partition pruning, a
//! view joining five tables, an expression index.

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::TestDb;
use serde_json::Value;

/// The one value `sql` returns on `db`, as text.
async fn value(db: &TestDb, sql: &str) -> String {
    db.client()
        .await
        .query_one(&format!("SELECT ({sql})::text"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// Runs `sql` on `db`.
async fn execute(db: &TestDb, sql: &str) {
    db.client()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

#[tokio::test]
async fn the_tables_hold_the_documented_rows() {
    let db = TestDb::rentals().await;
    for (table, rows) in [
        ("store.store", "4"),
        ("store.staff", "40"),
        ("store.category", "16"),
        ("store.film", "1000"),
        ("store.inventory", "8000"),
        ("store.customer", "10000"),
        ("store.rental", "100000"),
        ("store.\"StoreNotes\"", "200"),
        ("billing.rental_payment", "300000"),
        ("billing.invoice", "64680"),
        ("billing.monthly_revenue", "52"),
        ("audit.event", "0"),
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(value(&db, &sql).await, rows, "{table}");
    }
    // The skew the README promises, which plans depend on.
    let busiest = "SELECT customer_id FROM store.rental GROUP BY 1 ORDER BY count(*) DESC LIMIT 1";
    assert_eq!(value(&db, busiest).await, "1");
    let share = "SELECT round(100.0 * count(*) FILTER (WHERE status = 'completed') / count(*)) \
                 FROM billing.rental_payment";
    assert_eq!(value(&db, share).await, "97");
    // Statistics are there: the planner knows the tables' sizes.
    assert_eq!(
        value(
            &db,
            "SELECT reltuples FROM pg_class WHERE oid = 'store.rental'::regclass"
        )
        .await,
        "100000"
    );
}

#[tokio::test]
async fn the_partitions_are_twelve_months_a_default_and_three_regions() {
    let db = TestDb::rentals().await;
    let partitions = |parent: &str| {
        format!(
            "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '; ' \
                               ORDER BY c.relname) \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = '{parent}'::regclass"
        )
    };
    let monthly = value(&db, &partitions("billing.rental_payment")).await;
    let monthly: Vec<&str> = monthly.split("; ").collect();
    assert_eq!(monthly.len(), 13, "{monthly:?}");
    assert_eq!(
        monthly[0],
        "rental_payment_2024_01 FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')"
    );
    assert_eq!(monthly[12], "rental_payment_default DEFAULT");
    // Late fees paid in January 2025 are in the default partition.
    let late = "SELECT count(*) > 0 FROM billing.rental_payment_default";
    assert_eq!(value(&db, late).await, "true");
    assert_eq!(
        value(&db, &partitions("billing.invoice")).await,
        "invoice_americas FOR VALUES IN ('americas'); invoice_asia FOR VALUES IN ('asia'); \
         invoice_europe FOR VALUES IN ('europe')"
    );
}

#[tokio::test]
async fn the_documented_indexes_exist() {
    let db = TestDb::rentals().await;
    let definition = |name: &str| format!("SELECT pg_get_indexdef('{name}'::regclass)");
    for (index, ddl) in [
        (
            "store.rental_out_idx",
            "CREATE INDEX rental_out_idx ON store.rental USING btree (inventory_id) \
             WHERE (returned_at IS NULL)",
        ),
        (
            "store.customer_email_lower_key",
            "CREATE UNIQUE INDEX customer_email_lower_key ON store.customer USING btree \
             (lower((email)::text))",
        ),
        (
            "store.film_title_search_idx",
            "CREATE INDEX film_title_search_idx ON store.film USING btree \
             (store.search_key(title))",
        ),
        (
            "billing.rental_payment_failed_idx",
            "CREATE INDEX rental_payment_failed_idx ON ONLY billing.rental_payment USING btree \
             (paid_at) WHERE (status = 'failed'::text)",
        ),
    ] {
        assert_eq!(value(&db, &definition(index)).await, ddl);
    }
    // A partition's own index adopted by the parent's equivalent one; the
    // duplicate created after the parent's is attached to nothing.
    let parent_of = |name: &str| {
        format!(
            "SELECT coalesce((SELECT inhparent::regclass::text FROM pg_inherits \
                              WHERE inhrelid = '{name}'::regclass), 'none')"
        )
    };
    assert_eq!(
        value(&db, &parent_of("billing.rental_payment_2024_01_by_rental")).await,
        "billing.rental_payment_rental_id_idx"
    );
    assert_eq!(
        value(
            &db,
            &parent_of("billing.rental_payment_2024_12_by_customer")
        )
        .await,
        "none"
    );
    // Foreign keys whose referencing columns lead no index (a partial one
    // does not count), as documented; those partitions inherit are not
    // counted again.
    let unindexed = "SELECT count(*) FROM pg_constraint c \
                     WHERE c.contype = 'f' AND c.conparentid = 0 \
                     AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid \
                                     AND i.indpred IS NULL AND i.indkey[0] = c.conkey[1])";
    assert_eq!(value(&db, unindexed).await, "9");
}

#[tokio::test]
async fn the_views_and_functions_answer() {
    let db = TestDb::rentals().await;
    assert_eq!(
        value(&db, "SELECT count(*) FROM store.rental_detail").await,
        "100000"
    );
    assert_eq!(
        value(&db, "SELECT count(*) FROM store.active_customer").await,
        "9500"
    );
    assert_eq!(
        value(
            &db,
            "SELECT city FROM store.active_customer WHERE customer_id = 1"
        )
        .await,
        "Springfield"
    );
    let revenue = "SELECT (SELECT sum(revenue) FROM billing.monthly_revenue) = \
                   (SELECT sum(amount) FROM billing.rental_payment \
                    WHERE status = 'completed' AND kind <> 'refund')";
    assert_eq!(value(&db, revenue).await, "true");
    assert_eq!(
        value(
            &db,
            "SELECT billing.late_fee('2024-03-01', '2024-03-05 12:00', 3)"
        )
        .await,
        "3.00"
    );
    assert_eq!(
        value(&db, "SELECT store.search_key('Golden Horizon: Part 4')").await,
        "golden horizon part 4"
    );
    let balance = "SELECT billing.customer_balance(42) > 0";
    assert_eq!(value(&db, balance).await, "true");
}

#[tokio::test]
async fn returning_a_rental_fires_the_audit_trigger() {
    let db = TestDb::rentals().await;
    let open = value(
        &db,
        "SELECT min(rental_id) FROM store.rental WHERE status = 'open'",
    )
    .await;
    execute(&db, &format!("SELECT store.return_rental({open})")).await;
    assert_eq!(
        value(
            &db,
            "SELECT string_agg(concat_ws(' ', \"table\", action, row_key, \"user\"), '; ') \
             FROM audit.event"
        )
        .await,
        format!(
            "store.rental UPDATE {open} {}",
            value(&db, "SELECT current_user").await
        )
    );
    // Returning it again is refused, and logs nothing.
    let again = db
        .client()
        .await
        .batch_execute(&format!("SELECT store.return_rental({open})"))
        .await
        .unwrap_err();
    assert!(
        format!("{again:?}").contains(&format!("rental {open} is not open")),
        "{again:?}"
    );
    assert_eq!(value(&db, "SELECT count(*) FROM audit.event").await, "1");
}

/// `perfaudit --format json explain <sql>` on `db`: the one statement's
/// report, after checking the exit code is 0.
fn explain(db: &TestDb, sql: &str) -> Value {
    let output: Output = db
        .perfaudit()
        .args(["--format", "json", "explain", sql])
        .output()
        .expect("perfaudit runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let statement = json["statements"][0].take();
    assert_eq!(statement["rolled_back"], true, "{statement:#}");
    statement
}

/// The tables the plan's nodes read.
fn relations(statement: &Value) -> BTreeSet<&str> {
    statement["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["relation"].as_str())
        .collect()
}

#[tokio::test]
async fn explain_shows_a_month_pruned_to_its_partition() {
    let db = TestDb::rentals().await;
    let statement = explain(
        &db,
        "SELECT customer_id, sum(amount) FROM billing.rental_payment \
         WHERE paid_at >= '2024-03-01' AND paid_at < '2024-04-01' AND status = 'completed' \
         GROUP BY customer_id",
    );
    assert_eq!(
        relations(&statement),
        BTreeSet::from(["rental_payment_2024_03"]),
        "{statement:#}"
    );
}

#[tokio::test]
async fn explain_follows_a_view_through_its_five_joins() {
    let db = TestDb::rentals().await;
    let rentals = value(
        &db,
        "SELECT count(*) FROM store.rental WHERE customer_id = 42",
    )
    .await;
    let statement = explain(
        &db,
        "SELECT title, rented_at, late_fee FROM store.rental_detail \
         WHERE customer_id = 42 ORDER BY rented_at",
    );
    assert_eq!(
        relations(&statement),
        BTreeSet::from([
            "category",
            "customer",
            "film",
            "inventory",
            "rental",
            "store"
        ]),
        "{statement:#}"
    );
    let nodes = statement["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["index"] == "rental_customer_id_idx"),
        "{statement:#}"
    );
    assert_eq!(
        nodes[0]["actual_rows"].as_f64().unwrap().to_string(),
        rentals,
        "{statement:#}"
    );
}

#[tokio::test]
async fn explain_finds_a_customer_through_the_expression_index() {
    let db = TestDb::rentals().await;
    let statement = explain(
        &db,
        "SELECT customer_id, first_name FROM store.customer \
         WHERE lower(email) = 'grace.dubois42@example.com'",
    );
    let nodes = statement["nodes"].as_array().unwrap();
    let scan = nodes
        .iter()
        .find(|n| n["relation"] == "customer")
        .unwrap_or_else(|| panic!("{statement:#}"));
    assert_eq!(scan["node_type"], "Index Scan", "{statement:#}");
    assert_eq!(scan["index"], "customer_email_lower_key", "{statement:#}");
    assert_eq!(scan["actual_rows"], 1.0, "{statement:#}");
    assert!(
        statement["findings"].as_array().unwrap().is_empty(),
        "{statement:#}"
    );
}
