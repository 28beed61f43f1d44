//! `--param` values: bound to `$1..$n` on the server, never spliced into SQL.
//!
//! Each value is sent in text format with an unspecified type, so the server
//! infers every placeholder's type from the statement and parses the text
//! with that type's input function — exactly what psql's `\bind` does. Any
//! type works (int, numeric, timestamptz, uuid, enums, arrays) without
//! perfaudit knowing about it.

use bytes::BytesMut;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

/// One `--param` value, sent as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextParam(pub String);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// The type to declare for every parameter: `unknown`, which PostgreSQL
/// treats like an unspecified type and infers from the statement.
pub const INFERRED: Type = Type::UNKNOWN;

/// `params` as `query_typed` takes them: each sent as text, its type
/// [`INFERRED`].
pub fn inferred(params: &[TextParam]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| (p as &(dyn ToSql + Sync), INFERRED))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sent_as_text_untouched() {
        let mut out = BytesMut::new();
        let value = TextParam("2024-01-01 00:00:00+00".into());
        assert!(matches!(
            value.to_sql_checked(&Type::TIMESTAMPTZ, &mut out),
            Ok(IsNull::No)
        ));
        assert_eq!(&out[..], b"2024-01-01 00:00:00+00");
        assert!(matches!(value.encode_format(&Type::INT4), Format::Text));
    }
}
