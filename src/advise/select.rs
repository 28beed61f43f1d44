//! Choosing the fewest, narrowest indexes that serve a whole workload, from
//! the costs the planner gave each statement with each hypothetical index.
//! Pure.
//!
//! An index *serves* a statement when, with it alone, the statement's cost
//! drops by the threshold and comes within [`NEAR_BEST`] of the best any
//! single candidate achieves for it (so a narrow index does not stand in
//! for a much better composite one). The choice is then a greedy set cover:
//! repeatedly take the index serving the most statements not yet served,
//! the narrowest and smallest first among equals.

/// How far above a statement's best single-index cost an index may come
/// and still count as serving it: within 10%, the planner's estimates are
/// too coarse to tell the two apart, and one index serving more statements
/// is worth more than that difference.
pub const NEAR_BEST: f64 = 0.10;

/// What choosing a candidate costs: its width and its estimated size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Key columns.
    pub width: usize,
    /// Estimated size in bytes.
    pub size: i64,
}

/// The plan cost of one statement with one hypothetical index, when the
/// planner used that index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// The statement, by index into the costs before.
    pub statement: usize,
    /// The candidate, by index into the footprints.
    pub candidate: usize,
    /// The plan cost with the index.
    pub cost: f64,
}

/// The candidates to recommend, in the order chosen. `before[s]` is the
/// cost of statement `s` without new indexes; `min_improvement` the
/// fraction (0 to 1) its cost must drop by.
pub fn minimal_set(
    before: &[f64],
    footprints: &[Footprint],
    trials: &[Trial],
    min_improvement: f64,
) -> Vec<usize> {
    let best = |statement: usize| {
        trials
            .iter()
            .filter(|t| t.statement == statement)
            .map(|t| t.cost)
            .fold(f64::INFINITY, f64::min)
    };
    let serving: Vec<&Trial> = trials
        .iter()
        .filter(|t| {
            t.cost <= before[t.statement] * (1.0 - min_improvement)
                && t.cost <= best(t.statement) * (1.0 + NEAR_BEST)
        })
        .collect();

    let mut unserved: Vec<usize> = serving.iter().map(|t| t.statement).collect();
    unserved.sort_unstable();
    unserved.dedup();
    let mut chosen = Vec::new();
    while !unserved.is_empty() {
        // (statements served, total saving) per candidate, over the unserved.
        let mut gains: Vec<(usize, f64)> = vec![(0, 0.0); footprints.len()];
        for trial in serving.iter().filter(|t| unserved.contains(&t.statement)) {
            let gain = &mut gains[trial.candidate];
            gain.0 += 1;
            gain.1 += before[trial.statement] - trial.cost;
        }
        let Some(pick) = (0..footprints.len())
            .filter(|&c| gains[c].0 > 0)
            .min_by(|&a, &b| {
                gains[b]
                    .0
                    .cmp(&gains[a].0)
                    .then(footprints[a].width.cmp(&footprints[b].width))
                    .then(footprints[a].size.cmp(&footprints[b].size))
                    .then(gains[b].1.total_cmp(&gains[a].1))
            })
        else {
            break;
        };
        chosen.push(pick);
        unserved.retain(|&s| {
            !serving
                .iter()
                .any(|t| t.candidate == pick && t.statement == s)
        });
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(statement: usize, candidate: usize, cost: f64) -> Trial {
        Trial {
            statement,
            candidate,
            cost,
        }
    }

    const SINGLE: Footprint = Footprint {
        width: 1,
        size: 2_000_000,
    };
    const PAIR: Footprint = Footprint {
        width: 2,
        size: 3_000_000,
    };

    #[test]
    fn one_composite_serves_two_statements_rather_than_two_indexes() {
        // 0: user_id = $1; 1: user_id = $1 AND status = $2.
        // Candidates: 0 (user_id), 1 (user_id, status).
        let before = [2751.0, 2876.0];
        let trials = [
            trial(0, 0, 95.0),
            trial(0, 1, 99.0),
            trial(1, 0, 96.0),
            trial(1, 1, 30.0),
        ];
        assert_eq!(minimal_set(&before, &[SINGLE, PAIR], &trials, 0.5), [1]);
    }

    #[test]
    fn the_narrowest_wins_among_equals() {
        let before = [2751.0];
        let trials = [trial(0, 1, 95.0), trial(0, 0, 96.0)];
        assert_eq!(minimal_set(&before, &[SINGLE, PAIR], &trials, 0.5), [0]);
    }

    #[test]
    fn savings_below_the_threshold_recommend_nothing() {
        let before = [100.0, 200.0];
        let trials = [trial(0, 0, 60.0), trial(1, 0, 150.0)];
        assert!(minimal_set(&before, &[SINGLE], &trials, 0.5).is_empty());
        assert_eq!(minimal_set(&before, &[SINGLE], &trials, 0.2), [0]);
    }

    #[test]
    fn separate_needs_get_separate_indexes_most_served_first() {
        // Statements 0 and 1 need candidate 1; statement 2 needs candidate 0.
        let before = [1000.0, 1000.0, 1000.0];
        let trials = [trial(0, 1, 10.0), trial(1, 1, 10.0), trial(2, 0, 10.0)];
        assert_eq!(minimal_set(&before, &[SINGLE, PAIR], &trials, 0.5), [1, 0]);
    }
}
