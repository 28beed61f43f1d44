//! Having the server describe a statement (its parameters' types and its
//! result columns) without leaving a prepared statement on the server.
//!
//! tokio-postgres describes only by preparing a NAMED statement (`s0`,
//! `s1`, ...), closed when the `Statement` is dropped. Behind a
//! transaction pooler (PgBouncer's `pool_mode = transaction`) a server
//! connection is ours only for one transaction: a statement prepared
//! outside a transaction stays on a server connection another client (or
//! our next one, counting from `s0` again) is handed, and preparing the
//! same name there fails with "prepared statement already exists". So the
//! statement is prepared and closed inside one transaction of its own,
//! rolled back, which keeps one server connection throughout.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Error};

/// What the server says of a statement.
pub struct Described {
    /// The types of `$1..$n`.
    pub params: Vec<Type>,
    /// The result columns' names and types.
    pub columns: Vec<(String, Type)>,
}

/// Describes `sql`, its parameters declared as `types`, in a transaction
/// of its own (so call it outside one): `Ok(Err)` is the server's refusal
/// of the statement, `Err` a failure of the connection.
pub async fn describe(
    client: &Client,
    sql: &str,
    types: &[Type],
) -> Result<Result<Described, Error>, Error> {
    // READ ONLY: describing runs nothing, and the transaction only pins
    // the server connection.
    client.batch_execute("BEGIN READ ONLY").await?;
    let described = describe_in_transaction(client, sql, types).await;
    client.batch_execute("ROLLBACK").await?;
    Ok(described)
}

/// Describes `sql` inside the transaction the caller holds open, which
/// keeps the statement's Close on the server connection that prepared it.
pub async fn describe_in_transaction(
    client: &Client,
    sql: &str,
    types: &[Type],
) -> Result<Described, Error> {
    let described = client
        .prepare_typed(sql, types)
        .await
        .map(|statement| Described {
            params: statement.params().to_vec(),
            columns: statement
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_().clone()))
                .collect(),
        });
    // The statement is dropped above, which queues its Close before
    // whatever the caller sends next; the type lookups a non-built-in
    // type needed are statements too, cached by the client: dropping the
    // cache closes them now as well.
    client.clear_type_cache();
    described
}
