//! Supervisor behaviour under tokio's paused clock: restarts, restart types, intensity
//! and escalation, strategies, ordered shutdown with kill, backoff, dynamic children,
//! registry bookkeeping, and isolation of two nodes in one process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorProcessingErr;

use super::*;
use crate::node::NodeContext;
use crate::registry::{ActorPath, ActorStatus};
use crate::rt::Runtime;
use crate::worker::{Handle, Worker, worker_child};

type Log = Arc<Mutex<Vec<String>>>;

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A worker that logs its starts and stops and misbehaves on request.
#[derive(Clone)]
struct Probe {
    name: &'static str,
    log: Log,
}

enum ProbeMsg {
    Panic,
    Exit(&'static str),
    /// Never returns: the worker cannot process a stop request.
    Hang,
}

impl Worker for Probe {
    type Msg = ProbeMsg;
    type State = ();
    type Args = ();

    fn kind(&self) -> &'static str {
        "probe"
    }

    async fn init(&self, _me: &Handle<ProbeMsg>, _args: ()) -> Result<(), ActorProcessingErr> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start:{}", self.name));
        Ok(())
    }

    async fn handle(
        &self,
        me: &Handle<ProbeMsg>,
        message: ProbeMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Panic => panic!("probe {} told to panic", self.name),
            ProbeMsg::Exit(reason) => me.stop(Some(reason.to_string())),
            ProbeMsg::Hang => std::future::pending::<()>().await,
        }
        Ok(())
    }

    async fn terminate(&self, _state: &mut ()) {
        self.log.lock().unwrap().push(format!("stop:{}", self.name));
    }

    fn summary(&self, _state: &()) -> String {
        format!("probe {}", self.name)
    }
}

fn probe(name: &'static str, log: &Log) -> ChildSpec {
    worker_child(
        name,
        Probe {
            name,
            log: log.clone(),
        },
        || (),
    )
}

fn node(name: &str) -> NodeContext {
    NodeContext::new(name, Runtime::deterministic(7, 1_700_000_000_000))
}

fn path(text: &str) -> ActorPath {
    ActorPath::parse(text).unwrap()
}

fn send(node: &NodeContext, at: &str, message: ProbeMsg) {
    let handle: Handle<ProbeMsg> = node.registry.get(&path(at)).unwrap().handle().unwrap();
    handle.send(message).unwrap();
}

/// Drives the paused clock in small steps until `done` holds (bounded).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn generous() -> Intensity {
    Intensity {
        max_restarts: 10,
        period: Duration::from_secs(5),
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_child_is_restarted_and_the_registry_shows_it() {
    let log = Log::default();
    let node = node("n1");
    let spec = SupervisorSpec::new(Strategy::OneForOne, generous(), vec![probe("a", &log)]);
    let (_root, _) = start_root(&node, spec).await.unwrap();
    let paths: Vec<String> = node
        .registry
        .list(0)
        .iter()
        .map(|i| i.path.to_string())
        .collect();
    assert_eq!(paths, vec!["node", "node/a"]);

    send(&node, "node/a", ProbeMsg::Panic);
    let entry = node.registry.get(&path("node/a")).unwrap();
    eventually("restart of a", || {
        entry.restarts() == 1 && entry.cell().is_some()
    })
    .await;
    let info = entry.info(0);
    assert_eq!(info.status, ActorStatus::Running);
    assert_eq!(info.kind, "probe");
    assert_eq!(info.parent, Some(ActorPath::root()));
    assert!(info.last_failure.unwrap().contains("told to panic"));
    assert_eq!(info.summary, "probe a");
    assert_eq!(entries(&log), vec!["start:a", "start:a"]);
}

#[tokio::test(start_paused = true)]
async fn restart_types_decide_what_comes_back() {
    let log = Log::default();
    let node = node("n1");
    let children = vec![
        probe("transient_ok", &log).restart(Restart::Transient),
        probe("transient_bad", &log).restart(Restart::Transient),
        probe("temporary", &log).restart(Restart::Temporary),
    ];
    let (_root, _) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, generous(), children),
    )
    .await
    .unwrap();
    send(&node, "node/transient_ok", ProbeMsg::Exit("normal"));
    send(&node, "node/transient_bad", ProbeMsg::Exit("source lost"));
    send(&node, "node/temporary", ProbeMsg::Panic);
    let registry = node.registry.clone();
    eventually("transient_bad restarted", || {
        registry
            .get(&path("node/transient_bad"))
            .is_some_and(|e| e.restarts() == 1 && e.cell().is_some())
    })
    .await;
    eventually("normal and temporary exits removed", || {
        registry.get(&path("node/transient_ok")).is_none()
            && registry.get(&path("node/temporary")).is_none()
    })
    .await;
    let starts = entries(&log)
        .iter()
        .filter(|e| e.starts_with("start:"))
        .count();
    assert_eq!(
        starts,
        4,
        "three initial starts and one restart: {:?}",
        entries(&log)
    );
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_intensity_escalates_to_the_parent() {
    let log = Log::default();
    let node = node("n1");
    let strict = Intensity {
        max_restarts: 1,
        period: Duration::from_secs(5),
    };
    let inner = SupervisorSpec::new(Strategy::OneForOne, strict, vec![probe("a", &log)]);
    let root = SupervisorSpec::new(
        Strategy::OneForOne,
        generous(),
        vec![supervisor_child("inner", inner)],
    );
    let (_root, _) = start_root(&node, root).await.unwrap();

    send(&node, "node/inner/a", ProbeMsg::Panic);
    let a = node.registry.get(&path("node/inner/a")).unwrap();
    eventually("first restart absorbed by inner", || {
        a.restarts() == 1 && a.cell().is_some()
    })
    .await;
    send(&node, "node/inner/a", ProbeMsg::Panic);
    let registry = node.registry.clone();
    eventually("inner restarted by the root", || {
        registry
            .get(&path("node/inner"))
            .is_some_and(|e| e.restarts() == 1 && e.cell().is_some())
    })
    .await;
    let inner_info = registry.get(&path("node/inner")).unwrap().info(0);
    assert!(
        inner_info
            .last_failure
            .unwrap()
            .contains("restart intensity exceeded")
    );
    eventually("a is back under the new inner", || {
        registry
            .get(&path("node/inner/a"))
            .is_some_and(|e| e.cell().is_some())
    })
    .await;
    let fresh = registry.get(&path("node/inner/a")).unwrap();
    assert_eq!(
        fresh.restarts(),
        0,
        "a new inner supervisor starts a new count"
    );
    assert_eq!(entries(&log), vec!["start:a", "start:a", "start:a"]);
}

async fn strategy_run(strategy: Strategy) -> Vec<String> {
    let log = Log::default();
    let node = node("n1");
    let children = vec![probe("a", &log), probe("b", &log), probe("c", &log)];
    let (_root, _) = start_root(&node, SupervisorSpec::new(strategy, generous(), children))
        .await
        .unwrap();
    log.lock().unwrap().clear();
    send(&node, "node/b", ProbeMsg::Panic);
    let b = node.registry.get(&path("node/b")).unwrap();
    eventually("b restarted", || b.restarts() == 1 && b.cell().is_some()).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    entries(&log)
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_sibling_in_order() {
    // b died without terminating; the others stop in reverse order, then all start in order.
    assert_eq!(
        strategy_run(Strategy::OneForAll).await,
        vec!["stop:c", "stop:a", "start:a", "start:b", "start:c"]
    );
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_child_and_those_after_it() {
    assert_eq!(
        strategy_run(Strategy::RestForOne).await,
        vec!["stop:c", "start:b", "start:c"]
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_child() {
    assert_eq!(strategy_run(Strategy::OneForOne).await, vec!["start:b"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_runs_in_reverse_order_and_kills_a_child_that_ignores_it() {
    let log = Log::default();
    let node = node("n1");
    let children = vec![
        probe("a", &log),
        probe("b", &log),
        probe("c", &log).shutdown(Shutdown::Timeout(Duration::from_secs(2))),
    ];
    let (root, handle) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, generous(), children),
    )
    .await
    .unwrap();
    send(&node, "node/c", ProbeMsg::Hang);
    tokio::task::yield_now().await;
    let started = node.runtime.now();
    root.stop(None);
    handle.await.unwrap();
    // c never ran its terminate (it was killed after its 2 s timeout); b then a stopped.
    assert_eq!(
        entries(&log),
        vec!["start:a", "start:b", "start:c", "stop:b", "stop:a"]
    );
    assert!(node.runtime.now().duration_since(started) >= Duration::from_secs(2));
    let remaining: Vec<String> = node
        .registry
        .list(0)
        .iter()
        .map(|i| i.path.to_string())
        .collect();
    assert_eq!(
        remaining,
        vec!["node"],
        "children leave the registry with the supervisor"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts_of_externally_failing_children() {
    let log = Log::default();
    let node = node("n1");
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
        reset_after: Duration::from_secs(60),
    };
    let child = probe("camera", &log).backoff(backoff);
    let (_root, _) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, generous(), vec![child]),
    )
    .await
    .unwrap();
    let entry = node.registry.get(&path("node/camera")).unwrap();
    send(&node, "node/camera", ProbeMsg::Panic);
    eventually("camera waits in backoff", || {
        entry.info(0).status == ActorStatus::Restarting
    })
    .await;
    let failed_at = node.runtime.now();
    eventually("camera restarted", || entry.cell().is_some()).await;
    let waited = node.runtime.now().duration_since(failed_at);
    assert!(
        waited >= Duration::from_millis(990) && waited < Duration::from_millis(1100),
        "{waited:?}"
    );
    // The second consecutive failure waits twice as long.
    send(&node, "node/camera", ProbeMsg::Panic);
    eventually("camera waits again", || entry.cell().is_none()).await;
    let failed_at = node.runtime.now();
    eventually("camera restarted again", || entry.cell().is_some()).await;
    assert!(node.runtime.now().duration_since(failed_at) >= Duration::from_millis(1990));
}

/// Children under backoff failing all at once (a hundred cameras behind one recorder
/// that went down) are each restarted after their delay; their restarts are not counted
/// against the intensity, so the supervisor does not give up and take healthy siblings
/// down with it.
#[tokio::test(start_paused = true)]
async fn children_under_backoff_failing_together_do_not_exhaust_the_intensity() {
    let log = Log::default();
    let node = node("n1");
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
        reset_after: Duration::from_secs(60),
    };
    let names = ["cam1", "cam2", "cam3", "cam4", "cam5"];
    let children: Vec<ChildSpec> = names
        .iter()
        .map(|name| probe(name, &log).backoff(backoff))
        .chain(std::iter::once(probe("healthy", &log)))
        .collect();
    // OTP's default intensity: one restart in five seconds.
    let (root, _) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, Intensity::default(), children),
    )
    .await
    .unwrap();
    let healthy = node.registry.get(&path("node/healthy")).unwrap();
    let healthy_cell = healthy.cell();
    for _ in 0..3 {
        for name in names {
            send(&node, &format!("node/{name}"), ProbeMsg::Panic);
        }
        for name in names {
            let entry = node.registry.get(&path(&format!("node/{name}"))).unwrap();
            eventually("restarted after its backoff", || entry.cell().is_some()).await;
        }
    }
    assert!(
        ractor::ACTIVE_STATES.contains(&root.get_status()),
        "the supervisor is still up"
    );
    assert_eq!(
        healthy.cell(),
        healthy_cell,
        "the healthy sibling was never restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn dynamic_children_are_added_removed_and_rebuilt_from_their_source() {
    let log = Log::default();
    let node = node("n1");
    let desired = Arc::new(Mutex::new(vec!["s1"]));
    let source_log = log.clone();
    let source_desired = desired.clone();
    let source: ChildSource = Arc::new(move || {
        let names = source_desired.lock().unwrap().clone();
        names
            .into_iter()
            .map(|name| probe(name, &source_log))
            .collect()
    });
    let mut spec = SupervisorSpec::dynamic(generous(), Some(source));
    spec.max_children = 2;
    let dynamic = supervisor_child("sessions", spec);
    let (_root, _) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, generous(), vec![dynamic]),
    )
    .await
    .unwrap();
    let sessions: ractor::ActorRef<SupervisorMsg> = ractor::ActorRef::from(
        node.registry
            .get(&path("node/sessions"))
            .unwrap()
            .cell()
            .unwrap(),
    );

    let added = ractor::call!(sessions, SupervisorMsg::StartChild, probe("s2", &log)).unwrap();
    assert!(added.is_ok(), "{added:?}");
    desired.lock().unwrap().push("s2");
    let duplicate = ractor::call!(sessions, SupervisorMsg::StartChild, probe("s2", &log)).unwrap();
    assert!(
        matches!(&duplicate, Err(SupervisorError::DuplicateId(id)) if id == "s2"),
        "{duplicate:?}"
    );
    let full = ractor::call!(sessions, SupervisorMsg::StartChild, probe("s3", &log)).unwrap();
    assert!(
        matches!(full, Err(SupervisorError::TooManyChildren(2))),
        "{full:?}"
    );

    // Restart the dynamic supervisor: its children come back from the source, not memory.
    assert!(
        node.registry
            .get(&path("node/sessions"))
            .unwrap()
            .inject_failure("test".into())
    );
    let registry = node.registry.clone();
    eventually("sessions rebuilt", || {
        registry
            .get(&path("node/sessions"))
            .is_some_and(|e| e.restarts() == 1)
            && registry
                .get(&path("node/sessions/s2"))
                .is_some_and(|e| e.cell().is_some())
    })
    .await;
    let sessions: ractor::ActorRef<SupervisorMsg> = ractor::ActorRef::from(
        node.registry
            .get(&path("node/sessions"))
            .unwrap()
            .cell()
            .unwrap(),
    );
    let removed = ractor::call!(sessions, SupervisorMsg::TerminateChild, "s1".to_string()).unwrap();
    assert!(removed.is_ok(), "{removed:?}");
    assert!(node.registry.get(&path("node/sessions/s1")).is_none());
    let children = ractor::call!(sessions, SupervisorMsg::Children).unwrap();
    assert_eq!(
        children,
        vec![ChildSummary {
            id: "s2".into(),
            running: true
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn injected_failures_restart_workers() {
    let log = Log::default();
    let node = node("n1");
    let (_root, _) = start_root(
        &node,
        SupervisorSpec::new(Strategy::OneForOne, generous(), vec![probe("a", &log)]),
    )
    .await
    .unwrap();
    let entry = node.registry.get(&path("node/a")).unwrap();
    assert!(entry.inject_failure("chaos".into()));
    eventually("a restarted", || {
        entry.restarts() == 1 && entry.cell().is_some()
    })
    .await;
    assert!(
        entry
            .info(0)
            .last_failure
            .unwrap()
            .contains("failure injected: chaos")
    );
}

#[tokio::test(start_paused = true)]
async fn two_nodes_in_one_process_have_separate_registries() {
    let (log1, log2) = (Log::default(), Log::default());
    let (node1, node2) = (node("n1"), node("n2"));
    let spec =
        |log: &Log| SupervisorSpec::new(Strategy::OneForOne, generous(), vec![probe("a", log)]);
    let (_r1, _) = start_root(&node1, spec(&log1)).await.unwrap();
    let (_r2, _) = start_root(&node2, spec(&log2)).await.unwrap();
    send(&node1, "node/a", ProbeMsg::Panic);
    let a1 = node1.registry.get(&path("node/a")).unwrap();
    eventually("a restarted on n1", || {
        a1.restarts() == 1 && a1.cell().is_some()
    })
    .await;
    let a2 = node2.registry.get(&path("node/a")).unwrap();
    assert_eq!(a2.restarts(), 0);
    assert_eq!(entries(&log2), vec!["start:a"]);
    assert_ne!(a1.cell().unwrap().get_id(), a2.cell().unwrap().get_id());
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_to_start_fails_the_supervisor_start() {
    let node = node("n1");
    let failing = ChildSpec {
        id: "broken".into(),
        kind: "probe",
        restart: Restart::Permanent,
        shutdown: Shutdown::BrutalKill,
        backoff: None,
        start: Arc::new(|_| {
            Box::pin(async {
                Err(StartError::Spawn(ractor::SpawnErr::StartupFailed(
                    "camera refused".into(),
                )))
            })
        }),
    };
    let log = Log::default();
    let spec = SupervisorSpec::new(
        Strategy::OneForOne,
        generous(),
        vec![probe("a", &log), failing],
    );
    let error = start_root(&node, spec).await.unwrap_err().to_string();
    assert!(error.contains("camera refused"), "{error}");
    assert!(error.contains("node: a child failed to start"), "{error}");
    assert_eq!(
        entries(&log),
        vec!["start:a", "stop:a"],
        "started children are stopped again"
    );
}
