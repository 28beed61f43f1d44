//! The error type every command returns, and the exit code each kind maps to.
//!
//! Exit codes are part of the command-line contract (see the README): pipelines
//! branch on them, so they never change meaning.

use crate::interrupt::Signal;

/// A failure, classified by who is at fault. Each message is one sentence a
/// person can act on: what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is at fault: usage, SQL that does not parse, a refused
    /// statement, a spec that names a missing column. Exit code 2.
    #[error("{0}")]
    Input(String),
    /// The database or the way to it is at fault: cannot connect, cannot
    /// authenticate, a server error, a timeout. Exit code 3.
    #[error("{0}")]
    Database(String),
    /// The work succeeded but a pipeline gate failed (a time budget exceeded,
    /// a finding at or above `--fail-on`). Exit code 1.
    #[error("{0}")]
    Gate(String),
    /// A signal asked us to stop; the work was cancelled and cleaned up.
    /// Exit code 130 (SIGINT) or 143 (SIGTERM).
    #[error("interrupted by {0}; the work in progress was cancelled")]
    Interrupted(Signal),
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a successful run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a failed gate.
pub const EXIT_GATE: i32 = 1;
/// Exit code of bad input.
pub const EXIT_INPUT: i32 = 2;
/// Exit code of a database error.
pub const EXIT_DATABASE: i32 = 3;

impl Error {
    /// The process exit code for this error, as documented in the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Gate(_) => EXIT_GATE,
            Error::Input(_) => EXIT_INPUT,
            Error::Database(_) => EXIT_DATABASE,
            Error::Interrupted(signal) => signal.exit_code(),
        }
    }

    /// An input error from anything printable.
    pub fn input(message: impl Into<String>) -> Error {
        Error::Input(message.into())
    }

    /// A database error from anything printable.
    pub fn database(message: impl Into<String>) -> Error {
        Error::Database(message.into())
    }
}
