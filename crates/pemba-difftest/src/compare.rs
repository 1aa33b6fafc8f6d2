//! Comparing Pemba's answers with SpiceDB's, and shrinking a disagreement to a small case.

use std::fmt::Debug;

use serde::Serialize;

use crate::answers::{evaluate, Answer, Answers};
use crate::generate::Case;
use crate::oracle::Oracle;

/// The first question on which the two sides disagree, with both answers as JSON.
#[derive(Debug, Clone)]
pub struct Disagreement {
    /// The case reduced to the one question (before shrinking: with all relationships).
    pub case: Case,
    pub pemba: String,
    pub spicedb: String,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

fn first_difference<T: PartialEq + Serialize + Debug>(
    ours: &[Answer<T>],
    theirs: &[Answer<T>],
) -> Option<(usize, String, String)> {
    if ours.len() != theirs.len() {
        return Some((
            0,
            format!("{} answers", ours.len()),
            format!("{} answers", theirs.len()),
        ));
    }
    ours.iter()
        .zip(theirs)
        .enumerate()
        .find(|(_, (a, b))| !a.agrees_with(b))
        .map(|(i, (a, b))| (i, json(a), json(b)))
}

/// Finds the first disagreement between the answers for `case`, if any.
pub fn disagreement(case: &Case, pemba: &Answers, spicedb: &Answers) -> Option<Disagreement> {
    let only = |f: &dyn Fn(&mut Case)| {
        let mut reduced = Case {
            schema: case.schema.clone(),
            relationships: case.relationships.clone(),
            ..Case::default()
        };
        f(&mut reduced);
        reduced
    };
    match (&pemba.setup_error, &spicedb.setup_error) {
        (None, None) => {}
        (Some(a), Some(b)) if a.code == b.code => return None,
        (a, b) => {
            return Some(Disagreement {
                case: only(&|_| {}),
                pemba: json(a),
                spicedb: json(b),
            })
        }
    }
    if let Some((i, a, b)) = first_difference(&pemba.checks, &spicedb.checks) {
        let query = case.checks.get(i).cloned();
        return Some(Disagreement {
            case: only(&|c| c.checks.extend(query.clone())),
            pemba: a,
            spicedb: b,
        });
    }
    if let Some((i, a, b)) = first_difference(&pemba.lookup_resources, &spicedb.lookup_resources) {
        let query = case.lookup_resources.get(i).cloned();
        return Some(Disagreement {
            case: only(&|c| c.lookup_resources.extend(query.clone())),
            pemba: a,
            spicedb: b,
        });
    }
    if let Some((i, a, b)) = first_difference(&pemba.lookup_subjects, &spicedb.lookup_subjects) {
        let query = case.lookup_subjects.get(i).cloned();
        return Some(Disagreement {
            case: only(&|c| c.lookup_subjects.extend(query.clone())),
            pemba: a,
            spicedb: b,
        });
    }
    None
}

/// Removes relationships one at a time for as long as the two sides still disagree.
pub fn shrink(oracle: &mut Oracle, found: Disagreement) -> anyhow::Result<Disagreement> {
    let mut best = found;
    let mut i = 0;
    while i < best.case.relationships.len() {
        let mut candidate = best.case.clone();
        candidate.relationships.remove(i);
        let theirs = oracle.ask(&candidate)?;
        match disagreement(&candidate, &evaluate(&candidate), &theirs) {
            Some(smaller) => {
                best = Disagreement {
                    case: candidate,
                    ..smaller
                }
            }
            None => i += 1,
        }
    }
    Ok(best)
}
