//! Bearer-token authentication with preshared keys, compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// Accepts requests whose `authorization` header is `Bearer <key>` for one of the keys. As
/// SpiceDB: no header or no key is UNAUTHENTICATED, a key that is not one of them
/// PERMISSION_DENIED.
#[derive(Clone)]
pub struct PresharedKeys {
    keys: Arc<Vec<Vec<u8>>>,
}

impl PresharedKeys {
    /// Keys must be non-empty; callers refuse to start without one.
    pub fn new(keys: Vec<String>) -> Self {
        Self {
            keys: Arc::new(keys.into_iter().map(String::into_bytes).collect()),
        }
    }

    fn accepts(&self, presented: &[u8]) -> bool {
        // Check every key so timing does not depend on which one matched.
        self.keys.iter().fold(false, |found, key| {
            found | bool::from(key.as_slice().ct_eq(presented))
        })
    }

    /// The tonic interceptor.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let header = request.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated(
                "missing preshared key: send the header `authorization: Bearer <key>`",
            )
        })?;
        let header = header.as_bytes();
        let presented = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be `Bearer <key>`")
            })?;
        if presented.is_empty() {
            return Err(Status::unauthenticated("missing preshared key"));
        }
        if self.accepts(presented) {
            Ok(request)
        } else {
            Err(Status::permission_denied(
                "invalid preshared key: invalid token",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = value {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    }

    #[test]
    fn only_a_listed_key_passes() {
        let keys = PresharedKeys::new(vec!["secret".into(), "other".into()]);
        assert!(keys.check(with_header(Some("Bearer secret"))).is_ok());
        assert!(keys.check(with_header(Some("Bearer other"))).is_ok());
        for missing in [None, Some("secret"), Some("Bearer ")] {
            let err = keys.check(with_header(missing)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{missing:?}");
        }
        for wrong in [Some("Bearer secre"), Some("Bearer secrets")] {
            let err = keys.check(with_header(wrong)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{wrong:?}");
        }
    }
}
