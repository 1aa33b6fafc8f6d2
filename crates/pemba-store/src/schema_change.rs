//! Refusing schema changes that would orphan stored relationships, with SpiceDB's messages.

use pemba_engine::{allowed_subject_source, subject_type_of};
use pemba_schema::{CompiledSchema, Member};
use pemba_types::Relationship;

/// A schema change refused because a stored relationship would lose what it uses (SpiceDB's
/// messages, word for word); `example` is one such relationship.
#[derive(Debug, thiserror::Error)]
pub enum SchemaOrphan {
    /// A removed relation still has relationships.
    #[error("cannot delete relation `{relation}` in object definition `{definition}`, as at least one relationship exists under it: {example}")]
    Relation {
        /// The definition the relation was in.
        definition: String,
        /// The relation removed.
        relation: String,
        /// A relationship under it.
        example: Box<Relationship>,
    },
    /// A subject type a relation no longer allows is still used by a relationship.
    #[error("cannot remove allowed type `{allowed}` from relation `{relation}` in object definition `{definition}`, as a relationship exists with it: {example}")]
    AllowedType {
        /// The definition the relation is in.
        definition: String,
        /// The relation.
        relation: String,
        /// The subject type removed from what it allows.
        allowed: String,
        /// A relationship with that subject type.
        example: Box<Relationship>,
    },
    /// A removed definition still has relationships.
    #[error("cannot delete object definition `{definition}`, as at least one relationship exists under it: {example}")]
    Definition {
        /// The definition removed.
        definition: String,
        /// A relationship under it.
        example: Box<Relationship>,
    },
}

/// Finds a relationship of a resource type (or any type, for `None`) that satisfies a predicate.
pub type FindRelationship<'a> =
    dyn Fn(Option<&str>, &dyn Fn(&Relationship) -> bool) -> Option<Relationship> + 'a;

/// Checks that replacing `old` with `new` leaves every stored relationship valid: no definition,
/// relation or allowed subject type that a relationship uses may disappear.
pub fn check_schema_change(
    old: &CompiledSchema,
    new: &CompiledSchema,
    find: &FindRelationship<'_>,
) -> Result<(), SchemaOrphan> {
    for old_definition in &old.definitions {
        let name = old_definition.name.as_str();
        let Some(new_definition) = new.definition(name) else {
            continue;
        };
        for relation in old_definition.relations() {
            let new_relation = match new_definition.member(&relation.name) {
                Some(Member::Relation(r)) => r,
                _ => {
                    if let Some(r) = find(Some(name), &|r| r.relation == relation.name) {
                        return Err(SchemaOrphan::Relation {
                            definition: name.to_string(),
                            relation: relation.name.clone(),
                            example: Box::new(r),
                        });
                    }
                    continue;
                }
            };
            for allowed in relation
                .allowed
                .iter()
                .filter(|a| !new_relation.allowed.contains(a))
            {
                let uses = |r: &Relationship| {
                    r.relation == relation.name && subject_type_of(r) == *allowed
                };
                if let Some(r) = find(Some(name), &uses) {
                    return Err(SchemaOrphan::AllowedType {
                        definition: name.to_string(),
                        relation: relation.name.clone(),
                        allowed: allowed_subject_source(allowed),
                        example: Box::new(r),
                    });
                }
            }
        }
    }
    for old_definition in &old.definitions {
        let name = old_definition.name.as_str();
        if new.definition(name).is_none() {
            if let Some(r) = find(Some(name), &|_| true) {
                return Err(SchemaOrphan::Definition {
                    definition: name.to_string(),
                    example: Box::new(r),
                });
            }
        }
    }
    Ok(())
}
