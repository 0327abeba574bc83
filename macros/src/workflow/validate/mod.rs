//! `#[workflow]`: checks the signature and the attributes, resolves every argument
//! against the bindings and parameters in scope, checks the options, and builds the
//! model the expansion reads.

mod attrs;
mod node;
mod options;
mod scope;
mod wiring;

use std::collections::HashMap;

use proc_macro2::Span;
use quote::format_ident;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use self::attrs::{Attrs, check as check_attrs};
use self::node::node;
use self::scope::Scope;
use super::model::{NodeModel, ParamModel, WfModel};
use super::parse::{NodeStmt, WfAttr};
use crate::crate_path::CratePath;
use crate::diag::Errors;
use crate::naming::{pascal_case, unraw};

/// Checks `func`, `attrs` and the body's statements. On error, every problem is in
/// `errors` and `None` is returned.
pub(crate) fn validate(
    func: &ItemFn,
    attrs: Vec<WfAttr>,
    stmts: Vec<NodeStmt>,
    krate: &CratePath,
    errors: &mut Errors,
) -> Option<WfModel> {
    let start = errors.count();
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        errors.at(
            a.span,
            "a `#[workflow]` fn only describes the graph and runs nothing: remove `async`",
        );
    }
    if let ReturnType::Type(arrow, ty) = &sig.output {
        let mut e = syn::Error::new(
            arrow.spans[0],
            "remove the return type: `#[workflow]` makes the fn return `Result<Workflow, ValidationErrors>`",
        );
        e.combine(syn::Error::new_spanned(ty, "declared here"));
        errors.push(e);
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(&sig.generics, "a `#[workflow]` fn cannot be generic");
    }
    for tok in [sig.constness.map(|t| t.span), sig.unsafety.map(|t| t.span)]
        .into_iter()
        .flatten()
    {
        errors.at(tok, "a `#[workflow]` fn cannot be `const` or `unsafe`");
    }

    let mut params = Vec::new();
    let mut param_vars = HashMap::new();
    for input in &sig.inputs {
        let FnArg::Typed(t) = input else {
            errors.spanned(
                input,
                "a `#[workflow]` fn is a free function: remove `self`",
            );
            continue;
        };
        let Pat::Ident(p) = &*t.pat else {
            errors.spanned(
                &t.pat,
                "a workflow parameter is a plain name: `market: String` (it becomes the run parameter `market`)",
            );
            continue;
        };
        if let Type::Reference(r) = &*t.ty {
            errors.spanned(
                r,
                "run parameters are decoded from JSON and must be owned: use `String` instead of `&str`",
            );
            continue;
        }
        let name = unraw(&p.ident);
        let var = format_ident!("__dagforge_param_{}", name, span = p.ident.span());
        param_vars.insert(p.ident.to_string(), var.clone());
        params.push(ParamModel {
            name,
            var,
            ty: (*t.ty).clone(),
        });
    }

    let Attrs {
        name,
        version,
        cron,
        time_zone,
    } = check_attrs(attrs, errors);

    if stmts.is_empty() && errors.count() == start {
        errors.spanned(
            &func.block,
            "a workflow needs at least one job call: `let name = job(args…);`",
        );
    }

    let mut all = HashMap::new();
    for (i, s) in stmts.iter().enumerate() {
        if let Some(b) = &s.binding {
            all.entry(b.to_string()).or_insert(i);
        }
    }
    let mut scope = Scope {
        bound: HashMap::new(),
        all: &all,
        params: &param_vars,
    };
    let mut nodes: Vec<NodeModel> = Vec::new();
    let mut ids: HashMap<String, Span> = HashMap::new();
    for (i, stmt) in stmts.into_iter().enumerate() {
        if let Some(node) = node(i, &stmt, &scope, krate, errors) {
            if let Some(first) = ids.get(&node.id) {
                let mut e = syn::Error::new(
                    node.id_span,
                    format_args!(
                        "duplicate node `{}`: rename the binding or give the node another id with `.id(\"…\")`",
                        node.id
                    ),
                );
                e.combine(syn::Error::new(*first, "first defined here"));
                errors.push(e);
            } else {
                ids.insert(node.id.clone(), node.id_span);
            }
            nodes.push(node);
        }
        if let Some(b) = &stmt.binding {
            scope.bound.insert(b.to_string(), i);
        }
    }

    let fn_ident = sig.ident.clone();
    let plain = unraw(&fn_ident);
    let meta_ident = format_ident!("{}Workflow", pascal_case(&plain), span = fn_ident.span());
    (errors.count() == start).then(|| WfModel {
        attrs: func.attrs.clone(),
        vis: func.vis.clone(),
        fn_ident,
        meta_ident,
        name: name.unwrap_or(plain),
        version,
        cron,
        time_zone,
        params,
        nodes,
        krate: krate.clone(),
    })
}
