//! SpiceDB's caveats for Pemba: typed parameters, CEL expressions compiled and type-checked with
//! the `cel` library, and evaluation that reports which parameters are missing instead of guessing.
//!
//! A caveat is compiled once, when its schema is compiled; evaluation takes the context written on
//! the relationship and the context of the request (the written one wins) and gives a [`Truth`]:
//! true, false, or partial with the names of the parameters it needs.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod caveat;
mod error;
mod ipaddress;
mod typecheck;
mod types;

pub use caveat::{Caveat, Truth};
pub use error::{CompileError, ContextError, Diagnostic, EvaluationError};
pub use types::{ConversionError, Found, Problem, TimeError};
