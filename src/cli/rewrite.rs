//! Options of `perfaudit rewrite`.

use clap::Args;

use super::SqlArgs;

/// Options of `perfaudit rewrite`.
#[derive(Debug, Args)]
pub struct RewriteArgs {
    #[command(flatten)]
    pub input: SqlArgs,
}
