//! explain's write guard: every function a statement would run, resolved on
//! the server, before it is executed with ANALYZE.
//!
//! The SQL text is not trusted to say what a statement calls: PostgreSQL
//! reads `U&"pg\005fterminate\005fbackend"`, a name cut at 63 bytes,
//! `OPERATOR(pg_catalog.+)` or a cast as calls perfaudit's parser may not
//! see. So the server parses the statement itself: inside a transaction
//! that is always rolled back, it becomes the body of a temporary
//! SQL-standard function (`BEGIN ATOMIC`), which the server parses and
//! resolves when it is created but never runs, and whose parse tree
//! ([`crate::pg::node_tree`]) names every function, operator, type and
//! relation by OID. From there the guard follows what runs behind them
//! (an operator's function, an aggregate's support functions, a type's
//! input and output, a domain's CHECK, a view's query, row-level security
//! policies, a foreign table's wrapper; for a write, triggers, defaults,
//! CHECK constraints, rules and partitions; the bodies of SQL-standard
//! functions) and reads each function's volatility from `pg_proc`.
//!
//! Where the server cannot create the function (a standby, a read-only
//! session, no TEMP privilege) or must not (an event trigger would fire on
//! it), the guard resolves the names the SQL shows
//! instead, conservatively: every overload of a called name counts, and
//! what names cannot settle (a Unicode-escaped identifier, operators or
//! casts the database backs with VOLATILE functions) leaves the statement
//! unresolved. An unresolved statement is never executed.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{DataType, Expr, ObjectName, TypedString, Visit, Visitor};
use sqlparser::tokenizer::{Token, TokenWithSpan};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use super::params::INFERRED;
use crate::db::errors::{query_error, server_message};
use crate::error::Result;
use crate::pg::node_tree::{self, References};
use crate::sql::ident::{decode, ident, quote};
use crate::sql::{SqlStatement, calls, outliving_effect};

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
            by_default: through.starts_with("default value"),
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

/// The name of the function the probe creates; the transaction that
/// creates it is always rolled back.
const PROBE: &str = "pg_temp.perfaudit_guard";

/// How many levels of objects behind objects the guard follows (a view on
/// a view calling an SQL function...) before it gives up, unresolved.
const MAX_DEPTH: usize = 16;

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
/// whenever a value is read into them, even while a statement is parsed.
const DOMAINS_SQL: &str = "\
SELECT t.oid, pg_catalog.format_type(t.oid, NULL)
FROM pg_catalog.pg_type t
WHERE t.typtype = 'd'
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
    let (functions, _) = follow(client, seeds, false).await?;
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
            Some(parsed) if !writes => (Resolution::Names, names(client, parsed).await?),
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
    let (functions, unresolved) = follow(client, seeds, writes).await?;
    Ok(Guard {
        resolved_by: resolution,
        functions,
        unresolved,
    })
}

/// Has the server parse `statement`, which perfaudit's parser could not
/// read (`reason`), without running it: a statement the server does not
/// read either is bad input, found before anything runs.
pub async fn server_reads(
    client: &Client,
    statement: &str,
    placeholders: usize,
    reason: &str,
) -> Result<()> {
    match client
        .prepare_typed(statement, &vec![INFERRED; placeholders])
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => match error.as_db_error() {
            Some(db) if *db.code() == SqlState::SYNTAX_ERROR => Err(crate::Error::input(format!(
                "{reason}, and the server does not read it either: {}",
                db.message()
            ))),
            _ => Err(query_error("having the server parse the statement", &error)),
        },
    }
}

/// What the probe learnt.
enum Probe {
    /// The statement's parse tree.
    Parsed(String),
    /// The server could not take the statement as a function body (it
    /// does not parse or resolve, or cannot be a function's statement).
    Rejected(String),
    /// The function cannot or must not be created here: a read-only
    /// session, a standby, no TEMP privilege, or an event trigger that
    /// creating it would fire.
    Unavailable(String),
}

/// Has the server parse `statement` as the body of a temporary function,
/// in a transaction that is rolled back, and returns its parse tree.
async fn probe(
    client: &Client,
    statement: &str,
    placeholders: usize,
    timeout_sql: &str,
) -> Result<Probe> {
    let arguments = match parameter_types(client, statement, placeholders).await? {
        Ok(types) => types,
        Err(reason) => return Ok(Probe::Rejected(reason)),
    };
    // The body ends on a line of its own, so that a trailing `--` comment
    // cannot swallow the END. The extended protocol takes one statement
    // only: text that would close the body early and add another is
    // refused whole.
    let create = format!(
        "CREATE FUNCTION {PROBE}({arguments}) RETURNS void LANGUAGE sql BEGIN ATOMIC\n\
         {statement}\n;\nEND"
    );
    let tree_sql =
        format!("SELECT prosqlbody::text FROM pg_catalog.pg_proc WHERE oid = '{PROBE}'::regproc");
    // The session's transactions are READ ONLY by default meanwhile
    // ([`enter`]); this one creates the function, and is rolled back.
    client
        .batch_execute(&format!("BEGIN READ WRITE{timeout_sql}"))
        .await
        .map_err(|e| query_error("starting the guard's transaction", &e))?;
    let no_params: [(&(dyn ToSql + Sync), Type); 0] = [];
    let (created, tree, rollback) = tokio::join!(
        client.query_typed(&create, &no_params),
        client.query_typed(&tree_sql, &no_params),
        client.batch_execute("ROLLBACK"),
    );
    rollback.map_err(|e| query_error("rolling back the guard's transaction", &e))?;
    if let Err(error) = created {
        return match error.as_db_error() {
            Some(db)
                if matches!(
                    *db.code(),
                    SqlState::READ_ONLY_SQL_TRANSACTION | SqlState::INSUFFICIENT_PRIVILEGE
                ) =>
            {
                Ok(Probe::Unavailable(db.message().to_owned()))
            }
            Some(db) => Ok(Probe::Rejected(server_message(db))),
            None => Err(query_error(
                "having the server resolve the statement",
                &error,
            )),
        };
    }
    let rows = tree.map_err(|e| query_error("reading the statement's parse tree", &e))?;
    let tree = rows
        .first()
        .and_then(|row| row.get::<_, Option<String>>(0))
        .unwrap_or_default();
    Ok(Probe::Parsed(tree))
}

/// The types the server infers for `$1..$n` of `statement`, as an argument
/// list (`"pg_catalog"."int4", ...`); `Err` when it cannot describe it.
async fn parameter_types(
    client: &Client,
    statement: &str,
    placeholders: usize,
) -> Result<std::result::Result<String, String>> {
    if placeholders == 0 {
        return Ok(Ok(String::new()));
    }
    match client
        .prepare_typed(statement, &vec![INFERRED; placeholders])
        .await
    {
        Ok(described) => Ok(Ok(described
            .params()
            .iter()
            .map(|ty| format!("{}.{}", quote(ty.schema()), quote(ty.name())))
            .collect::<Vec<_>>()
            .join(", "))),
        Err(error) => match error.as_db_error() {
            Some(db) => Ok(Err(server_message(db))),
            None => Err(query_error("describing the statement's parameters", &error)),
        },
    }
}

/// Objects to follow, each with how the statement reaches it.
#[derive(Debug, Clone, Default)]
struct Seeds {
    functions: Vec<(u32, String)>,
    operators: Vec<(u32, String)>,
    types: Vec<(u32, String)>,
    relations: Vec<(u32, String)>,
    /// Node types the trees held that perfaudit does not know.
    unknown: BTreeSet<String>,
    /// What the names could not settle, one sentence each.
    unresolved: Vec<String>,
    /// Whether a query among the trees changes rows.
    writes: bool,
}

impl Seeds {
    /// What the statement's own parse tree refers to.
    fn statement(tree: &str) -> Seeds {
        let mut seeds = Seeds::default();
        seeds.add(node_tree::references(tree), "the statement");
        seeds
    }

    fn add(&mut self, found: References, through: &str) {
        let with = |oids: BTreeSet<u32>| oids.into_iter().map(|oid| (oid, through.to_owned()));
        self.functions.extend(with(found.functions));
        self.operators.extend(with(found.operators));
        self.types.extend(with(found.types));
        self.relations.extend(with(found.relations));
        self.unknown.extend(found.unknown_nodes);
        self.writes |= found.writes;
    }

    fn is_empty(&self) -> bool {
        self.functions.is_empty()
            && self.operators.is_empty()
            && self.types.is_empty()
            && self.relations.is_empty()
    }
}

/// What a foreign table's wrapper does, as the guard reports it: any
/// wrapper may reach another server (postgres_fdw's remote transaction runs
/// the remote side's functions) or run a program (file_fdw's `program`).
const FOREIGN_EFFECT: &str = "reads through a foreign data wrapper (another server, a program, \
                              a file), outside the rollback";

/// One level of following: the functions behind the objects of `$1..$8`
/// (functions, operators, types, relations, each with how the statement
/// reaches it), and the parse trees, types and relations behind them to
/// follow next. `$9`: the statement writes. `$10`: the effect of a foreign
/// table's wrapper ([`FOREIGN_EFFECT`]).
const FOLLOW_SQL: &str = "\
WITH functions(oid, through) AS (SELECT * FROM unnest($1::oid[], $2::text[])),
     operators(oid, through) AS (SELECT * FROM unnest($3::oid[], $4::text[])),
     types(oid, through) AS (SELECT * FROM unnest($5::oid[], $6::text[])),
     relations(oid, through) AS (SELECT * FROM unnest($7::oid[], $8::text[])),
     judged(oid, through, outlives) AS (
         SELECT oid, through, NULL::text FROM functions
         UNION ALL
         -- an operator runs its function
         SELECT o.oprcode::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_operator'::regclass, o.oid, 0), NULL
         FROM operators JOIN pg_catalog.pg_operator o ON o.oid = operators.oid
         UNION ALL
         -- sorting, hashing, index scans and partition pruning run the
         -- support functions of the operator's families
         SELECT p.amproc::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_opfamily'::regclass, p.amprocfamily, 0),
                NULL
         FROM operators
         JOIN pg_catalog.pg_amop o ON o.amopopr = operators.oid
         JOIN pg_catalog.pg_amproc p ON p.amprocfamily = o.amopfamily
         UNION ALL
         -- an aggregate runs its support functions
         SELECT support, pg_catalog.pg_describe_object('pg_catalog.pg_proc'::regclass, a.aggfnoid, 0),
                NULL
         FROM functions JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = functions.oid
         CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
                                         a.aggserialfn, a.aggdeserialfn, a.aggmtransfn,
                                         a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS support
         WHERE support <> 0
         UNION ALL
         -- a type: its input and output, and its default operator classes
         -- (comparing records and arrays, DISTINCT, hashing)
         SELECT io, pg_catalog.pg_describe_object('pg_catalog.pg_type'::regclass, t.oid, 0), NULL
         FROM types JOIN pg_catalog.pg_type t ON t.oid = types.oid
         CROSS JOIN LATERAL unnest(ARRAY[t.typinput, t.typoutput]::oid[]) AS io
         WHERE io <> 0
         UNION ALL
         SELECT p.amproc::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_opclass'::regclass, c.oid, 0), NULL
         FROM types
         JOIN pg_catalog.pg_opclass c ON c.opcintype = types.oid AND c.opcdefault
         JOIN pg_catalog.pg_amproc p ON p.amprocfamily = c.opcfamily
         UNION ALL
         -- a write fires the table's triggers
         SELECT g.tgfoid, pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::regclass, g.oid, 0),
                NULL
         FROM relations JOIN pg_catalog.pg_trigger g ON g.tgrelid = relations.oid
         WHERE $9 AND NOT g.tgisinternal
         UNION ALL
         -- a foreign table runs its wrapper
         SELECT w.fdwhandler,
                pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, f.ftrelid, 0), $10
         FROM relations
         JOIN pg_catalog.pg_foreign_table f ON f.ftrelid = relations.oid
         JOIN pg_catalog.pg_foreign_server s ON s.oid = f.ftserver
         JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw)
SELECT 'function', j.oid, j.through, n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid), p.provolatile::text,
       p.prosqlbody::text, j.outlives
FROM judged j
LEFT JOIN pg_catalog.pg_proc p ON p.oid = j.oid
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
UNION ALL
-- a view runs its query; a written table, its rules
SELECT 'tree', w.oid, pg_catalog.pg_describe_object('pg_catalog.pg_rewrite'::regclass, w.oid, 0),
       NULL, NULL, NULL, NULL, w.ev_action::text, NULL
FROM relations
JOIN pg_catalog.pg_class c ON c.oid = relations.oid
JOIN pg_catalog.pg_rewrite w ON w.ev_class = c.oid
WHERE (c.relkind = 'v' AND w.rulename = '_RETURN') OR ($9 AND w.rulename <> '_RETURN')
UNION ALL
-- row-level security policies
SELECT 'tree', p.oid, pg_catalog.pg_describe_object('pg_catalog.pg_policy'::regclass, p.oid, 0),
       NULL, NULL, NULL, NULL, concat_ws(' ', p.polqual::text, p.polwithcheck::text), NULL
FROM relations
JOIN pg_catalog.pg_class c ON c.oid = relations.oid AND c.relrowsecurity
JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid
UNION ALL
-- a write fills defaults and generated columns
SELECT 'tree', d.oid, pg_catalog.pg_describe_object('pg_catalog.pg_attrdef'::regclass, d.oid, 0),
       NULL, NULL, NULL, NULL, d.adbin::text, NULL
FROM relations JOIN pg_catalog.pg_attrdef d ON d.adrelid = relations.oid
WHERE $9
UNION ALL
-- a write checks the table's CHECKs; a value of a domain, the domain's
SELECT 'tree', k.oid, pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::regclass, k.oid, 0),
       NULL, NULL, NULL, NULL, k.conbin::text, NULL
FROM pg_catalog.pg_constraint k
WHERE k.conbin IS NOT NULL
  AND (($9 AND k.conrelid IN (SELECT oid FROM relations))
       OR k.contypid IN (SELECT oid FROM types))
UNION ALL
-- types inside a type: a domain's base, a composite's columns, an array's
-- elements, a range's subtype
SELECT 'type', inner_type, pg_catalog.pg_describe_object('pg_catalog.pg_type'::regclass, t.oid, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM types JOIN pg_catalog.pg_type t ON t.oid = types.oid
CROSS JOIN LATERAL (
    SELECT t.typbasetype WHERE t.typtype = 'd'
    UNION ALL SELECT t.typelem WHERE t.typelem <> 0
    UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
) AS inside(inner_type)
UNION ALL
-- a write reaches the partitions, and the tables its foreign keys'
-- actions change (ON DELETE CASCADE, SET NULL, SET DEFAULT...)
SELECT 'relation', i.inhrelid, pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, i.inhparent, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM relations JOIN pg_catalog.pg_inherits i ON i.inhparent = relations.oid
WHERE $9
UNION ALL
SELECT 'relation', k.conrelid, pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::regclass, k.oid, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM relations JOIN pg_catalog.pg_constraint k ON k.confrelid = relations.oid
WHERE $9 AND k.contype = 'f'
  AND (k.confupdtype NOT IN ('a', 'r') OR k.confdeltype NOT IN ('a', 'r'))";

/// Follows `seeds` to every function behind them ([`follow_once`]); when a
/// query found on the way changes rows (a function's body that inserts, a
/// rule), again as a write, so that the triggers, defaults and constraints
/// of what it writes count.
async fn follow(
    client: &Client,
    seeds: Seeds,
    writes: bool,
) -> Result<(Vec<Reached>, Vec<String>)> {
    let (functions, unresolved, found_writes) = follow_once(client, seeds.clone(), writes).await?;
    if found_writes && !writes {
        let (functions, unresolved, _) = follow_once(client, seeds, true).await?;
        return Ok((functions, unresolved));
    }
    Ok((functions, unresolved))
}

/// Follows `seeds` to every function behind them, level by level, each
/// object once. Returns the functions, what could not be resolved, and
/// whether a query on the way changes rows.
async fn follow_once(
    client: &Client,
    mut seeds: Seeds,
    writes: bool,
) -> Result<(Vec<Reached>, Vec<String>, bool)> {
    let mut found_writes = seeds.writes;
    let mut seen: [BTreeSet<u32>; 4] = Default::default();
    let mut functions: Vec<Reached> = Vec::new();
    let mut unresolved = Vec::new();
    let mut unknown = BTreeSet::new();
    // Functions already judged, however they were reached.
    let mut judged = BTreeSet::new();
    for _ in 0..MAX_DEPTH {
        unknown.append(&mut seeds.unknown);
        unresolved.append(&mut seeds.unresolved);
        found_writes |= seeds.writes;
        let lists = [
            &mut seeds.functions,
            &mut seeds.operators,
            &mut seeds.types,
            &mut seeds.relations,
        ];
        for (list, seen) in lists.into_iter().zip(seen.iter_mut()) {
            list.retain(|(oid, _)| seen.insert(*oid));
        }
        if seeds.is_empty() {
            break;
        }
        let level = std::mem::take(&mut seeds);
        let split =
            |list: &[(u32, String)]| -> (Vec<u32>, Vec<String>) { list.iter().cloned().unzip() };
        let (f, f_through) = split(&level.functions);
        let (o, o_through) = split(&level.operators);
        let (t, t_through) = split(&level.types);
        let (r, r_through) = split(&level.relations);
        let rows = client
            .query_typed(
                FOLLOW_SQL,
                &[
                    (&f, Type::OID_ARRAY),
                    (&f_through, Type::TEXT_ARRAY),
                    (&o, Type::OID_ARRAY),
                    (&o_through, Type::TEXT_ARRAY),
                    (&t, Type::OID_ARRAY),
                    (&t_through, Type::TEXT_ARRAY),
                    (&r, Type::OID_ARRAY),
                    (&r_through, Type::TEXT_ARRAY),
                    (&writes, Type::BOOL),
                    (&FOREIGN_EFFECT, Type::TEXT),
                ],
            )
            .await
            .map_err(|e| query_error("following what the statement runs", &e))?;
        for row in rows {
            let kind: &str = row.get(0);
            let oid: u32 = row.get(1);
            let through: String = row.get(2);
            let tree: Option<String> = row.get(7);
            match kind {
                "function" => {
                    let (Some(schema), Some(name)) = (
                        row.get::<_, Option<String>>(3),
                        row.get::<_, Option<String>>(4),
                    ) else {
                        unresolved.push(format!(
                            "the function with OID {oid} ({through}) is not in pg_proc"
                        ));
                        continue;
                    };
                    if let Some(body) = &tree {
                        let description = format!("function {schema}.{name}");
                        seeds.add(node_tree::references(body), &description);
                    }
                    if !judged.insert(oid) {
                        continue;
                    }
                    let arguments: String = row.get(5);
                    let volatility = match row.get::<_, String>(6).as_str() {
                        "i" => Volatility::Immutable,
                        "s" => Volatility::Stable,
                        _ => Volatility::Volatile,
                    };
                    let mut reached = Reached::new(schema, name, &arguments, volatility, through);
                    if row.get::<_, Option<String>>(8).is_some() {
                        reached.outlives_rollback = Some(FOREIGN_EFFECT);
                    }
                    functions.push(reached);
                }
                "tree" => seeds.add(
                    node_tree::references(tree.as_deref().unwrap_or_default()),
                    &through,
                ),
                "type" => seeds.types.push((oid, through)),
                "relation" => seeds.relations.push((oid, through)),
                _ => {}
            }
        }
    }
    if !seeds.is_empty() {
        unresolved.push(format!(
            "it runs objects nested more than {MAX_DEPTH} levels deep (views on views, \
             functions calling functions)"
        ));
    }
    if !unknown.is_empty() {
        unresolved.push(format!(
            "its parse tree holds nodes perfaudit does not know ({}), from a later PostgreSQL",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok((functions, unresolved, found_writes))
}

/// Names PostgreSQL's grammar reads as syntax, not as functions in
/// `pg_proc`, which perfaudit's parser reads as calls.
const SYNTAX_NOT_FUNCTIONS: &[&str] = &[
    "coalesce",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "greatest",
    "grouping",
    "least",
    "localtime",
    "localtimestamp",
    "nullif",
    "row",
    "session_user",
    "user",
];

/// Functions by name: each call's position in `$1`/`$2` (schema or NULL,
/// name) and the OID of every function of that name it could mean, or NULL
/// when none exists.
const FUNCTIONS_BY_NAME: &str = "\
SELECT c.i, f.oid
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(schema, name, i)
LEFT JOIN LATERAL (
    SELECT p.oid
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proname = c.name
      AND CASE WHEN c.schema IS NULL THEN n.nspname = ANY (pg_catalog.current_schemas(true))
               ELSE n.nspname = c.schema END) f ON true
ORDER BY 1";

/// The relations and types named in `$1` and `$2` (as SQL spells them),
/// and every operator and cast the database's users and extensions
/// defined: without the server's parse, perfaudit cannot tell which of
/// those a statement uses (an implicit cast shows no name at all), so the
/// guard follows them all.
const OBJECTS_BY_NAME: &str = "\
SELECT 'relation', pg_catalog.to_regclass(name)::oid, name FROM unnest($1::text[]) AS name
UNION ALL
SELECT 'type', pg_catalog.to_regtype(name)::oid, name FROM unnest($2::text[]) AS name
UNION ALL
SELECT 'operator', o.oid, o.oid::pg_catalog.regoperator::text
FROM pg_catalog.pg_operator o WHERE o.oid >= 16384
UNION ALL
SELECT 'cast', c.castfunc,
       pg_catalog.format('%s to %s', c.castsource::pg_catalog.regtype, c.casttarget::pg_catalog.regtype)
FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 AND c.castfunc <> 0";

/// Seeds from the names the SQL shows, for a read in a session where the
/// probe cannot run: every function of a called name, the relations and
/// cast types it names. What names cannot settle is unresolved.
async fn names(client: &Client, parsed: &SqlStatement) -> Result<Seeds> {
    let mut seeds = Seeds::default();
    let mut unresolved = unicode_identifiers(&parsed.tokens);
    let called: Vec<_> = calls(&parsed.ast)
        .into_iter()
        .filter(|c| c.schema.is_some() || !SYNTAX_NOT_FUNCTIONS.contains(&c.name.as_str()))
        .collect();
    let schemas: Vec<Option<&str>> = called.iter().map(|c| c.schema.as_deref()).collect();
    let names: Vec<&str> = called.iter().map(|c| c.name.as_str()).collect();
    let (relations, types) = named_relations_and_types(&parsed.ast);
    let function_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&schemas, Type::TEXT_ARRAY), (&names, Type::TEXT_ARRAY)];
    let object_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&relations, Type::TEXT_ARRAY), (&types, Type::TEXT_ARRAY)];
    let (functions, objects) = tokio::try_join!(
        client.query_typed(FUNCTIONS_BY_NAME, &function_params),
        client.query_typed(OBJECTS_BY_NAME, &object_params),
    )
    .map_err(|e| query_error("looking up the names the statement calls", &e))?;
    for row in functions {
        let position: i64 = row.get(0);
        let call = &called[usize::try_from(position - 1).unwrap_or_default()];
        match row.get::<_, Option<u32>>(1) {
            Some(oid) => seeds.functions.push((oid, "the statement".to_owned())),
            None => unresolved.push(format!("no function {call} exists to call")),
        }
    }
    for row in objects {
        let kind: &str = row.get(0);
        let oid: Option<u32> = row.get(1);
        let name: String = row.get(2);
        match (kind, oid) {
            ("relation", Some(oid)) => seeds.relations.push((oid, "the statement".to_owned())),
            ("type", Some(oid)) => seeds.types.push((oid, "the statement".to_owned())),
            ("type", None) => unresolved.push(format!("no type {name} exists to cast to")),
            ("operator", Some(oid)) => seeds
                .operators
                .push((oid, format!("operator {name}, which the statement may use"))),
            ("cast", Some(oid)) => seeds.functions.push((
                oid,
                format!("the cast from {name}, which the statement may use"),
            )),
            // A name that is no relation is a CTE's or a subquery's.
            _ => {}
        }
    }
    seeds.unresolved = unresolved;
    Ok(seeds)
}

/// The Unicode-escaped identifiers among `tokens` (`U&"..."`, perhaps
/// with `UESCAPE '!'`), which perfaudit's parser reads as `U & "..."`:
/// each as a sentence saying what the server reads instead.
fn unicode_identifiers(tokens: &[TokenWithSpan]) -> Vec<String> {
    let significant: Vec<&Token> = tokens.iter().map(|t| &t.token).collect();
    let mut found = Vec::new();
    for (i, window) in significant.windows(3).enumerate() {
        let [Token::Word(u), Token::Ampersand, Token::Word(quoted)] = window else {
            continue;
        };
        if u.quote_style.is_some()
            || !u.value.eq_ignore_ascii_case("u")
            || quoted.quote_style != Some('"')
        {
            continue;
        }
        let mut spelling = format!("U&\"{}\"", quoted.value.replace('"', "\"\""));
        let rest: Vec<&Token> = significant[i + 3..]
            .iter()
            .copied()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .take(2)
            .collect();
        if let [Token::Word(keyword), Token::SingleQuotedString(escape)] = rest[..]
            && keyword.value.eq_ignore_ascii_case("uescape")
        {
            spelling.push_str(&format!(" UESCAPE '{escape}'"));
        }
        let reads = match decode(&spelling) {
            Ok(name) => format!("which PostgreSQL reads as {}", ident(&name)),
            Err(reason) => format!("which PostgreSQL rejects: {reason}"),
        };
        found.push(format!(
            "it spells an identifier with Unicode escapes ({spelling}, {reads}), which \
             perfaudit's parser does not read as PostgreSQL does"
        ));
    }
    found
}

/// The relations a statement names (tables, views, CTE names too), and
/// the types it casts to, as SQL spells them (quoted, for `to_regclass` and
/// `to_regtype`).
fn named_relations_and_types(statement: &sqlparser::ast::Statement) -> (Vec<String>, Vec<String>) {
    #[derive(Default)]
    struct Names {
        relations: Vec<String>,
        types: Vec<String>,
    }
    impl Visitor for Names {
        type Break = ();

        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            if let Some(parts) = crate::sql::ident::fold_name(relation) {
                let name = parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".");
                if !self.relations.contains(&name) {
                    self.relations.push(name);
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            let data_type: Option<&DataType> = match expr {
                Expr::Cast { data_type, .. } | Expr::TypedString(TypedString { data_type, .. }) => {
                    Some(data_type)
                }
                _ => None,
            };
            if let Some(data_type) = data_type {
                let name = data_type.to_string();
                if !self.types.contains(&name) {
                    self.types.push(name);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = statement.visit(&mut names);
    (names.relations, names.types)
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

    #[test]
    fn unicode_escaped_identifiers_are_found_in_the_tokens() {
        let parse = |sql: &str| crate::sql::parse_statements(sql).unwrap().remove(0);
        let found = unicode_identifiers(
            &parse(r#"SELECT pg_catalog.U&"pg\005fterminate\005fbackend"(1)"#).tokens,
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("reads as pg_terminate_backend"),
            "{found:?}"
        );
        // `U & "x"` with spaces is an AND, as PostgreSQL reads it too.
        assert!(unicode_identifiers(&parse(r#"SELECT u & "x" FROM t"#).tokens).is_empty());
    }
}
