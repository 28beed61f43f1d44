//! `perfaudit indexes`.

use crate::cli::IndexesArgs;
use crate::context::Context;
use crate::error::{Error, Result};

/// Runs `perfaudit indexes`.
pub async fn run(_context: &Context, _args: IndexesArgs) -> Result<()> {
    Err(Error::input("`perfaudit indexes` is not implemented yet"))
}
