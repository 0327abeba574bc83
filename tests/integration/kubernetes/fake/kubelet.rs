//! The fake kubelet (and Job controller): a Job gets one pod; the pod's container
//! command runs as a local process in a process group of its own, its stdout and
//! stderr become the pod's log; deleting the pod sends SIGTERM, then SIGKILL after the
//! grace period.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Fake, LogLine, PodEntry, State};

/// A memory limit too small for anything: the fake kubelet OOM-kills a container
/// that has it at its first log line.
pub(crate) const OOM_LIMIT: &str = "1Ki";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Job controller: one pod for a new Job.
pub(crate) fn create_pod(fake: &Fake, st: &mut State, job: &Value) {
    let job_name = job["metadata"]["name"].as_str().unwrap_or("job").to_owned();
    let id = uuid_hex();
    let name = format!("{job_name}-{}", &id[id.len() - 5..]);
    let template = &job["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["job-name"] = json!(job_name);
    labels["batch.kubernetes.io/job-name"] = json!(job_name);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job["metadata"]["namespace"],
            "uid": uuid_hex(),
            "labels": labels,
            "annotations": template["metadata"]["annotations"],
            "creationTimestamp": now(),
        },
        "spec": template["spec"],
        "status": {"phase": "Pending"},
    });
    fake.record(st, "pods", "ADDED", &mut pod);
    st.pods.insert(
        name.clone(),
        PodEntry {
            object: pod,
            ..PodEntry::default()
        },
    );
    if st.switches.frozen {
        return;
    }
    let fake = fake.clone();
    tokio::spawn(async move { run(fake, name).await });
}

/// 32 hex digits, the last ones random.
pub(crate) fn uuid_hex() -> String {
    dagforge::RunId::new().to_string().replace('-', "")
}

/// Sets a pod's status and records the change.
fn set_status(fake: &Fake, st: &mut State, pod: &str, status: Value) {
    let Some(entry) = st.pods.get_mut(pod) else {
        return;
    };
    entry.object["status"] = status;
    let mut object = entry.object.clone();
    fake.record(st, "pods", "MODIFIED", &mut object);
    if let Some(e) = st.pods.get_mut(pod) {
        e.object = object;
    }
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"phase": "Pending", "containerStatuses": [{
        "name": "worker", "image": "", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}}}]})
}

/// Runs a pod's container.
async fn run(fake: Fake, pod: String) {
    let (spec, image) = {
        let st = fake.lock();
        let Some(e) = st.pods.get(&pod) else { return };
        let spec = e.object["spec"].clone();
        let image = spec["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (spec, image)
    };
    if spec["nodeSelector"]["fake/unschedulable"].is_string() {
        let mut st = fake.lock();
        set_status(
            &fake,
            &mut st,
            &pod,
            json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        return;
    }
    if image.contains("missing") {
        for (reason, wait) in [("ErrImagePull", 50), ("ImagePullBackOff", 0)] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let mut st = fake.lock();
            set_status(
                &fake,
                &mut st,
                &pod,
                waiting(reason, &format!("Back-off pulling image \"{image}\"")),
            );
        }
        return;
    }
    let container = &spec["containers"][0];
    let mut argv: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if argv.is_empty() {
        argv.push("/bin/false".into());
    }
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default();
        if let Some(v) = var["value"].as_str() {
            cmd.env(name, v);
        } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
            let key = (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["key"].as_str().unwrap_or_default().to_owned(),
            );
            let value = fake.lock().secrets.get(&key).cloned();
            match value {
                Some(v) => {
                    cmd.env(name, v);
                }
                None => {
                    let mut st = fake.lock();
                    let msg = format!("secret \"{}\" not found", key.0);
                    set_status(
                        &fake,
                        &mut st,
                        &pod,
                        waiting("CreateContainerConfigError", &msg),
                    );
                    return;
                }
            }
        }
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let mut st = fake.lock();
            set_status(
                &fake,
                &mut st,
                &pod,
                waiting("RunContainerError", &e.to_string()),
            );
            return;
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    {
        let mut st = fake.lock();
        if let Some(e) = st.pods.get_mut(&pod) {
            e.pid = pid;
        }
        set_status(
            &fake,
            &mut st,
            &pod,
            json!({"phase": "Running", "containerStatuses": [{
            "name": "worker", "image": image, "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": now()}}}]}),
        );
    }
    let out = tokio::spawn(pump(fake.clone(), pod.clone(), child.stdout.take()));
    let err = tokio::spawn(pump(fake.clone(), pod.clone(), child.stderr.take()));
    let status = child.wait().await;
    let _ = out.await;
    let _ = err.await;
    use std::os::unix::process::ExitStatusExt;
    // A container killed by a signal exits 128 + the signal, as runtimes report it.
    let code = match &status {
        Ok(s) => s.code().unwrap_or(128 + s.signal().unwrap_or(9)),
        Err(_) => 137,
    };
    let mut st = fake.lock();
    let oom = st.pods.get(&pod).is_some_and(|e| e.oom);
    let reason = if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let Some(entry) = st.pods.get_mut(&pod) else {
        return;
    };
    entry.pid = None;
    entry.ended = true;
    if entry.object["status"]["reason"].is_string() {
        // Evicted meanwhile: keep that status.
        fake.poke();
        finish_deletion(&fake, &mut st, &pod);
        return;
    }
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    set_status(
        &fake,
        &mut st,
        &pod,
        json!({"phase": phase, "containerStatuses": [{
        "name": "worker", "image": image, "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": if oom { 137 } else { code }, "reason": reason,
            "finishedAt": now()}}}]}),
    );
    finish_deletion(&fake, &mut st, &pod);
}

/// Appends a stream's lines to the pod's log (and OOM-kills a container over its limit).
async fn pump<R: tokio::io::AsyncRead + Unpin>(fake: Fake, pod: String, stream: Option<R>) {
    let Some(stream) = stream else { return };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(text)) = lines.next_line().await {
        let mut st = fake.lock();
        let Some(entry) = st.pods.get_mut(&pod) else {
            return;
        };
        let limit = &entry.object["spec"]["containers"][0]["resources"]["limits"]["memory"];
        if limit == OOM_LIMIT
            && let Some(pid) = entry.pid
        {
            entry.oom = true;
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        entry.log.push(LogLine {
            at: chrono::Utc::now(),
            text,
        });
        drop(st);
        fake.poke();
    }
}

/// Deletes a pod: SIGTERM to its container, SIGKILL after `grace`; a pod whose
/// container does not run goes at once.
pub(crate) fn delete_pod(fake: &Fake, st: &mut State, pod: &str, grace: Option<u64>) {
    let Some(entry) = st.pods.get_mut(pod) else {
        return;
    };
    let grace = grace
        .or_else(|| entry.object["spec"]["terminationGracePeriodSeconds"].as_u64())
        .unwrap_or(30);
    match entry.pid {
        Some(pid) if !entry.ended => {
            if entry.object["metadata"]["deletionTimestamp"].is_null() {
                entry.object["metadata"]["deletionTimestamp"] = json!(now());
                let mut object = entry.object.clone();
                fake.record(st, "pods", "MODIFIED", &mut object);
                if let Some(e) = st.pods.get_mut(pod) {
                    e.object = object;
                }
            }
            let group = Pid::from_raw(pid);
            if grace == 0 {
                let _ = killpg(group, Signal::SIGKILL);
            } else {
                let _ = killpg(group, Signal::SIGTERM);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(grace)).await;
                    let _ = killpg(group, Signal::SIGKILL);
                });
            }
        }
        _ => remove_pod(fake, st, pod),
    }
}

/// A pod whose container ended is removed if it is being deleted.
fn finish_deletion(fake: &Fake, st: &mut State, pod: &str) {
    let deleting = st
        .pods
        .get(pod)
        .is_some_and(|e| !e.object["metadata"]["deletionTimestamp"].is_null());
    if deleting {
        remove_pod(fake, st, pod);
    }
}

fn remove_pod(fake: &Fake, st: &mut State, pod: &str) {
    let Some(entry) = st.pods.remove(pod) else {
        return;
    };
    st.archive.insert(pod.to_owned(), entry.log);
    let mut object = entry.object;
    fake.record(st, "pods", "DELETED", &mut object);
    // A Job deleted in the foreground goes once its pods are gone.
    let job = object["metadata"]["labels"]["job-name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let left = st
        .pods
        .values()
        .any(|p| p.object["metadata"]["labels"]["job-name"] == json!(job));
    let deleting = st
        .jobs
        .get(&job)
        .is_some_and(|j| !j["metadata"]["deletionTimestamp"].is_null());
    if deleting
        && !left
        && let Some(mut j) = st.jobs.remove(&job)
    {
        fake.record(st, "jobs", "DELETED", &mut j);
    }
}

/// Evicts a pod (see [`Fake::evict`]).
pub(crate) fn evict(fake: &Fake, pod: &str) {
    let mut st = fake.lock();
    let pid = st.pods.get(pod).and_then(|e| e.pid);
    set_status(
        fake,
        &mut st,
        pod,
        json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory."}),
    );
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Loses a pod's node (see [`Fake::lose_node`]).
pub(crate) fn lose(fake: &Fake, pod: &str) {
    let mut st = fake.lock();
    if let Some(pid) = st.pods.get(pod).and_then(|e| e.pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    remove_pod(fake, &mut st, pod);
}
