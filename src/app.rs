//! Dispatch of a parsed command line to the command that runs it.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::context::Context;
use crate::error::Result;
use crate::interrupt::Interrupt;
use crate::ui::Ui;

/// Runs one command line to completion. Output goes to stdout; the error,
/// if any, is for the caller to print and turn into an exit code.
pub async fn run(cli: Cli, interrupt: Interrupt) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        // Generated into memory: clap_complete panics on a failed write.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "perfaudit", &mut script);
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(&script)
            .and_then(|()| stdout.flush())
            .map_err(crate::report::output_error);
    }
    let ui = Ui::new(cli.global.ui_options());
    let context = Context::open(cli.global.database_options(), ui, interrupt).await?;
    match cli.command {
        Command::Indexes(args) => commands::indexes::run(&context, args).await,
        Command::Rewrite(args) => commands::rewrite::run(&context, args).await,
        Command::Explain(args) => commands::explain::run(&context, args).await,
        Command::Advise(args) => commands::advise::run(&context, args).await,
        Command::Completions { .. } => unreachable!("handled above"),
    }
}
