//! Asking the server which functions a statement calls are VOLATILE.
//!
//! A READ ONLY transaction stops writes, DDL and `nextval()`, but not what a
//! function does outside the tables: advisory locks, replication slots,
//! signals to other sessions, statistics resets, configuration reloads,
//! files, other connections. A rollback undoes none of it. The SQL alone
//! names only the functions perfaudit knows ([`crate::sql::outliving_effect`]);
//! the server knows every function's volatility. A statement that calls a
//! VOLATILE function — other than a few that only compute or read a value —
//! is therefore explained like a write: planned only, unless
//! `--analyze-writes`. One query answers for the whole input.
//!
//! Overloads are not resolved: if any function of that name (in the schema
//! named, or on the search path) is VOLATILE, the call counts. Calls made
//! inside views and functions are not in the statement's text and are not
//! seen here: for those, READ ONLY is the only guard.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::FunctionCall;

/// VOLATILE functions of `pg_catalog` that only compute or read a value and
/// leave nothing behind: each call gives a fresh value (hence VOLATILE), and
/// running them is what explaining a query that uses them needs.
const HARMLESS: &[&str] = &[
    // A new value on every call.
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    // Waiting only.
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    // Sizes read from the file system, which change outside transactions.
    "pg_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_total_relation_size",
    "pg_database_size",
    "pg_tablespace_size",
];

/// For each called function, the schemas whose function of that name is
/// VOLATILE, the harmless ones of [`HARMLESS`] left out. `calls[i]` is
/// resolved as PostgreSQL would: in its schema when qualified, on the
/// session's search path (`pg_catalog` included) otherwise. An aggregate
/// is always IMMUTABLE itself: what it runs are its support functions
/// (transition, final, combine, moving), so it counts when one of them is
/// VOLATILE.
const VOLATILE_SQL: &str = "\
SELECT called.i, n.nspname::text
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS called(schema, name, i)
JOIN pg_catalog.pg_proc p ON p.proname = called.name
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
WHERE (p.provolatile = 'v'
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc support
                  WHERE support.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
                                        a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
                    AND support.provolatile = 'v'))
  AND CASE WHEN called.schema IS NULL
           THEN n.nspname = ANY (pg_catalog.current_schemas(true))
           ELSE n.nspname = called.schema END
GROUP BY 1, 2
ORDER BY 1, 2";

/// The VOLATILE functions among some calls: each as the server resolved it
/// (schema-qualified), with the call it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volatile(Vec<(FunctionCall, FunctionCall)>);

impl Volatile {
    /// Reads the server's answer for `calls`: rows of (1-based position in
    /// `calls`, schema of a VOLATILE function of that name).
    pub fn from_rows(
        calls: &[FunctionCall],
        rows: impl IntoIterator<Item = (i64, String)>,
    ) -> Self {
        let found = rows
            .into_iter()
            .filter_map(|(position, schema)| {
                let call = calls.get(usize::try_from(position).ok()?.checked_sub(1)?)?;
                let resolved = FunctionCall {
                    schema: Some(schema),
                    name: call.name.clone(),
                };
                (!is_harmless(&resolved)).then(|| (call.clone(), resolved))
            })
            .collect();
        Volatile(found)
    }

    /// Why a statement calling `calls` must not run as a read, one reason
    /// per VOLATILE function; empty when none is.
    pub fn reasons(&self, calls: &[FunctionCall]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(call, _)| calls.contains(call))
            .map(|(_, resolved)| {
                format!(
                    "{resolved} is VOLATILE: what it does (locks, slots, signals, files, other \
                     connections) may outlive the rollback"
                )
            })
            .collect()
    }
}

fn is_harmless(function: &FunctionCall) -> bool {
    function.schema.as_deref() == Some("pg_catalog") && HARMLESS.contains(&function.name.as_str())
}

/// Asks the server which of `calls` are VOLATILE, in one round trip (none
/// when there is nothing to ask). Run it concurrently with other queries on
/// the same client and tokio-postgres pipelines them.
pub async fn lookup(client: &Client, calls: &[FunctionCall]) -> Result<Volatile> {
    if calls.is_empty() {
        return Ok(Volatile::default());
    }
    let schemas: Vec<Option<&str>> = calls.iter().map(|c| c.schema.as_deref()).collect();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    // query_typed: no separate prepare, so one round trip.
    let rows = client
        .query_typed(
            VOLATILE_SQL,
            &[(&schemas, Type::TEXT_ARRAY), (&names, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| query_error("asking the server which functions are VOLATILE", &e))?;
    Ok(Volatile::from_rows(
        calls,
        rows.iter().map(|row| (row.get(0), row.get(1))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(schema: Option<&str>, name: &str) -> FunctionCall {
        FunctionCall {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    #[test]
    fn volatile_calls_give_reasons_except_harmless_built_ins() {
        let calls = [
            call(None, "make_slot"),
            call(None, "random"),
            call(Some("app"), "random"),
            call(None, "lower"),
        ];
        let volatile = Volatile::from_rows(
            &calls,
            [
                (1, "public".to_owned()),
                (2, "pg_catalog".to_owned()),
                // A user's `random` is not the built-in one.
                (3, "app".to_owned()),
                // Positions the server cannot have sent are ignored.
                (0, "public".to_owned()),
                (9, "public".to_owned()),
            ],
        );
        assert_eq!(
            volatile.reasons(&calls),
            [
                "public.make_slot() is VOLATILE: what it does (locks, slots, signals, files, \
                 other connections) may outlive the rollback",
                "app.random() is VOLATILE: what it does (locks, slots, signals, files, other \
                 connections) may outlive the rollback"
            ]
        );
        // Each statement gets the reasons of its own calls only.
        assert!(volatile.reasons(&calls[1..2]).is_empty());
        assert_eq!(volatile.reasons(&calls[2..]).len(), 1);
    }
}
