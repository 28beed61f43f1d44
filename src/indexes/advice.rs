//! What `perfaudit indexes` says about indexes that are there, in one place
//! for the build's findings (on the spec's tables) and the audit's (on the
//! whole database): when one index adds nothing to another, and the words
//! and statements for that and for an INVALID index. Pure.

use super::sql;
use crate::finding::Severity;
use crate::pg::catalog::Shape;
use crate::sql::ident::QualifiedName;

/// How an index adds nothing to another, which serves every lookup it
/// serves: [`Overlap::DUPLICATE`] or [`Overlap::REDUNDANT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// Its finding's code.
    pub code: &'static str,
    /// Its finding's severity.
    pub severity: Severity,
}

impl Overlap {
    /// Each serves every lookup the other does: one of them is enough, and
    /// every write pays for both.
    pub const DUPLICATE: Overlap = Overlap {
        code: "duplicate-index",
        severity: Severity::Warning,
    };

    /// The other does more (its key is longer, or it includes more): the
    /// shorter may still be worth its cost for hot lookups on its columns
    /// alone, which the longer one serves a little slower.
    pub const REDUNDANT: Overlap = Overlap {
        code: "redundant-index",
        severity: Severity::Info,
    };
}

/// Whether an index of shape `other` serves every lookup an index of shape
/// `shape` serves, uniqueness aside, and how: the same method and
/// predicate; the same key (columns or expressions, operator classes,
/// order, collations) or, for B-trees, `shape`'s key a leading prefix of
/// `other`'s; and `shape`'s `INCLUDE` columns all in `other`.
pub fn overlap(shape: &Shape, other: &Shape) -> Option<Overlap> {
    let serves = |a: &Shape, b: &Shape| {
        a.method == b.method
            && a.predicate == b.predicate
            && (a.keys == b.keys || (a.method == "btree" && b.keys.starts_with(&a.keys)))
            && a.include.iter().all(|column| {
                b.include.contains(column) || b.keys.iter().any(|k| &k.definition == column)
            })
    };
    if !serves(shape, other) {
        None
    } else if serves(other, shape) {
        Some(Overlap::DUPLICATE)
    } else {
        Some(Overlap::REDUNDANT)
    }
}

/// What is wrong with an index of shape `shape` that `other` (named
/// `other_name`) makes unneeded.
pub fn overlap_message(overlap: Overlap, shape: &Shape, other_name: &str, other: &Shape) -> String {
    if overlap == Overlap::DUPLICATE {
        format!("the same index as {other_name} ({})", key(shape))
    } else if shape.keys == other.keys {
        format!(
            "{other_name} has the same key ({}) and includes its INCLUDE columns ({}) too, \
             so it serves the same lookups",
            key(shape),
            shape.include.join(", ")
        )
    } else {
        format!(
            "its key ({}) is a leading prefix of {other_name} ({}), which serves the same lookups",
            key(shape),
            key(other)
        )
    }
}

/// What to do about an index that another makes unneeded.
pub fn overlap_suggestion(overlap: Overlap) -> &'static str {
    if overlap == Overlap::DUPLICATE {
        "one of them is enough: drop this one"
    } else {
        "drop it, unless lookups on its columns alone are hot enough to pay for a second index \
         on every write"
    }
}

/// An index's key for messages: `user_id, email text_pattern_ops DESC`.
pub fn key(shape: &Shape) -> String {
    shape
        .keys
        .iter()
        .map(|k| {
            if k.is_plain() {
                k.definition.clone()
            } else {
                format!("{} {}", k.definition, k.options)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with an INVALID index left by a failed concurrent build.
pub const INVALID: &str = "INVALID (left by a failed or cancelled concurrent build): queries \
                           never use it, yet every write still updates it";

/// The statement that drops `index`, ending with `;`: concurrently (no
/// lock that blocks reads or writes), unless it is a partitioned index,
/// which PostgreSQL cannot drop concurrently.
pub fn drop_statement(index: &QualifiedName, partitioned: bool) -> String {
    format!("{};", sql::drop_index(index, !partitioned))
}

/// The statement that rebuilds `index` beside the old one and swaps them,
/// without blocking reads or writes, ending with `;`.
pub fn reindex_statement(index: &QualifiedName) -> String {
    format!("{};", sql::reindex_index(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::KeyShape;

    fn shape(keys: &[&str], include: &[&str]) -> Shape {
        Shape {
            method: "btree".into(),
            unique: false,
            keys: keys
                .iter()
                .map(|k| KeyShape {
                    definition: (*k).into(),
                    opclass: 3124,
                    option: 0,
                    collation: 0,
                    column: Some((*k).into()),
                    options: String::new(),
                })
                .collect(),
            include: include.iter().map(|c| (*c).into()).collect(),
            predicate: None,
        }
    }

    #[test]
    fn an_index_overlaps_one_that_serves_all_its_lookups() {
        let a = shape(&["a"], &[]);
        let ab = shape(&["a", "b"], &[]);
        assert_eq!(overlap(&a, &a.clone()), Some(Overlap::DUPLICATE));
        assert_eq!(overlap(&a, &ab), Some(Overlap::REDUNDANT));
        assert_eq!(overlap(&ab, &a), None);
        let unique = Shape {
            unique: true,
            ..a.clone()
        };
        assert_eq!(
            overlap(&unique, &a),
            Some(Overlap::DUPLICATE),
            "uniqueness is the caller's to weigh"
        );
        let covering = shape(&["a"], &["c"]);
        assert_eq!(overlap(&a, &covering), Some(Overlap::REDUNDANT));
        assert_eq!(overlap(&covering, &a), None);
        assert_eq!(
            overlap(&shape(&["a"], &["b"]), &ab),
            Some(Overlap::REDUNDANT),
            "an INCLUDE column the other has as a key"
        );
        let hash = |s: &Shape| Shape {
            method: "hash".into(),
            ..s.clone()
        };
        assert_eq!(overlap(&hash(&a), &hash(&a)), Some(Overlap::DUPLICATE));
        assert_eq!(overlap(&hash(&a), &hash(&ab)), None, "no prefix in a hash");
        assert_eq!(overlap(&hash(&a), &a), None);
        let partial = Shape {
            predicate: Some("a > 0".into()),
            ..ab.clone()
        };
        assert_eq!(overlap(&a, &partial), None);
        let mut descending = a.clone();
        descending.keys[0].option = 3;
        assert_eq!(overlap(&descending, &ab), None);
    }

    #[test]
    fn messages_say_which_overlap() {
        let a = shape(&["a"], &[]);
        let ab = shape(&["a", "b"], &[]);
        let covering = shape(&["a"], &["c"]);
        let plain = shape(&["a"], &["c", "d"]);
        assert_eq!(
            overlap_message(Overlap::DUPLICATE, &a, "x", &a),
            "the same index as x (a)"
        );
        assert_eq!(
            overlap_message(Overlap::REDUNDANT, &a, "x", &ab),
            "its key (a) is a leading prefix of x (a, b), which serves the same lookups"
        );
        assert_eq!(
            overlap_message(Overlap::REDUNDANT, &covering, "x", &plain),
            "x has the same key (a) and includes its INCLUDE columns (c) too, so it serves \
             the same lookups"
        );
    }

    #[test]
    fn statements_drop_concurrently_where_postgresql_can() {
        let index = QualifiedName::new("Sales", "idx \"x\"");
        assert_eq!(
            drop_statement(&index, false),
            r#"DROP INDEX CONCURRENTLY IF EXISTS "Sales"."idx ""x""";"#
        );
        assert_eq!(
            drop_statement(&index, true),
            r#"DROP INDEX IF EXISTS "Sales"."idx ""x""";"#
        );
        assert_eq!(
            reindex_statement(&index),
            r#"REINDEX INDEX CONCURRENTLY "Sales"."idx ""x""";"#
        );
    }
}
