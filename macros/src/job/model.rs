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
    pub(crate) args: Vec<ArgModel>,
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
