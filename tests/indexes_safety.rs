//! `perfaudit indexes` when things go wrong on a live table, and how the
//! builds run: a lock held by another session, Ctrl-C in the middle of a
//! build, a failing unique build, plain builds in parallel, progress.

mod common;
mod indexes_support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use indexes_support::{
    BIG, EVENTS_SQL, PATIENCE, Run, all_indexes, building_index, builds_in_progress, definition,
    indexes, invalid_indexes, on_a_terminal, spec_file,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn spawn(db: &TestDb, args: &[&str]) -> Child {
    db.perfaudit()
        .arg("indexes")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn perfaudit")
}

fn finish(child: Child) -> Run {
    child.wait_with_output().expect("wait for perfaudit").into()
}

async fn payment_indexes(client: &tokio_postgres::Client) -> Vec<String> {
    all_indexes(client)
        .await
        .into_iter()
        .filter(|i| i.name.starts_with("idx_payments"))
        .map(|i| i.name)
        .collect()
}

#[tokio::test]
async fn a_lock_held_elsewhere_is_given_up_on_after_the_retries() {
    let db = TestDb::new().await;
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();

    let started = Instant::now();
    let run = indexes(&db, &["--lock-timeout", "200ms", "--lock-retries", "2"]);
    let elapsed = started.elapsed();

    run.assert_failed(
        3,
        &[
            "building index idx_payments_user_id on public.payments failed",
            "canceling statement due to lock timeout (SQLSTATE 55P03)",
            "3 attempts, each waiting up to 200ms",
            "another session holds a conflicting lock",
            "--lock-timeout",
            "no index was left behind",
            "attempt 1 of 3",
            "attempt 2 of 3",
        ],
    );
    // Three waits of 200ms, with pauses of 0.5s and 1s between them.
    assert!(elapsed >= Duration::from_millis(2100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let checker = db.client().await;
    assert_eq!(invalid_indexes(&checker).await, Vec::<String>::new());
    assert_eq!(payment_indexes(&checker).await, Vec::<String>::new());
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn sigint_during_a_build_cancels_it_and_leaves_no_invalid_index() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = spawn(&db, &[]);

    let building = building_index(&client).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let run = finish(child);

    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        run.stderr.contains("interrupted by SIGINT"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "no report: {}", run.stdout);
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(
        builds_in_progress(&client).await,
        0,
        "the build was cancelled"
    );
    let built = payment_indexes(&client).await;
    assert!(built.len() < 4, "the run stopped: {built:?}");
    // The index being built was cancelled and dropped, unless it finished
    // before the signal arrived.
    if !built.contains(&building) {
        let dropped = format!("the unfinished index public.{building} was dropped again");
        assert!(run.stderr.contains(&dropped), "{}", run.stderr);
    }
}

#[tokio::test]
async fn a_failed_unique_build_leaves_no_invalid_index() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let spec = spec_file(
        "[[index]]\nname = 'idx_unique_status'\ntable = 'payments'\ncolumns = ['status']\n\
         unique = true\n",
    );

    let run = indexes(&db, &["--spec", spec.path().to_str().unwrap()]);

    run.assert_failed(
        3,
        &[
            "building index idx_unique_status on public.payments failed",
            "could not create unique index \"idx_unique_status\" (SQLSTATE 23505)",
            "is duplicated",
            "the unfinished index public.idx_unique_status was dropped again",
        ],
    );
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(definition(&client, "idx_unique_status").await, None);
}

#[tokio::test]
async fn a_failed_build_on_a_partitioned_table_removes_every_part() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    client.batch_execute(EVENTS_SQL).await.unwrap();
    // Unique per (day, region) fails: there are several events a day.
    let spec = spec_file(
        "[[index]]\nname = 'idx_events_day'\ntable = 'events'\ncolumns = ['at', 'region']\n\
         unique = true\n",
    );

    let run = indexes(&db, &["--spec", spec.path().to_str().unwrap()]);

    run.assert_failed(
        3,
        &[
            "building index idx_events_day on public.events failed",
            "could not create unique index \"idx_events_day_1\"",
            "the unfinished indexes public.idx_events_day_1, public.idx_events_day were dropped \
             again",
        ],
    );
    assert_eq!(all_indexes(&client).await, Vec::new(), "nothing is left");
}

#[tokio::test]
async fn plain_builds_run_in_parallel_on_the_server() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let mut child = spawn(&db, &["--no-concurrently"]);

    let started = Instant::now();
    let mut most_at_once = 0;
    while child.try_wait().unwrap().is_none() {
        most_at_once = most_at_once.max(builds_in_progress(&client).await);
        assert!(started.elapsed() < PATIENCE, "perfaudit did not finish");
    }
    let run = finish(child);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        most_at_once > 1,
        "at most {most_at_once} build at once on the server"
    );
    assert!(run.stdout.contains("Created 4."), "{}", run.stdout);
    // Off a terminal, one summary line per build.
    assert_eq!(
        run.stderr.matches(" on public.payments in ").count(),
        4,
        "{}",
        run.stderr
    );
    let indexes = all_indexes(&client).await;
    for name in payment_indexes(&client).await {
        let index = indexes.iter().find(|i| i.name == name).unwrap();
        assert!(index.valid, "{index:?}");
        assert!(!index.definition.contains("CONCURRENTLY"));
    }
    assert_eq!(payment_indexes(&client).await.len(), 4);
}

#[tokio::test]
async fn json_runs_print_nothing_on_stderr() {
    let db = TestDb::new().await;
    let run = indexes(&db, &["--format", "json", "--no-concurrently"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(run.actions(), ["created"; 4]);
}

#[tokio::test]
async fn on_a_terminal_each_build_shows_the_servers_progress() {
    let db = TestDb::with_rows(BIG).await;
    let (success, text) = on_a_terminal(&db, "indexes");
    assert!(success, "{text}");
    assert!(text.contains("Created 4."), "{text}");
    let phases = ["building index", "waiting for", "index validation"];
    assert!(
        phases.iter().any(|phase| text.contains(phase)),
        "no phase from pg_stat_progress_create_index in {text}"
    );
}
