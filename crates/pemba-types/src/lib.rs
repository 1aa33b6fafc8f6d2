//! Core value types shared by every Pemba crate.
//!
//! A relationship is written `resource_type:resource_id#relation@subject_type:subject_id[#subject_relation]`,
//! optionally followed by `[caveat_name:{json context}]` and `[expiration:RFC3339]`, exactly as SpiceDB
//! writes it. Parsing validates every name and id against SpiceDB's rules, so a value of these types is
//! always well formed.

mod names;
mod relationship;

pub use names::{
    validate_caveat_name, validate_object_id, validate_object_type, validate_relation_name,
    validate_subject_id, NameError, MAX_OBJECT_ID_BYTES, WILDCARD_ID,
};
pub use relationship::{CaveatRef, ObjectRef, ParseError, Relationship, SubjectRef, ELLIPSIS};

/// A datastore revision: the position of a committed write in Pemba's totally ordered history.
/// Revision 0 is the empty store before any write.
pub type Revision = u64;
