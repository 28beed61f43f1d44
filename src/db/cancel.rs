//! Stopping work on the server, not just dropping its future: a dropped
//! future leaves the server process running (or queued on a lock) until it
//! finishes. A cancel request goes over a connection of its own, so it
//! needs the TLS connector of the session it cancels.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio_postgres::Client;
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
