//! How a recommended index is written down — its name and the statements
//! that build it — for advise's recommendations and explain's findings.
//! The statements are the ones `perfaudit indexes` itself runs (its
//! planner writes them), so advice and build never disagree. Pure.

use super::plan::build_statements;
use super::spec::{DEFAULT_METHOD, IndexSpec, Key, MAX_IDENTIFIER_BYTES};
use super::sql::partition_index_name;
use crate::pg::catalog::{Table, Taken};
use crate::sql::ident::{QualifiedName, quote};

/// The share of a statement's estimated cost, in percent, an index must
/// save to be recommended: it must halve it. Smaller savings rarely
/// outweigh what an index costs every write. advise's default
/// `--min-improvement`, and explain's rule for the indexes it proves.
pub const MIN_IMPROVEMENT: f64 = 50.0;

/// `idx_<table>_<columns>`, kept within [`MAX_IDENTIFIER_BYTES`] (a short
/// hash of the full name replaces what is cut), and made unique with a
/// numeric suffix: `free` says whether a name may be used.
pub fn index_name(table: &str, columns: &[String], free: impl Fn(&str) -> bool) -> String {
    let base = fit(&format!("idx_{table}_{}", columns.join("_")), 0);
    if free(&base) {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            format!("{}{suffix}", fit(&base, suffix.len()))
        })
        .find(|name| free(name))
        .expect("some suffix is free")
}

/// The [`index_name`] for an index of `columns` on `table`, clear of every
/// name `taken` in its schema, and its parts' names (on a partitioned
/// table) clear in theirs.
pub fn free_name(table: &Table, columns: &[String], taken: &Taken) -> String {
    let is_free = |name: &QualifiedName| {
        !taken
            .get(&name.schema)
            .is_some_and(|names| names.contains(&name.name))
    };
    index_name(&table.name.name, columns, |name| {
        is_free(&QualifiedName::new(&table.name.schema, name))
            && partition_names(name, table).iter().all(is_free)
    })
}

/// The names an index called `name` gives its parts on a partitioned
/// table's partitions (none for a plain table), as `perfaudit indexes`
/// names them.
pub fn partition_names(name: &str, table: &Table) -> Vec<QualifiedName> {
    (1..=table.partitions.len())
        .zip(&table.partitions)
        .map(|(n, partition)| {
            QualifiedName::new(&partition.name.schema, partition_index_name(name, n))
        })
        .collect()
}

/// `name` within the identifier limit less `reserve` bytes.
fn fit(name: &str, reserve: usize) -> String {
    let limit = MAX_IDENTIFIER_BYTES - reserve;
    if name.len() <= limit {
        return name.to_owned();
    }
    let hash = format!("_{:08x}", fnv1a(name));
    let mut cut = limit - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &name[..cut])
}

/// FNV-1a, 32 bits: a stable short fingerprint for shortened names.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// `CREATE INDEX ON "schema"."table" USING btree ("a", "b")`: the statement
/// HypoPG takes to create a hypothetical index.
pub fn hypothetical(table: &QualifiedName, columns: &[String]) -> String {
    let key: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "CREATE INDEX ON {table} USING {DEFAULT_METHOD} ({})",
        key.join(", ")
    )
}

/// The statements, one per line, that build B-tree `name` on `table`
/// without blocking writes, exactly as `perfaudit indexes` runs them:
/// `CREATE INDEX CONCURRENTLY`; on a partitioned table, where that is not
/// supported, an index `ON ONLY` each partitioned level, each partition's
/// built concurrently and attached.
pub fn build(table: &Table, name: &str, columns: &[String]) -> String {
    let spec = IndexSpec {
        name: name.to_owned(),
        table: table.name.display(),
        keys: columns.iter().cloned().map(Key::Column).collect(),
        unique: false,
        method: DEFAULT_METHOD.to_owned(),
        predicate: None,
        include: Vec::new(),
    };
    let index = QualifiedName::new(&table.name.schema, name);
    build_statements(&spec, &index, table, true)
        .iter()
        .map(|statement| format!("{};", statement.sql))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::{Partition, RelKind};

    fn columns(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn table(name: &str, kind: RelKind, partitions: Vec<Partition>) -> Table {
        Table {
            oid: 1,
            name: QualifiedName::new("public", name),
            kind,
            columns: Vec::new(),
            partitions,
        }
    }

    #[test]
    fn names_are_derived_bounded_and_unique() {
        let any = |_: &str| true;
        assert_eq!(
            index_name("payments", &columns(&["user_id", "status"]), any),
            "idx_payments_user_id_status"
        );
        let long = index_name(&"t".repeat(80), &columns(&["é"]), any);
        assert!(long.len() <= MAX_IDENTIFIER_BYTES, "{long}");
        assert!(long.starts_with("idx_ttt"));
        assert_ne!(long, index_name(&"t".repeat(81), &columns(&["é"]), any));
        assert_eq!(
            index_name("payments", &columns(&["status"]), |n| n
                != "idx_payments_status"),
            "idx_payments_status_2"
        );
    }

    #[test]
    fn a_free_name_is_clear_in_the_tables_and_the_partitions_schemas() {
        let taken = |pairs: &[(&str, &str)]| {
            let mut taken = Taken::new();
            for (schema, name) in pairs {
                taken
                    .entry(schema.to_string())
                    .or_default()
                    .insert(name.to_string());
            }
            taken
        };
        let plain = table("payments", RelKind::Table, Vec::new());
        let key = columns(&["user_id"]);
        assert_eq!(
            free_name(&plain, &key, &taken(&[("other", "idx_payments_user_id")])),
            "idx_payments_user_id"
        );
        assert_eq!(
            free_name(&plain, &key, &taken(&[("public", "idx_payments_user_id")])),
            "idx_payments_user_id_2"
        );
        let partitioned = table(
            "payments",
            RelKind::Partitioned,
            vec![Partition {
                oid: 2,
                name: QualifiedName::new("archive", "payments_2024"),
                parent: 1,
                leaf: true,
            }],
        );
        assert_eq!(
            free_name(
                &partitioned,
                &key,
                &taken(&[("archive", "idx_payments_user_id_1")])
            ),
            "idx_payments_user_id_2"
        );
    }

    #[test]
    fn ddl_quotes_every_identifier() {
        let odd = Table {
            name: QualifiedName::new("Sales", "Order \"Lines\""),
            ..table("x", RelKind::Table, Vec::new())
        };
        assert_eq!(
            build(&odd, "idx_x", &columns(&["Customer Id", "status"])),
            "CREATE INDEX CONCURRENTLY \"idx_x\" ON \"Sales\".\"Order \"\"Lines\"\"\" \
             (\"Customer Id\", \"status\");"
        );
    }

    #[test]
    fn the_hypothetical_index_quotes_every_identifier() {
        let odd = QualifiedName::new("Sales", "Order \"Lines\"");
        assert_eq!(
            hypothetical(&odd, &columns(&["a"])),
            "CREATE INDEX ON \"Sales\".\"Order \"\"Lines\"\"\" USING btree (\"a\")"
        );
    }

    #[test]
    fn partitioned_tables_build_each_partition_concurrently_and_attach_it() {
        let partition = |oid: u32, name: &str, parent: u32, leaf: bool| Partition {
            oid,
            name: QualifiedName::new("public", name),
            parent,
            leaf,
        };
        let events = table(
            "events",
            RelKind::Partitioned,
            vec![
                partition(2, "events_2024", 1, false),
                partition(3, "events_2025", 1, true),
                partition(4, "events_2024_01", 2, true),
            ],
        );
        assert_eq!(
            partition_names("i", &events),
            [
                QualifiedName::new("public", "i_1"),
                QualifiedName::new("public", "i_2"),
                QualifiedName::new("public", "i_3"),
            ]
        );
        assert_eq!(
            build(&events, "i", &columns(&["k"])),
            "CREATE INDEX \"i\" ON ONLY \"public\".\"events\" (\"k\");\n\
             CREATE INDEX \"i_1\" ON ONLY \"public\".\"events_2024\" (\"k\");\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i_1\";\n\
             CREATE INDEX CONCURRENTLY \"i_2\" ON \"public\".\"events_2025\" (\"k\");\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i_2\";\n\
             CREATE INDEX CONCURRENTLY \"i_3\" ON \"public\".\"events_2024_01\" (\"k\");\n\
             ALTER INDEX \"public\".\"i_1\" ATTACH PARTITION \"public\".\"i_3\";"
        );
    }
}
