//! The syntax tree: a schema as written, before any name is checked.
//!
//! Every name keeps its span so that the checker can point at it. Expressions and caveat types
//! are at most [`crate::MAX_NESTING_DEPTH`] levels deep (the parser enforces it), so recursive
//! walks over them cannot exhaust the stack.

use std::fmt;

use crate::lexer::Span;
use crate::model::ArrowFunction;

pub(crate) struct Schema {
    /// `use expiration` was declared.
    pub uses_expiration: bool,
    /// Definitions and caveats in source order.
    pub items: Vec<Item>,
}

pub(crate) enum Item {
    Definition(DefinitionAst),
    Caveat(CaveatAst),
}

/// A name as written (type paths joined with `/`), with the span of all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub text: String,
    pub span: Span,
}

pub(crate) struct DefinitionAst {
    pub name: Name,
    pub doc_comments: Vec<String>,
    pub members: Vec<MemberAst>,
}

pub(crate) enum MemberAst {
    Relation(RelationAst),
    Permission(PermissionAst),
}

impl MemberAst {
    pub fn name(&self) -> &Name {
        match self {
            MemberAst::Relation(r) => &r.name,
            MemberAst::Permission(p) => &p.name,
        }
    }
}

pub(crate) struct RelationAst {
    pub name: Name,
    pub doc_comments: Vec<String>,
    /// Never empty.
    pub subjects: Vec<SubjectAst>,
}

/// One alternative of a relation's type, e.g. `group#member with somecaveat`.
pub(crate) struct SubjectAst {
    pub subject_type: Name,
    pub kind: SubjectKindAst,
    pub caveat: Option<Name>,
    pub expiration: bool,
}

pub(crate) enum SubjectKindAst {
    /// `user` or `user#...`.
    Object,
    /// `user:*`.
    Wildcard,
    /// `group#member`.
    Relation(Name),
}

pub(crate) struct PermissionAst {
    pub name: Name,
    pub doc_comments: Vec<String>,
    pub expr: Expr,
}

/// A permission expression. `Union` and `Intersection` have at least two children (one per
/// operand of a chain of `+` or `&`); parentheses leave no trace.
pub(crate) enum Expr {
    Union(Vec<Expr>),
    Intersection(Vec<Expr>),
    Exclusion(Box<Expr>, Box<Expr>),
    Reference(Name),
    Arrow {
        tupleset: Name,
        computed: Name,
        function: ArrowFunction,
    },
    Nil,
}

pub(crate) struct CaveatAst {
    pub name: Name,
    pub doc_comments: Vec<String>,
    /// Never empty.
    pub parameters: Vec<ParameterAst>,
    /// The CEL expression from its first token to its last, verbatim.
    pub expression: String,
    /// The expression followed by its statement-ending line break, if any: the source whose
    /// lines SpiceDB quotes in CEL errors.
    pub expression_source: String,
    /// Byte offset of the expression in the schema text.
    pub expression_start: usize,
}

pub(crate) struct ParameterAst {
    pub name: Name,
    pub ty: TypeAst,
}

/// A caveat parameter type such as `map<list<int>>`.
pub(crate) struct TypeAst {
    pub name: Name,
    pub args: Vec<TypeAst>,
}

/// The canonical text of the type: no spaces, `, ` between arguments.
impl fmt::Display for TypeAst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name.text)?;
        if let Some((first, rest)) = self.args.split_first() {
            write!(f, "<{first}")?;
            for arg in rest {
                write!(f, ", {arg}")?;
            }
            f.write_str(">")?;
        }
        Ok(())
    }
}
