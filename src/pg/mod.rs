//! What perfaudit knows about PostgreSQL itself, shared by every command.
//!
//! - [`node_tree`]: the objects a query refers to, read off the server's
//!   own parse tree.

pub mod node_tree;
