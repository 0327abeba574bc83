//! `#[workflow]`: where each argument of a job call comes from (an upstream output or a
//! field of one, a run parameter, the fan-out item, or a constant), and where a fan-out's
//! items come from.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Expr, Ident, Member};

use super::scope::{Scope, looks_like_value_name};
use crate::diag::Errors;
use crate::workflow::model::{Source, Wiring};

/// `&x`, `(x)` → `x`.
pub(super) fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Reference(r) if r.mutability.is_none() => strip(&r.expr),
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        other => other,
    }
}

/// `a.b.c` → (`a`, [`b`, `c`]) when every member is named.
fn field_chain(expr: &Expr, errors: &mut Errors) -> Option<(Ident, Vec<Ident>)> {
    let mut fields = Vec::new();
    let mut cur = expr;
    loop {
        match cur {
            Expr::Field(f) => {
                match &f.member {
                    Member::Named(i) => fields.push(i.clone()),
                    Member::Unnamed(i) => {
                        errors.spanned(
                            i,
                            "only named fields of a result can be bound, not tuple fields",
                        );
                        return None;
                    }
                }
                cur = &f.base;
            }
            Expr::Path(p) if p.qself.is_none() => {
                let base = p.path.get_ident()?.clone();
                fields.reverse();
                return Some((base, fields));
            }
            _ => return None,
        }
    }
}

/// How one argument of a job call is wired; `None` after reporting an error.
pub(super) fn classify_arg(
    arg: &Expr,
    fan_var: Option<&Ident>,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<Wiring> {
    let inner = strip(arg);
    match inner {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            let ident = p.path.get_ident()?;
            if fan_var == Some(ident) {
                // Filled in with the items once the fan-out source is resolved.
                return Some(Wiring::Each(Source::Node(ident.clone())));
            }
            if let Some(src) = scope.source(ident) {
                return Some(Wiring::Bind(src));
            }
            if looks_like_value_name(ident) {
                scope.unknown(ident, errors);
                return None;
            }
            Some(Wiring::Const(arg.clone()))
        }
        Expr::Field(_) => {
            let Some((base, fields)) = field_chain(inner, errors) else {
                return check_const(arg, fan_var, scope, errors);
            };
            if fan_var == Some(&base) {
                errors.spanned(
                    inner,
                    format_args!(
                        "pass the fan-out item `{base}` whole and read its fields inside the job"
                    ),
                );
                return None;
            }
            match scope.source(&base) {
                Some(Source::Node(n)) => Some(Wiring::Bind(Source::Field(n, fields))),
                Some(_) => {
                    errors.spanned(
                        inner,
                        format_args!("a parameter is bound whole: pass `{base}` and read the field inside the job"),
                    );
                    None
                }
                None if looks_like_value_name(&base) => {
                    scope.unknown(&base, errors);
                    None
                }
                None => Some(Wiring::Const(arg.clone())),
            }
        }
        Expr::Lit(_) => Some(Wiring::Const(arg.clone())),
        _ => check_const(arg, fan_var, scope, errors),
    }
}

/// A constant expression must not use bindings, parameters or the fan-out item: their
/// values only exist when the workflow runs.
fn check_const(
    arg: &Expr,
    fan_var: Option<&Ident>,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<Wiring> {
    let mut bad = None;
    scan_idents(arg.to_token_stream(), &mut |i| {
        if bad.is_none()
            && (fan_var == Some(i)
                || scope.bound.contains_key(&i.to_string())
                || scope.params.contains_key(&i.to_string()))
        {
            bad = Some(i.clone());
        }
    });
    if let Some(i) = bad {
        errors.spanned(
            &i,
            format_args!(
                "`{i}` is only known when the workflow runs, so it can't be used in an expression here: \
                 pass `{i}` (or a field of it) directly as an argument and compute inside the job"
            ),
        );
        return None;
    }
    Some(Wiring::Const(arg.clone()))
}

/// Calls `f` with every identifier not preceded by `.` or `::` (method and path tails).
fn scan_idents(tokens: TokenStream, f: &mut impl FnMut(&Ident)) {
    let mut after_sep = false;
    for t in tokens {
        match t {
            TokenTree::Ident(i) => {
                if !after_sep {
                    f(&i);
                }
                after_sep = false;
            }
            TokenTree::Punct(p) => after_sep = p.as_char() == '.' || p.as_char() == ':',
            TokenTree::Group(g) => {
                scan_idents(g.stream(), f);
                after_sep = false;
            }
            TokenTree::Literal(_) => after_sep = false,
        }
    }
}

pub(super) fn classify_items(
    items: &Expr,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<Source> {
    const HINT: &str = "fan-out items must be an earlier binding (`markets`), a field of one (`markets.ids`) or a workflow parameter";
    let inner = strip(items);
    let Some((base, fields)) = field_chain(inner, errors) else {
        errors.spanned(items, HINT);
        return None;
    };
    match scope.source(&base) {
        Some(Source::Node(n)) if fields.is_empty() => Some(Source::Node(n)),
        Some(Source::Node(n)) => Some(Source::Field(n, fields)),
        Some(p @ Source::Param(_)) if fields.is_empty() => Some(p),
        Some(_) => {
            errors.spanned(
                items,
                "a parameter is used whole: fan out over the parameter itself",
            );
            None
        }
        None if looks_like_value_name(&base) => {
            scope.unknown(&base, errors);
            None
        }
        None => {
            errors.spanned(items, HINT);
            None
        }
    }
}
