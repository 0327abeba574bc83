//! dagrs 0.9.0: one `DefaultNode` per node, edges with `Graph::add_edge`, run with
//! `Graph::async_start`.
//!
//! dagrs spawns every node at start and orders nothing by itself: a node waits for
//! its parents only by receiving from its in-channels. So the no-op action receives
//! one message from each parent and broadcasts one empty message to its children.

use std::sync::Arc;
use std::time::Instant;

use dagrs::async_trait::async_trait;
use dagrs::{
    Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node, NodeTable, OutChannels, Output,
};
use tokio::runtime::Runtime;

use crate::probe::Probe;
use crate::shape::Shape;
use crate::{Sample, on_worker};

/// The no-op action: wait for the parents, report to the probe, release the children.
struct Relay {
    id: u32,
    probe: Option<Arc<Probe>>,
}

#[async_trait]
impl Action for Relay {
    async fn run(
        &self,
        inputs: &mut InChannels,
        outputs: &mut OutChannels,
        _: Arc<EnvVar>,
    ) -> Output {
        let received = inputs.map(|m| m.is_ok()).await;
        if let Some(p) = &self.probe {
            let lost = received.iter().filter(|ok| !**ok).count();
            if lost > 0 {
                p.fail(format!("node {} lost {lost} parent messages", self.id));
            }
            p.visit(self.id);
        }
        let sent = outputs.broadcast(Content::new(())).await;
        if let Some(p) = &self.probe
            && sent.iter().any(Result::is_err)
        {
            p.fail(format!("node {} could not notify a child", self.id));
        }
        Output::empty()
    }
}

/// Builds the dagrs graph of `shape`.
fn build(shape: &Shape, probe: Option<&Arc<Probe>>) -> Result<Graph, String> {
    let mut table = NodeTable::default();
    let mut graph = Graph::new();
    let mut ids = Vec::with_capacity(shape.len());
    for n in shape.ids() {
        let action = Relay {
            id: n,
            probe: probe.cloned(),
        };
        let node = DefaultNode::with_action(format!("n{n}"), action, &mut table);
        ids.push(node.id());
        graph
            .add_node(node)
            .map_err(|e| format!("dagrs add_node: {e:?}"))?;
    }
    for n in shape.ids() {
        let children = shape.children(n);
        if !children.is_empty() {
            graph
                .add_edge(ids[n as usize], children.iter().map(|&c| ids[c as usize]))
                .map_err(|e| format!("dagrs add_edge: {e:?}"))?;
        }
    }
    Ok(graph)
}

/// One run of `shape`; checked when `probe` is given.
pub(crate) fn run_once(
    rt: &Runtime,
    shape: &Arc<Shape>,
    probe: Option<&Arc<Probe>>,
) -> Result<Sample, String> {
    let t = Instant::now();
    let mut graph = build(shape, probe)?;
    let build = t.elapsed();
    let exec = on_worker(rt, async move {
        let t = Instant::now();
        let outcome = graph.async_start().await;
        let exec = t.elapsed();
        outcome.map_err(|e| format!("dagrs run failed: {e:?}"))?;
        Ok::<_, String>(exec)
    })?;
    Ok(Sample {
        build,
        exec,
        tasks: shape.len(),
    })
}
