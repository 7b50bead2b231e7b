//! The suspend fault's mechanism on turmoil (crates.io, unmodified): a node's runtime
//! seam suspended from the simulator, as SIGSTOP suspends a process. Its clocks stand
//! still while the simulation's clock moves on, the tasks spawned through it are not
//! polled, and at the resume its clocks jump to the simulation's time and every timer
//! due meanwhile fires at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_otp::rt::{Runtime, Suspension};

const TICK_MS: u64 = 10;
const EPOCH_MS: u64 = 1_000_000;

/// Per event: the simulation's time (ms), the node's wall clock minus the epoch (ms),
/// and who saw it.
type Seen = Arc<Mutex<Vec<(u64, u64, &'static str)>>>;

fn sim_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn steps(sim: &mut turmoil::Sim<'_>, ms: u64) {
    for _ in 0..ms / TICK_MS {
        sim.step().expect("the host runs");
    }
}

#[test]
fn a_suspended_node_stands_still_and_jumps_on_resume() {
    let mut sim = turmoil::Builder::new()
        .tick_duration(Duration::from_millis(TICK_MS))
        .simulation_duration(Duration::from_secs(60))
        .build();
    let seen: Seen = Arc::default();
    let control: Arc<Mutex<Option<Suspension>>> = Arc::default();
    let (log, slot) = (seen.clone(), control.clone());
    sim.host("a", move || {
        let (log, slot) = (log.clone(), slot.clone());
        async move {
            let runtime = Runtime::deterministic(1, EPOCH_MS);
            *slot.lock().unwrap() = runtime.suspension();
            // A task of the node: gated by the suspension.
            let (tasks, clock) = (log.clone(), runtime.clone());
            drop(runtime.spawn("ticker", async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let wall = clock.wall_clock_ms() - EPOCH_MS;
                    tasks.lock().unwrap().push((sim_ms(), wall, "task"));
                }
            }));
            // Something the seam did not spawn (as ractor's actors): it runs on, and
            // reads the node's clock standing still.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let wall = runtime.wall_clock_ms() - EPOCH_MS;
                log.lock().unwrap().push((sim_ms(), wall, "outside"));
            }
        }
    });
    steps(&mut sim, 1_200);
    let suspension = control.lock().unwrap().clone().expect("registered");
    let before: Vec<_> = seen.lock().unwrap().clone();
    assert_eq!(
        before,
        vec![
            (500, 500, "outside"),
            (500, 500, "task"),
            (1_000, 1_000, "outside"),
            (1_000, 1_000, "task"),
        ]
    );

    suspension.suspend();
    steps(&mut sim, 3_000);
    let during: Vec<_> = seen.lock().unwrap()[before.len()..].to_vec();
    // The seam's task ran not once; the clock stood where the suspension found it.
    assert!(
        during.iter().all(|(_, _, who)| *who == "outside"),
        "{during:?}"
    );
    assert_eq!(during.len(), 6, "{during:?}");
    assert!(
        during.iter().all(|(_, wall, _)| *wall == 1_500),
        "{during:?}"
    );
    assert_eq!(during[0].0, 1_500);

    suspension.resume();
    steps(&mut sim, 100);
    let after: Vec<_> = seen.lock().unwrap()[before.len() + during.len()..].to_vec();
    // The task's expired timer fired at once, and its clock had jumped to the
    // simulation's time.
    assert_eq!(after, vec![(4_200, 4_200, "task")]);
    steps(&mut sim, 500);
    let tasks: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, who)| *who == "task")
        .copied()
        .collect();
    assert_eq!(tasks.last(), Some(&(4_700, 4_700, "task")));
}
