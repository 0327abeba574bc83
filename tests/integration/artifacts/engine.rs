//! Artifacts through the engine: typed references between nodes (`#[workflow]`
//! bindings and the builder), retries and fan-out items in their own folders.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dagforge::artifact::{ArtifactError, ArtifactRef, ArtifactStore, Blob, Bytes};
use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

/// One row of the generated table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    sku: String,
    price: u32,
}

/// What `produce` returns: a reference, not the rows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Produced {
    dataset: ArtifactRef<Vec<Row>>,
    rows: u32,
}

#[job]
async fn produce(ctx: &JobContext, rows: u32) -> Result<Produced, JobError> {
    let table: Vec<Row> = (0..rows)
        .map(|i| Row {
            sku: format!("sku-{i}"),
            price: i * 10,
        })
        .collect();
    let dataset = ctx.save_json("table.json", &table).await?;
    Ok(Produced { dataset, rows })
}

#[job]
async fn total(ctx: &JobContext, dataset: ArtifactRef<Vec<Row>>) -> Result<u32, JobError> {
    let rows = ctx.load(&dataset).await?;
    Ok(rows.iter().map(|r| r.price).sum())
}

#[workflow(name = "artifact-binding")]
fn binding() {
    let data = produce(4);
    let sum = total(data.dataset);
}

#[tokio::test]
async fn workflow_binding_passes_a_typed_reference() {
    let store = ArtifactStore::memory();
    let engine = Engine::builder().artifacts(store.clone()).build();
    let run = engine.run(&binding().unwrap(), ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    assert_eq!(run.output::<u32>("sum").unwrap(), 60);

    // The node output holds the reference, not the rows.
    let produced = run.node("data").unwrap().output.clone().unwrap();
    let key = produced["dataset"]["key"].as_str().unwrap();
    assert_eq!(key, format!("runs/{}/data/attempt-1/table.json", run.id));
    assert_eq!(produced["dataset"]["provider"], "memory");

    let listed = engine.artifacts().list_run_artifacts(run.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key);
    assert_eq!(
        engine
            .artifacts()
            .delete_run_artifacts(run.id)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn builder_binding_passes_a_typed_reference() {
    let mut wf = Workflow::builder("artifact-builder");
    let data = wf.add("data", Produce).set(ProduceInput::ROWS, 3).handle();
    wf.add("sum", Total).bind(
        TotalInput::DATASET,
        data.field(Field::<Produced, _>::new("dataset")),
    );
    let engine = Engine::builder().artifacts(ArtifactStore::memory()).build();
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(run.output::<u32>("sum").unwrap(), 30);
}

/// Streams a payload; the first attempt's stream breaks half-way.
struct Flaky(Arc<AtomicU32>);

impl Job for Flaky {
    type Input = ();
    type Output = ArtifactRef<Blob>;
    const NAME: &'static str = "flaky";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<ArtifactRef<Blob>, JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let attempt = ctx.attempt();
        let mut chunks: Vec<Result<Bytes, std::io::Error>> = (0..12)
            .map(|i| Ok(Bytes::from(vec![attempt as u8; 1024 * 1024 + i])))
            .collect();
        if attempt == 1 {
            chunks.truncate(9);
            chunks.push(Err(std::io::Error::other("connection reset")));
        }
        let r = ctx
            .save_stream("payload.bin", futures_util::stream::iter(chunks))
            .await
            .map_err(ArtifactError::into_job_error)?;
        Ok(r)
    }
}

#[job]
async fn check(ctx: &JobContext, payload: ArtifactRef<Blob>) -> Result<u64, JobError> {
    let bytes = ctx.load_bytes(&payload).await?;
    if bytes.iter().any(|&b| b != 2) {
        return Err(JobError::terminal("read bytes of the failed attempt"));
    }
    Ok(bytes.len() as u64)
}

#[tokio::test]
async fn a_retry_never_sees_the_failed_attempts_partial_artifact() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut wf = Workflow::builder("artifact-retry");
    let flaky = wf
        .add("flaky", Flaky(calls.clone()))
        .retries(1)
        .backoff(Backoff::none())
        .handle();
    wf.add("check", Check).bind(CheckInput::PAYLOAD, flaky);
    let store = ArtifactStore::memory();
    let engine = Engine::builder().artifacts(store.clone()).build();
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let expected: u64 = (0..12).map(|i| 1024 * 1024 + i).sum();
    assert_eq!(run.output::<u64>("check").unwrap(), expected);

    // Only the second attempt's artifact exists: the broken upload left nothing.
    let listed = store.list_run_artifacts(run.id).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|i| i.key.clone()).collect();
    assert_eq!(
        keys,
        [format!("runs/{}/flaky/attempt-2/payload.bin", run.id)]
    );
}

#[job]
async fn shards() -> Result<Vec<u32>, JobError> {
    Ok(vec![1, 2, 3, 4])
}

#[job]
async fn square(ctx: &JobContext, n: u32) -> Result<ArtifactRef<u32>, JobError> {
    Ok(ctx.save_json("out.json", &(n * n)).await?)
}

#[job]
async fn add_up(ctx: &JobContext, parts: Vec<ArtifactRef<u32>>) -> Result<u32, JobError> {
    let mut sum = 0;
    for part in &parts {
        sum += ctx.load(part).await?;
    }
    Ok(sum)
}

#[workflow(name = "artifact-fanout")]
fn fanout() {
    let shards = shards();
    let squares = for n in shards {
        square(n)
    };
    let sum = add_up(squares);
}

#[tokio::test]
async fn fan_out_items_save_the_same_name_without_colliding() {
    let dir = super::TempDir::new();
    let engine = Engine::builder().artifacts(dir.store()).build();
    let run = engine.run(&fanout().unwrap(), ()).await.unwrap();
    assert_eq!(run.output::<u32>("sum").unwrap(), 1 + 4 + 9 + 16);
    let listed = engine.artifacts().list_run_artifacts(run.id).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|i| i.key.clone()).collect();
    let expected: Vec<_> = (0..4)
        .map(|i| format!("runs/{}/squares/item-{i}/attempt-1/out.json", run.id))
        .collect();
    assert_eq!(keys, expected);
}

#[job]
async fn decode_wrong(ctx: &JobContext) -> Result<(), JobError> {
    let r = ctx.save_json("n.json", &"text").await?;
    let wrong: ArtifactRef<u64> = r.cast();
    ctx.load(&wrong)
        .await
        .map_err(ArtifactError::into_job_error)?;
    Ok(())
}

#[tokio::test]
async fn a_wrong_type_fails_the_node_at_once_naming_artifact_and_type() {
    let mut wf = Workflow::builder("artifact-decode");
    wf.add("decode", DecodeWrong).retries(3);
    let engine = Engine::builder().artifacts(ArtifactStore::memory()).build();
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let node = run.node("decode").unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(node.attempts, 1, "a decode error is terminal");
    let msg = &node.error.as_ref().unwrap().message;
    assert!(
        msg.contains("decode/attempt-1/n.json") && msg.contains("`u64`"),
        "{msg}"
    );
}

#[cfg(feature = "s3")]
#[job]
async fn upload(ctx: &JobContext) -> Result<ArtifactRef<Blob>, JobError> {
    Ok(ctx.save_bytes("data.bin", "payload").await?)
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn an_unreachable_provider_fails_the_node_after_retries() {
    let mut wf = Workflow::builder("artifact-unreachable");
    wf.add("upload", Upload).retries(1).backoff(Backoff::none());
    let engine = Engine::builder()
        .artifacts(super::s3::unreachable_store(1))
        .build();
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let node = run.node("upload").unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(node.attempts, 2);
    let msg = &node.error.as_ref().unwrap().message;
    assert!(
        msg.contains("upload/attempt-2/data.bin") && msg.contains("after 2 attempt(s)"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_detached_context_has_a_working_store() {
    let ctx = JobContext::detached("unit");
    let r = ctx.save_bytes("x.bin", "abc").await.unwrap();
    assert_eq!(ctx.load_bytes(&r).await.unwrap(), "abc");
    assert_eq!(ctx.artifacts().scope().node_id(), "unit");
}
