//! `#[job]`: checks the function and the attributes, and builds the model the
//! expansion reads. Every problem is reported, not only the first.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, ExprUnary, FnArg, GenericArgument, Ident, ItemFn, Lit, Pat, PathArguments,
    ReturnType, Type, UnOp,
};

use super::model::{ArgModel, CallArg, JobModel, ResourceArg};
use super::parse::{JobAttr, Resource};
use super::resource;
use crate::crate_path::CratePath;
use crate::diag::{Errors, once};
use crate::naming::{pascal_case, unraw};
use crate::value::{check_quantity, non_empty};

/// Checks `func` and `attrs`. On error, every problem is in `errors` and `None` is returned.
pub(crate) fn validate(
    func: &ItemFn,
    attrs: Vec<JobAttr>,
    krate: CratePath,
    errors: &mut Errors,
) -> Option<JobModel> {
    let start = errors.count();
    let sig = &func.sig;

    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            "`#[job]` needs an `async fn`: add `async` before `fn`",
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(c.span, "a job function cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.at(u.span, "a job function cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a job function cannot have an `extern` ABI");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "generic job functions are not supported: a job's input and output are concrete serde types",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "a job function cannot be variadic");
    }

    let output = match &sig.output {
        ReturnType::Default => {
            errors.at(
                sig.paren_token.span.close(),
                "missing return type: a job returns `Result<T, E>`, e.g. `-> Result<u64, JobError>`",
            );
            None
        }
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(t) => Some(t.clone()),
            None => {
                errors.spanned(
                    ty,
                    "a job must return `Result<T, E>` (E: `JobError` or any `std::error::Error`); \
                     wrap the value: `-> Result<YourType, JobError>` and return `Ok(value)`",
                );
                None
            }
        },
    };

    let mut has_ctx = false;
    let mut args = Vec::new();
    let mut resource_args = Vec::new();
    let mut call = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let pat_type = match input {
            FnArg::Receiver(r) => {
                errors.spanned(
                    r,
                    "`#[job]` goes on a free function, not a method: remove `self`",
                );
                continue;
            }
            FnArg::Typed(t) => t,
        };
        let marked = resource::marker(pat_type, errors);
        if is_context(&pat_type.ty) {
            if let Some(span) = marked {
                errors.at(
                    span,
                    "the job context is not a resource: remove `#[resource]` (it is passed as `ctx: &JobContext`)",
                );
            }
            if i == 0 {
                has_ctx = true;
            } else {
                errors.spanned(
                    &pat_type.ty,
                    "the job context must be the first argument: `ctx: &JobContext, …`",
                );
            }
            continue;
        }
        let ident = match &*pat_type.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.spanned(
                    other,
                    "unsupported argument pattern: use a plain name such as `market: String` \
                     (the name becomes the input field); destructure inside the body",
                );
                continue;
            }
        };
        if marked.is_some() {
            if let Some(ty) = resource::resource_type(&pat_type.ty, errors) {
                call.push(CallArg::Resource(resource_args.len()));
                resource_args.push(ResourceArg { ty });
            }
            continue;
        }
        match &*pat_type.ty {
            Type::Reference(r) if is_plain_borrow(&r.elem) => errors.spanned(
                r,
                "job arguments are decoded from JSON and must be owned: \
                 use `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
            ),
            Type::Reference(r) => errors.spanned(
                r,
                "job arguments are decoded from JSON and must be owned; \
                 a client or pool shared by every attempt is a resource: \
                 mark the argument `#[resource]`",
            ),
            Type::ImplTrait(t) => errors.spanned(
                t,
                "`impl Trait` arguments are not supported: name a concrete serde type",
            ),
            _ => {}
        }
        call.push(CallArg::Input(args.len()));
        args.push(ArgModel {
            ident,
            ty: (*pat_type.ty).clone(),
        });
    }

    let fn_ident = sig.ident.clone();
    let plain = unraw(&fn_ident);
    let mut job_ident = format_ident!("{}", pascal_case(&plain), span = fn_ident.span());

    let mut name: Option<String> = None;
    let mut spec = Vec::new();
    let mut seen = Seen::default();
    for attr in attrs {
        match attr {
            JobAttr::Name(span, lit) => {
                if let Some(v) = non_empty(&lit, "the job name", errors) {
                    once(&mut seen.name, (), span, "name", errors);
                    name = Some(v);
                }
            }
            JobAttr::Retries(span, expr) => {
                once(&mut seen.retries, (), span, "retries", errors);
                if let Some(e) = check_int::<u32>(
                    &expr,
                    "retries",
                    "a whole number from 0 to 4294967295",
                    errors,
                ) {
                    spec.push(quote_spanned!(span=> .retries(#e)));
                }
            }
            JobAttr::Priority(span, expr) => {
                once(&mut seen.priority, (), span, "priority", errors);
                if let Some(e) = check_int::<i32>(
                    &expr,
                    "priority",
                    "a whole number from -2147483648 to 2147483647",
                    errors,
                ) {
                    spec.push(quote_spanned!(span=> .priority(#e)));
                }
            }
            JobAttr::Backoff(span, b) => {
                once(&mut seen.backoff, (), span, "backoff", errors);
                if let Some(e) = b.to_expr(&krate, errors) {
                    spec.push(quote_spanned!(span=> .backoff(#e)));
                }
            }
            JobAttr::Timeout(span, d) => {
                once(&mut seen.timeout, (), span, "timeout", errors);
                match d.to_expr() {
                    Ok(e) => spec.push(quote_spanned!(span=> .timeout(#e))),
                    Err(e) => errors.push(e),
                }
            }
            JobAttr::Queue(span, lit) => {
                once(&mut seen.queue, (), span, "queue", errors);
                if non_empty(&lit, "the queue name", errors).is_some() {
                    spec.push(quote_spanned!(span=> .queue(#lit)));
                }
            }
            JobAttr::TypeName(span, ident) => {
                once(&mut seen.type_name, (), span, "type_name", errors);
                job_ident = ident;
            }
            JobAttr::Resources(span, entries, parse_errors) => {
                once(&mut seen.resources, (), span, "resources", errors);
                errors.extend_from(&parse_errors);
                if let Some(e) = resources(span, &entries, &krate, errors) {
                    spec.push(quote_spanned!(span=> .resources(#e)));
                }
            }
        }
    }

    let output = output?;
    let input_ident = format_ident!("{}Input", job_ident, span = job_ident.span());
    (errors.count() == start).then(|| JobModel {
        ret_span: match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => sig.ident.span(),
        },
        vis: func.vis.clone(),
        docs: func
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        name: name.unwrap_or(plain),
        fn_ident,
        job_ident,
        input_ident,
        has_ctx,
        args,
        resources: resource_args,
        call,
        output,
        spec,
        krate,
    })
}

#[derive(Default)]
struct Seen {
    name: Option<()>,
    retries: Option<()>,
    backoff: Option<()>,
    timeout: Option<()>,
    priority: Option<()>,
    queue: Option<()>,
    resources: Option<()>,
    type_name: Option<()>,
}

fn resources(
    span: Span,
    entries: &[Resource],
    krate: &CratePath,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let start = errors.count();
    let k = krate.at(span);
    let mut out = quote_spanned!(span=> #k::Resources::new());
    let mut seen = Vec::new();
    for r in entries {
        let key = r.key.as_str();
        if seen.contains(&r.key) {
            errors.at(r.key_span, format_args!("duplicate resource `{key}`"));
            continue;
        }
        seen.push(r.key);
        let v = r.value.value();
        if let Err(why) = check_quantity(&v) {
            errors.at(
                r.value.span(),
                format_args!(
                    "malformed quantity `{v}` for `{key}`: {why}; use a Kubernetes quantity such as \"500m\", \"2\", \"256Mi\" or \"1Gi\""
                ),
            );
            continue;
        }
        let method = Ident::new(key, r.key_span);
        let lit = &r.value;
        out.extend(quote_spanned!(r.key_span=> .#method(#lit)));
    }
    (errors.count() == start).then_some(out)
}

/// An integer attribute: literals are range-checked here, other expressions (consts) are
/// left to the type checker.
fn check_int<T: std::str::FromStr>(
    expr: &Expr,
    what: &str,
    expected: &str,
    errors: &mut Errors,
) -> Option<Expr> {
    let lit = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Some((i.clone(), false)),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => Some((i.clone(), true)),
            _ => None,
        },
        Expr::Lit(other) => {
            errors.spanned(other, format_args!("`{what}` takes an integer, {expected}"));
            return None;
        }
        _ => None,
    };
    if let Some((lit, neg)) = lit {
        let text = if neg {
            format!("-{}", lit.base10_digits())
        } else {
            lit.base10_digits().to_owned()
        };
        if text.parse::<T>().is_err() {
            errors.spanned(
                expr,
                format_args!("invalid `{what}` value `{text}`: expected {expected}"),
            );
            return None;
        }
        // Drop any suffix so the literal takes the field's type.
        let clean: Expr = syn::parse_str(&text).ok()?;
        let clean = respan(clean, expr.span());
        return Some(clean);
    }
    Some(expr.clone())
}

fn respan(expr: Expr, span: Span) -> Expr {
    let tokens: TokenStream = quote::ToTokens::into_token_stream(expr)
        .into_iter()
        .map(|mut t| {
            t.set_span(span);
            t
        })
        .collect();
    syn::parse2(tokens).unwrap_or_else(|_| Expr::Verbatim(TokenStream::new()))
}

/// `T` in `Result<T, E>` / `Result<T>` (any path whose last segment is `Result`).
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `&JobContext`, `&dagforge::JobContext`, `&'_ JobContext`.
fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    if r.mutability.is_some() {
        return false;
    }
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.path
        .segments
        .last()
        .is_some_and(|s| s.ident == "JobContext" && s.arguments.is_none())
}

/// `str` or a slice: a borrowed form of a string or a list (`&str`, `&[T]`).
fn is_plain_borrow(ty: &Type) -> bool {
    match ty {
        Type::Slice(_) => true,
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("str"),
        _ => false,
    }
}
