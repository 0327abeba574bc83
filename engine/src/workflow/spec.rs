//! The serializable snapshot of a workflow, stored with every run.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::TriggerRule;
use super::plan::{Plan, Sel, Src};
use crate::job::Backoff;

/// A workflow as data: what the store keeps with each run and the dashboard draws.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowSpec {
    /// Workflow name.
    pub name: String,
    /// Workflow version.
    pub version: String,
    /// Run parameters.
    pub params: Vec<ParamSpec>,
    /// Nodes in insertion order.
    pub nodes: Vec<NodeSpec>,
}

/// A run parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParamSpec {
    /// Name.
    pub name: String,
    /// Default value; `None` means required.
    pub default: Option<Value>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeSpec {
    /// Node id.
    pub id: String,
    /// What drawings show for the node instead of its id, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Registered job name.
    pub job: String,
    /// Ids of all upstream nodes (data and order-only edges).
    pub depends_on: Vec<String>,
    /// Where the whole input comes from, if bound as a whole.
    pub input: Option<BindingSpec>,
    /// Field bindings.
    pub fields: Vec<(String, BindingSpec)>,
    /// Fan-out, if any.
    pub fan_out: Option<FanOutSpec>,
    /// Conditions (all must hold).
    pub conditions: Vec<ConditionSpec>,
    /// Trigger rule.
    pub trigger: TriggerRule,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Per-attempt timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Priority.
    pub priority: i32,
    /// Fan-out concurrency cap.
    pub concurrency: Option<u32>,
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
#[non_exhaustive]
pub enum BindingSpec {
    /// An upstream output, optionally narrowed by a field name or a JSONPath.
    Output {
        /// Upstream node id.
        node: String,
        /// Field of the output.
        field: Option<String>,
        /// JSONPath into the output.
        path: Option<String>,
    },
    /// A run parameter.
    Param {
        /// Its name.
        name: String,
    },
    /// A constant.
    Const {
        /// The value.
        value: Value,
    },
    /// The outputs of all the node's upstream nodes, as an object keyed by node id
    /// ([`Source::parents`](super::Source::parents)).
    Parents,
}

/// A fan-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FanOutSpec {
    /// The input field receiving the item; `None` = the whole input.
    pub field: Option<String>,
    /// Where the items come from.
    pub items: BindingSpec,
}

/// A condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConditionSpec {
    /// The node whose output is tested; `None` = all upstream outputs by id.
    pub on: Option<String>,
    /// The predicate.
    pub predicate: String,
}

/// The workflow a run was started from, as stored with the run.
///
/// Runs started in this process share the built workflow and compute its
/// [`WorkflowSpec`] only when somebody asks (a 100,000-node spec is tens of megabytes);
/// runs read back from a durable store carry the stored spec. It serializes as the
/// spec.
#[derive(Clone)]
pub struct WorkflowSnapshot(Snapshot);

#[derive(Clone)]
enum Snapshot {
    Live(super::Workflow),
    Stored(Arc<WorkflowSpec>),
}

impl WorkflowSnapshot {
    /// A snapshot of a built workflow (its spec is materialized on first use).
    pub fn of(workflow: &super::Workflow) -> Self {
        WorkflowSnapshot(Snapshot::Live(workflow.clone()))
    }

    /// A snapshot of an already materialized spec.
    pub fn stored(spec: Arc<WorkflowSpec>) -> Self {
        WorkflowSnapshot(Snapshot::Stored(spec))
    }

    /// The spec (computed on first use for a live workflow, then shared).
    pub fn spec(&self) -> Arc<WorkflowSpec> {
        match &self.0 {
            Snapshot::Live(w) => w.shared_spec(),
            Snapshot::Stored(s) => Arc::clone(s),
        }
    }
}

impl fmt::Debug for WorkflowSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Snapshot::Live(w) => write!(f, "WorkflowSnapshot({} v{})", w.name(), w.version()),
            Snapshot::Stored(s) => write!(f, "WorkflowSnapshot({} v{})", s.name, s.version),
        }
    }
}

impl PartialEq for WorkflowSnapshot {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Snapshot::Live(a), Snapshot::Live(b)) if Arc::ptr_eq(&a.plan, &b.plan) => true,
            _ => self.spec() == other.spec(),
        }
    }
}

impl Serialize for WorkflowSnapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec().serialize(s)
    }
}

impl<'de> Deserialize<'de> for WorkflowSnapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(WorkflowSnapshot::stored(Arc::new(
            WorkflowSpec::deserialize(d)?,
        )))
    }
}

impl WorkflowSpec {
    pub(crate) fn from_plan(plan: &Plan) -> Self {
        let id = |n: u32| String::from(&*plan.nodes[n as usize].id);
        let binding = |s: &Src| match s {
            Src::Const(v) => BindingSpec::Const { value: v.clone() },
            Src::Parents(_) => BindingSpec::Parents,
            Src::Param(i) => BindingSpec::Param {
                name: String::from(&*plan.params[*i as usize].name),
            },
            Src::Output { node, sel } => BindingSpec::Output {
                node: id(*node),
                field: match sel {
                    Sel::Field(f) => Some(String::from(&**f)),
                    _ => None,
                },
                path: match sel {
                    Sel::Path(p) => Some(p.as_str().to_owned()),
                    _ => None,
                },
            },
        };
        WorkflowSpec {
            name: plan.name.clone(),
            version: plan.version.clone(),
            params: plan
                .params
                .iter()
                .map(|p| ParamSpec {
                    name: String::from(&*p.name),
                    default: p.default.clone(),
                })
                .collect(),
            nodes: plan
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| NodeSpec {
                    id: String::from(&*n.id),
                    label: plan.label(i).map(str::to_owned),
                    job: n.job.name().to_owned(),
                    depends_on: plan.parents(i as u32).iter().map(|&p| id(p)).collect(),
                    input: n.input.whole.as_deref().map(binding),
                    fields: n
                        .input
                        .fields
                        .iter()
                        .map(|(f, s)| (String::from(&**f), binding(s)))
                        .collect(),
                    fan_out: n.fan_out.as_ref().map(|f| FanOutSpec {
                        field: f.field.as_deref().map(str::to_owned),
                        items: binding(&f.items),
                    }),
                    conditions: n
                        .conditions
                        .iter()
                        .map(|c| ConditionSpec {
                            on: c.on.map(id),
                            predicate: String::from(&*c.text),
                        })
                        .collect(),
                    trigger: n.trigger,
                    retries: n.retries,
                    backoff: (*n.backoff).clone(),
                    timeout_ms: n
                        .timeout
                        .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
                    priority: n.priority,
                    concurrency: n.concurrency,
                })
                .collect(),
        }
    }
}
