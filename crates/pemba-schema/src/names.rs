//! Name rules, explained: why a name is invalid, and which known name a typo was meant to be.
//!
//! Validity itself is decided by `pemba_types` (the rules every Pemba crate shares); this module
//! only finds the words to explain a rejection.

use pemba_types::{validate_object_type, validate_relation_name};

use crate::error::Hint;

/// Why a definition or caveat name (`/`-separated segments) is invalid, or `None` if it is valid.
pub(crate) fn object_type_problem(name: &str) -> Option<String> {
    let error = validate_object_type(name).err()?;
    let segments: Vec<&str> = name.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        let max_len = if i == last { 64 } else { 63 };
        if let Some(problem) = segment_problem(segment, max_len) {
            return Some(if last == 0 {
                problem
            } else {
                format!("segment '{segment}' {problem}")
            });
        }
    }
    Some(error.to_string())
}

/// Why a relation or permission name is invalid, or `None` if it is valid.
pub(crate) fn relation_name_problem(name: &str) -> Option<String> {
    let error = validate_relation_name(name).err()?;
    Some(segment_problem(name, 64).unwrap_or_else(|| error.to_string()))
}

/// Why `segment` breaks `^[a-z][a-z0-9_]*[a-z0-9]$` with 3 to `max_len` characters.
fn segment_problem(segment: &str, max_len: usize) -> Option<String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if let Some(bad) = segment.chars().find(|&c| !allowed(c)) {
        return Some(format!(
            "must contain only lowercase letters, digits and '_' (found {bad:?})"
        ));
    }
    // From here on the segment is ASCII, so byte lengths are character counts.
    let problem = if !segment.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lowercase letter".to_string()
    } else if segment.ends_with('_') {
        "must not end with '_'".to_string()
    } else if segment.len() < 3 {
        "must be at least 3 characters long".to_string()
    } else if segment.len() > max_len {
        format!(
            "must be at most {max_len} characters long (found {})",
            segment.len()
        )
    } else {
        return None;
    };
    Some(problem)
}

/// Words CEL reserves, which cannot name a caveat parameter.
const CEL_RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "false",
    "for",
    "function",
    "if",
    "import",
    "in",
    "let",
    "loop",
    "namespace",
    "null",
    "package",
    "return",
    "true",
    "var",
    "void",
    "while",
];

/// Why a caveat parameter name is not a usable CEL identifier, or `None` if it is one.
pub(crate) fn parameter_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok {
        return Some("must start with an ASCII letter or '_'".into());
    }
    if let Some(bad) = chars.find(|&c| !(c.is_ascii_alphanumeric() || c == '_')) {
        return Some(format!(
            "must contain only ASCII letters, digits and '_' (found {bad:?})"
        ));
    }
    if CEL_RESERVED.contains(&name) {
        return Some("is a reserved word in caveat expressions".into());
    }
    None
}

/// Longest name compared for suggestions; longer ones get none (bounds the quadratic distance).
const MAX_SUGGESTION_LEN: usize = 128;

/// The candidate closest to `name`, if one is within edit distance 2 and closer than the name is
/// long. Ties go to the earliest candidate.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<Hint> {
    let name_chars: Vec<char> = name.chars().collect();
    if name_chars.len() > MAX_SUGGESTION_LEN {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let candidate_chars: Vec<char> = candidate.chars().collect();
        if candidate == name || candidate_chars.len() > MAX_SUGGESTION_LEN {
            continue;
        }
        let distance = edit_distance(&name_chars, &candidate_chars);
        if distance <= 2 && distance < name_chars.len() && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| Hint::DidYouMean(candidate.to_string()))
}

/// Levenshtein distance (insertions, deletions and substitutions of characters).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_invalid_names() {
        assert_eq!(object_type_problem("user"), None);
        assert_eq!(object_type_problem("org/team/user"), None);
        assert_eq!(
            object_type_problem("User").as_deref(),
            Some("must contain only lowercase letters, digits and '_' (found 'U')")
        );
        assert_eq!(
            object_type_problem("ab/user").as_deref(),
            Some("segment 'ab' must be at least 3 characters long")
        );
        assert_eq!(
            object_type_problem("9abc").as_deref(),
            Some("must start with a lowercase letter")
        );
        assert_eq!(
            relation_name_problem("view_").as_deref(),
            Some("must not end with '_'")
        );
        let long = "a".repeat(65);
        assert_eq!(
            relation_name_problem(&long).as_deref(),
            Some("must be at most 64 characters long (found 65)")
        );
        assert_eq!(parameter_name_problem("someParam"), None);
        assert_eq!(
            parameter_name_problem("in").as_deref(),
            Some("is a reserved word in caveat expressions")
        );
        assert_eq!(
            parameter_name_problem("née").as_deref(),
            Some("must contain only ASCII letters, digits and '_' (found 'é')")
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let candidates = ["viewer", "editor", "owner"];
        assert_eq!(
            suggest("editr", candidates),
            Some(Hint::DidYouMean("editor".into()))
        );
        assert_eq!(
            suggest("viewr", candidates),
            Some(Hint::DidYouMean("viewer".into()))
        );
        assert_eq!(suggest("admin", candidates), None);
        assert_eq!(
            suggest("ab", ["cd"]),
            None,
            "distance must be below the name's length"
        );
        assert_eq!(edit_distance(&['a', 'b'], &['b', 'a']), 2);
    }
}
