//! Reading a `json` value as the server sent it, without parsing it.

use tokio_postgres::types::{FromSql, Type};

/// A `json` value's text, exactly as the server sent it (the column of
/// `EXPLAIN (FORMAT JSON)`): kept as text so that it can be passed on byte
/// for byte, or parsed into whatever shape the caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_json_text_as_sent_and_nothing_else() {
        let text = JsonText::from_sql(&Type::JSON, br#"[{"Plan": {}}]"#).unwrap();
        assert_eq!(text, JsonText(r#"[{"Plan": {}}]"#.to_owned()));
        assert!(JsonText::from_sql(&Type::JSON, b"\xff").is_err());
        assert!(JsonText::accepts(&Type::JSON));
        assert!(!JsonText::accepts(&Type::JSONB) && !JsonText::accepts(&Type::TEXT));
    }
}
