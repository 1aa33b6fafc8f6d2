//! `cargo fuzz run compile` (from crates/pemba-schema): `compile` never panics on any UTF-8 text,
//! and a schema that compiles prints to text that compiles back to an equal schema.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = pemba_schema::compile("fuzz.zed", text) else {
        return;
    };
    let printed = schema.to_schema_text();
    match pemba_schema::compile("printed.zed", &printed) {
        Ok(again) => assert_eq!(schema, again, "round trip changed the schema:\n{printed}"),
        Err(error) => panic!("printed schema does not compile: {error}\n{printed}"),
    }
});
