//! The compiled, type-checked schema that the engine evaluates.
//!
//! Invariants upheld by [`crate::compile`]: every name referenced by a rewrite or an allowed subject
//! exists; relation and permission names are unique within a definition; definition names are unique;
//! arrows only walk relations (never permissions) that allow no wildcard.

use std::collections::BTreeMap;
use std::sync::Arc;

use pemba_caveats::Caveat;

/// A whole schema: object definitions and caveat definitions, in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSchema {
    pub definitions: Vec<Definition>,
    pub caveats: Vec<CaveatDefinition>,
    /// `use expiration` was declared.
    pub uses_expiration: bool,
    definition_index: BTreeMap<String, usize>,
}

impl CompiledSchema {
    /// Builds the schema and its name index. Callers (the compiler) guarantee unique names.
    pub fn new(
        definitions: Vec<Definition>,
        caveats: Vec<CaveatDefinition>,
        uses_expiration: bool,
    ) -> Self {
        let definition_index = definitions
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        Self {
            definitions,
            caveats,
            uses_expiration,
            definition_index,
        }
    }

    pub fn caveat(&self, name: &str) -> Option<&CaveatDefinition> {
        self.caveats.iter().find(|c| c.name == name)
    }

    pub fn definition(&self, name: &str) -> Option<&Definition> {
        self.definition_index
            .get(name)
            .map(|&i| &self.definitions[i])
    }

    /// True if some relation admits the subject set `object_type#relation`.
    pub fn admits_subject_set(&self, object_type: &str, relation: &str) -> bool {
        self.definitions
            .iter()
            .flat_map(Definition::relations)
            .any(|r| {
                r.allowed.iter().any(|a| {
                    a.subject_type == object_type
                        && matches!(&a.kind, AllowedSubjectKind::Relation(name) if name == relation)
                })
            })
    }
}

/// `definition name { … }`: an object type with its relations and permissions.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    /// Doc comments written directly above the definition (everything between the previous
    /// statement and the keyword), with their `/** */` or `//`; each line of a comment is trimmed
    /// of surrounding whitespace, as SpiceDB stores them. Relations, permissions and caveats keep
    /// theirs the same way.
    pub doc_comments: Vec<String>,
    pub members: Vec<Member>,
    member_index: BTreeMap<String, usize>,
}

impl Definition {
    /// Builds the definition and its name index. Callers (the compiler) guarantee unique member names.
    pub fn new(name: String, doc_comments: Vec<String>, members: Vec<Member>) -> Self {
        let member_index = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name().to_string(), i))
            .collect();
        Self {
            name,
            doc_comments,
            members,
            member_index,
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.member_index.get(name).map(|&i| &self.members[i])
    }

    pub fn relation(&self, name: &str) -> Option<&Relation> {
        match self.member(name)? {
            Member::Relation(r) => Some(r),
            Member::Permission(_) => None,
        }
    }

    pub fn relations(&self) -> impl Iterator<Item = &Relation> {
        self.members.iter().filter_map(|m| match m {
            Member::Relation(r) => Some(r),
            Member::Permission(_) => None,
        })
    }
}

/// A relation (stores relationships) or a permission (computed from other members).
#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    Relation(Relation),
    Permission(Permission),
}

impl Member {
    pub fn name(&self) -> &str {
        match self {
            Member::Relation(r) => &r.name,
            Member::Permission(p) => &p.name,
        }
    }
}

/// `relation name: user | group#member | user:*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub name: String,
    pub doc_comments: Vec<String>,
    /// Allowed subject types, in source order; never empty.
    pub allowed: Vec<AllowedSubject>,
}

/// One alternative of a relation's type: `user`, `user:*`, `group#member`, each optionally
/// `with caveat_name`, `with expiration` or `with caveat_name and expiration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSubject {
    pub subject_type: String,
    pub kind: AllowedSubjectKind,
    pub caveat: Option<String>,
    pub expiration: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedSubjectKind {
    /// `user`: the object itself (subject relation `...`).
    Object,
    /// `user:*`: the public wildcard of the type.
    Wildcard,
    /// `group#member`: the subjects of a relation or permission of that type.
    Relation(String),
}

/// `permission name = expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub name: String,
    pub doc_comments: Vec<String>,
    pub rewrite: Rewrite,
}

/// A permission's expression. Unions and intersections are flattened (`a + b + c` is one union of
/// three children), exclusions stay binary and left-associative, as SpiceDB compiles them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    Union(Vec<Rewrite>),
    Intersection(Vec<Rewrite>),
    Exclusion(Box<Rewrite>, Box<Rewrite>),
    /// A reference to another relation or permission of the same object.
    Computed(String),
    Arrow(Arrow),
    /// The empty set.
    Nil,
}

/// `tupleset->computed` (any), `tupleset.any(computed)` or `tupleset.all(computed)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    /// A relation (never a permission) of the same object, whose subjects' objects are followed.
    pub tupleset: String,
    /// The relation or permission evaluated on each followed object.
    pub computed: String,
    pub function: ArrowFunction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowFunction {
    /// Granted if the computed member holds on any followed object (`->` and `.any()`).
    Any,
    /// Granted if there is at least one followed object and it holds on all of them (`.all()`).
    All,
}

/// `caveat name(param type, …) { expression }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaveatDefinition {
    pub name: String,
    pub doc_comments: Vec<String>,
    /// Parameter names and their type expressions as written (`int`, `list<string>`).
    pub parameters: Vec<(String, String)>,
    /// The CEL expression between the braces, verbatim.
    pub expression: String,
    /// The expression compiled and type-checked over the parameters.
    pub compiled: CompiledCaveat,
}

/// A compiled caveat, shared by every clone of the schema. It is a function of the definition's
/// parameters and expression, so definitions equal in those are equal in this too: equality
/// has nothing to compare here.
#[derive(Debug, Clone)]
pub struct CompiledCaveat(pub Arc<Caveat>);

impl PartialEq for CompiledCaveat {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for CompiledCaveat {}
