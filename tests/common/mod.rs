//! The test harness: one PostgreSQL per test binary, one database per test.
//!
//! The server is a scratch cluster started with perfaudit's own scratch code
//! on first use, or the server `PERFAUDIT_TEST_DATABASE_URL` points at (its
//! role must be allowed to create databases). Each test gets a database of
//! its own, copied from a template that holds a fixture (payments, or
//! rentals: fixtures/rentals/README.md), so tests run in parallel without
//! seeing each other. Everything is removed when the test binary exits.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod explain;
pub mod pooler;
pub mod process;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use perfaudit::db::{
    ConnectionSettings, Database, PoolOptions, ScratchCluster, ScratchOptions, ScratchTls,
};
use perfaudit::sql::ident::quote;

/// Rows in the default fixture.
pub const DEFAULT_ROWS: u64 = 100_000;

/// The variable that points the tests at an existing server.
const EXTERNAL_URL: &str = "PERFAUDIT_TEST_DATABASE_URL";

struct Server {
    admin: ConnectionSettings,
    external: bool,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// The cluster, taken and stopped at exit (statics are never dropped).
static CLUSTER: Mutex<Option<ScratchCluster>> = Mutex::new(None);
/// Databases created on an external server, dropped at exit.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static TEMPLATES: tokio::sync::Mutex<Option<HashSet<Fixture>>> =
    tokio::sync::Mutex::const_new(None);
static COUNTER: AtomicUsize = AtomicUsize::new(0);
/// What the server lacks for HypoPG (`None`: it has it), read once.
static HYPOPG_MISSING: OnceLock<Option<String>> = OnceLock::new();
/// Whether a test of this binary has already failed for the missing HypoPG.
static HYPOPG_REPORTED: AtomicBool = AtomicBool::new(false);

/// Runs async work to completion on a thread of its own, so that it can be
/// called from inside a test's runtime.
fn block_on_thread<T, F>(work: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work())
    })
    .join()
    .expect("harness thread")
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var(EXTERNAL_URL) {
            let env = |name: &str| std::env::var(name).ok();
            let admin = ConnectionSettings::resolve(&perfaudit::db::Sources {
                connection_string: Some(&url),
                env: &env,
                connect_timeout: None,
                warn: &|_| {},
            })
            .unwrap_or_else(|e| panic!("{EXTERNAL_URL} is not usable: {e}"));
            register_cleanup();
            return Server {
                admin,
                external: true,
            };
        }
        let cluster =
            block_on_thread(|| async { ScratchCluster::start(&ScratchOptions::default()).await })
                .unwrap_or_else(|e| panic!("{e}"));
        let admin = cluster.settings("postgres");
        *CLUSTER.lock().unwrap() = Some(cluster);
        register_cleanup();
        Server {
            admin,
            external: false,
        }
    })
}

fn register_cleanup() {
    extern "C" fn cleanup() {
        let databases = std::mem::take(&mut *CREATED.lock().unwrap_or_else(|e| e.into_inner()));
        if let (Some(server), false) = (SERVER.get(), databases.is_empty()) {
            let admin = server.admin.clone();
            block_on_thread(move || async move {
                let db = Database::new(admin, PoolOptions::default()).ok()?;
                let client = db.connection().await.ok()?;
                for name in databases {
                    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&name));
                    let _ = client.batch_execute(&sql).await;
                }
                Some(())
            });
        }
        drop(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
    // SAFETY: registers a plain function to run at process exit; it touches
    // only the statics above.
    unsafe {
        libc::atexit(cleanup);
    }
}

/// Whether the tests that need HypoPG (those of `perfaudit advise`) can
/// run: HypoPG is installed for the test server (and so for the scratch
/// clusters tests start from the same binaries). When it is not, the first
/// test of this binary to ask fails with what to install, and every later
/// one gets `false` and returns early: a machine without HypoPG sees one
/// failure that says what to do, not a panic per test.
pub fn hypopg() -> bool {
    let missing = HYPOPG_MISSING.get_or_init(|| {
        let admin = server().admin.clone();
        block_on_thread(move || async move {
            let db = Database::new(admin, PoolOptions::default()).expect("pool");
            let client = db.connection().await.unwrap_or_else(|e| panic!("{e}"));
            let row = client
                .query_one(
                    "SELECT current_setting('server_version_num')::int / 10000,
                            EXISTS (SELECT FROM pg_available_extensions WHERE name = 'hypopg')",
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (major, installed): (i32, bool) = (row.get(0), row.get(1));
            (!installed).then(|| {
                format!(
                    "HypoPG is not installed for the test server (PostgreSQL {major}), and the \
                     tests of `perfaudit advise` need it: install it (`apt-get install \
                     postgresql-{major}-hypopg` on Debian or Ubuntu, as .ci/run does) and run \
                     the tests again; this binary's other tests that need it are skipped"
                )
            })
        })
    });
    match missing {
        None => true,
        Some(message) if !HYPOPG_REPORTED.swap(true, Ordering::SeqCst) => panic!("{message}"),
        Some(_) => {
            eprintln!("skipped: HypoPG is not installed for the test server");
            false
        }
    }
}

/// A copy of `fixture` with HypoPG created in it; `None` (the test returns
/// early) when HypoPG is not installed, as [`hypopg`] says.
pub async fn hypopg_db(fixture: Fixture) -> Option<TestDb> {
    if !hypopg() {
        return None;
    }
    let db = TestDb::with_fixture(fixture).await;
    db.client()
        .await
        .batch_execute("CREATE EXTENSION hypopg")
        .await
        .unwrap_or_else(|e| panic!("CREATE EXTENSION hypopg: {e}"));
    Some(db)
}

/// A database of its own for one test.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// How to reach it, as the superuser (or the external URL's role).
    pub settings: ConnectionSettings,
}

impl TestDb {
    /// A copy of the payments fixture with the default row count.
    pub async fn new() -> TestDb {
        TestDb::with_rows(DEFAULT_ROWS).await
    }

    /// A copy of the payments fixture with `rows` payments.
    pub async fn with_rows(rows: u64) -> TestDb {
        TestDb::with_fixture(Fixture::Payments { rows }).await
    }

    /// A copy of the rentals fixture (fixtures/rentals/README.md describes it).
    pub async fn rentals() -> TestDb {
        TestDb::with_fixture(Fixture::Rentals).await
    }

    /// A copy of `fixture`.
    pub async fn with_fixture(fixture: Fixture) -> TestDb {
        let template = template(fixture).await;
        TestDb::create(Some(&template)).await
    }

    /// An empty database.
    pub async fn empty() -> TestDb {
        TestDb::create(None).await
    }

    async fn create(template: Option<&str>) -> TestDb {
        let name = unique_name();
        create_database(&name, template).await;
        TestDb {
            settings: server().admin.with_dbname(&name),
            name,
        }
    }

    /// A pool on this database.
    pub fn database(&self) -> Database {
        Database::new(self.settings.clone(), PoolOptions::default()).expect("pool")
    }

    /// One connection to this database.
    pub async fn client(&self) -> deadpool_postgres::Object {
        self.database()
            .connection()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A session of its own on this database, and its server process id.
    pub async fn session(&self) -> (deadpool_postgres::Object, i32) {
        let client = self.client().await;
        let pid = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0);
        (client, pid)
    }

    /// The key/value conninfo for `--database-url`.
    pub fn url(&self) -> String {
        self.settings.to_conninfo()
    }

    /// How many server processes of this database, other than the
    /// caller's, are running a statement whose text holds `fragment`.
    pub async fn running(&self, fragment: &str) -> i64 {
        self.client()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND state = 'active'
                   AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
                &[&fragment],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits (up to 30s) until a server process of this database runs a
    /// statement whose text holds `fragment`.
    pub async fn wait_until_running(&self, fragment: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.running(fragment).await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing ran {fragment}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `perfaudit <args>` on this database, running in the background, its
    /// output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.perfaudit()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn perfaudit")
    }

    /// The perfaudit binary pointed at this database.
    pub fn perfaudit(&self) -> Command {
        let mut command = perfaudit();
        command.arg("--database-url").arg(self.url());
        command
    }
}

/// The perfaudit binary with an environment that points nowhere: no
/// DATABASE_URL, no PG* variables, no ~/.pgpass.
pub fn perfaudit() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_perfaudit"));
    command.env_clear();
    for name in ["PATH", "TMPDIR", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.env("HOME", "/nonexistent");
    command
}

/// A cluster of its own that also listens on TCP (127.0.0.1), where the
/// role `alice` logs in with `password`, serving TLS when given.
pub async fn tcp_cluster(password: &str, tls: Option<ScratchTls>) -> ScratchCluster {
    let cluster = ScratchCluster::start(&ScratchOptions {
        tcp: true,
        tls,
        ..ScratchOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let db = Database::new(cluster.settings("postgres"), PoolOptions::default()).expect("pool");
    db.connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .batch_execute(&format!("CREATE ROLE alice LOGIN PASSWORD '{password}'"))
        .await
        .expect("create alice");
    cluster
}

/// `t_<test name>_<n>`, so a leftover database says which test made it.
fn unique_name() -> String {
    let thread = std::thread::current();
    let test: String = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!(
        "t_{test}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a template database holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fixture {
    /// The payments fixture (fixtures/schema.sql, fixtures/seed.sql) with
    /// `rows` payments.
    Payments { rows: u64 },
    /// The rentals fixture (fixtures/rentals/), always the same size.
    Rentals,
}

impl Fixture {
    /// The template's name, unique to this test binary.
    fn template_name(self) -> String {
        let pid = std::process::id();
        match self {
            Fixture::Payments { rows } => format!("fixture_{rows}_{pid}"),
            Fixture::Rentals => format!("fixture_rentals_{pid}"),
        }
    }

    /// Creates the fixture's objects and data in the database of `client`.
    async fn load(self, client: &tokio_postgres::Client) {
        match self {
            Fixture::Payments { rows } => perfaudit::db::fixture::load(client, rows)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            Fixture::Rentals => {
                for (file, sql) in [
                    (
                        "schema.sql",
                        include_str!("../../fixtures/rentals/schema.sql"),
                    ),
                    ("seed.sql", include_str!("../../fixtures/rentals/seed.sql")),
                ] {
                    client
                        .batch_execute(sql)
                        .await
                        .unwrap_or_else(|e| panic!("fixtures/rentals/{file}: {e:?}"));
                }
            }
        }
    }
}

/// The template holding `fixture`, created on first use.
async fn template(fixture: Fixture) -> String {
    let name = fixture.template_name();
    let mut made = TEMPLATES.lock().await;
    let made = made.get_or_insert_with(HashSet::new);
    // Remembered once loaded: after a failed load, the next test fails too
    // (the database exists) rather than run on a half-loaded copy.
    if !made.contains(&fixture) {
        create_database(&name, None).await;
        let db =
            Database::new(server().admin.with_dbname(&name), PoolOptions::default()).expect("pool");
        let client = db.connection().await.unwrap_or_else(|e| panic!("{e}"));
        fixture.load(&client).await;
        made.insert(fixture);
    }
    name
}

/// Creates database `name`, a copy of `template` if given. On an external
/// server it is remembered, to be dropped at exit.
async fn create_database(name: &str, template: Option<&str>) {
    if server().external {
        CREATED.lock().unwrap().push(name.to_owned());
    }
    let sql = match template {
        Some(template) => format!(
            "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY",
            quote(name),
            quote(template)
        ),
        None => format!("CREATE DATABASE {}", quote(name)),
    };
    admin_execute(&sql).await;
}

/// Runs `sql` as the admin on the maintenance database.
pub async fn admin_execute(sql: &str) {
    admin_execute_in(&server().admin.dbname.clone(), sql).await;
}

/// Runs `sql` as the admin on database `dbname`.
pub async fn admin_execute_in(dbname: &str, sql: &str) {
    let db =
        Database::new(server().admin.with_dbname(dbname), PoolOptions::default()).expect("pool");
    let client = db.connection().await.unwrap_or_else(|e| panic!("{e}"));
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
