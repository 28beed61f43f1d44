//! Findings: diagnostics computed from an analysed plan, each with a
//! severity, the node it points to, what is wrong and what to do.
//!
//! One rule per file, Squawk style: a stable kebab-case code, the check,
//! its thresholds as named constants saying why, and its tests. Pure logic:
//! a rule sees the plan and, when it suggests an index, what the catalog
//! says about the plan's tables ([`Tables`]), and nothing else.

mod disk_reads;
mod function_time;
mod hash_spill;
mod heap_fetches;
mod index_cond;
mod index_filter;
mod jit;
mod join_filter;
mod lossy_bitmap;
mod misestimate;
mod nested_loop;
mod planning;
pub mod predicates;
mod seq_scan;
mod sort_spill;
mod workers;

use super::tables::{IndexAdvice, Tables};
pub use crate::finding::{Finding, Saving, Severity, Subject};
use crate::pg::plan::{Node, Plan};
pub use crate::text::count;
use predicates::Constrained;

/// A rule: its code and its check.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable kebab-case code, as shown in reports and matched by pipelines.
    pub code: &'static str,
    /// Finds what the rule is about.
    pub check: Check,
    /// How its findings estimate the time acting on them would save.
    pub saving: Estimate,
}

/// How a rule's findings estimate the time acting on them would save, in
/// one run: at most the time of the work the fix removes, as the run
/// measured it (PEV2's and pgMustard's reading of a plan: a node's own
/// time is what its problem can cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// The node's own time: the fix removes what the node does badly (a
    /// spill, a filter's discarded rows, a recheck, heap fetches).
    NodeOwn,
    /// The node's time with everything below it: the fix replaces all of
    /// it (sequential scans, read through an index instead).
    NodeWhole,
    /// The time of the node's inner side: the work a nested loop repeats.
    InnerSide,
    /// The time spent reading blocks from the operating system (I/O
    /// timing, with `track_io_timing` on; not estimated without it).
    ReadTime,
    /// The planning time: what a prepared statement's generic plan saves.
    Planning,
    /// The rule's own estimate, which it gives each finding (JIT's wall
    /// time, which only the rule works out).
    ByRule,
    /// Not estimated: the fix changes the plan in ways one run cannot
    /// price (a misestimate, workers that did not start).
    Unknown,
}

impl Estimate {
    /// The saving of `finding` (about a node, or the statement) in `plan`.
    fn saving(self, plan: &Plan, finding: &Finding) -> Option<Saving> {
        let subject = finding.node().map(|id| &plan.nodes[id]);
        let (ms, basis) = match self {
            Estimate::NodeOwn => (subject?.self_ms?, "the node's own time"),
            Estimate::NodeWhole => (subject?.total_ms?, "the node's time with all below it"),
            Estimate::InnerSide => (
                plan.children(subject?).nth(1)?.total_ms?,
                "the time of the inner side the loop repeats",
            ),
            Estimate::ReadTime => (
                plan.root().raw.io_read_ms?,
                "the time spent reading blocks (track_io_timing)",
            ),
            Estimate::Planning => (plan.planning_ms?, "the planning time"),
            Estimate::ByRule => return finding.saving.clone(),
            Estimate::Unknown => return None,
        };
        Saving::of(ms, plan, basis)
    }
}

impl Saving {
    /// `ms` of `plan`'s execution, saved as `basis` says.
    pub fn of(ms: f64, plan: &Plan, basis: &'static str) -> Option<Saving> {
        let execution = plan.execution_ms.filter(|ms| *ms > 0.0)?;
        Some(Saving {
            ms,
            share: (ms / execution).min(1.0),
            basis,
        })
    }
}

/// How a rule looks at a plan.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// Each node on its own.
    EachNode(fn(&Node) -> Option<Finding>),
    /// The plan as a whole (nodes in their context, statement-wide numbers).
    Plan(fn(&Plan) -> Vec<Finding>),
    /// Each node with what the catalog says about the plan's tables: for
    /// rules that suggest an index.
    EachNodeWithTables(fn(&Node, &Tables) -> Option<Finding>),
    /// The plan as a whole with what the catalog says about its tables.
    PlanWithTables(fn(&Plan, &Tables) -> Vec<Finding>),
    /// The plan as a whole, for a rule that cannot judge without the
    /// catalog: `tables` names the tables to look up for it, whatever the
    /// other rules found.
    PlanNeedingTables {
        tables: fn(&Plan) -> Vec<&str>,
        check: fn(&Plan, &Tables) -> Vec<Finding>,
    },
}

impl Rule {
    /// The rule's findings in `plan`, whose tables are `tables`.
    pub fn findings(&self, plan: &Plan, tables: &Tables) -> Vec<Finding> {
        match self.check {
            Check::EachNode(check) => plan.nodes.iter().filter_map(check).collect(),
            Check::Plan(check) => check(plan),
            Check::EachNodeWithTables(check) => plan
                .nodes
                .iter()
                .filter_map(|node| check(node, tables))
                .collect(),
            Check::PlanWithTables(check) | Check::PlanNeedingTables { check, .. } => {
                check(plan, tables)
            }
        }
        .into_iter()
        .map(|mut finding| {
            finding.saving = self.saving.saving(plan, &finding);
            finding
        })
        .collect()
    }
}

/// Every rule, in the order their findings are listed at equal severity.
pub const RULES: &[Rule] = &[
    seq_scan::RULE,
    index_filter::RULE,
    index_cond::RULE,
    nested_loop::RULE,
    misestimate::RULE,
    sort_spill::RULE,
    hash_spill::RULE,
    lossy_bitmap::RULE,
    join_filter::RULE,
    heap_fetches::RULE,
    function_time::RULE,
    workers::RULE,
    jit::RULE,
    disk_reads::RULE,
    planning::RULE,
];

impl Check {
    /// Whether the rule reads the catalog's facts about the plan's tables.
    fn reads_tables(self) -> bool {
        matches!(
            self,
            Check::EachNodeWithTables(_)
                | Check::PlanWithTables(_)
                | Check::PlanNeedingTables { .. }
        )
    }
}

/// The tables `findings` (made without the catalog's facts) would name an
/// index on: those scanned below each finding of a rule that reads tables;
/// and those the rules that cannot judge without the catalog need. Only
/// these are worth looking up: a plan can scan a thousand partitions.
pub fn tables_to_look_up<'a>(plan: &'a Plan, findings: &[Finding]) -> Vec<&'a str> {
    let needed = RULES.iter().flat_map(|rule| match rule.check {
        Check::PlanNeedingTables { tables, .. } => tables(plan),
        _ => Vec::new(),
    });
    let below_findings = findings
        .iter()
        .filter(|finding| {
            RULES
                .iter()
                .any(|rule| rule.code == finding.code && rule.check.reads_tables())
        })
        .filter_map(Finding::node)
        .flat_map(|node| plan.subtree(&plan.nodes[node]))
        .filter_map(|below| below.raw.relation_name.as_deref());
    let mut relations: Vec<&str> = Vec::new();
    for relation in needed.chain(below_findings) {
        if !relations.contains(&relation) {
            relations.push(relation);
        }
    }
    relations
}

/// Every finding of every rule in `plan`, whose tables are `tables`,
/// [`rank`]ed. None is about a node that runs only what perfaudit's
/// rewrite added: the user's statement is judged, not perfaudit's bounds.
pub fn check(plan: &Plan, tables: &Tables) -> Vec<Finding> {
    let mut findings: Vec<Finding> = RULES
        .iter()
        .flat_map(|rule| rule.findings(plan, tables))
        .filter(|finding| !finding.node().is_some_and(|id| plan.added.contains(id)))
        .collect();
    rank(&mut findings);
    findings
}

/// Orders `findings` as pgMustard ranks its tips: the largest estimated
/// saving first, those without an estimate after; at equal saving the
/// most severe first, then rule order, then node order (the sort is
/// stable).
pub fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let saved = |f: &Finding| f.saving.as_ref().map_or(-1.0, |s| s.ms);
        saved(b)
            .total_cmp(&saved(a))
            .then(b.severity.cmp(&a.severity))
    });
}

/// `0.02%`, `45%`: enough digits to tell small shares apart.
pub fn percent(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if percent < 1.0 {
        format!("{percent:.2}%")
    } else {
        format!("{percent:.0}%")
    }
}

/// The names a node's own columns are qualified with in its conditions.
fn owner(node: &Node) -> Vec<&str> {
    [&node.raw.alias, &node.raw.relation_name]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

/// The index on `columns` of the table the plan calls `relation`, its key
/// ordered as advise orders it (equality columns most distinct first, then
/// one range column), with the statements that build it without blocking
/// writes; for a table the catalog did not resolve, its key alone; none
/// where an existing index already gives it.
/// explain reads one plan: advise costs the index before it is built.
fn index_advice(tables: &Tables, relation: &str, columns: &Constrained) -> Advice {
    let key = columns.index_key(|column| tables.distinct(relation, column));
    let text = match tables.advice(relation, &key, columns.equality.len()) {
        Some(IndexAdvice::Build(ddl)) => {
            return Advice {
                text: UNPROVEN_BUILD.to_owned(),
                ddl: Some(ddl),
            };
        }
        Some(IndexAdvice::Exists(index)) => format!(
            "the index {} already leads with ({}), yet the planner did not use it here: \
             the condition may compare a cast or a function of the column, which an index on \
             the column cannot serve (compare the column itself, with a range where it is \
             cast, or index the expression), or the estimate may be off (ANALYZE the table)",
            index.name.name,
            index.leading_columns().collect::<Vec<_>>().join(", ")
        ),
        None => format!(
            "perfaudit advise proves an index on {relation} ({}) with a hypothetical index \
             first and writes its DDL",
            key.join(", ")
        ),
    };
    Advice { text, ddl: None }
}

/// What a finding says of an index with DDL before explain has proven it
/// ([`super::advised`] replaces it with advise's decision).
pub const UNPROVEN_BUILD: &str = "perfaudit advise proves it with a hypothetical index first; \
                                  the finding's DDL builds it without blocking writes";

/// What a finding says to do about an index: in words, and the DDL when
/// there is some to run.
struct Advice {
    text: String,
    ddl: Option<String>,
}

/// Bytes in a block (PostgreSQL's default `block_size`): of a table, an
/// index or a temporary file.
const BLOCK_BYTES: f64 = 8192.0;

/// The kB of temporary files `node` wrote itself, when it wrote some.
fn temp_written_kb(plan: &Plan, node: &Node) -> Option<f64> {
    let blocks = plan
        .own(node, |raw| raw.temp_written_blocks)
        .filter(|b| *b > 0.0)?;
    Some(blocks * BLOCK_BYTES / 1024.0)
}

/// A `work_mem` that would have held `kb` kilobytes in memory: twice the
/// spilled size, because rows take more room in memory than in temporary
/// files, rounded up to a power of two megabytes, at least 8MB.
fn work_mem_for(kb: f64) -> String {
    let megabytes = (kb * 2.0 / 1024.0).max(8.0);
    format!("{}MB", 2f64.powf(megabytes.log2().ceil()) as u64)
}

/// `SET LOCAL work_mem = '64MB'`, with why it is per query.
fn work_mem_advice(kb: f64) -> String {
    format!(
        "give this query more work_mem, about SET LOCAL work_mem = '{}' in its transaction \
         (work_mem is per operation and per connection: raise it for this query or role, not \
         server-wide)",
        work_mem_for(kb)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables;
    use crate::pg::plan::tests::analysed;
    use serde_json::json;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut codes: Vec<_> = RULES.iter().map(|rule| rule.code).collect();
        for code in &codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !code.starts_with('-')
                    && !code.ends_with('-'),
                "{code}"
            );
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), RULES.len());
    }

    /// A cold, slow, selective scan of payments.
    fn cold_selective_scan() -> Plan {
        analysed(
            json!({"Node Type": "Seq Scan", "Relation Name": "payments", "Alias": "payments",
                   "Total Cost": 1.0, "Plan Rows": 1, "Actual Total Time": 900.0,
                   "Actual Rows": 1, "Actual Loops": 1, "Filter": "(user_id = 1)",
                   "Rows Removed by Filter": 2000000, "Shared Hit Blocks": 0,
                   "Shared Read Blocks": 30000}),
            0.1,
            900.0,
        )
    }

    #[test]
    fn findings_come_most_severe_first() {
        // info (disk reads) and critical (seq scan).
        let plan = cold_selective_scan();
        let severities: Vec<_> = check(&plan, &Tables::default())
            .iter()
            .map(|f| f.severity)
            .collect();
        assert_eq!(severities, [Severity::Critical, Severity::Info]);
    }

    #[test]
    fn only_tables_below_index_findings_are_looked_up() {
        let plan = cold_selective_scan();
        let findings = check(&plan, &Tables::default());
        assert_eq!(tables_to_look_up(&plan, &findings), ["payments"]);
        // disk-reads-dominate alone suggests no index.
        let reads: Vec<Finding> = findings
            .into_iter()
            .filter(|f| f.code == "disk-reads-dominate")
            .collect();
        assert_eq!(reads.len(), 1);
        assert!(tables_to_look_up(&plan, &reads).is_empty());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(percent(0.00023), "0.02%");
        assert_eq!(percent(0.456), "46%");
    }

    #[test]
    fn index_advice_is_advises_ddl_in_advises_order() {
        let columns = Constrained {
            equality: vec!["status".into(), "user_id".into()],
            range: vec!["created_at".into()],
        };
        let unknown = index_advice(&Tables::default(), "payments", &columns);
        assert_eq!(
            unknown.text,
            "perfaudit advise proves an index on payments (status, user_id, created_at) with a \
             hypothetical index first and writes its DDL"
        );
        assert_eq!(unknown.ddl, None);
        let known = index_advice(&tables::payments(), "payments", &columns);
        assert_eq!(
            known.text,
            "perfaudit advise proves it with a hypothetical index first; the finding's DDL \
             builds it without blocking writes"
        );
        assert_eq!(
            known.ddl.as_deref(),
            Some(
                "CREATE INDEX CONCURRENTLY \"idx_payments_user_id_status_created_at_2\" ON \
                 \"public\".\"payments\" (\"user_id\", \"status\", \"created_at\");"
            )
        );
    }

    #[test]
    fn work_mem_is_a_power_of_two_with_headroom() {
        assert_eq!(work_mem_for(100.0), "8MB");
        assert_eq!(work_mem_for(20_000.0), "64MB");
        assert_eq!(work_mem_for(600_000.0), "2048MB");
    }
}
