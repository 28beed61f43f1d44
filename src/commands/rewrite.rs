//! `perfaudit rewrite`.

use crate::cli::RewriteArgs;
use crate::context::Context;
use crate::error::{Error, Result};

/// Runs `perfaudit rewrite`.
pub async fn run(_context: &Context, _args: RewriteArgs) -> Result<()> {
    Err(Error::input("`perfaudit rewrite` is not implemented yet"))
}
