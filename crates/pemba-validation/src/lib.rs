//! Runs SpiceDB validation files against Pemba's engine, as `zed validate` and SpiceDB's own
//! integration suite do: assertions, expected subjects, and a cross-check that Check,
//! LookupResources and LookupSubjects agree on every (resource, permission, subject) in the file.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod consistency;
mod file;
mod membership;

use std::fmt;

use pemba_engine::{validate_relationship, Engine, ExpandMode, FixedSnapshot, Permissionship};
use pemba_schema::CompiledSchema;
use pemba_types::{ObjectRef, Relationship};
use serde_json::{Map, Value as Json};

pub use file::ValidationFile;
use file::{line_of, relationship_lines};
use membership::{parse_expected, Membership};

/// One failed expectation, at a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// What running one file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every expectation held; the counts say how much was checked.
    Passed {
        assertions: usize,
        expected_subjects: usize,
        cross_checks: usize,
    },
    /// The file needs a feature Pemba does not have yet (caveats, expiration).
    Skipped {
        reason: String,
    },
    Failed(Vec<Failure>),
}

/// A file's name and outcome; displays as one summary line per failure, `name:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub outcome: Outcome,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Passed { assertions, expected_subjects, cross_checks } => write!(
                f,
                "{}: ok ({assertions} assertions, {expected_subjects} expected-subject lists, {cross_checks} cross-checks)",
                self.name
            ),
            Outcome::Skipped { reason } => write!(f, "{}: skipped: {reason}", self.name),
            Outcome::Failed(failures) => {
                for (i, failure) in failures.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{}:{}: {}", self.name, failure.line, failure.message)?;
                }
                Ok(())
            }
        }
    }
}

const CAVEATED_EXPECTATIONS_UNSUPPORTED: &str =
    "expected relations over caveated relationships ([...] markers) are not compared yet";

/// Runs one validation file given its name (for messages) and text.
pub fn run_source(name: &str, text: &str) -> Report {
    let report = |outcome| Report {
        name: name.to_string(),
        outcome,
    };
    let fail = |line, message: String| report(Outcome::Failed(vec![Failure { line, message }]));

    let file: ValidationFile = match serde_yaml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let line = e.location().map(|l| l.line()).unwrap_or(1);
            return fail(line, format!("not a validation file: {e}"));
        }
    };
    let schema_text = file.schema.as_deref().unwrap_or_default();
    let schema_line = line_of(text, "schema:");
    let schema = match pemba_schema::compile("schema", schema_text) {
        Ok(schema) => schema,
        Err(e) => return fail(schema_line + e.line, format!("invalid schema: {e}")),
    };

    let mut failures = Vec::new();
    let mut relationships = Vec::new();
    for line in relationship_lines(file.relationships.as_deref().unwrap_or_default()) {
        let at = line_of(text, line);
        match Relationship::parse(line) {
            Ok(r) => match validate_relationship(&schema, &r) {
                Ok(()) => relationships.push(r),
                Err(e) => failures.push(Failure {
                    line: at,
                    message: format!("relationship `{line}`: {e}"),
                }),
            },
            Err(e) => failures.push(Failure {
                line: at,
                message: format!("relationship `{line}`: {e}"),
            }),
        }
    }
    let assertions = file.assertions.unwrap_or_default();
    let validation = file.validation.unwrap_or_default();
    let caveated_relationships = relationships.iter().any(|r| r.caveat.is_some());
    if caveated_relationships
        && validation
            .values()
            .any(|v| v.as_ref().is_some_and(|l| !l.is_empty()))
    {
        return report(Outcome::Skipped {
            reason: CAVEATED_EXPECTATIONS_UNSUPPORTED.to_string(),
        });
    }
    if !failures.is_empty() {
        return report(Outcome::Failed(failures));
    }

    let snapshot = FixedSnapshot::new(relationships.iter().cloned());
    let engine = Engine::new(&schema, &snapshot);

    let mut assertion_count = 0;
    for (list, expected) in [
        (&assertions.assert_true, Answer::Has),
        (&assertions.assert_caveated, Answer::Conditional),
        (&assertions.assert_false, Answer::No),
    ] {
        for assertion in list.iter().flatten() {
            assertion_count += 1;
            if let Some(message) = check_assertion(&schema, &snapshot, assertion, expected) {
                failures.push(Failure {
                    line: line_of(text, assertion),
                    message,
                });
            }
        }
    }

    for (key, expected) in &validation {
        let line = line_of(text, key);
        failures.extend(
            check_expected_subjects(&engine, key, expected.as_deref().unwrap_or_default())
                .into_iter()
                .map(|message| Failure { line, message }),
        );
    }

    let cross = consistency::cross_check(&schema, &engine, &relationships, &assertions);
    failures.extend(
        cross
            .failures
            .into_iter()
            .map(|message| Failure { line: 1, message }),
    );

    if failures.is_empty() {
        report(Outcome::Passed {
            assertions: assertion_count,
            expected_subjects: validation.len(),
            cross_checks: cross.checks,
        })
    } else {
        report(Outcome::Failed(failures))
    }
}

/// A check's answer with the missing context names left out: what an assertion list requires
/// (assertTrue, assertCaveated, assertFalse), and what lookups and Check must agree on. Ordered
/// by how surely the permission is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Answer {
    No,
    Conditional,
    Has,
}

impl Answer {
    pub(crate) fn of(permissionship: &Permissionship) -> Answer {
        match permissionship {
            Permissionship::NoPermission => Answer::No,
            Permissionship::HasPermission => Answer::Has,
            Permissionship::Conditional { .. } => Answer::Conditional,
        }
    }

    /// Kleene negation: a conditional answer stays conditional.
    pub(crate) fn not(self) -> Answer {
        match self {
            Answer::No => Answer::Has,
            Answer::Conditional => Answer::Conditional,
            Answer::Has => Answer::No,
        }
    }

    /// The status name SpiceDB gives this answer.
    fn api_name(self) -> &'static str {
        match self {
            Answer::No => "NO_PERMISSION",
            Answer::Conditional => "CONDITIONAL_PERMISSION",
            Answer::Has => "HAS_PERMISSION",
        }
    }
}

/// Why an assertion could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AssertionError {
    #[error("invalid caveat context `{text}`: {source}")]
    Context {
        text: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Relationship(#[from] pemba_types::ParseError),
    #[error("cannot specify a caveat on an assertion")]
    Caveat,
}

/// Splits `resource#permission@subject with {"json": "context"}` into the relationship and the
/// context (empty without ` with `), as SpiceDB reads assertions.
pub(crate) fn parse_assertion(
    assertion: &str,
) -> Result<(Relationship, Map<String, Json>), AssertionError> {
    let (relationship, context) = match assertion.trim().split_once(" with ") {
        Some((relationship, context)) => {
            let context: Map<String, Json> =
                serde_json::from_str(context.trim()).map_err(|source| AssertionError::Context {
                    text: context.trim().to_string(),
                    source,
                })?;
            (relationship, context)
        }
        None => (assertion.trim(), Map::new()),
    };
    let parsed = Relationship::parse(relationship)?;
    if parsed.caveat.is_some() {
        return Err(AssertionError::Caveat);
    }
    Ok((parsed, context))
}

/// Checks one assertion (with its context, if any); returns a message if it does not hold.
fn check_assertion<S: pemba_engine::RelationshipSnapshot>(
    schema: &CompiledSchema,
    snapshot: &S,
    assertion: &str,
    expected: Answer,
) -> Option<String> {
    let (parsed, context) = match parse_assertion(assertion) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("assertion `{assertion}`: {e}")),
    };
    let engine = Engine::new(schema, snapshot).with_context(context);
    let answer = match engine.check(&parsed.resource, &parsed.relation, &parsed.subject) {
        Ok(answer) => answer,
        Err(e) => return Some(format!("assertion `{assertion}` could not be checked: {e}")),
    };
    let got = Answer::of(&answer);
    (got != expected).then(|| {
        let wanted = match expected {
            Answer::Has => "true",
            Answer::Conditional => "caveated",
            Answer::No => "false",
        };
        format!(
            "expected `{assertion}` to be {wanted}, but the check answered {}",
            got.api_name()
        )
    })
}

/// Compares the subjects expected for `type:id#permission` with those a recursive expansion finds.
fn check_expected_subjects<S: pemba_engine::RelationshipSnapshot>(
    engine: &Engine<'_, S>,
    key: &str,
    expected_lines: &[String],
) -> Vec<String> {
    let Some((object, permission)) = key.split_once('#') else {
        return vec![format!("`{key}` is not of the form type:id#permission")];
    };
    let object = match ObjectRef::parse(object) {
        Ok(object) => object,
        Err(e) => return vec![format!("`{key}`: {e}")],
    };
    let tree = match engine.expand(&object, permission, ExpandMode::Recursive) {
        Ok(tree) => tree,
        Err(e) => return vec![format!("`{key}` could not be expanded: {e}")],
    };
    let found = Membership::of(&tree).entries();
    let mut expected = Vec::new();
    let mut messages = Vec::new();
    for line in expected_lines {
        match parse_expected(line) {
            Some(entry) => expected.push(entry),
            None => messages.push(format!("For object and permission/relation `{key}`, no expected subject specified in `{line}`")),
        }
    }
    for entry in &expected {
        match found.iter().find(|f| f.subject == entry.subject) {
            None => messages.push(format!(
                "For object and permission/relation `{key}`, missing expected subject `{}`",
                entry.subject
            )),
            Some(f) if f.sources != entry.sources => messages.push(format!(
                "For object and permission/relation `{key}`, found different relationships for subject `{}`: Specified: `{}`, Computed: `{}`",
                entry.subject,
                entry.sources.join("/"),
                f.sources.join("/")
            )),
            Some(f) if f.excluded != entry.excluded => messages.push(format!(
                "For object and permission/relation `{key}`, found different excluded subjects for subject `{}`: Specified: `{}`, Computed: `{}`",
                entry.subject,
                entry.excluded.join(", "),
                f.excluded.join(", ")
            )),
            Some(_) => {}
        }
    }
    for f in &found {
        if !expected.iter().any(|e| e.subject == f.subject) {
            messages.push(format!(
                "For object and permission/relation `{key}`, subject `{}` found but not listed in expected subjects",
                f.subject
            ));
        }
    }
    messages
}
