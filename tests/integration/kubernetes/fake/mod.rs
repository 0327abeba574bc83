//! A fake Kubernetes API server on loopback, with a fake kubelet that runs each pod's
//! container command as a local process: the subset of batch/v1 Jobs and core/v1 Pods
//! (create, get, list, watch with resourceVersions and 410 for too-old ones, delete
//! with propagation, deletecollection) and `pods/{name}/log?follow&sinceTime&timestamps`
//! that the Kubernetes executor uses. Switches simulate an image that cannot be
//! pulled, an OOM kill, an eviction, a node loss, and an API server that drops
//! connections.

mod api;
mod kubelet;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

/// How many watch events are kept; a watch from an older resourceVersion gets 410.
const HISTORY: usize = 10_000;

/// One recorded change, for watches.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) kind: &'static str,
    pub(crate) event: &'static str,
    pub(crate) object: Value,
}

/// A pod's log line: its timestamp (RFC 3339, nanoseconds) and text.
#[derive(Clone, Debug)]
pub(crate) struct LogLine {
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    pub(crate) text: String,
}

/// A pod the fake kubelet runs.
#[derive(Debug, Default)]
pub(crate) struct PodEntry {
    pub(crate) object: Value,
    pub(crate) log: Vec<LogLine>,
    /// The container's process group (its leader's pid), while it runs.
    pub(crate) pid: Option<i32>,
    /// The container ended.
    pub(crate) ended: bool,
    /// The kubelet OOM-killed it.
    pub(crate) oom: bool,
}

/// The cluster's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) rv: u64,
    pub(crate) jobs: BTreeMap<String, Value>,
    pub(crate) pods: BTreeMap<String, PodEntry>,
    pub(crate) history: VecDeque<Change>,
    /// The oldest resourceVersion a watch may start from.
    pub(crate) oldest: u64,
    pub(crate) secrets: BTreeMap<(String, String), String>,
    pub(crate) switches: Switches,
    /// Every Job ever created, by name, in order.
    pub(crate) created: Vec<String>,
    /// The logs of pods that were removed.
    pub(crate) archive: BTreeMap<String, Vec<LogLine>>,
    /// Requests seen: (method, path).
    pub(crate) requests: Vec<(String, String)>,
}

/// Fault switches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Switches {
    /// Log streams end this long after they were opened while the container runs (the
    /// API server drops the connection); the executor must resume.
    pub(crate) drop_logs_after: Option<std::time::Duration>,
    /// Watches end after this many events.
    pub(crate) drop_watches_after: Option<usize>,
    /// The kubelet does not start containers (a node that is gone, a stuck kubelet).
    pub(crate) frozen: bool,
    /// Creates answer 409 AlreadyExists even when the Job is new (the Job is created):
    /// a create whose reply was lost and that was retried.
    pub(crate) conflict_on_create: bool,
    /// Creating Jobs is forbidden (403): a service account without the permission.
    pub(crate) forbid_create: bool,
}

/// The fake cluster; dropping it stops the server and kills the containers.
#[derive(Clone, Debug)]
pub(crate) struct Fake {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) changed: Arc<watch::Sender<u64>>,
}

impl Fake {
    /// Starts the API server on a free loopback port.
    pub(crate) async fn start() -> Fake {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, _) = watch::channel(0);
        let fake = Fake {
            url: String::new(),
            state,
            changed: Arc::new(tx),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = api::router(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, ..fake }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a change of an object (bumping its resourceVersion) and wakes watchers.
    pub(crate) fn record(
        &self,
        st: &mut State,
        kind: &'static str,
        event: &'static str,
        object: &mut Value,
    ) {
        st.rv += 1;
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.history.push_back(Change {
            rv: st.rv,
            kind,
            event,
            object: object.clone(),
        });
        while st.history.len() > HISTORY {
            if let Some(c) = st.history.pop_front() {
                st.oldest = c.rv;
            }
        }
        self.changed.send_replace(st.rv);
    }

    /// Wakes log followers.
    pub(crate) fn poke(&self) {
        self.changed.send_modify(|v| *v += 0);
    }

    /// Forgets the watch history: a watch resumed from an older version gets 410.
    pub(crate) fn compact(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.oldest = st.rv;
    }

    /// Sets a secret's key (for `valueFrom.secretKeyRef`).
    pub(crate) fn secret(&self, name: &str, key: &str, value: &str) {
        self.lock()
            .secrets
            .insert((name.into(), key.into()), value.into());
    }

    /// Changes the fault switches.
    pub(crate) fn switches(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.lock().switches);
    }

    /// The Jobs that exist now.
    pub(crate) fn job_names(&self) -> Vec<String> {
        self.lock().jobs.keys().cloned().collect()
    }

    /// The pods that exist now.
    pub(crate) fn pod_names(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }

    /// A Job as stored.
    pub(crate) fn job(&self, name: &str) -> Option<Value> {
        self.lock().jobs.get(name).cloned()
    }

    /// Every Job created so far.
    pub(crate) fn created(&self) -> Vec<String> {
        self.lock().created.clone()
    }

    /// A pod's log as stored.
    pub(crate) fn log(&self, pod: &str) -> Vec<String> {
        let st = self.lock();
        let log = st
            .pods
            .get(pod)
            .map(|p| &p.log)
            .or_else(|| st.archive.get(pod));
        log.map(|l| l.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default()
    }

    /// Evicts a pod: its container is killed and the pod fails with reason Evicted.
    pub(crate) fn evict(&self, pod: &str) {
        kubelet::evict(self, pod);
    }

    /// Loses a pod's node: the container is killed and the pod object vanishes.
    pub(crate) fn lose_node(&self, pod: &str) {
        kubelet::lose(self, pod);
    }

    /// Waits until `f` holds (checked at every change), at most `secs`.
    pub(crate) async fn until(&self, secs: u64, mut f: impl FnMut(&State) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if f(&self.lock()) {
                return true;
            }
            let wait = tokio::time::timeout_at(deadline, rx.changed());
            if let Ok(Err(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(50), wait).await
            {
                return f(&self.lock());
            }
            if tokio::time::Instant::now() >= deadline {
                return f(&self.lock());
            }
        }
    }
}

/// Whether `labels` match a selector of `k=v` terms.
pub(crate) fn matches(selector: Option<&str>, labels: &Value) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v.trim_start_matches('=')),
        None => labels.get(term).is_some(),
    })
}
