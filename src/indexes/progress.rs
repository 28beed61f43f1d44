//! What a build tells of its progress: one task per build, driven by what
//! [`super::watch`] reads from `pg_stat_progress_create_index` (and the
//! session a build waits for, if it waits). How it is shown is the
//! [`Progress`]'s business.

use crate::ui::Progress;

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

/// Shows what the server says of the build by server process `pid`: its
/// progress, and the session it waits for, if it waits.
pub fn show(
    progress: &dyn Progress,
    pid: i32,
    row: Option<&ProgressRow>,
    waiting_for: Option<String>,
) {
    // A phase that counts nothing shows an empty bar, not a full one.
    let (done, total) = row.and_then(ProgressRow::position).unwrap_or((0, 1));
    let phase = row.map_or_else(|| "starting".to_owned(), ProgressRow::describe);
    let message = match waiting_for {
        Some(blocker) => format!("{phase}: waiting for {blocker}"),
        None => phase,
    };
    progress.advance(pid, done, total, Some(&message));
}

/// The bar of the build by one server process: it starts "starting", and
/// disappears when dropped.
pub struct BuildBar<'a> {
    progress: &'a dyn Progress,
    pid: i32,
}

impl<'a> BuildBar<'a> {
    /// Starts the bar of the build of `label` by server process `pid`.
    pub fn start(progress: &'a dyn Progress, label: &str, pid: i32) -> BuildBar<'a> {
        progress.start(pid, label);
        show(progress, pid, None, None);
        BuildBar { progress, pid }
    }
}

impl Drop for BuildBar<'_> {
    fn drop(&mut self) {
        self.progress.finish(self.pid);
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
}
