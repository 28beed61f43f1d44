//! `perfaudit advise`.

use crate::cli::AdviseArgs;
use crate::context::Context;
use crate::error::{Error, Result};

/// Runs `perfaudit advise`.
pub async fn run(_context: &Context, _args: AdviseArgs) -> Result<()> {
    Err(Error::input("`perfaudit advise` is not implemented yet"))
}
