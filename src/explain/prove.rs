//! Proving the indexes findings suggest, with HypoPG, before anyone builds
//! them: each is created as a hypothetical index (in the session's memory
//! only, seen by plain `EXPLAIN` in this session alone), the statement is
//! planned again, and the DDL stays only when the planner uses the index.
//! Without HypoPG in the database, the finding says its index is unproven.
//!
//! Each proof is a `READ ONLY` transaction, rolled back, with the runs'
//! statement timeout and a short lock timeout; the hypothetical indexes are
//! removed after each, whatever happened.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::findings::UNPROVEN_BUILD;
use super::run::Timeout;
use super::tables::Tables;
use crate::db::JsonText;
use crate::db::errors::{query_error, refusal};
use crate::db::params::{TextParam, inferred};
use crate::error::Result;
use crate::finding::Finding;
use crate::indexes::ddl::MIN_IMPROVEMENT;
use crate::pg::catalog::hypopg_schema;
use crate::pg::plan::Plan;

/// How long planning may wait for a table lock: longer would hold our own
/// locks on the tables planned so far and queue other sessions behind us.
const LOCK_TIMEOUT: &str = "2s";

/// What HypoPG showed of one suggested index.
#[derive(Debug, Clone, PartialEq)]
enum Proof {
    /// The planner uses it; the plan's estimated cost with it.
    Used(f64),
    /// The planner does not use it for this statement.
    Unused,
    /// It could not be tried (HypoPG cannot model it, a lock was not
    /// granted in time), and why.
    Unproven(String),
}

/// The statement `statement` (as it ran, with `params`) and the findings
/// about its plan, whose estimated cost was `cost`: each suggested index
/// is proven, its finding told what HypoPG showed, and its DDL dropped when
/// the planner would not use it.
pub async fn suggestions(
    client: &Client,
    statement: &str,
    params: &[TextParam],
    timeout: Timeout,
    tables: &Tables,
    cost: f64,
    findings: &mut [Finding],
) -> Result<()> {
    if findings.iter().all(|finding| finding.ddl.is_none()) {
        return Ok(());
    }
    let hypopg = hypopg_schema(client).await?;
    for finding in findings.iter_mut() {
        let Some(hypothetical) = finding.ddl.as_deref().and_then(|d| tables.hypothetical(d)) else {
            continue;
        };
        let proof = match &hypopg {
            None => Proof::Unproven(
                "HypoPG is not installed in this database (CREATE EXTENSION hypopg)".to_owned(),
            ),
            Some(schema) => {
                prove(client, schema, &hypothetical, statement, params, timeout).await?
            }
        };
        tell(finding, &proof, cost);
    }
    Ok(())
}

/// Plans `statement` with the hypothetical index `hypothetical` creates.
async fn prove(
    client: &Client,
    hypopg: &str,
    hypothetical: &str,
    statement: &str,
    params: &[TextParam],
    timeout: Timeout,
) -> Result<Proof> {
    client
        .batch_execute(&format!(
            "BEGIN READ ONLY; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'{}",
            timeout.set_local()
        ))
        .await
        .map_err(|e| query_error("starting the proof of a suggested index", &e))?;
    let proof = planned_with(client, hypopg, hypothetical, statement, params).await;
    let rolled_back = client.batch_execute("ROLLBACK").await;
    // Hypothetical indexes live in the session, not the transaction.
    client
        .batch_execute(&format!("SELECT {hypopg}.hypopg_reset()"))
        .await
        .map_err(|e| query_error("removing the hypothetical indexes", &e))?;
    rolled_back.map_err(|e| query_error("rolling back the proof of a suggested index", &e))?;
    proof
}

async fn planned_with(
    client: &Client,
    hypopg: &str,
    hypothetical: &str,
    statement: &str,
    params: &[TextParam],
) -> Result<Proof> {
    let created = client
        .query_typed_one(
            &format!("SELECT indexname FROM {hypopg}.hypopg_create_index($1)"),
            &[(&hypothetical, Type::TEXT)],
        )
        .await;
    let name: String = match created {
        Ok(row) => row.get(0),
        Err(error) => {
            return Ok(Proof::Unproven(refusal(
                error,
                "creating a hypothetical index",
            )?));
        }
    };
    let params = inferred(params);
    let rows = match client
        .query_typed(&format!("EXPLAIN (FORMAT JSON) {statement}"), &params)
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            return Ok(Proof::Unproven(refusal(
                error,
                "planning with a hypothetical index",
            )?));
        }
    };
    let Some(document) = rows
        .first()
        .and_then(|row| row.try_get::<_, JsonText>(0).ok())
    else {
        return Ok(Proof::Unproven("EXPLAIN returned no plan".to_owned()));
    };
    let plan = Plan::from_json(&document.0)?;
    let used = plan
        .nodes
        .iter()
        .any(|node| node.raw.index_name.as_deref() == Some(name.as_str()));
    Ok(if used {
        Proof::Used(plan.root().raw.total_cost)
    } else {
        Proof::Unused
    })
}

/// `-18%`: how the plan's estimated cost changes from `cost` to `with`.
fn saving(cost: f64, with: f64) -> String {
    format!(
        "{:.0}%",
        (with - cost) / cost.max(f64::MIN_POSITIVE) * 100.0
    )
}

/// Tells `finding` what `proof` showed; `cost` is the plan's without the
/// index: the DDL stays only where the planner uses the index and it saves
/// at least [`MIN_IMPROVEMENT`] of the cost, as advise asks.
fn tell(finding: &mut Finding, proof: &Proof, cost: f64) {
    let said = match proof {
        Proof::Used(with) if *with > cost * (1.0 - MIN_IMPROVEMENT / 100.0) => {
            finding.ddl = None;
            format!(
                "yet with it as a hypothetical index (HypoPG) the plan's estimated cost falls \
                 only from {cost:.0} to {with:.0} ({}), less than the {MIN_IMPROVEMENT:.0}% an \
                 index must save to be worth what it costs every write (perfaudit advise's \
                 --min-improvement), so no DDL is given",
                saving(cost, *with)
            )
        }
        Proof::Used(with) => format!(
            "proven with a hypothetical index (HypoPG): the planner uses it, and the plan's \
             estimated cost falls from {cost:.0} to {with:.0}; the finding's DDL builds it \
             without blocking writes"
        ),
        Proof::Unused => {
            finding.ddl = None;
            "yet with it as a hypothetical index (HypoPG) the planner does not use it for this \
             statement, so no DDL is given: the condition may compare a cast or a function of \
             the column, which an index on the column cannot serve (compare the column itself, \
             with a range where it is cast), or reading the table stays cheaper"
                .to_owned()
        }
        Proof::Unproven(why) => format!("unproven ({why}): {UNPROVEN_BUILD}"),
    };
    finding.suggestion = finding.suggestion.replace(UNPROVEN_BUILD, &said);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Severity, Subject};

    fn finding() -> Finding {
        Finding {
            code: "selective-seq-scan",
            severity: Severity::Warning,
            subject: Subject::Node(0),
            message: String::new(),
            suggestion: format!(
                "an index on the filtered column (k) reads only the rows kept; {UNPROVEN_BUILD}"
            ),
            ddl: Some("CREATE INDEX CONCURRENTLY \"i\" ON \"public\".\"t\" (\"k\");".to_owned()),
        }
    }

    #[test]
    fn a_finding_says_what_hypopg_showed() {
        let mut small = finding();
        tell(&mut small, &Proof::Used(1924.0), 2335.0);
        assert_eq!(small.ddl, None);
        assert!(
            small
                .suggestion
                .contains("falls only from 2335 to 1924 (-18%), less than the 50%"),
            "{}",
            small.suggestion
        );

        let mut used = finding();
        tell(&mut used, &Proof::Used(12.5), 2751.0);
        assert!(
            used.suggestion.ends_with(
                "proven with a hypothetical index (HypoPG): the planner uses it, and the plan's \
             estimated cost falls from 2751 to 12; the finding's DDL builds it without \
             blocking writes"
            ),
            "{}",
            used.suggestion
        );
        assert!(used.ddl.is_some());

        let mut unused = finding();
        tell(&mut unused, &Proof::Unused, 2751.0);
        assert_eq!(unused.ddl, None);
        assert!(unused.suggestion.contains("the planner does not use it"));

        let mut unproven = finding();
        tell(
            &mut unproven,
            &Proof::Unproven("no HypoPG".to_owned()),
            2751.0,
        );
        assert!(
            unproven
                .suggestion
                .contains("unproven (no HypoPG): perfaudit advise proves it")
        );
        assert!(unproven.ddl.is_some());
    }
}
