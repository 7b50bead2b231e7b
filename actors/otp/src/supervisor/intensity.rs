//! The restart-intensity window: a pure record of recent restarts.

use std::collections::VecDeque;

use super::spec::Intensity;
use crate::rt::Instant;

/// Restarts within the current window.
#[derive(Debug, Default)]
pub struct RestartWindow {
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now`; false when this restart exceeds `intensity`.
    pub fn allow(&mut self, intensity: Intensity, now: Instant) -> bool {
        while let Some(oldest) = self.restarts.front() {
            if now.duration_since(*oldest) >= intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        // The window never holds more than max_restarts + 1 entries.
        debug_assert!(self.restarts.len() <= intensity.max_restarts as usize + 1);
        self.restarts.len() <= intensity.max_restarts as usize
    }

    /// Restarts counted in the window.
    pub fn len(&self) -> usize {
        self.restarts.len()
    }

    /// True when no restart is in the window.
    pub fn is_empty(&self) -> bool {
        self.restarts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn more_than_max_restarts_in_the_period_is_refused() {
        let intensity = Intensity {
            max_restarts: 2,
            period: Duration::from_secs(5),
        };
        let mut window = RestartWindow::default();
        let start = crate::rt::Runtime::deterministic(0, 0).now();
        assert!(window.allow(intensity, start));
        assert!(window.allow(intensity, start + Duration::from_secs(1)));
        assert!(!window.allow(intensity, start + Duration::from_secs(2)));
        // Five seconds after the first, the first leaves the window.
        let mut window = RestartWindow::default();
        assert!(window.allow(intensity, start));
        assert!(window.allow(intensity, start + Duration::from_secs(1)));
        assert!(window.allow(intensity, start + Duration::from_secs(5)));
        assert_eq!(window.len(), 2);
    }
}
