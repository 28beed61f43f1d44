//! Candidate indexes for one scan, and whether an existing index already
//! gives them. Pure: the catalog facts come in as data.
//!
//! The shapes follow the usual B-tree rule — equality columns first, then
//! one range or the sort — and the planner, with each candidate created as
//! a hypothetical index, decides which of them pay.

use crate::indexes::ddl::Wanted;
use crate::indexes::spec::Key;
use crate::pg::catalog::Index;
use crate::sql::predicates::equality_order;
use crate::sql::scans::Scan;

/// The widest index advise proposes. Each further column makes the index
/// larger and every write slower, and past three equality or range columns
/// the rows left to filter are rarely worth it.
pub const MAX_INDEX_COLUMNS: usize = 3;

/// The candidate indexes for `scan` (whose columns all exist): each column
/// alone, the equality columns together — in [`equality_order`], most
/// distinct values first — with a range column or the sort after them, and
/// the sort alone. `distinct` gives a column's number
/// of distinct values (0 when unknown).
pub fn candidates(scan: &Scan, distinct: impl Fn(&str) -> f64) -> Vec<Wanted> {
    let equality = equality_order(&scan.equality, distinct);
    let leading = &equality[..equality.len().min(MAX_INDEX_COLUMNS - 1)];

    let mut shapes: Vec<Vec<String>> = Vec::new();
    shapes.extend(
        scan.equality
            .iter()
            .chain(&scan.range)
            .map(|c| vec![c.clone()]),
    );
    for width in 2..=equality.len().min(MAX_INDEX_COLUMNS) {
        shapes.push(equality[..width].to_vec());
    }
    if !leading.is_empty() {
        for range in &scan.range {
            shapes.push(leading.iter().chain([range]).cloned().collect());
        }
    }
    if !scan.order.is_empty() {
        shapes.push(scan.order.clone());
        shapes.push(leading.iter().chain(&scan.order).cloned().collect());
    }

    let mut unique: Vec<Vec<String>> = Vec::new();
    for shape in shapes {
        let mut columns: Vec<String> = Vec::new();
        for column in shape {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns.truncate(MAX_INDEX_COLUMNS);
        if !columns.is_empty() && !unique.contains(&columns) {
            unique.push(columns);
        }
    }
    unique
        .iter()
        .map(|columns| Wanted::columns(columns))
        .collect()
}

/// The existing index that already gives `candidate`, a full index on
/// columns: one that serves any query on its leading columns, and they
/// start with the candidate's, in order. Whether an existing index serves
/// what an expression or a partial index would, the planner says (with
/// the candidate as a hypothetical index, the cost falls or not).
pub fn already_given<'a>(candidate: &Wanted, existing: &'a [Index]) -> Option<&'a Index> {
    if candidate.predicate.is_some() {
        return None;
    }
    let columns: Option<Vec<String>> = candidate
        .keys
        .iter()
        .map(|key| match key {
            Key::Column(column) => Some(column.clone()),
            Key::Expression(_) => None,
        })
        .collect();
    let columns = columns?;
    existing.iter().find(|index| index.gives(&columns, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(equality: &[&str], range: &[&str], order: &[&str]) -> Scan {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Scan {
            relation: vec!["payments".into()],
            equality: strings(equality),
            range: strings(range),
            order: strings(order),
        }
    }

    fn shapes(found: Vec<Wanted>) -> Vec<String> {
        found.into_iter().map(|c| c.key_texts().join(",")).collect()
    }

    fn distinct(column: &str) -> f64 {
        match column {
            "user_id" => 4000.0,
            "status" => 4.0,
            "currency" => 5.0,
            _ => 0.0,
        }
    }

    #[test]
    fn equality_columns_go_first_most_selective_first() {
        assert_eq!(
            shapes(candidates(
                &scan(&["status", "user_id"], &[], &[]),
                distinct
            )),
            ["status", "user_id", "user_id,status"]
        );
        assert_eq!(
            shapes(candidates(
                &scan(&["status", "user_id", "currency"], &["created_at"], &[]),
                distinct
            )),
            [
                "status",
                "user_id",
                "currency",
                "created_at",
                "user_id,currency",
                "user_id,currency,status",
                "user_id,currency,created_at"
            ]
        );
    }

    #[test]
    fn sorts_follow_the_equality_columns() {
        assert_eq!(
            shapes(candidates(&scan(&[], &[], &["created_at"]), distinct)),
            ["created_at"]
        );
        assert_eq!(
            shapes(candidates(
                &scan(&["user_id"], &["created_at"], &["created_at"]),
                distinct
            )),
            ["user_id", "created_at", "user_id,created_at"]
        );
    }

    #[test]
    fn nothing_asked_gives_no_candidate() {
        assert!(candidates(&scan(&[], &[], &[]), distinct).is_empty());
    }

    #[test]
    fn an_index_gives_the_prefixes_of_its_key() {
        let existing = [
            Index::btree("partial", &["status"], Some("status = 'failed'")),
            Index::btree("user_status", &["user_id", "status"], None),
        ];
        let given = |columns: &[&str]| {
            let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            already_given(&Wanted::columns(&columns), &existing).map(|i| i.name.name.clone())
        };
        assert_eq!(given(&["user_id"]).as_deref(), Some("user_status"));
        assert_eq!(
            given(&["user_id", "status"]).as_deref(),
            Some("user_status")
        );
        assert_eq!(given(&["status"]), None);
        assert_eq!(given(&["status", "user_id"]), None);
    }
}
