//! Reading SQL text into statements: split, parse (sqlparser, PostgreSQL
//! dialect) and classify, before anything reaches a server.
//!
//! The input is tokenized once and split at top-level semicolons: a `;`
//! inside a string, a dollar-quoted body or a comment is part of a token, never
//! a separator. Each statement keeps the user's exact text, which is what
//! perfaudit sends — one statement at a time, never the whole input.

mod classify;
mod ident;

use std::ops::Range;

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use classify::{Class, classify};
pub use ident::ident;

use crate::error::{Error, Result};

/// How deep the parser may nest (parentheses, subqueries, expressions)
/// before it gives up with a clean error. sqlparser's default of 50 rejects
/// real generated SQL; its `recursive-protection` feature grows the stack
/// as it recurses, so a deeper limit stays safe.
pub const RECURSION_LIMIT: usize = 200;

/// One statement of the input.
#[derive(Debug, Clone)]
pub struct SqlStatement {
    /// The user's exact text of this statement: from its first token to its
    /// last, without surrounding comments and without the `;`.
    pub text: String,
    /// Line of the statement's first token, from 1.
    pub line: usize,
    /// Column of the statement's first token, from 1 (characters).
    pub column: usize,
    /// Byte range of `text` in the whole input.
    pub range: Range<usize>,
    /// The syntax tree.
    pub ast: Statement,
    /// What running it would do.
    pub class: Class,
}

/// Splits, parses and classifies every statement of `input`. Fails on the
/// first statement that does not parse, naming its line and column: nothing
/// of a half-understood input should run.
pub fn parse_statements(input: &str) -> Result<Vec<SqlStatement>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, input)
        .tokenize_with_location()
        .map_err(|e| {
            Error::input(format!(
                "the SQL does not parse at line {}, column {}: {}",
                e.location.line, e.location.column, e.message
            ))
        })?;
    let lines = LineIndex::new(input);
    let mut statements = Vec::new();
    for group in tokens.split(|t| t.token == Token::SemiColon) {
        let significant =
            |t: &&TokenWithSpan| !matches!(t.token, Token::Whitespace(_) | Token::EOF);
        let (Some(first), Some(last)) = (
            group.iter().find(significant),
            group.iter().rev().find(significant),
        ) else {
            continue; // only whitespace and comments
        };
        let range = lines.offset(first.span.start)..lines.offset(last.span.end);
        let ast = parse_one(&dialect, group, first.span.start)?;
        statements.push(SqlStatement {
            text: input[range.clone()].to_owned(),
            line: first.span.start.line as usize,
            column: first.span.start.column as usize,
            range,
            class: classify(&ast),
            ast,
        });
    }
    Ok(statements)
}

/// Parses the tokens of one statement (positions stay those of the whole
/// input, so errors point at the right place).
fn parse_one(
    dialect: &PostgreSqlDialect,
    tokens: &[TokenWithSpan],
    start: Location,
) -> Result<Statement> {
    let mut parser = Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens.to_vec());
    let mut parsed = parser
        .parse_statements()
        .map_err(|e| parse_error(e, start))?;
    match parsed.len() {
        1 => Ok(parsed.remove(0)),
        _ => Err(Error::input(format!(
            "the SQL does not parse at line {}, column {}: expected one statement",
            start.line, start.column
        ))),
    }
}

/// `the SQL does not parse at line L, column C: <the parser's reason>`.
fn parse_error(error: ParserError, start: Location) -> Error {
    match error {
        ParserError::RecursionLimitExceeded => Error::input(format!(
            "the statement at line {}, column {} nests deeper than {RECURSION_LIMIT} levels, \
             more than perfaudit's parser follows; simplify it",
            start.line, start.column
        )),
        ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
            // sqlparser appends " at Line: L, Column: C" to its messages.
            let (reason, location) = match message.rsplit_once(" at Line: ") {
                Some((reason, location)) => (reason.to_owned(), Some(location.to_owned())),
                None => (message, None),
            };
            let (line, column) = location
                .as_deref()
                .and_then(|l| l.split_once(", Column: "))
                .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
                .unwrap_or((start.line, start.column));
            Error::input(format!(
                "the SQL does not parse at line {line}, column {column}: {reason}"
            ))
        }
    }
}

/// Maps sqlparser's (line, column) positions, which count characters, to
/// byte offsets.
struct LineIndex<'a> {
    input: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(input: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(input.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { input, line_starts }
    }

    fn offset(&self, location: Location) -> usize {
        let line_start = self.line_starts[location.line as usize - 1];
        self.input[line_start..]
            .char_indices()
            .nth(location.column as usize - 1)
            .map_or(self.input.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        parse_statements(input)
            .unwrap()
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(
            texts("SELECT 'a;b'; SELECT $$x;y$$ ;-- c;\nSELECT /* ; */ 1;;"),
            ["SELECT 'a;b'", "SELECT $$x;y$$", "SELECT /* ; */ 1"]
        );
        assert_eq!(
            texts("SELECT $fn$ ; $fn$, E'\\';' ; SELECT \"a;b\" FROM t"),
            ["SELECT $fn$ ; $fn$, E'\\';'", "SELECT \"a;b\" FROM t"]
        );
    }

    #[test]
    fn keeps_the_users_text_and_position() {
        let statements = parse_statements(
            "-- lead\n  select *\n  from   payments -- trail\n ;\n\tSELECT 'é', 2",
        )
        .unwrap();
        assert_eq!(statements[0].text, "select *\n  from   payments");
        assert_eq!((statements[0].line, statements[0].column), (2, 3));
        assert_eq!(statements[1].text, "SELECT 'é', 2");
        assert_eq!((statements[1].line, statements[1].column), (5, 2));
    }

    #[test]
    fn empty_and_comment_only_input_has_no_statements() {
        assert!(texts("").is_empty());
        assert!(texts(" ;; -- nothing\n/* at all */").is_empty());
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let err = parse_statements("SELECT 1;\nSELECT FROM WHERE;").unwrap_err();
        assert!(matches!(err, Error::Input(_)));
        assert_eq!(
            err.to_string(),
            "the SQL does not parse at line 2, column 13: Expected: table name, found: WHERE"
        );
        let err = parse_statements("SELECT 'unterminated").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the SQL does not parse at line 1, column 8"),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_a_clean_error() {
        let deep = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        let err = parse_statements(&deep).unwrap_err();
        assert!(err.to_string().contains("nests deeper than"), "{err}");
        let fine = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(parse_statements(&fine).unwrap().len(), 1);
    }
}
