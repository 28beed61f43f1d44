//! Rendering the report of `perfaudit indexes`: a table of the wanted
//! indexes, a table of findings, the DDL of a dry run and a summary line;
//! or the report as one JSON document.

use comfy_table::Cell;

use crate::error::Result;
use crate::indexes::Report;
use crate::ui::Format;
use crate::ui::Ui;

/// Prints `report` in the format the UI asks for.
pub fn print(ui: &Ui, report: &Report) -> Result<()> {
    match ui.format() {
        Format::Json => super::print_json(report),
        Format::Table => super::print(&render(ui, report)),
    }
}

/// The report as text for people.
pub fn render(ui: &Ui, report: &Report) -> String {
    let mut indexes = super::table(ui);
    indexes.set_header([
        "index", "table", "columns", "action", "valid", "size", "duration",
    ]);
    for index in &report.indexes {
        let action = match &index.equivalent {
            Some(equivalent) => format!("{} ({equivalent})", index.action.name()),
            None => index.action.name().to_owned(),
        };
        indexes.add_row([
            Cell::new(&index.name),
            Cell::new(&index.table),
            Cell::new(index.columns.join(", ")),
            Cell::new(action),
            Cell::new(match index.valid {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }),
            Cell::new(size(index.size_bytes)),
            Cell::new(index.duration_ms.map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.2}s", ms as f64 / 1000.0),
            )),
        ]);
    }
    let mut text = indexes.to_string();
    if !report.findings.is_empty() {
        let mut findings = super::findings_table(ui);
        findings.set_header(["severity", "finding", "index", "size", "what", "what to do"]);
        for finding in &report.findings {
            findings.add_row([
                super::severity_cell(finding.severity),
                Cell::new(finding.code),
                Cell::new(&finding.index),
                Cell::new(size(finding.size_bytes)),
                Cell::new(&finding.message),
                Cell::new(&finding.suggestion),
            ]);
        }
        text.push_str(&format!("\n\nFindings:\n{findings}"));
    }
    if report.dry_run {
        let ddl: Vec<String> = report
            .indexes
            .iter()
            .filter_map(|index| {
                let ddl = index.ddl.as_ref()?;
                Some(format!(
                    "-- {} ({})\n{ddl}",
                    index.name,
                    index.action.name()
                ))
            })
            .collect();
        if !ddl.is_empty() {
            text.push_str(&format!("\n\nDDL that would run:\n{}", ddl.join("\n")));
        }
    }
    text.push_str(&format!("\n\n{}", report.summary()));
    text
}

fn size(bytes: Option<i64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), crate::text::bytes)
}
