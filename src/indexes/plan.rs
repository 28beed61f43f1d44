//! Deciding, from the spec and the catalog alone, what to do for each
//! wanted index, the exact SQL that does it, and what is worth reporting
//! about the indexes that will be there afterwards. No I/O.

use std::collections::HashMap;

use super::advice::{self, Overlap};
use super::catalog::{Catalog, SpecTables};
use super::partitions::{self, Part, Parts};
use super::spec::{IndexSpec, Key, Problem, Spec};
use super::sql::{self, Build};
use crate::error::{Error, Result};
use crate::finding::{Finding, Severity, Subject};
use crate::pg::catalog::{Busy, BusyWith, Index, RelKind, Shape, Storage, Table};
use crate::sql::ident::QualifiedName;

/// The oldest server perfaudit builds indexes on: 12 brought
/// `pg_stat_progress_create_index` and `pg_partition_tree`.
const MIN_SERVER_VERSION: i32 = 120_000;

/// PostgreSQL 14.0 to 14.3 could corrupt indexes built or rebuilt
/// concurrently (fixed in 14.4, June 2022).
const CORRUPTING_CONCURRENT_BUILDS: std::ops::Range<i32> = 140_000..140_004;

/// What a run does about one wanted index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An index of that name and shape is there and valid.
    Exists {
        /// Its size.
        size_bytes: i64,
    },
    /// Another index serves the same queries; nothing is built.
    EquivalentExists {
        /// That index.
        index: QualifiedName,
        /// Its size, when it exists already (not when it is built by this
        /// run under another spec entry).
        size_bytes: Option<i64>,
    },
    /// Nothing is there: build it.
    Create,
    /// An index of that name is there but INVALID or not ready (a failed
    /// concurrent build): drop it and build it again.
    Rebuild,
}

impl Action {
    /// Whether the action builds an index.
    pub fn builds(&self) -> bool {
        matches!(self, Action::Create | Action::Rebuild)
    }
}

/// One statement of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL, sent alone.
    pub sql: String,
    /// The index it creates, to be removed if the build does not finish.
    pub creates: Option<QualifiedName>,
    /// For a `CREATE INDEX CONCURRENTLY`, the table it builds on. Such a
    /// build waits for other transactions after it has begun: only its
    /// first lock wait may be cut short (see [`super::watch`]), and the
    /// transactions it would wait for are waited for before it starts (see
    /// [`super::prewait`]).
    pub concurrent_on: Option<QualifiedName>,
    /// For the `ATTACH PARTITION` of an index that was there before, that
    /// index. Its lock (ACCESS EXCLUSIVE on an index queries use) queues
    /// every query on its partition while it waits, so it waits briefly;
    /// and once it is attached, dropping the parent would drop it too.
    pub adopts: Option<QualifiedName>,
}

impl Statement {
    /// A statement that creates nothing.
    pub fn new(sql: String) -> Statement {
        Statement {
            sql,
            creates: None,
            concurrent_on: None,
            adopts: None,
        }
    }
}

/// The decision for one wanted index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedIndex {
    /// The spec entry.
    pub spec: IndexSpec,
    /// The index's qualified name.
    pub name: QualifiedName,
    /// Its table.
    pub table: QualifiedName,
    /// What it is (as the server described the spec entry).
    pub shape: Shape,
    /// What to do.
    pub action: Action,
    /// On a partitioned table, when it builds: what it does on each
    /// partition.
    pub parts: Parts,
    /// For a rebuild: the drop of the broken index.
    pub drop: Option<Statement>,
    /// The statements that build it, in order, on one session.
    pub build: Vec<Statement>,
    /// `ANALYZE` of the table afterwards, on the last index of its table
    /// that has expressions (their statistics exist only after it).
    pub analyze: Option<Statement>,
}

impl PlannedIndex {
    /// Every statement, in the order they run.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.drop
            .iter()
            .chain(&self.build)
            .chain(self.analyze.as_ref())
    }
}

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One decision per spec entry, in spec order.
    pub indexes: Vec<PlannedIndex>,
    /// Whether builds run concurrently (else plain, in parallel).
    pub concurrently: bool,
}

/// Checks that the server is recent enough for `perfaudit indexes`.
pub fn check_server_version(server_version: i32) -> Result<()> {
    if server_version < MIN_SERVER_VERSION {
        return Err(Error::database(format!(
            "perfaudit indexes needs PostgreSQL 12 or later, and the server is {}",
            version_name(server_version)
        )));
    }
    Ok(())
}

/// `14.3` for 140003; `9.6.24` for 90624 (before 10, three numbers).
fn version_name(server_version: i32) -> String {
    let (major, rest) = (server_version / 10_000, server_version % 10_000);
    if major >= 10 {
        format!("{major}.{rest}")
    } else {
        format!("{major}.{}.{}", rest / 100, rest % 100)
    }
}

/// The problems of the spec's tables: each must exist, be one that can
/// be indexed, and have the columns the spec names.
pub fn check_tables(spec: &Spec, tables: &SpecTables) -> Vec<Problem> {
    spec.indexes
        .iter()
        .zip(&tables.of_index)
        .enumerate()
        .filter_map(|(n, (index, table))| {
            let problem = table_problem(index, table.map(|t| &tables.tables[t]))?;
            Some(spec.problem(n, problem))
        })
        .collect()
}

/// What is wrong with `table`, the table of `index` (`None` when it does
/// not exist), if anything.
fn table_problem(index: &IndexSpec, table: Option<&Table>) -> Option<String> {
    let Some(table) = table else {
        return Some(format!(
            "table {} does not exist (or is not on the search_path, or you may not see it); \
             check the spec's `table`",
            index.table
        ));
    };
    // The check builds on an empty copy of the table, which hides this:
    // PostgreSQL refuses indexes on its catalogs (without a setting meant
    // for its developers).
    if ["pg_catalog", "pg_toast"].contains(&table.name.schema.as_str()) {
        return Some(format!(
            "{} is a system catalog, which PostgreSQL does not let anyone index; check the \
             spec's `table`",
            table.name.display()
        ));
    }
    if !table.kind.indexable() {
        return Some(format!(
            "{} is {}; only tables, partitioned tables and materialized views can be indexed",
            table.name.display(),
            table.kind.words()
        ));
    }
    let missing: Vec<String> = index
        .keys
        .iter()
        .filter_map(|key| match key {
            Key::Column(column) => Some(column.as_str()),
            Key::Expression(_) => None,
        })
        .chain(index.include.iter().map(String::as_str))
        .filter(|column| !table.columns.iter().any(|c| c == column))
        .map(|column| format!("\"{column}\""))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "table {} has no column {}; its columns are {}",
            table.name.display(),
            missing.join(", "),
            table.columns.join(", ")
        )
    })
}

/// Every name the plan may give an index: the spec's names in their
/// tables' schemas, and the names of the partitions' indexes.
pub fn wanted_names(spec: &Spec, tables: &SpecTables) -> Vec<QualifiedName> {
    spec.indexes
        .iter()
        .zip(&tables.of_index)
        .filter_map(|(index, table)| Some((index, &tables.tables[(*table)?])))
        .flat_map(|(index, table)| {
            std::iter::once(QualifiedName::new(&table.name.schema, &index.name))
                .chain(partition_index_names(index, table))
        })
        .collect()
}

/// The names of `index`'s parts on each partition of `table`, in the
/// order of `table.partitions`.
fn partition_index_names<'a>(
    index: &'a IndexSpec,
    table: &'a Table,
) -> impl Iterator<Item = QualifiedName> + 'a {
    table.partitions.iter().enumerate().map(|(n, partition)| {
        QualifiedName::new(
            &partition.name.schema,
            sql::partition_index_name(&index.name, n + 1),
        )
    })
}

/// Why concurrent builds are refused on a server version, if they are.
pub fn concurrent_builds_refused(server_version: i32) -> Option<String> {
    CORRUPTING_CONCURRENT_BUILDS.contains(&server_version).then(|| {
        format!(
            "refusing to build indexes concurrently on PostgreSQL {}: releases 14.0 to 14.3 can \
             silently corrupt indexes built with CONCURRENTLY (fixed in 14.4); upgrade to 14.4 or \
             later, or use --no-concurrently if the tables can stop taking writes during the builds",
            version_name(server_version)
        )
    })
}

/// Whether an index of shape `have` serves every query an index of shape
/// `want` would: same method, key (columns or expressions, operator
/// classes, order, collations) and predicate; unique if uniqueness is
/// wanted; and at least the wanted `INCLUDE` columns.
pub fn satisfies(have: &Shape, want: &Shape) -> bool {
    have.method == want.method
        && have.keys == want.keys
        && have.predicate == want.predicate
        && (have.unique || !want.unique)
        && want.include.iter().all(|c| have.include.contains(c))
}

/// Decides what to do for each spec entry.
pub fn plan(spec: &Spec, catalog: &Catalog, concurrently: bool) -> Result<Plan> {
    let mut indexes: Vec<PlannedIndex> = Vec::with_capacity(spec.indexes.len());
    let mut problems = Vec::new();
    for (n, index) in spec.indexes.iter().enumerate() {
        let table = &catalog.tables.tables
            [catalog.tables.of_index[n].expect("tables are checked before planning")];
        let name = QualifiedName::new(&table.name.schema, &index.name);
        let shape = &catalog.wanted[n];
        let action = match decide(index, &name, table, shape, catalog, &indexes)? {
            Ok(action) => action,
            Err(problem) => {
                problems.push(spec.problem(n, problem));
                continue;
            }
        };
        let parts = if action.builds() {
            partitions::plan(table, completing(&name, table, shape, catalog), |index| {
                &index.shape == shape
            })
        } else {
            Parts::default()
        };
        let drop = (action == Action::Rebuild && !parts.completing).then(|| {
            Statement::new(sql::drop_index(
                &name,
                concurrently && table.kind != RelKind::Partitioned,
            ))
        });
        let build = if action.builds() {
            build_statements(index, &name, table, &parts, concurrently)
        } else {
            Vec::new()
        };
        indexes.push(PlannedIndex {
            spec: index.clone(),
            name,
            table: table.name.clone(),
            shape: shape.clone(),
            action,
            parts,
            drop,
            build,
            analyze: None,
        });
    }
    if !problems.is_empty() {
        return Err(spec.refuse(&problems));
    }
    if concurrently
        && indexes.iter().any(|i| i.action.builds())
        && let Some(reason) = concurrent_builds_refused(catalog.tables.server_version)
    {
        return Err(Error::database(reason));
    }
    // ANALYZE once per table, after its last build with expressions.
    let mut last_with_expressions: HashMap<&QualifiedName, usize> = HashMap::new();
    for (n, planned) in indexes.iter().enumerate() {
        if planned.action.builds() && planned.spec.has_expressions() {
            last_with_expressions.insert(&planned.table, n);
        }
    }
    let analyze: Vec<(usize, Statement)> = last_with_expressions
        .into_iter()
        .map(|(table, n)| (n, Statement::new(sql::analyze(table))))
        .collect();
    for (n, statement) in analyze {
        indexes[n].analyze = Some(statement);
    }
    Ok(Plan {
        indexes,
        concurrently,
    })
}

/// The INVALID partitioned index of `name` and `shape` on `table`, if
/// there is one: it is completed, its partitions' indexes that are
/// attached kept, rather than dropped with them and built again. One of
/// another shape is rebuilt.
fn completing<'a>(
    name: &QualifiedName,
    table: &Table,
    shape: &Shape,
    catalog: &'a Catalog,
) -> Option<&'a Index> {
    catalog.existing.iter().find(|e| {
        &e.name == name
            && e.table == table.oid
            && !e.usable
            && table.kind == RelKind::Partitioned
            && &e.shape == shape
    })
}

/// The decision for one index, given what exists and what the spec
/// entries before it will build; or what is wrong with the spec entry
/// (the inner error), or why the run cannot go on (the outer one).
fn decide(
    index: &IndexSpec,
    name: &QualifiedName,
    table: &Table,
    shape: &Shape,
    catalog: &Catalog,
    planned: &[PlannedIndex],
) -> Result<std::result::Result<Action, String>> {
    let same_name = catalog
        .existing
        .iter()
        .find(|e| &e.name == name && e.table == table.oid);
    if let Some(same) = same_name {
        return if let (false, Some(busy)) = (same.usable, &same.busy) {
            Err(Error::database(format!(
                "index {} on {} is not valid yet: {}; perfaudit does not drop an index another \
                 session is working on: let it finish (or stop it), then run again",
                name.display(),
                table.name.display(),
                describe_busy(busy)
            )))
        } else if !same.usable {
            Ok(Ok(Action::Rebuild))
        } else if satisfies(&same.shape, shape) && same.storage == index.storage {
            Ok(Ok(Action::Exists {
                size_bytes: same.size_bytes,
            }))
        } else {
            Ok(Err(format!(
                "index {} already exists on {} with another definition ({}, where the spec wants \
                 {}); rename the index in the spec, or drop the old one if nothing needs it",
                name.display(),
                table.name.display(),
                describe(&same.shape, &same.storage),
                describe(shape, &index.storage)
            )))
        };
    }
    if let Some(taken) = catalog.taken.iter().find(|t| &t.name == name)
        && taken.index_of != Some(table.oid)
    {
        return Ok(Err(format!(
            "cannot create index {}: the name is taken by {}; give the index another name in \
             the spec",
            name.display(),
            taken.holder
        )));
    }
    let existing = catalog
        .existing
        .iter()
        .find(|e| e.table == table.oid && e.usable && satisfies(&e.shape, shape));
    if let Some(existing) = existing {
        return Ok(Ok(Action::EquivalentExists {
            index: existing.name.clone(),
            size_bytes: Some(existing.size_bytes),
        }));
    }
    let earlier = planned
        .iter()
        .find(|p| p.table == table.name && satisfies(&p.shape, shape));
    if let Some(earlier) = earlier {
        return Ok(Ok(Action::EquivalentExists {
            index: earlier.name.clone(),
            size_bytes: None,
        }));
    }
    Ok(Ok(Action::Create))
}

/// The statements that build `index` under `name` on `table`, on each of
/// its partitions as `parts` says (see [`partitions::plan`]). A partitioned
/// table, which PostgreSQL cannot index concurrently, is indexed the way
/// its manual describes, with plain builds too, so that every partition's
/// index is chosen here: an index `ON ONLY` the table (unless it is being
/// completed), then on each partition an index built (`ON ONLY` a
/// partitioned one) or rebuilt, and attached; the existing indexes reused
/// are attached last, once every build has succeeded, since a failed
/// build's cleanup drops the parent index and what is attached to it. The
/// parent becomes valid when its last partition's index is attached.
pub fn build_statements(
    index: &IndexSpec,
    name: &QualifiedName,
    table: &Table,
    parts: &Parts,
    concurrently: bool,
) -> Vec<Statement> {
    let leaf_build = if concurrently {
        Build::Concurrently
    } else {
        Build::Plain
    };
    let create = |index_name: &QualifiedName, on: &QualifiedName, build: Build| Statement {
        sql: sql::create_index(index, &index_name.name, on, build),
        creates: Some(index_name.clone()),
        concurrent_on: (build == Build::Concurrently).then(|| on.clone()),
        adopts: None,
    };
    if table.kind != RelKind::Partitioned {
        return vec![create(name, &table.name, leaf_build)];
    }
    let mut statements = Vec::new();
    if !parts.completing {
        statements.push(create(name, &table.name, Build::OnlyParent));
    }
    let mut adoptions = Vec::new();
    let mut index_of: HashMap<u32, QualifiedName> = HashMap::from([(table.oid, name.clone())]);
    for ((partition, part), child) in table
        .partitions
        .iter()
        .zip(&parts.parts)
        .zip(partition_index_names(index, table))
    {
        let Some(parent) = index_of.get(&partition.parent).cloned() else {
            continue; // covered by its parent's index
        };
        let build = if partition.leaf {
            leaf_build
        } else {
            Build::OnlyParent
        };
        let child = match part {
            Part::Covered => continue,
            Part::Kept(kept) => kept.clone(),
            Part::Build => {
                statements.push(create(&child, &partition.name, build));
                statements.push(Statement::new(sql::attach_partition(&parent, &child)));
                child
            }
            Part::Rebuild(broken) => {
                statements.push(Statement::new(sql::drop_index(broken, concurrently)));
                statements.push(create(broken, &partition.name, build));
                statements.push(Statement::new(sql::attach_partition(&parent, broken)));
                broken.clone()
            }
            Part::Reuse(existing) => {
                adoptions.push(Statement {
                    adopts: Some(existing.clone()),
                    ..Statement::new(sql::attach_partition(&parent, existing))
                });
                // Its partitions' indexes come with it.
                continue;
            }
        };
        index_of.insert(partition.oid, child);
    }
    statements.extend(adoptions);
    statements
}

/// What another session is doing to an index, for messages.
fn describe_busy(busy: &Busy) -> String {
    let pid = busy.pid;
    match &busy.with {
        BusyWith::Build(command) => {
            format!("server process {pid} is building it right now ({command})")
        }
        BusyWith::IndexLock => format!(
            "server process {pid} holds a lock on it that only DDL takes (a concurrent build, \
             REINDEX or drop is under way)"
        ),
        BusyWith::TableLock => format!(
            "server process {pid} may be building it: it holds the lock on the table that \
             concurrent builds take (what it builds is hidden from this role without \
             pg_read_all_stats)"
        ),
    }
}

/// `btree (user_id, status) WITH (fillfactor = 70) WHERE ...` for
/// messages.
fn describe(shape: &Shape, storage: &Storage) -> String {
    let mut text = format!(
        "{}{} ({})",
        if shape.unique { "unique " } else { "" },
        shape.method,
        advice::key(shape)
    );
    if !shape.include.is_empty() {
        text.push_str(&format!(" INCLUDE ({})", shape.include.join(", ")));
    }
    if let Some(fillfactor) = storage.fillfactor {
        text.push_str(&format!(" WITH (fillfactor = {fillfactor})"));
    }
    if let Some(tablespace) = &storage.tablespace {
        text.push_str(&format!(" TABLESPACE {tablespace}"));
    }
    if let Some(predicate) = &shape.predicate {
        text.push_str(&format!(" WHERE {predicate}"));
    }
    text
}

/// An index that will be on a table after the run.
struct Present<'a> {
    name: &'a QualifiedName,
    table: &'a QualifiedName,
    shape: &'a Shape,
    size_bytes: Option<i64>,
    /// A unique index or one a constraint needs is never redundant.
    needed: bool,
}

/// The findings about the indexes on the spec's tables once the plan has
/// run; `sizes` holds the size of each planned index that was built.
pub fn findings(catalog: &Catalog, plan: &Plan, sizes: &[Option<i64>]) -> Vec<Finding> {
    let table_name = |oid: u32| {
        &catalog
            .tables
            .tables
            .iter()
            .find(|t| t.oid == oid)
            .expect("existing indexes are on the spec's tables")
            .name
    };
    let present: Vec<Present> = catalog
        .existing
        .iter()
        .filter(|e| e.usable)
        .map(|e: &Index| Present {
            name: &e.name,
            table: table_name(e.table),
            shape: &e.shape,
            size_bytes: Some(e.size_bytes),
            needed: e.backs_constraint || e.shape.unique,
        })
        .chain(
            plan.indexes
                .iter()
                .zip(sizes)
                .filter(|(p, _)| p.action.builds())
                .map(|(p, size)| Present {
                    name: &p.name,
                    table: &p.table,
                    shape: &p.shape,
                    size_bytes: *size,
                    needed: p.shape.unique,
                }),
        )
        .collect();
    let mut findings: Vec<Finding> = present
        .iter()
        .enumerate()
        .filter_map(|(n, a)| {
            present.iter().enumerate().find_map(|(m, b)| {
                let overlap = overlap(a, b)?;
                // Of two interchangeable indexes, only the later is reported.
                let reported = !(overlap == Overlap::DUPLICATE && overlap_of(b, a) && m > n);
                reported.then(|| overlap_finding(overlap, a, b))
            })
        })
        .collect();
    findings.extend(
        catalog
            .existing
            .iter()
            // An index another session is building is not valid yet, and
            // must not be dropped.
            .filter(|e| {
                !e.usable && e.busy.is_none() && !plan.indexes.iter().any(|p| p.name == e.name)
            })
            .map(|e| Finding {
                code: "invalid-index",
                severity: Severity::Warning,
                subject: Subject::Index {
                    index: e.name.name.clone(),
                    table: table_name(e.table).display(),
                    size_bytes: Some(e.size_bytes),
                },
                message: advice::INVALID.to_owned(),
                suggestion: format!(
                    "drop it with DROP INDEX CONCURRENTLY {}, or rebuild it with REINDEX INDEX \
                     CONCURRENTLY {}",
                    e.name, e.name
                ),
                ddl: None,
                saving: None,
            }),
    );
    findings
}

/// How `a` adds nothing to `b` (see [`advice::overlap`]), if it does: two
/// indexes on the same table, `a` not needed for uniqueness.
fn overlap(a: &Present, b: &Present) -> Option<Overlap> {
    if a.table != b.table || a.name == b.name || a.needed {
        return None;
    }
    advice::overlap(a.shape, b.shape)
}

/// Whether `a` adds nothing to `b`.
fn overlap_of(a: &Present, b: &Present) -> bool {
    overlap(a, b).is_some()
}

fn overlap_finding(overlap: Overlap, a: &Present, b: &Present) -> Finding {
    Finding {
        code: overlap.code,
        severity: overlap.severity,
        subject: Subject::Index {
            index: a.name.name.clone(),
            table: a.table.display(),
            size_bytes: a.size_bytes,
        },
        message: advice::overlap_message(overlap, a.shape, &b.name.name, b.shape),
        suggestion: advice::overlap_suggestion(overlap).to_owned(),
        ddl: None,
        saving: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::catalog::{KeyShape, Partition, TakenName};

    const TABLE: u32 = 100;

    /// The index a finding is about, and its size.
    fn about(finding: &Finding) -> (&str, Option<i64>) {
        match &finding.subject {
            Subject::Index {
                index, size_bytes, ..
            } => (index, *size_bytes),
            other => panic!("not about an index: {other:?}"),
        }
    }

    fn key(definition: &str) -> KeyShape {
        KeyShape {
            definition: definition.into(),
            opclass: 3124,
            option: 0,
            collation: 0,
            column: None,
            options: String::new(),
        }
    }

    fn shape(keys: &[&str]) -> Shape {
        Shape {
            method: "btree".into(),
            unique: false,
            keys: keys.iter().map(|k| key(k)).collect(),
            include: vec![],
            predicate: None,
        }
    }

    fn existing(name: &str, shape: Shape, usable: bool) -> Index {
        Index {
            oid: 0,
            table: TABLE,
            name: QualifiedName::new("public", name),
            shape,
            usable,
            backs_constraint: false,
            size_bytes: 8192,
            busy: None,
            usage: None,
            attached_to: None,
            storage: Storage::default(),
        }
    }

    fn payments(kind: RelKind, partitions: Vec<Partition>) -> Table {
        Table {
            oid: TABLE,
            name: QualifiedName::new("public", "payments"),
            kind,
            columns: ["id", "user_id", "status", "created_at", "amount"]
                .map(String::from)
                .to_vec(),
            partitions,
            partition_indexes: Vec::new(),
        }
    }

    fn tables(spec: &Spec, table: Table) -> SpecTables {
        SpecTables {
            server_version: 150_004,
            tables: vec![table],
            of_index: vec![Some(0); spec.indexes.len()],
        }
    }

    /// The default spec against a payments table holding `existing`.
    fn catalog(spec: &Spec, existing: Vec<Index>) -> Catalog {
        catalog_on(spec, payments(RelKind::Table, vec![]), existing)
    }

    fn catalog_on(spec: &Spec, table: Table, existing: Vec<Index>) -> Catalog {
        Catalog {
            wanted: spec
                .indexes
                .iter()
                .map(|i| shape(&i.keys.iter().map(Key::text).collect::<Vec<_>>()))
                .collect(),
            tables: tables(spec, table),
            existing,
            taken: vec![],
        }
    }

    fn default_spec() -> Spec {
        Spec::load(None).unwrap()
    }

    fn actions(plan: &Plan) -> Vec<&Action> {
        plan.indexes.iter().map(|p| &p.action).collect()
    }

    fn sql_of<'a>(statements: impl IntoIterator<Item = &'a Statement>) -> Vec<&'a str> {
        statements.into_iter().map(|s| s.sql.as_str()).collect()
    }

    #[test]
    fn on_a_bare_table_everything_is_created_concurrently() {
        let spec = default_spec();
        let plan = plan(&spec, &catalog(&spec, vec![]), true).unwrap();
        assert_eq!(actions(&plan), [&Action::Create; 4]);
        assert_eq!(
            sql_of(plan.indexes.iter().flat_map(|p| p.statements())),
            [
                r#"CREATE INDEX CONCURRENTLY "idx_payments_user_id" ON "public"."payments" ("user_id")"#,
                r#"CREATE INDEX CONCURRENTLY "idx_payments_status" ON "public"."payments" ("status")"#,
                r#"CREATE INDEX CONCURRENTLY "idx_payments_created_at" ON "public"."payments" ("created_at")"#,
                r#"CREATE INDEX CONCURRENTLY "idx_payments_user_status" ON "public"."payments" ("user_id", "status")"#,
            ]
        );
        assert_eq!(
            plan.indexes[0].build[0].creates,
            Some(QualifiedName::new("public", "idx_payments_user_id"))
        );
        let plain = super::plan(&spec, &catalog(&spec, vec![]), false).unwrap();
        assert!(
            plain.indexes[0].build[0]
                .sql
                .starts_with("CREATE INDEX \"idx")
        );
    }

    #[test]
    fn valid_invalid_and_equivalent_indexes_are_recognised() {
        let spec = default_spec();
        let catalog = catalog(
            &spec,
            vec![
                existing("idx_payments_user_id", shape(&["user_id"]), true),
                existing("idx_payments_status", shape(&["status"]), false),
                existing("payments_created_at_idx", shape(&["created_at"]), true),
            ],
        );
        let plan = plan(&spec, &catalog, true).unwrap();
        assert_eq!(
            actions(&plan),
            [
                &Action::Exists { size_bytes: 8192 },
                &Action::Rebuild,
                &Action::EquivalentExists {
                    index: QualifiedName::new("public", "payments_created_at_idx"),
                    size_bytes: Some(8192)
                },
                &Action::Create,
            ]
        );
        let rebuild = &plan.indexes[1];
        assert_eq!(
            rebuild.drop.as_ref().unwrap().sql,
            r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_payments_status""#
        );
        assert_eq!(rebuild.build.len(), 1);
        assert!(plan.indexes[0].statements().next().is_none());
    }

    #[test]
    fn an_index_another_session_works_on_is_neither_rebuilt_nor_reported() {
        let spec = default_spec();
        let busy = |with| {
            let mut index = existing("idx_payments_status", shape(&["status"]), false);
            index.busy = Some(Busy { pid: 4242, with });
            index
        };
        for (with, says) in [
            (
                BusyWith::Build("CREATE INDEX CONCURRENTLY".into()),
                "server process 4242 is building it right now (CREATE INDEX CONCURRENTLY)",
            ),
            (BusyWith::IndexLock, "only DDL takes"),
            (BusyWith::TableLock, "may be building it"),
        ] {
            let error = plan(&spec, &catalog(&spec, vec![busy(with)]), true).unwrap_err();
            assert!(matches!(error, Error::Database(_)), "{error}");
            let message = error.to_string();
            assert!(
                message.starts_with(
                    "index public.idx_payments_status on public.payments is not valid yet"
                ) && message.contains(says)
                    && message.contains("does not drop an index another session is working on"),
                "{message}"
            );
        }
        // Under another name, it is no finding: not valid yet is not broken.
        let mut other = busy(BusyWith::IndexLock);
        other.name = QualifiedName::new("public", "being_built");
        let catalog = catalog(&spec, vec![other]);
        let plan = plan(&spec, &catalog, true).unwrap();
        assert_eq!(
            findings(&catalog, &plan, &[None; 4])
                .iter()
                .filter(|f| f.code == "invalid-index")
                .count(),
            0
        );
        // A valid index someone rebuilds concurrently is simply there.
        let mut reindexed = existing("idx_payments_status", shape(&["status"]), true);
        reindexed.busy = Some(Busy {
            pid: 1,
            with: BusyWith::IndexLock,
        });
        let catalog = super::tests::catalog(&spec, vec![reindexed]);
        assert_eq!(
            super::plan(&spec, &catalog, true).unwrap().indexes[1].action,
            Action::Exists { size_bytes: 8192 }
        );
    }

    #[test]
    fn equivalence_follows_the_shape_not_the_name() {
        let want = shape(&["user_id", "status"]);
        assert!(satisfies(&want, &want));
        assert!(!satisfies(&shape(&["status", "user_id"]), &want));
        assert!(!satisfies(&shape(&["user_id"]), &want));
        let unique = Shape {
            unique: true,
            ..want.clone()
        };
        assert!(satisfies(&unique, &want), "a unique index serves lookups");
        assert!(!satisfies(&want, &unique), "but not uniqueness");
        let covering = Shape {
            include: vec!["amount".into()],
            ..want.clone()
        };
        assert!(satisfies(&covering, &want));
        assert!(!satisfies(&want, &covering));
        let partial = Shape {
            predicate: Some("status = 'pending'::text".into()),
            ..want.clone()
        };
        assert!(!satisfies(&partial, &want) && !satisfies(&want, &partial));
        let hash = Shape {
            method: "hash".into(),
            ..want.clone()
        };
        assert!(!satisfies(&hash, &want));
        let mut descending = want.clone();
        descending.keys[0].option = 3;
        assert!(!satisfies(&descending, &want));
        let mut pattern_ops = want.clone();
        pattern_ops.keys[1].opclass = 10_044;
        assert!(!satisfies(&pattern_ops, &want));
    }

    #[test]
    fn a_spec_entry_equal_to_an_earlier_one_is_not_built_twice() {
        let spec = Spec::parse(
            "[[index]]\nname = \"a\"\ntable = \"payments\"\ncolumns = [\"user_id\"]\n\
             [[index]]\nname = \"b\"\ntable = \"payments\"\ncolumns = [\"user_id\"]\n",
            "test",
        )
        .unwrap();
        let plan = plan(&spec, &catalog(&spec, vec![]), true).unwrap();
        assert_eq!(
            actions(&plan),
            [
                &Action::Create,
                &Action::EquivalentExists {
                    index: QualifiedName::new("public", "a"),
                    size_bytes: None
                }
            ]
        );
    }

    #[test]
    fn a_name_taken_by_something_else_is_refused() {
        let spec = default_spec();
        let other = existing("idx_payments_user_id", shape(&["status"]), true);
        let message = plan(&spec, &catalog(&spec, vec![other]), true)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("already exists on public.payments with another definition")
                && message.contains("btree (status)")
                && message.contains("btree (user_id)"),
            "{message}"
        );
        let refused = |holder: &str, index_of: Option<u32>, existing: Vec<Index>| {
            let mut catalog = catalog(&spec, existing);
            catalog.taken.push(TakenName {
                name: QualifiedName::new("public", "idx_payments_status"),
                holder: holder.into(),
                index_of,
            });
            plan(&spec, &catalog, true).unwrap_err()
        };
        let error = refused("a table", None, vec![]);
        assert!(matches!(error, Error::Input(_)));
        assert!(error.to_string().contains("taken by a table"), "{error}");
        // An index of that name on another of the spec's tables is no match.
        let mut elsewhere = existing("idx_payments_status", shape(&["status"]), true);
        elsewhere.table = TABLE + 1;
        let error = refused("an index on orders", Some(TABLE + 1), vec![elsewhere]);
        assert!(
            error.to_string().contains("taken by an index on orders"),
            "{error}"
        );
    }

    #[test]
    fn missing_tables_kinds_and_columns_are_named_for_every_index() {
        let spec = default_spec();
        let mut found = tables(&spec, payments(RelKind::Table, vec![]));
        assert_eq!(check_tables(&spec, &found), []);
        found.of_index[1] = None;
        let problems = check_tables(&spec, &found);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].index, "index \"idx_payments_status\" (line 25)");
        assert!(
            problems[0]
                .message
                .starts_with("table payments does not exist"),
            "{problems:?}"
        );
        let mut found = tables(&spec, payments(RelKind::View, vec![]));
        let problems = check_tables(&spec, &found);
        assert_eq!(problems.len(), 4, "each index on the view: {problems:?}");
        assert!(
            problems[0].message.starts_with("public.payments is a view"),
            "{problems:?}"
        );
        found.tables[0].kind = RelKind::Table;
        found.tables[0].columns.retain(|c| c != "status");
        let message = spec.refuse(&check_tables(&spec, &found)).to_string();
        assert_eq!(
            message,
            "the index spec (the default spec) has 2 problems; nothing was built:\n  \
             index \"idx_payments_status\" (line 25): table public.payments has no column \
             \"status\"; its columns are id, user_id, created_at, amount\n  \
             index \"idx_payments_user_status\" (line 35): table public.payments has no column \
             \"status\"; its columns are id, user_id, created_at, amount"
        );
    }

    #[test]
    fn servers_older_than_12_are_refused() {
        let error = check_server_version(110_022).unwrap_err();
        assert!(matches!(error, Error::Database(_)));
        assert!(error.to_string().contains("the server is 11.22"), "{error}");
        assert_eq!(version_name(90_624), "9.6.24");
        assert!(check_server_version(120_000).is_ok());
        assert!(check_server_version(180_001).is_ok());
    }

    #[test]
    fn concurrent_builds_are_refused_on_14_0_to_14_3_only() {
        for bad in [140_000, 140_001, 140_003] {
            let reason = concurrent_builds_refused(bad).unwrap();
            assert!(reason.contains("14.4"), "{reason}");
        }
        assert!(
            concurrent_builds_refused(140_003)
                .unwrap()
                .contains("PostgreSQL 14.3")
        );
        for good in [130_011, 140_004, 150_004, 170_000] {
            assert_eq!(concurrent_builds_refused(good), None);
        }
        let spec = default_spec();
        let mut old = catalog(&spec, vec![]);
        old.tables.server_version = 140_002;
        let error = plan(&spec, &old, true).unwrap_err();
        assert!(matches!(error, Error::Database(_)), "{error}");
        assert!(plan(&spec, &old, false).is_ok(), "plain builds are safe");
        let mut built = catalog(&spec, vec![]);
        built.existing = spec
            .indexes
            .iter()
            .zip(&built.wanted)
            .map(|(i, s)| existing(&i.name, s.clone(), true))
            .collect();
        built.tables.server_version = 140_002;
        assert!(plan(&spec, &built, true).is_ok(), "nothing to build");
    }

    #[test]
    fn expression_indexes_analyze_their_table_once_after_the_last() {
        let spec = Spec::parse(
            "[[index]]\nname = \"a\"\ntable = \"payments\"\ncolumns = [{ expression = \"lower(status)\" }]\n\
             [[index]]\nname = \"b\"\ntable = \"payments\"\ncolumns = [{ expression = \"amount * 2\" }]\n\
             [[index]]\nname = \"c\"\ntable = \"payments\"\ncolumns = [\"user_id\"]\n",
            "test",
        )
        .unwrap();
        let plan = plan(&spec, &catalog(&spec, vec![]), true).unwrap();
        let analyze: Vec<Option<&str>> = plan
            .indexes
            .iter()
            .map(|p| p.analyze.as_ref().map(|s| s.sql.as_str()))
            .collect();
        assert_eq!(
            analyze,
            [None, Some(r#"ANALYZE "public"."payments""#), None]
        );
        assert!(plan.indexes[0].build[0].sql.contains("((lower(status)))"));
    }

    #[test]
    fn partitioned_tables_are_built_partition_by_partition() {
        let spec = Spec::parse(
            "[[index]]\nname = \"idx_at\"\ntable = \"payments\"\ncolumns = [\"created_at\"]\n",
            "test",
        )
        .unwrap();
        let partition = |oid, name: &str, parent, leaf| Partition {
            oid,
            name: QualifiedName::new("public", name),
            parent,
            leaf,
        };
        let table = payments(
            RelKind::Partitioned,
            vec![
                partition(101, "p2023", TABLE, true),
                partition(102, "p2024", TABLE, false),
                partition(103, "p2024_eu", 102, true),
            ],
        );
        let found = tables(&spec, table.clone());
        assert_eq!(
            wanted_names(&spec, &found),
            [
                QualifiedName::new("public", "idx_at"),
                QualifiedName::new("public", "idx_at_1"),
                QualifiedName::new("public", "idx_at_2"),
                QualifiedName::new("public", "idx_at_3"),
            ]
        );
        let plan = plan(&spec, &catalog_on(&spec, table.clone(), vec![]), true).unwrap();
        assert_eq!(
            sql_of(&plan.indexes[0].build),
            [
                r#"CREATE INDEX "idx_at" ON ONLY "public"."payments" ("created_at")"#,
                r#"CREATE INDEX CONCURRENTLY "idx_at_1" ON "public"."p2023" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."idx_at_1""#,
                r#"CREATE INDEX "idx_at_2" ON ONLY "public"."p2024" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."idx_at_2""#,
                r#"CREATE INDEX CONCURRENTLY "idx_at_3" ON "public"."p2024_eu" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at_2" ATTACH PARTITION "public"."idx_at_3""#,
            ]
        );
        let concurrent: Vec<Option<String>> = plan.indexes[0]
            .build
            .iter()
            .map(|s| s.concurrent_on.as_ref().map(QualifiedName::display))
            .collect();
        let on = |table: &str| Some(format!("public.{table}"));
        assert_eq!(
            concurrent,
            [None, on("p2023"), None, None, None, on("p2024_eu"), None]
        );
        let other_shape = existing("idx_at", shape(&["id"]), false);
        let rebuild = super::plan(
            &spec,
            &catalog_on(&spec, table.clone(), vec![other_shape]),
            true,
        )
        .unwrap();
        assert_eq!(
            rebuild.indexes[0].drop.as_ref().unwrap().sql,
            r#"DROP INDEX IF EXISTS "public"."idx_at""#,
            "a partitioned index cannot be dropped concurrently"
        );
        let plain = super::plan(&spec, &catalog_on(&spec, table, vec![]), false).unwrap();
        assert_eq!(
            sql_of(&plain.indexes[0].build)[..3],
            [
                r#"CREATE INDEX "idx_at" ON ONLY "public"."payments" ("created_at")"#,
                r#"CREATE INDEX "idx_at_1" ON "public"."p2023" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."idx_at_1""#,
            ],
            "plain builds choose each partition's index too"
        );
    }

    /// A partitioned payments: `p2023` (101), `p2024` (102, partitioned:
    /// `p2024_eu` (103), `p2024_us` (104)), with `indexes` on them.
    fn partitioned(indexes: Vec<Index>) -> Table {
        let partition = |oid, name: &str, parent, leaf| Partition {
            oid,
            name: QualifiedName::new("public", name),
            parent,
            leaf,
        };
        Table {
            partition_indexes: indexes,
            ..payments(
                RelKind::Partitioned,
                vec![
                    partition(101, "p2023", TABLE, true),
                    partition(102, "p2024", TABLE, false),
                    partition(103, "p2024_eu", 102, true),
                    partition(104, "p2024_us", 102, true),
                ],
            )
        }
    }

    /// An index `name` of `keys` on partition `table`.
    fn on_partition(name: &str, table: u32, keys: &[&str], usable: bool) -> Index {
        Index {
            table,
            ..existing(name, shape(keys), usable)
        }
    }

    #[test]
    fn partitions_equivalent_indexes_are_attached_last_and_broken_ones_rebuilt() {
        let spec = Spec::parse(
            "[[index]]\nname = \"idx_at\"\ntable = \"payments\"\ncolumns = [\"created_at\"]\n",
            "test",
        )
        .unwrap();
        let table = partitioned(vec![
            on_partition("p2023_at", 101, &["created_at"], true),
            on_partition("p2024_eu_by_id", 103, &["id"], true),
            on_partition("p2024_us_at", 104, &["created_at"], false),
        ]);
        let plan = plan(&spec, &catalog_on(&spec, table, vec![]), true).unwrap();
        let planned = &plan.indexes[0];
        assert_eq!(
            sql_of(&planned.build),
            [
                r#"CREATE INDEX "idx_at" ON ONLY "public"."payments" ("created_at")"#,
                r#"CREATE INDEX "idx_at_2" ON ONLY "public"."p2024" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."idx_at_2""#,
                r#"CREATE INDEX CONCURRENTLY "idx_at_3" ON "public"."p2024_eu" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at_2" ATTACH PARTITION "public"."idx_at_3""#,
                r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."p2024_us_at""#,
                r#"CREATE INDEX CONCURRENTLY "p2024_us_at" ON "public"."p2024_us" ("created_at")"#,
                r#"ALTER INDEX "public"."idx_at_2" ATTACH PARTITION "public"."p2024_us_at""#,
                r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."p2023_at""#,
            ]
        );
        let adopts: Vec<Option<String>> = planned
            .build
            .iter()
            .map(|s| s.adopts.as_ref().map(QualifiedName::display))
            .collect();
        assert_eq!(
            adopts.iter().flatten().collect::<Vec<_>>(),
            ["public.p2023_at"]
        );
        assert_eq!(adopts.last().unwrap().as_deref(), Some("public.p2023_at"));
        assert_eq!(planned.parts.built(), 3);
    }

    #[test]
    fn an_invalid_partitioned_index_of_the_spec_is_completed_not_dropped() {
        let spec = Spec::parse(
            "[[index]]\nname = \"idx_at\"\ntable = \"payments\"\ncolumns = [\"created_at\"]\n",
            "test",
        )
        .unwrap();
        let mut parent = existing("idx_at", shape(&["created_at"]), false);
        parent.oid = 500;
        let mut kept = on_partition("p2023_at", 101, &["created_at"], true);
        kept.attached_to = Some(500);
        let table = partitioned(vec![
            kept,
            on_partition("p2024_at", 102, &["created_at"], true),
        ]);
        let plan = plan(&spec, &catalog_on(&spec, table, vec![parent]), true).unwrap();
        let planned = &plan.indexes[0];
        assert_eq!(planned.action, Action::Rebuild);
        assert_eq!(planned.drop, None);
        assert!(planned.parts.completing);
        assert_eq!(
            sql_of(&planned.build),
            [r#"ALTER INDEX "public"."idx_at" ATTACH PARTITION "public"."p2024_at""#]
        );
    }

    #[test]
    fn duplicate_redundant_and_invalid_indexes_are_found() {
        let spec = default_spec();
        let mut pkey = existing("payments_pkey", shape(&["id"]), true);
        pkey.backs_constraint = true;
        let catalog = catalog(
            &spec,
            vec![
                pkey,
                existing("old_broken", shape(&["amount"]), false),
                existing("by_id", shape(&["id"]), true),
            ],
        );
        let plan = plan(&spec, &catalog, true).unwrap();
        let sizes = [Some(100), Some(200), Some(300), Some(400)];
        let found = findings(&catalog, &plan, &sizes);
        let summary: Vec<(&str, &str, Option<i64>)> = found
            .iter()
            .map(|f| {
                let (index, size_bytes) = about(f);
                (f.code, index, size_bytes)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("duplicate-index", "by_id", Some(8192)),
                ("redundant-index", "idx_payments_user_id", Some(100)),
                ("invalid-index", "old_broken", Some(8192)),
            ]
        );
        assert_eq!(found[0].message, "the same index as payments_pkey (id)");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[1].message,
            "its key (user_id) is a leading prefix of idx_payments_user_status \
             (user_id, status), which serves the same lookups"
        );
        assert_eq!(found[1].severity, Severity::Info);
        assert!(
            found[2]
                .suggestion
                .contains(r#"DROP INDEX CONCURRENTLY "public"."old_broken""#)
        );
        assert_eq!(found[2].severity, Severity::Warning);
    }

    #[test]
    fn prefixes_are_not_redundant_when_they_differ_in_what_matters() {
        let spec = default_spec();
        let with = |shape: Shape| catalog(&spec, vec![existing("other", shape, true)]);
        let partial = Shape {
            predicate: Some("status = 'pending'::text".into()),
            ..shape(&["user_id", "status", "created_at"])
        };
        let unique_prefix = Shape {
            unique: true,
            ..shape(&["created_at"])
        };
        for catalog in [with(partial), with(unique_prefix)] {
            let plan = plan(&spec, &catalog, true).unwrap();
            let found = findings(&catalog, &plan, &[None; 4]);
            let indexes: Vec<&str> = found.iter().map(|f| about(f).0).collect();
            assert_eq!(indexes, ["idx_payments_user_id"], "{found:#?}");
            assert_eq!(about(&found[0]).1, None, "not built yet");
        }
    }
}
