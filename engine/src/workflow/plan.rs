//! The compiled, immutable form of a workflow that the orchestrator walks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value};

use super::TriggerRule;
use super::path::{JsonPath, Predicate};
use crate::job::Backoff;
use crate::registry::DynJob;

#[derive(Clone, Debug)]
pub(crate) enum Sel {
    Whole,
    Field(Arc<str>),
    Path(JsonPath),
}

/// A resolved value source.
#[derive(Clone, Debug)]
pub(crate) enum Src {
    Output {
        node: u32,
        sel: Sel,
    },
    Param(u32),
    Const(Value),
    /// The outputs of the node's upstream nodes, keyed by their ids.
    Parents(Box<[(Arc<str>, u32)]>),
}

#[derive(Clone, Debug)]
pub(crate) struct InputPlan {
    pub(crate) whole: Option<Box<Src>>,
    pub(crate) fields: Box<[(Arc<str>, Src)]>,
}

#[derive(Clone, Debug)]
pub(crate) struct FanOut {
    pub(crate) field: Option<Arc<str>>,
    pub(crate) items: Src,
}

#[derive(Clone, Debug)]
pub(crate) struct Cond {
    pub(crate) on: Option<u32>,
    pub(crate) text: Arc<str>,
    pub(crate) pred: Predicate,
}

#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub(crate) name: Arc<str>,
    pub(crate) default: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct PlanNode {
    pub(crate) id: Arc<str>,
    pub(crate) job: DynJob,
    /// The job's name, shared by all nodes running the same job.
    pub(crate) job_name: Arc<str>,
    pub(crate) input: InputPlan,
    pub(crate) fan_out: Option<Box<FanOut>>,
    pub(crate) conditions: Box<[Cond]>,
    pub(crate) trigger: TriggerRule,
    pub(crate) retries: u32,
    /// Shared with every node that uses the same policy (usually the job's default).
    pub(crate) backoff: Arc<Backoff>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) priority: i32,
    pub(crate) concurrency: Option<u32>,
}

/// Read access to what a run knows: upstream outputs and run parameters.
pub(crate) trait Values {
    /// The output of node `n`, if it succeeded.
    fn output(&self, n: u32) -> Option<&Value>;
    /// The value of parameter `i`.
    fn param(&self, i: u32) -> &Value;
}

impl Src {
    fn resolve(&self, v: &impl Values) -> Value {
        match self {
            Src::Const(c) => c.clone(),
            Src::Param(i) => v.param(*i).clone(),
            Src::Parents(ps) => Value::Object(
                ps.iter()
                    .map(|(id, p)| {
                        (
                            String::from(&**id),
                            v.output(*p).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
            ),
            Src::Output { node, sel } => match v.output(*node) {
                None => Value::Null,
                Some(out) => match sel {
                    Sel::Whole => out.clone(),
                    Sel::Field(f) => out.get(&**f).cloned().unwrap_or(Value::Null),
                    Sel::Path(p) => p.select_one(out),
                },
            },
        }
    }

    /// Describes the source for error messages.
    pub(crate) fn describe(&self, plan: &Plan) -> String {
        match self {
            Src::Const(_) => "a constant".to_owned(),
            Src::Param(i) => format!("parameter `{}`", plan.params[*i as usize].name),
            Src::Parents(_) => "the upstream outputs".to_owned(),
            Src::Output { node, sel } => {
                let id = &plan.nodes[*node as usize].id;
                match sel {
                    Sel::Whole => format!("the output of `{id}`"),
                    Sel::Field(f) => format!("`{id}.{f}`"),
                    Sel::Path(p) => format!("`{id}` at `{}`", p.as_str()),
                }
            }
        }
    }
}

impl PlanNode {
    /// Assembles the node's input (without the fan-out item).
    pub(crate) fn build_input(&self, v: &impl Values) -> Result<Value, String> {
        let mut input = match &self.input.whole {
            Some(s) => s.resolve(v),
            None => Value::Null,
        };
        if self.input.fields.is_empty() {
            return Ok(input);
        }
        if input.is_null() {
            input = Value::Object(Map::with_capacity(self.input.fields.len() + 1));
        }
        let Value::Object(map) = &mut input else {
            return Err(format!(
                "the input is a {} and has no fields to bind",
                kind(&input)
            ));
        };
        for (f, s) in &self.input.fields {
            map.insert(String::from(&**f), s.resolve(v));
        }
        Ok(input)
    }

    /// The items a fan-out node runs over.
    pub(crate) fn fan_out_items(&self, plan: &Plan, v: &impl Values) -> Result<Vec<Value>, String> {
        let Some(fan) = &self.fan_out else {
            return Ok(Vec::new());
        };
        let describe = || fan.items.describe(plan);
        // A path that selects several values fans out over the matches.
        if let Src::Output {
            node,
            sel: Sel::Path(p),
        } = &fan.items
            && let Some(out) = v.output(*node)
        {
            let found = p.select(out);
            return match found.as_slice() {
                [] => Err(format!(
                    "fan-out over {}: the path selects nothing",
                    describe()
                )),
                [Value::Array(items)] => Ok(items.clone()),
                [one] => Err(format!(
                    "fan-out over {}: expected an array, found {}",
                    describe(),
                    kind(one)
                )),
                many => Ok(many.iter().map(|x| (*x).clone()).collect()),
            };
        }
        match fan.items.resolve(v) {
            Value::Array(items) => Ok(items),
            other => Err(format!(
                "fan-out over {}: expected an array, found {}",
                describe(),
                kind(&other)
            )),
        }
    }

    /// Puts one fan-out item into an input.
    pub(crate) fn with_item(&self, base: &Value, item: Value) -> Result<Value, String> {
        let Some(fan) = &self.fan_out else {
            return Ok(base.clone());
        };
        let Some(field) = &fan.field else {
            return Ok(item);
        };
        let mut input = base.clone();
        if input.is_null() {
            input = Value::Object(Map::new());
        }
        match &mut input {
            Value::Object(map) => {
                map.insert(String::from(&**field), item);
                Ok(input)
            }
            other => Err(format!(
                "the input is a {} and has no field `{field}` for the fan-out item",
                kind(other)
            )),
        }
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The compiled workflow.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) nodes: Vec<PlanNode>,
    pub(crate) params: Vec<Param>,
    pub(crate) index: HashMap<Arc<str>, u32>,
    child_off: Vec<u32>,
    child: Vec<u32>,
    parent_off: Vec<u32>,
    parent: Vec<u32>,
    pub(crate) roots: Vec<u32>,
    /// Node labels by node index; empty when no node has one.
    pub(crate) labels: Vec<Option<Box<str>>>,
    /// The serializable snapshot, built on first use.
    pub(crate) spec: std::sync::OnceLock<Arc<super::WorkflowSpec>>,
}

impl Plan {
    pub(crate) fn new(
        name: String,
        version: String,
        nodes: Vec<PlanNode>,
        parents: &[Vec<u32>],
        params: Vec<Param>,
        index: HashMap<Arc<str>, u32>,
    ) -> Plan {
        let n = nodes.len();
        let mut parent_off = Vec::with_capacity(n + 1);
        let mut parent = Vec::new();
        let mut nchild = vec![0u32; n];
        parent_off.push(0);
        for ps in parents {
            for &p in ps {
                nchild[p as usize] += 1;
                parent.push(p);
            }
            parent_off.push(parent.len() as u32);
        }
        let mut child_off = Vec::with_capacity(n + 1);
        child_off.push(0u32);
        for i in 0..n {
            child_off.push(child_off[i] + nchild[i]);
        }
        let mut fill: Vec<u32> = child_off[..n].to_vec();
        let mut child = vec![0u32; parent.len()];
        for (c, ps) in parents.iter().enumerate() {
            for &p in ps {
                child[fill[p as usize] as usize] = c as u32;
                fill[p as usize] += 1;
            }
        }
        let roots = (0..n as u32)
            .filter(|&i| parents[i as usize].is_empty())
            .collect();
        Plan {
            name,
            version,
            nodes,
            params,
            index,
            child_off,
            child,
            parent_off,
            parent,
            roots,
            labels: Vec::new(),
            spec: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn children(&self, n: u32) -> &[u32] {
        &self.child[self.child_off[n as usize] as usize..self.child_off[n as usize + 1] as usize]
    }

    pub(crate) fn parents(&self, n: u32) -> &[u32] {
        &self.parent[self.parent_off[n as usize] as usize..self.parent_off[n as usize + 1] as usize]
    }

    /// The DAG as a petgraph graph (edges parent → child), built on demand for
    /// analysis and export; the orchestrator walks the compact lists above.
    pub(crate) fn graph(&self) -> DiGraph<(), ()> {
        let n = self.nodes.len();
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, self.parent.len());
        for _ in 0..n {
            g.add_node(());
        }
        for c in 0..n as u32 {
            for &p in self.parents(c) {
                g.add_edge(NodeIndex::new(p as usize), NodeIndex::new(c as usize), ());
            }
        }
        g
    }

    /// The label of node `n`, if it has one.
    pub(crate) fn label(&self, n: usize) -> Option<&str> {
        self.labels.get(n).and_then(|l| l.as_deref())
    }

    pub(crate) fn edge_count(&self) -> usize {
        self.parent.len()
    }
}
