//! `authzed.api.v1.SchemaService`.

use std::sync::Arc;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::schema_service_server::SchemaService;
use pemba_schema::{AllowedSubject, AllowedSubjectKind, CompiledSchema, Definition, Member};
use pemba_store::WriteCommand;
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::status;

pub struct Schemas {
    node: Arc<Node>,
}

impl Schemas {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn comment(doc_comments: &[String]) -> String {
    doc_comments.join("\n")
}

fn type_reference(allowed: &AllowedSubject) -> api::ReflectionTypeReference {
    use api::reflection_type_reference::Typeref;
    let typeref = match &allowed.kind {
        AllowedSubjectKind::Object => Typeref::IsTerminalSubject(true),
        AllowedSubjectKind::Wildcard => Typeref::IsPublicWildcard(true),
        AllowedSubjectKind::Relation(r) => Typeref::OptionalRelationName(r.clone()),
    };
    api::ReflectionTypeReference {
        subject_definition_name: allowed.subject_type.clone(),
        optional_caveat_name: allowed.caveat.clone().unwrap_or_default(),
        typeref: Some(typeref),
    }
}

fn reflect_definition(definition: &Definition) -> api::ReflectionDefinition {
    let mut reflected = api::ReflectionDefinition {
        name: definition.name.clone(),
        comment: comment(&definition.doc_comments),
        relations: Vec::new(),
        permissions: Vec::new(),
    };
    for member in &definition.members {
        match member {
            Member::Relation(r) => reflected.relations.push(api::ReflectionRelation {
                name: r.name.clone(),
                comment: comment(&r.doc_comments),
                parent_definition_name: definition.name.clone(),
                subject_types: r.allowed.iter().map(type_reference).collect(),
            }),
            Member::Permission(p) => reflected.permissions.push(api::ReflectionPermission {
                name: p.name.clone(),
                comment: comment(&p.doc_comments),
                parent_definition_name: definition.name.clone(),
            }),
        }
    }
    reflected
}

fn reflect_caveats(schema: &CompiledSchema) -> Vec<api::ReflectionCaveat> {
    schema
        .caveats
        .iter()
        .map(|c| api::ReflectionCaveat {
            name: c.name.clone(),
            comment: comment(&c.doc_comments),
            parameters: c
                .parameters
                .iter()
                .map(|(name, ty)| api::ReflectionCaveatParameter {
                    name: name.clone(),
                    r#type: ty.clone(),
                    parent_caveat_name: c.name.clone(),
                })
                .collect(),
            expression: c.expression.clone(),
        })
        .collect()
}

/// Differences between the stored schema and a proposed one, in SpiceDB's reflection terms.
fn diff(old: &CompiledSchema, new: &CompiledSchema) -> Vec<api::ReflectionSchemaDiff> {
    use api::reflection_schema_diff::Diff;
    let mut diffs = Vec::new();
    for definition in &old.definitions {
        if new.definition(&definition.name).is_none() {
            diffs.push(Diff::DefinitionRemoved(reflect_definition(definition)));
        }
    }
    for definition in &new.definitions {
        let Some(before) = old.definition(&definition.name) else {
            diffs.push(Diff::DefinitionAdded(reflect_definition(definition)));
            continue;
        };
        let reflected = reflect_definition(definition);
        if before.doc_comments != definition.doc_comments {
            diffs.push(Diff::DefinitionDocCommentChanged(reflected.clone()));
        }
        let old_reflected = reflect_definition(before);
        for relation in &old_reflected.relations {
            if !reflected.relations.iter().any(|r| r.name == relation.name) {
                diffs.push(Diff::RelationRemoved(relation.clone()));
            }
        }
        for permission in &old_reflected.permissions {
            if !reflected
                .permissions
                .iter()
                .any(|p| p.name == permission.name)
            {
                diffs.push(Diff::PermissionRemoved(permission.clone()));
            }
        }
        for member in &definition.members {
            match (member, before.member(member.name())) {
                (Member::Relation(r), Some(Member::Relation(was))) => {
                    let relation = reflected
                        .relations
                        .iter()
                        .find(|x| x.name == r.name)
                        .cloned();
                    if was.doc_comments != r.doc_comments {
                        diffs.extend(relation.clone().map(Diff::RelationDocCommentChanged));
                    }
                    for added in r.allowed.iter().filter(|a| !was.allowed.contains(a)) {
                        diffs.push(Diff::RelationSubjectTypeAdded(
                            api::ReflectionRelationSubjectTypeChange {
                                relation: relation.clone(),
                                changed_subject_type: Some(type_reference(added)),
                            },
                        ));
                    }
                    for removed in was.allowed.iter().filter(|a| !r.allowed.contains(a)) {
                        diffs.push(Diff::RelationSubjectTypeRemoved(
                            api::ReflectionRelationSubjectTypeChange {
                                relation: relation.clone(),
                                changed_subject_type: Some(type_reference(removed)),
                            },
                        ));
                    }
                }
                (Member::Permission(p), Some(Member::Permission(was))) => {
                    let permission = reflected
                        .permissions
                        .iter()
                        .find(|x| x.name == p.name)
                        .cloned();
                    if was.doc_comments != p.doc_comments {
                        diffs.extend(permission.clone().map(Diff::PermissionDocCommentChanged));
                    }
                    if was.rewrite != p.rewrite {
                        diffs.extend(permission.map(Diff::PermissionExprChanged));
                    }
                }
                (Member::Relation(r), _) => {
                    diffs.extend(
                        reflected
                            .relations
                            .iter()
                            .find(|x| x.name == r.name)
                            .cloned()
                            .map(Diff::RelationAdded),
                    );
                }
                (Member::Permission(p), _) => {
                    diffs.extend(
                        reflected
                            .permissions
                            .iter()
                            .find(|x| x.name == p.name)
                            .cloned()
                            .map(Diff::PermissionAdded),
                    );
                }
            }
        }
    }
    let (old_caveats, new_caveats) = (reflect_caveats(old), reflect_caveats(new));
    for caveat in &old_caveats {
        if !new_caveats.iter().any(|c| c.name == caveat.name) {
            diffs.push(Diff::CaveatRemoved(caveat.clone()));
        }
    }
    for caveat in &new_caveats {
        match old_caveats.iter().find(|c| c.name == caveat.name) {
            None => diffs.push(Diff::CaveatAdded(caveat.clone())),
            Some(was) => {
                if was.comment != caveat.comment {
                    diffs.push(Diff::CaveatDocCommentChanged(caveat.clone()));
                }
                if was.expression != caveat.expression {
                    diffs.push(Diff::CaveatExprChanged(caveat.clone()));
                }
                for parameter in &caveat.parameters {
                    match was.parameters.iter().find(|p| p.name == parameter.name) {
                        None => diffs.push(Diff::CaveatParameterAdded(parameter.clone())),
                        Some(p) if p.r#type != parameter.r#type => {
                            diffs.push(Diff::CaveatParameterTypeChanged(
                                api::ReflectionCaveatParameterTypeChange {
                                    parameter: Some(parameter.clone()),
                                    previous_type: p.r#type.clone(),
                                },
                            ))
                        }
                        Some(_) => {}
                    }
                }
                for parameter in &was.parameters {
                    if !caveat.parameters.iter().any(|p| p.name == parameter.name) {
                        diffs.push(Diff::CaveatParameterRemoved(parameter.clone()));
                    }
                }
            }
        }
    }
    diffs
        .into_iter()
        .map(|d| api::ReflectionSchemaDiff { diff: Some(d) })
        .collect()
}

/// The schema as SpiceDB reads it back: caveats, then definitions, each sorted by name.
fn sorted_by_name(schema: &CompiledSchema) -> CompiledSchema {
    let mut definitions = schema.definitions.clone();
    definitions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut caveats = schema.caveats.clone();
    caveats.sort_by(|a, b| a.name.cmp(&b.name));
    CompiledSchema::new(definitions, caveats, schema.uses_expiration)
}

/// Keeps a reflected definition's parts that pass any of the filters (all pass when none given).
fn filter_definition(
    mut definition: api::ReflectionDefinition,
    filters: &[api::ReflectionSchemaFilter],
) -> Option<api::ReflectionDefinition> {
    if filters.is_empty() {
        return Some(definition);
    }
    let matching: Vec<&api::ReflectionSchemaFilter> = filters
        .iter()
        .filter(|f| {
            f.optional_definition_name_filter.is_empty()
                || definition
                    .name
                    .starts_with(&f.optional_definition_name_filter)
        })
        .filter(|f| f.optional_caveat_name_filter.is_empty())
        .collect();
    if matching.is_empty() {
        return None;
    }
    let keep = |name: &str,
                pick: fn(&api::ReflectionSchemaFilter) -> &str,
                other: fn(&api::ReflectionSchemaFilter) -> &str| {
        matching.iter().any(|f| {
            let (mine, theirs) = (pick(f), other(f));
            (mine.is_empty() && theirs.is_empty()) || (!mine.is_empty() && name.starts_with(mine))
        })
    };
    definition.relations.retain(|r| {
        keep(
            &r.name,
            |f| &f.optional_relation_name_filter,
            |f| &f.optional_permission_name_filter,
        )
    });
    definition.permissions.retain(|p| {
        keep(
            &p.name,
            |f| &f.optional_permission_name_filter,
            |f| &f.optional_relation_name_filter,
        )
    });
    Some(definition)
}

#[tonic::async_trait]
impl SchemaService for Schemas {
    async fn read_schema(
        &self,
        request: Request<api::ReadSchemaRequest>,
    ) -> Result<Response<api::ReadSchemaResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let snapshot = self.node.snapshot(None, deadline).await?;
        let schema = snapshot.compiled_schema();
        if schema.definitions.is_empty() {
            return Err(Status::not_found(
                "no schema has been defined; please call WriteSchema to start",
            ));
        }
        Ok(Response::new(api::ReadSchemaResponse {
            schema_text: sorted_by_name(schema).to_schema_text(),
            read_at: Some(self.node.token(snapshot.revision())),
        }))
    }

    async fn write_schema(
        &self,
        request: Request<api::WriteSchemaRequest>,
    ) -> Result<Response<api::WriteSchemaResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let text = request.into_inner().schema;
        if text.len() > self.node.limits.max_schema_bytes {
            return Err(Status::invalid_argument(format!(
                "schema is {} bytes, more than the limit of {}",
                text.len(),
                self.node.limits.max_schema_bytes
            )));
        }
        // Compile first so that a schema error is reported without taking the write lock.
        pemba_schema::compile("schema", &text).map_err(|e| status::schema(&e))?;
        let result = self
            .node
            .write(WriteCommand::Schema { text }, deadline)
            .await?;
        Ok(Response::new(api::WriteSchemaResponse {
            written_at: Some(self.node.token(result.revision)),
        }))
    }

    async fn reflect_schema(
        &self,
        request: Request<api::ReflectSchemaRequest>,
    ) -> Result<Response<api::ReflectSchemaResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let schema = snapshot.compiled_schema();
        let definitions = schema
            .definitions
            .iter()
            .map(reflect_definition)
            .filter_map(|d| filter_definition(d, &r.optional_filters))
            .collect();
        let caveats = reflect_caveats(schema)
            .into_iter()
            .filter(|c| {
                r.optional_filters.is_empty()
                    || r.optional_filters.iter().any(|f| {
                        !f.optional_caveat_name_filter.is_empty()
                            && c.name.starts_with(&f.optional_caveat_name_filter)
                    })
            })
            .collect();
        Ok(Response::new(api::ReflectSchemaResponse {
            definitions,
            caveats,
            read_at: Some(self.node.token(snapshot.revision())),
        }))
    }

    async fn diff_schema(
        &self,
        request: Request<api::DiffSchemaRequest>,
    ) -> Result<Response<api::DiffSchemaResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let proposed = pemba_schema::compile("comparison_schema", &r.comparison_schema)
            .map_err(|e| status::schema(&e))?;
        Ok(Response::new(api::DiffSchemaResponse {
            diffs: diff(snapshot.compiled_schema(), &proposed),
            read_at: Some(self.node.token(snapshot.revision())),
        }))
    }

    async fn computable_permissions(
        &self,
        _: Request<api::ComputablePermissionsRequest>,
    ) -> Result<Response<api::ComputablePermissionsResponse>, Status> {
        Err(Status::unimplemented(
            "ComputablePermissions is not supported by Pemba yet",
        ))
    }

    async fn dependent_relations(
        &self,
        _: Request<api::DependentRelationsRequest>,
    ) -> Result<Response<api::DependentRelationsResponse>, Status> {
        Err(Status::unimplemented(
            "DependentRelations is not supported by Pemba yet",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pemba_engine::allowed_subject_source;

    #[test]
    fn diff_reports_added_removed_and_changed_members() {
        let old = pemba_schema::compile("old", "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewer\n}\n").unwrap();
        let new = pemba_schema::compile(
            "new",
            "definition user {}\n\ndefinition doc {\n\trelation viewer: user | user:*\n\trelation editor: user\n\tpermission view = viewer + editor\n}\n\ndefinition team {}\n",
        )
        .unwrap();
        let kinds: Vec<String> = diff(&old, &new)
            .into_iter()
            .map(|d| match d.diff.unwrap() {
                api::reflection_schema_diff::Diff::DefinitionAdded(d) => {
                    format!("definition_added {}", d.name)
                }
                api::reflection_schema_diff::Diff::RelationAdded(r) => {
                    format!("relation_added {}", r.name)
                }
                api::reflection_schema_diff::Diff::RelationSubjectTypeAdded(c) => {
                    format!(
                        "subject_type_added {}",
                        allowed_subject_source(&AllowedSubject {
                            subject_type: c.changed_subject_type.unwrap().subject_definition_name,
                            kind: AllowedSubjectKind::Wildcard,
                            caveat: None,
                            expiration: false,
                        })
                    )
                }
                api::reflection_schema_diff::Diff::PermissionExprChanged(p) => {
                    format!("permission_expr_changed {}", p.name)
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "subject_type_added user:*",
                "relation_added editor",
                "permission_expr_changed view",
                "definition_added team"
            ]
        );
    }
}
