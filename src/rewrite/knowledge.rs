//! What is known about the objects a statement uses, beyond its own text:
//! nothing offline, or what a server said (see [`super::server::learn`]).

use sqlparser::ast::ObjectName;

use crate::sql::ident::fold_name;

/// What the rewriter may rely on beyond the SQL text. Plain data: build it
/// with [`Knowledge::offline`], from a server with
/// [`super::server::learn`], or by hand in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// Whether a server was asked. Offline, the rewriter adds only what the
    /// SQL itself proves, and says so.
    pub online: bool,
    /// The names of the statement's result columns, in order, as the server
    /// describes them; `None` when unknown.
    pub result_columns: Option<Vec<String>>,
    /// The columns of the tables and views the statement names in FROM.
    pub tables: Vec<TableColumns>,
    /// What could not be learned and why, one sentence each; reported with
    /// the rewrite.
    pub notes: Vec<String>,
}

/// The columns of one table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumns {
    /// The name as the statement writes it, each part as PostgreSQL
    /// resolves it: `["payments"]`, `["public", "payments"]`.
    pub name: Vec<String>,
    /// Its column names, in order.
    pub columns: Vec<String>,
}

impl Knowledge {
    /// Knowing nothing but the SQL.
    pub fn offline() -> Knowledge {
        Knowledge::default()
    }

    /// The columns of the table named `name` in a FROM clause, if known.
    pub(crate) fn table_columns(&self, name: &ObjectName) -> Option<&[String]> {
        let parts = fold_name(name)?;
        self.tables
            .iter()
            .find(|table| table.name == parts)
            .map(|table| table.columns.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::Ident;

    use super::*;

    #[test]
    fn tables_are_found_by_the_name_as_written() {
        let knowledge = Knowledge {
            tables: vec![TableColumns {
                name: vec!["public".into(), "payments".into()],
                columns: vec!["id".into()],
            }],
            ..Knowledge::offline()
        };
        let name = ObjectName::from(vec![Ident::new("PUBLIC"), Ident::new("payments")]);
        assert_eq!(knowledge.table_columns(&name), Some(&["id".to_owned()][..]));
        let other = ObjectName::from(vec![Ident::new("payments")]);
        assert_eq!(knowledge.table_columns(&other), None);
    }
}
