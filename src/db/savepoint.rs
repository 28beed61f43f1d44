//! A step the server may refuse, inside a transaction that must outlive
//! the refusal.

use tokio_postgres::Client;

/// The savepoint each step runs under.
const STEP: &str = "perfaudit_step";

/// Runs `step` under a savepoint of the transaction `client` holds open:
/// a statement the server refuses would otherwise abort the whole
/// transaction, and every later statement in it would fail. The inner
/// result is the step's own; `Err` is a failure of the connection.
pub async fn under_savepoint<'c, T, E>(
    client: &'c Client,
    step: impl AsyncFnOnce(&'c Client) -> Result<T, E>,
) -> Result<Result<T, E>, tokio_postgres::Error> {
    client.batch_execute(&format!("SAVEPOINT {STEP}")).await?;
    let result = step(client).await;
    let end = match result {
        Ok(_) => format!("RELEASE SAVEPOINT {STEP}"),
        Err(_) => format!("ROLLBACK TO SAVEPOINT {STEP}; RELEASE SAVEPOINT {STEP}"),
    };
    client.batch_execute(&end).await?;
    Ok(result)
}
