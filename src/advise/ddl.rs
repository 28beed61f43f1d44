//! How advise writes its recommendations down beyond the index itself
//! (named, built and made hypothetical by [`crate::indexes::ddl`]): the
//! spec `perfaudit indexes --spec` reads. Pure.

use serde::{Serialize, Serializer};

use crate::indexes::spec::Key;

/// One index of a spec file.
#[derive(Debug, Serialize)]
pub struct SpecIndex<'a> {
    /// The index name.
    pub name: &'a str,
    /// The table as written in SQL (schema-qualified, quoted where needed).
    pub table: &'a str,
    /// The key, in order.
    #[serde(rename = "columns", serialize_with = "spec_keys")]
    pub keys: &'a [Key],
    /// The predicate of a partial index.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub predicate: Option<&'a str>,
}

/// A key as the spec reads it: a column's name, or `{ expression = "..." }`.
fn spec_keys<S: Serializer>(keys: &&[Key], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum SpecKey<'a> {
        Column(&'a str),
        Expression { expression: &'a str },
    }
    serializer.collect_seq(keys.iter().map(|key| match key {
        Key::Column(column) => SpecKey::Column(column),
        Key::Expression(expression) => SpecKey::Expression { expression },
    }))
}

/// A spec file for `perfaudit indexes --spec`, one `[[index]]` each.
pub fn spec(indexes: &[SpecIndex<'_>]) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        index: &'a [SpecIndex<'a>],
    }
    let body = toml::to_string(&File { index: indexes }).expect("a spec always serializes");
    format!(
        "# Indexes recommended by `perfaudit advise`, each proven with a hypothetical\n\
         # index (HypoPG). Build them safely with: perfaudit indexes --spec FILE\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexes::spec::{DEFAULT_METHOD, Key, Spec};

    #[test]
    fn the_spec_is_one_perfaudit_indexes_reads() {
        let keys = [Key::Column("user_id".into()), Key::Column("status".into())];
        let expression = [
            Key::Expression("lower(email)".into()),
            Key::Column("id".into()),
        ];
        let text = spec(&[
            SpecIndex {
                name: "idx_payments_user_id_status",
                table: "public.payments",
                keys: &keys,
                predicate: None,
            },
            SpecIndex {
                name: "idx_users_lower_email_id_where_active",
                table: "public.users",
                keys: &expression,
                predicate: Some("active"),
            },
        ]);
        let read = Spec::parse(&text, "advised").unwrap();
        assert_eq!(read.indexes.len(), 2);
        let index = &read.indexes[0];
        assert_eq!(index.name, "idx_payments_user_id_status");
        assert_eq!(index.table, "public.payments");
        assert_eq!(index.keys, keys);
        assert_eq!(index.predicate, None);
        assert_eq!(index.method, DEFAULT_METHOD);
        let partial = &read.indexes[1];
        assert_eq!(partial.keys, expression);
        assert_eq!(partial.predicate.as_deref(), Some("active"));
    }
}
