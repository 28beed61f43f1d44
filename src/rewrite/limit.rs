//! The LIMIT rule: bound a query that has no limit of its own.

use super::Decision;
use super::layout::ClauseKind;
use super::scope::aggregates_without_group_by;
use super::target::Target;

/// Decides the LIMIT for `target`.
pub(crate) fn decide(target: &Target, limit: u64) -> Decision {
    let own = [ClauseKind::Limit, ClauseKind::LimitAll, ClauseKind::Fetch];
    if let Some(own) = target.clause(&own) {
        return Decision::Skip(format!("kept the query's own {own}"));
    }
    if target.select().is_some_and(aggregates_without_group_by) {
        return Decision::Skip(
            "it aggregates without GROUP BY, so it returns at most one row".into(),
        );
    }
    let clause = format!("LIMIT {limit}");
    let detail = match target.layout.own(ClauseKind::Offset) {
        Some(_) => format!("{clause}, before the query's own OFFSET"),
        None => clause.clone(),
    };
    Decision::Add { clause, detail }
}
