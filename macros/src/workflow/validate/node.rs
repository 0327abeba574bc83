//! `#[workflow]`: one statement of the body checked into a node: its job, the wiring of
//! each argument, the fan-out, its id and its options.

use std::collections::{BTreeMap, HashMap};

use proc_macro2::Span;
use quote::format_ident;
use syn::spanned::Spanned;

use super::options::option;
use super::scope::Scope;
use super::wiring::{classify_arg, classify_items};
use crate::crate_path::CratePath;
use crate::diag::Errors;
use crate::naming::unraw;
use crate::workflow::model::{ArgModel, NodeModel, Wiring};
use crate::workflow::parse::NodeStmt;

/// Checks statement `index`; `None` (with the problems in `errors`) if it is not a valid node.
pub(super) fn node(
    index: usize,
    stmt: &NodeStmt,
    scope: &Scope<'_>,
    krate: &CratePath,
    errors: &mut Errors,
) -> Option<NodeModel> {
    let start = errors.count();
    let call = &stmt.node.call;
    let Some(job_seg) = call.path.segments.last() else {
        errors.spanned(&call.path, "expected a `#[job]` function");
        return None;
    };
    if !job_seg.arguments.is_none() {
        errors.spanned(
            &job_seg.arguments,
            "job functions take no generic arguments",
        );
    }
    let fan_var = stmt.node.fan_out.as_ref().map(|f| &f.var);
    let mut upstream = BTreeMap::new();
    let mut args = Vec::new();
    let mut items_used = 0usize;
    for arg in &call.args {
        let span = arg.span();
        let Some(wiring) = classify_arg(arg, fan_var, scope, errors) else {
            continue;
        };
        match &wiring {
            Wiring::Each(_) => items_used += 1,
            Wiring::Bind(src) => {
                if let Some(n) = src.node() {
                    upstream.insert(n.to_string(), n.clone());
                }
            }
            Wiring::Const(_) => {}
        }
        args.push(ArgModel { span, wiring });
    }

    let mut fanned = false;
    if let Some(f) = &stmt.node.fan_out {
        fanned = true;
        if let Some(src) = classify_items(&f.items, scope, errors) {
            {
                if let Some(n) = src.node() {
                    upstream.insert(n.to_string(), n.clone());
                }
                match items_used {
                    1 => {
                        for a in &mut args {
                            if matches!(a.wiring, Wiring::Each(_)) {
                                a.wiring = Wiring::Each(src);
                                break;
                            }
                        }
                    }
                    0 => errors.spanned(
                        &f.var,
                        format_args!(
                            "the fan-out item `{}` is not passed to the job: pass it as one argument, e.g. `job({}, …)`",
                            f.var, f.var
                        ),
                    ),
                    _ => errors.spanned(
                        &f.var,
                        format_args!("the fan-out item `{}` can be passed to only one argument", f.var),
                    ),
                }
            }
        }
    }

    let (mut id, mut id_span) = match &stmt.binding {
        Some(b) => (unraw(b), b.span()),
        None => (unraw(&job_seg.ident), job_seg.ident.span()),
    };
    let mut opts = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for opt in &stmt.node.opts {
        let key = opt.name.to_string();
        let repeatable = matches!(key.as_str(), "after" | "when" | "when_all");
        if !repeatable {
            if let Some(_first) = seen.get(&key) {
                errors.at(
                    opt.span,
                    format_args!("duplicate `.{key}()` on this node: give it once"),
                );
                continue;
            }
            seen.insert(key.clone(), opt.span);
        }
        if let Some((new_id, span)) =
            option(opt, fanned, &upstream, scope, krate, &mut opts, errors)
        {
            id = new_id;
            id_span = span;
        }
    }

    let var = match &stmt.binding {
        Some(b) => b.clone(),
        None => format_ident!("__dagforge_node_{}", index),
    };
    (errors.count() == start).then(|| NodeModel {
        var,
        id,
        id_span,
        path: call.path.clone(),
        paren: call.paren,
        args,
        opts,
    })
}
