//! What the `perfaudit indexes` tests share: running the binary, writing
//! specs, and reading indexes back from the server.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::process::Output;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::common::TestDb;
use crate::common::process::{self, shell_quote};

/// Payments in the databases where builds must take measurable time.
pub const BIG: u64 = 500_000;

/// How long a test waits for something that should take a second or two.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A partitioned table two levels deep: `events` by year, 2024 by region.
pub const EVENTS_SQL: &str = "
    CREATE TABLE events (id bigint, at date NOT NULL, region text NOT NULL)
        PARTITION BY RANGE (at);
    CREATE TABLE events_2023 PARTITION OF events
        FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
    CREATE TABLE events_2024 PARTITION OF events
        FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
    CREATE TABLE events_2024_eu PARTITION OF events_2024 FOR VALUES IN ('eu');
    CREATE TABLE events_2024_us PARTITION OF events_2024 FOR VALUES IN ('us');
    INSERT INTO events
    SELECT g, date '2023-01-01' + (g % 700), CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END
    FROM generate_series(1, 20000) g;";

/// A finished run of the binary.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }
}

impl Run {
    /// The JSON document on stdout.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts the run exited with `code` and said each of `expected` on
    /// stderr.
    pub fn assert_failed(&self, code: i32, expected: &[&str]) {
        assert_eq!(self.code, code, "{}", self.stderr);
        for expected in expected {
            assert!(
                self.stderr.contains(expected),
                "{expected}: {}",
                self.stderr
            );
        }
    }

    /// The `action` of each index in the JSON report.
    pub fn actions(&self) -> Vec<String> {
        self.json()["indexes"]
            .as_array()
            .expect("indexes")
            .iter()
            .map(|i| i["action"].as_str().expect("action").to_owned())
            .collect()
    }
}

/// Runs `perfaudit indexes <args...>` on `db` (global options may follow
/// the command).
pub fn indexes(db: &TestDb, args: &[&str]) -> Run {
    db.perfaudit()
        .arg("indexes")
        .args(args)
        .output()
        .expect("run perfaudit")
        .into()
}

/// A spec file holding `text`.
pub fn spec_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write spec");
    file
}

/// An index as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// `indisvalid AND indisready`.
    pub valid: bool,
    /// `pg_get_indexdef`.
    pub definition: String,
}

/// Every index in the database outside the system schemas, by name.
pub async fn all_indexes(client: &Client) -> Vec<Index> {
    client
        .query(
            "SELECT c.relname::text, i.indrelid::regclass::text, i.indisvalid AND i.indisready,
                    pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             ORDER BY 1",
            &[],
        )
        .await
        .expect("list indexes")
        .iter()
        .map(|row| Index {
            name: row.get(0),
            table: row.get(1),
            valid: row.get(2),
            definition: row.get(3),
        })
        .collect()
}

/// The names of the INVALID (or not ready) indexes in the database.
pub async fn invalid_indexes(client: &Client) -> Vec<String> {
    all_indexes(client)
        .await
        .into_iter()
        .filter(|i| !i.valid)
        .map(|i| i.name)
        .collect()
}

/// The definition of index `name`, if it exists.
pub async fn definition(client: &Client, name: &str) -> Option<String> {
    all_indexes(client)
        .await
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.definition)
}

/// Leaves an INVALID index named `name` on payments, the way a failed
/// concurrent build does: a unique build on a column full of duplicates.
pub async fn make_invalid_index(client: &Client, name: &str) {
    let error = client
        .batch_execute(&format!(
            "CREATE UNIQUE INDEX CONCURRENTLY \"{name}\" ON payments (status)"
        ))
        .await
        .expect_err("duplicates make the unique build fail");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{error}"
    );
    assert_eq!(invalid_indexes(client).await, [name]);
}

/// The server processes of the database still building an index.
pub async fn builds_in_progress(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("progress")
        .get(0)
}

/// Waits until a server process of the database is in the building phase
/// of an index, and returns the index's name.
pub async fn building_index(client: &Client) -> String {
    let started = Instant::now();
    loop {
        let row = client
            .query_opt(
                "SELECT c.relname::text FROM pg_stat_progress_create_index p
                 JOIN pg_class c ON c.oid = p.index_relid
                 WHERE p.datname = current_database() AND p.phase LIKE 'building index%'",
                &[],
            )
            .await
            .expect("progress");
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(started.elapsed() < PATIENCE, "no build was seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `perfaudit --database-url <db> <args...>` on a pseudo-terminal
/// (with `script`), where progress bars are drawn; returns whether it
/// succeeded, and what the terminal showed.
pub fn on_a_terminal(db: &TestDb, args: &[&str]) -> (bool, String) {
    // `script` hands its command to a shell, so every argument is quoted
    // for one (the conninfo holds quotes of its own).
    let url = db.url();
    let command: Vec<String> = [env!("CARGO_BIN_EXE_perfaudit"), "--database-url", &url]
        .iter()
        .chain(args)
        .map(|arg| shell_quote(arg))
        .collect();
    let output = process::on_a_terminal(&command.join(" "));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}
