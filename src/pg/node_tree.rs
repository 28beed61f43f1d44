//! Reading the objects a parsed query refers to out of PostgreSQL's own
//! parse tree, as the server stores it (`pg_node_tree`: an SQL-standard
//! function body, a view's rule, a policy, a default, a CHECK).
//!
//! The server has already resolved every name there: a function call is
//! `{FUNCEXPR :funcid 2096 ...}` whatever spelling the SQL used (Unicode
//! escapes, a 70-byte name cut to 63, `OPERATOR(pg_catalog.+)`, a cast), so
//! reading the OIDs off the tree leaves nothing to interpret. The text is
//! `nodeToString`'s: tokens split at unescaped white space and at `(){}`,
//! user strings escaped so that they are one token each.
//!
//! Fails closed: a node type perfaudit does not know (a later release's)
//! is reported, and the caller must not take the tree as fully read.

use std::collections::BTreeSet;

/// The objects a tree refers to that can run code when it executes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Functions called: plain calls and casts (`funcid`), aggregates,
    /// window functions, an operator's or a window frame's functions, a
    /// TABLESAMPLE method.
    pub functions: BTreeSet<u32>,
    /// Operators, whose functions run (`opno`, ORDER BY's `sortop`...).
    pub operators: BTreeSet<u32>,
    /// Types, whose input and output functions run in an I/O cast and whose
    /// domains check their constraints.
    pub types: BTreeSet<u32>,
    /// Relations read or written: views run their query, tables their
    /// row-level security policies (and, written, their triggers).
    pub relations: BTreeSet<u32>,
    /// Node types the tree holds that perfaudit does not know.
    pub unknown_nodes: BTreeSet<String>,
    /// Whether a query in the tree changes rows (`INSERT`, `UPDATE`,
    /// `DELETE`, `MERGE`, or a data-modifying `WITH`).
    pub writes: bool,
}

impl References {
    /// Adds what `other` refers to.
    pub fn extend(&mut self, other: References) {
        self.functions.extend(other.functions);
        self.operators.extend(other.operators);
        self.types.extend(other.types);
        self.relations.extend(other.relations);
        self.unknown_nodes.extend(other.unknown_nodes);
        self.writes |= other.writes;
    }
}

/// What a field of a node holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Function,
    Operator,
    Type,
    Relation,
    Other,
}

fn field(name: &str) -> Field {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "opno" | "opnos" | "eqop" | "sortop" => Field::Operator,
        // Enumerations whose names end like a type's.
        "commandtype" | "jointype" | "rctype" | "sublinktype" | "nulltesttype" | "booltesttype" => {
            Field::Other
        }
        "relid" => Field::Relation,
        // `funcid`, `opfuncid`, `hashfuncid`, `negfuncid`, `aggfnoid`,
        // `winfnoid`, `tsmhandler`, `startinrangefunc`, `endinrangefunc`.
        _ if name.ends_with("funcid")
            || name.ends_with("fnoid")
            || name.ends_with("func")
            || name == "tsmhandler" =>
        {
            Field::Function
        }
        // `consttype`, `resulttype`, `array_typeid`, `aggargtypes`,
        // `coltypes`, `typeid`...: every type a value has on the way.
        _ if name.ends_with("type")
            || name.ends_with("types")
            || name.ends_with("typeid")
            || name.ends_with("typid") =>
        {
            Field::Type
        }
        _ => Field::Other,
    }
}

/// The node types of PostgreSQL 15's stored query trees and expressions
/// (`outfuncs.c`'s labels), and 16's `RTEPERMISSIONINFO`, which every
/// query of 16 and later holds and which runs nothing. Later releases'
/// other nodes (the SQL/JSON ones) are unknown until checked. Sorted.
const KNOWN_NODES: &[&str] = &[
    "AGGREF",
    "ALIAS",
    "ARRAYCOERCEEXPR",
    "ARRAYEXPR",
    "BOOLEANTEST",
    "BOOLEXPR",
    "CASEEXPR",
    "CASETESTEXPR",
    "CASEWHEN",
    "COALESCEEXPR",
    "COERCETODOMAIN",
    "COERCETODOMAINVALUE",
    "COERCEVIAIO",
    "COLLATEEXPR",
    "COMMONTABLEEXPR",
    "CONST",
    "CONVERTROWTYPEEXPR",
    "CTECYCLECLAUSE",
    "CTESEARCHCLAUSE",
    "CURRENTOFEXPR",
    "DISTINCTEXPR",
    "FIELDSELECT",
    "FIELDSTORE",
    "FROMEXPR",
    "FUNCEXPR",
    "GROUPINGFUNC",
    "GROUPINGSET",
    "INFERENCEELEM",
    "JOINEXPR",
    "MERGEACTION",
    "MINMAXEXPR",
    "NAMEDARGEXPR",
    "NEXTVALUEEXPR",
    "NULLIFEXPR",
    "NULLTEST",
    "ONCONFLICTEXPR",
    "OPEXPR",
    "PARAM",
    "QUERY",
    "RANGETBLENTRY",
    "RANGETBLFUNCTION",
    "RANGETBLREF",
    "RELABELTYPE",
    "ROWCOMPAREEXPR",
    "ROWEXPR",
    "ROWMARKCLAUSE",
    "RTEPERMISSIONINFO",
    "SCALARARRAYOPEXPR",
    "SETOPERATIONSTMT",
    "SETTODEFAULT",
    "SORTGROUPCLAUSE",
    "SQLVALUEFUNCTION",
    "SUBLINK",
    "SUBSCRIPTINGREF",
    "TABLEFUNC",
    "TABLESAMPLECLAUSE",
    "TARGETENTRY",
    "VAR",
    "WINDOWCLAUSE",
    "WINDOWFUNC",
    "WITHCHECKOPTION",
    "XMLEXPR",
];

/// The tokens of `tree`, as the server's `pg_strtok` reads them.
fn tokens(tree: &str) -> impl Iterator<Item = &str> {
    let bytes = tree.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\n' | b'\t' | b'\r') {
            at += 1;
        }
        if at >= bytes.len() {
            return None;
        }
        let start = at;
        if matches!(bytes[at], b'(' | b')' | b'{' | b'}') {
            at += 1;
            return Some(&tree[start..at]);
        }
        while at < bytes.len()
            && !matches!(
                bytes[at],
                b' ' | b'\n' | b'\t' | b'\r' | b'(' | b')' | b'{' | b'}'
            )
        {
            // A backslash makes the next byte part of the token.
            at += if bytes[at] == b'\\' { 2 } else { 1 };
        }
        at = at.min(bytes.len());
        Some(&tree[start..at])
    })
}

/// Reads what `tree` (a `pg_node_tree` as text) refers to.
pub fn references(tree: &str) -> References {
    let mut found = References::default();
    let mut tokens = tokens(tree).peekable();
    while let Some(token) = tokens.next() {
        if token == "{" {
            if let Some(&name) = tokens.peek()
                && KNOWN_NODES.binary_search(&name).is_err()
            {
                found.unknown_nodes.insert(name.to_owned());
            }
            continue;
        }
        let Some(name) = token.strip_prefix(':') else {
            continue;
        };
        // CmdType: 1 is SELECT; 2 to 5 UPDATE, INSERT, DELETE, MERGE.
        match (name, tokens.peek()) {
            ("commandType", Some(&("2" | "3" | "4" | "5")))
            | ("hasModifyingCTE", Some(&"true")) => {
                found.writes = true;
            }
            _ => {}
        }
        let kind = field(name);
        if kind == Field::Other {
            continue;
        }
        // A single OID, or a list of them: `(o 97 97)`.
        let mut oids = Vec::new();
        match tokens.peek() {
            Some(&"(") => {
                tokens.next();
                for item in tokens.by_ref() {
                    if item == ")" {
                        break;
                    }
                    oids.extend(item.parse::<u32>());
                }
            }
            Some(value) => oids.extend(value.parse::<u32>()),
            None => {}
        }
        let set = match kind {
            Field::Function => &mut found.functions,
            Field::Operator => &mut found.operators,
            Field::Type => &mut found.types,
            Field::Relation => &mut found.relations,
            Field::Other => continue,
        };
        // 0 is "none" (an operator's function not looked up yet, say).
        set.extend(oids.into_iter().filter(|&oid| oid != 0));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Part of what the server stored for
    /// `SELECT U&"pg\005fterminate\005fbackend"(pid), x.id::text, count(*)
    ///  FROM pg_stat_activity, vv x WHERE ... (1,2) < (x.id, 3) ... ORDER BY 2`.
    const TREE: &str = r#"(({QUERY :commandType 1 :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname pg_stat_activity :colnames ("datid" "a\ :funcid\ 99")} :rtekind 0 :relid 12222 :relkind v} {RANGETBLENTRY :relid 16437 :relkind v}) :jointree {FROMEXPR :quals {BOOLEXPR :boolop and :args ({OPEXPR :opno 98 :opfuncid 67 :opresulttype 16 :args ({VAR :varno 1 :vartype 25 :location 185} {CONST :consttype 25 :constvalue 10 [ 40 0 0 0 118 105 99 116 105 109 ]}) :location 201} {ROWCOMPAREEXPR :rctype 1 :opnos (o 97 97) :opfamilies (o 1976 1976)} {SCALARARRAYOPEXPR :opno 96 :opfuncid 65 :hashfuncid 0 :negfuncid 0 :args ({ARRAYEXPR :array_typeid 1007 :element_typeid 23})})}} :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid 2096 :funcresulttype 16 :args ({VAR :varno 1 :vartype 23})} :resno 1 :resname :funcid} {TARGETENTRY :expr {COERCEVIAIO :resulttype 25} :resname \:x} {TARGETENTRY :expr {AGGREF :aggfnoid 2803 :aggtype 20 :aggargtypes <>}}) :sortClause ({SORTGROUPCLAUSE :tleSortGroupRef 1 :eqop 98 :sortop 664})}))"#;

    #[test]
    fn every_function_operator_type_and_relation_is_read() {
        let found = references(TREE);
        assert_eq!(found.functions, BTreeSet::from([65, 67, 2096, 2803]));
        assert_eq!(found.operators, BTreeSet::from([96, 97, 98, 664]));
        assert_eq!(found.types, BTreeSet::from([16, 20, 23, 25, 1007]));
        assert_eq!(found.relations, BTreeSet::from([12222, 16437]));
        assert!(found.unknown_nodes.is_empty(), "{found:?}");
    }

    #[test]
    fn user_strings_cannot_pose_as_fields() {
        // An alias `a :funcid 99` is one escaped token; a column named
        // `:funcid` is followed by a field, not a number.
        let found = references(TREE);
        assert!(!found.functions.contains(&99));
    }

    #[test]
    fn unknown_nodes_are_reported() {
        let found = references(
            "({QUERY :targetList ({NEXTVALUEEXPR :seqid 16400 :typeId 20} {JSONEXPR :op 1})})",
        );
        assert_eq!(found.types, BTreeSet::from([20]));
        assert_eq!(found.unknown_nodes, BTreeSet::from(["JSONEXPR".to_owned()]));
    }

    #[test]
    fn a_query_that_changes_rows_is_a_write() {
        assert!(!references(TREE).writes);
        assert!(references("({QUERY :commandType 3 :resultRelation 1})").writes);
        assert!(references("({QUERY :commandType 1 :hasModifyingCTE true})").writes);
    }

    #[test]
    fn known_nodes_are_sorted() {
        assert!(KNOWN_NODES.windows(2).all(|w| w[0] < w[1]));
    }
}
