//! Nodes whose jobs and wiring are known only at run time: added by job name or
//! [`DynJob`], configured through `&mut` so that a loop over data needs no rebinding.

use std::time::Duration;

use serde_json::Value;

use super::TriggerRule;
use super::builder::{Source, WorkflowBuilder};
use super::draft::{CondDef, EdgeDef, FanOutDef, NodeDef, SourceDef, Target};
use crate::JobContext;
use crate::error::JobError;
use crate::error::validation::ValidationError;
use crate::job::{Backoff, Job};
use crate::registry::{DynJob, Registry};

impl<T> Source<T> {
    /// The outputs of all the node's upstream nodes (data and order-only
    /// dependencies alike), as one JSON object keyed by node id: `{"a": …, "b": …}`. An
    /// upstream node that did not succeed (possible under a trigger rule other than
    /// [`TriggerRule::AllSuccess`]) maps to `null`. The type `T` is the caller's claim
    /// (a map such as `BTreeMap<String, u64>`), checked when the input is decoded.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use dagforge::prelude::*;
    /// # use dagforge::DynJob;
    /// # struct Sum;
    /// # impl Job for Sum {
    /// #     type Input = BTreeMap<String, u64>;
    /// #     type Output = u64;
    /// #     const NAME: &'static str = "sum";
    /// #     async fn run(&self, _: &JobContext, m: Self::Input) -> Result<u64, JobError> { Ok(m.values().sum()) }
    /// # }
    /// # struct One;
    /// # impl Job for One {
    /// #     type Input = ();
    /// #     type Output = u64;
    /// #     const NAME: &'static str = "one";
    /// #     async fn run(&self, _: &JobContext, _: ()) -> Result<u64, JobError> { Ok(1) }
    /// # }
    /// let mut wf = Workflow::builder("sum");
    /// let one = DynJob::new(One);
    /// for id in ["a", "b", "c"] {
    ///     wf.node(id, &one);
    /// }
    /// wf.add("total", Sum).input_from(Source::parents()).after_named("a").after_named("b");
    /// wf.edge("c", "total"); // an edge by ids: one more parent
    /// let wf = wf.build()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let run = Engine::new().run(&wf, ()).await?;
    /// assert_eq!(run.output::<u64>("total")?, 3);
    /// # Ok::<_, dagforge::Error>(())
    /// # })?;
    /// # Ok::<_, dagforge::Error>(())
    /// ```
    pub fn parents() -> Self {
        Source::new(SourceDef::Parents)
    }
}

impl WorkflowBuilder {
    /// Adds a node running `job` (a type-erased job, as a [`Registry`] holds them) and
    /// returns it for configuration through `&mut`, so that a loop can configure it
    /// without rebinding:
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// # use dagforge::DynJob;
    /// # struct Step;
    /// # impl Job for Step {
    /// #     type Input = serde_json::Value;
    /// #     type Output = ();
    /// #     const NAME: &'static str = "step";
    /// #     async fn run(&self, _: &JobContext, _: serde_json::Value) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// let step = DynJob::new(Step);
    /// let tasks = [("a", vec![]), ("b", vec!["a"]), ("c", vec!["a", "b"])];
    /// let mut wf = Workflow::builder("from-data");
    /// for (id, parents) in &tasks {
    ///     let mut node = wf.node(*id, &step);
    ///     node.label(format!("step {id}")).set("name", serde_json::json!(id));
    ///     for p in parents {
    ///         node.after(p);
    ///     }
    /// }
    /// let wf = wf.build()?;
    /// assert_eq!(wf.dependencies("c"), Some(vec!["a", "b"]));
    /// # Ok::<_, dagforge::Error>(())
    /// ```
    pub fn node(&mut self, id: impl Into<String>, job: &DynJob) -> DynNode<'_> {
        self.nodes.push(NodeDef::new(id.into(), job.clone()));
        let idx = self.nodes.len() - 1;
        DynNode { wf: self, idx }
    }

    /// Adds a node running the job registered in `jobs` under `job`. An unknown name
    /// is reported by [`build`](WorkflowBuilder::build) as
    /// [`ValidationError::UnknownJob`], with every other problem.
    pub fn node_named(&mut self, id: impl Into<String>, job: &str, jobs: &Registry) -> DynNode<'_> {
        let id = id.into();
        let found = match jobs.get(job) {
            Some(j) => j.clone(),
            None => {
                self.errors.push(ValidationError::UnknownJob {
                    node: id.clone(),
                    job: job.to_owned(),
                });
                DynJob::new(Unresolved)
            }
        };
        self.nodes.push(NodeDef::new(id, found));
        let idx = self.nodes.len() - 1;
        DynNode { wf: self, idx }
    }

    /// Adds an order-only edge between two nodes named by id: `to` waits for `from`
    /// to settle. Either end may be added later; an end that names no node is
    /// reported by [`build`](WorkflowBuilder::build) as [`ValidationError::DanglingEdge`].
    pub fn edge(&mut self, from: impl Into<String>, to: impl Into<String>) -> &mut Self {
        self.edges.push(EdgeDef {
            from: from.into(),
            to: to.into(),
        });
        self
    }
}

/// Stands in for a job name that the registry does not hold; never runs, since
/// `build()` then fails.
struct Unresolved;

impl Job for Unresolved {
    type Input = Value;
    type Output = Value;
    const NAME: &'static str = "<unknown job>";

    async fn run(&self, _: &JobContext, _: Value) -> Result<Value, JobError> {
        Err(JobError::msg("unknown job"))
    }
}

/// A node added with [`WorkflowBuilder::node`] or [`WorkflowBuilder::node_named`],
/// configured by name through `&mut self`: every method returns `&mut Self`, so calls
/// chain in one statement and a loop can keep calling them on one binding.
///
/// Fields and nodes are named by strings and checked by
/// [`build`](WorkflowBuilder::build) (nodes exist, paths parse, nothing collides); the
/// input's shape is checked when the job decodes it.
///
/// # How a node's input is assembled
///
/// These rules hold for every node, typed or not:
///
/// 1. The base is the whole input: [`input`](DynNode::input) (a constant),
///    [`input_from`](DynNode::input_from) (an upstream output, a parameter, or
///    [`Source::parents`]); without one it is `null`, or `{}` once a field is bound.
/// 2. Each field binding ([`set`](DynNode::set), [`bind`](DynNode::bind),
///    [`parents_into`](DynNode::parents_into); `bind`/`set` on a typed node) writes one
///    top-level field of that object.
/// 3. A fan-out writes its item last: into its field, or as the whole input.
///
/// No value is silently overwritten: `build()` reports
/// [`ValidationError::InputCollision`] when one field is written twice (two bindings,
/// a binding and the fan-out item, or a binding and a key of a constant whole input)
/// and [`ValidationError::InputNotObject`] when fields are bound into a constant that
/// is not an object. A whole input taken from an upstream output or a parameter is
/// only known at run time: fields bound into it replace the fields it has.
#[derive(Debug)]
pub struct DynNode<'w> {
    wf: &'w mut WorkflowBuilder,
    idx: usize,
}

impl DynNode<'_> {
    fn def(&mut self) -> &mut NodeDef {
        &mut self.wf.nodes[self.idx]
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.wf.nodes[self.idx].id
    }

    /// What drawings (DOT, Mermaid, SVG, JSON) show for this node instead of its id.
    pub fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.def().label = Some(label.into());
        self
    }

    /// Sets the whole input to a constant.
    pub fn input(&mut self, input: Value) -> &mut Self {
        self.def().whole = Some(SourceDef::Const(Ok(input)));
        self
    }

    /// Takes the whole input from a source: an upstream output
    /// ([`Source::output_of`]), a run parameter, or [`Source::parents`].
    pub fn input_from<T>(&mut self, source: Source<T>) -> &mut Self {
        self.def().whole = Some(source.def);
        self
    }

    /// Sets the input field `field` to a constant.
    pub fn set(&mut self, field: &str, value: Value) -> &mut Self {
        self.def()
            .fields
            .push((field.to_owned(), SourceDef::Const(Ok(value))));
        self
    }

    /// Binds the input field `field` to a source.
    pub fn bind<T>(&mut self, field: &str, source: Source<T>) -> &mut Self {
        self.def().fields.push((field.to_owned(), source.def));
        self
    }

    /// Binds the input field `field` to the outputs of all upstream nodes, keyed by
    /// node id ([`Source::parents`]).
    pub fn parents_into(&mut self, field: &str) -> &mut Self {
        self.def()
            .fields
            .push((field.to_owned(), SourceDef::Parents));
        self
    }

    /// Adds an order-only dependency on the node named `node`.
    pub fn after(&mut self, node: &str) -> &mut Self {
        self.def().after.push(Target::Name(node.to_owned()));
        self
    }

    /// Adds an order-only dependency on each node named.
    pub fn after_all<S: AsRef<str>>(&mut self, nodes: impl IntoIterator<Item = S>) -> &mut Self {
        let def = self.def();
        def.after.extend(
            nodes
                .into_iter()
                .map(|n| Target::Name(n.as_ref().to_owned())),
        );
        self
    }

    /// Fan-out: one execution per item of `items` (an array), with the item in
    /// `field`, or as the whole input when `field` is `None`.
    pub fn each<T>(&mut self, field: Option<&str>, items: Source<T>) -> &mut Self {
        self.def().fan_outs.push(FanOutDef {
            field: field.map(str::to_owned),
            items: items.def,
        });
        self
    }

    /// Runs the node only when `predicate` holds over the output of the node named
    /// `node` (see [`Node::when`](super::Node::when)).
    pub fn when(&mut self, node: &str, predicate: &str) -> &mut Self {
        self.def().conditions.push(CondDef {
            on: Some(Target::Name(node.to_owned())),
            expr: predicate.to_owned(),
        });
        self
    }

    /// Runs the node only when `predicate` holds over its upstream outputs keyed by
    /// node id.
    pub fn when_all(&mut self, predicate: &str) -> &mut Self {
        self.def().conditions.push(CondDef {
            on: None,
            expr: predicate.to_owned(),
        });
        self
    }

    /// Sets when the node runs given its upstream nodes' final states.
    pub fn trigger(&mut self, rule: TriggerRule) -> &mut Self {
        self.def().trigger = rule;
        self
    }

    /// Overrides the job's retries.
    pub fn retries(&mut self, retries: u32) -> &mut Self {
        self.def().retries = Some(retries);
        self
    }

    /// Overrides the job's backoff.
    pub fn backoff(&mut self, backoff: Backoff) -> &mut Self {
        self.def().backoff = Some(backoff);
        self
    }

    /// Overrides the job's per-attempt timeout.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.def().timeout = Some(Some(timeout));
        self
    }

    /// Overrides the job's priority.
    pub fn priority(&mut self, priority: i32) -> &mut Self {
        self.def().priority = Some(priority);
        self
    }

    /// Caps how many items of this fan-out node run at once.
    pub fn concurrency(&mut self, limit: u32) -> &mut Self {
        self.def().concurrency = Some(limit.max(1));
        self
    }
}
