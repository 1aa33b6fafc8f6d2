//! LookupSubjects (which subjects of a type hold a permission on a resource) and LookupResources
//! (which resources of a type a subject holds a permission on).

use std::collections::{BTreeSet, VecDeque};

use pemba_schema::{Arrow, ArrowFunction, Member, Rewrite};
use pemba_types::{ObjectRef, SubjectRef, WILDCARD_ID};

use pemba_caveats::Truth;

use crate::subject_set::{FoundSubject, SubjectSet};
use crate::{
    is_self_member, Engine, EngineError, Hint, HintedEntrypoint, Permissionship,
    RelationshipSnapshot,
};

/// Where LookupResources enters a permission (see [`Engine::resource_truth`]).
enum Entrypoint<'s> {
    /// A member the permission names.
    Member(&'s str),
    Arrow(&'s Arrow),
}

/// The entrypoints of a permission's expression: the members and arrows in every branch of a
/// union and in the first operand of an intersection or exclusion, each with whether it lies
/// under an intersection or exclusion (then the permission is checked with it hinted).
fn first_entrypoints(rewrite: &Rewrite) -> Vec<(Entrypoint<'_>, bool)> {
    let mut found = Vec::new();
    let mut pending = vec![(rewrite, false)];
    while let Some((rewrite, checked)) = pending.pop() {
        match rewrite {
            Rewrite::Union(children) => pending.extend(children.iter().rev().map(|c| (c, checked))),
            Rewrite::Intersection(children) => pending.extend(children.first().map(|c| (c, true))),
            Rewrite::Exclusion(base, _) => pending.push((base, true)),
            Rewrite::Computed(name) => found.push((Entrypoint::Member(name), checked)),
            Rewrite::Arrow(arrow) => found.push((Entrypoint::Arrow(arrow), checked)),
            Rewrite::Nil => {}
        }
    }
    found
}

/// The kind of subject LookupSubjects looks for: a type, and a relation of it or none (`...`).
struct SubjectKind<'r> {
    object_type: &'r str,
    relation: Option<&'r str>,
}

impl<S: RelationshipSnapshot> Engine<'_, S> {
    /// Every subject of `subject_type` (with `subject_relation`, or the objects themselves when
    /// `None`) that has `permission` on `resource`, sorted by id. A wildcard is reported as `*` with
    /// the ids it excludes.
    pub fn lookup_subjects(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> Result<Vec<FoundSubject>, EngineError> {
        self.validate_resource(resource, permission)?;
        let definition = self.definition(subject_type)?;
        if let Some(relation) = subject_relation {
            if definition.member(relation).is_none() {
                return Err(EngineError::UnknownRelation {
                    definition: subject_type.to_string(),
                    relation: relation.to_string(),
                });
            }
        }
        let kind = SubjectKind {
            object_type: subject_type,
            relation: subject_relation,
        };
        Ok(self
            .subjects_of(resource, permission, &kind, self.max_depth)?
            .into_found())
    }

    /// One dispatch of LookupSubjects for `resource#name`.
    fn subjects_of(
        &self,
        resource: &ObjectRef,
        name: &str,
        kind: &SubjectKind<'_>,
        depth: u32,
    ) -> Result<SubjectSet, EngineError> {
        if depth == 0 {
            return Err(EngineError::MaxDepthExceeded);
        }
        let mut found = SubjectSet::default();
        if resource.object_type == kind.object_type && kind.relation == Some(name) {
            found.add(&resource.object_id, Truth::True);
        }
        match self.member(&resource.object_type, name)? {
            Member::Relation(relation) => {
                for r in self.snapshot.subjects(resource, &relation.name)? {
                    let holds = self.caveat_truth(&r)?;
                    if holds == Truth::False {
                        continue;
                    }
                    if r.subject.object.object_type == kind.object_type
                        && r.subject.relation.as_deref() == kind.relation
                    {
                        found.add(&r.subject.object.object_id, holds.clone());
                    }
                    if let Some(subject_relation) = &r.subject.relation {
                        let mut reached =
                            self.subjects_of(&r.subject.object, subject_relation, kind, depth - 1)?;
                        reached.and_all(&holds);
                        found.union_with(&reached);
                    }
                }
            }
            Member::Permission(permission) => {
                found.union_with(&self.rewrite_subjects(
                    resource,
                    &permission.rewrite,
                    kind,
                    depth,
                )?);
            }
        }
        Ok(found)
    }

    fn rewrite_subjects(
        &self,
        resource: &ObjectRef,
        rewrite: &Rewrite,
        kind: &SubjectKind<'_>,
        depth: u32,
    ) -> Result<SubjectSet, EngineError> {
        match rewrite {
            Rewrite::Union(children) => {
                let mut found = SubjectSet::default();
                for child in children {
                    found.union_with(&self.rewrite_subjects(resource, child, kind, depth)?);
                }
                Ok(found)
            }
            Rewrite::Intersection(children) => {
                let mut children = children.iter();
                let Some(first) = children.next() else {
                    return Ok(SubjectSet::default());
                };
                let mut found = self.rewrite_subjects(resource, first, kind, depth)?;
                for child in children {
                    if found.is_empty() {
                        break;
                    }
                    found.intersect_with(&self.rewrite_subjects(resource, child, kind, depth)?);
                }
                Ok(found)
            }
            Rewrite::Exclusion(base, subtracted) => {
                let mut found = self.rewrite_subjects(resource, base, kind, depth)?;
                if !found.is_empty() {
                    found.subtract(&self.rewrite_subjects(resource, subtracted, kind, depth)?);
                }
                Ok(found)
            }
            Rewrite::Computed(name) => self.subjects_of(resource, name, kind, depth - 1),
            Rewrite::Arrow(arrow) => self.arrow_subjects(resource, arrow, kind, depth),
            Rewrite::Nil => Ok(SubjectSet::default()),
        }
    }

    fn arrow_subjects(
        &self,
        resource: &ObjectRef,
        arrow: &Arrow,
        kind: &SubjectKind<'_>,
        depth: u32,
    ) -> Result<SubjectSet, EngineError> {
        let mut found: Option<SubjectSet> = None;
        for r in self.snapshot.subjects(resource, &arrow.tupleset)? {
            let target = &r.subject.object;
            // Walked-to types without the member are skipped, for `.all` as well (as SpiceDB does).
            if !self.has_member(&target.object_type, &arrow.computed) {
                continue;
            }
            let holds = self.caveat_truth(&r)?;
            let mut subjects = if holds == Truth::False {
                SubjectSet::default()
            } else {
                self.subjects_of(target, &arrow.computed, kind, depth - 1)?
            };
            subjects.and_all(&holds);
            match (&mut found, arrow.function) {
                (None, _) => found = Some(subjects),
                (Some(acc), ArrowFunction::Any) => acc.union_with(&subjects),
                (Some(acc), ArrowFunction::All) => acc.intersect_with(&subjects),
            }
        }
        Ok(found.unwrap_or_default())
    }

    /// Every resource of `resource_type` on which `subject` has `permission` (or may have it,
    /// depending on missing caveat context), sorted by id.
    ///
    /// Candidates are the objects from which `subject` can be reached by walking relationships
    /// backwards (subject to resource); each candidate of the right type is then checked, so the
    /// answer always agrees with Check.
    pub fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
    ) -> Result<Vec<(String, Permissionship)>, EngineError> {
        self.member(resource_type, permission)?;
        self.validate_subject(subject)?;
        if subject.is_wildcard() {
            return Err(EngineError::WildcardLookup);
        }
        let mut found = Vec::new();
        for candidate in self.backward_reachable(&subject.object)? {
            if candidate.object_type != resource_type {
                continue;
            }
            let truth = self.resource_truth(&candidate, permission, subject, self.max_depth)?;
            if truth != Truth::False {
                found.push((candidate.object_id, truth.into()));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// How far `subject` has `name` on `resource` as SpiceDB's LookupResources finds it.
    ///
    /// SpiceDB walks in through the members a permission names first (every branch of a union,
    /// the first operand of an intersection or exclusion). A member reached that way holds as
    /// far as it does for LookupResources itself; under an intersection or exclusion, the
    /// permission is then checked with that member, for this resource and subject, counted as an
    /// unconditional member wherever it occurs. The answer is the surest over all entrypoints. It
    /// equals Check's, except that a caveated member subtracted from itself (`viewer - viewer`)
    /// gives nothing rather than a conditional answer.
    fn resource_truth(
        &self,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Truth, EngineError> {
        if depth == 0 {
            return Err(EngineError::MaxDepthExceeded);
        }
        if is_self_member(resource, name, subject) {
            return Ok(Truth::True);
        }
        let permission = match self.member(&resource.object_type, name)? {
            Member::Relation(_) => return self.is_member(resource, name, subject, depth),
            Member::Permission(permission) => permission,
        };
        let mut found = Truth::False;
        for (entrypoint, checked) in first_entrypoints(&permission.rewrite) {
            let (holds, hinted) = match entrypoint {
                Entrypoint::Member(member) => (
                    self.resource_truth(resource, member, subject, depth - 1)?,
                    HintedEntrypoint::Member(member.to_string()),
                ),
                Entrypoint::Arrow(arrow) => (
                    self.arrow_has_member(resource, arrow, subject, depth)?,
                    HintedEntrypoint::Arrow(arrow.clone()),
                ),
            };
            let truth = if holds == Truth::False || !checked {
                holds
            } else {
                // A hint changes answers: the hinted engine remembers its own.
                let hinted = Engine {
                    schema: self.schema,
                    snapshot: self.snapshot,
                    max_depth: self.max_depth,
                    context: self.context.clone(),
                    hint: Some(Hint {
                        resource: resource.clone(),
                        subject: subject.clone(),
                        entrypoint: hinted,
                    }),
                    memo: Default::default(),
                    memberships: Default::default(),
                };
                holds.and(hinted.is_member(resource, name, subject, depth)?)
            };
            found = found.or(truth);
            if found == Truth::True {
                break;
            }
        }
        Ok(found)
    }

    /// `start` and every object with a chain of relationships leading to it (or to its type's
    /// wildcard), in no particular order.
    fn backward_reachable(&self, start: &ObjectRef) -> Result<BTreeSet<ObjectRef>, EngineError> {
        let mut seen = BTreeSet::from([start.clone()]);
        let mut queue = VecDeque::from([start.clone()]);
        let mut wildcard_types_seen = BTreeSet::new();
        while let Some(object) = queue.pop_front() {
            let mut relationships = self.snapshot.resources_of(&object)?;
            if wildcard_types_seen.insert(object.object_type.clone()) {
                let wildcard = ObjectRef::new(object.object_type.clone(), WILDCARD_ID);
                relationships.extend(self.snapshot.resources_of(&wildcard)?);
            }
            for r in relationships {
                if seen.insert(r.resource.clone()) {
                    queue.push_back(r.resource.clone());
                }
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{engine_fixture, obj, show_found, subj};
    use crate::Permissionship;

    fn ids(found: Vec<(String, Permissionship)>) -> Vec<String> {
        found
            .into_iter()
            .map(|(id, p)| match p {
                Permissionship::Conditional { .. } => format!("{id}?"),
                _ => id,
            })
            .collect()
    }

    const SCHEMA: &str = r#"
        definition user {}
        definition group {
            relation member: user | group#member
        }
        definition document {
            relation parent: document
            relation viewer: user | user:* | group#member
            relation banned: user | user:*
            relation editor: user
            permission view = (viewer + parent->view) - banned
            permission edit_and_view = editor & viewer
            permission view_or_banned = view + banned
        }
    "#;

    #[test]
    fn lookup_subjects_reports_wildcards_with_exclusions() {
        let rels = [
            "document:a#viewer@user:*",
            "document:a#viewer@user:tom",
            "document:a#banned@user:sam",
            "document:b#parent@document:a",
            "document:b#viewer@group:eng#member",
            "group:eng#member@user:ann",
            "document:c#editor@user:ann",
            "document:c#editor@user:joe",
            "document:c#viewer@user:*",
            "document:d#viewer@user:ann",
            "document:d#banned@user:*",
        ];
        engine_fixture(SCHEMA, &rels, |engine| {
            let lookup = |resource: &str, permission: &str| {
                show_found(
                    &engine
                        .lookup_subjects(&obj(resource), permission, "user", None)
                        .unwrap(),
                )
            };
            assert_eq!(lookup("document:a", "view"), ["*-{sam}", "tom"]);
            assert_eq!(lookup("document:b", "view"), ["*-{sam}", "ann", "tom"]);
            assert_eq!(lookup("document:c", "edit_and_view"), ["ann", "joe"]);
            assert_eq!(lookup("document:d", "view"), Vec::<String>::new());
            // A subject excluded from the wildcard on one side of a union and granted on the
            // other is not excluded.
            assert_eq!(lookup("document:a", "view_or_banned"), ["*", "sam", "tom"]);
            let groups = engine
                .lookup_subjects(&obj("document:b"), "view", "group", Some("member"))
                .unwrap();
            assert_eq!(show_found(&groups), ["eng"]);
        });
    }

    #[test]
    fn lookup_resources_agrees_with_check() {
        let rels = [
            "document:a#viewer@group:eng#member",
            "document:b#parent@document:a",
            "document:c#viewer@user:*",
            "document:d#viewer@user:ann",
            "document:d#banned@user:ann",
            "group:eng#member@user:ann",
        ];
        engine_fixture(SCHEMA, &rels, |engine| {
            let found = engine
                .lookup_resources("document", "view", &subj("user:ann"))
                .unwrap();
            assert_eq!(ids(found), ["a", "b", "c"]);
            let found = engine
                .lookup_resources("document", "view", &subj("user:zed"))
                .unwrap();
            assert_eq!(ids(found), ["c"]);
            let found = engine
                .lookup_resources("group", "member", &subj("group:eng#member"))
                .unwrap();
            assert_eq!(ids(found), ["eng"]);
        });
    }

    const CAVEATED: &str = r#"
        caveat is_weekday(day string) { day != 'saturday' && day != 'sunday' }
        caveat at_office(ip ipaddress) { ip.in_cidr('10.0.0.0/8') }
        definition user {}
        definition document {
            relation viewer: user | user with is_weekday | user:* with at_office
            relation banned: user with is_weekday
            permission view = viewer - banned
        }
    "#;

    #[test]
    fn lookups_report_conditional_subjects_and_resources() {
        let rels = [
            "document:a#viewer@user:tom",
            "document:a#viewer@user:sam[is_weekday]",
            "document:a#viewer@user:ann[is_weekday:{\"day\":\"sunday\"}]",
            "document:a#banned@user:tom[is_weekday]",
            "document:b#viewer@user:*[at_office]",
            "document:b#banned@user:joe[is_weekday:{\"day\":\"monday\"}]",
            "document:b#banned@user:sue[is_weekday]",
        ];
        engine_fixture(CAVEATED, &rels, |engine| {
            let subjects = |resource: &str| {
                show_found(
                    &engine
                        .lookup_subjects(&obj(resource), "view", "user", None)
                        .unwrap(),
                )
            };
            assert_eq!(subjects("document:a"), ["sam?", "tom?"]);
            assert_eq!(subjects("document:b"), ["*?-{joe,sue?}"]);
            let resources = |user: &str| {
                ids(engine
                    .lookup_resources("document", "view", &subj(user))
                    .unwrap())
            };
            assert_eq!(resources("user:tom"), ["a?", "b?"]);
            assert_eq!(resources("user:joe"), Vec::<String>::new());
            assert_eq!(resources("user:ann"), ["b?"]);
        });
    }

    #[test]
    fn lookup_resources_counts_its_entrypoint_as_a_member_as_spicedb_does() {
        let schema = r#"
            caveat lvl(level int, required int) { level >= required }
            definition user {}
            definition res {
                relation rel0: user:* with lvl
                relation rel1: user:* with lvl
                permission itself = rel1 - rel1
                permission other = rel1 - rel0
            }
        "#;
        let rels = [
            r#"res:o3#rel0@user:*[lvl:{"required":1}]"#,
            r#"res:o3#rel1@user:*[lvl:{"required":1}]"#,
        ];
        engine_fixture(schema, &rels, |engine| {
            let conditional = Permissionship::Conditional {
                missing_context: vec!["level".to_string()],
            };
            for permission in ["itself", "other"] {
                let checked = engine
                    .check(&obj("res:o3"), permission, &subj("user:u4"))
                    .unwrap();
                assert_eq!(checked, conditional, "{permission}");
            }
            let found = |permission: &str| {
                ids(engine
                    .lookup_resources("res", permission, &subj("user:u4"))
                    .unwrap())
            };
            assert_eq!(found("itself"), Vec::<String>::new());
            assert_eq!(found("other"), ["o3?"]);
        });
    }
}
