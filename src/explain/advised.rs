//! The indexes explain's findings suggest are decided by advise: one code
//! path, so that explain and advise never disagree about a statement.
//!
//! A rule that suggests an index writes the one its node's condition asks
//! for ([`super::tables::Tables::advice`]): that is all explain can offer
//! without HypoPG, and it says so. With HypoPG, advise's search runs on the
//! statement as written ([`crate::advise::advise_statement`]): candidates
//! from its predicates, joins and sort, each tried as a hypothetical index,
//! the fewest that lower its cost by `--min-improvement` chosen. Each
//! finding then carries advise's index on its table, or advise's reason
//! for none; an index advise chose that no finding points at becomes a
//! finding of its own (`missing-index`).

use crate::advise::{Reason, Recommendation, StatementAdvice};
use crate::finding::{Finding, Saving, Severity, Subject};
use crate::pg::plan::Plan;

use super::findings::{UNPROVEN_BUILD, rank};
use super::tables::Tables;

/// What decides the indexes of a statement's findings.
#[derive(Debug, Clone)]
pub enum Decision {
    /// advise's verdict on the statement as written.
    Advised(StatementAdvice),
    /// advise was not asked, for a reason of its own that needs no
    /// hypothetical index (a plan too cheap to index).
    Skipped(Reason),
    /// HypoPG is not there: the findings' DDL stays, unproven, and why.
    Unproven(String),
}

/// Gives `findings` about `plan`, whose index DDL [`Tables::advice`] wrote
/// in `tables`, the indexes `decision` holds, and ranks them again.
pub fn adopt(findings: &mut Vec<Finding>, decision: &Decision, tables: &Tables, plan: &Plan) {
    match decision {
        Decision::Unproven(why) => {
            for finding in findings.iter_mut() {
                let ddl = finding.ddl.clone();
                settle(finding, format!("unproven ({why}): {UNPROVEN_BUILD}"), ddl);
            }
        }
        Decision::Skipped(reason) => {
            for finding in findings.iter_mut() {
                settle(finding, none_given(Some(reason)), None);
            }
        }
        Decision::Advised(advice) => adopt_advice(findings, advice, tables, plan),
    }
    rank(findings);
}

fn adopt_advice(
    findings: &mut Vec<Finding>,
    advice: &StatementAdvice,
    tables: &Tables,
    plan: &Plan,
) {
    let mut placed: Vec<Option<String>> = vec![None; advice.indexes.len()];
    for finding in findings.iter_mut() {
        let Some(table) = finding.ddl.as_deref().and_then(|ddl| tables.table_of(ddl)) else {
            continue;
        };
        let chosen: Vec<usize> = (0..advice.indexes.len())
            .filter(|&i| advice.indexes[i].table == table)
            .collect();
        if chosen.is_empty() {
            settle(finding, none_given(advice.reason.as_ref()), None);
            continue;
        }
        if let Some(earlier) = chosen.iter().find_map(|&i| placed[i].as_ref()) {
            let said = format!(
                "the index perfaudit advise chose for {table} is the DDL given at {earlier}"
            );
            settle(finding, said, None);
            continue;
        }
        let indexes: Vec<&Recommendation> = chosen.iter().map(|&i| &advice.indexes[i]).collect();
        let ddl = indexes
            .iter()
            .map(|index| index.ddl.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        settle(finding, proven(&indexes, advice), Some(ddl));
        let at = finding
            .node()
            .map_or_else(|| "the statement".to_owned(), |id| format!("node #{id}"));
        for i in chosen {
            placed[i] = Some(at.clone());
        }
    }
    for (index, _) in advice
        .indexes
        .iter()
        .zip(&placed)
        .filter(|(_, placed)| placed.is_none())
    {
        findings.push(missing_index(index, advice, plan));
    }
}

/// Replaces the unproven advice in `finding`'s suggestion with `said`, and
/// its DDL with `ddl`. A finding without unproven advice is left alone.
fn settle(finding: &mut Finding, said: String, ddl: Option<String>) {
    if finding.ddl.is_none() || !finding.suggestion.contains(UNPROVEN_BUILD) {
        return;
    }
    finding.suggestion = finding.suggestion.replace(UNPROVEN_BUILD, &said);
    finding.ddl = ddl;
}

/// What a finding says when advise gives no index for its table.
fn none_given(reason: Option<&Reason>) -> String {
    match reason {
        Some(reason) => format!(
            "yet perfaudit advise, trying candidate indexes as hypothetical indexes (HypoPG), \
             recommends none for this statement ({reason}), so no DDL is given"
        ),
        None => "yet perfaudit advise, trying candidate indexes as hypothetical indexes \
                 (HypoPG), recommends none on this table for this statement, so no DDL is given"
            .to_owned(),
    }
}

/// What a finding says of the indexes advise chose for its table.
fn proven(indexes: &[&Recommendation], advice: &StatementAdvice) -> String {
    let shapes = indexes
        .iter()
        .map(|index| index.describe())
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "perfaudit advise, trying candidate indexes as hypothetical indexes (HypoPG), chose \
         {shapes}: {}; the finding's DDL builds it without blocking writes",
        cost_change(advice)
    )
}

/// `the statement's estimated cost falls from 2751 to 12 (-100%)`.
fn cost_change(advice: &StatementAdvice) -> String {
    match (advice.cost_before, advice.cost_after) {
        (Some(before), Some(after)) => format!(
            "the statement's estimated cost falls from {before:.0} to {after:.0} ({:.0}%)",
            (after - before) / before.max(f64::MIN_POSITIVE) * 100.0
        ),
        _ => "the planner uses it for this statement".to_owned(),
    }
}

/// The finding for `index`, which advise chose for the statement and no
/// other finding points at (a sort it would serve, say).
fn missing_index(index: &Recommendation, advice: &StatementAdvice, plan: &Plan) -> Finding {
    // The run's time in proportion to the estimated cost the index saves:
    // the planner's cost is its estimate of time.
    let saving = match (advice.cost_before, advice.cost_after, plan.execution_ms) {
        (Some(before), Some(after), Some(ms)) if before > 0.0 => Saving::of(
            ms * (1.0 - after / before).max(0.0),
            plan,
            "the execution time, in proportion to the estimated cost the index saves",
        ),
        _ => None,
    };
    Finding {
        code: "missing-index",
        severity: Severity::Warning,
        subject: Subject::Statement,
        message: format!(
            "an index on {} {} serves this statement: {}",
            index.table,
            index.describe(),
            cost_change(advice)
        ),
        suggestion: "build it: perfaudit advise chose it, trying candidate indexes as \
                     hypothetical indexes (HypoPG); the finding's DDL builds it without \
                     blocking writes"
            .to_owned(),
        ddl: Some(index.ddl.clone()),
        saving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tables;

    /// A finding on node `node` whose unproven DDL [`Tables::advice`] gave
    /// for `payments (user_id)`.
    fn finding(tables: &Tables, node: usize) -> Finding {
        let ddl = match tables.advice("payments", &["user_id".to_owned()], 1) {
            Some(tables::IndexAdvice::Build(ddl)) => ddl,
            other => panic!("{other:?}"),
        };
        Finding {
            code: "selective-seq-scan",
            severity: Severity::Warning,
            subject: Subject::Node(node),
            message: String::new(),
            suggestion: format!("an index on (user_id); {UNPROVEN_BUILD}"),
            ddl: Some(ddl),
            saving: None,
        }
    }

    /// A plan that ran for 40 ms.
    fn plan() -> Plan {
        crate::pg::plan::tests::analysed(
            serde_json::json!({"Node Type": "Seq Scan", "Total Cost": 2000.0, "Plan Rows": 1,
                               "Actual Total Time": 40.0, "Actual Rows": 1, "Actual Loops": 1}),
            0.1,
            40.0,
        )
    }

    fn recommendation(table: &str, columns: &[&str]) -> Recommendation {
        Recommendation {
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            predicate: None,
            keys: Vec::new(),
            opclasses: Vec::new(),
            descending: Vec::new(),
            full_index: None,
            write_cost: None,
            time_saved: None,
            ddl: format!(
                "CREATE INDEX CONCURRENTLY ON {table} ({});",
                columns.join(", ")
            ),
            size_bytes: 8192,
            name: "idx".to_owned(),
        }
    }

    fn advice(indexes: Vec<Recommendation>, reason: Option<Reason>) -> StatementAdvice {
        StatementAdvice {
            original: "SELECT".to_owned(),
            line: None,
            column: None,
            cost_before: Some(2000.0),
            cost_after: Some(100.0),
            indexes,
            reason,
            usage: None,
        }
    }

    #[test]
    fn without_hypopg_the_ddl_stays_said_unproven() {
        let tables = tables::payments();
        let mut findings = vec![finding(&tables, 1)];
        let ddl = findings[0].ddl.clone();
        adopt(
            &mut findings,
            &Decision::Unproven("no HypoPG".into()),
            &tables,
            &plan(),
        );
        assert_eq!(findings[0].ddl, ddl);
        assert!(
            findings[0]
                .suggestion
                .contains("unproven (no HypoPG): perfaudit advise")
        );
    }

    #[test]
    fn a_cheap_statement_gets_advises_reason_and_no_ddl() {
        let tables = tables::payments();
        let mut findings = vec![finding(&tables, 1)];
        let low = Reason::LowCost {
            cost: 42.0,
            min_cost: 100.0,
        };
        adopt(&mut findings, &Decision::Skipped(low), &tables, &plan());
        assert_eq!(findings[0].ddl, None);
        assert!(
            findings[0]
                .suggestion
                .contains("recommends none for this statement (low cost:"),
            "{}",
            findings[0].suggestion
        );
    }

    #[test]
    fn each_finding_carries_advises_index_on_its_table_once() {
        let tables = tables::payments();
        let mut findings = vec![finding(&tables, 1), finding(&tables, 4)];
        let chosen = recommendation("public.payments", &["user_id", "created_at"]);
        let elsewhere = recommendation("public.users", &["email"]);
        let decision = Decision::Advised(advice(vec![chosen.clone(), elsewhere.clone()], None));
        adopt(&mut findings, &decision, &tables, &plan());
        // Ranked: the one finding with an estimated saving first.
        assert_eq!(findings.len(), 3);
        let [missing, first, second] = &findings[..] else {
            unreachable!()
        };
        // advise's index on a table no finding names is a finding of its
        // own, saving 95% of the cost, so 95% of the 40 ms run.
        assert_eq!(missing.code, "missing-index");
        assert_eq!(missing.ddl.as_deref(), Some(elsewhere.ddl.as_str()));
        assert!(missing.message.contains("public.users (email)"));
        let saving = missing.saving.as_ref().unwrap();
        assert!((saving.ms - 38.0).abs() < 1e-9, "{saving:?}");
        // advise's key, not the one the node's condition asked for.
        assert_eq!(first.ddl.as_deref(), Some(chosen.ddl.as_str()));
        assert!(
            first.suggestion.contains(
                "chose (user_id, created_at): the statement's estimated cost falls from 2000 \
                 to 100 (-95%)"
            ),
            "{}",
            first.suggestion
        );
        // The second scan of the table points at the first's DDL.
        assert_eq!(second.ddl, None);
        assert!(second.suggestion.contains("is the DDL given at node #1"));
    }

    #[test]
    fn a_table_advise_gives_nothing_gets_its_reason_and_no_ddl() {
        let tables = tables::payments();
        let mut findings = vec![finding(&tables, 1)];
        let reason = Reason::BelowThreshold {
            best: Some(("(user_id)".to_owned(), 0.18)),
            tried: vec!["(user_id)".to_owned()],
            min_improvement: 50.0,
        };
        adopt(
            &mut findings,
            &Decision::Advised(advice(Vec::new(), Some(reason))),
            &tables,
            &plan(),
        );
        assert_eq!(findings[0].ddl, None);
        assert!(
            findings[0]
                .suggestion
                .contains("lowers the cost by 18%, less than --min-improvement 50%"),
            "{}",
            findings[0].suggestion
        );
    }
}
