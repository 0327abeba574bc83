//! Error collection: every problem is reported at once, each with its own span.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::ParseStream;

/// Accumulates `syn::Error`s so that a macro reports all of them in one compile.
#[derive(Default)]
pub(crate) struct Errors {
    inner: Option<syn::Error>,
}

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.inner {
            Some(all) => all.combine(error),
            None => self.inner = Some(error),
        }
    }

    /// Adds an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Adds an error covering `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Adds a copy of every error in `other`.
    pub(crate) fn extend_from(&mut self, other: &Errors) {
        if let Some(e) = &other.inner {
            self.push(e.clone());
        }
    }

    /// How many errors were reported.
    pub(crate) fn count(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |e| e.clone().into_iter().count())
    }

    /// Whether no error was reported.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// The `compile_error!` invocations for every collected error.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.inner
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }
}

/// Parses a comma-separated attribute list with `one`, recovering after an error: the
/// failing entry is skipped up to the next top-level comma and parsing goes on, so
/// every bad entry is reported.
pub(crate) fn parse_list<T>(
    input: ParseStream<'_>,
    errors: &mut Errors,
    mut one: impl FnMut(ParseStream<'_>) -> syn::Result<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    while !input.is_empty() {
        match one(input) {
            Ok(v) => out.push(v),
            Err(e) => {
                errors.push(e);
                skip_to_comma(input);
            }
        }
        if input.is_empty() {
            break;
        }
        if let Err(e) = input.parse::<syn::Token![,]>() {
            errors.push(syn::Error::new(e.span(), "expected `,` between entries"));
            skip_to_comma(input);
            let _ = input.parse::<Option<syn::Token![,]>>();
        }
    }
    out
}

fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        if input.parse::<proc_macro2::TokenTree>().is_err() {
            break;
        }
    }
}

/// Rejects a second occurrence of an attribute, pointing at it.
pub(crate) fn once<T>(slot: &mut Option<T>, value: T, span: Span, what: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(
            span,
            format_args!("duplicate `{what}` attribute: give it once"),
        );
    } else {
        *slot = Some(value);
    }
}
