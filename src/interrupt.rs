//! SIGINT / SIGTERM / SIGHUP handling.
//!
//! A signal does not kill the process: it is turned into a value that long
//! running work watches, so that the work can cancel what it started on the
//! server (a query, an index build), remove what it left behind, and stop a
//! scratch cluster before the process exits with 130, 143 or 129. A second signal
//! exits at once, for when the cleanup itself hangs.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::signal::Signal;

/// Fires a [`Interrupt::manual`] interrupt.
#[derive(Clone, Debug)]
pub struct Trigger(std::sync::Arc<watch::Sender<Option<Signal>>>);

impl Trigger {
    /// Acts as if `signal` had been received.
    pub fn fire(&self, signal: Signal) {
        let _ = self.0.send(Some(signal));
    }
}

/// A cheap, cloneable view of whether a stop was requested.
#[derive(Clone, Debug)]
pub struct Interrupt {
    received: watch::Receiver<Option<Signal>>,
    // Keeps the channel open for `Interrupt::never`, which has no listener task.
    _sender: Option<std::sync::Arc<watch::Sender<Option<Signal>>>>,
}

impl Interrupt {
    /// Listens for SIGINT, SIGTERM and SIGHUP for the rest of the process's
    /// life.
    /// Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let (sender, received) = watch::channel(None);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let signal = tokio::select! {
                    _ = sigint.recv() => Signal::Interrupt,
                    _ = sigterm.recv() => Signal::Terminate,
                    _ = sighup.recv() => Signal::Hangup,
                };
                if !first {
                    eprintln!("perfaudit: {signal} again; exiting without cleanup");
                    std::process::exit(signal.exit_code());
                }
                first = false;
                let _ = sender.send(Some(signal));
            }
        });
        Ok(Interrupt {
            received,
            _sender: None,
        })
    }

    /// An interrupt that never fires, for library use and tests.
    pub fn never() -> Interrupt {
        let (sender, received) = watch::channel(None);
        Interrupt {
            received,
            _sender: Some(std::sync::Arc::new(sender)),
        }
    }

    /// An interrupt fired by hand rather than by a signal: for tests of
    /// cleanup paths, and for library users that stop work themselves.
    pub fn manual() -> (Interrupt, Trigger) {
        let (sender, received) = watch::channel(None);
        let sender = std::sync::Arc::new(sender);
        let interrupt = Interrupt {
            received,
            _sender: Some(sender.clone()),
        };
        (interrupt, Trigger(sender))
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<Signal> {
        *self.received.borrow()
    }

    /// `Err(Interrupted)` once a signal has been received.
    pub fn check(&self) -> Result<()> {
        match self.received() {
            Some(signal) => Err(Error::Interrupted(signal)),
            None => Ok(()),
        }
    }

    /// Waits until a signal is received.
    pub async fn wait(&self) -> Signal {
        let mut received = self.received.clone();
        match received.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("waited for Some"),
            // The sender lives as long as the process (or as `self` for
            // `never`), so this branch cannot be reached; pend forever.
            Err(_) => std::future::pending().await,
        }
    }

    /// Runs `work` unless a signal arrives first, in which case `work` is
    /// dropped and `Err(Interrupted)` returned. Only for work whose drop
    /// leaves nothing behind on the server; work that must cancel a query
    /// selects on [`Interrupt::wait`] itself.
    pub async fn guard<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            signal = self.wait() => Err(Error::Interrupted(signal)),
            result = work => result,
        }
    }
}
