//! Recursive-descent parser from tokens to the [`crate::ast`], stopping at the first syntax error.
//!
//! Grammar (SpiceDB's; `;` stands for `;` or a statement-ending line break, see [`crate::lexer`]):
//!
//! ```text
//! schema      = { ";" | "use" IDENT | definition | caveat }
//! definition  = "definition" path "{" { ";" | relation ";" | permission ";" } "}"
//! relation    = "relation" IDENT ":" subject { "|" subject }
//! subject     = path [ ":" "*" | "#" (IDENT | "...") ] [ "with" with ]
//! with        = "expiration" | path [ "and" "expiration" ]
//! permission  = "permission" IDENT "=" exclusion
//! exclusion   = intersection { "-" intersection }      (loosest, left-associative)
//! intersection= union { "&" union }
//! union       = operand { "+" operand }                (tightest)
//! operand     = "(" exclusion ")" | "nil" | IDENT [ "->" IDENT | "." ("any"|"all") "(" IDENT ")" ]
//! caveat      = "caveat" path "(" param { "," param } ")" "{" CEL tokens, braces balanced "}"
//! param       = IDENT type ;  type = IDENT [ "<" type { "," type } ">" ]
//! path        = IDENT { "/" IDENT }
//! ```
//!
//! Keywords (never names): `definition caveat relation permission nil with`, and `expiration and`
//! after `use expiration`; without it, `with expiration` names a caveat called `expiration`, as
//! in SpiceDB. `import`, `partial`, `...name`, `use self` and `permission p: type = …` are
//! recognized only to be rejected as not supported.

use crate::ast::{
    CaveatAst, DefinitionAst, Expr, Item, MemberAst, Name, ParameterAst, PermissionAst,
    RelationAst, Schema, SubjectAst, SubjectKindAst, TypeAst,
};
use crate::error::{line_col, ErrorKind, Located};
use crate::lexer::{Lexer, Span, Token, TokenKind};
use crate::model::ArrowFunction;
use crate::MAX_NESTING_DEPTH;

type PResult<T> = Result<T, Located>;

/// Parses one operand of an operator chain, given what to call it in an error.
type OperandParser<'a> = fn(&mut Parser<'a>, &dyn Fn() -> String) -> PResult<(Expr, usize)>;

/// Parses a whole schema.
pub(crate) fn parse(text: &str) -> PResult<Schema> {
    let mut lexer = Lexer::new(text);
    let tok = lexer.next_token()?;
    let mut parser = Parser {
        text,
        lexer,
        tok,
        previous: TokenKind::Eof,
        expiration_enabled: false,
        seen_item: false,
        paren_depth: 0,
    };
    parser.schema()
}

/// Longest name or token text quoted in a message; longer ones are cut with `…`.
const MAX_QUOTED_CHARS: usize = 60;

/// `text`, cut to [`MAX_QUOTED_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A doc comment as stored in the model: each line trimmed of surrounding whitespace, like
/// SpiceDB's stored comments, so that re-indenting it when printing changes nothing.
fn normalize_comment(comment: &str) -> String {
    comment
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

struct Parser<'a> {
    text: &'a str,
    lexer: Lexer<'a>,
    /// The current (next unconsumed) token.
    tok: Token,
    /// The kind of the token consumed last.
    previous: TokenKind,
    /// `use expiration` was seen: `expiration` and `and` are keywords.
    expiration_enabled: bool,
    /// A definition or caveat was seen, so `use` is no longer allowed.
    seen_item: bool,
    /// Open parentheses around the current expression operand.
    paren_depth: usize,
}

impl<'a> Parser<'a> {
    // ---- token helpers

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> PResult<Token> {
        let next = self.lexer.next_token()?;
        let token = std::mem::replace(&mut self.tok, next);
        self.previous = token.kind;
        Ok(token)
    }

    fn slice(&self, span: Span) -> &'a str {
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    fn current_text(&self) -> &'a str {
        self.slice(self.tok.span)
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.tok.kind == kind
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(
            word,
            "definition" | "caveat" | "relation" | "permission" | "nil" | "with"
        ) || (self.expiration_enabled && matches!(word, "expiration" | "and"))
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.at(TokenKind::Ident) && self.current_text() == keyword && self.is_keyword(keyword)
    }

    /// At an identifier that is not a keyword.
    fn at_name(&self) -> bool {
        self.at(TokenKind::Ident) && !self.is_keyword(self.current_text())
    }

    fn at_statement_end(&self) -> bool {
        matches!(self.tok.kind, TokenKind::LineEnd | TokenKind::Semicolon)
    }

    /// How the current token is named in messages.
    fn describe_current(&self) -> String {
        let text = self.current_text();
        match self.tok.kind {
            TokenKind::Eof => "end of file".to_string(),
            TokenKind::LineEnd => "end of line".to_string(),
            TokenKind::Str => "a string literal".to_string(),
            TokenKind::Ident if self.is_keyword(text) => format!("keyword '{text}'"),
            TokenKind::Ident => format!("identifier '{}'", shorten(text)),
            _ => format!("'{text}'"),
        }
    }

    fn error_here(&self, kind: ErrorKind) -> Located {
        Located::new(self.tok.span.start, kind)
    }

    /// "expected {expected}, found {the current token}".
    fn expected(&self, expected: String) -> Located {
        self.error_here(ErrorKind::Expected {
            expected,
            found: self.describe_current(),
        })
    }

    fn expect(&mut self, kind: TokenKind, expected: impl FnOnce() -> String) -> PResult<Token> {
        if self.at(kind) {
            self.bump()
        } else {
            Err(self.expected(expected()))
        }
    }

    /// Consumes an identifier that is not a keyword.
    fn expect_name(&mut self, expected: impl FnOnce() -> String) -> PResult<Name> {
        if !self.at_name() {
            return Err(self.expected(expected()));
        }
        let span = self.bump()?.span;
        Ok(Name {
            text: self.slice(span).to_string(),
            span,
        })
    }

    /// `name { "/" name }`, joined with `/`.
    fn path(&mut self, expected: impl FnOnce() -> String) -> PResult<Name> {
        let mut name = self.expect_name(expected)?;
        while self.at(TokenKind::Slash) {
            self.bump()?;
            let so_far = self.slice(name.span);
            let segment = self.expect_name(|| format!("a name after '{}/'", shorten(so_far)))?;
            name.text.push('/');
            name.text.push_str(&segment.text);
            name.span.end = segment.span.end;
        }
        Ok(name)
    }

    fn doc_comments(&self, keyword: &Token) -> Vec<String> {
        keyword
            .comments
            .iter()
            .map(|&span| normalize_comment(self.slice(span)))
            .collect()
    }

    // ---- top level

    fn schema(&mut self) -> PResult<Schema> {
        let mut items = Vec::new();
        loop {
            while self.at_statement_end() {
                self.bump()?;
            }
            if self.at(TokenKind::Eof) {
                break;
            }
            if self.at_keyword("definition") {
                self.seen_item = true;
                items.push(Item::Definition(self.definition()?));
            } else if self.at_keyword("caveat") {
                self.seen_item = true;
                items.push(Item::Caveat(self.caveat()?));
            } else if self.at_name() && self.current_text() == "use" {
                self.use_flag()?;
            } else if self.at_name() && self.current_text() == "import" {
                return Err(self.error_here(ErrorKind::Unsupported("'import'".into())));
            } else if self.at_name() && self.current_text() == "partial" {
                return Err(self.error_here(ErrorKind::Unsupported("'partial'".into())));
            } else {
                return Err(self.expected("'definition', 'caveat' or 'use'".into()));
            }
        }
        Ok(Schema {
            uses_expiration: self.expiration_enabled,
            items,
        })
    }

    /// `use expiration` (and the accepted no-op `use typechecking`).
    fn use_flag(&mut self) -> PResult<()> {
        let use_start = self.bump()?.span.start;
        if !self.at(TokenKind::Ident) {
            return Err(self.expected("a feature name after 'use'".into()));
        }
        match self.current_text() {
            "expiration" | "typechecking" => {}
            flag @ ("self" | "import" | "partial") => {
                return Err(self.error_here(ErrorKind::Unsupported(format!("'use {flag}'"))));
            }
            flag => return Err(self.error_here(ErrorKind::UnknownUseFlag(shorten(flag)))),
        }
        if self.seen_item {
            return Err(Located::new(use_start, ErrorKind::UseAfterDefinition));
        }
        if self.current_text() == "expiration" {
            self.expiration_enabled = true;
        }
        self.bump()?;
        Ok(())
    }

    // ---- definitions

    fn definition(&mut self) -> PResult<DefinitionAst> {
        let keyword = self.bump()?;
        let doc_comments = self.doc_comments(&keyword);
        let name = self.path(|| "a definition name after 'definition'".into())?;
        self.expect(TokenKind::LBrace, || {
            format!("'{{' after definition name '{}'", name.text)
        })?;
        let mut members = Vec::new();
        loop {
            match self.tok.kind {
                TokenKind::RBrace => {
                    self.bump()?;
                    break;
                }
                TokenKind::LineEnd | TokenKind::Semicolon => {
                    self.bump()?;
                }
                TokenKind::Ellipsis => {
                    return Err(self.error_here(ErrorKind::Unsupported(
                        "partial references ('...name')".into(),
                    )));
                }
                TokenKind::Plus | TokenKind::Amp | TokenKind::Minus | TokenKind::Arrow
                    if self.previous == TokenKind::LineEnd =>
                {
                    let op = self.current_text().to_string();
                    return Err(self.error_here(ErrorKind::OperatorStartsLine(op)));
                }
                _ if self.at_keyword("relation") => {
                    let relation = self.relation()?;
                    self.end_statement(|| {
                        format!(
                            "'|', ';' or a line break after the subject types of relation '{}'",
                            relation.name.text
                        )
                    })?;
                    members.push(MemberAst::Relation(relation));
                }
                _ if self.at_keyword("permission") => {
                    let permission = self.permission()?;
                    self.end_statement(|| {
                        format!(
                            "an operator, ';' or a line break after the expression of permission \
                             '{}'",
                            permission.name.text
                        )
                    })?;
                    members.push(MemberAst::Permission(permission));
                }
                _ => {
                    return Err(self.expected(format!(
                        "'relation', 'permission' or '}}' in definition '{}'",
                        name.text
                    )))
                }
            }
        }
        Ok(DefinitionAst {
            name,
            doc_comments,
            members,
        })
    }

    /// After a relation or permission: `;` or a line break (consumed), or the end of the file
    /// (left for the definition to report its missing `}`).
    fn end_statement(&mut self, expected: impl FnOnce() -> String) -> PResult<()> {
        if self.at_statement_end() {
            self.bump()?;
            Ok(())
        } else if self.at(TokenKind::Eof) {
            Ok(())
        } else {
            Err(self.expected(expected()))
        }
    }

    fn relation(&mut self) -> PResult<RelationAst> {
        let keyword = self.bump()?;
        let doc_comments = self.doc_comments(&keyword);
        let name = self.expect_name(|| "a relation name after 'relation'".into())?;
        self.expect(TokenKind::Colon, || {
            format!("':' after relation name '{}'", name.text)
        })?;
        let mut subjects = vec![self.subject(&name, "':'")?];
        while self.at(TokenKind::Pipe) {
            self.bump()?;
            subjects.push(self.subject(&name, "'|'")?);
        }
        Ok(RelationAst {
            name,
            doc_comments,
            subjects,
        })
    }

    fn subject(&mut self, relation: &Name, after: &str) -> PResult<SubjectAst> {
        let subject_type = self.path(|| {
            format!(
                "a subject type after {after} in relation '{}'",
                relation.text
            )
        })?;
        let kind = if self.at(TokenKind::Colon) {
            self.bump()?;
            self.expect(TokenKind::Star, || {
                format!("'*' after '{}:'", subject_type.text)
            })?;
            SubjectKindAst::Wildcard
        } else if self.at(TokenKind::Hash) {
            self.bump()?;
            if self.at(TokenKind::Ellipsis) {
                self.bump()?;
                SubjectKindAst::Object
            } else {
                SubjectKindAst::Relation(self.expect_name(|| {
                    format!("a relation name or '...' after '{}#'", subject_type.text)
                })?)
            }
        } else {
            SubjectKindAst::Object
        };
        let (caveat, expiration) = if self.at_keyword("with") {
            self.bump()?;
            self.with_clause()?
        } else {
            (None, false)
        };
        Ok(SubjectAst {
            subject_type,
            kind,
            caveat,
            expiration,
        })
    }

    /// What follows `with`: the caveat name and whether expiration is required.
    fn with_clause(&mut self) -> PResult<(Option<Name>, bool)> {
        if self.at_keyword("expiration") {
            self.bump()?;
            if self.at_keyword("and") {
                return Err(self.error_here(ErrorKind::ExpirationBeforeCaveat));
            }
            return Ok((None, true));
        }
        let enabled = self.expiration_enabled;
        let caveat = self.path(|| {
            if enabled {
                "a caveat name or 'expiration' after 'with'".into()
            } else {
                "a caveat name after 'with'".into()
            }
        })?;
        if self.at_keyword("and") {
            self.bump()?;
            if !self.at_keyword("expiration") {
                return Err(self.expected("'expiration' after 'and'".into()));
            }
            self.bump()?;
            return Ok((Some(caveat), true));
        }
        if self.at_name() && self.current_text() == "and" {
            return Err(self.error_here(ErrorKind::ExpirationNotEnabled));
        }
        Ok((Some(caveat), false))
    }

    // ---- permissions

    fn permission(&mut self) -> PResult<PermissionAst> {
        let keyword = self.bump()?;
        let doc_comments = self.doc_comments(&keyword);
        let name = self.expect_name(|| "a permission name after 'permission'".into())?;
        if self.at(TokenKind::Colon) {
            let kind = ErrorKind::Unsupported("permission type annotations".into());
            return Err(self.error_here(kind));
        }
        self.expect(TokenKind::Equals, || {
            format!("'=' after permission name '{}'", name.text)
        })?;
        let (expr, _) =
            self.exclusion(&|| format!("an expression after '=' in permission '{}'", name.text))?;
        Ok(PermissionAst {
            name,
            doc_comments,
            expr,
        })
    }

    /// Fails if an expression node at `op_start` would be deeper than the limit.
    fn check_depth(depth: usize, op_start: usize) -> PResult<()> {
        if depth > MAX_NESTING_DEPTH {
            Err(Located::new(
                op_start,
                ErrorKind::NestingTooDeep(MAX_NESTING_DEPTH),
            ))
        } else {
            Ok(())
        }
    }

    /// `a - b - c`, left-associative. Returns the expression and its depth (a leaf is 1).
    fn exclusion(&mut self, expected: &dyn Fn() -> String) -> PResult<(Expr, usize)> {
        let (mut expr, mut depth) = self.intersection(expected)?;
        while self.at(TokenKind::Minus) {
            let op_start = self.bump()?.span.start;
            let (right, right_depth) = self.intersection(&|| "an expression after '-'".into())?;
            depth = 1 + depth.max(right_depth);
            Self::check_depth(depth, op_start)?;
            expr = Expr::Exclusion(Box::new(expr), Box::new(right));
        }
        Ok((expr, depth))
    }

    fn intersection(&mut self, expected: &dyn Fn() -> String) -> PResult<(Expr, usize)> {
        self.chain(TokenKind::Amp, expected, Self::union, Expr::Intersection)
    }

    fn union(&mut self, expected: &dyn Fn() -> String) -> PResult<(Expr, usize)> {
        self.chain(TokenKind::Plus, expected, Self::operand, Expr::Union)
    }

    /// `x op y op z` as one n-ary node made by `build`, or just `x` when no `op` follows it.
    fn chain(
        &mut self,
        op: TokenKind,
        expected: &dyn Fn() -> String,
        operand: OperandParser<'a>,
        build: fn(Vec<Expr>) -> Expr,
    ) -> PResult<(Expr, usize)> {
        let (first, mut depth) = operand(self, expected)?;
        if !self.at(op) {
            return Ok((first, depth));
        }
        let mut children = vec![first];
        loop {
            let op_token = self.bump()?;
            let op_text = self.slice(op_token.span);
            let (child, child_depth) =
                operand(self, &|| format!("an expression after '{op_text}'"))?;
            depth = depth.max(child_depth);
            children.push(child);
            if !self.at(op) {
                Self::check_depth(depth + 1, op_token.span.start)?;
                return Ok((build(children), depth + 1));
            }
        }
    }

    /// A parenthesized expression, `nil`, a relation/permission name, or an arrow.
    fn operand(&mut self, expected: &dyn Fn() -> String) -> PResult<(Expr, usize)> {
        if self.at(TokenKind::LParen) {
            let open = self.bump()?.span.start;
            self.paren_depth += 1;
            if self.paren_depth > MAX_NESTING_DEPTH {
                return Err(Located::new(
                    open,
                    ErrorKind::NestingTooDeep(MAX_NESTING_DEPTH),
                ));
            }
            let inner = self.exclusion(&|| "an expression after '('".into())?;
            let text = self.text;
            self.expect(TokenKind::RParen, || {
                let (line, column) = line_col(text, open);
                format!("')' to close the '(' at line {line}, column {column}")
            })?;
            self.paren_depth -= 1;
            self.reject_arrow()?;
            return Ok(inner);
        }
        if self.at_keyword("nil") {
            self.bump()?;
            self.reject_arrow()?;
            return Ok((Expr::Nil, 1));
        }
        let name = self.expect_name(expected)?;
        if self.at(TokenKind::Arrow) || self.at(TokenKind::Period) {
            return self.arrow(name);
        }
        Ok((Expr::Reference(name), 1))
    }

    /// Arrows may only follow a plain name.
    fn reject_arrow(&self) -> PResult<()> {
        if self.at(TokenKind::Arrow) || self.at(TokenKind::Period) {
            let op = if self.at(TokenKind::Arrow) {
                "->"
            } else {
                ".any()/.all()"
            };
            return Err(self.error_here(ErrorKind::ArrowWithoutRelation(op.into())));
        }
        Ok(())
    }

    /// `tupleset->computed`, `tupleset.any(computed)` or `tupleset.all(computed)`.
    fn arrow(&mut self, tupleset: Name) -> PResult<(Expr, usize)> {
        let (function, computed) = if self.at(TokenKind::Arrow) {
            self.bump()?;
            let computed = self.expect_name(|| {
                format!("a relation or permission name after '{}->'", tupleset.text)
            })?;
            (ArrowFunction::Any, computed)
        } else {
            self.bump()?;
            let function_name =
                self.expect_name(|| format!("'any' or 'all' after '{}.'", tupleset.text))?;
            let function = match function_name.text.as_str() {
                "any" => ArrowFunction::Any,
                "all" => ArrowFunction::All,
                other => {
                    let kind = ErrorKind::UnknownArrowFunction(shorten(other));
                    return Err(Located::new(function_name.span.start, kind));
                }
            };
            let call = format!("{}.{}", tupleset.text, function_name.text);
            self.expect(TokenKind::LParen, || format!("'(' after '{call}'"))?;
            let computed =
                self.expect_name(|| format!("a relation or permission name in '{call}()'"))?;
            self.expect(TokenKind::RParen, || {
                format!("')' after '{call}({}'", computed.text)
            })?;
            (function, computed)
        };
        if self.at(TokenKind::Arrow) || self.at(TokenKind::Period) {
            let op = self.current_text().to_string();
            return Err(self.error_here(ErrorKind::NestedArrow(op)));
        }
        Ok((
            Expr::Arrow {
                tupleset,
                computed,
                function,
            },
            1,
        ))
    }

    // ---- caveats

    fn caveat(&mut self) -> PResult<CaveatAst> {
        let keyword = self.bump()?;
        let doc_comments = self.doc_comments(&keyword);
        let name = self.path(|| "a caveat name after 'caveat'".into())?;
        self.expect(TokenKind::LParen, || {
            format!("'(' after caveat name '{}'", name.text)
        })?;
        if self.at(TokenKind::RParen) {
            return Err(self.error_here(ErrorKind::CaveatWithoutParameters(name.text)));
        }
        let mut parameters: Vec<ParameterAst> = Vec::new();
        loop {
            let param =
                self.expect_name(|| format!("a parameter name in caveat '{}'", name.text))?;
            let ty = self.caveat_type(&|| format!("a type after parameter '{}'", param.text), 1)?;
            parameters.push(ParameterAst { name: param, ty });
            if !self.at(TokenKind::Comma) {
                break;
            }
            self.bump()?;
        }
        let last = parameters
            .last()
            .map(|p| p.name.text.clone())
            .unwrap_or_default();
        self.expect(TokenKind::RParen, || {
            format!(
                "',' or ')' after parameter '{last}' of caveat '{}'",
                name.text
            )
        })?;
        self.expect(TokenKind::LBrace, || {
            format!("'{{' after the parameters of caveat '{}'", name.text)
        })?;
        let expression = self.caveat_expression(&name)?;
        Ok(CaveatAst {
            name,
            doc_comments,
            parameters,
            expression: expression.text,
            expression_source: expression.source,
            expression_start: expression.start,
        })
    }

    /// A parameter type, `depth` levels deep in type arguments.
    fn caveat_type(&mut self, expected: &dyn Fn() -> String, depth: usize) -> PResult<TypeAst> {
        let name = self.expect_name(expected)?;
        let mut args = Vec::new();
        if self.at(TokenKind::Lt) {
            let open = self.bump()?.span.start;
            if depth >= MAX_NESTING_DEPTH {
                return Err(Located::new(
                    open,
                    ErrorKind::NestingTooDeep(MAX_NESTING_DEPTH),
                ));
            }
            loop {
                let arg_of = self.slice(name.span);
                args.push(
                    self.caveat_type(&|| format!("a type argument of '{arg_of}'"), depth + 1)?,
                );
                if !self.at(TokenKind::Comma) {
                    break;
                }
                self.bump()?;
            }
            self.expect(TokenKind::Gt, || {
                format!("',' or '>' after the type arguments of '{}'", name.text)
            })?;
        }
        Ok(TypeAst { name, args })
    }

    /// The tokens up to the `}` matching the caveat's `{` (consumed), as verbatim text from the
    /// first token to the last, and its source as SpiceDB hands it to CEL: the same text
    /// followed by the statement-ending line break, if one came last. Statement-ending line
    /// breaks are not part of the expression itself.
    fn caveat_expression(&mut self, caveat: &Name) -> PResult<CaveatExpression> {
        let mut open_braces = 0usize;
        let mut range: Option<Span> = None;
        let mut trailing_line_end: Option<usize> = None;
        loop {
            match self.tok.kind {
                TokenKind::RBrace if open_braces == 0 => break,
                TokenKind::RBrace => open_braces -= 1,
                TokenKind::LBrace => open_braces += 1,
                TokenKind::Eof => {
                    return Err(self.expected(format!("'}}' to close caveat '{}'", caveat.text)))
                }
                _ => {}
            }
            let token = self.bump()?;
            if token.kind == TokenKind::LineEnd {
                if range.is_some() && trailing_line_end.is_none() {
                    trailing_line_end = Some(token.span.end);
                }
            } else {
                trailing_line_end = None;
                let start = range.map_or(token.span.start, |r| r.start);
                range = Some(Span {
                    start,
                    end: token.span.end,
                });
            }
        }
        let Some(range) = range else {
            return Err(self.error_here(ErrorKind::EmptyCaveatExpression(caveat.text.clone())));
        };
        self.bump()?;
        let source_end = trailing_line_end.unwrap_or(range.end);
        Ok(CaveatExpression {
            text: self.slice(range).to_string(),
            source: self
                .slice(Span {
                    start: range.start,
                    end: source_end,
                })
                .to_string(),
            start: range.start,
        })
    }
}

/// A caveat's expression as the parser found it.
struct CaveatExpression {
    text: String,
    source: String,
    start: usize,
}
