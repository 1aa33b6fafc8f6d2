//! `authzed.api.v1.PermissionsService`.

use std::pin::Pin;
use std::sync::Arc;

use pemba_engine::{
    Engine, EngineError, ExpandMode, ExpandNode, ExpandTree, FoundSubject, Permissionship,
    SetOperation,
};
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_server::PermissionsService;
use pemba_proto::google::rpc;
use pemba_store::{key_of, Precondition, RelationshipFilter, UpdateOperation, WriteCommand};
use pemba_types::{Relationship, Revision};
use serde_json::{Map, Value as Json};
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, relationship_to_api};
use crate::cursor;
use crate::node::Node;
use crate::status;
use crate::stream_end::StreamEnd;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn stream_of<T: Send + 'static>(items: Vec<T>) -> Stream_<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

pub struct Permissions {
    node: Arc<Node>,
}

impl Permissions {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn permissionship_to_api(p: &Permissionship) -> api::check_permission_response::Permissionship {
    use api::check_permission_response::Permissionship as Api;
    match p {
        Permissionship::HasPermission => Api::HasPermission,
        Permissionship::NoPermission => Api::NoPermission,
        Permissionship::Conditional { .. } => Api::ConditionalPermission,
    }
}

fn lookup_permissionship_to_api(p: &Permissionship) -> api::LookupPermissionship {
    match p {
        Permissionship::Conditional { .. } => api::LookupPermissionship::ConditionalPermission,
        _ => api::LookupPermissionship::HasPermission,
    }
}

/// The context names a conditional answer is missing, for `partial_caveat_info`.
fn partial_caveat_info(p: &Permissionship) -> Option<api::PartialCaveatInfo> {
    match p {
        Permissionship::Conditional { missing_context } => Some(api::PartialCaveatInfo {
            missing_required_context: missing_context.clone(),
        }),
        _ => None,
    }
}

fn tree_to_api(tree: &ExpandTree) -> api::PermissionRelationshipTree {
    use api::permission_relationship_tree::TreeType;
    let tree_type = match &tree.node {
        ExpandNode::Leaf { subjects } => TreeType::Leaf(api::DirectSubjectSet {
            subjects: subjects.iter().map(convert::subject_to_api).collect(),
        }),
        ExpandNode::Intermediate {
            operation,
            children,
        } => {
            let operation = match operation {
                SetOperation::Union => api::algebraic_subject_set::Operation::Union,
                SetOperation::Intersection => api::algebraic_subject_set::Operation::Intersection,
                SetOperation::Exclusion => api::algebraic_subject_set::Operation::Exclusion,
            };
            TreeType::Intermediate(api::AlgebraicSubjectSet {
                operation: operation as i32,
                children: children.iter().map(tree_to_api).collect(),
            })
        }
    };
    api::PermissionRelationshipTree {
        tree_type: Some(tree_type),
        expanded_object: Some(convert::object_to_api(&tree.object)),
        expanded_relation: tree.relation.clone(),
    }
}

/// SpiceDB's default limit on the encoded size of a request's caveat context.
const MAX_REQUEST_CONTEXT_BYTES: usize = 4096;

/// A request's caveat context as JSON, refused if its encoding exceeds SpiceDB's limit.
fn request_context(
    context: Option<&pemba_proto::prost_types::Struct>,
) -> Result<Map<String, Json>, Status> {
    let Some(context) = context else {
        return Ok(Map::new());
    };
    let size = prost::Message::encoded_len(context);
    if size > MAX_REQUEST_CONTEXT_BYTES {
        return Err(Status::invalid_argument(format!(
            "request caveat context should have less than {MAX_REQUEST_CONTEXT_BYTES} bytes but had {size}"
        )));
    }
    Ok(pemba_proto::convert::struct_to_json(context))
}

/// SpiceDB's error for an `optional_limit` above the maximum.
fn limit_error(limit: u32, max: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!(
        "provided limit {limit} is greater than maximum allowed of {max}"
    ))
}

impl Permissions {
    /// Runs `lookup` on an engine over `snapshot` with `context`, where the node runs lookups
    /// (off the async workers: see [`crate::Compute`]).
    async fn lookup<T: Send + 'static>(
        &self,
        snapshot: pemba_store::Snapshot,
        context: Map<String, Json>,
        lookup: impl FnOnce(&Engine<'_, pemba_store::Snapshot>) -> Result<T, EngineError>
            + Send
            + 'static,
    ) -> Result<T, Status> {
        let work = move || {
            let engine = Engine::new(snapshot.compiled_schema(), &snapshot).with_context(context);
            lookup(&engine)
        };
        let found = self
            .node
            .compute
            .run(work)
            .await
            .map_err(|e| Status::internal(format!("a lookup stopped before its end: {e}")))?;
        found.map_err(status::engine)
    }

    /// Commits one part of an import (atomically, as one log entry); `imported` relationships of
    /// the same import were committed before it.
    async fn import_part(
        &self,
        relationships: Vec<Relationship>,
        imported: u64,
        timeout: std::time::Duration,
    ) -> Result<u64, Status> {
        let written = self
            .node
            .write(
                WriteCommand::Import { relationships },
                Instant::now() + timeout,
            )
            .await
            .map_err(|e| import_failure(e, imported))?;
        Ok(written.count)
    }

    /// Refuses an `optional_limit` above `max` (0 means none).
    fn check_limit(&self, limit: u32, max: usize) -> Result<(), Status> {
        if limit as usize > max {
            return Err(limit_error(limit, max));
        }
        Ok(())
    }

    /// Checks that a write's filters name types and relations of the current schema. This node's
    /// own state is tried first; if it refuses, the check is made again at the leader's commit
    /// index, so a node lagging behind a schema change does not refuse what the schema allows.
    async fn check_filters_in_schema(
        &self,
        preconditions: &[Precondition],
        filter: Option<&RelationshipFilter>,
        deadline: Instant,
    ) -> Result<(), Status> {
        let check = |snapshot: &pemba_store::Snapshot| {
            let schema = snapshot.compiled_schema();
            filter
                .into_iter()
                .chain(preconditions.iter().map(|p| &p.filter))
                .try_for_each(|f| convert::filter_in_schema(schema, f))
        };
        if check(&self.node.applied_snapshot(deadline).await?).is_ok() {
            return Ok(());
        }
        let newest = api::Consistency {
            requirement: Some(api::consistency::Requirement::FullyConsistent(true)),
        };
        check(&self.node.snapshot(Some(&newest), deadline).await?)
    }

    fn check_one(
        &self,
        engine: &Engine<'_, pemba_store::SnapshotRead<'_>>,
        resource: Option<&api::ObjectReference>,
        permission: &str,
        subject: Option<&api::SubjectReference>,
    ) -> Result<Permissionship, Status> {
        let resource = convert::resource("resource", resource)?;
        let permission = convert::permission("permission", permission)?;
        let subject = convert::subject("subject", subject)?;
        engine
            .check(&resource, &permission, &subject)
            .map_err(status::engine)
    }
}

#[tonic::async_trait]
impl PermissionsService for Permissions {
    type ReadRelationshipsStream = Stream_<api::ReadRelationshipsResponse>;
    type LookupResourcesStream = Stream_<api::LookupResourcesResponse>;
    type LookupSubjectsStream = Stream_<api::LookupSubjectsResponse>;
    type ExportBulkRelationshipsStream = Stream_<api::ExportBulkRelationshipsResponse>;

    async fn check_permission(
        &self,
        request: Request<api::CheckPermissionRequest>,
    ) -> Result<Response<api::CheckPermissionResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let context = request_context(r.context.as_ref())?;
        // One lock for all of the check's reads.
        let read = snapshot.read();
        let engine = Engine::new(snapshot.compiled_schema(), &read).with_context(context);
        let answer = self.check_one(
            &engine,
            r.resource.as_ref(),
            &r.permission,
            r.subject.as_ref(),
        )?;
        Ok(Response::new(api::CheckPermissionResponse {
            checked_at: Some(self.node.token(snapshot.revision())),
            permissionship: permissionship_to_api(&answer) as i32,
            partial_caveat_info: partial_caveat_info(&answer),
            ..Default::default()
        }))
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<api::CheckBulkPermissionsRequest>,
    ) -> Result<Response<api::CheckBulkPermissionsResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        if r.items.len() > self.node.limits.max_bulk_checks {
            return Err(Status::invalid_argument(format!(
                "check bulk permissions request has {} items, more than the limit of {}",
                r.items.len(),
                self.node.limits.max_bulk_checks
            )));
        }
        // A malformed item fails the whole request, as SpiceDB validates the request message before
        // checking anything; errors of evaluation are reported per item.
        let parsed = r
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Ok((
                    convert::resource(&format!("items[{i}].resource"), item.resource.as_ref())?,
                    convert::permission(&format!("items[{i}].permission"), &item.permission)?,
                    convert::subject(&format!("items[{i}].subject"), item.subject.as_ref())?,
                ))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let schema = snapshot.compiled_schema();
        let pairs = r
            .items
            .into_iter()
            .zip(parsed)
            .map(|(item, (resource, permission, subject))| {
                use api::check_bulk_permissions_pair::Response as PairResponse;
                let answer = request_context(item.context.as_ref()).and_then(|context| {
                    Engine::new(schema, &snapshot.read())
                        .with_context(context)
                        .check(&resource, &permission, &subject)
                        .map_err(status::engine)
                });
                let response = match answer {
                    Ok(p) => PairResponse::Item(api::CheckBulkPermissionsResponseItem {
                        permissionship: permissionship_to_api(&p) as i32,
                        partial_caveat_info: partial_caveat_info(&p),
                        ..Default::default()
                    }),
                    Err(s) => PairResponse::Error(rpc::Status {
                        code: s.code() as i32,
                        message: s.message().to_string(),
                        details: Vec::new(),
                    }),
                };
                api::CheckBulkPermissionsPair {
                    request: Some(item),
                    response: Some(response),
                }
            })
            .collect();
        Ok(Response::new(api::CheckBulkPermissionsResponse {
            checked_at: Some(self.node.token(snapshot.revision())),
            pairs,
        }))
    }

    async fn expand_permission_tree(
        &self,
        request: Request<api::ExpandPermissionTreeRequest>,
    ) -> Result<Response<api::ExpandPermissionTreeResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let resource = convert::resource("resource", r.resource.as_ref())?;
        let permission = convert::permission("permission", &r.permission)?;
        let engine = Engine::new(snapshot.compiled_schema(), &snapshot);
        let tree = engine
            .expand(&resource, &permission, ExpandMode::Shallow)
            .map_err(status::engine)?;
        Ok(Response::new(api::ExpandPermissionTreeResponse {
            expanded_at: Some(self.node.token(snapshot.revision())),
            tree_root: Some(tree_to_api(&tree)),
        }))
    }

    async fn lookup_resources(
        &self,
        request: Request<api::LookupResourcesRequest>,
    ) -> Result<Response<Self::LookupResourcesStream>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        self.check_limit(r.optional_limit, self.node.limits.max_read_page)?;
        // As in SpiceDB, the context of LookupResources has no size limit.
        let context = r
            .context
            .as_ref()
            .map(pemba_proto::convert::struct_to_json)
            .unwrap_or_default();
        let after = r
            .optional_cursor
            .as_ref()
            .map(cursor::decode_lookup)
            .transpose()?;
        let snapshot = self
            .node
            .snapshot_continuing(
                after.as_ref().map(|(revision, _)| *revision),
                r.consistency.as_ref(),
                deadline,
            )
            .await?;
        let permission = convert::permission("permission", &r.permission)?;
        let subject = convert::subject("subject", r.subject.as_ref())?;
        let resource_type = r.resource_object_type.clone();
        let revision = snapshot.revision();
        let found = self
            .lookup(snapshot, context, move |engine| {
                engine.lookup_resources(&resource_type, &permission, &subject)
            })
            .await?;
        let limit = if r.optional_limit == 0 {
            usize::MAX
        } else {
            r.optional_limit as usize
        };
        let token = self.node.token(revision);
        let items = found
            .into_iter()
            .filter(|(id, _)| after.as_ref().is_none_or(|(_, last)| id > last))
            .take(limit)
            .map(|(id, permissionship)| api::LookupResourcesResponse {
                looked_up_at: Some(token.clone()),
                after_result_cursor: Some(cursor::encode_lookup(revision, &id)),
                resource_object_id: id,
                permissionship: lookup_permissionship_to_api(&permissionship) as i32,
                partial_caveat_info: partial_caveat_info(&permissionship),
            })
            .collect();
        Ok(Response::new(stream_of(items)))
    }

    async fn lookup_subjects(
        &self,
        request: Request<api::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let context = request_context(r.context.as_ref())?;
        // As in SpiceDB, which answers every subject in one stream and pages nothing.
        if r.optional_concrete_limit != 0 {
            return Err(Status::unimplemented("concrete limit is not yet supported"));
        }
        let snapshot = self.node.snapshot(r.consistency.as_ref(), deadline).await?;
        let resource = convert::resource("resource", r.resource.as_ref())?;
        let permission = convert::permission("permission", &r.permission)?;
        let subject_relation = (!r.optional_subject_relation.is_empty())
            .then(|| convert::relation("optional_subject_relation", &r.optional_subject_relation))
            .transpose()?;
        let subject_type = r.subject_object_type.clone();
        let revision = snapshot.revision();
        let found = self
            .lookup(snapshot, context, move |engine| {
                let relation = subject_relation.as_deref();
                engine.lookup_subjects(&resource, &permission, &subject_type, relation)
            })
            .await?;
        let exclude_wildcards = r.wildcard_option
            == api::lookup_subjects_request::WildcardOption::ExcludeWildcards as i32;
        let token = self.node.token(revision);
        let resolved = |f: &FoundSubject| api::ResolvedSubject {
            subject_object_id: f.subject_id.clone(),
            permissionship: lookup_permissionship_to_api(&f.permissionship) as i32,
            partial_caveat_info: partial_caveat_info(&f.permissionship),
        };
        #[allow(deprecated)]
        let items = found
            .into_iter()
            .filter(|f| !(exclude_wildcards && f.subject_id == pemba_types::WILDCARD_ID))
            .map(|f| api::LookupSubjectsResponse {
                looked_up_at: Some(token.clone()),
                subject_object_id: f.subject_id.clone(),
                excluded_subject_ids: f
                    .excluded_subjects
                    .iter()
                    .map(|e| e.subject_id.clone())
                    .collect(),
                permissionship: lookup_permissionship_to_api(&f.permissionship) as i32,
                partial_caveat_info: partial_caveat_info(&f.permissionship),
                subject: Some(resolved(&f)),
                excluded_subjects: f.excluded_subjects.iter().map(resolved).collect(),
                after_result_cursor: None,
            })
            .collect();
        Ok(Response::new(stream_of(items)))
    }

    async fn read_relationships(
        &self,
        request: Request<api::ReadRelationshipsRequest>,
    ) -> Result<Response<Self::ReadRelationshipsStream>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        self.check_limit(r.optional_limit, self.node.limits.max_read_page)?;
        let filter = convert::filter("relationship_filter", r.relationship_filter.as_ref())?;
        let after = r
            .optional_cursor
            .as_ref()
            .map(cursor::decode_relationship)
            .transpose()?;
        let snapshot = self
            .node
            .snapshot_continuing(
                after.as_ref().map(|(revision, _)| *revision),
                r.consistency.as_ref(),
                deadline,
            )
            .await?;
        convert::filter_in_schema(snapshot.compiled_schema(), &filter)?;
        let limit = if r.optional_limit == 0 {
            usize::MAX
        } else {
            r.optional_limit as usize
        };
        let found = snapshot
            .query(&filter, after.map(|(_, key)| key).as_ref(), limit)
            .map_err(status::snapshot)?;
        let revision = snapshot.revision();
        let token = self.node.token(revision);
        let items = found
            .iter()
            .map(|rel| api::ReadRelationshipsResponse {
                read_at: Some(token.clone()),
                relationship: Some(relationship_to_api(rel)),
                after_result_cursor: Some(cursor::encode_relationship(revision, rel)),
            })
            .collect();
        Ok(Response::new(stream_of(items)))
    }

    async fn write_relationships(
        &self,
        request: Request<api::WriteRelationshipsRequest>,
    ) -> Result<Response<api::WriteRelationshipsResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let limits = &self.node.limits;
        if r.updates.len() > limits.max_updates_per_write {
            return Err(Status::invalid_argument(format!(
                "update count of {} is greater than maximum allowed of {}",
                r.updates.len(),
                limits.max_updates_per_write
            )));
        }
        if r.optional_preconditions.len() > limits.max_preconditions {
            return Err(Status::invalid_argument(format!(
                "precondition count of {} is greater than maximum allowed of {}",
                r.optional_preconditions.len(),
                limits.max_preconditions
            )));
        }
        let updates = r
            .updates
            .iter()
            .enumerate()
            .map(|(i, u)| {
                use api::relationship_update::Operation;
                let operation = match Operation::try_from(u.operation) {
                    Ok(Operation::Create) => UpdateOperation::Create,
                    Ok(Operation::Touch) => UpdateOperation::Touch,
                    Ok(Operation::Delete) => UpdateOperation::Delete,
                    _ => {
                        return Err(Status::invalid_argument(format!(
                            "validation error: updates[{i}].operation: value must be one of the defined enum values and not UNSPECIFIED"
                        )))
                    }
                };
                Ok((operation, convert::relationship(&format!("updates[{i}].relationship"), u.relationship.as_ref())?))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let preconditions =
            convert::preconditions("optional_preconditions", &r.optional_preconditions)?;
        self.check_filters_in_schema(&preconditions, None, deadline)
            .await?;
        let result = self
            .node
            .write(
                WriteCommand::Relationships {
                    updates,
                    preconditions,
                },
                deadline,
            )
            .await?;
        Ok(Response::new(api::WriteRelationshipsResponse {
            written_at: Some(self.node.token(result.revision)),
        }))
    }

    async fn delete_relationships(
        &self,
        request: Request<api::DeleteRelationshipsRequest>,
    ) -> Result<Response<api::DeleteRelationshipsResponse>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        let filter = convert::filter("relationship_filter", r.relationship_filter.as_ref())?;
        let preconditions =
            convert::preconditions("optional_preconditions", &r.optional_preconditions)?;
        let limit = if r.optional_limit == 0 {
            None
        } else {
            Some(u64::from(r.optional_limit))
        };
        if limit.is_some_and(|l| l > self.node.limits.max_delete) {
            return Err(limit_error(r.optional_limit, self.node.limits.max_delete));
        }
        self.check_filters_in_schema(&preconditions, Some(&filter), deadline)
            .await?;
        let command = WriteCommand::DeleteByFilter {
            filter,
            preconditions,
            limit,
            allow_partial: r.optional_allow_partial_deletions,
        };
        let result = self.node.write(command, deadline).await?;
        // Like SpiceDB, deleting exactly `limit` relationships reports partial progress: more may
        // remain, and a client that deletes until complete makes one more call.
        let progress = if result.partial || limit.is_some_and(|l| result.count == l) {
            api::delete_relationships_response::DeletionProgress::Partial
        } else {
            api::delete_relationships_response::DeletionProgress::Complete
        };
        Ok(Response::new(api::DeleteRelationshipsResponse {
            deleted_at: Some(self.node.token(result.revision)),
            deletion_progress: progress as i32,
            relationships_deleted_count: result.count,
        }))
    }

    async fn import_bulk_relationships(
        &self,
        request: Request<Streaming<api::ImportBulkRelationshipsRequest>>,
    ) -> Result<Response<api::ImportBulkRelationshipsResponse>, Status> {
        let timeout = self.node.timeout(&request);
        let stream_end = StreamEnd::of(&request);
        let mut stream = request.into_inner();
        let mut imported = 0u64;
        let mut part = ImportPart::default();
        let mut position = 0usize;
        while let Some(batch) = stream
            .message()
            .await
            .map_err(|e| import_failure(e, imported))?
        {
            for r in &batch.relationships {
                let relationship =
                    convert::relationship(&format!("relationships[{position}]"), Some(r))
                        .map_err(|e| import_failure(e, imported))?;
                position += 1;
                if part.add(relationship, prost::Message::encoded_len(r)) {
                    imported += self.import_part(part.take(), imported, timeout).await?;
                }
            }
        }
        // tonic ends the stream the same way when the client cancels the call: what was
        // received of a cancelled import is not committed.
        if !stream_end.is_some_and(|end| end.completed()) {
            return Err(import_failure(
                Status::cancelled("the import was cancelled before its stream ended"),
                imported,
            ));
        }
        if !part.relationships.is_empty() {
            imported += self.import_part(part.take(), imported, timeout).await?;
        }
        Ok(Response::new(api::ImportBulkRelationshipsResponse {
            num_loaded: imported,
        }))
    }

    async fn export_bulk_relationships(
        &self,
        request: Request<api::ExportBulkRelationshipsRequest>,
    ) -> Result<Response<Self::ExportBulkRelationshipsStream>, Status> {
        let deadline = self.node.deadline(&request);
        let r = request.into_inner();
        self.check_limit(r.optional_limit, self.node.limits.max_export_batch)?;
        let filter = match &r.optional_relationship_filter {
            Some(f) => convert::filter("optional_relationship_filter", Some(f))?,
            None => RelationshipFilter::default(),
        };
        let after = r
            .optional_cursor
            .as_ref()
            .map(cursor::decode_relationship)
            .transpose()?;
        let snapshot = self
            .node
            .snapshot_continuing(
                after.as_ref().map(|(revision, _)| *revision),
                r.consistency.as_ref(),
                deadline,
            )
            .await?;
        let batch = if r.optional_limit == 0 {
            self.node.limits.max_export_batch
        } else {
            r.optional_limit as usize
        };
        let revision: Revision = snapshot.revision();
        let mut last = after.map(|(_, key)| key);
        let mut responses = Vec::new();
        loop {
            let mut page = snapshot
                .query(&filter, last.as_ref(), batch)
                .map_err(status::snapshot)?;
            let full = page.len() == batch;
            // Like SpiceDB, a batch holds relationships of one resource type only.
            let first_type = page.first().map(|r| r.resource.object_type.clone());
            let one_type = page
                .iter()
                .take_while(|r| Some(&r.resource.object_type) == first_type.as_ref())
                .count();
            let more_types = one_type < page.len();
            page.truncate(one_type);
            let Some(final_rel) = page.last() else { break };
            last = Some(key_of(final_rel));
            let cursor = cursor::encode_relationship(revision, final_rel);
            responses.push(api::ExportBulkRelationshipsResponse {
                after_result_cursor: Some(cursor),
                relationships: page.iter().map(relationship_to_api).collect(),
            });
            if !full && !more_types {
                break;
            }
        }
        Ok(Response::new(stream_of(responses)))
    }
}

/// The most relationships, and request bytes, one log entry of an import carries. A stream
/// larger than that is committed in parts, each atomic: a log entry must stay far below the
/// size of one replication message between nodes, and memory must not hold a whole stream.
const IMPORT_PART_RELATIONSHIPS: usize = 5_000;
const IMPORT_PART_BYTES: usize = 4 * 1024 * 1024;

/// The relationships of an import not yet committed.
#[derive(Default)]
struct ImportPart {
    relationships: Vec<Relationship>,
    bytes: usize,
}

impl ImportPart {
    /// Adds a relationship of `bytes` request bytes; true once the part is full.
    fn add(&mut self, relationship: Relationship, bytes: usize) -> bool {
        self.relationships.push(relationship);
        self.bytes += bytes;
        self.relationships.len() >= IMPORT_PART_RELATIONSHIPS || self.bytes >= IMPORT_PART_BYTES
    }

    fn take(&mut self) -> Vec<Relationship> {
        self.bytes = 0;
        std::mem::take(&mut self.relationships)
    }
}

/// An import's failure: once parts of it were committed, the message says how much was.
fn import_failure(status: Status, imported: u64) -> Status {
    if imported == 0 {
        return status;
    }
    Status::new(
        status.code(),
        format!(
            "{} ({imported} relationships of this import were committed before the failure: \
             an import larger than {IMPORT_PART_RELATIONSHIPS} relationships commits in parts)",
            status.message()
        ),
    )
}
