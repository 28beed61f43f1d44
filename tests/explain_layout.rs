//! explain's report at 80, 100 and 200 columns (asked for with `COLUMNS`,
//! and on a terminal that wide), on rentals statements with findings, a
//! parallel plan and a partitioned table: no line is wider than the
//! terminal but the SQL and the DDL, which are never wrapped; every number
//! and name stays whole; each node keeps its place in the tree; and with
//! `--details` each node's conditions, sort and workers are under its own
//! row, and only there.

mod common;

use common::TestDb;
use common::explain::{document, explain_json, run, set_for_database, stderr};
use perfaudit::explain::findings::{RULES, count};
use serde_json::Value;

/// The statements, explained as written: a parallel aggregate over the 13
/// partitions of rental_payment (Partial and Finalize halves, a Gather
/// Merge, the partitions drawn as one row with their common filter); a
/// parallel join with a selective-seq-scan finding and its DDL; an index
/// condition; and a sort that spills to disk.
const STATEMENTS: &str = "\
SELECT status, count(*), sum(amount) FROM billing.rental_payment WHERE amount > 5 GROUP BY status;
SELECT r.customer_id, count(*), sum(p.amount) FROM billing.rental_payment p
  JOIN store.rental r USING (rental_id) WHERE p.status = 'failed' AND r.staff_id = 3
  GROUP BY 1 ORDER BY 3 DESC;
SELECT * FROM store.rental WHERE customer_id = 42 ORDER BY returned_at;
SELECT rental_id, returned_at FROM store.rental ORDER BY returned_at;";

/// The widths the report is checked at: the narrowest terminal in common
/// use, a usual one, and one wide enough for every column.
const WIDTHS: [usize; 3] = [80, 100, 200];

/// A copy of rentals whose plans are parallel wherever they may be, and
/// whose sorts of the whole rental table spill to disk.
async fn rentals() -> TestDb {
    let db = TestDb::rentals().await;
    for setting in [
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
        "work_mem = '64kB'",
    ] {
        set_for_database(&db, setting).await;
    }
    db
}

/// The JSON report of the statements: what each table must show.
fn json_report(db: &TestDb) -> Value {
    let report = document(&explain_json(db, &["--no-rewrite", STATEMENTS]), 0);
    // What the checks below rely on: were the plans to change, they would
    // check less without saying so.
    let all = report.to_string();
    for expected in [
        "\"label\":\"Finalize ",
        "\"label\":\"Partial ",
        "\"workers_planned\":2",
        "\"index_cond\":\"(customer_id = 42)\"",
        "\"sort_method\":\"external merge\"",
        "\"ddl\":\"CREATE INDEX",
    ] {
        assert!(all.contains(expected), "no {expected}: {report:#}");
    }
    report
}

/// The table report of the statements, `columns` wide (`COLUMNS`).
fn text_report(db: &TestDb, columns: usize, details: bool) -> String {
    let mut command = db.perfaudit();
    command
        .env("COLUMNS", columns.to_string())
        .args(["explain", "--no-rewrite"]);
    if details {
        command.arg("--details");
    }
    let output = run(command.arg(STATEMENTS));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// A table as drawn: its header's cells, and its rows, each its lines of
/// cells (a cell's padding taken off, a left-aligned cell's indentation
/// kept).
struct Drawn {
    header: Vec<String>,
    rows: Vec<Vec<Vec<String>>>,
}

impl Drawn {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|header| header == name)
    }
}

/// The tables of `text`, in order.
fn tables(text: &str) -> Vec<Drawn> {
    let mut tables = Vec::new();
    let mut table: Option<Drawn> = None;
    for line in text.lines() {
        let Some(drawn) = table.as_mut() else {
            if line.starts_with('┌') {
                table = Some(Drawn {
                    header: Vec::new(),
                    rows: Vec::new(),
                });
            }
            continue;
        };
        if line.starts_with('└') {
            tables.extend(table.take());
            continue;
        }
        let Some(inner) = line.strip_prefix('│') else {
            continue;
        };
        let cells: Vec<String> = inner
            .trim_end_matches('│')
            .split('┆')
            .map(|cell| cell.strip_prefix(' ').unwrap_or(cell).trim_end().to_owned())
            .collect();
        match drawn.rows.last_mut() {
            _ if drawn.header.is_empty() => drawn.header = cells,
            Some(row) if cells[0].is_empty() => row.push(cells),
            _ => drawn.rows.push(vec![cells]),
        }
    }
    tables
}

/// The text of each statement of a report, in order.
fn statements(text: &str) -> Vec<&str> {
    text.split("\nStatement ").collect()
}

/// The node ids of a plan table's row: `7`, or `5-17` for alike siblings
/// drawn as one.
fn ids(row: &[Vec<String>]) -> Vec<usize> {
    let id = row[0][0].trim();
    let (first, last) = id.split_once('-').unwrap_or((id, id));
    (first.parse().unwrap()..=last.parse().unwrap()).collect()
}

/// Where a node at `depth` starts in the node column: two spaces a level
/// below the root, then the tree's arrow.
fn tree_prefix(depth: usize) -> String {
    assert!(depth <= 16, "a plan this deep is drawn capped");
    match depth {
        0 => String::new(),
        _ => format!("{}→ ", "  ".repeat(depth - 1)),
    }
}

/// Checks the report `text`, drawn `columns` wide, against the JSON
/// `report` of the same statements.
fn check_layout(text: &str, columns: usize, report: &Value) {
    let ddl: Vec<&str> = report["statements"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap())
        .filter_map(|finding| finding["ddl"].as_str())
        .collect();
    assert!(!ddl.is_empty(), "{report:#}");
    for statement in &ddl {
        assert!(
            text.lines().any(|line| line == *statement),
            "{columns} columns: {statement} is not a line of its own:\n{text}"
        );
    }
    for line in text.lines() {
        // The statements' SQL (indented) and the DDL are never wrapped.
        let sql = line.starts_with("  ") || ddl.contains(&line);
        assert!(
            sql || line.chars().count() <= columns,
            "{columns} columns: a line of {} columns:\n{line}\n{text}",
            line.chars().count()
        );
    }
    let statements = statements(text);
    assert_eq!(statements.len(), 4, "{text}");
    for (index, statement_text) in statements.iter().enumerate() {
        let statement = &report["statements"][index];
        let tables = tables(statement_text);
        check_plan_rows(&tables[0], &statement["nodes"], columns, statement_text);
        for table in &tables {
            check_no_number_split(table, columns, statement_text);
        }
        // Each finding's code, whole, on its row's first line (which
        // findings a run gets can change: a cold cache's disk reads).
        let findings = tables
            .iter()
            .filter(|table| table.column("finding").is_some());
        for table in findings {
            let column = table.column("finding").unwrap();
            for row in &table.rows {
                let code = row[0][column].as_str();
                assert!(
                    RULES.iter().any(|rule| rule.code == code),
                    "{columns} columns: {code:?} is no finding's code:\n{statement_text}"
                );
            }
        }
    }
}

/// Checks that each row of a plan table is its node's, its estimate whole
/// and its tree prefix intact: the arrow at its depth on its first line,
/// everything after indented under its label.
fn check_plan_rows(table: &Drawn, nodes: &Value, columns: usize, text: &str) {
    assert_eq!(table.header[..2], ["#", "node"], "{text}");
    let estimate = table.column("rows est.").unwrap();
    let mut drawn = Vec::new();
    for row in &table.rows {
        let ids = ids(row);
        let first = &nodes[ids[0]];
        let depth = first["depth"].as_u64().unwrap() as usize;
        let prefix = tree_prefix(depth);
        let label = match ids.len() {
            1 => first["label"].as_str().unwrap().to_owned(),
            n => format!("{n} × "),
        };
        let first_word = label.split(' ').next().unwrap();
        assert!(
            row[0][1].starts_with(&format!("{prefix}{first_word}")),
            "{columns} columns: node {ids:?} does not start with {prefix:?}{first_word}:\n{text}"
        );
        let under = " ".repeat(prefix.chars().count());
        for line in &row[1..] {
            assert!(
                line[1].starts_with(&under),
                "{columns} columns: a line of node {ids:?} left its place in the tree:\n{text}"
            );
        }
        let estimated: f64 = ids
            .iter()
            .map(|&id| nodes[id]["estimated_rows"].as_f64().unwrap())
            .sum();
        assert_eq!(row[0][estimate].trim(), count(estimated), "{text}");
        drawn.extend(ids);
    }
    let every: Vec<usize> = (0..nodes.as_array().unwrap().len()).collect();
    assert_eq!(drawn, every, "each node drawn once, in order:\n{text}");
}

/// Checks that no cell of `table` ends a line inside a number that its
/// next line goes on with.
fn check_no_number_split(table: &Drawn, columns: usize, text: &str) {
    for row in &table.rows {
        for lines in row.windows(2) {
            for (above, below) in lines[0].iter().zip(&lines[1]) {
                // `1,` before `352`; a word's comma (`merge,`) ends no number.
                let ends_in_number = above
                    .trim_end_matches(',')
                    .ends_with(|c: char| c.is_ascii_digit());
                let goes_on = below.trim_start().starts_with(|c: char| c.is_ascii_digit());
                assert!(
                    !(ends_in_number && goes_on),
                    "{columns} columns: a number split in {above:?} / {below:?}:\n{text}"
                );
            }
        }
    }
}

/// The node cell of each row of each statement's plan table, its lines
/// joined: the words, in order (lines are broken at spaces only).
fn node_cells(text: &str) -> Vec<Vec<(Vec<usize>, String)>> {
    statements(text)
        .iter()
        .map(|statement| {
            tables(statement)[0]
                .rows
                .iter()
                .map(|row| {
                    let lines: Vec<&str> = row.iter().map(|line| line[1].as_str()).collect();
                    (ids(row), words(&lines.join(" ")))
                })
                .collect()
        })
        .collect()
}

/// `text` with every run of white space one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks that the plan table of each statement shows each node's details
/// under its own row when `shown`, and none when not.
fn check_details(text: &str, report: &Value, shown: bool) {
    for (index, rows) in node_cells(text).iter().enumerate() {
        let nodes = &report["statements"][index]["nodes"];
        for (ids, node) in rows {
            let first = &nodes[ids[0]];
            let expected = [
                ("Index Cond: ", &first["index_cond"]),
                ("Filter: ", &first["filter"]),
                ("Sort Method: ", &first["sort_method"]),
                ("Workers: ", &first["workers_planned"]),
            ];
            for (name, value) in expected {
                let detail = match value {
                    Value::String(text) => format!("{name}{text}"),
                    Value::Number(workers) => {
                        format!("{name}{} planned", count(workers.as_f64().unwrap()))
                    }
                    _ => {
                        assert!(!node.contains(name), "{name} of no node:\n{text}");
                        continue;
                    }
                };
                assert_eq!(
                    node.contains(&words(&detail)),
                    shown,
                    "{detail} (shown: {shown}) in {node}:\n{text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_report_fits_80_100_and_200_columns_without_splitting_a_word() {
    let db = rentals().await;
    let report = json_report(&db);
    for columns in WIDTHS {
        let text = text_report(&db, columns, false);
        check_layout(&text, columns, &report);
        check_details(&text, &report, false);
        let plan = &tables(statements(&text)[0])[0];
        // A narrow terminal gets fewer columns, and is told so; a wide one
        // all of them.
        let left_out = text.contains("not shown at this width:");
        assert_eq!(left_out, columns < 200, "{columns} columns:\n{text}");
        assert_eq!(plan.column("removed").is_some(), columns == 200, "{text}");
    }
}

#[tokio::test]
async fn details_are_under_each_node_at_80_100_and_200_columns() {
    let db = rentals().await;
    let report = json_report(&db);
    for columns in WIDTHS {
        let text = text_report(&db, columns, true);
        check_layout(&text, columns, &report);
        check_details(&text, &report, true);
        // The spilled sort says how much it wrote.
        let spilled = node_cells(&text)
            .concat()
            .into_iter()
            .any(|(_, node)| node.contains("Sort Method: external merge Disk: "));
        assert!(spilled, "{text}");
    }
}

#[tokio::test]
async fn a_terminal_is_fitted_as_columns_is() {
    let db = rentals().await;
    let report = json_report(&db);
    for columns in WIDTHS {
        let command = format!(
            "stty cols {columns} rows 50; NO_COLOR=1 {} -q --no-progress --database-url {} \
             explain --no-rewrite --details {}",
            common::process::shell_quote(env!("CARGO_BIN_EXE_perfaudit")),
            common::process::shell_quote(&db.url()),
            common::process::shell_quote(STATEMENTS)
        );
        let output = common::process::on_a_terminal(&command);
        let text = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        check_layout(&text, columns, &report);
        check_details(&text, &report, true);
    }
}
