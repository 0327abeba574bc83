//! `#[workflow]`: the node options chained after a job call (`.id(…)`, `.after(…)`,
//! `.when(…)`, `.retries(…)`, …), checked and turned into builder calls.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote_spanned};
use syn::{Expr, ExprLit, Ident, Lit, LitStr};

use super::scope::Scope;
use super::wiring::strip;
use crate::crate_path::CratePath;
use crate::diag::Errors;
use crate::value::{BackoffSrc, DurationSrc, non_empty};
use crate::workflow::parse::Opt;

/// Every node option, for messages.
const OPTIONS: &str =
    "id, after, when, when_all, trigger, retries, backoff, timeout, priority, concurrency";

/// The string literal `expr` is, if it is one.
fn lit_str(expr: &Expr) -> Option<&LitStr> {
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        _ => None,
    }
}

/// Checks one option and appends its builder call to `out`. Returns a new node id for
/// `.id("…")`.
pub(super) fn option(
    opt: &Opt,
    fanned: bool,
    upstream: &BTreeMap<String, Ident>,
    scope: &Scope<'_>,
    krate: &CratePath,
    out: &mut Vec<TokenStream>,
    errors: &mut Errors,
) -> Option<(String, Span)> {
    let key = opt.name.to_string();
    let args: Vec<&Expr> = opt.args.iter().collect();
    let span = opt.span;
    let one = |errors: &mut Errors, what: &str| -> Option<&Expr> {
        if let [a] = args.as_slice() {
            Some(*a)
        } else {
            errors.at(span, format_args!("`.{key}()` takes one argument: {what}"));
            None
        }
    };
    match key.as_str() {
        "id" => {
            let a = one(errors, "the node id, e.g. `.id(\"data-proxy\")`")?;
            let Some(lit) = lit_str(a) else {
                errors.spanned(a, "the node id is a string literal, e.g. `.id(\"data-proxy\")`");
                return None;
            };
            let v = non_empty(lit, "the node id", errors)?;
            return Some((v, lit.span()));
        }
        "retries" | "priority" => {
            let a = one(errors, "a number")?;
            let m = &opt.name;
            out.push(quote_spanned!(span=> .#m(#a)));
        }
        "concurrency" => {
            let a = one(errors, "the most items running at once")?;
            if !fanned {
                errors.at(
                    span,
                    "`.concurrency()` caps a fan-out; this node does not fan out (`for item in items { … }`)",
                );
                return None;
            }
            out.push(quote_spanned!(span=> .concurrency(#a)));
        }
        "timeout" => {
            let a = one(errors, "a duration, e.g. `.timeout(\"1m\")`")?;
            match syn::parse2::<DurationSrc>(a.to_token_stream()).and_then(|d| d.to_expr()) {
                Ok(d) => out.push(quote_spanned!(span=> .timeout(#d))),
                Err(e) => errors.push(e),
            }
        }
        "backoff" => {
            let a = one(errors, "a backoff, e.g. `.backoff(exponential(1s, max = 1m))`")?;
            match syn::parse2::<BackoffSrc>(a.to_token_stream()) {
                Ok(b) => {
                    if let Some(e) = b.to_expr(krate, errors) {
                        out.push(quote_spanned!(span=> .backoff(#e)));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        "after" => {
            if args.is_empty() {
                errors.at(span, "`.after()` takes one or more earlier bindings: `.after(publish)`");
            }
            for a in args {
                let n = node_name(a, "`.after()`", scope, errors)?;
                out.push(quote_spanned!(span=> .after(&#n)));
            }
        }
        "when" => match args.as_slice() {
            [pred] => {
                let pred = predicate(pred, errors)?;
                if let (1, Some(n)) = (upstream.len(), upstream.values().next()) {
                    let mut n = n.clone();
                    n.set_span(pred.span());
                    out.push(quote_spanned!(span=> .when(&#n, #pred)));
                } else {
                    errors.at(
                        span,
                        format_args!(
                            "`.when(\"…\")` tests the output of the node's one upstream, but this node has {}: \
                             name it with `.when(node, \"…\")`, or use `.when_all(\"$.node.field …\")`",
                            if upstream.is_empty() { "none".to_owned() } else { format!("{} ({})", upstream.len(), upstream.keys().cloned().collect::<Vec<_>>().join(", ")) }
                        ),
                    );
                }
            }
            [node, pred] => {
                let n = node_name(node, "`.when()`", scope, errors);
                let pred = predicate(pred, errors);
                let (n, pred) = (n?, pred?);
                out.push(quote_spanned!(span=> .when(&#n, #pred)));
            }
            _ => errors.at(span, "`.when()` takes a predicate, optionally after the node it tests: `.when(publish, \"$.failed > 0\")`"),
        },
        "when_all" => {
            let a = one(errors, "a predicate over all upstream outputs, e.g. `\"$.publish.failed > 0\"`")?;
            let pred = predicate(a, errors)?;
            out.push(quote_spanned!(span=> .when_all(#pred)));
        }
        "trigger" => {
            let a = one(errors, "a trigger rule: all_success, all_done, one_failed or none_failed")?;
            let rule = match strip(a) {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let i = p.path.get_ident()?;
                    let variant = match i.to_string().as_str() {
                        "all_success" => "AllSuccess",
                        "all_done" => "AllDone",
                        "one_failed" => "OneFailed",
                        "none_failed" => "NoneFailed",
                        _ => {
                            errors.spanned(i, "unknown trigger rule: expected all_success, all_done, one_failed or none_failed");
                            return None;
                        }
                    };
                    let v = Ident::new(variant, i.span());
                    let k = krate.at(i.span());
                    quote_spanned!(i.span()=> #k::TriggerRule::#v)
                }
                other => other.to_token_stream(),
            };
            out.push(quote_spanned!(span=> .trigger(#rule)));
        }
        _ => errors.at(
            span,
            format_args!("unknown node option `.{key}()`; expected one of: {OPTIONS}"),
        ),
    }
    None
}

fn predicate<'a>(expr: &'a Expr, errors: &mut Errors) -> Option<&'a LitStr> {
    let lit = lit_str(expr);
    if lit.is_none() {
        errors.spanned(
            expr,
            "a condition is a string literal holding a JSONPath predicate, e.g. \"$.count > 0\"",
        );
    }
    lit
}

fn node_name(expr: &Expr, what: &str, scope: &Scope<'_>, errors: &mut Errors) -> Option<Ident> {
    let ident = match strip(expr) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    };
    let Some(ident) = ident else {
        errors.spanned(
            expr,
            format_args!("{what} takes an earlier binding, e.g. `publish`"),
        );
        return None;
    };
    if scope.bound.contains_key(&ident.to_string()) {
        Some(ident.clone())
    } else {
        scope.unknown_as(ident, false, errors);
        None
    }
}
