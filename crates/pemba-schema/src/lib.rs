//! SpiceDB's schema language for Pemba.
//!
//! [`compile`] turns schema text into a type-checked [`CompiledSchema`] (see [`model`]), or a
//! [`SchemaError`] that says where and what is wrong. [`CompiledSchema::to_schema_text`] prints a
//! schema back in SpiceDB's canonical style; compiling that text gives back an equal schema.
//!
//! The whole language is supported except imports, partials, `use self` / `self` and permission
//! type annotations, which are rejected as not supported. Caveat expressions (CEL) are compiled
//! and type-checked by `pemba-caveats`.
//!
//! Pipeline: `lexer` (tokens, statement-ending line breaks, comments) → `parser` (the syntax tree
//! in `ast`) → `check` (SpiceDB's validation rules, then lowering to the model). `printer` goes
//! back to text.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod ast;
mod check;
mod error;
mod lexer;
pub mod model;
mod names;
mod parser;
mod printer;

pub use error::{ErrorKind, Hint, NameKind, SchemaError};
pub use model::{
    AllowedSubject, AllowedSubjectKind, Arrow, ArrowFunction, CaveatDefinition, CompiledCaveat,
    CompiledSchema, Definition, Member, Permission, Relation, Rewrite,
};

/// Deepest nesting accepted in a permission expression (parentheses, and operations within
/// operations) and in caveat parameter types. Deeper input is an error rather than a risk to the
/// stack of whatever walks the result recursively.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Parses and type-checks a schema. `source_name` only labels errors (`schema.zed:7:21: …`).
///
/// Never panics, whatever the input.
#[expect(
    clippy::result_large_err,
    reason = "errors are rare and reported once; a compact error type is not worth the indirection"
)]
pub fn compile(source_name: &str, text: &str) -> Result<CompiledSchema, SchemaError> {
    parser::parse(text)
        .and_then(|schema| check::check(&schema, text))
        .map_err(|error| error.into_schema_error(source_name, text))
}
