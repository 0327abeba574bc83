//! What a pod's status says about the attempt it runs.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

use super::render::CONTAINER;

/// Waiting reasons of a container that will not start on its own.
const STUCK: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// How the worker container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ended {
    pub(super) exit_code: i32,
    pub(super) signal: Option<i32>,
    /// `OOMKilled`, `Error`, `Completed`, …
    pub(super) reason: Option<String>,
    pub(super) message: Option<String>,
}

/// The attempt's pod, as far as the executor cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PodView {
    /// Not running yet; `stuck` is why, when it will not start on its own
    /// (`ImagePullBackOff: …`, `Unschedulable: …`).
    Pending { stuck: Option<String> },
    /// The worker container runs.
    Running,
    /// The worker container ended.
    Ended(Ended),
    /// The pod failed without its container ending: evicted, its node lost, past its
    /// deadline (`reason: message`).
    Lost(String),
}

fn reason_and_message(reason: Option<&String>, message: Option<&String>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "no reason given".into(),
    }
}

fn ended(t: &ContainerStateTerminated) -> Ended {
    Ended {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone(),
        message: t.message.clone(),
    }
}

/// Reads a pod's status.
pub(super) fn view(pod: &Pod) -> PodView {
    let Some(status) = &pod.status else {
        return PodView::Pending { stuck: None };
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if phase == "Failed"
        && let Some(reason) = &status.reason
    {
        // Evicted, NodeLost, Shutdown, DeadlineExceeded: the pod's end, not the
        // container's.
        return PodView::Lost(reason_and_message(Some(reason), status.message.as_ref()));
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER)
        .or_else(|| status.container_statuses.iter().flatten().next());
    if let Some(state) = container.and_then(|c| c.state.as_ref()) {
        if let Some(t) = &state.terminated {
            return PodView::Ended(ended(t));
        }
        if state.running.is_some() {
            return PodView::Running;
        }
    }
    if phase == "Failed" {
        return PodView::Lost(reason_and_message(
            status.reason.as_ref(),
            status.message.as_ref(),
        ));
    }
    if phase == "Succeeded" {
        // No container status (cannot happen on a real cluster): it ended well.
        return PodView::Ended(Ended {
            exit_code: 0,
            signal: None,
            reason: Some("Completed".into()),
            message: None,
        });
    }
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .filter(|w| w.reason.as_deref().is_some_and(|r| STUCK.contains(&r)))
        .map(|w| reason_and_message(w.reason.as_ref(), w.message.as_ref()));
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| reason_and_message(c.reason.as_ref(), c.message.as_ref()));
    PodView::Pending {
        stuck: waiting.or(unschedulable),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[allow(clippy::needless_pass_by_value)]
    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn statuses_are_read() {
        assert_eq!(
            view(&pod(json!({"phase": "Pending"}))),
            PodView::Pending { stuck: None }
        );
        let pull = pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}));
        assert_eq!(
            view(&pull),
            PodView::Pending {
                stuck: Some("ImagePullBackOff: no such image".into())
            }
        );
        let unsched = pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available"}]}));
        assert_eq!(
            view(&unsched),
            PodView::Pending {
                stuck: Some("Unschedulable: 0/3 nodes are available".into())
            }
        );
        let oom = pod(json!({"phase": "Failed", "containerStatuses": [{
            "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        match view(&oom) {
            PodView::Ended(e) => {
                assert_eq!(e.exit_code, 137);
                assert_eq!(e.reason.as_deref(), Some("OOMKilled"));
            }
            other => panic!("{other:?}"),
        }
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}));
        assert_eq!(
            view(&evicted),
            PodView::Lost("Evicted: The node was low on resource: memory.".into())
        );
    }
}
