//! `perfaudit explain`: the options, explain's pipeline
//! ([`explain::pipeline`]), and the report of each statement as it is done.
//! Whatever fails, JSON gets one document: the statements explained so
//! far and the `error`.

use std::io::{self, BufWriter, Write};

use crate::advise;
use crate::cli::ExplainArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::explain::JobOptions;
use crate::explain::gate::Gates;
use crate::explain::mode::ModeFlags;
use crate::explain::pipeline::{self, Options};
use crate::report::explain::StatementView;
use crate::report::{self, Statements};
use crate::ui::Bars;

/// Runs `perfaudit explain`.
pub async fn run(context: &Context, args: ExplainArgs) -> Result<()> {
    let mut out = Statements::new(&context.ui, BufWriter::new(io::stdout().lock()));
    let result = explain(context, args, &mut out).await;
    let finished = out
        .finish(false, None, result.as_ref().err())
        .map_err(report::output_error);
    // The failure is the run's; a failed write of the report only when the
    // run went well.
    result.and(finished)
}

/// Explains the statements of the input into `out`; an error when a
/// statement fails or a gate does.
async fn explain(
    context: &Context,
    args: ExplainArgs,
    out: &mut Statements<impl Write>,
) -> Result<()> {
    let text = crate::input::read_sql(&args.input.source(), &context.interrupt).await?;
    let options = Options {
        jobs: JobOptions {
            flags: ModeFlags {
                no_analyze: args.no_analyze,
                analyze_writes: args.analyze_writes,
            },
            params: args.params,
            needs_execution: args.max_ms.is_some(),
        },
        // With the server at hand the rewriter resolves ORDER BY for
        // `SELECT *` and has the server check what it produced.
        rewrite: (!args.no_rewrite).then(|| args.rewrite.options()),
        runs: args.runs as usize,
        warmup: args.warmup as usize,
        gates: Gates {
            max_ms: args.max_ms,
            fail_on: args.fail_on,
        },
        // Findings suggest the indexes advise would, by its defaults.
        advise: advise::Options {
            min_improvement: advise::DEFAULT_MIN_IMPROVEMENT,
            min_cost: advise::DEFAULT_MIN_COST,
            // Only a scratch cluster is perfaudit's to change.
            create_extension: context.is_scratch(),
        },
    };
    let interrupt = &context.interrupt;
    let checked = pipeline::check(&text, &options.jobs, interrupt).await?;
    let database = context.database().await?;
    // The statements explained before one fails are still reported (a
    // pipeline keeps their JSON); the run's error is then the failure's.
    let failures = pipeline::explain_all(
        database,
        &text,
        &checked,
        &options,
        interrupt,
        &Bars::new(&context.ui),
        async |result| {
            let view = StatementView {
                result,
                details: args.details,
            };
            out.push(&view).map_err(report::output_error)
        },
    )
    .await?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Gate(format!("gate failed: {}", failures.join("; "))))
    }
}
