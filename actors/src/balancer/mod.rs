//! A balancer instance: picks the server a viewer is redirected to.
//!
//! The decision is [`choose`] (pure, property-tested); the instance that feeds it the
//! mesh's load and serves redirects lands with the balancer issue; today it holds its plan.

pub mod choose;

use ractor::ActorProcessingErr;

use crate::tree::BalancerPlan;
use crate::worker::{Handle, Worker};

/// The balancer behaviour.
#[derive(Debug, Clone, Copy)]
pub struct BalancerActor;

/// Messages to a balancer (none yet).
#[derive(Debug)]
pub enum BalancerMsg {}

impl Worker for BalancerActor {
    type Msg = BalancerMsg;
    type State = BalancerPlan;
    type Args = BalancerPlan;

    fn kind(&self) -> &'static str {
        "balancer"
    }

    async fn init(
        &self,
        _me: &Handle<BalancerMsg>,
        plan: BalancerPlan,
    ) -> Result<BalancerPlan, ActorProcessingErr> {
        Ok(plan)
    }

    async fn handle(
        &self,
        _me: &Handle<BalancerMsg>,
        message: BalancerMsg,
        _state: &mut BalancerPlan,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    fn summary(&self, plan: &BalancerPlan) -> String {
        format!("mode {}, {} server(s)", plan.mode, plan.servers.len())
    }
}
