//! `#[job]`: the validated model the expansion reads.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Type, Visibility};

use crate::crate_path::CratePath;

/// A validated `#[job]`.
pub(crate) struct JobModel {
    pub(crate) vis: Visibility,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) fn_ident: Ident,
    pub(crate) job_ident: Ident,
    pub(crate) input_ident: Ident,
    pub(crate) name: String,
    pub(crate) has_ctx: bool,
    /// The input arguments (each an input field), in order.
    pub(crate) args: Vec<ArgModel>,
    /// The `#[resource]` arguments, in order.
    pub(crate) resources: Vec<ResourceArg>,
    /// The function's arguments after the context, in order: what the job passes.
    pub(crate) call: Vec<CallArg>,
    pub(crate) output: Type,
    /// The return type's span, where an error type that does not convert is reported.
    pub(crate) ret_span: Span,
    /// `JobSpec` builder calls (`.retries(2)`, …); empty keeps the default spec.
    pub(crate) spec: Vec<TokenStream>,
    /// The path to dagforge in the generated code.
    pub(crate) krate: CratePath,
}

/// One job argument, which becomes one input field.
pub(crate) struct ArgModel {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// A `#[resource] name: &T` argument.
pub(crate) struct ResourceArg {
    /// The resource type `T`.
    pub(crate) ty: Type,
}

/// One argument of the call the generated job makes, after the context.
pub(crate) enum CallArg {
    /// Input argument number `n` (a field of the input).
    Input(usize),
    /// Resource argument number `n`.
    Resource(usize),
}
