//! dagx 0.3.1: one `#[task]` per node, wired with `depends_on`, run with
//! `DagRunner::run(|f| tokio::spawn(f))`.
//!
//! A dagx task takes at most 8 dependencies, so a node with more parents waits on
//! an 8-ary tree of helper join tasks instead (counted in `tasks`, not in `units`).

// `#[task]` re-emits `run` with one argument per dependency (up to 8).
#![allow(clippy::too_many_arguments)]

use std::sync::Arc;
use std::time::Instant;

use dagx::{DagRunner, Task, TaskHandle, task};
use tokio::runtime::Runtime;

use crate::probe::Probe;
use crate::shape::Shape;
use crate::{Sample, on_worker};

/// The value every task passes on (dagx rejects a bare `()` output).
#[derive(Clone, Copy, Debug)]
struct Tok;

/// Defines a no-op task type taking one `&Tok` per listed argument.
macro_rules! arity {
    ($name:ident $(, $arg:ident)*) => {
        #[doc = concat!("A no-op dagx task: `", stringify!($name), "`.")]
        struct $name {
            id: u32,
            probe: Option<Arc<Probe>>,
        }

        #[task]
        impl $name {
            async fn run(&self $(, $arg: &Tok)*) -> Tok {
                $(let _ = $arg;)*
                if let Some(p) = &self.probe {
                    p.visit(self.id);
                }
                Tok
            }
        }
    };
}

arity!(Dx0);
arity!(Dx1, a);
arity!(Dx2, a, b);
arity!(Dx3, a, b, c);
arity!(Dx4, a, b, c, d);
arity!(Dx5, a, b, c, d, e);
arity!(Dx6, a, b, c, d, e, f);
arity!(Dx7, a, b, c, d, e, f, g);
arity!(Dx8, a, b, c, d, e, f, g, h);

/// The largest number of dependencies a dagx task accepts.
const MAX_DEPS: usize = 8;

/// Adds a task that depends on `deps` (at most [`MAX_DEPS`]).
fn add(
    dag: &DagRunner,
    id: u32,
    probe: Option<Arc<Probe>>,
    deps: &[TaskHandle<Tok>],
) -> TaskHandle<Tok> {
    match deps {
        [] => dag.add_task(Dx0 { id, probe }).into(),
        [a] => dag.add_task(Dx1 { id, probe }).depends_on(a),
        [a, b] => dag.add_task(Dx2 { id, probe }).depends_on((a, b)),
        [a, b, c] => dag.add_task(Dx3 { id, probe }).depends_on((a, b, c)),
        [a, b, c, d] => dag.add_task(Dx4 { id, probe }).depends_on((a, b, c, d)),
        [a, b, c, d, e] => dag.add_task(Dx5 { id, probe }).depends_on((a, b, c, d, e)),
        [a, b, c, d, e, f] => dag
            .add_task(Dx6 { id, probe })
            .depends_on((a, b, c, d, e, f)),
        [a, b, c, d, e, f, g] => dag
            .add_task(Dx7 { id, probe })
            .depends_on((a, b, c, d, e, f, g)),
        [a, b, c, d, e, f, g, h] => dag
            .add_task(Dx8 { id, probe })
            .depends_on((a, b, c, d, e, f, g, h)),
        _ => unreachable!("at most {MAX_DEPS} dependencies"),
    }
}

/// Builds the dagx graph of `shape`; returns it with its task count.
fn build(shape: &Shape, probe: Option<&Arc<Probe>>) -> (DagRunner, usize) {
    let dag = DagRunner::new();
    let mut handles: Vec<TaskHandle<Tok>> = Vec::with_capacity(shape.len());
    let mut helpers = 0;
    let mut deps = Vec::new();
    for n in shape.ids() {
        deps.clear();
        deps.extend(shape.parents(n).iter().map(|&p| handles[p as usize]));
        while deps.len() > MAX_DEPS {
            let joined: Vec<TaskHandle<Tok>> = deps
                .chunks(MAX_DEPS)
                .map(|group| add(&dag, u32::MAX, None, group))
                .collect();
            helpers += joined.len();
            deps = joined;
        }
        handles.push(add(&dag, n, probe.cloned(), &deps));
    }
    (dag, shape.len() + helpers)
}

/// One run of `shape`; checked when `probe` is given.
pub(crate) fn run_once(
    rt: &Runtime,
    shape: &Arc<Shape>,
    probe: Option<&Arc<Probe>>,
) -> Result<Sample, String> {
    let t = Instant::now();
    let (dag, tasks) = build(shape, probe);
    let build = t.elapsed();
    let exec = on_worker(rt, async move {
        let t = Instant::now();
        let outcome = dag
            .run(|f| {
                tokio::spawn(f);
            })
            .await;
        let exec = t.elapsed();
        outcome.map_err(|e| format!("dagx run failed: {e}"))?;
        Ok::<_, String>(exec)
    })?;
    Ok(Sample { build, exec, tasks })
}
