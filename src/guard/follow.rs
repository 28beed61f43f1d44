//! Following a statement's objects to every function behind them, level by
//! level, in the catalog.

use std::collections::BTreeSet;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::{Reached, Volatility};
use crate::db::errors::query_error;
use crate::error::Result;
use crate::pg::node_tree::{self, References};

/// How many levels of objects behind objects the guard follows (a view on
/// a view calling an SQL function...) before it gives up, unresolved.
const MAX_DEPTH: usize = 16;

/// Objects to follow, each with how the statement reaches it.
#[derive(Debug, Clone, Default)]
pub(super) struct Seeds {
    pub(super) functions: Vec<(u32, String)>,
    pub(super) operators: Vec<(u32, String)>,
    pub(super) types: Vec<(u32, String)>,
    pub(super) relations: Vec<(u32, String)>,
    /// Node types the trees held that perfaudit does not know.
    pub(super) unknown: BTreeSet<String>,
    /// What the names could not settle, one sentence each.
    pub(super) unresolved: Vec<String>,
    /// Whether a query among the trees changes rows.
    pub(super) writes: bool,
}

impl Seeds {
    /// What the statement's own parse tree refers to.
    pub(super) fn statement(tree: &str) -> Seeds {
        let mut seeds = Seeds::default();
        seeds.add(node_tree::references(tree), "the statement");
        seeds
    }

    pub(super) fn add(&mut self, found: References, through: &str) {
        let with = |oids: BTreeSet<u32>| oids.into_iter().map(|oid| (oid, through.to_owned()));
        self.functions.extend(with(found.functions));
        self.operators.extend(with(found.operators));
        self.types.extend(with(found.types));
        self.relations.extend(with(found.relations));
        self.unknown.extend(found.unknown_nodes);
        self.writes |= found.writes;
    }

    pub(super) fn is_empty(&self) -> bool {
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
/// table's wrapper ([`FOREIGN_EFFECT`]). `$11`: operator families count.
///
/// Built-in operators, operator families, aggregates and types (OIDs below
/// `FirstNormalObjectId`, 16384) run only built-in functions that are not
/// VOLATILE, which a test checks on the server: only what users and
/// extensions defined is followed behind them.
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
         WHERE o.oid >= 16384
         UNION ALL
         -- sorting, hashing, index scans and partition pruning run the
         -- support functions of the operator's families
         SELECT p.amproc::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_opfamily'::regclass, p.amprocfamily, 0),
                NULL
         FROM operators
         JOIN pg_catalog.pg_amop o ON o.amopopr = operators.oid
         JOIN pg_catalog.pg_amproc p ON p.amprocfamily = o.amopfamily
         WHERE $11 AND o.amopfamily >= 16384
         UNION ALL
         -- an aggregate runs its support functions
         SELECT support, pg_catalog.pg_describe_object('pg_catalog.pg_proc'::regclass, a.aggfnoid, 0),
                NULL
         FROM functions JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = functions.oid
         CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
                                         a.aggserialfn, a.aggdeserialfn, a.aggmtransfn,
                                         a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS support
         WHERE support <> 0 AND a.aggfnoid >= 16384
         UNION ALL
         -- a type: its input and output, and its default operator classes
         -- (comparing records and arrays, DISTINCT, hashing)
         SELECT io, pg_catalog.pg_describe_object('pg_catalog.pg_type'::regclass, t.oid, 0), NULL
         FROM types JOIN pg_catalog.pg_type t ON t.oid = types.oid
         CROSS JOIN LATERAL unnest(ARRAY[t.typinput, t.typoutput]::oid[]) AS io
         WHERE io <> 0 AND t.oid >= 16384
         UNION ALL
         SELECT p.amproc::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_opclass'::regclass, c.oid, 0), NULL
         FROM types
         JOIN pg_catalog.pg_opclass c ON c.opcintype = types.oid AND c.opcdefault
         JOIN pg_catalog.pg_amproc p ON p.amprocfamily = c.opcfamily
         WHERE $11 AND c.oid >= 16384
         UNION ALL
         -- a write maintains the table's indexes, with their operator
         -- classes' support functions
         SELECT p.amproc::oid,
                pg_catalog.pg_describe_object('pg_catalog.pg_opclass'::regclass, c.oid, 0), NULL
         FROM relations
         JOIN pg_catalog.pg_index i ON i.indrelid = relations.oid
         CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS class(oid)
         JOIN pg_catalog.pg_opclass c ON c.oid = class.oid
         JOIN pg_catalog.pg_amproc p ON p.amprocfamily = c.opcfamily
         WHERE $9 AND c.opcfamily >= 16384
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
-- a write fills defaults and generated columns, described in our own
-- words (pg_describe_object's follow lc_messages): `Reached` tells a
-- default by them
SELECT 'tree', d.oid,
       pg_catalog.format('default value for column %I of table %s', a.attname,
                         d.adrelid::pg_catalog.regclass),
       NULL, NULL, NULL, NULL, d.adbin::text, NULL
FROM relations
JOIN pg_catalog.pg_attrdef d ON d.adrelid = relations.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE $9
UNION ALL
-- a write computes the table's index expressions and partial indexes'
-- predicates
SELECT 'tree', i.indexrelid,
       pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, i.indexrelid, 0),
       NULL, NULL, NULL, NULL, concat_ws(' ', i.indexprs::text, i.indpred::text), NULL
FROM relations JOIN pg_catalog.pg_index i ON i.indrelid = relations.oid
WHERE $9 AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
UNION ALL
-- the planner may use an operator's negator (NOT a op b) or commutator
-- (a join turned around); a family's other operators serve its indexes;
-- a write checks exclusion constraints with their operators
SELECT 'operator', other, pg_catalog.pg_describe_object('pg_catalog.pg_operator'::regclass, o.oid, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM operators JOIN pg_catalog.pg_operator o ON o.oid = operators.oid
CROSS JOIN LATERAL unnest(ARRAY[o.oprnegate, o.oprcom]::oid[]) AS other
WHERE other <> 0 AND (o.oid >= 16384 OR other >= 16384)
UNION ALL
SELECT 'operator', f.amopopr,
       pg_catalog.pg_describe_object('pg_catalog.pg_opfamily'::regclass, f.amopfamily, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM operators
JOIN pg_catalog.pg_amop o ON o.amopopr = operators.oid
JOIN pg_catalog.pg_amop f ON f.amopfamily = o.amopfamily
WHERE $11 AND o.amopfamily >= 16384
UNION ALL
SELECT 'operator', op, pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::regclass, k.oid, 0),
       NULL, NULL, NULL, NULL, NULL, NULL
FROM relations JOIN pg_catalog.pg_constraint k ON k.conrelid = relations.oid
CROSS JOIN LATERAL unnest(k.conexclop) AS op
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
FROM types JOIN pg_catalog.pg_type t ON t.oid = types.oid AND t.oid >= 16384
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
/// of what it writes count. `families`: whether the support functions of
/// operator families count (sorting, hashing, index scans do; evaluating
/// an expression, a domain's CHECK, does not).
pub(super) async fn follow(
    client: &Client,
    seeds: Seeds,
    writes: bool,
    families: bool,
) -> Result<(Vec<Reached>, Vec<String>)> {
    let (functions, unresolved, found_writes) =
        follow_once(client, seeds.clone(), writes, families).await?;
    if found_writes && !writes {
        let (functions, unresolved, _) = follow_once(client, seeds, true, families).await?;
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
    families: bool,
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
                    (&families, Type::BOOL),
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
                "operator" => seeds.operators.push((oid, through)),
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
