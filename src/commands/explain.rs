//! `perfaudit explain`.

use crate::cli::ExplainArgs;
use crate::context::Context;
use crate::error::{Error, Result};

/// Runs `perfaudit explain`.
pub async fn run(_context: &Context, _args: ExplainArgs) -> Result<()> {
    Err(Error::input("`perfaudit explain` is not implemented yet"))
}
