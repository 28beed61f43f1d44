//! The write guard of explain (and of every command that has the server read
//! a statement): every function a statement would run, resolved on the
//! server, before it is executed with ANALYZE.
//!
//! The SQL text is not trusted to say what a statement calls: PostgreSQL
//! reads `U&"pg\005fterminate\005fbackend"`, a name cut at 63 bytes,
//! `OPERATOR(pg_catalog.+)` or a cast as calls perfaudit's parser may not
//! see. So the server parses the statement itself (`probe`): inside a
//! transaction that is always rolled back, it becomes the body of a
//! temporary SQL-standard function (`BEGIN ATOMIC`), which the server
//! parses and resolves when it is created but never runs, and whose parse
//! tree ([`crate::pg::node_tree`]) names every function, operator, type and
//! relation by OID. `follow` then walks the catalog to every function
//! behind them (operators and their operator classes, aggregates, types
//! and the types inside them, domains' CHECKs, views, policies, foreign
//! tables; for a write, triggers, defaults, CHECKs, rules, partitions and
//! foreign keys' actions; SQL-standard bodies), and [`Guard::verdict`]
//! judges each function's volatility and effect.
//!
//! Where the session cannot or must not create the function (read-only, a
//! standby, no TEMP privilege, an event trigger on CREATE FUNCTION),
//! `names` looks up what the SQL names instead, conservatively. What
//! cannot be resolved is never executed. Before any of this, a database
//! where merely reading a statement runs VOLATILE code (a domain's CHECK)
//! is refused, and every describe runs READ ONLY ([`enter`]).

mod follow;
mod names;
mod probe;

use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::{SqlStatement, outliving_effect};
use follow::{Seeds, follow};
pub use probe::server_reads;
use probe::{Probe, probe};

/// How the guard learnt what a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The server parsed the statement and named each object by OID.
    Server,
    /// The server could not parse it for the guard (a read-only session):
    /// the names the SQL shows were looked up instead, conservatively.
    Names,
}

/// A function's volatility, as `pg_proc.provolatile` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

impl Volatility {
    /// `IMMUTABLE`, `STABLE` or `VOLATILE`, as SQL spells it.
    pub fn keyword(self) -> &'static str {
        match self {
            Volatility::Immutable => "IMMUTABLE",
            Volatility::Stable => "STABLE",
            Volatility::Volatile => "VOLATILE",
        }
    }
}

/// One function the statement would run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reached {
    /// `pg_catalog.pg_terminate_backend(pid integer, timeout bigint)`.
    pub function: String,
    /// Its volatility.
    pub volatility: Volatility,
    /// How the statement reaches it: `the statement`, `operator
    /// =(integer,integer)`, `rule _RETURN on view v`, `trigger t on table
    /// payments`...
    pub reached_through: String,
    /// What it does that a rollback does not undo, when perfaudit knows.
    pub outlives_rollback: Option<&'static str>,
    /// Its name, for the lists of known functions.
    #[serde(skip)]
    name: String,
    /// Its schema.
    #[serde(skip)]
    schema: String,
    /// Reached through a column default (a serial's `nextval`), which
    /// `--analyze-writes` accepts as documented.
    #[serde(skip)]
    by_default: bool,
}

/// What the guard found for one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guard {
    /// How it was resolved.
    pub resolved_by: Resolution,
    /// Every function it would run, each once.
    pub functions: Vec<Reached>,
    /// What could not be resolved, one sentence each: any makes the
    /// statement planned only.
    pub unresolved: Vec<String>,
}

/// What the guard's findings mean for running the statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// What could not be resolved: never executed.
    pub unresolved: Vec<String>,
    /// What outlives the rollback: never executed, not even with
    /// `--analyze-writes`.
    pub outliving: Vec<String>,
    /// VOLATILE functions: the statement is a write (planned only unless
    /// `--analyze-writes`).
    pub volatile: Vec<String>,
    /// What planning alone would run: a VOLATILE function, or one that
    /// outlives the rollback, inside the body of an IMMUTABLE or STABLE one,
    /// which the planner evaluates when its arguments are constants. Such a
    /// statement is not even planned.
    pub planning: Vec<String>,
}

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

impl Guard {
    /// Judges what was found.
    pub fn verdict(&self) -> Verdict {
        let mut verdict = Verdict {
            unresolved: self.unresolved.clone(),
            ..Verdict::default()
        };
        for reached in &self.functions {
            let through = match reached.reached_through.as_str() {
                "the statement" => String::new(),
                other => format!(" (through {other})"),
            };
            let sequence_by_default = reached.by_default && reached.name == "nextval";
            let harmful = (reached.outlives_rollback.is_some() && !sequence_by_default)
                || (reached.volatility == Volatility::Volatile && !reached.is_harmless());
            if harmful && let Some(folded) = self.folded_caller(reached) {
                verdict.planning.push(format!(
                    "{} runs inside {folded}, which the planner evaluates when its arguments \
                     are constants",
                    reached.function
                ));
            }
            if let Some(effect) = reached.outlives_rollback
                && !sequence_by_default
            {
                verdict
                    .outliving
                    .push(format!("{}{through} {effect}", reached.function));
            } else if reached.volatility == Volatility::Volatile && !reached.is_harmless() {
                verdict.volatile.push(format!(
                    "{}{through} is VOLATILE: what it does (locks, slots, signals, files, other \
                     connections) may outlive the rollback",
                    reached.function
                ));
            }
        }
        verdict
    }
}

impl Guard {
    /// The IMMUTABLE or STABLE function in whose SQL-standard body
    /// `reached` was found, described for people.
    fn folded_caller(&self, reached: &Reached) -> Option<String> {
        let caller = reached.reached_through.strip_prefix("function ")?;
        self.functions
            .iter()
            .find(|f| {
                f.volatility != Volatility::Volatile
                    && f.function
                        .strip_prefix(caller)
                        .is_some_and(|rest| rest.starts_with('('))
            })
            .map(|f| format!("the {} function {}", f.volatility.keyword(), f.function))
    }
}

impl Reached {
    /// The function `schema.name(arguments)`, reached `through` something.
    pub fn new(
        schema: String,
        name: String,
        arguments: &str,
        volatility: Volatility,
        through: String,
    ) -> Reached {
        Reached {
            function: format!("{schema}.{name}({arguments})"),
            volatility,
            // As follow.rs words a column default, whatever the server's language.
            by_default: through.starts_with("default value for column"),
            reached_through: through,
            outlives_rollback: outliving_effect(&name),
            name,
            schema,
        }
    }

    fn is_harmless(&self) -> bool {
        self.schema == "pg_catalog" && HARMLESS.contains(&self.name.as_str())
    }
}

/// What the guard learnt of the session, and what it judged there: a
/// statement repeated in the input (a file of the same query) is judged
/// once. One lives for a batch of statements, which bounds what it keeps.
#[derive(Debug, Default)]
pub struct Session {
    /// Why the probe's function may not be created here, if so: the session
    /// is read-only (a standby, or read-only by its settings), which
    /// perfaudit respects, or creating it would fire an event trigger.
    cannot_probe: Option<&'static str>,
    /// The guards of the statements judged, by SQL, parameters and whether
    /// it writes.
    judged: std::collections::HashMap<(String, usize, bool), Guard>,
}

/// Refuses a database where merely reading a statement can run code whose
/// effect outlives a rollback ([`parse_hazards`]): call it once, before
/// the server reads any statement.
pub async fn refuse_parse_hazards(client: &Client) -> Result<()> {
    let hazards = parse_hazards(client).await?;
    if hazards.is_empty() {
        return Ok(());
    }
    Err(crate::Error::input(format!(
        "this database has domains whose CHECK runs code a rollback does not undo ({}); \
         PostgreSQL runs it while it merely reads a statement that gives such a domain a value, \
         before any transaction perfaudit could make read-only, so perfaudit sends it no \
         statement: run it on a copy of the database, or make those CHECKs IMMUTABLE as \
         PostgreSQL asks",
        hazards.join("; ")
    )))
}

/// Readies `client` for the questions asked of the server before a
/// statement runs (the rewriter's, the guard's): learns whether the probe
/// may run, and makes every transaction READ ONLY unless it says otherwise,
/// so that a describe, which PostgreSQL runs outside a transaction block,
/// commits nothing. [`leave`] undoes it.
pub async fn enter(client: &Client) -> Result<Session> {
    let no_params: [(&(dyn ToSql + Sync), Type); 0] = [];
    let rows = client
        .query_typed(SESSION_SQL, &no_params)
        .await
        .map_err(|e| query_error("reading how the session may be used", &e))?;
    let (read_only, event_triggers): (bool, bool) = rows
        .first()
        .map_or((true, true), |row| (row.get(0), row.get(1)));
    client
        .batch_execute("SET default_transaction_read_only = on")
        .await
        .map_err(|e| query_error("making the session read-only", &e))?;
    Ok(Session {
        judged: Default::default(),
        cannot_probe: if read_only {
            Some("the session is read-only")
        } else if event_triggers {
            Some("creating the function it parses with would fire an event trigger")
        } else {
            None
        },
    })
}

/// Gives the session back its own `default_transaction_read_only`.
pub async fn leave(client: &Client) -> Result<()> {
    client
        .batch_execute("RESET default_transaction_read_only")
        .await
        .map_err(|e| query_error("giving the session back its settings", &e))
}

/// Whether the session is read-only (by its settings, or as a standby),
/// and whether an event trigger would fire on `CREATE FUNCTION`.
const SESSION_SQL: &str = "\
SELECT pg_catalog.current_setting('transaction_read_only')::bool,
       EXISTS (SELECT FROM pg_catalog.pg_event_trigger
               WHERE evtenabled <> 'D'
                 AND evtevent IN ('ddl_command_start', 'ddl_command_end')
                 AND (evttags IS NULL OR 'CREATE FUNCTION' = ANY (evttags)))";

/// The domains with a CHECK constraint, which their input function runs
/// whenever a value is read into them, even while a statement is parsed;
/// the built-in ones (`information_schema`'s) check with built-ins.
const DOMAINS_SQL: &str = "\
SELECT t.oid, pg_catalog.format_type(t.oid, NULL)
FROM pg_catalog.pg_type t
WHERE t.typtype = 'd' AND t.oid >= 16384
  AND EXISTS (SELECT FROM pg_catalog.pg_constraint c
              WHERE c.contypid = t.oid AND c.conbin IS NOT NULL)";

/// What reading a statement could run that no transaction stops: a
/// domain's CHECK reaching a VOLATILE function (`'(42)'::composite` runs
/// the CHECK of a domain column while the statement is parsed, outside any
/// transaction perfaudit makes). One sentence per function.
pub async fn parse_hazards(client: &Client) -> Result<Vec<String>> {
    let no_params: [(&(dyn ToSql + Sync), Type); 0] = [];
    let domains = client
        .query_typed(DOMAINS_SQL, &no_params)
        .await
        .map_err(|e| query_error("reading the database's domains", &e))?;
    let mut seeds = Seeds::default();
    for row in domains {
        seeds
            .types
            .push((row.get(0), format!("domain {}", row.get::<_, String>(1))));
    }
    if seeds.is_empty() {
        return Ok(Vec::new());
    }
    let (functions, _) = follow(client, seeds, false, false).await?;
    let verdict = Guard {
        resolved_by: Resolution::Server,
        functions,
        unresolved: Vec::new(),
    }
    .verdict();
    Ok(verdict
        .outliving
        .into_iter()
        .chain(verdict.volatile)
        .collect())
}

/// Resolves what `statement` (the SQL that would run, with `placeholders`
/// parameters) runs, on `client`. `writes`: whether it writes, so that
/// triggers, defaults and constraints count. `parsed` is the statement as
/// perfaudit parsed it, for the names fallback (`None` when it did not
/// parse: then nothing can be resolved without the server). `timeout_sql`
/// bounds the probe's transaction (`; SET LOCAL statement_timeout = ...`).
///
/// Fails only when the connection fails; what the server cannot resolve is
/// reported in the [`Guard`].
pub async fn vet(
    client: &Client,
    session: &mut Session,
    statement: &str,
    placeholders: usize,
    writes: bool,
    parsed: Option<&SqlStatement>,
    timeout_sql: &str,
) -> Result<Guard> {
    let key = (statement.to_owned(), placeholders, writes);
    if let Some(guard) = session.judged.get(&key) {
        return Ok(guard.clone());
    }
    let guard = judge(
        client,
        session,
        statement,
        placeholders,
        writes,
        parsed,
        timeout_sql,
    )
    .await?;
    session.judged.insert(key, guard.clone());
    Ok(guard)
}

/// [`vet`], for a statement not judged yet.
async fn judge(
    client: &Client,
    session: &Session,
    statement: &str,
    placeholders: usize,
    writes: bool,
    parsed: Option<&SqlStatement>,
    timeout_sql: &str,
) -> Result<Guard> {
    let probed = match session.cannot_probe {
        Some(reason) => Probe::Unavailable(reason.to_owned()),
        None => probe(client, statement, placeholders, timeout_sql).await?,
    };
    let (resolution, seeds) = match probed {
        Probe::Parsed(tree) => (Resolution::Server, Seeds::statement(&tree)),
        Probe::Rejected(reason) => {
            return Ok(Guard {
                resolved_by: Resolution::Server,
                functions: Vec::new(),
                unresolved: vec![format!(
                    "the server could not resolve it as a function body ({reason})"
                )],
            });
        }
        Probe::Unavailable(reason) => match parsed {
            Some(parsed) if !writes => (Resolution::Names, names::names(client, parsed).await?),
            _ => {
                return Ok(Guard {
                    resolved_by: Resolution::Names,
                    functions: Vec::new(),
                    unresolved: vec![format!(
                        "the server cannot resolve it for perfaudit in this session \
                         ({reason}), and what it runs cannot be told from its names: it writes, \
                         or perfaudit's parser cannot read it"
                    )],
                });
            }
        },
    };
    let (functions, unresolved) = follow(client, seeds, writes, true).await?;
    Ok(Guard {
        resolved_by: resolution,
        functions,
        unresolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(schema: &str, name: &str, volatility: Volatility, through: &str) -> Reached {
        Reached::new(schema.into(), name.into(), "", volatility, through.into())
    }

    fn guard(functions: Vec<Reached>) -> Guard {
        Guard {
            resolved_by: Resolution::Server,
            functions,
            unresolved: Vec::new(),
        }
    }

    #[test]
    fn volatile_functions_are_writes_except_harmless_built_ins() {
        let verdict = guard(vec![
            reached("public", "make_slot", Volatility::Volatile, "the statement"),
            reached(
                "pg_catalog",
                "random",
                Volatility::Volatile,
                "the statement",
            ),
            // A user's `random` is not the built-in one.
            reached(
                "app",
                "random",
                Volatility::Volatile,
                "rule _RETURN on view v",
            ),
            reached(
                "pg_catalog",
                "lower",
                Volatility::Immutable,
                "the statement",
            ),
        ])
        .verdict();
        assert_eq!(
            verdict.volatile,
            [
                "public.make_slot() is VOLATILE: what it does (locks, slots, signals, files, \
                 other connections) may outlive the rollback",
                "app.random() (through rule _RETURN on view v) is VOLATILE: what it does (locks, \
                 slots, signals, files, other connections) may outlive the rollback"
            ]
        );
        assert!(verdict.outliving.is_empty() && verdict.unresolved.is_empty());
    }

    #[test]
    fn what_outlives_the_rollback_is_named_whatever_its_schema() {
        let verdict = guard(vec![
            reached(
                "pg_catalog",
                "pg_terminate_backend",
                Volatility::Volatile,
                "the statement",
            ),
            reached(
                "public",
                "dblink_exec",
                Volatility::Volatile,
                "function public.f",
            ),
            // A serial's default: documented as kept by --analyze-writes.
            reached(
                "pg_catalog",
                "nextval",
                Volatility::Volatile,
                "default value for column id of table t",
            ),
        ])
        .verdict();
        assert_eq!(verdict.outliving.len(), 2, "{verdict:?}");
        assert!(verdict.outliving[0].starts_with("pg_catalog.pg_terminate_backend() signals"));
        assert!(verdict.outliving[1].contains("(through function public.f)"));
        assert_eq!(verdict.volatile.len(), 1, "{verdict:?}");
    }
}
