//! Options of `perfaudit advise`.

use clap::Args;

use super::SqlArgs;

/// Options of `perfaudit advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub input: SqlArgs,
}
