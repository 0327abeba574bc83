//! Tests of `#[job]` and `#[workflow]`: the trybuild suite (compile errors with their
//! snapshots, and programs that must compile and run), the catalog example written
//! both ways, and macro-built workflows run end to end.

use std::collections::BTreeSet;

use dagforge::prelude::*;
use dagforge::workflow::{BindingSpec, NodeSpec, WorkflowSpec};
use examples::catalog;

/// Every `tests/ui/**/fail/*.rs` must fail to compile with exactly its `.stderr`;
/// every `tests/ui/**/pass/*.rs` must compile and run successfully.
/// `TRYBUILD=overwrite` regenerates the snapshots.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/job/pass/*.rs");
    t.compile_fail("ui/job/fail/*.rs");
    t.pass("ui/workflow/pass/*.rs");
    t.compile_fail("ui/workflow/fail/*.rs");
}

/// What makes two graphs the same DAG, whatever API built them: ids, jobs, edges,
/// fan-out, conditions and per-node policies. (How an input is shaped — one field of a
/// generated input struct or the whole input — may differ.)
#[derive(Debug, PartialEq)]
struct Shape {
    id: String,
    job: String,
    depends_on: BTreeSet<String>,
    fans_out: bool,
    conditions: Vec<(Option<String>, String)>,
    trigger: TriggerRule,
    retries: u32,
    backoff: Backoff,
    timeout_ms: Option<u64>,
    priority: i32,
    concurrency: Option<u32>,
}

fn shape(spec: &WorkflowSpec) -> Vec<Shape> {
    spec.nodes
        .iter()
        .map(|n: &NodeSpec| Shape {
            id: n.id.clone(),
            job: n.job.clone(),
            depends_on: n.depends_on.iter().cloned().collect(),
            fans_out: n.fan_out.is_some(),
            conditions: n
                .conditions
                .iter()
                .map(|c| (c.on.clone(), c.predicate.clone()))
                .collect(),
            trigger: n.trigger,
            retries: n.retries,
            backoff: n.backoff.clone(),
            timeout_ms: n.timeout_ms,
            priority: n.priority,
            concurrency: n.concurrency,
        })
        .collect()
}

#[test]
fn catalog_macros_and_builder_build_the_same_graph() {
    let by_macros = catalog::macros::catalog().unwrap();
    let by_hand = catalog::builder::catalog().unwrap();
    assert_eq!(by_macros.name(), by_hand.name());
    assert_eq!(by_macros.version(), by_hand.version());
    assert_eq!(by_macros.edge_count(), by_hand.edge_count());
    assert_eq!(by_macros.topological_order(), by_hand.topological_order());
    assert_eq!(shape(&by_macros.spec()), shape(&by_hand.spec()));
    for id in by_hand.node_ids() {
        let mut a = by_macros.dependencies(id).unwrap();
        let mut b = by_hand.dependencies(id).unwrap();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "dependencies of {id}");
    }
}

#[test]
fn catalog_macro_bindings_are_typed_fields_of_upstream_outputs() {
    let spec = catalog::macros::catalog().unwrap().spec();
    let node = |id: &str| spec.nodes.iter().find(|n| n.id == id).unwrap();

    let integration = node("integration");
    let fan = integration.fan_out.as_ref().unwrap();
    assert_eq!(fan.field.as_deref(), Some("market"));
    assert_eq!(
        fan.items,
        BindingSpec::Output {
            node: "markets".into(),
            field: None,
            path: Some("$.market_ids".into()),
        }
    );
    assert_eq!(
        integration.fields,
        vec![(
            "dataset_ref".to_owned(),
            BindingSpec::Output {
                node: "data-proxy".into(),
                field: Some("dataset_ref".into()),
                path: None,
            }
        )]
    );
    let publish = node("publish");
    assert_eq!(
        publish.fields,
        vec![(
            "reports".to_owned(),
            BindingSpec::Output {
                node: "integration".into(),
                field: None,
                path: None,
            }
        )]
    );
    assert_eq!(node("data-proxy").job, "data-proxy");
}

#[tokio::test(start_paused = true)]
async fn catalog_runs_the_same_with_macros_and_builder() {
    let engine = Engine::new();
    let by_macros = engine
        .run(&catalog::macros::catalog().unwrap(), ())
        .await
        .unwrap();
    let by_hand = engine
        .run(&catalog::builder::catalog().unwrap(), ())
        .await
        .unwrap();
    assert!(by_macros.is_success(), "{}", by_macros.table());
    let summary = |r: &RunResult| {
        r.nodes
            .iter()
            .map(|n| (n.id.clone(), n.state, n.attempts, n.items.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&by_macros), summary(&by_hand));
    assert_eq!(
        by_macros.node("publish").unwrap().output,
        by_hand.node("publish").unwrap().output
    );
    assert_eq!(
        by_macros.node("notify-failures").unwrap().state,
        NodeState::Skipped
    );
}

mod pipeline {
    use dagforge::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Batch {
        pub(crate) ids: Vec<u32>,
        pub(crate) label: String,
    }

    #[job]
    pub(crate) async fn load(size: u32) -> Result<Batch, JobError> {
        Ok(Batch {
            ids: (1..=size).collect(),
            label: "batch".to_owned(),
        })
    }

    #[job(retries = 2, backoff = fixed(1ms))]
    pub(crate) async fn square(
        ctx: &JobContext,
        id: u32,
        label: String,
    ) -> Result<String, JobError> {
        // Item 2 fails once, then succeeds on its retry.
        if id == 2 && ctx.attempt() == 1 {
            return Err(JobError::msg("flaky"));
        }
        Ok(format!("{label}-{}", id * id))
    }

    #[job]
    pub(crate) async fn count(items: Vec<String>) -> Result<usize, JobError> {
        Ok(items.len())
    }

    #[job]
    pub(crate) async fn shout(text: String) -> Result<String, JobError> {
        Ok(text.to_uppercase())
    }

    #[workflow(name = "pipeline")]
    pub(crate) fn pipeline(size: u32) {
        let batch = load(size);
        let squares = for id in batch.ids {
            square(id, batch.label)
        };
        let n = count(squares);
        let big = shout("many").when(n, "$ > 3");
        let small = shout("few").when(n, "$ <= 3").id("small");
    }
}

#[tokio::test]
async fn macro_workflow_runs_end_to_end_with_params_fan_out_and_conditions() {
    let wf = pipeline::pipeline().unwrap();
    let engine = Engine::new();

    let result = engine
        .run(&wf, serde_json::json!({ "size": 4 }))
        .await
        .unwrap();
    assert!(result.is_success(), "{}", result.table());
    assert_eq!(
        result.output::<Vec<String>>("squares").unwrap(),
        ["batch-1", "batch-4", "batch-9", "batch-16"]
    );
    assert_eq!(result.node("squares").unwrap().attempts, 5);
    assert_eq!(result.output::<String>("big").unwrap(), "MANY");
    assert_eq!(result.node("small").unwrap().state, NodeState::Skipped);

    let result = engine
        .run(&wf, serde_json::json!({ "size": 1 }))
        .await
        .unwrap();
    assert_eq!(result.node("big").unwrap().state, NodeState::Skipped);
    assert_eq!(result.output::<String>("small").unwrap(), "FEW");
}

#[tokio::test]
async fn macro_workflow_declares_its_parameters() {
    assert_eq!(pipeline::PipelineWorkflow::PARAMS, ["size"]);
    let spec = pipeline::PipelineWorkflow::build().unwrap().spec();
    assert_eq!(spec.params.len(), 1);
    assert_eq!(spec.params[0].name, "size");
    assert_eq!(spec.params[0].default, None);
}

#[tokio::test]
async fn job_functions_stay_callable() {
    let ctx = JobContext::detached("square");
    assert_eq!(
        pipeline::square(&ctx, 3, "x".to_owned()).await.unwrap(),
        "x-9"
    );
    assert_eq!(
        pipeline::Square
            .run(
                &ctx,
                pipeline::SquareInput {
                    id: 3,
                    label: "y".to_owned()
                }
            )
            .await
            .unwrap(),
        "y-9"
    );
    assert_eq!(pipeline::Square.spec().retries, 2);
}

/// A crate that re-exports dagforge under another name, as a facade crate does: its
/// users depend on the facade only, so the macros must reach dagforge through it.
mod facade {
    pub(crate) use dagforge as forge;
}

/// Jobs and a workflow whose generated code names dagforge through `crate = …`, in both
/// spellings (a path and a string), with every attribute and option that generates a
/// dagforge path (backoff, resources, trigger rules, parameters, fan-out).
mod reexported {
    use super::facade::forge::{self, JobContext, JobError};

    #[forge::job(
        crate = crate::macros::facade::forge,
        retries = 1,
        backoff = exponential(1ms, max = 5ms),
        resources(cpu = "100m")
    )]
    pub(crate) async fn numbers(ctx: &JobContext, limit: u64) -> Result<Vec<u64>, JobError> {
        ctx.info("counting");
        Ok((1..=limit).collect())
    }

    #[forge::job(crate = "crate::macros::facade::forge", backoff = fixed(1ms))]
    pub(crate) async fn square(n: u64) -> Result<u64, JobError> {
        Ok(n * n)
    }

    #[forge::job(crate = "::dagforge")]
    pub(crate) async fn total(squares: Vec<u64>, offset: u64) -> Result<u64, JobError> {
        Ok(squares.iter().sum::<u64>() + offset)
    }

    #[forge::workflow(crate = crate::macros::facade::forge, name = "reexported", cron = "@daily")]
    pub(crate) fn squares(limit: u64) {
        let numbers = numbers(limit);
        let squared = for n in numbers {
            square(n)
        }
        .backoff(fixed(1ms))
        .concurrency(2);
        let total = total(squared, 10).trigger(all_success);
    }

    #[forge::workflow(crate = "crate::macros::facade::forge")]
    pub(crate) fn single() {
        square(3);
    }
}

#[tokio::test]
async fn crate_path_lets_the_macros_reach_dagforge_through_a_reexport() {
    use facade::forge::Job;

    assert_eq!(reexported::Numbers.spec().retries, 1);
    assert_eq!(
        reexported::Numbers.spec().backoff,
        Backoff::exponential(std::time::Duration::from_millis(1))
            .max_delay(std::time::Duration::from_millis(5))
    );
    assert_eq!(
        reexported::Numbers.spec().resources.cpu.as_deref(),
        Some("100m")
    );
    assert_eq!(<reexported::Total as Job>::NAME, "total");
    assert_eq!(reexported::SquaresWorkflow::NAME, "reexported");
    assert_eq!(reexported::SquaresWorkflow::CRON, Some("@daily"));
    assert_eq!(reexported::SquaresWorkflow::PARAMS, ["limit"]);

    let engine = facade::forge::Engine::new();
    let result = engine
        .run(
            &reexported::squares().unwrap(),
            serde_json::json!({ "limit": 3 }),
        )
        .await
        .unwrap();
    assert!(result.is_success(), "{}", result.table());
    assert_eq!(result.output::<u64>("total").unwrap(), 1 + 4 + 9 + 10);
    let spec = reexported::squares().unwrap().spec();
    let squared = spec.nodes.iter().find(|n| n.id == "squared").unwrap();
    assert_eq!(squared.concurrency, Some(2));
    assert_eq!(
        squared.backoff,
        Backoff::fixed(std::time::Duration::from_millis(1))
    );

    let result = engine
        .run(&reexported::single().unwrap(), ())
        .await
        .unwrap();
    assert_eq!(result.output::<u64>("square").unwrap(), 9);
}
