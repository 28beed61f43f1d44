//! Rendering: tables for people, JSON for pipelines. Rendering never
//! computes; it only formats what the engines produced.
//!
//! Each command's result is a [`View`] (in the command's file here): its
//! text for people and its JSON document, whose shape the view owns.
//! [`emit`] prints a whole document; [`Statements`] writes one a statement
//! at a time, for commands that report each statement as it is done.

pub mod advise;
pub mod explain;
pub mod indexes;
pub mod rewrite;
pub mod wrap;

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, Width};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::error::{Error, Result};
use crate::finding::{Finding, Severity, Subject};
use crate::ui::{Format, Ui};

/// The width of a findings table when the terminal's is unknown (a pipe, a
/// CI log): its sentences wrap instead of running hundreds of columns wide.
const FINDINGS_WIDTH: u16 = 120;

/// A table in perfaudit's house style: fitted to the UI's width (the
/// terminal's, or `COLUMNS`), coloured only when the UI allows (colour and
/// width are decided apart: `NO_COLOR` on a terminal still fits the table).
pub fn table(ui: &Ui) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    // comfy-table would otherwise tie styling and width to its own tty check.
    table.force_no_tty();
    if ui.color() {
        table.enforce_styling();
    }
    if let Some(width) = ui.width() {
        table.set_width(width);
    }
    table
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

/// Keeps every word of `table` whole: each column is at least as wide as
/// its longest word, so that cells wrap at spaces only, never inside a
/// number or a name; a table whose words cannot all fit grows wider than
/// the terminal instead.
pub fn keep_words_whole(table: &mut Table) {
    let longest: Vec<u16> = (0..table.column_count())
        .map(|index| {
            table
                .column_cells_with_header_iter(index)
                .flatten()
                .filter_map(|cell| cell.content().split_whitespace().map(wrap::width).max())
                .max()
                .map_or(0, |width| u16::try_from(width).unwrap_or(u16::MAX))
        })
        .collect();
    for (column, width) in table.column_iter_mut().zip(longest) {
        column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(width)));
    }
}

/// A finding's severity, in its colour when the UI allows colour.
pub fn severity_cell(severity: Severity) -> Cell {
    Cell::new(severity).fg(match severity {
        Severity::Critical => Color::Red,
        Severity::Warning => Color::Yellow,
        Severity::Info => Color::Blue,
    })
}

/// A finding in JSON: its code and severity, what it is about (a plan's
/// `node`, `null` for the statement as a whole; or an `index` with its
/// `table` and `size_bytes`), what is wrong and what to do.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    code: &'a str,
    severity: Severity,
    #[serde(flatten)]
    subject: SubjectJson<'a>,
    message: &'a str,
    suggestion: &'a str,
    ddl: Option<&'a str>,
    saving: Option<SavingJson>,
}

/// A finding's estimated saving.
#[derive(Debug, Serialize)]
struct SavingJson {
    ms: f64,
    share: f64,
    basis: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SubjectJson<'a> {
    Node {
        node: Option<usize>,
    },
    Index {
        index: &'a str,
        table: &'a str,
        size_bytes: Option<i64>,
    },
}

impl<'a> FindingJson<'a> {
    /// The JSON of `finding`.
    pub fn new(finding: &'a Finding) -> FindingJson<'a> {
        FindingJson {
            code: finding.code,
            severity: finding.severity,
            subject: match &finding.subject {
                Subject::Statement => SubjectJson::Node { node: None },
                Subject::Node(id) => SubjectJson::Node { node: Some(*id) },
                Subject::Index {
                    index,
                    table,
                    size_bytes,
                } => SubjectJson::Index {
                    index,
                    table,
                    size_bytes: *size_bytes,
                },
            },
            message: &finding.message,
            suggestion: &finding.suggestion,
            ddl: finding.ddl.as_deref(),
            // As measured, as the nodes' times are.
            saving: finding.saving.as_ref().map(|saving| SavingJson {
                ms: saving.ms,
                share: saving.share,
                basis: saving.basis,
            }),
        }
    }
}

/// A command's result as people and pipelines see it.
pub trait View {
    /// Its JSON (a whole document, or one statement's element of one).
    fn json(&self) -> impl Serialize;
    /// Its text for people.
    fn text(&self, ui: &Ui) -> String;
}

/// Prints `view` on stdout in the format the UI asks for.
pub fn emit(ui: &Ui, view: &impl View) -> Result<()> {
    match ui.format() {
        Format::Json => print_json(&view.json()),
        Format::Table => print(&view.text(ui)),
    }
}

/// A report written to `out` a statement at a time, as each is done: a
/// person sees each statement when it is done, and a long input's results
/// are never held. Texts are separated by a blank line; the JSON document
/// is `{"statements": [...]}`, byte for byte the one pretty-printing all
/// of them at once would give.
pub struct Statements<W: Write> {
    out: W,
    ui: Ui,
    json: JsonStatements,
    written: usize,
}

impl<W: Write> Statements<W> {
    /// A report in the UI's format, written to `out`.
    pub fn new(ui: &Ui, out: W) -> Self {
        Statements {
            out,
            ui: ui.clone(),
            json: JsonStatements::default(),
            written: 0,
        }
    }

    /// Writes one statement's view.
    pub fn push(&mut self, view: &impl View) -> io::Result<()> {
        match self.ui.format() {
            Format::Json => self.json.push(&mut self.out, &view.json())?,
            Format::Table => {
                if self.written > 0 {
                    writeln!(self.out)?;
                }
                writeln!(self.out, "{}", view.text(&self.ui))?;
            }
        }
        self.written += 1;
        self.out.flush()
    }

    /// Ends the report. The JSON document is closed when a statement was
    /// written, as an empty one when `empty_document` asks for one, and
    /// always when the run failed with `error`, which it then holds (so that
    /// a pipeline reads why in the one document it gets); people get
    /// `footer` after the statements, when there were any.
    pub fn finish(
        &mut self,
        empty_document: bool,
        footer: Option<&str>,
        error: Option<&Error>,
    ) -> io::Result<()> {
        let error = error.filter(|e| !matches!(e, Error::OutputClosed));
        match self.ui.format() {
            Format::Json if self.written > 0 || empty_document || error.is_some() => {
                let error = error.map(|error| ErrorJson {
                    kind: error.kind(),
                    message: error.to_string(),
                    exit_code: error.exit_code(),
                });
                self.json.close(&mut self.out, error.as_ref())?
            }
            Format::Json => {}
            Format::Table => {
                if let Some(footer) = footer.filter(|_| self.written > 0) {
                    writeln!(self.out, "{footer}")?;
                }
            }
        }
        self.out.flush()
    }
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

/// A failed run in JSON: what kind of failure, the message stderr also
/// gets, and the exit code.
#[derive(Debug, Serialize)]
struct ErrorJson {
    kind: &'static str,
    message: String,
    exit_code: i32,
}

/// A `{"statements": [...]}` document written one statement at a time,
/// byte for byte as pretty-printing the whole document at once would
/// write it.
#[derive(Debug, Default)]
struct JsonStatements {
    written: usize,
}

impl JsonStatements {
    /// Writes the next statement (the document's opening before the first).
    fn push(&mut self, out: &mut impl Write, statement: &impl Serialize) -> io::Result<()> {
        let opening = match self.written {
            0 => "{\n  \"statements\": [\n    ",
            _ => ",\n    ",
        };
        out.write_all(opening.as_bytes())?;
        self.written += 1;
        // serde_json's own indentation, two levels in (the document's
        // object, its array). Indenting its output line by line instead
        // would indent inside a plan PostgreSQL sent as lines of text.
        let mut formatter = PrettyFormatter::new();
        formatter.begin_object(&mut io::sink())?;
        formatter.begin_array(&mut io::sink())?;
        // An I/O error comes back as itself: a closed pipe stays one.
        statement
            .serialize(&mut serde_json::Serializer::with_formatter(out, formatter))
            .map_err(io::Error::from)
    }

    /// Ends the document, with its newline: `{"statements": []}` when no
    /// statement was written; `error`, when given, follows the statements.
    fn close(&self, out: &mut impl Write, error: Option<&impl Serialize>) -> io::Result<()> {
        match self.written {
            0 => write!(out, "{{\n  \"statements\": []")?,
            _ => write!(out, "\n  ]")?,
        }
        if let Some(error) = error {
            out.write_all(b",\n  \"error\": ")?;
            // serde_json's own indentation, one level in (the document).
            let mut formatter = PrettyFormatter::new();
            formatter.begin_object(&mut io::sink())?;
            error
                .serialize(&mut serde_json::Serializer::with_formatter(
                    &mut *out, formatter,
                ))
                .map_err(io::Error::from)?;
        }
        writeln!(out, "\n}}")
    }
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("cannot encode the JSON output: {e}")))?;
    print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    #[test]
    fn json_statements_are_the_bytes_of_the_whole_document() {
        #[derive(Serialize)]
        struct Statement {
            text: &'static str,
            empty: Vec<u8>,
            plan: Box<RawValue>,
        }
        #[derive(Serialize)]
        struct Document {
            statements: Vec<Statement>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<ErrorJson>,
        }
        let statement = || Statement {
            text: "SELECT\n 1",
            empty: Vec::new(),
            // As PostgreSQL sends a plan: lines of its own indentation.
            plan: RawValue::from_string("[\n  {\n    \"Plan\": {}\n  }\n]".to_owned()).unwrap(),
        };
        let error = || ErrorJson {
            kind: "database",
            message: "the server went away".to_owned(),
            exit_code: 3,
        };
        for (count, failed) in [(0, false), (1, false), (3, false), (0, true), (2, true)] {
            let whole = Document {
                statements: (0..count).map(|_| statement()).collect(),
                error: failed.then(error),
            };
            let mut streamed = Vec::new();
            let mut json = JsonStatements::default();
            for statement in &whole.statements {
                json.push(&mut streamed, statement).unwrap();
            }
            json.close(&mut streamed, whole.error.as_ref()).unwrap();
            let streamed = String::from_utf8(streamed).unwrap();
            assert_eq!(
                streamed,
                serde_json::to_string_pretty(&whole).unwrap() + "\n"
            );
            let value: Value = serde_json::from_str(&streamed).unwrap();
            assert_eq!(value["statements"].as_array().unwrap().len(), count);
        }
    }
}
