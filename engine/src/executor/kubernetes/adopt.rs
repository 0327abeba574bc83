//! Jobs and engines: creating an attempt's Job (or finding it again), adopting the
//! Job another engine left running for the same node, and reaping the Jobs of runs
//! that are over.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};

use super::Inner;
use super::render::{self, Attempt, LABEL_ATTEMPT, LABEL_ENGINE, LABEL_RUN, MANAGED_BY, MANAGER};
use crate::error::{ErrorInfo, ErrorKind};
use crate::ids::RunId;
use crate::store::Store;

/// The most Jobs one list returns per page.
const PAGE: u32 = 500;

/// A label of a Job.
fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The API's error as an attempt's error: the request (`verb` on `resource` in the
/// namespace), and for a refusal the permission that is missing.
pub(super) fn api_error(
    inner: &Inner,
    job: &str,
    (verb, resource): (&str, &str),
    what: &str,
    e: &kube::Error,
) -> ErrorInfo {
    let ns = &inner.checked.config.namespace;
    let hint = match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            " (forbidden: the engine's service account may not `{verb}` `{resource}` in \
             namespace `{ns}`; it needs create/get/list/watch/delete on jobs, \
             get/list/watch/delete on pods and get on pods/log there: see `k8s manifests`)"
        ),
        kube::Error::Api(s) if s.code == 404 => format!(" (does namespace `{ns}` exist?)"),
        _ => String::new(),
    };
    ErrorInfo::new(
        ErrorKind::Executor,
        format!("job `{job}`: cannot {what}: {e}{hint}"),
    )
}

/// Creates the attempt's Job, or adopts one another engine left for the same node (or
/// item) of the run. Returns the Job's name and whether it was adopted.
pub(super) async fn create_or_adopt(
    inner: &Inner,
    attempt: &Attempt<'_>,
) -> Result<(String, bool), ErrorInfo> {
    let selector = render::selector(attempt.run, attempt.node, attempt.item);
    let left = inner
        .jobs
        .list(&ListParams::default().labels(&selector).limit(PAGE))
        .await
        .map_err(|e| {
            api_error(
                inner,
                attempt.job,
                ("list", "jobs"),
                "list the node's Jobs",
                &e,
            )
        })?;
    let adoptable = left
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| label(j, LABEL_ENGINE) != Some(inner.checked.engine.as_str()))
        .max_by_key(|j| label(j, LABEL_ATTEMPT).and_then(|a| a.parse::<u32>().ok()));
    if let Some(j) = adoptable.and_then(|j| j.metadata.name) {
        return Ok((j, true));
    }
    let name = render::job_name(attempt.run, attempt.node, attempt.item, attempt.attempt);
    let job = render::job(&inner.checked, attempt, &name);
    match inner.jobs.create(&PostParams::default(), &job).await {
        Ok(_) => Ok((name, false)),
        // Created already: by a request of ours whose answer was lost and that was
        // sent again. The name is the attempt's own: follow it.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok((name, false)),
        Err(e) => Err(api_error(
            inner,
            attempt.job,
            ("create", "jobs"),
            &format!("create Job `{name}`"),
            &e,
        )),
    }
}

/// What [`KubernetesExecutor::reap`](super::KubernetesExecutor::reap) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reaped {
    /// Jobs deleted: their runs are over or unknown to the store.
    pub deleted: Vec<String>,
    /// Jobs of other engines kept: their runs still go on (the engine that resumes a
    /// run adopts them).
    pub kept: usize,
}

/// Deletes the Jobs of finished or unknown runs that other engines left behind.
pub(super) async fn reap(inner: &Inner, store: &dyn Store) -> Result<Reaped, ErrorInfo> {
    let mut reaped = Reaped::default();
    let mut params = ListParams::default()
        .labels(&format!("{MANAGED_BY}={MANAGER}"))
        .limit(PAGE);
    loop {
        let page =
            inner.jobs.list(&params).await.map_err(|e| {
                api_error(inner, "-", ("list", "jobs"), "list the Jobs to reap", &e)
            })?;
        for job in &page.items {
            let Some(name) = job.metadata.name.clone() else {
                continue;
            };
            if label(job, LABEL_ENGINE) == Some(inner.checked.engine.as_str())
                || job.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let run = label(job, LABEL_RUN).and_then(|r| r.parse::<RunId>().ok());
            let over = match run {
                None => true,
                Some(run) => match store.get_run(run).await {
                    Ok(Some(r)) => r.state.is_terminal(),
                    Ok(None) => true,
                    Err(e) => {
                        return Err(ErrorInfo::new(
                            ErrorKind::Executor,
                            format!("cannot read run {run} to reap Job `{name}`: {e}"),
                        ));
                    }
                },
            };
            if over {
                inner.delete(&name, None).await;
                reaped.deleted.push(name);
            } else {
                reaped.kept += 1;
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(reaped),
        }
    }
}
