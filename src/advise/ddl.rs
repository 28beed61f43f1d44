//! How advise writes its recommendations down beyond the index itself
//! (named, built and made hypothetical by [`crate::indexes::ddl`]): the
//! spec `perfaudit indexes --spec` reads. Pure.

use serde::Serialize;

/// One index of a spec file.
#[derive(Debug, Serialize)]
pub struct SpecIndex<'a> {
    /// The index name.
    pub name: &'a str,
    /// The table as written in SQL (schema-qualified, quoted where needed).
    pub table: &'a str,
    /// The key columns, in order.
    pub columns: &'a [String],
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

    fn columns(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_spec_is_one_perfaudit_indexes_reads() {
        let cols = columns(&["user_id", "status"]);
        let text = spec(&[SpecIndex {
            name: "idx_payments_user_id_status",
            table: "public.payments",
            columns: &cols,
        }]);
        let read = Spec::parse(&text, "advised").unwrap();
        assert_eq!(read.indexes.len(), 1);
        let index = &read.indexes[0];
        assert_eq!(index.name, "idx_payments_user_id_status");
        assert_eq!(index.table, "public.payments");
        assert_eq!(
            index.keys,
            [Key::Column("user_id".into()), Key::Column("status".into())]
        );
        assert_eq!(index.method, DEFAULT_METHOD);
    }
}
