//! JSON values written as YAML for people and `kubectl` (`k8s render`, `k8s manifests`):
//! block mappings and sequences, every string double-quoted with JSON's escapes (a
//! subset of YAML's), so no value can change type or break the document.

use serde_json::Value;

/// `value` as a YAML document (without the `---` line), ending with a newline.
pub(super) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// A key as written: plain when it cannot be read as anything but a string.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { k.to_owned() } else { quote(k) }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A scalar, or an empty collection, on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

fn mapping(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a mapping inside a sequence item follows its `- `.
        if i > 0 || out.is_empty() || out.ends_with('\n') {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&key(k));
        out.push(':');
        value(out, v, indent);
    }
}

fn sequence(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                mapping(out, m, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(out, inner, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// What follows a key's colon.
fn value(out: &mut String, v: &Value, indent: usize) {
    if !is_block(v) {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
        return;
    }
    out.push('\n');
    match v {
        Value::Object(m) => mapping(out, m, indent + 2),
        Value::Array(a) => sequence(out, a, indent + 2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_are_written_in_block_style_with_quoted_strings() {
        let v = json!({
            "apiVersion": "batch/v1",
            "metadata": {"labels": {"dagforge.io/run": "x", "on": "1"}, "empty": {}},
            "list": [{"name": "a", "value": "yes"}, [1, 2], "line\nbreak", null, []],
            "n": 3,
        });
        let want = "\
apiVersion: \"batch/v1\"
list:
  - name: \"a\"
    value: \"yes\"
  -
    - 1
    - 2
  - \"line\\nbreak\"
  - null
  - []
metadata:
  empty: {}
  labels:
    dagforge.io/run: \"x\"
    \"on\": \"1\"
\"n\": 3
";
        assert_eq!(to_string(&v), want);
        assert_eq!(to_string(&json!("s")), "\"s\"\n");
    }
}
