//! Terminal manners: what goes to stderr, whether to draw progress and
//! colour, and how loud to be.
//!
//! - Colour only when stdout is a terminal and `NO_COLOR` is not set.
//! - Progress bars only when stderr is a terminal, never with `--format json`
//!   or `--no-progress`; elsewhere (CI logs) plain status lines instead.
//! - `-q` silences status lines; `-v` adds detail.
//! - Tables fit `COLUMNS` when it is set, else the terminal's width.
//!
//! Engines report work in progress through the [`Progress`] trait and never
//! learn how it is shown; [`Bars`] shows it with indicatif.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables for people.
    Table,
    /// One JSON document on stdout, for pipelines.
    Json,
}

/// What the command line says about output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiOptions {
    /// The output format.
    pub format: Format,
    /// `-q`.
    pub quiet: bool,
    /// How many `-v`.
    pub verbose: u8,
    /// `--no-progress`.
    pub no_progress: bool,
}

/// The narrowest width output is fitted to: a pseudo-terminal that reports
/// fewer columns (often 0, under `script` or `docker -t`) reports nothing
/// usable, and fitting to it would squeeze every column to one character.
const MIN_WIDTH: u16 = 40;

/// Output decisions for one run.
#[derive(Debug, Clone)]
pub struct Ui {
    format: Format,
    verbosity: i8,
    progress: bool,
    color: bool,
    width: Option<u16>,
}

impl Ui {
    /// Decides from the options, the environment and the terminals.
    pub fn new(options: UiOptions) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let table = options.format == Format::Table;
        Ui {
            format: options.format,
            verbosity: if options.quiet {
                -1
            } else {
                options.verbose.min(i8::MAX as u8) as i8
            },
            progress: !options.no_progress
                && table
                && !options.quiet
                && std::io::stderr().is_terminal(),
            color: !no_color && table && std::io::stdout().is_terminal(),
            width: output_width(),
        }
    }

    /// A quiet, colourless, progress-free UI, for tests and library use.
    pub fn plain(format: Format) -> Ui {
        Ui {
            format,
            verbosity: -1,
            progress: false,
            color: false,
            width: None,
        }
    }

    /// The same UI fitting output to `width` columns, as a terminal that
    /// wide would.
    pub fn with_width(self, width: u16) -> Ui {
        Ui {
            width: Some(width),
            ..self
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

    /// The width output is fitted to, in columns; `None` when nothing says
    /// (a pipe without `COLUMNS`).
    pub fn width(&self) -> Option<u16> {
        self.width
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

    /// A line on stderr whatever the format and `-q`: something a person
    /// has to deal with.
    pub fn warn(&self, message: impl AsRef<str>) {
        eprintln!("perfaudit: {}", message.as_ref());
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
        bar.enable_steady_tick(TICK_INTERVAL);
        bar
    }
}

/// The width output is fitted to: `COLUMNS` when it holds a usable one (as
/// `ls`, clap and Python read it: it is how a width is asked for through a
/// pipe), else the terminal's when stdout is one.
fn output_width() -> Option<u16> {
    let usable = |width: &u16| *width >= MIN_WIDTH;
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse::<u16>().ok());
    columns.filter(usable).or_else(|| {
        terminal_size::terminal_size_of(std::io::stdout())
            .map(|(terminal_size::Width(width), _)| width)
            .filter(usable)
    })
}

/// How often a bar redraws on its own (for the elapsed time and spinner).
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// The kinds of line an engine says while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// For people following along (a summary, a retry); not with JSON.
    Status,
    /// With `-v`.
    Detail,
    /// Whatever the format: something was left that a person must handle.
    Warning,
}

/// What an engine tells about work in progress: tasks (each a key the
/// engine picks, such as a server process id) with steps done of a total,
/// and lines for people.
pub trait Progress {
    /// Whether progress is shown: work done only to show it (polling the
    /// server for a build's phase) is skipped otherwise.
    fn shown(&self) -> bool;
    /// Task `task`, called `label`, begins.
    fn start(&self, task: i32, label: &str);
    /// Task `task` has done `done` of `total` steps; `message` says where.
    fn advance(&self, task: i32, done: u64, total: u64, message: Option<&str>);
    /// Task `task` ended.
    fn finish(&self, task: i32);
    /// A line for people.
    fn say(&self, line: Line, message: &str);
}

/// [`Progress`] on a terminal: one bar per task in flight, lines above
/// them; without bars (off a terminal, `--no-progress`), lines only;
/// with JSON, only warnings and details.
pub struct Bars {
    ui: Ui,
    multi: Option<MultiProgress>,
    /// The bars of the tasks in flight.
    bars: RefCell<Vec<(i32, ProgressBar)>>,
}

impl Bars {
    /// Progress as `ui` allows: bars only when it draws progress.
    pub fn new(ui: &Ui) -> Bars {
        Bars {
            ui: ui.clone(),
            multi: ui.progress().then(MultiProgress::new),
            bars: RefCell::new(Vec::new()),
        }
    }

    /// Runs `print` above the bars.
    fn above(&self, print: impl FnOnce()) {
        match &self.multi {
            Some(multi) => multi.suspend(print),
            None => print(),
        }
    }
}

impl Progress for Bars {
    fn shown(&self) -> bool {
        self.multi.is_some()
    }

    fn start(&self, task: i32, label: &str) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(ProgressBar::new(1).with_prefix(label.to_owned()));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:25}] {percent:>3}% {elapsed:>4} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(TICK_INTERVAL);
        self.bars.borrow_mut().push((task, bar));
    }

    fn advance(&self, task: i32, done: u64, total: u64, message: Option<&str>) {
        if let Some((_, bar)) = self.bars.borrow().iter().find(|(t, _)| *t == task) {
            bar.set_length(total);
            bar.set_position(done);
            if let Some(message) = message {
                bar.set_message(message.to_owned());
            }
        }
    }

    fn finish(&self, task: i32) {
        let mut bars = self.bars.borrow_mut();
        let Some(at) = bars.iter().position(|(t, _)| *t == task) else {
            return;
        };
        let (_, bar) = bars.remove(at);
        bar.finish_and_clear();
        if let Some(multi) = &self.multi {
            multi.remove(&bar);
        }
    }

    fn say(&self, line: Line, message: &str) {
        match line {
            Line::Status if self.ui.format() == Format::Table => {
                self.above(|| self.ui.status(message));
            }
            Line::Status => {}
            Line::Detail => self.above(|| self.ui.detail(message)),
            Line::Warning => self.above(|| self.ui.warn(message)),
        }
    }
}

/// [`Progress`] nobody sees, for library use and tests.
pub struct Unseen;

impl Progress for Unseen {
    fn shown(&self) -> bool {
        false
    }
    fn start(&self, _: i32, _: &str) {}
    fn advance(&self, _: i32, _: u64, _: u64, _: Option<&str>) {}
    fn finish(&self, _: i32) {}
    fn say(&self, _: Line, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_nothing_is_drawn() {
        let bars = Bars::new(&Ui::plain(Format::Table));
        assert!(!bars.shown());
        bars.start(42, "idx");
        assert!(bars.bars.borrow().is_empty());
        bars.finish(42);
    }
}
