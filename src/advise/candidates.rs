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

/// The most partial indexes proposed per condition: each is a shape of
/// the scan's other columns under the condition, and beyond the first few
/// they only add trials.
pub const MAX_PARTIAL_SHAPES: usize = 3;

/// The operator class with which a B-tree on a text column serves `LIKE
/// 'abc%'` whatever the database's collation (the default one does only
/// under the `C` collation). The server refuses it for a column of another
/// type, and the candidate is then not tried.
pub const PATTERN_OPCLASS: &str = "text_pattern_ops";

/// The most distinct values a column compared with a constant may have for
/// a partial index on that condition: a state (`status = 'pending'`, a
/// kind, a flag) that the application asks for by name, not a key
/// (`staff_id = 3`) that each query asks with another value.
pub const MAX_STATE_VALUES: f64 = 10.0;

/// The candidate indexes for `scan` (whose columns all exist):
/// [`column_shapes`]; an expression index for each expression of its
/// columns it compares with a value, alone and after the leading equality
/// columns; a `text_pattern_ops` index of each column matched with `LIKE`
/// against a fixed prefix; and for each conjunct of a column and a constant
/// (`status = 'pending'` on a column of at most [`MAX_STATE_VALUES`]
/// values, `refunded_at IS NULL`), partial indexes of the other columns'
/// shapes under it (or of the column itself). Whether an
/// expression index is allowed (its functions IMMUTABLE) and whether a
/// partial index pays (its condition rare), the server and the planner say
/// when each is tried as a hypothetical index.
pub fn candidates(scan: &Scan, distinct: impl Fn(&str) -> f64) -> Vec<Wanted> {
    let mut found: Vec<Wanted> = Vec::new();
    let mut push = |wanted: Wanted| {
        if !found.contains(&wanted) {
            found.push(wanted);
        }
    };
    for columns in column_shapes(scan, &distinct) {
        push(sorted(Wanted::columns(&columns), scan));
    }
    let leading: Vec<Key> = equality_order(&scan.equality, &distinct)
        .into_iter()
        .take(MAX_INDEX_COLUMNS - 1)
        .map(Key::Column)
        .collect();
    for compared in &scan.expressions {
        let expression = Key::Expression(compared.expression.clone());
        push(Wanted::new(vec![expression.clone()], None));
        if !leading.is_empty() {
            push(Wanted::new(
                leading.iter().cloned().chain([expression]).collect(),
                None,
            ));
        }
    }
    for column in &scan.prefixes {
        let mut pattern = Wanted::columns(std::slice::from_ref(column));
        pattern.opclasses = vec![Some(PATTERN_OPCLASS.to_owned())];
        push(pattern);
    }
    let state = |column: &str| (1.0..=MAX_STATE_VALUES).contains(&distinct(column));
    for condition in scan
        .conditions
        .iter()
        .filter(|condition| !condition.equals || state(&condition.column))
    {
        let others = Scan {
            equality: without(&scan.equality, &condition.column),
            range: without(&scan.range, &condition.column),
            ..scan.clone()
        };
        let mut shapes = column_shapes(&others, &distinct);
        if shapes.is_empty() {
            shapes.push(vec![condition.column.clone()]);
        }
        for columns in shapes.into_iter().take(MAX_PARTIAL_SHAPES) {
            push(Wanted {
                predicate: Some(condition.predicate.clone()),
                ..Wanted::columns(&columns)
            });
        }
    }
    found
}

/// `wanted`, with the keys that end it in `scan`'s `ORDER BY` sorting
/// `DESC` where that order reverses (`ORDER BY a, b DESC` gets `(a, b
/// DESC)`): a B-tree gives a mixed order only so.
fn sorted(mut wanted: Wanted, scan: &Scan) -> Wanted {
    let order: Vec<Key> = scan.order.iter().cloned().map(Key::Column).collect();
    if !scan.order_reversed.contains(&true) || !wanted.keys.ends_with(&order) {
        return wanted;
    }
    let start = wanted.keys.len() - order.len();
    wanted.descending[start..].copy_from_slice(&scan.order_reversed);
    wanted
}

/// `columns` without `column`.
fn without(columns: &[String], column: &str) -> Vec<String> {
    columns.iter().filter(|c| *c != column).cloned().collect()
}

/// The B-tree shapes of `scan`'s columns: each column alone, the equality
/// columns together — in [`equality_order`], most distinct values first —
/// with a range column or the sort after them, and the sort alone.
/// `distinct` gives a column's number of distinct values (0 when unknown).
fn column_shapes(scan: &Scan, distinct: impl Fn(&str) -> f64) -> Vec<Vec<String>> {
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
}

/// The existing index that already gives `candidate`, a full index on
/// columns: one that serves any query on its leading columns, and they
/// start with the candidate's, in order. Whether an existing index serves
/// what an expression or a partial index would, the planner says (with
/// the candidate as a hypothetical index, the cost falls or not).
pub fn already_given<'a>(candidate: &Wanted, existing: &'a [Index]) -> Option<&'a Index> {
    if candidate.predicate.is_some() || !candidate.plain_keys() {
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
            order_reversed: vec![false; order.len()],
            ..Scan::default()
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

    #[test]
    fn expressions_and_conditions_give_expression_and_partial_indexes() {
        use crate::sql::predicates::Use;
        use crate::sql::scans::{Compared, Condition};
        let mut payments = scan(&["user_id", "status"], &[], &["created_at"]);
        payments.expressions = vec![Compared {
            expression: "lower(currency)".into(),
            columns: vec!["currency".into()],
            kind: Use::Equality,
        }];
        payments.conditions = vec![
            Condition {
                column: "status".into(),
                predicate: "status = 'pending'".into(),
                equals: true,
            },
            // A key compared with one of its many values is no state.
            Condition {
                column: "user_id".into(),
                predicate: "user_id = 42".into(),
                equals: true,
            },
        ];
        let found: Vec<String> = candidates(&payments, distinct)
            .iter()
            .map(Wanted::describe)
            .collect();
        assert_eq!(
            found,
            [
                "(user_id)",
                "(status)",
                "(user_id, status)",
                "(created_at)",
                "(user_id, status, created_at)",
                "(lower(currency))",
                "(user_id, status, lower(currency))",
                "(user_id) WHERE status = 'pending'",
                "(created_at) WHERE status = 'pending'",
                "(user_id, created_at) WHERE status = 'pending'",
            ]
        );
        // A condition on the only column: a partial index of that column.
        let mut pending = scan(&["status"], &[], &[]);
        pending.conditions = payments.conditions[..1].to_vec();
        let found: Vec<String> = candidates(&pending, distinct)
            .iter()
            .map(Wanted::describe)
            .collect();
        assert_eq!(found, ["(status)", "(status) WHERE status = 'pending'"]);
    }

    #[test]
    fn a_mixed_order_gets_its_reversed_keys_descending() {
        let mut mixed = scan(&["user_id"], &[], &["created_at", "id"]);
        mixed.order_reversed = vec![false, true];
        let found: Vec<String> = candidates(&mixed, distinct)
            .iter()
            .map(Wanted::describe)
            .collect();
        assert!(
            found.contains(&"(created_at, id DESC)".to_owned()),
            "{found:?}"
        );
        assert!(
            found.contains(&"(user_id, created_at, id DESC)".to_owned()),
            "{found:?}"
        );
        assert!(found.contains(&"(user_id)".to_owned()), "{found:?}");
    }
}
