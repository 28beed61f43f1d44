//! Walking a statement's expressions: a query's own ones (those of its
//! select list, FROM, WHERE and so on, but not those of the subqueries
//! inside them, which have scopes of their own), and its placeholders.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Statement, Value, Visit, Visitor, visit_expressions};

/// Calls `visit` on each expression in `node` — a part of a query: its
/// select list, FROM clause, an expression — that belongs to that query,
/// not to a subquery in it, until `visit` breaks.
pub fn own_expressions(
    node: &impl Visit,
    visit: impl FnMut(&Expr) -> ControlFlow<()>,
) -> ControlFlow<()> {
    struct OwnScope<F> {
        /// Nesting of subqueries around the current expression.
        depth: usize,
        visit: F,
    }
    impl<F: FnMut(&Expr) -> ControlFlow<()>> Visitor for OwnScope<F> {
        type Break = ();

        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }

        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match self.depth {
                0 => (self.visit)(expr),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut OwnScope { depth: 0, visit })
}

/// The `n` of a placeholder `$n`; a number too large to count is the
/// largest there is, so that it is reported as missing rather than read
/// as none.
pub fn placeholder_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('$')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(usize::MAX))
}

/// The highest `$n` the statement uses (0 when none): how many parameters
/// it takes. Placeholders are counted wherever they are, subqueries and
/// CTEs included; `'$4'` in a string is no placeholder.
pub fn placeholders(statement: &Statement) -> usize {
    let mut highest = 0;
    let _ = visit_expressions(statement, |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(name) = &value.value
            && let Some(n) = placeholder_number(name)
        {
            highest = highest.max(n);
        }
        ControlFlow::<()>::Continue(())
    });
    highest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;
    use sqlparser::ast::{SetExpr, Statement};

    #[test]
    fn subqueries_are_not_walked() {
        let sql = "SELECT a, (SELECT b FROM t), c + 1 FROM u WHERE EXISTS (SELECT d) OR e";
        let statement = parse_statements(sql).unwrap().remove(0);
        let Statement::Query(query) = &statement.ast else {
            panic!("a query");
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            panic!("a SELECT");
        };
        let mut seen = Vec::new();
        let mut note = |expr: &Expr| {
            if let Expr::Identifier(ident) = expr {
                seen.push(ident.value.clone());
            }
            ControlFlow::Continue(())
        };
        let _ = own_expressions(&select.projection, &mut note);
        let _ = own_expressions(&select.selection, &mut note);
        assert_eq!(seen, ["a", "c", "e"]);
    }

    fn count(sql: &str) -> usize {
        placeholders(&parse_statements(sql).unwrap()[0].ast)
    }

    #[test]
    fn placeholders_are_counted_by_the_highest_number() {
        assert_eq!(count("SELECT 1"), 0);
        assert_eq!(count("SELECT $99999999999999999999999"), usize::MAX);
        assert_eq!(
            count("SELECT * FROM t WHERE a = $2 AND b IN (SELECT $1) LIMIT $3"),
            3
        );
        assert_eq!(count("SELECT '$4', $$ $5 $$ FROM t WHERE a = $1"), 1);
        assert_eq!(
            count("WITH d AS (DELETE FROM t WHERE id = $2 RETURNING *) SELECT * FROM d"),
            2
        );
    }
}
