//! `#[workflow]`: the validated model the expansion reads.

use proc_macro2::{Span, TokenStream};
use syn::token::Paren;
use syn::{Attribute, Expr, Ident, Type, Visibility};

use crate::crate_path::CratePath;

/// A validated `#[workflow]`.
pub(crate) struct WfModel {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) fn_ident: Ident,
    pub(crate) meta_ident: Ident,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) cron: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) params: Vec<ParamModel>,
    pub(crate) nodes: Vec<NodeModel>,
    /// The path to dagforge in the generated code.
    pub(crate) krate: CratePath,
}

/// A run parameter (an argument of the workflow function).
pub(crate) struct ParamModel {
    pub(crate) name: String,
    pub(crate) var: Ident,
    pub(crate) ty: Type,
}

/// One node.
pub(crate) struct NodeModel {
    pub(crate) var: Ident,
    pub(crate) id: String,
    pub(crate) id_span: Span,
    pub(crate) path: syn::Path,
    pub(crate) paren: Paren,
    pub(crate) args: Vec<ArgModel>,
    pub(crate) opts: Vec<TokenStream>,
}

/// One argument of a job call.
pub(crate) struct ArgModel {
    pub(crate) span: Span,
    pub(crate) wiring: Wiring,
}

/// Where an argument's value comes from.
pub(crate) enum Wiring {
    /// The fan-out item; the items come from here.
    Each(Source),
    /// An upstream node's output or a run parameter.
    Bind(Source),
    /// A constant expression.
    Const(Expr),
}

/// An upstream value.
pub(crate) enum Source {
    /// A whole node output.
    Node(Ident),
    /// A (nested) field of a node output.
    Field(Ident, Vec<Ident>),
    /// A run parameter: the variable holding its `Source`.
    Param(Ident),
}

impl Source {
    pub(crate) fn node(&self) -> Option<&Ident> {
        match self {
            Source::Node(n) | Source::Field(n, _) => Some(n),
            Source::Param(_) => None,
        }
    }
}
