//! Options of `perfaudit rewrite`.

use clap::Args;

use super::SqlArgs;
use crate::rewrite::{DEFAULT_LIMIT, DEFAULT_ORDER_BY, OrderBy, RewriteOptions};

/// Options of `perfaudit rewrite`.
#[derive(Debug, Args)]
pub struct RewriteArgs {
    #[command(flatten)]
    pub input: SqlArgs,

    #[command(flatten)]
    pub rules: RewriteFlags,
}

/// What the rewriter adds; shared by the commands that rewrite (flatten it
/// into their options and call [`RewriteFlags::options`]).
#[derive(Debug, Clone, Args)]
pub struct RewriteFlags {
    /// Add LIMIT N to a query that has no LIMIT, LIMIT ALL or FETCH of its own (at most
    /// PostgreSQL's bigint)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub limit: u64,

    /// Add no LIMIT
    #[arg(long, conflicts_with = "limit")]
    pub no_limit: bool,

    /// Add ORDER BY this column (and direction) to a query that has no ORDER BY,
    /// where the column provably resolves
    #[arg(long, value_name = "COLUMN [ASC|DESC]", default_value = DEFAULT_ORDER_BY,
          value_parser = clap::value_parser!(OrderBy))]
    pub order_by: OrderBy,

    /// Add no ORDER BY
    #[arg(long, conflicts_with = "order_by")]
    pub no_order_by: bool,
}

impl RewriteFlags {
    /// The rewrite options these flags ask for.
    pub fn options(&self) -> RewriteOptions {
        RewriteOptions {
            limit: (!self.no_limit).then_some(self.limit),
            order_by: (!self.no_order_by).then(|| self.order_by.clone()),
        }
    }
}
