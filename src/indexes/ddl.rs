//! How a recommended index is written down — its name and the statements
//! that build it — for advise's recommendations and explain's findings.
//! The statements are the ones `perfaudit indexes` itself runs (its
//! planner writes them), so advice and build never disagree. Pure.

use super::partitions;
use super::plan::build_statements;
use super::spec::{DEFAULT_METHOD, IndexSpec, Key, KeyOptions, MAX_IDENTIFIER_BYTES, Order};
use super::sql::{key_list, partition_index_name};
use crate::pg::catalog::{Shape, Table, Taken};
use crate::sql::ident::QualifiedName;
use crate::text::words;

/// The share of a statement's estimated cost, in percent, an index must
/// save to be recommended: it must halve it. Smaller savings rarely
/// outweigh what an index costs every write. advise's default
/// `--min-improvement`, and explain's rule for the indexes it proves.
pub const MIN_IMPROVEMENT: f64 = 50.0;

/// The B-tree index advise or explain asks for: its key (columns or
/// expressions of them, each with its operator class when not the
/// default) and, for a partial index, its predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The key, in order.
    pub keys: Vec<Key>,
    /// Each key's operator class, in the order of `keys`; `None` for its
    /// type's default.
    pub opclasses: Vec<Option<String>>,
    /// Whether each key sorts descending (`DESC`, NULLs first, as `DESC`
    /// places them), in the order of `keys`: for an `ORDER BY` of mixed
    /// directions.
    pub descending: Vec<bool>,
    /// The predicate of a partial index, in SQL over the table's columns.
    pub predicate: Option<String>,
}

impl Wanted {
    /// An index on `keys`, under `predicate` when it is partial, each key
    /// with its type's default operator class.
    pub fn new(keys: Vec<Key>, predicate: Option<String>) -> Wanted {
        Wanted {
            opclasses: vec![None; keys.len()],
            descending: vec![false; keys.len()],
            keys,
            predicate,
        }
    }

    /// A full index on `columns`.
    pub fn columns(columns: &[String]) -> Wanted {
        Wanted::new(columns.iter().cloned().map(Key::Column).collect(), None)
    }

    /// Each key as people read it: a column's name, an expression's text,
    /// then its options where they are not the default (`last_name
    /// text_pattern_ops`, `created_at DESC`).
    pub fn key_texts(&self) -> Vec<String> {
        self.keys
            .iter()
            .enumerate()
            .map(|(k, key)| match self.options_text(k) {
                options if options.is_empty() => key.text().to_owned(),
                options => format!("{} {options}", key.text()),
            })
            .collect()
    }

    /// Key `k`'s options as the server writes them (`text_pattern_ops
    /// DESC`), empty for the defaults.
    fn options_text(&self, k: usize) -> String {
        let opclass = self.opclasses.get(k).cloned().flatten();
        let order = self
            .descending
            .get(k)
            .is_some_and(|d| *d)
            .then(|| "DESC".to_owned());
        [opclass, order]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Each key's options as `CREATE INDEX` takes them.
    pub fn key_options(&self) -> Vec<KeyOptions> {
        (0..self.keys.len())
            .map(|k| KeyOptions {
                opclass: self.opclasses.get(k).cloned().flatten(),
                order: self
                    .descending
                    .get(k)
                    .is_some_and(|d| *d)
                    .then_some(Order::Desc),
                ..KeyOptions::default()
            })
            .collect()
    }

    /// Whether every key has its defaults (no operator class, ascending).
    pub fn plain_keys(&self) -> bool {
        (0..self.keys.len()).all(|k| self.options_text(k).is_empty())
    }

    /// Whether its key or predicate reads `column`: a key column, or a
    /// word of an expression or the predicate (a column named like a
    /// function counts too, which only makes an index look dearer).
    pub fn reads(&self, column: &str) -> bool {
        self.keys.iter().any(|key| match key {
            Key::Column(name) => name == column,
            Key::Expression(expression) => words(expression).any(|w| w == column),
        }) || self
            .predicate
            .as_deref()
            .is_some_and(|predicate| words(predicate).any(|w| w == column))
    }

    /// `(a, lower(b)) WHERE c IS NULL`, for messages.
    pub fn describe(&self) -> String {
        let key = format!("({})", self.key_texts().join(", "));
        match &self.predicate {
            Some(predicate) => format!("{key} WHERE {predicate}"),
            None => key,
        }
    }

    /// Whether an index of `shape` is this one as `CREATE INDEX` builds it:
    /// a B-tree, not unique, with no `INCLUDE` columns, whose keys are the
    /// same columns or expressions, each plain (the default operator
    /// class, collation and order), and the same predicate. Expressions
    /// and predicates are compared as written, which the server's writing
    /// of them (`status = 'open'::text`) may not match: such an index is
    /// missed, never mistaken.
    pub fn is(&self, shape: &Shape) -> bool {
        let same_text = |server: &str, written: &str| unwrap_sql(server) == unwrap_sql(written);
        shape.method == DEFAULT_METHOD
            && !shape.unique
            && shape.include.is_empty()
            && shape.keys.len() == self.keys.len()
            && shape.keys.iter().zip(&self.keys).zip(&self.opclasses).all(
                |((have, want), opclass)| {
                    let options = match opclass {
                        Some(opclass) => have.options == *opclass,
                        None => have.is_plain(),
                    };
                    options
                        && match want {
                            Key::Column(column) => have.column.as_ref() == Some(column),
                            Key::Expression(expression) => {
                                have.column.is_none() && same_text(&have.definition, expression)
                            }
                        }
                },
            )
            && match (&shape.predicate, &self.predicate) {
                (None, None) => true,
                (Some(have), Some(want)) => same_text(have, want),
                _ => false,
            }
    }

    /// The words an index name is made of: each column's name, an
    /// expression's identifiers and literals (`lower(email)`: `lower`,
    /// `email`), each followed by its options' (`text_pattern_ops`,
    /// `desc`), then `where` and the predicate's.
    fn name_words(&self) -> Vec<String> {
        let mut name: Vec<String> = Vec::new();
        for (k, key) in self.keys.iter().enumerate() {
            match key {
                Key::Column(column) => name.push(column.clone()),
                Key::Expression(expression) => name.extend(words(expression)),
            }
            name.extend(words(&self.options_text(k)));
        }
        if let Some(predicate) = &self.predicate {
            name.push("where".to_owned());
            name.extend(words(predicate));
        }
        name
    }
}

/// `text` without the white space and parentheses around it.
fn unwrap_sql(text: &str) -> &str {
    let text = text.trim();
    match text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        // `(a) + (b)` is not wrapped: its first parenthesis closes early.
        Some(inner) if balanced(inner) => unwrap_sql(inner),
        _ => text,
    }
}

/// Whether no `)` in `text` closes more than it opened (quotes aside,
/// which is enough to tell `(a) + (b)` from `(a + b)`).
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    text.chars().all(|c| {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        depth >= 0
    }) && depth == 0
}

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

/// The [`index_name`] for the index `wanted` on `table`, clear of every
/// name `taken` in its schema, and its parts' names (on a partitioned
/// table) clear in theirs.
pub fn free_name(table: &Table, wanted: &Wanted, taken: &Taken) -> String {
    let is_free = |name: &QualifiedName| {
        !taken
            .get(&name.schema)
            .is_some_and(|names| names.contains(&name.name))
    };
    index_name(&table.name.name, &wanted.name_words(), |name| {
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

/// `CREATE INDEX ON "schema"."table" USING btree ("a", (lower(b))) WHERE
/// ...`: the statement HypoPG takes to create a hypothetical index.
pub fn hypothetical(table: &QualifiedName, wanted: &Wanted) -> String {
    let mut sql = format!(
        "CREATE INDEX ON {table} USING {DEFAULT_METHOD} ({})",
        key_list(&wanted.keys, &wanted.key_options())
    );
    if let Some(predicate) = &wanted.predicate {
        sql.push_str(&format!(" WHERE ({predicate})"));
    }
    sql
}

/// The statements, one per line, that build B-tree `name` on `table`
/// without blocking writes, exactly as `perfaudit indexes` runs them:
/// `CREATE INDEX CONCURRENTLY`; on a partitioned table, where that is not
/// supported, an index `ON ONLY` each partitioned level, each partition's
/// built concurrently and attached, or, where the partition has the same
/// index already ([`Table::partition_indexes`]), that one attached.
pub fn build(table: &Table, name: &str, wanted: &Wanted) -> String {
    let spec = IndexSpec {
        key_options: wanted.key_options(),
        ..IndexSpec::btree(
            name,
            &table.name.display(),
            wanted.keys.clone(),
            wanted.predicate.clone(),
        )
    };
    let index = QualifiedName::new(&table.name.schema, name);
    let parts = partitions::plan(table, None, |index| wanted.is(&index.shape));
    build_statements(&spec, &index, table, &parts, true)
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
            partition_indexes: Vec::new(),
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
        let key = Wanted::columns(&columns(&["user_id"]));
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
            build(
                &odd,
                "idx_x",
                &Wanted::columns(&columns(&["Customer Id", "status"]))
            ),
            "CREATE INDEX CONCURRENTLY \"idx_x\" ON \"Sales\".\"Order \"\"Lines\"\"\" \
             (\"Customer Id\", \"status\");"
        );
    }

    #[test]
    fn the_hypothetical_index_quotes_every_identifier() {
        let odd = QualifiedName::new("Sales", "Order \"Lines\"");
        assert_eq!(
            hypothetical(&odd, &Wanted::columns(&columns(&["a"]))),
            "CREATE INDEX ON \"Sales\".\"Order \"\"Lines\"\"\" USING btree (\"a\")"
        );
        let partial = Wanted::new(
            vec![
                Key::Expression("lower(email)".into()),
                Key::Column("id".into()),
            ],
            Some("deleted_at IS NULL".into()),
        );
        assert_eq!(
            hypothetical(&odd, &partial),
            "CREATE INDEX ON \"Sales\".\"Order \"\"Lines\"\"\" USING btree \
             ((lower(email)), \"id\") WHERE (deleted_at IS NULL)"
        );
    }

    #[test]
    fn expressions_and_predicates_name_an_index_by_their_words() {
        let partial = Wanted::new(
            vec![
                Key::Expression("lower(email)".into()),
                Key::Column("id".into()),
            ],
            Some("status = 'pending'".into()),
        );
        let users = table("users", RelKind::Table, Vec::new());
        assert_eq!(
            free_name(&users, &partial, &Taken::new()),
            "idx_users_lower_email_id_where_status_pending"
        );
        assert_eq!(
            partial.describe(),
            "(lower(email), id) WHERE status = 'pending'"
        );
        assert_eq!(
            build(&users, "i", &partial),
            "CREATE INDEX CONCURRENTLY \"i\" ON \"public\".\"users\" ((lower(email)), \"id\") \
             WHERE (status = 'pending');"
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
            build(&events, "i", &Wanted::columns(&columns(&["k"]))),
            "CREATE INDEX \"i\" ON ONLY \"public\".\"events\" (\"k\");\n\
             CREATE INDEX \"i_1\" ON ONLY \"public\".\"events_2024\" (\"k\");\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i_1\";\n\
             CREATE INDEX CONCURRENTLY \"i_2\" ON \"public\".\"events_2025\" (\"k\");\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i_2\";\n\
             CREATE INDEX CONCURRENTLY \"i_3\" ON \"public\".\"events_2024_01\" (\"k\");\n\
             ALTER INDEX \"public\".\"i_1\" ATTACH PARTITION \"public\".\"i_3\";"
        );
    }

    #[test]
    fn a_partitions_own_index_of_the_same_key_is_attached_rather_than_built() {
        use crate::pg::catalog::Index;
        let partition = |oid: u32, name: &str| Partition {
            oid,
            name: QualifiedName::new("public", name),
            parent: 1,
            leaf: true,
        };
        let own = |name: &str, table: u32, columns: &[&str]| Index {
            table,
            ..Index::btree(name, columns, None)
        };
        let mut descending = own("events_2025_k_desc", 3, &["k"]);
        descending.shape.keys[0].options = "DESC".into();
        let events = Table {
            partition_indexes: vec![
                own("events_2024_k", 2, &["k"]),
                own("events_2024_k_j", 2, &["k", "j"]),
                descending,
            ],
            ..table(
                "events",
                RelKind::Partitioned,
                vec![partition(2, "events_2024"), partition(3, "events_2025")],
            )
        };
        assert_eq!(
            build(&events, "i", &Wanted::columns(&columns(&["k"]))),
            "CREATE INDEX \"i\" ON ONLY \"public\".\"events\" (\"k\");\n\
             CREATE INDEX CONCURRENTLY \"i_2\" ON \"public\".\"events_2025\" (\"k\");\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"i_2\";\n\
             ALTER INDEX \"public\".\"i\" ATTACH PARTITION \"public\".\"events_2024_k\";"
        );
    }

    #[test]
    fn a_wanted_index_is_an_existing_one_only_with_the_same_plain_keys_and_predicate() {
        use crate::pg::catalog::Index;
        let shape =
            |columns: &[&str], predicate: Option<&str>| Index::btree("x", columns, predicate).shape;
        let wanted = Wanted::columns(&columns(&["a", "b"]));
        assert!(wanted.is(&shape(&["a", "b"], None)));
        assert!(!wanted.is(&shape(&["a"], None)));
        assert!(!wanted.is(&shape(&["b", "a"], None)));
        assert!(!wanted.is(&shape(&["a", "b"], Some("a > 0"))));
        let mut unique = shape(&["a", "b"], None);
        unique.unique = true;
        assert!(!wanted.is(&unique));
        let mut pattern = shape(&["a", "b"], None);
        pattern.keys[1].options = "text_pattern_ops".into();
        assert!(!wanted.is(&pattern));
        let partial = Wanted::new(
            vec![Key::Expression("lower(email)".into())],
            Some("deleted_at IS NULL".into()),
        );
        let mut lower = shape(&["x"], Some("(deleted_at IS NULL)"));
        lower.keys[0].column = None;
        lower.keys[0].definition = "lower(email)".into();
        assert!(
            partial.is(&lower),
            "parentheses around the whole do not count"
        );
        lower.predicate = Some("(deleted_at IS NULL) OR (x)".into());
        assert!(!partial.is(&lower));
        assert_eq!(unwrap_sql(" ((a + b)) "), "a + b");
        assert_eq!(unwrap_sql("(a) + (b)"), "(a) + (b)");
    }
}
