//! Check: is `subject` a member of `resource#permission`?
//!
//! Mirrors SpiceDB's dispatch structure: every computed-userset hop, arrow hop and subject-set hop
//! is a dispatch that costs one unit of depth.

use pemba_schema::{Arrow, ArrowFunction, Member, Relation, Rewrite};
use pemba_types::{ObjectRef, Relationship, SubjectRef};

use crate::{is_self_member, Engine, EngineError, Permissionship, RelationshipSnapshot};
use pemba_schema::AllowedSubjectKind;

impl<S: RelationshipSnapshot> Engine<'_, S> {
    /// Checks whether `subject` has `permission` (a relation or permission) on `resource`.
    pub fn check(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject: &SubjectRef,
    ) -> Result<Permissionship, EngineError> {
        self.validate_resource(resource, permission)?;
        self.validate_subject(subject)?;
        if subject.is_wildcard() {
            return Err(EngineError::WildcardSubject);
        }
        Ok(
            if self.is_member(resource, permission, subject, self.max_depth)? {
                Permissionship::HasPermission
            } else {
                Permissionship::NoPermission
            },
        )
    }

    /// One dispatch: membership of `subject` in `resource#name`, with `depth` dispatches left.
    pub(crate) fn is_member(
        &self,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<bool, EngineError> {
        if depth == 0 {
            return Err(EngineError::MaxDepthExceeded);
        }
        if is_self_member(resource, name, subject) {
            return Ok(true);
        }
        match self.member(&resource.object_type, name)? {
            Member::Relation(relation) => self.is_direct_member(resource, relation, subject, depth),
            Member::Permission(permission) => {
                self.rewrite_has_member(resource, &permission.rewrite, subject, depth)
            }
        }
    }

    fn is_direct_member(
        &self,
        resource: &ObjectRef,
        relation: &Relation,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<bool, EngineError> {
        let subject_type = &subject.object.object_type;
        let allows_exact = relation.allowed.iter().any(|a| {
            a.subject_type == *subject_type
                && match &a.kind {
                    AllowedSubjectKind::Object => subject.relation.is_none(),
                    AllowedSubjectKind::Relation(r) => subject.relation.as_ref() == Some(r),
                    AllowedSubjectKind::Wildcard => false,
                }
        });
        // As in SpiceDB, a stored `type:*` grants every subject of that type, whatever its relation.
        let allows_wildcard = relation
            .allowed
            .iter()
            .any(|a| a.subject_type == *subject_type && a.kind == AllowedSubjectKind::Wildcard);
        let relationships = self.usable_subjects(resource, &relation.name)?;
        for r in &relationships {
            let exact = allows_exact && r.subject == *subject;
            let wildcard = allows_wildcard
                && r.subject.is_wildcard()
                && r.subject.relation.is_none()
                && r.subject.object.object_type == *subject_type;
            if exact || wildcard {
                return Ok(true);
            }
        }
        for r in &relationships {
            if let Some(subject_relation) = &r.subject.relation {
                if self.is_member(&r.subject.object, subject_relation, subject, depth - 1)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn rewrite_has_member(
        &self,
        resource: &ObjectRef,
        rewrite: &Rewrite,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<bool, EngineError> {
        match rewrite {
            Rewrite::Union(children) => {
                for child in children {
                    if self.rewrite_has_member(resource, child, subject, depth)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rewrite::Intersection(children) => {
                for child in children {
                    if !self.rewrite_has_member(resource, child, subject, depth)? {
                        return Ok(false);
                    }
                }
                Ok(!children.is_empty())
            }
            Rewrite::Exclusion(base, subtracted) => Ok(self
                .rewrite_has_member(resource, base, subject, depth)?
                && !self.rewrite_has_member(resource, subtracted, subject, depth)?),
            Rewrite::Computed(name) => self.is_member(resource, name, subject, depth - 1),
            Rewrite::Arrow(arrow) => self.arrow_has_member(resource, arrow, subject, depth),
            Rewrite::Nil => Ok(false),
        }
    }

    fn arrow_has_member(
        &self,
        resource: &ObjectRef,
        arrow: &Arrow,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<bool, EngineError> {
        let relationships = self.usable_subjects(resource, &arrow.tupleset)?;
        match arrow.function {
            ArrowFunction::Any => {
                for r in &relationships {
                    let target = &r.subject.object;
                    if self.has_member(&target.object_type, &arrow.computed)
                        && self.is_member(target, &arrow.computed, subject, depth - 1)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            ArrowFunction::All => {
                for r in &relationships {
                    let target = &r.subject.object;
                    // A walked-to type without the member grants nothing, so `.all` fails.
                    if !self.has_member(&target.object_type, &arrow.computed)
                        || !self.is_member(target, &arrow.computed, subject, depth - 1)?
                    {
                        return Ok(false);
                    }
                }
                Ok(!relationships.is_empty())
            }
        }
    }

    /// The relationships of `resource#relation` that count now: expired ones are left out; caveated
    /// ones cannot be evaluated yet and fail the request rather than give a wrong answer.
    pub(crate) fn usable_subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Relationship>, EngineError> {
        let mut relationships = self.snapshot.subjects(resource, relation)?;
        relationships.retain(|r| r.expires_at.is_none_or(|at| at > self.now));
        if let Some(caveated) = relationships.iter().find_map(|r| r.caveat.as_ref()) {
            return Err(EngineError::CaveatsUnsupported(caveated.name.clone()));
        }
        Ok(relationships)
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{engine_fixture, obj, subj};
    use crate::{EngineError, Permissionship::*};

    const SCHEMA: &str = r#"
        definition user {}
        definition group {
            relation member: user | group#member
        }
        definition folder {
            relation parent: folder
            relation viewer: user | group#member
            permission view = viewer + parent->view
        }
        definition document {
            relation parent: folder
            relation owner: user
            relation viewer: user | user:* | group#member
            relation banned: user
            permission edit = owner
            permission view = (viewer + edit + parent->view) - banned
            permission view_all_parents = parent.all(view)
            permission nothing = viewer & nil
        }
    "#;

    const RELATIONSHIPS: &[&str] = &[
        "group:eng#member@user:alice",
        "group:eng#member@group:leads#member",
        "group:leads#member@user:lena",
        "folder:root#viewer@group:eng#member",
        "folder:sub#parent@folder:root",
        "folder:other#viewer@user:oscar",
        "document:plan#parent@folder:sub",
        "document:plan#owner@user:olga",
        "document:plan#banned@user:alice",
        "document:public#viewer@user:*",
        "document:public#banned@user:bob",
        "document:two#parent@folder:sub",
        "document:two#parent@folder:other",
    ];

    #[test]
    fn checks_follow_unions_arrows_groups_and_exclusions() {
        engine_fixture(SCHEMA, RELATIONSHIPS, |engine| {
            let check = |resource: &str, permission: &str, subject: &str| {
                engine
                    .check(&obj(resource), permission, &subj(subject))
                    .unwrap()
            };
            assert_eq!(check("document:plan", "view", "user:lena"), HasPermission);
            assert_eq!(check("document:plan", "view", "user:olga"), HasPermission);
            assert_eq!(
                check("document:plan", "view", "user:alice"),
                NoPermission,
                "banned"
            );
            assert_eq!(check("document:plan", "view", "user:oscar"), NoPermission);
            assert_eq!(check("document:plan", "edit", "user:lena"), NoPermission);
            assert_eq!(
                check("document:public", "view", "user:anyone"),
                HasPermission
            );
            assert_eq!(check("document:public", "view", "user:bob"), NoPermission);
            assert_eq!(check("document:plan", "nothing", "user:olga"), NoPermission);
            assert_eq!(
                check("document:two", "view_all_parents", "user:oscar"),
                NoPermission
            );
            assert_eq!(
                check("document:two", "view_all_parents", "user:lena"),
                NoPermission
            );
            assert_eq!(
                check("document:plan", "view_all_parents", "user:lena"),
                HasPermission
            );
            assert_eq!(
                check("document:public", "view_all_parents", "user:lena"),
                NoPermission
            );
            assert_eq!(
                check("folder:root", "view", "group:leads#member"),
                HasPermission
            );
            assert_eq!(
                check("group:eng", "member", "group:eng#member"),
                HasPermission
            );
            assert_eq!(
                check("group:leads", "member", "group:eng#member"),
                NoPermission
            );
        });
    }

    #[test]
    fn bad_requests_are_errors() {
        engine_fixture(SCHEMA, RELATIONSHIPS, |engine| {
            let err = |resource: &str, permission: &str, subject: &str| {
                engine
                    .check(&obj(resource), permission, &subj(subject))
                    .unwrap_err()
            };
            assert_eq!(
                err("document:plan", "view", "user:*"),
                EngineError::WildcardSubject
            );
            assert_eq!(
                err("nodoc:plan", "view", "user:tom").to_string(),
                "object definition `nodoc` not found"
            );
            assert_eq!(
                err("document:plan", "viewz", "user:tom").to_string(),
                "relation/permission `viewz` not found under definition `document`"
            );
            assert_eq!(
                err("document:plan", "view", "robot:r2").to_string(),
                "object definition `robot` not found"
            );
            assert_eq!(
                err("document:plan", "view", "group:eng#admins").to_string(),
                "relation/permission `admins` not found under definition `group`"
            );
        });
    }

    #[test]
    fn cycles_end_in_a_depth_error() {
        let rels = [
            "group:a#member@group:b#member",
            "group:b#member@group:a#member",
        ];
        engine_fixture(SCHEMA, &rels, |engine| {
            let result = engine.check(&obj("group:a"), "member", &subj("user:x"));
            assert_eq!(result, Err(EngineError::MaxDepthExceeded));
        });
    }
}
