//! Terminal manners: what goes to stderr, whether to draw progress and
//! colour, and how loud to be.
//!
//! - Colour only when stdout is a terminal and `NO_COLOR` is not set.
//! - Progress bars only when stderr is a terminal, never with `--format json`
//!   or `--no-progress`; elsewhere (CI logs) plain status lines instead.
//! - `-q` silences status lines; `-v` adds detail.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Format, GlobalArgs};

/// Output decisions for one run.
#[derive(Debug, Clone)]
pub struct Ui {
    format: Format,
    verbosity: i8,
    progress: bool,
    color: bool,
}

impl Ui {
    /// Decides from the flags, the environment and the terminals.
    pub fn new(global: &GlobalArgs) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ui {
            format: global.format,
            verbosity: if global.quiet {
                -1
            } else {
                global.verbose as i8
            },
            progress: !global.no_progress
                && global.format == Format::Table
                && !global.quiet
                && std::io::stderr().is_terminal(),
            color: !no_color && global.format == Format::Table && std::io::stdout().is_terminal(),
        }
    }

    /// A quiet, colourless, progress-free UI, for tests and library use.
    pub fn plain(format: Format) -> Ui {
        Ui {
            format,
            verbosity: -1,
            progress: false,
            color: false,
        }
    }

    /// The output format asked for.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether output may be coloured.
    pub fn color(&self) -> bool {
        self.color
    }

    /// Whether progress bars are drawn.
    pub fn progress(&self) -> bool {
        self.progress
    }

    /// A status line on stderr, unless `-q`.
    pub fn status(&self, message: impl AsRef<str>) {
        if self.verbosity >= 0 {
            eprintln!("perfaudit: {}", message.as_ref());
        }
    }

    /// A detail line on stderr, with `-v`.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbosity >= 1 {
            eprintln!("perfaudit: {}", message.as_ref());
        }
    }

    /// A spinner for work of unknown length. On a terminal it spins; elsewhere
    /// the message is printed once as a status line.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let message = message.into();
        if !self.progress {
            self.status(&message);
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// A bar over `len` steps, hidden unless progress is drawn.
    pub fn bar(&self, len: u64, message: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(message.into());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    }
}
