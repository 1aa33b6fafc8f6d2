//! Check: is `subject` a member of `resource#permission`?
//!
//! Mirrors SpiceDB's dispatch structure: every computed-userset hop, arrow hop and subject-set hop
//! is a dispatch that costs one unit of depth. Membership is three-valued ([`Truth`]): a caveated
//! relationship counts as far as its caveat holds with the request's context, and set operations
//! combine with Kleene logic (union = or, intersection = and, exclusion = and not), as SpiceDB
//! combines caveat expressions.

use pemba_caveats::Truth;
use pemba_schema::{Arrow, ArrowFunction, Member, Relation, Rewrite};
use pemba_types::{ObjectRef, Relationship, SubjectRef};

use std::sync::Arc;

use crate::closure::{Closure, MAX_CLOSURE};
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
        Ok(Permissionship::from(self.is_member(
            resource,
            permission,
            subject,
            self.max_depth,
        )?))
    }

    /// One dispatch: membership of `subject` in `resource#name`, with `depth` dispatches left.
    pub(crate) fn is_member(
        &self,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Truth, EngineError> {
        if depth == 0 {
            return Err(EngineError::MaxDepthExceeded);
        }
        if is_self_member(resource, name, subject) || self.is_hinted(resource, name, subject) {
            return Ok(Truth::True);
        }
        let question = crate::memo::hash_of(resource, name, subject);
        if let Some(known) = self.memo.recall(question, resource, name, subject, depth) {
            return Ok(known);
        }
        let member = self.member(&resource.object_type, name)?;
        let (name, truth) = match member {
            Member::Relation(relation) => (
                relation.name.as_str(),
                self.is_direct_member(resource, relation, subject, depth)?,
            ),
            Member::Permission(permission) => (
                permission.name.as_str(),
                self.rewrite_has_member(resource, &permission.rewrite, subject, depth)?,
            ),
        };
        self.memo
            .remember(question, resource, name, subject, depth, truth.clone());
        Ok(truth)
    }

    fn is_direct_member(
        &self,
        resource: &ObjectRef,
        relation: &Relation,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Truth, EngineError> {
        let (allows_exact, allows_wildcard) = allowances(relation, subject);
        let mut found = Truth::False;
        let subject_type = &subject.object.object_type;
        let wildcard = allows_wildcard.then(|| SubjectRef::object(subject_type.clone(), "*"));
        let direct = self.snapshot.direct(
            resource,
            &relation.name,
            allows_exact.then_some(subject),
            wildcard.as_ref(),
        )?;
        // The subject itself, then its type's wildcard, then the subject sets.
        for r in [&direct.exact, &direct.wildcard].into_iter().flatten() {
            found = found.or(self.caveat_truth(r)?);
            if found == Truth::True {
                return Ok(found);
            }
        }
        for r in &direct.subject_sets {
            if let Some(subject_relation) = &r.subject.relation {
                let holds = self.caveat_truth(r)?;
                if holds == Truth::False {
                    continue;
                }
                let target = &r.subject.object;
                let member =
                    match self.flattened_member(target, subject_relation, subject, depth - 1)? {
                        Some(member) => member,
                        None => self.is_member(target, subject_relation, subject, depth - 1)?,
                    };
                found = found.or(holds.and(member));
                if found == Truth::True {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// Membership of `subject` in the relation `object#relation` (a subject set's target, with
    /// `depth` dispatches left), decided from the closure of the usersets it reaches (see
    /// [`crate::closure`]): the walk's answer, without the walk. `None` when it cannot be: the
    /// subject is itself a subject set, a hint is in force, there is no closure cache, or the
    /// closure holds a caveat, an expiration, a permission, a cycle, or a chain the walk would
    /// run out of depth on. (One difference from the walk: when the subject's caveated
    /// memberships include one whose caveat fails to evaluate and one that grants, this grants,
    /// where the walk answers with whichever it meets first; SpiceDB, which dispatches in
    /// parallel, does not fix that order either.)
    fn flattened_member(
        &self,
        object: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Option<Truth>, EngineError> {
        if subject.relation.is_some() || self.hint.is_some() {
            return Ok(None);
        }
        let Ok(Member::Relation(root)) = self.member(&object.object_type, relation) else {
            return Ok(None);
        };
        let Some(closure) = self.closure(object, relation, &mut Vec::new())? else {
            return Ok(None);
        };
        // The walk would reach the deepest userset with `depth - height` dispatches left.
        if closure.height() >= depth {
            return Ok(None);
        }
        let mut found = Truth::False;
        let mut failure = None;
        let mut consider = |r: &Relationship| match self.caveat_truth(r) {
            Ok(truth) => found = std::mem::replace(&mut found, Truth::False).or(truth),
            Err(e) => failure = failure.take().or(Some(e)),
        };
        // A schema cannot reach a wildcard through a subject set (SpiceDB refuses it), so one
        // that does is left to the walk.
        let wildcard_reached = allowances(root, subject).1
            || closure.kinds().iter().any(|(object_type, name)| {
                match self.member(object_type, name) {
                    Ok(Member::Relation(r)) => allowances(r, subject).1,
                    _ => true,
                }
            });
        if wildcard_reached {
            return Ok(None);
        }
        // Every kind of userset reached is a relation (checked when the closure was made).
        let admits = |object_type: &str, name: &str| matches!(self.member(object_type, name), Ok(Member::Relation(r)) if allowances(r, subject).0);
        let reached =
            |o: &ObjectRef, r: &str| (o == object && r == relation) || closure.contains(o, r);
        match self.memberships(&subject.object, closure.len() + 1)? {
            // The subject's own relationships are no more than the usersets: look at each.
            Some(memberships) => {
                for r in memberships.iter().filter(|r| r.subject == *subject) {
                    if reached(&r.resource, &r.relation)
                        && admits(&r.resource.object_type, &r.relation)
                    {
                        consider(r);
                    }
                }
            }
            None => {
                let root = std::iter::once((object, relation));
                for (object, name) in root.chain(closure.usersets()) {
                    if admits(&object.object_type, name) {
                        if let Some(r) = self.snapshot.relationship(object, name, subject)? {
                            consider(&r);
                        }
                    }
                }
            }
        }
        match (found, failure) {
            (Truth::True, _) => Ok(Some(Truth::True)),
            (_, Some(e)) => Err(e),
            (found, None) => Ok(Some(found)),
        }
    }

    /// The closure of `object#relation`, from the cache or computed (and cached); `None` if it
    /// cannot be flattened. `path` holds the usersets being computed, to find cycles.
    fn closure(
        &self,
        object: &ObjectRef,
        relation: &str,
        path: &mut Vec<(ObjectRef, String)>,
    ) -> Result<Option<Arc<Closure>>, EngineError> {
        let Some((cache, epoch)) = self.snapshot.closures() else {
            return Ok(None);
        };
        if let Some(known) = cache.get(epoch, object, relation) {
            return Ok(known);
        }
        if path.len() >= self.max_depth as usize
            || path.iter().any(|(o, r)| o == object && r == relation)
        {
            return Ok(None);
        }
        path.push((object.clone(), relation.to_string()));
        let computed = self.compute_closure(object, relation, path);
        path.pop();
        let known = computed?;
        cache.put(epoch, object, relation, known.clone());
        Ok(known)
    }

    fn compute_closure(
        &self,
        object: &ObjectRef,
        relation: &str,
        path: &mut Vec<(ObjectRef, String)>,
    ) -> Result<Option<Arc<Closure>>, EngineError> {
        let mut edges = Vec::new();
        let mut size = 0;
        for edge in self.snapshot.subject_sets(object, relation)? {
            if edge.caveat.is_some() || edge.expires_at.is_some() {
                return Ok(None);
            }
            let target = &edge.subject.object;
            let target_relation = edge.subject.relation.as_deref().unwrap_or_default();
            if !matches!(
                self.member(&target.object_type, target_relation),
                Ok(Member::Relation(_))
            ) {
                return Ok(None);
            }
            let Some(below) = self.closure(target, target_relation, path)? else {
                return Ok(None);
            };
            size += below.len() + 1;
            if size > MAX_CLOSURE {
                return Ok(None);
            }
            edges.push((edge, below));
        }
        Ok(Some(Arc::new(Closure::from_edges(edges))))
    }

    /// The relationships whose subject object is `subject`, if there are at most `limit`
    /// (read once per request and subject).
    fn memberships(
        &self,
        subject: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Arc<[Arc<Relationship>]>>, EngineError> {
        if let Some((known, read_limit, memberships)) = &*self.memberships.borrow() {
            if known == subject {
                match memberships {
                    Some(m) if m.len() <= limit => return Ok(Some(m.clone())),
                    None if limit <= *read_limit => return Ok(None),
                    _ => {}
                }
            }
        }
        let read = self
            .snapshot
            .resources_of_at_most(subject, limit)?
            .map(Arc::from);
        *self.memberships.borrow_mut() = Some((subject.clone(), limit, read.clone()));
        Ok(read)
    }

    fn rewrite_has_member(
        &self,
        resource: &ObjectRef,
        rewrite: &Rewrite,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Truth, EngineError> {
        match rewrite {
            Rewrite::Union(children) => {
                // A branch LookupResources hinted as granted goes first: a union holds as soon as
                // one branch does, so the answer is the same and the other branches' walks are
                // saved.
                let hinted = children
                    .iter()
                    .position(|child| self.is_hinted_branch(resource, child, subject));
                let others = (0..children.len()).filter(|i| Some(*i) != hinted);
                let mut found = Truth::False;
                for i in hinted.into_iter().chain(others) {
                    let child = &children[i];
                    found = found.or(self.rewrite_has_member(resource, child, subject, depth)?);
                    if found == Truth::True {
                        break;
                    }
                }
                Ok(found)
            }
            Rewrite::Intersection(children) => {
                if children.is_empty() {
                    return Ok(Truth::False);
                }
                let mut found = Truth::True;
                for child in children {
                    found = found.and(self.rewrite_has_member(resource, child, subject, depth)?);
                    if found == Truth::False {
                        break;
                    }
                }
                Ok(found)
            }
            Rewrite::Exclusion(base, subtracted) => {
                let base = self.rewrite_has_member(resource, base, subject, depth)?;
                if base == Truth::False {
                    return Ok(base);
                }
                let subtracted = self.rewrite_has_member(resource, subtracted, subject, depth)?;
                Ok(base.and(!subtracted))
            }
            Rewrite::Computed(name) => self.is_member(resource, name, subject, depth - 1),
            Rewrite::Arrow(arrow) if self.is_hinted_arrow(resource, arrow, subject) => {
                Ok(Truth::True)
            }
            Rewrite::Arrow(arrow) => self.arrow_has_member(resource, arrow, subject, depth),
            Rewrite::Nil => Ok(Truth::False),
        }
    }

    /// True if `rewrite` is the member or arrow LookupResources hinted as granted here.
    fn is_hinted_branch(
        &self,
        resource: &ObjectRef,
        rewrite: &Rewrite,
        subject: &SubjectRef,
    ) -> bool {
        match rewrite {
            Rewrite::Computed(name) => self.is_hinted(resource, name, subject),
            Rewrite::Arrow(arrow) => self.is_hinted_arrow(resource, arrow, subject),
            _ => false,
        }
    }

    pub(crate) fn arrow_has_member(
        &self,
        resource: &ObjectRef,
        arrow: &Arrow,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Truth, EngineError> {
        let relationships = self.snapshot.subjects(resource, &arrow.tupleset)?;
        match arrow.function {
            ArrowFunction::Any => {
                let mut found = Truth::False;
                for r in &relationships {
                    let target = &r.subject.object;
                    if !self.has_member(&target.object_type, &arrow.computed) {
                        continue;
                    }
                    let holds = self.caveat_truth(r)?;
                    if holds == Truth::False {
                        continue;
                    }
                    let member = self.is_member(target, &arrow.computed, subject, depth - 1)?;
                    found = found.or(holds.and(member));
                    if found == Truth::True {
                        break;
                    }
                }
                Ok(found)
            }
            ArrowFunction::All => {
                if relationships.is_empty() {
                    return Ok(Truth::False);
                }
                let mut found = Truth::True;
                for r in &relationships {
                    let target = &r.subject.object;
                    // A walked-to type without the member grants nothing, so `.all` fails.
                    if !self.has_member(&target.object_type, &arrow.computed) {
                        return Ok(Truth::False);
                    }
                    let holds = self.caveat_truth(r)?;
                    let member = if holds == Truth::False {
                        Truth::False
                    } else {
                        self.is_member(target, &arrow.computed, subject, depth - 1)?
                    };
                    found = found.and(holds.and(member));
                    if found == Truth::False {
                        break;
                    }
                }
                Ok(found)
            }
        }
    }

    /// Whether a relationship's caveat holds with the request's context: true for a relationship
    /// without caveat.
    pub(crate) fn caveat_truth(&self, relationship: &Relationship) -> Result<Truth, EngineError> {
        let Some(caveat) = &relationship.caveat else {
            return Ok(Truth::True);
        };
        let definition = self
            .schema
            .caveat(&caveat.name)
            .ok_or_else(|| EngineError::UnknownCaveat(caveat.name.clone()))?;
        Ok(definition
            .compiled
            .0
            .evaluate(&caveat.context, &self.context)?)
    }
}

/// Whether `relation` admits `subject` itself, and every subject of its type through a stored
/// wildcard (as in SpiceDB, a stored `type:*` grants every subject of that type, whatever its
/// relation).
fn allowances(relation: &Relation, subject: &SubjectRef) -> (bool, bool) {
    let subject_type = &subject.object.object_type;
    let exact = relation.allowed.iter().any(|a| {
        a.subject_type == *subject_type
            && match &a.kind {
                AllowedSubjectKind::Object => subject.relation.is_none(),
                AllowedSubjectKind::Relation(r) => subject.relation.as_ref() == Some(r),
                AllowedSubjectKind::Wildcard => false,
            }
    });
    let wildcard = relation
        .allowed
        .iter()
        .any(|a| a.subject_type == *subject_type && a.kind == AllowedSubjectKind::Wildcard);
    (exact, wildcard)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::tests::{engine_fixture, obj, subj};
    use crate::{Engine, EngineError, Permissionship::*};

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

    /// A snapshot's time decides expiry: a relationship expiring exactly then still counts.
    #[test]
    fn expirations_are_judged_at_the_snapshot_time() {
        use std::time::{Duration, SystemTime};

        use pemba_types::Relationship;

        use crate::FixedSnapshot;

        let schema = pemba_schema::compile(
            "test.zed",
            "use expiration\ndefinition user {}\ndefinition document {\n    relation viewer: user with expiration\n}",
        )
        .unwrap();
        let snapshot = FixedSnapshot::new([Relationship::parse(
            "document:a#viewer@user:tom[expiration:2030-01-01T00:00:00Z]",
        )
        .unwrap()]);
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        let answer = |time: SystemTime| {
            let snapshot = snapshot.clone().at_time(time);
            Engine::new(&schema, &snapshot).check(&obj("document:a"), "viewer", &subj("user:tom"))
        };
        assert_eq!(answer(expiry - Duration::from_secs(1)), Ok(HasPermission));
        assert_eq!(answer(expiry), Ok(HasPermission));
        assert_eq!(answer(expiry + Duration::from_nanos(1)), Ok(NoPermission));
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

    const CAVEATED: &str = r#"
        caveat min_level(level int, required int) { level >= required }
        definition user {}
        definition group {
            relation member: user | user with min_level
        }
        definition document {
            relation group: group | group with min_level
            relation viewer: user with min_level | group#member
            relation banned: user with min_level
            permission view = (viewer + group->member) - banned
            permission both = viewer & group->member
        }
    "#;

    #[test]
    fn caveats_make_answers_conditional_until_the_context_decides() {
        let rels = [
            r#"document:plan#viewer@user:tom[min_level:{"required":3}]"#,
            r#"document:plan#group@group:eng[min_level:{"required":1}]"#,
            r#"group:eng#member@user:sam[min_level:{"required":2}]"#,
            "group:eng#member@user:tom",
            r#"document:plan#banned@user:ann[min_level:{"required":5}]"#,
            "group:eng#member@user:ann",
        ];
        engine_fixture(CAVEATED, &rels, |engine| {
            let check = |subject: &str, permission: &str, context: serde_json::Value| {
                let context = context.as_object().cloned().unwrap_or_default();
                let engine = Engine::new(engine.schema, engine.snapshot).with_context(context);
                engine
                    .check(&obj("document:plan"), permission, &subj(subject))
                    .unwrap()
            };
            let missing = |names: &[&str]| Conditional {
                missing_context: names.iter().map(|n| n.to_string()).collect(),
            };
            assert_eq!(check("user:tom", "view", json!({})), missing(&["level"]));
            // With level 0, tom's own caveat fails, but group eng (level >= 1 fails too) gives nothing.
            assert_eq!(check("user:tom", "view", json!({"level": 0})), NoPermission);
            assert_eq!(
                check("user:sam", "view", json!({"level": 2})),
                HasPermission
            );
            assert_eq!(check("user:sam", "view", json!({"level": 1})), NoPermission);
            assert_eq!(check("user:ann", "view", json!({})), missing(&["level"]));
            assert_eq!(check("user:ann", "view", json!({"level": 5})), NoPermission);
            assert_eq!(
                check("user:ann", "view", json!({"level": 4})),
                HasPermission
            );
            assert_eq!(
                check("user:tom", "both", json!({"level": 3})),
                HasPermission
            );
            assert_eq!(check("user:tom", "both", json!({"level": 2})), NoPermission);
            let error = Engine::new(engine.schema, engine.snapshot)
                .with_context(json!({"level": "high"}).as_object().cloned().unwrap())
                .check(&obj("document:plan"), "view", &subj("user:tom"))
                .unwrap_err();
            assert!(matches!(error, EngineError::Caveat(_)), "{error}");
        });
    }
    const NESTED: &str = r#"
        use expiration
        caveat tier(level int) { level > 1 }
        definition user {}
        definition team {
            relation member: user | team#member
        }
        definition group {
            relation admin: user
            relation member: user | user with tier | user with expiration | group#member | group#member with tier | group#member with expiration | team#member | group#manage
            permission manage = admin + member
        }
        definition document {
            relation viewer: user | user:* | group#member | team#member
            permission view = viewer
        }
    "#;

    /// A random nesting of groups and teams: cycles, caveats, expirations, wildcards,
    /// permissions reached through subject sets and chains longer than a small depth limit.
    fn random_nesting(seed: u64) -> Vec<String> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut rels = Vec::new();
        let expiry = |rng: &mut rand_chacha::ChaCha8Rng| {
            if rng.gen_bool(0.5) {
                "2000-01-01T00:00:00Z"
            } else {
                "2100-01-01T00:00:00Z"
            }
        };
        for _ in 0..rng.gen_range(5..30) {
            let g = rng.gen_range(0..10);
            let rel = match rng.gen_range(0..12) {
                0..=2 => format!("group:g{g}#member@user:u{}", rng.gen_range(0..5)),
                3 => format!("group:g{g}#member@user:u{}[tier]", rng.gen_range(0..5)),
                4 => format!(
                    "group:g{g}#member@user:u{}[expiration:{}]",
                    rng.gen_range(0..5),
                    expiry(&mut rng)
                ),
                5..=7 => {
                    // Mostly toward lower numbers, so long chains and some cycles form.
                    let to = if rng.gen_bool(0.85) {
                        rng.gen_range(0..=g)
                    } else {
                        rng.gen_range(0..10)
                    };
                    format!("group:g{g}#member@group:g{to}#member")
                }
                8 => format!(
                    "group:g{g}#member@group:g{}#member[tier]",
                    rng.gen_range(0..10)
                ),
                9 => format!(
                    "group:g{g}#member@group:g{}#member[expiration:{}]",
                    rng.gen_range(0..10),
                    expiry(&mut rng)
                ),
                10 => match rng.gen_range(0..4) {
                    0 => format!("group:g{g}#member@team:t{}#member", rng.gen_range(0..3)),
                    1 => format!("document:d{}#viewer@user:*", rng.gen_range(0..3)),
                    2 => format!(
                        "team:t{}#member@user:u{}",
                        rng.gen_range(0..3),
                        rng.gen_range(0..5)
                    ),
                    _ => format!(
                        "team:t{}#member@team:t{}#member",
                        rng.gen_range(0..3),
                        rng.gen_range(0..3)
                    ),
                },
                _ => match rng.gen_range(0..3) {
                    0 => format!("group:g{g}#member@group:g{}#manage", rng.gen_range(0..10)),
                    1 => format!("group:g{g}#admin@user:u{}", rng.gen_range(0..5)),
                    _ => format!("document:d{}#viewer@group:g{g}#member", rng.gen_range(0..3)),
                },
            };
            rels.push(rel);
        }
        rels
    }

    /// Flattened subject sets answer every check exactly as the walk does, errors included.
    #[test]
    fn flattened_subject_sets_answer_as_the_walk_does() {
        use crate::FixedSnapshot;
        use pemba_types::Relationship;

        let schema = pemba_schema::compile("test.zed", NESTED).unwrap();
        let mut flattened_answers = 0;
        for seed in 0..100 {
            let rels = random_nesting(seed);
            let walked = FixedSnapshot::new(rels.iter().map(|r| Relationship::parse(r).unwrap()));
            let flattened = walked.clone().with_closures();
            let mut resources: Vec<(String, &str)> = (0..10)
                .flat_map(|g| {
                    [
                        (format!("group:g{g}"), "member"),
                        (format!("group:g{g}"), "manage"),
                    ]
                })
                .collect();
            resources.extend((0..3).map(|t| (format!("team:t{t}"), "member")));
            resources.extend((0..3).map(|d| (format!("document:d{d}"), "view")));
            for max_depth in [50, 4] {
                for context in [json!({}), json!({"level": 2}), json!({"level": 1})] {
                    let context = context.as_object().cloned().unwrap();
                    let walk = Engine::new(&schema, &walked)
                        .with_context(context.clone())
                        .with_max_depth(max_depth);
                    let flat = Engine::new(&schema, &flattened)
                        .with_context(context)
                        .with_max_depth(max_depth);
                    for (resource, permission) in &resources {
                        for user in 0..6 {
                            let subject = subj(&format!("user:u{user}"));
                            let expected = walk.check(&obj(resource), permission, &subject);
                            let answer = flat.check(&obj(resource), permission, &subject);
                            assert_eq!(
                                answer, expected,
                                "seed {seed}, depth {max_depth}: {resource}#{permission}@user:u{user}\n{rels:#?}"
                            );
                            flattened_answers += usize::from(answer == Ok(HasPermission));
                        }
                    }
                }
            }
        }
        assert!(
            flattened_answers > 1000,
            "the datasets grant something: {flattened_answers}"
        );
    }
}
