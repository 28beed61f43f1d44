//! explain's write guard against a real PostgreSQL: whatever spelling or
//! path reaches a function whose effect outlives the rollback (another
//! session terminated, rows deleted through dblink, a file written, a
//! replication slot, a configuration reload), the statement is planned
//! only and nothing changes. Each test watches the effect itself.

mod common;

use std::process::Output;

use common::TestDb;
use common::explain::{
    answers, count, document, execute, explain_json, fingerprint, nothing_explained,
    planned_because_of, set_for_database,
};
use serde_json::Value;

/// A session of `db` that the statements under test name by its
/// `application_name`, and its pid.
async fn victim(db: &TestDb) -> (deadpool_postgres::Object, i32) {
    let (client, pid) = db.session().await;
    client
        .batch_execute("SET application_name = 'victim'")
        .await
        .unwrap();
    (client, pid)
}

/// `pg_terminate_backend` spelled as `U&"pg\005fterminate\005fbackend"`.
const UNICODE_TERMINATE: &str = r#"U&"pg\005fterminate\005fbackend""#;

const VICTIMS: &str = "FROM pg_stat_activity WHERE application_name = 'victim'";

/// SQL that makes `operator` (on two integers) terminate the session whose
/// pid is its left side, through the function `kills`.
fn killing_operator(operator: &str) -> String {
    format!(
        "CREATE FUNCTION kills(pid int, other int) RETURNS boolean LANGUAGE sql
             AS 'SELECT pg_terminate_backend(pid) OR other IS NULL';
         CREATE OPERATOR {operator} (LEFTARG = int, RIGHTARG = int, FUNCTION = kills)"
    )
}

/// The guard's entry for `function` (a prefix of its signature).
fn reached<'a>(statement: &'a Value, function: &str) -> &'a Value {
    statement["guard"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"].as_str().unwrap().starts_with(function))
        .unwrap_or_else(|| panic!("the guard does not name {function}: {statement:#}"))
}

/// Checks `output` planned its statement only because of
/// `pg_terminate_backend`, and that the guard, when the SQL alone did not
/// already show it, names the function it resolved.
fn planned_because_of_terminate(output: &Output) -> Value {
    let statement = planned_because_of(output, "pg_terminate_backend(");
    assert_eq!(statement["guard"]["executed"], false, "{statement:#}");
    if statement["guard"]["resolved_by"].is_null() {
        return statement;
    }
    assert_eq!(statement["guard"]["resolved_by"], "server", "{statement:#}");
    let entry = reached(&statement, "pg_catalog.pg_terminate_backend(");
    assert_eq!(entry["volatility"], "volatile");
    assert!(entry["outlives_rollback"].is_string(), "{entry:#}");
    statement
}

#[tokio::test]
async fn every_spelling_of_a_call_reaches_the_guard() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    // A function whose name is 63 bytes long, called by a 70-byte name the
    // server cuts to it.
    let long = format!("kill_{}", "x".repeat(58));
    assert_eq!(long.len(), 63);
    execute(
        &db,
        &format!(
            "CREATE FUNCTION {long}(pid int) RETURNS boolean LANGUAGE sql
                 BEGIN ATOMIC SELECT pg_terminate_backend(pid); END"
        ),
    )
    .await;
    let spellings = [
        format!("SELECT {UNICODE_TERMINATE}(pid) {VICTIMS}"),
        format!("SELECT pg_catalog.{UNICODE_TERMINATE}(pid) {VICTIMS}"),
        format!(r#"SELECT u&"pg\005fterminate\005fbackend"(pid) {VICTIMS}"#),
        format!(r#"SELECT U&"pg\+00005fterminate\+00005fbackend"(pid) {VICTIMS}"#),
        format!("SELECT \"pg_terminate_backend\"(pid => pid) {VICTIMS}"),
        "SELECT * FROM pg_stat_activity a, LATERAL pg_catalog.\"pg_terminate_backend\"(a.pid) k \
         WHERE a.application_name = 'victim'"
            .to_owned(),
        format!("WITH k AS (SELECT {UNICODE_TERMINATE}(pid) {VICTIMS}) SELECT * FROM k"),
        format!("SELECT (SELECT {UNICODE_TERMINATE}(pid)) {VICTIMS}"),
        format!("SELECT count({UNICODE_TERMINATE}(pid)) {VICTIMS}"),
    ];
    for sql in &spellings {
        for flags in [&[][..], &["--analyze-writes"], &["--no-rewrite"]] {
            let args = [flags, &[sql.as_str()]].concat();
            planned_because_of_terminate(&explain_json(&db, &args));
            assert!(answers(&other).await, "{sql} {flags:?} reached the victim");
        }
    }
    let sql = format!("SELECT {long}xxxxxxx(pid) {VICTIMS}");
    let statement = planned_because_of(&explain_json(&db, &[&sql]), &format!("public.{long}"));
    assert_eq!(
        reached(&statement, "pg_catalog.pg_terminate_backend(")["volatility"],
        "volatile"
    );
    assert!(answers(&other).await, "{sql} reached the victim");
}

#[tokio::test]
async fn operators_and_casts_reach_the_guard() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    execute(
        &db,
        &format!(
            "{};
         CREATE TYPE target AS (pid int);
         CREATE FUNCTION target_kills(target) RETURNS boolean LANGUAGE sql
             AS 'SELECT pg_terminate_backend(($1).pid)';
         CREATE CAST (target AS boolean) WITH FUNCTION target_kills(target)",
            killing_operator("&&&")
        ),
    )
    .await;
    for (sql, through) in [
        (
            format!("SELECT pid &&& 1 {VICTIMS}"),
            "operator &&&(integer,integer)",
        ),
        (
            format!("SELECT 1 {VICTIMS} AND pid &&& 1"),
            "operator &&&(integer,integer)",
        ),
        (
            format!("SELECT ROW(pid)::target::boolean {VICTIMS}"),
            "the statement",
        ),
        (
            format!("SELECT CAST(ROW(pid)::target AS boolean) {VICTIMS}"),
            "the statement",
        ),
    ] {
        let statement = planned_because_of(&explain_json(&db, &[&sql]), "");
        let kill = statement["guard"]["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["volatility"] == "volatile")
            .map(|f| f["reached_through"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        assert!(
            kill.iter().any(|t| t.starts_with(through)),
            "{sql}: {kill:?}"
        );
        assert!(answers(&other).await, "{sql} reached the victim");
    }
}

#[tokio::test]
async fn dblink_large_objects_slots_and_reloads_are_never_run() {
    let db = TestDb::new().await;
    execute(&db, "CREATE EXTENSION dblink").await;
    let original = fingerprint(&db).await;
    // Through dblink the DELETE would commit on its own connection.
    let sql = format!(
        r#"SELECT U&"dblink\005fexec"('{}', 'DELETE FROM payments')"#,
        db.url().replace('\'', "''")
    );
    for flags in [&[][..], &["--analyze-writes"]] {
        let args = [flags, &[sql.as_str()]].concat();
        let statement = planned_because_of(&explain_json(&db, &args), "public.dblink_exec(");
        assert!(reached(&statement, "public.dblink_exec(")["outlives_rollback"].is_string());
    }
    assert_eq!(fingerprint(&db).await, original, "dblink deleted rows");

    // lo_export writes a file on the server.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = dir.path().join("exported");
    let sql = format!(
        r#"SELECT U&"lo\005fexport"(lo_from_bytea(0, 'secret'), '{}')"#,
        file.display()
    );
    planned_because_of(
        &explain_json(&db, &["--analyze-writes", &sql]),
        "pg_catalog.lo_export(",
    );
    assert!(!file.exists(), "lo_export wrote {}", file.display());

    // A replication slot holds WAL until it is dropped.
    let slot = format!("{}_guard", db.name);
    let sql =
        format!(r#"SELECT U&"pg\005fcreate\005fphysical\005freplication\005fslot"('{slot}')"#);
    planned_because_of(
        &explain_json(&db, &[&sql]),
        "pg_catalog.pg_create_physical_replication_slot(",
    );
    let slots = count(
        &db,
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
        &slot,
    )
    .await;
    assert_eq!(slots, 0);

    // A configuration reload changes pg_conf_load_time().
    let loaded = || async {
        let row = db
            .client()
            .await
            .query_one("SELECT pg_conf_load_time()::text", &[])
            .await
            .unwrap();
        row.get::<_, String>(0)
    };
    let before = loaded().await;
    planned_because_of(
        &explain_json(&db, &[r#"SELECT U&"pg\005freload\005fconf"()"#]),
        "pg_catalog.pg_reload_conf(",
    );
    assert_eq!(loaded().await, before);
}

#[tokio::test]
async fn views_functions_and_policies_are_followed() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    execute(
        &db,
        "CREATE FUNCTION kill_all() RETURNS bigint LANGUAGE sql
         BEGIN ATOMIC
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'victim';
         END;
         CREATE VIEW inner_view AS SELECT kill_all() AS killed;
         CREATE VIEW outer_view AS SELECT * FROM inner_view;
         CREATE TABLE guarded (id int);
         ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
         CREATE POLICY everyone ON guarded USING (kill_all() >= 0)",
    )
    .await;
    for (sql, through) in [
        // The SQL-standard body is followed into pg_terminate_backend; a
        // function with a string body is judged by its label alone.
        ("SELECT kill_all()", "function public.kill_all"),
        ("SELECT * FROM outer_view", "function public.kill_all"),
        ("SELECT * FROM guarded", "function public.kill_all"),
    ] {
        let statement = planned_because_of_terminate(&explain_json(&db, &[sql]));
        assert_eq!(
            reached(&statement, "pg_catalog.pg_terminate_backend(")["reached_through"],
            through,
            "{sql}"
        );
        assert!(answers(&other).await, "{sql} reached the victim");
    }
    let statement =
        &document(&explain_json(&db, &["SELECT * FROM outer_view"]), 0)["statements"][0];
    let paths: Vec<&str> = statement["guard"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reached_through"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"rule _RETURN on view inner_view"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn reads_that_run_nothing_volatile_are_executed_and_say_why() {
    let db = TestDb::new().await;
    let sql = "SELECT user_id, count(*), sum(amount) FROM payments \
               WHERE id = ANY($1::bigint[]) AND status::text <> 'x' GROUP BY 1 ORDER BY 2";
    let output = explain_json(&db, &["--param", "{1,2,3}", sql]);
    let statement = &document(&output, 0)["statements"][0];
    assert_eq!(statement["analyzed"], true, "{statement:#}");
    let guard = &statement["guard"];
    assert_eq!(guard["executed"], true);
    assert_eq!(guard["resolved_by"], "server");
    assert_eq!(guard["unresolved"], Value::Array(Vec::new()));
    assert!(
        guard["reason"]
            .as_str()
            .unwrap()
            .contains("the server resolved every function it runs"),
        "{guard:#}"
    );
    reached(statement, "pg_catalog.sum(");
    // Only planned: judged all the same, since planning can run code.
    let statement = &document(
        &explain_json(&db, &["DELETE FROM payments WHERE id = 1"]),
        0,
    )["statements"][0];
    assert_eq!(statement["guard"]["resolved_by"], "server", "{statement:#}");
    assert!(
        statement["guard"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not executed because it is not a plain read")
    );
}

#[tokio::test]
async fn a_read_only_session_falls_back_to_names_and_fails_closed() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    execute(
        &db,
        "CREATE FUNCTION kill_all() RETURNS bigint LANGUAGE sql
             AS 'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = ''victim''';
         CREATE VIEW killing AS SELECT kill_all()",
    )
    .await;
    // The server refuses to create the guard's function in a read-only
    // session (as on a standby): the guard looks names up instead.
    set_for_database(&db, "default_transaction_read_only = on").await;
    let statement = &document(
        &explain_json(&db, &["SELECT count(*) FROM payments WHERE user_id = 7"]),
        0,
    )["statements"][0];
    assert_eq!(statement["analyzed"], true, "{statement:#}");
    assert_eq!(statement["guard"]["resolved_by"], "names", "{statement:#}");
    for (sql, because) in [
        (
            format!("SELECT {UNICODE_TERMINATE}(pid) {VICTIMS}"),
            "Unicode escapes",
        ),
        ("SELECT * FROM killing".to_owned(), "public.kill_all()"),
    ] {
        let statement = &document(&explain_json(&db, &[&sql]), 0)["statements"][0];
        assert_eq!(statement["analyzed"], false, "{sql}: {statement:#}");
        assert_eq!(statement["guard"]["resolved_by"], "names", "{statement:#}");
        assert!(
            statement["notes"][0].as_str().unwrap().contains(because),
            "{sql}: {statement:#}"
        );
        assert!(answers(&other).await, "{sql} reached the victim");
    }
    // A database with an operator backed by a VOLATILE function: names
    // cannot tell which operator a statement means.
    execute(
        &db,
        &format!("BEGIN READ WRITE; {}; COMMIT", killing_operator("&&&")),
    )
    .await;
    for sql in [
        format!("SELECT pid &&& 1 {VICTIMS}"),
        // Names cannot tell which operator `=` is: the user's operators
        // are followed whichever the statement uses.
        format!("SELECT pid = 1 {VICTIMS}"),
    ] {
        let statement = &document(&explain_json(&db, &[&sql]), 0)["statements"][0];
        assert_eq!(statement["analyzed"], false, "{statement:#}");
        assert!(answers(&other).await, "{sql} reached the victim");
    }
    let sql = format!("SELECT pid &&& 1 {VICTIMS}");
    let statement = &document(&explain_json(&db, &[&sql]), 0)["statements"][0];
    assert_eq!(statement["analyzed"], false, "{statement:#}");
    assert!(
        statement["notes"][0]
            .as_str()
            .unwrap()
            .contains("operator &&&(integer,integer)"),
        "{statement:#}"
    );
    assert!(answers(&other).await, "{sql} reached the victim");
}

#[tokio::test]
async fn what_perfaudits_parser_cannot_read_is_planned_only_not_refused() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    execute(&db, &killing_operator("===")).await;
    let original = fingerprint(&db).await;
    for sql in [
        format!(r#"SELECT U&"pg!005fterminate!005fbackend" UESCAPE '!'(pid) {VICTIMS}"#),
        format!("SELECT pid === 1 {VICTIMS}"),
        format!("SELECT pid OPERATOR(public.===) 1 {VICTIMS}"),
        format!(
            "SELECT * FROM pg_stat_activity a, LATERAL {UNICODE_TERMINATE}(a.pid) k \
             WHERE a.application_name = 'victim'"
        ),
        "SELECT * FROM payments WHERE id = 1 FOR NO KEY UPDATE".to_owned(),
    ] {
        for flags in [&[][..], &["--analyze-writes"]] {
            let args = [flags, &[sql.as_str()]].concat();
            let statement = &document(&explain_json(&db, &args), 0)["statements"][0];
            assert_eq!(statement["analyzed"], false, "{sql}: {statement:#}");
            assert_eq!(statement["class"]["kind"], "unread", "{statement:#}");
            assert!(
                statement["notes"][0]
                    .as_str()
                    .unwrap()
                    .contains("perfaudit's parser cannot read it"),
                "{statement:#}"
            );
            assert_eq!(statement["executed"], statement["original"]);
            assert!(answers(&other).await, "{sql} reached the victim");
        }
    }
    assert_eq!(fingerprint(&db).await, original);
    // What the server does not read either is bad input, found before
    // anything runs: the statement before it is not run.
    let output = explain_json(&db, &["SELECT 1; SELEC 2"]);
    assert_eq!(output.status.code(), Some(2));
    nothing_explained(&output, "input");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the server does not read it either"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_event_trigger_is_never_fired_by_the_guard() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    // Creating the guard's function would fire this, as any CREATE FUNCTION.
    execute(
        &db,
        "CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'victim';
         END $$;
         CREATE EVENT TRIGGER on_ddl ON ddl_command_end EXECUTE FUNCTION on_ddl()",
    )
    .await;
    let statement = &document(
        &explain_json(&db, &["SELECT count(*) FROM payments WHERE user_id = 7"]),
        0,
    )["statements"][0];
    assert!(answers(&other).await, "the guard fired the event trigger");
    // The names the SQL shows are looked up instead.
    assert_eq!(statement["guard"]["resolved_by"], "names", "{statement:#}");
    assert_eq!(statement["analyzed"], true, "{statement:#}");
}

#[tokio::test]
async fn a_foreign_table_on_another_connection_is_never_read() {
    let db = TestDb::new().await;
    // A postgres_fdw table over this very database: reading it runs a
    // query on another connection, outside the rollback.
    execute(
        &db,
        &format!(
            "CREATE EXTENSION postgres_fdw;
             CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw
                 OPTIONS (dbname '{}');
             CREATE USER MAPPING FOR CURRENT_USER SERVER loop;
             CREATE FOREIGN TABLE remote_payments (id bigint)
                 SERVER loop OPTIONS (table_name 'payments')",
            db.name
        ),
    )
    .await;
    let sql = "SELECT count(*) FROM remote_payments";
    for flags in [&[][..], &["--analyze-writes"]] {
        let args = [flags, &[sql]].concat();
        let statement = planned_because_of(&explain_json(&db, &args), "postgres_fdw_handler");
        assert_eq!(
            reached(&statement, "public.postgres_fdw_handler(")["reached_through"],
            "foreign table remote_payments"
        );
    }
    // file_fdw runs a program for a table.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let touched = dir.path().join("ran");
    execute(
        &db,
        &format!(
            "CREATE EXTENSION file_fdw;
             CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
             CREATE FOREIGN TABLE program_output (line text) SERVER files
                 OPTIONS (program 'touch {} && echo x')",
            touched.display()
        ),
    )
    .await;
    for flags in [&[][..], &["--analyze-writes"]] {
        let args = [flags, &["SELECT * FROM program_output"]].concat();
        planned_because_of(&explain_json(&db, &args), "file_fdw_handler");
    }
    assert!(!touched.exists(), "file_fdw ran its program");
}

#[tokio::test]
async fn a_domain_check_that_runs_volatile_code_keeps_the_database_from_being_read() {
    let db = TestDb::new().await;
    execute(
        &db,
        "CREATE TABLE log (message text);
         CREATE FUNCTION writes(id int) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO log VALUES ('wrote ' || id);
             DELETE FROM payments WHERE payments.id = writes.id;
             RETURN true;
         END $$;
         CREATE DOMAIN checked AS int CHECK (writes(VALUE));
         CREATE TYPE holder AS (value checked)",
    )
    .await;
    let original = fingerprint(&db).await;
    // Reading '(42)' as a holder runs the domain's CHECK while the
    // statement is parsed, before any transaction: nothing may be sent.
    for flags in [&[][..], &["--no-analyze"], &["--no-rewrite"]] {
        let args = [flags, &["SELECT '(42)'::holder"]].concat();
        let output = explain_json(&db, &args);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("domains whose CHECK runs code") && stderr.contains("public.writes("),
            "{stderr}"
        );
    }
    // The other commands that have the server read statements refuse too.
    for args in [
        &["rewrite", "SELECT '(42)'::holder FROM payments"][..],
        &[
            "advise",
            "SELECT '(42)'::holder FROM payments WHERE user_id = 1",
        ],
    ] {
        let output = common::explain::run(db.perfaudit().args(args));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("domains whose CHECK runs code"),
            "{args:?}"
        );
    }
    assert_eq!(fingerprint(&db).await, original);
    assert_eq!(
        count(&db, "SELECT count(*) FROM log WHERE $1 = $1", "x").await,
        0
    );
}

#[tokio::test]
async fn operator_class_support_functions_and_writes_inside_functions_are_followed() {
    let db = TestDb::new().await;
    let (other, _) = victim(&db).await;
    execute(
        &db,
        "CREATE TABLE documents (id int, body json);
         INSERT INTO documents SELECT g, json_build_object('n', g) FROM generate_series(1, 50) g;
         CREATE FUNCTION jcmp(a json, b json) RETURNS int LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'victim';
             RETURN bttextcmp(a::text, b::text);
         END $$;
         CREATE FUNCTION jlt(a json, b json) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT a::text < b::text; END;
         CREATE FUNCTION jle(a json, b json) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT a::text <= b::text; END;
         CREATE FUNCTION jeq(a json, b json) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT a::text = b::text; END;
         CREATE FUNCTION jge(a json, b json) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT a::text >= b::text; END;
         CREATE FUNCTION jgt(a json, b json) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT a::text > b::text; END;
         CREATE OPERATOR < (LEFTARG = json, RIGHTARG = json, FUNCTION = jlt);
         CREATE OPERATOR <= (LEFTARG = json, RIGHTARG = json, FUNCTION = jle);
         CREATE OPERATOR = (LEFTARG = json, RIGHTARG = json, FUNCTION = jeq);
         CREATE OPERATOR >= (LEFTARG = json, RIGHTARG = json, FUNCTION = jge);
         CREATE OPERATOR > (LEFTARG = json, RIGHTARG = json, FUNCTION = jgt);
         CREATE OPERATOR CLASS json_order DEFAULT FOR TYPE json USING btree AS
             OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
             FUNCTION 1 jcmp(json, json);
         CREATE SEQUENCE stamps;
         CREATE TABLE stamped (x int, stamp bigint DEFAULT setval('stamps', 1000));
         CREATE FUNCTION stamp() RETURNS void LANGUAGE sql
             BEGIN ATOMIC INSERT INTO stamped (x) VALUES (1); END",
    )
    .await;
    // Sorting json runs the operator class's comparison function.
    let statement = planned_because_of(
        &explain_json(&db, &["SELECT id FROM documents ORDER BY body"]),
        "public.jcmp(",
    );
    assert!(
        reached(&statement, "public.jcmp(")["reached_through"]
            .as_str()
            .unwrap()
            .starts_with("operator"),
        "{statement:#}"
    );
    assert!(answers(&other).await, "sorting reached the victim");
    // A function that inserts makes the statement a write, whose table's
    // default sets a sequence: not even --analyze-writes runs it.
    let before = count(&db, "SELECT last_value FROM stamps WHERE $1 = $1", "x").await;
    let output = explain_json(&db, &["--analyze-writes", "SELECT stamp()"]);
    planned_because_of(&output, "pg_catalog.setval(");
    assert_eq!(
        count(&db, "SELECT last_value FROM stamps WHERE $1 = $1", "x").await,
        before
    );
}

#[tokio::test]
async fn what_the_guard_does_not_follow_behind_built_ins_runs_nothing_volatile() {
    // The guard follows only what users and extensions defined behind
    // operators, operator families, aggregates and types: this is why.
    let db = TestDb::empty().await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT
               (SELECT count(*) FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                WHERE o.oid < 16384 AND p.provolatile = 'v'),
               (SELECT count(*) FROM pg_amproc a JOIN pg_proc p ON p.oid = a.amproc
                WHERE a.amprocfamily < 16384 AND p.provolatile = 'v'),
               (SELECT count(*) FROM pg_type t JOIN pg_proc p ON p.oid IN (t.typinput, t.typoutput)
                WHERE t.oid < 16384 AND p.provolatile = 'v'),
               (SELECT count(*) FROM pg_aggregate a JOIN pg_proc p
                  ON p.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
                               a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
                WHERE a.aggfnoid < 16384 AND p.provolatile = 'v')",
            &[],
        )
        .await
        .unwrap();
    let counts: [i64; 4] = [row.get(0), row.get(1), row.get(2), row.get(3)];
    assert_eq!(
        counts,
        [0, 0, 0, 0],
        "operators, families, types, aggregates"
    );
}

/// A function that writes a row of `marker` through dblink, committed on
/// its own connection whatever happens to the caller's transaction.
async fn marker_writer(db: &TestDb) {
    execute(
        db,
        &format!(
            "CREATE EXTENSION IF NOT EXISTS dblink;
             CREATE TABLE marker (what text);
             CREATE FUNCTION mark(what text) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM dblink_exec('{}', format('INSERT INTO marker VALUES (%L)', what));
                 RETURN true;
             END $$",
            db.url().replace('\'', "''")
        ),
    )
    .await;
}

async fn marks(db: &TestDb) -> i64 {
    count(db, "SELECT count(*) FROM marker WHERE $1 = $1", "x").await
}

#[tokio::test]
async fn negators_commutators_and_what_writes_maintain_are_followed() {
    let db = TestDb::new().await;
    marker_writer(&db).await;
    execute(
        &db,
        "CREATE FUNCTION differs(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN PERFORM mark('negator'); RETURN a <> b; END $$;
         CREATE OPERATOR !### (FUNCTION = differs, LEFTARG = int, RIGHTARG = int);
         CREATE OPERATOR ### (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int, NEGATOR = !###);
         CREATE TABLE numbers AS SELECT g AS x FROM generate_series(1, 20) g;
         CREATE TABLE keyed (x int);
         CREATE FUNCTION key_and_mark(x int) RETURNS text LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT x::text || mark('index')::text; END;
         CREATE INDEX ON keyed (key_and_mark(x))",
    )
    .await;
    // NOT (x ### 1) is planned as x !### 1.
    planned_because_of(
        &explain_json(&db, &["SELECT x FROM numbers WHERE NOT (x ### 1)"]),
        "public.differs(",
    );
    // Inserting computes the index's expression, whose IMMUTABLE body
    // marks: not even planned.
    for flags in [&[][..], &["--analyze-writes"]] {
        let args = [flags, &["INSERT INTO keyed VALUES (1), (2)"]].concat();
        let output = explain_json(&db, &args);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("inside the IMMUTABLE function public.key_and_mark("),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(marks(&db).await, 0);
}

#[tokio::test]
async fn what_planning_alone_would_run_is_not_even_planned() {
    let db = TestDb::new().await;
    marker_writer(&db).await;
    // The planner evaluates an IMMUTABLE function of constants: its body
    // marks, through dblink, whatever EXPLAIN is asked.
    execute(
        &db,
        "CREATE FUNCTION folded(x int) RETURNS boolean LANGUAGE sql IMMUTABLE
             BEGIN ATOMIC SELECT mark('planned'); END",
    )
    .await;
    for flags in [&[][..], &["--no-analyze"], &["--analyze-writes"]] {
        let args = [flags, &["SELECT 1 WHERE folded(1)"]].concat();
        let output = explain_json(&db, &args);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        nothing_explained(&output, "input");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "public.mark(what text) runs inside the IMMUTABLE function public.folded(x integer)"
            ),
            "{stderr}"
        );
    }
    assert_eq!(marks(&db).await, 0);
}
