//! `index-bloat`: a B-tree much larger than its entries need, by the
//! well-known estimate from `pg_stats` (ioguix's pgsql-bloat-estimation,
//! which check_postgres and most monitoring tools use): the pages its
//! entries would fill at its fillfactor, from each column's average width
//! and share of NULLs, against the pages it has. Both counts are the
//! catalog's (`reltuples`, `relpages`, as of the last `VACUUM` or
//! `ANALYZE`). The estimate ignores deduplication (PostgreSQL 13 and
//! later), so an index of many equal keys looks smaller than it should,
//! never larger.

use super::model::Unit;
use crate::finding::{Finding, Severity};
use crate::indexes::advice;
use crate::indexes::plan::concurrent_builds_refused;
use crate::pg::catalog::audit::Server;
use crate::pg::catalog::{ConstraintKind, Usage};
use crate::text::{bytes, count};

/// The share of an index that must be bloat for a finding: a B-tree that
/// takes inserts in random key order settles around 70% full (ln 2), which
/// this estimate counts as 30% bloat; more than half is past what normal
/// page splits leave, and a rebuild keeps it away for a while.
const MIN_SHARE: f64 = 0.5;

/// The bloat a finding needs, in bytes: smaller indexes cost little
/// whatever their share.
const MIN_BYTES: i64 = 10 << 20;

/// A B-tree page's header, in bytes (`PageHeaderData`).
const PAGE_HEADER: f64 = 24.0;
/// A B-tree page's special space (`BTPageOpaqueData`).
const PAGE_OPAQUE: f64 = 16.0;
/// An index tuple's header (`IndexTupleData`).
const TUPLE_HEADER: i64 = 8;
/// The null bitmap a tuple with a NULL adds (`IndexAttributeBitMapData`,
/// 32 columns at most).
const NULL_BITMAP: i64 = (32 + 8 - 1) / 8;
/// An item pointer (`ItemIdData`), per entry.
const ITEM_POINTER: f64 = 4.0;

/// What the estimate says of one index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The pages its entries need at its fillfactor.
    pub pages: f64,
    /// The bytes beyond those (0 when it is smaller than estimated).
    pub bloat_bytes: i64,
    /// That as a share of the index.
    pub share: f64,
}

/// The estimate for an index, when it can be made: a B-tree with pages,
/// counted entries and statistics on every column, none of type `name`
/// (whose width the statistics misstate).
pub fn estimate(usage: &Usage, block_size: i64, maxalign: i64) -> Option<Estimate> {
    if usage.pages <= 0 || usage.tuples < 0.0 || usage.columns.is_empty() {
        return None;
    }
    let columns: Vec<_> = usage.columns.iter().copied().collect::<Option<_>>()?;
    if columns.iter().any(|c| c.is_name) {
        return None;
    }
    let has_nulls = columns.iter().any(|c| c.null_frac > 0.0);
    let header = TUPLE_HEADER + if has_nulls { NULL_BITMAP } else { 0 };
    let data: f64 = columns
        .iter()
        .map(|c| (1.0 - c.null_frac) * c.avg_width)
        .sum();
    // Each part padded to MAXALIGN as the well-known query pads it: the
    // data by what its rounded width lacks (and by a whole MAXALIGN when
    // there is none).
    let padding = |width: i64, none: i64| {
        let rest = width % maxalign;
        maxalign
            - if width == 0 {
                none
            } else if rest == 0 {
                maxalign
            } else {
                rest
            }
    };
    let entry =
        (header + padding(header, maxalign)) as f64 + data + padding(data.round() as i64, 0) as f64;
    let per_page = ((block_size as f64 - PAGE_OPAQUE - PAGE_HEADER) * f64::from(usage.fillfactor)
        / (100.0 * (ITEM_POINTER + entry)))
        .floor();
    if per_page < 1.0 {
        return None;
    }
    let pages = 1.0 + (usage.tuples / per_page).ceil();
    let extra = (usage.pages as f64 - pages).max(0.0);
    Some(Estimate {
        pages,
        bloat_bytes: extra as i64 * block_size,
        share: extra / usage.pages as f64,
    })
}

/// A finding for each B-tree of `units` whose bloat is past both bounds.
pub fn findings(units: &[&Unit], server: &Server) -> Vec<Finding> {
    units
        .iter()
        .filter(|u| !u.usage.partitioned && u.index.shape.method == "btree")
        .filter_map(|unit| {
            let estimate = estimate(unit.usage, server.block_size, server.maxalign)?;
            (estimate.share >= MIN_SHARE && estimate.bloat_bytes >= MIN_BYTES)
                .then(|| finding(unit, &estimate, server))
        })
        .collect()
}

fn finding(unit: &Unit, estimate: &Estimate, server: &Server) -> Finding {
    let exclusion = unit
        .usage
        .constraints
        .iter()
        .any(|c| c.kind == ConstraintKind::Exclusion);
    let (suggestion, ddl) = match concurrent_builds_refused(server.version) {
        Some(reason) => (
            format!("do not rebuild it concurrently here: {reason}"),
            None,
        ),
        None if exclusion => (
            "rebuild it with REINDEX INDEX (PostgreSQL cannot rebuild the index of an \
             exclusion constraint concurrently, and REINDEX blocks writes to the table while \
             it runs: do it when the table can wait)"
                .to_owned(),
            None,
        ),
        None => (
            "rebuild it: REINDEX INDEX CONCURRENTLY builds a fresh copy beside it and swaps \
             them, blocking no reads or writes (it needs room for the copy on disk, and \
             waits for older transactions as CREATE INDEX CONCURRENTLY does)"
                .to_owned(),
            Some(advice::reindex_statement(&unit.index.name)),
        ),
    };
    Finding {
        code: "index-bloat",
        severity: Severity::Warning,
        subject: unit.subject(),
        message: format!(
            "about {} of its {} ({:.0}%) is space its entries do not use: {} entries need \
             about {} pages at fillfactor {}, and it has {} (estimated from pg_stats)",
            bytes(estimate.bloat_bytes),
            bytes(unit.size_bytes),
            estimate.share * 100.0,
            count(unit.usage.tuples.round()),
            count(estimate.pages),
            unit.usage.fillfactor,
            count(unit.usage.pages as f64)
        ),
        suggestion,
        ddl,
        saving: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::ColumnStats;

    fn usage(pages: i64, tuples: f64, columns: Vec<Option<ColumnStats>>) -> Usage {
        Usage {
            oid: 1,
            partitioned: false,
            parent: None,
            constraints: Vec::new(),
            scans: 0,
            pages,
            tuples,
            fillfactor: 90,
            columns,
        }
    }

    fn column(null_frac: f64, avg_width: f64) -> Option<ColumnStats> {
        Some(ColumnStats {
            null_frac,
            avg_width,
            is_name: false,
        })
    }

    /// Numbers the well-known query gives on PostgreSQL 15 (block size
    /// 8192, MAXALIGN 8) for the rentals fixture.
    #[test]
    fn the_estimate_is_the_well_known_one() {
        // store.rental_customer_id_idx (customer_id int4, rented_at timestamptz):
        // 100,000 entries in 553 pages, estimated 383.
        let rental = usage(553, 100_000.0, vec![column(0.0, 4.0), column(0.0, 8.0)]);
        let rental = estimate(&rental, 8192, 8).unwrap();
        assert_eq!(rental.pages, 383.0);
        assert_eq!(rental.bloat_bytes, 170 * 8192);
        assert!((rental.share - 170.0 / 553.0).abs() < 1e-9);
        // billing.rental_payment_2024_01_by_rental (rental_id int8), deduplicated
        // to 45 pages where 64 are estimated: no bloat.
        let deduplicated = usage(45, 22_000.0, vec![column(0.0, 8.0)]);
        assert_eq!(estimate(&deduplicated, 8192, 8).unwrap().bloat_bytes, 0);
    }

    #[test]
    fn nulls_add_a_bitmap_and_take_no_width() {
        let full = estimate(&usage(100, 10_000.0, vec![column(0.0, 8.0)]), 8192, 8).unwrap();
        let nulls = estimate(&usage(100, 10_000.0, vec![column(0.5, 8.0)]), 8192, 8).unwrap();
        // An 8-byte header and 8 bytes of data, against a 16-byte header
        // (8 + 4, aligned) and 4 bytes padded to 8.
        assert_eq!(full.pages, 1.0 + (10_000.0_f64 / 366.0).ceil());
        assert_eq!(nulls.pages, 1.0 + (10_000.0_f64 / 262.0).ceil());
        let wide = estimate(&usage(100, 10_000.0, vec![column(0.0, 12.0)]), 8192, 8).unwrap();
        assert_eq!(wide.pages, nulls.pages);
    }

    #[test]
    fn no_estimate_without_what_it_needs() {
        let columns = vec![column(0.0, 4.0)];
        assert_eq!(estimate(&usage(0, 10.0, columns.clone()), 8192, 8), None);
        assert_eq!(
            estimate(&usage(10, -1.0, columns), 8192, 8),
            None,
            "never counted"
        );
        assert_eq!(estimate(&usage(10, 10.0, vec![None]), 8192, 8), None);
        let name = Some(ColumnStats {
            null_frac: 0.0,
            avg_width: 10.0,
            is_name: true,
        });
        assert_eq!(estimate(&usage(10, 10.0, vec![name]), 8192, 8), None);
    }
}
