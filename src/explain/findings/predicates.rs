//! Which columns a plan node's condition constrains, read from the text
//! PostgreSQL prints (`Filter`, `Index Cond`, `Join Filter`), so that a
//! finding can name them and suggest the index that serves them: columns
//! compared with values ([`Constrained::parse`]) or, for joins, with the
//! other side's columns ([`Constrained::joined`]).
//!
//! The text is parsed with sqlparser and classified by
//! [`crate::sql::predicates`], as advise classifies a statement's WHERE: an
//! `OR`, a function of a column or anything unparsable names no column
//! rather than a wrong one.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Ident, visit_expressions};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::sql::predicates::{Operand, Use, constraints, index_key};

/// The columns of one table a condition constrains, split by how a B-tree
/// index uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constrained {
    /// Compared for equality (`=`, `IN`, `= ANY`, `IS NULL`), in the order
    /// they appear.
    pub equality: Vec<String>,
    /// Compared by range (`<`, `<=`, `>`, `>=`, `BETWEEN`).
    pub range: Vec<String>,
}

impl Constrained {
    /// Reads `condition` for the columns of the table known in the plan as
    /// `owner` (its alias or name): unqualified columns and those qualified
    /// by it count, when compared with something that does not involve the
    /// same table. `None` when nothing usable was found.
    pub fn parse(condition: &str, owner: &[&str]) -> Option<Constrained> {
        Constrained::read(condition, owner, Against::Value)
    }

    /// Reads `condition` for the owner's join columns: those compared with
    /// a column of the other side of a join, the tables known in the plan
    /// as `outer` (`user_id` in `(user_id = u.id)`). Comparisons with
    /// values (`amount > 0`) do not count. `None` when there are none.
    pub fn joined(condition: &str, owner: &[&str], outer: &[&str]) -> Option<Constrained> {
        Constrained::read(condition, owner, Against::Outer(outer))
    }

    fn read(condition: &str, owner: &[&str], against: Against) -> Option<Constrained> {
        let expr = expression(condition)?;
        let mut found = Constrained::default();
        for constraint in constraints(&expr, |e| own_column(e, owner)) {
            let others: Option<Vec<&Expr>> = constraint
                .with
                .iter()
                .map(|operand| match operand {
                    Operand::Other(other) => Some(*other),
                    // The owner's own column on the other side: no seek
                    // serves it; nor does a subquery PostgreSQL did not flatten.
                    Operand::Column(_) | Operand::Subquery(_) => None,
                })
                .collect();
            if others.is_some_and(|others| against.accepts_all(&others, owner)) {
                let columns = match constraint.kind {
                    Use::Equality => &mut found.equality,
                    Use::Range => &mut found.range,
                };
                push_once(columns, constraint.column);
            }
        }
        (!found.is_empty()).then_some(found)
    }

    /// Whether no column was found.
    pub fn is_empty(&self) -> bool {
        self.equality.is_empty() && self.range.is_empty()
    }

    /// The key of the B-tree index that serves the condition best
    /// ([`index_key`]): the equality columns, most distinct values first
    /// (`distinct` gives a column's number, 0 when unknown), then one range
    /// column.
    pub fn index_key(&self, distinct: impl Fn(&str) -> f64) -> Vec<String> {
        index_key(&self.equality, &self.range, distinct)
    }

    /// Every column found, equality first, each once.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.equality.clone();
        for column in &self.range {
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        columns
    }

    /// Adds `other`'s columns after this one's.
    pub fn extend(&mut self, other: Constrained) {
        for column in other.equality {
            push_once(&mut self.equality, column);
        }
        for column in other.range {
            push_once(&mut self.range, column);
        }
    }
}

/// Every column of the table known as `owner` that `condition` refers to,
/// however it uses it, each once; `None` when the text does not parse.
pub fn own_columns(condition: &str, owner: &[&str]) -> Option<Vec<String>> {
    let expr = expression(condition)?;
    let mut columns = Vec::new();
    let _ = visit_expressions(&expr, |e| {
        if let Some(column) = own_column(e, owner) {
            push_once(&mut columns, column);
        }
        ControlFlow::<()>::Continue(())
    });
    Some(columns)
}

/// A condition PostgreSQL printed, parsed; `None` when sqlparser cannot
/// read it.
pub fn expression(condition: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(condition)
        .ok()?
        .parse_expr()
        .ok()
}

/// What a column must be compared with to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against<'a> {
    /// A value: anything not involving the owner's columns (a constant, a
    /// parameter, another table's column).
    Value,
    /// A column of the other side of a join: the tables known as these.
    Outer(&'a [&'a str]),
}

impl Against<'_> {
    /// Whether `others`, all compared with a column of the owner, make it
    /// count: none involves the owner, and with `Outer`, one names an outer
    /// table's column.
    fn accepts_all(self, others: &[&Expr], owner: &[&str]) -> bool {
        let values = others.iter().all(|other| !involves(other, owner));
        match self {
            Against::Value => values,
            Against::Outer(outer) => values && others.iter().any(|other| names_any(other, outer)),
        }
    }
}

fn push_once(columns: &mut Vec<String>, column: String) {
    if !columns.contains(&column) {
        columns.push(column);
    }
}

/// The column `expr` names, when it is a column of the owner: unqualified,
/// or qualified by the owner's alias or name.
fn own_column(expr: &Expr, owner: &[&str]) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [qualifier, column] if owns(owner, qualifier) => Some(column.value.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn owns(owner: &[&str], qualifier: &Ident) -> bool {
    owner.iter().any(|name| *name == qualifier.value)
}

/// Whether `expr` refers to a column qualified by one of `tables` (`u.id`).
fn names_any(expr: &Expr, tables: &[&str]) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::CompoundIdentifier(parts) if parts.first().is_some_and(|q| owns(tables, q)) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether `expr` refers to a column of the owner.
fn involves(expr: &Expr, owner: &[&str]) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Identifier(_) => ControlFlow::Break(()),
        Expr::CompoundIdentifier(parts) if parts.first().is_some_and(|q| owns(owner, q)) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(condition: &str) -> Option<Constrained> {
        Constrained::parse(condition, &["p", "payments"])
    }

    fn no_statistics(_: &str) -> f64 {
        0.0
    }

    fn key(condition: &str) -> Vec<String> {
        parse(condition)
            .map(|c| c.index_key(no_statistics))
            .unwrap_or_default()
    }

    #[test]
    fn own_columns_are_those_of_the_owner_however_used() {
        assert_eq!(
            own_columns(
                "((p.user_id + 1) = u.id) AND (status = ANY ('{a}'::text[])) AND (p.user_id > 3)",
                &["p", "payments"]
            ),
            Some(vec!["user_id".to_owned(), "status".to_owned()])
        );
        assert_eq!(own_columns("(user_id = ", &["p"]), None);
    }

    #[test]
    fn reads_postgresql_filters() {
        assert_eq!(key("(user_id = 42)"), ["user_id"]);
        assert_eq!(
            key(
                "((created_at > (now() - '7 days'::interval)) AND (user_id = 42) AND ((status)::text = 'completed'::text))"
            ),
            ["user_id", "status", "created_at"]
        );
        assert_eq!(key("(user_id = ANY ('{1,2,3}'::bigint[]))"), ["user_id"]);
        assert_eq!(key("((amount >= 10.00) AND (amount <= 20.00))"), ["amount"]);
        assert_eq!(key("(description IS NULL)"), ["description"]);
        assert_eq!(key("(42 = user_id)"), ["user_id"]);
        assert_eq!(key("(user_id = $1)"), ["user_id"]);
        // Names as the catalog has them, for the DDL to quote.
        assert_eq!(key("(\"Weird Col\" = 1)"), ["Weird Col"]);
    }

    #[test]
    fn join_conditions_name_the_owners_side() {
        assert_eq!(key("(p.user_id = u.id)"), ["user_id"]);
        assert_eq!(key("(u.id = p.user_id)"), ["user_id"]);
        assert_eq!(
            Constrained::parse("(p.user_id = u.id)", &["u", "users"])
                .unwrap()
                .index_key(no_statistics),
            ["id"]
        );
        // Both sides on the owner: no index seek serves it.
        assert_eq!(parse("(p.created_at > p.updated_at)"), None);
    }

    #[test]
    fn join_columns_are_compared_with_the_outer_side_only() {
        let joined = |condition: &str| {
            Constrained::joined(condition, &["p", "payments"], &["u", "users"])
                .map(|c| c.columns())
                .unwrap_or_default()
        };
        assert_eq!(joined("(user_id = u.id)"), ["user_id"]);
        assert_eq!(
            joined("((amount > '0'::numeric) AND (p.user_id = u.id))"),
            ["user_id"]
        );
        assert_eq!(joined("(p.created_at > u.created_at)"), ["created_at"]);
        assert_eq!(joined("(user_id = ANY (u.ids))"), ["user_id"]);
        // Values, the owner's own columns and unknown tables are no join.
        assert!(joined("(amount > '0'::numeric)").is_empty());
        assert!(joined("(user_id = $1)").is_empty());
        assert!(joined("(user_id IS NULL)").is_empty());
        assert!(joined("(p.user_id = x.id)").is_empty());
        assert!(joined("(p.user_id = (u.id + p.amount))").is_empty());
    }

    #[test]
    fn what_an_index_cannot_serve_names_nothing() {
        assert_eq!(parse("((user_id = 1) OR (user_id = 2))"), None);
        assert_eq!(parse("(lower(currency) = 'usd'::text)"), None);
        assert_eq!(parse("(hashed SubPlan 1)"), None);
        assert_eq!(parse("(NOT (user_id = 1))"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn equality_columns_come_before_one_range_column() {
        let found = parse("((created_at > now()) AND (amount < 5) AND (currency = 'USD'::bpchar))")
            .unwrap();
        assert_eq!(found.index_key(no_statistics), ["currency", "created_at"]);
        let distinct = |c: &str| if c == "amount" { 5.0 } else { 0.0 };
        let both = parse("((status = 'x'::text) AND (amount = 1.0))").unwrap();
        assert_eq!(both.index_key(distinct), ["amount", "status"]);
        assert_eq!(found.columns(), ["currency", "created_at", "amount"]);
    }
}
