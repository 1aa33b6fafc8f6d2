//! One compiled caveat and its evaluation, with SpiceDB's treatment of missing context.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{operators, Expr, IdedExpr};
use cel::{Context, Env, Program, Value};
use serde_json::{Map, Value as Json};

use crate::error::{CompileError, ContextError, Diagnostic, EvaluationError};
use crate::ipaddress;
use crate::typecheck;
use crate::types::ParameterType;

/// The outcome of evaluating a caveat (or a combination of caveats) with a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// The answer depends on parameters the context does not give: their names, sorted.
    Partial(BTreeSet<String>),
}

impl Truth {
    /// Kleene conjunction; a partial result names the missing parameters of every partial operand.
    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, other) | (other, Truth::True) => other,
            (Truth::Partial(mut a), Truth::Partial(b)) => {
                a.extend(b);
                Truth::Partial(a)
            }
        }
    }

    /// Kleene disjunction.
    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, other) | (other, Truth::False) => other,
            (Truth::Partial(mut a), Truth::Partial(b)) => {
                a.extend(b);
                Truth::Partial(a)
            }
        }
    }

    fn from_bool(value: bool) -> Truth {
        if value {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// Kleene negation: a partial result stays partial.
impl std::ops::Not for Truth {
    type Output = Truth;

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            partial => partial,
        }
    }
}

/// `caveat name(parameters) { expression }`, parsed and type-checked.
#[derive(Debug)]
pub struct Caveat {
    name: String,
    parameters: BTreeMap<String, ParameterType>,
    program: Program,
}

impl Caveat {
    /// Parses and type-checks `expression` over `parameters` (name, type as written). The
    /// expression must be a boolean.
    pub fn compile(
        name: &str,
        parameters: &[(String, String)],
        expression: &str,
    ) -> Result<Caveat, CompileError> {
        let mut typed = BTreeMap::new();
        for (parameter, text) in parameters {
            let ty = ParameterType::parse(text).ok_or_else(|| CompileError::UnknownType {
                parameter: parameter.clone(),
                ty: text.clone(),
            })?;
            typed.insert(parameter.clone(), ty);
        }
        let program = environment().compile(expression).map_err(|errors| {
            CompileError::Expression(
                errors
                    .errors
                    .iter()
                    .map(|e| Diagnostic {
                        line: e.pos.0.max(1) as usize,
                        // cel-rust positions count columns from 1.
                        column: (e.pos.1 - 1).max(0) as usize,
                        message: e.msg.clone(),
                    })
                    .collect(),
            )
        })?;
        typecheck::check_boolean(&program, expression, &typed)?;
        Ok(Caveat {
            name: name.to_string(),
            parameters: typed,
            program,
        })
    }

    /// Converts every value of `context` whose key is a parameter to that parameter's type
    /// (other keys are ignored, as SpiceDB ignores them).
    fn typed_context(
        &self,
        context: &Map<String, Json>,
    ) -> Result<BTreeMap<String, Value>, EvaluationError> {
        let mut typed = BTreeMap::new();
        for (key, value) in context {
            if let Some(ty) = self.parameters.get(key) {
                let converted =
                    ty.convert(value)
                        .map_err(|source| EvaluationError::ContextType {
                            caveat: self.name.clone(),
                            parameter: key.clone(),
                            source,
                        })?;
                typed.insert(key.clone(), converted);
            }
        }
        Ok(typed)
    }

    /// Checks a context written on a relationship as SpiceDB does at write time: every key must
    /// be a parameter, and every value must convert to its parameter's type. The message is
    /// SpiceDB's (it answers these with the UNKNOWN status).
    pub fn check_written_context(&self, context: &Map<String, Json>) -> Result<(), ContextError> {
        for (key, value) in context {
            let ty = self
                .parameters
                .get(key)
                .ok_or_else(|| ContextError::UnknownParameter(key.clone()))?;
            ty.convert(value)
                .map_err(|source| ContextError::Conversion {
                    parameter: key.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Evaluates the caveat with the context written on a relationship merged over the context of
    /// the request (the written value of a parameter wins). Parameters neither gives are unknown:
    /// the result is then [`Truth::Partial`] unless the expression's value does not depend on them
    /// (`true || missing` is true).
    pub fn evaluate(
        &self,
        written: &Map<String, Json>,
        request: &Map<String, Json>,
    ) -> Result<Truth, EvaluationError> {
        let mut values = self.typed_context(request)?;
        values.extend(self.typed_context(written)?);
        let missing: BTreeSet<&str> = self
            .parameters
            .keys()
            .map(String::as_str)
            .filter(|p| !values.contains_key(*p))
            .collect();
        let mut context = Context::with_env(environment());
        context
            .add_function("in_cidr", ipaddress::in_cidr)
            .map_err(|e| EvaluationError::Runtime {
                caveat: self.name.clone(),
                message: e.to_string(),
            })?;
        for (name, value) in values {
            context.add_variable_from_value(name, value);
        }
        match partially_evaluate(self.program.expression(), &context, &missing) {
            Partial::Known(Value::Bool(b)) => Ok(Truth::from_bool(b)),
            Partial::Known(other) => Err(EvaluationError::NotBoolean {
                caveat: self.name.clone(),
                found: format!("{other:?}"),
            }),
            Partial::Unknown(names) => Ok(Truth::Partial(names)),
            Partial::Failed(message) => Err(EvaluationError::Runtime {
                caveat: self.name.clone(),
                message,
            }),
        }
    }
}

/// The CEL environment every caveat is compiled and run in: the standard library (each
/// evaluation's context adds SpiceDB's `ipaddress.in_cidr`).
fn environment() -> Arc<Env> {
    static ENVIRONMENT: OnceLock<Arc<Env>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// A sub-expression's value when some variables are unknown.
enum Partial {
    Known(Value),
    /// Depends on these unknown parameters.
    Unknown(BTreeSet<String>),
    Failed(String),
}

/// Evaluates `expr`, treating the `missing` parameters as unknown. Logical operators absorb
/// unknowns as CEL's partial evaluation does (`false && unknown` is false, `true || unknown` is
/// true, and two unknown operands merge); any other expression that reads a missing parameter
/// is unknown in the first one it reads, as cel-go reports it. Everything else is evaluated by
/// the CEL library.
fn partially_evaluate(expr: &IdedExpr, context: &Context, missing: &BTreeSet<&str>) -> Partial {
    if let Expr::Call(call) = &expr.expr {
        if call.target.is_none() {
            match (call.func_name.as_str(), call.args.as_slice()) {
                (operators::LOGICAL_AND, [left, right]) => {
                    return logical(left, right, false, context, missing)
                }
                (operators::LOGICAL_OR, [left, right]) => {
                    return logical(left, right, true, context, missing)
                }
                (operators::LOGICAL_NOT, [operand]) => {
                    return match partially_evaluate(operand, context, missing) {
                        Partial::Known(Value::Bool(b)) => Partial::Known(Value::Bool(!b)),
                        Partial::Known(_) => Partial::Failed("no such overload".to_string()),
                        other => other,
                    };
                }
                (operators::CONDITIONAL, [condition, then, otherwise]) => {
                    return match partially_evaluate(condition, context, missing) {
                        Partial::Known(Value::Bool(true)) => {
                            partially_evaluate(then, context, missing)
                        }
                        Partial::Known(Value::Bool(false)) => {
                            partially_evaluate(otherwise, context, missing)
                        }
                        Partial::Known(_) => Partial::Failed("no such overload".to_string()),
                        other => other,
                    };
                }
                _ => {}
            }
        }
    }
    // As in cel-go, an operation over unknown operands is unknown in its first unknown operand.
    if let Some(name) = typecheck::first_free_variable(expr, &|name| missing.contains(name)) {
        return Partial::Unknown(BTreeSet::from([name]));
    }
    match Value::resolve(expr, context) {
        Ok(value) => Partial::Known(value),
        Err(e) => Partial::Failed(e.to_string()),
    }
}

/// `left && right` (`absorbing == false`) or `left || right` (`absorbing == true`): the absorbing
/// value on either side decides; otherwise unknowns win over errors, as in CEL.
fn logical(
    left: &IdedExpr,
    right: &IdedExpr,
    absorbing: bool,
    context: &Context,
    missing: &BTreeSet<&str>,
) -> Partial {
    let left = partially_evaluate(left, context, missing);
    if matches!(left, Partial::Known(Value::Bool(b)) if b == absorbing) {
        return left;
    }
    let right = partially_evaluate(right, context, missing);
    match (left, right) {
        (_, right @ Partial::Known(Value::Bool(b))) if b == absorbing => right,
        (Partial::Known(Value::Bool(_)), Partial::Known(Value::Bool(b))) => {
            Partial::Known(Value::Bool(b))
        }
        (Partial::Unknown(mut a), Partial::Unknown(b)) => {
            a.extend(b);
            Partial::Unknown(a)
        }
        (unknown @ Partial::Unknown(_), _) | (_, unknown @ Partial::Unknown(_)) => unknown,
        (failed @ Partial::Failed(_), _) | (_, failed @ Partial::Failed(_)) => failed,
        _ => Partial::Failed("no such overload".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caveat(parameters: &[(&str, &str)], expression: &str) -> Caveat {
        let parameters: Vec<(String, String)> = parameters
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        Caveat::compile("test", &parameters, expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    fn context(value: Json) -> Map<String, Json> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn evaluate(caveat: &Caveat, written: Json, request: Json) -> Truth {
        caveat
            .evaluate(&context(written), &context(request))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn partial(names: &[&str]) -> Truth {
        Truth::Partial(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn written_context_wins_and_missing_parameters_are_reported() {
        let c = caveat(&[("somecondition", "int")], "somecondition == 42");
        assert_eq!(
            evaluate(
                &c,
                json!({"somecondition": 42}),
                json!({"somecondition": 41})
            ),
            Truth::True
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({"somecondition": 41})),
            Truth::False
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({})),
            partial(&["somecondition"])
        );
    }

    #[test]
    fn logical_operators_absorb_unknowns() {
        let c = caveat(&[("a", "int"), ("b", "int")], "a == 1 || b == 2");
        assert_eq!(evaluate(&c, json!({"a": 1}), json!({})), Truth::True);
        assert_eq!(evaluate(&c, json!({"a": 2}), json!({})), partial(&["b"]));
        assert_eq!(evaluate(&c, json!({}), json!({})), partial(&["a", "b"]));
        let c = caveat(
            &[("level", "int"), ("required", "int")],
            "level >= required",
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({})),
            partial(&["level"]),
            "the first unknown operand"
        );
        assert_eq!(
            evaluate(&c, json!({"level": 1}), json!({})),
            partial(&["required"])
        );
        let c = caveat(&[("a", "int"), ("b", "int")], "a == 1 && b == 2");
        assert_eq!(evaluate(&c, json!({"b": 3}), json!({})), Truth::False);
        assert_eq!(evaluate(&c, json!({"b": 2}), json!({})), partial(&["a"]));
        let c = caveat(&[("a", "bool")], "!a");
        assert_eq!(evaluate(&c, json!({}), json!({})), partial(&["a"]));
        assert_eq!(evaluate(&c, json!({"a": false}), json!({})), Truth::True);
    }

    #[test]
    fn spicedb_types_and_functions() {
        let c = caveat(
            &[("user_ip", "ipaddress"), ("cidr", "string")],
            "user_ip.in_cidr(cidr)",
        );
        assert_eq!(
            evaluate(
                &c,
                json!({"cidr": "10.0.0.0/8"}),
                json!({"user_ip": "10.1.1.1"})
            ),
            Truth::True
        );
        assert_eq!(
            evaluate(
                &c,
                json!({"cidr": "10.0.0.0/8"}),
                json!({"user_ip": "11.1.1.1"})
            ),
            Truth::False
        );
        let c = caveat(&[("somelist", "list<int>")], "somelist.all(i, i >= 42)");
        assert_eq!(
            evaluate(&c, json!({}), json!({"somelist": []})),
            Truth::True
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({"somelist": [42, 41]})),
            Truth::False
        );
        let c = caveat(
            &[("somemap", "map<any>")],
            "somemap.foo == 42 && somemap.bar < 56",
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({"somemap": {"foo": 42, "bar": -2}})),
            Truth::True
        );
        assert_eq!(
            evaluate(&c, json!({}), json!({"somemap": {"foo": 41}})),
            Truth::False
        );
        let c = caveat(
            &[("now", "timestamp"), ("expires_at", "timestamp")],
            "now < expires_at",
        );
        assert_eq!(
            evaluate(
                &c,
                json!({"expires_at": "2024-10-03T07:16:28.068632-07:00"}),
                json!({"now": "2024-10-03T14:00:00Z"})
            ),
            Truth::True
        );
        let c = caveat(
            &[("me", "string"), ("admin_teams", "list<string>")],
            "me in admin_teams",
        );
        assert_eq!(
            evaluate(&c, json!({"admin_teams": ["a", "b"]}), json!({"me": "b"})),
            Truth::True
        );
        let c = caveat(&[("count", "uint"), ("limit", "uint")], "count < limit");
        assert_eq!(
            evaluate(&c, json!({"limit": 3}), json!({"count": 2})),
            Truth::True
        );
    }

    #[test]
    fn type_errors_are_found_at_compile_time() {
        let error = |params: &[(&str, &str)], expression: &str| {
            let parameters: Vec<(String, String)> = params
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect();
            Caveat::compile("test", &parameters, expression)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[("a", "int")], "a == 'x'"),
            "ERROR: <input>:1:3: found no matching overload for '_==_' applied to '(int, string)'"
        );
        assert_eq!(
            error(&[("a", "int")], "a == b"),
            "ERROR: <input>:1:6: undeclared reference to 'b' (in container '')"
        );
        assert_eq!(
            error(&[("a", "int")], "a + 1"),
            "caveat expression must result in a boolean value: found `int`"
        );
        let syntax = error(&[("a", "int")], "a ==");
        assert!(
            syntax.starts_with("ERROR: <input>:1:5: Syntax error: "),
            "{syntax}"
        );
    }

    #[test]
    fn wrong_context_types_are_errors() {
        let c = caveat(&[("a", "int")], "a == 1");
        let e = c
            .evaluate(&Map::new(), &context(json!({"a": "x"})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "type error for parameters for caveat `test`: could not convert context parameter `a`: for int: a int64 value is required, but found invalid string value `x`"
        );
    }
}
