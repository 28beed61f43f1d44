//! `perfaudit advise`: the indexes a workload needs, each proven with a
//! hypothetical index (HypoPG) before anything is built.
//!
//! For every statement: find the tables it reads ([`extract`], views
//! inlined through the [`catalog`]), cost its plan as it is, and derive
//! candidate indexes from its predicates, joins and sort ([`candidates`]),
//! leaving out those an existing index already gives. Then, on one pinned
//! session ([`hypo`]), create each candidate hypothetically and cost every
//! statement on its table with it; choose the fewest, narrowest indexes
//! that cut each statement's cost by the threshold ([`select`]); cost the
//! workload once more with exactly that set; and write each index down
//! ([`ddl`]). Nothing is executed and nothing is created for real.

pub mod candidates;
pub mod ddl;
pub mod hypo;
mod reason;
pub mod select;
pub mod workload;
pub mod writes;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use self::hypo::{Hypothetical, PlanCost, Refusal, Session};
pub use self::reason::Reason;
use self::select::{Footprint, Trial};
pub use self::workload::{Usage, WorkloadStatement};
use self::writes::{TableWrite, WriteCost, write_cost};
use tokio_postgres::Client;

use crate::db::Database;
use crate::error::Result;
use crate::indexes;
use crate::indexes::ddl::Wanted;
use crate::indexes::spec::Key;
use crate::interrupt::Interrupt;
use crate::pg::catalog::{RelKind, Relation, Relations, Table, Taken};
use crate::sql::Class;
use crate::sql::ident::QualifiedName;
use crate::sql::scans::{self, Scan};
use crate::sql::writes::statement_write;
use crate::ui::Progress;

/// The default `--min-improvement`: the saving explain asks of an index
/// too ([`indexes::ddl::MIN_IMPROVEMENT`]).
pub const DEFAULT_MIN_IMPROVEMENT: f64 = indexes::ddl::MIN_IMPROVEMENT;

/// The default `--min-cost`: below 100 cost units (about a hundred pages
/// read in sequence) a statement is cheap already, and an index would save
/// little while slowing every write.
pub const DEFAULT_MIN_COST: f64 = 100.0;

/// How deep views over views are inlined. PostgreSQL forbids cycles; this
/// only bounds the work on a pathological schema.
pub const MAX_VIEW_DEPTH: usize = 16;

/// How advise decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// The percentage (0 to 100) by which an index must lower a
    /// statement's cost to be recommended for it.
    pub min_improvement: f64,
    /// Statements whose plan costs less than this are left alone.
    pub min_cost: f64,
    /// Whether to run `CREATE EXTENSION hypopg` when it is missing (only in
    /// a scratch cluster, which perfaudit owns).
    pub create_extension: bool,
}

/// The advice for a workload.
#[derive(Debug, Clone)]
pub struct Advice {
    /// Per statement, in workload order.
    pub statements: Vec<StatementAdvice>,
    /// The minimal set of indexes serving the whole workload.
    pub indexes: Vec<Recommendation>,
    /// The workload in numbers.
    pub summary: Summary,
}

/// The advice for one statement.
#[derive(Debug, Clone)]
pub struct StatementAdvice {
    /// The statement's text.
    pub original: String,
    /// The line and column it starts at in the input, from 1 (`None` for
    /// statements from `pg_stat_statements`).
    pub line: Option<usize>,
    /// See `line`.
    pub column: Option<usize>,
    /// The plan cost without new indexes.
    pub cost_before: Option<f64>,
    /// The plan cost with the recommended set.
    pub cost_after: Option<f64>,
    /// The recommended indexes this statement's plan uses.
    pub indexes: Vec<Recommendation>,
    /// Why nothing is recommended for it.
    pub reason: Option<Reason>,
    /// How often it ran and for how long, when `pg_stat_statements` said.
    pub usage: Option<Usage>,
}

/// One recommended index.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// The table, schema-qualified, quoted where SQL needs it.
    pub table: String,
    /// The key, in order: column names, and expressions' text.
    pub columns: Vec<String>,
    /// The predicate of a partial index.
    #[serde(rename = "where")]
    pub predicate: Option<String>,
    /// The key as the spec writes it (columns and expressions told apart).
    #[serde(skip)]
    pub keys: Vec<Key>,
    /// Each key's operator class, as the spec writes it.
    #[serde(skip)]
    pub opclasses: Vec<Option<String>>,
    /// Whether each key sorts descending, as the spec writes it.
    #[serde(skip)]
    pub descending: Vec<bool>,
    /// For a partial index, the full index of the same key, to compare.
    pub full_index: Option<FullIndex>,
    /// What it costs the workload's writes to its table, when there are
    /// some.
    pub write_cost: Option<WriteCost>,
    /// The time it saves the workload, when `pg_stat_statements` measured
    /// the statements it serves.
    pub time_saved: Option<TimeSaved>,
    /// The statements that build it without blocking writes.
    pub ddl: String,
    /// Its estimated size (the planner's statistics, as `perfaudit
    /// indexes` estimates it).
    pub size_bytes: i64,
    /// The index name (also in the DDL).
    pub name: String,
}

/// The full index a partial one is compared with, on the statements the
/// partial one serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullIndex {
    /// Its estimated size, as a recommendation's.
    pub size_bytes: i64,
    /// Those statements' plan costs with it, added up.
    pub cost: f64,
    /// The same with the partial index.
    pub partial_cost: f64,
}

/// The time an index saves the statements it serves, from what
/// `pg_stat_statements` measured of them: their time in proportion to the
/// estimated cost it saves each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSaved {
    /// Milliseconds, over the period the statistics cover.
    pub ms: f64,
    /// Milliseconds a day, when that period is known (PostgreSQL 14 and
    /// later record when the statistics were reset).
    pub ms_per_day: Option<f64>,
}

/// A table the recommended indexes go on: what each write to it pays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableIndexes {
    /// The table.
    pub table: String,
    /// Its indexes now.
    pub indexes: usize,
    /// Its indexes with the recommended ones: each insert, and each update
    /// that is not HOT, writes an entry in every one.
    pub with_recommended: usize,
}

/// The workload in numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Statements in the workload.
    pub statements: usize,
    /// Statements that have a plan (the others carry a reason).
    pub planned: usize,
    /// Statements the recommended indexes improve by the threshold.
    pub improved: usize,
    /// Indexes recommended.
    pub indexes: usize,
    /// Their estimated size together.
    pub size_bytes: i64,
    /// Sum of the planned statements' costs without new indexes.
    pub cost_before: f64,
    /// The same with the recommended set.
    pub cost_after: f64,
    /// The tables the recommended indexes go on, with their index counts.
    pub tables: Vec<TableIndexes>,
}

impl Recommendation {
    /// `(user_id, status)`, with ` WHERE ...` for a partial index: the
    /// index as people read it.
    pub fn describe(&self) -> String {
        let key = format!("({})", self.columns.join(", "));
        match &self.predicate {
            Some(predicate) => format!("{key} WHERE {predicate}"),
            None => key,
        }
    }
}

impl Advice {
    /// The recommended indexes as a spec for `perfaudit indexes --spec`.
    pub fn spec(&self) -> String {
        let indexes: Vec<ddl::SpecIndex<'_>> = self
            .indexes
            .iter()
            .map(|index| ddl::SpecIndex {
                name: &index.name,
                table: &index.table,
                keys: &index.keys,
                opclasses: &index.opclasses,
                descending: &index.descending,
                predicate: index.predicate.as_deref(),
            })
            .collect();
        ddl::spec(&indexes)
    }
}

/// Advises on `workload`: see the module documentation. `progress` hears
/// how many hypothetical indexes are tried, of how many.
pub async fn advise(
    database: &Database,
    workload: &[WorkloadStatement],
    options: &Options,
    interrupt: &Interrupt,
    progress: &dyn Progress,
) -> Result<Advice> {
    let connection = interrupt.guard(database.connection()).await?;
    progress.start(0, "trying hypothetical indexes");
    let advice = hypo::with_session(
        connection,
        database.tls().clone(),
        interrupt,
        options.create_extension,
        async |session| {
            let mut advisor = Advisor {
                catalog: Relations::in_transaction(session.client()),
                session,
                options,
            };
            let mut advice = advisor.run(workload, progress).await?;
            if workload.iter().any(|s| s.usage.is_some()) {
                let days = session
                    .refusable(async |client| workload::stats_days(client).await.ok_or(()))
                    .await?
                    .ok();
                per_day(&mut advice, days);
            }
            Ok(advice)
        },
    )
    .await;
    progress.finish(0);
    advice
}

/// advise's decision on `statement` alone, on `client` (explain's
/// connection, left as it was found): the same search over candidates,
/// costed with HypoPG, that a workload of that one statement gets, so that
/// explain and advise never disagree about a statement.
pub async fn advise_statement(
    client: &Client,
    statement: &WorkloadStatement,
    options: &Options,
) -> Result<StatementAdvice> {
    hypo::on_client(client, options.create_extension, async |session| {
        let mut advisor = Advisor {
            catalog: Relations::in_transaction(session.client()),
            session,
            options,
        };
        let mut advice = advisor
            .run(std::slice::from_ref(statement), &crate::ui::Unseen)
            .await?;
        Ok(advice.statements.remove(0))
    })
    .await
}

/// The shortest period of statistics worth a rate a day: an hour. A
/// minute's counts would make a day of a burst.
const MIN_STATS_DAYS: f64 = 1.0 / 24.0;

/// Each index's time saved a day, over `days` the statistics cover (at
/// least [`MIN_STATS_DAYS`]).
fn per_day(advice: &mut Advice, days: Option<f64>) {
    let Some(days) = days.filter(|days| *days >= MIN_STATS_DAYS) else {
        return;
    };
    let every = advice
        .statements
        .iter_mut()
        .flat_map(|statement| statement.indexes.iter_mut())
        .chain(advice.indexes.iter_mut());
    for saved in every.filter_map(|index| index.time_saved.as_mut()) {
        saved.ms_per_day = Some(saved.ms / days);
    }
}

/// A statement with a plan, ready for trials.
struct Planned {
    before: PlanCost,
    parameters: usize,
    /// The columns (and expressions) it filters, joins or sorts on, per
    /// relation it reads (by object id).
    asked: HashMap<u32, HashSet<String>>,
    /// Candidate ids (into the pool) it gave rise to; none below
    /// `--min-cost`.
    candidates: Vec<usize>,
    /// Its candidates no existing index gives.
    new_candidates: usize,
    /// Existing indexes that already give some of its candidates.
    given: Vec<String>,
}

/// A candidate index of the workload.
struct Candidate {
    relation: Rc<Relation>,
    wanted: Wanted,
    size: i64,
    /// For a partial index, the size of the full index of the same key.
    full_size: i64,
    /// Why the server would not create it, when it would not.
    refused: Option<Refusal>,
}

impl Candidate {
    /// Whether it may be chosen: a full index may; a partial one only when
    /// its condition is rare, its size at most [`RARE_SHARE`] of the full
    /// index's (which must have been made, to tell).
    fn pays(&self) -> bool {
        self.wanted.predicate.is_none()
            || (self.full_size > 0 && self.size as f64 <= self.full_size as f64 * RARE_SHARE)
    }

    /// Whether the server refused it for a function that is not
    /// IMMUTABLE (SQLSTATE 42P17, whatever the server's language): an
    /// expression that depends on the session, such as a timestamptz cast
    /// to date.
    fn not_immutable(&self) -> bool {
        self.refused
            .as_deref()
            .is_some_and(|why| why.contains("SQLSTATE 42P17"))
    }
}

/// The largest share of its full counterpart's size a partial index may
/// take: a partial index pays for its narrower use only when its condition
/// is rare (128 KiB against 6.83 MiB, say); one holding a third of the
/// table is as good as the full index and serves fewer queries.
const RARE_SHARE: f64 = 0.25;

/// One advise run on the pinned session.
struct Advisor<'s, 'c, 'o> {
    session: &'s mut Session<'c>,
    catalog: Relations<'c>,
    options: &'o Options,
}

impl Advisor<'_, '_, '_> {
    async fn run(
        &mut self,
        workload: &[WorkloadStatement],
        progress: &dyn Progress,
    ) -> Result<Advice> {
        let mut pool: Vec<Candidate> = Vec::new();
        let mut prepared: Vec<std::result::Result<Planned, Reason>> = Vec::new();
        for statement in workload {
            prepared.push(self.prepare(statement, &mut pool).await?);
        }
        let mut trials = self
            .trials(workload, &prepared, &mut pool, progress)
            .await?;
        trials.retain(|trial| pool[trial.candidate].pays());

        let before: Vec<f64> = prepared
            .iter()
            .map(|p| p.as_ref().map_or(0.0, |p| p.before.cost))
            .collect();
        let footprints: Vec<Footprint> = pool
            .iter()
            .map(|c| Footprint {
                width: c.wanted.keys.len(),
                size: c.size,
            })
            .collect();
        let threshold = self.options.min_improvement / 100.0;
        let mut chosen = select::minimal_set(&before, &footprints, &trials, threshold);

        // Cost the workload with exactly the chosen set; drop any index no
        // statement ends up using, or whose writes outweigh its reads, and
        // cost again.
        let writes = self.writes(workload, &prepared).await?;
        let mut outweighed: Vec<(usize, WriteCost)> = Vec::new();
        let (uses, after, write_costs) = loop {
            let (uses, after) = self.verify(workload, &prepared, &pool, &chosen).await?;
            let costs: Vec<Option<WriteCost>> = chosen
                .iter()
                .map(|&c| {
                    let saving = read_saving(c, &uses, &before, &after, workload);
                    writes
                        .get(&pool[c].relation.oid)
                        .map(|w| index_write_cost(&pool[c], w, saving))
                })
                .collect();
            let mut needed = Vec::new();
            for (&c, cost) in chosen.iter().zip(&costs) {
                match cost {
                    Some(cost) if cost.tips() => outweighed.push((c, cost.clone())),
                    _ if uses.iter().any(|u| u.contains(&c)) => needed.push(c),
                    _ => {}
                }
            }
            if needed.len() == chosen.len() {
                break (uses, after, costs);
            }
            chosen = needed;
        };
        self.session.drop_all().await?;

        let fulls: Vec<Option<FullIndex>> = chosen
            .iter()
            .map(|&c| {
                let served: Vec<usize> =
                    (0..uses.len()).filter(|&s| uses[s].contains(&c)).collect();
                full_index(&pool, &trials, c, &served)
            })
            .collect();
        let mut recommendations = self.write_down(&pool, &chosen, fulls).await?;
        for ((recommendation, &c), write_cost) in
            recommendations.iter_mut().zip(&chosen).zip(write_costs)
        {
            recommendation.write_cost = write_cost;
            recommendation.time_saved = time_saved(c, &uses, &before, &after, workload);
        }
        let recommendation = |c: &usize| {
            let at = chosen.iter().position(|x| x == c).expect("a chosen index");
            recommendations[at].clone()
        };
        let mut statements = Vec::new();
        for (s, statement) in workload.iter().enumerate() {
            let (cost_before, cost_after, indexes, reason) = match &prepared[s] {
                Err(reason) => (None, None, Vec::new(), Some(reason.clone())),
                Ok(planned) => {
                    let indexes: Vec<Recommendation> = uses[s].iter().map(recommendation).collect();
                    let reason = indexes
                        .is_empty()
                        .then(|| self.reason(planned, &pool, &trials, &outweighed, s));
                    (Some(planned.before.cost), after[s], indexes, reason)
                }
            };
            statements.push(StatementAdvice {
                original: statement.text.clone(),
                line: statement.line,
                column: statement.column,
                cost_before,
                cost_after,
                indexes,
                reason,
                usage: statement.usage,
            });
        }
        let tables = table_indexes(&pool, &chosen);
        let summary = summarize(&statements, &recommendations, tables);
        // The most time saved first, where it was measured.
        recommendations.sort_by(|a, b| {
            let saved = |r: &Recommendation| r.time_saved.as_ref().map_or(-1.0, |t| t.ms);
            saved(b).total_cmp(&saved(a))
        });
        Ok(Advice {
            statements,
            indexes: recommendations,
            summary,
        })
    }

    /// Resolves a statement's tables, costs its plan and adds its
    /// candidates to the pool; or says why there is nothing to do.
    async fn prepare(
        &mut self,
        statement: &WorkloadStatement,
        pool: &mut Vec<Candidate>,
    ) -> Result<std::result::Result<Planned, Reason>> {
        let ast = match &statement.parsed {
            Ok(ast) => ast,
            Err(why) => return Ok(Err(Reason::CouldNotParse(why.clone()))),
        };
        if matches!(crate::sql::classify(ast), Class::Refused { .. }) {
            return Ok(Err(Reason::NotAQuery));
        }
        let scans = match self.resolve(scans::statement_scans(ast)).await? {
            Ok(scans) => scans,
            Err(reason) => return Ok(Err(reason)),
        };
        let parameters = crate::sql::placeholders(ast);
        let before = match self.session.explain(&statement.text, parameters).await? {
            Ok(plan) => plan,
            Err(why) => return Ok(Err(Reason::CouldNotPlan(why))),
        };
        let mut planned = Planned {
            before,
            parameters,
            asked: asked_columns(&scans),
            candidates: Vec::new(),
            new_candidates: 0,
            given: Vec::new(),
        };
        let worth_trying = planned.before.cost >= self.options.min_cost;
        for (relation, scan) in &scans {
            let distinct = |column: &str| relation.columns.get(column).copied().unwrap_or(0.0);
            for wanted in candidates::candidates(scan, distinct) {
                if let Some(index) = candidates::already_given(&wanted, &relation.indexes) {
                    if !planned.given.contains(&index.name.name) {
                        planned.given.push(index.name.name.clone());
                    }
                    continue;
                }
                planned.new_candidates += 1;
                if !worth_trying {
                    continue;
                }
                let id = match pool
                    .iter()
                    .position(|c| c.relation.oid == relation.oid && c.wanted == wanted)
                {
                    Some(id) => id,
                    None => {
                        pool.push(Candidate {
                            relation: relation.clone(),
                            wanted,
                            size: 0,
                            full_size: 0,
                            refused: None,
                        });
                        pool.len() - 1
                    }
                };
                if !planned.candidates.contains(&id) {
                    planned.candidates.push(id);
                }
            }
        }
        Ok(Ok(planned))
    }

    /// The indexable relations behind `scans`, views inlined, each scan's
    /// columns narrowed to those its table has.
    async fn resolve(
        &mut self,
        scans: Vec<Scan>,
    ) -> Result<std::result::Result<Vec<(Rc<Relation>, Scan)>, Reason>> {
        let mut pending: Vec<(Scan, usize)> = scans.into_iter().map(|s| (s, 0)).collect();
        let mut resolved = Vec::new();
        let (mut system, mut foreign) = (Vec::new(), Vec::new());
        while let Some((mut scan, depth)) = pending.pop() {
            let Some(relation) = self.catalog.relation(&scan.relation).await? else {
                return Ok(Err(Reason::TableMissing(scan.relation.join("."))));
            };
            if relation.system {
                system.push(relation.table.display());
                continue;
            }
            match relation.kind {
                kind if kind.indexable() => {
                    let exists = |c: &String| relation.columns.contains_key(c);
                    scan.equality.retain(exists);
                    scan.range.retain(exists);
                    scan.expressions
                        .retain(|compared| compared.columns.iter().all(exists));
                    scan.conditions
                        .retain(|condition| exists(&condition.column));
                    scan.prefixes.retain(exists);
                    if !scan.order.iter().all(exists) {
                        scan.order.clear();
                        scan.order_reversed.clear();
                    }
                    resolved.push((relation, scan));
                }
                RelKind::View if depth < MAX_VIEW_DEPTH => {
                    let block = relation
                        .view_definition
                        .as_deref()
                        .and_then(|text| crate::sql::parse_statements(text).ok())
                        .and_then(|mut parsed| (parsed.len() == 1).then(|| parsed.remove(0)))
                        .and_then(|parsed| scans::view_block(&parsed.ast));
                    if let Some(block) = block {
                        pending.extend(block.inline(&scan).into_iter().map(|s| (s, depth + 1)));
                    }
                }
                RelKind::Foreign => foreign.push(relation.table.display()),
                _ => {}
            }
        }
        resolved.reverse(); // back to statement order
        if !resolved.is_empty() {
            return Ok(Ok(resolved));
        }
        Ok(Err(if let Some(name) = foreign.pop() {
            Reason::ForeignTable(name)
        } else if !system.is_empty() {
            system.dedup();
            Reason::SystemCatalogsOnly(system)
        } else {
            Reason::NoTables
        }))
    }

    /// Each candidate alone, hypothetically, against every statement worth
    /// indexing that filters, joins or sorts on its leading column (a
    /// B-tree serves a query only through its leading column: PostgreSQL
    /// before 18 has no skip scan): the costs of the plans that use it.
    async fn trials(
        &mut self,
        workload: &[WorkloadStatement],
        prepared: &[std::result::Result<Planned, Reason>],
        pool: &mut [Candidate],
        progress: &dyn Progress,
    ) -> Result<Vec<Trial>> {
        let min_cost = self.options.min_cost;
        let readers = |candidate: &Candidate| -> Vec<(usize, &Planned)> {
            prepared
                .iter()
                .enumerate()
                .filter_map(|(s, p)| p.as_ref().ok().map(|p| (s, p)))
                .filter(|(_, p)| {
                    p.before.cost >= min_cost
                        && p.asked
                            .get(&candidate.relation.oid)
                            .is_some_and(|asked| asked.contains(candidate.wanted.keys[0].text()))
                })
                .collect()
        };
        let total: usize = pool.iter().map(|c| readers(c).len()).sum();
        let mut done = 0;
        progress.advance(0, done as u64, total as u64, None);
        let mut trials = Vec::new();
        for (id, candidate) in pool.iter_mut().enumerate() {
            let statements = readers(candidate);
            let ddl = indexes::ddl::hypothetical(&candidate.relation.table, &candidate.wanted);
            let index = match self.session.create_index(&ddl).await? {
                Ok(index) => index,
                Err(why) => {
                    // A function that is not IMMUTABLE, a column type
                    // without a B-tree operator class.
                    candidate.refused = Some(why);
                    done += statements.len();
                    progress.advance(0, done as u64, total as u64, None);
                    continue;
                }
            };
            candidate.size = index.size;
            if candidate.wanted.predicate.is_some() {
                candidate.full_size = self.full_size(candidate).await?;
            }
            for (s, planned) in statements {
                let plan = self
                    .session
                    .explain(&workload[s].text, planned.parameters)
                    .await?;
                if let Ok(plan) = plan
                    && plan.indexes.contains(&index.name)
                {
                    trials.push(Trial {
                        statement: s,
                        candidate: id,
                        cost: plan.cost,
                    });
                }
                done += 1;
                progress.advance(0, done as u64, total as u64, None);
            }
            self.session.drop_index(&index).await?;
        }
        Ok(trials)
    }

    /// The size `wanted` would take once built on `table`, from the
    /// planner's statistics as `perfaudit indexes` estimates it (HypoPG's
    /// own estimate, which compares candidates, runs up to four times the
    /// built size); `None` when the statistics cannot be read (a table
    /// the role may not read), where HypoPG's stands in.
    async fn size(&self, table: &Table, wanted: &Wanted) -> Option<i64> {
        self.session
            .refusable(async |client| indexes::size::estimate_wanted(client, table, wanted).await)
            .await
            .ok()?
            .ok()
    }

    /// The size HypoPG gives the full index of `partial`'s key (0 when it
    /// cannot make it), made and removed again: what tells a rare
    /// condition.
    async fn full_size(&mut self, partial: &Candidate) -> Result<i64> {
        let full = Wanted {
            predicate: None,
            ..partial.wanted.clone()
        };
        let ddl = indexes::ddl::hypothetical(&partial.relation.table, &full);
        Ok(match self.session.create_index(&ddl).await? {
            Ok(index) => {
                self.session.drop_index(&index).await?;
                index.size
            }
            Err(_) => 0,
        })
    }

    /// The workload's INSERTs and UPDATEs, by the table they write (its
    /// object id), each with the rows the planner expects it to write.
    async fn writes(
        &mut self,
        workload: &[WorkloadStatement],
        prepared: &[std::result::Result<Planned, Reason>],
    ) -> Result<HashMap<u32, Vec<TableWrite>>> {
        let mut writes: HashMap<u32, Vec<TableWrite>> = HashMap::new();
        for (s, statement) in workload.iter().enumerate() {
            let Some(write) = statement.parsed.as_ref().ok().and_then(statement_write) else {
                continue;
            };
            let Some(relation) = self.catalog.relation(&write.relation).await? else {
                continue;
            };
            let rows = match &prepared[s] {
                Ok(planned) => planned.before.rows,
                // An INSERT of values reads no table and was not planned.
                Err(_) => {
                    let parameters = statement
                        .parsed
                        .as_ref()
                        .map_or(0, crate::sql::placeholders);
                    match self.session.explain(&statement.text, parameters).await? {
                        Ok(plan) => plan.rows,
                        Err(_) => continue,
                    }
                }
            };
            writes.entry(relation.oid).or_default().push(TableWrite {
                statement: s,
                change: write.change,
                rows,
                weight: weight(statement),
            });
        }
        Ok(writes)
    }

    /// Costs every planned statement with exactly `chosen` in place: per
    /// statement, the chosen indexes its plan uses (only where they save
    /// the threshold), and its cost.
    async fn verify(
        &mut self,
        workload: &[WorkloadStatement],
        prepared: &[std::result::Result<Planned, Reason>],
        pool: &[Candidate],
        chosen: &[usize],
    ) -> Result<(Vec<Vec<usize>>, Vec<Option<f64>>)> {
        self.session.drop_all().await?;
        let mut created: Vec<(usize, Hypothetical)> = Vec::new();
        for &c in chosen {
            let ddl = indexes::ddl::hypothetical(&pool[c].relation.table, &pool[c].wanted);
            if let Ok(index) = self.session.create_index(&ddl).await? {
                created.push((c, index));
            }
        }
        let threshold = self.options.min_improvement / 100.0;
        let mut uses = vec![Vec::new(); workload.len()];
        let mut after = vec![None; workload.len()];
        for (s, planned) in prepared.iter().enumerate() {
            let Ok(planned) = planned else { continue };
            let Ok(plan) = self
                .session
                .explain(&workload[s].text, planned.parameters)
                .await?
            else {
                continue;
            };
            let before = planned.before.cost;
            if before >= self.options.min_cost && plan.cost <= before * (1.0 - threshold) {
                uses[s] = created
                    .iter()
                    .filter(|(_, index)| plan.indexes.contains(&index.name))
                    .map(|(c, _)| *c)
                    .collect();
            }
            after[s] = Some(plan.cost);
        }
        Ok((uses, after))
    }

    /// Names the chosen indexes — clear of every relation in their schema,
    /// their partitions' parts included — and writes their DDL, with their
    /// sizes estimated and, for a partial one, the full index it is
    /// compared with (`fulls`, in the order of `chosen`), sized alike.
    async fn write_down(
        &mut self,
        pool: &[Candidate],
        chosen: &[usize],
        fulls: Vec<Option<FullIndex>>,
    ) -> Result<Vec<Recommendation>> {
        let mut taken = Taken::new();
        let mut recommendations = Vec::new();
        for (&c, mut full_index) in chosen.iter().zip(fulls) {
            let candidate = &pool[c];
            let relation = &candidate.relation;
            let table = self.catalog.indexable(relation).await?;
            self.catalog.read_names(&table, &mut taken).await?;
            let name = indexes::ddl::free_name(&table, &candidate.wanted, &taken);
            for part in std::iter::once(QualifiedName::new(&table.name.schema, &name))
                .chain(indexes::ddl::partition_names(&name, &table))
            {
                taken.entry(part.schema).or_default().insert(part.name);
            }
            let size_bytes = self
                .size(&table, &candidate.wanted)
                .await
                .unwrap_or(candidate.size);
            if let Some(full) = &mut full_index {
                let whole = Wanted {
                    predicate: None,
                    ..candidate.wanted.clone()
                };
                full.size_bytes = self.size(&table, &whole).await.unwrap_or(full.size_bytes);
            }
            recommendations.push(Recommendation {
                table: relation.table.display(),
                columns: candidate.wanted.key_texts(),
                predicate: candidate.wanted.predicate.clone(),
                keys: candidate.wanted.keys.clone(),
                opclasses: candidate.wanted.opclasses.clone(),
                descending: candidate.wanted.descending.clone(),
                ddl: indexes::ddl::build(&table, &name, &candidate.wanted),
                size_bytes,
                name,
                full_index,
                write_cost: None,
                time_saved: None,
            });
        }
        Ok(recommendations)
    }

    /// Why a planned statement gets no index.
    fn reason(
        &self,
        planned: &Planned,
        pool: &[Candidate],
        trials: &[Trial],
        outweighed: &[(usize, WriteCost)],
        s: usize,
    ) -> Reason {
        if let Some((c, cost)) = outweighed
            .iter()
            .find(|(c, _)| trials.iter().any(|t| t.statement == s && t.candidate == *c))
        {
            return Reason::WriteCost {
                index: pool[*c].wanted.describe(),
                cost: cost.clone(),
            };
        }
        let before = planned.before.cost;
        let min_improvement = self.options.min_improvement;
        let low_cost = before < self.options.min_cost;
        if planned.new_candidates == 0 && !planned.given.is_empty() {
            return Reason::AlreadyGiven(planned.given.clone());
        }
        if !planned.before.indexes.is_empty() {
            return Reason::AlreadyUsed {
                indexes: planned.before.indexes.clone(),
                min_improvement: (!low_cost).then_some(min_improvement),
            };
        }
        if low_cost {
            return Reason::LowCost {
                cost: before,
                min_cost: self.options.min_cost,
            };
        }
        if planned.new_candidates == 0 {
            return Reason::NothingToIndex;
        }
        let refused: Vec<String> = planned
            .candidates
            .iter()
            .map(|&c| &pool[c])
            .filter(|candidate| candidate.not_immutable())
            .map(|candidate| candidate.wanted.key_texts().join(", "))
            .collect();
        if !refused.is_empty() && !trials.iter().any(|t| t.statement == s) {
            return Reason::NotImmutable(refused);
        }
        let best = trials
            .iter()
            .filter(|t| t.statement == s)
            .min_by(|a, b| a.cost.total_cmp(&b.cost))
            .map(|t| (pool[t.candidate].wanted.describe(), 1.0 - t.cost / before));
        Reason::BelowThreshold {
            best,
            tried: planned
                .candidates
                .iter()
                .map(|&c| pool[c].wanted.describe())
                .collect(),
            min_improvement,
        }
    }
}

/// How often `statement` runs, relative to the workload's others: its
/// calls when `pg_stat_statements` counted them, else once.
fn weight(statement: &WorkloadStatement) -> f64 {
    statement.usage.map_or(1.0, |usage| usage.calls)
}

/// What the chosen index `c` saves the statements that use it, weighted
/// by their calls: each statement's saving shared among the chosen indexes
/// it uses.
fn read_saving(
    c: usize,
    uses: &[Vec<usize>],
    before: &[f64],
    after: &[Option<f64>],
    workload: &[WorkloadStatement],
) -> f64 {
    (0..uses.len())
        .filter(|&s| uses[s].contains(&c))
        .map(|s| {
            let saved = (before[s] - after[s].unwrap_or(before[s])).max(0.0);
            saved * weight(&workload[s]) / uses[s].len() as f64
        })
        .sum()
}

/// The time the chosen index `c` saves the statements that use it, each
/// statement's measured time in proportion to the estimated cost saved and
/// shared among the chosen indexes it uses; `None` unless every one of
/// them was measured (`pg_stat_statements`). The period is filled in by
/// [`advise`].
fn time_saved(
    c: usize,
    uses: &[Vec<usize>],
    before: &[f64],
    after: &[Option<f64>],
    workload: &[WorkloadStatement],
) -> Option<TimeSaved> {
    let mut ms = 0.0;
    for s in (0..uses.len()).filter(|&s| uses[s].contains(&c)) {
        let usage = workload[s].usage?;
        let share = 1.0 - after[s].unwrap_or(before[s]) / before[s].max(f64::MIN_POSITIVE);
        ms += usage.total_ms * share.max(0.0) / uses[s].len() as f64;
    }
    Some(TimeSaved {
        ms,
        ms_per_day: None,
    })
}

/// What `candidate` costs the `writes` to its table, against the
/// `read_saving` it brings.
fn index_write_cost(candidate: &Candidate, writes: &[TableWrite], read_saving: f64) -> WriteCost {
    let relation = &candidate.relation;
    let columns: Vec<&String> = relation.columns.keys().collect();
    let reads: Vec<String> = columns
        .iter()
        .filter(|column| candidate.wanted.reads(column))
        .map(|column| (*column).clone())
        .collect();
    let indexed: Vec<String> = columns
        .iter()
        .filter(|column| relation.indexes.iter().any(|index| index.reads(column)))
        .map(|column| (*column).clone())
        .collect();
    write_cost(
        &reads,
        &indexed,
        relation.indexes.len(),
        writes,
        read_saving,
    )
}

/// For the partial candidate `partial` of `pool`, which serves the
/// statements `served`, the full index of the same key, tried on the same
/// statements: its size and their costs with it and with the partial one.
fn full_index(
    pool: &[Candidate],
    trials: &[Trial],
    partial: usize,
    served: &[usize],
) -> Option<FullIndex> {
    let wanted = &pool[partial].wanted;
    wanted.predicate.as_ref()?;
    let full = pool.iter().position(|c| {
        c.relation.oid == pool[partial].relation.oid
            && c.wanted.predicate.is_none()
            && c.wanted.keys == wanted.keys
    })?;
    let cost = |candidate: usize| -> Option<f64> {
        served
            .iter()
            .map(|&s| {
                trials
                    .iter()
                    .find(|t| t.statement == s && t.candidate == candidate)
                    .map(|t| t.cost)
            })
            .sum()
    };
    Some(FullIndex {
        size_bytes: pool[full].size,
        cost: cost(full)?,
        partial_cost: cost(partial)?,
    })
}

/// The columns and expressions each relation is asked for, across the
/// scans: a candidate is tried on the statements that ask for its leading
/// key.
fn asked_columns(scans: &[(Rc<Relation>, Scan)]) -> HashMap<u32, HashSet<String>> {
    let mut asked: HashMap<u32, HashSet<String>> = HashMap::new();
    for (relation, scan) in scans {
        asked.entry(relation.oid).or_default().extend(
            scan.equality
                .iter()
                .chain(&scan.range)
                .chain(&scan.order)
                .chain(&scan.prefixes)
                .chain(scan.expressions.iter().map(|compared| &compared.expression))
                .cloned(),
        );
    }
    asked
}

/// The workload in numbers.
fn summarize(
    statements: &[StatementAdvice],
    indexes: &[Recommendation],
    tables: Vec<TableIndexes>,
) -> Summary {
    let planned: Vec<&StatementAdvice> = statements
        .iter()
        .filter(|s| s.cost_before.is_some())
        .collect();
    Summary {
        statements: statements.len(),
        planned: planned.len(),
        improved: statements.iter().filter(|s| !s.indexes.is_empty()).count(),
        indexes: indexes.len(),
        size_bytes: indexes.iter().map(|i| i.size_bytes).sum(),
        cost_before: total(planned.iter().filter_map(|s| s.cost_before)),
        cost_after: total(
            planned
                .iter()
                .filter_map(|s| s.cost_after.or(s.cost_before)),
        ),
        tables,
    }
}

/// Each table the `chosen` indexes of `pool` go on, with its index count
/// now and with them.
fn table_indexes(pool: &[Candidate], chosen: &[usize]) -> Vec<TableIndexes> {
    let mut tables: Vec<TableIndexes> = Vec::new();
    for &c in chosen {
        let relation = &pool[c].relation;
        let table = relation.table.display();
        match tables.iter_mut().find(|t| t.table == table) {
            Some(found) => found.with_recommended += 1,
            None => tables.push(TableIndexes {
                table,
                indexes: relation.indexes.len(),
                with_recommended: relation.indexes.len() + 1,
            }),
        }
    }
    tables
}

/// The sum of plan costs, to the hundredth PostgreSQL prints them with
/// (a float sum drifts: 31791.350000000002), and 0 when there are none (a
/// fold from 0.0: an empty float sum is -0.0).
fn total(costs: impl Iterator<Item = f64>) -> f64 {
    (costs.fold(0.0, |a, b| a + b) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_totals_keep_postgresqls_two_decimals() {
        assert_eq!(total([31_000.1, 791.25].into_iter()), 31_791.35);
        assert_eq!(total([0.1, 0.2].into_iter()), 0.3);
        assert!(total(std::iter::empty()).is_sign_positive());
    }
}
