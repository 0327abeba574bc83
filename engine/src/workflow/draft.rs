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
    Output { node: Target, sel: SelDef },
    Param(String),
    Const(Result<Value, String>),
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
    pub(crate) params: Vec<ParamDef>,
    pub(crate) errors: Vec<ValidationError>,
    pub(crate) cron: Option<CronSpec>,
}
