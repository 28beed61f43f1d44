//! `perfaudit indexes --audit` against a real PostgreSQL: on the rentals
//! fixture as it is, and with one of each finding planted in it; that it
//! finds exactly what is there, changes nothing, waits for no lock, and
//! that each statement it gives runs and fixes what it says.

mod common;
mod indexes_support;

use std::time::{Duration, Instant};

use common::TestDb;
use indexes_support::{Run, all_indexes, indexes};
use serde_json::Value;
use tokio_postgres::Client;

/// What the rentals fixture itself holds (fixtures/rentals/README.md says
/// why each is true): (code, severity, table, index).
const FIXTURE: [(&str, &str, &str, &str); 14] = [
    (
        "duplicate-index",
        "warning",
        "billing.rental_payment_2024_12",
        "rental_payment_2024_12_by_customer",
    ),
    (
        "redundant-index",
        "info",
        "store.inventory",
        "inventory_film_id_idx",
    ),
    (
        "unused-index",
        "info",
        "billing.rental_payment",
        "rental_payment_failed_idx",
    ),
    (
        "unused-index",
        "info",
        "store.film",
        "film_title_search_idx",
    ),
    ("unused-index", "info", "store.rental", "rental_out_idx"),
    (
        "unindexed-foreign-key",
        "warning",
        "billing.invoice",
        "idx_invoice_customer_id",
    ),
    (
        "unindexed-foreign-key",
        "warning",
        "billing.rental_payment",
        "idx_rental_payment_staff_id",
    ),
    (
        "unindexed-foreign-key",
        "info",
        "store.\"StoreNotes\"",
        "idx_StoreNotes_StoreId",
    ),
    (
        "unindexed-foreign-key",
        "warning",
        "store.customer",
        "idx_customer_store_id",
    ),
    (
        "unindexed-foreign-key",
        "info",
        "store.film",
        "idx_film_category_id",
    ),
    (
        "unindexed-foreign-key",
        "warning",
        "store.inventory",
        "idx_inventory_store_id",
    ),
    (
        "unindexed-foreign-key",
        "warning",
        "store.rental",
        "idx_rental_inventory_id",
    ),
    (
        "unindexed-foreign-key",
        "warning",
        "store.rental",
        "idx_rental_staff_id",
    ),
    (
        "unindexed-foreign-key",
        "info",
        "store.staff",
        "idx_staff_store_id",
    ),
];

/// Queries that scan each index of the fixture that nothing else needs,
/// so that none of them is unused (sequential scans are off).
const USE_THE_FIXTURES_INDEXES: &str = "
    SET enable_seqscan = off;
    SELECT * FROM store.rental WHERE customer_id = 42;
    SELECT * FROM store.rental WHERE inventory_id = 17 AND returned_at IS NULL;
    SELECT * FROM store.film WHERE store.search_key(title) = 'golden horizon part 4';
    SELECT * FROM billing.rental_payment WHERE rental_id = 5;
    SELECT * FROM billing.rental_payment WHERE customer_id = 42;
    SELECT * FROM billing.rental_payment WHERE status = 'failed' AND paid_at < '2024-02-01';";

/// The indexes those queries scan (a partitioned index through its
/// partitions'), with how many of its partitions must show a scan.
const SCANNED: [(&str, i64); 6] = [
    ("rental_customer_id_idx", 1),
    ("rental_out_idx", 1),
    ("film_title_search_idx", 1),
    ("rental_payment_rental_id_idx", 1),
    ("rental_payment_customer_id_idx", 1),
    ("rental_payment_failed_idx", 1),
];

/// One of each finding, planted once the fixture's indexes are scanned
/// (so that the planted ones are not). Each has a comment saying what it
/// plants; `film_rating_unique`, the INVALID one, is made apart (a
/// concurrent build runs alone).
const PLANTED: &str = "
    -- duplicate-index: the same as the scanned rental_customer_id_idx
    CREATE INDEX rental_customer_again ON store.rental (customer_id, rented_at);
    -- redundant-index: a prefix of rental_customer_id_idx
    CREATE INDEX rental_customer_only ON store.rental (customer_id);
    -- duplicate-index: a partitioned index the same as a scanned one,
    -- with an index of its own on each partition
    CREATE INDEX rental_payment_by_rental ON billing.rental_payment (rental_id);
    -- unused-index
    CREATE INDEX film_length_idx ON store.film (length_minutes);
    -- duplicate-index: a unique index the same as the UNIQUE constraint's
    CREATE UNIQUE INDEX store_name_unique ON store.store (name);
    -- duplicate-index that cannot be dropped: a UNIQUE constraint whose
    -- index is the primary key's
    ALTER TABLE store.category ADD CONSTRAINT category_id_unique UNIQUE (category_id);
    -- unindexed-foreign-key, on an empty table
    CREATE TABLE store.film_note (note_id int PRIMARY KEY,
                                  film_id int NOT NULL REFERENCES store.film, body text);
    -- no finding: a foreign key its table's primary key leads with
    CREATE TABLE store.film_award (film_id int REFERENCES store.film, award text,
                                   PRIMARY KEY (film_id, award));
    -- index-larger-than-table: a unique index of 33-byte hashes on a table
    -- of integers (unique, so never unused)
    CREATE TABLE store.tag (id int NOT NULL);
    INSERT INTO store.tag SELECT g FROM generate_series(1, 200000) g;
    CREATE UNIQUE INDEX tag_hash_key ON store.tag (md5(id::text));
    ANALYZE store.tag;
    -- index-bloat: a primary key of 600,000 entries, 95% of them deleted
    -- (then vacuumed and analyzed, apart)
    CREATE TABLE store.ticket (id bigint PRIMARY KEY);
    INSERT INTO store.ticket SELECT g FROM generate_series(1, 600000) g;
    DELETE FROM store.ticket WHERE id % 20 <> 0;";

/// What the audit finds once [`PLANTED`] is there (and the fixture's
/// indexes scanned): the fixture's findings but the unused, and the planted.
fn planted_findings() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let mut expected: Vec<_> = FIXTURE
        .into_iter()
        .filter(|(code, ..)| *code != "unused-index")
        .collect();
    expected.extend([
        (
            "invalid-index",
            "warning",
            "store.film",
            "film_rating_unique",
        ),
        (
            "duplicate-index",
            "warning",
            "billing.rental_payment",
            "rental_payment_by_rental",
        ),
        (
            "duplicate-index",
            "warning",
            "store.category",
            "category_id_unique",
        ),
        (
            "duplicate-index",
            "warning",
            "store.rental",
            "rental_customer_again",
        ),
        (
            "duplicate-index",
            "warning",
            "store.store",
            "store_name_unique",
        ),
        (
            "redundant-index",
            "info",
            "store.rental",
            "rental_customer_only",
        ),
        ("unused-index", "info", "store.film", "film_length_idx"),
        (
            "unindexed-foreign-key",
            "info",
            "store.film_note",
            "idx_film_note_film_id",
        ),
        ("index-bloat", "warning", "store.ticket", "ticket_pkey"),
        (
            "index-larger-than-table",
            "info",
            "store.tag",
            "tag_hash_key",
        ),
    ]);
    let order = [
        "invalid-index",
        "duplicate-index",
        "redundant-index",
        "unused-index",
        "unindexed-foreign-key",
        "index-bloat",
        "index-larger-than-table",
    ];
    expected.sort_by_key(|(code, _, table, index)| {
        (order.iter().position(|c| c == code), *table, *index)
    });
    expected
}

/// `perfaudit indexes --audit --format json <args>` on `db`.
fn audit(db: &TestDb, args: &[&str]) -> Run {
    let mut all = vec!["--audit", "--format", "json"];
    all.extend(args);
    indexes(db, &all)
}

/// Each finding of an audit's document as (code, severity, table, index).
fn summary(document: &Value) -> Vec<(String, String, String, String)> {
    document["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
            (text("code"), text("severity"), text("table"), text("index"))
        })
        .collect()
}

fn owned(expected: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect()
}

/// The finding of `document` about `index`.
fn finding<'a>(document: &'a Value, index: &str) -> &'a Value {
    document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["index"] == index)
        .unwrap_or_else(|| panic!("no finding about {index}"))
}

/// Scans the fixture's indexes on a session of its own, closes it (which
/// hands its counts to the statistics), and waits until they show.
async fn use_the_fixtures_indexes(db: &TestDb) {
    let client = db.client().await;
    client
        .batch_execute(USE_THE_FIXTURES_INDEXES)
        .await
        .unwrap();
    drop(deadpool_postgres::Object::take(client));
    let client = db.client().await;
    let started = Instant::now();
    for (index, parts) in SCANNED {
        loop {
            let scanned: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_user_indexes s
                     WHERE s.idx_scan > 0 AND (s.indexrelname = $1 OR s.indexrelid IN
                           (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass($2)))",
                    &[&index, &format!("billing.{index}")],
                )
                .await
                .unwrap()
                .get(0);
            if scanned >= parts {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{index} shows no scan"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Plants [`PLANTED`] and the INVALID index.
async fn plant(client: &Client) {
    client.batch_execute(PLANTED).await.unwrap();
    client
        .batch_execute("VACUUM (ANALYZE) store.ticket")
        .await
        .unwrap();
    let error = client
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY film_rating_unique ON store.film (rating)")
        .await
        .expect_err("duplicates make the unique build fail");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{error}"
    );
}

#[tokio::test]
async fn the_rentals_fixture_holds_what_its_readme_says() {
    let db = TestDb::rentals().await;
    let run = audit(&db, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let document = run.json();
    assert_eq!(summary(&document), owned(&FIXTURE));
    assert_eq!(document["audit"]["stats_reset"], Value::Null);
    assert_eq!(document["audit"]["standby"], false);
    assert_eq!(document["audit"]["notes"], serde_json::json!([]));
    assert!(document["audit"]["indexes"].as_u64().unwrap() > 70);
    let duplicate = finding(&document, "rental_payment_2024_12_by_customer");
    assert!(
        duplicate["message"]
            .as_str()
            .unwrap()
            .contains("is the one to keep: it is attached to the partitioned index rental_payment_customer_id_idx"),
        "{duplicate}"
    );
    let unused = finding(&document, "rental_payment_failed_idx");
    assert_eq!(
        unused["message"],
        "no scan since the statistics began (never reset), nor any insert or non-HOT update of \
         billing.rental_payment to cost it more than its size",
        "a new database's statistics start at zero"
    );
    assert_eq!(
        unused["ddl"], "DROP INDEX IF EXISTS \"billing\".\"rental_payment_failed_idx\";",
        "a partitioned index is dropped as one, not concurrently"
    );
}

#[tokio::test]
async fn every_planted_finding_is_found_nothing_else_and_nothing_is_changed() {
    let db = TestDb::rentals().await;
    use_the_fixtures_indexes(&db).await;
    let client = db.client().await;
    plant(&client).await;
    let before = all_indexes(&client).await;

    let run = audit(&db, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let document = run.json();
    assert_eq!(
        summary(&document),
        owned(&planted_findings()),
        "{:#}",
        document["findings"]
    );
    assert_eq!(
        all_indexes(&client).await,
        before,
        "the audit changed nothing"
    );

    // A table DDL holds does not hold the audit up: its indexes are left
    // out, and the notes say why.
    let (locker, pid) = db.session().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE store.rental IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let locked = audit(&db, &[]);
    let waited = started.elapsed();
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(locked.code, 0, "{}", locked.stderr);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let locked = locked.json();
    assert_eq!(
        locked["audit"]["notes"],
        serde_json::json!([format!(
            "the indexes of store.rental were not audited: server process {pid} holds or \
             awaits an ACCESS EXCLUSIVE lock on it (DDL under way), and reading their \
             definitions would wait behind it; run the audit again once it is done"
        )])
    );
    let elsewhere: Vec<_> = planted_findings()
        .into_iter()
        .filter(|(_, _, table, _)| *table != "store.rental")
        .collect();
    assert_eq!(summary(&locked), owned(&elsewhere));

    // What cannot be dropped says why, and has no statement.
    let constraint = finding(&document, "category_id_unique");
    assert_eq!(constraint["ddl"], Value::Null);
    assert!(
        constraint["message"].as_str().unwrap().contains(
            "category_pkey is the one to keep: it backs the PRIMARY KEY constraint category_pkey"
        ) && constraint["suggestion"].as_str().unwrap().starts_with(
            "it cannot simply be dropped: it backs the UNIQUE constraint category_id_unique"
        ),
        "{constraint}"
    );
    assert!(
        finding(&document, "store_name_unique")["message"]
            .as_str()
            .unwrap()
            .contains(
                "store_name_key is the one to keep: it backs the UNIQUE constraint store_name_key"
            ),
    );
    assert_eq!(
        finding(&document, "rental_customer_only")["message"],
        "its key (customer_id) is a leading prefix of rental_customer_id_idx (customer_id, \
         rented_at), which serves the same lookups"
    );

    // The gate.
    let gate = audit(&db, &["--fail-on", "warning"]);
    gate.assert_failed(
        1,
        &["gate failed: invalid-index (warning), duplicate-index (warning)"],
    );
    assert_eq!(
        summary(&gate.json()),
        summary(&document),
        "the whole report first"
    );
    assert_eq!(audit(&db, &["--fail-on", "critical"]).code, 0);

    // Every statement runs, each on its own, and does what it says.
    for f in document["findings"].as_array().unwrap() {
        let Some(ddl) = f["ddl"].as_str() else {
            continue;
        };
        for statement in ddl.lines() {
            client
                .batch_execute(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    let after: Vec<String> = all_indexes(&client)
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    for dropped in [
        "film_rating_unique",
        "rental_payment_by_rental",
        "rental_customer_again",
        "store_name_unique",
        "rental_payment_2024_12_by_customer",
        "rental_customer_only",
        "inventory_film_id_idx",
        "film_length_idx",
    ] {
        assert!(
            !after.iter().any(|i| i == dropped),
            "{dropped} is still there"
        );
    }
    let on_a_partition: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'billing.rental_payment_2024_05'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        on_a_partition, 5,
        "the partition's part of rental_payment_by_rental went with it; the foreign key's came"
    );
    for kept in ["category_id_unique", "tag_hash_key", "ticket_pkey"] {
        assert!(after.iter().any(|i| i == kept), "{kept} is gone");
    }
    // Audited again: what had a statement is fixed, and what had none is
    // left (the indexes the statements built serve foreign keys: not
    // unused, though never scanned).
    let again: Vec<(String, String)> = summary(&audit(&db, &[]).json())
        .into_iter()
        .map(|(code, _, _, index)| (code, index))
        .collect();
    assert_eq!(
        again,
        [
            (
                "duplicate-index".to_owned(),
                "category_id_unique".to_owned()
            ),
            (
                "index-larger-than-table".to_owned(),
                "tag_hash_key".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn the_scope_is_what_schema_and_table_say() {
    let db = TestDb::rentals().await;
    let tables = |document: &Value| -> Vec<String> {
        let mut tables: Vec<String> = summary(document).into_iter().map(|f| f.2).collect();
        tables.dedup();
        tables
    };
    let rental = audit(&db, &["--table", "store.rental"]).json();
    assert_eq!(tables(&rental), ["store.rental"]);
    assert_eq!(rental["audit"]["tables"], 1);
    // A partitioned table comes with its partitions.
    let payments = audit(&db, &["--table", "billing.rental_payment"]).json();
    assert_eq!(payments["audit"]["tables"], 14);
    assert_eq!(
        summary(&payments)
            .iter()
            .map(|f| f.3.as_str())
            .collect::<Vec<_>>(),
        [
            "rental_payment_2024_12_by_customer",
            "rental_payment_failed_idx",
            "idx_rental_payment_staff_id",
        ]
    );
    let billing = audit(&db, &["--schema", "billing"]).json();
    assert!(tables(&billing).iter().all(|t| t.starts_with("billing.")));
    assert_eq!(
        billing["audit"]["tables"], 19,
        "two partitioned tables, 16 partitions, a view"
    );
    let both = audit(&db, &["--schema", "store", "--table", "billing.invoice"]).json();
    assert_eq!(both["audit"]["tables"], 0, "the tables both name: none");

    for (args, says) in [
        (
            &["--table", "store.nothing"][..],
            "table store.nothing (of --table) does not exist",
        ),
        (
            &["--table", "a.b.c.d"],
            "--table a.b.c.d is not a valid table name",
        ),
        (
            &["--table", "store.rental_detail"],
            "store.rental_detail (of --table) is a view",
        ),
        (
            &["--table", "pg_class"],
            "pg_class (of --table) is a system catalog",
        ),
        (
            &["--schema", "nowhere"],
            "schema \"nowhere\" (of --schema) does not exist",
        ),
        (
            &["--schema", "pg_catalog"],
            "schema \"pg_catalog\" (of --schema) is PostgreSQL's own",
        ),
    ] {
        let run = audit(&db, args);
        run.assert_failed(2, &[says]);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    }
}

#[tokio::test]
async fn the_report_for_people_lists_the_statements_it_never_runs() {
    let db = TestDb::rentals().await;
    let run = indexes(&db, &["--audit", "--table", "store.inventory"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(
            "Audited 3 indexes on 1 table; index scans counted since the statistics began \
             (never reset)."
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "DDL (not run: review it, then run each statement on its own, outside a \
             transaction):\n-- redundant-index inventory_film_id_idx on store.inventory\n\
             DROP INDEX CONCURRENTLY IF EXISTS \"store\".\"inventory_film_id_idx\";\n\
             -- unindexed-foreign-key idx_inventory_store_id on store.inventory\n\
             CREATE INDEX CONCURRENTLY \"idx_inventory_store_id\" ON \"store\".\"inventory\" \
             (\"store_id\");\n\n2 findings: 1 warning, 1 info."
        ),
        "{}",
        run.stdout
    );
}
