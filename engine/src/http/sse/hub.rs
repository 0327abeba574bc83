//! What a router's streams share: the per-run feeders, and the wake-ups (the store's
//! change signal, this engine's events) that tell waiting streams to read the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use bytes::Bytes;

use super::frame::{Frame, ends_run, render_into};
use super::{CHUNK, PAGE, Shared, Streams};
use crate::{RunId, store::Wakeups};

/// How long to wait before asking the store again for its change signal after it
/// failed or ended.
const REWATCH: Duration = Duration::from_secs(1);

/// Shared by the streams of one router.
#[derive(Debug)]
pub(crate) struct Hub {
    /// The settings when the router has no [`Streams`] layer.
    pub(super) defaults: Streams,
    /// The feeder of each watched run: its clients subscribe here.
    feeders: Mutex<HashMap<RunId, broadcast::Sender<Frame>>>,
    /// Bumped when the store signals a change (another process wrote).
    store: watch::Sender<u64>,
    /// Bumped when this engine publishes events.
    local: watch::Sender<u64>,
    /// Whether the task feeding `store` and `local` runs.
    waking: AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            defaults: Streams::new(),
            feeders: Mutex::new(HashMap::new()),
            store: watch::channel(0).0,
            local: watch::channel(0).0,
            waking: AtomicBool::new(false),
        }
    }
}

/// The wake-ups a waiting stream listens to.
#[derive(Debug)]
pub(super) struct Wakes {
    /// The store signalled a change.
    pub(super) store: watch::Receiver<u64>,
    /// This engine published events.
    pub(super) local: watch::Receiver<u64>,
}

impl Hub {
    fn feeders(&self) -> MutexGuard<'_, HashMap<RunId, broadcast::Sender<Frame>>> {
        // Every change under this lock is one insert or remove: a poisoned map is whole.
        self.feeders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The messages of `run` from its feeder, started (reading on after `after`) if
    /// the run has none.
    pub(super) fn follow(
        self: &Arc<Self>,
        st: &Shared,
        run: RunId,
        after: u64,
        settings: &Streams,
    ) -> broadcast::Receiver<Frame> {
        let mut feeders = self.feeders();
        if let Some(tx) = feeders.get(&run) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(settings.buffer);
        feeders.insert(run, tx.clone());
        drop(feeders);
        let feeder = Feeder {
            hub: Arc::clone(self),
            st: Arc::clone(st),
            run,
            last: after,
            tx,
            poll: settings.poll,
            batch: Vec::new(),
            first: 0,
            terminal: false,
        };
        tokio::spawn(feeder.run());
        rx
    }

    /// The wake-ups, with the task that feeds them started if it is not running.
    pub(super) fn wakes(self: &Arc<Self>, st: &Shared) -> Wakes {
        let wakes = Wakes {
            store: self.store.subscribe(),
            local: self.local.subscribe(),
        };
        if !self.waking.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).wake(Arc::clone(st)));
        }
        wakes
    }

    fn listened(&self) -> bool {
        self.store.receiver_count() + self.local.receiver_count() > 0
    }

    /// Turns the store's change signal and this engine's events into wake-ups, while
    /// anyone listens.
    async fn wake(self: Arc<Self>, st: Shared) {
        let mut live = st.engine.subscribe();
        let mut live_open = true;
        let mut signal: Option<Wakeups> = None;
        let mut rewatch = Some(tokio::time::Instant::now());
        loop {
            if rewatch.is_some_and(|at| at <= tokio::time::Instant::now()) {
                rewatch = None;
                match st.engine.store().watch().await {
                    Ok(Some(s)) => signal = Some(s),
                    // The store cannot signal: streams poll.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "event streams: the store's change signal failed; polling");
                        rewatch = Some(tokio::time::Instant::now() + REWATCH);
                    }
                }
            }
            let store_signal = async {
                match &mut signal {
                    Some(s) => futures_util::StreamExt::next(s).await,
                    None => std::future::pending().await,
                }
            };
            let rewatch_at = async {
                match rewatch {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next_live = async {
                if live_open {
                    live.next().await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                e = next_live => match e {
                    Some(_) => self.local.send_modify(|n| *n += 1),
                    // The engine is gone: nothing local will come.
                    None => live_open = false,
                },
                s = store_signal => match s {
                    Some(()) => self.store.send_modify(|n| *n += 1),
                    None => {
                        signal = None;
                        rewatch = Some(tokio::time::Instant::now() + REWATCH);
                    }
                },
                () = rewatch_at => {}
                () = st.closing.cancelled() => {}
            }
            if st.closing.is_cancelled() || !self.listened() {
                self.waking.store(false, Ordering::Release);
                // Someone may have subscribed between the check and the flag.
                if st.closing.is_cancelled()
                    || !self.listened()
                    || self.waking.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        }
    }
}

/// How long the feeder gathers live events into one batch: clients wake once per
/// batch, not once per event.
const LINGER: Duration = Duration::from_millis(5);

/// The task that turns one run's events into messages for its clients: this engine's
/// events as they come, the store's for what they did not bring; sent in batches.
struct Feeder {
    hub: Arc<Hub>,
    st: Shared,
    run: RunId,
    /// The last sequence number rendered.
    last: u64,
    tx: broadcast::Sender<Frame>,
    poll: Duration,
    /// Rendered, not sent yet: events `first..=last`.
    batch: Vec<u8>,
    first: u64,
    /// The batch ends the run.
    terminal: bool,
}

impl Feeder {
    async fn run(mut self) {
        let mut live = self.st.engine.subscribe();
        let mut missed = live.missed();
        let mut wakes = self.hub.wakes(&self.st);
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut live_open = true;
        let mut read = true;
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            if read {
                read = false;
                flush_at = None;
                match self.read_store().await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(run_id = %self.run, error = %e, "event stream: reading the store failed; trying again");
                    }
                }
            }
            let next_live = async {
                if live_open {
                    live.next().await
                } else {
                    std::future::pending().await
                }
            };
            let flush = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                e = next_live => match e {
                    Some(e) => {
                        if live.missed() != missed {
                            missed = live.missed();
                            read = true;
                        } else if e.run == self.run {
                            if e.seq == self.last + 1 {
                                if self.add(&e) {
                                    self.terminal = true;
                                    self.flush();
                                    break;
                                }
                                if self.batch.len() >= CHUNK {
                                    self.flush();
                                    flush_at = None;
                                } else if flush_at.is_none() {
                                    flush_at = Some(tokio::time::Instant::now() + LINGER);
                                }
                            } else if e.seq > self.last + 1 {
                                read = true;
                            }
                        }
                    }
                    None => live_open = false,
                },
                () = flush => {
                    self.flush();
                    flush_at = None;
                }
                r = wakes.store.changed() => {
                    if r.is_err() {
                        break;
                    }
                    read = true;
                }
                _ = tick.tick() => read = true,
                () = self.tx.closed() => break,
                () = self.st.closing.cancelled() => break,
            }
        }
        let mut feeders = self.hub.feeders();
        if feeders
            .get(&self.run)
            .is_some_and(|tx| tx.same_channel(&self.tx))
        {
            feeders.remove(&self.run);
        }
    }

    /// Renders `e` (the next event) into the batch; whether it ended the run.
    fn add(&mut self, e: &crate::Event) -> bool {
        if self.batch.is_empty() {
            self.first = e.seq;
        }
        render_into(&mut self.batch, &e.seq, e);
        self.last = e.seq;
        ends_run(e)
    }

    /// Sends the batch to the clients.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let bytes = Bytes::from(std::mem::take(&mut self.batch));
        let frame = Frame {
            first: self.first,
            seq: self.last,
            terminal: std::mem::take(&mut self.terminal),
            bytes,
        };
        // No client left: the loop sees the channel closed.
        let _ = self.tx.send(frame);
    }

    /// Sends what the store has after the last event sent; whether the run ended.
    async fn read_store(&mut self) -> Result<bool, crate::store::StoreError> {
        self.flush();
        loop {
            let page = self
                .st
                .engine
                .store()
                .events(self.run, self.last, PAGE)
                .await?;
            let full = page.len() == PAGE;
            for e in &page {
                let ended = self.add(e);
                if ended || self.batch.len() >= CHUNK {
                    self.terminal = ended;
                    self.flush();
                }
                if ended {
                    return Ok(true);
                }
            }
            self.flush();
            if !full {
                return Ok(false);
            }
        }
    }
}
