//! Why advise recommends nothing for a statement, in words that both its
//! own report and explain's findings give.

use std::fmt;

use super::writes::WriteCost;

/// Why nothing is recommended for a statement (reports write it as
/// `<kind>: <detail>`, where the kind is stable for scripts).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The text does not parse (only from `pg_stat_statements`).
    CouldNotParse(String),
    /// Not a query or DML statement.
    NotAQuery,
    /// It reads no table.
    NoTables,
    /// It reads system catalogs only.
    SystemCatalogsOnly(Vec<String>),
    /// It names a relation that does not exist.
    TableMissing(String),
    /// It reads foreign tables only.
    ForeignTable(String),
    /// The server would not plan it.
    CouldNotPlan(String),
    /// Its plan is cheap already.
    LowCost {
        /// The plan cost.
        cost: f64,
        /// `--min-cost`.
        min_cost: f64,
    },
    /// Existing indexes already give every candidate.
    AlreadyGiven(Vec<String>),
    /// The plan uses existing indexes and no new one beats them enough.
    AlreadyUsed {
        /// The indexes the plan uses.
        indexes: Vec<String>,
        /// `--min-improvement`, when candidates were tried (not for a plan
        /// below `--min-cost`).
        min_improvement: Option<f64>,
    },
    /// It neither filters, joins nor sorts on a plain column.
    NothingToIndex,
    /// The index that would serve it costs the workload's writes more than
    /// it saves its reads.
    WriteCost {
        /// The index, described.
        index: String,
        /// Its cost to the writes, and its saving.
        cost: WriteCost,
    },
    /// Its only candidates are expressions the server cannot index: a
    /// function in them is not IMMUTABLE.
    NotImmutable(Vec<String>),
    /// No candidate lowers the cost enough.
    BelowThreshold {
        /// The best candidate (`(a, b) WHERE ...`) and the fraction it saves.
        best: Option<(String, f64)>,
        /// The candidates tried, described alike.
        tried: Vec<String>,
        /// `--min-improvement`.
        min_improvement: f64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Reason::CouldNotParse(why) => write!(f, "could not parse: {why}"),
            Reason::NotAQuery => write!(
                f,
                "not a query: only SELECT, INSERT, UPDATE, DELETE and MERGE have plans an index \
                 can improve"
            ),
            Reason::NoTables => write!(f, "no tables: the statement reads no table"),
            Reason::SystemCatalogsOnly(names) => write!(
                f,
                "system catalogs only: it reads {} only, which perfaudit does not index",
                quoted(names)
            ),
            Reason::TableMissing(name) => {
                write!(f, "table missing: relation \"{name}\" does not exist")
            }
            Reason::ForeignTable(name) => write!(
                f,
                "foreign table: \"{name}\" lives on another server, where its indexes belong"
            ),
            Reason::CouldNotPlan(why) => write!(f, "could not plan: {why}"),
            Reason::LowCost { cost, min_cost } => write!(
                f,
                "low cost: the plan costs {cost:.1}, below --min-cost {min_cost}; an index would \
                 save little and slow every write"
            ),
            Reason::AlreadyGiven(names) => write!(
                f,
                "already indexed: {} already gives every index this statement could use",
                quoted(names)
            ),
            Reason::AlreadyUsed {
                indexes,
                min_improvement,
            } => {
                write!(f, "already indexed: the plan uses {}", quoted(indexes))?;
                match min_improvement {
                    Some(percent) => {
                        write!(f, " and no new index lowers its cost by {percent}% or more")
                    }
                    None => write!(f, " and is cheap already"),
                }
            }
            Reason::WriteCost { index, cost } => {
                write!(
                    f,
                    "write cost: {index} would serve it, but the workload's writes would pay \
                     {:.0} for it against a read saving of {:.0}",
                    cost.cost, cost.read_saving
                )?;
                if !cost.hot_lost.is_empty() {
                    let updates: Vec<String> =
                        cost.hot_lost.iter().map(|s| format!("#{s}")).collect();
                    write!(
                        f,
                        " (it ends the HOT updates of {}, which then write every index)",
                        updates.join(", ")
                    )?;
                }
                Ok(())
            }
            Reason::NotImmutable(expressions) => write!(
                f,
                "not immutable: {} depends on the session (a function that is not IMMUTABLE, \
                 such as a timestamptz cast to date, which follows TimeZone), so no index can \
                 hold it; compare the column itself instead, a cast to date as a range \
                 (ts::date = '2024-03-01' as ts >= '2024-03-01' AND ts < '2024-03-02')",
                expressions.join(", ")
            ),
            Reason::NothingToIndex => write!(
                f,
                "nothing to index: it neither filters, joins nor sorts on a plain column"
            ),
            Reason::BelowThreshold {
                best: Some((best, saving)),
                min_improvement,
                ..
            } => write!(
                f,
                "below threshold: the best candidate, {}, lowers the cost by {:.0}%, less than \
                 --min-improvement {min_improvement}%",
                best,
                saving * 100.0
            ),
            Reason::BelowThreshold {
                best: None, tried, ..
            } => write!(
                f,
                "below threshold: the planner would use none of the candidates ({}): reading \
                 the table stays cheaper, or the plan cannot reach them",
                tried.join(", ")
            ),
        }
    }
}
