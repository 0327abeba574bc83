//! Property tests: random DAGs run every node once, after all of its dependencies.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use dagforge::prelude::*;
use proptest::prelude::*;

/// Records a global completion counter value per node.
#[derive(Clone)]
struct Stamp {
    clock: Arc<AtomicU32>,
    started: Arc<[AtomicU32]>,
    finished: Arc<[AtomicU32]>,
    runs: Arc<Mutex<Vec<u32>>>,
}

impl Job for Stamp {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "stamp";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        let i: usize = ctx.node_id()[1..].parse().map_err(JobError::from)?;
        self.started[i].store(
            self.clock.fetch_add(1, Ordering::SeqCst) + 1,
            Ordering::SeqCst,
        );
        if i.is_multiple_of(7) {
            tokio::task::yield_now().await;
        }
        self.finished[i].store(
            self.clock.fetch_add(1, Ordering::SeqCst) + 1,
            Ordering::SeqCst,
        );
        self.runs.lock().unwrap().push(i as u32);
        Ok(())
    }
}

fn check(n: usize, parents: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let stamp = Stamp {
        clock: Arc::default(),
        started: (0..n).map(|_| AtomicU32::new(0)).collect(),
        finished: (0..n).map(|_| AtomicU32::new(0)).collect(),
        runs: Arc::default(),
    };
    let mut wf = Workflow::builder("random");
    let mut handles = Vec::with_capacity(n);
    for (i, ps) in parents.iter().enumerate() {
        let mut node = wf.add(format!("n{i}"), stamp.clone());
        for &p in ps {
            node = node.after(&handles[p]);
        }
        handles.push(node.handle());
    }
    let wf = wf.build().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(Engine::builder().concurrency(64).build().run(&wf, ()))
        .unwrap();
    prop_assert!(r.is_success());
    let mut runs = stamp.runs.lock().unwrap().clone();
    prop_assert_eq!(runs.len(), n, "every node ran");
    runs.sort_unstable();
    runs.dedup();
    prop_assert_eq!(runs.len(), n, "no node ran twice");
    for (i, ps) in parents.iter().enumerate() {
        let start = stamp.started[i].load(Ordering::SeqCst);
        for &p in ps {
            let parent_end = stamp.finished[p].load(Ordering::SeqCst);
            prop_assert!(
                parent_end < start,
                "n{} started before its parent n{} finished",
                i,
                p
            );
        }
    }
    Ok(())
}

/// Parents of node i are drawn from nodes < i, so the graph is a DAG; the order nodes
/// are added in is shuffled relative to the edges by the random choice of parents.
fn dag(n: usize, max_parents: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    (0..n)
        .map(|i| {
            if i == 0 {
                Just(Vec::new()).boxed()
            } else {
                proptest::collection::vec(0..i, 0..=max_parents.min(i))
                    .prop_map(|mut v| {
                        v.sort_unstable();
                        v.dedup();
                        v
                    })
                    .boxed()
            }
        })
        .collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn ten_thousand_node_random_dag_respects_every_edge(parents in dag(10_000, 4)) {
        check(10_000, &parents)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn small_random_dags_respect_every_edge(n in 1usize..60, seed in any::<u64>()) {
        let mut rng = seed;
        let mut next = move || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let parents: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let k = if i == 0 { 0 } else { (next() % 4) as usize };
                let mut ps: Vec<usize> = (0..k).map(|_| (next() % i as u64) as usize).collect();
                ps.sort_unstable();
                ps.dedup();
                ps
            })
            .collect();
        check(n, &parents)?;
    }
}
