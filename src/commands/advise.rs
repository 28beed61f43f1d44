//! `perfaudit advise`.

use crate::advise::{self, Options, workload};
use crate::cli::AdviseArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::guard;
use crate::input::read_sql;
use crate::report;
use crate::ui::Bars;

/// How many `pg_stat_statements` entries `--from-stat-statements` takes
/// unless `--top` says otherwise: the heaviest twenty are usually most of
/// the time spent, and each costs a round of hypothetical plans.
pub const DEFAULT_TOP: u32 = 20;

/// Runs `perfaudit advise`.
pub async fn run(context: &Context, args: AdviseArgs) -> Result<()> {
    // The SQL is read (and must parse) before anything connects.
    let from_sql = match args.from_stat_statements {
        true => None,
        false => Some(workload::from_sql(
            &read_sql(&args.input.source(), &context.interrupt).await?,
        )?),
    };
    let database = context.database().await?;
    // advise has the server plan every statement, which first reads it: a
    // database where that runs what no rollback undoes gets none.
    let client = context.interrupt.guard(database.connection()).await?;
    context
        .interrupt
        .guard(guard::refuse_parse_hazards(&client))
        .await?;
    let workload = match from_sql {
        Some(workload) => workload,
        None => {
            let top = args.top.unwrap_or(DEFAULT_TOP);
            context
                .interrupt
                .guard(workload::from_stat_statements(&client, top))
                .await?
        }
    };
    // advise takes a session of its own: with --pool-size 1, this one.
    drop(client);
    let options = Options {
        min_improvement: args.min_improvement,
        min_cost: args.min_cost,
        // Only a scratch cluster is perfaudit's to change.
        create_extension: context.is_scratch(),
    };
    let advice = advise::advise(
        database,
        &workload,
        &options,
        &context.interrupt,
        &Bars::new(&context.ui),
    )
    .await?;

    if let Some(path) = &args.write_spec {
        if advice.indexes.is_empty() {
            context.ui.status(format!(
                "no index to recommend, so {} was not written",
                path.display()
            ));
        } else {
            std::fs::write(path, advice.spec()).map_err(|e| {
                Error::input(format!(
                    "cannot write the spec {}: {e}; check the path given to --write-spec",
                    path.display()
                ))
            })?;
            context.ui.status(format!(
                "wrote {} index(es) to {}; build them with: perfaudit indexes --spec {}",
                advice.indexes.len(),
                path.display(),
                path.display()
            ));
        }
    }
    report::emit(&context.ui, &advice)
}
