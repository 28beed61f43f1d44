//! `perfaudit indexes`: the spec and options, the engine's run
//! ([`indexes::run`]), the report; with `--audit`, the audit
//! ([`audit::run`]), its report and `--fail-on`.

use crate::cli::IndexesArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::finding::at_or_above;
use crate::indexes::audit::{self, Audit};
use crate::indexes::spec::Spec;
use crate::indexes::{self, Report};
use crate::report;
use crate::ui::Bars;

/// Runs `perfaudit indexes`.
pub async fn run(context: &Context, args: IndexesArgs) -> Result<()> {
    if args.audit {
        let audit = audit(context, &args).await?;
        report::emit(&context.ui, &audit)?;
        return gate(&audit, &args);
    }
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

/// Audits the database's indexes (`--audit`) and returns what was found,
/// unprinted.
pub async fn audit(context: &Context, args: &IndexesArgs) -> Result<Audit> {
    let database = context.database().await?;
    audit::run(database, &args.scope(), &context.interrupt).await
}

/// `--fail-on`: an error (exit 1) naming the findings at least that severe.
fn gate(audit: &Audit, args: &IndexesArgs) -> Result<()> {
    let Some(level) = args.fail_on else {
        return Ok(());
    };
    let failing = at_or_above(&audit.findings, level);
    if failing.is_empty() {
        return Ok(());
    }
    Err(Error::Gate(format!(
        "gate failed: {} at or above --fail-on {level}",
        failing.join(", ")
    )))
}
