//! The safe query rewriter: adds `ORDER BY` and `LIMIT` to a top-level
//! query that lacks them, where — and only where — that provably keeps the
//! SQL valid, and says why for every rule it skips.
//!
//! # Use (from `explain` or any caller)
//!
//! ```no_run
//! # async fn example(client: &tokio_postgres::Client) -> perfaudit::Result<()> {
//! use perfaudit::rewrite::{self, Knowledge, RewriteOptions};
//!
//! let options = RewriteOptions::default(); // LIMIT 1000, ORDER BY created_at DESC
//! for statement in perfaudit::sql::parse_statements("SELECT * FROM payments")? {
//!     // With a database: learns the result columns and the FROM tables'
//!     // columns, rewrites, and has the server check the result.
//!     let rewritten = rewrite::server::rewrite(client, &statement, &options).await?;
//!     // Offline: only what the SQL itself proves.
//!     let offline = rewrite::rewrite(&statement, &options, &Knowledge::offline());
//!     println!("{}", rewritten.rewritten); // the SQL to run
//! }
//! # Ok(()) }
//! ```
//!
//! [`Rewrite::rewritten`] is the user's own text with the new clauses
//! inserted (comments, spelling and `LIMIT ALL` survive); it equals
//! [`Rewrite::original`] when nothing was added. Statements other than
//! queries (DML, DDL, ...) come back unchanged with the reason in
//! [`Rewrite::skipped`]; the classification of what a statement writes is
//! [`crate::sql::Class`], on the statement itself. Rewriting is idempotent.
//!
//! The rules live in their own modules: `layout` finds the top-level
//! clauses in the text, `scope` reads what the SQL says about its columns,
//! `order` and `limit` decide, [`server`] asks PostgreSQL.

mod knowledge;
mod layout;
mod limit;
mod options;
mod order;
mod scope;
pub mod server;
mod target;

use serde::Serialize;

pub use knowledge::{Knowledge, TableColumns};
pub use options::{DEFAULT_LIMIT, DEFAULT_ORDER_BY, Direction, OrderBy, RewriteOptions};

use crate::sql::SqlStatement;
use layout::ClauseKind;
use target::Target;

/// What the rewriter did to one statement. Serializes to the JSON of
/// `perfaudit rewrite`: `{"original","rewritten","changes":[{"rule","detail"}],
/// "skipped":[{"rule","reason"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// The statement as the user wrote it.
    pub original: String,
    /// The statement to run: the original with the new clauses inserted.
    pub rewritten: String,
    /// The clauses added, in the order they appear.
    pub changes: Vec<Change>,
    /// The rules not applied, each with why.
    pub skipped: Vec<Skip>,
}

/// A clause the rewriter added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The rule that added it.
    pub rule: Rule,
    /// What was added and why that is valid: `added LIMIT 1000`.
    pub detail: String,
}

/// A rule the rewriter did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// The rule.
    pub rule: Rule,
    /// Why it was not applied, one sentence.
    pub reason: String,
}

/// The rewrite rules, by their stable names (`order-by`, `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Add `ORDER BY <column> [ASC|DESC]`.
    OrderBy,
    /// Add `LIMIT n`.
    Limit,
}

impl Rule {
    /// The rule's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::OrderBy => "order-by",
            Rule::Limit => "limit",
        }
    }
}

impl Rewrite {
    /// Whether anything was added.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What a rule decided for one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Add `clause`; `detail` says what and why.
    Add { clause: String, detail: String },
    /// Leave it; the reason says why.
    Skip(String),
}

/// Rewrites one statement: adds the ORDER BY and LIMIT of `options` where
/// the SQL (and `knowledge`, when a server was asked) proves them valid.
/// Pure: no I/O, no panics on any parsed statement. Every rule appears
/// once, in [`Rewrite::changes`] or [`Rewrite::skipped`] (a rule turned off
/// in `options` is skipped as disabled).
pub fn rewrite(
    statement: &SqlStatement,
    options: &RewriteOptions,
    knowledge: &Knowledge,
) -> Rewrite {
    let target = Target::of(statement);
    let order = match (&options.order_by, &target) {
        (None, _) => Decision::Skip("disabled by --no-order-by".into()),
        (Some(_), Err(reason)) => Decision::Skip(reason.clone()),
        (Some(order), Ok(target)) => order::decide(target, order, knowledge),
    };
    let limit = match (options.limit, &target) {
        (None, _) => Decision::Skip("disabled by --no-limit".into()),
        (Some(_), Err(reason)) => Decision::Skip(reason.clone()),
        (Some(limit), Ok(target)) => limit::decide(target, limit),
    };
    let mut result = Rewrite {
        original: statement.text.clone(),
        rewritten: statement.text.clone(),
        changes: Vec::new(),
        skipped: Vec::new(),
    };
    let mut insertions = Vec::new();
    for (rule, decision) in [(Rule::OrderBy, order), (Rule::Limit, limit)] {
        match decision {
            Decision::Add { clause, detail } => {
                let target = target.as_ref().expect("rules add only to a target");
                insertions.push(insertion(target, rule, &clause));
                let detail = with_notes(detail, rule, knowledge);
                result.changes.push(Change { rule, detail });
            }
            Decision::Skip(reason) => {
                let reason = with_notes(reason, rule, knowledge);
                result.skipped.push(Skip { rule, reason });
            }
        }
    }
    // Later positions first, so earlier offsets stay valid; at one
    // position LIMIT first, so that ORDER BY ends up before it.
    insertions.sort_by_key(|&(offset, rule, _)| (std::cmp::Reverse(offset), rule == Rule::OrderBy));
    for (offset, _, text) in insertions {
        result.rewritten.insert_str(offset, &text);
    }
    result
}

/// Where and what to insert for a rule's clause: ORDER BY right after the
/// body; LIMIT right before the query's own OFFSET, else right after the
/// ORDER BY (PostgreSQL's order: ORDER BY, LIMIT / OFFSET, FOR UPDATE).
fn insertion(target: &Target, rule: Rule, clause: &str) -> (usize, Rule, String) {
    let layout = &target.layout;
    match (rule, layout.own(ClauseKind::Offset)) {
        (Rule::OrderBy, _) => (target.offset(layout.body_end), rule, format!(" {clause}")),
        (Rule::Limit, Some(offset)) => (target.offset(offset.start), rule, format!("{clause} ")),
        (Rule::Limit, None) => (target.offset(layout.order_end), rule, format!(" {clause}")),
    }
}

/// The ORDER BY rule's detail or reason, with what could not be learned
/// from the server: the decision rests on the SQL alone then.
fn with_notes(text: String, rule: Rule, knowledge: &Knowledge) -> String {
    match knowledge.notes.first() {
        Some(note) if rule == Rule::OrderBy => format!("{text} ({note})"),
        _ => text,
    }
}

#[cfg(test)]
mod tests;
