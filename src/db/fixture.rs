//! The payments fixture (`fixtures/*.sql`), embedded in the binary so that
//! `cargo install` users have it too.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::errors::query_error;
use crate::error::Result;

/// The `users` and `payments` tables, without secondary indexes.
pub const SCHEMA_SQL: &str = include_str!("../../fixtures/schema.sql");
/// The generator of realistic data; reads the row count from `perfaudit.rows`.
pub const SEED_SQL: &str = include_str!("../../fixtures/seed.sql");

/// The columns of the fixture's `payments` table and their types, as
/// `format_type` writes them. A `payments` table with exactly these (in
/// any order) is the fixture's, on which `perfaudit indexes` builds its
/// default indexes unasked: a table of that name with other columns is
/// someone else's, whose indexes are theirs to choose.
pub const PAYMENTS_COLUMNS: [(&str, &str); 10] = [
    ("id", "bigint"),
    ("user_id", "bigint"),
    ("amount", "numeric(12,2)"),
    ("currency", "character(3)"),
    ("status", "text"),
    ("method", "text"),
    ("external_ref", "uuid"),
    ("description", "text"),
    ("created_at", "timestamp with time zone"),
    ("updated_at", "timestamp with time zone"),
];

/// Creates the fixture's tables and fills them with `rows` payments, all on
/// the server, then analyzes them.
pub async fn load(client: &Client, rows: u64) -> Result<()> {
    client
        .batch_execute(SCHEMA_SQL)
        .await
        .map_err(|e| query_error("creating the payments schema", &e))?;
    client
        .execute_typed(
            "SELECT set_config('perfaudit.rows', $1, false)",
            &[(&rows.to_string(), Type::TEXT)],
        )
        .await
        .map_err(|e| query_error("seeding payments", &e))?;
    client
        .batch_execute(SEED_SQL)
        .await
        .map_err(|e| query_error("seeding payments", &e))
}
