//! The plan model: PostgreSQL's JSON plan document read with serde, turned
//! into a flat list of nodes with what each measured and what perfaudit
//! derives from it (inclusive and exclusive time, share, misestimate).
//!
//! Every key but `Node Type` is optional, and numbers are read as `f64`:
//! keys come and go between PostgreSQL versions and options (`ANALYZE`,
//! `BUFFERS`, parallel workers), and PostgreSQL 18 prints `Actual Rows` and
//! `Rows Removed by Filter` with decimals.

use serde::Deserialize;

use crate::error::{Error, Result};

/// One node as PostgreSQL prints it: the keys perfaudit reads, under their
/// PostgreSQL names (the whole document is kept untouched elsewhere). Rows,
/// times and removed rows are averages per loop, as PostgreSQL reports them;
/// times are milliseconds, blocks are 8 kB, memory and disk are kB.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RawNode {
    /// `Seq Scan`, `Hash Join`, `ModifyTable`, ...
    #[serde(rename = "Node Type")]
    pub node_type: String,
    /// `Insert`, `Update`, `Delete`, `Merge` for a `ModifyTable` node.
    pub operation: Option<String>,
    /// `Plain`, `Sorted`, `Hashed`, `Mixed` for an `Aggregate` or `SetOp` node.
    pub strategy: Option<String>,
    /// `Outer`, `Inner`, `InitPlan`, `SubPlan`, ...: the role under its parent.
    #[serde(rename = "Parent Relationship")]
    pub parent_relationship: Option<String>,
    /// The table scanned or modified.
    #[serde(rename = "Relation Name")]
    pub relation_name: Option<String>,
    /// The name the query gave the table (its own name without an alias).
    pub alias: Option<String>,
    /// The index used.
    #[serde(rename = "Index Name")]
    pub index_name: Option<String>,
    /// `Inner`, `Left`, `Full`, `Right`, `Semi`, `Anti`.
    #[serde(rename = "Join Type")]
    pub join_type: Option<String>,
    /// Whether the planner proved at most one inner row matches each outer
    /// row, so the join stops reading its inner side at the first match.
    #[serde(rename = "Inner Unique")]
    pub inner_unique: Option<bool>,
    /// The CTE a `CTE Scan` reads.
    #[serde(rename = "CTE Name")]
    pub cte_name: Option<String>,
    /// The function a `Function Scan` calls.
    #[serde(rename = "Function Name")]
    pub function_name: Option<String>,
    /// `SubPlan 1`, `InitPlan 2`, ...
    #[serde(rename = "Subplan Name")]
    pub subplan_name: Option<String>,
    /// Whether parallel workers share the node's work.
    #[serde(rename = "Parallel Aware")]
    pub parallel_aware: Option<bool>,
    /// The planner's cost of the node and everything below it.
    #[serde(rename = "Total Cost")]
    pub total_cost: f64,
    /// The planner's estimate of the rows returned per loop.
    #[serde(rename = "Plan Rows")]
    pub plan_rows: f64,
    /// Time to the last row, per loop.
    #[serde(rename = "Actual Total Time")]
    pub actual_total_time: Option<f64>,
    /// Rows returned, per loop.
    #[serde(rename = "Actual Rows")]
    pub actual_rows: Option<f64>,
    /// Times the node ran; 0 when it never did.
    #[serde(rename = "Actual Loops")]
    pub actual_loops: Option<f64>,
    /// The condition rows are filtered with after they are read.
    pub filter: Option<String>,
    /// The condition an index scan seeks with.
    #[serde(rename = "Index Cond")]
    pub index_cond: Option<String>,
    /// The condition a bitmap heap scan rechecks.
    #[serde(rename = "Recheck Cond")]
    pub recheck_cond: Option<String>,
    /// The condition a join filters its pairs with.
    #[serde(rename = "Join Filter")]
    pub join_filter: Option<String>,
    /// Rows `filter` threw away, per loop.
    #[serde(rename = "Rows Removed by Filter")]
    pub rows_removed_by_filter: Option<f64>,
    /// Rows the recheck of a lossy bitmap threw away, per loop.
    #[serde(rename = "Rows Removed by Index Recheck")]
    pub rows_removed_by_index_recheck: Option<f64>,
    /// The sort's key expressions.
    #[serde(rename = "Sort Key")]
    pub sort_key: Option<Vec<String>>,
    /// `quicksort`, `top-N heapsort`, `external merge`, ...
    #[serde(rename = "Sort Method")]
    pub sort_method: Option<String>,
    /// kB the sort used, in memory or on disk.
    #[serde(rename = "Sort Space Used")]
    pub sort_space_used: Option<f64>,
    /// `Memory` or `Disk`.
    #[serde(rename = "Sort Space Type")]
    pub sort_space_type: Option<String>,
    /// The groups an `Incremental Sort` sorted whole (PostgreSQL 13 and
    /// later; such a node has no `Sort Method`).
    #[serde(rename = "Full-sort Groups")]
    pub full_sort_groups: Option<SortGroups>,
    /// The groups an `Incremental Sort` found already sorted by their
    /// leading keys and sorted by the rest.
    #[serde(rename = "Pre-sorted Groups")]
    pub presorted_groups: Option<SortGroups>,
    /// Batches a hash join's table was split into (1 when it fit in memory).
    #[serde(rename = "Hash Batches")]
    pub hash_batches: Option<f64>,
    /// Batches the planner expected.
    #[serde(rename = "Original Hash Batches")]
    pub original_hash_batches: Option<f64>,
    /// kB of memory a hash table or hash aggregate used at its peak.
    #[serde(rename = "Peak Memory Usage")]
    pub peak_memory_usage: Option<f64>,
    /// Batches a hash aggregate was split into (1 when it fit in memory).
    #[serde(rename = "HashAgg Batches")]
    pub hashagg_batches: Option<f64>,
    /// kB a hash aggregate wrote to disk.
    #[serde(rename = "Disk Usage")]
    pub disk_usage: Option<f64>,
    /// Heap pages a bitmap scan knew the matching rows of.
    #[serde(rename = "Exact Heap Blocks")]
    pub exact_heap_blocks: Option<f64>,
    /// Heap pages a bitmap scan knew only to hold matches somewhere.
    #[serde(rename = "Lossy Heap Blocks")]
    pub lossy_heap_blocks: Option<f64>,
    /// Blocks found in shared buffers, by the node and below.
    #[serde(rename = "Shared Hit Blocks")]
    pub shared_hit_blocks: Option<f64>,
    /// Blocks read from outside shared buffers, by the node and below.
    #[serde(rename = "Shared Read Blocks")]
    pub shared_read_blocks: Option<f64>,
    /// Workers a Gather planned to start.
    #[serde(rename = "Workers Planned")]
    pub workers_planned: Option<f64>,
    /// Workers a Gather actually started.
    #[serde(rename = "Workers Launched")]
    pub workers_launched: Option<f64>,
    /// Rows an index-only scan fetched from the table, all loops together
    /// (the visibility map did not vouch for their page).
    #[serde(rename = "Heap Fetches")]
    pub heap_fetches: Option<f64>,
    /// Row pairs a join's `Join Filter` threw away, per loop.
    #[serde(rename = "Rows Removed by Join Filter")]
    pub rows_removed_by_join_filter: Option<f64>,
    /// A hash join's condition.
    #[serde(rename = "Hash Cond")]
    pub hash_cond: Option<String>,
    /// A merge join's condition.
    #[serde(rename = "Merge Cond")]
    pub merge_cond: Option<String>,
    /// `Partial` or `Finalize` for the two halves of a parallel aggregate.
    #[serde(rename = "Partial Mode")]
    pub partial_mode: Option<String>,
    /// Temporary file blocks read, by the node and below.
    #[serde(rename = "Temp Read Blocks")]
    pub temp_read_blocks: Option<f64>,
    /// Temporary file blocks written, by the node and below.
    #[serde(rename = "Temp Written Blocks")]
    pub temp_written_blocks: Option<f64>,
    /// Milliseconds spent reading blocks, by the node and below (with
    /// `track_io_timing`; PostgreSQL 16 renamed the key, for shared and
    /// local blocks apart).
    #[serde(rename = "I/O Read Time", alias = "Shared I/O Read Time")]
    pub io_read_ms: Option<f64>,
    /// Milliseconds spent writing blocks (with `track_io_timing`).
    #[serde(rename = "I/O Write Time", alias = "Shared I/O Write Time")]
    pub io_write_ms: Option<f64>,
    /// The children.
    pub plans: Vec<RawNode>,
}

/// One kind of group an `Incremental Sort` sorted, all groups of it
/// together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SortGroups {
    /// How many groups.
    #[serde(rename = "Group Count")]
    pub group_count: f64,
    /// `quicksort`, `top-N heapsort`, `external merge`: each method used once.
    #[serde(rename = "Sort Methods Used")]
    pub sort_methods_used: Vec<String>,
    /// What the groups sorted on disk used, when some did.
    #[serde(rename = "Sort Space Disk")]
    pub sort_space_disk: Option<SortSpace>,
}

/// The space sorts used, in kB.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct SortSpace {
    /// The most one sort used.
    #[serde(rename = "Peak Sort Space Used")]
    pub peak: f64,
}

/// A trigger that fired while the statement ran (`--analyze-writes`).
#[derive(Debug, Clone, Deserialize)]
pub struct Trigger {
    /// Its name (foreign keys show as `RI_ConstraintTrigger_...`).
    #[serde(rename = "Trigger Name")]
    pub name: String,
    /// The table it is defined on.
    #[serde(rename = "Relation", default)]
    pub relation: Option<String>,
    /// Milliseconds spent in it, all calls together.
    #[serde(rename = "Time")]
    pub time_ms: f64,
    /// How many times it fired.
    #[serde(rename = "Calls")]
    pub calls: f64,
}

/// What JIT compilation did for the statement (`JIT`, printed when the
/// plan's cost crossed `jit_above_cost` and the statement ran): all
/// processes together, the leader's and its parallel workers'.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Jit {
    /// Functions compiled.
    #[serde(rename = "Functions")]
    pub functions: f64,
    /// Which of its costlier steps ran.
    #[serde(rename = "Options")]
    pub options: JitOptions,
    /// Milliseconds spent, absent with `TIMING off`.
    #[serde(rename = "Timing")]
    pub timing: Option<JitTiming>,
}

/// The steps of JIT compilation beyond generating code, each run when the
/// plan's cost crossed its own threshold.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct JitOptions {
    /// Inlining of functions' bodies (`jit_inline_above_cost`).
    #[serde(rename = "Inlining")]
    pub inlining: bool,
    /// LLVM's optimisation passes (`jit_optimize_above_cost`).
    #[serde(rename = "Optimization")]
    pub optimization: bool,
}

/// JIT's milliseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct JitTiming {
    /// All its steps together (PostgreSQL 17 splits `Generation`, so only
    /// the total is read).
    #[serde(rename = "Total")]
    pub total: f64,
}

/// The top level of one explained statement.
#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "Plan")]
    plan: RawNode,
    #[serde(rename = "Planning Time")]
    planning_time: Option<f64>,
    #[serde(rename = "Execution Time")]
    execution_time: Option<f64>,
    #[serde(rename = "Triggers", default)]
    triggers: Vec<Trigger>,
    #[serde(rename = "JIT")]
    jit: Option<Jit>,
}

/// The few numbers every run contributes to the timing table; cheaper to
/// read than the whole plan, which is analysed for one run only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// `Planning Time`, in milliseconds.
    pub planning_ms: Option<f64>,
    /// `Execution Time`, in milliseconds (absent without ANALYZE).
    pub execution_ms: Option<f64>,
    /// The root node's shared buffer hits and reads (absent without BUFFERS).
    pub buffers: Option<Buffers>,
}

/// Shared buffer blocks (8 kB each) found in the cache and read from disk.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Buffers {
    /// Blocks found in shared buffers.
    pub hit: f64,
    /// Blocks read from the operating system (its cache or the disk).
    pub read: f64,
}

impl RunSummary {
    /// Reads the summary of PostgreSQL's `FORMAT JSON` output.
    pub fn from_json(document: &str) -> Result<RunSummary> {
        #[derive(Deserialize)]
        struct Root {
            #[serde(rename = "Shared Hit Blocks")]
            hit: Option<f64>,
            #[serde(rename = "Shared Read Blocks")]
            read: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Summary {
            #[serde(rename = "Plan")]
            plan: Root,
            #[serde(rename = "Planning Time")]
            planning_time: Option<f64>,
            #[serde(rename = "Execution Time")]
            execution_time: Option<f64>,
        }
        let summary: Summary = only_document(document)?;
        Ok(RunSummary {
            planning_ms: summary.planning_time,
            execution_ms: summary.execution_time,
            buffers: match (summary.plan.hit, summary.plan.read) {
                (Some(hit), Some(read)) => Some(Buffers { hit, read }),
                _ => None,
            },
        })
    }
}

/// One node of the plan, with what perfaudit derived for it.
#[derive(Debug, Clone)]
pub struct Node {
    /// Position in pre-order (the order PostgreSQL prints); 0 is the root.
    pub id: usize,
    /// The parent's id.
    pub parent: Option<usize>,
    /// The children's ids, in PostgreSQL's order (outer before inner).
    pub children: Vec<usize>,
    /// Depth in the tree; the root is 0.
    pub depth: usize,
    /// What PostgreSQL printed for it (children moved to `children`).
    pub raw: RawNode,
    /// Milliseconds spent in it and below, all loops together (wall clock
    /// for nodes run by parallel workers). `None` when not executed.
    pub total_ms: Option<f64>,
    /// Milliseconds spent in it alone: `total_ms` minus the children's.
    pub self_ms: Option<f64>,
    /// `self_ms` as a fraction (0 to 1) of the execution time.
    pub self_share: Option<f64>,
}

/// An analysed plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every node, in pre-order; `nodes[0]` is the root.
    pub nodes: Vec<Node>,
    /// `Planning Time`, in milliseconds.
    pub planning_ms: Option<f64>,
    /// `Execution Time`, in milliseconds; `None` when nothing was executed.
    pub execution_ms: Option<f64>,
    /// Triggers that fired.
    pub triggers: Vec<Trigger>,
    /// What JIT compilation did, when it ran.
    pub jit: Option<Jit>,
    /// The node that cost the most: most self time when executed, most self
    /// cost (the planner's estimate) otherwise. Never a `Gather`: what a
    /// gather waits for is the work of the nodes below, where it counts.
    pub costliest: Option<usize>,
    /// The nodes perfaudit's rewrite added to the user's statement.
    pub added: AddedNodes,
}

/// What perfaudit's rewrite added to a statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// The `LIMIT` it added.
    pub limit: Option<u64>,
    /// Whether it added an `ORDER BY`.
    pub order_by: bool,
}

/// The nodes of a plan that run what perfaudit's rewrite added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddedNodes {
    /// The top `Limit`, with the count the rewrite gave it.
    pub limit: Option<(usize, u64)>,
    /// The `Sort` (or `Incremental Sort`) of the added `ORDER BY`.
    pub sort: Option<usize>,
}

impl AddedNodes {
    /// Whether node `id` runs only what the rewrite added.
    pub fn contains(&self, id: usize) -> bool {
        self.limit.map(|(limit, _)| limit) == Some(id) || self.sort == Some(id)
    }

    /// Whether node `id` is the added `Limit`, and it stopped reading what
    /// is below it: it returned as many rows as it was given (it returns
    /// fewer only when what is below ran out).
    pub fn limit_stopped(&self, node: &Node) -> bool {
        self.limit.is_some_and(|(id, count)| {
            id == node.id && node.raw.actual_rows.is_none_or(|rows| rows >= count as f64)
        })
    }
}

/// Nodes that hand work to parallel workers: below them, a node's loops
/// are spread over processes running at the same time.
pub const GATHER_NODES: [&str; 2] = ["Gather", "Gather Merge"];

impl Plan {
    /// Reads and analyses PostgreSQL's `EXPLAIN (FORMAT JSON)` output.
    pub fn from_json(document: &str) -> Result<Plan> {
        let document: Document = only_document(document)?;
        let mut nodes = Vec::new();
        flatten(document.plan, None, 0, 1.0, &mut nodes);
        let mut plan = Plan {
            nodes,
            planning_ms: document.planning_time,
            execution_ms: document.execution_time,
            triggers: document.triggers,
            jit: document.jit,
            costliest: None,
            added: AddedNodes::default(),
        };
        plan.derive_times();
        plan.costliest = plan.find_costliest();
        Ok(plan)
    }

    /// Marks the nodes that run what the rewrite `added`: the root `Limit`
    /// of an added `LIMIT`, and the sort at the top of what it limits
    /// (below a `Gather Merge` too) of an added `ORDER BY`. The user's
    /// statement had neither, so the nodes at those places are the
    /// rewrite's.
    pub fn mark_added(&mut self, added: Added) {
        let mut top = 0;
        let first_child = |id: usize| self.nodes[id].children.first().copied();
        if let Some(count) = added.limit {
            if self.nodes[top].raw.node_type != "Limit" {
                return;
            }
            self.added.limit = Some((top, count));
            let Some(below) = first_child(top) else {
                return;
            };
            top = below;
        }
        while self.nodes[top].raw.node_type == "Gather Merge" {
            let Some(below) = first_child(top) else {
                return;
            };
            top = below;
        }
        if added.order_by
            && matches!(
                self.nodes[top].raw.node_type.as_str(),
                "Sort" | "Incremental Sort"
            )
        {
            self.added.sort = Some(top);
        }
    }

    /// Whether the plan carries what running it measured (EXPLAIN ANALYZE).
    pub fn analyzed(&self) -> bool {
        self.nodes
            .first()
            .is_some_and(|root| root.raw.actual_loops.is_some())
    }

    /// The root node.
    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// The node's children.
    pub fn children<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a Node> + 'a {
        node.children.iter().map(|&id| &self.nodes[id])
    }

    /// The node and everything below it.
    pub fn subtree<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a Node> + 'a {
        // Pre-order: a subtree is the run of nodes deeper than its root.
        self.nodes[node.id..]
            .iter()
            .take_while(move |n| n.id == node.id || n.depth > node.depth)
    }

    /// What the node counted itself, all loops together, of a counter
    /// (`counter` reads it: shared hits or reads, temporary blocks written,
    /// I/O time) PostgreSQL adds up over a node and the nodes below it (a
    /// sort above a spilled hash join counts the join's temporary files).
    /// `None` where the counter was not printed (without BUFFERS).
    pub fn own(&self, node: &Node, counter: fn(&RawNode) -> Option<f64>) -> Option<f64> {
        let below: f64 = self
            .children(node)
            .filter_map(|child| counter(&child.raw))
            .sum();
        Some((counter(&node.raw)? - below).max(0.0))
    }

    fn derive_times(&mut self) {
        let whole = self
            .execution_ms
            .or_else(|| self.nodes.first().and_then(|root| root.total_ms));
        for id in 0..self.nodes.len() {
            let Some(total) = self.nodes[id].total_ms else {
                continue;
            };
            let children: f64 = self.nodes[id]
                .children
                .iter()
                .filter_map(|&child| self.nodes[child].total_ms)
                .sum();
            // Clamped: InitPlans and CTEs can be counted under two parents.
            let own = (total - children).max(0.0);
            let node = &mut self.nodes[id];
            node.self_ms = Some(own);
            node.self_share = whole
                .filter(|w| *w > 0.0)
                .map(|w| (own / w).clamp(0.0, 1.0));
        }
    }

    fn find_costliest(&self) -> Option<usize> {
        let own = |node: &Node| match node.self_ms {
            Some(ms) => ms,
            None if self.analyzed() => 0.0,
            None => {
                let children: f64 = self.children(node).map(|c| c.raw.total_cost).sum();
                (node.raw.total_cost - children).max(0.0)
            }
        };
        let is_gather = |node: &Node| GATHER_NODES.contains(&node.raw.node_type.as_str());
        // A gather's own time is its wait for the workers: it goes to the
        // node below it, whose work it waits for.
        let weight = |node: &Node| {
            let gathered = node
                .parent
                .map(|parent| &self.nodes[parent])
                .filter(|parent| is_gather(parent) && parent.children.first() == Some(&node.id))
                .map_or(0.0, own);
            own(node) + gathered
        };
        self.nodes
            .iter()
            .filter(|node| !is_gather(node))
            .map(|node| (node.id, weight(node)))
            .filter(|(_, weight)| *weight > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }
}

impl Node {
    /// Whether the node ran at least once.
    pub fn executed(&self) -> bool {
        self.raw.actual_loops.is_some_and(|loops| loops > 0.0)
    }

    /// Times the node ran (`Actual Loops`), 0 when not executed.
    pub fn loops(&self) -> f64 {
        self.raw.actual_loops.unwrap_or(0.0)
    }

    /// Rows it returned, all loops together.
    pub fn rows_returned(&self) -> Option<f64> {
        Some(self.raw.actual_rows? * self.loops())
    }

    /// Rows its filter threw away, all loops together (PostgreSQL prints
    /// the average per loop).
    pub fn rows_removed_by_filter(&self) -> Option<f64> {
        Some(self.raw.rows_removed_by_filter? * self.loops())
    }

    /// How far the row estimate was off: at least 1, with `true` when
    /// PostgreSQL expected fewer rows than came. Both sides count per loop,
    /// and at least one row, so that "expected 1, got 0" is not a misestimate.
    pub fn misestimate(&self) -> Option<(f64, bool)> {
        if !self.executed() {
            return None;
        }
        let actual = self.raw.actual_rows?.max(1.0);
        let estimated = self.raw.plan_rows.max(1.0);
        Some(if actual >= estimated {
            (actual / estimated, true)
        } else {
            (estimated / actual, false)
        })
    }

    /// `Seq Scan on payments p`, `Index Scan using idx on payments`,
    /// `Hash Left Join`, `CTE Scan on recent`: the node as PostgreSQL's text
    /// format names it.
    pub fn label(&self) -> String {
        let raw = &self.raw;
        let mut label = String::new();
        if let Some(mode) = raw.partial_mode.as_deref().filter(|mode| *mode != "Simple") {
            label.push_str(mode);
            label.push(' ');
        }
        if raw.parallel_aware == Some(true) {
            label.push_str("Parallel ");
        }
        match raw.join_type.as_deref() {
            Some(join) if join != "Inner" && raw.node_type.ends_with("Join") => {
                let (kind, _) = raw.node_type.split_at(raw.node_type.len() - "Join".len());
                label.push_str(&format!("{kind}{join} Join"));
            }
            Some(join) if join != "Inner" && raw.node_type == "Nested Loop" => {
                label.push_str(&format!("Nested Loop {join} Join"));
            }
            _ => label.push_str(&text_format_name(raw)),
        }
        if let Some(index) = &raw.index_name {
            let using = if raw.node_type.starts_with("Bitmap Index") {
                " on "
            } else {
                " using "
            };
            label.push_str(using);
            label.push_str(index);
        }
        let target = raw
            .relation_name
            .as_ref()
            .or(raw.cte_name.as_ref())
            .or(raw.function_name.as_ref());
        if let Some(target) = target {
            label.push_str(" on ");
            label.push_str(target);
            if let Some(alias) = raw.alias.as_ref().filter(|alias| *alias != target) {
                label.push(' ');
                label.push_str(alias);
            }
        }
        if let Some(subplan) = &raw.subplan_name {
            label = format!("{label} ({subplan})");
        }
        label
    }
}

/// The name PostgreSQL's text format gives the node where it differs from
/// `Node Type`: `Delete`, `HashAggregate`, `GroupAggregate`, `HashSetOp`.
fn text_format_name(raw: &RawNode) -> String {
    match (raw.node_type.as_str(), raw.strategy.as_deref()) {
        ("ModifyTable", _) => raw
            .operation
            .clone()
            .unwrap_or_else(|| raw.node_type.clone()),
        ("Aggregate", Some("Hashed")) => "HashAggregate".to_owned(),
        ("Aggregate", Some("Sorted")) => "GroupAggregate".to_owned(),
        ("Aggregate", Some("Mixed")) => "MixedAggregate".to_owned(),
        ("SetOp", Some("Hashed")) => "HashSetOp".to_owned(),
        (node_type, _) => node_type.to_owned(),
    }
}

/// Moves `raw` and its children into `nodes` in pre-order. `workers` is the
/// number of processes sharing the loops below a Gather (1 elsewhere).
fn flatten(
    mut raw: RawNode,
    parent: Option<usize>,
    depth: usize,
    workers: f64,
    nodes: &mut Vec<Node>,
) -> usize {
    let id = nodes.len();
    let loops = raw.actual_loops.unwrap_or(0.0);
    // Per-loop average times the loops, divided over the processes that ran
    // those loops side by side (the leader takes part, hence the + 1).
    let total_ms = raw
        .actual_total_time
        .filter(|_| loops > 0.0)
        .map(|time| time * loops / workers.min(loops).max(1.0));
    let children = std::mem::take(&mut raw.plans);
    let below = if GATHER_NODES.contains(&raw.node_type.as_str()) {
        raw.workers_launched.unwrap_or(0.0) + 1.0
    } else {
        workers
    };
    nodes.push(Node {
        id,
        parent,
        children: Vec::new(),
        depth,
        raw,
        total_ms,
        self_ms: None,
        self_share: None,
    });
    for child in children {
        let child_id = flatten(child, Some(id), depth + 1, below, nodes);
        nodes[id].children.push(child_id);
    }
    id
}

/// PostgreSQL prints a one-element array per explained statement.
fn only_document<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    let mut documents: Vec<T> = serde_json::from_str(text).map_err(|e| {
        Error::database(format!(
            "cannot read the plan PostgreSQL returned ({e}); please report this with the \
             PostgreSQL version"
        ))
    })?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(Error::database(format!(
            "PostgreSQL returned {n} plans for one statement; expected exactly one"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A plan document around `root`, as EXPLAIN (ANALYZE, FORMAT JSON) prints it.
    pub fn document(root: Value, planning: f64, execution: f64) -> String {
        json!([{"Plan": root, "Planning Time": planning, "Triggers": [], "Execution Time": execution}])
            .to_string()
    }

    /// An analysed plan around `root`.
    pub fn analysed(root: Value, planning: f64, execution: f64) -> Plan {
        Plan::from_json(&document(root, planning, execution)).unwrap()
    }

    fn join_plan() -> Value {
        json!({
            "Node Type": "Hash Join", "Join Type": "Left", "Total Cost": 100.0,
            "Plan Rows": 10, "Actual Total Time": 10.0, "Actual Rows": 12, "Actual Loops": 1,
            "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "p",
                 "Total Cost": 50.0, "Plan Rows": 1000, "Actual Total Time": 6.0,
                 "Actual Rows": 10.5, "Actual Loops": 1, "Parent Relationship": "Outer"},
                {"Node Type": "Hash", "Total Cost": 30.0, "Plan Rows": 5,
                 "Actual Total Time": 1.0, "Actual Rows": 5, "Actual Loops": 1,
                 "Plans": [{"Node Type": "Index Scan", "Index Name": "users_pkey",
                            "Relation Name": "users", "Alias": "users", "Total Cost": 30.0,
                            "Plan Rows": 5, "Actual Total Time": 0.5, "Actual Rows": 5,
                            "Actual Loops": 2}]}
            ]
        })
    }

    /// Aggregate <- Gather (waiting 40 ms) <- Aggregate (30 ms) <- Seq Scan
    /// (20 ms), the workers' nodes run in three processes.
    fn gathered() -> Value {
        json!({
            "Node Type": "Aggregate", "Total Cost": 10.0, "Plan Rows": 1,
            "Actual Total Time": 100.0, "Actual Rows": 1, "Actual Loops": 1,
            "Plans": [{
                "Node Type": "Gather", "Total Cost": 9.0, "Plan Rows": 3, "Workers Planned": 2,
                "Workers Launched": 2, "Actual Total Time": 98.0, "Actual Rows": 3,
                "Actual Loops": 1, "Parent Relationship": "Outer",
                "Plans": [{
                    "Node Type": "Aggregate", "Partial Mode": "Partial", "Total Cost": 8.0,
                    "Plan Rows": 1, "Actual Total Time": 50.0, "Actual Rows": 1,
                    "Actual Loops": 3, "Parent Relationship": "Outer",
                    "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Alias": "t",
                               "Total Cost": 5.0, "Plan Rows": 100, "Actual Total Time": 20.0,
                               "Actual Rows": 100, "Actual Loops": 3,
                               "Parent Relationship": "Outer"}]
                }]
            }]
        })
    }

    #[test]
    fn the_costliest_node_is_the_work_a_gather_waits_for_not_the_gather() {
        let plan = analysed(gathered(), 0.1, 100.0);
        let gather_own = plan.nodes[1].self_ms.unwrap();
        let below_own = plan.nodes[2].self_ms.unwrap();
        assert!(
            gather_own > below_own,
            "{gather_own} {below_own}: the case at hand"
        );
        assert_eq!(
            plan.costliest,
            Some(2),
            "{:?}",
            plan.nodes[plan.costliest.unwrap()].label()
        );
    }

    #[test]
    fn flattens_in_pre_order_with_depths_and_labels() {
        let plan = analysed(join_plan(), 0.2, 10.5);
        let labels: Vec<_> = plan.nodes.iter().map(|n| (n.depth, n.label())).collect();
        assert_eq!(
            labels,
            [
                (0, "Hash Left Join".to_owned()),
                (1, "Seq Scan on payments p".to_owned()),
                (1, "Hash".to_owned()),
                (2, "Index Scan using users_pkey on users".to_owned()),
            ]
        );
        assert_eq!(plan.nodes[3].parent, Some(2));
        assert_eq!(plan.nodes[0].children, [1, 2]);
        assert_eq!(plan.subtree(&plan.nodes[2]).count(), 2);
        assert!(plan.analyzed());
    }

    #[test]
    fn self_time_is_total_minus_children_over_all_loops() {
        let plan = analysed(join_plan(), 0.2, 10.0);
        let self_ms: Vec<_> = plan.nodes.iter().map(|n| n.self_ms.unwrap()).collect();
        // Index scan: 0.5 ms x 2 loops; the hash: 1.0 - 1.0; the join: 10 - 6 - 1.
        assert_eq!(self_ms, [3.0, 6.0, 0.0, 1.0]);
        assert_eq!(plan.nodes[1].self_share, Some(0.6));
        assert_eq!(plan.costliest, Some(1));
    }

    #[test]
    fn decimal_rows_and_missing_keys_are_read() {
        let plan = analysed(join_plan(), 0.2, 10.0);
        assert_eq!(plan.nodes[1].raw.actual_rows, Some(10.5));
        // 1000 expected, 10.5 came: over-estimated about 95x.
        let (factor, under) = plan.nodes[1].misestimate().unwrap();
        assert!((factor - 95.238).abs() < 0.01 && !under, "{factor}");
        assert!(plan.nodes[1].raw.filter.is_none());
    }

    #[test]
    fn io_timing_is_read_under_the_names_of_postgresql_15_and_16() {
        for (read, write) in [
            ("I/O Read Time", "I/O Write Time"),
            ("Shared I/O Read Time", "Shared I/O Write Time"),
        ] {
            let plan = analysed(
                json!({"Node Type": "Seq Scan", "Total Cost": 1.0, "Plan Rows": 1,
                       "Actual Total Time": 2.0, "Actual Rows": 1, "Actual Loops": 1,
                       read: 1.5, write: 0.25}),
                0.1,
                2.0,
            );
            assert_eq!(plan.nodes[0].raw.io_read_ms, Some(1.5), "{read}");
            assert_eq!(plan.nodes[0].raw.io_write_ms, Some(0.25), "{write}");
        }
    }

    #[test]
    fn parallel_loops_count_as_wall_time() {
        let plan = analysed(
            json!({"Node Type": "Gather", "Workers Launched": 2, "Total Cost": 10.0,
                   "Plan Rows": 1, "Actual Total Time": 30.0, "Actual Rows": 3, "Actual Loops": 1,
                   "Plans": [{"Node Type": "Seq Scan", "Parallel Aware": true,
                              "Relation Name": "payments", "Alias": "payments",
                              "Total Cost": 9.0, "Plan Rows": 1, "Actual Total Time": 28.0,
                              "Actual Rows": 1, "Actual Loops": 3}]}),
            0.1,
            30.0,
        );
        assert_eq!(plan.nodes[1].total_ms, Some(28.0));
        assert_eq!(plan.nodes[0].self_ms, Some(2.0));
        assert_eq!(plan.nodes[1].label(), "Parallel Seq Scan on payments");
        let delete = analysed(
            json!({"Node Type": "ModifyTable", "Operation": "Delete", "Relation Name": "t",
                   "Alias": "t", "Total Cost": 1.0, "Plan Rows": 0}),
            0.1,
            0.1,
        );
        assert_eq!(delete.nodes[0].label(), "Delete on t");
        let hashed = analysed(
            json!({"Node Type": "Aggregate", "Strategy": "Hashed", "Total Cost": 1.0,
                   "Plan Rows": 1}),
            0.1,
            0.1,
        );
        assert_eq!(hashed.nodes[0].label(), "HashAggregate");
    }

    #[test]
    fn plain_explain_picks_the_costliest_by_self_cost() {
        let plan = Plan::from_json(
            &json!([{"Plan": {"Node Type": "Sort", "Total Cost": 120.0, "Plan Rows": 10,
                     "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t",
                                "Total Cost": 100.0, "Plan Rows": 10}]},
                     "Planning Time": 0.1}])
            .to_string(),
        )
        .unwrap();
        assert!(!plan.analyzed());
        assert_eq!(plan.costliest, Some(1));
        assert_eq!(plan.nodes[0].total_ms, None);
        assert_eq!(plan.nodes[0].misestimate(), None);
    }

    #[test]
    fn never_executed_nodes_have_no_times() {
        let plan = analysed(
            json!({"Node Type": "Append", "Total Cost": 1.0, "Plan Rows": 1,
                   "Actual Total Time": 0.1, "Actual Rows": 0, "Actual Loops": 1,
                   "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 1.0,
                              "Plan Rows": 1, "Actual Total Time": 0.0, "Actual Rows": 0,
                              "Actual Loops": 0}]}),
            0.1,
            0.1,
        );
        assert!(!plan.nodes[1].executed());
        assert_eq!(plan.nodes[1].total_ms, None);
        assert_eq!(plan.nodes[0].self_ms, Some(0.1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Plan::from_json("[]").is_err());
        assert!(Plan::from_json("{").is_err());
        assert!(Plan::from_json(r#"[{"Plan": {"Node Type": 3}}]"#).is_err());
        assert!(RunSummary::from_json("[1]").is_err());
    }
}
