//! `build()`: resolve references, check every rule, compile the petgraph DAG.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::Workflow;
use super::draft::{Draft, SelDef, SourceDef, Target};
use super::path::{JsonPath, Predicate};
use super::plan::{Cond, FanOut, InputPlan, Param, Plan, PlanNode, Sel, Src};
use crate::error::validation::{ValidationError, ValidationErrors};
use crate::job::Backoff;

fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id.len() > 200 {
        return Err("it is longer than 200 characters");
    }
    if !id
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("use letters, digits, `-`, `_` and `.` only");
    }
    Ok(())
}

struct Ctx<'a> {
    wf: u32,
    index: &'a HashMap<Arc<str>, u32>,
    params: &'a [Param],
    errors: Vec<ValidationError>,
}

impl Ctx<'_> {
    fn target(&mut self, node: &str, what: &str, t: &Target, is_dep: bool) -> Option<u32> {
        match t {
            Target::Handle { wf, idx } if *wf == self.wf => Some(*idx),
            Target::Handle { .. } => {
                self.errors.push(ValidationError::ForeignHandle {
                    node: node.to_owned(),
                    what: what.to_owned(),
                });
                None
            }
            Target::Name(name) => match self.index.get(name.as_str()) {
                Some(&i) => Some(i),
                None => {
                    self.errors.push(if is_dep {
                        ValidationError::UnknownDependency {
                            node: node.to_owned(),
                            dependency: name.clone(),
                        }
                    } else {
                        ValidationError::MissingSource {
                            node: node.to_owned(),
                            what: what.to_owned(),
                            source_node: name.clone(),
                        }
                    });
                    None
                }
            },
        }
    }

    fn path(&mut self, node: &str, what: &str, path: &str) -> Option<JsonPath> {
        match JsonPath::parse(path) {
            Ok(p) => Some(p),
            Err(reason) => {
                self.errors.push(ValidationError::InvalidPath {
                    node: node.to_owned(),
                    what: what.to_owned(),
                    path: path.to_owned(),
                    reason,
                });
                None
            }
        }
    }

    fn source(
        &mut self,
        node: &str,
        what: &str,
        def: &SourceDef,
        parents: &mut Vec<u32>,
    ) -> Option<Src> {
        match def {
            SourceDef::Const(Ok(v)) => Some(Src::Const(v.clone())),
            SourceDef::Const(Err(reason)) => {
                self.errors.push(ValidationError::InvalidValue {
                    node: node.to_owned(),
                    what: what.to_owned(),
                    reason: reason.clone(),
                });
                None
            }
            // Filled in with the node's upstream nodes once they are all known.
            SourceDef::Parents => Some(Src::Parents(Box::default())),
            SourceDef::Param(name) => {
                if let Some(i) = self.params.iter().position(|p| &*p.name == name.as_str()) {
                    Some(Src::Param(i as u32))
                } else {
                    self.errors.push(ValidationError::UnknownParam {
                        node: node.to_owned(),
                        param: name.clone(),
                    });
                    None
                }
            }
            SourceDef::Output { node: t, sel } => {
                let up = self.target(node, what, t, false);
                let sel = match sel {
                    SelDef::Whole => Some(Sel::Whole),
                    SelDef::Field(f) => Some(Sel::Field(f.as_str().into())),
                    SelDef::Path(p) => self.path(node, what, p).map(Sel::Path),
                };
                let up = up?;
                parents.push(up);
                Some(Src::Output {
                    node: up,
                    sel: sel?,
                })
            }
        }
    }
}

pub(crate) fn compile(b: Draft) -> Result<Workflow, ValidationErrors> {
    let Draft {
        id: wf,
        name,
        version,
        nodes,
        edges,
        params,
        errors,
        cron,
    } = b;
    let params: Vec<Param> = params
        .into_iter()
        .map(|p| Param {
            name: p.name.into(),
            default: p.default,
        })
        .collect();

    let mut index: HashMap<Arc<str>, u32> = HashMap::with_capacity(nodes.len());
    let mut ids: Vec<Arc<str>> = Vec::with_capacity(nodes.len());
    let mut errs = errors;
    if nodes.is_empty() {
        errs.push(ValidationError::Empty);
    }
    for (i, n) in nodes.iter().enumerate() {
        let id: Arc<str> = n.id.as_str().into();
        if let Err(reason) = check_id(&n.id) {
            errs.push(ValidationError::InvalidNodeId {
                node: n.id.clone(),
                reason,
            });
        }
        if index.contains_key(&id) {
            if !errs
                .iter()
                .any(|e| matches!(e, ValidationError::DuplicateNode { node } if node == &n.id))
            {
                errs.push(ValidationError::DuplicateNode { node: n.id.clone() });
            }
        } else {
            index.insert(id.clone(), i as u32);
        }
        ids.push(id);
    }

    // Order-only edges added by ids, as parents of their downstream nodes.
    let mut edge_parents: Vec<Vec<u32>> = Vec::new();
    if !edges.is_empty() {
        edge_parents.resize(nodes.len(), Vec::new());
    }
    for e in &edges {
        let from = index.get(e.from.as_str());
        let to = index.get(e.to.as_str());
        for (end, found) in [(&e.from, from), (&e.to, to)] {
            if found.is_none() {
                errs.push(ValidationError::DanglingEdge {
                    from: e.from.clone(),
                    to: e.to.clone(),
                    missing: end.clone(),
                });
            }
        }
        if let (Some(&f), Some(&t)) = (from, to) {
            edge_parents[t as usize].push(f);
        }
    }
    let mut labels: Vec<Option<Box<str>>> = Vec::new();
    if nodes.iter().any(|n| n.label.is_some()) {
        labels = nodes
            .iter()
            .map(|n| n.label.as_deref().map(Box::from))
            .collect();
    }

    let mut cx = Ctx {
        wf,
        index: &index,
        params: &params,
        errors: errs,
    };
    let mut plan_nodes = Vec::with_capacity(nodes.len());
    let mut job_names: HashMap<&'static str, Arc<str>> = HashMap::new();
    let mut backoffs: Vec<Arc<Backoff>> = Vec::new();
    let mut all_parents: Vec<Vec<u32>> = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.into_iter().enumerate() {
        let node = n.id.as_str();
        let mut parents = edge_parents
            .get_mut(i)
            .map(std::mem::take)
            .unwrap_or_default();
        super::merge::check(&n, &ids, &mut cx.errors);
        for t in &n.after {
            if let Some(p) = cx.target(node, "dependency", t, true) {
                parents.push(p);
            }
        }
        let whole = n
            .whole
            .as_ref()
            .and_then(|d| cx.source(node, "input", d, &mut parents));
        let mut fields = Vec::with_capacity(n.fields.len());
        for (f, d) in &n.fields {
            let what = format!("input field `{f}`");
            if let Some(s) = cx.source(node, &what, d, &mut parents) {
                fields.push((Arc::<str>::from(f.as_str()), s));
            }
        }
        if n.fan_outs.len() > 1 {
            cx.errors.push(ValidationError::MultipleFanOuts {
                node: n.id.clone(),
                count: n.fan_outs.len(),
            });
        }
        let fan_out = n.fan_outs.first().and_then(|f| {
            if matches!(f.items, SourceDef::Parents) {
                cx.errors.push(ValidationError::InvalidValue {
                    node: n.id.clone(),
                    what: "fan-out".to_owned(),
                    reason: "the upstream outputs are an object keyed by node id, not a list"
                        .to_owned(),
                });
                return None;
            }
            let items = cx.source(node, "fan-out", &f.items, &mut parents)?;
            Some(Box::new(FanOut {
                field: f.field.as_deref().map(Arc::from),
                items,
            }))
        });
        let mut conditions = Vec::with_capacity(n.conditions.len());
        for c in &n.conditions {
            let on = match &c.on {
                Some(t) => match cx.target(node, "condition", t, false) {
                    Some(p) => {
                        parents.push(p);
                        Some(p)
                    }
                    None => continue,
                },
                None => None,
            };
            match Predicate::parse(&c.expr) {
                Ok(pred) => conditions.push(Cond {
                    on,
                    text: c.expr.as_str().into(),
                    pred,
                }),
                Err(reason) => cx.errors.push(ValidationError::InvalidCondition {
                    node: n.id.clone(),
                    condition: c.expr.clone(),
                    reason,
                }),
            }
        }
        parents.sort_unstable();
        parents.dedup();
        let mut whole = whole;
        let by_id = || -> Box<[(Arc<str>, u32)]> {
            parents
                .iter()
                .map(|&p| (ids[p as usize].clone(), p))
                .collect()
        };
        if let Some(Src::Parents(ps)) = &mut whole {
            *ps = by_id();
        }
        for (_, s) in &mut fields {
            if let Src::Parents(ps) = s {
                *ps = by_id();
            }
        }
        let spec = n.job.spec();
        let job_name = Arc::clone(
            job_names
                .entry(n.job.name())
                .or_insert_with(|| Arc::from(n.job.name())),
        );
        plan_nodes.push(PlanNode {
            id: ids[i].clone(),
            job_name,
            job: n.job,
            input: InputPlan {
                whole: whole.map(Box::new),
                fields: fields.into_boxed_slice(),
            },
            fan_out,
            conditions: conditions.into_boxed_slice(),
            trigger: n.trigger,
            retries: n.retries.unwrap_or(spec.retries),
            backoff: intern_backoff(&mut backoffs, n.backoff.unwrap_or(spec.backoff)),
            timeout: n.timeout.unwrap_or(spec.timeout),
            priority: n.priority.unwrap_or(spec.priority),
            concurrency: n.concurrency,
        });
        all_parents.push(parents);
    }

    let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(plan_nodes.len(), 0);
    for _ in 0..plan_nodes.len() {
        graph.add_node(());
    }
    for (c, ps) in all_parents.iter().enumerate() {
        for &p in ps {
            graph.add_edge(NodeIndex::new(p as usize), NodeIndex::new(c), ());
        }
    }
    let mut cycles = find_cycles(&graph);
    cycles.sort();
    for cyc in cycles {
        cx.errors.push(ValidationError::Cycle {
            path: cyc.iter().map(|&i| ids[i].to_string()).collect(),
        });
    }

    if !cx.errors.is_empty() {
        return Err(ValidationErrors {
            workflow: name,
            errors: cx.errors,
        });
    }
    let mut plan = Plan::new(name, version, plan_nodes, &all_parents, params, index);
    plan.labels = labels;
    let mut workflow = Workflow::from_plan(plan);
    workflow.cron = cron.map(Arc::new);
    Ok(workflow)
}

/// Shares equal backoff policies between nodes (there are few distinct ones).
fn intern_backoff(known: &mut Vec<Arc<Backoff>>, b: Backoff) -> Arc<Backoff> {
    if let Some(k) = known.iter().find(|k| ***k == b) {
        return Arc::clone(k);
    }
    let b = Arc::new(b);
    if known.len() < 64 {
        known.push(Arc::clone(&b));
    }
    b
}

/// One cycle per strongly connected component that has one, starting at the
/// component's smallest node index. Iterative throughout (deep graphs must not overflow
/// the stack): a topological sort proves the common acyclic case, Kosaraju's algorithm
/// finds the components otherwise.
fn find_cycles(graph: &DiGraph<(), ()>) -> Vec<Vec<usize>> {
    if toposort(graph, None).is_ok() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for comp in kosaraju_scc(graph) {
        if comp.len() == 1 {
            let n = comp[0];
            if graph.find_edge(n, n).is_some() {
                out.push(vec![n.index(), n.index()]);
            }
            continue;
        }
        let start = *comp.iter().min().unwrap_or(&comp[0]);
        let inside: std::collections::HashSet<NodeIndex> = comp.iter().copied().collect();
        // Shortest path start → … → u with an edge u → start, through the component.
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'bfs: while let Some(u) = queue.pop_front() {
            for e in graph.edges(u) {
                let v = e.target();
                if v == start {
                    last = Some(u);
                    break 'bfs;
                }
                if inside.contains(&v) && !prev.contains_key(&v) {
                    prev.insert(v, u);
                    queue.push_back(v);
                }
            }
        }
        let Some(mut u) = last else { continue };
        let mut path = vec![u.index()];
        while u != start {
            u = prev[&u];
            path.push(u.index());
        }
        path.reverse();
        path.push(start.index());
        out.push(path);
    }
    out
}
