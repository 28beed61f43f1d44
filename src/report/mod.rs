//! Rendering: tables for people, JSON for pipelines. Rendering never
//! computes; it only formats what the analysis produced.

pub mod advise;
pub mod explain;
pub mod indexes;
pub mod rewrite;

use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::severity::Severity;
use crate::ui::Ui;

/// The width of a findings table when the terminal's is unknown (a pipe, a
/// CI log): its sentences wrap instead of running hundreds of columns wide.
const FINDINGS_WIDTH: u16 = 120;

/// The narrowest terminal width tables are fitted to: a pseudo-terminal
/// that reports fewer columns (often 0, under `script` or `docker -t`)
/// reports nothing usable, and fitting to it would squeeze every column to
/// one character.
const MIN_TERMINAL_WIDTH: u16 = 40;

/// A table in perfaudit's house style: fitted to the terminal's width when
/// stdout is a terminal that reports a usable one, coloured only when the
/// UI allows (colour and width are decided apart: `NO_COLOR` on a terminal
/// still fits the table).
pub fn table(ui: &Ui) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let terminal_width = table.width().filter(|&w| w >= MIN_TERMINAL_WIDTH);
    // comfy-table would otherwise tie styling and width to its own tty check.
    table.force_no_tty();
    if ui.color() {
        table.enforce_styling();
    }
    if let Some(width) = terminal_width {
        table.set_width(width);
    }
    table
}

/// A size in bytes for people, e.g. `768.00 KiB` (a negative or unknown
/// size, which the catalog never reports for a real relation, reads as 0).
pub fn bytes(size: i64) -> String {
    indicatif::HumanBytes(size.max(0) as u64).to_string()
}

/// `one` or `many`, as `count` asks: "1 index", "2 indexes".
pub fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// A table for findings: house style, its sentences wrapped at the
/// terminal's width, or at a readable width off a terminal.
pub fn findings_table(ui: &Ui) -> Table {
    let mut table = table(ui);
    if table.width().is_none() {
        table.set_width(FINDINGS_WIDTH);
    }
    table
}

/// A finding's severity, in its colour when the UI allows colour.
pub fn severity_cell(severity: Severity) -> Cell {
    Cell::new(severity).fg(match severity {
        Severity::Critical => Color::Red,
        Severity::Warning => Color::Yellow,
        Severity::Info => Color::Blue,
    })
}

/// Writes `text` and a newline to stdout; see [`output_error`] for a write
/// that fails.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(output_error)
}

/// A write to stdout that failed. A closed pipe (`| head`) is
/// [`Error::OutputClosed`], which ends the run quietly with exit code 0, as
/// ripgrep does; anything else (a full disk) is an internal error: neither
/// the input nor the database is at fault.
pub fn output_error(error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::OutputClosed;
    }
    Error::internal(format!("cannot write the output: {error}"))
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("cannot encode the JSON output: {e}")))?;
    print(&text)
}
