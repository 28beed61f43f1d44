//! `perfaudit indexes` against a real PostgreSQL: what it builds, what it
//! recognises, what it refuses, and what it prints.

mod common;
mod indexes_support;

use clap::Parser;
use common::TestDb;
use indexes_support::{
    BIG, EVENTS_SQL, all_indexes, definition, indexes, invalid_indexes, make_invalid_index,
    spec_file,
};
use perfaudit::cli::{Cli, Command};
use perfaudit::context::Context;
use perfaudit::finding::Subject;
use perfaudit::interrupt::Interrupt;
use perfaudit::report::View;
use perfaudit::sql::ident::quote;
use perfaudit::ui::Format;
use perfaudit::ui::Ui;
use serde_json::json;

/// The default spec: names, key as `pg_get_indexdef` prints it, key as
/// perfaudit writes it.
const DEFAULT_INDEXES: [(&str, &str, &str); 4] = [
    ("idx_payments_user_id", "(user_id)", r#"("user_id")"#),
    ("idx_payments_status", "(status)", r#"("status")"#),
    (
        "idx_payments_created_at",
        "(created_at)",
        r#"("created_at")"#,
    ),
    (
        "idx_payments_user_status",
        "(user_id, status)",
        r#"("user_id", "status")"#,
    ),
];

#[tokio::test]
async fn creates_the_four_payment_indexes_then_builds_nothing() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;

    let first = indexes(&db, &["--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.actions(), ["created"; 4]);
    let report = first.json();
    let entries = report["indexes"].as_array().unwrap();
    for (entry, (name, _, key)) in entries.iter().zip(DEFAULT_INDEXES) {
        assert_eq!(entry["name"], name);
        assert_eq!(entry["table"], "public.payments");
        assert_eq!(entry["valid"], true);
        assert!(entry["size_bytes"].as_i64().unwrap() > 1_000_000, "{entry}");
        assert!(entry["duration_ms"].as_u64().is_some(), "{entry}");
        assert_eq!(
            entry["ddl"],
            format!("CREATE INDEX CONCURRENTLY \"{name}\" ON \"public\".\"payments\" {key};")
        );
    }
    for (name, columns, _) in DEFAULT_INDEXES {
        let index = all_indexes(&client)
            .await
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(index.valid, "{index:?}");
        assert_eq!(index.table, "payments");
        assert!(
            index
                .definition
                .ends_with(&format!("USING btree {columns}")),
            "{index:?}"
        );
    }
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["code"], "redundant-index");
    assert_eq!(findings[0]["index"], "idx_payments_user_id");
    assert!(findings[0]["size_bytes"].as_i64().unwrap() > 0);

    let second = indexes(&db, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second
            .stdout
            .contains("Nothing to build: all 4 indexes are already there."),
        "{}",
        second.stdout
    );
    assert_eq!(
        second.stdout.matches("┆ exists ").count(),
        4,
        "{}",
        second.stdout
    );
    assert!(
        second.stderr.is_empty(),
        "nothing was built: {}",
        second.stderr
    );
    let on_payments = all_indexes(&client)
        .await
        .into_iter()
        .filter(|i| i.table == "payments")
        .count();
    assert_eq!(on_payments, 5, "the primary key and the four");
}

#[tokio::test]
async fn an_invalid_index_under_the_spec_name_is_rebuilt_valid() {
    let db = TestDb::new().await;
    let client = db.client().await;
    make_invalid_index(&client, "idx_payments_status").await;

    let run = indexes(&db, &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.actions(), ["created", "rebuilt", "created", "created"]);
    let rebuilt = &run.json()["indexes"][1];
    assert_eq!(
        rebuilt["ddl"],
        "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"idx_payments_status\";\n\
         CREATE INDEX CONCURRENTLY \"idx_payments_status\" ON \"public\".\"payments\" (\"status\");"
    );
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(
        definition(&client, "idx_payments_status").await.unwrap(),
        "CREATE INDEX idx_payments_status ON public.payments USING btree (status)",
        "rebuilt from the spec, not as the broken unique one was"
    );
}

#[tokio::test]
async fn an_equivalent_index_under_another_name_is_reported_and_nothing_built() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE INDEX payments_created_at_idx ON payments (created_at)")
        .await
        .unwrap();

    let run = indexes(&db, &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.actions(),
        ["created", "created", "equivalent_exists", "created"]
    );
    let equivalent = &run.json()["indexes"][2];
    assert_eq!(equivalent["equivalent"], "payments_created_at_idx");
    assert_eq!(equivalent["ddl"], serde_json::Value::Null);
    assert!(equivalent["size_bytes"].as_i64().unwrap() > 0);
    assert_eq!(definition(&client, "idx_payments_created_at").await, None);

    let table = indexes(&db, &[]);
    assert!(
        table
            .stdout
            .contains("equivalent_exists (payments_created_at_idx)"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    make_invalid_index(&client, "idx_payments_user_status").await;
    // Statistics from every row, so that the estimated sizes are the same
    // on every run (a sample differs from load to load).
    client
        .batch_execute("SET default_statistics_target = 10000; ANALYZE payments")
        .await
        .unwrap();
    let before = all_indexes(&client).await;

    let run = indexes(&db, &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("dry_run", run.stdout);
    let json = indexes(&db, &["--dry-run", "--format", "json"]);
    assert_eq!(
        json.actions(),
        [
            "would_create",
            "would_create",
            "would_create",
            "would_rebuild"
        ]
    );
    // `valid` is what the server says of the index under that name: none
    // yet, or the INVALID one a run would rebuild.
    let valid: Vec<serde_json::Value> = json.json()["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["valid"].clone())
        .collect();
    assert_eq!(valid, [json!(null), json!(null), json!(null), json!(false)]);
    assert_eq!(all_indexes(&client).await, before);
}

#[tokio::test]
async fn a_dry_run_where_temporary_tables_cannot_be_made_says_why() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let database = quote(&db.name);
    client
        .batch_execute(&format!(
            "CREATE ROLE no_temp LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO no_temp;
             REVOKE TEMP ON DATABASE {database} FROM PUBLIC"
        ))
        .await
        .unwrap();
    let mut no_temp = db.settings.clone();
    no_temp.user = "no_temp".into();
    let run: indexes_support::Run = common::perfaudit()
        .args([
            "--database-url",
            &no_temp.to_conninfo(),
            "indexes",
            "--dry-run",
        ])
        .output()
        .unwrap()
        .into();
    run.assert_failed(
        3,
        &[
            "the role may not create temporary tables",
            "perfaudit describes each wanted index by creating it on an empty temporary copy",
            &format!("GRANT TEMP ON DATABASE {} TO no_temp", db.name),
        ],
    );

    client
        .batch_execute(&format!(
            "ALTER DATABASE {database} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    let run = indexes(&db, &["--dry-run"]);
    run.assert_failed(
        3,
        &["the session is read-only (default_transaction_read_only is on)"],
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let names: Vec<String> = all_indexes(&client)
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["payments_pkey", "users_pkey"]);
}

#[tokio::test]
async fn the_rendered_report_after_a_build() {
    let db = TestDb::new().await;
    let cli = Cli::parse_from(["perfaudit", "--database-url", &db.url(), "indexes"]);
    let Command::Indexes(args) = cli.command else {
        unreachable!("parsed as indexes")
    };
    let ui = Ui::plain(Format::Table);
    let context = Context::open(
        cli.global.database_options(),
        ui.clone(),
        Interrupt::never(),
    )
    .await
    .unwrap();
    let mut report = perfaudit::commands::indexes::report(&context, args)
        .await
        .unwrap();
    // Sizes and durations vary from run to run: masked with fixed values.
    for index in &mut report.indexes {
        assert!(index.size_bytes.is_some() && index.duration_ms.is_some());
        index.size_bytes = Some(2_260_992);
        index.duration_ms = Some(250);
    }
    for finding in &mut report.findings {
        if let Subject::Index { size_bytes, .. } = &mut finding.subject {
            *size_bytes = Some(2_260_992);
        }
    }
    insta::assert_snapshot!("created", report.text(&ui));
}

#[tokio::test]
async fn pooled_sessions_keep_their_settings_after_the_builds() {
    let db = TestDb::new().await;
    for flags in [&[][..], &["--no-concurrently"][..]] {
        let cli = Cli::parse_from(
            [
                "perfaudit",
                "--database-url",
                &db.url(),
                "--statement-timeout",
                "7s",
                "indexes",
                "--lock-timeout",
                "3s",
                "--maintenance-work-mem",
                "100MB",
            ]
            .into_iter()
            .chain(flags.iter().copied()),
        );
        let Command::Indexes(args) = cli.command else {
            unreachable!("parsed as indexes")
        };
        let context = Context::open(
            cli.global.database_options(),
            Ui::plain(Format::Table),
            Interrupt::never(),
        )
        .await
        .unwrap();
        perfaudit::commands::indexes::report(&context, args)
            .await
            .unwrap();
        // Every session the pool holds, those the builds used included.
        let database = context.database().await.unwrap();
        let sessions = futures_util::future::try_join_all(
            (0..database.options().max_size).map(|_| database.connection()),
        )
        .await
        .unwrap();
        for session in &sessions {
            let row = session
                .query_one(
                    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),
                            setting = reset_val
                     FROM pg_settings WHERE name = 'maintenance_work_mem'",
                    &[],
                )
                .await
                .unwrap();
            let settings: (String, String, bool) = (row.get(0), row.get(1), row.get(2));
            assert_eq!(settings, ("7s".into(), "0".into(), true), "{flags:?}");
        }
        db.client()
            .await
            .batch_execute(
                "DROP INDEX idx_payments_user_id, idx_payments_status, \
                            idx_payments_created_at, idx_payments_user_status",
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn expressions_predicates_and_include_are_recognised_on_the_next_run() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let spec = spec_file(
        r#"
        [[index]]
        name = "idx_pending_descriptions"
        table = "public.payments"
        columns = [{ expression = "lower(description) /* case-blind search */" }, "currency"]
        where = "status = 'pending'"
        include = ["amount"]

        [[index]]
        name = "idx_payments_ref"
        table = "payments"
        columns = ["external_ref"]
        method = "hash"
        "#,
    );
    let path = spec.path().to_str().unwrap();

    let first = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.actions(), ["created", "created"]);
    assert!(
        first.json()["indexes"][0]["ddl"]
            .as_str()
            .unwrap()
            .ends_with("\nANALYZE \"public\".\"payments\";"),
        "statistics of the expression are gathered"
    );
    assert_eq!(
        definition(&client, "idx_pending_descriptions")
            .await
            .unwrap(),
        "CREATE INDEX idx_pending_descriptions ON public.payments USING btree \
         (lower(description), currency) INCLUDE (amount) WHERE (status = 'pending'::text)"
    );
    let analyzed: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'idx_pending_descriptions'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analyzed, 1, "ANALYZE gathered the expression's statistics");
    assert!(
        definition(&client, "idx_payments_ref")
            .await
            .unwrap()
            .contains("USING hash (external_ref)")
    );

    let second = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.actions(), ["exists", "exists"]);
}

#[tokio::test]
async fn hostile_identifiers_are_quoted_and_hostile_sql_refused() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            r#"CREATE TABLE "Pay""ments; DROP TABLE users; --" ("Odd; Col" int, "Id" int);
               INSERT INTO "Pay""ments; DROP TABLE users; --" SELECT g, g FROM generate_series(1, 100) g"#,
        )
        .await
        .unwrap();
    let spec = spec_file(
        r#"
        [[index]]
        name = 'x"; DROP TABLE users; --'
        table = '"Pay""ments; DROP TABLE users; --"'
        columns = ['Odd; Col']
        include = ['Id']
        "#,
    );
    let run = indexes(&db, &["--spec", spec.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let index = all_indexes(&client)
        .await
        .into_iter()
        .find(|i| i.name == r#"x"; DROP TABLE users; --"#)
        .expect("created under its exact name");
    assert!(index.valid);
    assert!(
        index
            .definition
            .ends_with(r#"USING btree ("Odd; Col") INCLUDE ("Id")"#),
        "{index:?}"
    );

    // sqlparser and PostgreSQL lex `X'\'` and `$1$` differently: text that
    // sqlparser reads as one literal is several statements for the server.
    // Every spec-derived statement goes through the extended protocol,
    // where the server refuses a second statement, so nothing after the
    // first `;` can run; a sequence advanced by a smuggled statement would
    // survive the rollback of the catalog read.
    let sequence = "SELECT last_value FROM payments_id_seq";
    let before: i64 = client.query_one(sequence, &[]).await.unwrap().get(0);
    let several = "cannot insert multiple commands into a prepared statement";
    for (field, value, refusal) in [
        (
            "columns",
            r#"[{ expression = "1); DROP TABLE users; --" }]"#,
            "syntax error at or near \";\"",
        ),
        ("where", r#""true); DROP TABLE users; (select 1""#, several),
        (
            "columns",
            r#"[{ expression = '"Id")); SELECT setval($$payments_id_seq$$, 4242); --' }]"#,
            several,
        ),
        (
            "columns",
            r#"[{ expression = "X'\\')); SELECT setval('payments_id_seq', 4242); --\\''" }]"#,
            several,
        ),
        (
            "columns",
            r#"[{ expression = "$1$)); SELECT setval('payments_id_seq', 4242); --$1$" }]"#,
            "syntax error at or near \"$\"",
        ),
        (
            "columns",
            r#"[{ expression = '"Id"), ("Id"' }]"#,
            "PostgreSQL reads 2 key columns where the spec lists 1",
        ),
        ("where", r#"'"Id" > 0) INCLUDE ("Id"'"#, "syntax error"),
    ] {
        let columns = if field == "columns" {
            String::new()
        } else {
            "columns = ['Id']\n".into()
        };
        let spec = spec_file(&format!(
            "[[index]]\nname = 'y'\ntable = 'public.\"Pay\"\"ments; DROP TABLE users; --\"'\n\
             {columns}{field} = {value}\n"
        ));
        let run = indexes(&db, &["--spec", spec.path().to_str().unwrap()]);
        assert_eq!(run.code, 2, "{field} = {value}: {}", run.stderr);
        assert!(
            run.stderr.contains(refusal) && run.stderr.contains("index \"y\" (line 1)"),
            "{field} = {value}: {}",
            run.stderr
        );
    }
    let after: i64 = client.query_one(sequence, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "no smuggled statement ran");
    assert_eq!(definition(&client, "y").await, None);
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(users > 0, "users is still there");
}

#[tokio::test]
async fn missing_tables_and_columns_and_bad_specs_are_refused_with_exit_2() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let cases = [
        (
            "[[index]]\nname = 'a'\ntable = 'paymentz'\ncolumns = ['user_id']\n",
            "index \"a\" (line 1): table paymentz does not exist",
        ),
        (
            "[[index]]\nname = 'a'\ntable = 'payments'\ncolumns = ['user_id', 'stauts']\n",
            "index \"a\" (line 1): table public.payments has no column \"stauts\"; its columns are id, user_id,",
        ),
        (
            "[[index]]\nname = 'a'\ntable = 'payments'\ncolumns = [{ expression = 'lower(nope)' }]\n",
            "index \"a\" (line 1): it cannot be created on public.payments: ERROR: column \"nope\" does not exist",
        ),
        (
            "[[index]]\nname = 'a'\ntable = 'payments'\ncolumns = ['user_id']\nmethod = 'gin'\n",
            "has no default operator class for access method \"gin\"",
        ),
        (
            "[[index]]\nname = 'a'\ntable = 'pay ments'\ncolumns = ['user_id']\n",
            "a table name in the index spec is not valid: invalid name syntax",
        ),
        (
            "[[index]]\nname = 'users_pkey'\ntable = 'payments'\ncolumns = ['user_id']\n",
            "cannot create index public.users_pkey: the name is taken by an index on users",
        ),
        (
            "[[index]]\nname = 'payments_pkey'\ntable = 'payments'\ncolumns = ['user_id']\n",
            "index public.payments_pkey already exists on public.payments with another definition \
             (unique btree (id), where the spec wants btree (user_id))",
        ),
        (
            "[[index]]\nname = 'a'\ntable = 'pg_class'\ncolumns = ['relname']\n",
            "index \"a\" (line 1): pg_catalog.pg_class is a system catalog",
        ),
        ("[[index]]\nname = 'a'\n", "missing field `table`"),
    ];
    for (spec, expected) in cases {
        let file = spec_file(spec);
        let run = indexes(&db, &["--spec", file.path().to_str().unwrap()]);
        run.assert_failed(2, &[expected]);
        assert!(run.stdout.is_empty());
    }
    let run = indexes(&db, &["--maintenance-work-mem", "10kB"]);
    run.assert_failed(
        2,
        &["--maintenance-work-mem 10kB is refused: ERROR: 10 kB is outside the valid range"],
    );
    assert!(!run.stderr.contains("not attempted"), "{}", run.stderr);
    let run = indexes(&db, &["--spec", "/nonexistent.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cannot read the index spec /nonexistent.toml")
    );
    let names: Vec<String> = all_indexes(&client)
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        ["payments_pkey", "users_pkey"],
        "nothing was created"
    );
}

#[tokio::test]
async fn a_partitioned_table_is_built_partition_by_partition_and_attached() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    client.batch_execute(EVENTS_SQL).await.unwrap();
    let spec = spec_file("[[index]]\nname = 'idx_events_at'\ntable = 'events'\ncolumns = ['at']\n");
    let path = spec.path().to_str().unwrap();

    let run = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.actions(), ["created"]);
    let ddl = run.json()["indexes"][0]["ddl"].as_str().unwrap().to_owned();
    assert!(
        ddl.starts_with("CREATE INDEX \"idx_events_at\" ON ONLY \"public\".\"events\""),
        "{ddl}"
    );
    assert_eq!(ddl.matches("CREATE INDEX CONCURRENTLY").count(), 3, "{ddl}");
    assert_eq!(ddl.matches("ATTACH PARTITION").count(), 4, "{ddl}");
    let tree: Vec<(String, bool, i32)> = client
        .query(
            "SELECT t.relid::regclass::text, i.indisvalid, t.level
             FROM pg_partition_tree('idx_events_at') t JOIN pg_index i ON i.indexrelid = t.relid
             ORDER BY t.level, 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let tables: Vec<String> = client
        .query(
            "SELECT i.indrelid::regclass::text FROM pg_partition_tree('idx_events_at') t
             JOIN pg_index i ON i.indexrelid = t.relid ORDER BY t.level, 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tree.len(), 5, "{tree:?}");
    assert!(tree.iter().all(|(_, valid, _)| *valid), "{tree:?}");
    assert_eq!(
        tables,
        [
            "events",
            "events_2023",
            "events_2024",
            "events_2024_eu",
            "events_2024_us"
        ]
    );
    let used: String = client
        .query(
            "EXPLAIN (COSTS OFF) SELECT * FROM events WHERE at = date '2024-03-01'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect();
    assert!(used.contains("idx_events_at"), "{used}");

    let again = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(again.actions(), ["exists"]);
}

#[tokio::test]
async fn every_problem_of_a_spec_is_reported_in_one_run_naming_the_tables() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let spec = spec_file(
        r#"
[[index]]
name = "a"
table = "payments"
columns = ["user_id"]
where = "statuss = 'pending'"

[[index]]
name = "fine"
table = "payments"
columns = ["user_id"]

[[index]]
name = "b"
table = "paymentz"
columns = ["user_id"]

[[index]]
name = "c"
table = "payments"
columns = [{ column = "description", opclass = "text_pattern_opz" }]

[[index]]
name = "d"
table = "users"
columns = ["emial"]
"#,
    );
    let run = indexes(&db, &["--spec", spec.path().to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stderr);
    assert!(
        lines[0].ends_with("has 4 problems; nothing was built:"),
        "{}",
        lines[0]
    );
    for (line, (index, says)) in lines[1..].iter().zip([
        (
            "index \"a\" (line 2)",
            "column \"statuss\" does not exist (SQLSTATE 42703); hint: Perhaps you meant to \
             reference the column \"payments.status\"",
        ),
        ("index \"b\" (line 13)", "table paymentz does not exist"),
        (
            "index \"c\" (line 18)",
            "operator class \"text_pattern_opz\" does not exist for access method \"btree\"",
        ),
        (
            "index \"d\" (line 23)",
            "table public.users has no column \"emial\"; its columns are id, email,",
        ),
    ]) {
        assert!(
            line.starts_with(&format!("  {index}: ")) && line.contains(says),
            "{index}: {line}"
        );
    }
    assert!(!run.stderr.contains("perfaudit_"), "{}", run.stderr);
    let names: Vec<String> = all_indexes(&client)
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        ["payments_pkey", "users_pkey"],
        "nothing was created"
    );
}

/// A tablespace for the test's indexes, in place under the cluster's data
/// directory (PostgreSQL 15 and later), and its name; `None` on older
/// servers, where it would need a directory the server's user owns.
async fn tablespace(db: &TestDb, client: &tokio_postgres::Client) -> Option<String> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .unwrap()
        .get(0);
    if version < 150_000 {
        eprintln!("no in-place tablespace before PostgreSQL 15: TABLESPACE is not tested");
        return None;
    }
    let name = format!("fast_{}", db.name);
    // Two statements: CREATE TABLESPACE refuses a transaction block.
    client
        .batch_execute("SET allow_in_place_tablespaces = on")
        .await
        .unwrap();
    client
        .batch_execute(&format!("CREATE TABLESPACE {} LOCATION ''", quote(&name)))
        .await
        .unwrap();
    Some(name)
}

#[tokio::test]
async fn operator_classes_order_collations_fill_factor_and_tablespace_are_built_and_compared() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let tablespace = tablespace(&db, &client).await;
    client
        .batch_execute(
            "CREATE INDEX plain_description ON payments (description, created_at);
             CREATE INDEX pattern_ascending ON payments (description text_pattern_ops, created_at);
             CREATE INDEX email_c_loose ON users (email COLLATE \"C\") WITH (fillfactor = 50)",
        )
        .await
        .unwrap();
    let spec = spec_file(&format!(
        r#"
[[index]]
name = "idx_description_pattern"
table = "payments"
columns = [
    {{ column = "description", opclass = "text_pattern_ops" }},
    {{ column = "created_at", order = "desc", nulls = "last" }},
]
fillfactor = 70
{}

[[index]]
name = "idx_users_email"
table = "users"
columns = [{{ column = "email", collation = "C" }}, {{ expression = "lower(email)", order = "desc" }}]

[[index]]
name = "idx_users_email_c"
table = "users"
columns = [{{ column = "email", collation = "C" }}]
"#,
        tablespace
            .as_ref()
            .map_or_else(String::new, |t| format!("tablespace = '{t}'"))
    ));
    let path = spec.path().to_str().unwrap();

    let first = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.actions(),
        ["created", "created", "equivalent_exists"],
        "another operator class or order is another index; another fill factor is not"
    );
    assert_eq!(first.json()["indexes"][2]["equivalent"], "email_c_loose");
    assert_eq!(
        definition(&client, "idx_description_pattern")
            .await
            .unwrap(),
        "CREATE INDEX idx_description_pattern ON public.payments USING btree \
         (description text_pattern_ops, created_at DESC NULLS LAST) WITH (fillfactor='70')"
    );
    assert_eq!(
        definition(&client, "idx_users_email").await.unwrap(),
        "CREATE INDEX idx_users_email ON public.users USING btree \
         (email COLLATE \"C\", lower(email) DESC)"
    );
    let row = client
        .query_one(
            "SELECT c.reloptions, t.spcname::text FROM pg_class c
             LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
             WHERE c.oid = 'idx_description_pattern'::regclass",
            &[],
        )
        .await
        .unwrap();
    let (options, stored_in): (Vec<String>, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(options, ["fillfactor=70"]);
    assert_eq!(stored_in, tablespace);

    let second = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.actions(), ["exists", "exists", "equivalent_exists"]);

    // The same name stored otherwise is another definition, named as such.
    let refill = spec_file(
        "[[index]]\nname = 'idx_description_pattern'\ntable = 'payments'\n\
         columns = [{ column = 'description', opclass = 'text_pattern_ops' }, \
         { column = 'created_at', order = 'desc', nulls = 'last' }]\nfillfactor = 90\n",
    );
    let run = indexes(&db, &["--spec", refill.path().to_str().unwrap()]);
    run.assert_failed(
        2,
        &[
            "already exists on public.payments with another definition (btree (description \
           text_pattern_ops, created_at DESC NULLS LAST) WITH (fillfactor = 70)",
        ],
    );
    // A tablespace outlives the test's database: dropped once empty.
    if let Some(tablespace) = tablespace {
        client
            .batch_execute("DROP INDEX idx_description_pattern")
            .await
            .unwrap();
        client
            .batch_execute(&format!("DROP TABLESPACE {}", quote(&tablespace)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_payment_set_is_built_unasked_only_on_the_fixtures_payments_table() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    let run = indexes(&db, &["--dry-run"]);
    run.assert_failed(
        2,
        &[
            "without --spec, perfaudit indexes builds its payment indexes (idx_payments_user_id, \
           idx_payments_status, idx_payments_created_at, idx_payments_user_status) on a table \
           payments, which this database does not have",
            "give the indexes you want with --spec FILE",
        ],
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // Someone else's payments: the columns the default set names, and more.
    client
        .batch_execute(
            "CREATE TABLE payments (id bigint PRIMARY KEY, user_id int, status text,
                                    created_at timestamptz, tenant int);
             INSERT INTO payments SELECT g, g % 10, 'paid', now(), 1 FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
    for args in [&[][..], &["--dry-run"][..]] {
        let run = indexes(&db, args);
        run.assert_failed(
            2,
            &[
                "table public.payments is not perfaudit's payments fixture (its column user_id \
               is integer, not bigint), so perfaudit does not build its default payment indexes",
                "pass --payments-defaults to build these anyway",
            ],
        );
    }
    assert_eq!(all_indexes(&client).await.len(), 1, "only the primary key");
    let run = indexes(&db, &["--payments-defaults", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.actions(), ["created"; 4]);
    let run = indexes(&db, &["--payments-defaults", "--spec", "x.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}

/// The OID of relation `name`, `None` when there is none.
async fn oid(client: &tokio_postgres::Client, name: &str) -> Option<u32> {
    client
        .query_one("SELECT to_regclass($1)::oid", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn partitions_equivalent_indexes_are_attached_not_built_again() {
    let db = TestDb::rentals().await;
    let client = db.client().await;
    // billing.rental_payment has 13 partitions and no index on staff_id;
    // some partitions have one of their own. An INVALID one is left the
    // way a failed concurrent build leaves one (the catalog flag, set as
    // superuser: a build that fails after its first phase cannot be
    // timed reliably).
    client
        .batch_execute(
            "CREATE INDEX rp_2024_03_staff ON billing.rental_payment_2024_03 (staff_id);
             CREATE INDEX rp_2024_07_staff ON billing.rental_payment_2024_07 (staff_id);
             CREATE INDEX rp_2024_05_staff_desc ON billing.rental_payment_2024_05 (staff_id DESC);
             CREATE INDEX rp_2024_09_staff ON billing.rental_payment_2024_09 (staff_id);
             UPDATE pg_index SET indisvalid = false
             WHERE indexrelid = 'billing.rp_2024_09_staff'::regclass",
        )
        .await
        .unwrap();
    let reused_oids = [
        oid(&client, "billing.rp_2024_03_staff").await,
        oid(&client, "billing.rp_2024_07_staff").await,
    ];
    let broken_oid = oid(&client, "billing.rp_2024_09_staff").await;
    let spec = spec_file(
        "[[index]]\nname = 'rental_payment_staff_idx'\ntable = 'billing.rental_payment'\n\
         columns = ['staff_id']\n",
    );
    let path = spec.path().to_str().unwrap();

    let dry = indexes(&db, &["--spec", path, "--dry-run", "--format", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let planned = &dry.json()["indexes"][0];
    assert_eq!(
        planned["partitions"],
        json!({"count": 13, "built": 11, "kept": 0,
               "reused": ["billing.rp_2024_03_staff", "billing.rp_2024_07_staff"]})
    );
    let ddl = planned["ddl"].as_str().unwrap();
    assert!(
        ddl.ends_with(
            "ALTER INDEX \"billing\".\"rental_payment_staff_idx\" ATTACH PARTITION \
             \"billing\".\"rp_2024_03_staff\";\n\
             ALTER INDEX \"billing\".\"rental_payment_staff_idx\" ATTACH PARTITION \
             \"billing\".\"rp_2024_07_staff\";"
        ),
        "the existing ones are attached, last: {ddl}"
    );
    assert_eq!(
        ddl.matches("CREATE INDEX CONCURRENTLY").count(),
        11,
        "{ddl}"
    );
    assert!(
        ddl.contains(
            "DROP INDEX CONCURRENTLY IF EXISTS \"billing\".\"rp_2024_09_staff\";\n\
             CREATE INDEX CONCURRENTLY \"rp_2024_09_staff\" ON \"billing\".\"rental_payment_2024_09\""
        ),
        "the INVALID one is rebuilt: {ddl}"
    );
    let text = indexes(&db, &["--spec", path, "--dry-run"]);
    assert!(
        text.stdout
            .contains("would_create (13 partitions: 11 built, 2 reused)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(
            "rental_payment_staff_idx: billing.rp_2024_03_staff, billing.rp_2024_07_staff"
        ),
        "{}",
        text.stdout
    );

    let run = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.actions(), ["created"]);
    assert_eq!(run.json()["indexes"][0]["valid"], true);
    let tree: Vec<(String, u32, bool)> = client
        .query(
            "SELECT t.relid::regclass::text, t.relid::oid, i.indisvalid
             FROM pg_partition_tree('billing.rental_payment_staff_idx') t
             JOIN pg_index i ON i.indexrelid = t.relid WHERE t.level = 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(tree.len(), 13, "{tree:?}");
    assert!(tree.iter().all(|(_, _, valid)| *valid), "{tree:?}");
    for (name, before) in ["billing.rp_2024_03_staff", "billing.rp_2024_07_staff"]
        .iter()
        .zip(reused_oids)
    {
        let attached = tree.iter().find(|(n, _, _)| n == name);
        assert_eq!(
            attached.map(|(_, oid, _)| *oid),
            before,
            "{name} is attached, the same index: {tree:?}"
        );
    }
    let rebuilt = tree
        .iter()
        .find(|(n, _, _)| n == "billing.rp_2024_09_staff");
    assert!(
        rebuilt.is_some_and(|(_, oid, _)| Some(*oid) != broken_oid),
        "{tree:?}"
    );
    assert!(
        !tree.iter().any(|(n, _, _)| n.contains("rp_2024_05")),
        "another order is another index"
    );
    assert!(
        oid(&client, "billing.rp_2024_05_staff_desc")
            .await
            .is_some()
    );
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());

    let again = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(again.actions(), ["exists"]);
    assert_eq!(again.json()["indexes"][0]["ddl"], serde_json::Value::Null);
}

/// Builds `spec` on `db` and returns, for each index, its name, the size
/// estimated before the build and the size built.
fn estimated_and_built(db: &TestDb, spec: &str) -> Vec<(String, i64, i64)> {
    let file = spec_file(spec);
    let run = indexes(
        db,
        &["--spec", file.path().to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|index| {
            assert_eq!(index["action"], "created", "{index}");
            (
                index["name"].as_str().unwrap().to_owned(),
                index["estimated_size_bytes"].as_i64().unwrap(),
                index["size_bytes"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Asserts each estimate is within 25% of the size built, after printing
/// them all.
fn assert_close(sizes: &[(String, i64, i64)]) {
    let error = |estimated: i64, built: i64| (estimated - built) as f64 / built as f64;
    for (name, estimated, built) in sizes {
        eprintln!(
            "{name:40} estimated {estimated:>9} built {built:>9} error {:+.1}%",
            100.0 * error(*estimated, *built)
        );
    }
    for (name, estimated, built) in sizes {
        assert!(
            error(*estimated, *built).abs() <= 0.25,
            "{name}: estimated {estimated} bytes, built {built}"
        );
    }
}

#[tokio::test]
async fn size_estimates_are_within_a_quarter_of_the_built_size_on_the_payments() {
    let db = TestDb::new().await;
    let sizes = estimated_and_built(
        &db,
        r#"
[[index]]
name = "by_user"
table = "payments"
columns = ["user_id"]

[[index]]
name = "by_status"
table = "payments"
columns = ["status"]

[[index]]
name = "by_created_at"
table = "payments"
columns = ["created_at"]

[[index]]
name = "by_description"
table = "payments"
columns = ["description"]

[[index]]
name = "by_ref"
table = "payments"
columns = ["external_ref"]

[[index]]
name = "by_amount"
table = "payments"
columns = ["amount"]

[[index]]
name = "by_user_status"
table = "payments"
columns = ["user_id", "status"]

[[index]]
name = "by_user_created_covering"
table = "payments"
columns = ["user_id", "created_at"]
include = ["amount"]

[[index]]
name = "completed_by_created_at"
table = "payments"
columns = ["created_at"]
where = "status = 'completed'"

[[index]]
name = "by_ref_packed"
table = "payments"
columns = ["external_ref"]
unique = true
fillfactor = 100

[[index]]
name = "users_by_email"
table = "users"
columns = ["email"]
"#,
    );
    assert_close(&sizes);
}

#[tokio::test]
async fn size_estimates_are_within_a_quarter_of_the_built_size_on_the_rentals() {
    let db = TestDb::rentals().await;
    let sizes = estimated_and_built(
        &db,
        r#"
[[index]]
name = "rental_by_staff"
table = "store.rental"
columns = ["staff_id"]

[[index]]
name = "rental_by_returned_at"
table = "store.rental"
columns = ["returned_at"]

[[index]]
name = "rental_by_inventory_rented_at"
table = "store.rental"
columns = ["inventory_id", "rented_at"]

[[index]]
name = "customer_by_email"
table = "store.customer"
columns = ["email"]

[[index]]
name = "rental_payment_by_staff_paid_at"
table = "billing.rental_payment"
columns = ["staff_id", "paid_at"]

[[index]]
name = "rental_payment_completed_by_customer"
table = "billing.rental_payment"
columns = ["customer_id"]
where = "status = 'completed'"

[[index]]
name = "rental_payment_by_kind"
table = "billing.rental_payment"
columns = ["kind"]
"#,
    );
    assert_close(&sizes);

    // What advise calls for its recommendations: the same estimate.
    let client = db.client().await;
    let mut relations = perfaudit::pg::catalog::Relations::new(&client);
    let relation = relations
        .relation(&vec!["billing".to_owned(), "rental_payment".to_owned()])
        .await
        .unwrap()
        .unwrap();
    let table = relations.indexable(&relation).await.unwrap();
    let wanted = perfaudit::indexes::ddl::Wanted::columns(&["staff_id".into(), "paid_at".into()]);
    let advised = perfaudit::indexes::size::estimate_wanted(&client, &table, &wanted)
        .await
        .unwrap();
    let (_, estimated, built) = &sizes[4];
    assert_eq!(advised, *estimated);
    assert_close(&[("advised (staff_id, paid_at)".into(), advised, *built)]);
}
