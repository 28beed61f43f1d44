//! What `explain --details` prints under a node's row, under the names
//! PostgreSQL's text format gives it (as PEV2 and explain.depesz show it):
//! the node's conditions with the rows each threw away, its sort, hash
//! batches, heap fetches, workers, buffers and I/O timing. A line appears
//! only when the plan has what it says.

use super::ms;
use crate::explain::findings::count;
use crate::pg::plan::{Node, RawNode};

/// The detail lines of a row of the plan table: one node's, or those of the
/// alike siblings drawn as one row, their numbers added up as the row's are
/// and their conditions given once when they agree.
pub(super) fn lines(nodes: &[&Node]) -> Vec<String> {
    let conditions = [
        condition(nodes, "Hash Cond", |raw| raw.hash_cond.clone(), None),
        condition(nodes, "Merge Cond", |raw| raw.merge_cond.clone(), None),
        condition(
            nodes,
            "Join Filter",
            |raw| raw.join_filter.clone(),
            Some(|raw| raw.rows_removed_by_join_filter),
        ),
        condition(nodes, "Index Cond", |raw| raw.index_cond.clone(), None),
        condition(
            nodes,
            "Recheck Cond",
            |raw| raw.recheck_cond.clone(),
            Some(|raw| raw.rows_removed_by_index_recheck),
        ),
        condition(
            nodes,
            "Filter",
            |raw| raw.filter.clone(),
            Some(|raw| raw.rows_removed_by_filter),
        ),
        condition(
            nodes,
            "Sort Key",
            |raw| raw.sort_key.as_ref().map(|key| key.join(", ")),
            None,
        ),
    ];
    [workers(nodes)]
        .into_iter()
        .chain(conditions)
        .chain([
            sort_method(nodes),
            batches(nodes),
            total(nodes, |raw| raw.heap_fetches).map(|n| format!("Heap Fetches: {}", count(n))),
            heap_blocks(nodes),
            buffers(nodes),
            io_timings(nodes),
        ])
        .flatten()
        .collect()
}

/// A field of PostgreSQL's node.
type Field<T> = fn(&RawNode) -> Option<T>;

/// What `field` says of the nodes: the text they agree on, or that they
/// differ; `None` when none of them has it.
fn agreed(nodes: &[&Node], field: Field<String>) -> Option<String> {
    let first = nodes.iter().find_map(|node| field(&node.raw))?;
    if nodes
        .iter()
        .all(|node| field(&node.raw).as_ref() == Some(&first))
    {
        return Some(first);
    }
    Some(format!(
        "differs between the {} nodes (--format json has each)",
        nodes.len()
    ))
}

/// `field` added up over the nodes; `None` when none of them has it.
fn total(nodes: &[&Node], field: Field<f64>) -> Option<f64> {
    nodes
        .iter()
        .filter_map(|node| field(&node.raw))
        .reduce(|a, b| a + b)
}

/// `Filter: (status = 'open'::text)  (removed 1,234 rows)`: a condition,
/// with the rows it threw away when PostgreSQL counts them (per loop, as it
/// prints them and as the rows beside them are).
fn condition(
    nodes: &[&Node],
    name: &str,
    text: Field<String>,
    removed: Option<Field<f64>>,
) -> Option<String> {
    let mut line = format!("{name}: {}", agreed(nodes, text)?);
    if let Some(rows) = removed.and_then(|field| total(nodes, field)) {
        let looped = nodes.iter().any(|node| node.loops() > 1.0);
        line.push_str(&format!(
            "  (removed {} {}{})",
            count(rows),
            if rows == 1.0 { "row" } else { "rows" },
            if looped { " per loop" } else { "" }
        ));
    }
    Some(line)
}

/// `Workers: 2 planned, 1 launched`.
fn workers(nodes: &[&Node]) -> Option<String> {
    let planned = total(nodes, |raw| raw.workers_planned)?;
    Some(match total(nodes, |raw| raw.workers_launched) {
        Some(launched) => format!(
            "Workers: {} planned, {} launched",
            count(planned),
            count(launched)
        ),
        None => format!("Workers: {} planned", count(planned)),
    })
}

/// `Sort Method: external merge  Disk: 7,144kB`.
fn sort_method(nodes: &[&Node]) -> Option<String> {
    let method = agreed(nodes, |raw| raw.sort_method.clone())?;
    let space = agreed(nodes, |raw| raw.sort_space_type.clone());
    Some(match (space, total(nodes, |raw| raw.sort_space_used)) {
        (Some(space), Some(used)) => {
            format!("Sort Method: {method}  {space}: {}kB", count(used))
        }
        _ => format!("Sort Method: {method}"),
    })
}

/// `Batches: 4 (originally 1)  Memory Usage: 4,096kB  Disk Usage: 9,120kB`:
/// how a hash join's table or a hash aggregate fit in `work_mem` (no disk
/// used is left out, as PostgreSQL leaves it out).
fn batches(nodes: &[&Node]) -> Option<String> {
    let batches = total(nodes, |raw| raw.hash_batches.or(raw.hashagg_batches))?;
    let mut line = format!("Batches: {}", count(batches));
    if let Some(original) =
        total(nodes, |raw| raw.original_hash_batches).filter(|&original| original != batches)
    {
        line.push_str(&format!(" (originally {})", count(original)));
    }
    for (name, kb) in [
        ("Memory Usage", total(nodes, |raw| raw.peak_memory_usage)),
        (
            "Disk Usage",
            total(nodes, |raw| raw.disk_usage).filter(|&kb| kb > 0.0),
        ),
    ] {
        if let Some(kb) = kb {
            line.push_str(&format!("  {name}: {}kB", count(kb)));
        }
    }
    Some(line)
}

/// `exact=12 lossy=3`: the counts that are not zero, as PostgreSQL prints
/// them; `None` when all are.
fn counts(parts: &[(&str, Option<f64>)]) -> Option<String> {
    let parts: Vec<String> = parts
        .iter()
        .filter_map(|(name, value)| {
            value
                .filter(|&value| value != 0.0)
                .map(|value| format!("{name}={}", count(value)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// `Heap Blocks: exact=120 lossy=3`: the pages a bitmap heap scan read.
fn heap_blocks(nodes: &[&Node]) -> Option<String> {
    counts(&[
        ("exact", total(nodes, |raw| raw.exact_heap_blocks)),
        ("lossy", total(nodes, |raw| raw.lossy_heap_blocks)),
    ])
    .map(|blocks| format!("Heap Blocks: {blocks}"))
}

/// `Buffers: shared hit=1,507 read=3, temp read=890 written=890`: blocks of
/// 8 kB, by the node and below.
fn buffers(nodes: &[&Node]) -> Option<String> {
    let shared = counts(&[
        ("hit", total(nodes, |raw| raw.shared_hit_blocks)),
        ("read", total(nodes, |raw| raw.shared_read_blocks)),
    ])
    .map(|blocks| format!("shared {blocks}"));
    let temp = counts(&[
        ("read", total(nodes, |raw| raw.temp_read_blocks)),
        ("written", total(nodes, |raw| raw.temp_written_blocks)),
    ])
    .map(|blocks| format!("temp {blocks}"));
    let kinds: Vec<String> = [shared, temp].into_iter().flatten().collect();
    (!kinds.is_empty()).then(|| format!("Buffers: {}", kinds.join(", ")))
}

/// `I/O Timings: read=12.35 ms write=0.042 ms`, with `track_io_timing`; by
/// the node and below. Times of zero are left out, as PostgreSQL does.
fn io_timings(nodes: &[&Node]) -> Option<String> {
    let parts: Vec<String> = [
        ("read", total(nodes, |raw| raw.io_read_ms)),
        ("write", total(nodes, |raw| raw.io_write_ms)),
    ]
    .into_iter()
    .filter_map(|(name, time)| {
        time.filter(|&time| time > 0.0)
            .map(|time| format!("{name}={} ms", ms(time)))
    })
    .collect();
    (!parts.is_empty()).then(|| format!("I/O Timings: {}", parts.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    #[test]
    fn a_node_shows_what_the_plan_has_and_nothing_else() {
        let scan = json!({"Node Type": "Seq Scan", "Relation Name": "rental", "Alias": "r",
                          "Total Cost": 5.0, "Plan Rows": 10, "Actual Total Time": 4.0,
                          "Actual Rows": 5, "Actual Loops": 2,
                          "Filter": "(status = 'open'::store.rental_status)",
                          "Rows Removed by Filter": 1234});
        let sort = json!({"Node Type": "Sort", "Total Cost": 9.0, "Plan Rows": 10,
                          "Actual Total Time": 8.0, "Actual Rows": 5, "Actual Loops": 2,
                          "Sort Key": ["r.rented_at DESC", "r.rental_id"],
                          "Sort Method": "external merge", "Sort Space Type": "Disk",
                          "Sort Space Used": 7144, "Shared Hit Blocks": 7,
                          "Shared Read Blocks": 1500, "Temp Read Blocks": 890,
                          "Temp Written Blocks": 893, "I/O Read Time": 12.345,
                          "I/O Write Time": 0.0, "Plans": [scan]});
        // Zeros are left out, as PostgreSQL leaves them out.
        let gather = json!({"Node Type": "Gather", "Total Cost": 10.0, "Plan Rows": 10,
                            "Actual Total Time": 9.0, "Actual Rows": 10, "Actual Loops": 1,
                            "Workers Planned": 2, "Workers Launched": 1,
                            "Shared Hit Blocks": 1507, "Shared Read Blocks": 0,
                            "Temp Read Blocks": 0, "Temp Written Blocks": 0,
                            "I/O Read Time": 0.0, "I/O Write Time": 0.0, "Plans": [sort]});
        let plan = analysed(gather, 0.1, 9.0);
        let lines_of = |id: usize| lines(&[&plan.nodes[id]]);
        assert_eq!(
            lines_of(0),
            [
                "Workers: 2 planned, 1 launched",
                "Buffers: shared hit=1,507"
            ]
        );
        assert_eq!(
            lines_of(1),
            [
                "Sort Key: r.rented_at DESC, r.rental_id",
                "Sort Method: external merge  Disk: 7,144kB",
                "Buffers: shared hit=7 read=1,500, temp read=890 written=893",
                "I/O Timings: read=12.35 ms"
            ]
        );
        assert_eq!(
            lines_of(2),
            ["Filter: (status = 'open'::store.rental_status)  (removed 1,234 rows per loop)"]
        );
    }

    #[test]
    fn alike_siblings_add_up_and_agree_or_say_they_differ() {
        let scan = |n: usize, filter: &str| {
            json!({"Node Type": "Seq Scan", "Relation Name": format!("p_{n}"),
                   "Total Cost": 1.0, "Plan Rows": 10, "Actual Total Time": 1.0,
                   "Actual Rows": 10, "Actual Loops": 1, "Filter": filter,
                   "Rows Removed by Filter": 100, "Index Cond": format!("(id = {n})"),
                   "Shared Hit Blocks": 5})
        };
        let plan = analysed(
            json!({"Node Type": "Append", "Total Cost": 3.0, "Plan Rows": 30,
                   "Actual Total Time": 3.0, "Actual Rows": 30, "Actual Loops": 1,
                   "Plans": [scan(1, "(a > 1)"), scan(2, "(a > 1)"), scan(3, "(a > 1)")]}),
            0.1,
            3.0,
        );
        let siblings: Vec<&Node> = plan.children(plan.root()).collect();
        assert_eq!(
            lines(&siblings),
            [
                "Index Cond: differs between the 3 nodes (--format json has each)",
                "Filter: (a > 1)  (removed 300 rows)",
                "Buffers: shared hit=15"
            ]
        );
    }
}
