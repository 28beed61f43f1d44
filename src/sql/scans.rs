//! What a statement asks of each table it reads, from its syntax tree: the
//! columns it compares with a value or joins on (equality), the columns it
//! bounds (range), and the columns it sorts by. Pure: no catalog, no server.
//!
//! Names are kept as written (normalized the way PostgreSQL folds them) and
//! resolved later against the catalog. Columns are attributed generously —
//! an unqualified column goes to every table in scope — because the catalog
//! drops the ones a table does not have, and the planner, with hypothetical
//! indexes, decides which candidates matter.
//!
//! CTEs and subqueries in FROM are inlined here: a predicate on one of their
//! output columns reaches the table column it passes through. Views are
//! inlined the same way by the caller, with [`Block::inline`], once the
//! catalog has given their definition.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Delete, Expr, FromTable, Ident, Join, JoinConstraint, JoinOperator, Merge,
    ObjectName, ObjectNamePart, OrderBy, OrderByKind, OrderBySort, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, TableWithJoins,
    Update, UpdateTableFromKind, Value, Visit, Visitor, visit_expressions_mut,
};

use crate::sql::ident::{fold, fold_name, ident};
use crate::sql::own_expressions;
use crate::sql::predicates::{Operand, Use, conjuncts, constraints};

/// A relation's name as written, each part folded as PostgreSQL folds it
/// (unquoted parts to lower case).
pub type RelationName = Vec<String>;

/// One scan of a relation: what the statement asks of its columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// The relation as written.
    pub relation: RelationName,
    /// Columns compared for equality with a value, another table's column
    /// (a join key), an `IN` list or `IS NULL`.
    pub equality: Vec<String>,
    /// Columns bounded by `<`, `<=`, `>`, `>=` or `BETWEEN`.
    pub range: Vec<String>,
    /// The `ORDER BY` columns, when all of them are this scan's.
    pub order: Vec<String>,
    /// For each of `order`, whether it sorts the other way than the first
    /// (`ORDER BY a, b DESC`: `[false, true]`): an index gives a mixed order
    /// only with those keys `DESC` (read forwards or backwards).
    pub order_reversed: Vec<bool>,
    /// Expressions of its columns compared with a value: what an
    /// expression index would serve.
    pub expressions: Vec<Compared>,
    /// Conjuncts of one column and a constant: what a partial index's
    /// predicate could be.
    pub conditions: Vec<Condition>,
    /// Columns matched with `LIKE` against a constant prefix (`'abc%'`):
    /// what a B-tree serves with a pattern operator class.
    pub prefixes: Vec<String>,
}

/// An expression of one scan's columns compared with a value
/// (`lower(email) = $1`, `(paid_at AT TIME ZONE 'UTC')::date = '2024-03-01'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The expression as SQL, its columns unqualified.
    pub expression: String,
    /// The columns it reads.
    pub columns: Vec<String>,
    /// How it is compared.
    pub kind: Use,
}

/// A conjunct of one column and a constant (`status = 'pending'`,
/// `refunded_at IS NULL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The column.
    pub column: String,
    /// The conjunct as SQL, the column unqualified.
    pub predicate: String,
    /// Whether it compares the column with a value (`= 'pending'`), rather
    /// than testing it for NULL.
    pub equals: bool,
}

impl Scan {
    fn new(relation: RelationName) -> Scan {
        Scan {
            relation,
            ..Scan::default()
        }
    }

    fn compared(&mut self, compared: Compared) {
        if !self.expressions.contains(&compared) {
            self.expressions.push(compared);
        }
    }

    fn condition(&mut self, condition: Condition) {
        if !self.conditions.contains(&condition) {
            self.conditions.push(condition);
        }
    }

    fn add(&mut self, column: &str, kind: Use) {
        let list = match kind {
            Use::Equality => &mut self.equality,
            Use::Range => &mut self.range,
        };
        if !list.iter().any(|c| c == column) {
            list.push(column.to_owned());
        }
    }
}

/// A column of one of a block's scans: the scan's index and the column.
type Source = (usize, String);

/// A query block (a SELECT, a set operation, a CTE or view body): its scans
/// and what its output columns pass through.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Every scan of a base relation (or a view, for the caller to inline).
    pub scans: Vec<Scan>,
    outputs: Vec<Output>,
}

/// An output column of a block.
#[derive(Debug, Clone)]
enum Output {
    /// A named output and the scan columns it passes through unchanged
    /// (none for a computed value).
    Named { name: String, sources: Vec<Source> },
    /// `*` or `t.*`: every column of this scan, under its own name.
    AllOf(usize),
}

impl Block {
    /// The scans a scan of this block (a view) amounts to: this block's own
    /// scans, with the outer scan's predicates and order carried through the
    /// output columns to the table columns they come from.
    pub fn inline(&self, outer: &Scan) -> Vec<Scan> {
        let mut scans = self.scans.clone();
        for (columns, kind) in [(&outer.equality, Use::Equality), (&outer.range, Use::Range)] {
            for column in columns {
                for (scan, inner) in self.output_sources(column) {
                    scans[scan].add(&inner, kind);
                }
            }
        }
        let keys: Vec<(Vec<Source>, bool)> = outer
            .order
            .iter()
            .zip(&outer.order_reversed)
            .map(|(column, reversed)| (self.output_sources(column), *reversed))
            .collect();
        apply_order(&mut scans, &keys);
        scans
    }

    /// The scan columns output `name` passes through.
    fn output_sources(&self, name: &str) -> Vec<Source> {
        let mut sources = Vec::new();
        for output in &self.outputs {
            match output {
                Output::Named {
                    name: n,
                    sources: s,
                } if n == name => {
                    sources.extend(s.iter().cloned());
                }
                Output::AllOf(scan) => sources.push((*scan, name.to_owned())),
                Output::Named { .. } => {}
            }
        }
        sources
    }

    /// Appends `other`'s scans; returns its outputs renumbered to match.
    fn absorb(&mut self, other: Block) -> Vec<Output> {
        let shift = self.scans.len();
        self.scans.extend(other.scans);
        other
            .outputs
            .into_iter()
            .map(|output| match output {
                Output::Named { name, sources } => Output::Named {
                    name,
                    sources: sources.into_iter().map(|(s, c)| (s + shift, c)).collect(),
                },
                Output::AllOf(scan) => Output::AllOf(scan + shift),
            })
            .collect()
    }
}

/// The scans of one statement, CTEs and subqueries inlined. Statements that
/// read no table (and those that are not queries or DML) have none.
pub fn statement_scans(statement: &Statement) -> Vec<Scan> {
    statement_block(statement, &Ctes::default()).scans
}

/// The block of a view's definition (`pg_get_viewdef`), for
/// [`Block::inline`]; `None` when the definition is not a query.
pub fn view_block(definition: &Statement) -> Option<Block> {
    match definition {
        Statement::Query(query) => Some(query_block(query, &Ctes::default())),
        _ => None,
    }
}

/// The CTEs visible at a point of the query, innermost last.
#[derive(Debug, Clone, Default)]
struct Ctes(Vec<(String, Block)>);

impl Ctes {
    fn get(&self, name: &str) -> Option<&Block> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, b)| b)
    }
}

fn statement_block(statement: &Statement, ctes: &Ctes) -> Block {
    match statement {
        Statement::Query(query) => query_block(query, ctes),
        Statement::Insert(insert) => insert
            .source
            .as_ref()
            .map(|source| query_block(source, ctes))
            .unwrap_or_default(),
        Statement::Update(update) => update_block(update, ctes),
        Statement::Delete(delete) => delete_block(delete, ctes),
        Statement::Merge(merge) => merge_block(merge, ctes),
        _ => Block::default(),
    }
}

fn query_block(query: &Query, outer: &Ctes) -> Block {
    let mut ctes = outer.clone();
    let mut definitions = Block::default();
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            let name = fold(&cte.alias.name);
            if with.recursive {
                // The recursive part reads the CTE itself: not a table.
                ctes.0.push((name.clone(), Block::default()));
            }
            let mut block = query_block(&cte.query, &ctes);
            rename_outputs(
                &mut block.outputs,
                cte.alias.columns.iter().map(|c| &c.name),
            );
            // The CTE's own scans count once even if it is never read (a
            // data-modifying CTE runs regardless); each reference below adds
            // a copy carrying the outer predicates.
            definitions.absorb(Block {
                scans: block.scans.clone(),
                outputs: Vec::new(),
            });
            ctes.0.push((name, block));
        }
    }
    let mut block = match query.body.as_ref() {
        SetExpr::Select(select) => select_block(select, query.order_by.as_ref(), &ctes),
        body => {
            let mut block = set_expr_block(body, &ctes);
            if let Some(order_by) = &query.order_by {
                let keys = order_keys(order_by, |expr| match expr {
                    Expr::Identifier(ident) => block.output_sources(&fold(ident)),
                    _ => Vec::new(),
                });
                if let Some(keys) = keys {
                    apply_order(&mut block.scans, &keys);
                }
            }
            block
        }
    };
    let outputs = std::mem::take(&mut block.outputs);
    block.absorb(definitions);
    block.outputs = outputs;
    block
}

fn set_expr_block(body: &SetExpr, ctes: &Ctes) -> Block {
    match body {
        SetExpr::Select(select) => select_block(select, None, ctes),
        SetExpr::Query(query) => query_block(query, ctes),
        SetExpr::SetOperation { left, right, .. } => {
            let mut block = set_expr_block(left, ctes);
            let right = set_expr_block(right, ctes);
            let positional = block.outputs.len() == right.outputs.len()
                && block
                    .outputs
                    .iter()
                    .chain(&right.outputs)
                    .all(|o| matches!(o, Output::Named { .. }));
            let right_outputs = block.absorb(right);
            if positional {
                for (left, right) in block.outputs.iter_mut().zip(right_outputs) {
                    if let (
                        Output::Named { sources, .. },
                        Output::Named {
                            sources: right_sources,
                            ..
                        },
                    ) = (left, right)
                    {
                        sources.extend(right_sources);
                    }
                }
            }
            block
        }
        SetExpr::Values(values) => {
            let mut block = Block::default();
            for expr in values.rows.iter().flat_map(|row| &row.content) {
                for query in subqueries(expr) {
                    block.absorb(query_block(&query, ctes));
                }
            }
            block
        }
        SetExpr::Insert(statement)
        | SetExpr::Update(statement)
        | SetExpr::Delete(statement)
        | SetExpr::Merge(statement) => {
            let mut block = statement_block(statement, ctes);
            block.outputs.clear();
            block
        }
        SetExpr::Table(table) => match &table.table_name {
            Some(name) => {
                let mut builder = Builder::new(ctes);
                let mut relation: RelationName = Vec::new();
                if let Some(schema) = &table.schema_name {
                    relation.push(fold(schema));
                }
                relation.push(fold(name));
                let scan = builder.block.scans.len();
                builder.block.scans.push(Scan::new(relation));
                builder.block.outputs.push(Output::AllOf(scan));
                builder.block
            }
            None => Block::default(),
        },
    }
}

fn select_block(select: &Select, order_by: Option<&OrderBy>, ctes: &Ctes) -> Block {
    let mut builder = Builder::new(ctes);
    for table in &select.from {
        builder.table_with_joins(table);
    }
    if let Some(selection) = &select.selection {
        builder.predicate(selection);
    }
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                builder.subqueries_of(expr);
            }
            _ => {}
        }
    }
    if let Some(having) = &select.having {
        builder.subqueries_of(having);
    }
    builder.outputs(&select.projection);
    if let Some(order_by) = order_by {
        builder.order(order_by);
    }
    builder.block
}

fn update_block(update: &Update, ctes: &Ctes) -> Block {
    let mut builder = Builder::new(ctes);
    builder.table_with_joins(&update.table);
    if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
        &update.from
    {
        for table in from {
            builder.table_with_joins(table);
        }
    }
    if let Some(selection) = &update.selection {
        builder.predicate(selection);
    }
    for assignment in &update.assignments {
        builder.subqueries_of(&assignment.value);
    }
    builder.block
}

fn delete_block(delete: &Delete, ctes: &Ctes) -> Block {
    let mut builder = Builder::new(ctes);
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    for table in from.iter().chain(delete.using.iter().flatten()) {
        builder.table_with_joins(table);
    }
    if let Some(selection) = &delete.selection {
        builder.predicate(selection);
    }
    builder.block
}

fn merge_block(merge: &Merge, ctes: &Ctes) -> Block {
    let mut builder = Builder::new(ctes);
    builder.factor(&merge.table);
    builder.factor(&merge.source);
    builder.predicate(&merge.on);
    builder.block
}

/// A name in a block's FROM list and what it stands for.
struct Binding {
    name: Option<String>,
    target: Target,
}

enum Target {
    /// A scan of a relation (by index in the block).
    Scan(usize),
    /// An inlined subquery or CTE: its outputs.
    Derived(Vec<Output>),
    /// A function or anything else whose columns come from no table.
    Opaque,
}

/// Builds one block: binds the FROM list, then reads predicates, outputs
/// and order against those bindings.
struct Builder<'a> {
    ctes: &'a Ctes,
    block: Block,
    bindings: Vec<Binding>,
    /// `IN (subquery)` queries already read as semi-joins.
    semi_joins: Vec<Query>,
}

impl<'a> Builder<'a> {
    fn new(ctes: &'a Ctes) -> Builder<'a> {
        Builder {
            ctes,
            block: Block::default(),
            bindings: Vec::new(),
            semi_joins: Vec::new(),
        }
    }

    fn table_with_joins(&mut self, table: &TableWithJoins) {
        self.factor(&table.relation);
        for join in &table.joins {
            self.join(join);
        }
    }

    fn join(&mut self, join: &Join) {
        self.factor(&join.relation);
        match join_constraint(&join.join_operator) {
            Some(JoinConstraint::On(expr)) => self.predicate(expr),
            Some(JoinConstraint::Using(columns) | JoinConstraint::UsingAlias(columns, _)) => {
                for column in columns {
                    if let Some(ObjectNamePart::Identifier(ident)) = column.0.last() {
                        for (scan, name) in self.resolve(None, &fold(ident)) {
                            self.block.scans[scan].add(&name, Use::Equality);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() => {
                let relation = relation_name(name);
                let binding_name = alias
                    .as_ref()
                    .map(|a| fold(&a.name))
                    .or_else(|| relation.last().cloned());
                let cte = match relation.as_slice() {
                    [single] => self.ctes.get(single),
                    _ => None,
                };
                let target = match cte {
                    Some(cte) => {
                        let mut outputs = self.block.absorb(cte.clone());
                        rename_outputs(&mut outputs, alias_columns(alias));
                        Target::Derived(outputs)
                    }
                    None => {
                        self.block.scans.push(Scan::new(relation));
                        Target::Scan(self.block.scans.len() - 1)
                    }
                };
                self.bindings.push(Binding {
                    name: binding_name,
                    target,
                });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut outputs = self.block.absorb(query_block(subquery, self.ctes));
                rename_outputs(&mut outputs, alias_columns(alias));
                self.bindings.push(Binding {
                    name: alias.as_ref().map(|a| fold(&a.name)),
                    target: Target::Derived(outputs),
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins),
            other => {
                let alias = match other {
                    TableFactor::Table { alias, .. }
                    | TableFactor::Function { alias, .. }
                    | TableFactor::TableFunction { alias, .. }
                    | TableFactor::UNNEST { alias, .. } => alias.as_ref(),
                    _ => None,
                };
                self.bindings.push(Binding {
                    name: alias.map(|a| fold(&a.name)),
                    target: Target::Opaque,
                });
            }
        }
    }

    /// Reads one WHERE / ON condition: its conjuncts, and every subquery in it.
    fn predicate(&mut self, expr: &Expr) {
        self.conjunct(expr);
        self.subqueries_of(expr);
    }

    /// Records the columns each conjunct of `expr` constrains: compared
    /// with a value, or for equality with another column (a join key: an
    /// index on either side lets a nested loop look rows up by the other
    /// side's value), or with `IN (subquery)`, a semi-join.
    fn conjunct(&mut self, expr: &Expr) {
        self.expressions_and_conditions(expr);
        for constraint in constraints(expr, |e| self.column(e)) {
            let kind = constraint.kind;
            match constraint.with.as_slice() {
                [Operand::Subquery(query)] => {
                    // A semi-join: both its keys are join keys.
                    self.add(&constraint.column, kind);
                    self.semi_join(query);
                }
                [Operand::Column(_)] if kind == Use::Equality => {
                    self.add(&constraint.column, kind);
                }
                with if with
                    .iter()
                    .all(|o| matches!(o, Operand::Other(e) if self.is_value(e))) =>
                {
                    self.add(&constraint.column, kind);
                }
                _ => {}
            }
        }
    }

    /// Reads `IN (query)`: its scans, the first output's columns as join keys.
    fn semi_join(&mut self, query: &Query) {
        self.semi_joins.push(query.clone());
        let inner = query_block(query, self.ctes);
        let first = inner.outputs.first().cloned();
        let shift = self.block.scans.len();
        self.block.absorb(inner);
        if let Some(Output::Named { sources, .. }) = first {
            for (scan, column) in sources {
                self.block.scans[scan + shift].add(&column, Use::Equality);
            }
        }
    }

    /// Records the expressions of one scan's columns that `expr`'s
    /// conjuncts compare with values, and its conjuncts of one column and a
    /// constant.
    fn expressions_and_conditions(&mut self, expr: &Expr) {
        for constraint in constraints(expr, |e| self.expression(e)) {
            let with_values = constraint
                .with
                .iter()
                .all(|o| matches!(o, Operand::Other(e) if self.is_value(e)));
            if with_values {
                for (scan, expression, columns) in constraint.column {
                    self.block.scans[scan].compared(Compared {
                        expression,
                        columns,
                        kind: constraint.kind,
                    });
                }
            }
        }
        for term in conjuncts(expr) {
            if let Some(column) = prefix_match(term) {
                for (scan, name) in self.column(column).unwrap_or_default() {
                    let prefixes = &mut self.block.scans[scan].prefixes;
                    if !prefixes.contains(&name) {
                        prefixes.push(name);
                    }
                }
            }
            if let Some((column, equals, predicate)) = column_and_constant(term) {
                for (scan, name) in self.column(column).unwrap_or_default() {
                    let predicate = predicate(&ident(&name));
                    self.block.scans[scan].condition(Condition {
                        column: name,
                        predicate,
                        equals,
                    });
                }
            }
        }
    }

    /// `expr` as an expression of one scan's columns, for each scan it can
    /// be (an unqualified column is every table's that has it), with its
    /// text and columns: none for a plain column, a value, or anything
    /// holding a subquery or a parameter, which no index key can be.
    fn expression(&self, expr: &Expr) -> Option<Vec<(usize, String, Vec<String>)>> {
        if self.column(expr).is_some() || !subqueries(expr).is_empty() {
            return None;
        }
        let mut references: Vec<Vec<Source>> = Vec::new();
        let read = own_expressions(expr, |e| match e {
            Expr::Value(value) if matches!(value.value, Value::Placeholder(_)) => {
                ControlFlow::Break(())
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => match self.column(e) {
                Some(sources) => {
                    references.push(sources);
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Break(()),
            },
            _ => ControlFlow::Continue(()),
        });
        if read.is_break() || references.is_empty() {
            return None;
        }
        let scans = references[0].iter().map(|(scan, _)| *scan).filter(|scan| {
            references
                .iter()
                .all(|sources| sources.iter().any(|(s, _)| s == scan))
        });
        let found: Vec<(usize, String, Vec<String>)> = scans
            .map(|scan| {
                let mut columns: Vec<String> = Vec::new();
                let mut text = expr.clone();
                let _ = visit_expressions_mut(&mut text, |e| {
                    if let Some(sources) = self.column(e)
                        && let Some((_, name)) = sources.iter().find(|(s, _)| *s == scan)
                    {
                        if !columns.contains(name) {
                            columns.push(name.clone());
                        }
                        *e = Expr::Identifier(Ident::new(ident(name)));
                    }
                    ControlFlow::<()>::Continue(())
                });
                (scan, text.to_string(), columns)
            })
            .collect();
        (!found.is_empty()).then_some(found)
    }

    fn add(&mut self, columns: &[Source], kind: Use) {
        for (scan, column) in columns {
            self.block.scans[*scan].add(column, kind);
        }
    }

    /// Appends the scans of every subquery directly inside `expr` (each is a
    /// block of its own; references to this block's tables are values there).
    fn subqueries_of(&mut self, expr: &Expr) {
        for query in subqueries(expr) {
            if !self.semi_joins.contains(&query) {
                self.block.absorb(query_block(&query, self.ctes));
            }
        }
    }

    /// The scan columns `expr` is, when it is a plain column reference of
    /// this block.
    fn column(&self, expr: &Expr) -> Option<Vec<Source>> {
        let sources = match expr {
            Expr::Nested(inner) => return self.column(inner),
            Expr::Identifier(ident) => self.resolve(None, &fold(ident)),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let qualifier = fold(&parts[parts.len() - 2]);
                self.resolve(Some(&qualifier), &fold(&parts[parts.len() - 1]))
            }
            _ => return None,
        };
        (!sources.is_empty()).then_some(sources)
    }

    /// Whether `expr` holds no column of this block: a literal, a
    /// parameter, a function of those, or an outer query's column.
    fn is_value(&self, expr: &Expr) -> bool {
        let column = |expr: &Expr| {
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && self.column(expr).is_some()
            {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        own_expressions(expr, column).is_continue()
    }

    /// The scan columns `qualifier.name` (or plain `name`) can mean here.
    fn resolve(&self, qualifier: Option<&str>, name: &str) -> Vec<Source> {
        let mut sources = Vec::new();
        for binding in &self.bindings {
            if qualifier.is_some() && binding.name.as_deref() != qualifier {
                continue;
            }
            match &binding.target {
                Target::Scan(scan) => sources.push((*scan, name.to_owned())),
                Target::Derived(outputs) => {
                    let view = Block {
                        scans: Vec::new(),
                        outputs: outputs.clone(),
                    };
                    sources.extend(view.output_sources(name));
                }
                Target::Opaque => {}
            }
        }
        sources
    }

    fn outputs(&mut self, projection: &[SelectItem]) {
        for item in projection {
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    let name = match expr {
                        Expr::Identifier(ident) => fold(ident),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().map(fold).unwrap_or_default()
                        }
                        _ => "?column?".to_owned(),
                    };
                    let sources = self.column(expr).unwrap_or_default();
                    self.block.outputs.push(Output::Named { name, sources });
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let sources = self.column(expr).unwrap_or_default();
                    self.block.outputs.push(Output::Named {
                        name: fold(alias),
                        sources,
                    });
                }
                SelectItem::ExprWithAliases { .. } => {}
                SelectItem::Wildcard(_) => {
                    let all = self.all_columns(None);
                    self.block.outputs.extend(all);
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    if let SelectItemQualifiedWildcardKind::ObjectName(name) = kind
                        && let Some(qualifier) = relation_name(name).last()
                    {
                        let all = self.all_columns(Some(qualifier));
                        self.block.outputs.extend(all);
                    }
                }
            }
        }
    }

    /// What `*` (or `qualifier.*`) expands to.
    fn all_columns(&self, qualifier: Option<&str>) -> Vec<Output> {
        let mut outputs = Vec::new();
        for binding in &self.bindings {
            if qualifier.is_some() && binding.name.as_deref() != qualifier {
                continue;
            }
            match &binding.target {
                Target::Scan(scan) => outputs.push(Output::AllOf(*scan)),
                Target::Derived(derived) => outputs.extend(derived.iter().cloned()),
                Target::Opaque => {}
            }
        }
        outputs
    }

    /// Reads ORDER BY: output names and positions first (as PostgreSQL
    /// does), then columns of the FROM list.
    fn order(&mut self, order_by: &OrderBy) {
        let keys = order_keys(order_by, |expr| {
            let by_output = match expr {
                Expr::Identifier(ident) => self.block.output_sources(&fold(ident)),
                Expr::Value(value) => match &value.value {
                    Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| self.block.outputs.get(i))
                        .map(|output| match output {
                            Output::Named { sources, .. } => sources.clone(),
                            Output::AllOf(_) => Vec::new(),
                        })
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            if by_output.is_empty() {
                self.column(expr).unwrap_or_default()
            } else {
                by_output
            }
        });
        if let Some(keys) = keys {
            apply_order(&mut self.block.scans, &keys);
        }
    }
}

/// The sources of each ORDER BY key, each with whether it sorts the other
/// way than the first; `None` when a key sorts with an operator (`USING`)
/// or places NULLs otherwise than its direction's default (no index this
/// advice writes serves those).
fn order_keys(
    order_by: &OrderBy,
    mut sources: impl FnMut(&Expr) -> Vec<Source>,
) -> Option<Vec<(Vec<Source>, bool)>> {
    let OrderByKind::Expressions(exprs) = &order_by.kind else {
        return None;
    };
    let descending = |e: &sqlparser::ast::OrderByExpr| {
        let descending = match &e.options.sort {
            None | Some(OrderBySort::Asc) => false,
            Some(OrderBySort::Desc) => true,
            Some(OrderBySort::Using(_)) => return None,
        };
        // NULLS LAST is ASC's default, NULLS FIRST DESC's.
        match e.options.nulls_first {
            Some(first) if first != descending => None,
            _ => Some(descending),
        }
    };
    let first = descending(exprs.first()?)?;
    exprs
        .iter()
        .map(|e| Some((sources(&e.expr), descending(e)? != first)))
        .collect()
}

/// Records the sort on the one scan every key comes from.
fn apply_order(scans: &mut [Scan], keys: &[(Vec<Source>, bool)]) {
    let Some((first, _)) = keys.first() else {
        return;
    };
    for (scan, _) in first {
        let columns: Option<Vec<String>> = keys
            .iter()
            .map(|(key, _)| key.iter().find(|(s, _)| s == scan).map(|(_, c)| c.clone()))
            .collect();
        if let Some(columns) = columns
            && scans[*scan].order.is_empty()
        {
            scans[*scan].order = columns;
            scans[*scan].order_reversed = keys.iter().map(|(_, reversed)| *reversed).collect();
        }
    }
}

/// The column `term` matches with `LIKE` against a constant pattern with a
/// fixed prefix (`name LIKE 'abc%'`): a range of a B-tree's keys under a
/// pattern operator class (`text_pattern_ops`), whatever the collation.
fn prefix_match(term: &Expr) -> Option<&Expr> {
    let Expr::Like {
        negated: false,
        any: false,
        expr,
        pattern,
        escape_char: None,
    } = term
    else {
        return None;
    };
    let Expr::Value(value) = &**pattern else {
        return None;
    };
    let Value::SingleQuotedString(text) = &value.value else {
        return None;
    };
    let fixed = text
        .chars()
        .next()
        .is_some_and(|c| !matches!(c, '%' | '_' | '\\'));
    fixed.then_some(&**expr)
}

/// A conjunct of a column and a constant: the column, whether it is an
/// equality, and the conjunct written over a given name for it
/// (`status = 'pending'`, `refunded_at IS NULL`, `refunded_at IS NOT
/// NULL`), as a partial index's predicate would say it. A parameter is no
/// constant: a predicate is fixed when the index is built.
type ColumnAndConstant<'a> = (&'a Expr, bool, Box<dyn Fn(&str) -> String>);

fn column_and_constant(term: &Expr) -> Option<ColumnAndConstant<'_>> {
    let constant = |e: &Expr| match e {
        Expr::Value(value) => !matches!(value.value, Value::Placeholder(_)),
        Expr::Cast { expr, .. } => matches!(&**expr, Expr::Value(v)
            if !matches!(v.value, Value::Placeholder(_))),
        _ => false,
    };
    match term {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (column, value) = if constant(right) {
                (left, right)
            } else if constant(left) {
                (right, left)
            } else {
                return None;
            };
            let value = value.to_string();
            Some((
                column,
                true,
                Box::new(move |name| format!("{name} = {value}")),
            ))
        }
        Expr::IsNull(column) => Some((column, false, Box::new(|name| format!("{name} IS NULL")))),
        Expr::IsNotNull(column) => Some((
            column,
            false,
            Box::new(|name| format!("{name} IS NOT NULL")),
        )),
        _ => None,
    }
}

/// The subqueries directly inside `expr` (not those nested in them).
fn subqueries(expr: &Expr) -> Vec<Query> {
    struct Collector {
        depth: usize,
        found: Vec<Query>,
    }
    impl Visitor for Collector {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if self.depth == 0 {
                self.found.push(query.clone());
            }
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut collector = Collector {
        depth: 0,
        found: Vec::new(),
    };
    let _ = expr.visit(&mut collector);
    collector.found
}

/// Renames outputs positionally, for `AS alias(a, b)` and `WITH c(a, b)`.
fn rename_outputs<'i>(outputs: &mut [Output], names: impl Iterator<Item = &'i Ident>) {
    if outputs.iter().any(|o| matches!(o, Output::AllOf(_))) {
        return; // positions are unknown without the catalog
    }
    for (output, name) in outputs.iter_mut().zip(names) {
        if let Output::Named { name: old, .. } = output {
            *old = fold(name);
        }
    }
}

fn alias_columns(alias: &Option<TableAlias>) -> impl Iterator<Item = &Ident> {
    alias.iter().flat_map(|a| a.columns.iter().map(|c| &c.name))
}

fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// A relation's name, folded. A name built by a function (other dialects'
/// `IDENTIFIER(...)`, which PostgreSQL has not) is kept whole as written,
/// and so names no relation of the catalog.
fn relation_name(name: &ObjectName) -> RelationName {
    fold_name(name).unwrap_or_else(|| vec![name.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;

    fn statement(sql: &str) -> Statement {
        parse_statements(sql).unwrap().remove(0).ast
    }

    /// The scans of `sql`, their columns only (the expressions and
    /// conditions have tests of their own).
    fn scans(sql: &str) -> Vec<Scan> {
        statement_scans(&statement(sql))
            .into_iter()
            .map(|scan| Scan {
                expressions: Vec::new(),
                conditions: Vec::new(),
                ..scan
            })
            .collect()
    }

    fn scan(relation: &str, equality: &[&str], range: &[&str], order: &[&str]) -> Scan {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Scan {
            relation: relation.split('.').map(str::to_owned).collect(),
            equality: strings(equality),
            range: strings(range),
            order: strings(order),
            order_reversed: vec![false; order.len()],
            ..Scan::default()
        }
    }

    /// The expressions and the conditions of each scan of `sql`.
    fn shapes(sql: &str) -> Vec<(Vec<String>, Vec<String>)> {
        statement_scans(&statement(sql))
            .into_iter()
            .map(|scan| {
                let expressions = scan
                    .expressions
                    .iter()
                    .map(|e| format!("{} {:?} {:?}", e.expression, e.kind, e.columns))
                    .collect();
                let conditions = scan
                    .conditions
                    .iter()
                    .map(|c| format!("{}: {}", c.column, c.predicate))
                    .collect();
                (expressions, conditions)
            })
            .collect()
    }

    #[test]
    fn expressions_of_one_tables_columns_compared_with_values() {
        let found = shapes(
            "SELECT * FROM store.customer c JOIN store.rental r USING (customer_id) \
             WHERE lower(c.email) = $1 AND (r.rented_at AT TIME ZONE 'UTC')::date = '2024-03-01' \
             AND date_trunc('month', rented_at) >= now() - interval '1 year' \
             AND lower(c.last_name) = lower(r.note) AND abs(c.balance - $2) < 1 \
             AND upper(c.first_name) IN (SELECT 'A')",
        );
        // An unqualified column may be either table's: the catalog tells.
        assert_eq!(
            found[0].0,
            [
                "lower(email) Equality [\"email\"]",
                "date_trunc('month', rented_at) Range [\"rented_at\"]"
            ],
            "a join of two tables' expressions, a parameter inside, a subquery: none"
        );
        assert_eq!(
            found[1].0,
            [
                "(rented_at AT TIME ZONE 'UTC')::DATE Equality [\"rented_at\"]",
                "date_trunc('month', rented_at) Range [\"rented_at\"]"
            ]
        );
    }

    #[test]
    fn a_like_with_a_fixed_prefix_is_a_range_of_a_pattern_index() {
        let found = statement_scans(&statement(
            "SELECT * FROM customer c WHERE c.last_name LIKE 'Smi%' AND email LIKE '%@x.org' \
             AND first_name NOT LIKE 'A%' AND note LIKE $1",
        ));
        assert_eq!(found[0].prefixes, ["last_name"]);
    }

    #[test]
    fn conjuncts_of_a_column_and_a_constant_can_be_predicates() {
        let found = shapes(
            "SELECT * FROM payments p WHERE p.status = 'pending' AND refunded_at IS NULL \
             AND \"Note\" IS NOT NULL AND user_id = $1 AND 42 = kind AND amount > 5 \
             AND (currency = 'EUR' OR currency = 'USD')",
        );
        assert_eq!(
            found[0].1,
            [
                "status: status = 'pending'",
                "refunded_at: refunded_at IS NULL",
                "Note: \"Note\" IS NOT NULL",
                "kind: kind = 42"
            ]
        );
    }

    #[test]
    fn equality_range_and_order_of_one_table() {
        assert_eq!(
            scans(
                "SELECT * FROM payments WHERE user_id = $1 AND status = 'failed' \
                 AND created_at >= now() - interval '1 day' ORDER BY created_at DESC LIMIT 10"
            ),
            [scan(
                "payments",
                &["user_id", "status"],
                &["created_at"],
                &["created_at"]
            )]
        );
        assert_eq!(
            scans(
                "SELECT id FROM payments p WHERE $1 = p.user_id AND amount BETWEEN 1 AND 2 \
                 AND currency IN ('EUR', 'USD') AND method = ANY($2) AND description IS NULL"
            ),
            [scan(
                "payments",
                &["user_id", "currency", "method", "description"],
                &["amount"],
                &[]
            )]
        );
    }

    #[test]
    fn text_casts_of_a_column_are_looked_through_and_others_not() {
        // A cast to another type is a function of the column, which an
        // index on the column serves only when the cast is a no-op: that
        // takes the column's type to know, so it names no column.
        assert_eq!(
            scans(
                "SELECT * FROM payments WHERE status::text = 'failed' AND (user_id)::bigint < $1 \
                 AND created_at::date = '2024-03-01'"
            ),
            [scan("payments", &["status"], &[], &[])]
        );
    }

    #[test]
    fn predicates_that_no_plain_index_serves_are_left_out() {
        assert_eq!(
            scans(
                "SELECT * FROM payments WHERE (user_id = 1 OR status = 'x') \
                 AND lower(currency) = 'eur' AND amount <> 3 AND user_id NOT IN (1, 2) \
                 AND amount > amount * 2 ORDER BY user_id USING <, created_at DESC"
            ),
            [scan("payments", &[], &[], &[])]
        );
    }

    #[test]
    fn a_mixed_order_is_kept_with_the_keys_that_reverse_it() {
        let mixed = scans("SELECT * FROM payments ORDER BY user_id DESC, created_at, id DESC");
        assert_eq!(mixed[0].order, ["user_id", "created_at", "id"]);
        assert_eq!(mixed[0].order_reversed, [false, true, false]);
        // NULLs placed against their direction's default: no index here.
        let nulls = scans("SELECT * FROM payments ORDER BY user_id NULLS FIRST, created_at");
        assert!(nulls[0].order.is_empty(), "{nulls:?}");
    }

    #[test]
    fn joins_give_keys_on_both_sides_and_quoted_names_keep_their_case() {
        assert_eq!(
            scans(
                "SELECT * FROM \"Sales\".\"Orders\" o JOIN public.users u ON u.id = o.\"UserId\" \
                 LEFT JOIN payments USING (user_id) WHERE u.country = 'NL'"
            ),
            [
                scan("Sales.Orders", &["UserId", "user_id"], &[], &[]),
                scan("public.users", &["id", "user_id", "country"], &[], &[]),
                scan("payments", &["user_id"], &[], &[]),
            ]
        );
    }

    #[test]
    fn ctes_and_derived_tables_carry_outer_predicates_to_their_tables() {
        let found = scans(
            "WITH recent AS MATERIALIZED (SELECT user_id AS uid, created_at FROM payments \
             WHERE status = 'failed') \
             SELECT * FROM recent r, (SELECT * FROM users) u \
             WHERE r.uid = $1 AND u.country = 'NL' ORDER BY r.created_at LIMIT 5",
        );
        assert_eq!(
            found,
            [
                scan("payments", &["status", "user_id"], &[], &["created_at"]),
                scan("users", &["country"], &[], &[]),
                // The CTE's definition, counted once on its own.
                scan("payments", &["status"], &[], &[]),
            ]
        );
    }

    #[test]
    fn recursive_ctes_do_not_read_themselves_as_tables() {
        let found = scans(
            "WITH RECURSIVE chain AS (SELECT id FROM users WHERE id = 1 \
             UNION ALL SELECT u.id FROM users u JOIN chain c ON u.id = c.id + 1) \
             SELECT * FROM chain",
        );
        assert!(found.iter().all(|s| s.relation == ["users"]), "{found:?}");
    }

    #[test]
    fn subqueries_are_scanned_with_outer_references_as_values() {
        assert_eq!(
            scans(
                "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM payments p \
                 WHERE p.user_id = u.id AND p.status = 'failed') \
                 AND u.id IN (SELECT user_id FROM payments WHERE amount > 100)"
            ),
            [
                scan("users", &["id"], &[], &[]),
                scan("payments", &["user_id"], &["amount"], &[]),
                scan("payments", &["user_id", "status"], &[], &[]),
            ]
        );
    }

    #[test]
    fn update_delete_merge_and_insert_select() {
        assert_eq!(
            scans("UPDATE payments SET status = 'failed' WHERE external_ref = $1"),
            [scan("payments", &["external_ref"], &[], &[])]
        );
        assert_eq!(
            scans("DELETE FROM payments p USING users u WHERE p.user_id = u.id AND u.country = $1"),
            [
                scan("payments", &["user_id"], &[], &[]),
                scan("users", &["id", "country"], &[], &[])
            ]
        );
        assert_eq!(
            scans(
                "MERGE INTO users t USING payments s ON t.id = s.user_id WHEN MATCHED THEN DELETE"
            ),
            [
                scan("users", &["id"], &[], &[]),
                scan("payments", &["user_id"], &[], &[])
            ]
        );
        assert_eq!(
            scans("INSERT INTO archive SELECT * FROM payments WHERE created_at < $1"),
            [scan("payments", &[], &["created_at"], &[])]
        );
        assert!(scans("INSERT INTO t VALUES (1)").is_empty());
        assert!(scans("SELECT 1").is_empty());
        assert!(scans("SELECT * FROM generate_series(1, 3) g WHERE g = 1").is_empty());
    }

    #[test]
    fn order_by_output_names_and_positions() {
        assert_eq!(
            scans("SELECT created_at AS at FROM payments ORDER BY at LIMIT 1"),
            [scan("payments", &[], &[], &["created_at"])]
        );
        assert_eq!(
            scans("SELECT user_id, created_at FROM payments ORDER BY 1, 2 LIMIT 1"),
            [scan("payments", &[], &[], &["user_id", "created_at"])]
        );
    }

    #[test]
    fn views_inline_outer_predicates_through_their_outputs() {
        let definition = statement(
            "SELECT p.id, p.user_id AS customer, p.created_at FROM payments p \
             WHERE p.status = 'pending'",
        );
        let view = view_block(&definition).unwrap();
        let outer = scan("pending", &["customer", "id"], &[], &["created_at"]);
        // The view's own WHERE is the statement's too.
        let mut expected = scan(
            "payments",
            &["status", "user_id", "id"],
            &[],
            &["created_at"],
        );
        expected.conditions = vec![Condition {
            column: "status".into(),
            predicate: "status = 'pending'".into(),
            equals: true,
        }];
        assert_eq!(view.inline(&outer), [expected]);
        let star = view_block(&statement("SELECT * FROM users")).unwrap();
        assert_eq!(
            star.inline(&scan("v", &["country"], &[], &[])),
            [scan("users", &["country"], &[], &[])]
        );
    }
}
