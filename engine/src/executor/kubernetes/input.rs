//! The worker's environment in the pod: the invocation, the stdout channel, the
//! artifact store, and the input — in a variable, or through the artifact store when
//! it is large.

use super::Inner;
use crate::artifact::{ENV_URL, Provider};
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::Execution;
use crate::worker::{ENV_CHANNEL, ENV_INPUT, ENV_INPUT_ARTIFACT};

/// The name of the artifact that carries a large input.
const INPUT_ARTIFACT: &str = "dagforge-input.json";

/// The variables of one attempt's worker.
pub(super) async fn env(
    inner: &Inner,
    exec: &Execution,
) -> Result<Vec<(String, String)>, ErrorInfo> {
    let ctx = exec.context();
    let mut env: Vec<(String, String)> = super::supervise::invocation(inner, exec)
        .to_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push((ENV_CHANNEL.into(), "stdout".into()));
    let artifacts = ctx.artifact_store();
    let shared = artifacts.provider() != Provider::Memory;
    if shared {
        env.push((ENV_URL.into(), artifacts.url().to_owned()));
    }
    let input = serde_json::to_string(exec.input()).unwrap_or_else(|_| "null".into());
    let max = inner.checked.config.max_env_input_bytes;
    if input.len() <= max {
        env.push((ENV_INPUT.into(), input));
        return Ok(env);
    }
    let job = exec.job().name();
    if !shared {
        return Err(ErrorInfo::new(
            ErrorKind::Input,
            format!(
                "job `{job}`: its input takes {} bytes, over the {max}-byte limit of the pod's \
                 environment (max_env_input_bytes), and the artifact store is in memory, which \
                 pods cannot read: configure a shared artifact store (s3://, gs://, az://) or \
                 pass the data as an artifact reference",
                input.len()
            ),
        ));
    }
    let reference = ctx
        .save_bytes(INPUT_ARTIFACT, input.into_bytes())
        .await
        .map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Executor,
                format!("job `{job}`: cannot save its input as an artifact for the pod: {e}"),
            )
        })?;
    let reference = serde_json::to_string(&reference).map_err(|e| {
        ErrorInfo::new(
            ErrorKind::Executor,
            format!("job `{job}`: cannot encode the input's artifact reference: {e}"),
        )
    })?;
    env.push((ENV_INPUT_ARTIFACT.into(), reference));
    Ok(env)
}
