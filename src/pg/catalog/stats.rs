//! What the planner knows of the values an index would hold on one
//! relation: how many rows (its own estimate, the predicate of a partial
//! index applied), and for each column or expression its width, NULLs,
//! distinct values and type. The estimate of an index's size
//! (`indexes::size`) is made from these, the planner's own numbers.
//!
//! Nothing here runs an expression or a predicate: they are planned
//! (`EXPLAIN`) and described (`PREPARE`), never executed.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::db::describe::describe_in_transaction;
use crate::db::errors::query_error;
use crate::db::json::JsonText;
use crate::error::{Error, Result};
use crate::sql::ident::QualifiedName;

/// A value an index stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored<'a> {
    /// A column, by name.
    Column(&'a str),
    /// An SQL expression over the relation's columns.
    Expression(&'a str),
}

/// What the planner knows of one stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueStats {
    /// The average size of a non-NULL value as stored, in bytes (a
    /// variable-length value's header included): `pg_stats.avg_width`,
    /// the type's length without statistics, the planner's width for an
    /// expression.
    pub width: f64,
    /// Whether its type has a fixed length.
    pub fixed: bool,
    /// The alignment of its type, in bytes (1, 2, 4 or 8).
    pub align: u32,
    /// The share of NULLs.
    pub null_frac: f64,
    /// Its distinct non-NULL values among the relation's rows, 0 when
    /// unknown (no statistics, an expression).
    pub distinct: f64,
    /// Whether a B-tree can merge equal values into one posting list
    /// (deduplication): its type's default operator class says its
    /// equal values are the same image (not `numeric`, floats, `jsonb`,
    /// ranges, ...).
    pub deduplicates: bool,
}

/// What the planner knows of the values an index would hold on one
/// relation.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationStats {
    /// How many rows the index would hold: the planner's estimate of the
    /// relation's rows, the predicate applied.
    pub rows: f64,
    /// The key's values, in order.
    pub keys: Vec<ValueStats>,
    /// The `INCLUDE` columns.
    pub include: Vec<ValueStats>,
}

/// What the planner knows of `keys` and `include` on `relation` (a table,
/// not a partitioned one: its rows are its own), for an index with
/// `predicate`.
pub async fn index_values(
    client: &Client,
    relation: &QualifiedName,
    keys: &[Stored<'_>],
    include: &[&str],
    predicate: Option<&str>,
) -> Result<RelationStats> {
    let expressions: Vec<&str> = keys
        .iter()
        .filter_map(|key| match key {
            Stored::Expression(expression) => Some(*expression),
            Stored::Column(_) => None,
        })
        .collect();
    let all_rows = planned(client, relation, &[], None).await?.rows;
    let (rows, expression_width) = match predicate {
        None if expressions.is_empty() => (all_rows, 0.0),
        _ => {
            let plan = planned(client, relation, &expressions, predicate).await?;
            (plan.rows, plan.width)
        }
    };
    let columns: Vec<&str> = keys
        .iter()
        .filter_map(|key| match key {
            Stored::Column(column) => Some(*column),
            Stored::Expression(_) => None,
        })
        .chain(include.iter().copied())
        .collect();
    let mut columns = column_values(client, relation, &columns, all_rows)
        .await?
        .into_iter();
    let mut expressions = expression_values(client, relation, &expressions, expression_width)
        .await?
        .into_iter();
    let mut next = |key: &Stored| match key {
        Stored::Column(_) => columns.next(),
        Stored::Expression(_) => expressions.next(),
    };
    let keys = keys
        .iter()
        .map(|key| next(key).ok_or_else(missing))
        .collect::<Result<Vec<_>>>()?;
    Ok(RelationStats {
        rows,
        keys,
        include: columns.collect(),
    })
}

fn missing() -> Error {
    Error::database("reading the statistics of an index's columns failed: a column vanished")
}

/// The planner's estimate of a query's rows and width.
struct Planned {
    rows: f64,
    width: f64,
}

/// How the planner sees `SELECT expressions FROM ONLY relation WHERE
/// predicate`: its rows, and the width of the expressions.
async fn planned(
    client: &Client,
    relation: &QualifiedName,
    expressions: &[&str],
    predicate: Option<&str>,
) -> Result<Planned> {
    let list: Vec<String> = expressions.iter().map(|e| format!("({e})")).collect();
    let mut sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT {} FROM ONLY {relation}",
        if list.is_empty() {
            "NULL".to_owned()
        } else {
            list.join(", ")
        }
    );
    if let Some(predicate) = predicate {
        sql.push_str(&format!(" WHERE ({predicate})"));
    }
    let what = format!("estimating the rows of an index on {}", relation.display());
    // Alone through the extended protocol, like every statement holding
    // spec text: nothing can follow it.
    let row = client
        .query_typed_one(&sql, &[])
        .await
        .map_err(|e| query_error(&what, &e))?;
    let JsonText(text) = row.get(0);
    let plan: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::database(format!("{what}: EXPLAIN's JSON did not parse: {e}")))?;
    let number = |key: &str| plan[0]["Plan"][key].as_f64();
    match (number("Plan Rows"), number("Plan Width")) {
        (Some(rows), Some(width)) => Ok(Planned {
            rows,
            width: if expressions.is_empty() { 0.0 } else { width },
        }),
        _ => Err(Error::database(format!(
            "{what}: EXPLAIN gave no row count"
        ))),
    }
}

/// SQL for what the type of `$1` (an array of type OIDs) means to an
/// index, in order: `typlen`, `typalign`, and whether its default B-tree
/// operator class (its own, its base type's, `anyenum`'s, or a type's it is
/// binary-coercible to, as PostgreSQL looks it up) has an `equalimage`
/// support function (number 4), which deduplication needs.
const TYPES_SQL: &str = "SELECT t.typlen::int4, t.typalign::text, EXISTS (
         SELECT 1 FROM pg_opclass c
         JOIN pg_am am ON am.oid = c.opcmethod AND am.amname = 'btree'
         JOIN pg_amproc p ON p.amprocfamily = c.opcfamily AND p.amprocnum = 4
              AND p.amproclefttype = c.opcintype
         WHERE c.opcdefault
           AND (c.opcintype IN (t.oid, coalesce(nullif(t.typbasetype, 0), t.oid))
                OR (b.typtype = 'e' AND c.opcintype = 'anyenum'::regtype)
                OR EXISTS (SELECT 1 FROM pg_cast k
                           WHERE k.castsource = coalesce(nullif(t.typbasetype, 0), t.oid)
                             AND k.casttarget = c.opcintype AND k.castmethod = 'b')))
     FROM unnest($1::oid[]) WITH ORDINALITY AS u(type, n)
     JOIN pg_type t ON t.oid = u.type
     JOIN pg_type b ON b.oid = coalesce(nullif(t.typbasetype, 0), t.oid)
     ORDER BY u.n";

/// A type as [`TYPES_SQL`] reads it.
struct TypeFacts {
    length: i32,
    align: u32,
    deduplicates: bool,
}

async fn types(client: &Client, oids: &[u32]) -> Result<Vec<TypeFacts>> {
    let rows = client
        .query_typed(TYPES_SQL, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(|e| query_error("reading the types of an index's columns", &e))?;
    Ok(rows
        .iter()
        .map(|row| TypeFacts {
            length: row.get(0),
            align: match row.get::<_, &str>(1) {
                "c" => 1,
                "s" => 2,
                "i" => 4,
                _ => 8,
            },
            deduplicates: row.get(2),
        })
        .collect())
}

/// The width PostgreSQL's planner gives a variable-length value it knows
/// nothing about (`get_typavgwidth`).
const UNKNOWN_WIDTH: f64 = 32.0;

/// A value of a type: with its width when known.
fn value(facts: &TypeFacts, width: Option<f64>, null_frac: f64, distinct: f64) -> ValueStats {
    let fixed = facts.length > 0;
    let width = width.unwrap_or(if fixed {
        f64::from(facts.length)
    } else {
        UNKNOWN_WIDTH
    });
    ValueStats {
        width,
        fixed,
        // A short variable-length value (1-byte header, under 127 bytes)
        // is stored unaligned.
        align: if fixed || width >= 127.0 {
            facts.align
        } else {
            1
        },
        null_frac,
        distinct,
        deduplicates: facts.deduplicates,
    }
}

/// The statistics of `columns` of `relation`; `rows` resolves a distinct
/// count PostgreSQL keeps as a share of the rows.
async fn column_values(
    client: &Client,
    relation: &QualifiedName,
    columns: &[&str],
    rows: f64,
) -> Result<Vec<ValueStats>> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let found = client
        .query_typed(
            "SELECT a.atttypid, s.avg_width::float8, s.null_frac::float8, s.n_distinct::float8
             FROM unnest($1::text[]) WITH ORDINALITY AS c(name, n)
             JOIN pg_attribute a ON a.attrelid = to_regclass($2)::oid AND a.attname = c.name
             LEFT JOIN pg_stats s ON s.schemaname = $3 AND s.tablename = $4
                  AND s.attname = c.name AND NOT s.inherited
             ORDER BY c.n",
            &[
                (&columns, Type::TEXT_ARRAY),
                (&relation.to_string(), Type::TEXT),
                (&relation.schema, Type::TEXT),
                (&relation.name, Type::TEXT),
            ],
        )
        .await
        .map_err(|e| query_error("reading the statistics of an index's columns", &e))?;
    if found.len() != columns.len() {
        return Err(missing());
    }
    let oids: Vec<u32> = found.iter().map(|row| row.get(0)).collect();
    let facts = types(client, &oids).await?;
    Ok(found
        .iter()
        .zip(&facts)
        .map(|(row, facts)| {
            let n_distinct: Option<f64> = row.get(3);
            let distinct = match n_distinct {
                Some(n) if n < 0.0 => -n * rows,
                Some(n) => n,
                None => 0.0,
            };
            value(
                facts,
                row.get(1),
                row.get::<_, Option<f64>>(2).unwrap_or(0.0),
                distinct,
            )
        })
        .collect())
}

/// What is known of `expressions` over `relation`: their types (the
/// server describes the query that selects them, without running it),
/// and `width` in all, as the planner sees it, shared among them.
async fn expression_values(
    client: &Client,
    relation: &QualifiedName,
    expressions: &[&str],
    width: f64,
) -> Result<Vec<ValueStats>> {
    if expressions.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = expressions.iter().map(|e| format!("({e})")).collect();
    let sql = format!("SELECT {} FROM ONLY {relation}", list.join(", "));
    // Advise asks inside its HypoPG session's transaction, so no
    // transaction of its own here (see [`describe_in_transaction`]).
    let described = describe_in_transaction(client, &sql, &[])
        .await
        .map_err(|e| query_error("reading the types of an index's expressions", &e))?;
    let oids: Vec<u32> = described.columns.iter().map(|(_, ty)| ty.oid()).collect();
    let facts = types(client, &oids).await?;
    let each = width / expressions.len() as f64;
    Ok(facts
        .iter()
        .map(|facts| value(facts, (facts.length <= 0).then_some(each), 0.0, 0.0))
        .collect())
}
