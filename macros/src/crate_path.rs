//! The path generated code names the `dagforge` crate by: `::dagforge`, or the path given
//! with `crate = …` by a crate that re-exports dagforge under another name.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::{Lit, Path, Token};

use crate::diag::{Errors, once};

/// What `crate` takes, for messages.
const HINT: &str = "`crate` takes the path to the dagforge crate, e.g. \
     `crate = my_facade::dagforge` or `crate = \"my_facade::dagforge\"`";

/// The path to the `dagforge` crate in generated code.
#[derive(Clone, Default)]
pub(crate) struct CratePath {
    /// `None`: `::dagforge`.
    path: Option<Path>,
}

impl CratePath {
    /// The path as tokens. The default `::dagforge` is spanned at `span`, as if written in
    /// a `quote_spanned!` there; a path given with `crate = …` keeps its own spans, so
    /// it resolves where the user wrote it.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        match &self.path {
            None => quote_spanned!(span=> ::dagforge),
            Some(p) => p.to_token_stream(),
        }
    }

    /// The path to dagforge's serde re-export, as the string `#[serde(crate = "…")]` takes.
    pub(crate) fn serde(&self) -> String {
        let mut s = String::new();
        match &self.path {
            None => s.push_str("::dagforge"),
            Some(p) => {
                if p.leading_colon.is_some() {
                    s.push_str("::");
                }
                let segments: Vec<String> =
                    p.segments.iter().map(|seg| seg.ident.to_string()).collect();
                s.push_str(&segments.join("::"));
            }
        }
        s.push_str("::__private::serde");
        s
    }
}

/// `::dagforge` (or the given path) at the call site.
impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match &self.path {
            None => tokens.extend(quote!(::dagforge)),
            Some(p) => p.to_tokens(tokens),
        }
    }
}

/// One entry of an attribute list: `crate = …`, which both macros take, or one of the
/// macro's own attributes.
pub(crate) enum Entry<A> {
    /// `crate = path`, with the span of `crate`.
    Crate(Span, Path),
    /// Any other attribute.
    Attr(A),
}

/// Parses one entry: `crate = …` here, anything else with `attr`.
pub(crate) fn parse_entry<A>(
    input: ParseStream<'_>,
    attr: impl FnOnce(ParseStream<'_>) -> syn::Result<A>,
) -> syn::Result<Entry<A>> {
    if !input.peek(Token![crate]) {
        return attr(input).map(Entry::Attr);
    }
    let span = input.span();
    input.parse::<Token![crate]>()?;
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(span, HINT));
    }
    let value = input.span();
    let path = if input.peek(Lit) {
        match input.parse::<Lit>()? {
            Lit::Str(s) => {
                let text = s.value();
                if text.trim().is_empty() {
                    return Err(syn::Error::new(
                        s.span(),
                        "the crate path must not be empty",
                    ));
                }
                s.parse_with(Path::parse_mod_style).map_err(|_| {
                    syn::Error::new(
                        s.span(),
                        format_args!(
                            "malformed crate path `{text}`: expected a path such as \
                             `my_facade::dagforge` or `::dagforge`"
                        ),
                    )
                })?
            }
            _ => return Err(syn::Error::new(value, HINT)),
        }
    } else {
        // The value runs to the next top-level comma; all of it must be the path.
        let mut tokens = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![,]) {
            tokens.extend([input.parse::<proc_macro2::TokenTree>()?]);
        }
        if tokens.is_empty() {
            return Err(syn::Error::new(value, HINT));
        }
        Path::parse_mod_style
            .parse2(tokens.clone())
            .map_err(|_| syn::Error::new_spanned(&tokens, HINT))?
    };
    if let Some(seg) = path.segments.iter().find(|s| s.ident == "$crate") {
        return Err(syn::Error::new(
            seg.ident.span(),
            "`$crate` cannot be used in `crate = …`: name the crate, e.g. \
             `crate = ::my_facade::dagforge`",
        ));
    }
    Ok(Entry::Crate(span, path))
}

/// Splits parsed entries into the crate path (default `::dagforge`; a second `crate` is
/// reported) and the macro's own attributes, in order.
pub(crate) fn split<A>(entries: Vec<Entry<A>>, errors: &mut Errors) -> (CratePath, Vec<A>) {
    let mut path = None;
    let mut attrs = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Entry::Crate(span, p) => once(&mut path, p, span, "crate", errors),
            Entry::Attr(a) => attrs.push(a),
        }
    }
    (CratePath { path }, attrs)
}
