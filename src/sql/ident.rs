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

/// An identifier as PostgreSQL resolves it: unquoted names fold to lower
/// case (ASCII only, as in a UTF-8 database), quoted ones are exact. So
/// `NextVal` is `nextval`, and `"NextVal"` is not.
pub fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
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
