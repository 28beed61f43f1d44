//! Fuzzing the SQL input path — split, parse, classify, rewrite, and what
//! explain and advise derive from a statement — with proptest (cargo-fuzz
//! needs a nightly compiler): whatever the text, a clean result or a clean
//! input error, never a panic or a stack overflow.
//!
//! The normal test run makes a short pass (proptest's 256 cases per
//! property). A long run, in release mode for speed:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --locked --test faults_fuzz
//! ```
//!
//! A failing property writes its (shrunk) input to
//! `tests/corpus/failed-<hash>.sql`, and says so: there
//! [`the_corpus_gets_clean_answers`] replays it through the property that
//! found it on every run, and keeps failing until the bug is fixed and the
//! file's first line states the expected answer (then rename the file after
//! what it holds). A stack overflow aborts the whole process before anything
//! can be written; its input is the one proptest printed last. (proptest's
//! own seed files are not kept: the mutation strategy draws from the corpus,
//! so a seed would not replay the same input once the corpus grows.)

mod common;

use std::path::Path;

use perfaudit::explain::{self, JobOptions};
use perfaudit::rewrite::{self, Knowledge, RewriteOptions};
use perfaudit::sql::scans;
use perfaudit::sql::{self, SqlStatement};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// The stack perfaudit works on: it runs on the main thread, which Linux
/// gives 8 MiB (`ulimit -s`), not the 2 MiB of a test thread.
const MAIN_STACK: usize = 8 * 1024 * 1024;

/// Runs `check` on a thread with the binary's stack, so that a stack
/// overflow found here is one the binary would hit.
fn on_main_stack(
    check: impl FnOnce() -> Result<(), TestCaseError> + Send + 'static,
) -> Result<(), TestCaseError> {
    std::thread::Builder::new()
        .stack_size(MAIN_STACK)
        .spawn(check)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Everything the input path does with one statement: classify (done by
/// the parser), rewrite offline, prepare to explain, extract what advise
/// asks of tables. A rewrite must parse again, as one statement, and be
/// left alone by a second rewrite.
fn follow(statement: SqlStatement) -> Result<(), TestCaseError> {
    let options = RewriteOptions::default();
    let first = rewrite::rewrite(&statement, &options, &Knowledge::offline());
    if first.changed() {
        let again = sql::parse_statements(&first.rewritten);
        prop_assert!(
            matches!(&again, Ok(s) if s.len() == 1),
            "{:?} became {:?}: {:?}",
            statement.text,
            first.rewritten,
            again.err().map(|e| e.to_string())
        );
        let second = rewrite::rewrite(&again.unwrap()[0], &options, &Knowledge::offline());
        prop_assert!(
            !second.changed(),
            "{:?} rewritten twice: {second:?}",
            first.rewritten
        );
    }
    let _ = scans::statement_scans(&statement.ast);
    let _ = sql::placeholders(&statement.ast);
    let _ = explain::Jobs::new(&JobOptions::default()).make(sql::Item::Parsed(statement));
    Ok(())
}

/// Reads `text` as every command does and checks each statement or error:
/// statements come in order, each the exact text of its range; errors are
/// input errors (exit 2) that say where.
fn read(text: &str) -> Result<(), TestCaseError> {
    let mut end = 0;
    for item in sql::statements(text) {
        match item {
            Ok(statement) => {
                prop_assert_eq!(&text[statement.range.clone()], statement.text.as_str());
                prop_assert!(statement.range.start >= end, "statements overlap");
                end = statement.range.end;
                prop_assert!(statement.line >= 1 && statement.column >= 1);
                follow(statement)?;
            }
            Err(error) => {
                prop_assert_eq!(error.exit_code(), 2, "{}", error);
                let message = error.to_string();
                prop_assert!(
                    message.starts_with("the SQL does not parse at line ")
                        || message.starts_with(
                            "the SQL does not parse at the end of the statement (line "
                        )
                        || message.starts_with("the statement at line "),
                    "{}",
                    message
                );
            }
        }
    }
    Ok(())
}

/// Pieces of SQL, with everything that can hide a `;` or confuse a
/// tokenizer: quotes of every kind, dollar quotes, comments, escapes,
/// placeholders, unicode, unbalanced brackets.
const PIECES: &[&str] = &[
    "SELECT",
    "select",
    "*",
    "FROM",
    "payments",
    "p",
    "t",
    "WHERE",
    "created_at",
    "id",
    "=",
    "<",
    "+",
    "-",
    "||",
    "::",
    "int",
    "text[]",
    "$1",
    "$2",
    "ORDER",
    "BY",
    "DESC",
    "LIMIT",
    "ALL",
    "OFFSET",
    "FETCH",
    "FIRST",
    "ROWS",
    "ONLY",
    "FOR",
    "UPDATE",
    "SHARE",
    "UNION",
    "EXCEPT",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    ".",
    "AS",
    "WITH",
    "RECURSIVE",
    "DISTINCT",
    "ON",
    "GROUP",
    "HAVING",
    "count(*)",
    "max(id)",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "NOT",
    "AND",
    "OR",
    "IN",
    "EXISTS",
    "BETWEEN",
    "IS",
    "NULL",
    "true",
    "1",
    "2.5e3",
    "'x'",
    "''",
    "'a;b'",
    "'",
    "E'\\';'",
    "e'",
    "\\",
    "$$",
    "$$;$$",
    "$t$;$t$",
    "$t$",
    "a$b",
    "\"q;\"",
    "\"",
    "-- c;\n",
    "--",
    "/* ; */",
    "/*",
    "*/",
    "\n",
    "\t",
    "é",
    "😀",
    "U&'x'",
    "B'01'",
    "X'1F'",
    "VALUES",
    "INSERT",
    "INTO",
    "DELETE",
    "MERGE",
    "USING",
    "JOIN",
    "LEFT",
    "LATERAL",
    "INTERVAL",
    "'1 day'",
    "COPY",
    "STDIN",
    "EXPLAIN",
    "ANALYZE",
    "VACUUM",
    "CREATE",
    "INDEX",
    "CONCURRENTLY",
    "BEGIN",
    "ROLLBACK",
    "SET",
    "nextval('s')",
];

/// A soup of [`PIECES`] and arbitrary characters, with or without spaces.
fn soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => proptest::sample::select(PIECES).prop_map(str::to_owned),
        1 => "\\PC{1,3}",
    ];
    (proptest::collection::vec(piece, 0..60), any::<bool>())
        .prop_map(|(pieces, spaced)| pieces.join(if spaced { " " } else { "" }))
}

/// What can wrap an expression, one parser level or more each.
const WRAPPERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("CASE WHEN true THEN ", " END"),
    ("CASE 1 WHEN 1 THEN ", " ELSE 0 END"),
    ("NOT ", ""),
    ("- ", ""),
    ("abs(", ")"),
    ("ARRAY[", "]"),
    ("(SELECT ", ")"),
    ("EXISTS (SELECT ", ")"),
    ("coalesce(", ", 0)"),
    ("CAST(", " AS int)"),
    ("1 + (", ")"),
    ("(SELECT 1 UNION SELECT ", ")"),
];

/// What can wrap a FROM item.
const FROM_WRAPPERS: &[(&str, &str)] = &[
    ("(SELECT * FROM ", ") s"),
    ("(", " JOIN t USING (id))"),
    ("LATERAL (SELECT * FROM ", ") l"),
    ("(WITH w AS (SELECT 1) SELECT * FROM ", ") c"),
];

/// A valid statement nesting up to 300 wrappers deep, in the select list
/// or in FROM.
fn nested() -> impl Strategy<Value = String> {
    let chain = |wrappers: &'static [(&'static str, &'static str)]| {
        proptest::collection::vec(proptest::sample::select(wrappers), 0..300)
    };
    let wrap = |chain: Vec<(&str, &str)>, inner: &str| {
        let open: String = chain.iter().map(|(open, _)| *open).collect();
        let close: String = chain.iter().rev().map(|(_, close)| *close).collect();
        format!("{open}{inner}{close}")
    };
    prop_oneof![
        chain(WRAPPERS).prop_map(move |c| format!("SELECT {}", wrap(c, "1"))),
        chain(FROM_WRAPPERS).prop_map(move |c| format!("SELECT * FROM {}", wrap(c, "t"))),
    ]
}

/// The corpus, as text (files that are not UTF-8 are left to the corpus
/// test, which reads them as the binary does).
fn corpus_texts() -> Vec<String> {
    corpus()
        .iter()
        .filter_map(|path| String::from_utf8(std::fs::read(path).unwrap()).ok())
        .collect()
}

/// A corpus input, cut, doubled or spliced at random places.
fn mutated() -> impl Strategy<Value = String> {
    let texts = corpus_texts();
    (
        proptest::sample::select(texts),
        proptest::collection::vec((any::<prop::sample::Index>(), 0usize..40, 0usize..3), 1..4),
        proptest::sample::select(PIECES),
    )
        .prop_map(|(text, edits, piece)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, len, kind) in edits {
                let at = at.index(chars.len() + 1);
                let end = (at + len).min(chars.len());
                match kind {
                    0 => drop(chars.drain(at..end)),
                    1 => {
                        let copy: Vec<char> = chars[at..end].to_vec();
                        chars.splice(at..at, copy);
                    }
                    _ => drop(chars.splice(at..at, piece.chars())),
                }
            }
            chars.into_iter().collect()
        })
}

/// Reads `text` as every command does, on the binary's stack.
fn clean_answers(text: &str) -> Result<(), TestCaseError> {
    let text = text.to_owned();
    on_main_stack(move || read(&text))
}

/// A statement nested deep parses into one statement that passes
/// [`follow`], or is called too deep; never anything else.
fn parsed_or_too_deep(text: &str) -> Result<(), TestCaseError> {
    let text = text.to_owned();
    on_main_stack(move || match sql::parse_statements(&text) {
        Ok(mut statements) => {
            prop_assert_eq!(statements.len(), 1);
            follow(statements.remove(0))
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                message.contains("nests deeper than 200 levels"),
                "{}",
                message
            );
            Ok(())
        }
    })
}

/// A property of the input path, checked on one text.
type Property = fn(&str) -> Result<(), TestCaseError>;

/// The properties, by the name of the test that fuzzes each: the corpus
/// replays an input through the one that found it.
const PROPERTIES: &[(&str, Property)] = &[
    ("soups_get_clean_answers", clean_answers),
    ("any_text_gets_clean_answers", clean_answers),
    ("nesting_is_parsed_or_called_too_deep", parsed_or_too_deep),
    ("mutated_corpus_inputs_get_clean_answers", clean_answers),
];

/// How a corpus file found by the fuzzer, its expectation not yet settled,
/// starts its first line: `-- expect: FIXME found by <property>: <reason>`.
const UNSETTLED: &str = "FIXME found by ";

fn property(name: &str) -> Property {
    PROPERTIES
        .iter()
        .find(|(known, _)| *known == name)
        .unwrap_or_else(|| panic!("no property named {name}"))
        .1
}

/// Writes an input the property `name` failed on into the corpus, with an
/// unsettled expectation; returns the file's path. The file is named after
/// the input (FNV-1a), so the same input is written once.
fn persist(name: &str, reason: &str, text: &str) -> std::path::PathBuf {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = corpus_dir().join(format!("failed-{hash:016x}.sql"));
    let reason: String = reason
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    std::fs::write(
        &path,
        format!("-- expect: {UNSETTLED}{name}: {reason}\n{text}"),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Runs the property `name` on inputs from `strategy`, as many as
/// `PROPTEST_CASES` says (256 when unset). An input it fails on is shrunk
/// by proptest, written into the corpus (see [`persist`]), and the test
/// fails saying where.
fn fuzz(name: &str, strategy: impl Strategy<Value = String>) {
    let check = property(name);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    match runner.run(&strategy, |text| check(&text)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, text)) => {
            let path = persist(name, &reason.to_string(), &text);
            panic!(
                "{name} failed on {text:?}: {reason}\n\
                 The input is written to {}, which every run now replays \
                 (the_corpus_gets_clean_answers) until it passes: fix the bug, then replace \
                 the file's first line with `-- expect: ok` or `-- expect: <part of the \
                 message>` and name the file after what it holds.",
                path.display()
            );
        }
        Err(TestError::Abort(reason)) => panic!("{name}: {reason}"),
    }
}

#[test]
fn soups_get_clean_answers() {
    fuzz("soups_get_clean_answers", soup());
}

#[test]
fn any_text_gets_clean_answers() {
    fuzz("any_text_gets_clean_answers", "\\PC{0,300}");
}

#[test]
fn nesting_is_parsed_or_called_too_deep() {
    fuzz("nesting_is_parsed_or_called_too_deep", nested());
}

#[test]
fn mutated_corpus_inputs_get_clean_answers() {
    fuzz("mutated_corpus_inputs_get_clean_answers", mutated());
}

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The files of `tests/corpus`.
fn corpus() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

/// The expectation a corpus file states in its first line (after a byte
/// order mark, if any): `-- expect: ok`, or `-- expect: <part of the error
/// message>`.
fn expectation(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("-- expect: ").map(str::to_owned)
}

#[test]
fn the_corpus_gets_clean_answers() {
    let files = corpus();
    assert!(files.len() >= 20, "the corpus is missing");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = expectation(&bytes);
        // An input the fuzzer found: replayed through the property that
        // found it, exactly as it was (the text after the first line).
        let unsettled = expected
            .as_deref()
            .and_then(|e| e.strip_prefix(UNSETTLED))
            .map(|found| found.split(':').next().unwrap_or(found).to_owned());
        if let Some(found_by) = &unsettled {
            let text = String::from_utf8_lossy(&bytes);
            let input = text.split_once('\n').map_or("", |(_, input)| input);
            if let Err(error) = property(found_by)(input) {
                panic!("{name}, found by {found_by}, still fails: {error}");
            }
        }
        // Through the binary, as a user gives it: read, split, parse,
        // classify and rewrite (offline).
        let output = common::perfaudit()
            .args(["--format", "json", "rewrite", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(matches!(code, Some(0 | 2)), "{name}: {code:?} {stderr}");
        for line in stderr.lines() {
            assert!(line.starts_with("perfaudit: "), "{name}: {stderr}");
        }
        if !stdout.is_empty() {
            let document: serde_json::Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e})"));
            assert!(document["statements"].is_array(), "{name}");
        }
        match expected.as_deref() {
            _ if unsettled.is_some() => {}
            Some("ok") => assert_eq!(code, Some(0), "{name}: {stderr}"),
            Some(message) => {
                assert_eq!(code, Some(2), "{name}");
                assert!(stderr.contains(message), "{name}: {stderr}");
            }
            None => panic!("{name} has no `-- expect:` first line"),
        }
        // And through the library, with every invariant of the fuzz run.
        if let Ok(text) = String::from_utf8(bytes) {
            on_main_stack(move || read(&text)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(
            unsettled.is_none(),
            "{name}, found by the fuzzer, now passes: replace its first line with \
             `-- expect: ok` or `-- expect: <part of the message>` and name the file after \
             what it holds"
        );
    }
}
