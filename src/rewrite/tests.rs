//! The rules on data: exact rewrites, offline and with what a server would
//! say. (Validity against a real PostgreSQL: tests/rewrite_corpus.rs.)

use super::*;
use crate::sql::parse_statements;

fn rewrite_with(sql: &str, knowledge: &Knowledge) -> Rewrite {
    let statement = parse_statements(sql).unwrap().remove(0);
    rewrite(&statement, &RewriteOptions::default(), knowledge)
}

fn offline(sql: &str) -> Rewrite {
    rewrite_with(sql, &Knowledge::offline())
}

/// The fixture's tables as the server describes them.
fn server(result_columns: &[&str]) -> Knowledge {
    let table = |name: &str, columns: &[&str]| TableColumns {
        name: vec![name.into()],
        columns: columns.iter().map(|c| (*c).into()).collect(),
    };
    Knowledge {
        online: true,
        result_columns: Some(result_columns.iter().map(|c| (*c).into()).collect()),
        tables: vec![
            table(
                "payments",
                &["id", "user_id", "amount", "status", "created_at"],
            ),
            table("users", &["id", "email", "country", "created_at"]),
            table("audit", &["id", "note"]),
        ],
        notes: Vec::new(),
    }
}

fn reason(rewrite: &Rewrite, rule: Rule) -> &str {
    &rewrite
        .skipped
        .iter()
        .find(|s| s.rule == rule)
        .unwrap_or_else(|| panic!("{rule:?} was not skipped: {rewrite:#?}"))
        .reason
}

#[track_caller]
fn assert_rewritten(actual: &Rewrite, expected: &str) {
    assert_eq!(actual.rewritten, expected, "{actual:#?}");
}

#[test]
fn adds_order_by_then_limit_into_the_users_text() {
    let r =
        offline("select id, created_at\n  from payments -- newest?\n  where amount > $1::numeric");
    assert_rewritten(
        &r,
        "select id, created_at\n  from payments -- newest?\n  where amount > $1::numeric ORDER BY created_at DESC LIMIT 1000",
    );
    assert_eq!(r.changes.len(), 2);
    assert_eq!(
        r.changes[0].detail,
        "ORDER BY created_at DESC: created_at is a result column"
    );
    assert_eq!(r.changes[1].detail, "LIMIT 1000");
    assert!(r.skipped.is_empty());
}

#[test]
fn placement_follows_postgresql_grammar() {
    assert_rewritten(
        &offline("SELECT created_at FROM payments FOR UPDATE SKIP LOCKED"),
        "SELECT created_at FROM payments ORDER BY created_at DESC LIMIT 1000 FOR UPDATE SKIP LOCKED",
    );
    assert_rewritten(
        &offline("SELECT created_at FROM payments OFFSET 10"),
        "SELECT created_at FROM payments ORDER BY created_at DESC LIMIT 1000 OFFSET 10",
    );
    // OFFSET after the locking clause: the limit joins it there.
    assert_rewritten(
        &offline("SELECT created_at FROM payments FOR SHARE OFFSET 10"),
        "SELECT created_at FROM payments ORDER BY created_at DESC FOR SHARE LIMIT 1000 OFFSET 10",
    );
    let r = offline("SELECT created_at FROM payments ORDER BY id /* mine */ OFFSET 3 ROWS");
    assert_rewritten(
        &r,
        "SELECT created_at FROM payments ORDER BY id /* mine */ LIMIT 1000 OFFSET 3 ROWS",
    );
    assert_eq!(
        reason(&r, Rule::OrderBy),
        "kept the query's own ORDER BY id"
    );
    assert_eq!(
        r.changes[0].detail,
        "LIMIT 1000, before the query's own OFFSET"
    );
}

#[test]
fn the_users_own_limit_is_kept() {
    for (sql, kept) in [
        ("SELECT created_at FROM t LIMIT 5", "LIMIT 5"),
        ("SELECT created_at FROM t LIMIT ALL", "LIMIT ALL"),
        ("SELECT created_at FROM t limit all offset 2", "limit all"),
        ("SELECT created_at FROM t OFFSET 2 LIMIT $1", "LIMIT $1"),
        (
            "SELECT created_at FROM t FETCH FIRST 3 ROWS ONLY",
            "FETCH FIRST 3 ROWS ONLY",
        ),
        ("SELECT created_at FROM t FOR UPDATE LIMIT 1", "LIMIT 1"),
        ("(SELECT created_at FROM t LIMIT ALL)", "LIMIT ALL"),
    ] {
        let r = offline(sql);
        assert_eq!(
            reason(&r, Rule::Limit),
            format!("kept the query's own {kept}"),
            "{sql}"
        );
        assert!(!r.rewritten.contains("1000"), "{sql}: {r:#?}");
    }
    // ... and the ORDER BY still goes before it, in the user's text.
    assert_rewritten(
        &offline("SELECT created_at FROM t LIMIT ALL"),
        "SELECT created_at FROM t ORDER BY created_at DESC LIMIT ALL",
    );
    assert_rewritten(
        &offline("(SELECT created_at FROM t LIMIT ALL)"),
        "(SELECT created_at FROM t LIMIT ALL) ORDER BY created_at DESC",
    );
}

#[test]
fn a_limit_inside_a_subquery_is_not_the_top_level_limit() {
    assert_rewritten(
        &offline("WITH r AS (SELECT * FROM t LIMIT 5) SELECT * FROM (SELECT 1 LIMIT 1) s, r"),
        "WITH r AS (SELECT * FROM t LIMIT 5) SELECT * FROM (SELECT 1 LIMIT 1) s, r LIMIT 1000",
    );
    assert_rewritten(
        &offline("SELECT 'LIMIT 5', \"limit\" FROM t -- LIMIT 5"),
        "SELECT 'LIMIT 5', \"limit\" FROM t LIMIT 1000",
    );
}

#[test]
fn offline_order_by_needs_proof_in_the_sql() {
    let r = offline("SELECT * FROM payments WHERE user_id = $1");
    assert_rewritten(&r, "SELECT * FROM payments WHERE user_id = $1 LIMIT 1000");
    assert!(
        reason(&r, Rule::OrderBy).starts_with(
            "offline, nothing in the query shows that payments has a column created_at"
        ),
        "{r:#?}"
    );
    // Used in WHERE: the one FROM item has it; bare is unambiguous.
    assert_rewritten(
        &offline("SELECT * FROM payments WHERE created_at > now() - interval '1 day'"),
        "SELECT * FROM payments WHERE created_at > now() - interval '1 day' ORDER BY created_at DESC LIMIT 1000",
    );
    // Used qualified: qualified the same way.
    assert_rewritten(
        &offline(
            "SELECT p.id, u.email FROM payments p JOIN users u ON u.id = p.user_id AND p.created_at > $1",
        ),
        "SELECT p.id, u.email FROM payments p JOIN users u ON u.id = p.user_id AND p.created_at > $1 ORDER BY p.created_at DESC LIMIT 1000",
    );
    // Used unqualified among two FROM items: valid bare, as the query is.
    assert_rewritten(
        &offline("SELECT p.id FROM payments p, users u WHERE created_at > $1"),
        "SELECT p.id FROM payments p, users u WHERE created_at > $1 ORDER BY created_at DESC LIMIT 1000",
    );
    // Seen through a WITH query's `*`.
    assert_rewritten(
        &offline(
            "WITH recent AS (SELECT * FROM payments WHERE created_at > $1) SELECT * FROM recent",
        ),
        "WITH recent AS (SELECT * FROM payments WHERE created_at > $1) SELECT * FROM recent ORDER BY created_at DESC LIMIT 1000",
    );
}

#[test]
fn with_a_server_the_catalog_resolves_and_qualifies() {
    let r = rewrite_with(
        "SELECT * FROM payments WHERE user_id = $1",
        &server(&["id", "user_id", "amount", "status", "created_at"]),
    );
    assert_rewritten(
        &r,
        "SELECT * FROM payments WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1000",
    );
    // Both tables have created_at; the result has it twice: qualify with
    // the first FROM item.
    let r = rewrite_with(
        "SELECT * FROM payments p JOIN users u ON u.id = p.user_id",
        &server(&[
            "id",
            "user_id",
            "amount",
            "status",
            "created_at",
            "id",
            "email",
            "country",
            "created_at",
        ]),
    );
    assert_rewritten(
        &r,
        "SELECT * FROM payments p JOIN users u ON u.id = p.user_id ORDER BY p.created_at DESC LIMIT 1000",
    );
    assert_eq!(
        r.changes[0].detail,
        "ORDER BY p.created_at DESC: p (payments) has a column created_at; so does u (users), \
         and the first FROM item that has it was chosen"
    );
    // Only the second table has it.
    assert_rewritten(
        &rewrite_with(
            "SELECT a.note FROM audit a JOIN users ON true",
            &server(&["note"]),
        ),
        "SELECT a.note FROM audit a JOIN users ON true ORDER BY users.created_at DESC LIMIT 1000",
    );
    // Nobody has it.
    let r = rewrite_with("SELECT note FROM audit", &server(&["note"]));
    assert_eq!(
        reason(&r, Rule::OrderBy),
        "no FROM item has a column created_at"
    );
}

#[test]
fn order_by_is_never_added_where_it_would_be_invalid() {
    for (sql, why) in [
        (
            "SELECT count(*) FROM payments",
            "aggregates without GROUP BY",
        ),
        (
            "SELECT max(created_at) AS created_at FROM payments",
            "aggregates without GROUP BY",
        ),
        (
            "SELECT 1 FROM payments HAVING count(*) > 1",
            "aggregates without GROUP BY",
        ),
        (
            "SELECT DISTINCT ON (user_id) * FROM payments WHERE created_at > $1",
            "DISTINCT ON",
        ),
        (
            "SELECT DISTINCT status FROM payments WHERE created_at > $1",
            "SELECT DISTINCT",
        ),
        (
            "SELECT status, count(*) FROM payments WHERE created_at > $1 GROUP BY status",
            "groups by other columns",
        ),
        (
            "SELECT id FROM payments WHERE created_at > $1 UNION SELECT id FROM users",
            "a UNION can be ordered only by a result column",
        ),
        (
            "SELECT * FROM payments EXCEPT SELECT * FROM payments",
            "an EXCEPT",
        ),
        ("VALUES (1, 2)", "VALUES can be ordered only"),
        (
            "(SELECT id FROM payments WHERE created_at > $1)",
            "a query in parentheses",
        ),
        ("SELECT now()", "no FROM clause"),
    ] {
        let r = offline(sql);
        assert!(reason(&r, Rule::OrderBy).contains(why), "{sql}: {r:#?}");
        assert!(!r.rewritten.contains("ORDER BY created_at"), "{sql}");
    }
}

#[test]
fn order_by_a_result_column_is_valid_everywhere_it_is_allowed() {
    for (sql, rewritten) in [
        (
            "SELECT DISTINCT created_at FROM payments",
            "SELECT DISTINCT created_at FROM payments ORDER BY created_at DESC LIMIT 1000",
        ),
        (
            "SELECT created_at, count(*) FROM payments GROUP BY 1",
            "SELECT created_at, count(*) FROM payments GROUP BY 1 ORDER BY created_at DESC LIMIT 1000",
        ),
        (
            "SELECT created_at FROM payments UNION ALL SELECT created_at FROM users",
            "SELECT created_at FROM payments UNION ALL SELECT created_at FROM users ORDER BY created_at DESC LIMIT 1000",
        ),
        (
            "SELECT p.created_at::date FROM payments p",
            "SELECT p.created_at::date FROM payments p ORDER BY created_at DESC LIMIT 1000",
        ),
    ] {
        assert_rewritten(&offline(sql), rewritten);
    }
    // Grouped by the column itself, qualified as grouped.
    assert_rewritten(
        &offline("SELECT count(*) FROM payments p GROUP BY p.created_at"),
        "SELECT count(*) FROM payments p GROUP BY p.created_at ORDER BY p.created_at DESC LIMIT 1000",
    );
    // Two result columns named created_at: ambiguous bare, so qualified.
    assert_rewritten(
        &offline("SELECT p.created_at, u.created_at FROM payments p JOIN users u ON true"),
        "SELECT p.created_at, u.created_at FROM payments p JOIN users u ON true ORDER BY p.created_at DESC LIMIT 1000",
    );
}

#[test]
fn non_queries_are_left_alone_with_the_reason() {
    for (sql, what) in [
        (
            "INSERT INTO t SELECT * FROM u",
            "it is an INSERT, not a query",
        ),
        ("UPDATE t SET a = 1", "it is an UPDATE, not a query"),
        ("DELETE FROM t", "it is a DELETE, not a query"),
        (
            "WITH d AS (SELECT 1) DELETE FROM t",
            "it is a DELETE, not a query",
        ),
        ("DROP TABLE t", "it is a DROP TABLE, not a query"),
        ("SELECT * INTO t2 FROM t", "SELECT INTO creates a table"),
    ] {
        let r = offline(sql);
        assert_eq!(r.rewritten, r.original);
        assert!(reason(&r, Rule::OrderBy).starts_with(what), "{sql}: {r:#?}");
        assert!(reason(&r, Rule::Limit).starts_with(what), "{sql}: {r:#?}");
    }
    // A data-modifying WITH under a SELECT is still a query to bound.
    assert_rewritten(
        &offline("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d LIMIT 1000",
    );
}

#[test]
fn disabled_rules_are_reported_as_disabled() {
    let statement = parse_statements("SELECT created_at FROM t")
        .unwrap()
        .remove(0);
    let options = RewriteOptions {
        limit: None,
        order_by: None,
    };
    let r = rewrite(&statement, &options, &Knowledge::offline());
    assert_eq!(r.rewritten, r.original);
    assert_eq!(reason(&r, Rule::OrderBy), "disabled by --no-order-by");
    assert_eq!(reason(&r, Rule::Limit), "disabled by --no-limit");
    let options = RewriteOptions {
        limit: Some(7),
        order_by: Some("\"Id\" ASC".parse().unwrap()),
    };
    let statement = parse_statements("SELECT \"Id\" FROM t").unwrap().remove(0);
    assert_eq!(
        rewrite(&statement, &options, &Knowledge::offline()).rewritten,
        "SELECT \"Id\" FROM t ORDER BY \"Id\" ASC LIMIT 7"
    );
}

#[test]
fn a_server_note_goes_with_the_order_by_decision() {
    let knowledge = Knowledge {
        online: true,
        notes: vec![
            "the server could not describe the query: relation \"t\" does not exist".into(),
        ],
        ..Knowledge::offline()
    };
    let r = rewrite_with("SELECT * FROM t", &knowledge);
    assert!(
        reason(&r, Rule::OrderBy)
            .ends_with("(the server could not describe the query: relation \"t\" does not exist)"),
        "{r:#?}"
    );
}

#[test]
fn rewriting_twice_changes_nothing() {
    for sql in [
        "SELECT created_at FROM payments OFFSET 5",
        "SELECT * FROM payments WHERE created_at > $1 FOR UPDATE",
        "(SELECT created_at FROM t) UNION (SELECT created_at FROM u)",
        "SELECT * FROM payments",
    ] {
        let once = offline(sql);
        let twice = offline(&once.rewritten);
        assert_eq!(twice.rewritten, once.rewritten, "{sql}");
        assert!(!twice.changed(), "{sql}: {twice:#?}");
    }
}

#[test]
fn the_deepest_statements_the_parser_takes_rewrite_without_overflow() {
    // Run in a test thread's 2 MiB stack, unoptimized: the worst case.
    let chain = format!(
        "SELECT created_at FROM payments WHERE amount > 1{} AND created_at::date::text::date > $1",
        " + 1".repeat(9_000)
    );
    let nested = format!(
        "SELECT * FROM {}payments{} WHERE created_at > $1",
        "(SELECT * FROM ".repeat(60),
        ") s".repeat(60)
    );
    let parens = format!(
        "{}SELECT created_at FROM t{}",
        "(".repeat(150),
        ")".repeat(150)
    );
    for sql in [chain, nested, parens] {
        let r = offline(&sql);
        assert!(
            r.rewritten
                .ends_with(" ORDER BY created_at DESC LIMIT 1000"),
            "{r:?}"
        );
    }
}
