//! The names fallback: where the probe cannot run, what a read calls is
//! looked up by the names its SQL shows, conservatively.

use std::ops::ControlFlow;

use sqlparser::ast::{DataType, Expr, ObjectName, TypedString, Visit, Visitor};
use sqlparser::tokenizer::{Token, TokenWithSpan};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::follow::Seeds;
use crate::db::errors::query_error;
use crate::error::Result;
use crate::sql::ident::{decode, ident, quote};
use crate::sql::{SqlStatement, calls};

/// Names PostgreSQL's grammar reads as syntax, not as functions in
/// `pg_proc`, which perfaudit's parser reads as calls.
const SYNTAX_NOT_FUNCTIONS: &[&str] = &[
    "coalesce",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "greatest",
    "grouping",
    "least",
    "localtime",
    "localtimestamp",
    "nullif",
    "row",
    "session_user",
    "user",
];

/// Functions by name: each call's position in `$1`/`$2` (schema or NULL,
/// name) and the OID of every function of that name it could mean, or NULL
/// when none exists.
const FUNCTIONS_BY_NAME: &str = "\
SELECT c.i, f.oid
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(schema, name, i)
LEFT JOIN LATERAL (
    SELECT p.oid
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proname = c.name
      AND CASE WHEN c.schema IS NULL THEN n.nspname = ANY (pg_catalog.current_schemas(true))
               ELSE n.nspname = c.schema END) f ON true
ORDER BY 1";

/// The relations and types named in `$1` and `$2` (as SQL spells them),
/// and every operator, operator family support function and cast the
/// database's users and extensions defined: without the server's parse,
/// perfaudit cannot tell which of those a statement uses (an implicit cast
/// shows no name at all, an index scan no operator class), so the guard
/// follows them all.
const OBJECTS_BY_NAME: &str = "\
SELECT 'relation', pg_catalog.to_regclass(name)::oid, name FROM unnest($1::text[]) AS name
UNION ALL
SELECT 'type', pg_catalog.to_regtype(name)::oid, name FROM unnest($2::text[]) AS name
UNION ALL
SELECT 'operator', o.oid, o.oid::pg_catalog.regoperator::text
FROM pg_catalog.pg_operator o WHERE o.oid >= 16384
UNION ALL
SELECT 'support', p.amproc,
       pg_catalog.pg_describe_object('pg_catalog.pg_opfamily'::regclass, p.amprocfamily, 0)
FROM pg_catalog.pg_amproc p WHERE p.amprocfamily >= 16384
UNION ALL
SELECT 'cast', c.castfunc,
       pg_catalog.format('%s to %s', c.castsource::pg_catalog.regtype, c.casttarget::pg_catalog.regtype)
FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 AND c.castfunc <> 0";

/// Seeds from the names the SQL shows, for a read in a session where the
/// probe cannot run: every function of a called name, the relations and
/// cast types it names. What names cannot settle is unresolved.
pub(super) async fn names(client: &Client, parsed: &SqlStatement) -> Result<Seeds> {
    let mut seeds = Seeds::default();
    let mut unresolved = unicode_identifiers(&parsed.tokens);
    let called: Vec<_> = calls(&parsed.ast)
        .into_iter()
        .filter(|c| c.schema.is_some() || !SYNTAX_NOT_FUNCTIONS.contains(&c.name.as_str()))
        .collect();
    let schemas: Vec<Option<&str>> = called.iter().map(|c| c.schema.as_deref()).collect();
    let names: Vec<&str> = called.iter().map(|c| c.name.as_str()).collect();
    let (relations, types) = named_relations_and_types(&parsed.ast);
    let function_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&schemas, Type::TEXT_ARRAY), (&names, Type::TEXT_ARRAY)];
    let object_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&relations, Type::TEXT_ARRAY), (&types, Type::TEXT_ARRAY)];
    let (functions, objects) = tokio::try_join!(
        client.query_typed(FUNCTIONS_BY_NAME, &function_params),
        client.query_typed(OBJECTS_BY_NAME, &object_params),
    )
    .map_err(|e| query_error("looking up the names the statement calls", &e))?;
    for row in functions {
        let position: i64 = row.get(0);
        let call = &called[usize::try_from(position - 1).unwrap_or_default()];
        match row.get::<_, Option<u32>>(1) {
            Some(oid) => seeds.functions.push((oid, "the statement".to_owned())),
            None => unresolved.push(format!("no function {call} exists to call")),
        }
    }
    for row in objects {
        let kind: &str = row.get(0);
        let oid: Option<u32> = row.get(1);
        let name: String = row.get(2);
        match (kind, oid) {
            ("relation", Some(oid)) => seeds.relations.push((oid, "the statement".to_owned())),
            ("type", Some(oid)) => seeds.types.push((oid, "the statement".to_owned())),
            ("type", None) => unresolved.push(format!("no type {name} exists to cast to")),
            ("operator", Some(oid)) => seeds
                .operators
                .push((oid, format!("operator {name}, which the statement may use"))),
            ("support", Some(oid)) => seeds.functions.push((
                oid,
                format!("{name}, which the statement's sorts and index scans may use"),
            )),
            ("cast", Some(oid)) => seeds.functions.push((
                oid,
                format!("the cast from {name}, which the statement may use"),
            )),
            // A name that is no relation is a CTE's or a subquery's.
            _ => {}
        }
    }
    seeds.unresolved = unresolved;
    Ok(seeds)
}

/// The Unicode-escaped identifiers among `tokens` (`U&"..."`, perhaps
/// with `UESCAPE '!'`), which perfaudit's parser reads as `U & "..."`:
/// each as a sentence saying what the server reads instead.
fn unicode_identifiers(tokens: &[TokenWithSpan]) -> Vec<String> {
    let significant: Vec<&Token> = tokens.iter().map(|t| &t.token).collect();
    let mut found = Vec::new();
    for (i, window) in significant.windows(3).enumerate() {
        let [Token::Word(u), Token::Ampersand, Token::Word(quoted)] = window else {
            continue;
        };
        if u.quote_style.is_some()
            || !u.value.eq_ignore_ascii_case("u")
            || quoted.quote_style != Some('"')
        {
            continue;
        }
        let mut spelling = format!("U&\"{}\"", quoted.value.replace('"', "\"\""));
        let rest: Vec<&Token> = significant[i + 3..]
            .iter()
            .copied()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .take(2)
            .collect();
        if let [Token::Word(keyword), Token::SingleQuotedString(escape)] = rest[..]
            && keyword.value.eq_ignore_ascii_case("uescape")
        {
            spelling.push_str(&format!(" UESCAPE '{escape}'"));
        }
        let reads = match decode(&spelling) {
            Ok(name) => format!("which PostgreSQL reads as {}", ident(&name)),
            Err(reason) => format!("which PostgreSQL rejects: {reason}"),
        };
        found.push(format!(
            "it spells an identifier with Unicode escapes ({spelling}, {reads}), which \
             perfaudit's parser does not read as PostgreSQL does"
        ));
    }
    found
}

/// The relations a statement names (tables, views, CTE names too), and
/// the types it casts to, as SQL spells them (quoted, for `to_regclass` and
/// `to_regtype`).
fn named_relations_and_types(statement: &sqlparser::ast::Statement) -> (Vec<String>, Vec<String>) {
    #[derive(Default)]
    struct Names {
        relations: Vec<String>,
        types: Vec<String>,
    }
    impl Visitor for Names {
        type Break = ();

        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            if let Some(parts) = crate::sql::ident::fold_name(relation) {
                let name = parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".");
                if !self.relations.contains(&name) {
                    self.relations.push(name);
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            let data_type: Option<&DataType> = match expr {
                Expr::Cast { data_type, .. } | Expr::TypedString(TypedString { data_type, .. }) => {
                    Some(data_type)
                }
                _ => None,
            };
            if let Some(data_type) = data_type {
                let name = data_type.to_string();
                if !self.types.contains(&name) {
                    self.types.push(name);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = statement.visit(&mut names);
    (names.relations, names.types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_escaped_identifiers_are_found_in_the_tokens() {
        let parse = |sql: &str| crate::sql::parse_statements(sql).unwrap().remove(0);
        let found = unicode_identifiers(
            &parse(r#"SELECT pg_catalog.U&"pg\005fterminate\005fbackend"(1)"#).tokens,
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("reads as pg_terminate_backend"),
            "{found:?}"
        );
        // `U & "x"` with spaces is an AND, as PostgreSQL reads it too.
        assert!(unicode_identifiers(&parse(r#"SELECT u & "x" FROM t"#).tokens).is_empty());
    }
}
