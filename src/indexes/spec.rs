//! Index specs: the indexes a run wants, read from TOML. The default spec,
//! the four payment indexes, is embedded in the binary and shipped as
//! `fixtures/indexes.toml`.
//!
//! Names (index, columns, `include`, operator classes, collations,
//! tablespaces) are plain names, always quoted when they reach SQL. The
//! table is written as in SQL (`payments`, `public.payments`, `"Odd
//! Name"`) and resolved by the server. Expressions and `where` are SQL by
//! nature, and PostgreSQL is the judge of SQL: the catalog step has the
//! server build each wanted index on an empty copy of its table, sending
//! each statement alone through the extended protocol (where the server
//! refuses a second statement), and checks that the server read as many
//! keys and as much of a predicate as the spec wrote. Here only what no SQL
//! may hold is refused.
//!
//! A spec is judged whole: every problem of every index is reported in one
//! run ([`Problem`], [`Spec::refuse`]), here and in the steps that check it
//! against the server, so that fixing a spec takes one edit, not one run
//! per mistake.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::pg::catalog::Storage;

/// The default spec: the payment indexes of the design.
pub const DEFAULT_SPEC: &str = include_str!("../../fixtures/indexes.toml");

/// How messages name the default spec.
pub const DEFAULT_ORIGIN: &str = "(the default spec)";

/// PostgreSQL silently truncates identifiers longer than this many bytes
/// (`NAMEDATALEN` minus one). An index created under a truncated name would
/// never be found again under the spec's name, so longer names are refused.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The access method of an index whose spec names none.
pub const DEFAULT_METHOD: &str = "btree";

/// The fill factors PostgreSQL accepts for an index (B-tree, hash, GiST,
/// SP-GiST): a percentage, at least 10.
pub const FILLFACTOR_RANGE: std::ops::RangeInclusive<i64> = 10..=100;

/// A set of wanted indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The indexes, in the order they are built.
    pub indexes: Vec<IndexSpec>,
    /// Where it was read from, for messages: a path, or [`DEFAULT_ORIGIN`].
    pub origin: String,
    /// The line of each index's `[[index]]`, in the order of `indexes`.
    pub lines: Vec<usize>,
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
    /// How each key is compared and ordered, in the order of `keys`.
    pub key_options: Vec<KeyOptions>,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// The access method, lower case (`btree`, `hash`, `gin`, ...).
    pub method: String,
    /// The predicate of a partial index, in SQL.
    pub predicate: Option<String>,
    /// Non-key columns stored in the index (`INCLUDE`).
    pub include: Vec<String>,
    /// Where the index is stored: its fill factor and tablespace. Neither
    /// counts when indexes are compared for equivalence; an index of the
    /// spec's name stored otherwise is another definition.
    pub storage: Storage,
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

/// How one key is compared and ordered; each `None` is the default of its
/// type and method (`CREATE INDEX` writes nothing for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// The collation (`COLLATE "C"`), by name.
    pub collation: Option<String>,
    /// The operator class (`text_pattern_ops`), by name.
    pub opclass: Option<String>,
    /// The sort order.
    pub order: Option<Order>,
    /// Where NULLs sort.
    pub nulls: Option<Nulls>,
}

/// A key's sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// `ASC`.
    Asc,
    /// `DESC`.
    Desc,
}

/// Where a key's NULLs sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nulls {
    /// `NULLS FIRST`.
    First,
    /// `NULLS LAST`.
    Last,
}

impl IndexSpec {
    /// A B-tree of `keys` with no options, in the default tablespace: what
    /// advise and explain ask for.
    pub fn btree(name: &str, table: &str, keys: Vec<Key>, predicate: Option<String>) -> Self {
        IndexSpec {
            name: name.to_owned(),
            table: table.to_owned(),
            key_options: vec![KeyOptions::default(); keys.len()],
            keys,
            unique: false,
            method: DEFAULT_METHOD.to_owned(),
            predicate,
            include: Vec::new(),
            storage: Storage::default(),
        }
    }

    /// Whether any key is an expression (its statistics need an `ANALYZE`).
    pub fn has_expressions(&self) -> bool {
        self.keys
            .iter()
            .any(|key| matches!(key, Key::Expression(_)))
    }

    /// Each key with its options.
    pub fn key_parts(&self) -> impl Iterator<Item = (&Key, &KeyOptions)> {
        self.keys.iter().zip(&self.key_options)
    }
}

/// What is wrong with one index of a spec: the index (its name and line,
/// as [`Spec::label`] writes them) and the problem, as the rest of a
/// sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The index's place in the spec, from 0: problems are reported in
    /// the spec's order.
    pub n: usize,
    /// `index "a" (line 3)`.
    pub index: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The error for `problems` of the spec read from `origin`: one sentence
/// for one problem, else a line each.
fn refusal(origin: &str, problems: &[Problem]) -> Error {
    let mut problems = problems.to_vec();
    problems.sort_by_key(|p| p.n);
    match problems.as_slice() {
        [problem] => Error::input(format!(
            "the index spec {origin} is not valid: {}: {}",
            problem.index, problem.message
        )),
        _ => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("\n  {}: {}", p.index, p.message))
                .collect();
            Error::input(format!(
                "the index spec {origin} has {} problems; nothing was built:{}",
                problems.len(),
                lines.concat()
            ))
        }
    }
}

/// `index "a" (line 3)`.
fn label(name: &str, line: usize) -> String {
    format!("index \"{}\" (line {line})", crate::error::clip(name))
}

impl Spec {
    /// The spec in `path`, or the default spec when there is none.
    pub fn load(path: Option<&Path>) -> Result<Spec> {
        let Some(path) = path else {
            return Spec::parse(DEFAULT_SPEC, DEFAULT_ORIGIN);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::input(format!(
                "cannot read the index spec {}: {e}; check the path given to --spec",
                path.display()
            ))
        })?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// Whether it is the built-in default spec.
    pub fn is_default(&self) -> bool {
        self.origin == DEFAULT_ORIGIN
    }

    /// How messages name index `n`: `index "a" (line 3)`.
    pub fn label(&self, n: usize) -> String {
        label(&self.indexes[n].name, self.lines[n])
    }

    /// A problem of index `n`.
    pub fn problem(&self, n: usize, message: impl Into<String>) -> Problem {
        Problem {
            n,
            index: self.label(n),
            message: message.into(),
        }
    }

    /// The error that refuses the spec for all of `problems` (at least
    /// one), in the order of the spec.
    pub fn refuse(&self, problems: &[Problem]) -> Error {
        refusal(&self.origin, problems)
    }

    /// Parses and checks a spec; `origin` names it in messages. Every index
    /// is checked, and every problem found is reported together.
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
        if raw.index.is_empty() {
            return Err(Error::input(format!(
                "the index spec {origin} holds no [[index]]; add at least one"
            )));
        }
        let mut spec = Spec {
            indexes: Vec::new(),
            origin: origin.to_owned(),
            lines: Vec::new(),
        };
        let mut problems = Vec::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (n, entry) in raw.index.into_iter().enumerate() {
            let line = crate::input::position(&text.as_bytes()[..entry.span().start]).0;
            let table = entry.into_inner();
            let name = match table.get("name") {
                Some(toml::Value::String(name)) => name.clone(),
                _ => format!("#{}", n + 1),
            };
            let index = toml::Value::Table(table)
                .try_into::<RawIndex>()
                .map_err(|e| e.message().trim_end().to_owned())
                .and_then(IndexSpec::try_from);
            match index {
                Ok(index) => {
                    if let Some(first) = first_line.get(&index.name) {
                        problems.push(Problem {
                            n,
                            index: label(&name, line),
                            message: format!(
                                "the name is given twice (first at line {first}); give each \
                                 index its own name"
                            ),
                        });
                    } else {
                        first_line.insert(index.name.clone(), line);
                    }
                    spec.indexes.push(index);
                    spec.lines.push(line);
                }
                Err(message) => problems.push(Problem {
                    n,
                    index: label(&name, line),
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(refusal(origin, &problems))
        }
    }
}

/// The file format, as serde reads it: each index apart, so that a
/// problem in one does not hide those of the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    index: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    name: String,
    table: String,
    columns: Vec<toml::Value>,
    #[serde(default)]
    unique: bool,
    method: Option<String>,
    #[serde(rename = "where")]
    predicate: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    fillfactor: Option<i64>,
    tablespace: Option<String>,
}

/// A key written as a table: a column or an expression, and its options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    column: Option<String>,
    expression: Option<String>,
    collation: Option<String>,
    opclass: Option<String>,
    order: Option<Order>,
    nulls: Option<Nulls>,
}

/// What a key may be, for messages.
const KEY_FORMS: &str = "a column name, or a table such as { column = \"email\", opclass = \
     \"text_pattern_ops\" } or { expression = \"lower(email)\" }";

/// Reads one key of `columns`.
fn read_key(value: toml::Value) -> std::result::Result<(Key, KeyOptions), String> {
    let raw = match value {
        toml::Value::String(column) => {
            check_name("a column name", &column)?;
            return Ok((Key::Column(column), KeyOptions::default()));
        }
        table @ toml::Value::Table(_) => table
            .try_into::<RawKey>()
            .map_err(|e| format!("a key of `columns`: {}", e.message().trim_end()))?,
        other => {
            return Err(format!(
                "a key of `columns` is {} {}; write {KEY_FORMS}",
                article(other.type_str()),
                other.type_str()
            ));
        }
    };
    let key = match (raw.column, raw.expression) {
        (Some(column), None) => {
            check_name("a column name", &column)?;
            Key::Column(column)
        }
        (None, Some(expression)) => {
            check_expression(&expression).map_err(|e| format!("expression `{expression}` {e}"))?;
            Key::Expression(expression)
        }
        _ => {
            return Err(format!(
                "a key of `columns` must give exactly one of `column` and `expression`; \
                 write {KEY_FORMS}"
            ));
        }
    };
    for (what, name) in [
        ("a collation", &raw.collation),
        ("an operator class", &raw.opclass),
    ] {
        if let Some(name) = name {
            check_name(what, name)?;
        }
    }
    Ok((
        key,
        KeyOptions {
            collation: raw.collation,
            opclass: raw.opclass,
            order: raw.order,
            nulls: raw.nulls,
        },
    ))
}

/// `a` or `an`, for a TOML type's name.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl TryFrom<RawIndex> for IndexSpec {
    type Error = String;

    fn try_from(raw: RawIndex) -> std::result::Result<IndexSpec, String> {
        check_name("the index name", &raw.name)?;
        if raw.table.trim().is_empty() || raw.table.contains('\0') {
            return Err("`table` must name a table".into());
        }
        if raw.columns.is_empty() {
            return Err("`columns` is empty; list at least one".into());
        }
        let (keys, key_options) = raw
            .columns
            .into_iter()
            .map(read_key)
            .collect::<std::result::Result<Vec<_>, String>>()?
            .into_iter()
            .unzip();
        for column in &raw.include {
            check_name("an `include` column", column)?;
        }
        if let Some(predicate) = &raw.predicate {
            check_expression(predicate).map_err(|e| format!("`where` {e}"))?;
        }
        let method = raw
            .method
            .unwrap_or_else(|| DEFAULT_METHOD.to_owned())
            .to_ascii_lowercase();
        check_name("the method", &method)?;
        let fillfactor = match raw.fillfactor {
            None => None,
            Some(percent) if FILLFACTOR_RANGE.contains(&percent) => Some(percent as u32),
            Some(percent) => {
                return Err(format!(
                    "`fillfactor` is {percent}; it is a percentage from {} to {}",
                    FILLFACTOR_RANGE.start(),
                    FILLFACTOR_RANGE.end()
                ));
            }
        };
        if let Some(tablespace) = &raw.tablespace {
            check_name("the tablespace", tablespace)?;
        }
        Ok(IndexSpec {
            name: raw.name,
            table: raw.table,
            keys,
            key_options,
            unique: raw.unique,
            method,
            predicate: raw.predicate,
            include: raw.include,
            storage: Storage {
                fillfactor,
                tablespace: raw.tablespace,
            },
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
        assert!(spec.is_default());
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
            columns = [
                "user_id",
                { expression = "lower(description)", collation = "C", order = "desc" },
                { column = "email", opclass = "text_pattern_ops", nulls = "first" },
            ]
            unique = true
            method = "BTREE"
            where = "status = 'pending'"
            include = ["amount"]
            fillfactor = 70
            tablespace = "fast"
            "#,
        )
        .unwrap();
        assert!(!spec.is_default());
        assert_eq!(spec.lines, [2]);
        assert_eq!(
            spec.indexes,
            [IndexSpec {
                name: "Odd \"Name\"".into(),
                table: "public.\"Pay Ments\"".into(),
                keys: vec![
                    Key::Column("user_id".into()),
                    Key::Expression("lower(description)".into()),
                    Key::Column("email".into()),
                ],
                key_options: vec![
                    KeyOptions::default(),
                    KeyOptions {
                        collation: Some("C".into()),
                        order: Some(Order::Desc),
                        ..KeyOptions::default()
                    },
                    KeyOptions {
                        opclass: Some("text_pattern_ops".into()),
                        nulls: Some(Nulls::First),
                        ..KeyOptions::default()
                    },
                ],
                unique: true,
                method: "btree".into(),
                predicate: Some("status = 'pending'".into()),
                include: vec!["amount".into()],
                storage: Storage {
                    fillfactor: Some(70),
                    tablespace: Some("fast".into()),
                },
            }]
        );
        assert!(spec.indexes[0].has_expressions());
    }

    #[test]
    fn syntax_errors_and_unknown_fields_are_refused_with_their_place() {
        let message =
            error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [\"c\"]\nuniq = true\n");
        assert!(
            message.starts_with(
                "the index spec test.toml is not valid: index \"a\" (line 1): unknown field `uniq`"
            ),
            "{message}"
        );
        assert_eq!(
            message.lines().count(),
            1,
            "one sentence, no drawing: {message}"
        );
        let message = error("[[index]]\nname = ");
        assert!(
            message.starts_with("the index spec test.toml is not valid at line 2, column 8"),
            "{message}"
        );
        let message = error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [1]\n");
        assert!(
            message.contains("a key of `columns` is an integer; write a column name, or a table"),
            "{message}"
        );
        let message =
            error("[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [{ expresion = \"x\" }]\n");
        assert!(
            message.contains("a key of `columns`: unknown field `expresion`"),
            "{message}"
        );
        let message = error(
            "[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [{ column = \"x\", expression = \"y\" }]\n",
        );
        assert!(
            message.contains("exactly one of `column` and `expression`"),
            "{message}"
        );
        let message = error(
            "[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = [{ column = \"x\", order = \"down\" }]\n",
        );
        assert!(message.contains("unknown variant `down`"), "{message}");
        assert!(error("[[index]]\nname = \"a\"\ncolumns = [\"c\"]\n").contains("table"));
    }

    #[test]
    fn every_problem_of_every_index_is_reported_at_once() {
        let message = error(
            "[[index]]\nname = \"a\"\ntable = \"t\"\ncolumns = []\n\n\
             [[index]]\nname = \"b\"\ntable = \"t\"\ncolumns = [\"c\"]\nfillfactor = 5\n\n\
             [[index]]\nname = \"ok\"\ntable = \"t\"\ncolumns = [\"c\"]\n\n\
             [[index]]\ntable = \"t\"\ncolumns = [\"c\"]\n\n\
             [[index]]\nname = \"ok\"\ntable = \"t\"\ncolumns = [\"d\"]\n",
        );
        assert_eq!(
            message,
            "the index spec test.toml has 4 problems; nothing was built:\n  \
             index \"a\" (line 1): `columns` is empty; list at least one\n  \
             index \"b\" (line 6): `fillfactor` is 5; it is a percentage from 10 to 100\n  \
             index \"#4\" (line 17): missing field `name`\n  \
             index \"ok\" (line 21): the name is given twice (first at line 12); give each \
             index its own name"
        );
    }

    #[test]
    fn empty_specs_are_refused() {
        assert!(error("").contains("holds no [[index]]"));
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
            spec("a", "[{ column = \"c\", opclass = \"\" }]")
                .contains("an operator class is empty")
        );
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
            message.contains("index \"a\" (line 1): `where` is empty"),
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
