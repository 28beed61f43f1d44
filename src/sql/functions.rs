//! The functions a statement calls by name: in expressions (`nextval(...)`)
//! and in FROM (`SELECT * FROM pg_advisory_lock(1)`, `LATERAL f(x)`), each
//! named as PostgreSQL resolves it. Calls made by the views and functions a
//! statement uses are not in its text, and not here.

use std::fmt;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Statement, TableFactor, Visit, Visitor};

use super::ident::{fold_name, ident};

/// A function named in a statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionCall {
    /// The schema it was qualified with (`pg_catalog` in
    /// `pg_catalog.nextval`), folded; `None` when the search path decides.
    pub schema: Option<String>,
    /// Its name, folded (`NextVal` is `nextval`, `"NextVal"` is not).
    pub name: String,
}

impl FunctionCall {
    /// The call `name` stands for; `None` for a name PostgreSQL cannot
    /// spell (built by a function, or with more than three parts).
    fn of(name: &ObjectName) -> Option<FunctionCall> {
        let mut parts = fold_name(name)?;
        let name = parts.pop()?;
        // `db.schema.f`: PostgreSQL accepts only the current database there.
        match parts.len() {
            0 => Some(FunctionCall { schema: None, name }),
            1 | 2 => Some(FunctionCall {
                schema: parts.pop(),
                name,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for FunctionCall {
    /// `nextval()`, `pg_catalog.nextval()`, `"Odd"()`: as SQL spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", ident(schema))?;
        }
        write!(f, "{}()", ident(&self.name))
    }
}

/// Every function `statement` calls by name, each once, in the order they
/// first appear.
pub fn calls(statement: &Statement) -> Vec<FunctionCall> {
    let mut calls = Calls(Vec::new());
    let _ = statement.visit(&mut calls);
    calls.0
}

/// Every function `expr` calls by name, each once, in the order they first
/// appear: what a plan's condition, as PostgreSQL prints it, calls.
pub fn expression_calls(expr: &Expr) -> Vec<FunctionCall> {
    let mut calls = Calls(Vec::new());
    let _ = expr.visit(&mut calls);
    calls.0
}

/// The calls found so far.
struct Calls(Vec<FunctionCall>);

impl Calls {
    fn add(&mut self, name: &ObjectName) {
        if let Some(call) = FunctionCall::of(name)
            && !self.0.contains(&call)
        {
            self.0.push(call);
        }
    }
}

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            self.add(&function.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            // `FROM f(...)` is a table with arguments to sqlparser.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.add(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;

    fn called(sql: &str) -> Vec<String> {
        let statement = parse_statements(sql).unwrap().remove(0);
        calls(&statement.ast)
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn calls_in_expressions_and_in_from_each_once() {
        assert_eq!(
            called(
                "SELECT NextVal('s'), \"Odd Fn\"(1), pg_catalog.NEXTVAL('s'), nextval('t') \
                 FROM pg_advisory_lock(1), payments p, LATERAL generate_series(1, p.id) g \
                 WHERE p.id IN (SELECT max(id) FROM payments) AND 'nextval(1)' <> \"nextval\""
            ),
            [
                "nextval()",
                "\"Odd Fn\"()",
                "pg_catalog.nextval()",
                "pg_advisory_lock()",
                "generate_series()",
                "max()",
            ]
        );
    }

    #[test]
    fn calls_in_a_plans_condition() {
        let expr = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(
                "((billing.customer_balance(customer_id) > '100'::numeric) AND \
                 (lower((email)::text) ~~ 'a%'::text))",
            )
            .unwrap()
            .parse_expr()
            .unwrap();
        let calls: Vec<String> = expression_calls(&expr)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(calls, ["billing.customer_balance()", "lower()"]);
    }

    #[test]
    fn three_part_names_keep_the_schema() {
        assert_eq!(called("SELECT mydb.public.f(1)"), ["public.f()"]);
        assert_eq!(called("SELECT 1 FROM payments"), Vec::<String>::new());
    }
}
