//! The rewriter against a real PostgreSQL: a corpus of queries over the
//! payments fixture (`payments` and `users`, both with a `created_at`), each
//! rewritten offline and with the server's knowledge, with
//!
//! - the expected decision of each rule, in both modes;
//! - every rewritten query accepted by PostgreSQL (plain EXPLAIN);
//! - rewriting the rewrite changing nothing;
//! - where ORDER BY was added, the rewritten query returning a subset of
//!   the original's rows;
//!
//! and statements where the SQL writes the column's name without proving
//! that a FROM item has it (once), each rewritten offline into SQL the
//! server accepts, or left without an ORDER BY and the reason why.

mod common;

use perfaudit::rewrite::{self, Knowledge, Rewrite, RewriteOptions, Rule};
use perfaudit::sql::{Class, SqlStatement, parse_statements};
use tokio_postgres::Client;

/// Objects beyond the fixture: mixed-case and schema-qualified names,
/// JSON and arrays.
const SETUP: &str = r#"
    CREATE SCHEMA audit;
    CREATE TABLE audit."Events" (
        "Id" int PRIMARY KEY,
        "CreatedAt" timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(),
        payload jsonb NOT NULL DEFAULT '{}',
        tags text[] NOT NULL DEFAULT '{}'
    );
    INSERT INTO audit."Events" ("Id", payload, tags)
    SELECT g, jsonb_build_object('kind', 'k' || g % 3, 'a', jsonb_build_object('b', g)),
           ARRAY['x', 't' || g]
    FROM generate_series(1, 50) AS g;
"#;

/// Each case: the SQL, then the expected decisions offline and with the
/// server, each as `<order-by> | <limit>`: `+text` added (the detail starts
/// with `text`), `-text` skipped (the reason contains `text`). `=` for the
/// server means: as offline.
const CORPUS: &[(&str, &str, &str)] = &[
    // Plain queries over one table.
    (
        "SELECT * FROM payments",
        "-nothing in the query shows that payments has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, amount FROM payments WHERE status = 'pending'",
        "-nothing in the query shows | +",
        "+ORDER BY created_at DESC: payments has a column | +",
    ),
    (
        "SELECT id, created_at FROM payments",
        "+ORDER BY created_at DESC: created_at is a result column | +LIMIT 1000",
        "=",
    ),
    (
        "select id from payments where created_at > now() - interval '30 days'",
        "+ORDER BY created_at DESC: payments has a column created_at (the query itself uses it) | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT * FROM payments WHERE created_at >= '2024-01-01'::timestamptz AND status = 'completed'",
        "+ORDER BY created_at DESC | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    (
        "SELECT p.* FROM payments p WHERE p.created_at > now() - interval '7 days'",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT amount AS created_at FROM payments",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    (
        "SELECT id, amount * 2 AS doubled FROM payments WHERE user_id = 42",
        "-nothing in the query shows | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments p",
        "-nothing in the query shows that p (payments) has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT lower(status) FROM payments",
        "-nothing in the query shows | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT created_at::date AS day, amount FROM payments",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT * FROM payments WHERE id = 424",
        "-nothing in the query shows | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT external_ref, description FROM payments WHERE description IS NOT NULL",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    ("SELECT 1", "-no FROM clause | +", "="),
    (
        "SELECT now() AS created_at",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM users WHERE country = 'DE'",
        "-nothing in the query shows that users has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT email FROM users u WHERE u.created_at < now()",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT * FROM payments WHERE user_id = 42 AND status IN ('pending', 'failed')",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, updated_at FROM payments WHERE updated_at > created_at",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT count(*) OVER (), id FROM payments",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, created_at AT TIME ZONE 'UTC' AS utc FROM payments",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM payments WHERE created_at::date = current_date - 1",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT Id, Created_At FROM Payments",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    (
        "SELECT id, CAST(amount AS integer), created_at::date FROM payments",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    // Joins: both tables have created_at.
    (
        "SELECT p.id, u.email FROM payments p JOIN users u ON u.id = p.user_id",
        "-nothing in the query shows that p (payments) or u (users) has | +",
        "+ORDER BY p.created_at DESC: p (payments) has a column created_at; so does u (users) | +",
    ),
    (
        "SELECT * FROM payments p JOIN users u ON u.id = p.user_id",
        "-nothing | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT u.*, p.amount FROM users u JOIN payments p ON p.user_id = u.id WHERE p.status = 'failed'",
        "-nothing | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    (
        "SELECT p.id FROM payments p LEFT JOIN users u ON u.id = p.user_id WHERE u.created_at > now() - interval '1 year'",
        "+ORDER BY u.created_at DESC: u (users) has a column created_at (the query itself uses it) | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT p.id, p.created_at, u.created_at FROM payments p JOIN users u ON u.id = p.user_id",
        "+ORDER BY p.created_at DESC | +",
        "=",
    ),
    (
        "SELECT u.email, count(*) FROM users u JOIN payments p ON p.user_id = u.id GROUP BY u.email",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT * FROM payments JOIN users USING (id)",
        "-nothing | +",
        "+ORDER BY payments.created_at DESC | +",
    ),
    (
        "SELECT p.id FROM payments p, users u WHERE u.id = p.user_id AND p.created_at > u.created_at",
        "+ORDER BY p.created_at DESC | +",
        "=",
    ),
    (
        "SELECT p.id FROM payments p CROSS JOIN LATERAL (SELECT email FROM users WHERE id = p.user_id) e",
        "-nothing in the query shows that p (payments) has | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT p.id, s.total FROM payments p JOIN (SELECT user_id, sum(amount) AS total FROM payments GROUP BY user_id) s ON s.user_id = p.user_id",
        "-nothing | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id AND p.created_at > now() - interval '1 day')",
        "-nothing in the query shows that u (users) has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT u.id FROM users u WHERE u.id IN (SELECT user_id FROM payments WHERE created_at > now() - interval '1 day')",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT a.id, b.id FROM payments a JOIN payments b ON a.user_id = b.user_id AND a.id < b.id WHERE a.user_id = 7",
        "-nothing | +",
        "+ORDER BY a.created_at DESC | +",
    ),
    (
        "SELECT p.id FROM payments p NATURAL JOIN users u",
        "-nothing | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT * FROM payments p FULL JOIN users u ON u.id = p.user_id WHERE p.id < 100",
        "-nothing | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT pid FROM payments AS p(pid, uid) WHERE uid = 3",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT g FROM generate_series(1, 3) g, payments p WHERE created_at > now() - interval '1 day'",
        "+ORDER BY created_at DESC: the query itself uses created_at unqualified | +",
        "+ORDER BY p.created_at DESC | +",
    ),
    (
        "SELECT * FROM generate_series(1, 3) g, payments p WHERE created_at > now() - interval '1 day'",
        "-the query uses created_at unqualified, but offline it is not known which FROM item has it | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    // The query's own clauses.
    (
        "SELECT * FROM payments LIMIT 10",
        "-nothing | -kept the query's own LIMIT 10",
        "+ORDER BY created_at DESC | -kept the query's own LIMIT 10",
    ),
    (
        "SELECT * FROM payments LIMIT ALL",
        "-nothing | -kept the query's own LIMIT ALL",
        "+ORDER BY created_at DESC | -kept the query's own LIMIT ALL",
    ),
    (
        "SELECT * FROM payments ORDER BY id",
        "-kept the query's own ORDER BY id | +LIMIT 1000",
        "=",
    ),
    (
        "SELECT * FROM payments ORDER BY id LIMIT 5",
        "-kept the query's own ORDER BY id | -kept the query's own LIMIT 5",
        "=",
    ),
    (
        "SELECT * FROM payments OFFSET 100",
        "-nothing | +LIMIT 1000, before the query's own OFFSET",
        "+ORDER BY created_at DESC | +LIMIT 1000, before",
    ),
    (
        "SELECT * FROM payments ORDER BY created_at OFFSET 10 ROWS",
        "-kept the query's own ORDER BY created_at | +LIMIT 1000, before the query's own OFFSET",
        "=",
    ),
    (
        "SELECT * FROM payments FETCH FIRST 5 ROWS ONLY",
        "-nothing | -kept the query's own FETCH FIRST 5 ROWS ONLY",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments ORDER BY amount DESC FETCH FIRST 3 ROWS WITH TIES",
        "-kept the query's own ORDER BY amount DESC | -kept the query's own FETCH FIRST 3 ROWS WITH TIES",
        "=",
    ),
    (
        "SELECT * FROM payments OFFSET 5 ROWS FETCH NEXT 5 ROWS ONLY",
        "-nothing | -kept the query's own FETCH NEXT 5 ROWS ONLY",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments WHERE status = 'pending' FOR UPDATE",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT * FROM payments WHERE created_at > now() - interval '1 hour' FOR UPDATE SKIP LOCKED",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM payments FOR SHARE OF payments NOWAIT",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT * FROM payments p FOR SHARE OF p",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT * FROM payments FOR UPDATE LIMIT 1",
        "-nothing | -kept the query's own LIMIT 1",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments FOR UPDATE OFFSET 3",
        "-nothing | +LIMIT 1000, before the query's own OFFSET",
        "+ORDER BY created_at DESC | +LIMIT 1000, before",
    ),
    (
        "SELECT * FROM payments LIMIT 5 OFFSET 5",
        "-nothing | -kept the query's own LIMIT 5",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments OFFSET 5 LIMIT 5",
        "-nothing | -kept the query's own LIMIT 5",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT id FROM payments LIMIT $1",
        "-nothing | -kept the query's own LIMIT $1",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT id FROM payments ORDER BY created_at DESC NULLS LAST",
        "-kept the query's own ORDER BY created_at DESC NULLS LAST | +",
        "=",
    ),
    (
        "SELECT id FROM payments order by 1",
        "-kept the query's own order by 1 | +",
        "=",
    ),
    (
        "SELECT id FROM payments LIMIT (SELECT 5)",
        "-nothing | -kept the query's own LIMIT (SELECT 5)",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments limit all offset 0",
        "-nothing | -kept the query's own limit all",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT id FROM payments LIMIT NULL",
        "-nothing | -kept the query's own LIMIT NULL",
        "+ORDER BY created_at DESC | -kept",
    ),
    (
        "SELECT * FROM payments WHERE created_at > $1 FOR UPDATE OF payments SKIP LOCKED",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    // Aggregates, grouping, DISTINCT, windows.
    (
        "SELECT count(*) FROM payments",
        "-aggregates without GROUP BY | -aggregates without GROUP BY, so it returns at most one row",
        "=",
    ),
    (
        "SELECT sum(amount), avg(amount) FROM payments WHERE status = 'completed'",
        "-aggregates without GROUP BY | -aggregates",
        "=",
    ),
    (
        "SELECT count(*) FILTER (WHERE status = 'failed') FROM payments",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT max(created_at) AS created_at FROM payments",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT string_agg(status, ',' ORDER BY created_at) FROM payments WHERE user_id = 1",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM payments",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT 1 FROM payments HAVING count(*) > 0",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT count(DISTINCT user_id) FROM payments",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT array_agg(id) FROM payments WHERE user_id = 9",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT json_agg(p) FROM payments p WHERE p.id < 10",
        "-aggregates | -aggregates",
        "=",
    ),
    (
        "SELECT status, count(*) FROM payments GROUP BY status",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT created_at, count(*) FROM payments GROUP BY created_at",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    (
        "SELECT count(*) FROM payments GROUP BY created_at",
        "+ORDER BY created_at DESC: the query groups by created_at | +",
        "=",
    ),
    (
        "SELECT count(*) FROM payments p GROUP BY p.created_at",
        "+ORDER BY p.created_at DESC: the query groups by created_at | +",
        "=",
    ),
    (
        "SELECT date_trunc('day', created_at) AS day, count(*) FROM payments GROUP BY 1",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT user_id, status, count(*) FROM payments GROUP BY ROLLUP (user_id, status)",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT status FROM payments GROUP BY status HAVING count(*) > 10",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT user_id, count(*) FROM payments GROUP BY user_id HAVING max(created_at) > now() - interval '1 day'",
        "-groups by other columns | +",
        "=",
    ),
    (
        "SELECT status, count(*) AS created_at FROM payments GROUP BY status",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    (
        "SELECT DISTINCT status FROM payments",
        "-SELECT DISTINCT can be ordered only by its result columns, and created_at is not one of them | +",
        "=",
    ),
    (
        "SELECT DISTINCT p.created_at, u.created_at FROM payments p JOIN users u ON u.id = p.user_id",
        "-SELECT DISTINCT can be ordered only by its result columns, and 2 result columns are named created_at, so the name is ambiguous | +",
        "=",
    ),
    (
        "SELECT DISTINCT created_at FROM payments WHERE user_id = 1",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT DISTINCT ON (user_id) user_id, amount FROM payments ORDER BY user_id, created_at DESC",
        "-kept the query's own ORDER BY user_id, created_at DESC | +",
        "=",
    ),
    (
        "SELECT DISTINCT ON (user_id) user_id, created_at FROM payments",
        "-DISTINCT ON needs an ORDER BY | +",
        "=",
    ),
    (
        "SELECT DISTINCT * FROM users",
        "-SELECT DISTINCT can be ordered only by its result columns, and created_at is not known to be | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    (
        "SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY created_at) FROM payments WHERE user_id = 5",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id, rank() OVER w FROM payments WINDOW w AS (ORDER BY amount DESC)",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, sum(amount) OVER (ORDER BY created_at) AS running FROM payments WHERE user_id = 3",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT (SELECT max(amount) FROM payments), id FROM users",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT u.*, (SELECT max(amount) FROM payments WHERE user_id = u.id) FROM users u WHERE u.id < 100",
        "-nothing | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    // Set operations, VALUES, parentheses.
    (
        "SELECT id FROM payments UNION SELECT id FROM users",
        "-a UNION can be ordered only by a result column, and created_at is not one | +",
        "=",
    ),
    (
        "SELECT id, created_at FROM payments UNION ALL SELECT id, created_at FROM users",
        "+ORDER BY created_at DESC: created_at is a result column | +",
        "=",
    ),
    (
        "SELECT created_at FROM payments INTERSECT SELECT created_at FROM users",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT * FROM payments EXCEPT SELECT * FROM payments WHERE status = 'completed'",
        "-an EXCEPT can be ordered only by a result column, and offline its result columns are not all known | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "(SELECT id, created_at FROM payments ORDER BY created_at LIMIT 5) UNION ALL (SELECT id, created_at FROM users ORDER BY created_at LIMIT 5)",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM payments UNION SELECT id FROM users ORDER BY id",
        "-kept the query's own ORDER BY id | +",
        "=",
    ),
    (
        "SELECT id FROM payments UNION SELECT id FROM users LIMIT 3",
        "-a UNION | -kept the query's own LIMIT 3",
        "=",
    ),
    (
        "VALUES (1, 'a'), (2, 'b')",
        "-VALUES can be ordered only by a result column, and created_at is not one | +",
        "=",
    ),
    (
        "VALUES (1), (2) ORDER BY 1",
        "-kept the query's own ORDER BY 1 | +",
        "=",
    ),
    (
        "VALUES (1) LIMIT 1",
        "-VALUES | -kept the query's own LIMIT 1",
        "=",
    ),
    (
        "(SELECT * FROM payments WHERE user_id = 1)",
        "-a query in parentheses can be ordered only by a result column, and offline | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "(SELECT id FROM payments LIMIT 5)",
        "-a query in parentheses can be ordered only by a result column, and created_at is not one | -kept the query's own LIMIT 5",
        "=",
    ),
    (
        "((SELECT created_at FROM payments) ORDER BY 1) LIMIT 4",
        "-kept the query's own ORDER BY 1 | -kept the query's own LIMIT 4",
        "=",
    ),
    (
        "(SELECT created_at FROM payments) UNION (SELECT created_at FROM users) ORDER BY 1 LIMIT 2",
        "-kept | -kept",
        "=",
    ),
    (
        "SELECT 1 UNION SELECT 2 UNION SELECT 3",
        "-a UNION | +",
        "=",
    ),
    (
        "SELECT created_at FROM payments UNION SELECT created_at FROM users EXCEPT SELECT now()",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    // WITH queries, subqueries, LATERAL.
    (
        "WITH recent AS (SELECT * FROM payments WHERE created_at > now() - interval '7 days') SELECT * FROM recent",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "WITH recent AS (SELECT id, amount FROM payments) SELECT * FROM recent",
        "-no FROM item has a column created_at | +",
        "=",
    ),
    (
        "WITH r AS (SELECT user_id, max(created_at) AS created_at FROM payments GROUP BY user_id) SELECT u.email FROM r JOIN users u ON u.id = r.user_id",
        "+ORDER BY r.created_at DESC: r has a column created_at | +",
        "+ORDER BY r.created_at DESC: r has a column created_at; so does u (users) | +",
    ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n",
        "-no FROM item has a column created_at | +",
        "=",
    ),
    (
        "WITH p AS MATERIALIZED (SELECT * FROM payments) SELECT * FROM p WHERE p.created_at > now() - interval '1 day'",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "WITH u AS (SELECT * FROM users) SELECT * FROM u JOIN payments p ON p.user_id = u.id",
        "-nothing | +",
        "+ORDER BY u.created_at DESC | +",
    ),
    (
        "SELECT * FROM (SELECT id, created_at FROM payments WHERE user_id = 1) s",
        "+ORDER BY created_at DESC: s has a column created_at | +",
        "+ORDER BY created_at DESC: created_at is a result column | +",
    ),
    (
        "SELECT s.id FROM (SELECT id FROM payments) s",
        "-no FROM item has a column created_at | +",
        "=",
    ),
    (
        "SELECT * FROM (SELECT * FROM payments) AS s(pid)",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT * FROM generate_series(1, 10) AS g(n)",
        "-nothing in the query shows that g has | +",
        "-the server's catalog does not say whether g has | +",
    ),
    (
        "SELECT * FROM payments p, LATERAL (SELECT count(*) AS n FROM payments q WHERE q.user_id = p.user_id) c WHERE p.id < 50",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT x FROM unnest(ARRAY[1, 2, 3]) AS x",
        "-nothing | +",
        "-does not say whether x has | +",
    ),
    (
        "SELECT * FROM payments WHERE user_id IN (SELECT id FROM users WHERE created_at > now() - interval '30 days')",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "WITH d AS (DELETE FROM payments WHERE id = -1 RETURNING *) SELECT * FROM d",
        "-nothing in the query shows that d has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "WITH i AS (INSERT INTO users VALUES (99999, 'x@example.com', 'US', now()) RETURNING id) SELECT id FROM i",
        "-nothing | +",
        "-does not say whether i has | +",
    ),
    (
        "SELECT * FROM (VALUES (1, now())) AS v(id, created_at)",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM payments WHERE amount > (SELECT avg(amount) FROM payments)",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    // Meaning survives: parameters, quoting, casts, arrays, JSON, comments.
    (
        "SELECT * FROM payments WHERE user_id = $1",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE status = $1 AND amount > $2::numeric",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, amount FROM payments WHERE created_at BETWEEN $1 AND $2",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM payments WHERE amount = ANY($1::numeric[])",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT "Id", "CreatedAt" FROM audit."Events""#,
        "-nothing in the query shows that \"Events\" (audit.\"Events\") has | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT "E"."Id" FROM audit."Events" "E" WHERE "E".created_at > now() - interval '1 day'"#,
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        r#"SELECT * FROM AUDIT."Events""#,
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT payload->>'kind' AS kind, payload #> '{a,b}' FROM audit."Events" WHERE payload @> '{"kind": "k1"}'::jsonb"#,
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT tags[1], array_length(tags, 1) FROM audit."Events" WHERE 'x' = ANY(tags)"#,
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT "Id" FROM audit."Events" ORDER BY "CreatedAt""#,
        r#"-kept the query's own ORDER BY "CreatedAt" | +"#,
        "=",
    ),
    (
        "SELECT id FROM payments WHERE external_ref IS DISTINCT FROM NULL AND user_id = 5",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE status IS NOT DISTINCT FROM 'failed' AND amount > 100 OR user_id = 3",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, amount::text || ' ' || currency AS label FROM payments",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE description LIKE '%LIMIT 5%' -- ORDER BY x",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id /* LIMIT 1 */ FROM payments /* ORDER BY id */ WHERE user_id = 3",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r"SELECT $$ORDER BY$$ AS x, E'LIMIT\'s' AS y, $q$;$q$ AS z FROM payments WHERE id < 3",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "select id from payments where created_at > now() - interval '1 day' for update",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id,\n       -- the amount, LIMIT 5\n       amount\nFROM payments\nWHERE created_at > now() - interval '1 day' -- recent",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT id FROM public.payments WHERE public.payments.created_at > now()",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT p.id FROM public.payments p",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        r#"SELECT "user_id", "status" FROM "payments""#,
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT ARRAY[1, 2] || ARRAY[id] AS ids FROM payments WHERE id < 5",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT to_jsonb(p) - 'id' FROM payments p WHERE p.user_id = 1",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE (status, currency) = ('failed', 'USD')",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT 'it''s' AS quote, id FROM payments WHERE id = 1",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE amount > 10 AND NOT (status = 'failed' OR status = 'refunded')",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT COALESCE(description, '') AS d FROM payments WHERE method = 'card'",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE status ~ '^fail' AND user_id % 2 = 0",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id, (SELECT email FROM users u WHERE u.id = p.user_id) FROM payments p WHERE p.id < 10",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM payments WHERE created_at > now() - make_interval(days => 3)",
        "+ORDER BY created_at DESC | +",
        "=",
    ),
    (
        "SELECT CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size FROM payments",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    (
        "SELECT id FROM ONLY payments WHERE id < 10",
        "-nothing | +",
        "+ORDER BY created_at DESC | +",
    ),
    // Not queries: classified and left as they are.
    (
        "INSERT INTO users VALUES (100000, 'a@example.com', 'US', now())",
        "-it is an INSERT, not a query | -it is an INSERT, not a query",
        "=",
    ),
    (
        "UPDATE payments SET status = 'failed' WHERE id = 1",
        "-it is an UPDATE, not a query | -not a query",
        "=",
    ),
    (
        "DELETE FROM payments WHERE id = 1",
        "-it is a DELETE, not a query | -not a query",
        "=",
    ),
    (
        "MERGE INTO users u USING (SELECT 1 AS id) s ON u.id = s.id WHEN MATCHED THEN DO NOTHING",
        "-it is a MERGE, not a query | -not a query",
        "=",
    ),
    (
        "WITH s AS (SELECT 1) UPDATE payments SET amount = amount WHERE id = 1",
        "-it is an UPDATE, not a query | -not a query",
        "=",
    ),
    (
        "INSERT INTO users SELECT * FROM users LIMIT 0",
        "-it is an INSERT | -it is an INSERT",
        "=",
    ),
    (
        "SELECT * INTO TEMP copy FROM payments",
        "-SELECT INTO creates a table | -SELECT INTO creates a table",
        "=",
    ),
    (
        "CREATE TABLE t2 AS SELECT * FROM payments",
        "-it is a CREATE TABLE, not a query | -not a query",
        "=",
    ),
    (
        "CREATE INDEX ON payments (created_at)",
        "-it is a CREATE INDEX, not a query | -not a query",
        "=",
    ),
    (
        "DROP TABLE payments",
        "-it is a DROP TABLE, not a query | -not a query",
        "=",
    ),
    (
        "SET work_mem = '64MB'",
        "-it is a SET, not a query | -not a query",
        "=",
    ),
    (
        "EXPLAIN SELECT * FROM payments",
        "-it is an EXPLAIN, not a query | -not a query",
        "=",
    ),
    (
        "VACUUM payments",
        "-it is a VACUUM, not a query | -not a query",
        "=",
    ),
    (
        "COPY payments TO STDOUT",
        "-it is a COPY, not a query | -not a query",
        "=",
    ),
    (
        "TRUNCATE payments",
        "-it is a TRUNCATE, not a query | -not a query",
        "=",
    ),
];

#[tokio::test]
async fn the_corpus_rewrites_as_expected_and_postgresql_accepts_every_rewrite() {
    assert!(CORPUS.len() >= 150, "{} cases", CORPUS.len());
    let db = common::TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.unwrap();
    let options = RewriteOptions::default();
    let mut failures = Vec::new();
    let mut subsets = 0;
    for &(sql, offline_expected, server_expected) in CORPUS {
        let statement = match parse_statements(sql) {
            Ok(mut statements) => statements.remove(0),
            Err(e) => {
                failures.push(format!("{sql}\n  does not parse: {e}"));
                continue;
            }
        };
        let offline = rewrite::rewrite(&statement, &options, &Knowledge::offline());
        let server = rewrite::server::rewrite(&client, &statement, &options)
            .await
            .unwrap();
        let server_expected = match server_expected {
            "=" => offline_expected,
            other => other,
        };
        for (mode, rewrite, expected) in [
            ("offline", &offline, offline_expected),
            ("server", &server, server_expected),
        ] {
            let mut problems = decisions(rewrite, expected);
            if rewrite
                .skipped
                .iter()
                .any(|s| s.reason.contains("server rejected"))
            {
                problems.push("the server rejected the first rewrite".into());
            }
            if !is_query(&statement) {
                assert_eq!(rewrite.rewritten, sql, "{sql}");
            } else {
                problems.extend(explain(&client, &rewrite.rewritten).await.err());
                problems.extend(idempotent(rewrite));
                if adds_order_by(rewrite) && subset_applies(&statement) {
                    match subset(&client, &statement.text, &rewrite.rewritten).await {
                        Ok(()) => subsets += 1,
                        Err(problem) => problems.push(problem),
                    }
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{sql}\n  {mode}: {}\n  rewritten: {}\n  changes: {:?}\n  skipped: {:?}",
                    problems.join("; "),
                    rewrite.rewritten,
                    rewrite.changes,
                    rewrite.skipped
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(subsets > 100, "only {subsets} subset checks ran");
}

fn is_query(statement: &SqlStatement) -> bool {
    matches!(statement.ast, sqlparser::ast::Statement::Query(_))
}

/// Whether the subset check applies: the original's result is a fixed set
/// (no LIMIT, OFFSET or FETCH of its own, which pick arbitrary rows
/// without an ORDER BY), and it can run as a subquery (no parameters, no
/// data-modifying WITH; row locks are fine).
fn subset_applies(statement: &SqlStatement) -> bool {
    let sqlparser::ast::Statement::Query(query) = &statement.ast else {
        return false;
    };
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return false;
    }
    let parameters = statement
        .tokens
        .iter()
        .any(|t| matches!(t.token, sqlparser::tokenizer::Token::Placeholder(_)));
    let modifying = match &statement.class {
        Class::Write { reasons } => reasons.iter().any(|r| !r.ends_with("takes row locks")),
        _ => false,
    };
    !parameters && !modifying
}

/// Compares the decisions with `<order-by> | <limit>` (see [`CORPUS`]).
fn decisions(rewrite: &Rewrite, expected: &str) -> Vec<String> {
    let (order, limit) = expected.split_once(" | ").expect("`<order-by> | <limit>`");
    let mut problems = Vec::new();
    for (rule, expected) in [(Rule::OrderBy, order), (Rule::Limit, limit)] {
        let change = rewrite.changes.iter().find(|c| c.rule == rule);
        let skip = rewrite.skipped.iter().find(|s| s.rule == rule);
        let ok = match (expected.split_at(1), change, skip) {
            (("+", text), Some(change), None) => change.detail.starts_with(text),
            (("-", text), None, Some(skip)) => skip.reason.contains(text),
            _ => false,
        };
        if !ok {
            problems.push(format!("{} expected {expected}", rule.name()));
        }
    }
    problems
}

fn adds_order_by(rewrite: &Rewrite) -> bool {
    rewrite.changes.iter().any(|c| c.rule == Rule::OrderBy)
}

/// Rewriting the rewrite changes nothing.
fn idempotent(first: &Rewrite) -> Option<String> {
    let statement = parse_statements(&first.rewritten).ok()?.remove(0);
    let again = rewrite::rewrite(
        &statement,
        &RewriteOptions::default(),
        &Knowledge::offline(),
    );
    (again.changed() || again.rewritten != first.rewritten)
        .then(|| format!("rewriting again changed it: {again:?}"))
}

/// Plain EXPLAIN of `sql`; a statement with parameters is prepared and
/// explained with its generic plan.
async fn explain(client: &Client, sql: &str) -> Result<(), String> {
    let failed = |e: tokio_postgres::Error| format!("PostgreSQL rejected it: {}", message(&e));
    let params = client.prepare(sql).await.map_err(failed)?.params().len();
    if params == 0 {
        return client
            .batch_execute(&format!("EXPLAIN {sql}"))
            .await
            .map_err(failed);
    }
    let nulls = vec!["NULL"; params].join(", ");
    let result = client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE corpus AS {sql}; \
             EXPLAIN EXECUTE corpus({nulls})"
        ))
        .await;
    client
        .batch_execute("DEALLOCATE ALL; RESET plan_cache_mode")
        .await
        .unwrap();
    result.map_err(failed)
}

/// The rewritten query's rows are a sub-multiset of the original's (both
/// run in a transaction that is rolled back).
async fn subset(client: &Client, original: &str, rewritten: &str) -> Result<(), String> {
    let check = format!(
        "SELECT count(*) FROM (SELECT r::text FROM ({rewritten}) r \
         EXCEPT ALL SELECT o::text FROM ({original}) o) extra"
    );
    client.batch_execute("BEGIN").await.unwrap();
    let result = client.query_one(&check, &[]).await;
    client.batch_execute("ROLLBACK").await.unwrap();
    match result {
        Ok(row) if row.get::<_, i64>(0) == 0 => Ok(()),
        Ok(row) => Err(format!(
            "{} rows of the rewrite are not in the original's result",
            row.get::<_, i64>(0)
        )),
        Err(e) => Err(format!("the subset check failed: {}", message(&e))),
    }
}

fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned())
}

/// The objects the statements of [`EVIDENCE`] need beyond the fixture: a
/// second table with a `created_at`, a function with an argument named so
/// and one with a result column named so, composite values with fields
/// named so, an array column named so, and a table whose rows have no
/// order (a `json` column).
const EVIDENCE_SETUP: &str = r#"
    CREATE TABLE refunds (
        id bigint PRIMARY KEY,
        payment_id bigint NOT NULL,
        amount numeric(12, 2) NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE FUNCTION report(created_at timestamptz) RETURNS TABLE (day date, total numeric)
    LANGUAGE sql AS $$ SELECT created_at::date, 0::numeric $$;
    CREATE FUNCTION recent(since timestamptz) RETURNS TABLE (id bigint, created_at timestamptz)
    LANGUAGE sql AS $$ SELECT id, created_at FROM payments WHERE created_at > since $$;
    CREATE TYPE stamp AS (created_at timestamptz, note text);
    CREATE TYPE envelope AS (info stamp, kind text);
    CREATE TABLE events (
        id bigint PRIMARY KEY,
        payload envelope NOT NULL,
        "Payload" envelope NOT NULL,
        stamps stamp[] NOT NULL,
        extra json NOT NULL DEFAULT '{}'
    );
    CREATE TABLE batches (
        id bigint PRIMARY KEY,
        created_at timestamptz[] NOT NULL,
        "CreatedAt" timestamptz[] NOT NULL
    );
"#;

/// Statements whose SQL writes the name of the column to order by where it
/// proves nothing, or less than it seems to, about the FROM items. Each is
/// valid; most were rewritten offline into SQL PostgreSQL rejects (issue
/// 14), the others show what still proves a column. Each case: the SQL,
/// the `--order-by`, and the ORDER BY decision offline: `+text` added (the
/// detail starts with `text`), `-text` skipped (the reason contains
/// `text`).
const EVIDENCE: &[(&str, &str, &str)] = &[
    // A named argument is no column.
    (
        "SELECT * FROM report(created_at => now())",
        "created_at DESC",
        "-offline, nothing in the query shows that report has a column created_at \
         (created_at is written as the name of a function's argument, not a column)",
    ),
    (
        "SELECT * FROM report(created_at := now()) r",
        "created_at DESC",
        "-nothing in the query shows that r has a column created_at (created_at is written as \
         the name of a function's argument",
    ),
    (
        r#"SELECT * FROM report("created_at" => now())"#,
        "created_at",
        "-the name of a function's argument",
    ),
    (
        "SELECT * FROM payments p, LATERAL report(created_at => p.created_at) r",
        "created_at DESC",
        "+ORDER BY p.created_at DESC: p (payments) has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT r.day FROM report(created_at => now()) r JOIN payments p ON p.created_at::date = r.day",
        "created_at DESC",
        "+ORDER BY p.created_at DESC",
    ),
    (
        "SELECT * FROM report(now()) r WHERE r.day > (now() - make_interval(days => 1))::date",
        "days",
        "-the name of a function's argument",
    ),
    (
        "SELECT id, make_interval(days => 2) FROM payments",
        "\"days\" ASC",
        "-nothing in the query shows that payments has a column days (days is written as the \
         name of a function's argument",
    ),
    (
        "WITH r AS (SELECT * FROM report(created_at => now())) SELECT * FROM r",
        "created_at DESC",
        "-offline, nothing in the query shows that r has a column created_at; give a database",
    ),
    // A field of a composite value is no column.
    (
        "SELECT (e.payload).info.created_at AS at FROM events e",
        "created_at DESC",
        "-offline, nothing in the query shows that e (events) has a column created_at \
         (created_at is written as a field of a composite value, not a column)",
    ),
    (
        "SELECT e.id FROM events e WHERE ((e.payload).info).created_at > now()",
        "created_at DESC",
        "-created_at is written as a field of a composite value",
    ),
    (
        r#"SELECT id FROM events WHERE ("Payload").info."created_at" > now()"#,
        "created_at DESC",
        "-created_at is written as a field of a composite value",
    ),
    (
        "SELECT id FROM events e WHERE (e.payload).info IS NOT NULL",
        "info",
        "-info is written as a field of a composite value",
    ),
    (
        "SELECT id FROM events WHERE stamps[1].created_at > now()",
        "created_at DESC",
        "-created_at is written as a field of a composite value",
    ),
    (
        "SELECT e.id FROM events e JOIN payments p ON p.id = e.id WHERE (e.payload).info.created_at < p.created_at",
        "created_at DESC",
        "+ORDER BY p.created_at DESC: p (payments) has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT p.id FROM payments p, LATERAL (SELECT (e.payload).info FROM events e WHERE e.id = p.id) l \
         WHERE (l.info).created_at > now()",
        "created_at DESC",
        "-nothing in the query shows that p (payments) or l has a column created_at (created_at is \
         written as a field",
    ),
    (
        "WITH l AS (SELECT * FROM events e WHERE (e.payload).info.created_at > now()) SELECT * FROM l",
        "created_at DESC",
        "-offline, nothing in the query shows that l has a column created_at",
    ),
    // A subscripted column keeps its qualifier.
    (
        "SELECT a.id FROM batches a JOIN batches b ON b.id = a.id + 1 WHERE b.created_at[1] > now()",
        "created_at DESC",
        "+ORDER BY b.created_at DESC: b (batches) has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT a.id FROM batches a, batches b WHERE (b.created_at)[1:2] IS NOT NULL",
        "created_at",
        "+ORDER BY b.created_at: b (batches) has a column created_at",
    ),
    (
        "SELECT a.id FROM batches a, batches b WHERE a.created_at[1] < b.created_at[2]",
        "created_at DESC",
        "+ORDER BY a.created_at DESC: a (batches) has a column created_at (the query itself uses it); \
         so does b (batches)",
    ),
    (
        r#"SELECT a.id FROM batches a JOIN batches b ON true WHERE b."CreatedAt"[1] > now()"#,
        r#""CreatedAt" ASC"#,
        r#"+ORDER BY b."CreatedAt" ASC"#,
    ),
    (
        "SELECT id FROM public.batches WHERE public.batches.created_at[1] > now()",
        "created_at DESC",
        "+ORDER BY created_at DESC: batches (public.batches) has a column created_at",
    ),
    (
        "SELECT id FROM batches WHERE created_at[1] > now()",
        "created_at DESC",
        "+ORDER BY created_at DESC",
    ),
    (
        "WITH w AS (SELECT * FROM batches b WHERE b.created_at[1] > now()) \
         SELECT w.id FROM w JOIN batches x ON x.id = w.id",
        "created_at DESC",
        "+ORDER BY w.created_at DESC: w has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT a.id FROM batches a JOIN batches b ON true WHERE b.created_at[1] > now()",
        "b",
        "-offline, nothing in the query shows that a (batches) or b (batches) has a column b",
    ),
    // A relation may have the column twice: `*` over a join, a name and a
    // `*`, two names, a column alias over a column of the same name.
    (
        "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id) s",
        "created_at DESC",
        "-offline, nothing in the query shows that s has a column created_at",
    ),
    (
        "SELECT * FROM (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id \
         WHERE p.created_at > now() - interval '1 day') s",
        "created_at DESC",
        "-s has a column created_at, but not all of its columns are known, and another may have \
         the same name (as when a SELECT * spans a join of two tables that have it), which would \
         make the name ambiguous there; give a database",
    ),
    (
        "SELECT 1 FROM (SELECT p.created_at, r.created_at FROM payments p JOIN refunds r ON r.payment_id = p.id) s",
        "created_at DESC",
        "-s has more than one column created_at, so the name is ambiguous there",
    ),
    (
        "SELECT 1 FROM (SELECT *, created_at FROM payments) s",
        "created_at DESC",
        "-s has more than one column created_at",
    ),
    (
        "SELECT 1 FROM (SELECT p.*, r.created_at FROM payments p JOIN refunds r ON r.payment_id = p.id \
         WHERE p.created_at > now()) s",
        "created_at DESC",
        "-s has more than one column created_at",
    ),
    (
        "SELECT * FROM (SELECT p.*, r.amount AS refunded FROM payments p JOIN refunds r ON r.payment_id = p.id \
         WHERE p.created_at > now()) s",
        "created_at DESC",
        "+ORDER BY created_at DESC: s has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT 1 FROM (SELECT id, created_at FROM payments) AS s(created_at)",
        "created_at DESC",
        "-s has more than one column created_at",
    ),
    (
        "SELECT 1 FROM recent(now() - interval '1 day') AS r(created_at)",
        "created_at DESC",
        "-r has a column created_at, but not all of its columns are known",
    ),
    (
        "WITH j AS (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id \
         WHERE r.created_at > now()) SELECT * FROM j",
        "created_at DESC",
        "-j has a column created_at, but not all of its columns are known",
    ),
    (
        "WITH j(created_at) AS (SELECT p.id, p.created_at FROM payments p) SELECT * FROM j",
        "created_at DESC",
        "-j has more than one column created_at",
    ),
    (
        "WITH j(id, at) AS (SELECT p.id, p.created_at FROM payments p) SELECT * FROM j",
        "created_at DESC",
        "-no FROM item has a column created_at",
    ),
    (
        "SELECT * FROM users u, LATERAL (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id \
         WHERE p.user_id = u.id AND p.created_at > now()) x",
        "created_at DESC",
        "-x has a column created_at, but not all of its columns are known, and another may have \
         the same name (as when a SELECT * spans a join of two tables that have it), which would \
         make the name ambiguous there; offline, nothing in the query shows that u (users) has a \
         column created_at; give a database",
    ),
    (
        r#"SELECT 1 FROM (SELECT a."CreatedAt", b."CreatedAt" FROM batches a JOIN batches b ON true) s"#,
        r#""CreatedAt" DESC"#,
        "-s has more than one column CreatedAt",
    ),
    (
        "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id WHERE p.amount > 10) s",
        "amount",
        "-s has a column amount, but not all of its columns are known",
    ),
    (
        "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id WHERE r.id > 10) s",
        "id ASC",
        "-s has more than one column id, so the name is ambiguous there",
    ),
    (
        "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON r.payment_id = p.id WHERE r.id > 10) s",
        "user_id",
        "-offline, nothing in the query shows that s has a column user_id",
    ),
    // In a LATERAL subquery an unqualified name may be a column of a FROM
    // item before it.
    (
        "SELECT x.* FROM payments p, LATERAL (SELECT * FROM generate_series(1, 3) g \
         WHERE created_at > now()) x",
        "created_at DESC",
        "-offline, nothing in the query shows that p (payments) or x has a column created_at",
    ),
    (
        "SELECT x.* FROM payments p CROSS JOIN LATERAL (SELECT * FROM \
         (SELECT * FROM generate_series(1, 3) g WHERE created_at > now()) y) x",
        "created_at DESC",
        "-offline, nothing in the query shows that p (payments) or x has a column created_at",
    ),
    (
        "SELECT x.* FROM payments p JOIN LATERAL (WITH c AS (SELECT * FROM generate_series(1, 3) g \
         WHERE created_at > now()) SELECT * FROM c) x ON true",
        "created_at DESC",
        "-offline, nothing in the query shows that p (payments) or x has a column created_at",
    ),
    (
        "SELECT x.* FROM payments p, LATERAL (SELECT * FROM report(p.created_at) r WHERE total < amount) x",
        "amount",
        "-offline, nothing in the query shows that p (payments) or x has a column amount",
    ),
    (
        "SELECT x.* FROM payments p, LATERAL (SELECT * FROM refunds r \
         WHERE r.payment_id = p.id AND r.created_at > p.created_at) x",
        "created_at DESC",
        "+ORDER BY x.created_at DESC: x has a column created_at (the query itself uses it)",
    ),
    (
        "SELECT * FROM payments p, (SELECT * FROM refunds WHERE created_at > now()) x",
        "created_at DESC",
        "+ORDER BY x.created_at DESC: x has a column created_at (the query itself uses it)",
    ),
    // The name of a FROM item alone is its whole row (which has no order
    // when a column of it has none), unless a FROM item has a column so
    // named.
    (
        "SELECT to_json(e) FROM events e",
        "e",
        "-offline, nothing in the query shows that e (events) has a column e (e alone also names \
         a FROM item, and means its whole row unless a FROM item has a column e)",
    ),
    (
        "SELECT e.id FROM events e WHERE e IS NOT NULL",
        "e DESC",
        "-e alone also names a FROM item",
    ),
    (
        r#"SELECT row_to_json("Events") FROM events AS "Events""#,
        r#""Events""#,
        "-Events alone also names a FROM item",
    ),
    (
        "SELECT id FROM payments status WHERE status = 'failed'",
        "status",
        "-status alone also names a FROM item",
    ),
    (
        "SELECT id FROM payments p WHERE status = 'failed'",
        "status",
        "+ORDER BY status: p (payments) has a column status (the query itself uses it)",
    ),
];

/// Offline, the ORDER BY rule rests only on what the SQL proves: where it
/// adds an ORDER BY, PostgreSQL accepts it; where the evidence is not
/// conclusive, it adds none and says why. With the server's knowledge, the
/// rule's ORDER BY is accepted too.
#[tokio::test]
async fn offline_order_by_rests_only_on_conclusive_evidence() {
    let db = common::TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(EVIDENCE_SETUP).await.unwrap();
    let mut failures = Vec::new();
    for &(sql, order_by, expected) in EVIDENCE {
        let options = RewriteOptions {
            order_by: Some(order_by.parse().unwrap()),
            ..RewriteOptions::default()
        };
        let statement = parse_statements(sql).unwrap().remove(0);
        let offline = rewrite::rewrite(&statement, &options, &Knowledge::offline());
        let server = rewrite::server::rewrite(&client, &statement, &options)
            .await
            .unwrap();
        // The premise: the user's SQL is valid.
        let mut problems: Vec<String> = explain(&client, sql)
            .await
            .err()
            .map(|e| format!("the original: {e}"))
            .into_iter()
            .collect();
        problems.extend(decisions(&offline, &format!("{expected} | +")));
        for (mode, rewrite) in [("offline", &offline), ("server", &server)] {
            if let Err(e) = explain(&client, &rewrite.rewritten).await {
                problems.push(format!("{mode}: {e}"));
            }
            if let Some(skip) = rewrite
                .skipped
                .iter()
                .find(|s| s.reason.contains("server rejected"))
            {
                problems.push(format!("{mode}: {}", skip.reason));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{sql}\n  --order-by {order_by}: {}\n  offline: {}\n  changes: {:?}\n  skipped: {:?}",
                problems.join("; "),
                offline.rewritten,
                offline.changes,
                offline.skipped
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What the SQL cannot show, the server can: a user-defined aggregate is
/// not recognized offline, and the server rejects the ORDER BY that
/// assumption led to; the rest of the rewrite stands.
#[tokio::test]
async fn the_server_rejects_what_the_sql_alone_got_wrong() {
    let db = common::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE AGGREGATE total(numeric) (sfunc = numeric_add, stype = numeric, initcond = '0')",
        )
        .await
        .unwrap();
    let sql = "SELECT total(amount) FROM payments WHERE created_at > now() - interval '1 day'";
    let statement = parse_statements(sql).unwrap().remove(0);
    let options = RewriteOptions::default();
    let offline = rewrite::rewrite(&statement, &options, &Knowledge::offline());
    assert!(
        offline
            .rewritten
            .ends_with("ORDER BY created_at DESC LIMIT 1000")
    );
    let server = rewrite::server::rewrite(&client, &statement, &options)
        .await
        .unwrap();
    assert_eq!(server.rewritten, format!("{sql} LIMIT 1000"));
    assert_eq!(server.skipped.len(), 1);
    assert_eq!(server.skipped[0].rule, Rule::OrderBy);
    assert!(
        server.skipped[0].reason.starts_with(
            "the server rejected the ORDER BY: column \"payments.created_at\" must appear in the \
             GROUP BY clause or be used in an aggregate function"
        ),
        "{server:?}"
    );
    explain(&client, &server.rewritten).await.unwrap();
}

/// What `learn` gathers: the result columns, and the columns of each table
/// as the statement names it.
#[tokio::test]
async fn the_server_describes_the_query_and_its_tables() {
    let db = common::TestDb::new().await;
    let client = db.client().await;
    let statement = parse_statements(
        "WITH r AS (SELECT 1) SELECT p.id, u.email FROM public.payments p, USERS u, r, missing_table",
    )
    .unwrap()
    .remove(0);
    let knowledge = rewrite::server::learn(&client, &statement).await.unwrap();
    assert!(knowledge.online);
    assert_eq!(knowledge.result_columns, None);
    assert_eq!(
        knowledge.notes,
        ["the server could not describe the query: relation \"missing_table\" does not exist"]
    );
    let names: Vec<Vec<String>> = knowledge.tables.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        names,
        [
            vec!["public".to_owned(), "payments".to_owned()],
            vec!["users".to_owned()]
        ]
    );
    assert_eq!(
        knowledge.tables[1].columns,
        ["id", "email", "country", "created_at"]
    );
    let statement = parse_statements("SELECT id, amount AS total FROM payments")
        .unwrap()
        .remove(0);
    let knowledge = rewrite::server::learn(&client, &statement).await.unwrap();
    assert_eq!(
        knowledge.result_columns,
        Some(vec!["id".to_owned(), "total".to_owned()])
    );
    // Nothing to learn about a statement the rules leave alone.
    let statement = parse_statements("DELETE FROM payments").unwrap().remove(0);
    let knowledge = rewrite::server::learn(&client, &statement).await.unwrap();
    assert_eq!(knowledge.result_columns, None);
    assert!(knowledge.tables.is_empty());
}
