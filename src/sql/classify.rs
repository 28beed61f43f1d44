//! What running a statement would do: read, write, or something EXPLAIN
//! must not run at all. `explain` decides from this how to run a statement
//! (a READ ONLY transaction, plain EXPLAIN for writes, or a refusal).

use std::fmt;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{Query, Select, SetExpr, Statement, Visit, Visitor};

use super::functions::calls;

/// Functions whose effects a rollback does not undo and that a `READ ONLY`
/// transaction does not stop (all were checked on PostgreSQL 15), by what
/// they do. This is what the SQL alone shows; explain also asks the server
/// about every other function a statement calls (`explain::volatility`).
const OUTLIVING_FUNCTIONS: &[(&[&str], &str)] = &[
    (
        &["nextval", "setval"],
        "changes a sequence, which a rollback does not undo",
    ),
    (
        &[
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
        ],
        "takes a session advisory lock, which outlives the rollback",
    ),
    (
        &[
            "pg_create_physical_replication_slot",
            "pg_create_logical_replication_slot",
            "pg_copy_physical_replication_slot",
            "pg_copy_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_replication_slot_advance",
        ],
        "creates, drops or moves a replication slot, which a rollback does not undo; a slot \
         holds WAL on the server until it is dropped",
    ),
    (
        &["pg_logical_emit_message"],
        "writes a message to the WAL, which a rollback does not undo",
    ),
    (
        &["pg_terminate_backend", "pg_cancel_backend"],
        "signals another session, which a rollback does not undo",
    ),
    (
        &[
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_wal_replay_pause",
            "pg_wal_replay_resume",
            "pg_replication_origin_advance",
            "pg_replication_origin_session_setup",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_promote",
            "pg_log_backend_memory_contexts",
        ],
        "acts on the server itself, which a rollback does not undo",
    ),
    (
        &[
            "pg_stat_reset",
            "pg_stat_reset_shared",
            "pg_stat_reset_single_table_counters",
            "pg_stat_reset_single_function_counters",
            "pg_stat_reset_slru",
            "pg_stat_reset_replication_slot",
            "pg_stat_reset_subscription_stats",
            "pg_stat_statements_reset",
        ],
        "resets statistics, which a rollback does not undo",
    ),
    (
        &[
            "dblink",
            "dblink_exec",
            "dblink_connect",
            "dblink_connect_u",
            "dblink_disconnect",
            "dblink_open",
            "dblink_fetch",
            "dblink_close",
            "dblink_send_query",
            "dblink_get_result",
            "dblink_cancel_query",
        ],
        "acts through another connection, outside the rollback",
    ),
    (
        &[
            "lo_export",
            "pg_file_write",
            "pg_file_rename",
            "pg_file_unlink",
            "pg_file_sync",
        ],
        "writes a file on the server, which a rollback does not undo",
    ),
    (
        &["setseed"],
        "sets the session's random seed, which outlives the rollback",
    ),
];

/// What the functions `statement` calls do that a rollback does not undo,
/// as far as the SQL alone shows it: `setval() changes a sequence, ...`.
pub fn outliving_reasons(statement: &Statement) -> Vec<String> {
    calls(statement)
        .iter()
        .filter_map(|call| Some(format!("{}() {}", call.name, outliving_effect(&call.name)?)))
        .collect()
}

/// What `name` (a function's folded name) does that a rollback does not
/// undo, when the SQL alone shows it.
pub fn outliving_effect(name: &str) -> Option<&'static str> {
    OUTLIVING_FUNCTIONS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, effect)| *effect)
}

/// What running a statement would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Class {
    /// Reads only: it may run in a `READ ONLY` transaction.
    Read,
    /// Changes data, takes row locks, or has effects a rollback does not
    /// undo; each reason says which.
    Write {
        /// Why it counts as a write, one sentence each.
        reasons: Vec<String>,
    },
    /// Not a statement EXPLAIN can run inside a transaction block.
    Refused {
        /// Why, and what to do instead.
        reason: String,
    },
    /// perfaudit's parser cannot read it, though PostgreSQL may: what it
    /// does is unknown here, so only the server may plan it.
    Unread {
        /// Where and why the parser stopped.
        reason: String,
    },
}

/// Classifies one parsed statement.
pub fn classify(statement: &Statement) -> Class {
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => {
            let mut finder = WriteFinder::default();
            let _ = statement.visit(&mut finder);
            for reason in outliving_reasons(statement) {
                finder.add(reason);
            }
            if finder.reasons.is_empty() {
                Class::Read
            } else {
                Class::Write {
                    reasons: finder.reasons,
                }
            }
        }
        other => Class::Refused {
            reason: refusal(other),
        },
    }
}

/// Why a statement that is not a query or DML is refused.
fn refusal(statement: &Statement) -> String {
    match statement {
        Statement::Explain { .. } | Statement::ExplainTable { .. } => {
            "it is already an EXPLAIN; give perfaudit the statement itself".into()
        }
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => {
            "transaction control has no plan; perfaudit runs each statement in a transaction of \
             its own and rolls it back"
                .into()
        }
        Statement::CreateIndex(index) if index.concurrently => {
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction block and has no plan; \
             build indexes safely with `perfaudit indexes`"
                .into()
        }
        Statement::Vacuum(_) => {
            "VACUUM cannot run inside a transaction block and has no plan".into()
        }
        Statement::Copy { .. } => {
            "COPY has no plan EXPLAIN can show; explain the query or INSERT behind it".into()
        }
        Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. } => {
            "prepared statements are perfaudit's job: give the statement itself with $1, $2, ... \
             and their values with --param"
                .into()
        }
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
            "cursors have no plan of their own; explain the cursor's query".into()
        }
        other => format!(
            "{} is not a query or a DML statement, so EXPLAIN cannot run it",
            leading_keywords(other)
        ),
    }
}

/// `DROP TABLE`, `VACUUM`, `SET`: the words that name the statement.
pub(crate) fn leading_keywords(statement: &Statement) -> String {
    let text = first_words(statement);
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or_default().to_uppercase();
    match (first.as_str(), words.next()) {
        ("CREATE" | "ALTER" | "DROP", Some(second)) => format!("{first} {}", second.to_uppercase()),
        _ => first,
    }
}

/// The first two words of the printed statement. Printing stops there: the
/// rest may nest deeper than printing (which recurses) should follow.
fn first_words(statement: &Statement) -> String {
    struct FirstWords(String);
    impl fmt::Write for FirstWords {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s);
            // Two words and the space after them: enough.
            let words = self.0.split_whitespace().count();
            if words > 2 || (words == 2 && self.0.ends_with(char::is_whitespace)) {
                return Err(fmt::Error);
            }
            Ok(())
        }
    }
    let mut words = FirstWords(String::new());
    let _ = fmt::write(&mut words, format_args!("{statement}"));
    words.0
}

/// Collects the reasons a query or DML statement counts as a write.
#[derive(Default)]
struct WriteFinder {
    reasons: Vec<String>,
}

impl WriteFinder {
    fn add(&mut self, reason: String) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

impl Visitor for WriteFinder {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        let verb = match statement {
            Statement::Insert(_) => "INSERT",
            Statement::Update(_) => "UPDATE",
            Statement::Delete(_) => "DELETE",
            Statement::Merge(_) => "MERGE",
            _ => return ControlFlow::Continue(()),
        };
        self.add(format!("{verb} changes rows"));
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        for cte in query.with.iter().flat_map(|with| &with.cte_tables) {
            if matches!(
                *cte.query.body,
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
            ) {
                self.add(format!(
                    "the WITH query \"{}\" is data-modifying",
                    crate::error::clip(&cte.alias.name.value)
                ));
            }
        }
        if let Some(lock) = query.locks.first() {
            self.add(format!("{lock} takes row locks"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.into.is_some() {
            self.add("SELECT INTO creates a table".into());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;

    fn class(sql: &str) -> Class {
        parse_statements(sql).unwrap().remove(0).class
    }

    fn reasons(sql: &str) -> Vec<String> {
        match class(sql) {
            Class::Write { reasons } => reasons,
            other => panic!("{sql}: expected a write, got {other:?}"),
        }
    }

    fn refusal(sql: &str) -> String {
        match class(sql) {
            Class::Refused { reason } => reason,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn queries_are_reads() {
        for sql in [
            "SELECT * FROM payments WHERE user_id = $1",
            "VALUES (1), (2)",
            "SELECT 1 UNION SELECT 2",
            "WITH recent AS (SELECT * FROM payments) SELECT count(*) FROM recent",
            "SELECT 'nextval(1)', \"nextval\" FROM t",
        ] {
            assert_eq!(class(sql), Class::Read, "{sql}");
        }
    }

    #[test]
    fn dml_and_its_disguises_are_writes() {
        assert_eq!(reasons("DELETE FROM payments"), ["DELETE changes rows"]);
        assert_eq!(
            reasons("UPDATE payments SET amount = 1"),
            ["UPDATE changes rows"]
        );
        assert_eq!(reasons("INSERT INTO t VALUES (1)"), ["INSERT changes rows"]);
        assert_eq!(
            reasons("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"),
            ["MERGE changes rows"]
        );
        assert_eq!(
            reasons("WITH d AS (DELETE FROM payments RETURNING *) SELECT count(*) FROM d"),
            [
                "the WITH query \"d\" is data-modifying",
                "DELETE changes rows"
            ]
        );
        assert_eq!(
            reasons("SELECT * INTO copy FROM payments"),
            ["SELECT INTO creates a table"]
        );
        assert_eq!(
            reasons("SELECT * FROM payments FOR UPDATE SKIP LOCKED"),
            ["FOR UPDATE SKIP LOCKED takes row locks"]
        );
        assert_eq!(
            reasons("SELECT (SELECT nextval('s')), public.setval('s', 1)"),
            [
                "nextval() changes a sequence, which a rollback does not undo",
                "setval() changes a sequence, which a rollback does not undo"
            ]
        );
    }

    #[test]
    fn functions_are_named_as_postgresql_resolves_them() {
        // Quoted names are the same function when they match exactly.
        assert_eq!(
            reasons("SELECT \"pg_advisory_lock\"(42)"),
            ["pg_advisory_lock() takes a session advisory lock, which outlives the rollback"]
        );
        assert_eq!(
            reasons("SELECT \"dblink_exec\"('host=x', 'DELETE FROM t')"),
            ["dblink_exec() acts through another connection, outside the rollback"]
        );
        // Unquoted names fold to lower case; a qualified name is the same call.
        assert_eq!(
            reasons("SELECT NextVal('s')"),
            ["nextval() changes a sequence, which a rollback does not undo"]
        );
        assert!(!reasons("SELECT pg_catalog.\"pg_terminate_backend\"(1)").is_empty());
        // A quoted name with capitals is another function.
        assert_eq!(class("SELECT \"NEXTVAL\"('s')"), Class::Read);
    }

    #[test]
    fn functions_in_from_are_calls_too() {
        assert_eq!(
            reasons("SELECT * FROM pg_advisory_lock(42)"),
            ["pg_advisory_lock() takes a session advisory lock, which outlives the rollback"]
        );
        assert!(
            !reasons("SELECT * FROM payments p, LATERAL pg_try_advisory_lock(p.id) l").is_empty()
        );
        assert!(!reasons("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)").is_empty());
    }

    #[test]
    fn effects_read_only_does_not_stop_are_writes() {
        for (sql, effect) in [
            (
                "SELECT pg_create_physical_replication_slot('x')",
                "replication slot",
            ),
            (
                "SELECT pg_create_logical_replication_slot('x', 'pgoutput')",
                "replication slot",
            ),
            ("SELECT pg_drop_replication_slot('x')", "replication slot"),
            ("SELECT pg_terminate_backend(42)", "another session"),
            ("SELECT pg_cancel_backend(42)", "another session"),
            ("SELECT pg_reload_conf()", "the server"),
            ("SELECT pg_switch_wal()", "the server"),
            ("SELECT pg_stat_reset()", "statistics"),
            ("SELECT pg_stat_reset_shared('bgwriter')", "statistics"),
            ("SELECT pg_logical_emit_message(false, 'p', 'm')", "WAL"),
            ("SELECT dblink_connect('c', 'host=x')", "another connection"),
            ("SELECT lo_export(42, '/tmp/x')", "file"),
            ("SELECT setseed(0.5)", "random seed"),
        ] {
            let reasons = reasons(sql);
            assert!(
                reasons.len() == 1 && reasons[0].contains(effect),
                "{sql}: {reasons:?}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        assert!(refusal("VACUUM payments").contains("VACUUM cannot run inside a transaction"));
        assert!(
            refusal("CREATE INDEX CONCURRENTLY i ON payments (user_id)")
                .contains("perfaudit indexes")
        );
        assert!(refusal("DROP TABLE payments").starts_with("DROP TABLE is not a query"));
        assert!(refusal("SET work_mem = '1GB'").starts_with("SET is not a query"));
        assert!(refusal("BEGIN").contains("transaction control"));
        assert!(refusal("EXPLAIN SELECT 1").contains("already an EXPLAIN"));
        assert!(refusal("COPY payments TO STDOUT").contains("COPY"));
        assert!(refusal("EXECUTE q(1)").contains("--param"));
        assert!(refusal("CREATE TABLE t AS SELECT 1").starts_with("CREATE TABLE is not"));
    }
}
