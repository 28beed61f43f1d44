//! `perfaudit rewrite`: each statement of the input through the rewriter,
//! reported as it is done. Uses a database only when one is configured, so
//! it works offline.

use std::io::{self, BufWriter};

use crate::cli::RewriteArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::input::read_sql;
use crate::report::rewrite::RewriteReport;
use crate::rewrite::{self, Knowledge};
use crate::sql;

/// Runs `perfaudit rewrite`. A statement that does not parse is reported
/// (exit code 2) after the others are rewritten.
pub async fn run(context: &Context, args: RewriteArgs) -> Result<()> {
    let options = args.rules.options();
    let text = read_sql(&args.input)?;
    let connection = match context.database_configured() {
        true => {
            let database = context.database().await?;
            Some(context.interrupt.guard(database.connection()).await?)
        }
        false => None,
    };
    let mut report = RewriteReport::new(&context.ui, BufWriter::new(io::stdout().lock()));
    let mut errors = Vec::new();
    let mut statements = 0usize;
    for parsed in sql::statements(&text) {
        context.interrupt.check()?;
        let statement = match parsed {
            Ok(statement) => statement,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        statements += 1;
        let rewrite = match &connection {
            Some(client) => {
                let work = rewrite::server::rewrite(client, &statement, &options);
                context.interrupt.guard(work).await?
            }
            None => rewrite::rewrite(&statement, &options, &Knowledge::offline()),
        };
        if let Err(e) = report.statement(&statement, &rewrite) {
            return output_error(e);
        }
    }
    if statements == 0 && errors.is_empty() {
        return Err(Error::input(
            "the input holds no SQL statement; give SQL as an argument, with -f FILE, or on \
             standard input",
        ));
    }
    if statements > 0
        && let Err(e) = report.finish(connection.is_none())
    {
        return output_error(e);
    }
    // Each error on its own line; the last one is the command's.
    let last = errors.pop();
    for error in errors {
        eprintln!("perfaudit: {error}");
    }
    last.map_or(Ok(()), Err)
}

/// A write to stdout that failed: a closed pipe (`| head`) ends the output
/// quietly, anything else is an error.
fn output_error(error: io::Error) -> Result<()> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(Error::input(format!("cannot write the output: {error}")))
}
