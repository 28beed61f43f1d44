//! Rendering the report of `perfaudit indexes`: a table of the wanted
//! indexes, a table of findings, the DDL of a dry run and a summary line;
//! or the report as one JSON document. With `--audit`: what was audited,
//! the findings, the statements they suggest, and a count.

use comfy_table::Cell;
use serde::Serialize;

use super::{FindingJson, View};
use crate::finding::{Finding, Severity, Subject};
use crate::indexes::audit::Audit;
use crate::indexes::{IndexReport, Outcome, PartitionsReport, Report};
use crate::text::plural;
use crate::ui::Ui;

impl View for Report {
    fn json(&self) -> impl Serialize {
        ReportJson {
            indexes: self.indexes.iter().map(IndexJson::new).collect(),
            findings: self.findings.iter().map(FindingJson::new).collect(),
        }
    }

    fn text(&self, ui: &Ui) -> String {
        render(ui, self)
    }
}

/// The JSON document.
#[derive(Serialize)]
struct ReportJson<'a> {
    indexes: Vec<IndexJson<'a>>,
    findings: Vec<FindingJson<'a>>,
}

/// One wanted index in the JSON document.
#[derive(Serialize)]
struct IndexJson<'a> {
    name: &'a str,
    table: &'a str,
    columns: &'a [String],
    action: &'static str,
    valid: Option<bool>,
    size_bytes: Option<i64>,
    estimated_size_bytes: Option<i64>,
    duration_ms: Option<u64>,
    ddl: Option<&'a str>,
    equivalent: Option<&'a str>,
    partitions: Option<PartitionsJson<'a>>,
}

/// What an index does on its table's partitions, in the JSON document.
#[derive(Serialize)]
struct PartitionsJson<'a> {
    count: usize,
    built: usize,
    reused: &'a [String],
    kept: usize,
}

impl<'a> PartitionsJson<'a> {
    fn new(partitions: &'a PartitionsReport) -> PartitionsJson<'a> {
        PartitionsJson {
            count: partitions.count,
            built: partitions.built,
            reused: &partitions.reused,
            kept: partitions.kept,
        }
    }
}

impl<'a> IndexJson<'a> {
    fn new(index: &'a IndexReport) -> IndexJson<'a> {
        IndexJson {
            name: &index.name,
            table: &index.table,
            columns: &index.columns,
            action: index.action.name(),
            valid: index.valid,
            size_bytes: index.size_bytes,
            estimated_size_bytes: index.estimated_size_bytes,
            duration_ms: index.duration_ms,
            ddl: index.ddl.as_deref(),
            equivalent: index.equivalent.as_deref(),
            partitions: index.partitions.as_ref().map(PartitionsJson::new),
        }
    }
}

/// The report as text for people.
fn render(ui: &Ui, report: &Report) -> String {
    let mut indexes = super::table(ui);
    indexes.set_header([
        "index", "table", "columns", "action", "valid", "size", "duration",
    ]);
    for index in &report.indexes {
        // A long list of partitions' statements is summed up here; the
        // DDL (--dry-run, JSON) keeps every one.
        let action = match (&index.equivalent, &index.partitions) {
            (Some(equivalent), _) => format!("{} ({equivalent})", index.action.name()),
            (None, Some(partitions)) => {
                format!("{} ({})", index.action.name(), partitions.summary())
            }
            (None, None) => index.action.name().to_owned(),
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
            Cell::new(match (index.size_bytes, index.estimated_size_bytes) {
                (None, Some(estimate)) => format!("~{}", crate::text::bytes(estimate)),
                (size_bytes, _) => size(size_bytes),
            }),
            Cell::new(index.duration_ms.map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.2}s", ms as f64 / 1000.0),
            )),
        ]);
    }
    let mut text = indexes.to_string();
    let reused: Vec<String> = report
        .indexes
        .iter()
        .filter_map(|index| {
            let partitions = index.partitions.as_ref()?;
            (!partitions.reused.is_empty())
                .then(|| format!("{}: {}", index.name, partitions.reused.join(", ")))
        })
        .collect();
    if !reused.is_empty() {
        text.push_str(&format!(
            "\n\nPartitions' indexes attached rather than built again:\n{}",
            reused.join("\n")
        ));
    }
    if !report.findings.is_empty() {
        text.push_str(&format!(
            "\n\nFindings:\n{}",
            findings_table(ui, &report.findings, false)
        ));
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
    text.push_str(&format!("\n\n{}", summary(report)));
    text
}

/// A table of `findings`; with `tables`, a column for each index's table
/// (an audit's span the database).
fn findings_table(ui: &Ui, findings: &[Finding], tables: bool) -> comfy_table::Table {
    let mut table = super::findings_table(ui);
    let mut header = vec!["severity", "finding", "index"];
    if tables {
        header.push("table");
    }
    header.extend(["size", "what", "what to do"]);
    table.set_header(header);
    for finding in findings {
        let (index, on, size_bytes) = match &finding.subject {
            Subject::Index {
                index,
                table,
                size_bytes,
            } => (index.as_str(), table.as_str(), *size_bytes),
            _ => ("-", "-", None),
        };
        let mut row = vec![
            super::severity_cell(finding.severity),
            Cell::new(finding.code),
            Cell::new(index),
        ];
        if tables {
            row.push(Cell::new(on));
        }
        row.extend([
            Cell::new(size(size_bytes)),
            Cell::new(&finding.message),
            Cell::new(&finding.suggestion),
        ]);
        table.add_row(row);
    }
    table
}

/// One sentence on what the run did.
fn summary(report: &Report) -> String {
    let count = |outcome: Outcome| {
        report
            .indexes
            .iter()
            .filter(|i| i.action == outcome)
            .count()
    };
    let there = count(Outcome::Exists) + count(Outcome::EquivalentExists);
    let built: Vec<String> = [
        (Outcome::Created, "created"),
        (Outcome::Rebuilt, "rebuilt"),
        (Outcome::WouldCreate, "would create"),
        (Outcome::WouldRebuild, "would rebuild"),
    ]
    .into_iter()
    .filter(|(outcome, _)| count(*outcome) > 0)
    .map(|(outcome, verb)| format!("{verb} {}", count(outcome)))
    .collect();
    let mut text = if built.is_empty() {
        match report.indexes.len() {
            1 => "Nothing to build: the index is already there".to_owned(),
            n => format!("Nothing to build: all {n} indexes are already there"),
        }
    } else {
        let mut text = built.join(", ");
        text[..1].make_ascii_uppercase();
        if there > 0 {
            text.push_str(&format!("; {there} already there"));
        }
        text
    };
    text.push_str(if report.dry_run {
        " (dry run: nothing was changed)."
    } else {
        "."
    });
    text
}

fn size(bytes: Option<i64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), crate::text::bytes)
}

impl View for Audit {
    fn json(&self) -> impl Serialize {
        AuditReportJson {
            audit: AuditJson {
                tables: self.tables,
                indexes: self.indexes,
                stats_reset: self.stats_reset.as_deref(),
                standby: self.standby,
                notes: &self.notes,
            },
            findings: self.findings.iter().map(FindingJson::new).collect(),
        }
    }

    fn text(&self, ui: &Ui) -> String {
        render_audit(ui, self)
    }
}

/// The JSON document of an audit.
#[derive(Serialize)]
struct AuditReportJson<'a> {
    audit: AuditJson<'a>,
    findings: Vec<FindingJson<'a>>,
}

/// What was audited.
#[derive(Serialize)]
struct AuditJson<'a> {
    tables: usize,
    indexes: usize,
    stats_reset: Option<&'a str>,
    standby: bool,
    notes: &'a [String],
}

/// An audit as text for people.
fn render_audit(ui: &Ui, audit: &Audit) -> String {
    let mut text = format!(
        "Audited {} {} on {} {}; index scans counted since {}.",
        audit.indexes,
        plural(audit.indexes, "index", "indexes"),
        audit.tables,
        plural(audit.tables, "table", "tables"),
        audit
            .stats_reset
            .as_deref()
            .unwrap_or("the statistics began (never reset)")
    );
    for note in &audit.notes {
        text.push_str(&format!("\nNote: {note}."));
    }
    if !audit.findings.is_empty() {
        text.push_str(&format!(
            "\n\nFindings:\n{}",
            findings_table(ui, &audit.findings, true)
        ));
        let ddl: Vec<String> = audit
            .findings
            .iter()
            .filter_map(|finding| {
                let (index, table) = match &finding.subject {
                    Subject::Index { index, table, .. } => (index, table),
                    _ => return None,
                };
                Some(format!(
                    "-- {} {index} on {table}\n{}",
                    finding.code,
                    finding.ddl.as_ref()?
                ))
            })
            .collect();
        if !ddl.is_empty() {
            text.push_str(&format!(
                "\n\nDDL (not run: review it, then run each statement on its own, outside \
                 a transaction):\n{}",
                ddl.join("\n")
            ));
        }
    }
    text.push_str(&format!("\n\n{}", audit_summary(&audit.findings)));
    text
}

/// One sentence counting the findings by severity.
fn audit_summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "No findings.".to_owned();
    }
    let counts: Vec<String> = [Severity::Critical, Severity::Warning, Severity::Info]
        .into_iter()
        .map(|severity| {
            (
                severity,
                findings.iter().filter(|f| f.severity == severity).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(severity, n)| match severity {
            Severity::Warning => format!("{n} {}", plural(n, "warning", "warnings")),
            _ => format!("{n} {severity}"),
        })
        .collect();
    format!(
        "{} {}: {}.",
        findings.len(),
        plural(findings.len(), "finding", "findings"),
        counts.join(", ")
    )
}
