//! The cluster secret: every peer call carries it as a bearer token.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// The shared secret of a cluster's nodes.
#[derive(Clone)]
pub struct ClusterSecret {
    secret: Arc<Vec<u8>>,
}

impl ClusterSecret {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: Arc::new(secret.as_bytes().to_vec()),
        }
    }

    /// Adds the secret to an outgoing request.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        let value = format!("Bearer {}", String::from_utf8_lossy(&self.secret));
        if let Ok(value) = MetadataValue::try_from(value) {
            request.metadata_mut().insert("authorization", value);
        }
    }

    /// The interceptor of the cluster port: refuses calls without the secret.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if bool::from(self.secret.as_slice().ct_eq(presented)) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "the cluster port needs the cluster secret (--cluster-secret) as `authorization: Bearer <secret>`",
            ))
        }
    }
}

/// The header a peer call names its cluster in, once the caller knows it.
const CLUSTER_ID_HEADER: &str = "pemba-cluster-id";

/// Names `cluster_id` on an outgoing peer call.
pub fn attach_cluster_id<T>(request: &mut Request<T>, cluster_id: &str) {
    if let Ok(value) = MetadataValue::try_from(cluster_id) {
        request.metadata_mut().insert(CLUSTER_ID_HEADER, value);
    }
}

/// Refuses a peer call from another cluster than `ours` (either side may not know its cluster
/// yet: a new node, a cluster not yet founded). The refusal names this node's cluster.
pub fn check_cluster_id<T>(request: &Request<T>, ours: Option<&str>) -> Result<(), Status> {
    let theirs = request
        .metadata()
        .get(CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    match (theirs, ours) {
        (Some(theirs), Some(ours)) if theirs != ours => {
            let mut status = Status::failed_precondition(format!(
                "this node belongs to cluster {ours}, the caller to cluster {theirs}: a node holding another cluster's data is refused"
            ));
            if let Ok(value) = MetadataValue::try_from(ours) {
                status.metadata_mut().insert(CLUSTER_ID_HEADER, value);
            }
            Err(status)
        }
        _ => Ok(()),
    }
}

/// The cluster a peer that refused a call as another cluster's says it belongs to.
pub fn refusing_cluster(status: &Status) -> Option<String> {
    (status.code() == tonic::Code::FailedPrecondition)
        .then(|| status.metadata().get(CLUSTER_ID_HEADER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_between_clusters_are_refused_naming_the_cluster() {
        let mut request = Request::new(());
        attach_cluster_id(&mut request, "aaa");
        assert!(check_cluster_id(&request, Some("aaa")).is_ok());
        assert!(check_cluster_id(&request, None).is_ok());
        assert!(check_cluster_id(&Request::new(()), Some("aaa")).is_ok());
        let refused = check_cluster_id(&request, Some("bbb")).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refusing_cluster(&refused).as_deref(), Some("bbb"));
    }
}
