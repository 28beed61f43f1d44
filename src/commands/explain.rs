//! `perfaudit explain`: the options, explain's pipeline
//! ([`explain::pipeline`]), and the report of each statement as it is done.

use std::io::{self, BufWriter};

use crate::cli::ExplainArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::explain::JobOptions;
use crate::explain::gate::Gates;
use crate::explain::mode::ModeFlags;
use crate::explain::pipeline::{self, Options};
use crate::report::{self, Statements};
use crate::ui::Bars;

/// Runs `perfaudit explain`.
pub async fn run(context: &Context, args: ExplainArgs) -> Result<()> {
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
    };
    let interrupt = &context.interrupt;
    let checked = pipeline::check(&text, &options.jobs, interrupt).await?;
    let database = context.database().await?;
    let mut out = Statements::new(&context.ui, BufWriter::new(io::stdout().lock()));
    let outcome = pipeline::explain_all(
        database,
        &text,
        &checked,
        &options,
        interrupt,
        &Bars::new(&context.ui),
        async |result| out.push(result).map_err(report::output_error),
    )
    .await;
    // The statements explained before one failed are still reported (a
    // pipeline keeps their JSON); the exit code is then the failure's.
    let finished = out.finish(false, None).map_err(report::output_error);
    let failures = outcome?;
    finished?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Gate(format!("gate failed: {}", failures.join("; "))))
    }
}
