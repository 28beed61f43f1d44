//! The plan table: a row per node, the plan's tree drawn in the node
//! column, and with `--details` each node's details under its row. It fits
//! the terminal without splitting a number or a name: only the node column
//! wraps, at spaces, each node's tree arrow on its first line and what
//! follows indented under it; a terminal too narrow for every column gets
//! the most telling ones rather than all of them squeezed.

use comfy_table::{Attribute, Cell, CellAlignment, Color, ColumnConstraint, Table};

use super::{COSTLIEST, details, ms, share};
use crate::explain::findings::count;
use crate::pg::plan::{Node, Plan};
use crate::report::wrap::{self, wrap};
use crate::ui::Ui;

/// Levels of indentation drawn in the plan tree; deeper nodes are drawn at
/// this depth with their real depth shown, so that a deep plan stays
/// readable in a terminal.
const MAX_INDENT: usize = 16;

/// The smallest misestimate shown in the plan table: below 2x, the planner
/// was close enough and the cell stays quiet.
const SHOWN_MISESTIMATE: f64 = 2.0;

/// The children of an `Append` drawn as one row when there are at least
/// this many, all scans of the same kind with nothing below them: a
/// partitioned table's partitions, which would otherwise fill the screen.
const COLLAPSED_FROM: usize = 8;

/// The narrowest node column worth drawing while other columns could be
/// left out instead: room for the tree a few levels deep and a partition's
/// name, wrapped onto two or three lines.
const MIN_NODE_WIDTH: usize = 36;

/// A column after `#` and `node`: its header, and when a narrow terminal
/// leaves it out (first the lowest; `None`: never).
type Column = (&'static str, Option<u8>);

/// The columns of an executed plan. Buffers go first on a narrow terminal
/// (the cache table and `--details` show them), then what `--details` and
/// the findings say too, and the node's share of the time last (the
/// costliest node stays marked); the estimate against the rows stays.
const MEASURED: [Column; 10] = [
    ("rows est.", None),
    ("rows", None),
    ("misest.", Some(6)),
    ("loops", Some(7)),
    ("total ms", Some(4)),
    ("self ms", Some(5)),
    ("self %", Some(8)),
    ("hit", Some(1)),
    ("read", Some(2)),
    ("removed", Some(3)),
];

/// The columns of a plan that was not executed.
const ESTIMATED: [Column; 2] = [("rows est.", None), ("cost", None)];

/// The plan table, and the headers of the columns it left out to fit.
pub(super) struct PlanTable {
    pub table: Table,
    pub left_out: Vec<&'static str>,
}

/// One row of the table: a node, or alike siblings drawn as one.
struct Row {
    id: String,
    depth: usize,
    /// The node's label, marked when it is the costliest.
    label: String,
    costliest: bool,
    /// With `--details`, the lines under the label.
    details: Vec<String>,
    /// The cells after `#` and `node`.
    cells: Vec<String>,
}

/// A line of the node column before it is fitted: its text, and what its
/// first and its wrapped lines start with.
struct NodeLine {
    text: String,
    first: String,
    rest: String,
}

/// The plan table of `plan`, fitted to the UI's width, with each node's
/// details when `details` asks.
pub(super) fn plan_table(plan: &Plan, ui: &Ui, details: bool) -> PlanTable {
    let columns: &[Column] = if plan.analyzed() {
        &MEASURED
    } else {
        &ESTIMATED
    };
    let headers: Vec<&str> = ["#", "node"]
        .into_iter()
        .chain(columns.iter().map(|(header, _)| *header))
        .collect();
    let rows = rows(plan, details);
    let node_lines: Vec<Vec<NodeLine>> = rows.iter().map(node_lines).collect();
    let widths = widths(&headers, &rows);
    let width = ui.width().map(usize::from);
    let shown = match width {
        Some(width) => shown_columns(columns, &widths, needed(&node_lines), width),
        None => vec![true; headers.len()],
    };
    let node_width =
        width.map(|width| room_for_node(&widths, &shown, width).max(narrowest(&node_lines)));

    let mut table = crate::report::table(ui);
    table.set_header(visible(headers, &shown));
    for (row, lines) in rows.into_iter().zip(&node_lines) {
        let node = lines
            .iter()
            .flat_map(|line| wrap(&line.text, node_width, &line.first, &line.rest))
            .collect::<Vec<_>>()
            .join("\n");
        let texts = [row.id, node].into_iter().chain(row.cells);
        table.add_row(visible(texts, &shown).enumerate().map(|(column, text)| {
            let cell = Cell::new(text);
            let cell = match column {
                1 => cell,
                _ => cell.set_alignment(CellAlignment::Right),
            };
            match row.costliest {
                true => cell.fg(Color::Red).add_attribute(Attribute::Bold),
                false => cell,
            }
        }));
    }
    // The node column is wrapped above, where its indentation is kept; no
    // column is wrapped again, so no number is ever split.
    for column in table.column_iter_mut() {
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let left_out = columns
        .iter()
        .zip(&shown[2..])
        .filter(|(_, shown)| !**shown)
        .map(|((header, _), _)| *header)
        .collect();
    PlanTable { table, left_out }
}

/// The items of a row (`#`, `node`, then the columns) that `shown` keeps.
fn visible<T>(items: impl IntoIterator<Item = T>, shown: &[bool]) -> impl Iterator<Item = T> {
    items
        .into_iter()
        .zip(shown.iter().copied())
        .filter_map(|(item, shown)| shown.then_some(item))
}

/// Whether each column (`#`, `node`, then `columns`) is shown in `width`
/// columns: all of them when they leave the node column the room it
/// `needs`; otherwise columns are left out in their order until they do,
/// or until only those always shown are left.
fn shown_columns(columns: &[Column], widths: &[usize], needs: usize, width: usize) -> Vec<bool> {
    let mut shown = vec![true; widths.len()];
    let mut order: Vec<(u8, usize)> = columns
        .iter()
        .enumerate()
        .filter_map(|(index, (_, order))| Some(((*order)?, index + 2)))
        .collect();
    order.sort_unstable();
    for (_, column) in order {
        if room_for_node(widths, &shown, width) >= needs {
            break;
        }
        shown[column] = false;
    }
    shown
}

/// The width of each column but `node` (0 for it, fitted apart): its
/// widest cell or header.
fn widths(headers: &[&str], rows: &[Row]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|header| wrap::width(header)).collect();
    for row in rows {
        let texts = [row.id.as_str(), ""]
            .into_iter()
            .chain(row.cells.iter().map(String::as_str));
        for (width, text) in widths.iter_mut().zip(texts) {
            *width = (*width).max(wrap::width(text));
        }
    }
    widths[1] = 0;
    widths
}

/// The width left to the node column in a table `width` columns wide that
/// shows the `shown` columns of `widths`: each column has a space either
/// side and a border before it, and the table a border after the last.
fn room_for_node(widths: &[usize], shown: &[bool], width: usize) -> usize {
    let (columns, taken) = visible(widths, shown).fold((0, 0), |(columns, taken), width| {
        (columns + 1, taken + width)
    });
    width.saturating_sub(taken + 3 * columns + 1)
}

/// The node column's width worth leaving other columns out for: all its
/// lines unwrapped, or [`MIN_NODE_WIDTH`] when they are wider, and never
/// less than keeps every word whole.
fn needed(node_lines: &[Vec<NodeLine>]) -> usize {
    let natural = node_lines
        .iter()
        .flatten()
        .map(|line| wrap::width(&line.first) + wrap::width(&line.text))
        .max()
        .unwrap_or(0);
    natural.min(MIN_NODE_WIDTH).max(narrowest(node_lines))
}

/// The narrowest node column that keeps every word of `node_lines` whole.
fn narrowest(node_lines: &[Vec<NodeLine>]) -> usize {
    node_lines
        .iter()
        .flatten()
        .map(|line| wrap::narrowest(&line.text, &line.first, &line.rest))
        .max()
        .unwrap_or(0)
}

/// The lines of a row's node cell: its label after its place in the tree
/// (wrapped under the label), then its details, indented under the label
/// and wrapped further in.
fn node_lines(row: &Row) -> Vec<NodeLine> {
    let tree = indent(row.depth);
    let under = " ".repeat(wrap::width(&tree));
    let detail = format!("{under}  ");
    let label = NodeLine {
        text: row.label.clone(),
        first: tree,
        rest: under,
    };
    let details = row.details.iter().map(|text| NodeLine {
        text: text.clone(),
        first: detail.clone(),
        rest: format!("{detail}  "),
    });
    std::iter::once(label).chain(details).collect()
}

/// The rows of the table, one per node, alike siblings below an `Append`
/// drawn as one.
fn rows(plan: &Plan, details: bool) -> Vec<Row> {
    let analyzed = plan.analyzed();
    let mut rows = Vec::new();
    for node in &plan.nodes {
        let collapsed = collapsed_siblings(plan, node);
        let (id, label, cells) = match &collapsed {
            // Its siblings are the row's: drawn once, with the first.
            Some(siblings) if siblings[0].id != node.id => continue,
            Some(siblings) => collapsed_row(siblings, analyzed),
            None => {
                let mut cells = vec![count(node.raw.plan_rows)];
                if analyzed {
                    cells.extend(measured_cells(node));
                } else {
                    cells.push(format!("{:.2}", node.raw.total_cost));
                }
                (node.id.to_string(), node.label(), cells)
            }
        };
        let nodes = collapsed.unwrap_or_else(|| vec![node]);
        let costliest = nodes.iter().any(|n| plan.costliest == Some(n.id));
        rows.push(Row {
            id,
            depth: node.depth,
            label: match costliest {
                true => format!("{label} {COSTLIEST}"),
                false => label,
            },
            costliest,
            details: match details {
                true => details::lines(&nodes),
                false => Vec::new(),
            },
            cells,
        });
    }
    rows
}

/// The siblings `node` is drawn with in one row, itself included, when it
/// is one of many alike below an `Append`.
fn collapsed_siblings<'a>(plan: &'a Plan, node: &Node) -> Option<Vec<&'a Node>> {
    let parent = &plan.nodes[node.parent?];
    if !matches!(parent.raw.node_type.as_str(), "Append" | "Merge Append")
        || parent.children.len() < COLLAPSED_FROM
    {
        return None;
    }
    let siblings: Vec<&Node> = plan.children(parent).collect();
    let alike = siblings.iter().all(|sibling| {
        sibling.children.is_empty()
            && sibling.raw.node_type == node.raw.node_type
            && sibling.raw.parallel_aware == node.raw.parallel_aware
    });
    alike.then_some(siblings)
}

/// The row of `siblings` drawn as one: `#3-#15`, `13 × Seq Scan on
/// rental_payment_2024_01 … rental_payment_default`, and their numbers
/// added up (rows per loop, as each row shows them).
fn collapsed_row(siblings: &[&Node], analyzed: bool) -> (String, String, Vec<String>) {
    let (first, last) = (siblings[0], siblings[siblings.len() - 1]);
    let kind = first.label();
    let kind = kind.split(" on ").next().unwrap_or(&kind);
    let name = |node: &Node| node.raw.relation_name.clone().unwrap_or_default();
    let label = format!(
        "{} × {kind} on {} … {}",
        siblings.len(),
        name(first),
        name(last)
    );
    let sum = |value: fn(&Node) -> Option<f64>| -> Option<f64> {
        siblings.iter().map(|node| value(node)).sum()
    };
    let optional =
        |value: Option<f64>, format: fn(f64) -> String| value.map(format).unwrap_or_default();
    let mut cells = vec![count(siblings.iter().map(|n| n.raw.plan_rows).sum())];
    if analyzed {
        cells.extend([
            optional(sum(|n| n.raw.actual_rows), count),
            String::new(),
            String::new(),
            optional(sum(|n| n.total_ms), ms),
            optional(sum(|n| n.self_ms), ms),
            optional(sum(|n| n.self_share), share),
            optional(sum(|n| n.raw.shared_hit_blocks), count),
            optional(sum(|n| n.raw.shared_read_blocks), count),
            optional(sum(|n| n.raw.rows_removed_by_filter), count),
        ]);
    } else {
        cells.push(format!(
            "{:.2}",
            siblings.iter().map(|n| n.raw.total_cost).sum::<f64>()
        ));
    }
    (format!("{}-{}", first.id, last.id), label, cells)
}

fn measured_cells(node: &Node) -> Vec<String> {
    if !node.executed() {
        let mut cells = vec!["never executed".to_owned()];
        cells.resize(9, String::new());
        return cells;
    }
    let misestimate = match node.misestimate() {
        Some((factor, under)) if factor >= SHOWN_MISESTIMATE => {
            format!("{factor:.0}x {}", if under { "under" } else { "over" })
        }
        _ => String::new(),
    };
    let optional =
        |value: Option<f64>, format: fn(f64) -> String| value.map(format).unwrap_or_default();
    vec![
        optional(node.raw.actual_rows, count),
        misestimate,
        count(node.loops()),
        optional(node.total_ms, ms),
        optional(node.self_ms, ms),
        optional(node.self_share, share),
        optional(node.raw.shared_hit_blocks, count),
        optional(node.raw.shared_read_blocks, count),
        // Per loop, as the rows beside it are (and as PostgreSQL prints it).
        optional(node.raw.rows_removed_by_filter, count),
    ]
}

/// `    → `: two spaces per level below the root, capped at [`MAX_INDENT`].
fn indent(depth: usize) -> String {
    match depth {
        0 => String::new(),
        d if d <= MAX_INDENT => format!("{}→ ", "  ".repeat(d - 1)),
        d => format!("{}→ [{d}] ", "  ".repeat(MAX_INDENT - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::plan::tests::analysed;
    use crate::ui::Format;
    use serde_json::{Value, json};

    /// A scan `depth` levels below a chain of Limits, on a partition with a
    /// long name and a long filter.
    fn deep_scan(depth: usize) -> Value {
        let mut node = json!({"Node Type": "Index Scan",
            "Index Name": "rental_payment_2024_01_paid_at_idx",
            "Relation Name": "rental_payment_2024_01", "Alias": "p", "Total Cost": 1.0,
            "Plan Rows": 123_456, "Actual Total Time": 12.5, "Actual Rows": 1_234_567,
            "Actual Loops": 1, "Shared Hit Blocks": 98_765, "Shared Read Blocks": 4_321,
            "Index Cond": "((customer_id = 42) AND (paid_at >= '2024-01-01 00:00:00+00'::timestamp with time zone))",
            "Rows Removed by Filter": 7_654_321, "Filter": "(status = 'failed'::text)"});
        for _ in 0..depth {
            node = json!({"Node Type": "Limit", "Total Cost": 1.0, "Plan Rows": 123_456,
                          "Actual Total Time": 13.0, "Actual Rows": 1_234_567,
                          "Actual Loops": 1, "Plans": [node]});
        }
        node
    }

    #[test]
    fn a_narrow_terminal_leaves_columns_out_rather_than_split_a_word() {
        let plan = analysed(deep_scan(2), 0.1, 13.0);
        let wide = plan_table(&plan, &Ui::plain(Format::Table).with_width(200), true);
        assert!(wide.left_out.is_empty());
        let narrow = plan_table(&plan, &Ui::plain(Format::Table).with_width(80), true);
        assert_eq!(
            narrow.left_out,
            [
                "misest.", "loops", "total ms", "self ms", "hit", "read", "removed"
            ]
        );
        let text = narrow.table.to_string();
        assert!(text.lines().all(|line| wrap::width(line) <= 80), "{text}");
        for whole in ["123,456", "1,234,567", "rental_payment_2024_01_paid_at_idx"] {
            assert!(text.contains(whole), "{whole}:\n{text}");
        }
        // The scan's arrow on its first line; the rest of its label and its
        // details under the label (the cell's padding, then 4 columns).
        let scan = text.find("┆   → Index Scan using").expect(&text);
        let under: Vec<&str> = text[scan..].lines().skip(1).collect();
        let under = &under[..under.len() - 1];
        assert!(under.len() >= 4, "{text}");
        assert!(under.iter().all(|line| line.contains("┆     ")), "{text}");
        assert!(text.contains("Index Cond: ((customer_id = 42)"), "{text}");
    }
}
