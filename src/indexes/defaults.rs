//! When perfaudit may build its default spec, the payment indexes, without
//! being asked: only on the payments fixture's own table. Anyone else's
//! `payments` gets indexes only from a spec, or when `--payments-defaults`
//! says the default set is wanted there. Pure: the catalog's word comes in
//! as data.

use super::catalog::SpecTables;
use super::spec::Spec;
use crate::db::fixture::PAYMENTS_COLUMNS;
use crate::error::{Error, Result};

/// Checks that the default `spec` may be built on the tables found:
/// its table exists, and, unless `asked` (`--payments-defaults`), it is
/// the fixture's, as its `columns` (name and type) say.
pub fn check(
    spec: &Spec,
    tables: &SpecTables,
    columns: &[(String, String)],
    asked: bool,
) -> Result<()> {
    let Some(table) = tables
        .of_index
        .first()
        .copied()
        .flatten()
        .map(|t| &tables.tables[t])
    else {
        return Err(Error::input(format!(
            "without --spec, perfaudit indexes builds its payment indexes ({}) on a table \
             payments, which this database does not have (or not on the search_path); give the \
             indexes you want with --spec FILE (the format is in `perfaudit indexes --help` and \
             docs/commands/indexes.md)",
            names(spec)
        )));
    };
    match (asked, difference(columns)) {
        (false, Some(difference)) => Err(Error::input(format!(
            "table {} is not perfaudit's payments fixture ({difference}), so perfaudit does not \
             build its default payment indexes ({}) on it unasked: give the indexes you want \
             with --spec FILE, or pass --payments-defaults to build these anyway",
            table.name.display(),
            names(spec)
        ))),
        _ => Ok(()),
    }
}

/// The default spec's index names, for messages.
fn names(spec: &Spec) -> String {
    let names: Vec<&str> = spec.indexes.iter().map(|i| i.name.as_str()).collect();
    names.join(", ")
}

/// How `columns` (name and type) differ from the fixture's `payments`,
/// in words; `None` when they do not.
fn difference(columns: &[(String, String)]) -> Option<String> {
    for (name, kind) in PAYMENTS_COLUMNS {
        match columns.iter().find(|(column, _)| column == name) {
            None => return Some(format!("it has no column {name}")),
            Some((_, found)) if found != kind => {
                return Some(format!("its column {name} is {found}, not {kind}"));
            }
            Some(_) => {}
        }
    }
    let extra = columns
        .iter()
        .find(|(column, _)| !PAYMENTS_COLUMNS.iter().any(|(name, _)| name == column))?;
    Some(format!("it has a column {} the fixture has not", extra.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::{RelKind, Table};
    use crate::sql::ident::QualifiedName;

    fn fixture() -> Vec<(String, String)> {
        PAYMENTS_COLUMNS
            .iter()
            .rev()
            .map(|(name, kind)| (name.to_string(), kind.to_string()))
            .collect()
    }

    fn found(spec: &Spec, exists: bool) -> SpecTables {
        SpecTables {
            server_version: 170_000,
            tables: vec![Table {
                oid: 1,
                name: QualifiedName::new("public", "payments"),
                kind: RelKind::Table,
                columns: Vec::new(),
                partitions: Vec::new(),
                partition_indexes: Vec::new(),
            }],
            of_index: vec![exists.then_some(0); spec.indexes.len()],
        }
    }

    #[test]
    fn the_default_set_is_built_unasked_only_on_the_fixtures_table() {
        let spec = Spec::load(None).unwrap();
        let there = found(&spec, true);
        assert!(
            check(&spec, &there, &fixture(), false).is_ok(),
            "in any order"
        );
        let mut other = fixture();
        other.retain(|(name, _)| name != "method");
        let message = check(&spec, &there, &other, false).unwrap_err().to_string();
        assert_eq!(
            message,
            "table public.payments is not perfaudit's payments fixture (it has no column method), \
             so perfaudit does not build its default payment indexes (idx_payments_user_id, \
             idx_payments_status, idx_payments_created_at, idx_payments_user_status) on it \
             unasked: give the indexes you want with --spec FILE, or pass --payments-defaults \
             to build these anyway"
        );
        assert!(check(&spec, &there, &other, true).is_ok(), "asked for");
        let mut retyped = fixture();
        retyped[0].1 = "timestamp without time zone".into();
        assert!(
            check(&spec, &there, &retyped, false)
                .unwrap_err()
                .to_string()
                .contains("its column updated_at is timestamp without time zone, not timestamp with time zone")
        );
        let mut wider = fixture();
        wider.push(("tenant".into(), "integer".into()));
        assert!(
            check(&spec, &there, &wider, false)
                .unwrap_err()
                .to_string()
                .contains("it has a column tenant the fixture has not")
        );
    }

    #[test]
    fn without_a_payments_table_the_message_says_how_to_give_a_spec() {
        let spec = Spec::load(None).unwrap();
        for asked in [false, true] {
            let error = check(&spec, &found(&spec, false), &[], asked).unwrap_err();
            assert!(matches!(error, Error::Input(_)));
            let message = error.to_string();
            assert!(
                message.starts_with("without --spec, perfaudit indexes builds its payment indexes")
                    && message.contains("give the indexes you want with --spec FILE"),
                "{message}"
            );
        }
    }
}
