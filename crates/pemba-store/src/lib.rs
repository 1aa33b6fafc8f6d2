//! Pemba's datastore: relationships and schemas by revision.
//!
//! Writes are planned against the current state, made durable through a [`Persistence`] and only
//! then made visible, all under one writer lock, so every acknowledged write is on stable storage
//! and readers never see a write that could be lost. Reads take a [`Snapshot`] at a revision and
//! see exactly the state after that revision, however many writes follow.

mod command;
mod datastore;
mod digest;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod filter;
mod image;
mod index;
mod packed;
mod persistence;
mod plan;
mod refusal;
mod schema_change;
pub mod testing;

pub use command::{UpdateOperation, WriteCommand, WriteError, WriteResult};
pub use datastore::{
    Datastore, Install, Observer, Outcome, ReadError, SchemaVersion, Snapshot, SnapshotRead,
    TakenImage,
};
pub use digest::{StateDigest, REMEMBERED_DIGESTS};
pub use filter::{Precondition, RelationshipFilter, SubjectFilter};
pub use image::{recovered_from, write_image, ImageError, ImageSource, ImageView};
pub use index::{key_of, Change, RelationshipKey, Version};
pub use persistence::{
    AppliedWrite, Collected, Durability, MemoryPersistence, Persistence, PersistenceError,
    Recovered, SidecarUpdate,
};
pub use refusal::{RefusalKind, WriteRefusal};
pub use schema_change::SchemaOrphan;
