//! The typed workflow builder.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::draft::{
    CondDef, CronSpec, Draft, EdgeDef, FanOutDef, NodeDef, ParamDef, SelDef, SourceDef, Target,
};
use super::validate::compile;
use super::{TriggerRule, Workflow};
use crate::error::validation::{ValidationError, ValidationErrors};
use crate::job::{Backoff, Job};
use crate::registry::DynJob;

static NEXT_BUILDER: AtomicU32 = AtomicU32::new(1);

/// A typed handle to a node whose job outputs a `T`. Returned by [`WorkflowBuilder::add`].
///
/// Handles are `Copy`; wiring a `NodeRef<A>` where a `B` is expected does not compile.
pub struct NodeRef<T> {
    pub(crate) wf: u32,
    pub(crate) idx: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for NodeRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NodeRef<T> {}

impl<T> std::fmt::Debug for NodeRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRef")
            .field("node", &self.idx)
            .field("output", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> NodeRef<T> {
    fn target(&self) -> Target {
        Target::Handle {
            wf: self.wf,
            idx: self.idx,
        }
    }

    /// A field of this node's output, typed by the [`Field`] descriptor.
    pub fn field<U>(&self, field: Field<T, U>) -> Source<U> {
        Source::new(SourceDef::Output {
            node: self.target(),
            sel: SelDef::Field(field.name.to_owned()),
        })
    }

    /// The value a JSONPath selects in this node's output. The type `U` is the caller's
    /// claim, checked when the consuming node decodes its input.
    pub fn select<U>(&self, path: &str) -> Source<U> {
        Source::new(SourceDef::Output {
            node: self.target(),
            sel: SelDef::Path(path.to_owned()),
        })
    }

    /// Fan-out items selected by a JSONPath in this node's output (see [`Node::each`]).
    pub fn each_at<U>(&self, path: &str) -> Items<U> {
        Items {
            def: self.select::<Vec<U>>(path).def,
            _t: PhantomData,
        }
    }
}

/// A typed name of a field of `I` whose type is `T`.
///
/// `#[job]` declares one per input argument; by hand: `const MARKET: Field<MyInput, String> =
/// Field::new("market");`.
pub struct Field<I, T> {
    name: &'static str,
    _t: PhantomData<fn(&I) -> T>,
}

impl<I, T> Field<I, T> {
    /// Names a field.
    pub const fn new(name: &'static str) -> Self {
        Field {
            name,
            _t: PhantomData,
        }
    }

    /// The field's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<I, T> Clone for Field<I, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, T> Copy for Field<I, T> {}

impl<I, T> std::fmt::Debug for Field<I, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field({})", self.name)
    }
}

/// Where a typed value comes from: an upstream output (or part of it), a run
/// parameter, or a constant.
pub struct Source<T> {
    pub(crate) def: SourceDef,
    _t: PhantomData<fn() -> T>,
}

// Manual impl: `T` need not be `Clone` (a `Source` holds no `T`). Lets a run parameter
// feed several nodes.
impl<T> Clone for Source<T> {
    fn clone(&self) -> Self {
        Source::new(self.def.clone())
    }
}

impl<T> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.def.fmt(f)
    }
}

impl<T> Source<T> {
    pub(crate) fn new(def: SourceDef) -> Self {
        Source {
            def,
            _t: PhantomData,
        }
    }

    /// A constant.
    pub fn value(value: T) -> Self
    where
        T: Serialize,
    {
        Source::new(SourceDef::Const(
            serde_json::to_value(value).map_err(|e| e.to_string()),
        ))
    }

    /// The output of the node named `node`, optionally narrowed by a JSONPath. Untyped:
    /// the node is looked up (and the path parsed) at `build()`.
    pub fn output_of(node: &str, path: Option<&str>) -> Self {
        Source::new(SourceDef::Output {
            node: Target::Name(node.to_owned()),
            sel: path.map_or(SelDef::Whole, |p| SelDef::Path(p.to_owned())),
        })
    }
}

impl<T> From<NodeRef<T>> for Source<T> {
    fn from(node: NodeRef<T>) -> Self {
        Source::new(SourceDef::Output {
            node: node.target(),
            sel: SelDef::Whole,
        })
    }
}

impl<T> From<&NodeRef<T>> for Source<T> {
    fn from(node: &NodeRef<T>) -> Self {
        Source::from(*node)
    }
}

/// The items a fan-out node runs over: one execution per element.
pub struct Items<T> {
    pub(crate) def: SourceDef,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Items<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.def.fmt(f)
    }
}

impl<T> From<NodeRef<Vec<T>>> for Items<T> {
    fn from(node: NodeRef<Vec<T>>) -> Self {
        Items {
            def: Source::from(node).def,
            _t: PhantomData,
        }
    }
}

impl<T> From<&NodeRef<Vec<T>>> for Items<T> {
    fn from(node: &NodeRef<Vec<T>>) -> Self {
        Items::from(*node)
    }
}

impl<T> From<Source<Vec<T>>> for Items<T> {
    fn from(source: Source<Vec<T>>) -> Self {
        Items {
            def: source.def,
            _t: PhantomData,
        }
    }
}

/// Builds a [`Workflow`]: add nodes, wire them, then [`build`](WorkflowBuilder::build)
/// to validate.
///
/// ```
/// use dagforge::prelude::*;
///
/// struct Numbers;
/// impl Job for Numbers {
///     type Input = ();
///     type Output = Vec<u64>;
///     const NAME: &'static str = "numbers";
///     async fn run(&self, _: &JobContext, _: ()) -> Result<Vec<u64>, JobError> { Ok(vec![1, 2, 3]) }
/// }
/// struct Square;
/// impl Job for Square {
///     type Input = u64;
///     type Output = u64;
///     const NAME: &'static str = "square";
///     async fn run(&self, _: &JobContext, n: u64) -> Result<u64, JobError> { Ok(n * n) }
/// }
///
/// let mut wf = Workflow::builder("squares");
/// let numbers = wf.add("numbers", Numbers).handle();
/// wf.add("square", Square).each_input(numbers); // one execution per number
/// let workflow = wf.build()?;
/// assert_eq!(workflow.len(), 2);
/// # Ok::<_, dagforge::Error>(())
/// ```
#[derive(Debug)]
pub struct WorkflowBuilder {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) edges: Vec<EdgeDef>,
    pub(crate) params: Vec<ParamDef>,
    pub(crate) errors: Vec<ValidationError>,
    /// The recurring schedule the workflow declares (cron, time zone).
    pub(crate) cron: Option<CronSpec>,
}

impl WorkflowBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        WorkflowBuilder {
            id: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            version: "1".to_owned(),
            nodes: Vec::new(),
            edges: Vec::new(),
            params: Vec::new(),
            errors: Vec::new(),
            cron: None,
        }
    }

    /// Declares that the workflow recurs on `cron` (see [`crate::schedule`]) in the IANA
    /// time zone `time_zone`: an engine serving a store registers it as the recurring
    /// schedule named after the workflow (see [`Schedules::add_or_update`]). The
    /// expression is checked then, with an error naming the field.
    /// `#[workflow(cron = "…", time_zone = "…")]` sets this.
    ///
    /// [`Schedules::add_or_update`]: crate::Schedules::add_or_update
    pub fn cron(&mut self, cron: impl Into<String>, time_zone: impl Into<String>) -> &mut Self {
        self.cron = Some(CronSpec {
            cron: cron.into(),
            time_zone: time_zone.into(),
        });
        self
    }

    /// Sets the workflow's version (default `"1"`).
    pub fn version(&mut self, version: impl Into<String>) -> &mut Self {
        self.version = version.into();
        self
    }

    /// Declares a required run parameter and returns it as a typed source.
    pub fn param<T>(&mut self, name: &str) -> Source<T> {
        self.declare_param(name, None);
        Source::new(SourceDef::Param(name.to_owned()))
    }

    /// Declares a run parameter with a default value.
    pub fn param_or<T: Serialize>(&mut self, name: &str, default: T) -> Source<T> {
        match serde_json::to_value(default) {
            Ok(v) => self.declare_param(name, Some(v)),
            Err(e) => self.errors.push(ValidationError::Param {
                name: name.to_owned(),
                reason: format!("default value cannot be encoded: {e}"),
            }),
        }
        Source::new(SourceDef::Param(name.to_owned()))
    }

    fn declare_param(&mut self, name: &str, default: Option<Value>) {
        if self.params.iter().any(|p| p.name == name) {
            self.errors.push(ValidationError::Param {
                name: name.to_owned(),
                reason: "declared twice".to_owned(),
            });
            return;
        }
        self.params.push(ParamDef {
            name: name.to_owned(),
            default,
        });
    }

    /// Adds a node running `job`; configure it with the returned [`Node`].
    pub fn add<J: Job>(&mut self, id: impl Into<String>, job: J) -> Node<'_, J> {
        self.nodes.push(NodeDef::new(id.into(), DynJob::new(job)));
        let idx = (self.nodes.len() - 1) as u32;
        Node {
            wf: self,
            idx,
            _j: PhantomData,
        }
    }

    /// Validates the graph and compiles it. Every problem is reported at once.
    pub fn build(self) -> Result<Workflow, ValidationErrors> {
        compile(Draft {
            id: self.id,
            name: self.name,
            version: self.version,
            nodes: self.nodes,
            edges: self.edges,
            params: self.params,
            errors: self.errors,
            cron: self.cron,
        })
    }
}

/// Configures one node. Every method returns the node so calls chain; finish with
/// [`handle`](Node::handle) to get the typed [`NodeRef`] (or just drop it).
///
/// `O` is the type of the node's output as seen downstream: the job's output, or a
/// `Vec` of them once the node fans out.
pub struct Node<'w, J: Job, O = <J as Job>::Output> {
    wf: &'w mut WorkflowBuilder,
    idx: u32,
    _j: PhantomData<fn() -> (J, O)>,
}

impl<J: Job, O> std::fmt::Debug for Node<'_, J, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("def", self.def_ref()).finish()
    }
}

impl<'w, J: Job, O> Node<'w, J, O> {
    fn def(&mut self) -> &mut NodeDef {
        &mut self.wf.nodes[self.idx as usize]
    }

    fn def_ref(&self) -> &NodeDef {
        &self.wf.nodes[self.idx as usize]
    }

    /// The typed handle of this node.
    pub fn handle(&self) -> NodeRef<O> {
        NodeRef {
            wf: self.wf.id,
            idx: self.idx,
            _t: PhantomData,
        }
    }

    /// Sets the whole input to a constant.
    pub fn input(mut self, input: J::Input) -> Self {
        self.def().whole = Some(SourceDef::Const(
            serde_json::to_value(input).map_err(|e| e.to_string()),
        ));
        self
    }

    /// Takes the whole input from a source of the same type (an upstream node's
    /// output, a part of it, or a run parameter).
    pub fn input_from(mut self, source: impl Into<Source<J::Input>>) -> Self {
        self.def().whole = Some(source.into().def);
        self
    }

    /// Binds one input field to a source of the field's type.
    pub fn bind<T>(mut self, field: Field<J::Input, T>, source: impl Into<Source<T>>) -> Self {
        let def = source.into().def;
        self.def().fields.push((field.name.to_owned(), def));
        self
    }

    /// Sets one input field to a constant.
    pub fn set<T: Serialize>(mut self, field: Field<J::Input, T>, value: T) -> Self {
        let def = SourceDef::Const(serde_json::to_value(value).map_err(|e| e.to_string()));
        self.def().fields.push((field.name.to_owned(), def));
        self
    }

    /// Binds an input field, by name, to the output of the node named `node`, optionally
    /// narrowed by a JSONPath. Untyped: checked at `build()` (node exists, path parses)
    /// and when the input is decoded.
    pub fn bind_output(mut self, field: &str, node: &str, path: Option<&str>) -> Self {
        let def = Source::<Value>::output_of(node, path).def;
        self.def().fields.push((field.to_owned(), def));
        self
    }

    /// Fan-out: runs one execution per item, with the item in `field` (the other
    /// inputs are shared). The node's output is the list of the items' outputs, in item
    /// order; no items gives an empty list.
    pub fn each<T>(
        mut self,
        field: Field<J::Input, T>,
        items: impl Into<Items<T>>,
    ) -> Node<'w, J, Vec<J::Output>> {
        let items = items.into().def;
        self.def().fan_outs.push(FanOutDef {
            field: Some(field.name.to_owned()),
            items,
        });
        self.fanned()
    }

    /// Fan-out where each item is the whole input.
    pub fn each_input(mut self, items: impl Into<Items<J::Input>>) -> Node<'w, J, Vec<J::Output>> {
        let items = items.into().def;
        self.def().fan_outs.push(FanOutDef { field: None, items });
        self.fanned()
    }

    fn fanned(self) -> Node<'w, J, Vec<J::Output>> {
        Node {
            wf: self.wf,
            idx: self.idx,
            _j: PhantomData,
        }
    }

    /// Fan-out, by name: items are what `path` selects in the output of `node` (a single
    /// selected array fans out over its elements). `field = None` makes each item the
    /// whole input.
    pub fn each_output(
        mut self,
        field: Option<&str>,
        node: &str,
        path: Option<&str>,
    ) -> Node<'w, J, Vec<J::Output>> {
        let items = Source::<Value>::output_of(node, path).def;
        self.def().fan_outs.push(FanOutDef {
            field: field.map(str::to_owned),
            items,
        });
        self.fanned()
    }

    /// Adds an order-only dependency: this node waits for `other` to settle.
    pub fn after<T>(mut self, other: &NodeRef<T>) -> Self {
        let t = other.target();
        self.def().after.push(t);
        self
    }

    /// Adds an order-only dependency on the node named `node` (checked at `build()`).
    pub fn after_named(mut self, node: &str) -> Self {
        self.def().after.push(Target::Name(node.to_owned()));
        self
    }

    /// Runs the node only when `predicate` holds over `upstream`'s output; otherwise the
    /// node is Skipped. The predicate is a JSONPath, optionally compared with a JSON
    /// literal: `"$.count > 0"`, `"$.region == \"eu\""`, `"$.ready"` (truthy). Adds a
    /// dependency on `upstream`.
    pub fn when<T>(mut self, upstream: &NodeRef<T>, predicate: &str) -> Self {
        let on = Some(upstream.target());
        self.def().conditions.push(CondDef {
            on,
            expr: predicate.to_owned(),
        });
        self
    }

    /// Like [`when`](Node::when), over the node named `node`.
    pub fn when_named(mut self, node: &str, predicate: &str) -> Self {
        self.def().conditions.push(CondDef {
            on: Some(Target::Name(node.to_owned())),
            expr: predicate.to_owned(),
        });
        self
    }

    /// Runs the node only when `predicate` holds over an object of all its upstream
    /// outputs keyed by node id, e.g. `"$.markets[0] == \"eu\""`.
    pub fn when_all(mut self, predicate: &str) -> Self {
        self.def().conditions.push(CondDef {
            on: None,
            expr: predicate.to_owned(),
        });
        self
    }

    /// What drawings (DOT, Mermaid, SVG, JSON) show for this node instead of its id.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.def().label = Some(label.into());
        self
    }

    /// Sets when the node runs given its upstream nodes' final states.
    pub fn trigger(mut self, rule: TriggerRule) -> Self {
        self.def().trigger = rule;
        self
    }

    /// Overrides the job's retries (per item for a fan-out).
    pub fn retries(mut self, retries: u32) -> Self {
        self.def().retries = Some(retries);
        self
    }

    /// Overrides the job's backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.def().backoff = Some(backoff);
        self
    }

    /// Overrides the job's per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.def().timeout = Some(Some(timeout));
        self
    }

    /// Removes any per-attempt timeout the job declares.
    pub fn no_timeout(mut self) -> Self {
        self.def().timeout = Some(None);
        self
    }

    /// Overrides the job's priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.def().priority = Some(priority);
        self
    }

    /// Caps how many items of this fan-out node run at once.
    pub fn concurrency(mut self, limit: u32) -> Self {
        self.def().concurrency = Some(limit.max(1));
        self
    }
}

impl<J: Job, O> From<Node<'_, J, O>> for NodeRef<O> {
    fn from(node: Node<'_, J, O>) -> Self {
        node.handle()
    }
}
