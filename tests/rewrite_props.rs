//! Properties of the rewriter over generated input:
//!
//! - generated SELECTs: never a panic, the output parses again, rewriting
//!   it again changes nothing, the user's text survives (the output is the
//!   input with clauses inserted), every rule is reported once;
//! - arbitrary strings and token soups (a fuzz target): never a panic;
//! - generated SELECTs that PostgreSQL accepts: so does their rewrite.
//!
//! Columns, aliases and the ordering asked for include key words
//! (`"left"`, `"user"`, ...), which the rewrite must quote as PostgreSQL
//! does.

mod common;

use perfaudit::rewrite::{self, Knowledge, Rewrite, RewriteOptions, Rule};
use perfaudit::sql::{self, parse_statements};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// One of `options`.
fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(options)
}

/// Maybe one of `options` (half the time nothing).
fn maybe(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), one_of(options)]
}

/// A SELECT over the payments fixture, from parts that cover the rules:
/// WITH, DISTINCT, aggregates, joins, subqueries, GROUP BY, set
/// operations, the query's own ORDER BY / LIMIT / OFFSET / FETCH / FOR
/// UPDATE, comments and spacing between the parts.
fn select() -> impl Strategy<Value = String> {
    (
        maybe(&[
            "WITH c AS (SELECT * FROM payments WHERE created_at > now() - interval '1 day')",
            "WITH c(a, b) AS (VALUES (1, 2))",
            "with recursive c as (select 1 as n union all select n + 1 from c where n < 3)",
        ]),
        one_of(&[
            "SELECT *",
            "SELECT id",
            "select created_at",
            "SELECT p.created_at, u.created_at",
            "SELECT count(*)",
            "SELECT amount AS created_at",
            "SELECT status, count(*)",
            "SELECT DISTINCT status",
            "SELECT DISTINCT ON (user_id) user_id",
            "SELECT created_at::date AS day",
            "SELECT $1::int AS v, id",
            "SELECT row_number() OVER (ORDER BY created_at), id",
            "SELECT \"Id\", 'LIMIT 1; ORDER BY x' AS s",
            "SELECT amount AS \"left\", created_at AS \"time\"",
            "SELECT id AS \"user\", status AS \"verbose\", created_at AS \"order\"",
            "SELECT created_at AS \"between\", id AS \"join\"",
            "SELECT \"join\".created_at AS \"left\"",
        ]),
        one_of(&[
            "FROM payments",
            "FROM payments p",
            "FROM payments p JOIN users u ON u.id = p.user_id",
            "FROM (SELECT * FROM payments ORDER BY id LIMIT 10) s",
            "FROM generate_series(1, 3) g",
            "FROM c",
            "FROM users u, LATERAL (SELECT 1 AS one) l",
            "FROM public.payments",
            "FROM payments AS \"join\"",
            "FROM payments \"order\" JOIN users \"user\" ON \"user\".id = \"order\".user_id",
        ]),
        maybe(&[
            "WHERE created_at > now()",
            "WHERE p.created_at > $1",
            "WHERE status = 'a;b' AND id IN (SELECT id FROM payments LIMIT 1)",
            "WHERE external_ref IS DISTINCT FROM NULL AND amount > 1",
            "WHERE data->>'k' = 'v' AND tags[1] = 'x'",
        ]),
        maybe(&[
            "GROUP BY status",
            "GROUP BY created_at",
            "GROUP BY 1",
            "HAVING count(*) > 1",
        ]),
        maybe(&[
            "UNION ALL SELECT id FROM users",
            "UNION SELECT created_at FROM users",
            "EXCEPT (SELECT 1 LIMIT 1)",
        ]),
        maybe(&["ORDER BY 1", "order by id desc nulls last"]),
        maybe(&[
            "LIMIT 5",
            "LIMIT ALL",
            "OFFSET 3",
            "OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY",
            "limit all offset 1",
            "LIMIT $2",
        ]),
        maybe(&[
            "FOR UPDATE",
            "FOR SHARE OF p SKIP LOCKED",
            "for update nowait",
        ]),
        proptest::collection::vec(one_of(&[" ", "\n  ", " /* c */ ", " -- c\n"]), 9),
        any::<bool>(),
    )
        .prop_map(
            |(with, select, from, filter, group, set, order, limit, lock, gaps, parens)| {
                let mut sql = String::new();
                let parts = [with, select, from, filter, group, set, order, limit, lock];
                for (part, gap) in parts.iter().zip(&gaps) {
                    if !part.is_empty() {
                        if !sql.is_empty() {
                            sql.push_str(gap);
                        }
                        sql.push_str(part);
                    }
                }
                if parens && with.is_empty() {
                    sql = format!("({sql})");
                }
                sql
            },
        )
}

/// What the rewrite is asked to add: the default ordering, or one by a
/// column named by a key word of each kind (reserved, type or function
/// name, column name).
fn options() -> impl Strategy<Value = RewriteOptions> {
    one_of(&[
        "created_at DESC",
        "\"left\"",
        "\"time\" DESC",
        "\"user\"",
        "\"join\" ASC",
        "\"verbose\"",
        "\"between\"",
        "\"order\" DESC",
    ])
    .prop_map(|order_by| RewriteOptions {
        order_by: Some(order_by.parse().expect("a valid ordering")),
        ..RewriteOptions::default()
    })
}

fn rewrite_offline(statement: &sql::SqlStatement, options: &RewriteOptions) -> Rewrite {
    rewrite::rewrite(statement, options, &Knowledge::offline())
}

/// Whether `inner` is `outer` with text inserted (a subsequence of it).
fn is_kept_in(inner: &str, outer: &str) -> bool {
    let mut outer = outer.chars();
    inner.chars().all(|c| outer.any(|o| o == c))
}

proptest! {
    #[test]
    fn generated_selects_rewrite_to_sql_that_parses_and_stays_put(
        sql in select(),
        options in options(),
    ) {
        let Ok(mut statements) = parse_statements(&sql) else {
            return Ok(()); // a combination sqlparser does not take
        };
        let statement = statements.remove(0);
        let first = rewrite_offline(&statement, &options);
        prop_assert!(is_kept_in(&first.original, &first.rewritten), "{:?}", first);
        for rule in [Rule::OrderBy, Rule::Limit] {
            let reported = first.changes.iter().filter(|c| c.rule == rule).count()
                + first.skipped.iter().filter(|s| s.rule == rule).count();
            prop_assert_eq!(reported, 1, "{:?}", first);
        }
        let again = parse_statements(&first.rewritten);
        prop_assert!(again.is_ok(), "{} does not parse: {:?}", first.rewritten, again.err());
        let second = rewrite_offline(&again.unwrap().remove(0), &options);
        prop_assert_eq!(&second.rewritten, &first.rewritten);
        prop_assert!(!second.changed(), "{:?}", second);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        for statement in sql::statements(&text).flatten() {
            let _ = rewrite_offline(&statement, &RewriteOptions::default());
        }
    }

    #[test]
    fn token_soups_never_panic(tokens in proptest::collection::vec(one_of(&[
        "SELECT", "select", "*", "FROM", "payments", "p", "WHERE", "created_at", "=", "$1",
        "ORDER", "BY", "LIMIT", "ALL", "OFFSET", "FETCH", "FIRST", "ROWS", "ONLY", "FOR",
        "UPDATE", "SHARE", "UNION", "(", ")", ",", ";", ".", "AS", "WITH", "DISTINCT", "ON",
        "GROUP", "count(*)", "'x'", "1", "::", "int", "--c\n", "/*c*/", "VALUES", "INSERT",
        "INTO", "JOIN", "LATERAL", "[", "]", "->>", "IS", "NOT", "NULL", "left", "\"user\"",
    ]), 0..40)) {
        let text = tokens.join(" ");
        for statement in sql::statements(&text).flatten() {
            let rewritten = rewrite_offline(&statement, &RewriteOptions::default());
            if rewritten.changed() {
                prop_assert!(
                    parse_statements(&rewritten.rewritten).is_ok(),
                    "{} became {}", statement.text, rewritten.rewritten
                );
            }
        }
    }
}

/// Generated SELECTs that PostgreSQL accepts stay accepted once rewritten,
/// offline and with the server's knowledge.
#[tokio::test]
async fn generated_selects_that_postgresql_accepts_stay_accepted() {
    /// Generated queries to try; parts combine freely, so most are not valid SQL.
    const CASES: usize = 4000;
    let db = common::TestDb::with_rows(1_000).await;
    let client = db.client().await;
    let mut runner = TestRunner::deterministic();
    let strategy = (select(), options());
    let (mut valid, mut failures) = (0, Vec::new());
    for _ in 0..CASES {
        let (sql, options) = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(mut statements) = parse_statements(&sql) else {
            continue;
        };
        if client.prepare(&sql).await.is_err() {
            continue; // not valid to begin with
        }
        valid += 1;
        let statement = statements.remove(0);
        let offline = rewrite_offline(&statement, &options);
        let server = rewrite::server::rewrite(&client, &statement, &options)
            .await
            .unwrap();
        for rewritten in [offline, server] {
            if let Err(e) = client.prepare(&rewritten.rewritten).await {
                failures.push(format!(
                    "{sql} ({options:?})\n  -> {}\n  {e}",
                    rewritten.rewritten
                ));
            }
            if rewritten
                .skipped
                .iter()
                .any(|s| s.reason.contains("server rejected"))
            {
                failures.push(format!(
                    "{sql}\n  the server rejected: {:?}",
                    rewritten.skipped
                ));
            }
        }
    }
    eprintln!("{valid} of {CASES} generated queries were valid");
    assert!(valid > 200, "only {valid} generated queries were valid");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
