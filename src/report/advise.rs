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
    usage: Option<UsageJson>,
}

/// What `pg_stat_statements` counted of a statement.
#[derive(Serialize)]
struct UsageJson {
    calls: f64,
    total_ms: f64,
    mean_ms: f64,
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
            usage: statement.usage.map(|usage| UsageJson {
                calls: usage.calls,
                total_ms: usage.total_ms,
                mean_ms: usage.mean_ms(),
            }),
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
            statement_cell(statement),
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
            indexes.add_row([
                index.name.clone(),
                index.table.clone(),
                key_cell(index),
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
    for table in &summary.tables {
        let _ = write!(
            out,
            "\n{}: {} {} now, {} with these: each insert, and each update that is not HOT, \
             writes {} index entries instead of {}",
            table.table,
            table.indexes,
            crate::text::plural(table.indexes, "index", "indexes"),
            table.with_recommended,
            table.with_recommended,
            table.indexes
        );
    }
    out
}

/// A statement on one line, shortened, where it starts in the input, and
/// what `pg_stat_statements` counted of it.
fn statement_cell(statement: &StatementAdvice) -> String {
    let mut cell = one_line(&statement.original);
    if let Some(line) = statement.line {
        cell.push_str(&format!("\n(line {line})"));
    }
    if let Some(usage) = statement.usage {
        cell.push_str(&format!(
            "\n{} calls, {} ms mean, {} in all",
            crate::explain::findings::count(usage.calls),
            round(usage.mean_ms()),
            crate::text::duration_ms(usage.total_ms)
        ));
    }
    cell
}

/// An index's key, and what weighs for and against it: the full index a
/// partial one beats, the time it saves, what it costs the writes.
fn key_cell(index: &Recommendation) -> String {
    let mut cell = index.describe();
    if let Some(full) = &index.full_index {
        cell.push_str(&format!(
            "\nthe full index: {}, cost {:.0} against {:.0}",
            crate::text::bytes(full.size_bytes),
            full.cost,
            full.partial_cost
        ));
    }
    if let Some(saved) = &index.time_saved {
        let saved = match saved.ms_per_day {
            Some(per_day) => format!("{} a day", crate::text::duration_ms(per_day)),
            None => format!(
                "{} since the statistics' reset",
                crate::text::duration_ms(saved.ms)
            ),
        };
        cell.push_str(&format!("\nsaves {saved}"));
    }
    if let Some(writes) = &index.write_cost {
        cell.push_str(&format!(
            "\nwrites pay {:.0} for it, reads save {:.0}",
            writes.cost, writes.read_saving
        ));
        if !writes.hot_lost.is_empty() {
            let updates: Vec<String> = writes.hot_lost.iter().map(|s| format!("#{s}")).collect();
            cell.push_str(&format!("; ends the HOT updates of {}", updates.join(", ")));
        }
    }
    cell
}

/// `0.042`, `12.3`, `1234`: enough digits to read.
fn round(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
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
            opclasses: Vec::new(),
            descending: Vec::new(),
            full_index: None,
            write_cost: None,
            time_saved: None,
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
            usage: None,
        }
    }

    #[test]
    fn a_workload_report() {
        let mut first = statement(
            "SELECT * FROM payments\n WHERE user_id = $1 AND status = $2",
            Some(2876.0),
            Some(12.31),
        );
        let mut measured = recommendation();
        measured.time_saved = Some(crate::advise::TimeSaved {
            ms: 3_600_000.0,
            ms_per_day: Some(120_000.0),
        });
        measured.write_cost = Some(crate::advise::writes::WriteCost {
            hot_lost: vec![3],
            cost: 400.0,
            read_saving: 28_637.0,
        });
        first.usage = Some(crate::advise::Usage {
            calls: 12_000.0,
            total_ms: 3_700_000.0,
        });
        first.indexes.push(measured.clone());
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
            indexes: vec![measured],
            summary: Summary {
                statements: 3,
                planned: 2,
                improved: 1,
                indexes: 1,
                size_bytes: 3_137_536,
                cost_before: 5627.0,
                cost_after: 2763.31,
                tables: vec![crate::advise::TableIndexes {
                    table: "public.payments".into(),
                    indexes: 2,
                    with_recommended: 3,
                }],
            },
        };
        insta::assert_snapshot!(render(&advice, &Ui::plain(Format::Table)));
    }
}
