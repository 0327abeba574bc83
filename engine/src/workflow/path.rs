//! JSONPath selections (via `jsonpath-rust`) and the condition language built on them.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

/// A parsed JSONPath expression such as `$.market_ids` or `$.items[?(@.active)].id`.
#[derive(Clone)]
pub(crate) struct JsonPath {
    text: Arc<str>,
    query: Arc<JpQuery>,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if !trimmed.starts_with('$') {
            return Err("a JSONPath starts with `$`".to_owned());
        }
        let query = parse_json_path(trimmed).map_err(|e| e.to_string())?;
        Ok(JsonPath {
            text: trimmed.into(),
            query: Arc::new(query),
        })
    }

    /// All values the path selects in `doc`, in document order.
    pub(crate) fn select<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        match js_path_process(&self.query, doc) {
            Ok(refs) => refs.into_iter().map(|r| r.val()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The single value the path selects: `null` when it selects nothing, an array of
    /// the matches when it selects several.
    pub(crate) fn select_one(&self, doc: &Value) -> Value {
        let mut found = self.select(doc);
        match found.len() {
            0 => Value::Null,
            1 => found.pop().cloned().unwrap_or(Value::Null),
            _ => Value::Array(found.into_iter().cloned().collect()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed predicate: `<jsonpath>` (true when it selects a truthy value) or
/// `<jsonpath> <op> <json literal>` with `op` one of `== != > >= < <=`. With several
/// selected values the predicate holds when any of them satisfies it.
#[derive(Clone, Debug)]
pub(crate) struct Predicate {
    path: JsonPath,
    cmp: Option<(Op, Value)>,
}

impl Predicate {
    pub(crate) fn parse(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err("the condition is empty".to_owned());
        }
        let Some((at, op, len)) = find_operator(expr) else {
            return Ok(Predicate {
                path: JsonPath::parse(expr)?,
                cmp: None,
            });
        };
        let path = JsonPath::parse(&expr[..at])?;
        let literal = expr[at + len..].trim();
        if literal.is_empty() {
            return Err(format!(
                "nothing to compare with after `{}`",
                &expr[at..at + len]
            ));
        }
        let value = parse_literal(literal)?;
        Ok(Predicate {
            path,
            cmp: Some((op, value)),
        })
    }

    pub(crate) fn eval(&self, doc: &Value) -> bool {
        let found = self.path.select(doc);
        match &self.cmp {
            None => found.into_iter().any(truthy),
            Some((op, lit)) => found.into_iter().any(|v| compare(v, *op, lit)),
        }
    }
}

fn parse_literal(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        return Ok(Value::String(text[1..text.len() - 1].to_owned()));
    }
    Err(format!(
        "`{text}` is not a JSON literal (quote strings: \"{text}\")"
    ))
}

/// Finds the first comparison operator outside brackets, parentheses and quotes.
fn find_operator(expr: &str) -> Option<(usize, Op, usize)> {
    let bytes = expr.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => quote = Some(c),
            b'[' | b'(' => depth += 1,
            b']' | b')' => depth -= 1,
            _ if depth == 0 => {
                let next = bytes.get(i + 1).copied();
                let found = match (c, next) {
                    (b'=', Some(b'=')) => Some((Op::Eq, 2)),
                    (b'!', Some(b'=')) => Some((Op::Ne, 2)),
                    (b'>', Some(b'=')) => Some((Op::Ge, 2)),
                    (b'<', Some(b'=')) => Some((Op::Le, 2)),
                    (b'>', _) => Some((Op::Gt, 1)),
                    (b'<', _) => Some((Op::Lt, 1)),
                    _ => None,
                };
                if let Some((op, len)) = found {
                    return Some((i, op, len));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn compare(v: &Value, op: Op, lit: &Value) -> bool {
    let eq = || match order(v, lit) {
        Some(o) => o == Ordering::Equal,
        None => v == lit,
    };
    match op {
        Op::Eq => eq(),
        Op::Ne => !eq(),
        Op::Gt => order(v, lit) == Some(Ordering::Greater),
        Op::Ge => matches!(order(v, lit), Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => order(v, lit) == Some(Ordering::Less),
        Op::Le => matches!(order(v, lit), Some(Ordering::Less | Ordering::Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(expr: &str, doc: &Value) -> bool {
        Predicate::parse(expr).unwrap().eval(doc)
    }

    #[test]
    fn comparisons() {
        let doc = json!({"count": 3, "name": "eu", "ok": true, "items": [1, 5], "f": 2.5});
        assert!(holds("$.count > 0", &doc));
        assert!(holds("$.count >= 3", &doc));
        assert!(!holds("$.count < 3", &doc));
        assert!(holds("$.count == 3.0", &doc));
        assert!(holds("$.name == \"eu\"", &doc));
        assert!(holds("$.name == 'eu'", &doc));
        assert!(holds("$.name != \"us\"", &doc));
        assert!(holds("$.ok == true", &doc));
        assert!(holds("$.items[*] > 4", &doc));
        assert!(!holds("$.items[*] > 5", &doc));
        assert!(holds("$.f <= 2.5", &doc));
        assert!(!holds("$.missing > 0", &doc));
        assert!(!holds("$.name > 1", &doc));
    }

    #[test]
    fn truthiness_and_filters() {
        let doc = json!({"a": [], "b": [0], "z": 0, "s": "", "o": {"x": 1},
                         "orders": [{"id": 1, "active": true}, {"id": 2}]});
        assert!(!holds("$.a", &doc));
        assert!(holds("$.b", &doc));
        assert!(!holds("$.z", &doc));
        assert!(!holds("$.s", &doc));
        assert!(holds("$.o", &doc));
        assert!(holds("$.orders[?(@.active == true)].id == 1", &doc));
        assert!(!holds("$.orders[?(@.id > 5)]", &doc));
    }

    #[test]
    fn parse_errors_are_explained() {
        assert!(Predicate::parse("").unwrap_err().contains("empty"));
        assert!(
            Predicate::parse("count > 0")
                .unwrap_err()
                .contains("starts with `$`")
        );
        assert!(
            Predicate::parse("$.count >")
                .unwrap_err()
                .contains("nothing to compare")
        );
        assert!(
            Predicate::parse("$.name == eu")
                .unwrap_err()
                .contains("quote strings")
        );
        assert!(JsonPath::parse("$.[").is_err());
    }

    #[test]
    fn select_one_shapes() {
        let p = JsonPath::parse("$.ids").unwrap();
        assert_eq!(p.select_one(&json!({"ids": [1, 2]})), json!([1, 2]));
        assert_eq!(p.select_one(&json!({})), Value::Null);
        let p = JsonPath::parse("$.xs[*].id").unwrap();
        assert_eq!(
            p.select_one(&json!({"xs": [{"id": 1}, {"id": 2}]})),
            json!([1, 2])
        );
    }
}
