//! Asking PostgreSQL what the SQL alone cannot prove: the statement's
//! result columns (by describing it, as a prepared statement is described)
//! and the columns of the tables it reads (from the catalog); and, once
//! rewritten, whether the server accepts the result. Nothing is executed.

use std::ops::ControlFlow;

use sqlparser::ast::{ObjectName, Visit, Visitor};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::knowledge::{Knowledge, TableColumns};
use super::target::Target;
use super::{Rewrite, RewriteOptions, Rule, Skip, rewrite as rewrite_offline};
use crate::db::describe;
use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::SqlStatement;
use crate::sql::ident::fold_name;

/// The columns of the tables named in `$1` (names as written in SQL, which
/// `to_regclass` resolves like the statement would, search_path included),
/// by each name's position in `$1`.
const TABLE_COLUMNS: &str = "\
    SELECT n.position, a.attname::text \
    FROM unnest($1::text[]) WITH ORDINALITY AS n(name, position) \
    JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(n.name) \
    WHERE a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY n.position, a.attnum";

/// Rewrites `statement` with what the server knows: learns its result
/// columns and its tables' columns ([`learn`]), rewrites
/// ([`super::rewrite`]), and has the server describe the result; should the
/// server reject it, the ORDER BY (then everything) is dropped and the
/// server's reason reported. Prepares statements but never executes one,
/// each in a read-only transaction of its own, rolled back
/// ([`describe::describe`]): call it outside a transaction.
///
/// Fails only when the connection fails (`Error::Database`); a statement
/// the server cannot describe is rewritten from its SQL alone, with a note.
pub async fn rewrite(
    client: &Client,
    statement: &SqlStatement,
    options: &RewriteOptions,
) -> Result<Rewrite> {
    let knowledge = learn(client, statement).await?;
    let first = rewrite_offline(statement, options, &knowledge);
    // Only a statement the server could describe can be judged by it.
    if !first.changed() || knowledge.result_columns.is_none() {
        return Ok(first);
    }
    let Err(rejected) = describe(client, &first.rewritten).await? else {
        return Ok(first);
    };
    let without_order = RewriteOptions {
        order_by: None,
        ..options.clone()
    };
    let mut second = rewrite_offline(statement, &without_order, &knowledge);
    let ordering = first.changes.iter().any(|c| c.rule == Rule::OrderBy);
    if ordering && second.changed() && describe(client, &second.rewritten).await?.is_ok() {
        second.skipped.retain(|s| s.rule != Rule::OrderBy);
        second.skipped.insert(
            0,
            Skip {
                rule: Rule::OrderBy,
                reason: format!("the server rejected the ORDER BY: {rejected}"),
            },
        );
        return Ok(second);
    }
    let reason = format!("the server rejected the rewritten query: {rejected}");
    Ok(Rewrite {
        rewritten: first.original.clone(),
        changes: Vec::new(),
        skipped: [Rule::OrderBy, Rule::Limit]
            .into_iter()
            .map(|rule| Skip {
                rule,
                reason: reason.clone(),
            })
            .collect(),
        original: first.original,
    })
}

/// What the server knows about `statement`: its result columns, if it can
/// describe the statement, and the columns of the tables it names. Only a
/// query the rules could rewrite is looked at; for any other statement
/// the knowledge is empty. Fails only when the connection fails.
pub async fn learn(client: &Client, statement: &SqlStatement) -> Result<Knowledge> {
    let mut knowledge = Knowledge {
        online: true,
        ..Knowledge::offline()
    };
    if Target::of(statement).is_err() {
        return Ok(knowledge);
    }
    match describe(client, &statement.text).await? {
        Ok(columns) => knowledge.result_columns = Some(columns),
        Err(reason) => knowledge
            .notes
            .push(format!("the server could not describe the query: {reason}")),
    }
    let tables = TableNames::of(statement);
    if !tables.is_empty() {
        let written: Vec<String> = tables.iter().map(ToString::to_string).collect();
        let rows = client
            .query_typed(TABLE_COLUMNS, &[(&written, Type::TEXT_ARRAY)])
            .await
            .map_err(|e| query_error("reading the columns of the query's tables", &e))?;
        for row in rows {
            let position: i64 = row.get(0);
            let column: String = row.get(1);
            let Some(name) = usize::try_from(position - 1)
                .ok()
                .and_then(|i| tables.get(i))
                .and_then(fold_name)
            else {
                continue;
            };
            match knowledge.tables.last_mut() {
                Some(table) if table.name == name => table.columns.push(column),
                _ => knowledge.tables.push(TableColumns {
                    name,
                    columns: vec![column],
                }),
            }
        }
    }
    Ok(knowledge)
}

/// Describes `sql` as a prepared statement: its result column names, or
/// the server's reason for rejecting it. Fails only when the connection
/// fails.
async fn describe(client: &Client, sql: &str) -> Result<Result<Vec<String>, String>> {
    match describe::describe(client, sql, &[])
        .await
        .map_err(|e| query_error("describing the query", &e))?
    {
        Ok(described) => Ok(Ok(described
            .columns
            .into_iter()
            .map(|(name, _)| name)
            .collect())),
        Err(e) => match e.as_db_error() {
            Some(db) => Ok(Err(db.message().to_owned())),
            None => Err(query_error("describing the query", &e)),
        },
    }
}

/// The distinct table names a statement's FROM clauses name.
#[derive(Default)]
struct TableNames(Vec<ObjectName>);

impl TableNames {
    fn of(statement: &SqlStatement) -> Vec<ObjectName> {
        let mut names = TableNames::default();
        let _ = statement.ast.visit(&mut names);
        names.0
    }
}

impl Visitor for TableNames {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.0.contains(relation) {
            self.0.push(relation.clone());
        }
        ControlFlow::Continue(())
    }
}
