//! How advise writes its recommendations down beyond the index itself
//! (named, built and made hypothetical by [`crate::indexes::ddl`]): the
//! spec `perfaudit indexes --spec` reads. Pure.

use serde::{Serialize, Serializer};

use crate::indexes::spec::Key;

/// One index of a spec file.
#[derive(Debug)]
pub struct SpecIndex<'a> {
    /// The index name.
    pub name: &'a str,
    /// The table as written in SQL (schema-qualified, quoted where needed).
    pub table: &'a str,
    /// The key, in order.
    pub keys: &'a [Key],
    /// Whether each key sorts descending, in that order.
    pub descending: &'a [bool],
    /// Each key's operator class (`None`: the default), in that order.
    pub opclasses: &'a [Option<String>],
    /// The predicate of a partial index.
    pub predicate: Option<&'a str>,
}

impl Serialize for SpecIndex<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut index = serializer.serialize_struct("SpecIndex", 4)?;
        index.serialize_field("name", self.name)?;
        index.serialize_field("table", self.table)?;
        let keys: Vec<SpecKey<'_>> = self
            .keys
            .iter()
            .enumerate()
            .map(|(k, key)| {
                SpecKey::new(
                    key,
                    self.opclasses.get(k).and_then(Option::as_deref),
                    self.descending.get(k).is_some_and(|d| *d),
                )
            })
            .collect();
        index.serialize_field("columns", &keys)?;
        if let Some(predicate) = self.predicate {
            index.serialize_field("where", predicate)?;
        }
        index.end()
    }
}

/// A key as the spec reads it: a column's name, `{ expression = "..." }`,
/// or either with its operator class.
#[derive(Serialize)]
#[serde(untagged)]
enum SpecKey<'a> {
    Column(&'a str),
    WithClass {
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expression: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        opclass: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order: Option<&'a str>,
    },
}

impl<'a> SpecKey<'a> {
    fn new(key: &'a Key, opclass: Option<&'a str>, descending: bool) -> SpecKey<'a> {
        let order = descending.then_some("desc");
        match (key, opclass, order) {
            (Key::Column(column), None, None) => SpecKey::Column(column),
            (Key::Column(column), opclass, order) => SpecKey::WithClass {
                column: Some(column),
                expression: None,
                opclass,
                order,
            },
            (Key::Expression(expression), opclass, order) => SpecKey::WithClass {
                column: None,
                expression: Some(expression),
                opclass,
                order,
            },
        }
    }
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
    use crate::indexes::spec::{DEFAULT_METHOD, Key, Order, Spec};

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
                opclasses: &[],
                descending: &[],
                predicate: None,
            },
            SpecIndex {
                name: "idx_users_lower_email_id_where_active",
                table: "public.users",
                keys: &expression,
                opclasses: &[None, Some("text_pattern_ops".into())],
                descending: &[true, false],
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
        assert_eq!(
            partial.key_options[1].opclass.as_deref(),
            Some("text_pattern_ops")
        );
        assert_eq!(partial.key_options[0].order, Some(Order::Desc));
        assert_eq!(partial.predicate.as_deref(), Some("active"));
    }
}
