//! Rendering of `perfaudit rewrite`, written as each statement is done (see
//! [`super::Statements`]): for people each statement's SQL followed by a
//! table of what each rule did and why, then a line on the whole input; or
//! its element of one JSON document (`{"statements":[...]}`, as
//! docs/json.md describes it).

use comfy_table::{Cell, Color};
use serde::Serialize;

use super::View;
use crate::rewrite::{Rewrite, Rule};
use crate::sql::SqlStatement;
use crate::ui::Ui;

/// One statement's rewrite.
pub struct RewriteView<'a> {
    /// Its number in the input, from 1.
    pub number: usize,
    /// The statement.
    pub statement: &'a SqlStatement,
    /// What the rewriter did to it.
    pub rewrite: &'a Rewrite,
}

impl View for RewriteView<'_> {
    fn json(&self) -> impl Serialize {
        Element {
            line: self.statement.line,
            column: self.statement.column,
            rewrite: self.rewrite,
        }
    }

    fn text(&self, ui: &Ui) -> String {
        let mut table = super::table(ui);
        table.set_header(["rule", "result", "why"]);
        let color = ui.color();
        let result = |text: &str, fg: Color| {
            let cell = Cell::new(text);
            if color { cell.fg(fg) } else { cell }
        };
        for rule in [Rule::OrderBy, Rule::Limit] {
            if let Some(change) = self.rewrite.changes.iter().find(|c| c.rule == rule) {
                table.add_row([
                    Cell::new(rule.name()),
                    result("added", Color::Green),
                    Cell::new(&change.detail),
                ]);
            }
            if let Some(skip) = self.rewrite.skipped.iter().find(|s| s.rule == rule) {
                table.add_row([
                    Cell::new(rule.name()),
                    result("skipped", Color::Yellow),
                    Cell::new(&skip.reason),
                ]);
            }
        }
        format!(
            "-- statement {} (line {}, column {}): {}\n{}\n{table}",
            self.number,
            self.statement.line,
            self.statement.column,
            if self.rewrite.changed() {
                "rewritten"
            } else {
                "unchanged"
            },
            self.rewrite.rewritten
        )
    }
}

/// The line after the statements: how many were rewritten, and whether a
/// database was asked (JSON carries that in each rule's reason).
pub fn footer(statements: usize, rewritten: usize, offline: bool) -> String {
    let mut footer = format!(
        "{statements} {}: {rewritten} rewritten, {} unchanged.",
        crate::text::plural(statements, "statement", "statements"),
        statements - rewritten
    );
    if offline {
        footer.push_str(
            "\nOffline: no database was asked, so ORDER BY was added only where the SQL itself \
             shows the column, and only PostgreSQL's built-in aggregates were recognized; give \
             --database-url or --scratch to check with a server.",
        );
    }
    footer
}

/// One statement in the JSON document: where it starts, then the rewrite.
#[derive(Serialize)]
struct Element<'a> {
    line: usize,
    column: usize,
    #[serde(flatten)]
    rewrite: &'a Rewrite,
}
