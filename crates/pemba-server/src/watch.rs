//! `authzed.api.v1.WatchService`: every relationship change after a revision, in revision order,
//! with no gaps and no duplicates, then new changes as they are applied.

use std::pin::Pin;
use std::sync::Arc;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::watch_service_server::WatchService;
use pemba_store::{Change, RelationshipFilter};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert::{self, relationship_to_api};
use crate::node::Node;
use crate::{status, token};

pub struct Watcher {
    node: Arc<Node>,
}

impl Watcher {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Which changes a watcher asked for.
struct Selection {
    object_types: Vec<String>,
    filters: Vec<RelationshipFilter>,
}

impl Selection {
    fn wants(&self, change: &Change) -> bool {
        let r = change.relationship();
        (self.object_types.is_empty() || self.object_types.contains(&r.resource.object_type))
            && (self.filters.is_empty() || self.filters.iter().any(|f| f.matches(r)))
    }

    fn update(change: &Change) -> api::RelationshipUpdate {
        let operation = match change {
            Change::Touch(_) => api::relationship_update::Operation::Touch,
            Change::Delete(_) => api::relationship_update::Operation::Delete,
        };
        api::RelationshipUpdate {
            operation: operation as i32,
            relationship: Some(relationship_to_api(change.relationship())),
        }
    }
}

#[tonic::async_trait]
impl WatchService for Watcher {
    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<api::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<api::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        if !r.optional_object_types.is_empty() && !r.optional_relationship_filters.is_empty() {
            return Err(Status::invalid_argument(
                "cannot specify both object types and relationship filters",
            ));
        }
        let filters = r
            .optional_relationship_filters
            .iter()
            .enumerate()
            .map(|(i, f)| convert::filter(&format!("optional_relationship_filters[{i}]"), Some(f)))
            .collect::<Result<Vec<_>, _>>()?;
        let selection = Selection {
            object_types: r.optional_object_types,
            filters,
        };
        let datastore = self.node.datastore.clone();
        let mut last = match &r.optional_start_cursor {
            Some(t) => token::decode(&self.node.datastore_id, &t.token).map_err(status::token)?,
            None => datastore.head(),
        };
        // Fail fast if the start is already out of the kept history.
        datastore.changes_after(last).map_err(status::read)?;

        let (sender, receiver) = mpsc::channel(16);
        let node = self.node.clone();
        let mut head = datastore.watch_head();
        tokio::spawn(async move {
            loop {
                let batches = match datastore.changes_after(last) {
                    Ok(batches) => batches,
                    Err(e) => {
                        let _ = sender.send(Err(status::read(e))).await;
                        return;
                    }
                };
                for (revision, changes) in batches {
                    last = revision;
                    let updates: Vec<api::RelationshipUpdate> = changes
                        .iter()
                        .filter(|c| selection.wants(c))
                        .map(Selection::update)
                        .collect();
                    if updates.is_empty() {
                        continue;
                    }
                    let response = api::WatchResponse {
                        updates,
                        changes_through: Some(node.token(revision)),
                        ..Default::default()
                    };
                    if sender.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = head.wait_for(|h| *h > last) => if changed.is_err() { return },
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
