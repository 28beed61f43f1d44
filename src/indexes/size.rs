//! The size a B-tree will have once built, from the planner's own numbers
//! (`pg::catalog::stats`: rows, widths, NULLs, distinct values) and the
//! way PostgreSQL lays a B-tree out when it builds one: leaf pages filled
//! to the fill factor, equal keys merged into posting lists
//! (deduplication, PostgreSQL 13 and later), inner pages 70% full.
//!
//! HypoPG's `hypopg_relation_size` knows nothing of deduplication: on the
//! payments fixture it overestimates an index on `status` 4.5-fold and one
//! on `(user_id, status)` 5-fold; this estimate comes within a few percent
//! of what `CREATE INDEX` builds there (tests/indexes.rs holds it to 25%).
//! The model (one pure function, [`btree_bytes`]) and the reads it needs
//! ([`estimate`]) are apart, so that the model is tested on data.

use tokio_postgres::Client;

use super::ddl::Wanted;
use super::spec::{DEFAULT_METHOD, IndexSpec, Key};
use crate::error::Result;
use crate::pg::catalog::stats::{self, RelationStats, Stored, ValueStats};
use crate::pg::catalog::{RelKind, Table};
use crate::sql::ident::QualifiedName;

/// PostgreSQL's page (`BLCKSZ`): 8 kB unless the server was built
/// otherwise, which nearly none is.
const PAGE: f64 = 8192.0;

/// What a page holds besides items: its header (24 bytes) and a B-tree
/// page's special space (16).
const PAGE_OVERHEAD: f64 = 24.0 + 16.0;

/// A line pointer, one per item on a page.
const LINE_POINTER: f64 = 4.0;

/// An index tuple's header (`IndexTupleData`: the heap TID and the size).
const TUPLE_HEADER: f64 = 8.0;

/// What a NULL bitmap adds to a tuple's header, once aligned.
const NULL_BITMAP: f64 = 8.0;

/// A heap TID in a posting list.
const POSTING_TID: f64 = 6.0;

/// The largest posting list a build writes (`nbtsort.c`: a tenth of a
/// page, less a line pointer).
const MAX_POSTING_TUPLE: f64 = 816.0 - LINE_POINTER;

/// The fill factor of a B-tree's leaf pages when none is given.
pub const DEFAULT_FILLFACTOR: u32 = 90;

/// How full a build packs inner pages (`BTREE_NONLEAF_FILLFACTOR`).
const INNER_FILL: f64 = 0.70;

/// Up to this many columns the NULL patterns of a tuple are counted one
/// by one (2^n of them); beyond, tuples are taken as free of NULLs.
const MAX_NULL_PATTERNS: usize = 10;

/// The bytes the estimate of a B-tree on one relation gives, for an index
/// whose values are `stats`: unique (no deduplication), with the leaf
/// fill factor `fillfactor`.
pub fn btree_bytes(stats: &RelationStats, unique: bool, fillfactor: u32) -> f64 {
    let rows = stats.rows.max(0.0);
    if rows < 1.0 || stats.keys.is_empty() {
        return 2.0 * PAGE; // the metapage and an empty root
    }
    let values: Vec<&ValueStats> = stats.keys.iter().chain(&stats.include).collect();
    let tuple = tuple_bytes(&values);
    let deduplicated =
        !unique && stats.include.is_empty() && stats.keys.iter().all(|k| k.deduplicates);
    let leaf_bytes = if let [key] = stats.keys.as_slice() {
        // NULLs are equal to each other for deduplication: one group.
        let nulls = rows * key.null_frac;
        let values = rows - nulls;
        let non_null = ValueStats {
            null_frac: 0.0,
            ..key.clone()
        };
        let plain: Vec<&ValueStats> = std::iter::once(&non_null).chain(&stats.include).collect();
        let distinct = if key.distinct > 0.0 {
            key.distinct.min(values)
        } else {
            values
        };
        entries_bytes(values, distinct, tuple_bytes(&plain), deduplicated)
            + entries_bytes(
                nulls,
                nulls.min(1.0),
                TUPLE_HEADER + NULL_BITMAP,
                deduplicated,
            )
    } else {
        entries_bytes(rows, distinct_keys(&stats.keys, rows), tuple, deduplicated)
    };
    let fill = f64::from(fillfactor.clamp(10, 100)) / 100.0;
    // A build leaves (1 - fill) of each leaf page free, and each page but
    // the last keeps a high key.
    let usable = PAGE - PAGE_OVERHEAD - PAGE * (1.0 - fill) - tuple;
    let leaves = (leaf_bytes / usable).ceil().max(1.0);
    // Inner pages hold one pivot per page below: the first key column, and
    // a heap TID where duplicates need one.
    let pivot = align(TUPLE_HEADER + stats.keys[0].width, 8.0)
        + LINE_POINTER
        + if deduplicated { 8.0 } else { 0.0 };
    let fan_out = ((PAGE - PAGE_OVERHEAD) * INNER_FILL / pivot)
        .floor()
        .max(2.0);
    let mut inner = 0.0;
    let mut level = leaves;
    while level > 1.0 {
        level = (level / fan_out).ceil();
        inner += level;
    }
    (1.0 + leaves + inner) * PAGE
}

/// The bytes on leaf pages of `rows` entries over `distinct` keys, each
/// tuple `tuple` bytes. With deduplication, the heap TIDs of equal keys
/// share one tuple (a posting list, of at most [`MAX_POSTING_TUPLE`]
/// bytes) at [`POSTING_TID`] bytes each; a key found once stays a plain
/// tuple. How duplicates spread over the keys is not known: the keys with
/// duplicates are taken as few as can hold them, so that a nearly unique
/// column is nearly free of posting lists.
fn entries_bytes(rows: f64, distinct: f64, tuple: f64, deduplicated: bool) -> f64 {
    if !deduplicated || distinct < 1.0 || rows <= distinct {
        return rows * (tuple + LINE_POINTER);
    }
    let per_key = rows / distinct;
    let per_posting = ((MAX_POSTING_TUPLE - tuple) / POSTING_TID).floor().max(1.0);
    let extra = rows - distinct;
    let tuples = distinct * (per_key / per_posting).ceil();
    tuples * (tuple + LINE_POINTER) + POSTING_TID * (distinct.min(extra) + extra)
}

/// How many distinct combinations of `keys` `rows` rows hold, as
/// PostgreSQL's planner guesses it (`estimate_num_groups`): the product
/// of the columns' distinct values (a NULL counting as one), at most the
/// rows, and, the columns being probably correlated, at most a tenth of
/// them unless one column alone has more. Unknown (no statistics): every
/// row distinct.
fn distinct_keys(keys: &[ValueStats], rows: f64) -> f64 {
    if keys.iter().any(|k| k.distinct <= 0.0) {
        return rows;
    }
    let product: f64 = keys
        .iter()
        .map(|k| k.distinct + if k.null_frac > 0.0 { 1.0 } else { 0.0 })
        .product();
    let most = keys.iter().map(|k| k.distinct).fold(0.0, f64::max);
    product.min((rows * 0.1).max(most)).min(rows)
}

/// The expected size of a tuple holding `values`, its header included:
/// each pattern of NULLs (the values taken as independent) laid out as
/// PostgreSQL lays out a tuple, fixed-length values aligned, the whole
/// aligned to 8 bytes (a variable-length one ends on average 3.5 bytes
/// short of the next multiple of 8).
fn tuple_bytes(values: &[&ValueStats]) -> f64 {
    let patterns: Vec<Vec<bool>> = if values.len() <= MAX_NULL_PATTERNS {
        (0..1u32 << values.len())
            .map(|bits| (0..values.len()).map(|v| bits & (1 << v) != 0).collect())
            .collect()
    } else {
        vec![vec![false; values.len()]]
    };
    patterns
        .iter()
        .map(|nulls| {
            let chance: f64 = if values.len() <= MAX_NULL_PATTERNS {
                values
                    .iter()
                    .zip(nulls)
                    .map(|(v, &null)| if null { v.null_frac } else { 1.0 - v.null_frac })
                    .product()
            } else {
                1.0
            };
            let mut size = TUPLE_HEADER
                + if nulls.contains(&true) {
                    NULL_BITMAP
                } else {
                    0.0
                };
            let mut varies = false;
            for (value, _) in values.iter().zip(nulls).filter(|(_, null)| !**null) {
                if value.fixed {
                    size = align(size, f64::from(value.align)) + value.width;
                } else {
                    size += value.width;
                    varies = true;
                }
            }
            chance * if varies { size + 3.5 } else { align(size, 8.0) }
        })
        .sum()
}

/// `size` rounded up to a multiple of `to`.
fn align(size: f64, to: f64) -> f64 {
    (size / to).ceil() * to
}

/// The estimated size, in bytes, of `index` once built on `table` (see
/// [`estimate_btree`]); `None` for a method other than B-tree, which this
/// model does not describe.
pub async fn estimate(client: &Client, table: &Table, index: &IndexSpec) -> Result<Option<i64>> {
    if index.method != DEFAULT_METHOD {
        return Ok(None);
    }
    estimate_btree(client, table, index).await.map(Some)
}

/// The estimated size, in bytes, of the B-tree advise or explain asks for
/// (`wanted`) once built on `table` (see [`estimate_btree`]).
pub async fn estimate_wanted(client: &Client, table: &Table, wanted: &Wanted) -> Result<i64> {
    let index = IndexSpec::btree(
        "",
        &table.name.display(),
        wanted.keys.clone(),
        wanted.predicate.clone(),
    );
    estimate_btree(client, table, &index).await
}

/// The estimated size, in bytes, of B-tree `index` once built on `table`:
/// on a partitioned table, the sum over its leaf partitions, each with its
/// own statistics. Expressions have no statistics until an index on them
/// was analyzed: their values are taken as all distinct, at the planner's
/// width for their type (32 bytes for text), which overestimates.
async fn estimate_btree(client: &Client, table: &Table, index: &IndexSpec) -> Result<i64> {
    let keys: Vec<Stored> = index
        .keys
        .iter()
        .map(|key| match key {
            Key::Column(column) => Stored::Column(column),
            Key::Expression(expression) => Stored::Expression(expression),
        })
        .collect();
    let include: Vec<&str> = index.include.iter().map(String::as_str).collect();
    let relations: Vec<&QualifiedName> = if table.kind == RelKind::Partitioned {
        table
            .partitions
            .iter()
            .filter(|p| p.leaf)
            .map(|p| &p.name)
            .collect()
    } else {
        vec![&table.name]
    };
    let fillfactor = index.storage.fillfactor.unwrap_or(DEFAULT_FILLFACTOR);
    let mut bytes = 0.0;
    for relation in relations {
        let stats = stats::index_values(
            client,
            relation,
            &keys,
            &include,
            index.predicate.as_deref(),
        )
        .await?;
        bytes += btree_bytes(&stats, index.unique, fillfactor);
    }
    Ok(bytes.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(width: f64, fixed: bool, distinct: f64) -> ValueStats {
        ValueStats {
            width,
            fixed,
            align: if fixed { width.min(8.0) as u32 } else { 1 },
            null_frac: 0.0,
            distinct,
            deduplicates: true,
        }
    }

    fn stats(rows: f64, keys: Vec<ValueStats>) -> RelationStats {
        RelationStats {
            rows,
            keys,
            include: Vec::new(),
        }
    }

    fn pages(bytes: f64) -> f64 {
        bytes / PAGE
    }

    #[test]
    fn unique_values_take_a_tuple_and_a_line_pointer_each_at_the_fill_factor() {
        // bigint: 16-byte tuples + 4: 366 a leaf page at 90%.
        let unique = stats(100_000.0, vec![value(8.0, true, 100_000.0)]);
        let leaves = (100_000.0f64 / ((8152.0 - 819.2 - 16.0) / 20.0)).ceil();
        let total = pages(btree_bytes(&unique, false, 90));
        assert!(
            (leaves + 2.0..=leaves + 4.0).contains(&total),
            "the metapage, {leaves} leaves and a few inner pages: {total}"
        );
        let packed = btree_bytes(&unique, false, 100);
        assert!(
            packed < btree_bytes(&unique, false, 90),
            "fuller pages, fewer of them"
        );
        assert!(pages(btree_bytes(&unique, false, 50)) > 1.7 * leaves);
    }

    #[test]
    fn duplicates_share_posting_lists_unless_the_index_is_unique_or_covering() {
        let few = stats(100_000.0, vec![value(8.0, true, 4.0)]);
        let deduplicated = btree_bytes(&few, false, 90);
        // 6 bytes a row instead of 20.
        assert!(pages(deduplicated) < 100.0, "{}", pages(deduplicated));
        let plain = btree_bytes(&few, true, 90);
        assert!(pages(plain) > 270.0, "{}", pages(plain));
        let covering = RelationStats {
            include: vec![value(4.0, true, 0.0)],
            ..few.clone()
        };
        assert!(btree_bytes(&covering, false, 90) > plain);
        let mut numeric = few.clone();
        numeric.keys[0].deduplicates = false;
        assert_eq!(btree_bytes(&numeric, false, 90), plain);
    }

    #[test]
    fn a_nearly_unique_column_is_nearly_free_of_posting_lists() {
        let unique = btree_bytes(
            &stats(100_000.0, vec![value(8.0, true, 100_000.0)]),
            false,
            90,
        );
        let nearly = btree_bytes(
            &stats(100_000.0, vec![value(8.0, true, 99_000.0)]),
            false,
            90,
        );
        assert!(
            nearly <= unique && nearly > 0.97 * unique,
            "{nearly} {unique}"
        );
    }

    #[test]
    fn nulls_are_one_group_and_cost_a_bitmap_only_where_they_are() {
        let mut sparse = value(8.0, true, 50_000.0);
        sparse.null_frac = 0.5;
        let half = btree_bytes(&stats(100_000.0, vec![sparse]), false, 90);
        let full = btree_bytes(
            &stats(50_000.0, vec![value(8.0, true, 50_000.0)]),
            false,
            90,
        );
        // 6 bytes a NULL in posting lists, 20 a value.
        assert!(half > 1.2 * full && half < 1.4 * full, "{half} {full}");
        let no_null = value(4.0, true, 0.0);
        let mut some_null = no_null.clone();
        some_null.null_frac = 0.5;
        assert_eq!(tuple_bytes(&[&no_null]), 16.0);
        assert_eq!(tuple_bytes(&[&some_null]), 0.5 * 16.0 + 0.5 * 16.0);
        assert_eq!(
            tuple_bytes(&[&no_null, &value(8.0, true, 0.0)]),
            24.0,
            "aligned"
        );
        assert_eq!(tuple_bytes(&[&value(9.0, false, 0.0)]), 20.5);
    }

    #[test]
    fn combinations_are_guessed_as_the_planner_guesses_groups() {
        let keys = [value(8.0, true, 4_000.0), value(8.0, true, 4.0)];
        assert_eq!(
            distinct_keys(&keys, 100_000.0),
            10_000.0,
            "a tenth of the rows"
        );
        let wide = [value(8.0, true, 4_000.0), value(8.0, true, 90_000.0)];
        assert_eq!(
            distinct_keys(&wide, 100_000.0),
            90_000.0,
            "the most distinct column's"
        );
        let small = [value(8.0, true, 3.0), value(8.0, true, 4.0)];
        assert_eq!(distinct_keys(&small, 100_000.0), 12.0);
        let unknown = [value(8.0, true, 0.0), value(8.0, true, 4.0)];
        assert_eq!(distinct_keys(&unknown, 500.0), 500.0);
    }

    #[test]
    fn an_empty_relation_is_a_metapage_and_a_root() {
        assert_eq!(
            btree_bytes(&stats(0.0, vec![value(8.0, true, 0.0)]), false, 90),
            2.0 * PAGE
        );
    }
}
