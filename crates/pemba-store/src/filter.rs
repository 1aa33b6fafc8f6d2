//! Relationship filters (ReadRelationships, DeleteRelationships, preconditions), as SpiceDB's
//! `RelationshipFilter` defines them.

use pemba_types::Relationship;
use serde::{Deserialize, Serialize};

/// Matches relationships field by field; an absent field matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipFilter {
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// What the resource's id begins with.
    pub resource_id_prefix: Option<String>,
    /// The relation.
    pub relation: Option<String>,
    /// The subject.
    pub subject: Option<SubjectFilter>,
}

/// Matches a relationship's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectFilter {
    /// The subject's type.
    pub subject_type: String,
    /// The subject's id.
    pub subject_id: Option<String>,
    /// `None`: any subject relation. `Some(None)`: only the object itself (`...`).
    /// `Some(Some(r))`: only subject relation `r`.
    pub relation: Option<Option<String>>,
}

impl RelationshipFilter {
    /// Whether `r` matches every field given.
    pub fn matches(&self, r: &Relationship) -> bool {
        let equal =
            |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        equal(&self.resource_type, &r.resource.object_type)
            && equal(&self.resource_id, &r.resource.object_id)
            && self
                .resource_id_prefix
                .as_deref()
                .is_none_or(|p| r.resource.object_id.starts_with(p))
            && equal(&self.relation, &r.relation)
            && self.subject.as_ref().is_none_or(|s| {
                s.subject_type == r.subject.object.object_type
                    && equal(&s.subject_id, &r.subject.object.object_id)
                    && s.relation
                        .as_ref()
                        .is_none_or(|rel| *rel == r.subject.relation)
            })
    }
}

/// A write's precondition: some relationship must (or must not) match the filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// Whether a match must exist (else must not).
    pub must_match: bool,
    /// What is matched.
    pub filter: RelationshipFilter,
}
