//! The ORDER BY rule: order a query that has no ordering of its own by the
//! chosen column, where the column provably resolves and the ordering is
//! valid.
//!
//! PostgreSQL resolves a bare name in ORDER BY against the result columns
//! first, then against the FROM clause; a qualified name (`p.created_at`)
//! only against the FROM clause. So the rule orders by a result column when
//! exactly one is named so, and otherwise, in a plain SELECT whose rows are
//! not grouped or made distinct, by the column of the first FROM item that
//! has it, qualified whenever a bare name could be ambiguous.

use sqlparser::ast::{Cte, Distinct, Expr, Select, SetOperator};

use super::Decision;
use super::knowledge::Knowledge;
use super::layout::ClauseKind;
use super::options::OrderBy;
use super::scope::{
    self, Has, Name, NameCount, Search, aggregates_without_group_by, distinct, grouping_column,
};
use super::target::{Body, Target};

/// Decides the ORDER BY for `target`.
pub(crate) fn decide(target: &Target, order: &OrderBy, knowledge: &Knowledge) -> Decision {
    if let Some(own) = target.clause(&[ClauseKind::OrderBy]) {
        return Decision::Skip(format!("kept the query's own {own}"));
    }
    let column = order.name();
    if let Some(select) = target.select() {
        if let Some(Distinct::On(_)) = distinct(select) {
            return Decision::Skip(
                "SELECT DISTINCT ON needs an ORDER BY that starts with its DISTINCT ON \
                 expressions, which only the author can choose"
                    .into(),
            );
        }
        if aggregates_without_group_by(select) {
            return Decision::Skip(
                "it aggregates without GROUP BY, so it returns one row, and a column outside \
                 the aggregates cannot order it"
                    .into(),
            );
        }
    }
    let names = match &knowledge.result_columns {
        Some(columns) => columns.iter().map(|c| Name::Known(c.clone())).collect(),
        None => scope::result_names(&target.core.body),
    };
    let relations = target
        .select()
        .map_or(1, |select| scope::from_items(select, &[]).len().max(1));
    let count = NameCount::of(&names, column, relations);
    if count.exactly_one() {
        return add(
            order,
            order.spelling(),
            format!("{column} is a result column"),
        );
    }
    match target.body() {
        Body::Select(_) if !target.parenthesized() => {}
        body => return Decision::Skip(only_result_columns(body, column, count, knowledge)),
    }
    let select = target.select().expect("a plain SELECT");
    if distinct(select).is_some() {
        let why = if count.known > 1 {
            format!(
                "{} result columns are named {column}, so the name is ambiguous",
                count.known
            )
        } else if knowledge.result_columns.is_some() || count.possible == 0 {
            format!("{column} is not one of them")
        } else {
            format!("{column} is not known to be one of them")
        };
        return Decision::Skip(format!(
            "SELECT DISTINCT can be ordered only by its result columns, and {why}"
        ));
    }
    if scope::grouped(select) {
        return by_grouping_column(select, order, count);
    }
    by_from_item(target, select, order, count, knowledge)
}

/// ORDER BY a column of the FROM clause, in a SELECT that neither groups
/// nor aggregates nor is DISTINCT, so that any of its columns can order it.
fn by_from_item(
    target: &Target,
    select: &Select,
    order: &OrderBy,
    count: NameCount,
    knowledge: &Knowledge,
) -> Decision {
    let column = order.name();
    let ctes: Vec<&Cte> = target
        .query
        .with
        .iter()
        .flat_map(|with| &with.cte_tables)
        .collect();
    let search = Search { knowledge, column };
    let owners = search.owners(select, &ctes, 0, false);
    if owners.items.is_empty() {
        return Decision::Skip(format!(
            "it has no FROM clause and no result column {column}"
        ));
    }
    let decision = match owners.has.iter().position(|h| h.yes()) {
        Some(first) => by_owner(order, &owners, first, count),
        // Used unqualified and not ambiguous among the result columns.
        None if owners.used_bare && count.at_most_one() => add(
            order,
            order.spelling(),
            format!("the query itself uses {column} unqualified, so one FROM item has it"),
        ),
        None if owners.has.iter().all(|h| *h == Has::No) => Decision::Skip(format!(
            "no FROM item has a column {column}{}",
            if count.known > 1 {
                ", and several result columns are named so"
            } else {
                ""
            }
        )),
        None => Decision::Skip(unknown_owner(&owners, column, knowledge)),
    };
    match decision {
        // Offline, an aggregate is known only by PostgreSQL's built-in names.
        Decision::Add { clause, detail } if !knowledge.online => Decision::Add {
            clause,
            detail: format!(
                "{detail}; offline, assuming the query calls no user-defined aggregate"
            ),
        },
        decision => decision,
    }
}

/// ORDER BY the column of the first FROM item that has it.
fn by_owner(order: &OrderBy, owners: &scope::Owners, first: usize, count: NameCount) -> Decision {
    let column = order.name();
    let item = &owners.items[first];
    let others: Vec<String> = owners
        .items
        .iter()
        .zip(&owners.has)
        .skip(first + 1)
        .filter(|(_, has)| has.yes())
        .map(|(item, _)| item.describe())
        .collect();
    let mut why = format!("{} has a column {column}", item.describe());
    if owners.has[first] == Has::Used {
        why.push_str(" (the query itself uses it)");
    }
    if !others.is_empty() {
        why.push_str(&format!(
            "; so does {}, and the first FROM item that has it was chosen",
            others.join(" and ")
        ));
    }
    // Bare when nothing else could claim the name; qualified otherwise.
    if owners.items.len() == 1 && count.at_most_one() {
        return add(order, order.spelling(), why);
    }
    match item.refname {
        Some(refname) => add(order, &format!("{refname}.{}", order.spelling()), why),
        None => Decision::Skip(format!(
            "{} has a column {column}, but it has no alias to qualify the column with",
            item.describe()
        )),
    }
}

/// ORDER BY the column when the query groups by it.
fn by_grouping_column(select: &Select, order: &OrderBy, count: NameCount) -> Decision {
    let column = order.name();
    let why = format!("the query groups by {column}");
    match grouping_column(select, column) {
        Some(Expr::CompoundIdentifier(parts)) => {
            let qualifier: Vec<String> = parts[..parts.len() - 1]
                .iter()
                .map(ToString::to_string)
                .collect();
            add(
                order,
                &format!("{}.{}", qualifier.join("."), order.spelling()),
                why,
            )
        }
        Some(_) if count.at_most_one() => add(order, order.spelling(), why),
        Some(_) => Decision::Skip(format!(
            "the query groups by {column}, but several result columns could be named so"
        )),
        None => Decision::Skip(format!(
            "the query groups by other columns; only a grouped column or a result column can \
             order it, and {column} is neither"
        )),
    }
}

/// Why a set operation, VALUES or parenthesized query cannot be
/// ordered by the column.
fn only_result_columns(
    body: Body,
    column: &str,
    count: NameCount,
    knowledge: &Knowledge,
) -> String {
    let what = match body {
        Body::SetOperation(op) => match op {
            SetOperator::Union => "a UNION".into(),
            other => format!("an {other}"),
        },
        Body::Values => "VALUES".into(),
        Body::Other => "this query".into(),
        Body::Select(_) => "a query in parentheses".into(),
    };
    if count.known > 1 {
        format!("{what} can be ordered only by a result column, and several are named {column}")
    } else if count.possible > 0 && knowledge.result_columns.is_none() {
        format!(
            "{what} can be ordered only by a result column, and offline its result columns are \
             not all known; give a database (--database-url or --scratch) to check"
        )
    } else {
        format!("{what} can be ordered only by a result column, and {column} is not one")
    }
}

/// Why no FROM item is known to have the column, once.
fn unknown_owner(owners: &scope::Owners, column: &str, knowledge: &Knowledge) -> String {
    let items = |wanted: Has| -> Vec<String> {
        owners
            .items
            .iter()
            .zip(&owners.has)
            .filter(|(_, has)| **has == wanted)
            .map(|(item, _)| item.describe())
            .collect()
    };
    let mut reasons: Vec<String> = items(Has::Several)
        .into_iter()
        .map(|item| {
            format!("{item} has more than one column {column}, so the name is ambiguous there")
        })
        .collect();
    reasons.extend(items(Has::AtLeastOnce).into_iter().map(|item| {
        format!(
            "{item} has a column {column}, but not all of its columns are known, and another may \
             have the same name (as when a SELECT * spans a join of two tables that have it), \
             which would make the name ambiguous there"
        )
    }));
    let unknown = items(Has::Unknown);
    if !unknown.is_empty() {
        reasons.push(if knowledge.online {
            format!(
                "the server's catalog does not say whether {} has a column {column}",
                unknown.join(" or ")
            )
        } else if owners.used_bare {
            format!(
                "the query uses {column} unqualified, but offline it is not known which FROM \
                 item has it"
            )
        } else {
            // The name written where it names no column would otherwise read
            // as a use the rule overlooked.
            let lookalike = owners
                .lookalike
                .map(|lookalike| format!(" ({})", lookalike.explain(column)))
                .unwrap_or_default();
            format!(
                "offline, nothing in the query shows that {} has a column {column}{lookalike}",
                unknown.join(" or ")
            )
        });
    }
    let mut reason = reasons.join("; ");
    let server_would_tell = owners
        .has
        .iter()
        .any(|has| matches!(has, Has::Unknown | Has::AtLeastOnce));
    if !knowledge.online && server_would_tell {
        reason.push_str("; give a database (--database-url or --scratch) to check");
    }
    reason
}

/// Adds `ORDER BY <column> [ASC|DESC]`, saying why it is valid.
fn add(order: &OrderBy, column: &str, why: String) -> Decision {
    let clause = order.clause(column);
    Decision::Add {
        detail: format!("{clause}: {why}"),
        clause,
    }
}
