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
    let (holder, holder_pid) = db.session().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();

    // A concurrent build is watched, and told who holds the lock; a plain
    // one has the server's lock_timeout.
    let concurrent_holder = format!(
        "server process {holder_pid} (perfaudit, idle in transaction, its transaction open for"
    );
    for (flags, expected) in [
        (
            &[][..],
            [
                "its lock on the table was not granted within 200ms in 3 attempts",
                &concurrent_holder,
                "holds a lock on it that conflicts; nothing was built",
            ],
        ),
        (
            &["--no-concurrently"][..],
            [
                "canceling statement due to lock timeout (SQLSTATE 55P03) in 3 attempts",
                "each waiting up to 200ms",
                "another session holds a lock on it that conflicts",
            ],
        ),
    ] {
        let started = Instant::now();
        let run = indexes(
            &db,
            &[&["--lock-timeout", "200ms", "--lock-retries", "2"], flags].concat(),
        );
        let elapsed = started.elapsed();

        run.assert_failed(
            3,
            &[
                &["building index idx_payments_"][..],
                &expected,
                &[
                    "on public.payments failed",
                    "--lock-timeout and --lock-retries",
                    "no index was left behind",
                    "attempt 1 of 3",
                    "attempt 2 of 3",
                ],
            ]
            .concat(),
        );
        // Three waits of 200ms, with pauses of 0.5s and 1s between them,
        // each jittered down to half at most.
        assert!(elapsed >= Duration::from_millis(1350), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
        let checker = db.client().await;
        assert_no_payment_index(&checker).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_plain_build_that_cannot_get_its_lock_stalls_writers_only_briefly() {
    let db = TestDb::new().await;
    // A writer that keeps its transaction open: a plain build's SHARE lock
    // is never granted, and every writer after it queues behind it while it
    // waits.
    let (holder, _) = db.session().await;
    holder
        .batch_execute("BEGIN; UPDATE payments SET amount = amount WHERE id = 1")
        .await
        .unwrap();
    let mut child = spawn(&db, &["--no-concurrently", "--lock-retries", "2"]);
    let writer = db.client().await;
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    while child.try_wait().unwrap().is_none() {
        let write = Instant::now();
        writer
            .execute("UPDATE payments SET amount = amount WHERE id = 2", &[])
            .await
            .unwrap();
        longest = longest.max(write.elapsed());
        assert!(started.elapsed() < PATIENCE, "perfaudit did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let run = finish(child);

    run.assert_failed(
        3,
        &[
            "canceling statement due to lock timeout (SQLSTATE 55P03) in 3 attempts, each \
             waiting up to 500ms",
            "no index was left behind",
        ],
    );
    // Generous against the default lock wait of 500ms: the old one, 5s,
    // held every writer for all of it.
    assert!(
        longest < Duration::from_secs(3),
        "a write waited {longest:?} behind the build"
    );
    assert_no_payment_index(&writer).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn an_old_transaction_holds_a_build_up_without_failing_it() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    // A REPEATABLE READ transaction on another table, started while the
    // first build runs: it waits for it before it ends, much longer than
    // the lock timeout.
    let child = spawn(&db, &["--lock-timeout", "200ms", "--lock-retries", "0"]);
    let (snapshot, snapshot_pid) = snapshot_during_a_build(&db, &client, "users").await;
    let builder = held_up_by(&client, snapshot_pid).await;
    // Past the lock timeout, and long enough for the wait to be reported.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE pid = $1",
            &[&builder],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, 1, "the build still waits");
    snapshot.batch_execute("COMMIT").await.unwrap();
    let run = finish(child);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Created 4."), "{}", run.stdout);
    let waiting = format!(
        "idx_payments_user_id: waiting for server process {snapshot_pid} (perfaudit, idle in \
         transaction, its transaction open for "
    );
    assert!(run.stderr.contains(&waiting), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("every transaction older than it; perfaudit keeps waiting"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("attempt"), "no retry: {}", run.stderr);
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(payment_indexes(&client).await.len(), 4);
}

#[tokio::test]
async fn a_build_held_up_past_the_transaction_wait_timeout_is_stopped_and_removed() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = spawn(&db, &["--transaction-wait-timeout", "1s"]);
    let (snapshot, snapshot_pid) = snapshot_during_a_build(&db, &client, "users").await;
    let run = finish(child);

    run.assert_failed(
        3,
        &[
            "building index idx_payments_user_id on public.payments stopped: it waited 1s for \
             the transaction of server process",
            &format!("server process {snapshot_pid} (perfaudit, idle in transaction"),
            "(--transaction-wait-timeout)",
            "the unfinished index public.idx_payments_user_id was dropped again",
            "3 more not attempted",
        ],
    );
    assert!(
        !run.stderr.contains("attempt 1"),
        "no retry: {}",
        run.stderr
    );
    assert_no_payment_index(&client).await;
    snapshot.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn an_unfinished_index_whose_removal_a_reader_holds_up_is_named_with_its_state_and_drop() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = spawn(&db, &["--transaction-wait-timeout", "1s"]);
    // A reader of the table, begun during the build: the build waits for
    // its snapshot, and the removal of its unfinished index for its lock.
    let (reader, reader_pid) = snapshot_during_a_build(&db, &client, "payments").await;
    let index = building_index(&client).await;
    let run = finish(child);

    run.assert_failed(
        3,
        &[
            &format!("building index {index} on public.payments stopped: it waited 1s"),
            &format!(
                "the unfinished index public.{index} is left behind, INVALID but ready: every \
                 write to public.payments maintains it; it could not be dropped (canceling \
                 statement due to lock timeout in 5 attempts), as server process {reader_pid} \
                 (perfaudit, idle in transaction, its transaction open for "
            ),
            &format!(
                "holds a lock on public.payments: once that transaction ends, drop it with DROP \
                 INDEX CONCURRENTLY IF EXISTS \"public\".\"{index}\", or run perfaudit indexes \
                 again"
            ),
        ],
    );
    let left = all_indexes(&client).await;
    assert_eq!(
        invalid_indexes(&client).await,
        std::slice::from_ref(&index),
        "{left:?}"
    );
    assert_eq!(
        builds_in_progress(&client).await,
        0,
        "the build was cancelled"
    );
    let ready: bool = client
        .query_one(
            "SELECT indisready FROM pg_index WHERE indexrelid = $1::text::regclass",
            &[&index],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ready, "as the message says: {}", run.stderr);
    reader.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn an_unfinished_index_is_dropped_once_the_reader_holding_up_its_removal_ends() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = spawn(&db, &["--transaction-wait-timeout", "1s"]);
    let (reader, _) = snapshot_during_a_build(&db, &client, "payments").await;
    let index = building_index(&client).await;
    // The build is stopped; its removal waits for the reader, which ends.
    db.wait_until_running("DROP INDEX CONCURRENTLY").await;
    reader.batch_execute("COMMIT").await.unwrap();
    let run = finish(child);

    run.assert_failed(
        3,
        &[
            &format!("building index {index} on public.payments stopped: it waited 1s"),
            &format!("the unfinished index public.{index} was dropped again"),
        ],
    );
    assert_no_payment_index(&client).await;
}

#[tokio::test]
async fn a_transaction_open_on_the_table_past_the_transaction_wait_timeout_stops_the_run_before_any_build()
 {
    let db = TestDb::new().await;
    let client = db.client().await;
    // A reader of the table: a concurrent build would wait for its
    // snapshot before it ends, and the removal of its unfinished index for
    // its lock on the table.
    let (reader, reader_pid) = old_snapshot(&db, "payments").await;

    let run = indexes(&db, &["--transaction-wait-timeout", "1s"]);

    run.assert_failed(
        3,
        &[
            &format!(
                "building index idx_payments_user_id on public.payments did not start: it \
                 waited 1s for the transaction of server process {reader_pid} (perfaudit, idle \
                 in transaction, its transaction open for "
            ),
            "(--transaction-wait-timeout): a concurrent build would wait for it",
            "nothing was built",
            "no index was left behind",
            "3 more not attempted",
        ],
    );
    assert_no_payment_index(&client).await;
    reader.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn a_transaction_open_before_the_run_holds_the_builds_back_before_they_start() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (reader, reader_pid) = old_snapshot(&db, "payments").await;
    let child = spawn(&db, &["--lock-timeout", "200ms", "--lock-retries", "0"]);
    // Past the lock timeout, and long enough for the wait to be reported:
    // nothing is built, nor being built, meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(builds_in_progress(&client).await, 0);
    assert_no_payment_index(&client).await;
    reader.batch_execute("COMMIT").await.unwrap();
    let run = finish(child);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Created 4."), "{}", run.stdout);
    let waiting = format!(
        "idx_payments_user_id: waiting for server process {reader_pid} (perfaudit, idle in \
         transaction, its transaction open for "
    );
    assert!(run.stderr.contains(&waiting), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "a concurrent build starts only once the transactions it would wait for have ended"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(payment_indexes(&client).await.len(), 4);
}

#[tokio::test]
async fn a_build_that_can_no_longer_be_watched_is_stopped_and_removed() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    let child = spawn(&db, &[]);
    let (snapshot, snapshot_pid) = snapshot_during_a_build(&db, &client, "users").await;
    held_up_by(&client, snapshot_pid).await;
    // The run's own session (it holds the run lock) goes away.
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    let run = finish(child);

    run.assert_failed(
        3,
        &[
            "building index idx_payments_user_id on public.payments was stopped: the run's own \
             session, which watches the builds, failed",
            "the unfinished index public.idx_payments_user_id was dropped again",
        ],
    );
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    snapshot.batch_execute("COMMIT").await.unwrap();
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

/// The server processes of perfaudit in the database waiting for a lock.
async fn perfaudit_waiting_for_a_lock(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'perfaudit'
               AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sigint_while_reading_the_catalog_leaves_no_server_process_waiting() {
    let db = TestDb::new().await;
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let client = db.client().await;
    // With no lock timeout, the catalog read waits for the table as long as
    // the lock is held.
    let child = spawn(&db, &["--lock-timeout", "0", "--dry-run"]);
    let started = Instant::now();
    while perfaudit_waiting_for_a_lock(&client).await == 0 {
        assert!(started.elapsed() < PATIENCE, "perfaudit never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let run = finish(child);

    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        run.stderr.contains("interrupted by SIGINT"),
        "{}",
        run.stderr
    );
    let started = Instant::now();
    while perfaudit_waiting_for_a_lock(&client).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "perfaudit's server process still waits for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
}

/// A REPEATABLE READ transaction that has read `table`, and so holds a
/// lock on it and a snapshot: concurrent index builds started after it
/// wait for it before they end, and perfaudit before they start.
async fn old_snapshot(db: &TestDb, table: &str) -> (deadpool_postgres::Object, i32) {
    let (client, pid) = db.session().await;
    begin_reading(&client, table).await;
    (client, pid)
}

async fn begin_reading(client: &tokio_postgres::Client, table: &str) {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM {table}"
        ))
        .await
        .unwrap();
}

/// The same, begun once a build of perfaudit (started after the wait for
/// older transactions) scans its table: its snapshot is older than the
/// build's last one, so the build waits for it before it ends.
async fn snapshot_during_a_build(
    db: &TestDb,
    client: &tokio_postgres::Client,
    table: &str,
) -> (deadpool_postgres::Object, i32) {
    let (session, pid) = db.session().await;
    building_index(client).await;
    begin_reading(&session, table).await;
    (session, pid)
}

/// Asserts that no payment index, valid or not, is on the table.
async fn assert_no_payment_index(client: &tokio_postgres::Client) {
    assert_eq!(invalid_indexes(client).await, Vec::<String>::new());
    assert_eq!(payment_indexes(client).await, Vec::<String>::new());
}

/// Waits until a build in the database is held up by the old snapshot of
/// server process `snapshot`; returns the building server process.
async fn held_up_by(client: &tokio_postgres::Client, snapshot: i32) -> i32 {
    let started = Instant::now();
    loop {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_progress_create_index
                 WHERE datname = current_database() AND phase = 'waiting for old snapshots'
                   AND current_locker_pid = $1",
                &[&i64::from(snapshot)],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no build waited for {snapshot}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_index_another_session_is_building_is_left_alone() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (snapshot, snapshot_pid) = old_snapshot(&db, "users").await;
    // Another session builds one of the spec's indexes; the old snapshot
    // holds it in its last phase, where its index is there and not valid.
    let (builder, builder_pid) = db.session().await;
    let build = tokio::spawn(async move {
        builder
            .batch_execute("CREATE INDEX CONCURRENTLY idx_payments_status ON payments (status)")
            .await
    });
    assert_eq!(held_up_by(&client, snapshot_pid).await, builder_pid);
    assert_eq!(invalid_indexes(&client).await, ["idx_payments_status"]);

    for args in [&["--dry-run"][..], &[]] {
        let run = indexes(&db, args);
        run.assert_failed(
            3,
            &[
                "index public.idx_payments_status on public.payments is not valid yet",
                &format!(
                    "server process {builder_pid} is building it right now (CREATE INDEX \
                     CONCURRENTLY)"
                ),
                "perfaudit does not drop an index another session is working on",
            ],
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert_eq!(payment_indexes(&client).await, ["idx_payments_status"]);

    snapshot.batch_execute("COMMIT").await.unwrap();
    build
        .await
        .unwrap()
        .expect("the other session's build ends well");
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_second_run_stops_at_once_while_another_builds() {
    let db = TestDb::with_rows(BIG).await;
    let client = db.client().await;
    // The first run's first build waits for a snapshot taken during it.
    let first = spawn(&db, &["--lock-timeout", "0"]);
    let (snapshot, snapshot_pid) = snapshot_during_a_build(&db, &client, "users").await;
    let first_pid = held_up_by(&client, snapshot_pid).await;
    let holder: i32 = client
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(holder, first_pid, "the lock is on the run's own session");

    let second = indexes(&db, &[]);
    second.assert_failed(
        3,
        &[
            "another perfaudit indexes run is building indexes in this database",
            &format!("(its session is server process {holder}, connected "),
            "wait for it to end, then run again",
        ],
    );
    let dry = indexes(&db, &["--dry-run"]);
    dry.assert_failed(3, &["server process", "is building it right now"]);

    snapshot.batch_execute("COMMIT").await.unwrap();
    let first = finish(first);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("Created 4."), "{}", first.stdout);
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    let locks: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "the lock is given back");
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
        tokio::time::sleep(Duration::from_millis(10)).await;
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
    let (success, text) = on_a_terminal(&db, &["indexes"]);
    assert!(success, "{text}");
    assert!(text.contains("Created 4."), "{text}");

    let frames = bar_frames(&text);
    for index in ["user_id", "status", "created_at", "user_status"] {
        let label = format!("idx_payments_{index}");
        assert!(
            frames.iter().any(|f| f.0 == label),
            "no bar for {label}: {text}"
        );
    }
    assert!(
        frames.iter().any(|f| f.2.starts_with("building index")),
        "no phase from pg_stat_progress_create_index: {frames:?}"
    );
    // The server's counters move the bar: some build shows a share of its
    // work done, and more than one.
    let moving = frames.iter().any(|(label, percent, _)| {
        (1..100).contains(percent)
            && frames
                .iter()
                .any(|(other, p, _)| other == label && p != percent)
    });
    assert!(moving, "no bar moved: {frames:?}");
}

/// The frames the progress bars drew in `text` (a terminal's output):
/// `(index, percent, message)`.
fn bar_frames(text: &str) -> Vec<(String, u32, String)> {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence ends with a letter.
            chars.find(char::is_ascii_alphabetic);
        } else {
            plain.push(c);
        }
    }
    plain
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (label, rest) = line.trim().split_once(" [")?;
            let (percent, rest) = rest.split_once("] ")?.1.trim_start().split_once('%')?;
            // After the percentage: the elapsed time, then the message.
            let message = rest.trim_start().split_once(' ')?.1.trim();
            Some((
                label.to_owned(),
                percent.trim().parse().ok()?,
                message.to_owned(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn an_attach_that_fails_after_an_existing_index_was_adopted_keeps_it_and_the_next_run_completes()
 {
    let db = TestDb::rentals().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE INDEX rp_2024_03_staff ON billing.rental_payment_2024_03 (staff_id);
             CREATE INDEX rp_2024_07_staff ON billing.rental_payment_2024_07 (staff_id)",
        )
        .await
        .unwrap();
    let adopted_oid = || async {
        db.client()
            .await
            .query_one("SELECT to_regclass('billing.rp_2024_03_staff')::oid", &[])
            .await
            .unwrap()
            .get::<_, Option<u32>>(0)
    };
    let before = adopted_oid().await;
    // A reader of the July partition holds a lock on its indexes: the
    // ATTACH of rp_2024_07_staff (ACCESS EXCLUSIVE on it) is not granted,
    // after March's was. Plain builds, which wait for no snapshot, build
    // the other partitions meanwhile.
    let (reader, _) = db.session().await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM billing.rental_payment_2024_07")
        .await
        .unwrap();
    let spec = spec_file(
        "[[index]]\nname = 'rental_payment_staff_idx'\ntable = 'billing.rental_payment'\n\
         columns = ['staff_id']\n",
    );
    let path = spec.path().to_str().unwrap();
    let args = ["--spec", path, "--no-concurrently", "--lock-retries", "0"];

    let run = indexes(&db, &args);
    run.assert_failed(
        3,
        &[
            "building index rental_payment_staff_idx on billing.rental_payment failed",
            "index billing.rental_payment_staff_idx stays, INVALID until every partition's index \
             is attached to it",
            "run perfaudit indexes again to complete it",
        ],
    );
    assert_eq!(
        adopted_oid().await,
        before,
        "the adopted index is still there"
    );
    assert_eq!(
        invalid_indexes(&client).await,
        ["rental_payment_staff_idx"],
        "only the parent, whose drop would take the adopted index along"
    );

    reader.batch_execute("ROLLBACK").await.unwrap();
    let again = indexes(&db, &["--spec", path, "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.actions(), ["rebuilt"]);
    let report = &again.json()["indexes"][0];
    assert_eq!(
        report["partitions"],
        serde_json::json!({"count": 13, "built": 0, "kept": 12,
                           "reused": ["billing.rp_2024_07_staff"]})
    );
    assert_eq!(
        report["ddl"],
        "ALTER INDEX \"billing\".\"rental_payment_staff_idx\" ATTACH PARTITION \
         \"billing\".\"rp_2024_07_staff\";"
    );
    assert_eq!(invalid_indexes(&client).await, Vec::<String>::new());
    assert_eq!(adopted_oid().await, before);
}
