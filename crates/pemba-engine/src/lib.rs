//! Pemba's permission engine: answers Check, Expand, LookupResources and LookupSubjects over one
//! [`RelationshipSnapshot`] under one [`CompiledSchema`], with SpiceDB's semantics.
//!
//! The engine is synchronous and holds no state between requests: every answer is a pure function of
//! (schema, snapshot, request). The one thing requests share is the snapshot's cache of
//! flattened subject sets ([`ClosureCache`]), which changes how fast an answer comes, never what
//! it is. Recursion is bounded by a dispatch depth (SpiceDB's default is 50);
//! exceeding it is an error, never a hang or a stack overflow.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod check;
mod closure;
mod error;
mod expand;
mod fixed;
mod lookup;
mod memo;
mod snapshot;
mod subject_set;
mod write_validation;

use std::sync::Arc;

use pemba_caveats::Truth;
use pemba_schema::{Arrow, CompiledSchema, Definition, Member};
use pemba_types::{ObjectRef, SubjectRef};
use serde_json::{Map, Value as Json};

pub use closure::ClosureCache;
pub use error::EngineError;
pub use expand::{ExpandNode, ExpandTree, SetOperation};
pub use fixed::FixedSnapshot;
pub use snapshot::{DirectRelationships, RelationshipSnapshot, SnapshotError};
pub use subject_set::FoundSubject;
pub use write_validation::{
    allowed_subject_source, subject_type_of, validate_deletion, validate_relationship,
    RelationshipError,
};

/// SpiceDB's default maximum dispatch depth.
pub const DEFAULT_MAX_DEPTH: u32 = 50;

/// The answer to a permission check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissionship {
    NoPermission,
    HasPermission,
    /// The answer depends on caveat parameters the request's context does not give: their
    /// names, sorted and without duplicates.
    Conditional {
        missing_context: Vec<String>,
    },
}

impl From<Truth> for Permissionship {
    fn from(truth: Truth) -> Self {
        match truth {
            Truth::True => Permissionship::HasPermission,
            Truth::False => Permissionship::NoPermission,
            Truth::Partial(missing) => Permissionship::Conditional {
                missing_context: missing.into_iter().collect(),
            },
        }
    }
}

/// Whether Expand follows subject sets found on relations (`group:eng#member`) into their own trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandMode {
    /// One level: subject sets are listed as leaves. The API's ExpandPermissionTree.
    Shallow,
    /// Subject sets are expanded too; used by validation files to compute every reachable subject.
    Recursive,
}

/// Evaluates requests against one schema and one snapshot.
pub struct Engine<'a, S> {
    schema: &'a CompiledSchema,
    snapshot: &'a S,
    max_depth: u32,
    /// The request's caveat context; a relationship's written context overrides it. Shared with
    /// the engines LookupResources derives for its hints.
    context: Arc<Map<String, Json>>,
    /// LookupResources' entrypoint hint: on this resource, for this subject, this member (or
    /// arrow) counts as unconditionally granted wherever it occurs (see `lookup`).
    hint: Option<Hint>,
    /// Sub-problems already answered by this engine (one request's worth).
    memo: memo::Memo<'a>,
    /// The relationships of the subject a flattened check last looked up, with the limit it
    /// was read with (`None`: more than that).
    memberships: std::cell::RefCell<Option<Memberships>>,
}

/// A subject object's relationships, read once per request for flattened checks.
type Memberships = (
    ObjectRef,
    usize,
    Option<Arc<[Arc<pemba_types::Relationship>]>>,
);

impl<'a, S: RelationshipSnapshot> Engine<'a, S> {
    pub fn new(schema: &'a CompiledSchema, snapshot: &'a S) -> Self {
        Self {
            schema,
            snapshot,
            max_depth: DEFAULT_MAX_DEPTH,
            context: Arc::default(),
            hint: None,
            memo: memo::Memo::default(),
            memberships: std::cell::RefCell::default(),
        }
    }

    /// The entrypoint LookupResources hinted as granted for `subject` on `resource`, if any.
    fn hinted(&self, resource: &ObjectRef, subject: &SubjectRef) -> Option<&HintedEntrypoint> {
        self.hint
            .as_ref()
            .filter(|h| h.resource == *resource && h.subject == *subject)
            .map(|h| &h.entrypoint)
    }

    /// True if `resource#relation@subject` is the entrypoint LookupResources hinted as a member.
    fn is_hinted(&self, resource: &ObjectRef, relation: &str, subject: &SubjectRef) -> bool {
        matches!(self.hinted(resource, subject), Some(HintedEntrypoint::Member(m)) if m == relation)
    }

    /// True if `arrow` on `resource` for `subject` is the entrypoint LookupResources hinted.
    fn is_hinted_arrow(&self, resource: &ObjectRef, arrow: &Arrow, subject: &SubjectRef) -> bool {
        matches!(self.hinted(resource, subject), Some(HintedEntrypoint::Arrow(a)) if a == arrow)
    }

    /// Evaluates caveats with `context` as the request's context.
    pub fn with_context(mut self, context: Map<String, Json>) -> Self {
        self.context = Arc::new(context);
        self
    }

    /// Sets the maximum dispatch depth (at least 1).
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth.max(1);
        self
    }

    fn definition(&self, object_type: &str) -> Result<&'a Definition, EngineError> {
        self.schema
            .definition(object_type)
            .ok_or_else(|| EngineError::UnknownDefinition(object_type.to_string()))
    }

    fn member(&self, object_type: &str, name: &str) -> Result<&'a Member, EngineError> {
        self.definition(object_type)?
            .member(name)
            .ok_or_else(|| EngineError::UnknownRelation {
                definition: object_type.to_string(),
                relation: name.to_string(),
            })
    }

    /// True if `object_type` defines a relation or permission `name` (used where SpiceDB skips
    /// arrow targets whose type lacks the walked-to member).
    fn has_member(&self, object_type: &str, name: &str) -> bool {
        self.schema
            .definition(object_type)
            .is_some_and(|d| d.member(name).is_some())
    }

    /// Checks that a subject names a defined type and, if it has a relation, a defined member.
    fn validate_subject(&self, subject: &SubjectRef) -> Result<(), EngineError> {
        let definition = self.definition(&subject.object.object_type)?;
        if let Some(relation) = &subject.relation {
            if definition.member(relation).is_none() {
                return Err(EngineError::UnknownRelation {
                    definition: subject.object.object_type.clone(),
                    relation: relation.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks that a resource type and one of its members exist.
    fn validate_resource(&self, resource: &ObjectRef, permission: &str) -> Result<(), EngineError> {
        self.member(&resource.object_type, permission).map(|_| ())
    }
}

/// What LookupResources counts as granted while it checks a candidate it entered through
/// `entrypoint` (SpiceDB's check hints).
#[derive(Debug, Clone)]
struct Hint {
    resource: ObjectRef,
    subject: SubjectRef,
    entrypoint: HintedEntrypoint,
}

#[derive(Debug, Clone)]
enum HintedEntrypoint {
    Member(String),
    Arrow(Arrow),
}

/// SpiceDB's "a subject set contains itself" rule: `group:eng#member` is a member of
/// `group:eng#member` without any relationship saying so.
fn is_self_member(resource: &ObjectRef, relation: &str, subject: &SubjectRef) -> bool {
    subject.relation.as_deref() == Some(relation) && subject.object == *resource
}

#[cfg(test)]
pub(crate) mod tests {
    use pemba_types::{ObjectRef, Relationship, SubjectRef};

    use crate::{Engine, FixedSnapshot, FoundSubject, Permissionship};

    pub fn obj(text: &str) -> ObjectRef {
        ObjectRef::parse(text).unwrap()
    }

    pub fn subj(text: &str) -> SubjectRef {
        SubjectRef::parse(text).unwrap()
    }

    /// LookupSubjects' answer in short: `tom`, `tom?` when conditional, `*-{sam,ann?}` for a
    /// wildcard with its exclusions (`?` for a conditional one).
    pub fn show_found(found: &[FoundSubject]) -> Vec<String> {
        let marked = |f: &FoundSubject| match f.permissionship {
            Permissionship::Conditional { .. } => format!("{}?", f.subject_id),
            _ => f.subject_id.clone(),
        };
        found
            .iter()
            .map(|f| {
                let excluded: Vec<String> = f.excluded_subjects.iter().map(marked).collect();
                if excluded.is_empty() {
                    marked(f)
                } else {
                    format!("{}-{{{}}}", marked(f), excluded.join(","))
                }
            })
            .collect()
    }

    /// Compiles `schema`, stores `relationships` and runs `body` against an engine over them.
    pub fn engine_fixture(
        schema: &str,
        relationships: &[&str],
        body: impl FnOnce(&Engine<'_, FixedSnapshot>),
    ) {
        let schema = pemba_schema::compile("test.zed", schema).unwrap();
        let snapshot = FixedSnapshot::new(
            relationships
                .iter()
                .map(|r| Relationship::parse(r).unwrap()),
        );
        body(&Engine::new(&schema, &snapshot));
    }
}
