//! `#[job]`: parse → validate → expand.

mod expand;
mod model;
mod parse;
mod resource;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::diag::Errors;

/// Expands `#[job(attr)] item`. On error the function is emitted unchanged next to the
/// errors, so the rest of the crate (and the IDE) still sees it.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (krate, attrs) = parse::parse_attrs(attr, &mut errors);
    let func = match syn::parse2::<ItemFn>(item) {
        Ok(f) => f,
        Err(e) => {
            errors.at(
                e.span(),
                "`#[job]` goes on an `async fn name(ctx: &JobContext, args…) -> Result<T, E>`",
            );
            return errors.to_compile_errors();
        }
    };
    let model = validate::validate(&func, attrs, krate, &mut errors);
    // The `#[resource]` markers are `#[job]`'s: the emitted function goes without them.
    let func = resource::strip(&func);
    match model {
        Some(model) if errors.is_empty() => expand::expand(&func, &model),
        _ => {
            let errs = errors.to_compile_errors();
            quote!(#func #errs)
        }
    }
}
