//! One Pemba node's state shared by its services: the datastore, its identity, the clock and the
//! request limits.

use std::sync::Arc;
use std::time::SystemTime;

use pemba_proto::authzed::api::v1 as api;
use pemba_store::{Datastore, Snapshot, WriteCommand, WriteResult};
use pemba_types::Revision;
use tonic::Status;

use crate::status;
use crate::token::{self, TokenError};

/// Limits on request sizes, as SpiceDB enforces them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Updates in one WriteRelationships (SpiceDB: 1000).
    pub max_updates_per_write: usize,
    /// Preconditions in one write (SpiceDB: 1000).
    pub max_preconditions: usize,
    /// Items in one CheckBulkPermissions (SpiceDB: 1000).
    pub max_bulk_checks: usize,
    /// Relationships deleted by one DeleteRelationships (SpiceDB: 1000).
    pub max_delete: u64,
    /// The largest `optional_limit` of ReadRelationships and LookupResources (SpiceDB: 1000).
    pub max_read_page: usize,
    /// The largest ExportBulkRelationships batch, and the batch size when none is given
    /// (SpiceDB: 10000).
    pub max_export_batch: usize,
    /// The largest schema accepted, in bytes.
    pub max_schema_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_updates_per_write: 1000,
            max_preconditions: 1000,
            max_bulk_checks: 1000,
            max_delete: 1000,
            max_read_page: 1000,
            max_export_batch: 10_000,
            max_schema_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A source of wall-clock time (injected, so simulations control it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What the services of one node share.
pub struct Node {
    pub datastore: Arc<Datastore>,
    pub datastore_id: String,
    pub limits: Limits,
    pub clock: Clock,
}

impl Node {
    pub fn new(
        datastore: Arc<Datastore>,
        datastore_id: String,
        limits: Limits,
        clock: Clock,
    ) -> Self {
        Self {
            datastore,
            datastore_id,
            limits,
            clock,
        }
    }

    pub fn token(&self, revision: Revision) -> api::ZedToken {
        api::ZedToken {
            token: token::encode(&self.datastore_id, revision),
        }
    }

    /// The revision a read with `consistency` is evaluated at.
    ///
    /// As SpiceDB does by default, `at_least_as_fresh` with a token from another datastore is
    /// served fully consistent (the freshest answer there is), and `at_exact_snapshot` with one
    /// fails: that snapshot does not exist here.
    pub fn read_revision(
        &self,
        consistency: Option<&api::Consistency>,
    ) -> Result<Revision, Status> {
        use api::consistency::Requirement;
        let head = self.datastore.head();
        match consistency.and_then(|c| c.requirement.as_ref()) {
            None
            | Some(Requirement::MinimizeLatency(_))
            | Some(Requirement::FullyConsistent(_)) => Ok(head),
            Some(Requirement::AtLeastAsFresh(t)) => {
                let wanted = match token::decode(&self.datastore_id, &t.token) {
                    Ok(wanted) => wanted,
                    Err(e @ TokenError::OtherDatastore { .. }) => {
                        tracing::warn!("{e}: served as a fully consistent request");
                        return Ok(head);
                    }
                    Err(e) => return Err(status::token(e)),
                };
                if wanted > head {
                    return Err(Status::unavailable(format!(
                        "this node has applied revision {head}, older than the ZedToken's revision {wanted}"
                    )));
                }
                Ok(head)
            }
            Some(Requirement::AtExactSnapshot(t)) => match token::decode(&self.datastore_id, &t.token)
            {
                Err(TokenError::OtherDatastore { .. }) => Err(Status::unknown(
                    "ZedToken specified references a different datastore instance but at-exact-snapshot was requested",
                )),
                decoded => decoded.map_err(status::token),
            },
        }
    }

    /// A snapshot for a read with `consistency`.
    pub fn snapshot(&self, consistency: Option<&api::Consistency>) -> Result<Snapshot, Status> {
        let revision = self.read_revision(consistency)?;
        self.datastore.snapshot(revision).map_err(status::read)
    }

    /// The snapshot a paginated read continues from: the cursor's revision if it carries one,
    /// else the one `consistency` asks for.
    pub fn snapshot_continuing(
        &self,
        cursor_revision: Option<Revision>,
        consistency: Option<&api::Consistency>,
    ) -> Result<Snapshot, Status> {
        match cursor_revision {
            Some(revision) => self.datastore.snapshot(revision).map_err(status::read),
            None => self.snapshot(consistency),
        }
    }

    /// Applies a write as the next revision, durably.
    pub fn write(&self, command: &WriteCommand) -> Result<WriteResult, Status> {
        self.datastore
            .apply_next((self.clock)(), command)
            .map_err(status::write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pemba_store::MemoryPersistence;

    fn node(id: &str) -> Node {
        let datastore = Datastore::open(Box::new(MemoryPersistence::default())).unwrap();
        let node = Node::new(
            Arc::new(datastore),
            id.to_string(),
            Limits::default(),
            Arc::new(SystemTime::now),
        );
        for _ in 0..3 {
            node.write(&WriteCommand::Schema {
                text: "definition user {}".into(),
            })
            .unwrap();
        }
        node
    }

    fn at_least_as_fresh(token: api::ZedToken) -> api::Consistency {
        api::Consistency {
            requirement: Some(api::consistency::Requirement::AtLeastAsFresh(token)),
        }
    }

    fn at_exact_snapshot(token: api::ZedToken) -> api::Consistency {
        api::Consistency {
            requirement: Some(api::consistency::Requirement::AtExactSnapshot(token)),
        }
    }

    #[test]
    fn tokens_of_another_datastore_read_the_head_or_fail_for_an_exact_snapshot() {
        let (ours, theirs) = (node("ours"), node("theirs"));
        assert_eq!(
            ours.read_revision(Some(&at_exact_snapshot(ours.token(2))))
                .unwrap(),
            2
        );
        assert_eq!(
            ours.read_revision(Some(&at_least_as_fresh(theirs.token(1))))
                .unwrap(),
            3
        );
        let exact = ours
            .read_revision(Some(&at_exact_snapshot(theirs.token(1))))
            .unwrap_err();
        assert_eq!(exact.code(), tonic::Code::Unknown);
        let garbled = api::ZedToken {
            token: "garbage".into(),
        };
        for consistency in [
            at_least_as_fresh(garbled.clone()),
            at_exact_snapshot(garbled),
        ] {
            let error = ours.read_revision(Some(&consistency)).unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
        }
    }
}
