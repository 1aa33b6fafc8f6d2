//! Object references, subject references and relationships, with SpiceDB's text syntax.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::names::{
    validate_object_id, validate_object_type, validate_relation_name, validate_subject_id,
    NameError,
};

/// The relation name SpiceDB writes for "the subject object itself" (no subject relation).
pub const ELLIPSIS: &str = "...";

/// A reference to one object: `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's type: a definition of the schema.
    pub object_type: String,
    /// The object's id within its type.
    pub object_id: String,
}

impl ObjectRef {
    /// `object_type:object_id`, unchecked (see [`ObjectRef::parse`]).
    pub fn new(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        Self {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }

    /// Parses `type:id`, validating both parts (the id may not be the wildcard).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let (object_type, object_id) = text
            .split_once(':')
            .ok_or_else(|| ParseError::MissingColon(text.to_string()))?;
        validate_object_type(object_type)?;
        validate_object_id(object_id)?;
        Ok(Self::new(object_type, object_id))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

/// A relationship's subject: an object, optionally narrowed to the set of subjects of one of its
/// relations (`group:eng#member`). `relation == None` is SpiceDB's ellipsis: the object itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubjectRef {
    /// The subject object.
    pub object: ObjectRef,
    /// The relation whose subjects are meant, or `None` for the object itself.
    pub relation: Option<String>,
}

impl SubjectRef {
    /// `object`, or its `relation`'s subjects, unchecked.
    pub fn new(object: ObjectRef, relation: Option<String>) -> Self {
        Self { object, relation }
    }

    /// `type:id` with no subject relation.
    pub fn object(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        Self::new(ObjectRef::new(object_type, object_id), None)
    }

    /// True for `type:*`, which stands for every object of that type.
    pub fn is_wildcard(&self) -> bool {
        self.object.object_id == crate::WILDCARD_ID
    }

    /// The subject relation as SpiceDB spells it on the wire: `...` for none.
    pub fn relation_or_ellipsis(&self) -> &str {
        self.relation.as_deref().unwrap_or(ELLIPSIS)
    }

    /// Parses `type:id`, `type:id#relation` or `type:id#...`; the id may be the wildcard `*`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let (object_part, relation) = match text.split_once('#') {
            Some((object, relation)) => (object, Some(relation)),
            None => (text, None),
        };
        let (object_type, object_id) = object_part
            .split_once(':')
            .ok_or_else(|| ParseError::MissingColon(text.to_string()))?;
        validate_object_type(object_type)?;
        validate_subject_id(object_id)?;
        let relation = match relation {
            None | Some(ELLIPSIS) => None,
            Some(relation) => {
                validate_relation_name(relation)?;
                Some(relation.to_string())
            }
        };
        Ok(Self::new(ObjectRef::new(object_type, object_id), relation))
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if let Some(relation) = &self.relation {
            write!(f, "#{relation}")?;
        }
        Ok(())
    }
}

/// A caveat attached to a relationship: its name and the context written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaveatRef {
    /// The caveat's name in the schema.
    pub name: String,
    /// The context written with the relationship (merged with a check's own).
    pub context: Map<String, Value>,
}

/// Serialized as (name, context as JSON text), so that non-self-describing formats (bincode) can
/// carry arbitrary JSON contexts.
impl Serialize for CaveatRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.name, Value::Object(self.context.clone()).to_string()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CaveatRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (name, context): (String, String) = Deserialize::deserialize(deserializer)?;
        let context = serde_json::from_str(&context).map_err(serde::de::Error::custom)?;
        Ok(CaveatRef { name, context })
    }
}

/// One relationship: `resource#relation@subject`, optionally caveated and/or expiring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    /// The object the relationship is on.
    pub resource: ObjectRef,
    /// The resource's relation.
    pub relation: String,
    /// Who (or which subject set) the relation holds for.
    pub subject: SubjectRef,
    /// The condition the relationship holds under, if any.
    pub caveat: Option<CaveatRef>,
    /// When the relationship stops holding, if ever.
    pub expires_at: Option<SystemTime>,
}

impl Relationship {
    /// A relationship with neither caveat nor expiration.
    pub fn new(resource: ObjectRef, relation: impl Into<String>, subject: SubjectRef) -> Self {
        Self {
            resource,
            relation: relation.into(),
            subject,
            caveat: None,
            expires_at: None,
        }
    }

    /// True if the relationship expired before `now`: from then on it is invisible to every read
    /// (an expiry exactly at `now` still counts, as in SpiceDB).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at < now)
    }

    /// Parses SpiceDB's text syntax:
    /// `type:id#relation@type:id[#relation][[caveat:{json}]][[expiration:RFC3339]]`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        let (resource_part, rest) = text
            .split_once('@')
            .ok_or_else(|| ParseError::MissingAt(text.to_string()))?;
        let (resource_object, relation) = resource_part
            .split_once('#')
            .ok_or_else(|| ParseError::MissingRelation(text.to_string()))?;
        let resource = ObjectRef::parse(resource_object)?;
        validate_relation_name(relation)?;

        let (subject_part, mut trailer) = match rest.find('[') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let subject = SubjectRef::parse(subject_part)?;

        let mut relationship = Relationship::new(resource, relation, subject);
        while !trailer.is_empty() {
            let end = matching_bracket(trailer)
                .ok_or_else(|| ParseError::UnclosedBracket(text.to_string()))?;
            let inner = &trailer[1..end];
            trailer = &trailer[end + 1..];
            match inner.split_once(':') {
                Some(("expiration", when)) if !when.starts_with('{') => {
                    if relationship.expires_at.is_some() {
                        return Err(ParseError::Trailer(text.to_string()));
                    }
                    let at = humantime::parse_rfc3339_weak(when)
                        .map_err(|e| ParseError::Expiration(when.to_string(), e.to_string()))?;
                    relationship.expires_at = Some(at);
                }
                _ if relationship.caveat.is_some() || relationship.expires_at.is_some() => {
                    return Err(ParseError::Trailer(text.to_string()));
                }
                Some((name, context)) => {
                    validate_caveat_name(name)?;
                    let context: Map<String, Value> = serde_json::from_str(context)
                        .map_err(|e| ParseError::CaveatContext(name.to_string(), e.to_string()))?;
                    relationship.caveat = Some(CaveatRef {
                        name: name.to_string(),
                        context,
                    });
                }
                None => {
                    validate_caveat_name(inner)?;
                    relationship.caveat = Some(CaveatRef {
                        name: inner.to_string(),
                        context: Map::new(),
                    });
                }
            }
        }
        Ok(relationship)
    }
}

fn validate_caveat_name(name: &str) -> Result<(), ParseError> {
    crate::names::validate_caveat_name(name).map_err(|_| ParseError::CaveatName(name.to_string()))
}

/// Index of the `]` closing the `[` at `text[0]`, skipping brackets inside JSON strings.
fn matching_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)?;
        if let Some(caveat) = &self.caveat {
            if caveat.context.is_empty() {
                write!(f, "[{}]", caveat.name)?;
            } else {
                write!(
                    f,
                    "[{}:{}]",
                    caveat.name,
                    Value::Object(caveat.context.clone())
                )?;
            }
        }
        if let Some(at) = self.expires_at {
            write!(f, "[expiration:{}]", humantime::format_rfc3339(at))?;
        }
        Ok(())
    }
}

/// Why a relationship, object or subject string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No `:` between an object's type and id.
    #[error("'{0}' is missing ':' between object type and object id")]
    MissingColon(String),
    /// No `@` between the resource and the subject.
    #[error("'{0}' is missing '@' between resource and subject")]
    MissingAt(String),
    /// No `#relation` after the resource.
    #[error("'{0}' is missing '#relation' after the resource")]
    MissingRelation(String),
    /// A name or id is not acceptable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A `[` is never closed.
    #[error("'{0}' has a '[' with no closing ']'")]
    UnclosedBracket(String),
    /// Something other than a caveat then an expiration follows the subject.
    #[error("'{0}': expected at most one [caveat] followed by at most one [expiration:…]")]
    Trailer(String),
    /// The caveat's name is not acceptable.
    #[error("invalid caveat name '{0}'")]
    CaveatName(String),
    /// The caveat's context is not a JSON object (the caveat, the reason).
    #[error("caveat '{0}' context is not a JSON object: {1}")]
    CaveatContext(String, String),
    /// The expiration is not an RFC 3339 time (the text, the reason).
    #[error("invalid expiration '{0}': {1} (expected RFC 3339, e.g. 2025-01-01T00:00:00Z)")]
    Expiration(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) {
        let parsed = Relationship::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn parses_and_prints() {
        roundtrip("document:plan#viewer@user:tom");
        roundtrip("document:plan#viewer@group:eng#member");
        roundtrip("document:plan#viewer@user:*");
        roundtrip("test/resource:first#viewer@test/user:*");
        roundtrip("document:plan#viewer@user:tom[only_office]");
        roundtrip("document:plan#viewer@user:tom[C]");
        roundtrip("document:plan#viewer@user:tom[1_path/name]");
        roundtrip(r#"document:plan#viewer@user:tom[only_office:{"ip":"10.0.0.1"}]"#);
        roundtrip("document:plan#viewer@user:tom[expiration:2025-01-01T00:00:00Z]");
        roundtrip(
            r#"document:plan#viewer@user:tom[cav1:{"a":[1,2]}][expiration:2025-01-01T00:00:00Z]"#,
        );
    }

    #[test]
    fn ellipsis_is_no_relation() {
        let r = Relationship::parse("document:plan#parent@folder:company#...").unwrap();
        assert_eq!(r.subject.relation, None);
        assert_eq!(r.to_string(), "document:plan#parent@folder:company");
    }

    #[test]
    fn malformed_relationships_have_precise_errors() {
        let cases: &[(&str, &str)] = &[
            ("document:plan#viewer", "'document:plan#viewer' is missing '@' between resource and subject"),
            ("document:plan@user:tom", "'document:plan@user:tom' is missing '#relation' after the resource"),
            ("documentplan#viewer@user:tom", "'documentplan' is missing ':' between object type and object id"),
            ("document:plan#viewer@usertom", "'usertom' is missing ':' between object type and object id"),
            ("Document:plan#viewer@user:tom", "invalid object type 'Document': must match ^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("do:plan#viewer@user:tom", "invalid object type 'do': must match ^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("document:pl an#viewer@user:tom", "invalid object id 'pl an': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +"),
            ("document:#viewer@user:tom", "invalid object id '': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +"),
            ("document:*#viewer@user:tom", "invalid object id '*': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +"),
            ("document:plan#Viewer@user:tom", "invalid relation name 'Viewer': must match ^[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("document:plan#vi@user:tom", "invalid relation name 'vi': must match ^[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("document:plan#viewer@user:to!m", "invalid subject id 'to!m': must be 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +, or '*'"),
            ("document:plan#viewer@user:tom#", "invalid relation name '': must match ^[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("document:plan#viewer@user:tom#me", "invalid relation name 'me': must match ^[a-z][a-z0-9_]{1,62}[a-z0-9]$"),
            ("document:plan#viewer@user:tom[caveat", "'document:plan#viewer@user:tom[caveat' has a '[' with no closing ']'"),
            ("document:plan#viewer@user:tom[cav1:{bad}]", "caveat 'cav1' context is not a JSON object: key must be a string at line 1 column 2"),
            ("document:plan#viewer@user:tom[cav1:[1]]", "caveat 'cav1' context is not a JSON object: invalid type: sequence, expected a map at line 1 column 0"),
            ("document:plan#viewer@user:tom[-bad]", "invalid caveat name '-bad'"),
            ("document:plan#viewer@user:tom[expiration:tomorrow]", "invalid expiration 'tomorrow': timestamp format is invalid (expected RFC 3339, e.g. 2025-01-01T00:00:00Z)"),
            ("document:plan#viewer@user:tom[expiration:2025-01-01T00:00:00Z][cav1]", "'document:plan#viewer@user:tom[expiration:2025-01-01T00:00:00Z][cav1]': expected at most one [caveat] followed by at most one [expiration:…]"),
            ("document:plan#viewer@user:tom[cav1][cav2]", "'document:plan#viewer@user:tom[cav1][cav2]': expected at most one [caveat] followed by at most one [expiration:…]"),
        ];
        for (input, expected) in cases {
            match Relationship::parse(input) {
                Ok(r) => panic!("{input} parsed as {r}"),
                Err(e) => assert_eq!(&e.to_string(), expected, "for input {input}"),
            }
        }
    }
}
