//! Reading SQL text into statements: split, parse (sqlparser, PostgreSQL
//! dialect) and classify, before anything reaches a server.
//!
//! The input is split at top-level semicolons: a `;` inside a string, a
//! dollar-quoted body or a comment is part of a token, never a separator.
//! Statements are read one at a time ([`statements`]), so a file of many
//! statements streams through in little memory. Each statement keeps the
//! user's exact text, which is what perfaudit sends — one statement at a
//! time, never the whole input.

mod classify;
mod functions;
pub mod ident;
pub mod predicates;
pub mod scans;
mod split;
mod visit;
pub mod writes;

use std::collections::VecDeque;
use std::ops::{ControlFlow, Range};
use std::sync::Once;

use sqlparser::ast::{Expr, Statement, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

pub(crate) use classify::leading_keywords;
pub use classify::{Class, classify, outliving_effect, outliving_reasons};
pub use functions::{FunctionCall, calls, expression_calls};
pub use visit::{own_expressions, placeholders};

use crate::error::{Error, Result, clip};

/// How deep the parser may nest (parentheses, subqueries, expressions)
/// before it gives up with a clean error. sqlparser's default of 50 rejects
/// real generated SQL; its `recursive-protection` feature grows the stack
/// as it recurses, so a deeper limit stays safe.
pub const RECURSION_LIMIT: usize = 200;

/// How many operators one expression may chain (`a + b + ...`,
/// `x = 1 OR x = 2 OR ...`, `v::a::b...`) before perfaudit refuses it.
/// sqlparser builds such a chain as a tree as deep as the chain is long,
/// without counting it against [`RECURSION_LIMIT`], and freeing or walking
/// the tree recurses once per level: ten thousand levels fit in a 2 MiB
/// thread stack (a test thread's) with room to spare, a 1 MB chain would
/// overflow even the main thread's.
pub const MAX_OPERATOR_CHAIN: usize = 10_000;

/// The stack sqlparser's recursion guard (the `recursive` crate) wants free
/// at each of its checks: when less is left, it moves on to a new stack
/// segment. Its default, 128 KiB, is less than an unoptimized build uses
/// between two checks (one `FROM (SELECT ...)` level takes about 190 KiB),
/// so a statement nested 40 to 100 subqueries deep could run past the end of
/// the stack and abort perfaudit; 1 MiB covers several levels.
const PARSER_STACK_RED_ZONE: usize = 1024 * 1024;

/// The size of each new stack segment the guard allocates (its default is
/// 2 MiB, which with our red zone would leave only 1 MiB of each to use).
const PARSER_STACK_SEGMENT: usize = 8 * 1024 * 1024;

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
    /// The statement's tokens as the parser saw them, whitespace and
    /// comments included, with line and column in the whole input: the
    /// rewriter finds its insertion points in them.
    pub tokens: Vec<TokenWithSpan>,
}

impl SqlStatement {
    /// The statement's first token's position, as sqlparser counts it.
    pub fn location(&self) -> Location {
        Location::new(self.line as u64, self.column as u64)
    }
}

/// A statement perfaudit's parser cannot read, though PostgreSQL may
/// (`UESCAPE`, `FOR NO KEY UPDATE`, an operator sqlparser does not know):
/// only the server can say what it is.
#[derive(Debug, Clone)]
pub struct UnreadStatement {
    /// The user's exact text, as [`SqlStatement::text`].
    pub text: String,
    /// Line of its first token, from 1.
    pub line: usize,
    /// Column of its first token, from 1.
    pub column: usize,
    /// `Unread`, with where and why the parser stopped.
    pub class: Class,
    /// The highest `$n` among its tokens.
    pub placeholders: usize,
}

/// One statement of the input, read or not.
// Nearly every statement is parsed: boxing that variant would cost an
// allocation per statement to save space on the rare unread one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Item {
    /// Parsed and classified.
    Parsed(SqlStatement),
    /// Not read by perfaudit's parser.
    Unread(UnreadStatement),
}

impl Item {
    /// The user's exact text.
    pub fn text(&self) -> &str {
        match self {
            Item::Parsed(statement) => &statement.text,
            Item::Unread(statement) => &statement.text,
        }
    }

    /// Line and column of its first token, from 1.
    pub fn position(&self) -> (usize, usize) {
        match self {
            Item::Parsed(statement) => (statement.line, statement.column),
            Item::Unread(statement) => (statement.line, statement.column),
        }
    }

    /// What running it would do.
    pub fn class(&self) -> &Class {
        match self {
            Item::Parsed(statement) => &statement.class,
            Item::Unread(statement) => &statement.class,
        }
    }

    /// Its class, to change with what the server says.
    pub fn class_mut(&mut self) -> &mut Class {
        match self {
            Item::Parsed(statement) => &mut statement.class,
            Item::Unread(statement) => &mut statement.class,
        }
    }

    /// The parsed statement, when it was read.
    pub fn parsed(&self) -> Option<&SqlStatement> {
        match self {
            Item::Parsed(statement) => Some(statement),
            Item::Unread(_) => None,
        }
    }

    /// The highest `$n` it uses.
    pub fn placeholders(&self) -> usize {
        match self {
            Item::Parsed(statement) => placeholders(&statement.ast),
            Item::Unread(statement) => statement.placeholders,
        }
    }

    /// The parsed statement, or the parser's error for one it cannot read.
    pub fn into_parsed(self) -> Result<SqlStatement> {
        match self {
            Item::Parsed(statement) => Ok(statement),
            Item::Unread(UnreadStatement {
                class: Class::Unread { reason },
                ..
            }) => Err(Error::input(reason)),
            Item::Unread(statement) => Err(Error::input(format!(
                "the SQL does not parse at line {}, column {}",
                statement.line, statement.column
            ))),
        }
    }
}

/// Splits, parses and classifies every statement of `input`. Fails on the
/// first statement that does not parse, naming its line and column: nothing
/// of a half-understood input should run.
pub fn parse_statements(input: &str) -> Result<Vec<SqlStatement>> {
    statements(input).collect()
}

/// The statements of `input`, read one at a time: each item is a statement,
/// or the error of one that does not parse (line, column and the parser's
/// reason). After a statement that does not parse, the next ones still
/// come; after text that cannot even be split into tokens (an unterminated
/// string, say), nothing more does, since where the next statement starts
/// is unknown.
pub fn statements(input: &str) -> impl Iterator<Item = Result<SqlStatement>> + '_ {
    items(input).map(|item| item.and_then(Item::into_parsed))
}

/// As [`statements`], but a statement perfaudit's parser cannot read comes
/// as [`Item::Unread`] rather than as an error: for `explain`, which has
/// the server judge it. Statements nesting or chaining past perfaudit's
/// limits, and text that does not split into tokens, are still errors.
pub fn items(input: &str) -> Statements<'_> {
    Statements {
        input,
        next_chunk: 0,
        cursor: Cursor::new(input),
        pending: VecDeque::new(),
        finished: input.is_empty(),
    }
}

/// The iterator of [`items`].
pub struct Statements<'a> {
    input: &'a str,
    /// Byte offset where the next chunk of text starts.
    next_chunk: usize,
    /// Translates positions to byte offsets, moving forward only.
    cursor: Cursor<'a>,
    /// Token groups already split off, one per statement (or per stretch of
    /// comments), waiting to be parsed.
    pending: VecDeque<Vec<TokenWithSpan>>,
    finished: bool,
}

impl Iterator for Statements<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(tokens) = self.pending.pop_front() {
                match self.statement(tokens) {
                    Some(item) => return Some(item),
                    None => continue, // only whitespace and comments
                }
            }
            if self.finished {
                return None;
            }
            if let Err(error) = self.read_chunk() {
                self.finished = true;
                self.pending.clear();
                return Some(Err(error));
            }
        }
    }
}

impl Statements<'_> {
    /// Tokenizes the text up to the next `;`, queueing its tokens.
    fn read_chunk(&mut self) -> Result<()> {
        let start = self.next_chunk;
        let end = split::statement_end(self.input, start);
        self.next_chunk = end + 1;
        self.finished = self.next_chunk >= self.input.len();
        let origin = self.cursor.location_of(start);
        let tokens = match tokenize(&self.input[start..end], origin) {
            // A COPY's inline data after its `;` belongs to it: only the
            // whole rest of the input tokenizes it right.
            Ok(tokens) if !starts_with_copy(&tokens) => tokens,
            // The splitter ended the chunk inside what sqlparser reads as a
            // string or comment: let sqlparser read the rest in one piece.
            _ => {
                self.finished = true;
                tokenize(&self.input[start..], origin)?
            }
        };
        if tokens.iter().any(|t| t.token == Token::SemiColon) {
            self.pending.extend(
                tokens
                    .split(|t| t.token == Token::SemiColon)
                    .map(<[TokenWithSpan]>::to_vec),
            );
        } else {
            self.pending.push_back(tokens);
        }
        Ok(())
    }

    /// Parses and classifies the tokens of one statement; `None` when they
    /// are only whitespace and comments.
    fn statement(&mut self, tokens: Vec<TokenWithSpan>) -> Option<Result<Item>> {
        let significant =
            |t: &&TokenWithSpan| !matches!(t.token, Token::Whitespace(_) | Token::EOF);
        let first = tokens.iter().find(significant)?.span.start;
        let last = tokens.iter().rev().find(significant)?.span.end;
        let range = self.cursor.offset_of(first)..self.cursor.offset_of(last);
        if let Err(error) =
            check_operator_chains(&tokens, first).and_then(|()| check_nesting(&tokens, first))
        {
            return Some(Err(error));
        }
        let highest_placeholder = highest_placeholder(&tokens);
        let text = self.input[range.clone()].to_owned();
        Some(match parse_one(tokens, (first, last)) {
            Ok((ast, tokens)) => Ok(Item::Parsed(SqlStatement {
                text,
                line: first.line as usize,
                column: first.column as usize,
                range,
                class: classify(&ast),
                ast,
                tokens,
            })),
            Err(Failure::Unread(error)) => Ok(Item::Unread(UnreadStatement {
                text,
                line: first.line as usize,
                column: first.column as usize,
                class: Class::Unread {
                    reason: error.to_string(),
                },
                placeholders: highest_placeholder,
            })),
            Err(Failure::Refused(error)) => Err(error),
        })
    }
}

/// Tokenizes `text`, which starts at `origin` in the whole input; token
/// positions and errors are given in the whole input.
fn tokenize(text: &str, origin: Location) -> Result<Vec<TokenWithSpan>> {
    let shift = |location: Location| {
        if location.line == 1 {
            Location::new(origin.line, origin.column + location.column - 1)
        } else {
            Location::new(origin.line + location.line - 1, location.column)
        }
    };
    let mut tokens = Vec::new();
    Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location_into_buf_with_mapper(&mut tokens, |mut token| {
            token.span = Span::new(shift(token.span.start), shift(token.span.end));
            token
        })
        .map_err(|e| {
            let location = shift(e.location);
            Error::input(format!(
                "the SQL does not parse at line {}, column {}: {}",
                location.line, location.column, e.message
            ))
        })?;
    Ok(tokens)
}

fn starts_with_copy(tokens: &[TokenWithSpan]) -> bool {
    tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .is_some_and(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::COPY))
}

/// Refuses a statement with an expression chaining more than
/// [`MAX_OPERATOR_CHAIN`] operators (see there why). Counts, per level of
/// parentheses, the tokens that can continue an expression (everything but
/// words, numbers, strings and parameters, plus the word operators), from
/// the last comma or clause keyword.
fn check_operator_chains(tokens: &[TokenWithSpan], start: Location) -> Result<()> {
    let mut counts = vec![0usize];
    for token in tokens {
        let level = counts.len() - 1;
        match &token.token {
            Token::LParen => counts.push(0),
            Token::LBracket => {
                counts[level] += 1; // a subscript chains like an operator
                counts.push(0);
            }
            Token::RParen | Token::RBracket if level > 0 => {
                counts.pop();
            }
            Token::Comma => counts[level] = 0,
            Token::Word(word) if CHAINING_KEYWORDS.contains(&word.keyword) => counts[level] += 1,
            Token::Word(word) if CLAUSE_KEYWORDS.contains(&word.keyword) => counts[level] = 0,
            Token::Word(_)
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::Whitespace(_)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::RParen
            | Token::RBracket => {}
            _ => counts[level] += 1,
        }
        if counts[counts.len() - 1] > MAX_OPERATOR_CHAIN {
            return Err(Error::input(format!(
                "the statement at line {}, column {} chains more than {MAX_OPERATOR_CHAIN} \
                 operators in one expression, more than perfaudit follows safely; split it \
                 (an IN list or VALUES list may hold any number of items)",
                start.line, start.column
            )));
        }
    }
    Ok(())
}

/// Refuses a statement nesting deeper than [`RECURSION_LIMIT`] levels,
/// counted on its tokens: parentheses, brackets, `CASE ... END`, and runs
/// of `NOT`. The parser counts these levels (and more) against the same
/// limit, but when it runs out inside a `CASE` or a `NOT`, it backtracks,
/// reads the keyword as a column name and reports a syntax error somewhere
/// else; counted first, the message says what is wrong.
fn check_nesting(tokens: &[TokenWithSpan], start: Location) -> Result<()> {
    let (mut depth, mut nots) = (0usize, 0usize);
    for token in tokens {
        match &token.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => depth += 1,
            Token::Word(word) if word.keyword == Keyword::CASE => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Word(word) if word.keyword == Keyword::END => depth = depth.saturating_sub(1),
            _ => {}
        }
        nots = match &token.token {
            Token::Word(word) if word.keyword == Keyword::NOT => nots + 1,
            _ => 0,
        };
        if depth + nots > RECURSION_LIMIT {
            return Err(too_deep(start));
        }
    }
    Ok(())
}

/// Words that join two operands into one expression.
const CHAINING_KEYWORDS: &[Keyword] = &[
    Keyword::AND,
    Keyword::OR,
    Keyword::IS,
    Keyword::IN,
    Keyword::NOT,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::SIMILAR,
    Keyword::BETWEEN,
    Keyword::COLLATE,
    Keyword::AT,
    Keyword::OVERLAPS,
    Keyword::OPERATOR,
    Keyword::UNION,
    Keyword::INTERSECT,
    Keyword::EXCEPT,
];

/// Words that start a new clause or branch, and so a new expression.
const CLAUSE_KEYWORDS: &[Keyword] = &[
    Keyword::SELECT,
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::WINDOW,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::FETCH,
    Keyword::FOR,
    Keyword::JOIN,
    Keyword::ON,
    Keyword::USING,
    Keyword::CASE,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::END,
    Keyword::SET,
    Keyword::VALUES,
    Keyword::RETURNING,
];

/// Parses the tokens of one statement, which spans `span` (from its first
/// token's start to its last token's end; positions stay those of the whole
/// input, so errors point at the right place), and hands the tokens back.
/// The highest `$n` among `tokens`.
fn highest_placeholder(tokens: &[TokenWithSpan]) -> usize {
    tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Placeholder(p) => visit::placeholder_number(p),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Why tokens did not become one syntax tree.
enum Failure {
    /// sqlparser does not read them, or misreads them: PostgreSQL may
    /// read them all the same.
    Unread(Error),
    /// They nest deeper than perfaudit follows.
    Refused(Error),
}

fn parse_one(
    tokens: Vec<TokenWithSpan>,
    span: (Location, Location),
) -> std::result::Result<(Statement, Vec<TokenWithSpan>), Failure> {
    let start = span.0;
    static STACK_GUARD: Once = Once::new();
    STACK_GUARD.call_once(|| {
        recursive::set_minimum_stack_size(PARSER_STACK_RED_ZONE);
        recursive::set_stack_allocation_size(PARSER_STACK_SEGMENT);
    });
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let mut parsed = match parser.parse_statements() {
        Ok(parsed) => parsed,
        Err(ParserError::ParserError(_)) => {
            return Err(diagnose(parser.into_tokens(), span));
        }
        Err(error @ ParserError::RecursionLimitExceeded) => {
            return Err(Failure::Refused(parse_error(error, span)));
        }
        Err(error) => return Err(Failure::Unread(parse_error(error, span))),
    };
    match parsed.len() {
        1 => {
            let statement = parsed.remove(0);
            keyword_as_column(&statement).map_err(Failure::Unread)?;
            Ok((statement, parser.into_tokens()))
        }
        _ => Err(Failure::Unread(Error::input(format!(
            "the SQL does not parse at line {}, column {}: expected one statement",
            start.line, start.column
        )))),
    }
}

/// Keywords PostgreSQL reserves that sqlparser reads as a column name when
/// what follows them does not parse as their expression (`SELECT NOT`).
const RESERVED_PREFIXES: [&str; 2] = ["NOT", "CASE"];

/// Refuses what PostgreSQL would: a bare [`RESERVED_PREFIXES`] keyword used
/// as a column. Left in, the rewriter would add clauses after it and change
/// what the keyword reads as (`SELECT NOT LIMIT 1000` does not parse).
fn keyword_as_column(statement: &Statement) -> Result<()> {
    struct Finder(Option<(String, Location)>);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(ident)
                    if ident.quote_style.is_none()
                        && RESERVED_PREFIXES
                            .iter()
                            .any(|k| k.eq_ignore_ascii_case(&ident.value)) =>
                {
                    self.0 = Some((ident.value.to_uppercase(), ident.span.start));
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    let mut finder = Finder(None);
    let _ = statement.visit(&mut finder);
    match finder.0 {
        None => Ok(()),
        Some((keyword, at)) => Err(Error::input(format!(
            "the SQL does not parse at line {}, column {}: {keyword} is a reserved word, and \
             what follows it does not complete it; a column of that name must be quoted \
             (\"{}\")",
            at.line,
            at.column,
            keyword.to_lowercase()
        ))),
    }
}

/// How much deeper than [`RECURSION_LIMIT`] [`diagnose`] lets the parser
/// go: a statement within the limit on its tokens ([`check_nesting`]) takes
/// the parser at most a few levels per token level.
const DIAGNOSIS_DEPTH: usize = 4 * RECURSION_LIMIT;

/// The error of a statement the parser rejected: parsed again, deeper, to
/// tell a statement that is too deep (sqlparser, running out of depth inside
/// a `CASE` or `NOT`, reports a syntax error instead; see [`check_nesting`])
/// from one that is wrong. The syntax tree, if any, is only dropped.
fn diagnose(tokens: Vec<TokenWithSpan>, span: (Location, Location)) -> Failure {
    let dialect = PostgreSqlDialect {};
    let again = Parser::new(&dialect)
        .with_recursion_limit(DIAGNOSIS_DEPTH)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    match again {
        Ok(_) | Err(ParserError::RecursionLimitExceeded) => Failure::Refused(too_deep(span.0)),
        Err(error) => Failure::Unread(parse_error(error, span)),
    }
}

/// A statement nesting deeper than perfaudit follows.
fn too_deep(start: Location) -> Error {
    Error::input(format!(
        "the statement at line {}, column {} nests deeper than {RECURSION_LIMIT} levels, \
         more than perfaudit's parser follows; simplify it",
        start.line, start.column
    ))
}

/// `the SQL does not parse at line L, column C: <the parser's reason>`,
/// for a statement that spans `span` (its first and last token); where
/// sqlparser gives no position, it ran out of tokens: the end of the span.
fn parse_error(error: ParserError, span: (Location, Location)) -> Error {
    let (start, end) = span;
    match error {
        ParserError::RecursionLimitExceeded => too_deep(start),
        ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
            // sqlparser appends " at Line: L, Column: C" to its messages.
            let (reason, location) = match message.rsplit_once(" at Line: ") {
                Some((reason, location)) => (reason.to_owned(), Some(location.to_owned())),
                None => (message, None),
            };
            // The token it found may be a megabyte of SQL: echoed clipped.
            let reason = match reason.split_once(", found: ") {
                Some((expected, found)) => format!("{expected}, found: {}", clip(found)),
                None => reason,
            };
            let given = location
                .as_deref()
                .and_then(|l| l.split_once(", Column: "))
                .and_then(|(l, c)| Some((l.parse::<u64>().ok()?, c.parse::<u64>().ok()?)));
            match given {
                Some((line, column)) => Error::input(format!(
                    "the SQL does not parse at line {line}, column {column}: {reason}"
                )),
                None => Error::input(format!(
                    "the SQL does not parse at the end of the statement (line {}, column {}): \
                     {reason}",
                    end.line, end.column
                )),
            }
        }
    }
}

/// Translates sqlparser's (line, column) positions, which count characters,
/// to byte offsets and back. It only moves forward, so translating every
/// position of a text in order costs one pass over it.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    text: &'a str,
    offset: usize,
    location: Location,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`, which is at line 1, column 1.
    pub fn new(text: &'a str) -> Self {
        Cursor::at(text, Location::new(1, 1))
    }

    /// A cursor at the start of `text`, which is at `location`.
    pub fn at(text: &'a str, location: Location) -> Self {
        Cursor {
            text,
            offset: 0,
            location,
        }
    }

    /// The byte offset of `location`. Positions before the cursor's give
    /// its current offset.
    pub fn offset_of(&mut self, location: Location) -> usize {
        self.advance_while(|cursor| cursor.location < location);
        self.offset
    }

    /// The location of byte `offset`. Offsets before the cursor's give its
    /// current location.
    pub fn location_of(&mut self, offset: usize) -> Location {
        self.advance_while(|cursor| cursor.offset < offset);
        self.location
    }

    /// Steps over characters while `more` holds and text remains.
    fn advance_while(&mut self, more: impl Fn(&Self) -> bool) {
        while more(self) {
            let Some(c) = self.text[self.offset..].chars().next() else {
                break;
            };
            self.step(c);
        }
    }

    fn step(&mut self, c: char) {
        self.offset += c.len_utf8();
        if c == '\n' {
            self.location = Location::new(self.location.line + 1, 1);
        } else {
            self.location.column += 1;
        }
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
    fn a_statement_that_stops_short_is_pointed_at_its_end() {
        let err =
            parse_statements("SELECT 1;\nSELECT\n  id FROM payments WHERE id IN (1,").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the SQL does not parse at the end of the statement (line 3, column 35): Expected: \
             an expression, found: EOF"
        );
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

    #[test]
    fn reserved_prefixes_are_no_column_names() {
        for (sql, column) in [
            ("SELECT NOT", 8),
            ("SELECT 1 WHERE NOT NOT", 20),
            ("SELECT case", 8),
        ] {
            let err = parse_statements(sql).unwrap_err().to_string();
            assert!(
                err.contains(&format!("line 1, column {column}: "))
                    && err.contains("reserved word"),
                "{sql}: {err}"
            );
        }
        for fine in [
            "SELECT NOT true",
            "SELECT \"not\", \"CASE\" FROM t",
            "SELECT CASE WHEN a THEN 1 END",
        ] {
            assert!(parse_statements(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn deep_case_and_not_are_called_too_deep_not_a_syntax_error() {
        let cases = |n: usize| {
            format!(
                "SELECT {}1{}",
                "CASE WHEN true THEN ".repeat(n),
                " END".repeat(n)
            )
        };
        let deep = [
            cases(10_000),
            // Within the limit on its tokens, past it for the parser.
            cases(RECURSION_LIMIT - 2),
            format!("SELECT {}true", "NOT ".repeat(RECURSION_LIMIT + 1)),
            // CASE inside subqueries, which take the parser two levels each.
            format!(
                "SELECT {}{}{}",
                "(SELECT ".repeat(60),
                &cases(100)["SELECT ".len()..],
                ")".repeat(60)
            ),
        ];
        for sql in deep {
            let err = parse_statements(&sql).unwrap_err().to_string();
            assert!(err.contains("nests deeper than 200 levels"), "{err}");
        }
        assert_eq!(parse_statements(&cases(150)).unwrap().len(), 1);
        let and_not = vec!["NOT a"; 500].join(" AND ");
        assert!(parse_statements(&format!("SELECT 1 WHERE {and_not}")).is_ok());
        // A real mistake deep inside is still reported where it is.
        let wrong = format!("SELECT {}1 +{}", "(".repeat(150), ")".repeat(150));
        let err = parse_statements(&wrong).unwrap_err().to_string();
        assert!(
            err.contains("does not parse at line 1, column 161: Expected: an expression"),
            "{err}"
        );
    }

    /// What each item of `statements` says: the text and position, or the
    /// error message.
    fn items(input: &str) -> Vec<Result<(String, usize, usize), String>> {
        statements(input)
            .map(|item| {
                item.map(|s| (s.text, s.line, s.column))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// The same, from tokenizing the whole input at once: the reference the
    /// streaming split must agree with.
    fn whole_input_items(input: &str) -> Vec<Result<(String, usize, usize), String>> {
        let tokens = match tokenize(input, Location::new(1, 1)) {
            Ok(tokens) => tokens,
            Err(e) => return vec![Err(e.to_string())],
        };
        let mut cursor = Cursor::new(input);
        let mut out = Vec::new();
        for group in tokens.split(|t| t.token == Token::SemiColon) {
            let significant = |t: &&TokenWithSpan| !matches!(t.token, Token::Whitespace(_));
            let (Some(first), Some(last)) = (
                group.iter().find(significant),
                group.iter().rev().find(significant),
            ) else {
                continue;
            };
            let (start, end) = (first.span.start, last.span.end);
            let range = cursor.offset_of(start)..cursor.offset_of(end);
            out.push(
                parse_one(group.to_vec(), (start, end))
                    .map(|_| {
                        (
                            input[range].to_owned(),
                            start.line as usize,
                            start.column as usize,
                        )
                    })
                    .map_err(|e| match e {
                        Failure::Unread(e) | Failure::Refused(e) => e.to_string(),
                    }),
            );
        }
        out
    }

    #[test]
    fn a_statement_that_does_not_parse_does_not_stop_the_next() {
        let three = items("SELECT 1;\nSELEC 2;\nSELECT 3");
        assert_eq!(three[0], Ok(("SELECT 1".into(), 1, 1)));
        assert!(
            three[1]
                .as_ref()
                .unwrap_err()
                .starts_with("the SQL does not parse at line 2, column 1"),
            "{three:?}"
        );
        assert_eq!(three[2], Ok(("SELECT 3".into(), 3, 1)));
        // Text that cannot be tokenized ends the input: where the next
        // statement starts is unknown.
        let cut = items("SELECT 1; SELECT 'open; SELECT 2");
        assert_eq!(cut.len(), 2, "{cut:?}");
        assert_eq!(
            cut[1],
            Err("the SQL does not parse at line 1, column 18: Unterminated string literal".into())
        );
    }

    #[test]
    fn sqlparser_decides_where_the_splitter_disagrees() {
        // sqlparser reads a backslash in X'' as an escape, PostgreSQL (and
        // the splitter) do not; `$1$` opens a dollar quote for sqlparser.
        for input in [
            "SELECT X'\\'; SELECT 1'; SELECT 2",
            "SELECT $1$ ; $1$; SELECT 3",
            "SELECT 1; COPY t FROM STDIN;\n1\t2\n\\.\nSELECT 4",
        ] {
            assert_eq!(items(input), whole_input_items(input), "{input}");
        }
    }

    #[test]
    fn tokens_keep_positions_in_the_whole_input() {
        let statement = parse_statements("SELECT 1;\n  SELECT 'é' ,\n x")
            .unwrap()
            .remove(1);
        let x = statement.tokens.last().unwrap();
        assert_eq!(x.token, Token::make_word("x", None));
        assert_eq!(x.span, Span::new(Location::new(3, 2), Location::new(3, 3)));
        let mut cursor = Cursor::at(&statement.text, statement.location());
        assert_eq!(cursor.offset_of(x.span.start), statement.text.len() - 1);
    }

    #[test]
    fn long_operator_chains_are_a_clean_error() {
        // A 1 MB statement whose expression sqlparser would nest 250,000 deep.
        let chain = format!("SELECT 1{}", " + 1".repeat(250_000));
        let err = parse_statements(&chain).unwrap_err();
        assert!(
            err.to_string().contains("chains more than 10000 operators"),
            "{err}"
        );
        let or_chain = (0..6_000)
            .map(|i| format!("x = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        assert!(parse_statements(&format!("SELECT * FROM t WHERE {or_chain}")).is_err());
        // Long but flat: lists, and chains cut by commas and clauses.
        let list = (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>();
        let flat = format!(
            "SELECT * FROM t WHERE x IN ({}) AND y = ANY(ARRAY[{}])",
            list.join(","),
            list.join(",")
        );
        assert!(flat.len() > 1_000_000);
        assert_eq!(parse_statements(&flat).unwrap().len(), 1);
        let sums = vec!["a + b + c + d"; 5_000].join(", ");
        assert_eq!(
            parse_statements(&format!("SELECT {sums} FROM t"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn deep_statements_are_refused_without_printing_them_whole() {
        let deep = format!("CREATE TABLE t AS SELECT 1{}", " + 1".repeat(9_000));
        let statement = parse_statements(&deep).unwrap().remove(0);
        assert!(
            matches!(&statement.class, Class::Refused { reason } if reason.starts_with("CREATE TABLE is not")),
            "{:?}",
            statement.class
        );
    }

    proptest::proptest! {
        /// The streaming split agrees with tokenizing the whole input, on
        /// soups of the constructs that can hide a `;`.
        #[test]
        fn streaming_split_agrees_with_whole_input_tokenizing(
            pieces in proptest::collection::vec(proptest::sample::select(&[
                "SELECT 1", "SELECT", " ", "\n", "x", "é", ";", "'a;b'", "'", "''",
                "E'\\';'", "e'", "\\", "$$;$$", "$$", "$t$;$t$", "$t$", "$1", "a$b$",
                "-- c;\n", "--", "/* ; */", "/*", "*/", "\"x;\"", "\"", "X'\\';'",
                "U&'x'", "(", ")", "COPY t FROM STDIN;\n1\n\\.\n",
            ][..]), 0..24)
        ) {
            let input = pieces.concat();
            let ours = items(&input);
            let reference = whole_input_items(&input);
            if tokenize(&input, Location::new(1, 1)).is_ok() {
                proptest::prop_assert_eq!(ours, reference, "{:?}", input);
            } else {
                // Text that does not tokenize: the same error ends both
                // (streaming reports the statements before it too).
                proptest::prop_assert_eq!(ours.last(), reference.last(), "{:?}", input);
            }
        }
    }
}
