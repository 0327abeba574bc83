//! Group commit for the SQL stores: appends from many runs written in one transaction.
//!
//! Every run's driver has at most one append in flight, and waits for it. When many
//! runs are active, writing each append in its own transaction spends most of the time
//! on round trips and commits. The [`Combiner`] queues appends and a writer task takes
//! everything queued so far and writes it at once; while it writes, the next appends
//! queue up. An idle store writes a lone append at once, so latency is not traded for
//! throughput: batches only grow when appends arrive faster than commits.
//!
//! Nothing is weakened: each append still checks its own run's lease and fencing token
//! (a refused append fails alone, the others are written), and an append is reported
//! written only after its transaction committed.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::ids::RunId;

use super::sql::{Batch, backend, refusal};
use super::{Lease, StoreError};

/// Appends taken per write (bounds statement size and parameter counts).
const MAX_PER_WRITE: usize = 256;

/// One run's append, encoded.
#[derive(Debug)]
pub(super) struct Append {
    /// The run.
    pub(super) run: RunId,
    /// The lease the writer claims to hold.
    pub(super) lease: Lease,
    /// The rows, numbered from 1.
    pub(super) batch: Batch,
    /// How many events the batch holds.
    pub(super) n: i64,
    /// The sequence number of its first event (it must continue the run's log).
    pub(super) first: i64,
}

/// Writes a set of appends to distinct runs.
pub(super) trait Flush: Send + Sync + 'static {
    /// Writes `appends` (each run at most once) and returns one result per append, in
    /// order. A refused lease fails only its own append.
    fn flush(&self, appends: &[Append])
    -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;
}

/// What a SQL store provides for [`Flush`]: the grouped write, and the run row that
/// explains a refusal.
pub(super) trait GroupWrite: Send + Sync + 'static {
    /// Writes `appends` (each run at most once) together; `Ok` holds, per append,
    /// whether its lease and sequence checks passed (and so it was written).
    fn write(
        &self,
        appends: &[Append],
    ) -> impl Future<Output = Result<Vec<bool>, sqlx::Error>> + Send;

    /// The run's lease owner, fence and last sequence number (`None`: no such run).
    fn run_row(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<(Option<String>, i64, i64)>, sqlx::Error>> + Send;

    /// Why a lease check on `run` failed: no such run, or a stale lease.
    fn refused(&self, run: RunId, lease: &Lease) -> impl Future<Output = StoreError> + Send {
        async move {
            match self.run_row(run).await {
                Ok(None) => StoreError::UnknownRun(run),
                Ok(Some(_)) => StoreError::Fenced {
                    run,
                    owner: lease.owner.to_string(),
                    fence: lease.fence,
                },
                Err(e) => backend("checking a lease", e),
            }
        }
    }
}

/// Why `append` was not written (or `Ok`: it had been, by an earlier try whose reply
/// was lost).
async fn explain<W: GroupWrite>(w: &W, append: &Append) -> Result<(), StoreError> {
    let row = w
        .run_row(append.run)
        .await
        .map_err(|e| backend("checking a lease", e))?;
    refusal(
        append.run,
        &append.lease,
        u64::try_from(append.first).unwrap_or(0),
        u64::try_from(append.n).unwrap_or(0),
        row,
    )
}

/// Whether `e` means the database could not be reached (rather than that it refused
/// this statement).
fn lost_connection(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    ) || matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")))
}

impl<W: GroupWrite> Flush for W {
    async fn flush(&self, appends: &[Append]) -> Vec<Result<(), StoreError>> {
        match self.write(appends).await {
            Ok(written) => {
                let mut out = Vec::with_capacity(appends.len());
                for (a, ok) in appends.iter().zip(written) {
                    out.push(if ok { Ok(()) } else { explain(self, a).await });
                }
                out
            }
            // The database is out of reach: every append waits for it alike.
            Err(e) if appends.len() > 1 && lost_connection(&e) => {
                let message = e.to_string();
                appends
                    .iter()
                    .map(|_| {
                        Err(StoreError::Backend {
                            message: format!("store: appending events: {message}"),
                            source: None,
                        })
                    })
                    .collect()
            }
            // The group was refused as a whole (nothing of it was written): write each
            // append alone, so that one bad append fails only itself.
            Err(_) if appends.len() > 1 => {
                let mut out = Vec::with_capacity(appends.len());
                for a in appends {
                    out.push(match self.write(std::slice::from_ref(a)).await {
                        Ok(w) if w.first() == Some(&true) => Ok(()),
                        Ok(_) => explain(self, a).await,
                        Err(e) => Err(backend("appending events", e)),
                    });
                }
                out
            }
            Err(e) => vec![Err(backend("appending events", e))],
        }
    }
}

type Request = (Append, oneshot::Sender<Result<(), StoreError>>);

/// Queues appends for a writer task that writes them in groups.
#[derive(Debug)]
pub(super) struct Combiner<F> {
    flush: Arc<F>,
    tx: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl<F: Flush> Combiner<F> {
    /// A combiner writing through `flush`. The writer task starts with the first
    /// append, on the runtime that makes it (and again if that runtime went away).
    pub(super) fn new(flush: F) -> Self {
        Combiner {
            flush: Arc::new(flush),
            tx: Mutex::new(None),
        }
    }

    /// The writer behind this combiner.
    pub(super) fn flusher(&self) -> &F {
        &self.flush
    }

    /// Writes `append`, grouped with whatever else is queued.
    pub(super) async fn append(&self, append: Append) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        if let Err(mpsc::error::SendError((append, _))) = self.sender().send((append, reply)) {
            // No writer (no runtime to run one on): write it here.
            return self.write_alone(append).await;
        }
        done.await.unwrap_or_else(|_| {
            Err(StoreError::Backend {
                message: "store: the writer stopped before reporting an append".to_owned(),
                source: None,
            })
        })
    }

    async fn write_alone(&self, append: Append) -> Result<(), StoreError> {
        self.flush
            .flush(std::slice::from_ref(&append))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    fn sender(&self) -> mpsc::UnboundedSender<Request> {
        let mut tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = tx.as_ref().filter(|t| !t.is_closed()) {
            return t.clone();
        }
        let (t, rx) = mpsc::unbounded_channel();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(write_loop(Arc::clone(&self.flush), rx));
        }
        // Without a runtime the receiver is dropped here and `append` writes alone.
        *tx = Some(t.clone());
        t
    }
}

/// The writer: takes every queued append, writes them in rounds where each run appears
/// once (a run's second append waits for the next round, keeping its order), replies.
async fn write_loop<F: Flush>(flush: Arc<F>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut queued: Vec<Request> = Vec::new();
    loop {
        if queued.is_empty() && rx.recv_many(&mut queued, MAX_PER_WRITE).await == 0 {
            return;
        }
        let room = MAX_PER_WRITE.saturating_sub(queued.len());
        if room > 0 {
            while let Ok(r) = rx.try_recv() {
                queued.push(r);
                if queued.len() >= MAX_PER_WRITE {
                    break;
                }
            }
        }
        let (round, later) = split_round(std::mem::take(&mut queued));
        queued = later;
        let (appends, replies): (Vec<Append>, Vec<_>) = round.into_iter().unzip();
        let results = flush.flush(&appends).await;
        let mut results = results.into_iter();
        for reply in replies {
            let r = results.next().unwrap_or_else(|| {
                Err(StoreError::Backend {
                    message: "store: an append was not reported by its write".to_owned(),
                    source: None,
                })
            });
            let _ = reply.send(r);
        }
    }
}

/// The first append of each run goes in this round; later appends of a run already in
/// it wait (in order) for the next.
fn split_round(requests: Vec<Request>) -> (Vec<Request>, Vec<Request>) {
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    let mut round = Vec::with_capacity(requests.len());
    let mut later = Vec::new();
    for r in requests {
        // Once a run is deferred, all its later appends are too (they follow it).
        if seen.insert(r.0.run) {
            round.push(r);
        } else {
            later.push(r);
        }
    }
    (round, later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records the sizes of writes and refuses appends whose fence is 0.
    #[derive(Default)]
    struct Recorder {
        writes: Mutex<Vec<Vec<(RunId, u64)>>>,
        calls: AtomicUsize,
    }

    impl Flush for Recorder {
        fn flush(
            &self,
            appends: &[Append],
        ) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.writes
                .lock()
                .unwrap()
                .push(appends.iter().map(|a| (a.run, a.lease.fence)).collect());
            let out = appends
                .iter()
                .map(|a| {
                    if a.lease.fence == 0 {
                        Err(StoreError::UnknownRun(a.run))
                    } else {
                        Ok(())
                    }
                })
                .collect();
            async move {
                tokio::task::yield_now().await;
                out
            }
        }
    }

    fn append(run: RunId, fence: u64) -> Append {
        Append {
            run,
            lease: Lease::new("t", fence),
            batch: Batch::default(),
            n: 0,
            first: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_concurrent_appends_and_fails_only_the_refused_one() {
        let c = Arc::new(Combiner::new(Recorder::default()));
        let runs: Vec<RunId> = (0..64).map(|_| RunId::new()).collect();
        let mut tasks = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let (c, run) = (Arc::clone(&c), *run);
            let fence = if i == 7 { 0 } else { 1 };
            tasks.push(tokio::spawn(
                async move { c.append(append(run, fence)).await },
            ));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.is_err(), i == 7, "append {i}: {r:?}");
        }
        let writes = c.flush.writes.lock().unwrap();
        let total: usize = writes.iter().map(Vec::len).sum();
        assert_eq!(total, 64);
        assert!(
            writes.len() < 64,
            "appends were grouped: {} writes",
            writes.len()
        );
    }

    #[test]
    fn a_runs_second_append_waits_for_the_next_round() {
        let (a, b) = (RunId::new(), RunId::new());
        let reqs: Vec<Request> = [(a, 1), (b, 1), (a, 2), (b, 2), (a, 3)]
            .into_iter()
            .map(|(r, f)| (append(r, f), oneshot::channel().0))
            .collect();
        let (round, later) = split_round(reqs);
        let round: Vec<_> = round.iter().map(|r| (r.0.run, r.0.lease.fence)).collect();
        let later: Vec<_> = later.iter().map(|r| (r.0.run, r.0.lease.fence)).collect();
        assert_eq!(round, vec![(a, 1), (b, 1)]);
        assert_eq!(later, vec![(a, 2), (b, 2), (a, 3)]);
    }

    #[test]
    fn without_a_runtime_appends_are_written_alone() {
        let c = Combiner::new(Recorder::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A store made and used on one runtime, then on another after the first went.
        rt.block_on(c.append(append(RunId::new(), 1))).unwrap();
        drop(rt);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(c.append(append(RunId::new(), 1))).unwrap();
        assert_eq!(c.flush.calls.load(Ordering::SeqCst), 2);
    }
}
