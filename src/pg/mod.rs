//! What perfaudit knows about PostgreSQL itself, shared by every command.
//!
//! - [`catalog`]: relations, their kinds, partitions and indexes;
//! - [`plan`]: the plan model, read from `EXPLAIN (FORMAT JSON)`;
//! - [`node_tree`]: the objects a query refers to, read off the server's
//!   own parse tree.

pub mod catalog;
pub mod node_tree;
pub mod plan;
