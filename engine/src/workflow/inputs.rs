//! Checking a run's parameters against the jobs that take them, before a run is
//! recorded.

use serde_json::Value;

use super::Workflow;
use super::plan::{Src, Values};
use crate::error::Error;

/// Fan-out items of a parameter checked against the job's input type (the rest are
/// checked when the run gets there).
const ITEMS_CHECKED: usize = 1000;

impl Workflow {
    /// Checks `inputs` against the input types of the nodes that take parameters
    /// directly (nodes whose input is made of parameters and constants only): a value the
    /// job could not decode is refused now, naming the parameter, instead of being recorded
    /// as a run that fails. Unknown and missing parameters are left to the engine, which
    /// names them.
    ///
    /// ```
    /// use dagforge::prelude::*;
    ///
    /// #[job]
    /// async fn square(n: u32) -> Result<u32, JobError> {
    ///     Ok(n * n)
    /// }
    ///
    /// #[workflow(name = "squares")]
    /// fn squares(n: u32) {
    ///     let squared = square(n);
    /// }
    ///
    /// let wf = squares()?;
    /// assert!(wf.check_inputs(&serde_json::json!({ "n": 3 })).is_ok());
    /// let refused = wf.check_inputs(&serde_json::json!({ "n": "abc" })).unwrap_err();
    /// assert!(refused.to_string().contains("`n`"), "{refused}");
    /// # Ok::<_, dagforge::Error>(())
    /// ```
    pub fn check_inputs(&self, inputs: &Value) -> Result<(), Error> {
        let plan = &self.plan;
        let Value::Object(given) = inputs else {
            return Ok(());
        };
        let mut params = Vec::with_capacity(plan.params.len());
        for p in &plan.params {
            match given.get(&*p.name).or(p.default.as_ref()) {
                Some(v) => params.push(v.clone()),
                None => return Ok(()),
            }
        }
        let values = Params(&params);
        for node in &plan.nodes {
            let mut sources: Vec<&Src> = node.input.whole.iter().map(|s| &**s).collect();
            sources.extend(node.input.fields.iter().map(|(_, s)| s));
            if let Some(fan) = &node.fan_out {
                sources.push(&fan.items);
            }
            if sources
                .iter()
                .any(|s| matches!(s, Src::Output { .. } | Src::Parents(_)))
            {
                continue;
            }
            // The parameters of this node the user gave (defaults are the workflow's own).
            let mut blamed: Vec<&str> = sources
                .iter()
                .filter_map(|s| match s {
                    Src::Param(i) => Some(&*plan.params[*i as usize].name),
                    _ => None,
                })
                .filter(|name| given.contains_key(*name))
                .collect();
            blamed.sort_unstable();
            blamed.dedup();
            if blamed.is_empty() {
                continue;
            }
            let refuse = |reason: String| Error::Input {
                name: blamed.join("`, `"),
                reason,
            };
            let job = node.job.name();
            let base = node
                .build_input(&values)
                .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
            let check = |input: Value, item: Option<usize>| {
                node.job.check_input(input).map_err(|e| {
                    let at = item.map(|i| format!(" (item {i})")).unwrap_or_default();
                    refuse(format!(
                        "node `{}`{at} (job `{job}`) cannot take it: {e}",
                        node.id
                    ))
                })
            };
            if node.fan_out.is_none() {
                check(base, None)?;
                continue;
            }
            let items = node
                .fan_out_items(plan, &values)
                .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
            for (i, item) in items.into_iter().take(ITEMS_CHECKED).enumerate() {
                let input = node
                    .with_item(&base, item)
                    .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
                check(input, Some(i))?;
            }
        }
        Ok(())
    }
}

/// The parameter values, for assembling inputs; no node has run.
struct Params<'a>(&'a [Value]);

impl Values for Params<'_> {
    fn output(&self, _: u32) -> Option<&Value> {
        None
    }

    fn param(&self, i: u32) -> &Value {
        &self.0[i as usize]
    }
}
