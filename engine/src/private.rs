//! Support items for the code `#[job]` and `#[workflow]` generate. Not a public API:
//! anything here may change in any release.
//!
//! The helpers taking a `Field<I, T>` first exist for their signatures: they make the
//! type checker compare the job argument's type `T` with the upstream value's type and
//! report a mismatch on the user's argument, then call the ordinary builder API.

use std::fmt;

pub use serde;

use crate::context::JobContext;
use crate::error::JobError;
use crate::job::Job;
use crate::workflow::{Field, Items, NodeRef, Source};

/// Argument number `N` of a `#[job]` function (the context not counted).
#[diagnostic::on_unimplemented(
    message = "this job call passes more arguments than `{Self}` takes",
    label = "no such argument",
    note = "a job call in `#[workflow]` passes the job function's arguments, without the context"
)]
pub trait Arg<const N: usize>: Job {
    /// The argument's type.
    type Type;
    /// The input field holding the argument.
    const FIELD: Field<<Self as Job>::Input, Self::Type>;
}

/// One argument of a job call, for the generated argument-count check.
#[derive(Clone, Copy, Debug)]
pub struct ArgSlot;

/// The resource a `#[resource]` argument takes (its `Send + Sync + 'static` bound is
/// checked by the job's `USES`, once, where the user wrote the type).
pub async fn resource<T: 'static>(ctx: &JobContext) -> Result<&T, JobError> {
    Ok(ctx.resource_any::<T>().await?)
}

/// Converts the job function's error.
pub fn into_job_result<T, E: Into<JobError>>(r: Result<T, E>) -> Result<T, JobError> {
    r.map_err(Into::into)
}

/// Debug-formats a serde value as JSON (input structs derive no `Debug` bound on their
/// fields).
pub struct AsJson<'a, T>(pub &'a T);

impl<T: serde::Serialize> fmt::Debug for AsJson<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unserializable>"),
        }
    }
}

/// A whole upstream output as the source of an argument of type `T`.
pub fn whole<I, T>(_: Field<I, T>, node: &NodeRef<T>) -> Source<T> {
    Source::from(node)
}

/// A field of an upstream output; `_proj` type-checks that the output has it.
pub fn field<I, T, O>(
    _: Field<I, T>,
    node: &NodeRef<O>,
    name: &'static str,
    _proj: impl FnOnce(&O) -> &T,
) -> Source<T> {
    node.field(Field::<O, T>::new(name))
}

/// A nested field of an upstream output, by JSONPath; `_proj` type-checks the path.
pub fn path<I, T, O>(
    _: Field<I, T>,
    node: &NodeRef<O>,
    path: &str,
    _proj: impl FnOnce(&O) -> &T,
) -> Source<T> {
    node.select(path)
}

/// A run parameter as the source of an argument of type `T`.
pub fn param<I, T>(_: Field<I, T>, param: &Source<T>) -> Source<T> {
    param.clone()
}

/// Fan-out items: the elements of an upstream `Vec<T>` output.
pub fn items<I, T>(_: Field<I, T>, node: &NodeRef<Vec<T>>) -> Items<T> {
    Items::from(node)
}

/// Fan-out items: the elements of a `Vec<T>` field of an upstream output.
pub fn items_at<I, T, O>(
    _: Field<I, T>,
    node: &NodeRef<O>,
    path: &str,
    _proj: impl FnOnce(&O) -> &Vec<T>,
) -> Items<T> {
    node.each_at(path)
}

/// Fan-out items: the elements of a `Vec<T>` run parameter.
pub fn items_param<I, T>(_: Field<I, T>, param: &Source<Vec<T>>) -> Items<T> {
    Items::from(param.clone())
}
