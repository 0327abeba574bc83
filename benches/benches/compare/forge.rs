//! dagforge: the workflow builder with no-op jobs, run by an engine with the default
//! memory store and in-process executor.

use std::sync::Arc;
use std::time::Instant;

use dagforge::prelude::*;
use tokio::runtime::Runtime;

use crate::probe::Probe;
use crate::shape::{ITEMS, Shape, Workload};
use crate::{Sample, env_usize, on_worker};

/// A no-op node; reports to the probe in checked runs.
struct Noop {
    id: u32,
    probe: Option<Arc<Probe>>,
}

impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "bench-noop";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        if let Some(p) = &self.probe {
            p.visit(self.id);
        }
        Ok(())
    }
}

/// The source of the `items` workload: emits `0..count`.
struct Emit {
    count: u32,
    probe: Option<Arc<Probe>>,
}

impl Job for Emit {
    type Input = ();
    type Output = Vec<u32>;
    const NAME: &'static str = "bench-emit";

    async fn run(&self, _: &JobContext, _: ()) -> Result<Vec<u32>, JobError> {
        if let Some(p) = &self.probe {
            p.visit(0);
        }
        Ok((0..self.count).collect())
    }
}

/// One execution per item; item `i` is node `1 + i` of the shape.
struct PerItem {
    probe: Option<Arc<Probe>>,
}

impl Job for PerItem {
    type Input = u32;
    type Output = ();
    const NAME: &'static str = "bench-item";

    async fn run(&self, ctx: &JobContext, item: u32) -> Result<(), JobError> {
        if let Some(p) = &self.probe {
            if ctx.item() != Some(item) {
                p.fail(format!("item {item} ran as item {:?}", ctx.item()));
            }
            p.visit(1 + item);
        }
        Ok(())
    }
}

/// The engine's concurrency limit: high enough not to throttle any shape.
fn concurrency() -> usize {
    env_usize("BENCH_FORGE_CONCURRENCY", 4096)
}

/// Builds the workflow of `shape`.
fn build(shape: &Shape, probe: Option<&Arc<Probe>>) -> Result<Workflow, String> {
    let mut wf = Workflow::builder(shape.workload.name());
    if shape.workload == Workload::Items {
        let source = wf
            .add(
                "source",
                Emit {
                    count: ITEMS as u32,
                    probe: probe.cloned(),
                },
            )
            .handle();
        let items = wf
            .add(
                "items",
                PerItem {
                    probe: probe.cloned(),
                },
            )
            .each_input(source)
            .handle();
        let sink = Noop {
            id: shape.len() as u32 - 1,
            probe: probe.cloned(),
        };
        wf.add("sink", sink).after(&items);
    } else {
        let mut handles = Vec::with_capacity(shape.len());
        for n in shape.ids() {
            let job = Noop {
                id: n,
                probe: probe.cloned(),
            };
            let mut node = wf.add(format!("n{n}"), job);
            for &p in shape.parents(n) {
                node = node.after(&handles[p as usize]);
            }
            handles.push(node.handle());
        }
    }
    wf.build()
        .map_err(|e| format!("workflow does not build: {e}"))
}

/// Checks the run result: the run and every node (and item) succeeded, once.
fn check_result(shape: &Shape, result: &RunResult) -> Result<(), String> {
    if result.state != RunState::Succeeded {
        return Err(format!("run ended {}", result.state));
    }
    let expected = match shape.workload {
        Workload::Items => 3,
        _ => shape.len(),
    };
    if result.nodes.len() != expected {
        return Err(format!(
            "{} node reports, expected {expected}",
            result.nodes.len()
        ));
    }
    for n in &result.nodes {
        if n.state != NodeState::Succeeded {
            return Err(format!("node {} ended {}", n.id, n.state));
        }
        if n.items.iter().any(|i| i.state != NodeState::Succeeded) {
            return Err(format!("node {} has items that did not succeed", n.id));
        }
    }
    if shape.workload == Workload::Items {
        let items = result.node("items").map_or(0, |n| n.items.len());
        if items != ITEMS {
            return Err(format!("{items} item reports, expected {ITEMS}"));
        }
    }
    Ok(())
}

/// One run of `shape`; checked when `probe` is given. The engine (and so its memory
/// store) is new for every run and dropped outside the timing.
pub(crate) fn run_once(
    rt: &Runtime,
    shape: &Arc<Shape>,
    probe: Option<&Arc<Probe>>,
) -> Result<Sample, String> {
    let t = Instant::now();
    let wf = build(shape, probe)?;
    let build = t.elapsed();
    let engine = Engine::builder().concurrency(concurrency()).build();
    let checked = probe.is_some();
    let shape2 = Arc::clone(shape);
    let (exec, events) = on_worker(rt, async move {
        let t = Instant::now();
        let result = engine.run(&wf, ()).await;
        let exec = t.elapsed();
        let result = result.map_err(|e| format!("run failed to start: {e}"))?;
        let mut events = None;
        if checked {
            check_result(&shape2, &result)?;
            let log = engine
                .store()
                .events(result.id, 0, usize::MAX)
                .await
                .map_err(|e| format!("store query failed: {e}"))?;
            events = Some(log.len());
        }
        Ok::<_, String>((exec, events))
    })?;
    if let Some(events) = events {
        eprintln!(
            "    dagforge {}: {events} events in the store",
            shape.workload
        );
    }
    Ok(Sample {
        build,
        exec,
        tasks: match shape.workload {
            Workload::Items => ITEMS + 2,
            _ => shape.len(),
        },
    })
}
