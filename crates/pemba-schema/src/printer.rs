//! Prints a compiled schema back as text, in the canonical style of SpiceDB's schema generator.
//!
//! Layout: `use expiration` (if declared), then the caveats, then the definitions, separated by
//! blank lines; members indented with a tab, one per line, in source order; a blank line before
//! a member that has doc comments (unless it is the first); no trailing newline. Unions whose
//! operands are all leaves print without parentheses wherever they appear (`+` binds tightest);
//! every other nested operation is parenthesized, so `(a - b) - c` stays explicit.
//!
//! Round trip: for every schema `s` that [`crate::compile`] accepts, compiling the printed text
//! gives a schema equal to `s`. Doc comments are stored with their lines trimmed, so re-indenting
//! their continuation lines here does not change them.

use std::fmt;

use crate::model::{
    AllowedSubject, AllowedSubjectKind, ArrowFunction, CaveatDefinition, CompiledSchema,
    Definition, Member, Rewrite,
};

impl CompiledSchema {
    /// The schema as text in the canonical style of SpiceDB's schema generator: `use expiration`
    /// (if declared), then the caveats, then the definitions, separated by blank lines; members
    /// indented with a tab, in source order; no trailing newline. Compiling the text gives back
    /// an equal schema.
    pub fn to_schema_text(&self) -> String {
        let mut blocks = Vec::new();
        if self.uses_expiration {
            blocks.push("use expiration".to_string());
        }
        blocks.extend(self.caveats.iter().map(caveat_text));
        blocks.extend(self.definitions.iter().map(definition_text));
        blocks.join("\n\n")
    }
}

/// Appends each comment on its own lines at `indent`; continuation lines of `/** … */` comments
/// starting with `*` get one extra space, to line up under the first `*`.
fn push_comments(out: &mut String, comments: &[String], indent: &str) {
    for comment in comments {
        for (i, line) in comment.lines().enumerate() {
            if !line.is_empty() {
                out.push_str(indent);
                if i > 0 && line.starts_with('*') {
                    out.push(' ');
                }
                out.push_str(line);
            }
            out.push('\n');
        }
    }
}

fn caveat_text(caveat: &CaveatDefinition) -> String {
    let mut out = String::new();
    push_comments(&mut out, &caveat.doc_comments, "");
    let parameters: Vec<String> = caveat
        .parameters
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    out.push_str(&format!(
        "caveat {}({}) {{\n\t{}\n}}",
        caveat.name,
        parameters.join(", "),
        caveat.expression
    ));
    out
}

fn definition_text(definition: &Definition) -> String {
    let mut out = String::new();
    push_comments(&mut out, &definition.doc_comments, "");
    out.push_str("definition ");
    out.push_str(&definition.name);
    if definition.members.is_empty() {
        out.push_str(" {}");
        return out;
    }
    out.push_str(" {\n");
    for (i, member) in definition.members.iter().enumerate() {
        let doc_comments = match member {
            Member::Relation(r) => &r.doc_comments,
            Member::Permission(p) => &p.doc_comments,
        };
        if i > 0 && !doc_comments.is_empty() {
            out.push('\n');
        }
        push_comments(&mut out, doc_comments, "\t");
        let line = match member {
            Member::Relation(r) => {
                let allowed: Vec<String> = r.allowed.iter().map(ToString::to_string).collect();
                format!("\trelation {}: {}\n", r.name, allowed.join(" | "))
            }
            Member::Permission(p) => format!("\tpermission {} = {}\n", p.name, p.rewrite),
        };
        out.push_str(&line);
    }
    out.push('}');
    out
}

/// As written in a relation: `user`, `user:*`, `group#member`, each optionally followed by
/// `with caveat`, `with expiration` or `with caveat and expiration`.
impl fmt::Display for AllowedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject_type)?;
        match &self.kind {
            AllowedSubjectKind::Object => {}
            AllowedSubjectKind::Wildcard => f.write_str(":*")?,
            AllowedSubjectKind::Relation(relation) => write!(f, "#{relation}")?,
        }
        match (&self.caveat, self.expiration) {
            (None, false) => Ok(()),
            (None, true) => f.write_str(" with expiration"),
            (Some(caveat), false) => write!(f, " with {caveat}"),
            (Some(caveat), true) => write!(f, " with {caveat} and expiration"),
        }
    }
}

/// As written in a permission: nested operations are parenthesized, except unions of leaves
/// (`+` binds tightest). An empty union or intersection, which [`crate::compile`] never produces,
/// prints as `nil`.
impl fmt::Display for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rewrite::Union(children) => write_operands(f, children, " + "),
            Rewrite::Intersection(children) => write_operands(f, children, " & "),
            Rewrite::Exclusion(left, right) => {
                write_operand(f, left)?;
                f.write_str(" - ")?;
                write_operand(f, right)
            }
            Rewrite::Computed(name) => f.write_str(name),
            Rewrite::Arrow(arrow) => match arrow.function {
                ArrowFunction::Any => write!(f, "{}->{}", arrow.tupleset, arrow.computed),
                ArrowFunction::All => write!(f, "{}.all({})", arrow.tupleset, arrow.computed),
            },
            Rewrite::Nil => f.write_str("nil"),
        }
    }
}

fn is_operation(rewrite: &Rewrite) -> bool {
    matches!(
        rewrite,
        Rewrite::Union(_) | Rewrite::Intersection(_) | Rewrite::Exclusion(..)
    )
}

fn write_operands(
    f: &mut fmt::Formatter<'_>,
    children: &[Rewrite],
    separator: &str,
) -> fmt::Result {
    if children.is_empty() {
        return f.write_str("nil");
    }
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_operand(f, child)?;
    }
    Ok(())
}

/// An operand of an operation: parenthesized if it is itself an operation, except a union of
/// leaves.
fn write_operand(f: &mut fmt::Formatter<'_>, rewrite: &Rewrite) -> fmt::Result {
    let bare = match rewrite {
        Rewrite::Union(children) => !children.iter().any(is_operation),
        other => !is_operation(other),
    };
    if bare {
        write!(f, "{rewrite}")
    } else {
        write!(f, "({rewrite})")
    }
}
