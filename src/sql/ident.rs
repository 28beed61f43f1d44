//! Identifiers: as PostgreSQL resolves the ones in a statement ([`fold`]),
//! and as SQL must spell them in text people read and copy: advice,
//! reports ([`ident`]). (Statements perfaudit sends quote every identifier.)

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

/// PostgreSQL's reserved key words, which an identifier must quote.
const RESERVED: &str = "all analyse analyze and any array as asc asymmetric both case cast check \
    collate column constraint create current_catalog current_date current_role current_time \
    current_timestamp current_user default deferrable desc distinct do else end except false \
    fetch for foreign from grant group having in initially intersect into lateral leading limit \
    localtime localtimestamp not null offset on only or order placing primary references \
    returning select session_user some symmetric system_user table then to trailing true union \
    unique user using variadic when where window with";

/// `payments`, `"Payments"`, `"user"`: an identifier as SQL must spell it,
/// quoted only where needed.
pub fn ident(name: &str) -> String {
    let simple = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if simple && !RESERVED.split_whitespace().any(|word| word == name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
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
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("Payments"), "\"Payments\"");
        assert_eq!(ident("2fa"), "\"2fa\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
