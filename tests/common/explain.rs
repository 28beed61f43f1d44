//! What the `explain` tests share: running the binary for JSON, reading
//! its output, and looking at the database around it.

use std::process::{Command, Output};

use perfaudit::sql::ident::quote;
use serde_json::Value;

use super::TestDb;

/// Runs `command` and returns its output.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("perfaudit runs")
}

/// `perfaudit --format json explain <args>` on `db`.
pub fn explain_json(db: &TestDb, args: &[&str]) -> Output {
    run(db
        .perfaudit()
        .args(["--format", "json", "explain"])
        .args(args))
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON document on stdout, after checking the exit code.
pub fn document(output: &Output, code: i32) -> Value {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Checks that nothing was explained: the one JSON document on stdout holds
/// no statement, and the error of kind `kind`, with the run's exit code and
/// the message stderr got.
pub fn nothing_explained(output: &Output, kind: &str) {
    let report = document(output, output.status.code().unwrap_or(-1));
    assert_eq!(report["statements"], serde_json::json!([]), "{report:#}");
    let error = &report["error"];
    assert_eq!(error["kind"], kind, "{report:#}");
    assert_eq!(
        error["exit_code"],
        output.status.code().unwrap(),
        "{report:#}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(stderr(output).contains(message), "{message}");
}

/// Runs `sql` on `db`.
pub async fn execute(db: &TestDb, sql: &str) {
    db.client()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `ALTER DATABASE <db> SET <setting>`, for the sessions perfaudit opens.
pub async fn set_for_database(db: &TestDb, setting: &str) {
    execute(
        db,
        &format!("ALTER DATABASE {} SET {setting}", quote(&db.name)),
    )
    .await;
}

/// The row count and a checksum of every row of payments.
pub async fn fingerprint(db: &TestDb) -> (i64, String) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), md5(coalesce(string_agg(p::text, '|' ORDER BY id), '')) FROM payments p",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The count `sql` (a `SELECT count(*)` taking `$1`) returns on `db`.
pub async fn count(db: &TestDb, sql: &str, param: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[&param])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The statement of a one-statement JSON report, after checking it was
/// only planned and that a note says so, naming `function`.
pub fn planned_because_of(output: &Output, function: &str) -> Value {
    let report = document(output, 0);
    let statement = report["statements"][0].clone();
    assert_eq!(statement["analyzed"], false, "{statement:#}");
    assert_eq!(statement["class"]["kind"], "write", "{statement:#}");
    let note = statement["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("not executed") && note.contains(function),
        "{statement:#}"
    );
    statement
}

/// Whether the session is alive and answers.
pub async fn answers(client: &tokio_postgres::Client) -> bool {
    client.simple_query("SELECT 1").await.is_ok()
}
