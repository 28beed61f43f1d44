//! The query a rewrite works on: a statement's top-level query, checked to
//! be one the rules may touch, with its clauses located in the text.

use sqlparser::ast::{Query, Select, SetExpr, SetOperator, Statement};
use sqlparser::tokenizer::Location;

use super::layout::{Clause, ClauseKind, Layout, locate};
use super::scope::first_select;
use crate::sql::{Cursor, SqlStatement};

/// A top-level query the rules may rewrite.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    /// The statement.
    pub statement: &'a SqlStatement,
    /// Its query.
    pub query: &'a Query,
    /// The query inside any parentheses around the whole body
    /// (`(SELECT ...)`): the one whose body and FROM clause count. The same
    /// as `query` when there are none.
    pub core: &'a Query,
    /// Where its clauses are in the text.
    pub layout: Layout,
}

/// What the body of the core query is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// A plain SELECT.
    Select(&'a Select),
    /// UNION, INTERSECT or EXCEPT.
    SetOperation(SetOperator),
    /// VALUES.
    Values,
    /// Anything else sqlparser reads as a query body (`TABLE name` in other
    /// dialects).
    Other,
}

impl<'a> Target<'a> {
    /// The statement's top-level query, or why the rules leave the
    /// statement alone.
    pub fn of(statement: &'a SqlStatement) -> Result<Target<'a>, String> {
        let Statement::Query(query) = &statement.ast else {
            return Err(not_a_query(&crate::sql::leading_keywords(&statement.ast)));
        };
        if let Some(verb) = data_modifying(&query.body) {
            return Err(not_a_query(verb));
        }
        if query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            return Err("it uses clauses PostgreSQL does not have, so it is left as it is".into());
        }
        if selects_into(&query.body) {
            return Err(
                "SELECT INTO creates a table from the result; a LIMIT or ORDER BY would change \
                 what it holds"
                    .into(),
            );
        }
        let layout = locate(&statement.tokens, query).ok_or_else(|| {
            "perfaudit could not match the query's top-level clauses to its text, so it is left \
             as it is"
                .to_owned()
        })?;
        let mut core: &Query = query;
        while let SetExpr::Query(inner) = core.body.as_ref() {
            core = inner;
        }
        Ok(Target {
            statement,
            query,
            core,
            layout,
        })
    }

    /// The core query's body.
    pub fn body(&self) -> Body<'a> {
        match self.core.body.as_ref() {
            SetExpr::Select(select) => Body::Select(select),
            SetExpr::SetOperation { op, .. } => Body::SetOperation(*op),
            SetExpr::Values(_) => Body::Values,
            _ => Body::Other,
        }
    }

    /// The plain SELECT of the core query, if that is its body.
    pub fn select(&self) -> Option<&'a Select> {
        match self.body() {
            Body::Select(select) => Some(select),
            _ => None,
        }
    }

    /// Whether the body is wrapped in parentheses: from outside them, only
    /// result columns can be named.
    pub fn parenthesized(&self) -> bool {
        !std::ptr::eq(self.query, self.core)
    }

    /// The first clause of one of `kinds`, at the top level or inside the
    /// parentheses around the body, with its text.
    pub fn clause(&self, kinds: &[ClauseKind]) -> Option<String> {
        let clause = self.layout.find(kinds)?;
        Some(self.text(clause))
    }

    /// The user's text of a clause, shortened when long.
    fn text(&self, clause: Clause) -> String {
        /// Characters of a clause quoted in a message: enough to recognize it.
        const QUOTED_CHARS: usize = 60;
        let start = self.offset(clause.start);
        let end = self.offset(clause.end);
        let text = &self.statement.text[start..end];
        match text.char_indices().nth(QUOTED_CHARS) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        }
    }

    /// The byte offset of `location` in the statement's text.
    pub fn offset(&self, location: Location) -> usize {
        Cursor::at(&self.statement.text, self.statement.location()).offset_of(location)
    }
}

fn not_a_query(what: &str) -> String {
    format!(
        "it is {} {what}, not a query; only SELECT, VALUES and set operations (with or without \
         WITH) are rewritten",
        if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        }
    )
}

/// The verb of a query whose body changes data (`WITH ... INSERT ...`).
fn data_modifying(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        _ => None,
    }
}

/// Whether the query's result goes into a new table (`SELECT ... INTO t`).
fn selects_into(body: &SetExpr) -> bool {
    first_select(body).is_some_and(|select| select.into.is_some())
}
