//! The sessions perfaudit indexes works on.
//!
//! A build session is a pooled connection set up for builds
//! (`lock_timeout`, `statement_timeout = 0`, `maintenance_work_mem`). It
//! goes back to the pool only once those settings are `RESET` to the
//! session's startup values, which keep the pool's `--statement-timeout`;
//! a session that could not be reset (or was never released) is closed
//! instead, so that no later user of the pool inherits a build's settings.
//! Work on a session is stopped on the server ([`crate::db::cancel`]).

use std::cell::Cell;
use std::ops::Deref;
use std::time::Duration;

use deadpool_postgres::Object;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::sql;
use crate::db::Database;
use crate::db::errors::{query_error, server_message};
use crate::error::{Error, Result};

/// What a build session is set to.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `lock_timeout` (zero: wait as long as it takes).
    pub lock_timeout: Duration,
    /// `maintenance_work_mem`, as PostgreSQL writes sizes; `None` keeps the
    /// server's.
    pub maintenance_work_mem: Option<String>,
}

/// A pooled session set up for index builds.
pub struct BuildSession {
    /// `None` once released.
    client: Option<Object>,
    pid: i32,
    /// The session's `lock_timeout` now.
    lock_timeout: Cell<Duration>,
}

impl BuildSession {
    /// A pooled session with `settings` applied, in one round trip.
    pub async fn open(database: &Database, settings: &SessionSettings) -> Result<BuildSession> {
        let client = database.connection().await?;
        let lock_timeout = sql::milliseconds(settings.lock_timeout).to_string();
        let row = client
            .query_typed_one(
                "SELECT pg_backend_pid(),
                        set_config('lock_timeout', $1, false),
                        set_config('statement_timeout', '0', false),
                        set_config('maintenance_work_mem',
                                   coalesce($2, current_setting('maintenance_work_mem')), false)",
                &[
                    (&lock_timeout, Type::TEXT),
                    (&settings.maintenance_work_mem, Type::TEXT),
                ],
            )
            .await
            .map_err(|e| match e.code() {
                Some(code) if *code == SqlState::INVALID_PARAMETER_VALUE => Error::input(format!(
                    "--maintenance-work-mem {} is refused: {}; give a size such as 256MB or 2GB",
                    settings.maintenance_work_mem.as_deref().unwrap_or_default(),
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), server_message)
                )),
                _ => query_error("setting up the session for index builds", &e),
            })?;
        Ok(BuildSession {
            pid: row.get(0),
            client: Some(client),
            lock_timeout: Cell::new(settings.lock_timeout),
        })
    }

    /// The server process id of the session.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sets the session's `lock_timeout` for the statements that follow,
    /// unless it is set so already.
    pub async fn use_lock_timeout(&self, timeout: Duration) -> Result<(), tokio_postgres::Error> {
        if self.lock_timeout.get() != timeout {
            self.execute_typed(
                "SELECT set_config('lock_timeout', $1, false)",
                &[(&sql::milliseconds(timeout).to_string(), Type::TEXT)],
            )
            .await?;
            self.lock_timeout.set(timeout);
        }
        Ok(())
    }

    /// Resets the build settings and gives the session back to the pool;
    /// closes it if they cannot be reset.
    pub async fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let reset = client
            .batch_execute(
                "RESET lock_timeout; RESET statement_timeout; RESET maintenance_work_mem",
            )
            .await;
        if reset.is_err() {
            drop(Object::take(client));
        }
    }
}

impl Deref for BuildSession {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a session is used before release")
    }
}

impl Drop for BuildSession {
    /// A session dropped without [`BuildSession::release`] still holds the
    /// build settings: it is closed, not pooled.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
