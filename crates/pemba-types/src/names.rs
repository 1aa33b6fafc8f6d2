//! Validation of type names, relation names and object ids, following SpiceDB's patterns.

use thiserror::Error;

/// The object id that stands for "every subject of this type" in a relationship's subject.
pub const WILDCARD_ID: &str = "*";

/// SpiceDB's limit on an object id's length, in bytes.
pub const MAX_OBJECT_ID_BYTES: usize = 1024;

/// Why a name or id is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// An object type (definition name) not of SpiceDB's form.
    #[error("invalid object type '{0}': must match ^([a-z][a-z0-9_]{{1,61}}[a-z0-9]/)*[a-z][a-z0-9_]{{1,62}}[a-z0-9]$")]
    ObjectType(String),
    /// A relation or permission name not of SpiceDB's form.
    #[error("invalid relation name '{0}': must match ^[a-z][a-z0-9_]{{1,62}}[a-z0-9]$")]
    Relation(String),
    /// An object id with a character SpiceDB does not allow, or too long.
    #[error("invalid object id '{0}': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +")]
    ObjectId(String),
    /// A subject id with a character SpiceDB does not allow (the wildcard aside), or too long.
    #[error(
        "invalid subject id '{0}': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +, or '*'"
    )]
    SubjectId(String),
    /// A caveat name not of SpiceDB's form.
    #[error("invalid caveat name '{0}': must match ^[a-zA-Z0-9_][a-zA-Z0-9/_|-]{{0,127}}$")]
    Caveat(String),
}

/// Checks a caveat name as SpiceDB's API does: 1 to 128 characters of letters, digits and
/// `/ _ | -`, not starting with `/`, `|` or `-`.
pub fn validate_caveat_name(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'|' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NameError::Caveat(name.to_string()))
    }
}

/// `[a-z][a-z0-9_]{min_mid,max_mid}[a-z0-9]`: SpiceDB's identifier segment.
fn is_identifier_segment(s: &str, max_middle: usize) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || b.len() > max_middle + 2 {
        return false;
    }
    let first_ok = b[0].is_ascii_lowercase();
    let last = b[b.len() - 1];
    let last_ok = last.is_ascii_lowercase() || last.is_ascii_digit();
    let middle_ok = b[1..b.len() - 1]
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    first_ok && last_ok && middle_ok
}

/// Checks a definition (object type) name: segments separated by `/`, each an identifier; the last
/// segment may be up to 64 characters, prefix segments up to 63.
pub fn validate_object_type(name: &str) -> Result<(), NameError> {
    let segments: Vec<&str> = name.split('/').collect();
    let (last, prefixes) = segments
        .split_last()
        .expect("split yields at least one segment");
    let ok =
        is_identifier_segment(last, 62) && prefixes.iter().all(|p| is_identifier_segment(p, 61));
    if ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(NameError::ObjectType(name.to_string()))
    }
}

/// Checks a relation or permission name.
pub fn validate_relation_name(name: &str) -> Result<(), NameError> {
    if is_identifier_segment(name, 62) {
        Ok(())
    } else {
        Err(NameError::Relation(name.to_string()))
    }
}

fn is_object_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '|' | '-' | '=' | '+')
}

/// Checks a resource's object id (a wildcard is not a valid resource id).
pub fn validate_object_id(id: &str) -> Result<(), NameError> {
    if !id.is_empty() && id.len() <= MAX_OBJECT_ID_BYTES && id.chars().all(is_object_id_char) {
        Ok(())
    } else {
        Err(NameError::ObjectId(id.to_string()))
    }
}

/// Checks a subject's object id: an object id, or the wildcard `*`.
pub fn validate_subject_id(id: &str) -> Result<(), NameError> {
    if id == WILDCARD_ID || validate_object_id(id).is_ok() {
        Ok(())
    } else {
        Err(NameError::SubjectId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types() {
        for ok in ["user", "abc", "test/user", "a_b/c_d/e_f", "doc9"] {
            assert_eq!(validate_object_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "us", "User", "9abc", "abc_", "/user", "user/", "a/user", "te-st", "",
        ] {
            assert!(validate_object_type(bad).is_err(), "{bad}");
        }
        assert!(validate_object_type(&"a".repeat(64)).is_ok());
        assert!(validate_object_type(&"a".repeat(65)).is_err());
    }

    #[test]
    fn relation_names() {
        assert!(validate_relation_name("viewer").is_ok());
        assert!(validate_relation_name("can_view2").is_ok());
        for bad in ["a", "ab", "Viewer", "2view", "view_", "vi-ew", "..."] {
            assert!(validate_relation_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_ids() {
        assert!(validate_object_id("--=base64YWZzZGZh-ZHNmZHPwn5iK8J+YivC/fmIrwn5iK==").is_ok());
        assert!(validate_object_id("a|b_c").is_ok());
        assert!(validate_object_id(&"x".repeat(1024)).is_ok());
        assert!(validate_object_id(&"x".repeat(1025)).is_err());
        for bad in ["", "a b", "a#b", "a@b", "a:b", "*", "é"] {
            assert!(validate_object_id(bad).is_err(), "{bad}");
        }
        assert!(validate_subject_id("*").is_ok());
        assert!(validate_subject_id("**").is_err());
    }
}
