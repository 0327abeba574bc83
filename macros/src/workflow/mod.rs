//! `#[workflow]`: parse → validate → expand.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::diag::Errors;

/// Expands `#[workflow(attr)] item`. On error a function with the same name and return
/// type is still emitted (building an empty workflow), so callers keep type-checking and
/// only the real errors show.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (krate, attrs) = parse::parse_attrs(attr, &mut errors);
    let func = match syn::parse2::<ItemFn>(item) {
        Ok(f) => f,
        Err(e) => {
            errors.at(
                e.span(),
                "`#[workflow]` goes on a fn whose body is `let name = job(args…);` statements",
            );
            return errors.to_compile_errors();
        }
    };
    let stmts = parse::parse_body(&func.block, &mut errors);
    match validate::validate(&func, attrs, stmts, &krate, &mut errors) {
        Some(model) if errors.is_empty() => expand::expand(&model),
        _ => {
            let errs = errors.to_compile_errors();
            let vis = &func.vis;
            let ident = &func.sig.ident;
            let fn_attrs = &func.attrs;
            let name = ident.to_string();
            quote! {
                #(#fn_attrs)*
                #vis fn #ident() -> ::core::result::Result<#krate::Workflow, #krate::workflow::ValidationErrors> {
                    #krate::Workflow::builder(#name).build()
                }
                #errs
            }
        }
    }
}
