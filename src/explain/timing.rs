//! Timing over repeated runs: min / median / p95 / max of planning,
//! execution and client round trip, and shared buffers of the first run
//! against the later ones (cold cache against warm).

use serde::Serialize;

use crate::pg::plan::{Buffers, RunSummary};

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMeasurement {
    /// What PostgreSQL reported.
    pub summary: RunSummary,
    /// The client's wall time for the EXPLAIN statement: send, plan,
    /// execute, receive the plan.
    pub round_trip_ms: f64,
}

/// The spread of one quantity over the runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The fastest run.
    pub min: f64,
    /// The middle run (the mean of the two middle runs for an even count).
    pub median: f64,
    /// The nearest-rank 95th percentile: the run that 95% of runs were no
    /// slower than.
    pub p95: f64,
    /// The slowest run.
    pub max: f64,
}

impl Spread {
    /// The spread of `samples`; `None` when there are none.
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut sorted: Vec<f64> = samples.into_iter().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let rank = (0.95 * n as f64).ceil() as usize;
        Some(Spread {
            min: sorted[0],
            median,
            p95: sorted[rank.clamp(1, n) - 1],
            max: sorted[n - 1],
        })
    }
}

/// The timing table of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// `Planning Time`.
    pub planning_ms: Option<Spread>,
    /// `Execution Time`; `None` when the statement was not executed.
    pub execution_ms: Option<Spread>,
    /// The client's wall time of the EXPLAIN statement.
    pub round_trip_ms: Option<Spread>,
}

impl Timing {
    /// The timing of `runs`.
    pub fn of(runs: &[RunMeasurement]) -> Timing {
        Timing {
            planning_ms: Spread::of(runs.iter().filter_map(|r| r.summary.planning_ms)),
            execution_ms: Spread::of(runs.iter().filter_map(|r| r.summary.execution_ms)),
            round_trip_ms: Spread::of(runs.iter().map(|r| r.round_trip_ms)),
        }
    }
}

/// Shared buffers of the first run against the mean of the later ones:
/// a first run that reads what later runs find in the cache was cold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheComparison {
    /// The first run.
    pub first_run: Buffers,
    /// The mean of the runs after the first; `None` with a single run.
    pub later_runs: Option<Buffers>,
}

impl CacheComparison {
    /// The comparison over `runs`; `None` without buffer counts (no ANALYZE).
    pub fn of(runs: &[RunMeasurement]) -> Option<CacheComparison> {
        let (first, later) = runs.split_first()?;
        let later: Vec<Buffers> = later.iter().filter_map(|r| r.summary.buffers).collect();
        let count = later.len() as f64;
        Some(CacheComparison {
            first_run: first.summary.buffers?,
            later_runs: (!later.is_empty()).then(|| Buffers {
                hit: later.iter().map(|b| b.hit).sum::<f64>() / count,
                read: later.iter().map(|b| b.read).sum::<f64>() / count,
            }),
        })
    }
}

/// The run whose plan represents the statement: the one with the median
/// execution time (round trip when not executed), so that one outlier does
/// not decide the plan, the node times and the findings shown. For an even
/// count, the faster of the two middle runs.
pub fn representative_run(runs: &[RunMeasurement]) -> usize {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let key = |r: &RunMeasurement| r.summary.execution_ms.unwrap_or(r.round_trip_ms);
    order.sort_by(|&a, &b| key(&runs[a]).total_cmp(&key(&runs[b])));
    order[(runs.len().max(1) - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(execution: f64, hit: f64, read: f64) -> RunMeasurement {
        RunMeasurement {
            summary: RunSummary {
                planning_ms: Some(0.1),
                execution_ms: Some(execution),
                buffers: Some(Buffers { hit, read }),
            },
            round_trip_ms: execution + 0.3,
        }
    }

    #[test]
    fn spread_uses_the_middle_and_the_nearest_rank() {
        let spread = Spread::of([5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            spread,
            Spread {
                min: 1.0,
                median: 3.0,
                p95: 5.0,
                max: 5.0
            }
        );
        assert_eq!(Spread::of([2.0, 1.0]).unwrap().median, 1.5);
        let hundred = Spread::of((1..=100).map(f64::from)).unwrap();
        assert_eq!((hundred.p95, hundred.median), (95.0, 50.5));
        assert_eq!(Spread::of([7.0]).unwrap().p95, 7.0);
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn first_run_is_compared_with_the_mean_of_the_rest() {
        let runs = [
            run(9.0, 10.0, 90.0),
            run(2.0, 100.0, 0.0),
            run(3.0, 98.0, 2.0),
        ];
        let cache = CacheComparison::of(&runs).unwrap();
        assert_eq!(
            cache.first_run,
            Buffers {
                hit: 10.0,
                read: 90.0
            }
        );
        assert_eq!(
            cache.later_runs,
            Some(Buffers {
                hit: 99.0,
                read: 1.0
            })
        );
        assert_eq!(CacheComparison::of(&runs[..1]).unwrap().later_runs, None);
        let timing = Timing::of(&runs);
        assert_eq!(timing.execution_ms.unwrap().median, 3.0);
        assert_eq!(timing.round_trip_ms.unwrap().max, 9.3);
    }

    #[test]
    fn the_representative_run_is_the_median_one() {
        let runs = [run(9.0, 0.0, 0.0), run(2.0, 0.0, 0.0), run(3.0, 0.0, 0.0)];
        assert_eq!(representative_run(&runs), 2);
        assert_eq!(representative_run(&runs[..2]), 1);
        assert_eq!(representative_run(&runs[..1]), 0);
    }
}
