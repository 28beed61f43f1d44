//! Robustness under SIGINT and SIGTERM: whatever perfaudit is doing —
//! connecting, seeding a scratch cluster, explaining, building an index — a
//! signal cancels the server-side work, removes what it started, and exits
//! 130 (SIGINT) or 143 (SIGTERM) promptly. See the table in
//! docs/robustness.md for the cases other test files cover.

mod common;
mod indexes_support;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestDb;
use common::process::{
    assert_nothing_left, finish, private_tmpdir, send, spawn_seeding, stop_with,
    wait_for_server_title,
};
use indexes_support::{BIG, building_index, builds_in_progress, invalid_indexes};
use nix::sys::signal::Signal;

const SIGNALS: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

/// A password that must never be printed.
const SECRET: &str = "Signal-Secret-5";

/// Waits (up to 10s) for a connection on `listener`, which is never answered.
fn accept(listener: &TcpListener) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "perfaudit never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn a_signal_while_connecting_stops_every_command() {
    // The kernel accepts the connection; the "server" never says a word.
    // With --connect-timeout 0 perfaudit would wait for it forever.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("postgresql://alice:{SECRET}@127.0.0.1:{port}/payments");
    let commands: [&[&str]; 5] = [
        &["rewrite", "SELECT 1"],
        &["explain", "SELECT 1"],
        &["indexes"],
        &["advise", "SELECT 1"],
        &["advise", "--from-stat-statements"],
    ];
    for command in commands {
        for signal in SIGNALS {
            let mut child = common::perfaudit()
                .args(["--database-url", &url, "--connect-timeout", "0"])
                .args(command)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let _connection = accept(&listener);
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                child.try_wait().unwrap().is_none(),
                "{command:?} gave up waiting although --connect-timeout is 0"
            );
            let stderr = stop_with(child, signal);
            assert!(!stderr.contains(SECRET), "{stderr}");
        }
    }
}

#[test]
fn a_signal_stops_work_that_needs_no_server() {
    // Offline rewrite of a large file: nothing waits on the network, and
    // the signal must still be heard; the JSON document is still complete.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.sql");
    let statements: String = (0..200_000)
        .map(|n| format!("SELECT * FROM payments WHERE user_id = {n};\n"))
        .collect();
    std::fs::write(&file, statements).unwrap();
    let child = common::perfaudit()
        .args(["--format", "json", "rewrite", "-f"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    send(&child, Signal::SIGINT);
    let output = finish(child);
    assert_eq!(output.status.code(), Some(130));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let done = document["statements"].as_array().unwrap().len();
    assert!(
        done < 200_000,
        "the signal was not heard: all {done} were rewritten"
    );

    // Waiting for SQL on a stdin that never comes (a pipe kept open).
    for signal in SIGNALS {
        let (reader, writer) = std::io::pipe().unwrap();
        let child = common::perfaudit()
            .args(["explain", "-"])
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stop_with(child, signal);
        drop(writer);
    }
}

#[test]
fn sigterm_and_sighup_during_seeding_exit_cleanly_and_remove_the_cluster() {
    // SIGINT: tests/scratch.rs. SIGHUP comes when the terminal goes away
    // (an SSH session closed).
    for signal in [Signal::SIGTERM, Signal::SIGHUP] {
        let tmp = private_tmpdir();
        let child = spawn_seeding(tmp.path());
        stop_with(child, signal);
        assert_nothing_left(tmp.path());
    }
}

#[test]
fn a_signal_during_an_explain_on_a_scratch_cluster_removes_the_cluster() {
    for signal in SIGNALS {
        let tmp = private_tmpdir();
        let child = common::perfaudit()
            .env("TMPDIR", tmp.path())
            .args(["--scratch", "--scratch-rows", "1000", "explain"])
            .arg("SELECT pg_sleep(30)")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_server_title(tmp.path(), "EXPLAIN");
        stop_with(child, signal);
        assert_nothing_left(tmp.path());
    }
}

#[tokio::test]
async fn sigterm_during_an_explain_cancels_the_query_on_the_server() {
    // SIGINT: tests/explain.rs.
    let db = TestDb::with_rows(1_000).await;
    let child = db.spawn(&["explain", "SELECT pg_sleep(30)"]);
    db.wait_until_running("pg_sleep(30)").await;
    stop_with(child, Signal::SIGTERM);
    assert_eq!(db.running("pg_sleep(30)").await, 0);
}

#[tokio::test]
async fn sigterm_during_an_index_build_cancels_it_and_leaves_no_invalid_index() {
    // SIGINT: tests/indexes_safety.rs.
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = db.spawn(&["indexes"]);
    building_index(&client).await;
    stop_with(child, Signal::SIGTERM);
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(builds_in_progress(&client).await, 0, "the build runs on");
}
