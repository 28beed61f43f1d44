//! How a statement is explained, decided from what running it would do
//! (its [`Class`]) and the flags: executed or not, in a READ ONLY
//! transaction or not, and what the report must say about it.

use crate::sql::Class;

/// The flags that decide how statements run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModeFlags {
    /// `--no-analyze`: execute nothing.
    pub no_analyze: bool,
    /// `--analyze-writes`: execute writes too, inside the rolled-back transaction.
    pub analyze_writes: bool,
}

/// How one statement is explained. Every run is rolled back, whatever the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// `EXPLAIN ANALYZE`, which executes the statement; otherwise plain
    /// `EXPLAIN`, which only plans it.
    pub analyze: bool,
    /// `BEGIN READ ONLY`: for everything that is not an executed write
    /// (plain EXPLAIN of a write is allowed in a read-only transaction).
    pub read_only: bool,
    /// What the report says about how it ran, one sentence each.
    pub notes: Vec<String>,
}

impl Mode {
    /// Planned, never executed, in a read-only transaction.
    pub fn planned_only() -> Mode {
        Mode {
            analyze: false,
            read_only: true,
            notes: Vec::new(),
        }
    }

    /// The EXPLAIN statement to send for `statement` (one statement's text).
    /// `SUMMARY` makes plain EXPLAIN report its planning time too.
    pub fn explain_sql(&self, statement: &str) -> String {
        let options = if self.analyze {
            "ANALYZE, BUFFERS, FORMAT JSON"
        } else {
            "SUMMARY, FORMAT JSON"
        };
        format!("EXPLAIN ({options}) {statement}")
    }
}

/// What keeps a statement from being executed, whatever its class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blockers {
    /// What it does that outlives the rollback, one reason each: never
    /// executed, not even with `--analyze-writes`, which promises a
    /// rolled-back run.
    pub outliving: Vec<String>,
    /// What could not be resolved on the server: never executed, since
    /// what it would run cannot be proven harmless.
    pub unresolved: Vec<String>,
    /// What planning alone would run that a rollback does not undo: the
    /// statement is refused, not even planned.
    pub planning: Vec<String>,
}

/// Decides how to explain a statement of class `class` that `blockers`
/// may keep from running; `Err` holds the reason a statement is refused.
pub fn decide(class: &Class, flags: ModeFlags, blockers: &Blockers) -> Result<Mode, String> {
    match class {
        Class::Refused { reason } => Err(reason.clone()),
        _ if !blockers.planning.is_empty() => Err(format!(
            "planning it would run what a rollback does not undo ({}); perfaudit sends it no \
             EXPLAIN at all",
            blockers.planning.join("; ")
        )),
        _ if flags.no_analyze => Ok(plain(vec![NOT_EXECUTED_NO_ANALYZE.to_owned()])),
        Class::Unread { reason } => Ok(plain(vec![format!(
            "not executed because perfaudit's parser cannot read it ({reason}), so what it does \
             is unknown here: the server plans it, and the plan shows the planner's estimates \
             only"
        )])),
        _ if !blockers.unresolved.is_empty() => Ok(plain(vec![format!(
            "not executed because perfaudit could not prove what it runs harmless ({}): the \
             plan shows the planner's estimates only",
            blockers.unresolved.join("; ")
        )])),
        Class::Write { .. } if !blockers.outliving.is_empty() && flags.analyze_writes => {
            Ok(plain(vec![format!(
                "not executed, even with --analyze-writes, because what it does outlives the \
                 rollback ({}): the plan shows the planner's estimates only",
                blockers.outliving.join("; ")
            )]))
        }
        _ if !blockers.outliving.is_empty() => Ok(plain(vec![format!(
            "not executed because what it does outlives the rollback ({}), so not even \
             --analyze-writes executes it: the plan shows the planner's estimates only",
            blockers.outliving.join("; ")
        )])),
        Class::Read => Ok(Mode {
            analyze: true,
            read_only: true,
            notes: Vec::new(),
        }),
        Class::Write { reasons } if !flags.analyze_writes => Ok(plain(vec![format!(
            "not executed because it is not a plain read ({}): the plan shows the planner's \
             estimates only; --analyze-writes executes it inside a transaction that is rolled \
             back",
            reasons.join("; ")
        )])),
        Class::Write { reasons } => Ok(Mode {
            analyze: true,
            read_only: false,
            notes: vec![
                format!(
                    "executed because of --analyze-writes ({}), inside a transaction that was \
                     rolled back",
                    reasons.join("; ")
                ),
                "while it ran it held its row locks and fired its triggers (foreign key checks \
                 included): other sessions writing the same rows waited for it"
                    .to_owned(),
                "the rollback does not undo sequences it advanced (identity and serial columns, \
                 nextval): they stay advanced"
                    .to_owned(),
            ],
        }),
    }
}

const NOT_EXECUTED_NO_ANALYZE: &str =
    "not executed (--no-analyze): the plan shows the planner's estimates only";

fn plain(notes: Vec<String>) -> Mode {
    Mode {
        analyze: false,
        read_only: true,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> Class {
        Class::Write {
            reasons: vec!["DELETE changes rows".into()],
        }
    }

    const ANALYZE_WRITES: ModeFlags = ModeFlags {
        no_analyze: false,
        analyze_writes: true,
    };
    const NO_ANALYZE: ModeFlags = ModeFlags {
        no_analyze: true,
        analyze_writes: true,
    };

    #[test]
    fn reads_are_executed_read_only() {
        let mode = decide(&Class::Read, ModeFlags::default(), &Blockers::default()).unwrap();
        assert!(mode.analyze && mode.read_only && mode.notes.is_empty());
        assert_eq!(
            mode.explain_sql("SELECT 1"),
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT 1"
        );
    }

    #[test]
    fn writes_are_planned_only_unless_asked() {
        let mode = decide(&write(), ModeFlags::default(), &Blockers::default()).unwrap();
        assert!(!mode.analyze && mode.read_only);
        assert!(mode.notes[0].contains("(DELETE changes rows)"), "{mode:?}");
        assert_eq!(
            mode.explain_sql("DELETE FROM t"),
            "EXPLAIN (SUMMARY, FORMAT JSON) DELETE FROM t"
        );
        let mode = decide(&write(), ANALYZE_WRITES, &Blockers::default()).unwrap();
        assert!(mode.analyze && !mode.read_only);
        assert!(mode.notes.iter().any(|n| n.contains("row locks")));
        assert!(mode.notes.iter().any(|n| n.contains("sequences")));
    }

    #[test]
    fn what_outlives_the_rollback_is_never_executed() {
        let blockers = Blockers {
            outliving: vec!["setval() changes a sequence, which a rollback does not undo".into()],
            ..Blockers::default()
        };
        let mode = decide(&write(), ANALYZE_WRITES, &blockers).unwrap();
        assert!(!mode.analyze && mode.read_only);
        assert!(
            mode.notes[0].contains("even with --analyze-writes"),
            "{mode:?}"
        );
        assert!(mode.notes[0].contains("setval()"), "{mode:?}");
        // A read is held back the same way.
        let mode = decide(&Class::Read, ModeFlags::default(), &blockers).unwrap();
        assert!(!mode.analyze && mode.notes[0].contains("not even --analyze-writes"));
    }

    #[test]
    fn what_cannot_be_resolved_is_never_executed() {
        let blockers = Blockers {
            unresolved: vec!["no function f() exists to call".into()],
            ..Blockers::default()
        };
        for (class, flags) in [
            (Class::Read, ModeFlags::default()),
            (write(), ANALYZE_WRITES),
        ] {
            let mode = decide(&class, flags, &blockers).unwrap();
            assert!(!mode.analyze && mode.read_only, "{class:?}");
            assert!(mode.notes[0].contains("could not prove"), "{mode:?}");
        }
    }

    #[test]
    fn no_analyze_wins_over_everything() {
        for class in [Class::Read, write()] {
            let mode = decide(&class, NO_ANALYZE, &Blockers::default()).unwrap();
            assert!(!mode.analyze && mode.read_only, "{class:?}");
        }
    }

    #[test]
    fn what_planning_alone_would_run_is_refused_even_without_analyze() {
        let blockers = Blockers {
            planning: vec!["public.f() runs inside the IMMUTABLE function public.g()".into()],
            ..Blockers::default()
        };
        let reason = decide(&Class::Read, NO_ANALYZE, &blockers).unwrap_err();
        assert!(reason.contains("no EXPLAIN at all"), "{reason}");
    }

    #[test]
    fn what_the_parser_cannot_read_is_only_planned() {
        let class = Class::Unread {
            reason: "the SQL does not parse at line 1, column 9: Expected: ...".into(),
        };
        let mode = decide(&class, ANALYZE_WRITES, &Blockers::default()).unwrap();
        assert!(!mode.analyze && mode.read_only);
        assert!(
            mode.notes[0].contains("cannot read it (the SQL does not parse"),
            "{mode:?}"
        );
    }

    #[test]
    fn refused_statements_carry_their_reason() {
        let class = Class::Refused {
            reason: "VACUUM cannot run inside a transaction block".into(),
        };
        assert_eq!(
            decide(&class, ModeFlags::default(), &Blockers::default()).unwrap_err(),
            "VACUUM cannot run inside a transaction block"
        );
    }
}
