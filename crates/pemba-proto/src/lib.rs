//! SpiceDB's gRPC API, `authzed.api.v1`, generated for Pemba.
//!
//! The messages, tonic clients and tonic servers are generated at build time from
//! Pemba's own protos in `<workspace>/proto`, which are wire-compatible with
//! SpiceDB's public API so that official clients work unchanged. The build uses
//! the pure-Rust `protox` compiler, so no system `protoc` is needed.
//!
//! - [`authzed::api::v1`]: `PermissionsService`, `SchemaService`, `WatchService`
//!   (`*_server` and `*_client` submodules) and their messages.
//! - [`google::rpc`]: `Status`, used for per-item errors of `CheckBulkPermissions`.
//! - Well-known types (`Struct`, `Timestamp`, `Duration`, `Any`) are [`prost_types`].
//! - [`pemba::cluster::v1`]: Pemba's cluster port (Raft, forwarding, membership).
//! - gRPC health checking is not here: use the `tonic-health` crate.

pub mod convert;

/// Re-exported because the generated messages embed its well-known types.
pub use prost_types;

/// The `authzed.*` protobuf packages.
pub mod authzed {
    /// The `authzed.api.*` protobuf packages.
    pub mod api {
        /// The `authzed.api.v1` protobuf package: SpiceDB's v1 API.
        #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/authzed.api.v1.rs"));
        }
    }
}

/// The `google.*` protobuf packages other than the well-known types.
pub mod google {
    /// The `google.rpc` protobuf package (only `Status`).
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

/// The `pemba.*` protobuf packages: Pemba's own, not part of SpiceDB's API.
pub mod pemba {
    /// The `pemba.cluster` protobuf packages.
    pub mod cluster {
        /// The `pemba.cluster.v1` protobuf package: the cluster port between replicas.
        #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/pemba.cluster.v1.rs"));
        }
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every compiled file and its
/// imports (with source info), e.g. for `tonic-reflection`'s
/// `register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
