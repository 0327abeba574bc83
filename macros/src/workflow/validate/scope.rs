//! `#[workflow]`: the names in scope at a job call (earlier bindings and run
//! parameters), and the messages for names that are not.

use std::collections::HashMap;

use proc_macro2::Ident;

use crate::diag::Errors;
use crate::naming::unraw;
use crate::workflow::model::Source;

/// The names a job call can refer to.
pub(super) struct Scope<'a> {
    /// Binding name → node index, for the bindings defined so far.
    pub(super) bound: HashMap<String, usize>,
    /// Every binding of the body, for "defined later" messages.
    pub(super) all: &'a HashMap<String, usize>,
    /// Parameter name → the variable holding its `Source`.
    pub(super) params: &'a HashMap<String, Ident>,
}

/// Lower-case single names must be bindings or parameters; anything else is a constant.
pub(super) fn looks_like_value_name(ident: &Ident) -> bool {
    unraw(ident)
        .chars()
        .next()
        .is_some_and(|c| c.is_lowercase() || c == '_')
}

impl Scope<'_> {
    fn known(&self) -> String {
        let mut names: Vec<&str> = self.bound.keys().map(String::as_str).collect();
        names.extend(self.params.keys().map(String::as_str));
        names.sort_unstable();
        if names.is_empty() {
            "none yet".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// An error for a name that is neither bound yet nor a parameter.
    pub(super) fn unknown(&self, ident: &Ident, errors: &mut Errors) {
        self.unknown_as(ident, true, errors);
    }

    /// Like `unknown`, for places that only take a binding (`consts`: false).
    pub(super) fn unknown_as(&self, ident: &Ident, consts: bool, errors: &mut Errors) {
        let name = ident.to_string();
        if self.all.contains_key(&name) {
            errors.spanned(
                ident,
                format_args!("`{name}` is bound later in the workflow: move this call after `let {name} = …;`"),
            );
        } else {
            errors.spanned(
                ident,
                format_args!(
                    "unknown binding `{name}`: use {}; in scope: {}",
                    if consts {
                        "an earlier `let` binding, a parameter of the workflow fn, \
                         or a constant (a literal or a SCREAMING_CASE const)"
                    } else {
                        "an earlier `let` binding"
                    },
                    self.known()
                ),
            );
        }
    }

    /// A name as an upstream source.
    pub(super) fn source(&self, ident: &Ident) -> Option<Source> {
        let name = ident.to_string();
        if self.bound.contains_key(&name) {
            Some(Source::Node(ident.clone()))
        } else {
            self.params.get(&name).map(|var| {
                let mut var = var.clone();
                var.set_span(ident.span());
                Source::Param(var)
            })
        }
    }
}
