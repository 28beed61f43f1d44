//! Options of `perfaudit explain`.

use clap::Args;

use super::SqlArgs;

/// Options of `perfaudit explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: SqlArgs,
}
