//! Errors reported by [`crate::compile`]: what is wrong, and where.

use std::fmt;

use thiserror::Error;

/// A schema that does not compile.
///
/// Displays as `{source_name}:{line}:{column}: {kind}`. `line` and `column` are 1-based; the
/// column counts characters, not bytes. The position is that of the offending text: the
/// unexpected token, or the name that is unknown, duplicated or invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{source_name}:{line}:{column}: {kind}")]
pub struct SchemaError {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
}

impl SchemaError {
    /// True for a well-formed schema whose parts do not fit together (an unknown or duplicated
    /// relation, a walk into a wildcard, an alias cycle): SpiceDB answers those with
    /// FAILED_PRECONDITION, and text that is not a valid schema with INVALID_ARGUMENT.
    pub fn is_inconsistency(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::DuplicateMember { .. }
                | ErrorKind::UnknownDefinition { .. }
                | ErrorKind::UnknownSubjectRelation { .. }
                | ErrorKind::DuplicateSubjectType { .. }
                | ErrorKind::UnknownCaveat { .. }
                | ErrorKind::TransitiveWildcard { .. }
                | ErrorKind::UnknownReference { .. }
                | ErrorKind::UnknownArrowRelation { .. }
                | ErrorKind::PermissionOnArrowLeft { .. }
                | ErrorKind::WildcardOnArrowLeft { .. }
                | ErrorKind::AliasCycle { .. }
        )
    }
}

/// The kind of thing a name belongs to, as written in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Definition,
    Caveat,
    Relation,
    Permission,
    CaveatParameter,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Definition => "definition",
            NameKind::Caveat => "caveat",
            NameKind::Relation => "relation",
            NameKind::Permission => "permission",
            NameKind::CaveatParameter => "caveat parameter",
        })
    }
}

/// Extra help appended to some messages, in parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A known name close to the unknown one (small edit distance).
    DidYouMean(String),
    /// A sentence of advice.
    Note(String),
}

/// Formats an optional hint as ` (…)`, or nothing.
fn hint_suffix(hint: &Option<Hint>) -> String {
    match hint {
        None => String::new(),
        Some(Hint::DidYouMean(name)) => format!(" (did you mean '{name}'?)"),
        Some(Hint::Note(note)) => format!(" ({note})"),
    }
}

/// Why a schema does not compile. The `Display` text is the message after the position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ErrorKind {
    // ---- lexical
    #[error("unrecognized character {0:?} (U+{code:04X})", code = u32::from(*.0))]
    UnrecognizedCharacter(char),
    #[error("unterminated block comment: expected '*/' before the end of the file")]
    UnterminatedComment,
    #[error("unterminated string literal: missing the closing {0}")]
    UnterminatedString(String),

    // ---- syntax
    /// The general syntax error: `expected` says what could come here (and after what),
    /// `found` describes the token that came instead.
    #[error("expected {expected}, found {found}")]
    Expected { expected: String, found: String },
    #[error("expression is nested too deeply (more than {0} levels)")]
    NestingTooDeep(usize),
    #[error("nested arrows are not supported: found '{0}' after an arrow")]
    NestedArrow(String),
    #[error("'{0}' must follow a relation name, not a parenthesized expression or 'nil'")]
    ArrowWithoutRelation(String),
    #[error("unknown arrow function '{0}': expected 'any' or 'all'")]
    UnknownArrowFunction(String),
    #[error(
        "'{0}' cannot start a line: a line break ends the expression, so put the operator at the \
         end of the previous line"
    )]
    OperatorStartsLine(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("unknown use flag '{0}': expected 'expiration'")]
    UnknownUseFlag(String),
    #[error("'use' must come before every definition and caveat")]
    UseAfterDefinition,
    #[error("the caveat must come before 'expiration': write 'with <caveat> and expiration'")]
    ExpirationBeforeCaveat,
    #[error("'and expiration' requires 'use expiration' at the top of the schema")]
    ExpirationNotEnabled,
    #[error("caveat '{0}' must have at least one parameter")]
    CaveatWithoutParameters(String),
    #[error("caveat '{0}' has an empty expression")]
    EmptyCaveatExpression(String),

    // ---- names
    #[error("invalid {kind} name '{name}': {reason}")]
    InvalidName {
        kind: NameKind,
        name: String,
        reason: String,
    },
    /// A definition or caveat whose name is already taken by an earlier one.
    #[error("duplicate name '{name}': already used by the {previous} on line {line}")]
    DuplicateName {
        name: String,
        previous: NameKind,
        line: usize,
    },
    /// A relation or permission whose name is already taken in the same definition.
    #[error(
        "duplicate name '{name}' in definition '{definition}': already used by the {previous} on \
         line {line}"
    )]
    DuplicateMember {
        name: String,
        definition: String,
        previous: NameKind,
        line: usize,
    },

    // ---- relations
    #[error("unknown definition '{name}' in the subject types of relation '{relation}'{}", hint_suffix(.hint))]
    UnknownDefinition {
        name: String,
        relation: String,
        hint: Option<Hint>,
    },
    #[error(
        "unknown relation or permission '{name}' on definition '{definition}' in the subject \
         types of relation '{relation}'{}",
        hint_suffix(.hint)
    )]
    UnknownSubjectRelation {
        name: String,
        definition: String,
        relation: String,
        hint: Option<Hint>,
    },
    #[error("duplicate subject type '{subject}' in relation '{relation}'")]
    DuplicateSubjectType { subject: String, relation: String },
    #[error("unknown caveat '{name}' in relation '{relation}'{}", hint_suffix(.hint))]
    UnknownCaveat {
        name: String,
        relation: String,
        hint: Option<Hint>,
    },
    /// SpiceDB forbids `T#r` (for `T` another definition) when `T#r` can reach a wildcard.
    #[error(
        "relation '{relation}' allows '{subject}', which includes the wildcard '{wildcard}' via \
         relation '{via}'; wildcards cannot be included through a subject relation"
    )]
    TransitiveWildcard {
        relation: String,
        subject: String,
        wildcard: String,
        via: String,
    },

    // ---- permissions
    #[error("unknown relation or permission '{name}' in permission '{permission}'{}", hint_suffix(.hint))]
    UnknownReference {
        name: String,
        permission: String,
        hint: Option<Hint>,
    },
    #[error(
        "unknown relation '{name}' on the left side of an arrow in permission '{permission}'{}",
        hint_suffix(.hint)
    )]
    UnknownArrowRelation {
        name: String,
        permission: String,
        hint: Option<Hint>,
    },
    #[error(
        "'{name}' is a permission, but the left side of an arrow in permission '{permission}' \
         must be a relation"
    )]
    PermissionOnArrowLeft { name: String, permission: String },
    #[error(
        "relation '{name}' on the left side of an arrow in permission '{permission}' includes \
         the wildcard '{wildcard}' via relation '{via}'; arrows cannot walk wildcard relations"
    )]
    WildcardOnArrowLeft {
        name: String,
        permission: String,
        wildcard: String,
        via: String,
    },
    /// Permissions that are each exactly another permission, in a loop (`a = b`, `b = a`).
    #[error("permissions in definition '{definition}' alias each other in a cycle: {}", .cycle.join(" -> "))]
    AliasCycle {
        definition: String,
        cycle: Vec<String>,
    },

    // ---- caveats
    #[error("duplicate parameter '{name}' in caveat '{caveat}'")]
    DuplicateParameter { name: String, caveat: String },
    #[error(
        "unknown type '{name}' for parameter '{parameter}': expected one of any, bool, bytes, \
         double, duration, int, ipaddress, list<T>, map<T>, string, timestamp, uint{}",
        hint_suffix(.hint)
    )]
    UnknownParameterType {
        name: String,
        parameter: String,
        hint: Option<Hint>,
    },
    #[error("type '{name}' takes {expected} type argument{}, found {found}", if *.expected == 1 { "" } else { "s" })]
    TypeArgumentCount {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("parameter '{name}' of caveat '{caveat}' is not used in its expression")]
    UnusedParameter { name: String, caveat: String },
    /// The caveat's CEL expression does not parse or type-check; `detail` is cel-go's report.
    #[error("invalid expression for caveat `{caveat}`: {detail}")]
    InvalidCaveatExpression { caveat: String, detail: String },
}

impl ErrorKind {
    /// Replaces the hint of a kind that has one (an unknown name); other kinds are unchanged.
    pub(crate) fn set_hint(&mut self, new_hint: Option<Hint>) {
        match self {
            ErrorKind::UnknownDefinition { hint, .. }
            | ErrorKind::UnknownSubjectRelation { hint, .. }
            | ErrorKind::UnknownCaveat { hint, .. }
            | ErrorKind::UnknownReference { hint, .. }
            | ErrorKind::UnknownArrowRelation { hint, .. }
            | ErrorKind::UnknownParameterType { hint, .. } => *hint = new_hint,
            _ => {}
        }
    }
}

/// An error at a byte offset of the schema text, before it is turned into a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    /// Byte offset into the schema text; always a char boundary (or the text's length).
    pub offset: usize,
    pub kind: ErrorKind,
}

impl Located {
    pub fn new(offset: usize, kind: ErrorKind) -> Self {
        Self { offset, kind }
    }

    pub fn into_schema_error(self, source_name: &str, text: &str) -> SchemaError {
        let (line, column) = line_col(text, self.offset);
        SchemaError {
            source_name: source_name.to_string(),
            line,
            column,
            kind: self.kind,
        }
    }
}

/// 1-based line and character column of a byte offset. Lines end at `\n`; an offset past the end
/// or inside a character is clamped to the end of the text before it.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "ab\nçé x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 8), (2, 4));
        assert_eq!(line_col(text, 4), (2, 1), "inside 'ç' clamps back");
        assert_eq!(line_col(text, 100), (3, 1));
    }
}
