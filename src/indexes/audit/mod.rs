//! `perfaudit indexes --audit`: what is wrong with the indexes a database
//! has, and the exact statements that fix it, never run.
//!
//! [`run`] reads the catalog once ([`Facts`], in a read-only transaction
//! that takes no lock on any table or index); [`audit`] judges it, without
//! I/O, one rule per module: [`invalid`], [`overlaps`] (duplicate and
//! redundant indexes), [`unused`], [`foreign_keys`], [`bloat`] and
//! [`size`] (indexes larger than their table), over the [`model`] of
//! what is there, where a partitioned index and its partitions are one
//! index.

mod bloat;
mod foreign_keys;
mod invalid;
mod model;
mod overlaps;
mod size;
mod unused;

use std::collections::HashSet;

use deadpool_postgres::Object;
use tokio_postgres::Client;

use super::plan::check_server_version;
use crate::db::Database;
use crate::db::cancel::cancellable;
use crate::db::errors::query_error;
use crate::error::{Error, Result};
use crate::finding::{Finding, Subject};
use crate::interrupt::Interrupt;
use crate::pg::catalog::audit::{self as catalog, AuditedTable, ForeignKey, Server};
use crate::pg::catalog::indexes::{self, Detail};
use crate::pg::catalog::{Index, Relations, Taken};
use crate::sql::ident::QualifiedName;

pub use crate::pg::catalog::audit::Scope;

/// How long any statement of the audit may wait for a lock before it
/// fails: only the reading of index definitions locks (a share lock on
/// each table, which only DDL's ACCESS EXCLUSIVE conflicts with), and the
/// tables DDL holds are left out before it; this bounds the race of DDL
/// that begins in between.
const LOCK_TIMEOUT_MS: u32 = 1000;

/// The findings in the order they are listed: what is broken, then what
/// to drop, then what to add, then what to rebuild.
const ORDER: [&str; 7] = [
    "invalid-index",
    "duplicate-index",
    "redundant-index",
    "unused-index",
    "unindexed-foreign-key",
    "index-bloat",
    "index-larger-than-table",
];

/// What an audit reads, once: all it judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The server and its statistics.
    pub server: Server,
    /// The tables audited, partitions too.
    pub tables: Vec<AuditedTable>,
    /// Their indexes, read with [`Detail::Audit`].
    pub indexes: Vec<Index>,
    /// Their foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// The relation names taken in the tables' schemas, which an index the
    /// audit suggests must not take.
    pub taken: Taken,
    /// The tables left out, with their partition trees, because DDL holds
    /// them.
    pub locked: Vec<Locked>,
}

/// A table DDL holds: its indexes (and those of its whole partition tree)
/// are not read, since reading their definitions would wait behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The table.
    pub table: QualifiedName,
    /// The server process holding or awaiting an ACCESS EXCLUSIVE lock on
    /// it.
    pub pid: i32,
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// How many tables were audited (partitions too).
    pub tables: usize,
    /// How many indexes.
    pub indexes: usize,
    /// When the statistics that say an index is unused began: their last
    /// reset, ISO 8601 in UTC; `None` when they were never reset.
    pub stats_reset: Option<String>,
    /// Whether the server is a standby.
    pub standby: bool,
    /// What the reader should know about what was not judged, and why.
    pub notes: Vec<String>,
    /// The findings, in [`ORDER`], then by table and index.
    pub findings: Vec<Finding>,
}

/// Audits the indexes of the tables `scope` covers on `database`.
pub async fn run(database: &Database, scope: &Scope, interrupt: &Interrupt) -> Result<Audit> {
    let client = interrupt.guard(database.connection()).await?;
    let result = cancellable(&client, database.tls(), interrupt, read(&client, scope)).await;
    if matches!(result, Err(Error::Interrupted(_))) {
        // Its transaction may still be open: the session is closed, never
        // handed back to the pool.
        drop(Object::take(client));
    }
    Ok(audit(&result?))
}

/// Reads the [`Facts`] in one read-only transaction, so that they are of
/// one moment, always rolled back.
async fn read(client: &Client, scope: &Scope) -> Result<Facts> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"
        ))
        .await
        .map_err(|e| query_error("starting the audit's transaction", &e))?;
    let facts = read_in_transaction(client, scope).await;
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| query_error("ending the audit's transaction", &e))?;
    facts
}

async fn read_in_transaction(client: &Client, scope: &Scope) -> Result<Facts> {
    let server = catalog::server(client).await?;
    check_server_version(server.version)?;
    let (tables, locked) = model::without_locked(catalog::tables(client, scope).await?);
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let foreign_keys = catalog::foreign_keys(client, &oids).await?;
    let mut taken = Taken::new();
    let relations = Relations::new(client);
    for table in &tables {
        relations
            .read_names(&model::table(table, &[]), &mut taken)
            .await?;
    }
    // Last: the definitions' share locks on the tables are held from here
    // until the transaction ends, right after.
    let names: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
    let indexes = indexes::read(client, &names, Detail::Audit).await?;
    Ok(Facts {
        server,
        tables,
        indexes,
        foreign_keys,
        taken,
        locked,
    })
}

/// Judges `facts`: every finding, and what was left unjudged.
pub fn audit(facts: &Facts) -> Audit {
    let units = model::units(facts);
    let mut findings = invalid::findings(&units);
    findings.extend(overlaps::findings(&units));
    // An index already advised to be dropped gets no other advice.
    let dropped: HashSet<(String, String)> = findings.iter().filter_map(subject).collect();
    let kept: Vec<&model::Unit> = units
        .iter()
        .filter(|u| u.index.usable && !dropped.contains(&u.key()))
        .collect();
    let mut notes = unused::unjudged(&facts.server);
    if notes.is_empty() {
        findings.extend(unused::findings(&kept, &facts.foreign_keys, &facts.server));
    }
    notes.extend(facts.locked.iter().map(|locked| {
        format!(
            "the indexes of {} were not audited: server process {} holds or awaits an ACCESS \
             EXCLUSIVE lock on it (DDL under way), and reading their definitions would wait \
             behind it; run the audit again once it is done",
            locked.table.display(),
            locked.pid
        )
    }));
    let advised: HashSet<(String, String)> = findings.iter().filter_map(subject).collect();
    let kept: Vec<&model::Unit> = kept
        .into_iter()
        .filter(|u| !advised.contains(&u.key()))
        .collect();
    findings.extend(foreign_keys::findings(facts, &units));
    findings.extend(bloat::findings(&kept, &facts.server));
    findings.extend(size::findings(&kept));
    sort(&mut findings);
    Audit {
        tables: facts.tables.len(),
        indexes: facts.indexes.len(),
        stats_reset: facts.server.stats_reset.clone(),
        standby: facts.server.in_recovery,
        notes,
        findings,
    }
}

/// The table and index a finding is about.
fn subject(finding: &Finding) -> Option<(String, String)> {
    match &finding.subject {
        Subject::Index { index, table, .. } => Some((table.clone(), index.clone())),
        _ => None,
    }
}

/// Orders findings by [`ORDER`], then table, then index.
fn sort(findings: &mut [Finding]) {
    let rank = |f: &Finding| ORDER.iter().position(|code| *code == f.code);
    findings.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| subject(a).cmp(&subject(b)))
    });
}

#[cfg(test)]
mod tests;
