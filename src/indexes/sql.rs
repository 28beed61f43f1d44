//! The SQL perfaudit sends to build indexes, made from spec and catalog
//! data: every identifier quoted, every expression parenthesized, so that no
//! name can change what a statement does.

use std::time::Duration;

use super::spec::{DEFAULT_METHOD, IndexSpec, Key, KeyOptions, MAX_IDENTIFIER_BYTES, Nulls, Order};
use crate::sql::ident::{QualifiedName, quote};

/// How an index is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `CREATE INDEX CONCURRENTLY`: writes go on during the build.
    Concurrently,
    /// `CREATE INDEX`: writes wait for the build (SHARE lock).
    Plain,
    /// `CREATE INDEX ... ON ONLY`: an empty, invalid index on a partitioned
    /// table, valid once an index of every partition is attached.
    OnlyParent,
}

/// `"a", (lower(b)) "text_pattern_ops"`: an index key as `CREATE INDEX`
/// takes it, each column quoted, each expression in parentheses, each
/// with its `options` (the defaults where there are fewer).
pub fn key_list(keys: &[Key], options: &[KeyOptions]) -> String {
    keys.iter()
        .enumerate()
        .map(|(k, key)| key_sql(key, options.get(k).unwrap_or(&KeyOptions::default())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One key with its options, in the order `CREATE INDEX` takes them:
/// `"email" COLLATE "C" "text_pattern_ops" DESC NULLS FIRST`.
fn key_sql(key: &Key, options: &KeyOptions) -> String {
    let mut sql = match key {
        Key::Column(column) => quote(column),
        Key::Expression(expression) => format!("({expression})"),
    };
    if let Some(collation) = &options.collation {
        sql.push_str(&format!(" COLLATE {}", quote(collation)));
    }
    if let Some(opclass) = &options.opclass {
        sql.push_str(&format!(" {}", quote(opclass)));
    }
    match options.order {
        Some(Order::Asc) => sql.push_str(" ASC"),
        Some(Order::Desc) => sql.push_str(" DESC"),
        None => {}
    }
    match options.nulls {
        Some(Nulls::First) => sql.push_str(" NULLS FIRST"),
        Some(Nulls::Last) => sql.push_str(" NULLS LAST"),
        None => {}
    }
    sql
}

/// `CREATE INDEX` for `index` under `name` on `table`.
pub fn create_index(index: &IndexSpec, name: &str, table: &QualifiedName, build: Build) -> String {
    let mut sql = String::from("CREATE ");
    if index.unique {
        sql.push_str("UNIQUE ");
    }
    sql.push_str("INDEX ");
    if build == Build::Concurrently {
        sql.push_str("CONCURRENTLY ");
    }
    sql.push_str(&quote(name));
    sql.push_str(" ON ");
    if build == Build::OnlyParent {
        sql.push_str("ONLY ");
    }
    sql.push_str(&table.to_string());
    if index.method != DEFAULT_METHOD {
        sql.push_str(" USING ");
        sql.push_str(&quote(&index.method));
    }
    let keys: Vec<String> = index
        .key_parts()
        .map(|(key, options)| key_sql(key, options))
        .collect();
    sql.push_str(&format!(" ({})", keys.join(", ")));
    if !index.include.is_empty() {
        let include: Vec<String> = index.include.iter().map(|c| quote(c)).collect();
        sql.push_str(&format!(" INCLUDE ({})", include.join(", ")));
    }
    if let Some(fillfactor) = index.storage.fillfactor {
        sql.push_str(&format!(" WITH (fillfactor = {fillfactor})"));
    }
    if let Some(tablespace) = &index.storage.tablespace {
        sql.push_str(&format!(" TABLESPACE {}", quote(tablespace)));
    }
    if let Some(predicate) = &index.predicate {
        sql.push_str(&format!(" WHERE ({predicate})"));
    }
    sql
}

/// `DROP INDEX`, concurrently (no lock that blocks reads or writes) when
/// asked; PostgreSQL cannot drop a partitioned index concurrently.
pub fn drop_index(index: &QualifiedName, concurrently: bool) -> String {
    if concurrently {
        format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")
    } else {
        format!("DROP INDEX IF EXISTS {index}")
    }
}

/// `REINDEX INDEX CONCURRENTLY`: a new copy is built beside the old one
/// and takes its place, while reads and writes go on.
pub fn reindex_index(index: &QualifiedName) -> String {
    format!("REINDEX INDEX CONCURRENTLY {index}")
}

/// Attaches a partition's index to its parent's index.
pub fn attach_partition(parent: &QualifiedName, child: &QualifiedName) -> String {
    format!("ALTER INDEX {parent} ATTACH PARTITION {child}")
}

/// A timeout setting (`lock_timeout`) in milliseconds, never rounded down
/// to 0, which PostgreSQL reads as no timeout at all.
pub fn milliseconds(timeout: Duration) -> u128 {
    match timeout.as_millis() {
        0 if !timeout.is_zero() => 1,
        ms => ms,
    }
}

/// `ANALYZE` of one table.
pub fn analyze(table: &QualifiedName) -> String {
    format!("ANALYZE {table}")
}

/// The name of index `index`'s part on the `ordinal`-th partition (from 1):
/// `<index>_<ordinal>`, the index name shortened so that the whole fits
/// PostgreSQL's identifier length.
pub fn partition_index_name(index: &str, ordinal: usize) -> String {
    let suffix = format!("_{ordinal}");
    let mut end = index.len().min(MAX_IDENTIFIER_BYTES - suffix.len());
    while !index.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &index[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(keys: Vec<Key>) -> IndexSpec {
        IndexSpec::btree("ignored", "ignored", keys, None)
    }

    #[test]
    fn create_index_statements() {
        let table = QualifiedName::new("public", "payments");
        let plain = spec(vec![
            Key::Column("user_id".into()),
            Key::Column("status".into()),
        ]);
        assert_eq!(
            create_index(&plain, "idx", &table, Build::Concurrently),
            r#"CREATE INDEX CONCURRENTLY "idx" ON "public"."payments" ("user_id", "status")"#
        );
        assert_eq!(
            create_index(&plain, "idx", &table, Build::Plain),
            r#"CREATE INDEX "idx" ON "public"."payments" ("user_id", "status")"#
        );
        let full = IndexSpec {
            unique: true,
            method: "hash".into(),
            predicate: Some("status = 'pending'".into()),
            include: vec!["amount".into()],
            ..spec(vec![Key::Expression("lower(description)".into())])
        };
        assert_eq!(
            create_index(&full, "Odd \"One\"", &table, Build::OnlyParent),
            r#"CREATE UNIQUE INDEX "Odd ""One""" ON ONLY "public"."payments" USING "hash" ((lower(description))) INCLUDE ("amount") WHERE (status = 'pending')"#
        );
        let options = IndexSpec {
            key_options: vec![
                KeyOptions {
                    collation: Some("C".into()),
                    opclass: Some("text_pattern_ops".into()),
                    order: Some(Order::Desc),
                    nulls: Some(Nulls::First),
                },
                KeyOptions {
                    order: Some(Order::Asc),
                    nulls: Some(Nulls::Last),
                    ..KeyOptions::default()
                },
            ],
            storage: crate::pg::catalog::Storage {
                fillfactor: Some(70),
                tablespace: Some("Fast \"Disk\"".into()),
            },
            predicate: Some("amount > 0".into()),
            ..spec(vec![
                Key::Column("email".into()),
                Key::Expression("lower(x)".into()),
            ])
        };
        assert_eq!(
            create_index(&options, "i", &table, Build::Concurrently),
            r#"CREATE INDEX CONCURRENTLY "i" ON "public"."payments" ("email" COLLATE "C" "text_pattern_ops" DESC NULLS FIRST, (lower(x)) ASC NULLS LAST) WITH (fillfactor = 70) TABLESPACE "Fast ""Disk""" WHERE (amount > 0)"#
        );
    }

    #[test]
    fn other_statements() {
        let index = QualifiedName::new("s", "i");
        assert_eq!(
            drop_index(&index, true),
            r#"DROP INDEX CONCURRENTLY IF EXISTS "s"."i""#
        );
        assert_eq!(drop_index(&index, false), r#"DROP INDEX IF EXISTS "s"."i""#);
        assert_eq!(
            attach_partition(&index, &QualifiedName::new("s", "i_1")),
            r#"ALTER INDEX "s"."i" ATTACH PARTITION "s"."i_1""#
        );
        assert_eq!(analyze(&index), r#"ANALYZE "s"."i""#);
    }

    #[test]
    fn timeouts_never_round_down_to_no_timeout() {
        assert_eq!(milliseconds(Duration::from_secs(5)), 5000);
        assert_eq!(milliseconds(Duration::from_micros(10)), 1);
        assert_eq!(milliseconds(Duration::ZERO), 0);
    }

    #[test]
    fn partition_index_names_fit_the_identifier_length() {
        assert_eq!(partition_index_name("idx_events_at", 3), "idx_events_at_3");
        let long = "é".repeat(40); // 80 bytes
        let name = partition_index_name(&long, 12);
        assert!(
            name.len() <= MAX_IDENTIFIER_BYTES && name.ends_with("_12"),
            "{name}"
        );
    }
}
