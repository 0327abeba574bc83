//! Values shared by both macros: durations, Kubernetes quantities and backoff policies,
//! parsed from attribute tokens and checked at compile time.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::parse::{Parse, ParseStream};
use syn::{Lit, Token};

use crate::crate_path::CratePath;
use crate::diag::Errors;

mod kw {
    syn::custom_keyword!(fixed);
    syn::custom_keyword!(exponential);
    syn::custom_keyword!(none);
    syn::custom_keyword!(max);
    syn::custom_keyword!(factor);
    syn::custom_keyword!(jitter);
}

const DURATION_HINT: &str =
    "write a number and a unit (ms, s, m, h, d), e.g. \"30s\", \"500ms\" or \"1m30s\"";

/// A duration as written: `"30s"`, `500ms`, `1.5s`, `"1m30s"`.
pub(crate) struct DurationSrc {
    text: String,
    span: Span,
}

impl Parse for DurationSrc {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let span = input.span();
        let text = match input.parse::<Lit>() {
            Ok(Lit::Str(s)) => s.value(),
            Ok(Lit::Int(i)) => i.to_string(),
            Ok(Lit::Float(f)) => f.to_string(),
            _ => {
                return Err(syn::Error::new(
                    span,
                    format_args!("expected a duration: {DURATION_HINT}"),
                ));
            }
        };
        Ok(DurationSrc { text, span })
    }
}

impl DurationSrc {
    /// The duration in milliseconds, or an error at the literal.
    pub(crate) fn millis(&self) -> syn::Result<u64> {
        parse_duration(&self.text).map_err(|why| {
            syn::Error::new(
                self.span,
                format_args!("malformed duration `{}`: {why}; {DURATION_HINT}", self.text),
            )
        })
    }

    /// A `core::time::Duration` expression, or an error.
    pub(crate) fn to_expr(&self) -> syn::Result<TokenStream> {
        let ms = self.millis()?;
        Ok(quote_spanned!(self.span=> ::core::time::Duration::from_millis(#ms)))
    }
}

/// Parses `"1m30s"`-style text into milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let num: String = num.chars().filter(|&c| c != '_').collect();
        if num.is_empty() {
            return Err(format!("expected a number before `{tail}`"));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{num}` is not a number"))?;
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => return Err(format!("`{num}` has no unit")),
            other => return Err(format!("unknown unit `{other}`")),
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total >= u64::MAX as f64 {
        return Err("it is too long".to_owned());
    }
    Ok(total.round() as u64)
}

/// Checks a Kubernetes resource quantity such as `500m`, `0.5`, `256Mi` or `1e3`.
pub(crate) fn check_quantity(text: &str) -> Result<(), String> {
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (num, suffix) = text.split_at(digits_end);
    let num = num.strip_prefix('+').unwrap_or(num);
    let valid_num = !num.is_empty()
        && num.matches('.').count() <= 1
        && num != "."
        && num.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !valid_num {
        return Err("it must start with a number".to_owned());
    }
    let valid_suffix = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
        .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    if valid_suffix {
        Ok(())
    } else {
        Err(format!("unknown suffix `{suffix}`"))
    }
}

enum BackoffKind {
    Fixed,
    Exponential,
    None,
}

struct Number {
    value: f64,
    span: Span,
}

impl Parse for Number {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let span = input.span();
        let value = match input.parse::<Lit>() {
            Ok(Lit::Float(f)) => f.base10_parse::<f64>()?,
            Ok(Lit::Int(i)) => i.base10_parse::<f64>()?,
            _ => return Err(syn::Error::new(span, "expected a number, e.g. `2.0`")),
        };
        Ok(Number { value, span })
    }
}

/// A backoff policy as written: `fixed(500ms)`, `exponential(1s, max = 1m, factor = 3,
/// jitter = 0.2)` or `none`.
pub(crate) struct BackoffSrc {
    kind: BackoffKind,
    span: Span,
    delay: Option<DurationSrc>,
    max: Option<DurationSrc>,
    factor: Option<Number>,
    jitter: Option<Number>,
    errors: Errors,
}

impl Parse for BackoffSrc {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let span = input.span();
        let kind = if input.parse::<Option<kw::fixed>>()?.is_some() {
            BackoffKind::Fixed
        } else if input.parse::<Option<kw::exponential>>()?.is_some() {
            BackoffKind::Exponential
        } else if input.parse::<Option<kw::none>>()?.is_some() {
            BackoffKind::None
        } else {
            return Err(syn::Error::new(
                span,
                "expected a backoff: `fixed(500ms)`, `exponential(1s, max = 1m)` or `none`",
            ));
        };
        let mut b = BackoffSrc {
            kind,
            span,
            delay: None,
            max: None,
            factor: None,
            jitter: None,
            errors: Errors::default(),
        };
        if matches!(b.kind, BackoffKind::None) {
            return Ok(b);
        }
        let content;
        syn::parenthesized!(content in input);
        b.delay = Some(content.parse()?);
        while !content.is_empty() {
            content.parse::<Token![,]>()?;
            if content.is_empty() {
                break;
            }
            let key_span = content.span();
            if content.parse::<Option<kw::max>>()?.is_some() {
                content.parse::<Token![=]>()?;
                let v = content.parse()?;
                crate::diag::once(&mut b.max, v, key_span, "max", &mut b.errors);
            } else if content.parse::<Option<kw::factor>>()?.is_some() {
                content.parse::<Token![=]>()?;
                let v = content.parse()?;
                crate::diag::once(&mut b.factor, v, key_span, "factor", &mut b.errors);
            } else if content.parse::<Option<kw::jitter>>()?.is_some() {
                content.parse::<Token![=]>()?;
                let v = content.parse()?;
                crate::diag::once(&mut b.jitter, v, key_span, "jitter", &mut b.errors);
            } else {
                return Err(syn::Error::new(
                    key_span,
                    "unknown backoff option: expected `max = <duration>`, `factor = <number>` or `jitter = <0.0-1.0>`",
                ));
            }
        }
        Ok(b)
    }
}

impl BackoffSrc {
    /// Checks the values and returns a `dagforge::Backoff` expression (`krate` being the
    /// path to dagforge). Problems go to `errors`; `None` then.
    pub(crate) fn to_expr(&self, krate: &CratePath, errors: &mut Errors) -> Option<TokenStream> {
        let before = errors_len(errors);
        errors.extend_from(&self.errors);
        let span = self.span;
        let k = krate.at(span);
        let mut expr = match self.kind {
            BackoffKind::None => quote_spanned!(span=> #k::Backoff::none()),
            BackoffKind::Fixed | BackoffKind::Exponential => {
                let delay = self.delay.as_ref().map(DurationSrc::to_expr);
                let delay = match delay {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        errors.push(e);
                        TokenStream::new()
                    }
                    None => TokenStream::new(),
                };
                if matches!(self.kind, BackoffKind::Fixed) {
                    quote_spanned!(span=> #k::Backoff::fixed(#delay))
                } else {
                    quote_spanned!(span=> #k::Backoff::exponential(#delay))
                }
            }
        };
        if let Some(max) = &self.max {
            match max.to_expr() {
                Ok(d) => expr.extend(quote_spanned!(max.span=> .max_delay(#d))),
                Err(e) => errors.push(e),
            }
        }
        if let Some(f) = &self.factor {
            if matches!(self.kind, BackoffKind::Fixed) {
                errors.at(
                    f.span,
                    "a fixed backoff has no factor: use `exponential(…, factor = …)`",
                );
            } else if !(f.value.is_finite() && f.value >= 1.0) {
                errors.at(f.span, "the backoff factor must be at least 1.0");
            } else {
                let v = f.value;
                expr.extend(quote_spanned!(f.span=> .factor(#v)));
            }
        }
        if let Some(j) = &self.jitter {
            if (0.0..=1.0).contains(&j.value) {
                let v = j.value;
                expr.extend(quote_spanned!(j.span=> .jitter(#v)));
            } else {
                errors.at(j.span, "jitter is a fraction between 0.0 and 1.0");
            }
        }
        (errors_len(errors) == before).then_some(expr)
    }
}

fn errors_len(errors: &Errors) -> usize {
    errors.count()
}

/// A string literal whose value must not be empty.
pub(crate) fn non_empty(lit: &syn::LitStr, what: &str, errors: &mut Errors) -> Option<String> {
    let v = lit.value();
    if v.trim().is_empty() {
        errors.at(lit.span(), format_args!("{what} must not be empty"));
        None
    } else {
        Some(v)
    }
}

/// A quick check that a value looks like a cron expression: 5 to 7 fields, or an
/// `@hourly`-style macro. The scheduler parses it fully.
pub(crate) fn check_cron(lit: &syn::LitStr, errors: &mut Errors) {
    let v = lit.value();
    let v = v.trim();
    let ok = if let Some(name) = v.strip_prefix('@') {
        matches!(
            name,
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly"
        )
    } else {
        let fields: Vec<&str> = v.split_whitespace().collect();
        (5..=7).contains(&fields.len())
            && fields.iter().all(|f| {
                f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ",-*/?LW#".contains(c))
            })
    };
    if !ok {
        errors.at(
            lit.span(),
            format_args!(
                "malformed cron expression `{v}`: expected 5 to 7 fields (seconds optional), e.g. \"0 3 * * *\", or @hourly/@daily/…"
            ),
        );
    }
}
