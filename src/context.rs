//! What every command runs with: the UI, the interrupt, and the database
//! (a scratch cluster, or the one the connection settings point at).

use std::time::Instant;

use tokio::sync::OnceCell;

use crate::db::{
    ConnectionSettings, Database, PoolOptions, ScratchCluster, ScratchOptions, Sources,
};
use crate::error::Result;
use crate::interrupt::Interrupt;
use crate::ui::Ui;

/// The database a scratch cluster's fixture lives in.
const SCRATCH_DBNAME: &str = "postgres";

/// The environment variables that point perfaudit at a database.
const CONNECTION_VARIABLES: [&str; 5] = [
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
];

/// Where the database is, and how to reach it.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// With `--scratch`, the rows of payments to seed.
    pub scratch_rows: Option<u64>,
    /// `--connect-timeout`.
    pub connect_timeout: Option<std::time::Duration>,
    /// The pool's size and timeouts.
    pub pool: PoolOptions,
}

/// Shared state of one command run.
pub struct Context {
    /// Output decisions.
    pub ui: Ui,
    /// Whether SIGINT / SIGTERM arrived.
    pub interrupt: Interrupt,
    connection_string: Option<String>,
    connect_timeout: Option<std::time::Duration>,
    pool_options: PoolOptions,
    // Field order is drop order: the pool goes before the cluster it uses.
    database: OnceCell<Database>,
    scratch: Option<ScratchCluster>,
}

impl Context {
    /// Prepares a run. With `--scratch`, starts the cluster and seeds the
    /// payments fixture first; otherwise opens nothing.
    pub async fn open(options: DatabaseOptions, ui: Ui, interrupt: Interrupt) -> Result<Context> {
        let mut context = Context {
            ui,
            interrupt,
            // Read here rather than by clap, so that an exported DATABASE_URL
            // does not make --scratch a usage error; --scratch ignores it.
            connection_string: options
                .database_url
                .or_else(|| std::env::var("DATABASE_URL").ok()),
            connect_timeout: options.connect_timeout,
            pool_options: options.pool,
            database: OnceCell::new(),
            scratch: None,
        };
        if let Some(rows) = options.scratch_rows {
            context.start_scratch(rows).await?;
        }
        Ok(context)
    }

    async fn start_scratch(&mut self, rows: u64) -> Result<()> {
        let started = Instant::now();
        let spinner = self.ui.spinner(format!(
            "starting a scratch PostgreSQL with {rows} payments"
        ));
        let cluster = self
            .interrupt
            .guard(ScratchCluster::start(&ScratchOptions::default()))
            .await?;
        let mut settings = cluster.settings(SCRATCH_DBNAME);
        if let Some(timeout) = self.connect_timeout {
            settings.connect_timeout = timeout;
        }
        // Kept before seeding, so an interrupted seed still removes the cluster.
        self.scratch = Some(cluster);
        let database = Database::new(settings, self.pool_options.clone())?;
        self.interrupt
            .guard(async {
                let client = database.connection().await?;
                crate::db::fixture::load(&client, rows).await
            })
            .await?;
        spinner.finish_and_clear();
        self.ui.detail(format!(
            "scratch PostgreSQL ready in {:.1}s at {}",
            started.elapsed().as_secs_f64(),
            database.settings().describe()
        ));
        self.database
            .set(database)
            .unwrap_or_else(|_| unreachable!("set once, before any command runs"));
        Ok(())
    }

    /// The database to work on, connecting lazily: the pool is built on first
    /// use and opens connections only as they are needed.
    pub async fn database(&self) -> Result<&Database> {
        self.database
            .get_or_try_init(|| async {
                let env = |name: &str| std::env::var(name).ok();
                let settings = ConnectionSettings::resolve(&Sources {
                    connection_string: self.connection_string.as_deref(),
                    env: &env,
                    connect_timeout: self.connect_timeout,
                    warn: &|message| self.ui.warn(message),
                })?;
                self.ui.detail(format!(
                    "connecting to {}, sslmode {}, up to {} pooled connections",
                    settings.describe(),
                    crate::db::settings::sslmode_keyword(settings.sslmode),
                    self.pool_options.max_size
                ));
                Database::new(settings, self.pool_options.clone())
            })
            .await
    }

    /// Whether the database is a scratch cluster perfaudit started (and
    /// owns, so it may change it freely).
    pub fn is_scratch(&self) -> bool {
        self.scratch.is_some()
    }

    /// Whether the user pointed perfaudit at a database (`--scratch`,
    /// `--database-url`, `DATABASE_URL` or a libpq variable). Commands that
    /// can work offline (`rewrite`) use a database only then.
    pub fn database_configured(&self) -> bool {
        self.scratch.is_some()
            || self.connection_string.is_some()
            || CONNECTION_VARIABLES
                .iter()
                .any(|name| std::env::var_os(name).is_some())
    }
}
