//! The commands: each file glues input, the library modules and the report
//! together for one subcommand.

pub mod advise;
pub mod explain;
pub mod indexes;
pub mod rewrite;
