//! Where a query's top-level clauses are in the user's text, so that new
//! clauses are inserted into it rather than the whole statement reprinted
//! (which would drop comments, `LIMIT ALL` and the user's spelling).
//!
//! The clauses after a query's body start with words PostgreSQL reserves:
//! `ORDER BY`, `LIMIT`, `OFFSET`, `FETCH`, `FOR`. Outside parentheses,
//! such a word is a clause unless it is a column label (`AS limit`) or a
//! field name (`t.limit`). What the scan finds is checked against the
//! syntax tree; when they disagree, the query is left alone.

use sqlparser::ast::{LimitClause, Query, SetExpr};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

/// The kinds of clause that can follow a query's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClauseKind {
    /// `ORDER BY ...`
    OrderBy,
    /// `LIMIT n`
    Limit,
    /// `LIMIT ALL`, which the syntax tree does not keep.
    LimitAll,
    /// `OFFSET n [ROW|ROWS]`
    Offset,
    /// `FETCH {FIRST|NEXT} ...`
    Fetch,
    /// `FOR UPDATE`, `FOR SHARE`, ...
    Lock,
}

/// One clause after the body, from its first token to its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clause {
    pub kind: ClauseKind,
    pub start: Location,
    pub end: Location,
}

/// The top-level clauses of a query, located in the statement's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Just after the body's last token: where a new ORDER BY goes.
    pub body_end: Location,
    /// Just after the ORDER BY clause, or the body when there is none: where
    /// a new LIMIT goes, unless the query has an OFFSET.
    pub order_end: Location,
    /// The clauses after the body, in the order written.
    pub clauses: Vec<Clause>,
    /// When the body is a parenthesized query, its own layout: its clauses
    /// bound the whole result too.
    pub inner: Option<Box<Layout>>,
}

impl Layout {
    /// The first clause of `kind`, here or in the parenthesized query.
    pub fn find(&self, kinds: &[ClauseKind]) -> Option<Clause> {
        let mut layout = Some(self);
        while let Some(current) = layout {
            if let Some(clause) = current.clauses.iter().find(|c| kinds.contains(&c.kind)) {
                return Some(*clause);
            }
            layout = current.inner.as_deref();
        }
        None
    }

    /// The top level's own clause of `kind`, outside any parentheses.
    pub fn own(&self, kind: ClauseKind) -> Option<Clause> {
        self.clauses.iter().find(|c| c.kind == kind).copied()
    }
}

/// Locates the clauses of `query`, the whole statement, in its `tokens`.
/// `None` when the scan and the syntax tree disagree.
pub(crate) fn locate(tokens: &[TokenWithSpan], query: &Query) -> Option<Layout> {
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    scan(&significant, query)
}

/// Locates the clauses of `query` in `tokens` (significant ones only).
fn scan(tokens: &[&TokenWithSpan], query: &Query) -> Option<Layout> {
    let mut depth = 0usize;
    let mut starts: Vec<(ClauseKind, usize)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match &token.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Word(_) if depth == 0 => {
                if let Some(kind) = clause_at(tokens, i) {
                    starts.push((kind, i));
                }
            }
            _ => {}
        }
    }
    let body_last = starts
        .first()
        .map_or(tokens.len(), |&(_, i)| i)
        .checked_sub(1)?;
    let clauses: Vec<Clause> = starts
        .iter()
        .enumerate()
        .map(|(n, &(kind, first))| {
            let last = starts.get(n + 1).map_or(tokens.len(), |&(_, next)| next) - 1;
            Clause {
                kind,
                start: tokens[first].span.start,
                end: tokens[last].span.end,
            }
        })
        .collect();
    if !agrees(&clauses, query) {
        return None;
    }
    let inner = match query.body.as_ref() {
        SetExpr::Query(inner) => {
            let open = opening_paren(tokens, body_last)?;
            Some(Box::new(scan(&tokens[open + 1..body_last], inner)?))
        }
        _ => None,
    };
    let body_end = tokens[body_last].span.end;
    let order_end = clauses
        .iter()
        .find(|c| c.kind == ClauseKind::OrderBy)
        .map_or(body_end, |c| c.end);
    Some(Layout {
        body_end,
        order_end,
        clauses,
        inner,
    })
}

/// The index of the `(` that the `)` at `close` closes.
fn opening_paren(tokens: &[&TokenWithSpan], close: usize) -> Option<usize> {
    if tokens[close].token != Token::RParen {
        return None;
    }
    let mut depth = 0usize;
    for i in (0..=close).rev() {
        match tokens[i].token {
            Token::RParen => depth += 1,
            Token::LParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The clause starting at `tokens[i]`, if it starts one.
fn clause_at(tokens: &[&TokenWithSpan], i: usize) -> Option<ClauseKind> {
    let Token::Word(word) = &tokens[i].token else {
        return None;
    };
    if word.quote_style.is_some() {
        return None;
    }
    // `AS limit` is a column label, `t.limit` a field.
    let label = i.checked_sub(1).is_some_and(|p| match &tokens[p].token {
        Token::Period => true,
        Token::Word(w) => w.quote_style.is_none() && w.keyword == Keyword::AS,
        _ => false,
    });
    if label {
        return None;
    }
    let next = tokens.get(i + 1).and_then(|t| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    });
    match (word.keyword, next) {
        (Keyword::ORDER, Some(Keyword::BY)) => Some(ClauseKind::OrderBy),
        (Keyword::LIMIT, Some(Keyword::ALL)) => Some(ClauseKind::LimitAll),
        (Keyword::LIMIT, _) => Some(ClauseKind::Limit),
        (Keyword::OFFSET, _) => Some(ClauseKind::Offset),
        (Keyword::FETCH, Some(Keyword::FIRST | Keyword::NEXT)) => Some(ClauseKind::Fetch),
        (Keyword::FOR, Some(Keyword::UPDATE | Keyword::SHARE | Keyword::NO | Keyword::KEY)) => {
            Some(ClauseKind::Lock)
        }
        _ => None,
    }
}

/// Whether the clauses found are exactly those in the syntax tree.
fn agrees(clauses: &[Clause], query: &Query) -> bool {
    let count = |kind| clauses.iter().filter(|c| c.kind == kind).count();
    let (limit, offset) = match &query.limit_clause {
        None => (false, false),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => (limit.is_some(), offset.is_some()),
        Some(_) => return false,
    };
    count(ClauseKind::OrderBy) == usize::from(query.order_by.is_some())
        && count(ClauseKind::Limit) == usize::from(limit)
        && count(ClauseKind::LimitAll) <= 1
        && count(ClauseKind::Limit) + count(ClauseKind::LimitAll) <= 1
        && count(ClauseKind::Offset) == usize::from(offset)
        && count(ClauseKind::Fetch) == usize::from(query.fetch.is_some())
        && count(ClauseKind::Lock) == query.locks.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{SqlStatement, parse_statements};
    use sqlparser::ast::Statement;

    fn layout(sql: &str) -> Option<Layout> {
        let statement: SqlStatement = parse_statements(sql).unwrap().remove(0);
        let Statement::Query(query) = &statement.ast else {
            panic!("{sql} is not a query");
        };
        locate(&statement.tokens, query)
    }

    fn kinds(layout: &Layout) -> Vec<ClauseKind> {
        layout.clauses.iter().map(|c| c.kind).collect()
    }

    fn at(line: u64, column: u64) -> Location {
        Location::new(line, column)
    }

    #[test]
    fn finds_the_clauses_after_the_body() {
        use ClauseKind::*;
        let found = layout("SELECT * FROM t ORDER BY a LIMIT ALL OFFSET 5 FOR UPDATE").unwrap();
        assert_eq!(kinds(&found), [OrderBy, LimitAll, Offset, Lock]);
        assert_eq!(found.body_end, at(1, 16));
        assert_eq!(found.order_end, at(1, 27));
        assert_eq!(found.clauses[1].start, at(1, 28));
        assert_eq!(found.clauses[1].end, at(1, 37));
        let found = layout("SELECT 1 FROM t FOR SHARE OF t NOWAIT LIMIT 2").unwrap();
        assert_eq!(kinds(&found), [Lock, Limit]);
        let found = layout("SELECT 1 OFFSET 2 ROWS FETCH NEXT 3 ROWS ONLY").unwrap();
        assert_eq!(kinds(&found), [Offset, Fetch]);
        assert_eq!(found.order_end, at(1, 9));
    }

    #[test]
    fn words_inside_the_body_are_not_clauses() {
        for sql in [
            "SELECT 1 AS limit, t.order, (SELECT 1 LIMIT 1), \"offset\" FROM t",
            "SELECT string_agg(x, ',' ORDER BY y), substring(s FROM 1 FOR 2) FROM t",
            "SELECT rank() OVER (ORDER BY x) FROM t WINDOW w AS (ORDER BY y)",
            "WITH c AS (SELECT 1 ORDER BY 1 LIMIT 1) SELECT * FROM c",
            "SELECT 'LIMIT 1' /* ORDER BY x */ -- FOR UPDATE\n FROM t",
        ] {
            let found = layout(sql).unwrap();
            assert!(found.clauses.is_empty(), "{sql}: {found:?}");
        }
    }

    #[test]
    fn a_parenthesized_query_has_its_own_layout() {
        let found = layout("(SELECT * FROM t LIMIT ALL) ORDER BY 1").unwrap();
        assert_eq!(kinds(&found), [ClauseKind::OrderBy]);
        assert_eq!(found.body_end, at(1, 28));
        let inner = found.inner.as_deref().unwrap();
        assert_eq!(kinds(inner), [ClauseKind::LimitAll]);
        assert_eq!(
            found
                .find(&[ClauseKind::Limit, ClauseKind::LimitAll])
                .unwrap()
                .kind,
            ClauseKind::LimitAll
        );
        assert_eq!(found.own(ClauseKind::LimitAll), None);
        let nested = layout("((SELECT 1) ORDER BY 1) LIMIT 2").unwrap();
        assert!(nested.inner.as_ref().unwrap().inner.is_some());
    }
}
