//! Every schema of SpiceDB's integration test configurations compiles, and round-trips through
//! the printer. The files live in the shared directory next to the repository.

use std::path::Path;

use crate::assert_round_trip;

const TESTCONFIGS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/spicedb-testconfigs"
);

#[test]
fn spicedb_testconfig_schemas_compile_and_round_trip() {
    let dir = Path::new(TESTCONFIGS_DIR);
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| {
        panic!(
            "cannot read SpiceDB's test configurations at {} ({error}); they are expected in \
             shared/spicedb-testconfigs next to the repository",
            dir.display()
        )
    });
    let mut paths: Vec<_> = entries
        .map(|entry| entry.expect("directory entry").path())
        // `self.yaml.skip` (which uses `use self`) is skipped, as upstream does.
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 50,
        "expected SpiceDB's test configurations, found {}",
        paths.len()
    );

    for path in &paths {
        let text = std::fs::read_to_string(path).expect("readable file");
        let document: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: not YAML: {error}", path.display()));
        let schema = document
            .get("schema")
            .and_then(serde_yaml::Value::as_str)
            .unwrap_or_else(|| panic!("{}: no schema", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("schema");
        let compiled = pemba_schema::compile(name, schema)
            .unwrap_or_else(|error| panic!("{error}\nin schema:\n{schema}"));
        assert!(!compiled.definitions.is_empty(), "{name}: no definitions");
        assert_round_trip(&compiled);
    }
}
