//! Bounds on the JSON values that enter a run: run inputs and job outputs.
//!
//! Serializing, cloning, printing and dropping a [`serde_json::Value`] recurse once per
//! level of nesting, so a value nested 100,000 levels deep overflows the thread's stack
//! and aborts the process; serde_json's parser refuses more than 127 levels, so such a
//! value, once stored, could not even be read back. Every value entering a run is
//! therefore measured here, without recursion, and refused beyond [`MAX_DEPTH`] levels:
//! what is accepted can be encoded, stored, decoded and printed.
//!
//! Depth counts nested arrays and objects: a scalar is 0 deep, `[]` and `{}` are 1,
//! `[{"a": 1}]` is 2 — the measure serde_json's parser limits.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::ser::{self, Serialize, Serializer};
use serde_json::Value;

/// The deepest nesting of arrays and objects a run input or a job output may have.
///
/// Well below the 127 levels serde_json's parser accepts, so that a value stays
/// readable when it is wrapped (in an event, in the worker protocol, in a node's
/// assembled input).
pub const MAX_DEPTH: usize = 64;

/// A value nested deeper than the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TooDeep {
    /// How deep the value is; with `at_least`, the depth at which measuring stopped.
    pub depth: usize,
    /// Whether measuring stopped at `depth` (the value may be deeper still).
    pub at_least: bool,
    /// The limit.
    pub limit: usize,
    /// The key of the top-level object under which the value is too deep, if it is an
    /// object.
    pub field: Option<String>,
}

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.at_least { "at least " } else { "" };
        write!(
            f,
            "nested {more}{} levels deep, more than the limit of {} levels",
            self.depth, self.limit
        )
    }
}

impl std::error::Error for TooDeep {}

/// The nesting depth of `v` (see the module docs), measured without recursion.
pub fn depth(v: &Value) -> usize {
    walk(v, usize::MAX)
}

/// The depth of `v`, or the first depth past `stop` found (then `v` is deeper than
/// `stop`, and the walk ends there).
fn walk(v: &Value, stop: usize) -> usize {
    fn is_container(v: &Value) -> bool {
        matches!(v, Value::Array(_) | Value::Object(_))
    }
    let mut deepest = 0;
    // Containers still to visit, with the depth of the level they are in.
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, above)) = stack.pop() {
        let level = above + 1;
        match v {
            Value::Array(a) => {
                stack.extend(a.iter().filter(|c| is_container(c)).map(|c| (c, level)));
            }
            Value::Object(m) => {
                stack.extend(m.values().filter(|c| is_container(c)).map(|c| (c, level)));
            }
            _ => continue,
        }
        if level > deepest {
            deepest = level;
            if deepest > stop {
                return deepest;
            }
        }
    }
    deepest
}

/// `Err` if `v` is nested deeper than `limit` levels. Stops measuring past the limit;
/// only a value refused is measured in full, for the message.
pub fn check(v: &Value, limit: usize) -> Result<(), TooDeep> {
    if walk(v, limit) <= limit {
        return Ok(());
    }
    let d = depth(v);
    let field = match v {
        Value::Object(m) => m
            .iter()
            .find(|(_, c)| depth(c) + 1 == d)
            .map(|(k, _)| k.clone()),
        _ => None,
    };
    Err(TooDeep {
        depth: d,
        at_least: false,
        limit,
        field,
    })
}

/// Drops `v` without recursion: dropping a deep value the ordinary way recurses once
/// per level and can overflow the stack.
pub fn dispose(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, c)| c)),
            _ => {}
        }
    }
}

/// Checks `v` against `limit`; a value that is too deep is disposed of (without
/// recursion) and the error returned.
pub fn admit(v: Value, limit: usize) -> Result<Value, TooDeep> {
    match check(&v, limit) {
        Ok(()) => Ok(v),
        Err(e) => {
            dispose(v);
            Err(e)
        }
    }
}

/// Whether `v`, encoded as JSON, is longer than `limit` bytes. Encodes into a counter
/// that stops at the limit; measure the depth first ([`check`]), as encoding recurses.
pub fn encoded_len_exceeds(v: &Value, limit: usize) -> bool {
    struct Counter {
        n: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.n += b.len();
            if self.n > self.limit {
                Err(std::io::Error::other("over the limit"))
            } else {
                Ok(b.len())
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    if v.is_null() {
        return limit < 4;
    }
    serde_json::to_writer(&mut Counter { n: 0, limit }, v).is_err()
}

/// Default for the largest run inputs, as JSON: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;

/// A run's inputs as JSON, refused before anything recursive touches them when a
/// parameter's value nests deeper than [`MAX_DEPTH`] or the whole is longer than
/// `max_bytes`. The error names the parameter (`*` when it cannot be told).
pub(crate) fn run_inputs<T: Serialize + ?Sized>(
    inputs: &T,
    max_bytes: usize,
) -> Result<Value, crate::Error> {
    // The inputs are an object of parameter values: one level more than a value.
    let v = to_value(inputs, MAX_DEPTH + 1).map_err(|e| match e {
        EncodeError::TooDeep(e) => crate::Error::Input {
            name: e.field.unwrap_or_else(|| "*".to_owned()),
            reason: format!("nested more than the limit of {MAX_DEPTH} levels"),
        },
        EncodeError::Json(e) => crate::Error::Input {
            name: "*".to_owned(),
            reason: format!("inputs cannot be encoded as JSON: {e}"),
        },
    })?;
    check_run_inputs(&v, max_bytes)?;
    Ok(v)
}

/// [`run_inputs`] for inputs that are JSON already (those of a recorded run).
pub(crate) fn check_run_inputs(v: &Value, max_bytes: usize) -> Result<(), crate::Error> {
    let params: Vec<(&str, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (k.as_str(), c)).collect(),
        other => vec![("*", other)],
    };
    for (name, c) in &params {
        if let Err(e) = check(c, MAX_DEPTH) {
            return Err(crate::Error::Input {
                name: (*name).to_owned(),
                reason: e.to_string(),
            });
        }
    }
    if encoded_len_exceeds(v, max_bytes) {
        // Name the largest parameter: the one to move into an artifact.
        let largest = params
            .iter()
            .max_by_key(|(_, c)| serde_json::to_vec(c).map_or(0, |b| b.len()))
            .map_or("*", |(n, _)| n);
        return Err(crate::Error::Input {
            name: largest.to_owned(),
            reason: format!(
                "the run inputs are larger than the {max_bytes}-byte limit: save large data \
                 as an artifact and pass its reference instead"
            ),
        });
    }
    Ok(())
}

/// Why [`to_value`] failed.
#[derive(Debug)]
pub enum EncodeError {
    /// The value is nested too deep.
    TooDeep(TooDeep),
    /// The value cannot be encoded as JSON (a map with non-string keys, a failing
    /// `Serialize` implementation).
    Json(serde_json::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooDeep(e) => e.fmt(f),
            EncodeError::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EncodeError {}

/// [`serde_json::to_value`], stopping (with an error, not a stack overflow) as soon as
/// the value nests deeper than `limit`. `value` itself is left to the caller: if it is
/// too deep, dropping it may recurse as deep (see [`dispose`]).
pub fn to_value<T: Serialize + ?Sized>(value: &T, limit: usize) -> Result<Value, EncodeError> {
    match encode(value, limit, false) {
        (Ok(v), _) => Ok(v),
        (Err(_), st) if st.exceeded.get() => {
            // Only now, on the way out, is the value walked again (as far as the limit)
            // to name the top-level field that is too deep.
            let (_, named) = encode(value, limit, true);
            Err(EncodeError::TooDeep(TooDeep {
                depth: limit + 1,
                at_least: true,
                limit,
                field: named.field.into_inner(),
            }))
        }
        (Err(e), _) => Err(EncodeError::Json(e)),
    }
}

fn encode<T: Serialize + ?Sized>(
    value: &T,
    limit: usize,
    name_fields: bool,
) -> (Result<Value, serde_json::Error>, State) {
    let st = State {
        depth: Cell::new(0),
        limit,
        exceeded: Cell::new(false),
        name_fields,
        field: RefCell::new(None),
    };
    let r = (Guard { v: value, st: &st }).serialize(serde_json::value::Serializer);
    (r, st)
}

struct State {
    depth: Cell<usize>,
    limit: usize,
    exceeded: Cell<bool>,
    /// Whether to note the top-level keys (in `field`).
    name_fields: bool,
    /// The top-level key being serialized (kept once the limit is exceeded).
    field: RefCell<Option<String>>,
}

impl State {
    fn enter<E: ser::Error>(&self, levels: usize) -> Result<(), E> {
        let d = self.depth.get() + levels;
        if d > self.limit {
            self.exceeded.set(true);
            return Err(E::custom(format_args!(
                "nested more than {} levels deep",
                self.limit
            )));
        }
        self.depth.set(d);
        Ok(())
    }

    /// Notes the key of a top-level field, for the error.
    fn key(&self, key: impl FnOnce() -> Option<String>) {
        if self.name_fields && self.depth.get() == 1 && !self.exceeded.get() {
            *self.field.borrow_mut() = key();
        }
    }

    fn leave(&self, levels: usize) {
        self.depth.set(self.depth.get().saturating_sub(levels));
    }
}

/// A value serialized through the depth-counting serializer.
struct Guard<'a, T: ?Sized> {
    v: &'a T,
    st: &'a State,
}

impl<T: Serialize + ?Sized> Serialize for Guard<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.v.serialize(Counting {
            inner: s,
            st: self.st,
        })
    }
}

/// Forwards to `inner`, counting the levels of nesting (as serde_json lays them out).
struct Counting<'a, S> {
    inner: S,
    st: &'a State,
}

/// A compound being serialized; `levels` are given back when it ends.
struct Compound<'a, C> {
    inner: C,
    st: &'a State,
    levels: usize,
}

macro_rules! forward_scalars {
    ($($method:ident: $t:ty),* $(,)?) => {
        $(fn $method(self, v: $t) -> Result<S::Ok, S::Error> { self.inner.$method(v) })*
    };
}

impl<'a, S: Serializer> Serializer for Counting<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    forward_scalars!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
    );

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Guard { v, st: self.st })
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_struct(name, &Guard { v, st: self.st })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.st.enter(1)?;
        let r =
            self.inner
                .serialize_newtype_variant(name, index, variant, &Guard { v, st: self.st });
        self.st.leave(1);
        r
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.st.enter(1)?;
        Ok(Compound {
            inner: self.inner.serialize_seq(len)?,
            st: self.st,
            levels: 1,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.st.enter(1)?;
        Ok(Compound {
            inner: self.inner.serialize_tuple(len)?,
            st: self.st,
            levels: 1,
        })
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.st.enter(1)?;
        Ok(Compound {
            inner: self.inner.serialize_tuple_struct(name, len)?,
            st: self.st,
            levels: 1,
        })
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.st.enter(2)?;
        Ok(Compound {
            inner: self
                .inner
                .serialize_tuple_variant(name, index, variant, len)?,
            st: self.st,
            levels: 2,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.st.enter(1)?;
        Ok(Compound {
            inner: self.inner.serialize_map(len)?,
            st: self.st,
            levels: 1,
        })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.st.enter(1)?;
        Ok(Compound {
            inner: self.inner.serialize_struct(name, len)?,
            st: self.st,
            levels: 1,
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.st.enter(2)?;
        Ok(Compound {
            inner: self
                .inner
                .serialize_struct_variant(name, index, variant, len)?,
            st: self.st,
            levels: 2,
        })
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C> Compound<'_, C> {
    fn done<T>(self, end: impl FnOnce(C) -> T) -> T {
        self.st.leave(self.levels);
        end(self.inner)
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident: $kt:ty)?) => {
        impl<C: ser::$trait> ser::$trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: $kt,)? v: &T) -> Result<(), C::Error> {
                self.inner.$method($($key,)? &Guard { v, st: self.st })
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.done(C::end)
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), C::Error> {
        self.st.key(|| Some(key.to_owned()));
        self.inner.serialize_field(key, &Guard { v, st: self.st })
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.done(C::end)
    }
}
compound!(SerializeStructVariant, serialize_field, key: &'static str);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        // JSON keys are strings (0 levels deep); anything else is not named.
        self.st.key(|| match to_value(key, 0) {
            Ok(Value::String(k)) => Some(k),
            _ => None,
        });
        self.inner.serialize_key(&Guard {
            v: key,
            st: self.st,
        })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.inner.serialize_value(&Guard { v, st: self.st })
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.done(C::end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A value `n` arrays deep, built (and, through `dispose`, dropped) without recursion.
    fn nested(n: usize) -> Value {
        let mut v = Value::Null;
        for _ in 0..n {
            v = Value::Array(vec![v]);
        }
        v
    }

    fn reference_depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(reference_depth).max().unwrap_or(0),
            Value::Object(m) => 1 + m.values().map(reference_depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn depth_counts_arrays_and_objects() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!([{"a": [1, {"b": 2}]}, 3])), 4);
    }

    #[test]
    fn a_hundred_thousand_levels_are_measured_refused_and_dropped_without_overflow() {
        let v = nested(100_000);
        assert_eq!(depth(&v), 100_000);
        let e = admit(v, MAX_DEPTH).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nested 100000 levels deep, more than the limit of 64 levels"
        );
    }

    #[test]
    fn the_limit_itself_is_accepted_and_readable_back() {
        let v = admit(nested(MAX_DEPTH), MAX_DEPTH).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        // Wrapped twice more (an event, the worker protocol), it still parses.
        let wrapped = format!("{{\"a\":{{\"b\":{text}}}}}");
        serde_json::from_str::<Value>(&wrapped).unwrap();
        assert!(admit(nested(MAX_DEPTH + 1), MAX_DEPTH).is_err());
    }

    #[test]
    fn to_value_stops_at_the_limit_instead_of_overflowing() {
        let v = nested(100_000);
        match to_value(&v, MAX_DEPTH) {
            Err(EncodeError::TooDeep(e)) => {
                assert!(e.at_least);
                assert_eq!(e.depth, MAX_DEPTH + 1);
            }
            other => panic!("expected TooDeep, got {other:?}"),
        }
        dispose(v);
    }

    #[derive(serde::Serialize)]
    enum Tree {
        Leaf,
        Node(Box<Tree>, u8),
        Named { child: Box<Tree> },
        Wrap(Box<Tree>),
    }

    #[test]
    fn to_value_counts_levels_as_serde_json_lays_them_out() {
        // {"Node": [{"Named": {"child": {"Wrap": "Leaf"}}}, 1]}: 2 + 2 + 1 levels.
        let t = Tree::Node(
            Box::new(Tree::Named {
                child: Box::new(Tree::Wrap(Box::new(Tree::Leaf))),
            }),
            1,
        );
        let v = to_value(&t, 5).unwrap();
        assert_eq!(depth(&v), 5);
        assert_eq!(v, serde_json::to_value(&t).unwrap());
        assert!(matches!(to_value(&t, 4), Err(EncodeError::TooDeep(_))));
    }

    #[test]
    fn to_value_names_the_top_level_field_too_deep() {
        #[derive(serde::Serialize)]
        struct Inputs {
            shallow: Vec<u8>,
            deep: Value,
        }
        let deep = Inputs {
            shallow: vec![1],
            deep: nested(10),
        };
        match to_value(&deep, 5) {
            Err(EncodeError::TooDeep(e)) => assert_eq!(e.field.as_deref(), Some("deep")),
            other => panic!("expected TooDeep, got {other:?}"),
        }
        let map = json!({"a": 1, "b": nested(10), "c": [1]});
        match to_value(&map, 5) {
            Err(EncodeError::TooDeep(e)) => assert_eq!(e.field.as_deref(), Some("b")),
            other => panic!("expected TooDeep, got {other:?}"),
        }
        // A value nested in a top-level array has no field to name.
        match to_value(&nested(10), 5) {
            Err(EncodeError::TooDeep(e)) => assert_eq!(e.field, None),
            other => panic!("expected TooDeep, got {other:?}"),
        }
    }

    #[test]
    fn to_value_keeps_json_errors() {
        let mut m = std::collections::BTreeMap::new();
        m.insert(vec![1u8], 1);
        assert!(matches!(to_value(&m, MAX_DEPTH), Err(EncodeError::Json(_))));
    }

    fn small_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(12, 96, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn depth_matches_a_recursive_reference(v in small_value()) {
            prop_assert_eq!(depth(&v), reference_depth(&v));
        }

        #[test]
        fn check_agrees_with_a_recursive_reference(v in small_value(), limit in 0usize..14) {
            let d = reference_depth(&v);
            match check(&v, limit) {
                Ok(()) => prop_assert!(d <= limit),
                Err(e) => {
                    prop_assert!(d > limit);
                    prop_assert_eq!(e.depth, d);
                }
            }
        }

        #[test]
        fn to_value_agrees_with_serde_json_and_depth(v in small_value(), limit in 0usize..14) {
            let d = reference_depth(&v);
            match to_value(&v, limit) {
                Ok(out) => {
                    prop_assert!(d <= limit);
                    prop_assert_eq!(out, v);
                }
                Err(EncodeError::TooDeep(_)) => prop_assert!(d > limit),
                Err(EncodeError::Json(e)) => prop_assert!(false, "{}", e),
            }
        }
    }
}
