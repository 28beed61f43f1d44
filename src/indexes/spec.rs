//! Index specs: the indexes a run wants, read from TOML. The default spec,
//! the four payment indexes, is embedded in the binary and shipped as
//! `fixtures/indexes.toml`.
//!
//! Names (index, columns, `include`) are plain names, always quoted when
//! they reach SQL. The table is written as in SQL (`payments`,
//! `public.payments`, `"Odd Name"`) and resolved by the server. Expressions
//! and `where` are SQL by nature, and PostgreSQL is the judge of SQL: the
//! catalog step has the server build each wanted index on an empty copy of
//! its table, sending each statement alone through the extended protocol
//! (where the server refuses a second statement), and checks that the
//! server read as many keys and as much of a predicate as the spec wrote.
//! Here only what no SQL may hold is refused.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The default spec: the payment indexes of the design.
pub const DEFAULT_SPEC: &str = include_str!("../../fixtures/indexes.toml");

/// PostgreSQL silently truncates identifiers longer than this many bytes
/// (`NAMEDATALEN` minus one). An index created under a truncated name would
/// never be found again under the spec's name, so longer names are refused.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The access method of an index whose spec names none.
pub const DEFAULT_METHOD: &str = "btree";

/// A set of wanted indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The indexes, in the order they are built.
    pub indexes: Vec<IndexSpec>,
}

/// One wanted index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name; the index lives in its table's schema.
    pub name: String,
    /// The table, as written in SQL (optionally schema-qualified, quoted
    /// where needed).
    pub table: String,
    /// The key, in order.
    pub keys: Vec<Key>,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// The access method, lower case (`btree`, `hash`, `gin`, ...).
    pub method: String,
    /// The predicate of a partial index, in SQL.
    pub predicate: Option<String>,
    /// Non-key columns stored in the index (`INCLUDE`).
    pub include: Vec<String>,
}

/// One element of an index key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A column, by name.
    Column(String),
    /// An SQL expression over the table's columns.
    Expression(String),
}

impl Key {
    /// The column name or the expression, as the spec wrote it.
    pub fn text(&self) -> &str {
        match self {
            Key::Column(text) | Key::Expression(text) => text,
        }
    }
}

impl IndexSpec {
    /// Whether any key is an expression (its statistics need an `ANALYZE`).
    pub fn has_expressions(&self) -> bool {
        self.keys
            .iter()
            .any(|key| matches!(key, Key::Expression(_)))
    }
}

impl Spec {
    /// The spec in `path`, or the default spec when there is none.
    pub fn load(path: Option<&Path>) -> Result<Spec> {
        let Some(path) = path else {
            return Spec::parse(DEFAULT_SPEC, "(the default spec)");
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::input(format!(
                "cannot read the index spec {}: {e}; check the path given to --spec",
                path.display()
            ))
        })?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a spec; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Spec> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            // One sentence: the line and column, not toml's drawing of them.
            let at = e.span().map_or_else(String::new, |span| {
                let (line, column) = crate::input::position(&text.as_bytes()[..span.start]);
                format!(" at line {line}, column {column}")
            });
            Error::input(format!(
                "the index spec {origin} is not valid{at}: {}",
                e.message().trim_end()
            ))
        })?;
        let indexes = raw
            .index
            .into_iter()
            .map(IndexSpec::try_from)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::input(format!("the index spec {origin} is not valid: {e}")))?;
        if indexes.is_empty() {
            return Err(Error::input(format!(
                "the index spec {origin} holds no [[index]]; add at least one"
            )));
        }
        let mut names = HashSet::new();
        if let Some(twice) = indexes.iter().find(|index| !names.insert(&index.name)) {
            return Err(Error::input(format!(
                "the index spec {origin} is not valid: index \"{}\" is given twice; \
                 give each index its own name",
                twice.name
            )));
        }
        Ok(Spec { indexes })
    }
}

/// The file format, as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    index: Vec<RawIndex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    name: String,
    table: String,
    columns: Vec<RawKey>,
    #[serde(default)]
    unique: bool,
    method: Option<String>,
    #[serde(rename = "where")]
    predicate: Option<String>,
    #[serde(default)]
    include: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a column name or { expression = \"...\" }")]
enum RawKey {
    Column(String),
    Expression(RawExpression),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpression {
    expression: String,
}

impl TryFrom<RawIndex> for IndexSpec {
    type Error = String;

    fn try_from(raw: RawIndex) -> std::result::Result<IndexSpec, String> {
        let name = raw.name;
        let context = |problem: String| format!("index \"{name}\": {problem}");
        check_name("the index name", &name).map_err(context)?;
        if raw.table.trim().is_empty() || raw.table.contains('\0') {
            return Err(context("`table` must name a table".into()));
        }
        if raw.columns.is_empty() {
            return Err(context("`columns` is empty; list at least one".into()));
        }
        let keys = raw
            .columns
            .into_iter()
            .map(|key| match key {
                RawKey::Column(column) => {
                    check_name("a column name", &column)?;
                    Ok(Key::Column(column))
                }
                RawKey::Expression(RawExpression { expression }) => {
                    check_expression(&expression)
                        .map_err(|e| format!("expression `{expression}` {e}"))?;
                    Ok(Key::Expression(expression))
                }
            })
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(context)?;
        for column in &raw.include {
            check_name("an `include` column", column).map_err(context)?;
        }
        if let Some(predicate) = &raw.predicate {
            check_expression(predicate).map_err(|e| context(format!("`where` {e}")))?;
        }
        let method = raw
            .method
            .unwrap_or_else(|| DEFAULT_METHOD.to_owned())
            .to_ascii_lowercase();
        check_name("the method", &method).map_err(context)?;
        Ok(IndexSpec {
            table: raw.table,
            keys,
            unique: raw.unique,
            method,
            predicate: raw.predicate,
            include: raw.include,
            name,
        })
    }
}

/// A name PostgreSQL keeps as it is.
fn check_name(what: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        Err(format!("{what} is empty"))
    } else if name.contains('\0') {
        Err(format!("{what} holds a NUL character"))
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Err(format!(
            "{what} \"{}\" is {} bytes long; PostgreSQL keeps at most {MAX_IDENTIFIER_BYTES}",
            crate::error::clip(name),
            name.len()
        ))
    } else {
        Ok(())
    }
}

/// Whether `text` may be sent as SQL; the error completes the sentence
/// "expression ... {error}". What it means is for the server to say.
fn check_expression(text: &str) -> std::result::Result<(), String> {
    if text.trim().is_empty() {
        Err("is empty".into())
    } else if text.contains('\0') {
        Err("holds a NUL character".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec> {
        Spec::parse(text, "test.toml")
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_default_spec_is_the_four_payment_indexes() {
        let spec = Spec::load(None).unwrap();
        let summary: Vec<(&str, &str, Vec<&str>)> = spec
            .indexes
            .iter()
            .map(|index| {
                assert_eq!(index.method, "btree");
                assert!(!index.unique && index.predicate.is_none() && index.include.is_empty());
                (
                    index.name.as_str(),
                    index.table.as_str(),
                    index.keys.iter().map(Key::text).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("idx_payments_user_id", "payments", vec!["user_id"]),
                ("idx_payments_status", "payments", vec!["status"]),
                ("idx_payments_created_at", "payments", vec!["created_at"]),
                (
                    "idx_payments_user_status",
                    "payments",
                    vec!["user_id", "status"]
                ),
            ]
        );
    }

    #[test]
    fn every_option_is_read() {
        let spec = parse(
            r#"
            [[index]]
            name = "Odd \"Name\""
            table = 'public."Pay Ments"'
            columns = ["user_id", { expression = "lower(description)" }]
            unique = true
            method = "BTREE"
            where = "status = 'pending'"
            include = ["amount"]
            "#,
        )
        .unwrap();
        assert_eq!(
            spec.indexes,
            [IndexSpec {
                name: "Odd \"Name\"".into(),
                table: "public.\"Pay Ments\"".into(),
                keys: vec![
                    Key::Column("user_id".into()),
                    Key::Expression("lower(description)".into())
                ],
                unique: true,
                method: "btree".into(),
                predicate: Some("status = 'pending'".into()),
                include: vec!["amount".into()],
            }]
        );
        assert!(spec.indexes[0].has_expressions());
    }

    #[test]
    fn syntax_errors_and_unknown_fields_are_refused_with_their_place() {
        let message =
            error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [\"c\"]\nuniq = true\n");
        assert!(
            message.contains("test.toml") && message.contains("uniq"),
            "{message}"
        );
        assert!(
            message.starts_with(
                "the index spec test.toml is not valid at line 5, column 1: unknown field `uniq`"
            ),
            "{message}"
        );
        assert_eq!(
            message.lines().count(),
            1,
            "one sentence, no drawing: {message}"
        );
        assert!(error("[[index]]\nname = ").contains("not valid"));
        let message = error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [1]\n");
        assert!(
            message.contains("a column name or { expression"),
            "{message}"
        );
        let message =
            error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [{ expresion = \"x\" }]\n");
        assert!(
            message.contains("a column name or { expression"),
            "{message}"
        );
        assert!(error("[[index]]\nname = \"a\"\ncolumns = [\"c\"]\n").contains("table"));
    }

    #[test]
    fn empty_and_duplicate_specs_are_refused() {
        assert!(error("").contains("holds no [[index]]"));
        let twice = "[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [\"c\"]\n";
        let message = error(&format!("{twice}{twice}"));
        assert!(message.contains("\"a\" is given twice"), "{message}");
    }

    #[test]
    fn names_are_checked() {
        let spec = |name: &str, columns: &str| {
            error(&format!(
                "[[index]]\nname = \"{name}\"\ntable = \"t\"\ncolumns = {columns}\n"
            ))
        };
        assert!(spec("", "[\"c\"]").contains("the index name is empty"));
        assert!(spec(&"x".repeat(64), "[\"c\"]").contains("64 bytes long"));
        assert!(spec("a", "[]").contains("`columns` is empty"));
        assert!(spec("a", "[\"\"]").contains("a column name is empty"));
        assert!(spec("a", "[\"c\\u0000\"]").contains("NUL"));
        assert!(
            parse(&format!(
                "[[index]]\nname = \"{}\"\ntable = \"t\"\ncolumns = [\"c\"]\n",
                "x".repeat(63)
            ))
            .is_ok()
        );
    }

    #[test]
    fn expressions_are_left_to_the_server_but_must_be_text() {
        for sql in [
            "lower(email)",
            "amount OPERATOR(pg_catalog.*) 2",
            "x /* why */",
        ] {
            assert_eq!(check_expression(sql), Ok(()), "{sql}");
        }
        assert_eq!(check_expression(" "), Err("is empty".into()));
        assert_eq!(
            check_expression("a\0b"),
            Err("holds a NUL character".into())
        );
        let message =
            error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [\"c\"]\nwhere = \"\"\n");
        assert!(
            message.contains("index \"a\": `where` is empty"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_file_says_which() {
        let message = Spec::load(Some(Path::new("/nonexistent/spec.toml")))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/spec.toml") && message.contains("--spec"));
    }
}
