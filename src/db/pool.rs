//! The connection pool (deadpool-postgres over tokio-postgres).
//!
//! Connections open lazily: a command that needs one connection opens one,
//! however large `--pool-size` is. Each session starts with perfaudit's
//! `application_name` and, when asked, a `statement_timeout`, both sent in
//! the startup packet so they cost no round trip.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::errors::{connect_error, connect_timeout};
use super::settings::{ConnectionSettings, SslMode};
use super::tls;
use crate::error::{Error, Result};

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections at most.
    pub max_size: usize,
    /// How long to wait for a pooled connection to become free.
    pub wait_timeout: Duration,
    /// `statement_timeout` for every session; `None` keeps the server's.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 4,
            wait_timeout: Duration::from_secs(30),
            statement_timeout: None,
        }
    }
}

/// A database perfaudit works on: the pool and the settings it came from.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    settings: Arc<ConnectionSettings>,
    options: PoolOptions,
    /// The pool's TLS connector, for the connections cancel requests open.
    tls: MakeRustlsConnect,
}

/// Bounds the health check of a pooled connection before reuse.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);

impl Database {
    /// Builds the pool. Opens no connection.
    pub fn new(settings: ConnectionSettings, options: PoolOptions) -> Result<Database> {
        let pg_config = pg_config(&settings, options.statement_timeout);
        // Built once: with verification it reads the root certificates.
        let tls = tls::connector(&settings)?;
        let manager = Manager::from_config(
            pg_config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_size)
            .timeouts(Timeouts {
                wait: Some(options.wait_timeout),
                create: finite(settings.connect_timeout),
                recycle: Some(RECYCLE_TIMEOUT),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the connection pool: {e}")))?;
        Ok(Database {
            pool,
            settings: Arc::new(settings),
            options,
            tls,
        })
    }

    /// A pooled connection, opening one if none is free and the pool is not
    /// full; errors say where perfaudit tried to connect and why it failed.
    pub async fn connection(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => connect_error(&self.settings, &e),
            PoolError::Timeout(deadpool_postgres::TimeoutType::Create) => {
                connect_timeout(&self.settings, self.settings.connect_timeout)
            }
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => Error::database(format!(
                "all {} pooled connections stayed busy for {}; raise --pool-size or --pool-timeout",
                self.options.max_size,
                humantime::format_duration(self.options.wait_timeout)
            )),
            other => Error::database(format!(
                "could not get a connection to PostgreSQL at {}: {other}",
                self.settings.describe()
            )),
        })
    }

    /// The settings this database was reached with.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The TLS connector the pool connects with: a cancel request, which
    /// opens a connection of its own, must use the same.
    pub fn tls(&self) -> &MakeRustlsConnect {
        &self.tls
    }

    /// The pool options.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    /// How many connections are open now (for tests of laziness).
    pub fn open_connections(&self) -> usize {
        self.pool.status().size
    }
}

/// `None` for "wait forever" (`connect_timeout=0`).
fn finite(timeout: Duration) -> Option<Duration> {
    (timeout != Duration::MAX).then_some(timeout)
}

/// The tokio-postgres view of the settings.
fn pg_config(
    settings: &ConnectionSettings,
    statement_timeout: Option<Duration>,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    for host in &settings.hosts {
        if host.starts_with('/') {
            config.host_path(host);
        } else {
            config.host(host);
        }
    }
    for addr in &settings.hostaddrs {
        config.hostaddr(*addr);
    }
    for port in &settings.ports {
        config.port(*port);
    }
    config
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .ssl_mode(match settings.sslmode {
            // As in libpq, sslmode does not apply to Unix sockets: the
            // server offers no TLS there, and the kernel vouches for it.
            _ if settings.hosts.iter().all(|h| h.starts_with('/')) => {
                tokio_postgres::config::SslMode::Disable
            }
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    if let Some(password) = &settings.password {
        config.password(password.expose());
    }
    if let Some(timeout) = finite(settings.connect_timeout) {
        config.connect_timeout(timeout);
    }
    let mut options: Vec<String> = settings.options.iter().cloned().collect();
    if let Some(timeout) = statement_timeout.filter(|t| !t.is_zero()) {
        // Never rounded down to 0, which the server reads as no timeout.
        options.push(format!(
            "-c statement_timeout={}",
            timeout.as_millis().max(1)
        ));
    }
    if !options.is_empty() {
        config.options(options.join(" "));
    }
    config
}
