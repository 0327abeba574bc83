//! Workflows: the typed builder, validation, and the compiled DAG.

mod builder;
mod data;
mod draft;
mod dyn_node;
mod inputs;
mod merge;
mod path;
pub(crate) mod plan;
mod preview;
pub mod render;
mod spec;
mod validate;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::error::validation::{ValidationError, ValidationErrors};
pub use builder::{Field, Items, Node, NodeRef, Source, WorkflowBuilder};
pub use data::{DagEdge, DagError, DagLimits, DagNode, DagParam, DagProblem, DagSpec, DataItem};
pub use dyn_node::DynNode;
pub use spec::{
    BindingSpec, ConditionSpec, FanOutSpec, NodeSpec, ParamSpec, WorkflowSnapshot, WorkflowSpec,
};

use plan::Plan;

/// When a node runs, given the final states of its upstream nodes. Evaluated once every
/// upstream node has settled; a node whose rule is not met is Skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TriggerRule {
    /// Every upstream node succeeded (the default): a failed or skipped dependency
    /// skips this node.
    #[default]
    AllSuccess,
    /// Every upstream node settled, whatever its state (cleanup steps).
    AllDone,
    /// At least one upstream node failed or timed out (error handlers).
    OneFailed,
    /// No upstream node failed or timed out; skipped ones are fine (joins after
    /// conditional branches).
    NoneFailed,
}

/// A validated workflow, ready to run. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub(crate) plan: Arc<Plan>,
    /// The recurring schedule it declares, if any ([`WorkflowBuilder::cron`]).
    pub(crate) cron: Option<Arc<draft::CronSpec>>,
}

impl Workflow {
    /// Starts building a workflow named `name`.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder::new(name)
    }

    pub(crate) fn from_plan(plan: Plan) -> Self {
        Workflow {
            plan: Arc::new(plan),
            cron: None,
        }
    }

    /// A workflow of one node running `job`: named after the job ([`Job::NAME`]), its
    /// node `job`, whose input is the run parameter `input` (`null` when absent). This is
    /// how a single job is enqueued for later or put on a recurring schedule.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// # struct Cleanup;
    /// # impl Job for Cleanup {
    /// #     type Input = u32;
    /// #     type Output = ();
    /// #     const NAME: &'static str = "cleanup";
    /// #     async fn run(&self, _: &JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dagforge::Error> {
    /// let wf = Workflow::of_job(Cleanup)?;
    /// assert_eq!((wf.name(), wf.len()), ("cleanup", 1));
    /// let result = Engine::new().run(&wf, serde_json::json!({"input": 7})).await?;
    /// assert_eq!(result.state, RunState::Succeeded);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ValidationErrors`] if the job's name is not a valid workflow name.
    ///
    /// [`Job::NAME`]: crate::Job::NAME
    pub fn of_job<J: crate::Job>(job: J) -> Result<Workflow, ValidationErrors> {
        let mut wf = Workflow::builder(J::NAME);
        let input = wf.param_or::<serde_json::Value>("input", serde_json::Value::Null);
        wf.add("job", job)
            .input_from(Source::<J::Input>::new(input.def));
        wf.build()
    }

    /// The cron expression and time zone the workflow declares
    /// ([`WorkflowBuilder::cron`], `#[workflow(cron = "…")]`), if any.
    pub fn cron(&self) -> Option<(&str, &str)> {
        self.cron
            .as_deref()
            .map(|c| (c.cron.as_str(), c.time_zone.as_str()))
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The workflow's version.
    pub fn version(&self) -> &str {
        &self.plan.version
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.plan.nodes.len()
    }

    /// Whether the workflow has no nodes (never true for a built workflow).
    pub fn is_empty(&self) -> bool {
        self.plan.nodes.is_empty()
    }

    /// Number of dependency edges.
    pub fn edge_count(&self) -> usize {
        self.plan.edge_count()
    }

    /// Node ids in insertion order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.plan.nodes.iter().map(|n| &*n.id)
    }

    /// Ids of the nodes `node` depends on, or `None` if there is no such node.
    pub fn dependencies(&self, node: &str) -> Option<Vec<&str>> {
        let i = *self.plan.index.get(node)?;
        Some(
            self.plan
                .parents(i)
                .iter()
                .map(|&p| &*self.plan.nodes[p as usize].id)
                .collect(),
        )
    }

    /// Node ids in a topological order (dependencies first).
    pub fn topological_order(&self) -> Vec<&str> {
        match petgraph::algo::toposort(&self.plan.graph(), None) {
            Ok(order) => order
                .into_iter()
                .map(|i| &*self.plan.nodes[i.index()].id)
                .collect(),
            // A built workflow is acyclic; fall back to insertion order defensively.
            Err(_) => self.node_ids().collect(),
        }
    }

    /// The serializable description of the workflow (for storage, APIs and diffs).
    pub fn spec(&self) -> WorkflowSpec {
        (*self.shared_spec()).clone()
    }

    /// The workflow's graph as Graphviz DOT ([`render::dot`]).
    pub fn to_dot(&self) -> String {
        render::dot(&self.shared_spec())
    }

    /// The workflow's graph as a Mermaid flowchart ([`render::mermaid`]).
    pub fn to_mermaid(&self) -> String {
        render::mermaid(&self.shared_spec())
    }

    /// The workflow's graph as JSON: nodes with their layers, typed edges
    /// ([`render::Graph`]).
    pub fn to_json(&self) -> String {
        render::Graph::from_spec(&self.shared_spec()).to_json()
    }

    /// The workflow's graph as a standalone SVG document ([`render::svg`]).
    pub fn to_svg(&self) -> String {
        render::svg(&self.shared_spec(), None)
    }

    /// The spec, computed once per built workflow and shared by its runs.
    pub(crate) fn shared_spec(&self) -> Arc<WorkflowSpec> {
        Arc::clone(
            self.plan
                .spec
                .get_or_init(|| Arc::new(WorkflowSpec::from_plan(&self.plan))),
        )
    }
}
