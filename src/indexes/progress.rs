//! What a person sees while indexes build: one bar per build on a terminal,
//! driven by what [`super::watch`] reads from `pg_stat_progress_create_index`
//! (and the session a build waits for, if it waits); status lines (a
//! summary per build, a wait worth knowing about) elsewhere; nothing with
//! `--format json`.

use std::cell::RefCell;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::Format;
use crate::ui::Ui;

/// How often a bar redraws on its own (for the elapsed time and spinner).
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Progress of the builds of one run.
pub struct Progress {
    ui: Ui,
    multi: Option<MultiProgress>,
    /// The bars of the builds in flight, by server process id.
    bars: RefCell<Vec<(i32, ProgressBar)>>,
}

/// One row of `pg_stat_progress_create_index`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressRow {
    /// The phase, e.g. `building index: scanning table`.
    pub phase: String,
    /// Heap blocks to scan, and scanned.
    pub blocks: (i64, i64),
    /// Tuples to process in this phase, and processed.
    pub tuples: (i64, i64),
    /// Partitions to build, and built (a plain build on a partitioned table).
    pub partitions: (i64, i64),
    /// Transactions to wait for, and waited for (the waiting phases).
    pub lockers: (i64, i64),
}

impl ProgressRow {
    /// The bar's `(done, total)`: the blocks while the table is scanned, the
    /// tuples while they are sorted, loaded or validated, the transactions
    /// waited for in the waiting phases; `None` when the phase counts nothing.
    pub fn position(&self) -> Option<(u64, u64)> {
        let scanning = self.phase.contains("scanning table");
        let (total, done) = [
            (self.blocks, scanning),
            (self.tuples, true),
            (self.blocks, true),
            (self.lockers, true),
        ]
        .into_iter()
        .find(|((total, _), applies)| *applies && *total > 0)?
        .0;
        Some((done.clamp(0, total) as u64, total as u64))
    }

    /// The phase, with the partition count when there is one.
    pub fn describe(&self) -> String {
        match self.partitions {
            (total, done) if total > 0 => {
                format!("{} (partition {} of {total})", self.phase, done + 1)
            }
            _ => self.phase.clone(),
        }
    }
}

impl Progress {
    /// Progress as the UI allows: bars only when it draws progress.
    pub fn new(ui: &Ui) -> Progress {
        Progress {
            ui: ui.clone(),
            multi: ui.progress().then(MultiProgress::new),
            bars: RefCell::new(Vec::new()),
        }
    }

    /// Whether bars are drawn (and the server needs polling).
    pub fn drawing(&self) -> bool {
        self.multi.is_some()
    }

    /// A bar for the build of `label` by server process `pid`; hidden
    /// unless drawing.
    pub fn start(&self, label: &str, pid: i32) -> BuildBar<'_> {
        let Some(multi) = &self.multi else {
            return BuildBar {
                progress: self,
                pid: None,
                bar: ProgressBar::hidden(),
            };
        };
        let bar = multi.add(
            ProgressBar::new(1)
                .with_prefix(label.to_owned())
                .with_message("starting"),
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:25}] {percent:>3}% {elapsed:>4} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(TICK_INTERVAL);
        self.bars.borrow_mut().push((pid, bar.clone()));
        BuildBar {
            progress: self,
            pid: Some(pid),
            bar,
        }
    }

    /// A line for people about the builds (a summary, a retry): above the
    /// bars on a terminal, a status line elsewhere, nothing with JSON.
    pub fn note(&self, message: impl AsRef<str>) {
        if self.ui.format() != Format::Table {
            return;
        }
        match &self.multi {
            Some(multi) => multi.suspend(|| self.ui.status(message)),
            None => self.ui.status(message),
        }
    }

    /// A line a person must see whatever the format: something was left
    /// behind that they have to deal with.
    pub fn warn(&self, message: impl AsRef<str>) {
        let line = format!("perfaudit: {}", message.as_ref());
        match &self.multi {
            Some(multi) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// A detail line, with `-v`: above the bars on a terminal.
    pub fn detail(&self, message: impl AsRef<str>) {
        match &self.multi {
            Some(multi) => multi.suspend(|| self.ui.detail(message)),
            None => self.ui.detail(message),
        }
    }

    /// Shows what the server says of the build by server process `pid`:
    /// its progress, and the session it waits for, if it waits.
    pub fn update(&self, pid: i32, row: Option<&ProgressRow>, waiting_for: Option<String>) {
        if let Some((_, bar)) = self.bars.borrow().iter().find(|(p, _)| *p == pid) {
            // A phase that counts nothing shows an empty bar, not a full one.
            let (done, total) = row.and_then(ProgressRow::position).unwrap_or((0, 1));
            bar.set_length(total);
            bar.set_position(done);
            let phase = row.map_or_else(|| "starting".to_owned(), ProgressRow::describe);
            bar.set_message(match waiting_for {
                Some(blocker) => format!("{phase}: waiting for {blocker}"),
                None => phase,
            });
        }
    }
}

/// The bar of one build; it disappears when dropped.
pub struct BuildBar<'a> {
    progress: &'a Progress,
    pid: Option<i32>,
    bar: ProgressBar,
}

impl Drop for BuildBar<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            self.progress.bars.borrow_mut().retain(|(p, _)| *p != pid);
        }
        self.bar.finish_and_clear();
        if let Some(multi) = &self.progress.multi {
            multi.remove(&self.bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(phase: &str, blocks: (i64, i64), tuples: (i64, i64)) -> ProgressRow {
        ProgressRow {
            phase: phase.into(),
            blocks,
            tuples,
            ..ProgressRow::default()
        }
    }

    #[test]
    fn the_bar_follows_blocks_while_scanning_then_tuples() {
        assert_eq!(
            row("building index: scanning table", (100, 40), (500, 7)).position(),
            Some((40, 100))
        );
        let loading = row(
            "building index: loading tuples in tree",
            (100, 100),
            (500, 20),
        );
        assert_eq!(loading.position(), Some((20, 500)));
        assert_eq!(
            row("index validation: scanning index", (80, 10), (0, 0)).position(),
            Some((10, 80))
        );
        let mut waiting = row("waiting for writers before build", (0, 0), (0, 0));
        assert_eq!(waiting.position(), None);
        waiting.lockers = (3, 1);
        assert_eq!(waiting.position(), Some((1, 3)));
        assert_eq!(row("odd", (-1, -5), (0, 0)).position(), None);
        assert_eq!(row("odd", (10, 12), (0, 0)).position(), Some((10, 10)));
    }

    #[test]
    fn partitions_are_counted_from_one() {
        let mut progress = row("building index", (0, 0), (0, 0));
        assert_eq!(progress.describe(), "building index");
        progress.partitions = (4, 1);
        assert_eq!(progress.describe(), "building index (partition 2 of 4)");
    }

    #[test]
    fn without_a_terminal_nothing_is_drawn_or_polled() {
        let progress = Progress::new(&Ui::plain(Format::Table));
        assert!(!progress.drawing());
        let bar = progress.start("idx", 42);
        assert!(bar.bar.is_hidden());
        assert!(progress.bars.borrow().is_empty());
    }
}
