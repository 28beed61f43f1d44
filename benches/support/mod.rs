//! What the benchmark harnesses share: their options, a seeded scratch
//! cluster, and writing a report into a Markdown file between markers.

use std::path::{Path, PathBuf};

use perfaudit::db::{Database, PoolOptions, ScratchCluster, ScratchOptions};
use tokio::runtime::Runtime;

/// The options of a harness.
pub struct Options {
    /// Rows of payments to seed.
    pub rows: u64,
    /// Runs of each measurement.
    pub runs: u32,
    /// The file to write the report into, if any.
    pub write: Option<PathBuf>,
}

/// The harness's options (`--rows N`, `--runs N`, `--write FILE`), with
/// `runs` runs by default.
pub fn parse_options(runs: u32) -> Options {
    let mut options = Options {
        rows: 1_000_000,
        runs,
        write: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--rows" => options.rows = value().parse().expect("--rows takes a number"),
            "--runs" => options.runs = value().parse().expect("--runs takes a number"),
            "--write" => options.write = Some(PathBuf::from(value())),
            // cargo bench passes --bench; nothing else is expected.
            "--bench" => {}
            other => panic!("unknown option {other}; use --rows N, --runs N, --write FILE"),
        }
    }
    options
}

/// Replaces the text of `path` between `<!-- {name}:start -->` and
/// `<!-- {name}:end -->` with `report`.
pub fn write_between_markers(path: &Path, name: &str, report: &str) {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let text = std::fs::read_to_string(path).expect("read the report file");
    let (before, rest) = text.split_once(&start).expect("the start marker");
    let (_, after) = rest.split_once(&end).expect("the end marker");
    std::fs::write(path, format!("{before}{start}\n{report}{end}{after}")).expect("write");
}

/// A scratch cluster seeded with `rows` payments and then `setup` (SQL),
/// a pool on it, and its server's version.
pub fn seeded_cluster(
    runtime: &Runtime,
    rows: u64,
    setup: &str,
) -> (ScratchCluster, Database, String) {
    let cluster = runtime
        .block_on(ScratchCluster::start(&ScratchOptions::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let database = Database::new(cluster.settings("postgres"), PoolOptions::default()).unwrap();
    let version = runtime.block_on(async {
        let client = database.connection().await.unwrap();
        eprintln!("seeding {rows} payments ...");
        perfaudit::db::fixture::load(&client, rows)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .batch_execute(setup)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .query_one("SHOW server_version", &[])
            .await
            .unwrap()
            .get(0)
    });
    (cluster, database, version)
}
