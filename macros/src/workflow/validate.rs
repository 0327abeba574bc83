//! `#[workflow]`: resolves every argument against the bindings and parameters in scope,
//! checks the options, and builds the model the expansion reads.

use std::collections::{BTreeMap, HashMap};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote_spanned};
use syn::spanned::Spanned;
use syn::token::Paren;
use syn::{
    Attribute, Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Member, Pat, ReturnType, Type,
    Visibility,
};

use super::parse::{NodeStmt, Opt, WfAttr};
use crate::diag::{Errors, once};
use crate::value::{BackoffSrc, DurationSrc, check_cron, non_empty};

/// A validated `#[workflow]`.
pub(crate) struct WfModel {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) fn_ident: Ident,
    pub(crate) meta_ident: Ident,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) cron: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) params: Vec<ParamModel>,
    pub(crate) nodes: Vec<NodeModel>,
}

/// A run parameter (an argument of the workflow function).
pub(crate) struct ParamModel {
    pub(crate) name: String,
    pub(crate) var: Ident,
    pub(crate) ty: Type,
}

/// One node.
pub(crate) struct NodeModel {
    pub(crate) var: Ident,
    pub(crate) id: String,
    pub(crate) id_span: Span,
    pub(crate) path: syn::Path,
    pub(crate) paren: Paren,
    pub(crate) args: Vec<ArgModel>,
    pub(crate) opts: Vec<TokenStream>,
}

/// One argument of a job call.
pub(crate) struct ArgModel {
    pub(crate) span: Span,
    pub(crate) wiring: Wiring,
}

/// Where an argument's value comes from.
pub(crate) enum Wiring {
    /// The fan-out item; the items come from here.
    Each(Source),
    /// An upstream node's output or a run parameter.
    Bind(Source),
    /// A constant expression.
    Const(Expr),
}

/// An upstream value.
pub(crate) enum Source {
    /// A whole node output.
    Node(Ident),
    /// A (nested) field of a node output.
    Field(Ident, Vec<Ident>),
    /// A run parameter: the variable holding its `Source`.
    Param(Ident),
}

struct Scope<'a> {
    /// Binding name → node index, for the bindings defined so far.
    bound: HashMap<String, usize>,
    /// Every binding of the body, for "defined later" messages.
    all: &'a HashMap<String, usize>,
    params: &'a HashMap<String, Ident>,
}

const OPTIONS: &str =
    "id, after, when, when_all, trigger, retries, backoff, timeout, priority, concurrency";

pub(crate) fn validate(
    func: &ItemFn,
    attrs: Vec<WfAttr>,
    stmts: Vec<NodeStmt>,
    errors: &mut Errors,
) -> Option<WfModel> {
    let start = errors.count();
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        errors.at(
            a.span,
            "a `#[workflow]` fn only describes the graph and runs nothing: remove `async`",
        );
    }
    if let ReturnType::Type(arrow, ty) = &sig.output {
        let mut e = syn::Error::new(
            arrow.spans[0],
            "remove the return type: `#[workflow]` makes the fn return `Result<Workflow, ValidationErrors>`",
        );
        e.combine(syn::Error::new_spanned(ty, "declared here"));
        errors.push(e);
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(&sig.generics, "a `#[workflow]` fn cannot be generic");
    }
    for tok in [sig.constness.map(|t| t.span), sig.unsafety.map(|t| t.span)]
        .into_iter()
        .flatten()
    {
        errors.at(tok, "a `#[workflow]` fn cannot be `const` or `unsafe`");
    }

    let mut params = Vec::new();
    let mut param_vars = HashMap::new();
    for input in &sig.inputs {
        let FnArg::Typed(t) = input else {
            errors.spanned(
                input,
                "a `#[workflow]` fn is a free function: remove `self`",
            );
            continue;
        };
        let Pat::Ident(p) = &*t.pat else {
            errors.spanned(
                &t.pat,
                "a workflow parameter is a plain name: `market: String` (it becomes the run parameter `market`)",
            );
            continue;
        };
        if let Type::Reference(r) = &*t.ty {
            errors.spanned(
                r,
                "run parameters are decoded from JSON and must be owned: use `String` instead of `&str`",
            );
            continue;
        }
        let name = unraw(&p.ident);
        let var = format_ident!("__dagforge_param_{}", name, span = p.ident.span());
        param_vars.insert(p.ident.to_string(), var.clone());
        params.push(ParamModel {
            name,
            var,
            ty: (*t.ty).clone(),
        });
    }

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

    if stmts.is_empty() && errors.count() == start {
        errors.spanned(
            &func.block,
            "a workflow needs at least one job call: `let name = job(args…);`",
        );
    }

    let mut all = HashMap::new();
    for (i, s) in stmts.iter().enumerate() {
        if let Some(b) = &s.binding {
            all.entry(b.to_string()).or_insert(i);
        }
    }
    let mut scope = Scope {
        bound: HashMap::new(),
        all: &all,
        params: &param_vars,
    };
    let mut nodes: Vec<NodeModel> = Vec::new();
    let mut ids: HashMap<String, Span> = HashMap::new();
    for (i, stmt) in stmts.into_iter().enumerate() {
        if let Some(node) = node(i, &stmt, &scope, errors) {
            if let Some(first) = ids.get(&node.id) {
                let mut e = syn::Error::new(
                    node.id_span,
                    format_args!(
                        "duplicate node `{}`: rename the binding or give the node another id with `.id(\"…\")`",
                        node.id
                    ),
                );
                e.combine(syn::Error::new(*first, "first defined here"));
                errors.push(e);
            } else {
                ids.insert(node.id.clone(), node.id_span);
            }
            nodes.push(node);
        }
        if let Some(b) = &stmt.binding {
            scope.bound.insert(b.to_string(), i);
        }
    }

    let fn_ident = sig.ident.clone();
    let plain = unraw(&fn_ident);
    let meta_ident = format_ident!(
        "{}Workflow",
        crate::job::pascal_case(&plain),
        span = fn_ident.span()
    );
    (errors.count() == start).then(|| WfModel {
        attrs: func.attrs.clone(),
        vis: func.vis.clone(),
        fn_ident,
        meta_ident,
        name: name.unwrap_or(plain),
        version,
        cron,
        time_zone,
        params,
        nodes,
    })
}

fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").unwrap_or(&s).to_owned()
}

fn node(
    index: usize,
    stmt: &NodeStmt,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<NodeModel> {
    let start = errors.count();
    let call = &stmt.node.call;
    let Some(job_seg) = call.path.segments.last() else {
        errors.spanned(&call.path, "expected a `#[job]` function");
        return None;
    };
    if !job_seg.arguments.is_none() {
        errors.spanned(
            &job_seg.arguments,
            "job functions take no generic arguments",
        );
    }
    let fan_var = stmt.node.fan_out.as_ref().map(|f| &f.var);
    let mut upstream = BTreeMap::new();
    let mut args = Vec::new();
    let mut items_used = 0usize;
    for arg in &call.args {
        let span = arg.span();
        let Some(wiring) = classify_arg(arg, fan_var, scope, errors) else {
            continue;
        };
        match &wiring {
            Wiring::Each(_) => items_used += 1,
            Wiring::Bind(src) => {
                if let Some(n) = src.node() {
                    upstream.insert(n.to_string(), n.clone());
                }
            }
            Wiring::Const(_) => {}
        }
        args.push(ArgModel { span, wiring });
    }

    let mut fanned = false;
    if let Some(f) = &stmt.node.fan_out {
        fanned = true;
        if let Some(src) = classify_items(&f.items, scope, errors) {
            {
                if let Some(n) = src.node() {
                    upstream.insert(n.to_string(), n.clone());
                }
                match items_used {
                    1 => {
                        for a in &mut args {
                            if matches!(a.wiring, Wiring::Each(_)) {
                                a.wiring = Wiring::Each(src);
                                break;
                            }
                        }
                    }
                    0 => errors.spanned(
                        &f.var,
                        format_args!(
                            "the fan-out item `{}` is not passed to the job: pass it as one argument, e.g. `job({}, …)`",
                            f.var, f.var
                        ),
                    ),
                    _ => errors.spanned(
                        &f.var,
                        format_args!("the fan-out item `{}` can be passed to only one argument", f.var),
                    ),
                }
            }
        }
    }

    let (mut id, mut id_span) = match &stmt.binding {
        Some(b) => (unraw(b), b.span()),
        None => (unraw(&job_seg.ident), job_seg.ident.span()),
    };
    let mut opts = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for opt in &stmt.node.opts {
        let key = opt.name.to_string();
        let repeatable = matches!(key.as_str(), "after" | "when" | "when_all");
        if !repeatable {
            if let Some(_first) = seen.get(&key) {
                errors.at(
                    opt.span,
                    format_args!("duplicate `.{key}()` on this node: give it once"),
                );
                continue;
            }
            seen.insert(key.clone(), opt.span);
        }
        if let Some((new_id, span)) = option(opt, fanned, &upstream, scope, &mut opts, errors) {
            id = new_id;
            id_span = span;
        }
    }

    let var = match &stmt.binding {
        Some(b) => b.clone(),
        None => format_ident!("__dagforge_node_{}", index),
    };
    (errors.count() == start).then(|| NodeModel {
        var,
        id,
        id_span,
        path: call.path.clone(),
        paren: call.paren,
        args,
        opts,
    })
}

impl Source {
    fn node(&self) -> Option<&Ident> {
        match self {
            Source::Node(n) | Source::Field(n, _) => Some(n),
            Source::Param(_) => None,
        }
    }
}

fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Reference(r) if r.mutability.is_none() => strip(&r.expr),
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        other => other,
    }
}

/// `a.b.c` → (`a`, [`b`, `c`]) when every member is named.
fn field_chain(expr: &Expr, errors: &mut Errors) -> Option<(Ident, Vec<Ident>)> {
    let mut fields = Vec::new();
    let mut cur = expr;
    loop {
        match cur {
            Expr::Field(f) => {
                match &f.member {
                    Member::Named(i) => fields.push(i.clone()),
                    Member::Unnamed(i) => {
                        errors.spanned(
                            i,
                            "only named fields of a result can be bound, not tuple fields",
                        );
                        return None;
                    }
                }
                cur = &f.base;
            }
            Expr::Path(p) if p.qself.is_none() => {
                let base = p.path.get_ident()?.clone();
                fields.reverse();
                return Some((base, fields));
            }
            _ => return None,
        }
    }
}

/// Lower-case single names must be bindings or parameters; anything else is a constant.
fn looks_like_value_name(ident: &Ident) -> bool {
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
    fn unknown(&self, ident: &Ident, errors: &mut Errors) {
        self.unknown_as(ident, true, errors);
    }

    /// Like `unknown`, for places that only take a binding (`consts`: false).
    fn unknown_as(&self, ident: &Ident, consts: bool, errors: &mut Errors) {
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
    fn source(&self, ident: &Ident) -> Option<Source> {
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

fn classify_arg(
    arg: &Expr,
    fan_var: Option<&Ident>,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<Wiring> {
    let inner = strip(arg);
    match inner {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            let ident = p.path.get_ident()?;
            if fan_var == Some(ident) {
                // Filled in with the items once the fan-out source is resolved.
                return Some(Wiring::Each(Source::Node(ident.clone())));
            }
            if let Some(src) = scope.source(ident) {
                return Some(Wiring::Bind(src));
            }
            if looks_like_value_name(ident) {
                scope.unknown(ident, errors);
                return None;
            }
            Some(Wiring::Const(arg.clone()))
        }
        Expr::Field(_) => {
            let Some((base, fields)) = field_chain(inner, errors) else {
                return check_const(arg, fan_var, scope, errors);
            };
            if fan_var == Some(&base) {
                errors.spanned(
                    inner,
                    format_args!(
                        "pass the fan-out item `{base}` whole and read its fields inside the job"
                    ),
                );
                return None;
            }
            match scope.source(&base) {
                Some(Source::Node(n)) => Some(Wiring::Bind(Source::Field(n, fields))),
                Some(_) => {
                    errors.spanned(
                        inner,
                        format_args!("a parameter is bound whole: pass `{base}` and read the field inside the job"),
                    );
                    None
                }
                None if looks_like_value_name(&base) => {
                    scope.unknown(&base, errors);
                    None
                }
                None => Some(Wiring::Const(arg.clone())),
            }
        }
        Expr::Lit(_) => Some(Wiring::Const(arg.clone())),
        _ => check_const(arg, fan_var, scope, errors),
    }
}

/// A constant expression must not use bindings, parameters or the fan-out item: their
/// values only exist when the workflow runs.
fn check_const(
    arg: &Expr,
    fan_var: Option<&Ident>,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<Wiring> {
    let mut bad = None;
    scan_idents(arg.to_token_stream(), &mut |i| {
        if bad.is_none()
            && (fan_var == Some(i)
                || scope.bound.contains_key(&i.to_string())
                || scope.params.contains_key(&i.to_string()))
        {
            bad = Some(i.clone());
        }
    });
    if let Some(i) = bad {
        errors.spanned(
            &i,
            format_args!(
                "`{i}` is only known when the workflow runs, so it can't be used in an expression here: \
                 pass `{i}` (or a field of it) directly as an argument and compute inside the job"
            ),
        );
        return None;
    }
    Some(Wiring::Const(arg.clone()))
}

/// Calls `f` with every identifier not preceded by `.` or `::` (method and path tails).
fn scan_idents(tokens: TokenStream, f: &mut impl FnMut(&Ident)) {
    let mut after_sep = false;
    for t in tokens {
        match t {
            TokenTree::Ident(i) => {
                if !after_sep {
                    f(&i);
                }
                after_sep = false;
            }
            TokenTree::Punct(p) => after_sep = p.as_char() == '.' || p.as_char() == ':',
            TokenTree::Group(g) => {
                scan_idents(g.stream(), f);
                after_sep = false;
            }
            TokenTree::Literal(_) => after_sep = false,
        }
    }
}

fn classify_items(items: &Expr, scope: &Scope<'_>, errors: &mut Errors) -> Option<Source> {
    const HINT: &str = "fan-out items must be an earlier binding (`markets`), a field of one (`markets.ids`) or a workflow parameter";
    let inner = strip(items);
    let Some((base, fields)) = field_chain(inner, errors) else {
        errors.spanned(items, HINT);
        return None;
    };
    match scope.source(&base) {
        Some(Source::Node(n)) if fields.is_empty() => Some(Source::Node(n)),
        Some(Source::Node(n)) => Some(Source::Field(n, fields)),
        Some(p @ Source::Param(_)) if fields.is_empty() => Some(p),
        Some(_) => {
            errors.spanned(
                items,
                "a parameter is used whole: fan out over the parameter itself",
            );
            None
        }
        None if looks_like_value_name(&base) => {
            scope.unknown(&base, errors);
            None
        }
        None => {
            errors.spanned(items, HINT);
            None
        }
    }
}

fn lit_str(expr: &Expr) -> Option<&LitStr> {
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        _ => None,
    }
}

/// Checks one option and appends its builder call to `out`. Returns a new node id for
/// `.id("…")`.
fn option(
    opt: &Opt,
    fanned: bool,
    upstream: &BTreeMap<String, Ident>,
    scope: &Scope<'_>,
    out: &mut Vec<TokenStream>,
    errors: &mut Errors,
) -> Option<(String, Span)> {
    let key = opt.name.to_string();
    let args: Vec<&Expr> = opt.args.iter().collect();
    let span = opt.span;
    let one = |errors: &mut Errors, what: &str| -> Option<&Expr> {
        if let [a] = args.as_slice() {
            Some(*a)
        } else {
            errors.at(span, format_args!("`.{key}()` takes one argument: {what}"));
            None
        }
    };
    match key.as_str() {
        "id" => {
            let a = one(errors, "the node id, e.g. `.id(\"data-proxy\")`")?;
            let Some(lit) = lit_str(a) else {
                errors.spanned(a, "the node id is a string literal, e.g. `.id(\"data-proxy\")`");
                return None;
            };
            let v = non_empty(lit, "the node id", errors)?;
            return Some((v, lit.span()));
        }
        "retries" | "priority" => {
            let a = one(errors, "a number")?;
            let m = &opt.name;
            out.push(quote_spanned!(span=> .#m(#a)));
        }
        "concurrency" => {
            let a = one(errors, "the most items running at once")?;
            if !fanned {
                errors.at(
                    span,
                    "`.concurrency()` caps a fan-out; this node does not fan out (`for item in items { … }`)",
                );
                return None;
            }
            out.push(quote_spanned!(span=> .concurrency(#a)));
        }
        "timeout" => {
            let a = one(errors, "a duration, e.g. `.timeout(\"1m\")`")?;
            match syn::parse2::<DurationSrc>(a.to_token_stream()).and_then(|d| d.to_expr()) {
                Ok(d) => out.push(quote_spanned!(span=> .timeout(#d))),
                Err(e) => errors.push(e),
            }
        }
        "backoff" => {
            let a = one(errors, "a backoff, e.g. `.backoff(exponential(1s, max = 1m))`")?;
            match syn::parse2::<BackoffSrc>(a.to_token_stream()) {
                Ok(b) => {
                    if let Some(e) = b.to_expr(errors) {
                        out.push(quote_spanned!(span=> .backoff(#e)));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        "after" => {
            if args.is_empty() {
                errors.at(span, "`.after()` takes one or more earlier bindings: `.after(publish)`");
            }
            for a in args {
                let n = node_name(a, "`.after()`", scope, errors)?;
                out.push(quote_spanned!(span=> .after(&#n)));
            }
        }
        "when" => match args.as_slice() {
            [pred] => {
                let pred = predicate(pred, errors)?;
                if let (1, Some(n)) = (upstream.len(), upstream.values().next()) {
                    let mut n = n.clone();
                    n.set_span(pred.span());
                    out.push(quote_spanned!(span=> .when(&#n, #pred)));
                } else {
                    errors.at(
                        span,
                        format_args!(
                            "`.when(\"…\")` tests the output of the node's one upstream, but this node has {}: \
                             name it with `.when(node, \"…\")`, or use `.when_all(\"$.node.field …\")`",
                            if upstream.is_empty() { "none".to_owned() } else { format!("{} ({})", upstream.len(), upstream.keys().cloned().collect::<Vec<_>>().join(", ")) }
                        ),
                    );
                }
            }
            [node, pred] => {
                let n = node_name(node, "`.when()`", scope, errors);
                let pred = predicate(pred, errors);
                let (n, pred) = (n?, pred?);
                out.push(quote_spanned!(span=> .when(&#n, #pred)));
            }
            _ => errors.at(span, "`.when()` takes a predicate, optionally after the node it tests: `.when(publish, \"$.failed > 0\")`"),
        },
        "when_all" => {
            let a = one(errors, "a predicate over all upstream outputs, e.g. `\"$.publish.failed > 0\"`")?;
            let pred = predicate(a, errors)?;
            out.push(quote_spanned!(span=> .when_all(#pred)));
        }
        "trigger" => {
            let a = one(errors, "a trigger rule: all_success, all_done, one_failed or none_failed")?;
            let rule = match strip(a) {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let i = p.path.get_ident()?;
                    let variant = match i.to_string().as_str() {
                        "all_success" => "AllSuccess",
                        "all_done" => "AllDone",
                        "one_failed" => "OneFailed",
                        "none_failed" => "NoneFailed",
                        _ => {
                            errors.spanned(i, "unknown trigger rule: expected all_success, all_done, one_failed or none_failed");
                            return None;
                        }
                    };
                    let v = Ident::new(variant, i.span());
                    quote_spanned!(i.span()=> ::dagforge::TriggerRule::#v)
                }
                other => other.to_token_stream(),
            };
            out.push(quote_spanned!(span=> .trigger(#rule)));
        }
        _ => errors.at(
            span,
            format_args!("unknown node option `.{key}()`; expected one of: {OPTIONS}"),
        ),
    }
    None
}

fn predicate<'a>(expr: &'a Expr, errors: &mut Errors) -> Option<&'a LitStr> {
    let lit = lit_str(expr);
    if lit.is_none() {
        errors.spanned(
            expr,
            "a condition is a string literal holding a JSONPath predicate, e.g. \"$.count > 0\"",
        );
    }
    lit
}

fn node_name(expr: &Expr, what: &str, scope: &Scope<'_>, errors: &mut Errors) -> Option<Ident> {
    let ident = match strip(expr) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    };
    let Some(ident) = ident else {
        errors.spanned(
            expr,
            format_args!("{what} takes an earlier binding, e.g. `publish`"),
        );
        return None;
    };
    if scope.bound.contains_key(&ident.to_string()) {
        Some(ident.clone())
    } else {
        scope.unknown_as(ident, false, errors);
        None
    }
}
