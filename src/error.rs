//! The error type every command returns, and the exit code each kind maps to.
//!
//! Exit codes are part of the command-line contract (see the README): pipelines
//! branch on them, so they never change meaning.

use crate::signal::Signal;

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
    /// Neither the input nor the database is at fault: the async runtime or
    /// the signal listener could not start, the output could not be
    /// written. Exit code 70 (EX_SOFTWARE of sysexits.h).
    #[error("{0}")]
    Internal(String),
    /// Whoever reads stdout closed it (`| head`): nobody reads the rest, so
    /// the work stops, quietly, with exit code 0, as ripgrep does.
    #[error("the output was closed")]
    OutputClosed,
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
/// Exit code of an internal failure (sysexits.h's EX_SOFTWARE).
pub const EXIT_INTERNAL: i32 = 70;

/// How many characters of a value an error message echoes: [`clip`].
const ECHO_CHARS: usize = 80;

impl Error {
    /// The process exit code for this error, as documented in the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Gate(_) => EXIT_GATE,
            Error::Input(_) => EXIT_INPUT,
            Error::Database(_) => EXIT_DATABASE,
            Error::Interrupted(signal) => signal.exit_code(),
            Error::Internal(_) => EXIT_INTERNAL,
            Error::OutputClosed => EXIT_OK,
        }
    }

    /// What kind of failure it is, in a word pipelines match on: `gate`,
    /// `input`, `database`, `interrupted`, `internal`, `output-closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Gate(_) => "gate",
            Error::Input(_) => "input",
            Error::Database(_) => "database",
            Error::Interrupted(_) => "interrupted",
            Error::Internal(_) => "internal",
            Error::OutputClosed => "output-closed",
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

    /// An internal error from anything printable.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(message.into())
    }

    /// The same kind of error with `note` added to its message; an
    /// interruption or a closed output stays as it is.
    pub fn with_note(self, note: &str) -> Error {
        match self {
            Error::Input(message) => Error::Input(format!("{message}; {note}")),
            Error::Database(message) => Error::Database(format!("{message}; {note}")),
            Error::Gate(message) => Error::Gate(format!("{message}; {note}")),
            Error::Internal(message) => Error::Internal(format!("{message}; {note}")),
            other @ (Error::Interrupted(_) | Error::OutputClosed) => other,
        }
    }
}

/// A value someone gave (a database name, a host, a file name, a token of
/// SQL) as an error message echoes it: on one line, control characters
/// escaped, and at most [`ECHO_CHARS`] characters of it, followed by `…`
/// and the value's full length when it is longer. A message stays one short
/// sentence whatever was given.
pub fn clip(value: &str) -> String {
    let mut shown = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == ECHO_CHARS {
            shown.push_str(&format!("… ({} bytes)", value.len()));
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_keep_the_kind_of_error() {
        let error = Error::database("building failed").with_note("nothing left");
        assert!(matches!(&error, Error::Database(m) if m == "building failed; nothing left"));
        let interrupted = Error::Interrupted(Signal::Interrupt).with_note("x");
        assert!(matches!(interrupted, Error::Interrupted(Signal::Interrupt)));
        assert!(matches!(
            Error::OutputClosed.with_note("x"),
            Error::OutputClosed
        ));
    }

    #[test]
    fn clip_keeps_short_values_and_shortens_long_ones() {
        assert_eq!(clip("payments"), "payments");
        assert_eq!(clip(""), "");
        assert_eq!(clip("a\nb\0"), "a\\nb\\u{0}");
        let exact = "x".repeat(ECHO_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(100_000);
        let shown = clip(&long);
        assert_eq!(shown, format!("{}… (200000 bytes)", "é".repeat(ECHO_CHARS)));
    }
}
