//! The `perfaudit` binary: parse the arguments, run the library, map the
//! outcome to an exit code.

use clap::Parser;

use perfaudit::cli::Cli;
use perfaudit::error::{EXIT_INTERNAL, Error};
use perfaudit::interrupt::Interrupt;

fn main() {
    let cli = Cli::parse();
    // One thread is plenty: the work is waiting on PostgreSQL, and a single
    // thread keeps startup cheap and the postmaster's parent thread stable.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("perfaudit: cannot start the async runtime: {e}");
            std::process::exit(EXIT_INTERNAL);
        }
    };
    let code = runtime.block_on(async {
        let interrupt = Interrupt::install()
            .map_err(|e| Error::internal(format!("cannot listen for signals: {e}")))?;
        perfaudit::app::run(cli, interrupt).await
    });
    let code = match code {
        Ok(()) => perfaudit::error::EXIT_OK,
        // Nobody reads what is left to say.
        Err(error @ Error::OutputClosed) => error.exit_code(),
        Err(error) => {
            eprintln!("perfaudit: {error}");
            error.exit_code()
        }
    };
    // Not waiting for blocking reads: a read of stdin a signal interrupted
    // may never end.
    runtime.shutdown_background();
    std::process::exit(code);
}
