//! [`to_value`]: serde_json's encoding, stopping at a depth limit instead of
//! recursing past it.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::ser::{self, Serialize, Serializer};
use serde_json::Value;

use super::TooDeep;

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
/// too deep, dropping it may recurse as deep (see [`dispose`](super::dispose)).
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
