//! `#[resource]` on a `#[job]` argument: a shared value the job takes by reference
//! (`#[resource] db: &Pool`) instead of an input field.

use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ItemFn, Meta, PatType, Type};

use crate::diag::Errors;

/// Whether `attr` is `#[resource]` (with or without arguments).
pub(crate) fn is_resource_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("resource")
}

/// `func` without its `#[resource]` argument attributes, which only `#[job]` reads (the
/// compiler would reject them on the emitted function).
pub(crate) fn strip(func: &ItemFn) -> ItemFn {
    let mut func = func.clone();
    for input in &mut func.sig.inputs {
        if let FnArg::Typed(t) = input {
            t.attrs.retain(|a| !is_resource_attr(a));
        }
    }
    func
}

/// The argument's `#[resource]` marker, checked: `Some(span)` when the argument is
/// marked (once, without arguments); every misuse is reported.
pub(crate) fn marker(arg: &PatType, errors: &mut Errors) -> Option<proc_macro2::Span> {
    let mut found: Option<proc_macro2::Span> = None;
    for attr in arg.attrs.iter().filter(|a| is_resource_attr(a)) {
        if !matches!(attr.meta, Meta::Path(_)) {
            errors.spanned(
                &attr.meta,
                "`#[resource]` takes no arguments: the argument's type says which resource it is",
            );
        }
        if found.is_some() {
            errors.spanned(attr, "duplicate `#[resource]` on this argument");
        }
        found.get_or_insert(attr.span());
    }
    found
}

/// The resource type `T` of a `#[resource]` argument, which must be `&T` with `T` a
/// concrete type; `None` (reported) otherwise.
pub(crate) fn resource_type(ty: &Type, errors: &mut Errors) -> Option<Type> {
    let Type::Reference(r) = ty else {
        errors.spanned(
            ty,
            "a resource is shared by every attempt: take it by reference, e.g. `#[resource] db: &Pool`",
        );
        return None;
    };
    if let Some(m) = &r.mutability {
        errors.spanned(
            m,
            "a resource is shared by every attempt running at once: take `&T`, not `&mut T` \
             (use a `Mutex` or atomics inside it for state that changes)",
        );
        return None;
    }
    match &*r.elem {
        Type::ImplTrait(_) | Type::TraitObject(_) | Type::Infer(_) => {
            errors.spanned(
                &r.elem,
                "a resource is found by its type: name a concrete type, e.g. `&reqwest::Client`",
            );
            None
        }
        elem => Some(elem.clone()),
    }
}
