//! `#[workflow(...)]`: the attribute values checked (name, version, schedule).

use proc_macro2::Span;
use syn::Lit;

use crate::diag::{Errors, once};
use crate::value::{check_cron, non_empty};
use crate::workflow::parse::WfAttr;

/// The checked attributes; `None` where an attribute is absent (or was wrong).
pub(super) struct Attrs {
    pub(super) name: Option<String>,
    pub(super) version: Option<String>,
    pub(super) cron: Option<String>,
    pub(super) time_zone: Option<String>,
}

/// Checks every attribute, reporting each problem.
pub(super) fn check(attrs: Vec<WfAttr>, errors: &mut Errors) -> Attrs {
    let mut name = None;
    let mut version = None;
    let mut cron = None;
    let mut time_zone: Option<(String, Span)> = None;
    for attr in attrs {
        match attr {
            WfAttr::Name(span, lit) => {
                if let Some(v) = non_empty(&lit, "the workflow name", errors) {
                    once(&mut name, v, span, "name", errors);
                }
            }
            WfAttr::Version(span, lit) => {
                let v = match &lit {
                    Lit::Str(s) => non_empty(s, "the version", errors),
                    Lit::Int(i) => Some(i.base10_digits().to_owned()),
                    other => {
                        errors.spanned(other, "the version is a string, e.g. `version = \"2\"`");
                        None
                    }
                };
                if let Some(v) = v {
                    once(&mut version, v, span, "version", errors);
                }
            }
            WfAttr::Cron(span, lit) => {
                check_cron(&lit, errors);
                once(
                    &mut cron,
                    lit.value().trim().to_owned(),
                    span,
                    "cron",
                    errors,
                );
            }
            WfAttr::TimeZone(span, lit) => {
                if let Some(v) = non_empty(&lit, "the time zone", errors) {
                    let v = v.trim().to_owned();
                    if v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))
                    {
                        once(&mut time_zone, (v, lit.span()), span, "time_zone", errors);
                    } else {
                        errors.at(
                            lit.span(),
                            format_args!(
                                "malformed time zone `{v}`: expected an IANA name such as \"Europe/Paris\" or \"UTC\""
                            ),
                        );
                    }
                }
            }
        }
    }
    if let (Some((_, span)), None) = (&time_zone, &cron) {
        errors.at(
            *span,
            "`time_zone` applies to a schedule: add `cron = \"…\"`",
        );
    }
    let time_zone = time_zone.map(|(v, _)| v);
    Attrs {
        name,
        version,
        cron,
        time_zone,
    }
}
