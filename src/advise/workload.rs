//! Where a workload comes from: SQL the user gave (an argument, a file,
//! stdin), or the statements `pg_stat_statements` saw run the longest.

use futures_util::TryStreamExt;
use sqlparser::ast::Statement;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::db::errors::query_error;
use crate::error::{Error, Result};
use crate::sql::scans::statement_scans;
use crate::sql::writes::statement_write;
use crate::sql::{Class, parse_statements};

/// One statement of a workload.
#[derive(Debug, Clone)]
pub struct WorkloadStatement {
    /// Its text, as sent to the server.
    pub text: String,
    /// The line and column it starts at in the input, from 1; `None` when
    /// it comes from `pg_stat_statements`.
    pub line: Option<usize>,
    /// See `line`.
    pub column: Option<usize>,
    /// Its syntax tree, or why it does not parse.
    pub parsed: std::result::Result<Statement, String>,
    /// How often it ran and how long it took, when `pg_stat_statements`
    /// counted it.
    pub usage: Option<Usage>,
}

/// What `pg_stat_statements` counted of a statement since its statistics
/// were last reset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Times it ran.
    pub calls: f64,
    /// Milliseconds it ran for, all calls together.
    pub total_ms: f64,
}

impl Usage {
    /// Milliseconds per call.
    pub fn mean_ms(&self) -> f64 {
        self.total_ms / self.calls.max(1.0)
    }
}

/// The statements of SQL the user gave. Like every command, advise refuses
/// input it cannot parse, naming the place (exit 2): a typo in a workload
/// file should fail a pipeline, not vanish from its report.
pub fn from_sql(input: &str) -> Result<Vec<WorkloadStatement>> {
    let statements = parse_statements(input)?;
    if statements.is_empty() {
        return Err(Error::input(
            "the input holds no SQL statement; give the statements to advise on",
        ));
    }
    Ok(statements
        .into_iter()
        .map(|s| WorkloadStatement {
            text: s.text,
            line: Some(s.line),
            column: Some(s.column),
            parsed: Ok(s.ast),
            usage: None,
        })
        .collect())
}

/// The `top` statements of this database by total execution time in
/// `pg_stat_statements`. Left out, since no index of advise's improves
/// them: utility statements (`SET`, `BEGIN`, `EXPLAIN`...), statements that
/// read no table or only system catalogs and views (`pg_*`,
/// `information_schema`: monitoring, and advise's own catalog reads), and
/// calls of HypoPG's functions. Texts sqlparser cannot read stay in, with
/// the reason, since the server ran them.
pub async fn from_stat_statements(client: &Client, top: u32) -> Result<Vec<WorkloadStatement>> {
    let schema = extension_schema(client).await?;
    let Some(schema) = schema else {
        let database: String = client
            .query_typed_one("SELECT current_database()", &[])
            .await
            .map_err(|e| query_error("looking for pg_stat_statements", &e))?
            .get(0);
        return Err(Error::database(format!(
            "the pg_stat_statements extension is not created in database \"{database}\"; add \
             pg_stat_statements to shared_preload_libraries (a restart), run CREATE EXTENSION \
             pg_stat_statements; there, let the workload run, then run advise again \
             (or give the SQL with -f FILE)"
        )));
    };
    // All entries, longest first, read as a stream until `top` plannable
    // statements are found: a LIMIT in SQL would count the utility
    // statements left out below. total_exec_time is total_time before
    // pg_stat_statements 1.8 (PostgreSQL 13); to_jsonb reads either.
    let sql = format!(
        "SELECT s.query, s.calls::float8, \
                coalesce(to_jsonb(s) ->> 'total_exec_time', to_jsonb(s) ->> 'total_time')::float8 \
         FROM {schema}.pg_stat_statements s \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND s.query IS NOT NULL \
           AND s.query !~* '\\mhypopg_[a-z_]+\\s*\\(' \
         ORDER BY coalesce(to_jsonb(s) ->> 'total_exec_time', to_jsonb(s) ->> 'total_time')::float8 \
                  DESC NULLS LAST"
    );
    let read_error = |e: tokio_postgres::Error| match e.code() {
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => Error::database(
            "pg_stat_statements is created but not loaded; add it to \
             shared_preload_libraries and restart the server, then run advise again",
        ),
        _ => query_error("reading pg_stat_statements", &e),
    };
    let rows = client
        .query_typed_raw(&sql, std::iter::empty::<(i32, Type)>())
        .await
        .map_err(read_error)?;
    futures_util::pin_mut!(rows);
    let mut workload = Vec::new();
    while workload.len() < top as usize {
        let Some(row) = rows.try_next().await.map_err(read_error)? else {
            break;
        };
        let text: String = row.get(0);
        let usage = Usage {
            calls: row.get(1),
            total_ms: row.get::<_, Option<f64>>(2).unwrap_or(0.0),
        };
        workload.extend(entry(&text, usage));
    }
    workload.truncate(top as usize);
    Ok(workload)
}

/// The first words of statements that have a plan an index can improve;
/// a text sqlparser cannot read is kept only if it starts with one (or a
/// parenthesis), so that utility statements it cannot read are dropped too.
const PLANNABLE_KEYWORDS: [&str; 8] = [
    "select", "with", "insert", "update", "delete", "merge", "values", "table",
];

/// The statements of one `pg_stat_statements` entry, which ran as
/// `usage` says. A write to a user table stays in even when it reads none
/// (`INSERT ... VALUES`): what an index costs it counts too.
fn entry(text: &str, usage: Usage) -> Vec<WorkloadStatement> {
    match parse_statements(text) {
        Ok(statements) => statements
            .into_iter()
            .filter(|s| {
                !matches!(s.class, Class::Refused { .. })
                    && (reads_a_user_table(&s.ast) || writes_a_user_table(&s.ast))
            })
            .map(|s| WorkloadStatement {
                text: s.text,
                line: None,
                column: None,
                parsed: Ok(s.ast),
                usage: Some(usage),
            })
            .collect(),
        Err(_) if !plannable(text) => Vec::new(),
        Err(error) => vec![WorkloadStatement {
            text: text.trim().to_owned(),
            line: None,
            column: None,
            parsed: Err(error.to_string()),
            usage: Some(usage),
        }],
    }
}

/// The schema `pg_stat_statements` is created in, quoted; `None` when it
/// is not created in this database.
async fn extension_schema(client: &Client) -> Result<Option<String>> {
    let row = client
        .query_typed_opt(
            "SELECT quote_ident(n.nspname) FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(|e| query_error("looking for pg_stat_statements", &e))?;
    Ok(row.map(|row| row.get(0)))
}

/// How many days the statistics of `pg_stat_statements` cover: since
/// `pg_stat_statements_info.stats_reset` (version 1.9, PostgreSQL 14);
/// `None` before that version, or when it cannot be read.
pub async fn stats_days(client: &Client) -> Option<f64> {
    let schema = extension_schema(client).await.ok()??;
    // date_part, not extract: pg_stat_statements normalizes this query's
    // text too, and `extract($1 FROM ...)` would be a text advise cannot
    // read, kept as workload; this one reads as a catalog read, left out.
    let sql = format!(
        "SELECT date_part('epoch', now() - stats_reset) / 86400 \
         FROM {schema}.pg_stat_statements_info"
    );
    let row = client.query_typed_opt(&sql, &[]).await.ok()??;
    row.get::<_, Option<f64>>(0).filter(|days| *days > 0.0)
}

/// Whether `statement` inserts into or updates a user table.
fn writes_a_user_table(statement: &Statement) -> bool {
    statement_write(statement).is_some_and(|write| {
        !write
            .relation
            .iter()
            .any(|part| part.starts_with("pg_") || part == "information_schema")
    })
}

/// Whether `statement` reads a relation that is not a system catalog or
/// view, by its name: `pg_catalog`, `information_schema` and `pg_*` schemas,
/// and `pg_*` relations (PostgreSQL's own, and extensions' such as
/// `pg_stat_statements`; the prefix is PostgreSQL's by convention).
fn reads_a_user_table(statement: &Statement) -> bool {
    let system = |name: &[String]| match name.split_last() {
        Some((relation, schemas)) => {
            relation.starts_with("pg_")
                || schemas
                    .iter()
                    .any(|s| s == "information_schema" || s.starts_with("pg_"))
        }
        None => true,
    };
    statement_scans(statement)
        .iter()
        .any(|scan| !system(&scan.relation))
}

fn plannable(text: &str) -> bool {
    let text = text.trim_start();
    let word: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    text.starts_with('(') || PLANNABLE_KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: Usage = Usage {
        calls: 10.0,
        total_ms: 25.0,
    };

    #[test]
    fn statements_reading_no_user_table_are_not_workload() {
        for text in [
            "SELECT 1",
            "SELECT c.relname FROM pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid",
            "SELECT s.query FROM public.pg_stat_statements s",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM pg_toast.pg_toast_2619",
        ] {
            assert!(entry(text, USAGE).is_empty(), "{text}");
        }
        for text in [
            "SELECT * FROM payments p JOIN pg_class c ON c.relname = p.status",
            "UPDATE payments SET status = $1 WHERE id = $2",
            "SELECT * FROM (SELECT * FROM \"Sales\".orders) o",
            // A write to a user table costs its indexes, read or not.
            "INSERT INTO payments (user_id) VALUES ($1)",
        ] {
            assert_eq!(entry(text, USAGE).len(), 1, "{text}");
        }
    }

    #[test]
    fn user_sql_must_parse_and_hold_a_statement() {
        let workload = from_sql("SELECT 1;\n  SELECT * FROM payments").unwrap();
        assert_eq!(workload.len(), 2);
        assert_eq!(workload[1].line, Some(2));
        assert!(matches!(from_sql("SELEC 1"), Err(Error::Input(_))));
        assert!(matches!(from_sql(" -- nothing"), Err(Error::Input(_))));
    }

    #[test]
    fn stat_entries_drop_utilities_and_keep_what_does_not_parse() {
        assert!(entry("SET search_path = public", USAGE).is_empty());
        assert!(entry("EXPLAIN SELECT 1", USAGE).is_empty());
        assert!(
            entry("ANALYZE users, payments", USAGE).is_empty(),
            "unparsed utility"
        );
        let kept = entry("SELECT * FROM t WHERE a = $1", USAGE);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].parsed.is_ok());
        let odd = entry(
            "SELECT * FROM t WHERE a OPERATOR(pg_catalog.=) $1 ((",
            USAGE,
        );
        assert_eq!(odd.len(), 1);
        assert!(
            odd[0]
                .parsed
                .as_ref()
                .unwrap_err()
                .starts_with("the SQL does not parse")
        );
    }
}
