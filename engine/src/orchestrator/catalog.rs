//! The engine's catalogue: the workflows registered with it and the jobs they use, for
//! the faces that show them (the HTTP API, the CLI).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::engine::Engine;
use crate::registry::DynJob;
use crate::workflow::Workflow;

impl Engine {
    /// Every workflow registered with this engine
    /// ([`EngineBuilder::workflow`](super::EngineBuilder::workflow)), every version,
    /// sorted by name and then by version (see [`registered_workflow`](Engine::registered_workflow)
    /// for how versions compare).
    pub fn workflows(&self) -> Vec<Workflow> {
        let mut all: Vec<Workflow> = self.sh.workflows.values().cloned().collect();
        all.sort_by(|a, b| {
            a.name()
                .cmp(b.name())
                .then_with(|| compare_versions(a.version(), b.version()))
        });
        all
    }

    /// The registered workflow `name` at `version`; with `None`, its latest version:
    /// versions compare as numbers when both are (`"10"` after `"9"`), else as text.
    pub fn registered_workflow(&self, name: &str, version: Option<&str>) -> Option<Workflow> {
        match version {
            Some(v) => self
                .sh
                .workflows
                .get(&(name.to_owned(), v.to_owned()))
                .cloned(),
            None => self
                .sh
                .workflows
                .values()
                .filter(|w| w.name() == name)
                .max_by(|a, b| compare_versions(a.version(), b.version()))
                .cloned(),
        }
    }

    /// The jobs the registered workflows run, by name (each once, whatever the number
    /// of nodes and workflows using it), with their specs ([`DynJob::spec`]).
    pub fn jobs(&self) -> Vec<DynJob> {
        let mut jobs: BTreeMap<&'static str, DynJob> = BTreeMap::new();
        for wf in self.sh.workflows.values() {
            for node in &wf.plan.nodes {
                jobs.entry(node.job.name())
                    .or_insert_with(|| node.job.clone());
            }
        }
        jobs.into_values().collect()
    }
}

/// Numeric when both versions are numbers, else as text.
fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, JobContext, JobError};

    struct Noop;
    impl Job for Noop {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "noop";
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn wf(name: &str, version: &str) -> Workflow {
        let mut b = Workflow::builder(name);
        b.version(version);
        b.add("a", Noop);
        b.add("b", Noop);
        b.build().expect("valid")
    }

    #[test]
    fn lists_every_version_and_finds_the_latest_numerically() {
        let engine = Engine::builder()
            .workflow(&wf("w", "9"))
            .workflow(&wf("w", "10"))
            .workflow(&wf("a", "1"))
            .build();
        let listed: Vec<(String, String)> = engine
            .workflows()
            .iter()
            .map(|w| (w.name().to_owned(), w.version().to_owned()))
            .collect();
        assert_eq!(
            listed,
            [("a", "1"), ("w", "9"), ("w", "10")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        let latest = engine.registered_workflow("w", None).expect("registered");
        assert_eq!(latest.version(), "10");
        assert_eq!(
            engine
                .registered_workflow("w", Some("9"))
                .map(|w| w.version().to_owned()),
            Some("9".to_owned())
        );
        assert!(engine.registered_workflow("w", Some("11")).is_none());
        assert!(engine.registered_workflow("nope", None).is_none());
        let jobs: Vec<&str> = engine.jobs().iter().map(DynJob::name).collect();
        assert_eq!(jobs, ["noop"]);
    }
}
