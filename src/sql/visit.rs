//! Walking a query's own expressions: those of its select list, FROM,
//! WHERE and so on, but not those of the subqueries inside them, which have
//! scopes of their own.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Visit, Visitor};

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
}
