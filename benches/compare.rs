//! The benchmark harness: perfaudit against psql and plain SQL scripts,
//! measured side by side in the same run, on the same scratch cluster
//! (1,000,000 payments by default), over the same Unix socket.
//!
//! Run it with `bench/run` (or `cargo bench --bench compare`); it needs
//! hyperfine. It prints a Markdown report and, with `--write FILE`, puts it
//! into FILE between the `<!-- results:start -->` and
//! `<!-- results:end -->` markers.

use std::path::Path;
use std::process::Command;

use perfaudit::db::scratch;
use support::{parse_options, seeded_cluster, write_between_markers};

mod support;

const PERFAUDIT: &str = env!("CARGO_BIN_EXE_perfaudit");
const POINT_LOOKUP: &str = "SELECT * FROM payments WHERE id = 424242";
/// A scan an index would serve: with HypoPG, explain's finding takes its
/// index from advise's decision on the statement.
const SELECTIVE_SCAN: &str = "SELECT * FROM payments WHERE user_id = 4242 AND status = 'failed'";
const HEAVY_QUERY: &str =
    "SELECT status, currency, count(*), sum(amount) FROM payments GROUP BY status, currency";
const PAYMENT_INDEXES: [(&str, &str); 4] = [
    ("idx_payments_user_id", "user_id"),
    ("idx_payments_status", "status"),
    ("idx_payments_created_at", "created_at"),
    ("idx_payments_user_status", "user_id, status"),
];
const REWRITE_STATEMENTS: usize = 100_000;
/// A table of 500 hash partitions, for a plan of over a thousand nodes.
const PARTITIONED_TABLE: &str = include_str!("../fixtures/partitioned.sql");
/// A join of two appends of 500 scans each: over a thousand plan nodes.
const LARGE_PLAN_QUERY: &str =
    "SELECT count(*) FROM parted p JOIN parted q USING (id) WHERE p.k = 3";
/// Runs of the figures that take seconds each (index builds, rewriting the
/// whole file): at most this many, enough for a median (the issue asks for
/// five), in a harness that stays under ten minutes.
const LONG_RUNS: u32 = 5;

/// One hyperfine measurement of one command, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Timing {
    median: f64,
    min: f64,
    max: f64,
}

impl Timing {
    fn cell(&self) -> String {
        format!("{:.1} ({:.1}–{:.1})", self.median, self.min, self.max)
    }
}

/// Runs hyperfine on `commands` (name, command line) and returns their timings.
fn hyperfine(runs: u32, prepare: Option<&str>, commands: &[(&str, String)]) -> Vec<Timing> {
    let export = tempfile::NamedTempFile::new().expect("temp file");
    let mut hyperfine = Command::new("hyperfine");
    hyperfine
        .args(["--style", "basic", "--warmup", "2", "--runs"])
        .arg(runs.to_string())
        .arg("--export-json")
        .arg(export.path());
    match prepare {
        Some(prepare) => hyperfine.args(["--prepare", prepare]),
        None => hyperfine.arg("-N"),
    };
    for (name, command) in commands {
        hyperfine.args(["--command-name", name]).arg(command);
    }
    let status = hyperfine
        .status()
        .expect("hyperfine runs (apt-get install hyperfine)");
    assert!(status.success(), "hyperfine failed");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.path()).expect("hyperfine's export"))
            .expect("hyperfine's JSON");
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            let ms = |key: &str| result[key].as_f64().expect("a number") * 1000.0;
            Timing {
                median: ms("median"),
                min: ms("min"),
                max: ms("max"),
            }
        })
        .collect()
}

/// A shell-quoted argument.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

struct Bench {
    conninfo: String,
    psql: String,
    runs: u32,
    report: Vec<String>,
}

impl Bench {
    fn perfaudit(&self, args: &str) -> String {
        format!(
            "{PERFAUDIT} --no-progress -d {} {args}",
            quote(&self.conninfo)
        )
    }

    fn psql(&self, args: &str) -> String {
        format!("{} -X -q -d {} {args}", self.psql, quote(&self.conninfo))
    }

    fn row(&mut self, what: &str, ours: Timing, baseline: Option<Timing>, target: &str) {
        let (baseline_cell, ratio) = match baseline {
            Some(b) => (b.cell(), format!("{:.2}", ours.median / b.median)),
            None => ("—".into(), "—".into()),
        };
        self.report.push(format!(
            "| {what} | {} | {baseline_cell} | {ratio} | {target} |",
            ours.cell()
        ));
    }

    fn explain_against_psql(&mut self, what: &str, sql: &str, target: &str) {
        let timings = hyperfine(
            self.runs,
            None,
            &[
                (
                    "perfaudit",
                    self.perfaudit(&format!(
                        "explain --no-rewrite --format json {}",
                        quote(sql)
                    )),
                ),
                (
                    "psql",
                    self.psql(&format!(
                        "-c {}",
                        quote(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))
                    )),
                ),
            ],
        );
        self.row(what, timings[0], Some(timings[1]), target);
    }

    /// Runs `measure` once HypoPG is created in the database, or says why
    /// it cannot be (the extension is not installed).
    fn with_hypopg(&mut self, measure: impl FnOnce(&mut Bench)) {
        let created = Command::new("sh")
            .args([
                "-c",
                &self.psql("-c 'CREATE EXTENSION IF NOT EXISTS hypopg'"),
            ])
            .status()
            .is_ok_and(|status| status.success());
        if created {
            measure(self);
        } else {
            self.report
                .push("| (HypoPG is not installed: its row is left out) | — | — | — | — |".into());
        }
    }

    /// A plan of over a thousand nodes rendered as tables (plan, timing,
    /// findings) against psql printing PostgreSQL's own text plan.
    fn large_plan(&mut self) {
        let timings = hyperfine(
            self.runs,
            None,
            &[
                (
                    "perfaudit",
                    self.perfaudit(&format!("explain --no-rewrite {}", quote(LARGE_PLAN_QUERY))),
                ),
                (
                    "psql",
                    self.psql(&format!(
                        "-c {}",
                        quote(&format!("EXPLAIN (ANALYZE, BUFFERS) {LARGE_PLAN_QUERY}"))
                    )),
                ),
            ],
        );
        self.row(
            "`explain` rendered as tables, a join over 500 partitions (over 1,000 plan nodes), vs `psql` printing the text plan",
            timings[0],
            Some(timings[1]),
            "well under 1 s",
        );
    }

    /// Per-run overhead of `--runs 50`: the client round trip beyond the
    /// server's own planning + execution time, from perfaudit's JSON.
    fn runs_overhead(&mut self) {
        let output = Command::new("sh")
            .arg("-c")
            .arg(self.perfaudit(&format!(
                "explain --no-rewrite --format json --runs 50 {}",
                quote(POINT_LOOKUP)
            )))
            .output()
            .expect("perfaudit runs");
        assert!(output.status.success(), "{output:?}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let timing = &json["statements"][0]["timing"];
        let median = |key: &str| timing[key]["median"].as_f64().expect("a median");
        let overhead = median("round_trip_ms") - median("planning_ms") - median("execution_ms");
        self.report.push(format!(
            "| `explain --runs 50`: per run beyond the server's planning + execution | {overhead:.3} ms (median round trip {:.3} ms) | — | — | < 0.5 ms |",
            median("round_trip_ms")
        ));
    }

    fn indexes(&mut self, database: &str) {
        let drop: Vec<String> = PAYMENT_INDEXES
            .iter()
            .map(|(name, _)| format!("DROP INDEX IF EXISTS {name};"))
            .collect();
        let prepare = self.psql(&format!("-c {}", quote(&drop.join(" "))));
        for (flag, keyword, target, what) in [
            (
                "",
                "CONCURRENTLY ",
                "≤ 1.05",
                "`indexes` (four payment indexes, concurrently)",
            ),
            (
                " --no-concurrently",
                "",
                "≤ 0.75",
                "`indexes --no-concurrently` vs four plain builds in a row",
            ),
            // The default pool (4) less the run's own session builds three
            // at a time; one more connection lets all four build at once.
            (
                " --no-concurrently --pool-size 5",
                "",
                "—",
                "`indexes --no-concurrently --pool-size 5` (four builds at once) vs the same",
            ),
        ] {
            let script = PAYMENT_INDEXES
                .iter()
                .map(|(name, columns)| {
                    format!("CREATE INDEX {keyword}{name} ON payments ({columns});\n")
                })
                .collect::<String>();
            let script_path = Path::new(database).join(if keyword.is_empty() {
                "plain_indexes.sql"
            } else {
                "concurrent_indexes.sql"
            });
            std::fs::write(&script_path, script).expect("write the psql script");
            let timings = hyperfine(
                self.runs.min(LONG_RUNS),
                Some(&prepare),
                &[
                    (
                        "perfaudit",
                        self.perfaudit(&format!("--format json indexes{flag}")),
                    ),
                    ("psql", self.psql(&format!("-f {}", script_path.display()))),
                ],
            );
            self.row(what, timings[0], Some(timings[1]), target);
        }
    }

    fn rewrite(&mut self, dir: &Path) {
        let file = dir.join("statements.sql");
        std::fs::write(&file, varied_statements(REWRITE_STATEMENTS)).expect("write statements");
        let command = format!("{PERFAUDIT} --format json rewrite -f {}", file.display());
        let timing = hyperfine(
            self.runs.min(LONG_RUNS),
            None,
            &[("rewrite", command.clone())],
        )[0];
        let peak = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .args(command.split(' '))
            .stdout(std::process::Stdio::null())
            .output()
            .expect("/usr/bin/time runs");
        let peak_kib = String::from_utf8_lossy(&peak.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        self.report.push(format!(
            "| `rewrite -f` {REWRITE_STATEMENTS} varied statements | {} ({:.0} statements/s, peak RSS {peak_kib} KiB) | — | — | ≥ 50,000 statements/s |",
            timing.cell(),
            REWRITE_STATEMENTS as f64 / (timing.median / 1000.0)
        ));
    }

    fn version(&mut self) {
        let timings = hyperfine(
            self.runs,
            None,
            &[
                ("perfaudit", format!("{PERFAUDIT} --version")),
                ("psql", format!("{} --version", self.psql)),
            ],
        );
        let size = std::fs::metadata(PERFAUDIT).map(|m| m.len()).unwrap_or(0);
        self.row(
            &format!(
                "`--version` (release binary {:.1} MiB)",
                size as f64 / 1024.0 / 1024.0
            ),
            timings[0],
            Some(timings[1]),
            "reported",
        );
    }
}

/// `count` statements of varied shapes over the payments fixture: reads of
/// every kind the rewriter handles, and writes it leaves alone.
fn varied_statements(count: usize) -> String {
    const SHAPES: &[&str] = &[
        "SELECT * FROM payments WHERE user_id = {n}",
        "SELECT id, amount FROM payments WHERE status = 'pending' AND amount > {n}",
        "SELECT p.id, u.email FROM payments p JOIN users u ON u.id = p.user_id WHERE u.id = {n}",
        "SELECT status, count(*) FROM payments WHERE user_id = {n} GROUP BY status",
        "WITH recent AS (SELECT * FROM payments WHERE created_at > now() - interval '{n} days') SELECT * FROM recent",
        "SELECT * FROM payments WHERE user_id = {n} ORDER BY created_at DESC LIMIT 10",
        "SELECT id FROM payments WHERE id > {n} UNION SELECT id FROM payments WHERE user_id = {n}",
        "SELECT DISTINCT currency FROM payments WHERE user_id = {n}",
        "SELECT * FROM payments WHERE external_ref IS DISTINCT FROM NULL AND user_id = {n} OFFSET 5",
        "UPDATE payments SET status = 'failed' WHERE id = {n}",
        "SELECT u.*, (SELECT max(amount) FROM payments WHERE user_id = u.id) FROM users u WHERE u.id < {n}",
        "SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY created_at) FROM payments WHERE user_id = {n}",
    ];
    (0..count)
        .map(|i| {
            format!(
                "{};\n",
                SHAPES[i % SHAPES.len()].replace("{n}", &(i * 7919 % 100_000).to_string())
            )
        })
        .collect()
}

/// The machine, for the report's header.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores ({cpu})")
}

fn main() {
    let options = parse_options(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, _database, version) = seeded_cluster(&runtime, options.rows, PARTITIONED_TABLE);
    let settings = cluster.settings("postgres");
    let bindir = scratch::find_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let mut bench = Bench {
        conninfo: format!(
            "host={} port={} user={} dbname=postgres",
            settings.hosts[0], settings.ports[0], settings.user
        ),
        psql: bindir.join("psql").display().to_string(),
        runs: options.runs,
        report: Vec::new(),
    };
    bench.explain_against_psql(
        "`explain --no-rewrite --format json`, point lookup",
        POINT_LOOKUP,
        "≤ 1.0",
    );
    bench.explain_against_psql(
        "`explain --no-rewrite --format json`, aggregate over the whole table",
        HEAVY_QUERY,
        "≤ 1.02",
    );
    bench.large_plan();
    bench.runs_overhead();
    // Last of the explain rows: those above are measured without HypoPG.
    bench.with_hypopg(|bench| {
        bench.explain_against_psql(
            "`explain --no-rewrite --format json` with HypoPG, a selective scan: its index decided by advise's search",
            SELECTIVE_SCAN,
            "reported",
        )
    });
    bench.indexes(&cluster.dir().display().to_string());
    bench.rewrite(cluster.dir());
    bench.version();

    let report = format!(
        "Measured on {}, PostgreSQL {version}, {} payments, over a Unix socket; \
         hyperfine medians of {} runs ({} for `indexes` and `rewrite`; min–max) in ms.\n\n\
         | what | perfaudit | baseline | ratio | target |\n|---|---|---|---|---|\n{}\n",
        machine(),
        options.rows,
        options.runs,
        options.runs.min(LONG_RUNS),
        bench.report.join("\n")
    );
    println!("{report}");
    if let Some(path) = options.write {
        write_between_markers(&path, "results", &report);
    }
    drop(cluster);
}
