//! Caveat parameter types (SpiceDB's `int`, `list<string>`, `ipaddress`, …) and the conversion of
//! JSON context values into typed CEL values.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::Value;
use serde_json::Value as Json;

use crate::ipaddress::IpAddress;

/// The type of one caveat parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterType {
    Any,
    Bool,
    Bytes,
    Double,
    Duration,
    Int,
    IpAddress,
    String,
    Timestamp,
    Uint,
    List(Box<ParameterType>),
    Map(Box<ParameterType>),
}

impl ParameterType {
    /// Parses a type as the schema writes it: `int`, `list<string>`, `map<list<int>>`.
    /// Returns `None` for an unknown name or a wrong number of type arguments.
    pub fn parse(text: &str) -> Option<ParameterType> {
        let text = text.trim();
        let (name, argument) = match text.split_once('<') {
            Some((name, rest)) => (name.trim(), Some(rest.strip_suffix('>')?)),
            None => (text, None),
        };
        let simple = match name {
            "any" => ParameterType::Any,
            "bool" => ParameterType::Bool,
            "bytes" => ParameterType::Bytes,
            "double" => ParameterType::Double,
            "duration" => ParameterType::Duration,
            "int" => ParameterType::Int,
            "ipaddress" => ParameterType::IpAddress,
            "string" => ParameterType::String,
            "timestamp" => ParameterType::Timestamp,
            "uint" => ParameterType::Uint,
            "list" => return Some(ParameterType::List(Box::new(Self::parse(argument?)?))),
            "map" => return Some(ParameterType::Map(Box::new(Self::parse(argument?)?))),
            _ => return None,
        };
        argument.is_none().then_some(simple)
    }

    /// Converts one context value to this type exactly as SpiceDB converts the values of a
    /// `google.protobuf.Struct` (numbers are doubles; numeric types also accept numeric strings;
    /// bytes are base64; durations use Go's syntax; timestamps are RFC 3339). The error's
    /// message is SpiceDB's, word for word.
    pub fn convert(&self, value: &Json) -> Result<Value, ConversionError> {
        self.convert_unlabelled(value)
            .map_err(|problem| ConversionError {
                parameter_type: self.to_string(),
                problem: Box::new(problem),
            })
    }

    /// [`ParameterType::convert`] without the type SpiceDB names before each message.
    fn convert_unlabelled(&self, value: &Json) -> Result<Value, Problem> {
        let found = || Found::of(value);
        match self {
            ParameterType::Any => Ok(any_value(value)),
            ParameterType::Bool => match value {
                Json::Bool(b) => Ok(Value::Bool(*b)),
                _ => Err(Problem::Required("bool", found())),
            },
            ParameterType::String => match value {
                Json::String(s) => Ok(Value::String(Arc::new(s.clone()))),
                _ => Err(Problem::Required("string", found())),
            },
            ParameterType::Int => {
                let number = numeric("int64", value)?;
                whole(number)
                    .map(|n| Value::Int(n as i64))
                    .ok_or_else(|| Problem::NotWhole("int", go_big_float(number)))
            }
            ParameterType::Uint => {
                let number = numeric("uint64", value)?;
                match whole(number) {
                    None => Err(Problem::NotWhole("uint", go_big_float(number))),
                    Some(n) if n < 0.0 => Err(Problem::Negative(go_big_float(number))),
                    // SpiceDB declares `uint` parameters as CEL ints.
                    Some(n) => Ok(Value::Int(n as i64)),
                }
            }
            ParameterType::Double => numeric("float64", value).map(Value::Float),
            ParameterType::Bytes => match value {
                Json::String(s) => base64_decode(s)
                    .map(|bytes| Value::Bytes(Arc::new(bytes)))
                    .map_err(Problem::Base64),
                _ => Err(Problem::BytesNotString(found())),
            },
            ParameterType::Duration => match value {
                Json::String(s) => parse_go_duration(s)
                    .map(Value::Duration)
                    .ok_or_else(|| Problem::Duration(s.clone())),
                _ => Err(Problem::DurationNotString(go_type(value))),
            },
            ParameterType::Timestamp => match value {
                Json::String(s) => check_go_rfc3339(s)
                    .and_then(|()| {
                        chrono::DateTime::parse_from_rfc3339(s).map_err(|source| {
                            TimeError::Chrono {
                                text: s.clone(),
                                source,
                            }
                        })
                    })
                    .map(Value::Timestamp)
                    .map_err(|e| Problem::Timestamp(s.clone(), e)),
                _ => Err(Problem::TimestampNotString(found())),
            },
            ParameterType::IpAddress => match value {
                Json::String(s) => IpAddress::parse(s)
                    .map(|ip| Value::Opaque(Arc::new(ip)))
                    .ok_or_else(|| Problem::IpAddress(s.clone())),
                _ => Err(Problem::IpAddressNotString(found())),
            },
            ParameterType::List(element) => match value {
                Json::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        element
                            .convert(item)
                            .map_err(|e| Problem::ListItem(index, e))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|items| Value::List(Arc::new(items))),
                _ => Err(Problem::ListNotList(go_type(value))),
            },
            ParameterType::Map(element) => match value {
                Json::Object(entries) => {
                    let mut map = HashMap::with_capacity(entries.len());
                    for (key, item) in entries {
                        let converted = element
                            .convert(item)
                            .map_err(|e| Problem::MapValue(key.clone(), e))?;
                        map.insert(Key::String(Arc::new(key.clone())), converted);
                    }
                    Ok(Value::Map(Map { map: Arc::new(map) }))
                }
                _ => Err(Problem::MapNotMap(go_type(value))),
            },
        }
    }
}

/// A context value that does not convert to its parameter's type: SpiceDB's message, word for
/// word (`for <type>: <problem>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("for {parameter_type}: {problem}")]
pub struct ConversionError {
    /// The type as the schema writes it.
    pub parameter_type: String,
    pub problem: Box<Problem>,
}

/// A JSON value as Go prints it in SpiceDB's messages: `%T` and `%v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub go_type: &'static str,
    pub go_value: String,
}

impl Found {
    fn of(value: &Json) -> Found {
        Found {
            go_type: go_type(value),
            go_value: go_value(value),
        }
    }
}

/// What is wrong with a context value, for its type (SpiceDB's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A value of the wrong JSON kind; the Go type name wanted.
    #[error("a {0} value is required, but found {go_type} `{go_value}`", go_type = .1.go_type, go_value = .1.go_value)]
    Required(&'static str, Found),
    /// A string that holds no number; the Go type name wanted.
    #[error("a {0} value is required, but found invalid string value `{1}`")]
    InvalidNumericString(&'static str, String),
    /// A number that is not whole, for `int` or `uint`.
    #[error("a {0} value is required, but found numeric value `{1}`")]
    NotWhole(&'static str, String),
    #[error("a uint value is required, but found int64 value `{0}`")]
    Negative(String),
    /// Base64 that does not decode: the offset of the first bad byte.
    #[error("bytes requires a base64 encoded string: illegal base64 data at input byte {0}")]
    Base64(usize),
    #[error("bytes requires a base64 unicode string, found: {} `{}`", .0.go_type, .0.go_value)]
    BytesNotString(Found),
    #[error("could not parse duration string `{0}`: time: invalid duration \"{0}\"")]
    Duration(String),
    #[error("durations requires a duration string, found: {0}")]
    DurationNotString(&'static str),
    #[error("could not parse RFC 3339 formatted timestamp string `{0}`: {1}")]
    Timestamp(String, TimeError),
    #[error("timestamps requires a RFC 3339 formatted timestamp string, found: {} `{}`", .0.go_type, .0.go_value)]
    TimestampNotString(Found),
    #[error("could not parse ip address string `{0}`: ParseAddr(\"{0}\"): unable to parse IP")]
    IpAddress(String),
    #[error("ipaddress requires an ipaddress string, found: {} `{}`", .0.go_type, .0.go_value)]
    IpAddressNotString(Found),
    #[error("found an invalid value for item at index {0}: {1}")]
    ListItem(usize, ConversionError),
    #[error("list requires a list, found: {0}")]
    ListNotList(&'static str),
    #[error("found an invalid value for key `{0}`: {1}")]
    MapValue(String, ConversionError),
    #[error("map requires a map, found: {0}")]
    MapNotMap(&'static str),
}

/// Why a timestamp string is not RFC 3339, as Go's `time.Parse` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "parsing time \"{text}\" as \"{RFC3339_LAYOUT}\": cannot parse \"{rest}\" as \"{element}\""
    )]
    CannotParse {
        text: String,
        rest: String,
        element: &'static str,
    },
    #[error("parsing time \"{text}\": {what} out of range")]
    OutOfRange { text: String, what: &'static str },
    #[error("parsing time \"{text}\": extra text: \"{rest}\"")]
    ExtraText { text: String, rest: String },
    #[error("parsing time \"{text}\": {source}")]
    Chrono {
        text: String,
        source: chrono::ParseError,
    },
}

/// Go's `time.RFC3339` layout, which its messages name.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// A number, or a string holding one, as SpiceDB's numeric conversion accepts them.
fn numeric(go_name: &'static str, value: &Json) -> Result<f64, Problem> {
    match value {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| Problem::Required(go_name, Found::of(value))),
        Json::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| Problem::InvalidNumericString(go_name, s.clone())),
        _ => Err(Problem::Required(go_name, Found::of(value))),
    }
}

/// `x` if it is a whole number that fits an i64.
fn whole(x: f64) -> Option<f64> {
    (x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64).then_some(x)
}

/// The Go type name `%T` prints for a value decoded from a `google.protobuf.Struct`.
fn go_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "<nil>",
        Json::Bool(_) => "bool",
        Json::Number(_) => "float64",
        Json::String(_) => "string",
        Json::Array(_) => "[]interface {}",
        Json::Object(_) => "map[string]interface {}",
    }
}

/// The text Go's `%v` prints for such a value.
fn go_value(value: &Json) -> String {
    match value {
        Json::Null => "<nil>".to_string(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => go_float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => s.clone(),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(go_value).collect::<Vec<_>>().join(" ")
        ),
        Json::Object(entries) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&entries[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` of a float64 (`%g` with the shortest representation; exponent from 1e21).
fn go_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e21 {
        format!("{x:.0}")
    } else if x.abs() >= 1e21 || (x != 0.0 && x.abs() < 1e-4) {
        let text = format!("{x:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let exponent: i32 = exponent.parse().unwrap_or(0);
                format!(
                    "{mantissa}e{}{:02}",
                    if exponent < 0 { '-' } else { '+' },
                    exponent.abs()
                )
            }
            None => text,
        }
    } else {
        format!("{x}")
    }
}

/// `big.Float.String()`: `%.10g`.
fn go_big_float(x: f64) -> String {
    let rounded: f64 = format!("{x:.9e}").parse().unwrap_or(x);
    go_float(rounded)
}

/// Standard base64 with padding, as Go's `base64.StdEncoding` decodes it; the error is the
/// offset Go reports (the first byte that cannot be decoded).
fn base64_decode(text: &str) -> Result<Vec<u8>, usize> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let start = index * 4;
        let mut bits: u32 = 0;
        let mut sextets = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'=' {
                // Padding ends the input: only in the last quantum, after at least two sextets,
                // and filling it.
                let padding_ok = sextets >= 2
                    && start + 4 == bytes.len()
                    && chunk[i..].iter().all(|&p| p == b'=');
                if !padding_ok {
                    return Err(start + i);
                }
                break;
            }
            let sextet = ALPHABET.iter().position(|&a| a == b).ok_or(start + i)? as u32;
            bits = bits << 6 | sextet;
            sextets += 1;
        }
        if chunk.len() < 4 && sextets == chunk.len() {
            // A final quantum without padding.
            return Err(bytes.len());
        }
        bits <<= 6 * (4 - sextets) as u32;
        let decoded = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&decoded[..sextets.saturating_sub(1)]);
    }
    Ok(out)
}

/// Checks `text` the way Go's `time.Parse(time.RFC3339, text)` reads it, with Go's message for
/// the first problem: `parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as
/// "2006"`, or `parsing time "…": month out of range`.
fn check_go_rfc3339(text: &str) -> Result<(), TimeError> {
    let cannot = |rest: &str, element: &'static str| TimeError::CannotParse {
        text: text.to_string(),
        rest: rest.to_string(),
        element,
    };
    let out_of_range = |what: &'static str| TimeError::OutOfRange {
        text: text.to_string(),
        what,
    };
    let mut rest = text;
    let number =
        |rest: &mut &str, digits: usize, element: &'static str| -> Result<u32, TimeError> {
            let taken = rest
                .get(..digits)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            let value = taken.ok_or_else(|| cannot(rest, element))?;
            *rest = &rest[digits..];
            value.parse().map_err(|_| cannot(rest, element))
        };
    let literal = |rest: &mut &str, lit: &'static str| -> Result<(), TimeError> {
        *rest = rest.strip_prefix(lit).ok_or_else(|| cannot(rest, lit))?;
        Ok(())
    };
    let year = number(&mut rest, 4, "2006")?;
    literal(&mut rest, "-")?;
    let month = number(&mut rest, 2, "01")?;
    literal(&mut rest, "-")?;
    let day = number(&mut rest, 2, "02")?;
    literal(&mut rest, "T")?;
    let hour = number(&mut rest, 2, "15")?;
    literal(&mut rest, ":")?;
    let minute = number(&mut rest, 2, "04")?;
    literal(&mut rest, ":")?;
    let second = number(&mut rest, 2, "05")?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    if let Some(after) = rest.strip_prefix('Z') {
        rest = after;
    } else {
        let sign_ok = rest.starts_with('+') || rest.starts_with('-');
        let zone = rest.get(..6).filter(|z| {
            sign_ok
                && z.as_bytes()[3] == b':'
                && z.bytes()
                    .enumerate()
                    .all(|(i, b)| i == 0 || i == 3 || b.is_ascii_digit())
        });
        if zone.is_none() {
            return Err(cannot(rest, "Z07:00"));
        }
        rest = &rest[6..];
    }
    if !rest.is_empty() {
        return Err(TimeError::ExtraText {
            text: text.to_string(),
            rest: rest.to_string(),
        });
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month) {
        return Err(out_of_range("month"));
    }
    if !(1..=days_in_month).contains(&day) {
        return Err(out_of_range("day"));
    }
    if hour > 23 {
        return Err(out_of_range("hour"));
    }
    if minute > 59 {
        return Err(out_of_range("minute"));
    }
    if second > 59 {
        return Err(out_of_range("second"));
    }
    Ok(())
}

/// A JSON value as CEL sees an untyped (`any`) parameter: numbers are doubles, as in a
/// `google.protobuf.Struct`.
fn any_value(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(any_value).collect())),
        Json::Object(entries) => Value::Map(Map {
            map: Arc::new(
                entries
                    .iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), any_value(v)))
                    .collect(),
            ),
        }),
    }
}

/// Parses Go's `time.ParseDuration` syntax: an optional sign, then one or more decimal numbers
/// each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`, `1.5s`, `-300ms`.
pub(crate) fn parse_go_duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let number: f64 = number.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total_nanos += number * nanos_per_unit;
    }
    if total_nanos > i64::MAX as f64 {
        return None;
    }
    let nanos = total_nanos.round() as i64;
    Some(chrono::Duration::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

/// SpiceDB's spelling of the type: `int`, `list<string>`, `map<any>`.
impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ParameterType::Any => "any",
            ParameterType::Bool => "bool",
            ParameterType::Bytes => "bytes",
            ParameterType::Double => "double",
            ParameterType::Duration => "duration",
            ParameterType::Int => "int",
            ParameterType::IpAddress => "ipaddress",
            ParameterType::String => "string",
            ParameterType::Timestamp => "timestamp",
            ParameterType::Uint => "uint",
            ParameterType::List(element) => return write!(f, "list<{element}>"),
            ParameterType::Map(element) => return write!(f, "map<{element}>"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_prints_types() {
        for text in ["int", "list<string>", "map<list<ipaddress>>", "any"] {
            assert_eq!(ParameterType::parse(text).unwrap().to_string(), text);
        }
        for bad in ["integer", "list", "int<int>", "map<>", "list<int"] {
            assert_eq!(ParameterType::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).map(|d| d.num_milliseconds());
        assert_eq!(d("1h30m"), Some(5_400_000));
        assert_eq!(d("1.5s"), Some(1500));
        assert_eq!(d("-300ms"), Some(-300));
        assert_eq!(d("0"), Some(0));
        for bad in ["", "1", "h", "1x", "1.s.", "--1s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn converts_context_values() {
        let int = |v: Json| ParameterType::Int.convert(&v).map_err(|e| e.to_string());
        assert_eq!(int(json!(42)), Ok(Value::Int(42)));
        assert_eq!(int(json!(42.0)), Ok(Value::Int(42)));
        assert_eq!(int(json!("42")), Ok(Value::Int(42)));
        assert_eq!(
            int(json!(4.5)),
            Err("for int: a int value is required, but found numeric value `4.5`".to_string())
        );
        assert_eq!(
            int(json!(true)),
            Err("for int: a int64 value is required, but found bool `true`".to_string())
        );
        assert_eq!(
            int(json!("x")),
            Err(
                "for int: a int64 value is required, but found invalid string value `x`"
                    .to_string()
            )
        );
        assert!(ParameterType::Uint.convert(&json!(-1)).is_err());
        assert_eq!(
            ParameterType::String
                .convert(&json!([1, 2.5]))
                .map_err(|e| e.to_string()),
            Err(
                "for string: a string value is required, but found []interface {} `[1 2.5]`"
                    .to_string()
            )
        );
        assert_eq!(
            ParameterType::Bytes.convert(&json!("aGk=")),
            Ok(Value::Bytes(Arc::new(b"hi".to_vec())))
        );
        assert_eq!(
            ParameterType::Bytes.convert(&json!("aGVsbG8=")),
            Ok(Value::Bytes(Arc::new(b"hello".to_vec())))
        );
        assert_eq!(
            ParameterType::Bytes.convert(&json!("***")).map_err(|e| e.to_string()),
            Err("for bytes: bytes requires a base64 encoded string: illegal base64 data at input byte 0".to_string())
        );
        assert_eq!(
            ParameterType::Timestamp.convert(&json!("yesterday")).map_err(|e| e.to_string()),
            Err(r#"for timestamp: could not parse RFC 3339 formatted timestamp string `yesterday`: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006""#.to_string())
        );
        assert_eq!(
            ParameterType::Timestamp.convert(&json!("2024-13-01T00:00:00Z")).map_err(|e| e.to_string()),
            Err(r#"for timestamp: could not parse RFC 3339 formatted timestamp string `2024-13-01T00:00:00Z`: parsing time "2024-13-01T00:00:00Z": month out of range"#.to_string())
        );
        assert!(ParameterType::Timestamp
            .convert(&json!("2024-10-03T07:16:28.068632-07:00"))
            .is_ok());
        let list = ParameterType::parse("list<int>").unwrap();
        assert_eq!(
            list.convert(&json!([1, 2])).unwrap(),
            Value::List(Arc::new(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(
            list.convert(&json!([1, true])).map_err(|e| e.to_string()),
            Err("for list<int>: found an invalid value for item at index 1: for int: a int64 value is required, but found bool `true`".to_string())
        );
    }
}
