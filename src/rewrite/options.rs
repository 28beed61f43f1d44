//! What the rewriter adds: the limit and the ordering, from the command line
//! or a caller.

use std::fmt;
use std::str::FromStr;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Span, Token, Tokenizer};

use crate::sql::ident::{fold, ident};

/// The seed design's row limit for an ad-hoc query: enough rows to see
/// what a query returns, few enough that it cannot swamp a client.
pub const DEFAULT_LIMIT: u64 = 1000;

/// The seed design's ordering: newest first, so a limited result shows the
/// latest rows, the ones people usually look for.
pub const DEFAULT_ORDER_BY: &str = "created_at DESC";

/// What to add to a query that lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOptions {
    /// `LIMIT n` for a query without a limit of its own; `None` adds none
    /// (`--no-limit`).
    pub limit: Option<u64>,
    /// `ORDER BY <column> [ASC|DESC]` for a query without an ordering of its
    /// own; `None` adds none (`--no-order-by`).
    pub order_by: Option<OrderBy>,
}

impl Default for RewriteOptions {
    /// `LIMIT 1000` and `ORDER BY created_at DESC`.
    fn default() -> Self {
        RewriteOptions {
            limit: Some(DEFAULT_LIMIT),
            order_by: Some(
                DEFAULT_ORDER_BY
                    .parse()
                    .expect("the default ordering parses"),
            ),
        }
    }
}

/// A column to order by, with its direction: `created_at DESC`,
/// `"CreatedAt"`, `id ASC`. Parsed from text with [`FromStr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// The column as written: `created_at`, `"CreatedAt"`.
    spelling: String,
    /// The column as PostgreSQL resolves it: unquoted names folded to lower
    /// case, quoted ones exact.
    name: String,
    direction: Option<Direction>,
}

/// The direction of an ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `ASC`, smallest first.
    Asc,
    /// `DESC`, largest first.
    Desc,
}

impl OrderBy {
    /// The column's name as PostgreSQL resolves it (`created_at` for
    /// `Created_At`, `CreatedAt` for `"CreatedAt"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column as SQL must spell it, quoted only where needed.
    pub fn spelling(&self) -> &str {
        &self.spelling
    }

    /// The ordering clause for `column` (the spelling, possibly
    /// qualified): `ORDER BY p.created_at DESC`.
    pub(crate) fn clause(&self, column: &str) -> String {
        match self.direction {
            Some(Direction::Asc) => format!("ORDER BY {column} ASC"),
            Some(Direction::Desc) => format!("ORDER BY {column} DESC"),
            None => format!("ORDER BY {column}"),
        }
    }
}

impl fmt::Display for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Some(Direction::Asc) => write!(f, "{} ASC", self.spelling),
            Some(Direction::Desc) => write!(f, "{} DESC", self.spelling),
            None => f.write_str(&self.spelling),
        }
    }
}

impl FromStr for OrderBy {
    type Err = String;

    /// `<column> [ASC|DESC]`, the column a plain or double-quoted identifier.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "\"{text}\" is not a column and an optional direction; write it as \
                 <column> [ASC|DESC], such as \"created_at DESC\""
            )
        };
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
            .tokenize()
            .map_err(|_| invalid())?;
        let mut words = tokens.iter().filter_map(|token| match token {
            Token::Whitespace(_) => None,
            Token::Word(word) => Some(Some(word)),
            _ => Some(None),
        });
        let column = match words.next() {
            Some(Some(word)) if matches!(word.quote_style, None | Some('"')) => word,
            _ => return Err(invalid()),
        };
        let direction = match words.next() {
            None => None,
            Some(Some(word)) if word.quote_style.is_none() && word.keyword == Keyword::ASC => {
                Some(Direction::Asc)
            }
            Some(Some(word)) if word.quote_style.is_none() && word.keyword == Keyword::DESC => {
                Some(Direction::Desc)
            }
            _ => return Err(invalid()),
        };
        if words.next().is_some() {
            return Err(invalid());
        }
        let name = fold(&column.to_ident(Span::empty()));
        Ok(OrderBy {
            spelling: ident(&name),
            name,
            direction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings_parse_like_sql() {
        let default: OrderBy = "created_at DESC".parse().unwrap();
        assert_eq!(default.name(), "created_at");
        assert_eq!(default.clause("p.created_at"), "ORDER BY p.created_at DESC");
        let folded: OrderBy = "  Created_At asc ".parse().unwrap();
        assert_eq!(
            (folded.name(), folded.spelling()),
            ("created_at", "created_at")
        );
        assert_eq!(folded.to_string(), "created_at ASC");
        let quoted: OrderBy = "\"Created At\"".parse().unwrap();
        assert_eq!(
            (quoted.name(), quoted.spelling()),
            ("Created At", "\"Created At\"")
        );
        assert_eq!(quoted.clause("\"Created At\""), "ORDER BY \"Created At\"");
        assert_eq!(
            RewriteOptions::default().order_by.unwrap().to_string(),
            "created_at DESC"
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_expected_form() {
        for text in [
            "",
            "created_at DESC NULLS LAST",
            "p.created_at",
            "created_at;",
            "lower(email)",
            "1",
            "'created_at'",
            "created_at sideways",
        ] {
            let err = text.parse::<OrderBy>().unwrap_err();
            assert!(err.contains("<column> [ASC|DESC]"), "{text}: {err}");
        }
        let keyword: OrderBy = "Order DESC".parse().unwrap();
        assert_eq!((keyword.name(), keyword.spelling()), ("order", "\"order\""));
    }
}
