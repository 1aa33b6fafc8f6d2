//! Refusing schema changes that would orphan stored relationships, with SpiceDB's messages.

use pemba_engine::{allowed_subject_source, subject_type_of};
use pemba_schema::{CompiledSchema, Member};
use pemba_types::Relationship;

/// Finds a relationship of a resource type (or any type, for `None`) that satisfies a predicate.
pub type FindRelationship<'a> =
    dyn Fn(Option<&str>, &dyn Fn(&Relationship) -> bool) -> Option<Relationship> + 'a;

/// Checks that replacing `old` with `new` leaves every stored relationship valid: no definition,
/// relation or allowed subject type that a relationship uses may disappear.
pub fn check_schema_change(
    old: &CompiledSchema,
    new: &CompiledSchema,
    find: &FindRelationship<'_>,
) -> Result<(), String> {
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
                        return Err(format!(
                            "cannot delete relation `{}` in object definition `{name}`, as at least one relationship exists under it: {r}",
                            relation.name
                        ));
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
                    return Err(format!(
                        "cannot remove allowed type `{}` from relation `{}` in object definition `{name}`, as a relationship exists with it: {r}",
                        allowed_subject_source(allowed),
                        relation.name
                    ));
                }
            }
        }
    }
    for old_definition in &old.definitions {
        let name = old_definition.name.as_str();
        if new.definition(name).is_none() {
            if let Some(r) = find(Some(name), &|_| true) {
                return Err(format!(
                    "cannot delete object definition `{name}`, as at least one relationship exists under it: {r}"
                ));
            }
        }
    }
    Ok(())
}
