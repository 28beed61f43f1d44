//! The advice as tables for people: per statement the costs and the index
//! or the reason, then the recommended set with its DDL, then the workload
//! in one line.

use std::fmt::Write as _;

use comfy_table::{ColumnConstraint, Width};
use serde::Serialize;

use super::View;
use crate::advise::{Advice, Reason, Recommendation, StatementAdvice, Summary};
use crate::ui::Ui;

impl View for Advice {
    fn json(&self) -> impl Serialize {
        AdviceJson {
            statements: self.statements.iter().map(StatementJson::new).collect(),
            indexes: &self.indexes,
            summary: &self.summary,
        }
    }

    fn text(&self, ui: &Ui) -> String {
        render(self, ui)
    }
}

/// The JSON document.
#[derive(Serialize)]
struct AdviceJson<'a> {
    statements: Vec<StatementJson<'a>>,
    indexes: &'a [Recommendation],
    summary: &'a Summary,
}

/// One statement's advice in the JSON document; the reason as text.
#[derive(Serialize)]
struct StatementJson<'a> {
    original: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    cost_before: Option<f64>,
    cost_after: Option<f64>,
    indexes: &'a [Recommendation],
    reason: Option<String>,
}

impl<'a> StatementJson<'a> {
    fn new(statement: &'a StatementAdvice) -> StatementJson<'a> {
        StatementJson {
            original: &statement.original,
            line: statement.line,
            column: statement.column,
            cost_before: statement.cost_before,
            cost_after: statement.cost_after,
            indexes: &statement.indexes,
            reason: statement.reason.as_ref().map(Reason::to_string),
        }
    }
}

/// How much of a statement the table shows; the JSON has all of it.
const STATEMENT_WIDTH: usize = 60;
/// Where the advice column wraps, so a long reason stays readable.
const ADVICE_WIDTH: u16 = 60;

/// The whole report.
fn render(advice: &Advice, ui: &Ui) -> String {
    let mut out = String::new();
    let mut statements = super::table(ui);
    statements.set_header(["#", "statement", "cost before", "cost after", "advice"]);
    for (number, statement) in advice.statements.iter().enumerate() {
        statements.add_row([
            format!("{}", number + 1),
            match statement.line {
                Some(line) => format!("{}\n(line {line})", one_line(&statement.original)),
                None => one_line(&statement.original),
            },
            cost(statement.cost_before),
            cost_after(statement),
            match &statement.reason {
                Some(reason) => reason.to_string(),
                None => statement
                    .indexes
                    .iter()
                    .map(|i| format!("{} {}", i.name, i.describe()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        ]);
    }
    if let Some(column) = statements.column_mut(4) {
        column.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(ADVICE_WIDTH)));
    }
    let _ = writeln!(out, "{statements}");

    if advice.indexes.is_empty() {
        let _ = writeln!(out, "\nNo index to recommend.");
    } else {
        let mut indexes = super::table(ui);
        indexes.set_header(["index", "table", "key", "size", "serves"]);
        for index in &advice.indexes {
            let serves: Vec<String> = advice
                .statements
                .iter()
                .enumerate()
                .filter(|(_, s)| s.indexes.iter().any(|i| i.name == index.name))
                .map(|(n, _)| format!("#{}", n + 1))
                .collect();
            // A partial index beside the full one it beats.
            let key = match &index.full_index {
                Some(full) => format!(
                    "{}\nthe full index: {}, cost {:.0} against {:.0}",
                    index.describe(),
                    crate::text::bytes(full.size_bytes),
                    full.cost,
                    full.partial_cost
                ),
                None => index.describe(),
            };
            indexes.add_row([
                index.name.clone(),
                index.table.clone(),
                key,
                crate::text::bytes(index.size_bytes),
                serves.join(", "),
            ]);
        }
        let _ = writeln!(out, "\nRecommended indexes:\n{indexes}");
        let _ = writeln!(
            out,
            "\nBuild them (or: --write-spec FILE, then perfaudit indexes --spec FILE):"
        );
        for index in &advice.indexes {
            let _ = writeln!(out, "{}", index.ddl);
        }
    }

    let summary = &advice.summary;
    let _ = write!(
        out,
        "\nWorkload: {} {}, {} planned, {} improved; {} {} recommended ({} estimated); total \
         cost {:.1} -> {:.1}{}",
        summary.statements,
        crate::text::plural(summary.statements, "statement", "statements"),
        summary.planned,
        summary.improved,
        summary.indexes,
        crate::text::plural(summary.indexes, "index", "indexes"),
        crate::text::bytes(summary.size_bytes),
        summary.cost_before,
        summary.cost_after,
        change(summary.cost_before, summary.cost_after),
    );
    out
}

/// A statement on one line, shortened.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= STATEMENT_WIDTH {
        return line;
    }
    let cut: String = line.chars().take(STATEMENT_WIDTH - 1).collect();
    format!("{cut}…")
}

fn cost(cost: Option<f64>) -> String {
    cost.map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"))
}

fn cost_after(statement: &StatementAdvice) -> String {
    match (statement.cost_before, statement.cost_after) {
        (Some(before), Some(after)) => format!("{after:.1}{}", change(before, after)),
        (_, after) => cost(after),
    }
}

/// ` (-97%)`, or nothing when the cost did not change.
fn change(before: f64, after: f64) -> String {
    if before <= 0.0 || (before - after).abs() < f64::EPSILON {
        return String::new();
    }
    format!(" ({:+.1}%)", (after - before) / before * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::Format;

    fn recommendation() -> Recommendation {
        Recommendation {
            table: "public.payments".into(),
            columns: vec!["user_id".into(), "status".into()],
            predicate: None,
            keys: Vec::new(),
            full_index: None,
            ddl: "CREATE INDEX CONCURRENTLY \"idx_payments_user_id_status\" ON \"public\".\"payments\" (\"user_id\", \"status\");".into(),
            size_bytes: 3_137_536,
            name: "idx_payments_user_id_status".into(),
        }
    }

    fn statement(original: &str, before: Option<f64>, after: Option<f64>) -> StatementAdvice {
        StatementAdvice {
            original: original.into(),
            line: Some(1),
            column: Some(1),
            cost_before: before,
            cost_after: after,
            indexes: Vec::new(),
            reason: None,
        }
    }

    #[test]
    fn a_workload_report() {
        let mut first = statement(
            "SELECT * FROM payments\n WHERE user_id = $1 AND status = $2",
            Some(2876.0),
            Some(12.31),
        );
        first.indexes.push(recommendation());
        let mut second = statement(
            "SELECT id, amount, currency, created_at FROM payments WHERE status = 'completed'",
            Some(2751.0),
            Some(2751.0),
        );
        second.line = Some(3);
        second.reason = Some(Reason::BelowThreshold {
            best: None,
            tried: vec!["(status)".into()],
            min_improvement: 50.0,
        });
        let mut third = statement("SELECT 1", None, None);
        third.line = None;
        third.reason = Some(Reason::NoTables);
        let advice = Advice {
            statements: vec![first, second, third],
            indexes: vec![recommendation()],
            summary: Summary {
                statements: 3,
                planned: 2,
                improved: 1,
                indexes: 1,
                size_bytes: 3_137_536,
                cost_before: 5627.0,
                cost_after: 2763.31,
            },
        };
        insta::assert_snapshot!(render(&advice, &Ui::plain(Format::Table)));
    }
}
