//! Rendering: tables for people, JSON for pipelines. Rendering never
//! computes; it only formats what the analysis produced.

pub mod explain;
pub mod indexes;

use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ui::Ui;

/// A table in perfaudit's house style, coloured only when the UI allows.
pub fn table(ui: &Ui) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if ui.color() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table
}

/// Writes `text` and a newline to stdout. A closed pipe (`| head`) ends the
/// output quietly instead of failing.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::input(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::input(format!("cannot encode the JSON output: {e}")))?;
    print(&text)
}
