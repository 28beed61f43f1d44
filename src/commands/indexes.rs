//! `perfaudit indexes`: spec -> catalog -> plan -> build -> report.

use deadpool_postgres::Object;

use crate::cli::IndexesArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::indexes::build::{self, Settings};
use crate::indexes::progress::Progress;
use crate::indexes::session::{SessionSettings, cancellable};
use crate::indexes::spec::Spec;
use crate::indexes::{Report, catalog, plan};
use crate::report;

/// Runs `perfaudit indexes`.
pub async fn run(context: &Context, args: IndexesArgs) -> Result<()> {
    let report = report(context, args).await?;
    report::indexes::print(&context.ui, &report)
}

/// Does the work of `perfaudit indexes` and returns what happened, unprinted.
pub async fn report(context: &Context, args: IndexesArgs) -> Result<Report> {
    let spec = Spec::load(args.spec.as_deref())?;
    let database = context.database().await?;
    // The catalog is read on one connection, its transaction ended before
    // any build: a concurrent build waits for every open transaction, ours
    // included. On a signal the read is cancelled on the server, where it
    // may be queued on a lock, and the session is closed, not pooled.
    let client = database.connection().await?;
    let tls = crate::db::tls::connector(database.settings())?;
    let read = async {
        let tables = catalog::tables(&client, &spec).await?;
        plan::check_server_version(tables.server_version)?;
        plan::check_tables(&spec, &tables)?;
        let names = plan::wanted_names(&spec, &tables);
        let catalog = catalog::read(&client, &spec, tables, &names, args.lock_timeout).await?;
        let plan = plan::plan(&spec, &catalog, !args.no_concurrently)?;
        Ok((catalog, plan))
    };
    let (catalog, plan) = match cancellable(&client, &tls, &context.interrupt, read).await {
        Ok(read) => read,
        Err(error) => {
            if matches!(error, Error::Interrupted(_)) {
                drop(Object::take(client));
            }
            return Err(error);
        }
    };
    drop(client);
    let built = if args.dry_run {
        vec![None; plan.indexes.len()]
    } else {
        let settings = Settings {
            session: SessionSettings {
                lock_timeout: args.lock_timeout,
                maintenance_work_mem: args.maintenance_work_mem,
            },
            lock_retries: args.lock_retries,
        };
        let progress = Progress::new(&context.ui);
        build::execute(database, &context.interrupt, &progress, &plan, &settings).await?
    };
    let sizes: Vec<Option<i64>> = built
        .iter()
        .map(|b| b.as_ref().map(|b| b.size_bytes))
        .collect();
    let findings = plan::findings(&catalog, &plan, &sizes);
    Ok(Report::new(&plan, &built, findings, args.dry_run))
}
