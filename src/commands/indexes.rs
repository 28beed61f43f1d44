//! `perfaudit indexes`: the spec and options, the engine's run
//! ([`indexes::run`]), the report.

use crate::cli::IndexesArgs;
use crate::context::Context;
use crate::error::Result;
use crate::indexes::spec::Spec;
use crate::indexes::{self, Report};
use crate::report;
use crate::ui::Bars;

/// Runs `perfaudit indexes`.
pub async fn run(context: &Context, args: IndexesArgs) -> Result<()> {
    let report = report(context, args).await?;
    report::emit(&context.ui, &report)
}

/// Does the work of `perfaudit indexes` and returns what happened, unprinted.
pub async fn report(context: &Context, args: IndexesArgs) -> Result<Report> {
    let spec = Spec::load(args.spec.as_deref())?;
    let database = context.database().await?;
    let progress = Bars::new(&context.ui);
    indexes::run(
        database,
        &spec,
        &args.options(),
        &context.interrupt,
        &progress,
    )
    .await
}
