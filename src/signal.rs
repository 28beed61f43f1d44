//! The signals perfaudit turns into a clean stop (see [`crate::interrupt`]),
//! and what each makes of the exit code.

use std::fmt;

/// The signals perfaudit turns into a clean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, usually Ctrl-C.
    Interrupt,
    /// SIGTERM, usually a supervisor or `kill`.
    Terminate,
    /// SIGHUP: the terminal went away (an SSH session closed).
    Hangup,
}

impl Signal {
    /// The conventional exit code: 128 plus the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
            Signal::Hangup => 129,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        })
    }
}
