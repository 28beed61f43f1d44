//! Identifiers as SQL must spell them, for text people read and copy:
//! advice, reports. (Statements perfaudit sends quote every identifier.)

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

#[cfg(test)]
mod tests {
    use super::*;

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
