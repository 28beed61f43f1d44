//! What a query says about its own columns: the names of its result
//! columns, the relations of its FROM clause and which of them has a given
//! column, and whether it aggregates.
//!
//! Everything here walks the syntax tree with sqlparser's visitor (which
//! guards its own recursion) or with loops, never with unbounded recursion:
//! an expression may chain thousands of operators.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::ptr;

use sqlparser::ast::{
    AccessExpr, Cte, Distinct, DuplicateTreatment, Expr, Function, FunctionArg,
    FunctionArgumentClause, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart,
    Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableAliasColumnDef,
    TableFactor, TableWithJoins, Visit, Visitor,
};

use super::knowledge::Knowledge;
use crate::sql::ident::{fold, fold_name};
use crate::sql::own_expressions;

/// How deep the search for a column follows subqueries and WITH queries
/// (`SELECT * FROM (SELECT * FROM ...)`): deeper nesting is rare, and
/// recursive WITH queries refer to themselves.
const MAX_SUBQUERY_DEPTH: usize = 8;

/// PostgreSQL's built-in aggregate functions. Offline, any other function
/// is assumed not to aggregate (a server check catches user-defined ones).
const AGGREGATES: &[&str] = &[
    "any_value",
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "dense_rank",
    "every",
    "json_agg",
    "json_arrayagg",
    "json_object_agg",
    "json_objectagg",
    "jsonb_agg",
    "jsonb_object_agg",
    "max",
    "min",
    "mode",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "range_agg",
    "range_intersect_agg",
    "rank",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
    "xmlagg",
];

/// The name of one result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    /// Named so, as PostgreSQL names it (`?column?` for an unnamed one).
    Known(String),
    /// Named in a way perfaudit does not follow.
    Unknown,
    /// `*` (no qualifier) or `q.*`: all columns of the FROM clause or of
    /// the relation `q`.
    Wildcard(Option<Ident>),
}

/// The result column names of a query body: its first branch's, for a set
/// operation.
pub(crate) fn result_names(body: &SetExpr) -> Vec<Name> {
    let mut body = body;
    loop {
        body = match body {
            SetExpr::SetOperation { left, .. } => left,
            SetExpr::Query(query) => &query.body,
            SetExpr::Select(select) => {
                return select.projection.iter().map(item_name).collect();
            }
            SetExpr::Values(values) => {
                let width = values.rows.first().map_or(0, |row| row.content.len());
                return (1..=width)
                    .map(|n| Name::Known(format!("column{n}")))
                    .collect();
            }
            SetExpr::Table(_) => return vec![Name::Wildcard(None)],
            _ => return vec![Name::Unknown],
        };
    }
}

fn item_name(item: &SelectItem) -> Name {
    match item {
        SelectItem::UnnamedExpr(expr) => expr_name(expr),
        SelectItem::ExprWithAlias { alias, .. } => Name::Known(fold(alias)),
        SelectItem::Wildcard(_) => Name::Wildcard(None),
        SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
            match name.0.last() {
                Some(ObjectNamePart::Identifier(ident)) => Name::Wildcard(Some(ident.clone())),
                _ => Name::Unknown,
            }
        }
        _ => Name::Unknown,
    }
}

/// The name PostgreSQL gives the result column of an unaliased expression
/// (its `FigureColname`), where perfaudit can tell.
fn expr_name(expr: &Expr) -> Name {
    let mut expr = expr;
    let mut cast = false;
    loop {
        let name = match expr {
            Expr::Identifier(ident) => fold(ident),
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(ident) => fold(ident),
                None => return Name::Unknown,
            },
            Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => {
                expr = inner;
                continue;
            }
            // A cast keeps its operand's name; a cast constant is named
            // after the type, as written in the parse tree.
            Expr::Cast { expr: inner, .. } => {
                cast = true;
                expr = inner;
                continue;
            }
            Expr::Function(function) => match function.name.0.last() {
                Some(ObjectNamePart::Identifier(ident)) => fold(ident),
                _ => return Name::Unknown,
            },
            Expr::Case { .. } => "case".into(),
            Expr::Exists { .. } => "exists".into(),
            Expr::Value(_)
            | Expr::BinaryOp { .. }
            | Expr::UnaryOp { .. }
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::In { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::SimilarTo { .. }
            | Expr::AnyOp { .. }
            | Expr::AllOp { .. } => "?column?".into(),
            _ => return Name::Unknown,
        };
        return match (cast, name.as_str()) {
            (true, "?column?") => Name::Unknown,
            _ => Name::Known(name),
        };
    }
}

/// The result's columns that could be named `column`: how many are, and
/// whether others might be (unknown names, `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameCount {
    /// Columns known to be named `column`.
    pub known: usize,
    /// Columns that might be: unknown names, and one per relation a `*`
    /// spans.
    pub possible: usize,
}

impl NameCount {
    /// Counts the result columns named `column`. A `*` spans
    /// `relations` relations, each of which may have the column once.
    pub fn of(names: &[Name], column: &str, relations: usize) -> NameCount {
        let mut count = NameCount {
            known: 0,
            possible: 0,
        };
        for name in names {
            match name {
                Name::Known(name) if name == column => count.known += 1,
                Name::Known(_) => {}
                Name::Unknown | Name::Wildcard(Some(_)) => count.possible += 1,
                Name::Wildcard(None) => count.possible += relations,
            }
        }
        count
    }

    /// Whether exactly one result column is named `column`.
    pub fn exactly_one(self) -> bool {
        self.known == 1 && self.possible == 0
    }

    /// Whether at most one result column can be named `column`, so that a
    /// bare `ORDER BY column` is not ambiguous.
    pub fn at_most_one(self) -> bool {
        self.known + self.possible <= 1
    }
}

/// One relation of a FROM clause.
#[derive(Debug, Clone)]
pub(crate) struct FromItem<'a> {
    /// The name that qualifies its columns: its alias, or the table's or
    /// function's own name; `None` for a subquery without an alias.
    pub refname: Option<&'a Ident>,
    /// What it reads.
    pub relation: Relation<'a>,
    /// Column aliases (`AS p(a, b)`), which rename its first columns.
    pub alias_columns: &'a [TableAliasColumnDef],
    /// Whether it is a LATERAL subquery, which sees the columns of the FROM
    /// items before it.
    pub lateral: bool,
}

/// What a FROM item reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Relation<'a> {
    /// A table or view.
    Table(&'a ObjectName),
    /// A subquery or a WITH query.
    Query(&'a Query),
    /// A function, a join with an alias, or anything else perfaudit does
    /// not look into.
    Other,
}

impl FromItem<'_> {
    /// How the item reads in a message: `p (payments)`, `payments`.
    pub fn describe(&self) -> String {
        let refname = self.refname.map(|r| r.to_string());
        match (&self.relation, refname) {
            (Relation::Table(name), Some(refname)) if name.to_string() != refname => {
                format!("{refname} ({name})")
            }
            (_, Some(refname)) => refname,
            (_, None) => "a subquery without an alias".into(),
        }
    }
}

/// The relations of a query's FROM clause, joins flattened, with the WITH
/// queries `ctes` in scope.
pub(crate) fn from_items<'a>(select: &'a Select, ctes: &[&'a Cte]) -> Vec<FromItem<'a>> {
    let mut items = Vec::new();
    let mut pending: Vec<&TableWithJoins> = select.from.iter().rev().collect();
    while let Some(table) = pending.pop() {
        let factors =
            std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation));
        let mut nested = Vec::new();
        for factor in factors {
            match factor {
                TableFactor::NestedJoin {
                    table_with_joins,
                    alias: None,
                } => nested.push(table_with_joins.as_ref()),
                factor => items.push(from_item(factor, ctes)),
            }
        }
        // Nested joins' relations come in place, in the order written.
        pending.extend(nested.into_iter().rev());
    }
    items
}

fn from_item<'a>(factor: &'a TableFactor, ctes: &[&'a Cte]) -> FromItem<'a> {
    let alias = factor_alias(factor);
    let alias_columns = alias.map_or(&[][..], |a| a.columns.as_slice());
    match factor {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let cte = match name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => ctes
                    .iter()
                    .rev()
                    .find(|cte| fold(&cte.alias.name) == fold(ident)),
                _ => None,
            };
            let own_name = match name.0.last() {
                Some(ObjectNamePart::Identifier(ident)) => Some(ident),
                _ => None,
            };
            FromItem {
                refname: alias.map(|a| &a.name).or(own_name),
                relation: cte.map_or(Relation::Table(name), |cte| Relation::Query(&cte.query)),
                alias_columns: match (alias_columns, cte) {
                    ([], Some(cte)) => &cte.alias.columns,
                    (columns, _) => columns,
                },
                lateral: false,
            }
        }
        TableFactor::Table { name, .. } => FromItem {
            refname: alias.map(|a| &a.name).or(match name.0.last() {
                Some(ObjectNamePart::Identifier(ident)) => Some(ident),
                _ => None,
            }),
            relation: Relation::Other,
            alias_columns,
            lateral: false,
        },
        TableFactor::Derived {
            subquery, lateral, ..
        } => FromItem {
            refname: alias.map(|a| &a.name),
            relation: Relation::Query(subquery),
            alias_columns,
            lateral: *lateral,
        },
        // A function in FROM sees the FROM items before it too, but its
        // columns are not looked into.
        _ => FromItem {
            refname: alias.map(|a| &a.name),
            relation: Relation::Other,
            alias_columns,
            lateral: false,
        },
    }
}

fn factor_alias(factor: &TableFactor) -> Option<&sqlparser::ast::TableAlias> {
    match factor {
        TableFactor::Table { alias, .. }
        | TableFactor::Derived { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::JsonTable { alias, .. }
        | TableFactor::OpenJsonTable { alias, .. }
        | TableFactor::NestedJoin { alias, .. }
        | TableFactor::Pivot { alias, .. }
        | TableFactor::Unpivot { alias, .. }
        | TableFactor::MatchRecognize { alias, .. }
        | TableFactor::XmlTable { alias, .. } => alias.as_ref(),
        _ => None,
    }
}

/// Whether a relation has a column, and how that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Has {
    /// It has, once: the server's catalog or the SQL's own result names say
    /// so.
    Yes,
    /// It has, once, as the statement's own use of the column shows.
    Used,
    /// It has not.
    No,
    /// Nobody knows.
    Unknown,
    /// It has, but perhaps more than once: some of its columns are not
    /// known, and a relation's columns may share a name (`SELECT *` over a
    /// join of two tables that both have the column), which makes the
    /// name ambiguous there.
    AtLeastOnce,
    /// It has more than once, so the name is ambiguous there.
    Several,
}

impl Has {
    /// Whether the relation has the column, once.
    pub fn yes(self) -> bool {
        matches!(self, Has::Yes | Has::Used)
    }

    /// Whether a relation has the column, from whether each group of its
    /// columns has (the columns of each relation a `*` spans, say): once
    /// only when one group has it once and every other group is known not
    /// to.
    fn together(groups: impl IntoIterator<Item = Has>) -> Has {
        let mut found = None;
        let mut unknown = false;
        for has in groups {
            match has {
                Has::Yes | Has::Used | Has::AtLeastOnce if found.is_some() => return Has::Several,
                Has::Yes | Has::Used | Has::AtLeastOnce => found = Some(has),
                Has::Several => return Has::Several,
                Has::Unknown => unknown = true,
                Has::No => {}
            }
        }
        match (found, unknown) {
            (Some(_), true) => Has::AtLeastOnce,
            (Some(has), false) => has,
            (None, true) => Has::Unknown,
            (None, false) => Has::No,
        }
    }

    /// Has when `yes`, has not otherwise.
    fn when(yes: bool) -> Has {
        if yes { Has::Yes } else { Has::No }
    }
}

/// Which relations of a query's FROM clause have a column.
#[derive(Debug, Clone)]
pub(crate) struct Owners<'a> {
    /// The relations, in the order written.
    pub items: Vec<FromItem<'a>>,
    /// Whether each has the column.
    pub has: Vec<Has>,
    /// Whether the query uses the column unqualified (so that, if it is
    /// valid, exactly one relation has it).
    pub used_bare: bool,
    /// Where the query writes the column's name without it naming a
    /// column, if it does.
    pub lookalike: Option<Lookalike>,
}

/// A place where a query writes the column's name and it names no column
/// of a FROM item, so it proves nothing about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookalike {
    /// A named argument of a function: `report(created_at => now())`.
    Argument,
    /// A field of a composite value: `(e.payload).info.created_at`.
    Field,
    /// The name of a FROM item, which alone means its whole row unless a
    /// FROM item has a column of that name: `e` in `to_json(e)`.
    WholeRow,
}

impl Lookalike {
    /// What the name is there, to tell the user why it proves nothing.
    pub fn explain(self, column: &str) -> String {
        match self {
            Lookalike::Argument => {
                format!("{column} is written as the name of a function's argument, not a column")
            }
            Lookalike::Field => {
                format!("{column} is written as a field of a composite value, not a column")
            }
            Lookalike::WholeRow => format!(
                "{column} alone also names a FROM item, and means its whole row unless a FROM \
                 item has a column {column}"
            ),
        }
    }
}

/// Finds which relations of `select` (with the WITH queries `ctes` in
/// scope) have `column`.
pub(crate) struct Search<'k> {
    /// What a server said, if anything.
    pub knowledge: &'k Knowledge,
    /// The column, as PostgreSQL resolves it.
    pub column: &'k str,
}

impl Search<'_> {
    /// Which relations of `select` have the column. `lateral`: whether
    /// `select` is, or is inside, a LATERAL subquery, whose unqualified
    /// names may be columns of the FROM items before it.
    pub fn owners<'a>(
        &self,
        select: &'a Select,
        ctes: &[&'a Cte],
        depth: usize,
        lateral: bool,
    ) -> Owners<'a> {
        let items = from_items(select, ctes);
        let mut has: Vec<Has> = items
            .iter()
            .map(|item| self.item_has(item, ctes, depth, lateral))
            .collect();
        let mut uses = Uses::find(select, self.column);
        // Unqualified, it may be a column of a FROM item outside: then it
        // proves nothing about these.
        uses.bare &= !lateral;
        if uses.bare
            && items
                .iter()
                .any(|item| item.refname.is_some_and(|r| fold(r) == self.column))
        {
            uses.bare = false;
            uses.lookalike.get_or_insert(Lookalike::WholeRow);
        }
        // A valid query names only a column that is there once.
        let proven = |has: &mut Has| {
            if matches!(has, Has::Unknown | Has::AtLeastOnce) {
                *has = Has::Used;
            }
        };
        for qualifier in &uses.qualifiers {
            if let Some(i) = items
                .iter()
                .position(|item| item.refname.is_some_and(|r| fold(r) == *qualifier))
            {
                proven(&mut has[i]);
            }
        }
        // Used unqualified: the one relation that may have it, has it.
        let maybe: Vec<usize> = (0..items.len()).filter(|&i| has[i] != Has::No).collect();
        if let ([only], true) = (maybe.as_slice(), uses.bare) {
            proven(&mut has[*only]);
        }
        Owners {
            items,
            has,
            used_bare: uses.bare,
            lookalike: uses.lookalike,
        }
    }

    /// Whether one FROM item has the column.
    fn item_has(&self, item: &FromItem, ctes: &[&Cte], depth: usize, lateral: bool) -> Has {
        // The alias renames the first columns; the rest keep their names.
        let renamed = item.alias_columns.len();
        let aliases = item
            .alias_columns
            .iter()
            .map(|c| Has::when(fold(&c.name) == self.column));
        let rest = match item.relation {
            Relation::Table(name) => match self.knowledge.table_columns(name) {
                Some(columns) => Has::when(columns.iter().skip(renamed).any(|c| c == self.column)),
                None => Has::Unknown,
            },
            Relation::Query(query) if renamed == 0 => {
                self.result_has(query, ctes, depth + 1, lateral || item.lateral)
            }
            Relation::Query(query) => {
                let names = result_names(&query.body);
                if names.iter().any(|n| !matches!(n, Name::Known(_))) {
                    Has::Unknown
                } else {
                    Has::together(names.iter().skip(renamed).map(|n| self.named(n)))
                }
            }
            Relation::Other => Has::Unknown,
        };
        Has::together(aliases.chain([rest]))
    }

    /// Whether a result column named so is the column.
    fn named(&self, name: &Name) -> Has {
        match name {
            Name::Known(name) => Has::when(name == self.column),
            _ => Has::Unknown,
        }
    }

    /// Whether the result of `query` has the column (`lateral` as for
    /// [`Search::owners`]).
    pub fn result_has(&self, query: &Query, ctes: &[&Cte], depth: usize, lateral: bool) -> Has {
        if depth > MAX_SUBQUERY_DEPTH {
            return Has::Unknown;
        }
        let names = result_names(&query.body);
        let mut scope: Vec<&Cte> = ctes.to_vec();
        scope.extend(query.with.iter().flat_map(|with| &with.cte_tables));
        // A `*` spans the FROM items of the first SELECT.
        let owners = match first_select(&query.body) {
            Some(select) if names.iter().any(|n| matches!(n, Name::Wildcard(_))) => {
                Some(self.owners(select, &scope, depth, lateral))
            }
            _ => None,
        };
        Has::together(names.iter().map(|name| {
            match (name, &owners) {
                (Name::Wildcard(None), Some(owners)) => Has::together(owners.has.iter().copied()),
                (Name::Wildcard(Some(qualifier)), Some(owners)) => owners
                    .items
                    .iter()
                    .position(|item| item.refname.is_some_and(|r| names_same(r, qualifier)))
                    .map_or(Has::Unknown, |i| owners.has[i]),
                (name, _) => self.named(name),
            }
        }))
    }
}

fn names_same(a: &Ident, b: &Ident) -> bool {
    fold(a) == fold(b)
}

/// The first SELECT of a body: itself, or a set operation's first branch.
pub(crate) fn first_select(body: &SetExpr) -> Option<&Select> {
    let mut body = body;
    loop {
        body = match body {
            SetExpr::Select(select) => return Some(select),
            SetExpr::SetOperation { left, .. } => left,
            SetExpr::Query(query) => &query.body,
            _ => return None,
        };
    }
}

/// Where a query uses a column in its own scope (not in subqueries): in
/// its select list, FROM clause, WHERE, HAVING, QUALIFY and windows.
#[derive(Debug, Default)]
struct Uses {
    /// Used unqualified.
    bare: bool,
    /// The qualifiers it is used with (`p` for `p.created_at`), normalized.
    qualifiers: Vec<String>,
    /// The first place its name is written without naming a column.
    lookalike: Option<Lookalike>,
}

impl Uses {
    fn find(select: &Select, column: &str) -> Uses {
        let mut not_columns = NotColumns::default();
        let _ = select.visit(&mut not_columns);
        let mut uses = Uses::default();
        let mut note = |expr: &Expr| {
            match (not_columns.0.get(&ptr::from_ref(expr)), expr) {
                (Some(Some(lookalike)), Expr::Identifier(ident)) if fold(ident) == column => {
                    uses.lookalike.get_or_insert(*lookalike);
                }
                (Some(_), _) => {}
                (None, expr) => match column_name(expr).as_deref() {
                    Some([ident]) if fold(ident) == column => uses.bare = true,
                    Some([.., qualifier, last]) if fold(last) == column => {
                        uses.qualifiers.push(fold(qualifier));
                    }
                    _ => {}
                },
            }
            ControlFlow::Continue(())
        };
        let _ = own_expressions(&select.projection, &mut note);
        let _ = own_expressions(&select.from, &mut note);
        let _ = own_expressions(&select.selection, &mut note);
        let _ = own_expressions(&select.having, &mut note);
        let _ = own_expressions(&select.qualify, &mut note);
        let _ = own_expressions(&select.named_window, &mut note);
        uses
    }
}

/// The name of the column an expression is, its parts as written:
/// `created_at`, `p.created_at`, and under a subscript, `b.created_at` in
/// `b.created_at[1]`, which sqlparser reads as `b` followed by
/// `.created_at` and `[1]`. PostgreSQL reads the `.name`s that follow an
/// identifier up to the first subscript as more of its name; the others,
/// and all that follow any other value, pick fields of a composite value
/// (`(e.payload).info.created_at`).
fn column_name(expr: &Expr) -> Option<Vec<&Ident>> {
    let (root, chain) = match expr {
        Expr::CompoundFieldAccess { root, access_chain } => (root.as_ref(), &access_chain[..]),
        expr => (expr, &[][..]),
    };
    let mut parts: Vec<&Ident> = match root {
        Expr::Identifier(ident) => vec![ident],
        Expr::CompoundIdentifier(parts) => parts.iter().collect(),
        _ => return None,
    };
    parts.extend(leading_names(chain));
    Some(parts)
}

/// The `.name`s that open a chain of `.name`s and subscripts.
fn leading_names(chain: &[AccessExpr]) -> impl Iterator<Item = &Ident> {
    chain.iter().map_while(|access| match access {
        AccessExpr::Dot(Expr::Identifier(ident)) => Some(ident),
        _ => None,
    })
}

/// The expressions of a query that read as a column's name but are not
/// one, found before [`Uses`] walks the query: the walk meets the parts
/// of an expression after the expression itself, and the name of a table
/// function's argument in FROM under no expression at all. Each is a
/// lookalike, or `None` for a part of a column's name that is noted whole
/// (`b` and `created_at` of `b.created_at[1]`).
#[derive(Default)]
struct NotColumns(HashMap<*const Expr, Option<Lookalike>>);

impl NotColumns {
    fn arguments(&mut self, args: &[FunctionArg]) {
        for arg in args {
            if let FunctionArg::ExprNamed { name, .. } = arg {
                self.0
                    .insert(ptr::from_ref(name), Some(Lookalike::Argument));
            }
        }
    }
}

impl Visitor for NotColumns {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                args: Some(args), ..
            } => self.arguments(&args.args),
            TableFactor::Function { args, .. } => self.arguments(args),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(Function {
                args: FunctionArguments::List(list),
                ..
            }) => self.arguments(&list.args),
            Expr::CompoundFieldAccess { root, access_chain } => {
                let names = match column_name(expr) {
                    Some(_) => {
                        self.0.insert(ptr::from_ref(root.as_ref()), None);
                        leading_names(access_chain).count()
                    }
                    None => 0,
                };
                for (i, access) in access_chain.iter().enumerate() {
                    if let AccessExpr::Dot(field) = access {
                        let lookalike = (i >= names).then_some(Lookalike::Field);
                        self.0.insert(ptr::from_ref(field), lookalike);
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Whether a SELECT aggregates without GROUP BY, which makes it one row:
/// it calls an aggregate in its select list or HAVING, or has a HAVING.
pub(crate) fn aggregates_without_group_by(select: &Select) -> bool {
    if grouped(select) {
        return false;
    }
    select.having.is_some() || own_expressions(&select.projection, aggregate_call).is_break()
}

/// Whether a SELECT has a GROUP BY clause.
pub(crate) fn grouped(select: &Select) -> bool {
    match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    }
}

/// The GROUP BY item that is the column itself (`created_at`,
/// `p.created_at`), if any.
pub(crate) fn grouping_column<'a>(select: &'a Select, column: &str) -> Option<&'a Expr> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return None;
    };
    exprs.iter().find(|expr| match expr {
        Expr::Identifier(ident) => fold(ident) == column,
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|last| fold(last) == column),
        _ => false,
    })
}

/// Whether a SELECT is `DISTINCT` or `DISTINCT ON`.
pub(crate) fn distinct(select: &Select) -> Option<&Distinct> {
    select
        .distinct
        .as_ref()
        .filter(|d| !matches!(d, Distinct::All))
}

/// Breaks at a call of an aggregate (not a window function).
fn aggregate_call(expr: &Expr) -> ControlFlow<()> {
    let Expr::Function(function) = expr else {
        return ControlFlow::Continue(());
    };
    if function.over.is_some() {
        return ControlFlow::Continue(());
    }
    let named = fold_name(&function.name)
        .and_then(|parts| parts.last().cloned())
        .is_some_and(|name| AGGREGATES.contains(&name.as_str()));
    // Only aggregates take FILTER, WITHIN GROUP, DISTINCT or ORDER BY.
    let shaped = function.filter.is_some()
        || !function.within_group.is_empty()
        || matches!(&function.args, FunctionArguments::List(list)
            if list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
                || list.clauses.iter().any(|c| matches!(c, FunctionArgumentClause::OrderBy(_))));
    if named || shaped {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::knowledge::TableColumns;
    use crate::sql::parse_statements;
    use sqlparser::ast::Statement;

    fn query(sql: &str) -> Box<Query> {
        match parse_statements(sql).unwrap().remove(0).ast {
            Statement::Query(query) => query,
            other => panic!("not a query: {other}"),
        }
    }

    fn select(query: &Query) -> &Select {
        first_select(&query.body).unwrap()
    }

    fn known(names: &[&str]) -> Vec<Name> {
        names.iter().map(|n| Name::Known((*n).into())).collect()
    }

    #[test]
    fn result_columns_are_named_like_postgresql_names_them() {
        let q = query(
            "SELECT id, p.Amount, \"Mixed\", x::date, (y), count(*), 1, $1, a = b, \
             CASE WHEN true THEN 1 END, '1'::int, c AS \"Alias\", p.*, * FROM p",
        );
        let mut expected = known(&[
            "id", "amount", "Mixed", "x", "y", "count", "?column?", "?column?", "?column?", "case",
        ]);
        expected.extend([
            Name::Unknown,
            Name::Known("Alias".into()),
            Name::Wildcard(Some(Ident::new("p"))),
            Name::Wildcard(None),
        ]);
        assert_eq!(result_names(&q.body), expected);
        assert_eq!(
            result_names(&query("SELECT a FROM t UNION SELECT b FROM u").body),
            known(&["a"])
        );
        assert_eq!(
            result_names(&query("VALUES (1, 2)").body),
            known(&["column1", "column2"])
        );
    }

    #[test]
    fn names_are_counted_for_ambiguity() {
        let names = result_names(&query("SELECT created_at, a AS created_at FROM t").body);
        assert_eq!(NameCount::of(&names, "created_at", 1).known, 2);
        let names = result_names(&query("SELECT * FROM t").body);
        assert!(NameCount::of(&names, "created_at", 1).at_most_one());
        assert!(!NameCount::of(&names, "created_at", 2).at_most_one());
        assert!(!NameCount::of(&names, "created_at", 1).exactly_one());
    }

    #[test]
    fn from_items_flatten_joins_and_see_with_queries() {
        let q = query(
            "WITH r AS (SELECT 1) SELECT * FROM public.payments, r AS x \
             JOIN (users u JOIN LATERAL (SELECT 1) s ON true) ON true, generate_series(1, 2) g",
        );
        let ctes: Vec<&Cte> = q.with.iter().flat_map(|w| &w.cte_tables).collect();
        let items = from_items(select(&q), &ctes);
        let refnames: Vec<String> = items
            .iter()
            .map(|i| i.refname.map(|r| r.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(refnames, ["payments", "x", "u", "s", "g"]);
        assert!(matches!(items[0].relation, Relation::Table(_)));
        assert!(matches!(items[1].relation, Relation::Query(_)));
        assert!(matches!(items[4].relation, Relation::Other));
        assert_eq!(items[0].describe(), "payments (public.payments)");
    }

    #[test]
    fn owners_come_from_the_catalog_and_from_the_sql_itself() {
        let offline = Knowledge::offline();
        let search = Search {
            knowledge: &offline,
            column: "created_at",
        };
        let q = query("SELECT p.id FROM payments p JOIN users u ON u.created_at > p.id");
        let owners = search.owners(select(&q), &[], 0, false);
        assert_eq!(owners.has, [Has::Unknown, Has::Used]);
        let q = query("SELECT id FROM payments WHERE created_at > now()");
        assert_eq!(search.owners(select(&q), &[], 0, false).has, [Has::Used]);
        // A subquery in WHERE is another scope.
        let q = query("SELECT id FROM payments WHERE EXISTS (SELECT created_at FROM users)");
        assert_eq!(search.owners(select(&q), &[], 0, false).has, [Has::Unknown]);

        let server = Knowledge {
            online: true,
            tables: vec![
                TableColumns {
                    name: vec!["payments".into()],
                    columns: vec!["id".into(), "created_at".into()],
                },
                TableColumns {
                    name: vec!["users".into()],
                    columns: vec!["id".into(), "email".into()],
                },
            ],
            ..Knowledge::offline()
        };
        let search = Search {
            knowledge: &server,
            column: "created_at",
        };
        let q = query(
            "WITH recent AS (SELECT * FROM payments) \
             SELECT * FROM users u, recent r, (SELECT 1 AS x) s, payments AS p2(a, b)",
        );
        let ctes: Vec<&Cte> = q.with.iter().flat_map(|w| &w.cte_tables).collect();
        let owners = search.owners(select(&q), &ctes, 0, false);
        // p2 renames created_at to b.
        assert_eq!(owners.has, [Has::No, Has::Yes, Has::No, Has::No]);
    }

    #[test]
    fn a_named_argument_is_no_use_of_a_column() {
        let offline = Knowledge::offline();
        let search = Search {
            knowledge: &offline,
            column: "created_at",
        };
        for sql in [
            "SELECT * FROM report(created_at => now())",
            "SELECT * FROM report(\"created_at\" := now()) r",
            "SELECT 1 FROM payments WHERE f(created_at => 1)",
            "SELECT 1 FROM payments, LATERAL report(created_at => now()) r",
        ] {
            let q = query(sql);
            let owners = search.owners(select(&q), &[], 0, false);
            assert!(owners.has.iter().all(|h| *h == Has::Unknown), "{sql}");
            assert!(!owners.used_bare, "{sql}");
            assert_eq!(owners.lookalike, Some(Lookalike::Argument), "{sql}");
        }
        // The argument's value may use the column.
        let q = query("SELECT 1 FROM payments WHERE f(created_at => created_at)");
        assert_eq!(search.owners(select(&q), &[], 0, false).has, [Has::Used]);
    }

    #[test]
    fn a_field_is_no_column_and_a_subscript_keeps_the_columns_qualifier() {
        let offline = Knowledge::offline();
        let owners = |sql: &str, column: &str| {
            let search = Search {
                knowledge: &offline,
                column,
            };
            let q = query(sql);
            let owners = search.owners(select(&q), &[], 0, false);
            (owners.has, owners.used_bare, owners.lookalike)
        };
        use Has::{Unknown, Used};
        for (sql, column, expected) in [
            (
                "SELECT 1 FROM events e WHERE (e.payload).info.created_at > now()",
                "created_at",
                (vec![Unknown], false, Some(Lookalike::Field)),
            ),
            (
                "SELECT 1 FROM events e WHERE ((e.payload).info).created_at > now()",
                "created_at",
                (vec![Unknown], false, Some(Lookalike::Field)),
            ),
            // `payload` is a use of the column payload, `info` a field.
            (
                "SELECT 1 FROM events WHERE (payload).info IS NOT NULL",
                "info",
                (vec![Unknown], false, Some(Lookalike::Field)),
            ),
            (
                "SELECT 1 FROM events WHERE (payload).info IS NOT NULL",
                "payload",
                (vec![Used], true, None),
            ),
            (
                "SELECT 1 FROM t a JOIN t b ON true WHERE b.created_at[1] > now()",
                "created_at",
                (vec![Unknown, Used], false, None),
            ),
            (
                "SELECT 1 FROM t a JOIN t b ON true WHERE (b.created_at)[1:2] IS NULL",
                "created_at",
                (vec![Unknown, Used], false, None),
            ),
            (
                "SELECT 1 FROM t WHERE created_at[1][2] > now()",
                "created_at",
                (vec![Used], true, None),
            ),
            // The qualifier of a subscripted column is no use of a column.
            (
                "SELECT 1 FROM t a JOIN t b ON true WHERE b.created_at[1] > now()",
                "b",
                (vec![Unknown, Unknown], false, None),
            ),
            // After a subscript, a name picks a field.
            (
                "SELECT 1 FROM t WHERE stamps[1].created_at > now()",
                "created_at",
                (vec![Unknown], false, Some(Lookalike::Field)),
            ),
        ] {
            assert_eq!(owners(sql, column), expected, "{sql}: {column}");
        }
    }

    #[test]
    fn groups_of_columns_together_have_the_column_once_only_when_proven() {
        use Has::{AtLeastOnce, No, Several, Unknown, Used, Yes};
        for (groups, expected) in [
            (vec![], No),
            (vec![No, Yes, No], Yes),
            (vec![Used, No], Used),
            (vec![Unknown, No], Unknown),
            (vec![Used, Unknown], AtLeastOnce),
            (vec![Yes, Used], Several),
            (vec![AtLeastOnce, Yes], Several),
            (vec![Unknown, Several], Several),
        ] {
            assert_eq!(Has::together(groups.clone()), expected, "{groups:?}");
        }
    }

    #[test]
    fn a_relation_that_may_repeat_the_column_does_not_have_it_once() {
        use Has::{AtLeastOnce, No, Several, Used, Yes};
        let offline = Knowledge::offline();
        let server = Knowledge {
            online: true,
            tables: ["payments", "refunds"]
                .map(|name| TableColumns {
                    name: vec![name.into()],
                    columns: vec!["id".into(), "created_at".into()],
                })
                .into(),
            ..Knowledge::offline()
        };
        for (sql, knowledge, expected) in [
            (
                "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON true \
                 WHERE p.created_at > now()) s",
                &offline,
                AtLeastOnce,
            ),
            (
                "SELECT 1 FROM (SELECT * FROM payments p JOIN refunds r ON true) s",
                &server,
                Several,
            ),
            (
                "SELECT 1 FROM (SELECT p.*, r.id FROM payments p JOIN refunds r ON true \
                 WHERE p.created_at > now()) s",
                &offline,
                Used,
            ),
            (
                "SELECT 1 FROM (SELECT p.created_at, r.created_at FROM payments p, refunds r) s",
                &offline,
                Several,
            ),
            (
                "SELECT 1 FROM (SELECT *, created_at FROM payments) s",
                &offline,
                Several,
            ),
            (
                "SELECT 1 FROM (SELECT created_at, (SELECT 1) FROM payments) s",
                &offline,
                AtLeastOnce,
            ),
            // Column aliases rename the first columns; the rest keep their names.
            (
                "SELECT 1 FROM (SELECT id, created_at FROM payments) AS s(created_at)",
                &offline,
                Several,
            ),
            (
                "SELECT 1 FROM (SELECT created_at, id FROM payments) AS s(a)",
                &offline,
                No,
            ),
            (
                "SELECT 1 FROM report(now()) AS r(created_at)",
                &offline,
                AtLeastOnce,
            ),
            ("SELECT 1 FROM payments AS p(created_at)", &server, Several),
            ("SELECT 1 FROM payments AS p(a)", &server, Yes),
            (
                "WITH w AS (SELECT * FROM payments p, refunds r WHERE r.created_at > now()) \
                 SELECT 1 FROM w",
                &offline,
                AtLeastOnce,
            ),
            (
                "WITH w(created_at) AS (SELECT id, created_at FROM payments) SELECT 1 FROM w",
                &offline,
                Several,
            ),
        ] {
            let search = Search {
                knowledge,
                column: "created_at",
            };
            let q = query(sql);
            let ctes: Vec<&Cte> = q.with.iter().flat_map(|w| &w.cte_tables).collect();
            assert_eq!(
                search.owners(select(&q), &ctes, 0, false).has,
                [expected],
                "{sql}"
            );
        }
    }

    #[test]
    fn an_unqualified_name_in_a_lateral_subquery_may_be_a_column_outside() {
        use Has::{Unknown, Used};
        let offline = Knowledge::offline();
        let search = Search {
            knowledge: &offline,
            column: "created_at",
        };
        for (sql, expected) in [
            (
                "SELECT 1 FROM payments p, LATERAL (SELECT * FROM f() g WHERE created_at > now()) x",
                [Unknown, Unknown],
            ),
            // Nor in what the LATERAL subquery holds.
            (
                "SELECT 1 FROM payments p, LATERAL (SELECT * FROM \
                 (SELECT * FROM f() g WHERE created_at > now()) y) x",
                [Unknown, Unknown],
            ),
            (
                "SELECT 1 FROM payments p, LATERAL (WITH c AS \
                 (SELECT * FROM f() g WHERE created_at > now()) SELECT * FROM c) x",
                [Unknown, Unknown],
            ),
            // Qualified, it names the subquery's own FROM item.
            (
                "SELECT 1 FROM payments p, LATERAL (SELECT * FROM refunds r \
                 WHERE r.created_at > p.created_at) x",
                [Unknown, Used],
            ),
            // A subquery that is not LATERAL sees no FROM item beside it.
            (
                "SELECT 1 FROM payments p, (SELECT * FROM refunds WHERE created_at > now()) x",
                [Unknown, Used],
            ),
        ] {
            let q = query(sql);
            assert_eq!(
                search.owners(select(&q), &[], 0, false).has,
                expected,
                "{sql}"
            );
        }
    }

    #[test]
    fn the_name_of_a_from_item_alone_may_be_its_whole_row() {
        let offline = Knowledge::offline();
        let search = Search {
            knowledge: &offline,
            column: "e",
        };
        for sql in [
            "SELECT to_json(e) FROM events e",
            "SELECT 1 FROM events AS \"E\", LATERAL f(1) AS e WHERE e IS NOT NULL",
        ] {
            let q = query(sql);
            let owners = search.owners(select(&q), &[], 0, false);
            assert!(owners.has.iter().all(|h| *h == Has::Unknown), "{sql}");
            assert!(!owners.used_bare, "{sql}");
            assert_eq!(owners.lookalike, Some(Lookalike::WholeRow), "{sql}");
        }
        let q = query("SELECT 1 FROM events x WHERE e IS NOT NULL");
        assert_eq!(search.owners(select(&q), &[], 0, false).has, [Has::Used]);
    }

    #[test]
    fn aggregates_are_recognized_by_name_and_by_shape() {
        for (sql, expected) in [
            ("SELECT count(*) FROM t", true),
            ("SELECT pg_catalog.max(x) FROM t", true),
            ("SELECT my_agg(DISTINCT x) FROM t", true),
            ("SELECT my_agg(x ORDER BY y) FROM t", true),
            ("SELECT my_agg(x) FILTER (WHERE y) FROM t", true),
            ("SELECT 1 FROM t HAVING true", true),
            ("SELECT count(*) OVER () FROM t", false),
            ("SELECT (SELECT max(x) FROM u) FROM t", false),
            ("SELECT lower(x) FROM t", false),
            ("SELECT count(*) FROM t GROUP BY x", false),
        ] {
            let q = query(sql);
            assert_eq!(aggregates_without_group_by(select(&q)), expected, "{sql}");
        }
    }

    #[test]
    fn grouping_by_the_column_is_found() {
        let q = query("SELECT count(*) FROM t p GROUP BY p.Created_At, x");
        assert_eq!(
            grouping_column(select(&q), "created_at")
                .unwrap()
                .to_string(),
            "p.Created_At"
        );
        let q = query("SELECT count(*) FROM t GROUP BY date_trunc('day', created_at)");
        assert!(grouping_column(select(&q), "created_at").is_none());
    }
}
