//! Type checking of caveat expressions, as SpiceDB's CEL checker does it at schema write: every
//! identifier is a parameter (or a comprehension variable), every operator and function is applied
//! to operand types it has an overload for, and the whole expression is a boolean.
//!
//! Types the checker cannot know (`any` parameters, `dyn(…)`) are `dyn` and accepted anywhere, so
//! the checker never refuses what CEL could evaluate; what it refuses, cel-go refuses too.

use std::collections::BTreeMap;
use std::fmt;

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo};
use cel::Program;

use crate::error::{CompileError, Diagnostic};
use crate::types::ParameterType;

/// A static CEL type, named as cel-go prints it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    IpAddress,
    Null,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Type,
    Dyn,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Duration => f.write_str("google.protobuf.Duration"),
            Ty::Timestamp => f.write_str("google.protobuf.Timestamp"),
            Ty::IpAddress => f.write_str("IPAddress"),
            Ty::Null => f.write_str("null_type"),
            Ty::List(element) => write!(f, "list({element})"),
            Ty::Map(key, value) => write!(f, "map({key}, {value})"),
            Ty::Type => f.write_str("type"),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

impl Ty {
    fn of_parameter(parameter: &ParameterType) -> Ty {
        match parameter {
            ParameterType::Any => Ty::Dyn,
            ParameterType::Bool => Ty::Bool,
            ParameterType::Bytes => Ty::Bytes,
            ParameterType::Double => Ty::Double,
            ParameterType::Duration => Ty::Duration,
            // SpiceDB declares `uint` parameters as CEL ints.
            ParameterType::Int | ParameterType::Uint => Ty::Int,
            ParameterType::IpAddress => Ty::IpAddress,
            ParameterType::String => Ty::String,
            ParameterType::Timestamp => Ty::Timestamp,
            ParameterType::List(element) => Ty::List(Box::new(Ty::of_parameter(element))),
            ParameterType::Map(value) => {
                Ty::Map(Box::new(Ty::String), Box::new(Ty::of_parameter(value)))
            }
        }
    }

    /// Whether a value of type `self` is accepted where `other` is expected (`dyn` matches
    /// anything, also inside lists and maps).
    fn matches(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) => true,
            (Ty::List(a), Ty::List(b)) => a.matches(b),
            (Ty::Map(ka, va), Ty::Map(kb, vb)) => ka.matches(kb) && va.matches(vb),
            (a, b) => a == b,
        }
    }

    fn is_dyn(&self) -> bool {
        *self == Ty::Dyn
    }
}

/// Type-checks `program` (parsed from `source`) and requires a boolean result.
pub(crate) fn check_boolean(
    program: &Program,
    source: &str,
    parameters: &BTreeMap<String, ParameterType>,
) -> Result<(), CompileError> {
    let expr = program.expression();
    let mut checker = Checker {
        source_info: program.source_info(),
        parameters: parameters
            .iter()
            .map(|(name, ty)| (name.clone(), Ty::of_parameter(ty)))
            .collect(),
        scopes: Vec::new(),
        source,
    };
    let ty = checker.check(expr)?;
    if ty != Ty::Bool {
        return Err(CompileError::NotBoolean(ty.to_string()));
    }
    Ok(())
}

/// The first identifier `expr` reads, in evaluation order (a call's target, then its arguments,
/// left to right), that is not bound by a comprehension inside it and satisfies `wanted`.
pub(crate) fn first_free_variable(
    expr: &IdedExpr,
    wanted: &dyn Fn(&str) -> bool,
) -> Option<String> {
    fn walk(
        expr: &IdedExpr,
        bound: &mut Vec<String>,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Option<String> {
        match &expr.expr {
            Expr::Ident(name) => (!bound.contains(name) && wanted(name)).then(|| name.clone()),
            Expr::Call(call) => call
                .target
                .iter()
                .map(|target| &**target)
                .chain(&call.args)
                .find_map(|e| walk(e, bound, wanted)),
            Expr::Select(select) => walk(&select.operand, bound, wanted),
            Expr::List(list) => list.elements.iter().find_map(|e| walk(e, bound, wanted)),
            Expr::Map(map) => map.entries.iter().find_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => {
                    walk(&entry.key, bound, wanted).or_else(|| walk(&entry.value, bound, wanted))
                }
                EntryExpr::StructField(_) => None,
            }),
            Expr::Comprehension(c) => {
                if let Some(found) =
                    walk(&c.iter_range, bound, wanted).or_else(|| walk(&c.accu_init, bound, wanted))
                {
                    return Some(found);
                }
                let depth = bound.len();
                bound.push(c.iter_var.clone());
                bound.extend(c.iter_var2.clone());
                bound.push(c.accu_var.clone());
                let found = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .find_map(|e| walk(e, bound, wanted));
                bound.truncate(depth);
                found
            }
            Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => None,
        }
    }
    walk(expr, &mut Vec::new(), wanted)
}

struct Checker<'a> {
    /// Where each node was written.
    source_info: &'a SourceInfo,
    parameters: BTreeMap<String, Ty>,
    /// Comprehension variables, innermost last.
    scopes: Vec<(String, Ty)>,
    source: &'a str,
}

impl Checker<'_> {
    /// An error at `expr` in cel-go's format: `ERROR: <input>:line:column: message`, then the
    /// line and a caret under the column.
    fn error(&self, expr: &IdedExpr, message: String) -> CompileError {
        let offset = self
            .source_info
            .offset_for(expr.id)
            .map_or(0, |(start, _)| start as usize);
        CompileError::Expression(vec![diagnostic_at(self.source, offset, message)])
    }

    /// cel-go's message: `'(int, string)'` for a function, `'int.(string)'` for a method.
    fn no_overload(
        &self,
        expr: &IdedExpr,
        function: &str,
        target: Option<&Ty>,
        args: &[Ty],
    ) -> CompileError {
        let args: Vec<String> = args.iter().map(Ty::to_string).collect();
        let receiver = target.map(|t| format!("{t}.")).unwrap_or_default();
        self.error(
            expr,
            format!(
                "found no matching overload for '{function}' applied to '{receiver}({})'",
                args.join(", ")
            ),
        )
    }

    fn check(&mut self, expr: &IdedExpr) -> Result<Ty, CompileError> {
        match &expr.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => {
                if let Some((_, ty)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
                    return Ok(ty.clone());
                }
                if let Some(ty) = self.parameters.get(name) {
                    return Ok(ty.clone());
                }
                match name.as_str() {
                    "int" | "uint" | "double" | "bool" | "string" | "bytes" | "list" | "map"
                    | "null_type" | "type" => Ok(Ty::Type),
                    _ => Err(self.error(
                        expr,
                        format!("undeclared reference to '{name}' (in container '')"),
                    )),
                }
            }
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                for item in &list.elements {
                    let ty = self.check(item)?;
                    element = Some(match element {
                        None => ty,
                        Some(previous) if previous == ty => previous,
                        Some(_) => Ty::Dyn,
                    });
                }
                Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(map) => {
                let (mut key, mut value): (Option<Ty>, Option<Ty>) = (None, None);
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        let k = self.check(&entry.key)?;
                        let v = self.check(&entry.value)?;
                        key = Some(join(key, k));
                        value = Some(join(value, v));
                    }
                }
                Ok(Ty::Map(
                    Box::new(key.unwrap_or(Ty::Dyn)),
                    Box::new(value.unwrap_or(Ty::Dyn)),
                ))
            }
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                let field_type = match &operand {
                    Ty::Map(_, value) => (**value).clone(),
                    Ty::Dyn => Ty::Dyn,
                    other => {
                        return Err(self.error(
                            expr,
                            format!("type '{other}' does not support field selection"),
                        ))
                    }
                };
                Ok(if select.test { Ty::Bool } else { field_type })
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let (first, second) = match &range {
                    Ty::List(element) => (Ty::Int, (**element).clone()),
                    Ty::Map(key, value) => ((**key).clone(), (**value).clone()),
                    Ty::Dyn => (Ty::Dyn, Ty::Dyn),
                    other => {
                        return Err(self.error(
                            expr,
                            format!("expression of type '{other}' cannot be range of a comprehension (must be list, map, or dynamic)"),
                        ))
                    }
                };
                let accumulator = self.check(&c.accu_init)?;
                let depth = self.scopes.len();
                match &c.iter_var2 {
                    Some(second_var) => {
                        self.scopes.push((c.iter_var.clone(), first));
                        self.scopes.push((second_var.clone(), second));
                    }
                    None => {
                        let single = if matches!(range, Ty::List(_)) {
                            second
                        } else {
                            first
                        };
                        self.scopes.push((c.iter_var.clone(), single));
                    }
                }
                // The accumulator's type is refined by the step (e.g. a list built by `map`).
                self.scopes.push((c.accu_var.clone(), accumulator.clone()));
                self.check(&c.loop_cond)?;
                let step = self.check(&c.loop_step)?;
                if let Some(slot) = self.scopes.last_mut() {
                    slot.1 = join(Some(accumulator), step);
                }
                let result = self.check(&c.result);
                self.scopes.truncate(depth);
                result
            }
            Expr::Call(call) => {
                let target = match &call.target {
                    Some(target) => Some(self.check(target)?),
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.check(arg)?);
                }
                self.call(expr, &call.func_name, target, args)
            }
            Expr::Struct(_) | Expr::Unspecified => Ok(Ty::Dyn),
        }
    }

    /// The result type of `function` applied to `args` (and `target` for a method call).
    fn call(
        &self,
        expr: &IdedExpr,
        function: &str,
        target: Option<Ty>,
        args: Vec<Ty>,
    ) -> Result<Ty, CompileError> {
        use Ty::*;
        let all: Vec<Ty> = target.iter().cloned().chain(args.iter().cloned()).collect();
        let any_dyn = all.iter().any(Ty::is_dyn);
        let result = match (function, target.is_some(), all.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, false, [a, b])
                if a.matches(&Bool) && b.matches(&Bool) =>
            {
                Some(Bool)
            }
            (operators::LOGICAL_NOT, false, [a]) if a.matches(&Bool) => Some(Bool),
            (operators::NOT_STRICTLY_FALSE, false, [_]) => Some(Bool),
            (operators::EQUALS | operators::NOT_EQUALS, false, [a, b])
                if a.matches(b) || *a == Null || *b == Null =>
            {
                Some(Bool)
            }
            (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                false,
                [a, b],
            ) => {
                let numeric = |t: &Ty| matches!(t, Int | Uint | Double);
                let comparable = |t: &Ty| {
                    matches!(
                        t,
                        Int | Uint | Double | String | Bytes | Bool | Duration | Timestamp
                    )
                };
                ((a == b && comparable(a))
                    || (numeric(a) && numeric(b))
                    || (any_dyn && (a.is_dyn() || comparable(a)) && (b.is_dyn() || comparable(b))))
                .then_some(Bool)
            }
            (operators::ADD, false, [a, b]) => match (a, b) {
                (Dyn, other) | (other, Dyn) => {
                    Some(if *other == Dyn { Dyn } else { other.clone() })
                }
                (Int, Int)
                | (Uint, Uint)
                | (Double, Double)
                | (String, String)
                | (Bytes, Bytes)
                | (Duration, Duration) => Some(a.clone()),
                (Timestamp, Duration) | (Duration, Timestamp) => Some(Timestamp),
                (List(x), List(y)) => {
                    Some(List(Box::new(join(Some((**x).clone()), (**y).clone()))))
                }
                _ => None,
            },
            (operators::SUBSTRACT, false, [a, b]) => match (a, b) {
                (Dyn, _) | (_, Dyn) => Some(Dyn),
                (Int, Int) | (Uint, Uint) | (Double, Double) | (Duration, Duration) => {
                    Some(a.clone())
                }
                (Timestamp, Timestamp) => Some(Duration),
                (Timestamp, Duration) => Some(Timestamp),
                _ => None,
            },
            (operators::MULTIPLY | operators::DIVIDE, false, [a, b]) => match (a, b) {
                (Dyn, _) | (_, Dyn) => Some(Dyn),
                (Int, Int) | (Uint, Uint) | (Double, Double) => Some(a.clone()),
                _ => None,
            },
            (operators::MODULO, false, [a, b]) => match (a, b) {
                (Dyn, _) | (_, Dyn) => Some(Dyn),
                (Int, Int) | (Uint, Uint) => Some(a.clone()),
                _ => None,
            },
            (operators::NEGATE, false, [a]) => match a {
                Int | Double | Dyn => Some(a.clone()),
                _ => None,
            },
            (operators::INDEX, false, [a, b]) => match (a, b) {
                (List(element), i) if i.matches(&Int) => Some((**element).clone()),
                (Map(key, value), k) if k.matches(key) => Some((**value).clone()),
                (Dyn, _) => Some(Dyn),
                _ => None,
            },
            (operators::IN, false, [a, b]) => match b {
                List(element) if a.matches(element) => Some(Bool),
                Map(key, _) if a.matches(key) => Some(Bool),
                Dyn => Some(Bool),
                _ => None,
            },
            (operators::CONDITIONAL, false, [c, a, b]) if c.matches(&Bool) => {
                if a.matches(b) {
                    Some(if a.is_dyn() { b.clone() } else { a.clone() })
                } else {
                    None
                }
            }
            ("size", _, [a]) => {
                matches!(a, String | Bytes | List(_) | Map(..) | Dyn).then_some(Int)
            }
            ("contains" | "startsWith" | "endsWith" | "matches", true, [a, b]) => {
                (a.matches(&String) && b.matches(&String)).then_some(Bool)
            }
            ("matches", false, [a, b]) => {
                (a.matches(&String) && b.matches(&String)).then_some(Bool)
            }
            ("in_cidr", true, [a, b]) => {
                (a.matches(&IpAddress) && b.matches(&String)).then_some(Bool)
            }
            ("isSubtreeOf", true, [a, b]) => {
                (matches!(a, Map(..) | Dyn) && matches!(b, Map(..) | Dyn)).then_some(Bool)
            }
            ("int", false, [a]) => {
                matches!(a, Int | Uint | Double | String | Timestamp | Dyn).then_some(Int)
            }
            ("uint", false, [a]) => matches!(a, Int | Uint | Double | String | Dyn).then_some(Uint),
            ("double", false, [a]) => {
                matches!(a, Int | Uint | Double | String | Dyn).then_some(Double)
            }
            ("string", false, [_]) => Some(String),
            ("bytes", false, [a]) => matches!(a, String | Bytes | Dyn).then_some(Bytes),
            ("bool", false, [a]) => matches!(a, String | Bool | Dyn).then_some(Bool),
            ("dyn", false, [_]) => Some(Dyn),
            ("type", false, [_]) => Some(Type),
            ("timestamp", false, [a]) => {
                matches!(a, String | Int | Timestamp | Dyn).then_some(Timestamp)
            }
            ("duration", false, [a]) => matches!(a, String | Duration | Dyn).then_some(Duration),
            (
                "getFullYear" | "getMonth" | "getDate" | "getDayOfMonth" | "getDayOfWeek"
                | "getDayOfYear" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds",
                true,
                [a, rest @ ..],
            ) if rest.len() <= 1 && matches!(a, Timestamp | Duration | Dyn) => Some(Int),
            (_, _, _) if known_function(function) => None,
            _ => {
                return Err(self.error(
                    expr,
                    format!("undeclared reference to '{function}' (in container '')"),
                ))
            }
        };
        result.ok_or_else(|| self.no_overload(expr, function, target.as_ref(), &args))
    }
}

/// A diagnostic at byte `offset` of `source`.
pub(crate) fn diagnostic_at(source: &str, offset: usize, message: String) -> Diagnostic {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Diagnostic {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count(),
        message,
    }
}

/// The common type of two types: the type itself if equal, else `dyn`.
fn join(previous: Option<Ty>, next: Ty) -> Ty {
    match previous {
        None => next,
        Some(p) if p == next => p,
        Some(p) if p.is_dyn() => next,
        Some(_) => Ty::Dyn,
    }
}

fn known_function(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with('@')
        || name.starts_with('!')
        || name.starts_with('-')
        || matches!(
            name,
            "size"
                | "contains"
                | "startsWith"
                | "endsWith"
                | "matches"
                | "in_cidr"
                | "isSubtreeOf"
                | "int"
                | "uint"
                | "double"
                | "string"
                | "bytes"
                | "bool"
                | "dyn"
                | "type"
                | "timestamp"
                | "duration"
                | "getFullYear"
                | "getMonth"
                | "getDate"
                | "getDayOfMonth"
                | "getDayOfWeek"
                | "getDayOfYear"
                | "getHours"
                | "getMinutes"
                | "getSeconds"
                | "getMilliseconds"
        )
}
