//! perfaudit behind a real PgBouncer in transaction mode: a server
//! connection is perfaudit's for one transaction only, so nothing it
//! leaves on one (a named prepared statement, a hypothetical index, a
//! setting) may be needed later, or get in the way of the next client.

mod common;

use std::process::Output;

use common::Fixture;
use common::pooler::Pooler;
use perfaudit::db::{ConnectionSettings, Database, PoolOptions};
use serde_json::Value;

/// Server connections the pooler may open: two, so that a client holding
/// one in a transaction moves perfaudit to the other.
const POOL_SIZE: usize = 2;

fn perfaudit(settings: &ConnectionSettings, args: &[&str]) -> Output {
    common::perfaudit()
        .arg("--database-url")
        .arg(settings.to_conninfo())
        .args(args)
        .output()
        .unwrap()
}

fn succeeded(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `ddl` in a JSON document, in order.
fn ddls(document: &Value, found: &mut Vec<String>) {
    match document {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("ddl", Value::String(ddl)) => found.push(ddl.clone()),
                    _ => ddls(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| ddls(item, found)),
        _ => {}
    }
}

fn advised_ddl(settings: &ConnectionSettings, sql: &str) -> Vec<String> {
    let output = perfaudit(settings, &["--format", "json", "advise", sql]);
    succeeded(&output, sql);
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut found = Vec::new();
    ddls(&document, &mut found);
    found
}

/// Through the pooler, a second client keeps one server connection in a
/// transaction while `work` runs, every third time: perfaudit runs twice
/// on the server connection its last run used (what it left there is in
/// the way), then is moved to another.
async fn alternating(pooled: &Database, runs: usize, mut work: impl FnMut(usize)) {
    for run in 0..runs {
        let holder = pooled.connection().await.unwrap_or_else(|e| panic!("{e}"));
        if run % 3 == 2 {
            holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
        }
        work(run);
        holder.batch_execute("COMMIT").await.unwrap();
    }
}

/// Runs `work` while a second client through the pooler runs short
/// transactions back to back: perfaudit's statements outside a transaction
/// land on whichever server connection is free, one after another.
async fn churning<T>(pooled: &Database, work: impl FnOnce() -> T) -> T {
    let client = pooled.connection().await.unwrap_or_else(|e| panic!("{e}"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client
                    .batch_execute("SELECT pg_sleep(0.001)")
                    .await
                    .unwrap();
            }
        }
    });
    let result = work();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    churn.await.unwrap();
    result
}

/// One connection through the pooler, for [`alternating`].
fn holder_pool(settings: &ConnectionSettings) -> Database {
    let options = PoolOptions {
        max_size: 1,
        ..PoolOptions::default()
    };
    Database::new(settings.clone(), options).expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_advise_and_rewrite_work_behind_a_transaction_pooler() {
    let Some(db) = common::hypopg_db(Fixture::Payments { rows: 20_000 }).await else {
        return;
    };
    // Without HypoPG explain ends right after its questions to the
    // server, before the Close of its last named statement was sent: what
    // the next run, counting from s0 again, ran into.
    let plain = common::TestDb::with_rows(20_000).await;
    let pooler = Pooler::start(&db.settings, POOL_SIZE);
    let through = pooler.settings(&db.settings);
    let pooled = holder_pool(&through);
    let through_plain = pooler.settings(&plain.settings);
    let pooled_plain = holder_pool(&through_plain);

    for (settings, pool) in [(&through_plain, &pooled_plain), (&through, &pooled)] {
        alternating(pool, 5, |run| {
            let output = if run == 2 {
                perfaudit(
                    settings,
                    &[
                        "explain",
                        "--runs",
                        "5",
                        "--param",
                        "42",
                        "SELECT * FROM payments WHERE user_id = $1",
                    ],
                )
            } else {
                perfaudit(
                    settings,
                    &["explain", "SELECT * FROM payments WHERE status = 'failed'"],
                )
            };
            succeeded(
                &output,
                &format!("explain run {run} on {}", settings.dbname),
            );
        })
        .await;
    }

    let statements = [
        "SELECT * FROM payments WHERE user_id = 42",
        "SELECT * FROM payments WHERE external_ref = $1",
        "SELECT id FROM payments WHERE status = 'failed' ORDER BY created_at DESC LIMIT 10",
    ];
    let advised: Vec<Vec<String>> = churning(&pooled, || {
        statements
            .iter()
            .map(|sql| advised_ddl(&through, sql))
            .collect()
    })
    .await;
    let direct: Vec<Vec<String>> = statements
        .iter()
        .map(|sql| advised_ddl(&db.settings, sql))
        .collect();
    assert_eq!(advised, direct, "advise through the pooler differs");
    assert!(advised.iter().any(|ddl| !ddl.is_empty()), "{advised:?}");

    alternating(&pooled, 3, |run| {
        let output = perfaudit(
            &through,
            &[
                "rewrite",
                "-d",
                &through.to_conninfo(),
                "SELECT * FROM payments",
            ],
        );
        succeeded(&output, &format!("rewrite -d run {run}"));
    })
    .await;

    // Every server connection the pooler opened, each held in a
    // transaction so that both are seen: none keeps a statement or a
    // hypothetical index of perfaudit's.
    let left = Database::new(through.clone(), PoolOptions::default()).expect("pool");
    let (first, second) = (
        left.connection().await.unwrap(),
        left.connection().await.unwrap(),
    );
    let mut pids = Vec::new();
    for client in [&first, &second] {
        client.batch_execute("BEGIN").await.unwrap();
        let row = client
            .query_typed_one(
                "SELECT pg_backend_pid(), \
                        (SELECT string_agg(name, ', ') FROM pg_prepared_statements), \
                        (SELECT count(*) FROM hypopg_list_indexes)",
                &[],
            )
            .await
            .unwrap();
        let (pid, statements, hypothetical): (i32, Option<String>, i64) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            (statements, hypothetical),
            (None, 0),
            "server process {pid} keeps prepared statements or hypothetical indexes"
        );
        pids.push(pid);
    }
    assert_ne!(pids[0], pids[1], "the pooler handed one server connection");
    for client in [&first, &second] {
        client.batch_execute("ROLLBACK").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_refuses_to_build_behind_a_transaction_pooler() {
    let db = common::TestDb::with_rows(1_000).await;
    let pooler = Pooler::start(&db.settings, POOL_SIZE);
    let through = pooler.settings(&db.settings);
    let output = perfaudit(&through, &["indexes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("through a transaction pooler")
            && stderr.contains("connect to the server directly"),
        "{stderr}"
    );
    let client = db.client().await;
    let built: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'payments' \
             AND indexname LIKE 'idx%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(built, 0, "an index was built through the pooler");
    // A dry run only reads, in one transaction: it still works.
    succeeded(&perfaudit(&through, &["indexes", "--dry-run"]), "a dry run");
}
