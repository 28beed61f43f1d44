//! The `explain` report, written as each statement is explained (see
//! [`super::Statements`]): per statement, a header, the plan as an indented
//! tree table, the timing and cache tables and the findings; or its element
//! of one JSON document. Only formatting: every number was computed by
//! `explain`.

use comfy_table::{Cell, CellAlignment, Table};
use serde::Serialize;
use serde_json::value::RawValue;

use super::wrap::wrap;
use super::{FindingJson, View};
use crate::explain::findings::{Finding, count};
use crate::explain::timing::{Spread, Timing};
use crate::explain::{Explained, RewriteSummary};
use crate::guard::{Guard, Reached, Resolution, Volatility};
use crate::pg::plan::{Node, Plan};
use crate::sql::Class;
use crate::ui::Ui;

mod details;
mod plan;

/// The marker of the costliest node.
const COSTLIEST: &str = "◀";

/// Below this width the findings table has three columns, not five: the
/// node goes under the finding's code and what to do under what is wrong,
/// so that the prose keeps a readable width.
const WIDE_FINDINGS: u16 = 120;

/// One statement's result as the report shows it: its text (a header, the
/// plan as an indented tree table, the timing and cache tables and the
/// findings) and its element of the `{"statements": [...]}` document.
pub struct StatementView<'a> {
    /// The statement's result.
    pub result: &'a Explained,
    /// `--details`: each plan node's details (conditions, sort, workers,
    /// buffers, I/O timing) under its row.
    pub details: bool,
}

impl View for StatementView<'_> {
    fn json(&self) -> impl Serialize {
        StatementJson::new(self.result)
    }

    fn text(&self, ui: &Ui) -> String {
        statement(self.result, ui, self.details)
    }
}

fn statement(result: &Explained, ui: &Ui, details: bool) -> String {
    let job = &result.job;
    // Prose is fitted to the width; the SQL and the DDL never are, so that
    // they can be pasted as they are.
    let prose = |text: String| paragraph(&text, ui);
    let mut out = vec![prose(format!(
        "{}: {}",
        capitalized(&job.label()),
        how_it_ran(result)
    ))];
    out.push(indented(job.statement.text()));
    if job.executed != job.statement.text() {
        out.push("executed:".to_owned());
        out.push(indented(&job.executed));
    }
    out.push(prose(rewrite_line(&job.rewrite)));
    out.extend(
        job.mode
            .notes
            .iter()
            .map(|note| prose(format!("note: {note}"))),
    );
    if let Some(change) = &result.plan_change {
        out.push(prose(format!("note: {change}")));
    }
    if let Some(guard) = &job.guard {
        out.push(prose(guard_line(guard)));
    }
    out.push(String::new());
    let plan = plan::plan_table(&result.plan, ui, details);
    out.push(plan.table.to_string());
    if !plan.left_out.is_empty() {
        out.push(prose(format!(
            "not shown at this width: {} (a wider terminal or --format json shows them)",
            plan.left_out.join(", ")
        )));
    }
    if let Some(legend) = costliest_legend(&result.plan) {
        out.push(prose(legend));
    }
    for trigger in &result.plan.triggers {
        out.push(prose(format!(
            "trigger {}{}: {} calls, {} ms",
            trigger.name,
            trigger
                .relation
                .as_ref()
                .map(|r| format!(" on {r}"))
                .unwrap_or_default(),
            count(trigger.calls),
            ms(trigger.time_ms)
        )));
    }
    out.push(String::new());
    out.push(timing_table(result, ui).to_string());
    if let Some(cache) = cache_table(result, ui) {
        out.push(cache.to_string());
    }
    out.push(String::new());
    out.push(findings_table(&result.findings, &result.plan, ui));
    if let Some(ddl) = ddl_block(&result.findings) {
        out.push(ddl);
    }
    out.join("\n")
}

/// `text` as a paragraph fitted to the UI's width, broken at spaces only.
fn paragraph(text: &str, ui: &Ui) -> String {
    wrap(text, ui.width().map(usize::from), "", "").join("\n")
}

fn how_it_ran(result: &Explained) -> String {
    let runs = match (result.runs, result.warmup) {
        (1, 0) => "1 run".to_owned(),
        (runs, 0) => format!("{runs} runs"),
        (runs, warmup) => format!("{runs} runs after {warmup} warmup"),
    };
    let mode = &result.job.mode;
    let what = match (mode.analyze, mode.read_only) {
        (true, true) => "executed (EXPLAIN ANALYZE) in a READ ONLY transaction",
        (true, false) => "executed (EXPLAIN ANALYZE, --analyze-writes) in a transaction",
        (false, _) => "planned only (EXPLAIN) in a READ ONLY transaction",
    };
    let class = match result.job.statement.class() {
        Class::Read => "a read",
        Class::Write { .. } => "a write",
        Class::Refused { .. } => "refused",
        Class::Unread { .. } => "a statement perfaudit's parser cannot read",
    };
    format!("{class}, {what}, rolled back; {runs}")
}

/// `guard: the server resolved what it runs: 20 functions, none VOLATILE`.
fn guard_line(guard: &Guard) -> String {
    let volatile: Vec<&str> = guard
        .functions
        .iter()
        .filter(|f| f.volatility == Volatility::Volatile)
        .map(|f| f.function.as_str())
        .collect();
    let functions = format!(
        "{} function{}, {}",
        count(guard.functions.len() as f64),
        if guard.functions.len() == 1 { "" } else { "s" },
        match volatile.len() {
            0 => "none VOLATILE".to_owned(),
            _ => format!("VOLATILE: {}", volatile.join(", ")),
        }
    );
    match guard.resolved_by {
        Resolution::Server => format!("guard: the server resolved what it runs: {functions}"),
        Resolution::Names => format!(
            "guard: found by the names it calls (this session cannot have the server parse \
             it): {functions}"
        ),
    }
}

fn rewrite_line(rewrite: &RewriteSummary) -> String {
    if !rewrite.enabled {
        return "rewrite: off (--no-rewrite)".to_owned();
    }
    let mut parts: Vec<String> = rewrite
        .changes
        .iter()
        .map(|change| format!("{}: {}", change.rule.name(), change.detail))
        .collect();
    parts.extend(
        rewrite
            .skipped
            .iter()
            .map(|skip| format!("{} skipped: {}", skip.rule.name(), skip.reason)),
    );
    if rewrite.changes.is_empty() {
        parts.insert(0, "no changes".to_owned());
    }
    format!("rewrite: {}", parts.join("; "))
}

fn costliest_legend(plan: &Plan) -> Option<String> {
    let node = &plan.nodes[plan.costliest?];
    Some(match node.self_share {
        Some(share) => format!(
            "{COSTLIEST} costliest node: #{} {}, {} of the execution time on its own",
            node.id,
            node.label(),
            self::share(share)
        ),
        None => format!(
            "{COSTLIEST} costliest node by the planner's estimate: #{} {}",
            node.id,
            node.label()
        ),
    })
}

fn timing_table(result: &Explained, ui: &Ui) -> Table {
    let mut table = crate::report::table(ui);
    let runs = format!(
        "{} {}",
        result.runs,
        crate::text::plural(result.runs, "run", "runs")
    );
    table.set_header([runs.as_str(), "min", "median", "p95", "max"]);
    let Timing {
        planning_ms,
        execution_ms,
        round_trip_ms,
    } = result.timing;
    for (name, spread) in [
        ("planning ms", planning_ms),
        ("execution ms", execution_ms),
        ("round trip ms", round_trip_ms),
    ] {
        if let Some(Spread {
            min,
            median,
            p95,
            max,
        }) = spread
        {
            table.add_row(
                std::iter::once(Cell::new(name)).chain(
                    [min, median, p95, max]
                        .into_iter()
                        .map(|v| Cell::new(ms(v)).set_alignment(CellAlignment::Right)),
                ),
            );
        }
    }
    crate::report::keep_words_whole(&mut table);
    table
}

fn cache_table(result: &Explained, ui: &Ui) -> Option<Table> {
    let cache = result.cache?;
    let mut table = crate::report::table(ui);
    table.set_header(["shared buffers", "hit", "read", "hit ratio"]);
    let mut rows = vec![("first run".to_owned(), cache.first_run)];
    if let Some(later) = cache.later_runs {
        let name = match result.runs {
            2 => "run 2".to_owned(),
            runs => format!("runs 2-{runs} (mean)"),
        };
        rows.push((name, later));
    }
    for (name, buffers) in rows {
        let total = buffers.hit + buffers.read;
        let ratio = if total > 0.0 {
            share(buffers.hit / total)
        } else {
            "-".to_owned()
        };
        table.add_row(
            std::iter::once(Cell::new(name)).chain(
                [
                    count(buffers.hit.round()),
                    count(buffers.read.round()),
                    ratio,
                ]
                .into_iter()
                .map(|v| Cell::new(v).set_alignment(CellAlignment::Right)),
            ),
        );
    }
    crate::report::keep_words_whole(&mut table);
    Some(table)
}

fn findings_table(findings: &[Finding], plan: &Plan, ui: &Ui) -> String {
    if findings.is_empty() {
        return "no findings".to_owned();
    }
    let mut table = crate::report::findings_table(ui);
    let wide = table.width().is_none_or(|width| width >= WIDE_FINDINGS);
    if wide {
        table.set_header(["severity", "finding", "node", "what", "what to do"]);
    } else {
        table.set_header(["severity", "finding", "what, and what to do"]);
    }
    for finding in findings {
        let node = match finding.node() {
            Some(id) => format!("#{id} {}", plan.nodes[id].label()),
            None => "statement".to_owned(),
        };
        let severity = crate::report::severity_cell(finding.severity);
        // The code, and what acting on it would save: what they are ranked
        // by. On lines of their own, no wider than most codes, so that the
        // measured numbers do not change the table's layout.
        let code = match &finding.saving {
            Some(saving) => format!(
                "{}\nsaves ≤ {} ms\n{} of the run",
                finding.code,
                ms(saving.ms),
                share(saving.share)
            ),
            None => finding.code.to_owned(),
        };
        let row = if wide {
            vec![
                severity,
                Cell::new(code),
                Cell::new(node),
                Cell::new(&finding.message),
                Cell::new(&finding.suggestion),
            ]
        } else {
            vec![
                severity,
                Cell::new(format!("{code}\n{node}")),
                Cell::new(format!(
                    "{}\nwhat to do: {}",
                    finding.message, finding.suggestion
                )),
            ]
        };
        table.add_row(row);
    }
    crate::report::keep_words_whole(&mut table);
    table.to_string()
}

/// The DDL the findings suggest, in a block of its own after the table,
/// one statement per line and never wrapped, so that it can be pasted:
/// `None` when no finding suggests any.
fn ddl_block(findings: &[Finding]) -> Option<String> {
    let blocks: Vec<String> = findings
        .iter()
        .filter_map(|finding| {
            let ddl = finding.ddl.as_deref()?;
            let at = finding
                .node()
                .map_or_else(|| "the statement".to_owned(), |id| format!("node #{id}"));
            Some(format!("-- {} at {at}\n{ddl}", finding.code))
        })
        .collect();
    (!blocks.is_empty()).then(|| format!("DDL the findings suggest:\n{}", blocks.join("\n")))
}

/// `0.042`, `12.35`, `1234.5`: about four significant digits.
fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.3}")
    } else if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// `93.1%`.
fn share(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn indented(sql: &str) -> String {
    sql.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Serialize)]
struct StatementJson<'a> {
    line: usize,
    column: usize,
    original: &'a str,
    executed: &'a str,
    rewrite: &'a RewriteSummary,
    class: &'a Class,
    analyzed: bool,
    read_only: bool,
    notes: &'a [String],
    plan_change: Option<&'a str>,
    params: Vec<&'a str>,
    guard: GuardJson<'a>,
    runs: usize,
    warmup: usize,
    timing: &'a Timing,
    buffers: Option<crate::explain::timing::CacheComparison>,
    plan: &'a RawValue,
    nodes: Vec<NodeJson<'a>>,
    costliest_node: Option<usize>,
    findings: Vec<FindingJson<'a>>,
    rolled_back: bool,
}

impl<'a> StatementJson<'a> {
    fn new(result: &'a Explained) -> Self {
        let job = &result.job;
        StatementJson {
            line: job.statement.position().0,
            column: job.statement.position().1,
            original: job.statement.text(),
            executed: &job.executed,
            rewrite: &job.rewrite,
            class: job.statement.class(),
            analyzed: job.mode.analyze,
            read_only: job.mode.read_only,
            notes: &job.mode.notes,
            plan_change: result.plan_change.as_deref(),
            params: job.params.iter().map(|param| param.0.as_str()).collect(),
            guard: GuardJson {
                executed: job.mode.analyze,
                resolved_by: job.guard.as_ref().map(|g| g.resolved_by),
                functions: job.guard.as_ref().map_or(&[], |g| &g.functions),
                unresolved: job.guard.as_ref().map_or(&[], |g| &g.unresolved),
                reason: job.execution_reason(),
            },
            runs: result.runs,
            warmup: result.warmup,
            timing: &result.timing,
            buffers: result.cache,
            plan: &result.document,
            nodes: result.plan.nodes.iter().map(NodeJson::new).collect(),
            costliest_node: result.plan.costliest,
            findings: result.findings.iter().map(FindingJson::new).collect(),
            // Every run ends in ROLLBACK; a failed one is an error, not a report.
            rolled_back: true,
        }
    }
}

/// The write guard's decision: what the statement runs, as the server
/// resolved it, and why it was or was not executed.
#[derive(Serialize)]
struct GuardJson<'a> {
    executed: bool,
    /// `null` when the server was not asked: the statement was only
    /// planned from the start.
    resolved_by: Option<Resolution>,
    functions: &'a [Reached],
    unresolved: &'a [String],
    reason: String,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    id: usize,
    parent: Option<usize>,
    depth: usize,
    label: String,
    node_type: &'a str,
    relation: Option<&'a str>,
    alias: Option<&'a str>,
    index: Option<&'a str>,
    join_type: Option<&'a str>,
    estimated_rows: f64,
    actual_rows: Option<f64>,
    loops: Option<f64>,
    misestimate: Option<f64>,
    total_ms: Option<f64>,
    self_ms: Option<f64>,
    self_share: Option<f64>,
    shared_hit_blocks: Option<f64>,
    shared_read_blocks: Option<f64>,
    rows_removed_by_filter: Option<f64>,
    index_cond: Option<&'a str>,
    recheck_cond: Option<&'a str>,
    filter: Option<&'a str>,
    join_filter: Option<&'a str>,
    hash_cond: Option<&'a str>,
    merge_cond: Option<&'a str>,
    sort_key: Option<&'a [String]>,
    sort_method: Option<&'a str>,
    heap_fetches: Option<f64>,
    workers_planned: Option<f64>,
    workers_launched: Option<f64>,
    temp_read_blocks: Option<f64>,
    temp_written_blocks: Option<f64>,
    io_read_ms: Option<f64>,
    io_write_ms: Option<f64>,
}

impl<'a> NodeJson<'a> {
    fn new(node: &'a Node) -> Self {
        let raw = &node.raw;
        NodeJson {
            id: node.id,
            parent: node.parent,
            depth: node.depth,
            label: node.label(),
            node_type: &raw.node_type,
            relation: raw.relation_name.as_deref(),
            alias: raw.alias.as_deref(),
            index: raw.index_name.as_deref(),
            join_type: raw.join_type.as_deref(),
            estimated_rows: raw.plan_rows,
            actual_rows: raw.actual_rows,
            loops: raw.actual_loops,
            misestimate: node.misestimate().map(|(factor, _)| factor),
            total_ms: node.total_ms,
            self_ms: node.self_ms,
            self_share: node.self_share,
            shared_hit_blocks: raw.shared_hit_blocks,
            shared_read_blocks: raw.shared_read_blocks,
            rows_removed_by_filter: raw.rows_removed_by_filter,
            index_cond: raw.index_cond.as_deref(),
            recheck_cond: raw.recheck_cond.as_deref(),
            filter: raw.filter.as_deref(),
            join_filter: raw.join_filter.as_deref(),
            hash_cond: raw.hash_cond.as_deref(),
            merge_cond: raw.merge_cond.as_deref(),
            sort_key: raw.sort_key.as_deref(),
            sort_method: raw.sort_method.as_deref(),
            heap_fetches: raw.heap_fetches,
            workers_planned: raw.workers_planned,
            workers_launched: raw.workers_launched,
            temp_read_blocks: raw.temp_read_blocks,
            temp_written_blocks: raw.temp_written_blocks,
            io_read_ms: raw.io_read_ms,
            io_write_ms: raw.io_write_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::mode::{Blockers, ModeFlags, decide};
    use crate::explain::timing::{CacheComparison, RunMeasurement};
    use crate::explain::{Job, findings};
    use crate::pg::plan::{Buffers, RunSummary};
    use crate::report::Statements;
    use crate::sql::parse_statements;
    use crate::ui::Format;
    use serde_json::{Value, json};

    /// What `explain` would have produced for `sql` whose runs returned
    /// `root` and took `executions` milliseconds.
    fn explained(sql: &str, root: Value, executions: &[f64]) -> Explained {
        let statement = parse_statements(sql).unwrap().remove(0);
        let mode = decide(&statement.class, ModeFlags::default(), &Blockers::default()).unwrap();
        let document =
            crate::pg::plan::tests::document(root, 0.25, executions[executions.len() / 2]);
        let plan = Plan::from_json(&document).unwrap();
        let measurements: Vec<RunMeasurement> = executions
            .iter()
            .enumerate()
            .map(|(run, &ms)| RunMeasurement {
                summary: RunSummary {
                    planning_ms: Some(0.25),
                    execution_ms: Some(ms),
                    buffers: Some(if run == 0 {
                        Buffers {
                            hit: 3.0,
                            read: 1500.0,
                        }
                    } else {
                        Buffers {
                            hit: 1503.0,
                            read: 0.0,
                        }
                    }),
                },
                round_trip_ms: ms + 0.4,
            })
            .collect();
        Explained {
            job: Job {
                number: 1,
                executed: statement.text.clone(),
                statement: crate::sql::Item::Parsed(statement),
                rewrite: RewriteSummary {
                    enabled: true,
                    ..RewriteSummary::default()
                },
                mode,
                params: Vec::new(),
                guard: None,
            },
            runs: executions.len(),
            warmup: 0,
            timing: Timing::of(&measurements),
            cache: CacheComparison::of(&measurements),
            document: RawValue::from_string(document).unwrap(),
            findings: findings::check(&plan, &crate::explain::tables::payments()),
            plan_change: None,
            plan,
        }
    }

    fn join() -> Value {
        json!({
            "Node Type": "Sort", "Total Cost": 3013.0, "Plan Rows": 19,
            "Actual Total Time": 25.1, "Actual Rows": 90, "Actual Loops": 1,
            "Sort Key": ["p.created_at"], "Sort Method": "quicksort", "Sort Space Type": "Memory",
            "Shared Hit Blocks": 1510, "Shared Read Blocks": 0,
            "Plans": [{
                "Node Type": "Nested Loop", "Join Type": "Inner", "Total Cost": 3010.0,
                "Plan Rows": 19, "Actual Total Time": 25.0, "Actual Rows": 90, "Actual Loops": 1,
                "Shared Hit Blocks": 1507, "Shared Read Blocks": 0,
                "Plans": [
                    {"Node Type": "Index Scan", "Index Name": "users_pkey",
                     "Relation Name": "users", "Alias": "u", "Total Cost": 8.3, "Plan Rows": 1,
                     "Actual Total Time": 0.026, "Actual Rows": 1, "Actual Loops": 1,
                     "Index Cond": "(id = 42)", "Shared Hit Blocks": 6, "Shared Read Blocks": 0},
                    {"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "p",
                     "Total Cost": 3001.0, "Plan Rows": 19, "Actual Total Time": 24.9,
                     "Actual Rows": 90, "Actual Loops": 1,
                     "Filter": "((user_id = 42) AND (status = 'completed'::text))",
                     "Rows Removed by Filter": 99910, "Shared Hit Blocks": 1501,
                     "Shared Read Blocks": 0},
                    {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "u2",
                     "Total Cost": 1.0, "Plan Rows": 1, "Actual Total Time": 0.0,
                     "Actual Rows": 0, "Actual Loops": 0}
                ]
            }]
        })
    }

    const JOIN_SQL: &str = "SELECT * FROM payments p JOIN users u ON u.id = p.user_id \
                            WHERE p.user_id = 42 AND p.status = 'completed' ORDER BY p.created_at";

    #[test]
    fn renders_plan_timing_cache_and_findings() {
        let result = explained(JOIN_SQL, join(), &[24.8, 25.2, 31.0]);
        insta::assert_snapshot!(statement(&result, &Ui::plain(Format::Table), false));
    }

    #[test]
    fn renders_a_plan_that_was_not_executed() {
        let sql = "DELETE FROM payments WHERE user_id = 42";
        let root = json!({"Node Type": "ModifyTable", "Operation": "Delete",
                          "Relation Name": "payments", "Alias": "payments", "Total Cost": 2751.0,
                          "Plan Rows": 0,
                          "Plans": [{"Node Type": "Seq Scan", "Relation Name": "payments",
                                     "Alias": "payments", "Total Cost": 2751.0, "Plan Rows": 22,
                                     "Filter": "(user_id = 42)"}]});
        let mut result = explained(sql, root, &[0.0]);
        // Plain EXPLAIN measures no execution and no buffers.
        result.plan.execution_ms = None;
        for node in &mut result.plan.nodes {
            node.raw.actual_loops = None;
        }
        result.timing.execution_ms = None;
        result.cache = None;
        insta::assert_snapshot!(statement(&result, &Ui::plain(Format::Table), false));
    }

    #[test]
    fn json_holds_the_documented_keys_and_the_plan_untouched() {
        let result = explained(JOIN_SQL, join(), &[24.8, 25.2, 31.0]);
        let text = written(Format::Json, &[&result]);
        let value: Value = serde_json::from_str(&text).unwrap();
        let statement = &value["statements"][0];
        let mut keys: Vec<_> = statement.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "analyzed",
                "buffers",
                "class",
                "column",
                "costliest_node",
                "executed",
                "findings",
                "guard",
                "line",
                "nodes",
                "notes",
                "original",
                "params",
                "plan",
                "plan_change",
                "read_only",
                "rewrite",
                "rolled_back",
                "runs",
                "timing",
                "warmup"
            ]
        );
        assert_eq!(statement["timing"]["execution_ms"]["median"], 25.2);
        assert_eq!(statement["plan"][0]["Plan"]["Node Type"], "Sort");
        assert_eq!(statement["nodes"][3]["label"], "Seq Scan on payments p");
        assert_eq!(statement["nodes"][3]["rows_removed_by_filter"], 99910.0);
        assert_eq!(statement["findings"][0]["code"], "selective-seq-scan");
        assert_eq!(statement["rolled_back"], true);
        assert!(
            text.contains(result.document.get()),
            "the plan is embedded as sent"
        );
    }

    /// What the report of `results` writes, finished.
    fn written(format: Format, results: &[&Explained]) -> String {
        let mut out = Vec::new();
        let mut report = Statements::new(&Ui::plain(format), &mut out);
        for result in results {
            let view = StatementView {
                result,
                details: false,
            };
            report.push(&view).unwrap();
        }
        report.finish(false, None, None).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn statements_are_written_one_after_another() {
        let first = explained(JOIN_SQL, join(), &[24.8, 25.2, 31.0]);
        let second = explained("SELECT 1", wide_and_deep(3, 2), &[0.5]);
        let ui = Ui::plain(Format::Table);
        assert_eq!(
            written(Format::Table, &[&first, &second]),
            format!(
                "{}\n\n{}\n",
                statement(&first, &ui, false),
                statement(&second, &ui, false)
            )
        );
        let json = written(Format::Json, &[&first, &second]);
        // The bytes of the whole document pretty-printed at once.
        #[derive(Serialize)]
        struct Document<'a> {
            statements: [StatementJson<'a>; 2],
        }
        let whole = Document {
            statements: [StatementJson::new(&first), StatementJson::new(&second)],
        };
        assert_eq!(json, serde_json::to_string_pretty(&whole).unwrap() + "\n");
        assert_eq!(written(Format::Json, &[]), "", "no statement, no document");
    }

    /// A plan of `nodes` nodes: an Append over chains `depth` nodes deep.
    #[test]
    fn many_partitions_scanned_alike_are_one_row() {
        let partitions: Vec<Value> = (0..12)
            .map(|n| {
                json!({"Node Type": "Seq Scan", "Relation Name": format!("ledger_{n}"),
                       "Alias": format!("ledger_{n}"), "Total Cost": 1.0, "Plan Rows": 100,
                       "Actual Total Time": 0.5, "Actual Rows": 100, "Actual Loops": 1,
                       "Parent Relationship": "Member"})
            })
            .collect();
        let append = json!({"Node Type": "Append", "Total Cost": 12.0, "Plan Rows": 1200,
                            "Actual Total Time": 7.0, "Actual Rows": 1200, "Actual Loops": 1,
                            "Plans": partitions});
        let plan = crate::pg::plan::tests::analysed(append, 0.1, 7.0);
        let text = plan::plan_table(&plan, &Ui::plain(Format::Table), false)
            .table
            .to_string();
        assert!(
            text.contains("12 × Seq Scan on ledger_0 … ledger_11"),
            "{text}"
        );
        assert!(text.contains("1-12"), "{text}");
        assert!(!text.contains("ledger_5"), "{text}");
        // Their numbers added up: 1,200 rows, 6 ms.
        assert!(text.contains("1,200") && text.contains("6.00"), "{text}");
    }

    fn wide_and_deep(nodes: usize, depth: usize) -> Value {
        let chain = |length: usize| {
            let mut node = json!({"Node Type": "Seq Scan", "Relation Name": "payments",
                                  "Alias": "payments", "Total Cost": 1.0, "Plan Rows": 10,
                                  "Actual Total Time": 0.01, "Actual Rows": 10,
                                  "Actual Loops": 1});
            for _ in 1..length {
                node = json!({"Node Type": "Limit", "Total Cost": 1.0, "Plan Rows": 10,
                              "Actual Total Time": 0.01, "Actual Rows": 10, "Actual Loops": 1,
                              "Plans": [node]});
            }
            node
        };
        let mut children = Vec::new();
        let mut left = nodes - 1;
        while left > 0 {
            let length = left.min(depth);
            children.push(chain(length));
            left -= length;
        }
        json!({"Node Type": "Append", "Total Cost": 1.0, "Plan Rows": 10,
               "Actual Total Time": 10.0, "Actual Rows": 10, "Actual Loops": 1,
               "Plans": children})
    }

    #[test]
    fn a_thousand_node_plan_renders_every_node_with_bounded_indentation() {
        let result = explained("SELECT 1", wide_and_deep(1000, 40), &[10.0]);
        assert_eq!(result.plan.nodes.len(), 1000);
        let text = plan::plan_table(&result.plan, &Ui::plain(Format::Table), false)
            .table
            .to_string();
        let rows: Vec<&str> = text.lines().filter(|line| line.starts_with("│")).collect();
        assert_eq!(rows.len(), 1001, "a header and a row per node");
        assert!(
            rows.iter()
                .any(|row| row.contains("→ [40] Seq Scan on payments"))
        );
        let widest = text.lines().map(|line| line.chars().count()).max().unwrap();
        assert!(widest < 200, "{widest} columns wide");
    }
}
