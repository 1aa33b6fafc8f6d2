//! The shape of a SpiceDB validation file, and where in the file each item was written.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A validation file as written: every section optional, as `zed validate` accepts.
#[derive(Debug, Default, Deserialize)]
pub struct ValidationFile {
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub relationships: Option<String>,
    #[serde(default)]
    pub assertions: Option<Assertions>,
    /// `type:id#permission` → the exact subjects expected, as `[subject] is <type:id#relation>`.
    #[serde(default)]
    pub validation: Option<BTreeMap<String, Option<Vec<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assertions {
    #[serde(default)]
    pub assert_true: Option<Vec<String>>,
    #[serde(default)]
    pub assert_false: Option<Vec<String>>,
    #[serde(default)]
    pub assert_caveated: Option<Vec<String>>,
}

/// The relationship lines of a `relationships` block: trimmed, without blanks and `//` comments.
pub fn relationship_lines(block: &str) -> impl Iterator<Item = &str> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
}

/// The 1-based line of the first occurrence of `needle` in `source` (1 if not found verbatim, e.g.
/// text folded by YAML).
pub fn line_of(source: &str, needle: &str) -> usize {
    source
        .find(needle)
        .map(|at| source[..at].matches('\n').count() + 1)
        .unwrap_or(1)
}
