//! `#[workflow(...)]`: the attribute list and the body's statements, as written.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::token::Paren;
use syn::{Block, Expr, Ident, Lit, LitStr, Pat, Stmt, Token};

use crate::crate_path::{CratePath, parse_entry, split};
use crate::diag::{Errors, parse_list};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(version);
    syn::custom_keyword!(cron);
    syn::custom_keyword!(time_zone);
}

/// Every attribute `#[workflow]` accepts, for messages.
pub(crate) const ATTRIBUTES: &str = "name, version, cron, time_zone";

/// One `key = value` entry.
pub(crate) enum WfAttr {
    Name(Span, LitStr),
    Version(Span, Lit),
    Cron(Span, LitStr),
    TimeZone(Span, LitStr),
}

/// Parses the attribute list into the crate path (`crate = …`, default `::dagforge`)
/// and the other attributes; bad entries are reported and skipped.
pub(crate) fn parse_attrs(tokens: TokenStream, errors: &mut Errors) -> (CratePath, Vec<WfAttr>) {
    let parser = |input: ParseStream<'_>| {
        Ok(parse_list(input, errors, |input| {
            parse_entry(input, parse_one)
        }))
    };
    let entries = parser.parse2(tokens).unwrap_or_default();
    split(entries, errors)
}

fn parse_one(input: ParseStream<'_>) -> syn::Result<WfAttr> {
    let span = input.span();
    let l = input.lookahead1();
    if l.peek(kw::name) {
        input.parse::<kw::name>()?;
        input.parse::<Token![=]>()?;
        Ok(WfAttr::Name(span, input.parse()?))
    } else if l.peek(kw::version) {
        input.parse::<kw::version>()?;
        input.parse::<Token![=]>()?;
        Ok(WfAttr::Version(span, input.parse()?))
    } else if l.peek(kw::cron) {
        input.parse::<kw::cron>()?;
        input.parse::<Token![=]>()?;
        Ok(WfAttr::Cron(span, input.parse()?))
    } else if l.peek(kw::time_zone) {
        input.parse::<kw::time_zone>()?;
        input.parse::<Token![=]>()?;
        Ok(WfAttr::TimeZone(span, input.parse()?))
    } else if input.peek(Ident) {
        let ident: Ident = input.parse()?;
        Err(syn::Error::new(
            ident.span(),
            format_args!(
                "unknown `#[workflow]` attribute `{ident}`; expected one of: {ATTRIBUTES}"
            ),
        ))
    } else {
        Err(l.error())
    }
}

/// One statement of the body: `let binding = <node>;` or a bare `<node>`.
pub(crate) struct NodeStmt {
    pub(crate) binding: Option<Ident>,
    pub(crate) node: NodeExpr,
}

/// A job call with its options.
pub(crate) struct NodeExpr {
    pub(crate) call: Call,
    pub(crate) fan_out: Option<FanOut>,
    /// Options in source order (`.retries(2)`, `.when(…)`, …).
    pub(crate) opts: Vec<Opt>,
}

/// `job_fn(arg, …)`.
pub(crate) struct Call {
    pub(crate) path: syn::Path,
    pub(crate) paren: Paren,
    pub(crate) args: Vec<Expr>,
}

/// `for var in items { … }` or `items.map(|var| …)`.
pub(crate) struct FanOut {
    pub(crate) var: Ident,
    pub(crate) items: Expr,
}

/// `.name(args…)` after a call.
pub(crate) struct Opt {
    pub(crate) name: Ident,
    pub(crate) args: Punctuated<Expr, Token![,]>,
    pub(crate) span: Span,
}

const STATEMENT_HINT: &str = "a `#[workflow]` body is a list of job calls: `let name = job(args…);` \
     (optionally with `.retries(2)`, `.when(\"…\")`, … after the call)";

/// Splits the body into node statements; unsupported statements are reported.
pub(crate) fn parse_body(block: &Block, errors: &mut Errors) -> Vec<NodeStmt> {
    let mut out = Vec::new();
    for stmt in &block.stmts {
        match stmt {
            Stmt::Local(local) => {
                let binding = match &local.pat {
                    Pat::Ident(p)
                        if p.by_ref.is_none() && p.subpat.is_none() && p.mutability.is_none() =>
                    {
                        p.ident.clone()
                    }
                    Pat::Type(t) => {
                        errors.spanned(
                            &t.ty,
                            "remove the type annotation: a binding's type is its job's output, known from the job",
                        );
                        continue;
                    }
                    other => {
                        errors.spanned(
                            other,
                            "bind a node to a plain name: `let name = job(args…);`",
                        );
                        continue;
                    }
                };
                let Some(init) = &local.init else {
                    errors.spanned(
                        local,
                        "a `let` in a `#[workflow]` needs a job call: `let name = job(args…);`",
                    );
                    continue;
                };
                if let Some((else_token, _)) = &init.diverge {
                    errors.spanned(
                        else_token,
                        "`let … else` is not supported in a `#[workflow]`",
                    );
                    continue;
                }
                if let Some(node) = parse_node(&init.expr, errors) {
                    out.push(NodeStmt {
                        binding: Some(binding),
                        node,
                    });
                }
            }
            Stmt::Expr(expr, _) => {
                if let Some(node) = parse_node(expr, errors) {
                    out.push(NodeStmt {
                        binding: None,
                        node,
                    });
                }
            }
            Stmt::Item(item) => errors.spanned(item, STATEMENT_HINT),
            Stmt::Macro(m) => errors.spanned(m, STATEMENT_HINT),
        }
    }
    out
}

/// Parses `call(args).opt(..)…`, `for v in items { call(..) }.opt(..)` or
/// `items.map(|v| call(..)).opt(..)`.
fn parse_node(expr: &Expr, errors: &mut Errors) -> Option<NodeExpr> {
    let mut opts = Vec::new();
    let mut cur = expr;
    loop {
        match cur {
            Expr::MethodCall(m) if m.method == "map" && is_closure_arg(&m.args) => {
                let Some(Expr::Closure(c)) = m.args.first() else {
                    return None;
                };
                let var = closure_var(c, errors)?;
                let mut inner = parse_node(&c.body, errors)?;
                if inner.fan_out.is_some() {
                    errors.spanned(
                        &c.body,
                        "nested fan-out is not supported: fan out in a separate node",
                    );
                    return None;
                }
                inner.fan_out = Some(FanOut {
                    var,
                    items: (*m.receiver).clone(),
                });
                opts.reverse();
                inner.opts.extend(opts);
                return Some(inner);
            }
            Expr::MethodCall(m) => {
                opts.push(Opt {
                    name: m.method.clone(),
                    args: m.args.clone(),
                    span: m.method.span(),
                });
                cur = &m.receiver;
            }
            Expr::ForLoop(f) => {
                let var = match &*f.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    other => {
                        errors.spanned(
                            other,
                            "the fan-out item must be a plain name: `for item in items { … }`",
                        );
                        return None;
                    }
                };
                let [Stmt::Expr(body, _)] = f.body.stmts.as_slice() else {
                    errors.spanned(
                        &f.body,
                        "a fan-out body is exactly one job call: `for m in markets { integrate(m) }`",
                    );
                    return None;
                };
                let mut inner = parse_node(body, errors)?;
                if inner.fan_out.is_some() {
                    errors.spanned(
                        body,
                        "nested fan-out is not supported: fan out in a separate node",
                    );
                    return None;
                }
                inner.fan_out = Some(FanOut {
                    var,
                    items: (*f.expr).clone(),
                });
                opts.reverse();
                inner.opts.extend(opts);
                return Some(inner);
            }
            Expr::Call(c) => {
                let Expr::Path(p) = &*c.func else {
                    errors.spanned(
                        &c.func,
                        "call a `#[job]` function by name, e.g. `fetch(a, b)`",
                    );
                    return None;
                };
                if p.qself.is_some() {
                    errors.spanned(
                        p,
                        "call a `#[job]` function by its path, e.g. `jobs::fetch(a)`",
                    );
                    return None;
                }
                opts.reverse();
                return Some(NodeExpr {
                    call: Call {
                        path: p.path.clone(),
                        paren: c.paren_token,
                        args: c.args.iter().cloned().collect(),
                    },
                    fan_out: None,
                    opts,
                });
            }
            Expr::Paren(p) => cur = &p.expr,
            Expr::Group(g) => cur = &g.expr,
            other => {
                errors.spanned(
                    other,
                    format_args!("expected a `#[job]` call here; {STATEMENT_HINT}"),
                );
                return None;
            }
        }
    }
}

fn is_closure_arg(args: &Punctuated<Expr, Token![,]>) -> bool {
    args.len() == 1 && matches!(args.first(), Some(Expr::Closure(_)))
}

fn closure_var(c: &syn::ExprClosure, errors: &mut Errors) -> Option<Ident> {
    match c.inputs.iter().collect::<Vec<_>>().as_slice() {
        [Pat::Ident(p)] if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
        _ => {
            errors.spanned(
                &c.inputs,
                "the fan-out closure takes one plain name: `items.map(|item| job(item))`",
            );
            None
        }
    }
}
