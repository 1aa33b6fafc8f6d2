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
