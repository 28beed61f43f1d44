//! `perfaudit rewrite`: each statement of the input through the rewriter,
//! reported as it is done. Uses a database only when one is configured, so
//! it works offline.

use std::io::{self, BufWriter, Write};

use crate::cli::RewriteArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::guard;
use crate::input::read_sql;
use crate::report::rewrite::{self as view, RewriteView};
use crate::report::{self, Statements};
use crate::rewrite::{self, Knowledge};
use crate::sql;

/// Runs `perfaudit rewrite`. A statement that does not parse is reported
/// (exit code 2) after the others are rewritten. The report is always
/// finished — a JSON document is complete even when a statement fails to
/// parse, the server fails, or a signal stops the run.
pub async fn run(context: &Context, args: RewriteArgs) -> Result<()> {
    let text = read_sql(&args.input.source(), &context.interrupt).await?;
    let mut statements = sql::statements(&text).peekable();
    // Refused before any output: an empty input has no report to finish.
    if statements.peek().is_none() {
        return Err(Error::input(
            "the input holds no SQL statement; give SQL as an argument, with -f FILE, or on \
             standard input",
        ));
    }
    let connection = match context.database_configured() {
        true => {
            let database = context.database().await?;
            let client = context.interrupt.guard(database.connection()).await?;
            // The rewriter's describes are READ ONLY, and a database where
            // merely reading a statement runs what no rollback undoes gets
            // none (see explain's guard).
            let interrupt = &context.interrupt;
            interrupt
                .guard(guard::refuse_parse_hazards(&client))
                .await?;
            interrupt.guard(guard::enter(&client)).await?;
            Some(client)
        }
        false => None,
    };
    let mut report = Statements::new(&context.ui, BufWriter::new(io::stdout().lock()));
    let mut errors = Vec::new();
    let client: Option<&tokio_postgres::Client> = connection.as_deref().map(|c| &**c);
    let mut tally = Tally::default();
    let outcome = rewrite_all(
        context,
        &args,
        statements,
        client,
        &mut report,
        &mut errors,
        &mut tally,
    )
    .await;
    let footer = view::footer(tally.statements, tally.rewritten, connection.is_none());
    // The run's error: a server error, a signal or a failed write stops it;
    // else the last statement that did not parse (each earlier one gets a
    // line of its own on stderr).
    let result = match outcome {
        Err(error) => Err(error),
        Ok(()) => {
            let last = errors.pop();
            for error in errors {
                eprintln!("perfaudit: {error}");
            }
            last.map_or(Ok(()), Err)
        }
    };
    let finished = report
        .finish(true, Some(&footer), result.as_ref().err())
        .map_err(report::output_error);
    result.and(finished)
}

/// The statements reported so far, and how many of them changed.
#[derive(Debug, Default)]
struct Tally {
    statements: usize,
    rewritten: usize,
}

/// Rewrites and reports every statement that parses, counting them in
/// `tally`; collects the parse errors in `errors`. Fails on a server
/// error, a signal, or a failed write (a closed pipe included: nobody
/// reads the rest).
async fn rewrite_all<W: Write>(
    context: &Context,
    args: &RewriteArgs,
    statements: impl Iterator<Item = Result<sql::SqlStatement>>,
    connection: Option<&tokio_postgres::Client>,
    report: &mut Statements<W>,
    errors: &mut Vec<Error>,
    tally: &mut Tally,
) -> Result<()> {
    let options = args.rules.options();
    for parsed in statements {
        // Offline, nothing else awaits: giving the runtime its turn once
        // the task's budget is spent lets the signal listener, a task on
        // this same thread, run.
        tokio::task::consume_budget().await;
        context.interrupt.check()?;
        let statement = match parsed {
            Ok(statement) => statement,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let rewrite = match connection {
            Some(client) => {
                let work = rewrite::server::rewrite(client, &statement, &options);
                context.interrupt.guard(work).await?
            }
            None => rewrite::rewrite(&statement, &options, &Knowledge::offline()),
        };
        tally.statements += 1;
        tally.rewritten += usize::from(rewrite.changed());
        let view = RewriteView {
            number: tally.statements,
            statement: &statement,
            rewrite: &rewrite,
        };
        report.push(&view).map_err(report::output_error)?;
    }
    Ok(())
}
