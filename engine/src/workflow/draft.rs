//! What a [`WorkflowBuilder`](super::WorkflowBuilder) collects before `build()` checks
//! it: nodes, their wiring and parameters, as written, with names not yet resolved.

use std::time::Duration;

use serde_json::Value;

use super::TriggerRule;
use crate::error::validation::ValidationError;
use crate::job::Backoff;
use crate::registry::DynJob;

/// A workflow's declared recurring schedule: a cron expression and its time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CronSpec {
    pub(crate) cron: String,
    pub(crate) time_zone: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Handle { wf: u32, idx: u32 },
    Name(String),
}

#[derive(Clone, Debug)]
pub(crate) enum SelDef {
    Whole,
    Field(String),
    Path(String),
}

#[derive(Clone, Debug)]
pub(crate) enum SourceDef {
    Output {
        node: Target,
        sel: SelDef,
    },
    Param(String),
    Const(Result<Value, String>),
    /// The outputs of all the node's upstream nodes, keyed by node id.
    Parents,
}

#[derive(Clone, Debug)]
pub(crate) struct CondDef {
    pub(crate) on: Option<Target>,
    pub(crate) expr: String,
}

#[derive(Clone, Debug)]
pub(crate) struct FanOutDef {
    pub(crate) field: Option<String>,
    pub(crate) items: SourceDef,
}

#[derive(Clone, Debug)]
pub(crate) struct NodeDef {
    pub(crate) id: String,
    pub(crate) job: DynJob,
    /// What drawings show for the node instead of its id.
    pub(crate) label: Option<String>,
    pub(crate) whole: Option<SourceDef>,
    pub(crate) fields: Vec<(String, SourceDef)>,
    pub(crate) fan_outs: Vec<FanOutDef>,
    pub(crate) after: Vec<Target>,
    pub(crate) conditions: Vec<CondDef>,
    pub(crate) trigger: TriggerRule,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) priority: Option<i32>,
    pub(crate) concurrency: Option<u32>,
}

impl NodeDef {
    /// A node running `job`, with nothing bound and the job's defaults.
    pub(crate) fn new(id: String, job: DynJob) -> Self {
        NodeDef {
            id,
            job,
            label: None,
            whole: None,
            fields: Vec::new(),
            fan_outs: Vec::new(),
            after: Vec::new(),
            conditions: Vec::new(),
            trigger: TriggerRule::default(),
            retries: None,
            backoff: None,
            timeout: None,
            priority: None,
            concurrency: None,
        }
    }
}

/// An order-only edge added by node ids ([`WorkflowBuilder::edge`](super::WorkflowBuilder::edge)).
#[derive(Clone, Debug)]
pub(crate) struct EdgeDef {
    pub(crate) from: String,
    pub(crate) to: String,
}

#[derive(Clone, Debug)]
pub(crate) struct ParamDef {
    pub(crate) name: String,
    pub(crate) default: Option<Value>,
}

/// A whole workflow as written: what `build()` compiles.
#[derive(Debug)]
pub(crate) struct Draft {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) edges: Vec<EdgeDef>,
    pub(crate) params: Vec<ParamDef>,
    pub(crate) errors: Vec<ValidationError>,
    pub(crate) cron: Option<CronSpec>,
}
