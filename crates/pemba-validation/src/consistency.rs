//! The cross-check SpiceDB's integration suite runs on every validation file: for every resource,
//! every relation and permission of its type, and every subject in the file, Check,
//! LookupResources and LookupSubjects must give the same answer.

use std::collections::{BTreeMap, BTreeSet};

use pemba_engine::{Engine, EngineError, FoundSubject, Permissionship, RelationshipSnapshot};
use pemba_schema::CompiledSchema;
use pemba_types::{ObjectRef, Relationship, SubjectRef, WILDCARD_ID};

use crate::file::Assertions;
use crate::Answer;

/// How many (resource, permission, subject) triples were compared, and every disagreement.
pub struct CrossCheck {
    pub checks: usize,
    pub failures: Vec<String>,
}

/// A LookupResources question: resource type, permission, subject.
type ResourcesQuery = (String, String, SubjectRef);
/// A LookupSubjects question: resource, permission, subject type and relation.
type SubjectsQuery = (ObjectRef, String, String, Option<String>);

/// Objects and subjects the file mentions, from relationships and assertions.
fn mentioned(
    relationships: &[Relationship],
    assertions: &Assertions,
) -> (BTreeSet<ObjectRef>, BTreeSet<SubjectRef>) {
    let asserted = [
        &assertions.assert_true,
        &assertions.assert_caveated,
        &assertions.assert_false,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter_map(|a| crate::parse_assertion(a).ok().map(|(r, _)| r));
    let mut objects = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    for r in relationships.iter().cloned().chain(asserted) {
        objects.insert(r.resource);
        if !r.subject.is_wildcard() {
            objects.insert(r.subject.object.clone());
            if r.subject.relation.is_some() {
                subjects.insert(r.subject);
            }
        }
    }
    subjects.extend(objects.iter().map(|o| SubjectRef::new(o.clone(), None)));
    (objects, subjects)
}

/// What LookupSubjects says of `id`: its own entry or what the wildcard grants it, whichever is
/// surer (an exclusion takes the wildcard's grant away, surely or conditionally).
fn listed_answer(found: &[FoundSubject], id: &str) -> Answer {
    let own = found
        .iter()
        .find(|f| f.subject_id == id)
        .map_or(Answer::No, |entry| Answer::of(&entry.permissionship));
    let through_wildcard =
        found
            .iter()
            .find(|f| f.subject_id == WILDCARD_ID)
            .map_or(Answer::No, |wildcard| {
                let excluded = wildcard
                    .excluded_subjects
                    .iter()
                    .find(|e| e.subject_id == id)
                    .map_or(Answer::No, |e| Answer::of(&e.permissionship));
                Answer::of(&wildcard.permissionship).min(excluded.not())
            });
    own.max(through_wildcard)
}

pub fn cross_check<S: RelationshipSnapshot>(
    schema: &CompiledSchema,
    engine: &Engine<'_, S>,
    relationships: &[Relationship],
    assertions: &Assertions,
) -> CrossCheck {
    let (objects, subjects) = mentioned(relationships, assertions);
    let subject_is_valid = |s: &SubjectRef| {
        schema
            .definition(&s.object.object_type)
            .is_some_and(|d| s.relation.as_ref().is_none_or(|r| d.member(r).is_some()))
    };
    let subjects: Vec<&SubjectRef> = subjects.iter().filter(|s| subject_is_valid(s)).collect();

    let mut resources_cache: BTreeMap<
        ResourcesQuery,
        Result<Vec<(String, Permissionship)>, EngineError>,
    > = BTreeMap::new();
    let mut subjects_cache: BTreeMap<SubjectsQuery, Result<Vec<FoundSubject>, EngineError>> =
        BTreeMap::new();
    let mut result = CrossCheck {
        checks: 0,
        failures: Vec::new(),
    };

    for resource in &objects {
        let Some(definition) = schema.definition(&resource.object_type) else {
            continue;
        };
        for member in &definition.members {
            let permission = member.name();
            for subject in &subjects {
                result.checks += 1;
                let triple = format!("{resource}#{permission}@{subject}");
                let checked = match engine.check(resource, permission, subject) {
                    Ok(answer) => Answer::of(&answer),
                    Err(e) => {
                        result
                            .failures
                            .push(format!("check `{triple}` failed: {e}"));
                        continue;
                    }
                };

                let key = (
                    resource.object_type.clone(),
                    permission.to_string(),
                    (*subject).clone(),
                );
                let resources = resources_cache.entry(key).or_insert_with(|| {
                    engine.lookup_resources(&resource.object_type, permission, subject)
                });
                match resources {
                    Ok(found) => {
                        let looked_up = found
                            .iter()
                            .find(|(id, _)| *id == resource.object_id)
                            .map_or(Answer::No, |(_, p)| Answer::of(p));
                        if looked_up != checked {
                            result.failures.push(format!(
                                "check `{triple}` says {checked:?} but LookupResources says {looked_up:?} for `{}`",
                                resource.object_id
                            ));
                        }
                    }
                    Err(e) => result
                        .failures
                        .push(format!("LookupResources for `{triple}` failed: {e}")),
                }

                let key = (
                    resource.clone(),
                    permission.to_string(),
                    subject.object.object_type.clone(),
                    subject.relation.clone(),
                );
                let found = subjects_cache.entry(key).or_insert_with(|| {
                    engine.lookup_subjects(
                        resource,
                        permission,
                        &subject.object.object_type,
                        subject.relation.as_deref(),
                    )
                });
                match found {
                    Ok(found) => {
                        let id = &subject.object.object_id;
                        let listed = listed_answer(found, id);
                        if listed != checked {
                            result.failures.push(format!(
                                "check `{triple}` says {checked:?} but LookupSubjects says {listed:?} for `{id}`"
                            ));
                        }
                    }
                    Err(e) => result
                        .failures
                        .push(format!("LookupSubjects for `{triple}` failed: {e}")),
                }
            }
        }
    }
    result
}
