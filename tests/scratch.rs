//! The scratch cluster: it starts, serves the payments fixture, and leaves
//! nothing behind on any exit path.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{
    assert_nothing_left, private_tmpdir, processes_under, send, spawn_seeding, stop_with,
};
use perfaudit::db::{Database, PoolOptions, ScratchCluster, ScratchOptions};

#[tokio::test]
async fn starts_seeds_and_removes_everything_on_drop() {
    let started = Instant::now();
    let cluster = ScratchCluster::start(&ScratchOptions::default())
        .await
        .unwrap();
    let ready = started.elapsed();
    let dir = cluster.dir().to_path_buf();
    let pid = cluster.pid();
    let db = Database::new(cluster.settings("postgres"), PoolOptions::default()).unwrap();
    let client = db.connection().await.unwrap();
    perfaudit::db::fixture::load(&client, 100_000)
        .await
        .unwrap();
    eprintln!(
        "ready in {ready:?}, seeded in {:?}",
        started.elapsed() - ready
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM payments", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 100_000);
    drop(client);
    drop(db);
    drop(cluster);
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} still runs"
    );
}

#[tokio::test]
async fn the_fixture_looks_like_a_payments_table() {
    let db = common::TestDb::new().await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'completed')::float8 / count(*),
                    count(DISTINCT user_id),
                    (SELECT count(*) FROM users),
                    max(created_at) - min(created_at) > interval '300 days',
                    count(DISTINCT currency),
                    (SELECT count(*) FROM pg_indexes WHERE tablename = 'payments')
             FROM payments",
            &[],
        )
        .await
        .unwrap();
    let completed: f64 = row.get(0);
    assert!(
        (0.88..0.92).contains(&completed),
        "completed share {completed}"
    );
    let distinct_users: i64 = row.get(1);
    let users: i64 = row.get(2);
    assert_eq!(users, 4_000);
    assert!(
        distinct_users > 1_000,
        "{distinct_users} users have payments"
    );
    assert!(row.get::<_, bool>(3), "created_at spans most of a year");
    assert_eq!(row.get::<_, i64>(4), 5);
    assert_eq!(row.get::<_, i64>(5), 1, "only the primary key is indexed");
    // Skewed: the busiest user has many times the average.
    let busiest: i64 = client
        .query_one(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM payments GROUP BY user_id) s",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(busiest > 10 * 100_000 / users, "busiest user has {busiest}");
}

#[test]
fn a_failing_command_still_removes_the_cluster() {
    let tmp = private_tmpdir();
    let output = common::perfaudit()
        .env("TMPDIR", tmp.path())
        .args(["--scratch", "--scratch-rows", "1000", "explain", "SELEC 1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_nothing_left(tmp.path());
}

#[test]
fn sigint_during_seeding_exits_130_and_removes_the_cluster() {
    let tmp = private_tmpdir();
    let child = spawn_seeding(tmp.path());
    stop_with(child, nix::sys::signal::Signal::SIGINT);
    assert_nothing_left(tmp.path());
}

#[test]
fn a_killed_perfaudit_takes_its_server_down_with_it() {
    let tmp = private_tmpdir();
    let mut child = spawn_seeding(tmp.path());
    send(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    // No cleanup code ran; the postmaster's parent-death signal stops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(tmp.path()).is_empty() {
        assert!(Instant::now() < deadline, "the server outlived perfaudit");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The dir stays behind; the next --scratch run removes it.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    std::thread::sleep(Duration::from_secs(2));
    let output = common::perfaudit()
        .env("TMPDIR", tmp.path())
        .args(["--scratch", "--scratch-rows", "10", "explain", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_nothing_left(tmp.path());
}

#[test]
fn missing_server_binaries_say_how_to_install_them() {
    let empty = private_tmpdir();
    let output = common::perfaudit()
        .env("PERFAUDIT_PG_BINDIR", empty.path())
        .args(["--scratch", "explain", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
}

#[test]
fn a_panic_still_removes_the_cluster() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let cluster = ScratchCluster::start(&ScratchOptions::default())
                    .await
                    .unwrap();
                sender
                    .send((cluster.dir().to_path_buf(), cluster.pid()))
                    .unwrap();
                panic!("a bug in the middle of a command");
            })
    })
    .join();
    assert!(result.is_err(), "the thread panicked");
    let (dir, pid) = receiver.recv().unwrap();
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} still runs"
    );
}

#[test]
fn a_successful_run_removes_the_cluster() {
    let tmp = private_tmpdir();
    let output = common::perfaudit()
        .env("TMPDIR", tmp.path())
        .args([
            "--scratch",
            "--scratch-rows",
            "1000",
            "--format",
            "json",
            "explain",
        ])
        .arg("SELECT count(*) FROM payments")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["statements"][0]["plan"][0]["Plan"]["Actual Rows"], 1);
    assert_nothing_left(tmp.path());
}
