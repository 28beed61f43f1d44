//! Which columns a condition constrains, and how a B-tree index uses them:
//! the one classifier behind `perfaudit advise` (over a statement's WHERE
//! and ON) and `perfaudit explain` (over a plan's filter text), and the one
//! rule that orders an index key from it.
//!
//! Only conjuncts a B-tree can seek on count: `col = x`, `col IN (...)`,
//! `col = ANY (...)` and `col IS NULL` (equality); `col < x`, `<=`, `>`,
//! `>=` and `col BETWEEN a AND b` (range). Either side of a comparison may
//! hold the column (`42 = user_id`). A cast of the column to `text` or
//! `varchar` is looked through, since PostgreSQL prints `(status)::text`
//! for a `varchar` column compared with text; any other cast of it
//! (`rented_at::date`), an `OR`, a `NOT`, a negated `IN` or a function of
//! a column constrains nothing an index on the column can use.
//!
//! Which expression names which column is the caller's business (a
//! resolver): advise resolves names against a query's FROM list, explain
//! against the plan node's table. The caller also decides what a column
//! may be compared with to count (a value, a join partner).

use sqlparser::ast::{BinaryOperator, DataType, Expr, InTarget, Query};

/// How a B-tree index uses a constrained column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `=`, `IN`, `= ANY`, `IS NULL`: the index seeks one value, or a few.
    Equality,
    /// `<`, `<=`, `>`, `>=`, `BETWEEN`: the index scans a range.
    Range,
}

/// What a constrained column is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand<'a, C> {
    /// A column, as the resolver named it: a join key, or a comparison of
    /// two columns of one row.
    Column(C),
    /// Anything else: a constant, a parameter, an expression, a column the
    /// resolver does not know (another table's).
    Other(&'a Expr),
    /// The rows of `IN (SELECT ...)`.
    Subquery(&'a Query),
}

/// One column a conjunct constrains.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint<'a, C> {
    /// The column, as the resolver named it.
    pub column: C,
    /// How an index uses it.
    pub kind: Use,
    /// What it is compared with: the other side of a comparison, the items
    /// of an `IN` list, the array of `= ANY`, the two bounds of `BETWEEN`;
    /// nothing for `IS NULL`.
    pub with: Vec<Operand<'a, C>>,
}

/// The constraints of `condition`'s conjuncts on the columns `resolve`
/// names, in the order they are written. `resolve` sees a plain reference
/// (parentheses and text casts already taken off) and says which column it is,
/// or `None` when it is no column of interest.
pub fn constraints<'a, C>(
    condition: &'a Expr,
    resolve: impl Fn(&Expr) -> Option<C>,
) -> Vec<Constraint<'a, C>> {
    let mut found = Vec::new();
    for conjunct in conjuncts(condition) {
        classify(conjunct, &resolve, &mut found);
    }
    found
}

/// The terms of `condition` joined by `AND`, parentheses taken off.
pub fn conjuncts(condition: &Expr) -> Vec<&Expr> {
    match condition {
        Expr::Nested(inner) => conjuncts(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut terms = conjuncts(left);
            terms.extend(conjuncts(right));
            terms
        }
        term => vec![term],
    }
}

fn classify<'a, C>(
    conjunct: &'a Expr,
    resolve: &impl Fn(&Expr) -> Option<C>,
    found: &mut Vec<Constraint<'a, C>>,
) {
    let mut add = |column: &Expr, kind: Use, with: Vec<Operand<'a, C>>| {
        if let Some(column) = resolve(indexed(column)) {
            found.push(Constraint { column, kind, with });
        }
    };
    match conjunct {
        Expr::BinaryOp { left, op, right } => {
            let kind = match op {
                BinaryOperator::Eq => Use::Equality,
                BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => Use::Range,
                _ => return,
            };
            // Either side may hold the column; with a column on both sides,
            // each is constrained by the other.
            add(left, kind, vec![operand(right, resolve)]);
            add(right, kind, vec![operand(left, resolve)]);
        }
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => add(left, Use::Equality, vec![operand(right, resolve)]),
        Expr::In {
            expr,
            target,
            negated: false,
            ..
        } => {
            let with = match target {
                InTarget::List(list) => list.iter().map(|e| operand(e, resolve)).collect(),
                InTarget::Subquery(query) => vec![Operand::Subquery(query)],
                _ => return,
            };
            add(expr, Use::Equality, with);
        }
        Expr::IsNull(inner) => add(inner, Use::Equality, Vec::new()),
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => add(
            expr,
            Use::Range,
            vec![operand(low, resolve), operand(high, resolve)],
        ),
        _ => {}
    }
}

/// The expression an index on a column must match for `expr` to be served
/// by it: `expr` without parentheses, and without a cast to `text` or
/// `varchar`, which is how PostgreSQL prints a `varchar` column compared
/// as text (`(email)::text = 'a'::text`), served by an index on the
/// column. Any other cast (`rented_at::date`) is a function of the
/// column, which an index on the column cannot serve: it stays, and names
/// no column.
fn indexed(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => indexed(inner),
        Expr::Cast {
            expr: inner,
            data_type: DataType::Text | DataType::Varchar(_) | DataType::CharacterVarying(_),
            ..
        } => indexed(inner),
        other => other,
    }
}

/// `expr` without the parentheses and casts around it.
fn plain(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => plain(inner),
        other => other,
    }
}

fn operand<'a, C>(expr: &'a Expr, resolve: &impl Fn(&Expr) -> Option<C>) -> Operand<'a, C> {
    match resolve(plain(expr)) {
        Some(column) => Operand::Column(column),
        None => Operand::Other(expr),
    }
}

/// Equality columns in the order a B-tree key should list them: most
/// distinct values first, so that the index's leading columns narrow the
/// most and its prefixes serve the most lookups. `distinct` gives a
/// column's number of distinct values (0 when unknown); the sort is
/// stable, so columns the statistics cannot tell apart keep their order.
pub fn equality_order(columns: &[String], distinct: impl Fn(&str) -> f64) -> Vec<String> {
    let mut ordered = columns.to_vec();
    ordered.sort_by(|a, b| distinct(b).total_cmp(&distinct(a)));
    ordered
}

/// The key of the B-tree index that serves a conjunction best: its
/// equality columns in [`equality_order`], then one range column (an index
/// seeks on equalities and then scans one range; columns after a range
/// only filter).
pub fn index_key(
    equality: &[String],
    range: &[String],
    distinct: impl Fn(&str) -> f64,
) -> Vec<String> {
    let mut key = equality_order(equality, distinct);
    if let Some(range) = range.iter().find(|c| !key.contains(c)) {
        key.push(range.clone());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn expr(text: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    /// Unqualified names are columns, qualified ones are not.
    fn column(expr: &Expr) -> Option<String> {
        match expr {
            Expr::Identifier(ident) => Some(ident.value.clone()),
            _ => None,
        }
    }

    /// Each constraint as `column kind with`, operands as `col:` or `x`.
    fn read(condition: &str) -> Vec<String> {
        let condition = expr(condition);
        constraints(&condition, column)
            .into_iter()
            .map(|c| {
                let with: Vec<String> = c
                    .with
                    .iter()
                    .map(|o| match o {
                        Operand::Column(c) => format!("col:{c}"),
                        Operand::Other(e) => e.to_string(),
                        Operand::Subquery(_) => "subquery".to_owned(),
                    })
                    .collect();
                format!("{} {:?} [{}]", c.column, c.kind, with.join(", "))
            })
            .collect()
    }

    #[test]
    fn equalities_and_ranges_in_the_order_written() {
        assert_eq!(
            read(
                "a = 1 AND (2 < b) AND c IN (1, $1) AND d = ANY ($2) AND e IS NULL \
                 AND f BETWEEN 1 AND 2 AND g >= now()"
            ),
            [
                "a Equality [1]",
                "b Range [2]",
                "c Equality [1, $1]",
                "d Equality [$2]",
                "e Equality []",
                "f Range [1, 2]",
                "g Range [now()]",
            ]
        );
        assert_eq!(read("x IN (SELECT 1)"), ["x Equality [subquery]"]);
    }

    #[test]
    fn text_casts_and_parentheses_are_looked_through() {
        assert_eq!(
            read(
                "(((status)::text = 'failed'::text)) AND ((user_id = 42)) \
                 AND (email)::character varying = $1"
            ),
            [
                "status Equality ['failed'::TEXT]",
                "user_id Equality [42]",
                "email Equality [$1]"
            ]
        );
    }

    #[test]
    fn a_column_on_each_side_constrains_both() {
        assert_eq!(
            read("a = b AND c < t.d"),
            ["a Equality [col:b]", "b Equality [col:a]", "c Range [t.d]"]
        );
    }

    #[test]
    fn what_no_index_seeks_on_constrains_nothing() {
        for condition in [
            "a = 1 OR b = 2",
            "NOT (a = 1)",
            "a <> 1",
            "a NOT IN (1, 2)",
            "a IS NOT NULL",
            "a NOT BETWEEN 1 AND 2",
            "lower(a) = 'x'",
            "(a)::date = '2024-03-01'::date",
            "CAST(a AS bigint) > 5",
            "a::timestamp BETWEEN $1 AND $2",
            "a LIKE 'x%'",
            "t.a = 1",
        ] {
            assert!(read(condition).is_empty(), "{condition}");
        }
    }

    #[test]
    fn keys_put_the_most_distinct_equality_first_then_one_range() {
        let columns = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let distinct = |c: &str| match c {
            "user_id" => 4000.0,
            "status" => 4.0,
            _ => 0.0,
        };
        assert_eq!(
            index_key(
                &columns(&["status", "user_id"]),
                &columns(&["created_at", "amount"]),
                distinct
            ),
            ["user_id", "status", "created_at"]
        );
        // Without statistics, the order written.
        assert_eq!(
            index_key(&columns(&["status", "user_id"]), &[], |_| 0.0),
            ["status", "user_id"]
        );
        // A column already in the key is no range to add.
        assert_eq!(
            index_key(&columns(&["a"]), &columns(&["a", "b"]), |_| 0.0),
            ["a", "b"]
        );
    }
}
