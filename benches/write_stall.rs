//! Write stalls: the longest a writer waits while `perfaudit indexes` runs,
//! per build mode, under a pgbench write load on the payments table.
//!
//! Each scenario runs pgbench (4 clients updating random payments, every
//! transaction's latency logged) on a scratch cluster; two seconds in,
//! perfaudit runs `indexes` with the scenario's flags, sometimes while
//! another session holds a transaction open; the figure is the longest
//! latency of any pgbench transaction, against the same load with no
//! perfaudit run at all. Lock waits make the stalls, not perfaudit's own
//! work, so the figures do not depend on how perfaudit was compiled.
//!
//! Run it with `bench/write-stall` (or `cargo bench --bench write_stall`).
//! It prints a Markdown report and, with `--write FILE`, puts it into FILE
//! between the `<!-- write-stall:start -->` and `<!-- write-stall:end -->`
//! markers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perfaudit::db::{Database, scratch};
use support::{parse_options, seeded_cluster, write_between_markers};
use tokio::runtime::Runtime;

mod support;

const PERFAUDIT: &str = env!("CARGO_BIN_EXE_perfaudit");
const PAYMENT_INDEXES: [&str; 4] = [
    "idx_payments_user_id",
    "idx_payments_status",
    "idx_payments_created_at",
    "idx_payments_user_status",
];
/// pgbench clients: more writers than cores, as on a busy server.
const CLIENTS: &str = "4";
/// When perfaudit starts, after pgbench.
const LEAD: Duration = Duration::from_secs(2);

/// What another session does while perfaudit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// Nothing.
    Nobody,
    /// A writer keeps its transaction open (ROW EXCLUSIVE on payments) from
    /// before perfaudit starts until it ends: a plain build's lock is never
    /// granted, and a concurrent build never starts.
    Writer,
    /// A reader of payments (REPEATABLE READ) begins while the first build
    /// scans the table and stays open: the build waits for it before it
    /// ends, and the removal of its unfinished index for its lock.
    ReaderDuringBuild,
}

struct Scenario {
    what: &'static str,
    /// perfaudit's arguments after `indexes`; `None`: no perfaudit run.
    args: Option<&'static [&'static str]>,
    holder: Holder,
    /// How long pgbench runs: past the longest run of perfaudit.
    seconds: u64,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        what: "no perfaudit run (baseline)",
        args: None,
        holder: Holder::Nobody,
        seconds: 10,
    },
    Scenario {
        what: "`indexes` (concurrently), builds the four indexes",
        args: Some(&[]),
        holder: Holder::Nobody,
        seconds: 12,
    },
    Scenario {
        what: "`indexes --no-concurrently`, builds the four indexes",
        args: Some(&["--no-concurrently"]),
        holder: Holder::Nobody,
        seconds: 12,
    },
    Scenario {
        what: "`indexes --transaction-wait-timeout 5s`, a writer's transaction open: never starts",
        args: Some(&["--transaction-wait-timeout", "5s"]),
        holder: Holder::Writer,
        seconds: 11,
    },
    Scenario {
        what: "`indexes --no-concurrently --lock-retries 3`, a writer's transaction open: lock never granted (default lock timeout, 500ms)",
        args: Some(&["--no-concurrently", "--lock-retries", "3"]),
        holder: Holder::Writer,
        seconds: 11,
    },
    Scenario {
        what: "the same with the old defaults, `--lock-timeout 5s --lock-retries 3`",
        args: Some(&[
            "--no-concurrently",
            "--lock-timeout",
            "5s",
            "--lock-retries",
            "3",
        ]),
        holder: Holder::Writer,
        seconds: 29,
    },
    Scenario {
        what: "`indexes --transaction-wait-timeout 5s`, a reader begun during the first build: stopped, its removal held up (worst case of the cleanup)",
        args: Some(&["--transaction-wait-timeout", "5s"]),
        holder: Holder::ReaderDuringBuild,
        seconds: 32,
    },
];

/// One run of a scenario.
struct Measured {
    /// The longest pgbench transaction, in ms.
    longest_ms: f64,
    /// pgbench's transactions per second.
    tps: f64,
    /// perfaudit's exit code and how long it ran, if it ran.
    perfaudit: Option<(i32, Duration)>,
}

struct Bench {
    runtime: Runtime,
    database: Database,
    conninfo: String,
    pgbench: Vec<String>,
    script: PathBuf,
    logs: PathBuf,
}

impl Bench {
    fn execute(&self, sql: &str) {
        self.runtime.block_on(async {
            let client = self.database.connection().await.expect("a connection");
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }

    fn run(&self, scenario: &Scenario) -> Measured {
        let drop: Vec<String> = PAYMENT_INDEXES
            .iter()
            .map(|name| format!("DROP INDEX IF EXISTS {name};"))
            .collect();
        self.execute(&format!("{} CHECKPOINT", drop.join(" ")));
        let _ = std::fs::remove_dir_all(&self.logs);
        std::fs::create_dir_all(&self.logs).expect("log dir");
        let pgbench = self.pgbench(scenario.seconds);
        std::thread::sleep(LEAD);
        let perfaudit = scenario
            .args
            .map(|args| self.perfaudit(args, scenario.holder));
        let output = pgbench.wait_with_output().expect("pgbench ends");
        assert!(output.status.success(), "pgbench failed: {output:?}");
        let (tps, longest_ms) = read_pgbench(&output.stdout, &self.logs);
        if let Some((_, took)) = perfaudit {
            assert!(
                LEAD + took < Duration::from_secs(scenario.seconds),
                "{}: perfaudit ran {took:?}, past pgbench; lengthen the scenario",
                scenario.what
            );
        }
        Measured {
            longest_ms,
            tps,
            perfaudit,
        }
    }

    fn pgbench(&self, seconds: u64) -> Child {
        Command::new(&self.pgbench[0])
            .args(&self.pgbench[1..])
            .args(["-n", "-c", CLIENTS, "-j", "2", "-T"])
            .arg(seconds.to_string())
            .arg("-f")
            .arg(&self.script)
            .arg("-l")
            .arg(format!("--log-prefix={}", self.logs.join("tx").display()))
            .arg("postgres")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbench runs")
    }

    /// Runs perfaudit with `args` while `holder` does its part; its exit
    /// code and how long it ran.
    fn perfaudit(&self, args: &[&str], holder: Holder) -> (i32, Duration) {
        self.runtime.block_on(async {
            let other = self.database.connection().await.expect("a connection");
            if holder == Holder::Writer {
                other
                    .batch_execute("BEGIN; UPDATE payments SET amount = amount WHERE id = -1")
                    .await
                    .expect("the writer's transaction");
            }
            let started = Instant::now();
            let mut child = tokio::process::Command::new(PERFAUDIT)
                .args(["--no-progress", "-d", &self.conninfo, "indexes"])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perfaudit runs");
            if holder == Holder::ReaderDuringBuild {
                let watcher = self.database.connection().await.expect("a connection");
                while watcher
                    .query_opt(
                        "SELECT 1 FROM pg_stat_progress_create_index \
                         WHERE phase LIKE 'building index%'",
                        &[],
                    )
                    .await
                    .expect("progress")
                    .is_none()
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                other
                    .batch_execute(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM payments",
                    )
                    .await
                    .expect("the reader's transaction");
            }
            let status = child.wait().await.expect("perfaudit ends");
            let took = started.elapsed();
            if holder != Holder::Nobody {
                other.batch_execute("ROLLBACK").await.expect("rollback");
            }
            (status.code().unwrap_or(-1), took)
        })
    }
}

/// pgbench's tps from its report, and the longest transaction latency
/// (ms) in its per-transaction logs: `client tx latency_us script epoch us`.
fn read_pgbench(stdout: &[u8], logs: &Path) -> (f64, f64) {
    let report = String::from_utf8_lossy(stdout);
    let tps = report
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's report: {report}"));
    let mut longest_us: u64 = 0;
    for entry in std::fs::read_dir(logs).expect("pgbench's logs") {
        let text = std::fs::read_to_string(entry.expect("a log").path()).expect("a log");
        for line in text.lines() {
            let latency = line.split(' ').nth(2).and_then(|f| f.parse().ok());
            longest_us = longest_us.max(latency.unwrap_or(0));
        }
    }
    (tps, longest_us as f64 / 1000.0)
}

/// The median and range of `values`.
fn summary(mut values: Vec<f64>, decimals: usize) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "{median:.decimals$} ({:.decimals$}–{:.decimals$})",
        values[0],
        values[values.len() - 1]
    )
}

fn main() {
    let options = parse_options(3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, database, version) = seeded_cluster(&runtime, options.rows, "");
    let settings = cluster.settings("postgres");
    let bindir = scratch::find_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let script = cluster.dir().join("update_payments.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {})\nUPDATE payments SET amount = amount WHERE id = :id;\n",
            options.rows
        ),
    )
    .expect("write the pgbench script");
    let bench = Bench {
        runtime,
        database,
        conninfo: format!(
            "host={} port={} user={} dbname=postgres",
            settings.hosts[0], settings.ports[0], settings.user
        ),
        pgbench: vec![
            bindir.join("pgbench").display().to_string(),
            "-h".into(),
            settings.hosts[0].to_string(),
            "-p".into(),
            settings.ports[0].to_string(),
            "-U".into(),
            settings.user.clone(),
        ],
        script,
        logs: cluster.dir().join("pgbench-logs"),
    };
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        eprintln!("{} ...", scenario.what);
        let runs: Vec<Measured> = (0..options.runs).map(|_| bench.run(scenario)).collect();
        let longest = summary(runs.iter().map(|m| m.longest_ms).collect(), 0);
        let tps = summary(runs.iter().map(|m| m.tps).collect(), 0);
        let perfaudit = match runs[0].perfaudit {
            None => "—".to_owned(),
            Some(_) => {
                let codes: Vec<String> = runs
                    .iter()
                    .filter_map(|m| m.perfaudit.map(|(code, _)| code.to_string()))
                    .collect();
                let took = runs
                    .iter()
                    .filter_map(|m| m.perfaudit.map(|(_, took)| took.as_secs_f64()))
                    .collect();
                format!("exit {}, {} s", codes.join("/"), summary(took, 1))
            }
        };
        rows.push(format!(
            "| {} | {longest} | {tps} | {perfaudit} |",
            scenario.what
        ));
    }
    let report = format!(
        "Measured on {} cores, PostgreSQL {version}, {} payments, over a Unix socket; \
         pgbench with {CLIENTS} clients updating random payments; perfaudit starts {}s in; \
         medians of {} runs (min–max).\n\n\
         | scenario | longest write (ms) | pgbench tps | perfaudit |\n|---|---|---|---|\n{}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        options.rows,
        LEAD.as_secs(),
        options.runs,
        rows.join("\n")
    );
    println!("{report}");
    if let Some(path) = options.write {
        write_between_markers(&path, "write-stall", &report);
    }
    drop(cluster);
}
