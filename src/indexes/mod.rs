//! `perfaudit indexes`: create the indexes a spec wants, safely, on a live
//! database.
//!
//! The flow, one module per step:
//! [`spec`] (what is wanted) -> [`catalog`] (what is there, read once) ->
//! [`plan`] (pure decisions, the exact SQL, findings) -> [`build`] (safe
//! execution: concurrent builds, lock timeouts, retries, cancel and
//! cleanup, on [`session`]s; [`prewait`] holds a concurrent build back
//! until the transactions it would wait for have ended; [`watch`] bounds
//! what `lock_timeout` cannot and names what a build waits for;
//! [`progress`] tells of it) -> [`Report`]
//! (what happened, for the renderer in `report::indexes`); [`run`] wires
//! the steps. [`sql`] writes
//! the statements; [`run_lock`] keeps building runs apart.
//!
//! [`audit`] (`--audit`) builds nothing: it judges every index of the
//! database and says what to drop or rebuild. [`advice`] holds what the
//! build's findings and the audit's say alike.

pub mod advice;
pub mod audit;
pub mod build;
pub mod catalog;
pub mod ddl;
pub mod defaults;
pub mod partitions;
pub mod plan;
pub mod prewait;
pub mod progress;
pub mod run_lock;
pub mod session;
pub mod size;
pub mod spec;
pub mod sql;
pub mod watch;

use std::time::Duration;

use deadpool_postgres::Object;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use build::{Built, LockWaits, Settings};
use partitions::{Part, Parts};
use plan::{Action, Plan};
use session::SessionSettings;
use spec::Spec;

use crate::db::Database;
use crate::db::cancel::cancellable;
use crate::db::pooler;
use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::interrupt::Interrupt;
use crate::sql::ident::QualifiedName;
use crate::ui::Progress;

/// How `perfaudit indexes` builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Plan only (`--dry-run`).
    pub dry_run: bool,
    /// Build with `CREATE INDEX CONCURRENTLY` (not `--no-concurrently`).
    pub concurrently: bool,
    /// `--lock-timeout` (a default for the build mode when `None`).
    pub lock_timeout: Option<Duration>,
    /// `--lock-retries` (a default for the build mode when `None`).
    pub lock_retries: Option<u32>,
    /// `--transaction-wait-timeout`; 0 waits as long as it takes.
    pub transaction_wait_timeout: Option<Duration>,
    /// `--maintenance-work-mem`.
    pub maintenance_work_mem: Option<String>,
    /// `--payments-defaults`: build the default spec on a `payments` table
    /// that is not the fixture's.
    pub payments_defaults: bool,
}

/// What a run did (or, in a dry run, would do) about one wanted index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Built.
    Created,
    /// Already there and valid.
    Exists,
    /// Was there INVALID: dropped and built again.
    Rebuilt,
    /// Another index serves the same queries; nothing was built.
    EquivalentExists,
    /// Dry run: would be built.
    WouldCreate,
    /// Dry run: would be dropped and built again.
    WouldRebuild,
}

impl Outcome {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
            Outcome::Rebuilt => "rebuilt",
            Outcome::EquivalentExists => "equivalent_exists",
            Outcome::WouldCreate => "would_create",
            Outcome::WouldRebuild => "would_rebuild",
        }
    }
}

/// One wanted index in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexReport {
    /// The index name (in its table's schema).
    pub name: String,
    /// The table, `schema.name`.
    pub table: String,
    /// The key: column names and expressions, as the spec gives them.
    pub columns: Vec<String>,
    /// What was done.
    pub action: Outcome,
    /// Whether the server marks the index valid and ready (see [`valid`]);
    /// `null` when there is no index.
    pub valid: Option<bool>,
    /// Its size on disk, when it exists.
    pub size_bytes: Option<i64>,
    /// For an index that is (or would be) built, a B-tree: the size
    /// estimated before the build, from the planner's statistics
    /// ([`size::estimate`]).
    pub estimated_size_bytes: Option<i64>,
    /// How long its build took, when it was built.
    pub duration_ms: Option<u64>,
    /// The statements run (or, in a dry run, that would run), each ending
    /// with `;`; `null` when there is nothing to do.
    pub ddl: Option<String>,
    /// For `equivalent_exists`: the index that serves instead.
    pub equivalent: Option<String>,
    /// On a partitioned table, when the index is (or would be) built: what
    /// that does on its partitions.
    pub partitions: Option<PartitionsReport>,
}

/// What building an index on a partitioned table does (or would do) on
/// its partitions, every level counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionsReport {
    /// How many partitions there are.
    pub count: usize,
    /// How many get an index built (an INVALID equivalent one rebuilt
    /// included).
    pub built: usize,
    /// The existing equivalent indexes attached instead of building,
    /// `schema.name`.
    pub reused: Vec<String>,
    /// How many keep the index already attached to the INVALID index that
    /// is completed.
    pub kept: usize,
}

impl PartitionsReport {
    /// The report of `parts`, or `None` when there are no partitions.
    fn new(parts: &Parts) -> Option<PartitionsReport> {
        (!parts.parts.is_empty()).then(|| PartitionsReport {
            count: parts.parts.len(),
            built: parts.built(),
            reused: parts.reused().map(QualifiedName::display).collect(),
            kept: parts
                .parts
                .iter()
                .filter(|part| matches!(part, Part::Kept(_)))
                .count(),
        })
    }

    /// `55 partitions: 52 built, 3 reused`.
    pub fn summary(&self) -> String {
        let mut done = vec![format!("{} built", self.built)];
        if !self.reused.is_empty() {
            done.push(format!("{} reused", self.reused.len()));
        }
        if self.kept > 0 {
            done.push(format!("{} kept", self.kept));
        }
        format!(
            "{} {}: {}",
            self.count,
            crate::text::plural(self.count, "partition", "partitions"),
            done.join(", ")
        )
    }
}

/// Whether the server marks the index a report entry names valid and
/// ready: the catalog says so of an index that is there (only valid ones
/// count as there, or as equivalent); the check after a build says so of a
/// built one (a build the server does not mark valid fails the run
/// instead); the index a dry run would rebuild is there but INVALID. `None`
/// when there is no index (yet).
fn valid(action: &Action, built: bool, dry_run: bool) -> Option<bool> {
    match action {
        Action::Exists { .. } => Some(true),
        // The equivalent is either there, or built earlier in this run.
        Action::EquivalentExists { size_bytes, .. } => {
            (size_bytes.is_some() || !dry_run).then_some(true)
        }
        Action::Rebuild if dry_run => Some(false),
        Action::Create | Action::Rebuild => built.then_some(true),
    }
}

/// What a run of `perfaudit indexes` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One entry per spec index, in spec order.
    pub indexes: Vec<IndexReport>,
    /// Redundant and INVALID indexes on the spec's tables.
    pub findings: Vec<Finding>,
    /// Whether nothing was changed because the run was a dry run.
    pub dry_run: bool,
}

impl Report {
    /// The report of `plan`, given the estimated size of each planned
    /// index and what was built (nothing in a dry run).
    pub fn new(
        plan: &Plan,
        estimates: &[Option<i64>],
        built: &[Option<Built>],
        findings: Vec<Finding>,
        dry_run: bool,
    ) -> Report {
        let size_of = |name: &QualifiedName| {
            plan.indexes
                .iter()
                .zip(built)
                .find(|(p, _)| &p.name == name)
                .and_then(|(_, b)| b.as_ref().map(|b| b.size_bytes))
        };
        let indexes = plan
            .indexes
            .iter()
            .zip(built)
            .zip(estimates)
            .map(|((planned, built), estimate)| {
                let (action, size_bytes, equivalent) = match &planned.action {
                    Action::Exists { size_bytes } => (Outcome::Exists, Some(*size_bytes), None),
                    Action::EquivalentExists { index, size_bytes } => (
                        Outcome::EquivalentExists,
                        size_bytes.or_else(|| size_of(index)),
                        Some(index.name.clone()),
                    ),
                    Action::Create if dry_run => (Outcome::WouldCreate, None, None),
                    Action::Rebuild if dry_run => (Outcome::WouldRebuild, None, None),
                    Action::Create => {
                        (Outcome::Created, built.as_ref().map(|b| b.size_bytes), None)
                    }
                    Action::Rebuild => {
                        (Outcome::Rebuilt, built.as_ref().map(|b| b.size_bytes), None)
                    }
                };
                let ddl: Vec<String> = planned
                    .statements()
                    .map(|statement| format!("{};", statement.sql))
                    .collect();
                IndexReport {
                    name: planned.name.name.clone(),
                    table: planned.table.display(),
                    columns: planned
                        .spec
                        .keys
                        .iter()
                        .map(|k| k.text().to_owned())
                        .collect(),
                    action,
                    valid: valid(&planned.action, built.is_some(), dry_run),
                    size_bytes,
                    estimated_size_bytes: *estimate,
                    duration_ms: built.as_ref().map(|b| b.duration.as_millis() as u64),
                    ddl: (!ddl.is_empty()).then(|| ddl.join("\n")),
                    equivalent,
                    partitions: PartitionsReport::new(&planned.parts),
                }
            })
            .collect();
        Report {
            indexes,
            findings,
            dry_run,
        }
    }
}

/// Creates the indexes `spec` wants on `database` (in a dry run, only
/// plans them) and returns what happened.
pub async fn run(
    database: &Database,
    spec: &Spec,
    options: &Options,
    interrupt: &Interrupt,
    progress: &dyn Progress,
) -> Result<Report> {
    let tls = database.tls();
    // The run's own session: it holds the run lock (unless the run is dry),
    // reads the catalog, then watches the builds. It goes back to the pool
    // only once its lock is given back; after a signal it is closed, which
    // ends whatever it still had on the server.
    let own = interrupt.guard(database.connection()).await?;
    let locked = !options.dry_run;
    // The run lock is a session's, and a CONCURRENTLY build waits and
    // builds across transactions of one session: behind a transaction
    // pooler neither holds, so a run refuses before it takes or builds
    // anything (a dry run only reads, in one transaction). Telling takes a
    // second connection; a pool of one cannot build anyway, and says so.
    if locked
        && database.options().max_size > 1
        && interrupt
            .guard(pooler::transaction_pooler(&own, database))
            .await?
    {
        return Err(Error::input(
            "perfaudit indexes builds with CREATE INDEX CONCURRENTLY, which needs one server \
             session throughout, and this connection goes through a transaction pooler \
             (PgBouncer's pool_mode = transaction) that changes it between transactions: \
             connect to the server directly, not through the pooler",
        ));
    }
    if locked {
        run_lock::acquire(&own).await?;
    }
    let result = work(options, spec, database, &own, tls, interrupt, progress).await;
    let clean = !matches!(result, Err(Error::Interrupted(_)))
        && (!locked || run_lock::release(&own).await.is_ok());
    if !clean {
        drop(Object::take(own));
    }
    result
}

/// Reads the catalog on `own`, plans, builds unless the run is dry.
async fn work(
    options: &Options,
    spec: &Spec,
    database: &Database,
    own: &Client,
    tls: &MakeRustlsConnect,
    interrupt: &Interrupt,
    progress: &dyn Progress,
) -> Result<Report> {
    let waits = LockWaits::default_for(options.concurrently);
    let lock_timeout = options.lock_timeout.unwrap_or(waits.timeout);
    // The catalog's transaction ends before any build: a concurrent build
    // waits for every open transaction, ours included. On a signal the read
    // is cancelled on the server, where it may be queued on a lock.
    let read = async {
        let tables = catalog::tables(own, spec).await?;
        if spec.is_default() {
            let columns = match tables.tables.first() {
                Some(table) => catalog::column_types(own, table.oid).await?,
                None => Vec::new(),
            };
            defaults::check(spec, &tables, &columns, options.payments_defaults)?;
        }
        plan::check_server_version(tables.server_version)?;
        let problems = plan::check_tables(spec, &tables);
        let names = plan::wanted_names(spec, &tables);
        let catalog = catalog::read(own, spec, tables, &names, lock_timeout, problems).await?;
        let plan = plan::plan(spec, &catalog, options.concurrently)?;
        let estimates = estimate_sizes(own, &catalog, &plan).await;
        Ok((catalog, plan, estimates))
    };
    let (catalog, plan, estimates) = cancellable(own, tls, interrupt, read).await?;
    let built = if options.dry_run {
        vec![None; plan.indexes.len()]
    } else {
        let settings = Settings {
            session: SessionSettings {
                lock_timeout,
                maintenance_work_mem: options.maintenance_work_mem.clone(),
            },
            lock_retries: options.lock_retries.unwrap_or(waits.retries),
            transaction_wait_timeout: options.transaction_wait_timeout.filter(|t| !t.is_zero()),
        };
        build::execute(database, own, interrupt, progress, &plan, &settings).await?
    };
    let sizes: Vec<Option<i64>> = built
        .iter()
        .map(|b| b.as_ref().map(|b| b.size_bytes))
        .collect();
    let findings = plan::findings(&catalog, &plan, &sizes);
    Ok(Report::new(
        &plan,
        &estimates,
        &built,
        findings,
        options.dry_run,
    ))
}

/// The estimated size of each planned index that builds (`None` for the
/// others, and where the estimate cannot be made).
async fn estimate_sizes(own: &Client, catalog: &catalog::Catalog, plan: &Plan) -> Vec<Option<i64>> {
    let mut estimates = Vec::with_capacity(plan.indexes.len());
    for planned in &plan.indexes {
        let table = catalog
            .tables
            .tables
            .iter()
            .find(|t| t.name == planned.table);
        estimates.push(match table {
            // An aid, not a condition: a role that may build but not plan
            // a query on the table (SELECT revoked) gets no estimate.
            Some(table) if planned.action.builds() => size::estimate(own, table, &planned.spec)
                .await
                .unwrap_or(None),
            _ => None,
        });
    }
    estimates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_is_what_the_server_says_of_the_index_under_that_name() {
        let exists = Action::Exists { size_bytes: 1 };
        let equivalent = |size_bytes| Action::EquivalentExists {
            index: QualifiedName::new("public", "other"),
            size_bytes,
        };
        assert_eq!(valid(&exists, false, true), Some(true));
        assert_eq!(valid(&equivalent(Some(1)), false, true), Some(true));
        assert_eq!(valid(&equivalent(None), false, true), None, "not built yet");
        assert_eq!(valid(&equivalent(None), false, false), Some(true));
        assert_eq!(valid(&Action::Create, false, true), None);
        assert_eq!(valid(&Action::Rebuild, false, true), Some(false));
        assert_eq!(valid(&Action::Create, true, false), Some(true));
        assert_eq!(valid(&Action::Rebuild, true, false), Some(true));
        assert_eq!(valid(&Action::Create, false, false), None, "not attempted");
    }
}
