//! The audit's rules on catalog facts made by hand.

use super::*;
use crate::finding::Severity;
use crate::pg::catalog::audit::Writes;
use crate::pg::catalog::{
    Busy, BusyWith, ColumnStats, Constraint, ConstraintKind, KeyShape, RelKind, Shape, Usage,
};
use crate::sql::ident::QualifiedName;

const TABLE: u32 = 100;

fn server() -> Server {
    Server {
        version: 150_004,
        in_recovery: false,
        counting: true,
        stats_reset: Some("2025-01-02T03:04:05Z".into()),
        block_size: 8192,
        maxalign: 8,
    }
}

fn table(oid: u32, name: &str, parent: Option<u32>, kind: RelKind) -> AuditedTable {
    AuditedTable {
        oid,
        name: QualifiedName::new("public", name),
        kind,
        parent,
        pages: 1000,
        rows: 100_000.0,
        writes: Writes {
            inserted: 1000,
            updated: 300,
            hot_updated: 100,
        },
        locked_by: None,
    }
}

/// A valid, scanned B-tree `name` on `columns` of table `on`, backing
/// nothing, of 10 pages.
fn index(oid: u32, on: u32, name: &str, columns: &[&str]) -> Index {
    Index {
        oid,
        attached_to: None,
        storage: Default::default(),
        table: on,
        name: QualifiedName::new("public", name),
        shape: Shape {
            method: "btree".into(),
            unique: false,
            keys: columns
                .iter()
                .map(|c| KeyShape {
                    definition: (*c).into(),
                    opclass: 1978,
                    option: 0,
                    collation: 0,
                    column: Some((*c).into()),
                    options: String::new(),
                })
                .collect(),
            include: Vec::new(),
            predicate: None,
        },
        usable: true,
        backs_constraint: false,
        size_bytes: 10 * 8192,
        busy: None,
        usage: Some(Usage {
            oid,
            partitioned: false,
            parent: None,
            constraints: Vec::new(),
            scans: 5,
            pages: 10,
            tuples: 1000.0,
            fillfactor: 90,
            columns: columns
                .iter()
                .map(|_| {
                    Some(ColumnStats {
                        null_frac: 0.0,
                        avg_width: 4.0,
                        is_name: false,
                    })
                })
                .collect(),
        }),
    }
}

fn with(mut index: Index, change: impl FnOnce(&mut Index, &mut Usage)) -> Index {
    let mut usage = index.usage.take().unwrap();
    change(&mut index, &mut usage);
    index.usage = Some(usage);
    index
}

fn backing(index: Index, kind: ConstraintKind, name: &str) -> Index {
    with(index, |index, usage| {
        index.backs_constraint = true;
        index.shape.unique |= matches!(kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique);
        usage.constraints.push(Constraint {
            name: name.into(),
            kind,
            table: QualifiedName::new("public", "t"),
        })
    })
}

fn facts(tables: Vec<AuditedTable>, indexes: Vec<Index>) -> Facts {
    Facts {
        server: server(),
        tables,
        indexes,
        foreign_keys: Vec::new(),
        taken: Taken::new(),
        locked: Vec::new(),
    }
}

/// Each finding as (code, index, DDL).
fn found(audit: &Audit) -> Vec<(&str, String, Option<String>)> {
    audit
        .findings
        .iter()
        .map(|f| {
            let Subject::Index { index, .. } = &f.subject else {
                panic!("{f:?}")
            };
            (f.code, index.clone(), f.ddl.clone())
        })
        .collect()
}

fn drop_ddl(name: &str) -> Option<String> {
    Some(format!(
        "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"{name}\";"
    ))
}

#[test]
fn of_duplicates_the_one_postgresql_needs_is_kept() {
    let t = || table(TABLE, "t", None, RelKind::Table);
    let audit = audit(&facts(
        vec![t()],
        vec![
            backing(
                index(1, TABLE, "t_pkey", &["id"]),
                ConstraintKind::PrimaryKey,
                "t_pkey",
            ),
            backing(
                index(2, TABLE, "t_id_key", &["id"]),
                ConstraintKind::Unique,
                "t_id_key",
            ),
            index(3, TABLE, "by_id", &["id"]),
            backing(
                index(4, TABLE, "t_email_key", &["email"]),
                ConstraintKind::Unique,
                "t_email_key",
            ),
            with(index(5, TABLE, "email_unique", &["email"]), |i, _| {
                i.shape.unique = true
            }),
            index(6, TABLE, "by_email_name", &["email", "name"]),
            // Unique: it enforces what the longer one does not.
            with(index(7, TABLE, "name_unique", &["name"]), |i, _| {
                i.shape.unique = true
            }),
            index(8, TABLE, "by_name_email", &["name", "email"]),
            // The same as the unique one, which enforces what it does not.
            index(9, TABLE, "by_name", &["name"]),
            index(10, TABLE, "by_x", &["x"]),
            index(11, TABLE, "by_x_y", &["x", "y"]),
        ],
    ));
    assert_eq!(
        found(&audit),
        [
            ("duplicate-index", "by_id".into(), drop_ddl("by_id")),
            ("duplicate-index", "by_name".into(), drop_ddl("by_name")),
            (
                "duplicate-index",
                "email_unique".into(),
                drop_ddl("email_unique")
            ),
            ("duplicate-index", "t_id_key".into(), None),
            ("redundant-index", "by_x".into(), drop_ddl("by_x")),
        ]
    );
    let about = |name: &str| {
        audit
            .findings
            .iter()
            .find(|f| matches!(&f.subject, Subject::Index { index, .. } if index == name))
            .unwrap()
    };
    assert_eq!(
        about("by_id").message,
        "the same index as t_pkey (id); t_pkey is the one to keep: it backs the PRIMARY KEY \
         constraint t_pkey, and PostgreSQL drops no index a constraint needs"
    );
    assert_eq!(
        about("by_name").message,
        "the same index as name_unique (name)"
    );
    let constraint = about("t_id_key");
    assert_eq!(constraint.severity, Severity::Warning);
    assert!(
        constraint.suggestion.starts_with(
            "it cannot simply be dropped: it backs the UNIQUE constraint t_id_key, and \
             PostgreSQL drops no index a constraint needs; if that constraint is not needed"
        ),
        "{}",
        constraint.suggestion
    );
    let redundant = about("by_x");
    assert_eq!(redundant.severity, Severity::Info);
    assert_eq!(
        redundant.message,
        "its key (x) is a leading prefix of by_x_y (x, y), which serves the same lookups"
    );
}

#[test]
fn of_two_plain_duplicates_the_used_one_is_kept() {
    let audit = audit(&facts(
        vec![table(TABLE, "t", None, RelKind::Table)],
        vec![
            with(index(1, TABLE, "a", &["k"]), |_, u| u.scans = 0),
            index(2, TABLE, "b", &["k"]),
        ],
    ));
    assert_eq!(
        found(&audit),
        [("duplicate-index", "a".into(), drop_ddl("a"))]
    );
}

/// A partitioned table `p` (partitions `p1`, `p2`) with a partitioned index
/// `pi` on `k` (attached `pi1`, `pi2`), and what `more` adds.
fn partitioned(more: Vec<Index>) -> Facts {
    let part = |oid, name| table(oid, name, Some(TABLE), RelKind::Table);
    let attached = |oid, on, name: &str, scans| {
        with(index(oid, on, name, &["k"]), |_, u| {
            u.parent = Some(1);
            u.scans = scans;
        })
    };
    let mut indexes = vec![
        with(index(1, TABLE, "pi", &["k"]), |_, u| {
            u.partitioned = true;
            u.pages = 0;
            u.scans = 0;
        }),
        attached(2, 101, "pi1", 3),
        attached(3, 102, "pi2", 0),
    ];
    indexes.extend(more);
    let root = AuditedTable {
        pages: 0,
        rows: -1.0,
        writes: Writes::default(),
        ..table(TABLE, "p", None, RelKind::Partitioned)
    };
    facts(vec![root, part(101, "p1"), part(102, "p2")], indexes)
}

#[test]
fn a_partitioned_index_and_its_partitions_are_one_index() {
    let facts = partitioned(vec![
        // A partition's own index, the same as the attached one there.
        with(index(4, 101, "own1", &["k"]), |_, u| u.scans = 9),
        // A second partitioned index like the first, with its partitions.
        with(index(5, TABLE, "pj", &["k"]), |_, u| {
            u.partitioned = true;
            u.pages = 0;
            u.scans = 0;
        }),
        with(index(6, 101, "pj1", &["k"]), |_, u| u.parent = Some(5)),
        with(index(7, 102, "pj2", &["k"]), |_, u| u.parent = Some(5)),
    ]);
    let audit = audit(&facts);
    // pj's partitions were scanned 10 times, pi's 3: pi goes, and own1,
    // the same as both there, with it.
    assert_eq!(
        found(&audit),
        [
            (
                "duplicate-index",
                "pi".into(),
                Some(r#"DROP INDEX IF EXISTS "public"."pi";"#.into())
            ),
            ("duplicate-index", "own1".into(), drop_ddl("own1")),
        ],
        "{:#?}",
        audit.findings
    );
    let Subject::Index {
        size_bytes, table, ..
    } = &audit.findings[0].subject
    else {
        unreachable!()
    };
    assert_eq!((*size_bytes, table.as_str()), (Some(20 * 8192), "public.p"));
    assert!(
        audit.findings[1]
            .message
            .ends_with("pj1 is the one to keep: it is attached to the partitioned index pj, and PostgreSQL drops it only with that one"),
        "{}",
        audit.findings[1].message
    );
    assert!(
        audit.findings[0]
            .suggestion
            .contains("cannot be dropped concurrently")
    );

    // Scanned on one partition: used. Scanned on none: unused, as one.
    let units = model::units(&facts);
    let pi = units.iter().find(|u| u.index.name.name == "pi").unwrap();
    assert_eq!(
        (pi.scans, pi.size_bytes, pi.table_bytes),
        (3, 20 * 8192, 2000 * 8192)
    );
    assert_eq!(pi.writes.inserted, 2000, "its partitions' writes");
    let unused = super::audit(&partitioned(vec![]));
    assert_eq!(found(&unused), []);
    let never = partitioned(vec![])
        .indexes
        .into_iter()
        .map(|i| with(i, |_, u| u.scans = 0))
        .collect();
    let never = super::audit(&Facts {
        indexes: never,
        ..partitioned(vec![])
    });
    assert_eq!(
        found(&never),
        [(
            "unused-index",
            "pi".into(),
            Some(r#"DROP INDEX IF EXISTS "public"."pi";"#.into())
        )]
    );
}

#[test]
fn unused_indexes_are_those_postgresql_does_not_need() {
    let unscanned = |oid, name: &str| with(index(oid, TABLE, name, &[name]), |_, u| u.scans = 0);
    let mut facts = facts(
        vec![table(TABLE, "t", None, RelKind::Table)],
        vec![
            unscanned(1, "a"),
            with(unscanned(2, "b"), |i, _| i.shape.unique = true),
            backing(unscanned(3, "c"), ConstraintKind::Exclusion, "c_excl"),
            index(4, TABLE, "d", &["d"]),
            // What a foreign key's checks look rows up by.
            unscanned(5, "e"),
        ],
    );
    facts.foreign_keys.push(ForeignKey {
        name: "t_e_fkey".into(),
        table: TABLE,
        columns: vec!["e".into()],
        references: QualifiedName::new("public", "parent"),
    });
    let audit = super::audit(&facts);
    assert_eq!(found(&audit), [("unused-index", "a".into(), drop_ddl("a"))]);
    assert_eq!(
        audit.findings[0].message,
        "no scan since the statistics were reset (2025-01-02T03:04:05Z), while 1,000 inserts \
         and 200 non-HOT updates of public.t each wrote to it"
    );
    assert_eq!(audit.findings[0].severity, Severity::Info);
    assert_eq!(audit.stats_reset.as_deref(), Some("2025-01-02T03:04:05Z"));

    let standby = super::audit(&Facts {
        server: Server {
            in_recovery: true,
            counting: false,
            ..server()
        },
        ..facts
    });
    assert_eq!(found(&standby), []);
    assert!(standby.standby);
    assert_eq!(standby.notes.len(), 2, "{:?}", standby.notes);
    assert!(standby.notes[0].starts_with("the server is a standby"));
    assert!(standby.notes[1].starts_with("track_counts is off"));
}

#[test]
fn invalid_indexes_are_dropped_or_rebuilt_as_postgresql_allows() {
    let invalid = |index: Index| with(index, |i, _| i.usable = false);
    let facts = partitioned(vec![
        invalid(index(10, 101, "broken", &["x"])),
        invalid(with(index(11, 101, "being_built", &["x"]), |i, _| {
            i.busy = Some(Busy {
                pid: 7,
                with: BusyWith::IndexLock,
            })
        })),
        invalid(with(index(12, TABLE, "half", &["y"]), |_, u| {
            u.partitioned = true
        })),
        invalid(with(index(13, 102, "half2", &["y"]), |_, u| {
            u.parent = Some(12)
        })),
        // Invalid, and the same as pi1: only invalid.
        invalid(index(14, 101, "pi1_copy", &["k"])),
    ]);
    let audit = audit(&facts);
    assert_eq!(
        found(&audit),
        [
            (
                "invalid-index",
                "half".into(),
                Some(r#"DROP INDEX IF EXISTS "public"."half";"#.into())
            ),
            ("invalid-index", "broken".into(), drop_ddl("broken")),
            ("invalid-index", "pi1_copy".into(), drop_ddl("pi1_copy")),
            (
                "invalid-index",
                "half2".into(),
                Some(r#"REINDEX INDEX CONCURRENTLY "public"."half2";"#.into())
            ),
        ]
    );
    assert!(
        audit.findings[0]
            .message
            .contains("partitioned index is valid only once")
    );
}

#[test]
fn foreign_keys_need_an_index_leading_with_their_columns() {
    let key = |name: &str, columns: &[&str]| ForeignKey {
        name: name.into(),
        table: TABLE,
        columns: columns.iter().map(|c| (*c).into()).collect(),
        references: QualifiedName::new("public", "parent"),
    };
    let mut small = table(TABLE, "child", None, RelKind::Table);
    small.rows = 4000.0;
    let mut facts = facts(
        vec![small],
        vec![
            index(1, TABLE, "by_b_a", &["b", "a"]),
            with(index(2, TABLE, "c_partial", &["c"]), |i, _| {
                i.shape.predicate = Some("c > 0".into())
            }),
            with(index(3, TABLE, "f_invalid", &["f"]), |i, _| {
                i.usable = false
            }),
        ],
    );
    facts.foreign_keys = vec![
        key("covered", &["a", "b"]),
        key("partial_only", &["c"]),
        key("short", &["d"]),
        key("long", &["d", "e"]),
        key("invalid_only", &["f"]),
    ];
    facts
        .taken
        .entry("public".into())
        .or_default()
        .insert("idx_child_c".into());
    let audit = audit(&facts);
    let keys: Vec<_> = found(&audit)
        .into_iter()
        .filter(|(code, ..)| *code == "unindexed-foreign-key")
        .collect();
    assert_eq!(
        keys,
        [
            (
                "unindexed-foreign-key",
                "idx_child_c_2".into(),
                Some(
                    r#"CREATE INDEX CONCURRENTLY "idx_child_c_2" ON "public"."child" ("c");"#
                        .into()
                )
            ),
            (
                "unindexed-foreign-key",
                "idx_child_d_e".into(),
                Some(
                    r#"CREATE INDEX CONCURRENTLY "idx_child_d_e" ON "public"."child" ("d", "e");"#
                        .into()
                )
            ),
            (
                "unindexed-foreign-key",
                "idx_child_f".into(),
                Some(
                    r#"CREATE INDEX CONCURRENTLY "idx_child_f" ON "public"."child" ("f");"#.into()
                )
            ),
        ]
    );
    let long = audit
        .findings
        .iter()
        .find(|f| f.message.contains("(d, e)"))
        .unwrap();
    assert_eq!(
        long.message,
        "no index leads with (d, e), the columns of foreign keys long (to public.parent) and \
         short (to public.parent): each DELETE from public.parent, or UPDATE of its key, reads \
         all 4,000 rows of public.child for the rows referencing it"
    );
    assert_eq!(long.severity, Severity::Info, "4,000 rows");
    facts.tables[0].rows = 5000.0;
    assert!(
        super::audit(&facts)
            .findings
            .iter()
            .filter(|f| f.code == "unindexed-foreign-key")
            .all(|f| f.severity == Severity::Warning)
    );
}

#[test]
fn bloated_and_oversized_indexes_are_rebuilt_unless_dropped() {
    // 100,000 int4 entries need 275 pages; 5,000 pages are 95% bloat.
    let bloated = |oid, name: &str| {
        with(index(oid, TABLE, name, &[name]), |_, u| {
            u.pages = 5000;
            u.tuples = 100_000.0;
        })
    };
    let mut facts = facts(
        vec![table(TABLE, "t", None, RelKind::Table)],
        vec![
            bloated(1, "a"),
            // Bloated too, but unused: dropped, not rebuilt.
            with(bloated(2, "b"), |_, u| u.scans = 0),
            // A tenth of the pages: 1.76 MiB of bloat is too little.
            with(bloated(3, "c"), |_, u| u.pages = 500),
        ],
    );
    let audit = super::audit(&facts);
    assert_eq!(
        found(&audit),
        [
            ("unused-index", "b".into(), drop_ddl("b")),
            (
                "index-bloat",
                "a".into(),
                Some(r#"REINDEX INDEX CONCURRENTLY "public"."a";"#.into())
            ),
            ("index-larger-than-table", "a".into(), None),
        ]
    );
    assert_eq!(
        audit.findings[1].message,
        "about 36.91 MiB of its 39.06 MiB (94%) is space its entries do not use: 100,000 \
         entries need about 275 pages at fillfactor 90, and it has 5,000 (estimated from \
         pg_stats)"
    );
    facts.server.version = 140_002;
    let old = super::audit(&facts);
    assert_eq!(old.findings[1].ddl, None);
    assert!(old.findings[1].suggestion.contains("14.4"));
}

#[test]
fn an_index_larger_than_its_table_is_judged_once_and_only_when_large() {
    let big = |index: Index| with(index, |_, u| u.pages = 1500);
    let mut facts = partitioned(vec![
        big(index(5, 101, "small_table", &["s"])),
        index(6, 101, "small", &["z"]),
    ]);
    // pi's parts are 1,500 pages each, more than the 2,000 of p1 and p2.
    for index in &mut facts.indexes {
        if ["pi1", "pi2"].contains(&index.name.name.as_str()) {
            index.usage.as_mut().unwrap().pages = 1500;
        }
    }
    let found: Vec<_> = found(&audit(&facts))
        .into_iter()
        .filter(|(code, ..)| *code == "index-larger-than-table")
        .map(|(_, index, _)| index)
        .collect();
    assert_eq!(found, ["pi", "small_table"]);
}

#[test]
fn a_table_ddl_holds_is_left_out_with_its_whole_partition_tree() {
    let locked = |mut table: AuditedTable| {
        table.locked_by = Some(4242);
        table
    };
    let tables = vec![
        table(1, "p", None, RelKind::Partitioned),
        table(2, "p_2024", Some(1), RelKind::Partitioned),
        locked(table(3, "p_2024_01", Some(2), RelKind::Table)),
        table(4, "p_2025", Some(1), RelKind::Table),
        table(5, "plain", None, RelKind::Table),
        locked(table(6, "busy", None, RelKind::Table)),
    ];
    let (kept, left_out) = model::without_locked(tables);
    let kept: Vec<&str> = kept.iter().map(|t| t.name.name.as_str()).collect();
    assert_eq!(kept, ["plain"]);
    assert_eq!(
        left_out,
        [
            Locked {
                table: QualifiedName::new("public", "p_2024_01"),
                pid: 4242
            },
            Locked {
                table: QualifiedName::new("public", "busy"),
                pid: 4242
            },
        ]
    );
    let audit = super::audit(&Facts {
        locked: left_out,
        ..facts(vec![], vec![])
    });
    assert_eq!(
        audit.notes[1],
        "the indexes of public.busy were not audited: server process 4242 holds or awaits an \
         ACCESS EXCLUSIVE lock on it (DDL under way), and reading their definitions would \
         wait behind it; run the audit again once it is done"
    );
}

#[test]
fn an_unused_index_on_a_table_nothing_wrote_to_costs_its_size() {
    let mut quiet = table(TABLE, "t", None, RelKind::Table);
    quiet.writes = Writes::default();
    let audit = audit(&Facts {
        server: Server {
            stats_reset: None,
            ..server()
        },
        ..facts(
            vec![quiet],
            vec![with(index(1, TABLE, "a", &["a"]), |_, u| u.scans = 0)],
        )
    });
    assert_eq!(
        audit.findings[0].message,
        "no scan since the statistics began (never reset), nor any insert or non-HOT update \
         of public.t to cost it more than its size"
    );
}
