//! What a run of a workflow will do, worked out from its inputs and the outputs seen so
//! far: for displays that follow a run from its events.

use std::collections::HashMap;

use serde_json::Value;

use super::Workflow;
use super::plan::{Src, Values};

impl Workflow {
    /// Whether node `node` fans out (runs once per item of an upstream value), or `None`
    /// if the workflow has no such node.
    pub fn is_fan_out(&self, node: &str) -> Option<bool> {
        let i = *self.plan.index.get(node)?;
        Some(self.plan.nodes[i as usize].fan_out.is_some())
    }

    /// How many items fan-out node `node` runs over in a run started with `inputs`,
    /// given the outputs of the nodes that have succeeded so far (by node id). `None`
    /// if there is no such fan-out node or its items cannot be known yet (an upstream
    /// output it reads is not among `outputs`, or is not a list).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use dagforge::prelude::*;
    ///
    /// #[job]
    /// async fn numbers() -> Result<Vec<u32>, JobError> {
    ///     Ok(vec![1, 2, 3])
    /// }
    ///
    /// #[job]
    /// async fn square(n: u32) -> Result<u32, JobError> {
    ///     Ok(n * n)
    /// }
    ///
    /// #[workflow(name = "squares")]
    /// fn squares() {
    ///     let numbers = numbers();
    ///     let squared = for n in numbers { square(n) };
    /// }
    ///
    /// let wf = squares()?;
    /// let inputs = serde_json::json!({});
    /// assert_eq!(wf.is_fan_out("squared"), Some(true));
    /// assert_eq!(wf.fan_out_len("squared", &inputs, &HashMap::new()), None);
    /// let seen = HashMap::from([("numbers".to_owned(), serde_json::json!([1, 2, 3]))]);
    /// assert_eq!(wf.fan_out_len("squared", &inputs, &seen), Some(3));
    /// # Ok::<_, dagforge::Error>(())
    /// ```
    pub fn fan_out_len(
        &self,
        node: &str,
        inputs: &Value,
        outputs: &HashMap<String, Value>,
    ) -> Option<usize> {
        let i = *self.plan.index.get(node)?;
        let n = &self.plan.nodes[i as usize];
        let fan = n.fan_out.as_ref()?;
        let seen = Seen {
            wf: self,
            outputs,
            params: self
                .plan
                .params
                .iter()
                .map(|p| {
                    inputs
                        .get(&*p.name)
                        .cloned()
                        .or_else(|| p.default.clone())
                        .unwrap_or(Value::Null)
                })
                .collect(),
        };
        if let Src::Output { node, .. } = &fan.items
            && seen.output(*node).is_none()
        {
            return None;
        }
        n.fan_out_items(&self.plan, &seen)
            .ok()
            .map(|items| items.len())
    }
}

/// The parameters of a run and the outputs seen so far, as the plan reads them.
struct Seen<'a> {
    wf: &'a Workflow,
    outputs: &'a HashMap<String, Value>,
    params: Vec<Value>,
}

impl Values for Seen<'_> {
    fn output(&self, n: u32) -> Option<&Value> {
        self.outputs.get(&*self.wf.plan.nodes[n as usize].id)
    }

    fn param(&self, i: u32) -> &Value {
        &self.params[i as usize]
    }
}
