//! The one place run, node and item states change, each change recorded as an event.

use super::Core;
use super::rt::Detail;
use crate::events::{Event, EventKind, NodeEvent};
use crate::state::{NodeState, RunState};
use crate::workflow::plan::Plan;

impl Core {
    pub(super) fn push_event(&mut self, kind: EventKind) {
        self.seq += 1;
        self.batch.push(Event {
            run: self.run,
            seq: self.seq,
            at: self.now,
            kind,
        });
    }

    pub(super) fn set_run(&mut self, to: RunState) {
        let from = self.state;
        match from.transition(to) {
            Ok(s) => self.state = s,
            Err(e) => {
                tracing::error!(run_id = %self.run, error = %e, "orchestrator bug: run transition refused");
                debug_assert!(false, "{e}");
                return;
            }
        }
        tracing::debug!(run_id = %self.run, %from, %to, "run state");
        self.push_event(EventKind::Run { from, to });
    }

    /// The one place a node's state changes (items: [`set_item`](Self::set_item)).
    pub(super) fn set_node(
        &mut self,
        plan: &Plan,
        n: u32,
        to: NodeState,
        attempt: u32,
        d: Detail,
    ) -> bool {
        let rt = &mut self.nodes[n as usize];
        let from = rt.state;
        if let Err(e) = from.transition(to) {
            tracing::error!(run_id = %self.run, node = %plan.nodes[n as usize].id, error = %e, "orchestrator bug: node transition refused");
            debug_assert!(false, "node {}: {e}", plan.nodes[n as usize].id);
            return false;
        }
        rt.state = to;
        if to == NodeState::Running && rt.start.is_none() {
            rt.start = Some(self.tick);
        }
        if to.is_terminal() {
            rt.end = Some(self.tick);
            self.unsettled -= 1;
        }
        if d.output.is_some() {
            rt.output.clone_from(&d.output);
        }
        if d.error.is_some() {
            rt.error = d.error.clone().map(Box::new);
        }
        if d.reason.is_some() {
            rt.reason.clone_from(&d.reason);
        }
        self.push_transition(plan, n, None, attempt, from, to, d);
        true
    }

    pub(super) fn set_item(
        &mut self,
        plan: &Plan,
        n: u32,
        i: u32,
        to: NodeState,
        attempt: u32,
        d: Detail,
    ) -> bool {
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return false;
        };
        let it = &mut fan.st[i as usize];
        let from = it.state();
        if let Err(e) = from.transition(to) {
            tracing::error!(run_id = %self.run, node = %plan.nodes[n as usize].id, item = i, error = %e, "orchestrator bug: item transition refused");
            debug_assert!(false, "node {} item {i}: {e}", plan.nodes[n as usize].id);
            return false;
        }
        it.state = Some(to);
        if to == NodeState::Running && it.start.is_none() {
            it.start = Some(self.tick);
        }
        if to.is_terminal() {
            it.end = Some(self.tick);
        }
        if d.output.is_some() {
            it.output.clone_from(&d.output);
        }
        if d.error.is_some() {
            it.error.clone_from(&d.error);
        }
        self.push_transition(plan, n, Some(i), attempt, from, to, d);
        true
    }

    /// Records a node or item transition as an event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_transition(
        &mut self,
        plan: &Plan,
        n: u32,
        item: Option<u32>,
        attempt: u32,
        from: NodeState,
        to: NodeState,
        d: Detail,
    ) {
        self.push_event(EventKind::Node(NodeEvent {
            node: plan.nodes[n as usize].id.clone(),
            item,
            attempt,
            from,
            to,
            output: d.output,
            error: d.error.map(Box::new),
            reason: d.reason,
        }));
    }
}
