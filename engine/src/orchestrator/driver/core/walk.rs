//! Readiness, trigger rules, skip propagation and dispatch order.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::rt::{Detail, FanRt};
use super::{Core, Dispatch, Start};
use crate::error::{ErrorInfo, ErrorKind};
use crate::state::NodeState;
use crate::workflow::TriggerRule;
use crate::workflow::plan::{Plan, Values};

impl Core {
    /// Decides what happens to a node whose upstream nodes have all settled.
    pub(super) fn evaluate(&mut self, plan: &Plan, n: u32) {
        if self.nodes[n as usize].state != NodeState::Pending {
            return;
        }
        if self.cancelling {
            self.set_node(
                plan,
                n,
                NodeState::Cancelled,
                0,
                Detail::reason("run cancelled"),
            );
            self.work.push(n);
            return;
        }
        let node = &plan.nodes[n as usize];
        if let Some(reason) = self.trigger_blocks(plan, n, node.trigger) {
            self.set_node(plan, n, NodeState::Skipped, 0, Detail::reason(reason));
            self.work.push(n);
            return;
        }
        for c in &node.conditions {
            let holds = match c.on {
                Some(p) => c.pred.eval(self.output(p).unwrap_or(&Value::Null)),
                None => {
                    let doc = self.upstream_doc(plan, n);
                    c.pred.eval(&doc)
                }
            };
            if !holds {
                let reason = format!("condition `{}` is false", c.text);
                self.set_node(plan, n, NodeState::Skipped, 0, Detail::reason(reason));
                self.work.push(n);
                return;
            }
        }
        self.set_node(plan, n, NodeState::Ready, 0, Detail::default());
        self.enqueue(plan, n);
    }

    pub(super) fn trigger_blocks(&self, plan: &Plan, n: u32, rule: TriggerRule) -> Option<String> {
        let parents = plan.parents(n);
        let name = |p: u32| &plan.nodes[p as usize].id;
        match rule {
            TriggerRule::AllDone => None,
            TriggerRule::AllSuccess => parents
                .iter()
                .find(|&&p| self.nodes[p as usize].state != NodeState::Succeeded)
                .map(|&p| format!("upstream `{}` {}", name(p), self.nodes[p as usize].state)),
            TriggerRule::NoneFailed => parents
                .iter()
                .find(|&&p| self.nodes[p as usize].state.is_failure())
                .map(|&p| format!("upstream `{}` {}", name(p), self.nodes[p as usize].state)),
            TriggerRule::OneFailed => {
                if parents
                    .iter()
                    .any(|&p| self.nodes[p as usize].state.is_failure())
                {
                    None
                } else {
                    Some("no upstream node failed".to_owned())
                }
            }
        }
    }

    pub(super) fn upstream_doc(&self, plan: &Plan, n: u32) -> Value {
        let mut map = Map::new();
        for &p in plan.parents(n) {
            let v = self.output(p).cloned().unwrap_or(Value::Null);
            map.insert(String::from(&*plan.nodes[p as usize].id), v);
        }
        Value::Object(map)
    }

    /// Propagates settled nodes to their children.
    pub(super) fn drain_work(&mut self, plan: &Plan) {
        while let Some(n) = self.work.pop() {
            for &c in plan.children(n) {
                let rt = &mut self.nodes[c as usize];
                rt.waiting -= 1;
                if rt.waiting == 0 {
                    self.evaluate(plan, c);
                }
            }
        }
    }

    pub(super) fn enqueue(&mut self, plan: &Plan, n: u32) {
        let rt = &mut self.nodes[n as usize];
        if rt.queued {
            return;
        }
        rt.queued = true;
        self.ready.push(plan.nodes[n as usize].priority, n);
    }

    // ----- dispatch -------------------------------------------------------------------

    /// Offered one concurrency permit: pops the highest-priority ready node and decides
    /// its next attempt (expanding a fan-out on its first dispatch), then settles what
    /// that unblocked. `Idle` when nothing is ready.
    pub(crate) fn dispatch_one(&mut self) -> Dispatch {
        let plan = Arc::clone(&self.plan);
        let Some(n) = self.ready.pop() else {
            return Dispatch::Idle;
        };
        self.nodes[n as usize].queued = false;
        let d = if plan.nodes[n as usize].fan_out.is_some() {
            self.dispatch_item(&plan, n)
        } else {
            self.dispatch_plain(&plan, n)
        };
        self.drain_work(&plan);
        d
    }

    pub(super) fn dispatch_plain(&mut self, plan: &Plan, n: u32) -> Dispatch {
        let node = &plan.nodes[n as usize];
        let input = match node.build_input(&*self) {
            Ok(v) => v,
            Err(msg) => {
                let e = ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {msg}"));
                self.set_node(plan, n, NodeState::Failed, 0, Detail::error(e));
                self.work.push(n);
                return Dispatch::Settled;
            }
        };
        let attempt = {
            let rt = &mut self.nodes[n as usize];
            rt.attempts += 1;
            rt.attempts
        };
        self.set_node(plan, n, NodeState::Running, attempt, Detail::default());
        Dispatch::Start(Start {
            node: n,
            item: None,
            attempt,
            input,
        })
    }

    pub(super) fn dispatch_item(&mut self, plan: &Plan, n: u32) -> Dispatch {
        let node = &plan.nodes[n as usize];
        if self.nodes[n as usize].fan.is_none() {
            // First dispatch: expand the fan-out.
            let expanded = node
                .build_input(&*self)
                .map_err(|m| {
                    ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {m}"))
                })
                .and_then(|base| {
                    node.fan_out_items(plan, &*self)
                        .map(|items| (base, items))
                        .map_err(|m| ErrorInfo::new(ErrorKind::FanOut, m))
                });
            let (base, items) = match expanded {
                Ok(x) => x,
                Err(e) => {
                    self.set_node(plan, n, NodeState::Failed, 0, Detail::error(e));
                    self.work.push(n);
                    return Dispatch::Settled;
                }
            };
            self.set_node(plan, n, NodeState::Running, 0, Detail::default());
            if items.is_empty() {
                let out = Detail {
                    output: Some(Arc::new(Value::Array(Vec::new()))),
                    ..Detail::default()
                };
                self.set_node(plan, n, NodeState::Succeeded, 0, out);
                self.work.push(n);
                return Dispatch::Settled;
            }
            let mut fan = FanRt::new(base, items);
            if let Some(floor) = self.nodes[n as usize].item_floor.take() {
                // Items that ran before a from-failure retry: numbers go on, the budget
                // starts afresh.
                for (it, &f) in fan.st.iter_mut().zip(floor.iter()) {
                    it.attempts = f;
                    it.base = f;
                    self.nodes[n as usize].attempts += f;
                }
            }
            self.nodes[n as usize].fan = Some(Box::new(fan));
        }
        let cap = node.concurrency.unwrap_or(u32::MAX);
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return Dispatch::Settled;
        };
        let i = if let Some(i) = fan.retry.pop_front() {
            i
        } else if (fan.next as usize) < fan.items.len() {
            fan.next += 1;
            fan.next - 1
        } else {
            return Dispatch::Idle;
        };
        let input = node.with_item(&fan.base, fan.items[i as usize].clone());
        fan.running += 1;
        let more = fan.has_work() && fan.running < cap;
        let it = &mut fan.st[i as usize];
        it.attempts += 1;
        let attempt = it.attempts;
        self.nodes[n as usize].attempts += 1;
        if more {
            self.enqueue(plan, n);
        }
        match input {
            Ok(input) => {
                self.set_item(plan, n, i, NodeState::Running, attempt, Detail::default());
                Dispatch::Start(Start {
                    node: n,
                    item: Some(i),
                    attempt,
                    input,
                })
            }
            Err(msg) => {
                // Recorded as a failed attempt of the item; not retried (same input).
                self.set_item(plan, n, i, NodeState::Running, attempt, Detail::default());
                let e = ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {msg}"));
                self.item_finished(plan, n, i, attempt, Err(e));
                Dispatch::Settled
            }
        }
    }
}
