//! perfaudit: a PostgreSQL performance auditor.
//!
//! The binary is a thin shell over this library: [`cli`] defines the command
//! line, [`app::run`] dispatches it to a [`commands`] file, which turns
//! options into one engine call ([`explain`], [`advise`], [`indexes`],
//! [`rewrite`]) and hands the result to [`report`]. docs/ARCHITECTURE.md
//! draws the map.

pub mod advise;
pub mod app;
pub mod cli;
pub mod commands;
pub mod context;
pub mod db;
pub mod error;
pub mod explain;
pub mod finding;
pub mod guard;
pub mod indexes;
pub mod input;
pub mod interrupt;
pub mod pg;
pub mod report;
pub mod rewrite;
pub mod signal;
pub mod sql;
pub mod text;
pub mod ui;

pub use error::{Error, Result};
