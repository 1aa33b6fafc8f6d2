//! Splits schema text into tokens, following SpiceDB's lexical rules.
//!
//! * A line break directly after an identifier (keywords included), `}`, `)`, `*` or `...` ends
//!   a statement and becomes a [`TokenKind::LineEnd`] token; every other line break is
//!   whitespace. This is why an operator may end a line (`a +⏎ b`) but not start one. (SpiceDB
//!   omits `...` from that list, so that `relation r: user#...⏎` fails to parse there; Pemba
//!   accepts it.)
//! * Comments (`// …` and `/* … */`) are not tokens: each token carries the spans of the comments
//!   written since the previous token, which is how doc comments reach the item they precede.
//! * Caveat expressions are CEL, so the CEL operators and string literals are tokens too; the
//!   parser only needs them to find the caveat's closing brace.
//!
//! Invariant: every span starts and ends on a char boundary of the text.

use crate::error::{ErrorKind, Located};

/// A byte range of the schema text, on char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Letters, digits and `_` (Unicode letters and digits included); keywords too.
    Ident,
    /// `"…"`, `'…'`, `"""…"""` or `'''…'''` (caveat expressions only).
    Str,
    /// A line break that ends a statement.
    LineEnd,
    Semicolon,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Pipe,
    Plus,
    Minus,
    Amp,
    Slash,
    Equals,
    Colon,
    Arrow,
    Hash,
    Ellipsis,
    Star,
    Period,
    Comma,
    Lt,
    Gt,
    /// Operators that only occur in caveat expressions: `? || && ! != == <= >= [ ] %`.
    CelOperator,
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
    /// Comments between the previous token and this one, in order.
    pub comments: Vec<Span>,
}

pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// The last token was one after which a line break ends the statement.
    line_break_ends_statement: bool,
    comments: Vec<Span>,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line_break_ends_statement: false,
            comments: Vec::new(),
        }
    }

    /// The next token; at the end of the text, [`TokenKind::Eof`] (again and again).
    pub fn next_token(&mut self) -> Result<Token, Located> {
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Ok(self.token(TokenKind::Eof, self.pos));
            };
            let start = self.pos;
            match c {
                ' ' | '\t' => self.pos += 1,
                '\r' | '\n' => {
                    self.pos += 1;
                    if self.line_break_ends_statement {
                        return Ok(self.emit(TokenKind::LineEnd, start));
                    }
                }
                '/' if rest.starts_with("//") => {
                    let len = rest.find(['\r', '\n']).unwrap_or(rest.len());
                    self.comment(start, len);
                }
                '/' if rest.starts_with("/*") => match rest[2..].find("*/") {
                    Some(i) => self.comment(start, i + 4),
                    None => return Err(Located::new(start, ErrorKind::UnterminatedComment)),
                },
                '"' | '\'' => return self.string(rest),
                c if c == '_' || c.is_alphanumeric() => {
                    let len = rest
                        .find(|c: char| !(c == '_' || c.is_alphanumeric()))
                        .unwrap_or(rest.len());
                    self.pos += len;
                    return Ok(self.emit(TokenKind::Ident, start));
                }
                _ => {
                    let (kind, len) = punctuation(rest)
                        .ok_or_else(|| Located::new(start, ErrorKind::UnrecognizedCharacter(c)))?;
                    self.pos += len;
                    return Ok(self.emit(kind, start));
                }
            }
        }
    }

    fn comment(&mut self, start: usize, len: usize) {
        self.pos += len;
        self.comments.push(Span {
            start,
            end: self.pos,
        });
    }

    /// A string literal starting at `rest` (which begins with a quote). Only triple-quoted strings
    /// may span lines; there are no escapes, as in SpiceDB.
    fn string(&mut self, rest: &str) -> Result<Token, Located> {
        let start = self.pos;
        let quote = if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            &rest[..3]
        } else {
            &rest[..1]
        };
        let body = &rest[quote.len()..];
        let multiline = quote.len() == 3;
        let unterminated = || Located::new(start, ErrorKind::UnterminatedString(quote.to_string()));
        let close = body.find(quote).ok_or_else(unterminated)?;
        if !multiline && body[..close].contains(['\r', '\n']) {
            return Err(unterminated());
        }
        self.pos += quote.len() + close + quote.len();
        Ok(self.emit(TokenKind::Str, start))
    }

    /// A token from `start` to the current position.
    fn emit(&mut self, kind: TokenKind, start: usize) -> Token {
        self.line_break_ends_statement = matches!(
            kind,
            TokenKind::Ident
                | TokenKind::RBrace
                | TokenKind::RParen
                | TokenKind::Star
                | TokenKind::Ellipsis
        );
        self.token(kind, start)
    }

    fn token(&mut self, kind: TokenKind, start: usize) -> Token {
        let comments = std::mem::take(&mut self.comments);
        Token {
            kind,
            span: Span {
                start,
                end: self.pos,
            },
            comments,
        }
    }
}

/// The punctuation token at the start of `rest`, with its length in bytes.
fn punctuation(rest: &str) -> Option<(TokenKind, usize)> {
    use TokenKind::*;
    const TABLE: &[(&str, TokenKind)] = &[
        ("...", Ellipsis),
        ("->", Arrow),
        ("||", CelOperator),
        ("&&", CelOperator),
        ("==", CelOperator),
        ("!=", CelOperator),
        ("<=", CelOperator),
        (">=", CelOperator),
        ("{", LBrace),
        ("}", RBrace),
        ("(", LParen),
        (")", RParen),
        ("|", Pipe),
        ("+", Plus),
        ("-", Minus),
        ("&", Amp),
        ("/", Slash),
        ("=", Equals),
        (":", Colon),
        (";", Semicolon),
        ("#", Hash),
        ("*", Star),
        (".", Period),
        (",", Comma),
        ("<", Lt),
        (">", Gt),
        ("?", CelOperator),
        ("!", CelOperator),
        ("[", CelOperator),
        ("]", CelOperator),
        ("%", CelOperator),
    ];
    TABLE
        .iter()
        .find(|(text, _)| rest.starts_with(text))
        .map(|&(text, kind)| (kind, text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().expect("lexes");
            out.push(token.kind);
            if token.kind == TokenKind::Eof {
                return out;
            }
        }
    }

    #[test]
    fn line_breaks_end_statements_only_after_closing_tokens() {
        use TokenKind::*;
        assert_eq!(kinds("a\nb"), [Ident, LineEnd, Ident, Eof]);
        assert_eq!(kinds("a +\n\nb"), [Ident, Plus, Ident, Eof]);
        assert_eq!(kinds("a\n\n\nb"), [Ident, LineEnd, Ident, Eof]);
        assert_eq!(
            kinds("}\r\n)\n*\n"),
            [RBrace, LineEnd, RParen, LineEnd, Star, LineEnd, Eof]
        );
        assert_eq!(kinds("a // note\nb"), [Ident, LineEnd, Ident, Eof]);
        assert_eq!(
            kinds("a#...\nb"),
            [Ident, Hash, Ellipsis, LineEnd, Ident, Eof]
        );
    }

    #[test]
    fn punctuation_prefers_longest() {
        use TokenKind::*;
        assert_eq!(kinds("a->b - c"), [Ident, Arrow, Ident, Minus, Ident, Eof]);
        assert_eq!(
            kinds("x.any(y) ..."),
            [Ident, Period, Ident, LParen, Ident, RParen, Ellipsis, Eof]
        );
        assert_eq!(
            kinds("a == b && !c"),
            [
                Ident,
                CelOperator,
                Ident,
                CelOperator,
                CelOperator,
                Ident,
                Eof
            ]
        );
    }

    #[test]
    fn comments_attach_to_the_next_token() {
        let text = "/** doc */\n// more\ndefinition";
        let token = Lexer::new(text).next_token().expect("lexes");
        assert_eq!(token.kind, TokenKind::Ident);
        let comments: Vec<&str> = token
            .comments
            .iter()
            .map(|s| &text[s.start..s.end])
            .collect();
        assert_eq!(comments, ["/** doc */", "// more"]);
    }

    #[test]
    fn strings() {
        use TokenKind::*;
        assert_eq!(kinds("'}' \"{\" \"\"\"a\nb\"\"\""), [Str, Str, Str, Eof]);
        let err = Lexer::new("'abc\n'")
            .next_token()
            .expect_err("newline in string");
        assert_eq!(
            err,
            Located::new(0, ErrorKind::UnterminatedString("'".into()))
        );
    }

    #[test]
    fn errors_point_at_their_start() {
        let mut lexer = Lexer::new("ab /* x");
        lexer.next_token().expect("identifier");
        assert_eq!(
            lexer.next_token(),
            Err(Located::new(3, ErrorKind::UnterminatedComment))
        );
        let mut lexer = Lexer::new("é`");
        lexer.next_token().expect("identifier");
        assert_eq!(
            lexer.next_token(),
            Err(Located::new(2, ErrorKind::UnrecognizedCharacter('`')))
        );
    }
}
