//! Stopping work on the server, not just dropping its future: a dropped
//! future leaves the server process running (or queued on a lock) until it
//! finishes. A cancel request goes over a connection of its own, so it
//! needs the TLS connector of the session it cancels; where another session
//! of the server is at hand, the server is asked instead.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// How often a cancel request is sent again while the cancelled work goes
/// on: a request that reaches the server between two statements, or before
/// a statement starts, cancels nothing.
const CANCEL_REPEAT: Duration = Duration::from_millis(100);

/// Runs `work`, which runs on `client`, to its end; on a signal, cancels it
/// on the server until it ends (a second signal exits at once), then
/// returns `Err(Interrupted)`.
pub async fn cancellable<T>(
    client: &Client,
    tls: &MakeRustlsConnect,
    interrupt: &Interrupt,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut work = pin!(work);
    let signal = tokio::select! {
        biased;
        result = &mut work => return result,
        signal = interrupt.wait() => signal,
    };
    let _ = cancel_until_done(client, tls, work).await;
    Err(Error::Interrupted(signal))
}

/// Asks the server to cancel what `client` runs, again and again, until
/// `work` (which runs on `client`) has ended; returns what it returned.
pub async fn cancel_until_done<F: Future>(
    client: &Client,
    tls: &MakeRustlsConnect,
    mut work: Pin<&mut F>,
) -> F::Output {
    loop {
        // A cancel that cannot be sent is tried again with the next one.
        let _ = client.cancel_token().cancel_query(tls.clone()).await;
        tokio::select! {
            biased;
            output = &mut work => return output,
            () = tokio::time::sleep(CANCEL_REPEAT) => {}
        }
    }
}

/// Like [`cancel_until_done`], but asks the server itself to cancel server
/// process `pid` (`pg_cancel_backend`), over `via`, another session of the
/// same role: no new connection is opened, and no cancel request goes
/// through a connection pooler, which may not pass it on to the right
/// server process (PgBouncer 1.18 aborted on one mid-build). A cancel
/// request on `client` is sent instead whenever `via` cannot ask.
pub async fn cancel_backend_until_done<F: Future>(
    via: &Client,
    pid: i32,
    client: &Client,
    tls: &MakeRustlsConnect,
    mut work: Pin<&mut F>,
) -> F::Output {
    loop {
        // Bounded: a session that does not answer must not keep the
        // cancel from being sent another way.
        let asked = tokio::time::timeout(
            CANCEL_REPEAT,
            via.query_typed("SELECT pg_cancel_backend($1)", &[(&pid, Type::INT4)]),
        )
        .await;
        if !matches!(asked, Ok(Ok(_))) {
            let _ = client.cancel_token().cancel_query(tls.clone()).await;
        }
        tokio::select! {
            biased;
            output = &mut work => return output,
            () = tokio::time::sleep(CANCEL_REPEAT) => {}
        }
    }
}
