//! Expand: the tree of set operations and subjects that makes up `resource#permission`, shaped as
//! SpiceDB's `PermissionRelationshipTree`.

use pemba_schema::{Arrow, ArrowFunction, Member, Rewrite};
use pemba_types::{ObjectRef, SubjectRef};

use crate::{Engine, EngineError, ExpandMode, RelationshipSnapshot};

/// One node of an expansion, labelled with the object and relation it expands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandTree {
    pub object: ObjectRef,
    pub relation: String,
    pub node: ExpandNode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperation {
    Union,
    Intersection,
    Exclusion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandNode {
    /// A set operation over child trees (an exclusion has exactly two: base, then subtracted).
    Intermediate {
        operation: SetOperation,
        children: Vec<ExpandTree>,
    },
    /// The subjects stored directly on a relation: objects (and wildcards) first, then subject sets.
    Leaf { subjects: Vec<SubjectRef> },
}

impl<S: RelationshipSnapshot> Engine<'_, S> {
    /// Expands `resource#permission` into its tree.
    pub fn expand(
        &self,
        resource: &ObjectRef,
        permission: &str,
        mode: ExpandMode,
    ) -> Result<ExpandTree, EngineError> {
        self.validate_resource(resource, permission)?;
        self.expand_member(resource, permission, mode, self.max_depth)
    }

    /// One dispatch of Expand.
    fn expand_member(
        &self,
        object: &ObjectRef,
        name: &str,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EngineError> {
        if depth == 0 {
            return Err(EngineError::MaxDepthExceeded);
        }
        let tree = |node| ExpandTree {
            object: object.clone(),
            relation: name.to_string(),
            node,
        };
        match self.member(&object.object_type, name)? {
            Member::Relation(relation) => {
                let relationships = self.snapshot.subjects(object, &relation.name)?;
                let (objects, subject_sets): (Vec<SubjectRef>, Vec<SubjectRef>) = relationships
                    .into_iter()
                    .map(|r| r.subject.clone())
                    .partition(|s| s.relation.is_none());
                let recurse = mode == ExpandMode::Recursive && !subject_sets.is_empty();
                let mut children = Vec::new();
                if recurse {
                    for set in &subject_sets {
                        let set_relation = set.relation.as_deref().unwrap_or_default();
                        children.push(self.expand_member(
                            &set.object,
                            set_relation,
                            mode,
                            depth - 1,
                        )?);
                    }
                }
                let leaf = tree(ExpandNode::Leaf {
                    subjects: objects.into_iter().chain(subject_sets).collect(),
                });
                if !recurse {
                    return Ok(leaf);
                }
                children.push(leaf);
                Ok(tree(ExpandNode::Intermediate {
                    operation: SetOperation::Union,
                    children,
                }))
            }
            Member::Permission(permission) => match &permission.rewrite {
                Rewrite::Union(_) | Rewrite::Intersection(_) | Rewrite::Exclusion(..) => {
                    self.expand_rewrite(object, name, &permission.rewrite, mode, depth)
                }
                // SpiceDB compiles a lone operand as a union of one.
                single => Ok(tree(ExpandNode::Intermediate {
                    operation: SetOperation::Union,
                    children: vec![self.expand_rewrite(object, name, single, mode, depth)?],
                })),
            },
        }
    }

    /// Expands one operand of `object#name`'s rewrite; operands that are not dispatches are
    /// labelled with `object#name` itself.
    fn expand_rewrite(
        &self,
        object: &ObjectRef,
        name: &str,
        rewrite: &Rewrite,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EngineError> {
        let tree = |node| ExpandTree {
            object: object.clone(),
            relation: name.to_string(),
            node,
        };
        let operation = |operation, children: &[Rewrite]| -> Result<ExpandTree, EngineError> {
            let children = children
                .iter()
                .map(|child| self.expand_rewrite(object, name, child, mode, depth))
                .collect::<Result<_, _>>()?;
            Ok(tree(ExpandNode::Intermediate {
                operation,
                children,
            }))
        };
        match rewrite {
            Rewrite::Union(children) => operation(SetOperation::Union, children),
            Rewrite::Intersection(children) => operation(SetOperation::Intersection, children),
            Rewrite::Exclusion(base, subtracted) => operation(
                SetOperation::Exclusion,
                &[(**base).clone(), (**subtracted).clone()],
            ),
            Rewrite::Computed(computed) => self.expand_member(object, computed, mode, depth - 1),
            Rewrite::Arrow(arrow) => self.expand_arrow(object, name, arrow, mode, depth),
            Rewrite::Nil => Ok(tree(ExpandNode::Leaf {
                subjects: Vec::new(),
            })),
        }
    }

    fn expand_arrow(
        &self,
        object: &ObjectRef,
        name: &str,
        arrow: &Arrow,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EngineError> {
        let tree = |node| ExpandTree {
            object: object.clone(),
            relation: name.to_string(),
            node,
        };
        let mut children = Vec::new();
        for r in self.snapshot.subjects(object, &arrow.tupleset)? {
            let target = &r.subject.object;
            if self.has_member(&target.object_type, &arrow.computed) {
                children.push(self.expand_member(target, &arrow.computed, mode, depth - 1)?);
            } else {
                children.push(tree(ExpandNode::Leaf {
                    subjects: Vec::new(),
                }));
            }
        }
        let operation = match arrow.function {
            ArrowFunction::Any => SetOperation::Union,
            ArrowFunction::All => SetOperation::Intersection,
        };
        Ok(tree(ExpandNode::Intermediate {
            operation,
            children,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{engine_fixture, obj};

    const SCHEMA: &str = r#"
        definition user {}
        definition group {
            relation member: user | group#member
        }
        definition document {
            relation parent: document
            relation viewer: user | user:* | group#member
            relation banned: user
            permission view = viewer - banned
            permission inherited = parent->view
            permission just_viewer = viewer
        }
    "#;

    fn render(tree: &ExpandTree) -> String {
        let label = format!("{}#{}", tree.object, tree.relation);
        match &tree.node {
            ExpandNode::Leaf { subjects } => {
                format!(
                    "{label}[{}]",
                    subjects
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
            ExpandNode::Intermediate {
                operation,
                children,
            } => format!(
                "{label}{operation:?}({})",
                children.iter().map(render).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    #[test]
    fn expand_shapes_match_spicedb() {
        let rels = [
            "document:a#viewer@user:tom",
            "document:a#viewer@group:eng#member",
            "document:a#viewer@user:*",
            "document:a#banned@user:sam",
            "document:b#parent@document:a",
            "group:eng#member@user:ann",
        ];
        engine_fixture(SCHEMA, &rels, |engine| {
            let shallow =
                |r: &str, p: &str| render(&engine.expand(&obj(r), p, ExpandMode::Shallow).unwrap());
            assert_eq!(
                shallow("document:a", "view"),
                "document:a#viewExclusion(document:a#viewer[user:*,user:tom,group:eng#member] document:a#banned[user:sam])"
            );
            assert_eq!(
                shallow("document:b", "inherited"),
                "document:b#inheritedUnion(document:b#inheritedUnion(document:a#viewExclusion(document:a#viewer[user:*,user:tom,group:eng#member] document:a#banned[user:sam])))"
            );
            assert_eq!(
                shallow("document:a", "just_viewer"),
                "document:a#just_viewerUnion(document:a#viewer[user:*,user:tom,group:eng#member])"
            );
            let recursive = render(
                &engine
                    .expand(&obj("document:a"), "viewer", ExpandMode::Recursive)
                    .unwrap(),
            );
            assert_eq!(
                recursive,
                "document:a#viewerUnion(group:eng#member[user:ann] document:a#viewer[user:*,user:tom,group:eng#member])"
            );
        });
    }
}
