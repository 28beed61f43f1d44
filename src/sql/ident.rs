//! Identifiers, in one place: as PostgreSQL resolves the ones in a
//! statement ([`fold`], [`fold_name`]), as SQL perfaudit sends spells them
//! ([`quote`]: always quoted, so no name can change what a statement does),
//! and as text people read and copy spells them ([`ident`]: quoted only
//! where needed, as PostgreSQL's own `quote_ident` does). [`QualifiedName`]
//! is a schema-qualified name with both spellings.

use std::fmt;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

/// PostgreSQL 15's key words that an identifier must quote: every entry of
/// `src/include/parser/kwlist.h` whose category is not
/// `UNRESERVED_KEYWORD` (reserved, type or function name, column name), the
/// set `quote_identifier()` quotes, and `pg_get_keywords()` lists with a
/// `catcode` other than `U`. Sorted (bytewise) for binary search.
pub const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// The ones later releases added (16 to 18, the SQL/JSON functions and
/// `system_user`). Quoting them costs nothing on PostgreSQL 15 and keeps
/// advice valid on a newer server. Sorted.
pub const LATER_KEYWORDS: &[&str] = &[
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "merge_action",
    "system_user",
];

/// Whether `word` (lower case) is a key word an identifier must quote.
fn is_keyword(word: &str) -> bool {
    KEYWORDS.binary_search(&word).is_ok() || LATER_KEYWORDS.binary_search(&word).is_ok()
}

/// `payments`, `"Payments"`, `"user"`, `"left"`: an identifier as SQL must
/// spell it, quoted only where needed, for text people read (advice,
/// reports). Like PostgreSQL's `quote_ident`, it quotes anything but a
/// lower-case ASCII letter or `_` followed by those and digits (so `$`
/// too, which is valid unquoted but not standard), and any key word that
/// is not unreserved.
pub fn ident(name: &str) -> String {
    let simple = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if simple && !is_keyword(name) {
        name.to_owned()
    } else {
        quote(name)
    }
}

/// `"payments"`: an identifier always double-quoted, inner quotes doubled,
/// for SQL perfaudit sends, where a name must never read as anything else.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The longest name PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`): a
/// longer one is cut to this, on a character boundary, and names the
/// object whose name is what is left.
pub const MAX_NAME_BYTES: usize = 63;

/// An identifier as PostgreSQL resolves it: unquoted names fold to lower
/// case (ASCII only, as in a UTF-8 database), quoted ones are exact, and
/// both are cut to [`MAX_NAME_BYTES`]. So `NextVal` is `nextval`, and
/// `"NextVal"` is not.
pub fn fold(ident: &Ident) -> String {
    let name = match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    };
    truncated(name)
}

/// `name` cut to [`MAX_NAME_BYTES`] on a character boundary, as the
/// server's `truncate_identifier` cuts it.
pub fn truncated(mut name: String) -> String {
    if name.len() > MAX_NAME_BYTES {
        let end = (0..=MAX_NAME_BYTES)
            .rev()
            .find(|&i| name.is_char_boundary(i))
            .unwrap_or(0);
        name.truncate(end);
    }
    name
}

/// The name one identifier token stands for, read as PostgreSQL's lexer
/// reads it: `Payments` folds to `payments`; `"Pay""ments"` keeps its case
/// with one quote; `U&"d\0061t\+000061"` and `U&"d!0061t" UESCAPE '!'`
/// decode their escapes (4 or 6 hex digits, surrogate pairs, a doubled
/// escape character for itself); and every name is cut to
/// [`MAX_NAME_BYTES`]. `Err` says why the server would reject the spelling.
pub fn decode(spelling: &str) -> Result<String, String> {
    let spelling = spelling.trim();
    let unicode = spelling
        .get(..3)
        .is_some_and(|head| head.eq_ignore_ascii_case("u&\""));
    let quoted = if unicode { &spelling[2..] } else { spelling };
    if !quoted.starts_with('"') {
        if quoted.is_empty() || quoted.contains(|c: char| c.is_whitespace() || c == '"') {
            return Err(format!("{spelling} is not one identifier"));
        }
        return Ok(truncated(quoted.to_ascii_lowercase()));
    }
    let (body, rest) = quoted_body(quoted).ok_or_else(|| format!("{spelling} is not closed"))?;
    if body.is_empty() {
        return Err("a quoted identifier may not be empty".to_owned());
    }
    let rest = rest.trim_start();
    if !unicode {
        return match rest {
            "" => Ok(truncated(body)),
            _ => Err(format!("{spelling} is not one identifier")),
        };
    }
    let escape = uescape(rest)?;
    let decoded = unescape_unicode(&body, escape)?;
    if decoded.is_empty() {
        return Err("a quoted identifier may not be empty".to_owned());
    }
    Ok(truncated(decoded))
}

/// The body of `"..."` at the start of `text` with doubled quotes undone,
/// and what follows it; `None` when it is not closed.
fn quoted_body(text: &str) -> Option<(String, &str)> {
    let mut body = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            body.push(c);
        } else if chars.peek().is_some_and(|&(_, next)| next == '"') {
            body.push('"');
            chars.next();
        } else {
            return Some((body, &text[i + 1..]));
        }
    }
    None
}

/// The escape character `rest` (what follows `U&"..."`) chooses:
/// `UESCAPE 'c'`, or `\` when it is empty.
fn uescape(rest: &str) -> Result<char, String> {
    if rest.is_empty() {
        return Ok('\\');
    }
    let clause = rest
        .get(..7)
        .filter(|word| word.eq_ignore_ascii_case("uescape"))
        .map(|_| rest[7..].trim())
        .ok_or_else(|| format!("unexpected {rest} after a Unicode identifier"))?;
    let mut chars = clause.chars();
    match (chars.next(), chars.next(), chars.next(), chars.next()) {
        (Some('\''), Some(c), Some('\''), None)
            if !c.is_ascii_hexdigit() && !matches!(c, '+' | '\'' | '"') && !c.is_whitespace() =>
        {
            Ok(c)
        }
        _ => Err(format!("invalid Unicode escape character in {clause}")),
    }
}

/// Decodes `\XXXX` and `\+XXXXXX` (with `escape` for `\\`) in `body`, as
/// the server's `str_udeescape` does.
fn unescape_unicode(body: &str, escape: char) -> Result<String, String> {
    let invalid = || {
        format!(
            "invalid Unicode escape in {body}: {escape} must be followed by 4 hex digits, or + \
             and 6"
        )
    };
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    let mut high_surrogate: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != escape {
            if high_surrogate.is_some() {
                return Err(invalid());
            }
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&escape) {
            if high_surrogate.is_some() {
                return Err(invalid());
            }
            chars.next();
            out.push(escape);
            continue;
        }
        let digits = if chars.peek() == Some(&'+') {
            chars.next();
            6
        } else {
            4
        };
        let hex: String = chars.by_ref().take(digits).collect();
        if hex.len() != digits || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let code = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
        let code = match (high_surrogate.take(), code) {
            (None, 0xD800..=0xDBFF) => {
                high_surrogate = Some(code);
                continue;
            }
            (Some(high), 0xDC00..=0xDFFF) => 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00),
            (Some(_), _) | (None, 0xDC00..=0xDFFF) => return Err(invalid()),
            (None, code) => code,
        };
        match char::from_u32(code).filter(|&c| c != '\0') {
            Some(c) => out.push(c),
            None => return Err(format!("invalid Unicode code point {hex} in {body}")),
        }
    }
    match high_surrogate {
        Some(_) => Err(invalid()),
        None => Ok(out),
    }
}

/// The parts of a (possibly qualified) name, each folded; `None` for names
/// built by functions (other dialects' `IDENTIFIER(...)`, not PostgreSQL).
pub fn fold_name(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(fold(ident)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// A schema-qualified relation name, as the catalog has it (unquoted,
/// exact).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    /// The schema.
    pub schema: String,
    /// The relation.
    pub name: String,
}

impl QualifiedName {
    /// A name in `schema`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `schema.name` for people, quoted only where SQL needs it: how every
    /// command names a relation in tables and JSON.
    pub fn display(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
}

/// The always-quoted SQL form, `"schema"."name"`, for statements perfaudit
/// sends.
impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", quote(&self.schema), quote(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_as_postgresql_resolves_them() {
        assert_eq!(fold(&Ident::new("NextVal")), "nextval");
        assert_eq!(fold(&Ident::with_quote('"', "NextVal")), "NextVal");
        assert_eq!(
            fold(&Ident::with_quote('"', "pg_advisory_lock")),
            "pg_advisory_lock"
        );
        let name = ObjectName::from(vec![Ident::new("PG_Catalog"), Ident::with_quote('"', "F")]);
        assert_eq!(fold_name(&name).unwrap(), ["pg_catalog", "F"]);
    }

    #[test]
    fn identifiers_decode_as_the_lexer_reads_them() {
        assert_eq!(decode("NextVal").unwrap(), "nextval");
        assert_eq!(decode("\"Pay\"\"ments\"").unwrap(), "Pay\"ments");
        assert_eq!(
            decode(r#"U&"pg\005fterminate\005fbackend""#).unwrap(),
            "pg_terminate_backend"
        );
        assert_eq!(decode(r#"u&"d\0061t\+000061""#).unwrap(), "data");
        assert_eq!(decode(r#"U&"d!0061t!!" UESCAPE '!'"#).unwrap(), "dat!");
        assert_eq!(decode(r#"U&"\D83D\DE00""#).unwrap(), "\u{1F600}");
        assert_eq!(decode(r#"U&"a\\b""#).unwrap(), "a\\b");
        for bad in [
            r#"U&"\00""#,
            r#"U&"\D83D""#,
            r#"U&"\DE00""#,
            r#"U&"\0000""#,
            r#"U&"x" UESCAPE 'a'"#,
            r#"U&"x" UESCAPE '+'"#,
            "\"\"",
            "\"open",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_cut_to_63_bytes_on_a_character_boundary() {
        let long = "a".repeat(70);
        assert_eq!(decode(&long).unwrap(), "a".repeat(63));
        // 62 ASCII bytes and a 2-byte character: the character goes whole.
        let name = format!("\"{}é\"", "b".repeat(62));
        assert_eq!(decode(&name).unwrap(), "b".repeat(62));
        assert_eq!(fold(&Ident::new("X".repeat(64))), "x".repeat(63));
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("payments"), "payments");
        assert_eq!(ident("user_id2"), "user_id2");
        assert_eq!(ident("_x1"), "_x1");
        assert_eq!(ident("x$1"), "\"x$1\"");
        assert_eq!(ident("Payments"), "\"Payments\"");
        assert_eq!(ident("2fa"), "\"2fa\"");
        assert_eq!(ident("é"), "\"é\"");
        assert_eq!(ident(""), "\"\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn every_key_word_but_the_unreserved_is_quoted() {
        // One of each category: reserved, type or function name, column
        // name, and a later release's.
        for word in [
            "user",
            "order",
            "left",
            "join",
            "verbose",
            "time",
            "between",
            "int",
            "json_table",
        ] {
            assert_eq!(ident(word), format!("\"{word}\""), "{word}");
        }
        // Unreserved key words are plain identifiers.
        for word in ["name", "data", "value", "key", "action"] {
            assert_eq!(ident(word), word);
        }
    }

    #[test]
    fn key_word_tables_are_sorted_lower_case_and_disjoint() {
        for table in [KEYWORDS, LATER_KEYWORDS] {
            assert!(table.windows(2).all(|w| w[0] < w[1]), "{table:?}");
            assert!(
                table
                    .iter()
                    .all(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            );
        }
        assert!(LATER_KEYWORDS.iter().all(|w| !KEYWORDS.contains(w)));
        assert_eq!(KEYWORDS.len(), 151);
    }

    #[test]
    fn identifiers_are_always_quoted_for_sql_perfaudit_sends() {
        assert_eq!(quote("payments"), "\"payments\"");
        assert_eq!(
            quote("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        let table = QualifiedName::new("public", "Pay\"ments");
        assert_eq!(table.to_string(), "\"public\".\"Pay\"\"ments\"");
        assert_eq!(table.display(), "public.\"Pay\"\"ments\"");
        assert_eq!(
            QualifiedName::new("user", "order").display(),
            "\"user\".\"order\""
        );
    }
}
