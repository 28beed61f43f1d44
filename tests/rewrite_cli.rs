//! `perfaudit rewrite` as a user runs it: output for people and for
//! pipelines, exit codes, errors, offline and with a database.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::process::{self, shell_quote};
use serde_json::Value;

fn run(command: &mut Command) -> Output {
    command.output().expect("perfaudit runs")
}

fn offline(args: &[&str]) -> Output {
    run(common::perfaudit().arg("rewrite").args(args))
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

const MIXED: &str = "\
SELECT id, created_at FROM payments WHERE user_id = $1;
-- bounded already
SELECT * FROM payments ORDER BY id LIMIT ALL;
select p.id, u.email
  from payments p join users u on u.id = p.user_id /* join */
  where p.created_at > now() - interval '1 day'
  for update;
SELECT status, count(*) FROM payments GROUP BY status;
UPDATE payments SET status = 'failed' WHERE id = 1;
";

#[test]
fn a_table_for_people_shows_each_statement_and_why() {
    let output = offline(&[MIXED]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn json_for_pipelines_has_the_documented_shape() {
    let output = run(common::perfaudit()
        .args(["--format", "json", "rewrite"])
        .arg(MIXED));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let document = json(&output);
    let statements = document["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 5);
    assert_eq!(document.as_object().unwrap().len(), 1);
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    for statement in statements {
        assert_eq!(
            keys(statement),
            [
                "changes",
                "column",
                "line",
                "original",
                "rewritten",
                "skipped"
            ]
        );
        for change in statement["changes"].as_array().unwrap() {
            assert_eq!(keys(change), ["detail", "rule"]);
        }
        for skip in statement["skipped"].as_array().unwrap() {
            assert_eq!(keys(skip), ["reason", "rule"]);
        }
    }
    assert_eq!(
        statements[0]["rewritten"],
        "SELECT id, created_at FROM payments WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1000"
    );
    assert_eq!(statements[1]["skipped"][1]["rule"], "limit");
    assert_eq!(
        statements[1]["skipped"][1]["reason"],
        "kept the query's own LIMIT ALL"
    );
    assert_eq!(
        statements[2]["rewritten"],
        "select p.id, u.email\n  from payments p join users u on u.id = p.user_id /* join */\n  \
         where p.created_at > now() - interval '1 day' ORDER BY p.created_at DESC LIMIT 1000\n  for update"
    );
    assert_eq!(statements[4]["rewritten"], statements[4]["original"]);
    // Streamed, pretty-printed, fields in the documented order.
    assert!(
        stdout(&output).starts_with(
            "{\n  \"statements\": [\n    {\n      \"line\": 1,\n      \"column\": 1,\n      \"original\": \"SELECT id, created_at FROM payments WHERE user_id = $1\",\n      \"rewritten\": "
        ),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).ends_with("\n    }\n  ]\n}\n"));
}

#[test]
fn flags_choose_the_limit_and_the_ordering() {
    let sql = "SELECT \"CreatedAt\", created_at FROM t";
    let output = offline(&["--limit", "25", "--order-by", "\"CreatedAt\" asc", sql]);
    assert!(
        stdout(&output).contains(
            "SELECT \"CreatedAt\", created_at FROM t ORDER BY \"CreatedAt\" ASC LIMIT 25\n"
        ),
        "{}",
        stdout(&output)
    );
    let output = run(common::perfaudit()
        .args(["--format", "json", "rewrite", "--no-limit", "--no-order-by"])
        .arg(sql));
    let statement = &json(&output)["statements"][0];
    assert_eq!(statement["rewritten"], sql);
    assert_eq!(
        statement["skipped"][0]["reason"],
        "disabled by --no-order-by"
    );
    assert_eq!(statement["skipped"][1]["reason"], "disabled by --no-limit");
}

#[test]
fn bad_flags_are_usage_errors() {
    for (args, message) in [
        (&["--limit", "0", "SELECT 1"][..], "invalid value '0'"),
        (
            &["--limit", "5", "--no-limit", "SELECT 1"],
            "cannot be used with",
        ),
        (
            &["--order-by", "created_at DOWN", "SELECT 1"],
            "<column> [ASC|DESC]",
        ),
        (
            &["--order-by", "lower(email)", "SELECT 1"],
            "<column> [ASC|DESC]",
        ),
    ] {
        let output = offline(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn sql_that_does_not_parse_is_exit_2_with_line_and_column_and_the_rest_is_still_rewritten() {
    let output = run(common::perfaudit()
        .args(["--format", "json", "rewrite"])
        .arg("SELECT created_at FROM t;\nSELECT FROM WHERE;\nSELECT 2;\nSELEC 3"));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "perfaudit: the SQL does not parse at line 2, column 13: Expected: table name, found: WHERE\n\
         perfaudit: the SQL does not parse at line 4, column 1: Expected: an SQL statement, found: SELEC\n"
    );
    let document = json(&output);
    // The run's error is the last statement that does not parse.
    assert_eq!(
        document["error"]["message"],
        "the SQL does not parse at line 4, column 1: Expected: an SQL statement, found: SELEC"
    );
    let statements = document["statements"].as_array().unwrap();
    let positions: Vec<(u64, u64)> = statements
        .iter()
        .map(|s| (s["line"].as_u64().unwrap(), s["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(positions, [(1, 1), (3, 1)]);
    let rewritten: Vec<Value> = statements.iter().map(|s| s["rewritten"].clone()).collect();
    assert_eq!(
        rewritten,
        [
            "SELECT created_at FROM t ORDER BY created_at DESC LIMIT 1000",
            "SELECT 2 LIMIT 1000"
        ]
    );
    // Unterminated: nothing after it can be split into statements.
    let output = offline(&["SELECT 'open"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "perfaudit: the SQL does not parse at line 1, column 8: Unterminated string literal\n"
    );
    assert_eq!(stdout(&output), "");
    // A pipeline still gets a whole document.
    let output = run(common::perfaudit()
        .args(["--format", "json", "rewrite"])
        .arg("SELECT 'open"));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        json(&output),
        serde_json::json!({"statements": [], "error": {
            "kind": "input",
            "message": "the SQL does not parse at line 1, column 8: Unterminated string literal",
            "exit_code": 2
        }})
    );
    let output = offline(&[" -- only a comment\n;"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no SQL statement"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn huge_and_deep_input_gives_a_clean_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.sql");
    // A 1 MB statement that is flat: rewritten.
    let list: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
    let flat = format!("SELECT id FROM t WHERE id IN ({})", list.join(","));
    assert!(flat.len() > 1_000_000);
    // A 1 MB chain, and thousands of parentheses: clean errors.
    let chain = format!("SELECT 1{}", " + 1".repeat(260_000));
    let deep = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    std::fs::write(&file, format!("{flat};\n{chain};\n{deep};\nSELECT 2")).unwrap();
    let output = run(common::perfaudit()
        .args(["--format", "json", "rewrite", "-f"])
        .arg(&file));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains("line 2, column 1 chains more than 10000 operators"),
        "{errors}"
    );
    assert!(
        errors.contains("line 3, column 1 nests deeper than 200 levels"),
        "{errors}"
    );
    let statements = json(&output)["statements"].as_array().unwrap().clone();
    assert_eq!(statements.len(), 2);
    assert!(
        statements[0]["rewritten"]
            .as_str()
            .unwrap()
            .ends_with(") LIMIT 1000")
    );
}

#[test]
fn sql_comes_from_stdin_too() {
    let mut child = common::perfaudit()
        .args(["--format", "json", "rewrite", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1; SELECT 2")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(json(&output)["statements"].as_array().unwrap().len(), 2);
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.sql");
    std::fs::write(&file, "SELECT 1;\n".repeat(20_000)).unwrap();
    let output = run(Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} rewrite -f {} | head -c 10 >/dev/null",
            env!("CARGO_BIN_EXE_perfaudit"),
            file.display()
        ))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap()));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[tokio::test]
async fn with_a_database_the_server_resolves_the_column() {
    let db = common::TestDb::new().await;
    let output = run(db.perfaudit().args([
        "rewrite",
        "SELECT p.id, u.email FROM payments p JOIN users u ON u.id = p.user_id; SELECT * FROM missing",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("ON u.id = p.user_id ORDER BY p.created_at DESC LIMIT 1000\n"),
        "{text}"
    );
    assert!(text.contains("so does u (users)"), "{text}");
    assert!(
        text.contains(
            "the server could not describe the query: relation \"missing\" does not exist"
        ),
        "{text}"
    );
    assert!(!text.contains("Offline"), "{text}");
}

/// Review item 5: a column named by a key word that is not reserved
/// (`left` is a type or function name, `between` a column name) came back
/// unquoted, `ORDER BY left`, which PostgreSQL rejects.
#[tokio::test]
async fn a_key_word_column_is_ordered_by_in_sql_postgresql_accepts() {
    let db = common::TestDb::empty().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    for word in [
        "left", "join", "verbose", "time", "user", "order", "between",
    ] {
        let sql = format!("SELECT x AS \"{word}\" FROM t");
        let output = offline(&[
            "--format",
            "json",
            "--order-by",
            &format!("\"{word}\""),
            &sql,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let rewritten = json(&output)["statements"][0]["rewritten"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(rewritten, format!("{sql} ORDER BY \"{word}\" LIMIT 1000"));
        if let Err(error) = client.prepare(&rewritten).await {
            panic!("PostgreSQL rejects {rewritten}: {error}");
        }
    }
}

#[test]
fn an_unreachable_database_is_exit_3() {
    let output = offline(&[
        "--database-url",
        "host=/nonexistent-perfaudit-socket-dir connect_timeout=2",
        "SELECT 1",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with("perfaudit: could not connect"),
        "{}",
        stderr(&output)
    );
}

/// What `perfaudit rewrite <sql>` shows on a pseudo-terminal (`script`) of
/// `columns` columns, with `NO_COLOR` when asked; ANSI colours removed.
fn rewrite_on_a_terminal(columns: u16, no_color: bool, sql: &str) -> String {
    let command = format!(
        "stty cols {columns} rows 40; {}{} rewrite {}",
        if no_color { "NO_COLOR=1 " } else { "" },
        shell_quote(env!("CARGO_BIN_EXE_perfaudit")),
        shell_quote(sql)
    );
    let output = process::on_a_terminal(&command);
    let text = String::from_utf8_lossy(&output.stdout);
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().take_while(|&c| c != 'm').for_each(drop);
        } else if c != '\r' {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn tables_fit_a_terminal_with_or_without_colour_and_survive_one_that_reports_no_width() {
    let sql = "SELECT id, amount, currency, status, created_at FROM payments WHERE user_id = 42";
    for no_color in [false, true] {
        let text = rewrite_on_a_terminal(80, no_color, sql);
        let table_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(['│', '┌', '╞', '└']))
            .collect();
        assert!(!table_lines.is_empty(), "{text}");
        for line in table_lines {
            assert!(line.chars().count() <= 80, "NO_COLOR={no_color}: {line}");
        }
    }
    // A pty that reports 0 columns: the table is not squeezed to one
    // character a column.
    let text = rewrite_on_a_terminal(0, false, sql);
    assert!(text.contains("│ rule "), "{text}");
}
