//! `perfaudit indexes`: spec -> catalog -> plan -> build -> report.

use deadpool_postgres::Object;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::cli::IndexesArgs;
use crate::context::Context;
use crate::db::Database;
use crate::db::cancel::cancellable;
use crate::error::{Error, Result};
use crate::indexes::build::{self, LockWaits, Settings};
use crate::indexes::session::SessionSettings;
use crate::indexes::spec::Spec;
use crate::indexes::{Report, catalog, plan, run_lock};
use crate::report;
use crate::ui::Bars;

/// Runs `perfaudit indexes`.
pub async fn run(context: &Context, args: IndexesArgs) -> Result<()> {
    let report = report(context, args).await?;
    report::indexes::print(&context.ui, &report)
}

/// Does the work of `perfaudit indexes` and returns what happened, unprinted.
pub async fn report(context: &Context, args: IndexesArgs) -> Result<Report> {
    let spec = Spec::load(args.spec.as_deref())?;
    let database = context.database().await?;
    let tls = database.tls();
    // The run's own session: it holds the run lock (unless the run is dry),
    // reads the catalog, then watches the builds. It goes back to the pool
    // only once its lock is given back; after a signal it is closed, which
    // ends whatever it still had on the server.
    let own = context.interrupt.guard(database.connection()).await?;
    let locked = !args.dry_run;
    if locked {
        run_lock::acquire(&own).await?;
    }
    let result = work(context, &args, &spec, database, &own, tls).await;
    let clean = !matches!(result, Err(Error::Interrupted(_)))
        && (!locked || run_lock::release(&own).await.is_ok());
    if !clean {
        drop(Object::take(own));
    }
    result
}

/// Reads the catalog on `own`, plans, builds unless the run is dry.
async fn work(
    context: &Context,
    args: &IndexesArgs,
    spec: &Spec,
    database: &Database,
    own: &Client,
    tls: &MakeRustlsConnect,
) -> Result<Report> {
    let waits = LockWaits::default_for(!args.no_concurrently);
    let lock_timeout = args.lock_timeout.unwrap_or(waits.timeout);
    // The catalog's transaction ends before any build: a concurrent build
    // waits for every open transaction, ours included. On a signal the read
    // is cancelled on the server, where it may be queued on a lock.
    let read = async {
        let tables = catalog::tables(own, spec).await?;
        plan::check_server_version(tables.server_version)?;
        plan::check_tables(spec, &tables)?;
        let names = plan::wanted_names(spec, &tables);
        let catalog = catalog::read(own, spec, tables, &names, lock_timeout).await?;
        let plan = plan::plan(spec, &catalog, !args.no_concurrently)?;
        Ok((catalog, plan))
    };
    let (catalog, plan) = cancellable(own, tls, &context.interrupt, read).await?;
    let built = if args.dry_run {
        vec![None; plan.indexes.len()]
    } else {
        let settings = Settings {
            session: SessionSettings {
                lock_timeout,
                maintenance_work_mem: args.maintenance_work_mem.clone(),
            },
            lock_retries: args.lock_retries.unwrap_or(waits.retries),
            transaction_wait_timeout: args.transaction_wait_timeout.filter(|t| !t.is_zero()),
        };
        let progress = Bars::new(&context.ui);
        build::execute(
            database,
            own,
            &context.interrupt,
            &progress,
            &plan,
            &settings,
        )
        .await?
    };
    let sizes: Vec<Option<i64>> = built
        .iter()
        .map(|b| b.as_ref().map(|b| b.size_bytes))
        .collect();
    let findings = plan::findings(&catalog, &plan, &sizes);
    Ok(Report::new(&plan, &built, findings, args.dry_run))
}
