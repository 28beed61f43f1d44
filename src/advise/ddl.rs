//! How a recommendation is written down: its index name, the statements
//! that build it safely, and the spec `perfaudit indexes --spec` reads.
//! Pure.

use std::collections::HashSet;

use serde::Serialize;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN
/// - 1); a truncated name would not be the name we print, so names are kept
///   within it.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A table or index in a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualified {
    /// The schema.
    pub schema: String,
    /// The relation's name.
    pub name: String,
}

impl Qualified {
    /// `"schema"."name"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

/// One table of a partition tree, for building an index on every level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The table.
    pub table: Qualified,
    /// Its parent, by index into the tree; `None` for the root.
    pub parent: Option<usize>,
    /// Whether it holds rows (a leaf) rather than partitions.
    pub leaf: bool,
}

/// An identifier in double quotes, embedded quotes doubled: always valid
/// SQL, whatever the name holds.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `idx_<table>_<columns>`, kept within [`MAX_IDENTIFIER_BYTES`] (a short
/// hash of the full name replaces what is cut), and made unique against
/// `taken` with a numeric suffix.
pub fn index_name(table: &str, columns: &[String], taken: &HashSet<String>) -> String {
    let base = fit(&format!("idx_{table}_{}", columns.join("_")), 0);
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            format!("{}{suffix}", fit(&base, suffix.len()))
        })
        .find(|name| !taken.contains(name))
        .expect("some suffix is free")
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

/// The key list: `("a", "b")`.
fn key(columns: &[String]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!("({})", quoted.join(", "))
}

/// `CREATE INDEX ON "schema"."table" USING btree (...)`: the statement
/// HypoPG takes to create a hypothetical index.
pub fn hypothetical(table: &Qualified, columns: &[String]) -> String {
    format!(
        "CREATE INDEX ON {} USING btree {}",
        table.quoted(),
        key(columns)
    )
}

/// `CREATE INDEX CONCURRENTLY "name" ON "schema"."table" USING btree (...);`
/// — it builds without blocking writes.
pub fn create_concurrently(table: &Qualified, name: &str, columns: &[String]) -> String {
    format!(
        "CREATE INDEX CONCURRENTLY {} ON {} USING btree {};",
        quote(name),
        table.quoted(),
        key(columns)
    )
}

/// The statements that build an index on a partitioned table without
/// blocking writes: CONCURRENTLY is not supported on a partitioned table,
/// so the partitioned levels get an index `ON ONLY` themselves (instant,
/// invalid until complete), each leaf is built concurrently, and the leaf
/// indexes are attached bottom-up, which makes the parents valid. `tree[0]`
/// is the root; `names[i]` is the index name for `tree[i]`.
pub fn create_partitioned(tree: &[Partition], names: &[String], columns: &[String]) -> String {
    let mut statements = Vec::new();
    for (partition, name) in tree.iter().zip(names) {
        statements.push(if partition.leaf {
            create_concurrently(&partition.table, name, columns)
        } else {
            format!(
                "CREATE INDEX {} ON ONLY {} USING btree {};",
                quote(name),
                partition.table.quoted(),
                key(columns)
            )
        });
    }
    let depth = |mut i: usize| {
        let mut depth = 0;
        while let Some(parent) = tree[i].parent {
            depth += 1;
            i = parent;
        }
        depth
    };
    let mut children: Vec<usize> = (0..tree.len())
        .filter(|&i| tree[i].parent.is_some())
        .collect();
    children.sort_by_key(|&i| std::cmp::Reverse(depth(i)));
    for child in children {
        let parent = tree[child].parent.expect("children have a parent");
        let index = |i: usize| Qualified {
            schema: tree[i].table.schema.clone(),
            name: names[i].clone(),
        };
        statements.push(format!(
            "ALTER INDEX {} ATTACH PARTITION {};",
            index(parent).quoted(),
            index(child).quoted()
        ));
    }
    statements.join("\n")
}

/// One index of a spec file.
#[derive(Debug, Serialize)]
pub struct SpecIndex<'a> {
    /// The index name.
    pub name: &'a str,
    /// The table as written in SQL (schema-qualified, quoted where needed).
    pub table: &'a str,
    /// The key columns, in order.
    pub columns: &'a [String],
}

/// A spec file for `perfaudit indexes --spec`, one `[[index]]` each.
pub fn spec(indexes: &[SpecIndex<'_>]) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        index: &'a [SpecIndex<'a>],
    }
    let body = toml::to_string(&File { index: indexes }).expect("a spec always serializes");
    format!(
        "# Indexes recommended by `perfaudit advise`, each proven with a hypothetical\n\
         # index (HypoPG). Build them safely with: perfaudit indexes --spec FILE\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn table(schema: &str, name: &str) -> Qualified {
        Qualified {
            schema: schema.into(),
            name: name.into(),
        }
    }

    #[test]
    fn names_are_derived_bounded_and_unique() {
        let none = HashSet::new();
        assert_eq!(
            index_name("payments", &columns(&["user_id", "status"]), &none),
            "idx_payments_user_id_status"
        );
        let long = index_name(&"t".repeat(80), &columns(&["é"]), &none);
        assert!(long.len() <= MAX_IDENTIFIER_BYTES, "{long}");
        assert!(long.starts_with("idx_ttt"));
        assert_ne!(long, index_name(&"t".repeat(81), &columns(&["é"]), &none));
        let taken: HashSet<String> = ["idx_payments_status".to_string()].into();
        assert_eq!(
            index_name("payments", &columns(&["status"]), &taken),
            "idx_payments_status_2"
        );
    }

    #[test]
    fn ddl_quotes_every_identifier() {
        assert_eq!(
            create_concurrently(
                &table("Sales", "Order \"Lines\""),
                "idx_x",
                &columns(&["Customer Id", "status"])
            ),
            "CREATE INDEX CONCURRENTLY \"idx_x\" ON \"Sales\".\"Order \"\"Lines\"\"\" \
             USING btree (\"Customer Id\", \"status\");"
        );
    }

    #[test]
    fn partitioned_tables_build_leaves_concurrently_and_attach_bottom_up() {
        let tree = [
            Partition {
                table: table("public", "events"),
                parent: None,
                leaf: false,
            },
            Partition {
                table: table("public", "events_2024"),
                parent: Some(0),
                leaf: false,
            },
            Partition {
                table: table("public", "events_2024_01"),
                parent: Some(1),
                leaf: true,
            },
            Partition {
                table: table("public", "events_2025"),
                parent: Some(0),
                leaf: true,
            },
        ];
        let names = columns(&["i", "i24", "i2401", "i25"]);
        assert_eq!(
            create_partitioned(&tree, &names, &columns(&["k"])),
            "CREATE INDEX \"i\" ON ONLY \"public\".\"events\" USING btree (\"k\");\n\
             CREATE INDEX \"i24\" ON ONLY \"public\".\"events_2024\" USING btree (\"k\");\n\
             CREATE INDEX CONCURRENTLY \"i2401\" ON \"public\".\"events_2024_01\" USING btree (\"k\");\n\
             CREATE INDEX CONCURRENTLY \"i25\" ON \"public\".\"events_2025\" USING btree (\"k\");\n\
             ALTER INDEX \"public\".\"i24\" ATTACH PARTITION \"public\".\"i2401\";\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i24\";\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i25\";"
        );
    }

    #[test]
    fn the_spec_is_toml_with_one_entry_per_index() {
        let cols = columns(&["user_id", "status"]);
        let text = spec(&[SpecIndex {
            name: "idx_payments_user_id_status",
            table: "public.payments",
            columns: &cols,
        }]);
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let index = &parsed["index"][0];
        assert_eq!(index["name"].as_str(), Some("idx_payments_user_id_status"));
        assert_eq!(index["table"].as_str(), Some("public.payments"));
        assert_eq!(index["columns"].as_array().unwrap().len(), 2, "{text}");
    }
}
