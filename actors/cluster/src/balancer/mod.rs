//! A balancer instance: keeps its load table fresh for the request path.
//!
//! Every tick the actor reads its servers' load (the mesh's reports and this node's own
//! figures, through [`BalancerIo`]), logs servers going down and coming back, and
//! publishes the table on the [`BalancerBoard`]. Requests choose with [`choose::choose`]
//! (pure, property-tested) on the newest table without asking the actor; when the table
//! is older than [`FRESH_TICKS`] ticks (the actor is restarting) a request reads the load
//! itself, so a supervisor restart costs no request.

pub mod choose;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorProcessingErr;

use crate::tree::BalancerPlan;
use flotilla_otp::worker::{Handle, Worker};
pub use table::{BalancerBoard, BalancerIo, LoadTable, NoBalancerIo, StateVersion};

/// How many ticks a published table stays usable: one missed tick is tolerated.
pub const FRESH_TICKS: u64 = 2;

/// The balancer behaviour.
#[derive(Clone)]
pub struct BalancerActor {
    /// The node's side.
    pub io: Arc<dyn BalancerIo>,
    /// Where tables go.
    pub board: BalancerBoard,
}

/// Messages to a balancer.
#[derive(Debug)]
pub enum BalancerMsg {
    /// Read the load again and publish it.
    Refresh,
}

/// A balancer's state.
#[derive(Debug)]
pub struct BalancerState {
    plan: BalancerPlan,
    /// Per server (config order): up at the last refresh.
    up: Vec<bool>,
    /// Tables published by this incarnation.
    refreshes: u64,
}

impl BalancerActor {
    fn refresh(&self, me: &Handle<BalancerMsg>, state: &mut BalancerState) {
        let now_ms = me.runtime().wall_clock_ms();
        let Some(mut table) = self.io.load(&state.plan.name, now_ms) else {
            return;
        };
        table.fresh_until_ms = now_ms.saturating_add(FRESH_TICKS * state.plan.refresh_ms);
        let up: Vec<bool> = table.servers.iter().map(|server| server.up).collect();
        if state.refreshes > 0 {
            for (server, (was, is)) in table.servers.iter().zip(state.up.iter().zip(&up)) {
                match (was, is) {
                    (true, false) => tracing::warn!(
                        balancer = %state.plan.name, server = %server.name,
                        "server down: no longer chosen"
                    ),
                    (false, true) => tracing::info!(
                        balancer = %state.plan.name, server = %server.name,
                        "server up: chosen again"
                    ),
                    _ => {}
                }
            }
        }
        state.up = up;
        state.refreshes += 1;
        self.board.publish(&state.plan.name, table);
    }
}

impl Worker for BalancerActor {
    type Msg = BalancerMsg;
    type State = BalancerState;
    type Args = BalancerPlan;

    fn kind(&self) -> &'static str {
        "balancer"
    }

    async fn init(
        &self,
        me: &Handle<BalancerMsg>,
        plan: BalancerPlan,
    ) -> Result<BalancerState, ActorProcessingErr> {
        let mut state = BalancerState {
            up: Vec::new(),
            refreshes: 0,
            plan,
        };
        self.refresh(me, &mut state);
        me.send_interval(Duration::from_millis(state.plan.refresh_ms.max(10)), || {
            BalancerMsg::Refresh
        });
        Ok(state)
    }

    async fn handle(
        &self,
        me: &Handle<BalancerMsg>,
        message: BalancerMsg,
        state: &mut BalancerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BalancerMsg::Refresh => self.refresh(me, state),
        }
        Ok(())
    }

    fn summary(&self, state: &BalancerState) -> String {
        let up = state.up.iter().filter(|up| **up).count();
        format!(
            "mode {}, {up}/{} server(s) up, {} refresh(es)",
            state.plan.mode,
            state.plan.servers.len(),
            state.refreshes
        )
    }
}

#[cfg(test)]
mod tests;
