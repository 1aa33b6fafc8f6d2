//! Integration tests of `pemba_schema` through its public API: errors with their exact messages
//! and positions, compiled models, printing and round trips, SpiceDB's own test schemas, and
//! robustness against arbitrary input.

mod compile;
mod errors;
mod printer;
mod robustness;
mod testconfigs;

use pemba_schema::{compile, CompiledSchema};

/// The full error text for a schema that must not compile (named `schema.zed`).
pub fn error_of(text: &str) -> String {
    match compile("schema.zed", text) {
        Ok(_) => panic!("expected an error, but this compiled:\n{text}"),
        Err(error) => error.to_string(),
    }
}

/// The compiled schema for text that must compile.
pub fn compiled(text: &str) -> CompiledSchema {
    compile("schema.zed", text).unwrap_or_else(|error| panic!("{error}\nin:\n{text}"))
}

/// Printing `schema` and compiling the text gives `schema` again, and printing is stable.
pub fn assert_round_trip(schema: &CompiledSchema) {
    let printed = schema.to_schema_text();
    let again = compile("printed.zed", &printed)
        .unwrap_or_else(|error| panic!("printed schema does not compile: {error}\n{printed}"));
    assert_eq!(
        &again, schema,
        "round trip changed the schema; printed:\n{printed}"
    );
    assert_eq!(again.to_schema_text(), printed, "printing is not stable");
}
