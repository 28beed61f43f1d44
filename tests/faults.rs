//! Robustness: what perfaudit does when the server goes away in the middle
//! of a run, when the pool has one connection, when the input is hostile,
//! when a plan has a thousand nodes or the input 100,000 statements, and
//! when its role lacks privileges.
//! Each case ends in a clear error with its exit code or a correct result,
//! never a hang, a panic or something left behind. Signals are in
//! faults_signals.rs, secrets in faults_secrets.rs, hostile configuration
//! in faults_config.rs, fuzzing in faults_fuzz.rs; the table in
//! docs/robustness.md lists them all.

mod common;
mod indexes_support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use common::process::{PATIENCE, finish, send};
use indexes_support::{BIG, Run, invalid_indexes, on_a_terminal};
use nix::sys::signal::Signal;
use perfaudit::db::{Database, PoolOptions, ScratchCluster, ScratchOptions};

/// Checks that stderr holds only perfaudit's own one-line messages: no
/// panic, no debug dump.
fn assert_clean_stderr(run: &Run) {
    for line in run.stderr.lines() {
        assert!(line.starts_with("perfaudit: "), "{}", run.stderr);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

// --- The server goes away -------------------------------------------------

#[tokio::test]
async fn a_backend_terminated_during_explain_analyze_is_a_clear_error() {
    let db = TestDb::with_rows(1_000).await;
    let child = db.spawn(&["--format", "json", "explain", "SELECT pg_sleep(30)"]);
    db.wait_until_running("pg_sleep(30)").await;
    db.client()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let output = finish(child);
    // One whole JSON document, no half one: no statement, and the error.
    common::explain::nothing_explained(&output, "database");
    let run: Run = output.into();
    run.assert_failed(
        3,
        &[
            "explaining statement 1 (line 1, column 1) failed",
            "terminating connection due to administrator command (SQLSTATE 57P01)",
        ],
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

/// Terminates the server process building an index (the first one seen in
/// its building phase) and returns the index's name.
async fn terminate_a_build(client: &tokio_postgres::Client) -> String {
    let started = Instant::now();
    loop {
        let row = client
            .query_opt(
                "SELECT c.relname::text, pg_terminate_backend(p.pid)
                 FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid
                 WHERE p.datname = current_database() AND p.phase LIKE 'building index%'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(started.elapsed() < PATIENCE, "no build was seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_build_whose_backend_is_terminated_leaves_no_invalid_index() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    // The fewest connections a build takes (the run's own and one to build
    // on): the cleanup needs a new session in the slot the dead one held.
    let child = db.spawn(&["--pool-size", "2", "indexes"]);
    let index = terminate_a_build(&client).await;
    let run: Run = finish(child).into();
    run.assert_failed(
        3,
        &[
            &format!("building index {index} on public.payments failed"),
            "terminating connection due to administrator command (SQLSTATE 57P01)",
            &format!("the unfinished index public.{index} was dropped again"),
        ],
    );
    assert_clean_stderr(&run);
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
}

/// A scratch cluster's server restarted behind its back with `pg_ctl`; the
/// server it started is stopped on drop (the cluster no longer owns it).
struct Restarted {
    pg_ctl: PathBuf,
    data: PathBuf,
}

impl Restarted {
    /// `pg_ctl restart -m fast` on `cluster`, as the user owning its data
    /// (PostgreSQL refuses to run as root): every session is terminated.
    fn restart(cluster: &ScratchCluster) -> Restarted {
        let restarted = Restarted {
            pg_ctl: perfaudit::db::scratch::find_server_binaries()
                .unwrap()
                .join("pg_ctl"),
            data: cluster.dir().join("data"),
        };
        let log = cluster.dir().join("restarted.log");
        let output = restarted
            .pg_ctl(&["restart", "-m", "fast", "-w", "-l", log.to_str().unwrap()])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        restarted
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(&self.data).unwrap();
        let mut command = Command::new(&self.pg_ctl);
        command
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .current_dir(self.data.parent().unwrap())
            .uid(owner.uid())
            .gid(owner.gid())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]).status();
    }
}

/// The server process and state of each session (but the caller's) whose
/// last statement holds `fragment`.
async fn sessions(db: &Database, fragment: &str) -> Vec<(i32, String)> {
    db.connection()
        .await
        .unwrap()
        .query(
            "SELECT pid, state FROM pg_stat_activity
             WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
            &[&fragment],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Waits until `check` holds of the server's sessions running `fragment`.
async fn wait_for_sessions(
    db: &Database,
    fragment: &str,
    check: impl Fn(&[(i32, String)]) -> bool,
) {
    let started = Instant::now();
    while !check(&sessions(db, fragment).await) {
        assert!(started.elapsed() < PATIENCE, "the sessions never got there");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_server_restart_between_two_runs_is_a_clear_error() {
    // A cluster of this test's own: the shared one must not restart.
    let cluster = ScratchCluster::start(&ScratchOptions::default())
        .await
        .unwrap();
    let settings = cluster.settings("postgres");
    let db = Database::new(settings.clone(), PoolOptions::default()).unwrap();
    let sql = "SELECT pg_sleep(0.5)";
    let child = common::perfaudit()
        .args(["--database-url", &settings.to_conninfo()])
        .args(["explain", "--runs", "2", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // perfaudit is stopped during run 1; the server finishes it (and the
    // ROLLBACK sent with it), then restarts before perfaudit reads a byte:
    // perfaudit sees run 1 succeed and the server gone for run 2. The run is
    // told by its EXPLAIN: the write guard's probe, before it, holds the
    // statement's text too.
    let run = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    wait_for_sessions(&db, &run, |s| s.iter().any(|(_, state)| state == "active")).await;
    send(&child, Signal::SIGSTOP);
    // Once the ROLLBACK ran, the session's last statement is no longer the
    // EXPLAIN.
    wait_for_sessions(&db, &run, <[_]>::is_empty).await;
    let restarted = Restarted::restart(&cluster);
    send(&child, Signal::SIGCONT);
    let run: Run = finish(child).into();
    run.assert_failed(3, &["statement 1 (line 1, column 1) failed"]);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    drop(restarted);
}

// --- One pooled connection --------------------------------------------------

#[tokio::test]
async fn one_pooled_connection_is_enough_for_every_command_but_a_build() {
    // advise needs HypoPG (common::hypopg reports it missing once)
    if !common::hypopg() {
        return;
    }
    let db = TestDb::with_rows(1_000).await;
    db.client()
        .await
        .batch_execute("CREATE EXTENSION hypopg")
        .await
        .unwrap();
    // A short pool timeout: work that waited for a second connection while
    // holding the only one would fail in 2s instead of finishing.
    let pool = ["--pool-size", "1", "--pool-timeout", "2s"];
    let sql = "SELECT * FROM payments WHERE user_id = 7";
    let commands: [&[&str]; 4] = [
        &["explain", "--runs", "3", sql],
        &["rewrite", sql],
        &["advise", sql],
        &["indexes", "--dry-run"],
    ];
    for command in commands {
        let run: Run = db
            .perfaudit()
            .args(pool)
            .args(command)
            .output()
            .unwrap()
            .into();
        assert_eq!(run.code, 0, "{command:?}: {}", run.stderr);
    }
    // A build needs the run's own session (the run lock, the watcher) and
    // one to build on: with one connection it is refused before anything
    // is built.
    let run: Run = db
        .perfaudit()
        .args(pool)
        .arg("indexes")
        .output()
        .unwrap()
        .into();
    run.assert_failed(2, &["needs --pool-size 2 or more"]);
    let client = db.client().await;
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    // With two, plain builds (which would run in parallel) and progress
    // polling on a terminal share them without waiting on each other.
    let pool = ["--pool-size", "2", "--pool-timeout", "2s"];
    let run: Run = db
        .perfaudit()
        .args(pool)
        .args(["indexes", "--no-concurrently"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    client
        .batch_execute(
            "DROP INDEX idx_payments_user_id, idx_payments_status, \
             idx_payments_created_at, idx_payments_user_status",
        )
        .await
        .unwrap();
    let (success, text) = on_a_terminal(&db, &[&pool[..], &["indexes"]].concat());
    assert!(success, "{text}");
    assert!(text.contains("Created 4."), "{text}");
}

// --- Hostile and odd input ---------------------------------------------------

/// What a command must make of an input: exit 0 with a JSON document, or
/// an input error (exit 2) saying this.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Ok,
    InputError(&'static str),
}

/// Subqueries in FROM nested `depth` deep around payments.
fn nested_subqueries(depth: usize) -> String {
    format!(
        "SELECT * FROM {}payments{}",
        "(SELECT * FROM ".repeat(depth),
        ") s".repeat(depth)
    )
}

fn hostile_inputs() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let no_statement = Expect::InputError("no SQL statement");
    let in_list: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
    vec![
        ("empty", Vec::new(), no_statement),
        (
            "only comments",
            b"-- nothing\n/* at /* all */ */\n;;\n".to_vec(),
            no_statement,
        ),
        (
            "invalid UTF-8",
            b"SELECT 1;\nSELECT '\xff'".to_vec(),
            Expect::InputError("is not valid UTF-8 (line 2, column 9)"),
        ),
        (
            "a NUL byte",
            b"SELECT 1\0".to_vec(),
            Expect::InputError("holds a NUL byte at line 1, column 9"),
        ),
        (
            "a 1 MB string",
            format!("SELECT length('{}')", "x".repeat(1_000_000)).into_bytes(),
            Expect::Ok,
        ),
        (
            "a 1 MB IN list",
            format!(
                "SELECT id FROM payments WHERE user_id IN ({})",
                in_list.join(",")
            )
            .into_bytes(),
            Expect::Ok,
        ),
        (
            "10,000 nested parentheses",
            format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)).into_bytes(),
            Expect::InputError("nests deeper than 200 levels"),
        ),
        (
            "subqueries nested nearly as deep as allowed",
            nested_subqueries(90).into_bytes(),
            Expect::Ok,
        ),
        (
            "a 1 MB chain of operators",
            format!("SELECT 1{}", " + 1".repeat(250_000)).into_bytes(),
            Expect::InputError("chains more than 10000 operators"),
        ),
        (
            "; inside strings, dollar quotes and comments",
            b"SELECT ';' AS a, $$;$$ AS b, $t$ ;$$; $t$ AS c, E'\\';' AS d /* ; */ -- ;\n\
              FROM payments WHERE user_id = 1"
                .to_vec(),
            Expect::Ok,
        ),
        (
            "an unterminated string",
            b"SELECT 'never closed; SELECT 2".to_vec(),
            Expect::InputError("does not parse at line 1, column 8"),
        ),
        (
            "an unterminated dollar quote",
            b"SELECT $x$ never closed".to_vec(),
            Expect::InputError("does not parse"),
        ),
        (
            "an unterminated comment",
            b"SELECT 1 /* never closed".to_vec(),
            Expect::InputError("does not parse"),
        ),
        (
            "200 statements",
            "SELECT 1;\n".repeat(200).into_bytes(),
            Expect::Ok,
        ),
    ]
}

#[tokio::test]
async fn hostile_input_gets_a_clean_answer_from_every_command() {
    // advise needs HypoPG (common::hypopg reports it missing once)
    if !common::hypopg() {
        return;
    }
    let db = TestDb::with_rows(1_000).await;
    db.client()
        .await
        .batch_execute("CREATE EXTENSION hypopg")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, input, expect) in hostile_inputs() {
        let file = dir.path().join("input.sql");
        std::fs::write(&file, &input).unwrap();
        for command in ["rewrite", "explain", "advise"] {
            let mut perfaudit = match command {
                "rewrite" => common::perfaudit(), // offline
                _ => db.perfaudit(),
            };
            let output = perfaudit
                .args(["--format", "json", command, "-f"])
                .arg(&file)
                .output()
                .unwrap();
            let run: Run = output.into();
            assert_clean_stderr(&run);
            match expect {
                Expect::Ok => {
                    assert_eq!(run.code, 0, "{command} on {name}: {}", run.stderr);
                    let document = run.json();
                    assert!(document["statements"].is_array(), "{command} on {name}");
                }
                Expect::InputError(message) => {
                    run.assert_failed(2, &[message]);
                    // explain's and rewrite's JSON document is finished
                    // with the error and the statements done: here none.
                    let stdout = match command {
                        "rewrite" | "explain" if !run.stdout.is_empty() => {
                            let document = run.json();
                            assert_eq!(document["error"]["exit_code"], 2, "{command} on {name}");
                            document["statements"].to_string()
                        }
                        _ => run.stdout.clone(),
                    };
                    assert!(
                        matches!(&*stdout, "" | "[]"),
                        "{command} on {name}: {stdout}"
                    );
                }
            }
        }
    }
}

#[test]
fn deeply_nested_subqueries_never_overflow_the_stack() {
    // Near the nesting limit, one level of these took the parser more
    // stack than its guard kept free: about one run in two aborted with a
    // stack overflow, depending on where the stack happened to start.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.sql");
    let joins = format!(
        "SELECT * FROM {}t{}",
        "(".repeat(190),
        " JOIN t USING (id))".repeat(190)
    );
    std::fs::write(&file, format!("{};\n{joins}", nested_subqueries(90))).unwrap();
    for _ in 0..20 {
        let output = common::perfaudit()
            .args(["--format", "json", "rewrite", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        let run: Run = output.into();
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.json()["statements"].as_array().unwrap().len(), 2);
    }
}

// --- Large plans and long inputs ---------------------------------------------

/// Memory perfaudit may use to explain a plan of a thousand nodes. It uses
/// about 30 MiB; the bound only catches output held many times over.
const LARGE_PLAN_MEMORY: u64 = 256 * 1024 * 1024;

/// Runs `command` to its end; returns its output and the peak resident
/// memory of that process alone (bytes), as the kernel accounted it.
fn run_measured(command: &mut Command) -> (Output, u64) {
    let (status, stdout, stderr, memory) = run_measured_reading(command, |mut pipe| {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).unwrap();
        bytes
    });
    (
        Output {
            status,
            stdout,
            stderr: stderr.into_bytes(),
        },
        memory,
    )
}

/// Runs `command` to its end, `read` taking its stdout as it comes (an
/// output too large to hold is checked as it streams); returns its exit
/// status, what `read` returned, its stderr and the peak resident memory
/// of that process alone (bytes, its `VmHWM`).
fn run_measured_reading<T: Send + 'static>(
    command: &mut Command,
    read: impl FnOnce(ChildStdout) -> T + Send + 'static,
) -> (ExitStatus, T, String, u64) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || read(stdout));
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    // The peak of the child's own memory, read while it runs: wait4's
    // ru_maxrss would count the test process's memory at the fork too.
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(peak_rss(pid).unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        })
    };
    let status = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (
        status,
        stdout.join().unwrap(),
        stderr.join().unwrap(),
        peak.join().unwrap(),
    )
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn a_plan_over_500_partitions_renders_in_bounded_memory() {
    let db = TestDb::empty().await;
    db.client()
        .await
        .batch_execute(include_str!("../fixtures/partitioned.sql"))
        .await
        .unwrap();
    // A join of two appends of 500 scans each: over a thousand plan nodes.
    let sql = "SELECT count(*) FROM parted p JOIN parted q USING (id) WHERE p.k = 3";

    let (output, memory) = run_measured(db.perfaudit().args(["--format", "json", "explain", sql]));
    let run: Run = output.into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let nodes = run.json()["statements"][0]["nodes"]
        .as_array()
        .unwrap()
        .len();
    assert!(nodes > 1_000, "{nodes} nodes");
    assert!(memory < LARGE_PLAN_MEMORY, "JSON: {memory} bytes");

    let (output, memory) = run_measured(db.perfaudit().args(["explain", sql]));
    let run: Run = output.into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each append's 500 scans are one row, from the first to the last.
    assert!(
        run.stdout
            .contains("500 × Seq Scan on parted_0 … parted_499"),
        "the partitions are not in the rendered plan: {}",
        run.stdout
    );
    assert!(memory < LARGE_PLAN_MEMORY, "table: {memory} bytes");
}

/// Statements in the long input below: 25 batches' worth, past which
/// explain held 660 MB before it streamed (2.6 GB at the 100,000,
/// measured in BENCHMARKS.md; that count took the debug build minutes).
const MANY_STATEMENTS: usize = 25_000;

/// Memory perfaudit may use to explain any number of statements. It uses
/// about 38 MiB (a debug build; a batch of statements and one result at a
/// time); results held to the end grow past it within 2,000 statements.
const MANY_STATEMENTS_MEMORY: u64 = 64 * 1024 * 1024;

/// The number of elements of the `statements` array of a JSON document,
/// read as it streams: the whole document is never held, and it must be
/// valid JSON to the end.
fn count_json_statements(stdout: ChildStdout) -> Result<usize, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Document {
        // Each statement read and checked, then dropped (zero-sized).
        statements: Vec<serde::de::IgnoredAny>,
    }
    let mut stdout = BufReader::new(stdout);
    let document = serde_json::from_reader::<_, Document>(&mut stdout);
    // What follows an error is read all the same: perfaudit must not
    // block on a full pipe.
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    Ok(document?.statements.len())
}

#[tokio::test]
async fn many_statements_are_explained_in_flat_memory() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.sql");
    std::fs::write(&file, "SELECT 1;\n".repeat(MANY_STATEMENTS)).unwrap();

    let mut json = db.perfaudit();
    json.args(["--format", "json", "explain", "-f"]).arg(&file);
    let (status, statements, stderr, memory) =
        run_measured_reading(&mut json, count_json_statements);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(statements.unwrap(), MANY_STATEMENTS);
    assert!(memory < MANY_STATEMENTS_MEMORY, "JSON: {memory} bytes");

    let mut table = db.perfaudit();
    table.args(["explain", "-f"]).arg(&file);
    let (status, (headers, misplaced), stderr, memory) =
        run_measured_reading(&mut table, |stdout| {
            let mut headers = 0;
            let mut misplaced = None;
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if line.starts_with("Statement ") {
                    headers += 1;
                    let expected = format!("Statement {headers} (line {headers}, column 1): ");
                    if !line.starts_with(&expected) && misplaced.is_none() {
                        misplaced = Some(line);
                    }
                }
            }
            (headers, misplaced)
        });
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(misplaced, None, "each statement in its turn");
    assert_eq!(headers, MANY_STATEMENTS);
    assert!(memory < MANY_STATEMENTS_MEMORY, "tables: {memory} bytes");
}

// --- Permissions ----------------------------------------------------------------

/// A login role made for one test, dropped (with its privileges) on drop.
struct Role {
    name: String,
    db_name: String,
    conninfo: String,
}

impl Role {
    /// A role that may log in to `db` (with a password, should the server
    /// ask for one) and do what `grant` grants it.
    async fn new(db: &TestDb, prefix: &str, grant: &str) -> Role {
        let name = format!("{prefix}_{}", std::process::id());
        let password = "Role-Password-4";
        let sql = format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'; {grant}")
            .replace("{role}", &name);
        db.client().await.batch_execute(&sql).await.unwrap();
        let mut settings = db.settings.clone();
        settings.user = name.clone();
        Role {
            conninfo: format!("{} password={password}", settings.to_conninfo()),
            name,
            db_name: db.name.clone(),
        }
    }

    /// perfaudit connecting as this role.
    fn perfaudit(&self) -> Command {
        let mut command = common::perfaudit();
        command.args(["--database-url", &self.conninfo]);
        command
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (name, db_name) = (self.name.clone(), self.db_name.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(common::admin_execute_in(
                    &db_name,
                    &format!("DROP OWNED BY {name}; DROP ROLE {name}"),
                ))
        })
        .join()
        .unwrap();
    }
}

#[tokio::test]
async fn a_role_that_may_only_read_gets_a_clear_error_from_indexes() {
    let db = TestDb::with_rows(1_000).await;
    let reader = Role::new(&db, "faults_reader", "GRANT SELECT ON payments TO {role}").await;
    // Planning only reads the catalog: allowed.
    let run: Run = reader
        .perfaudit()
        .args(["indexes", "--dry-run"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run: Run = reader.perfaudit().arg("indexes").output().unwrap().into();
    run.assert_failed(
        3,
        &[
            "building index idx_payments_user_id on public.payments failed",
            "must be owner of table payments (SQLSTATE 42501)",
            "no index was left behind",
        ],
    );
    assert_clean_stderr(&run);
    let client = db.client().await;
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    let indexes = indexes_support::all_indexes(&client).await;
    assert!(
        indexes.iter().all(|index| index.name.ends_with("_pkey")),
        "{indexes:?}"
    );
}

#[tokio::test]
async fn a_role_without_access_gets_a_clear_error_from_explain() {
    let db = TestDb::with_rows(1_000).await;
    let stranger = Role::new(&db, "faults_stranger", "").await;
    let sql = "SELECT * FROM payments WHERE user_id = 1";
    for args in [
        &["explain", sql][..],
        &["--format", "json", "explain", "--no-analyze", sql],
    ] {
        let output = stranger.perfaudit().args(args).output().unwrap();
        if args.contains(&"json") {
            common::explain::nothing_explained(&output, "database");
        }
        let run: Run = output.into();
        // The server refused: exit 3, as for every server error; the SQL
        // itself is fine, so it is not an input error.
        run.assert_failed(
            3,
            &[
                "explaining statement 1 (line 1, column 1) failed",
                "permission denied for table payments (SQLSTATE 42501)",
            ],
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        if !args.contains(&"json") {
            assert_eq!(run.stdout, "", "tables for people: the error is on stderr");
        }
    }
}
