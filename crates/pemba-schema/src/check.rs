//! The type checker: SpiceDB's schema validation rules, then lowering to the [`crate::model`].
//!
//! Every rule is checked over the whole schema and every violation recorded; the one reported is
//! the earliest in the text. Lookups resolve to the first of duplicated names, so one mistake does
//! not cascade into confusing follow-up errors. The rules, in the order of this file:
//!
//! 1. definition and caveat names are valid type paths and unique together;
//! 2. relation and permission names are valid and unique within their definition;
//! 3. every subject type of a relation names a definition; `T#r` names a relation or permission
//!    of `T`; `T#r` for another definition `T` must not reach a wildcard through subject
//!    relations; no subject type is listed twice; `with c` names a caveat;
//! 4. every name in a permission's expression is a relation or permission of its definition; the
//!    left side of an arrow is a relation (not a permission) that reaches no wildcard;
//! 5. permissions that are exactly another permission do not alias each other in a cycle;
//! 6. caveat parameters are unique, usable CEL names, of known types, and used by the expression.
//!
//! Like SpiceDB, an arrow's right side is not checked: it may name something that none of the
//! walked subject types has (SpiceDB only warns about that).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pemba_caveats::{Caveat, CompileError, Diagnostic};

use crate::ast::{
    CaveatAst, DefinitionAst, Expr, Item, MemberAst, Name, PermissionAst, RelationAst, Schema,
    SubjectAst, SubjectKindAst, TypeAst,
};
use crate::error::{line_col, ErrorKind, Hint, Located, NameKind};
use crate::lexer::{Lexer, TokenKind};
use crate::model::{
    AllowedSubject, AllowedSubjectKind, Arrow, CaveatDefinition, CompiledCaveat, CompiledSchema,
    Definition, Member, Permission, Relation, Rewrite,
};
use crate::names::{object_type_problem, parameter_name_problem, relation_name_problem, suggest};

/// Checks the schema and lowers it to the model, or returns the earliest violation.
pub(crate) fn check(schema: &Schema, text: &str) -> Result<CompiledSchema, Located> {
    let mut checker = Checker::new(schema, text);
    checker.check_names();
    for definition in checker.definition_order.clone() {
        checker.check_definition(definition);
    }
    for caveat in checker.caveat_order.clone() {
        checker.check_caveat(caveat);
    }
    let Some(first) = checker.errors.iter().min_by_key(|e| e.error.offset) else {
        return Ok(lower(schema, &checker.compiled_caveats));
    };
    let mut error = first.error.clone();
    if let Some((name, candidates)) = first.suggest {
        error.kind.set_hint(checker.suggestion(name, candidates));
    }
    Err(error)
}

/// Where the did-you-mean candidates for an unknown name come from. Suggestions cost an edit
/// distance per candidate, so they are only worked out for the error that is reported.
#[derive(Clone, Copy)]
enum Candidates<'a> {
    Definitions,
    Caveats,
    /// The relations and permissions of a definition.
    Members(&'a DefinitionAst),
    /// The relations (not the permissions) of a definition.
    Relations(&'a DefinitionAst),
    ParameterTypes,
}

/// A violation, and the unknown name to suggest a replacement for, if any.
struct Pending<'a> {
    error: Located,
    suggest: Option<(&'a str, Candidates<'a>)>,
}

/// A definition's members by name (the first of duplicates).
type MemberIndex<'a> = HashMap<&'a str, &'a MemberAst>;

struct Checker<'a> {
    uses_expiration: bool,
    definition_order: Vec<&'a DefinitionAst>,
    caveat_order: Vec<&'a CaveatAst>,
    /// Definitions by name (the first of duplicates), with their members.
    definitions: HashMap<&'a str, (&'a DefinitionAst, MemberIndex<'a>)>,
    caveats: HashMap<&'a str, &'a CaveatAst>,
    /// Byte offsets at which lines 2, 3, … start.
    line_starts: Vec<usize>,
    errors: Vec<Pending<'a>>,
    text: &'a str,
    /// Caveats whose expressions compiled, by name.
    compiled_caveats: HashMap<String, CompiledCaveat>,
}

impl<'a> Checker<'a> {
    fn new(schema: &'a Schema, text: &'a str) -> Self {
        let mut checker = Checker {
            uses_expiration: schema.uses_expiration,
            definition_order: Vec::new(),
            caveat_order: Vec::new(),
            definitions: HashMap::new(),
            caveats: HashMap::new(),
            line_starts: text.match_indices('\n').map(|(i, _)| i + 1).collect(),
            errors: Vec::new(),
            text,
            compiled_caveats: HashMap::new(),
        };
        for item in &schema.items {
            match item {
                Item::Definition(d) => {
                    checker.definition_order.push(d);
                    let mut members = MemberIndex::new();
                    for member in &d.members {
                        members.entry(member.name().text.as_str()).or_insert(member);
                    }
                    checker
                        .definitions
                        .entry(d.name.text.as_str())
                        .or_insert((d, members));
                }
                Item::Caveat(c) => {
                    checker.caveat_order.push(c);
                    checker.caveats.entry(c.name.text.as_str()).or_insert(c);
                }
            }
        }
        checker
    }

    fn error(&mut self, name: &Name, kind: ErrorKind) {
        let error = Located::new(name.span.start, kind);
        self.errors.push(Pending {
            error,
            suggest: None,
        });
    }

    /// An error about the unknown `name`, whose hint is a suggestion among `candidates`.
    fn unknown(&mut self, name: &'a Name, kind: ErrorKind, candidates: Candidates<'a>) {
        let error = Located::new(name.span.start, kind);
        let suggest = Some((name.text.as_str(), candidates));
        self.errors.push(Pending { error, suggest });
    }

    fn suggestion(&self, name: &str, candidates: Candidates<'a>) -> Option<Hint> {
        match candidates {
            Candidates::Definitions => suggest(
                name,
                self.definition_order.iter().map(|d| d.name.text.as_str()),
            ),
            Candidates::Caveats => {
                suggest(name, self.caveat_order.iter().map(|c| c.name.text.as_str()))
            }
            Candidates::Members(d) => {
                suggest(name, d.members.iter().map(|m| m.name().text.as_str()))
            }
            Candidates::Relations(d) => suggest(
                name,
                d.members.iter().filter_map(|m| match m {
                    MemberAst::Relation(r) => Some(r.name.text.as_str()),
                    MemberAst::Permission(_) => None,
                }),
            ),
            Candidates::ParameterTypes => suggest(name, KNOWN_TYPES.iter().copied()),
        }
    }

    /// The 1-based line of a name.
    fn line_of(&self, name: &Name) -> usize {
        self.line_starts
            .partition_point(|&start| start <= name.span.start)
            + 1
    }

    fn member(&self, definition: &str, member: &str) -> Option<&'a MemberAst> {
        self.definitions
            .get(definition)
            .and_then(|(_, members)| members.get(member).copied())
    }

    /// Rules 1 and 2.
    fn check_names(&mut self) {
        let mut items: Vec<(&'a Name, NameKind)> = Vec::new();
        items.extend(
            self.definition_order
                .iter()
                .map(|d| (&d.name, NameKind::Definition)),
        );
        items.extend(
            self.caveat_order
                .iter()
                .map(|c| (&c.name, NameKind::Caveat)),
        );
        items.sort_by_key(|(name, _)| name.span.start);
        self.check_unique(
            items,
            definition_or_caveat_problem,
            |name, previous, line| ErrorKind::DuplicateName {
                name,
                previous,
                line,
            },
        );

        for definition in self.definition_order.clone() {
            let members = definition.members.iter().map(|member| match member {
                MemberAst::Relation(r) => (&r.name, NameKind::Relation),
                MemberAst::Permission(p) => (&p.name, NameKind::Permission),
            });
            self.check_unique(
                members.collect(),
                |name, _| relation_name_problem(name),
                |name, previous, line| ErrorKind::DuplicateMember {
                    name,
                    definition: definition.name.text.clone(),
                    previous,
                    line,
                },
            );
        }
    }

    /// Each of `names` (in text order) is valid by `problem` and unlike the earlier ones;
    /// `duplicate(name, kind of the earlier one, its line)` describes a repeated name.
    fn check_unique(
        &mut self,
        names: Vec<(&'a Name, NameKind)>,
        problem: fn(&str, NameKind) -> Option<String>,
        duplicate: impl Fn(String, NameKind, usize) -> ErrorKind,
    ) {
        let mut seen: HashMap<&str, (NameKind, usize)> = HashMap::new();
        for (name, kind) in names {
            if let Some(reason) = problem(&name.text, kind) {
                let invalid = ErrorKind::InvalidName {
                    kind,
                    name: name.text.clone(),
                    reason,
                };
                self.error(name, invalid);
            }
            match seen.get(name.text.as_str()) {
                Some(&(previous, line)) => {
                    self.error(name, duplicate(name.text.clone(), previous, line));
                }
                None => {
                    seen.insert(&name.text, (kind, self.line_of(name)));
                }
            }
        }
    }

    /// Rules 3 to 5 for one definition.
    fn check_definition(&mut self, definition: &'a DefinitionAst) {
        for member in &definition.members {
            match member {
                MemberAst::Relation(relation) => self.check_relation(definition, relation),
                MemberAst::Permission(permission) => {
                    self.check_expr(definition, permission, &permission.expr);
                }
            }
        }
        self.check_alias_cycles(definition);
    }

    /// Rule 3.
    fn check_relation(&mut self, definition: &'a DefinitionAst, relation: &'a RelationAst) {
        let mut seen = HashSet::new();
        for subject in &relation.subjects {
            let type_name = subject.subject_type.text.as_str();
            if !self.definitions.contains_key(type_name) {
                let kind = ErrorKind::UnknownDefinition {
                    name: type_name.to_string(),
                    relation: relation.name.text.clone(),
                    hint: None,
                };
                self.unknown(&subject.subject_type, kind, Candidates::Definitions);
            } else if let SubjectKindAst::Relation(sub) = &subject.kind {
                self.check_subject_relation(definition, relation, subject, sub);
            }

            // `user` and `user#...` print alike: they are the same subject type.
            let written = lower_subject(subject).to_string();
            if !seen.insert(written.clone()) {
                let kind = ErrorKind::DuplicateSubjectType {
                    subject: written,
                    relation: relation.name.text.clone(),
                };
                self.error(&subject.subject_type, kind);
            }

            if let Some(caveat) = &subject.caveat {
                if !self.caveats.contains_key(caveat.text.as_str()) {
                    let mut kind = ErrorKind::UnknownCaveat {
                        name: caveat.text.clone(),
                        relation: relation.name.text.clone(),
                        hint: None,
                    };
                    if caveat.text == "expiration" && !self.uses_expiration {
                        kind.set_hint(Some(Hint::Note(
                            "to require an expiration, add 'use expiration' at the top of the \
                             schema"
                                .into(),
                        )));
                        self.error(caveat, kind);
                    } else {
                        self.unknown(caveat, kind, Candidates::Caveats);
                    }
                }
            }
        }
    }

    /// `T#sub` in the subject types of `relation` (`T` is known to exist).
    fn check_subject_relation(
        &mut self,
        definition: &'a DefinitionAst,
        relation: &'a RelationAst,
        subject: &'a SubjectAst,
        sub: &'a Name,
    ) {
        let type_name = subject.subject_type.text.as_str();
        let Some((target, members)) = self.definitions.get(type_name) else {
            return;
        };
        if !members.contains_key(sub.text.as_str()) {
            let kind = ErrorKind::UnknownSubjectRelation {
                name: sub.text.clone(),
                definition: type_name.to_string(),
                relation: relation.name.text.clone(),
                hint: None,
            };
            self.unknown(sub, kind, Candidates::Members(target));
        } else if type_name != definition.name.text {
            // SpiceDB skips this check for subject relations of the relation's own definition.
            if let Some((wildcard, via)) = self.reachable_wildcard(type_name, &sub.text) {
                let kind = ErrorKind::TransitiveWildcard {
                    relation: relation.name.text.clone(),
                    subject: format!("{type_name}#{}", sub.text),
                    wildcard,
                    via,
                };
                self.error(&subject.subject_type, kind);
            }
        }
    }

    /// The first wildcard (`type:*`) that relation `definition#relation` allows, directly or
    /// through subject relations (`T#r`), with the relation that allows it. Permissions allow
    /// nothing directly, so the search does not go through them. Depth-first in source order,
    /// iteratively so that long chains cannot exhaust the stack.
    fn reachable_wildcard(
        &self,
        definition: &'a str,
        relation: &'a str,
    ) -> Option<(String, String)> {
        let mut visited: HashSet<(&str, &str)> = HashSet::from([(definition, relation)]);
        let mut stack: Vec<(&str, &str, usize)> = vec![(definition, relation, 0)];
        while let Some(top) = stack.last_mut() {
            let (def, rel, next) = *top;
            let subjects = match self.member(def, rel) {
                Some(MemberAst::Relation(r)) => r.subjects.as_slice(),
                _ => &[],
            };
            let Some(subject) = subjects.get(next) else {
                stack.pop();
                continue;
            };
            top.2 += 1;
            match &subject.kind {
                SubjectKindAst::Wildcard => {
                    return Some((
                        format!("{}:*", subject.subject_type.text),
                        format!("{def}#{rel}"),
                    ));
                }
                SubjectKindAst::Relation(sub) => {
                    let key = (subject.subject_type.text.as_str(), sub.text.as_str());
                    if visited.insert(key) {
                        stack.push((key.0, key.1, 0));
                    }
                }
                SubjectKindAst::Object => {}
            }
        }
        None
    }

    /// Rule 4, over one (sub)expression of `permission`. Recursion depth is bounded by the
    /// parser's nesting limit.
    fn check_expr(
        &mut self,
        definition: &'a DefinitionAst,
        permission: &PermissionAst,
        expr: &'a Expr,
    ) {
        let def_name = definition.name.text.as_str();
        match expr {
            Expr::Union(children) | Expr::Intersection(children) => {
                for child in children {
                    self.check_expr(definition, permission, child);
                }
            }
            Expr::Exclusion(left, right) => {
                self.check_expr(definition, permission, left);
                self.check_expr(definition, permission, right);
            }
            Expr::Nil => {}
            Expr::Reference(name) => {
                if self.member(def_name, &name.text).is_none() {
                    let mut kind = ErrorKind::UnknownReference {
                        name: name.text.clone(),
                        permission: permission.name.text.clone(),
                        hint: None,
                    };
                    if name.text == "self" {
                        kind.set_hint(Some(Hint::Note("'self' is not supported".into())));
                        self.error(name, kind);
                    } else {
                        self.unknown(name, kind, Candidates::Members(definition));
                    }
                }
            }
            Expr::Arrow { tupleset, .. } => match self.member(def_name, &tupleset.text) {
                None => {
                    let kind = ErrorKind::UnknownArrowRelation {
                        name: tupleset.text.clone(),
                        permission: permission.name.text.clone(),
                        hint: None,
                    };
                    self.unknown(tupleset, kind, Candidates::Relations(definition));
                }
                Some(MemberAst::Permission(_)) => {
                    let kind = ErrorKind::PermissionOnArrowLeft {
                        name: tupleset.text.clone(),
                        permission: permission.name.text.clone(),
                    };
                    self.error(tupleset, kind);
                }
                Some(MemberAst::Relation(relation)) => {
                    if let Some((wildcard, via)) =
                        self.reachable_wildcard(&definition.name.text, &relation.name.text)
                    {
                        let kind = ErrorKind::WildcardOnArrowLeft {
                            name: tupleset.text.clone(),
                            permission: permission.name.text.clone(),
                            wildcard,
                            via,
                        };
                        self.error(tupleset, kind);
                    }
                }
            },
        }
    }

    /// Rule 5: a permission whose whole expression is one name aliases that member; SpiceDB
    /// rejects aliases among permissions that loop. Reported at the alias, in the loop, that
    /// comes first in the text.
    fn check_alias_cycles(&mut self, definition: &'a DefinitionAst) {
        let aliases: HashMap<&str, &Name> = definition
            .members
            .iter()
            .filter_map(|m| match m {
                MemberAst::Permission(PermissionAst {
                    name,
                    expr: Expr::Reference(target),
                    ..
                }) => Some((name.text.as_str(), target)),
                _ => None,
            })
            .collect();
        let mut done: HashSet<&str> = HashSet::new();
        for member in &definition.members {
            // The aliases followed from this member, and where each is in `path`.
            let mut path: Vec<&str> = Vec::new();
            let mut on_path: HashMap<&str, usize> = HashMap::new();
            let mut current = member.name().text.as_str();
            while let Some(target) = aliases.get(current).filter(|_| !done.contains(current)) {
                if let Some(&loop_start) = on_path.get(current) {
                    self.report_cycle(definition, &aliases, &path[loop_start..]);
                    break;
                }
                on_path.insert(current, path.len());
                path.push(current);
                current = target.text.as_str();
            }
            done.extend(path);
        }
    }

    fn report_cycle(
        &mut self,
        definition: &DefinitionAst,
        aliases: &HashMap<&str, &Name>,
        cycle: &[&str],
    ) {
        let Some(first) = (0..cycle.len()).min_by_key(|&i| {
            aliases
                .get(cycle[i])
                .map_or(usize::MAX, |target| target.span.start)
        }) else {
            return;
        };
        let mut names: Vec<String> = cycle[first..]
            .iter()
            .chain(&cycle[..first])
            .map(|s| s.to_string())
            .collect();
        names.push(cycle[first].to_string());
        if let Some(target) = aliases.get(cycle[first]) {
            let kind = ErrorKind::AliasCycle {
                definition: definition.name.text.clone(),
                cycle: names,
            };
            self.error(target, kind);
        }
    }

    /// Rule 6, then rule 7: the expression compiles and type-checks over the parameters.
    fn check_caveat(&mut self, caveat: &'a CaveatAst) {
        let errors_before = self.errors.len();
        self.check_caveat_parameters(caveat);
        if self.errors.len() > errors_before {
            return;
        }
        let parameters: Vec<(String, String)> = caveat
            .parameters
            .iter()
            .map(|p| (p.name.text.clone(), p.ty.to_string()))
            .collect();
        match Caveat::compile(&caveat.name.text, &parameters, &caveat.expression) {
            Ok(compiled) => {
                self.compiled_caveats
                    .insert(caveat.name.text.clone(), CompiledCaveat(Arc::new(compiled)));
            }
            Err(error) => {
                let detail = self.caveat_error_detail(caveat, error);
                let kind = ErrorKind::InvalidCaveatExpression {
                    caveat: caveat.name.text.clone(),
                    detail,
                };
                self.errors.push(Pending {
                    error: Located::new(caveat.expression_start, kind),
                    suggest: None,
                });
            }
        }
    }

    /// SpiceDB's report of a caveat compile error: cel-go's errors with positions moved to where
    /// the expression sits in the schema, and the caveat's name as the source name.
    fn caveat_error_detail(&self, caveat: &CaveatAst, error: CompileError) -> String {
        let CompileError::Expression(diagnostics) = error else {
            return error.to_string();
        };
        let (start_line, start_column) = line_col(self.text, caveat.expression_start);
        let moved: Vec<Diagnostic> = diagnostics
            .into_iter()
            .map(|d| Diagnostic {
                column: if d.line == 1 {
                    start_column - 1 + d.column
                } else {
                    d.column
                },
                line: start_line - 1 + d.line,
                message: d.message,
            })
            .collect();
        Diagnostic::display_all(&moved, &caveat.name.text, Some(&caveat.expression_source))
    }

    /// Rule 6.
    fn check_caveat_parameters(&mut self, caveat: &'a CaveatAst) {
        let referenced = referenced_identifiers(&caveat.expression);
        let mut seen = HashSet::new();
        for parameter in &caveat.parameters {
            let name = &parameter.name;
            if !seen.insert(name.text.as_str()) {
                let kind = ErrorKind::DuplicateParameter {
                    name: name.text.clone(),
                    caveat: caveat.name.text.clone(),
                };
                self.error(name, kind);
                continue;
            }
            if let Some(reason) = parameter_name_problem(&name.text) {
                let kind = ErrorKind::InvalidName {
                    kind: NameKind::CaveatParameter,
                    name: name.text.clone(),
                    reason,
                };
                self.error(name, kind);
            }
            self.check_type(&parameter.ty, &name.text);
            if !referenced.contains(name.text.as_str()) {
                let kind = ErrorKind::UnusedParameter {
                    name: name.text.clone(),
                    caveat: caveat.name.text.clone(),
                };
                self.error(name, kind);
            }
        }
    }

    /// A parameter type: a known type name with as many type arguments as it takes.
    fn check_type(&mut self, ty: &'a TypeAst, parameter: &str) {
        let expected = match ty.name.text.as_str() {
            "any" | "bool" | "bytes" | "double" | "duration" | "int" | "ipaddress" | "string"
            | "timestamp" | "uint" => 0,
            "list" | "map" => 1,
            _ => {
                let kind = ErrorKind::UnknownParameterType {
                    name: ty.name.text.clone(),
                    parameter: parameter.to_string(),
                    hint: None,
                };
                self.unknown(&ty.name, kind, Candidates::ParameterTypes);
                return;
            }
        };
        if ty.args.len() != expected {
            let kind = ErrorKind::TypeArgumentCount {
                name: ty.name.text.clone(),
                expected,
                found: ty.args.len(),
            };
            self.error(&ty.name, kind);
        }
        for arg in &ty.args {
            self.check_type(arg, parameter);
        }
    }
}

/// Why a definition or caveat name is invalid: definitions are type paths; caveat names are
/// anything SpiceDB's API accepts (the parser already made them identifiers or paths of them).
fn definition_or_caveat_problem(name: &str, kind: NameKind) -> Option<String> {
    match kind {
        NameKind::Caveat => pemba_types::validate_caveat_name(name)
            .err()
            .map(|_| "must match ^[a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127}$".to_string()),
        _ => object_type_problem(name),
    }
}

/// Type names of caveat parameters.
const KNOWN_TYPES: &[&str] = &[
    "any",
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "ipaddress",
    "list",
    "map",
    "string",
    "timestamp",
    "uint",
];

/// The identifiers a CEL expression refers to as variables: identifier tokens outside string
/// literals and comments, except those right after `.` (field selections and method calls).
fn referenced_identifiers(expression: &str) -> HashSet<&str> {
    let mut lexer = Lexer::new(expression);
    let mut referenced = HashSet::new();
    let mut after_period = false;
    // The expression was lexed once already, so this cannot fail; stop quietly if it does.
    while let Ok(token) = lexer.next_token() {
        match token.kind {
            TokenKind::Eof => break,
            TokenKind::Ident if !after_period => {
                if let Some(word) = expression.get(token.span.start..token.span.end) {
                    referenced.insert(word);
                }
            }
            _ => {}
        }
        after_period = token.kind == TokenKind::Period;
    }
    referenced
}

// ---- lowering

/// The model of a schema that passed every check, with its compiled caveats.
fn lower(schema: &Schema, compiled_caveats: &HashMap<String, CompiledCaveat>) -> CompiledSchema {
    let mut definitions = Vec::new();
    let mut caveats = Vec::new();
    for item in &schema.items {
        match item {
            Item::Definition(d) => definitions.push(lower_definition(d)),
            Item::Caveat(c) => caveats.push(CaveatDefinition {
                name: c.name.text.clone(),
                doc_comments: c.doc_comments.clone(),
                parameters: c
                    .parameters
                    .iter()
                    .map(|p| (p.name.text.clone(), p.ty.to_string()))
                    .collect(),
                expression: c.expression.clone(),
                compiled: compiled_caveats[&c.name.text].clone(),
            }),
        }
    }
    CompiledSchema::new(definitions, caveats, schema.uses_expiration)
}

fn lower_definition(definition: &DefinitionAst) -> Definition {
    let members = definition
        .members
        .iter()
        .map(|member| match member {
            MemberAst::Relation(r) => Member::Relation(Relation {
                name: r.name.text.clone(),
                doc_comments: r.doc_comments.clone(),
                allowed: r.subjects.iter().map(lower_subject).collect(),
            }),
            MemberAst::Permission(p) => Member::Permission(Permission {
                name: p.name.text.clone(),
                doc_comments: p.doc_comments.clone(),
                rewrite: lower_expr(&p.expr),
            }),
        })
        .collect();
    Definition::new(
        definition.name.text.clone(),
        definition.doc_comments.clone(),
        members,
    )
}

fn lower_subject(subject: &SubjectAst) -> AllowedSubject {
    AllowedSubject {
        subject_type: subject.subject_type.text.clone(),
        kind: match &subject.kind {
            SubjectKindAst::Object => AllowedSubjectKind::Object,
            SubjectKindAst::Wildcard => AllowedSubjectKind::Wildcard,
            SubjectKindAst::Relation(r) => AllowedSubjectKind::Relation(r.text.clone()),
        },
        caveat: subject.caveat.as_ref().map(|c| c.text.clone()),
        expiration: subject.expiration,
    }
}

/// Lowers an expression, flattening unions of unions and intersections of intersections
/// (`(a + b) + c` is one union of three), as SpiceDB does. Exclusions stay binary.
fn lower_expr(expr: &Expr) -> Rewrite {
    match expr {
        Expr::Union(children) => Rewrite::Union(flatten(children, |r| match r {
            Rewrite::Union(inner) => Ok(inner),
            other => Err(other),
        })),
        Expr::Intersection(children) => Rewrite::Intersection(flatten(children, |r| match r {
            Rewrite::Intersection(inner) => Ok(inner),
            other => Err(other),
        })),
        Expr::Exclusion(left, right) => {
            Rewrite::Exclusion(Box::new(lower_expr(left)), Box::new(lower_expr(right)))
        }
        Expr::Reference(name) => Rewrite::Computed(name.text.clone()),
        Expr::Arrow {
            tupleset,
            computed,
            function,
        } => Rewrite::Arrow(Arrow {
            tupleset: tupleset.text.clone(),
            computed: computed.text.clone(),
            function: *function,
        }),
        Expr::Nil => Rewrite::Nil,
    }
}

/// Lowers `children`, splicing in the children of those that `same_op` recognizes as the same
/// operation (`Ok(their children)`).
fn flatten(
    children: &[Expr],
    same_op: fn(Rewrite) -> Result<Vec<Rewrite>, Rewrite>,
) -> Vec<Rewrite> {
    let mut out = Vec::with_capacity(children.len());
    for child in children {
        match same_op(lower_expr(child)) {
            Ok(inner) => out.extend(inner),
            Err(other) => out.push(other),
        }
    }
    out
}
