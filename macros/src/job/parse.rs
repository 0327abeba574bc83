//! `#[job(...)]`: the attribute list and the function, as written.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{Expr, LitStr, Token};

use crate::crate_path::{CratePath, parse_entry, split};
use crate::diag::{Errors, parse_list};
use crate::value::{BackoffSrc, DurationSrc};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(queue);
    syn::custom_keyword!(resources);
    syn::custom_keyword!(type_name);
    syn::custom_keyword!(cpu);
    syn::custom_keyword!(memory);
    syn::custom_keyword!(cpu_limit);
    syn::custom_keyword!(memory_limit);
}

/// Every attribute `#[job]` accepts, for messages.
pub(crate) const ATTRIBUTES: &str =
    "name, type_name, retries, backoff, timeout, priority, queue, resources";

/// One `key = value` (or `resources(...)`) entry.
pub(crate) enum JobAttr {
    Name(Span, LitStr),
    Retries(Span, Expr),
    Backoff(Span, BackoffSrc),
    Timeout(Span, DurationSrc),
    Priority(Span, Expr),
    Queue(Span, LitStr),
    /// The entries that parsed, and the errors of those that did not.
    Resources(Span, Vec<Resource>, Errors),
    TypeName(Span, syn::Ident),
}

/// Which resource a `resources(...)` entry sets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKey {
    Cpu,
    Memory,
    CpuLimit,
    MemoryLimit,
}

impl ResourceKey {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResourceKey::Cpu => "cpu",
            ResourceKey::Memory => "memory",
            ResourceKey::CpuLimit => "cpu_limit",
            ResourceKey::MemoryLimit => "memory_limit",
        }
    }
}

/// `cpu = "500m"`.
pub(crate) struct Resource {
    pub(crate) key: ResourceKey,
    pub(crate) key_span: Span,
    pub(crate) value: LitStr,
}

/// Parses the attribute list into the crate path (`crate = …`, default `::dagforge`)
/// and the other attributes; bad entries are reported and skipped.
pub(crate) fn parse_attrs(tokens: TokenStream, errors: &mut Errors) -> (CratePath, Vec<JobAttr>) {
    let parser = |input: ParseStream<'_>| {
        Ok(parse_list(input, errors, |input| {
            parse_entry(input, parse_one)
        }))
    };
    let entries = parser.parse2(tokens).unwrap_or_default();
    split(entries, errors)
}

fn eq_then<T: syn::parse::Parse>(input: ParseStream<'_>) -> syn::Result<T> {
    input.parse::<Token![=]>()?;
    input.parse()
}

fn parse_one(input: ParseStream<'_>) -> syn::Result<JobAttr> {
    let span = input.span();
    let l = input.lookahead1();
    if l.peek(kw::name) {
        input.parse::<kw::name>()?;
        Ok(JobAttr::Name(span, eq_then(input)?))
    } else if l.peek(kw::retries) {
        input.parse::<kw::retries>()?;
        Ok(JobAttr::Retries(span, eq_then(input)?))
    } else if l.peek(kw::backoff) {
        input.parse::<kw::backoff>()?;
        // Both `backoff = fixed(1s)` and `backoff(fixed(1s))` read naturally.
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            Ok(JobAttr::Backoff(span, content.parse()?))
        } else {
            Ok(JobAttr::Backoff(span, eq_then(input)?))
        }
    } else if l.peek(kw::timeout) {
        input.parse::<kw::timeout>()?;
        Ok(JobAttr::Timeout(span, eq_then(input)?))
    } else if l.peek(kw::priority) {
        input.parse::<kw::priority>()?;
        Ok(JobAttr::Priority(span, eq_then(input)?))
    } else if l.peek(kw::queue) {
        input.parse::<kw::queue>()?;
        Ok(JobAttr::Queue(span, eq_then(input)?))
    } else if l.peek(kw::resources) {
        input.parse::<kw::resources>()?;
        let content;
        syn::parenthesized!(content in input);
        let mut errors = Errors::default();
        let entries = parse_list(&content, &mut errors, parse_resource);
        Ok(JobAttr::Resources(span, entries, errors))
    } else if l.peek(kw::type_name) {
        input.parse::<kw::type_name>()?;
        Ok(JobAttr::TypeName(span, eq_then(input)?))
    } else if input.peek(syn::Ident) {
        let ident: syn::Ident = input.parse()?;
        Err(syn::Error::new(
            ident.span(),
            format_args!("unknown `#[job]` attribute `{ident}`; expected one of: {ATTRIBUTES}"),
        ))
    } else {
        Err(l.error())
    }
}

fn parse_resource(input: ParseStream<'_>) -> syn::Result<Resource> {
    let key_span = input.span();
    let key = if input.parse::<Option<kw::cpu_limit>>()?.is_some() {
        ResourceKey::CpuLimit
    } else if input.parse::<Option<kw::memory_limit>>()?.is_some() {
        ResourceKey::MemoryLimit
    } else if input.parse::<Option<kw::cpu>>()?.is_some() {
        ResourceKey::Cpu
    } else if input.parse::<Option<kw::memory>>()?.is_some() {
        ResourceKey::Memory
    } else {
        return Err(syn::Error::new(
            key_span,
            "unknown resource: expected `cpu`, `memory`, `cpu_limit` or `memory_limit`",
        ));
    };
    input.parse::<Token![=]>()?;
    let value = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a quoted Kubernetes quantity, e.g. \"500m\" or \"256Mi\"",
        )
    })?;
    Ok(Resource {
        key,
        key_span,
        value,
    })
}
