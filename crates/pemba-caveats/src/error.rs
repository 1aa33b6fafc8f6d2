//! Why a caveat does not compile or cannot be evaluated.

use std::fmt;

use thiserror::Error;

use crate::types::ConversionError;

/// A caveat definition SpiceDB would refuse at schema write.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileError {
    #[error("unknown type `{ty}` for parameter `{parameter}`")]
    UnknownType { parameter: String, ty: String },
    /// CEL syntax or type errors, shown in cel-go's format for a source named `<input>`.
    #[error("{}", Diagnostic::display_all(.0, "<input>", None))]
    Expression(Vec<Diagnostic>),
    #[error("caveat expression must result in a boolean value: found `{0}`")]
    NotBoolean(String),
}

/// One CEL error at a position of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line within the expression.
    pub line: usize,
    /// 0-based column (in characters) within that line.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// cel-go's display of errors: `ERROR: <source>:line:column: message`, each followed by the
    /// line of `snippet_source` it points into (when there is one) and a caret under the column.
    pub fn display_all(
        diagnostics: &[Diagnostic],
        source_name: &str,
        snippet_source: Option<&str>,
    ) -> String {
        diagnostics
            .iter()
            .map(|d| d.display(source_name, snippet_source))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn display(&self, source_name: &str, snippet_source: Option<&str>) -> String {
        let mut text = format!(
            "ERROR: {source_name}:{}:{}: {}",
            self.line,
            self.column + 1,
            self.message
        );
        let snippet = snippet_source.and_then(|s| s.split('\n').nth(self.line.wrapping_sub(1)));
        if let Some(line) = snippet {
            let line = line.replace('\t', " ");
            let dots = ".".repeat(self.column.min(line.chars().count()));
            text.push_str(&format!("\n | {line}\n | {dots}^"));
        }
        text
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display("<input>", None))
    }
}

/// A caveat that cannot be evaluated with the given context.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvaluationError {
    /// A context value does not convert to its parameter's type.
    #[error("type error for parameters for caveat `{caveat}`: could not convert context parameter `{parameter}`: {source}")]
    ContextType {
        caveat: String,
        parameter: String,
        source: ConversionError,
    },
    #[error("evaluation error for caveat {caveat}: {message}")]
    Runtime { caveat: String, message: String },
    #[error("caveat {caveat} evaluated to a non-boolean value {found}")]
    NotBoolean { caveat: String, found: String },
}

/// Why a context written on a relationship does not fit its caveat (SpiceDB's messages; it
/// answers them with the UNKNOWN status).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    #[error("unknown parameter `{0}`")]
    UnknownParameter(String),
    #[error("could not convert context parameter `{parameter}`: {source}")]
    Conversion {
        parameter: String,
        source: ConversionError,
    },
}
