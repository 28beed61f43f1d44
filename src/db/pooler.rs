//! Telling whether perfaudit reaches the server through a transaction
//! pooler (PgBouncer's `pool_mode = transaction`), where a client
//! connection's server session may change after every transaction.

use deadpool_postgres::Object;
use tokio_postgres::Client;

use super::Database;
use super::errors::query_error;
use crate::error::Result;

/// Whether `client`, a connection of `database`, is behind a transaction
/// pooler. A second connection holds a transaction open between two
/// readings of `client`'s server process: directly, `client` keeps its
/// process and the second connection has one of its own; a transaction
/// pooler hands the second connection `client`'s idle server connection
/// (PgBouncer reuses the last one freed), or moves `client` to another.
pub async fn transaction_pooler(client: &Client, database: &Database) -> Result<bool> {
    let before = backend_pid(client).await?;
    let other: Object = database.connection().await?;
    other
        .batch_execute("BEGIN")
        .await
        .map_err(|e| query_error("looking for a transaction pooler", &e))?;
    let held = backend_pid(&other).await;
    let after = backend_pid(client).await;
    other
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| query_error("looking for a transaction pooler", &e))?;
    Ok(held? == before || after? != before)
}

async fn backend_pid(client: &Client) -> Result<i32> {
    Ok(client
        .query_typed_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| query_error("looking for a transaction pooler", &e))?
        .get(0))
}
