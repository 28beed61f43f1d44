//! Rendering of `perfaudit rewrite`, written as each statement is done: one
//! JSON document for pipelines (`{"statements":[...]}`, as design.md
//! defines it), or for people each statement's SQL followed by a table of
//! what each rule did and why.

use std::io::{self, Write};

use comfy_table::{Cell, Color};
use serde::Serialize;

use crate::rewrite::{Rewrite, Rule};
use crate::sql::SqlStatement;
use crate::ui::Format;
use crate::ui::Ui;

/// The report of one run, written statement by statement to `out`.
pub struct RewriteReport<W: Write> {
    out: W,
    ui: Ui,
    json: super::JsonStatements,
    statements: usize,
    rewritten: usize,
}

impl<W: Write> RewriteReport<W> {
    /// A report in the UI's format, written to `out`.
    pub fn new(ui: &Ui, out: W) -> Self {
        RewriteReport {
            out,
            ui: ui.clone(),
            json: super::JsonStatements::default(),
            statements: 0,
            rewritten: 0,
        }
    }

    /// Writes one statement's rewrite.
    pub fn statement(&mut self, statement: &SqlStatement, rewrite: &Rewrite) -> io::Result<()> {
        self.statements += 1;
        self.rewritten += usize::from(rewrite.changed());
        match self.ui.format() {
            Format::Json => self.json_element(statement, rewrite),
            Format::Table => self.block(statement, rewrite),
        }
    }

    /// Ends the report (a complete JSON document, whatever was written).
    /// `offline` says whether the rewrites were decided without a database,
    /// which people are told (JSON carries it in each rule's reason).
    pub fn finish(&mut self, offline: bool) -> io::Result<()> {
        match self.ui.format() {
            Format::Json => self.json.close(&mut self.out)?,
            Format::Table if self.statements == 0 => {}
            Format::Table => {
                writeln!(
                    self.out,
                    "{} {}: {} rewritten, {} unchanged.",
                    self.statements,
                    crate::text::plural(self.statements, "statement", "statements"),
                    self.rewritten,
                    self.statements - self.rewritten
                )?;
                if offline {
                    writeln!(
                        self.out,
                        "Offline: no database was asked, so ORDER BY was added only where the \
                         SQL itself shows the column, and only PostgreSQL's built-in aggregates \
                         were recognized; give --database-url or --scratch to check with a server."
                    )?;
                }
            }
        }
        self.out.flush()
    }

    fn json_element(&mut self, statement: &SqlStatement, rewrite: &Rewrite) -> io::Result<()> {
        let element = Element {
            line: statement.line,
            column: statement.column,
            rewrite,
        };
        self.json.push(&mut self.out, &element)
    }

    fn block(&mut self, statement: &SqlStatement, rewrite: &Rewrite) -> io::Result<()> {
        if self.statements > 1 {
            writeln!(self.out)?;
        }
        writeln!(
            self.out,
            "-- statement {} (line {}, column {}): {}",
            self.statements,
            statement.line,
            statement.column,
            if rewrite.changed() {
                "rewritten"
            } else {
                "unchanged"
            }
        )?;
        writeln!(self.out, "{}", rewrite.rewritten)?;
        let mut table = super::table(&self.ui);
        table.set_header(["rule", "result", "why"]);
        let color = self.ui.color();
        let result = |text: &str, fg: Color| {
            let cell = Cell::new(text);
            if color { cell.fg(fg) } else { cell }
        };
        for rule in [Rule::OrderBy, Rule::Limit] {
            if let Some(change) = rewrite.changes.iter().find(|c| c.rule == rule) {
                table.add_row([
                    Cell::new(rule.name()),
                    result("added", Color::Green),
                    Cell::new(&change.detail),
                ]);
            }
            if let Some(skip) = rewrite.skipped.iter().find(|s| s.rule == rule) {
                table.add_row([
                    Cell::new(rule.name()),
                    result("skipped", Color::Yellow),
                    Cell::new(&skip.reason),
                ]);
            }
        }
        writeln!(self.out, "{table}")
    }
}

/// One statement in the JSON document: where it starts, then the rewrite.
#[derive(Serialize)]
struct Element<'a> {
    line: usize,
    column: usize,
    #[serde(flatten)]
    rewrite: &'a Rewrite,
}
