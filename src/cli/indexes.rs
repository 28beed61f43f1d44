//! Options of `perfaudit indexes`.

use clap::Args;

/// Options of `perfaudit indexes`.
#[derive(Debug, Args)]
pub struct IndexesArgs {}
