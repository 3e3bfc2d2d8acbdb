//! When an automatic check may run: the polite client a CDN operator
//! wants. A check that succeeded is not repeated before the minimum
//! interval (24 h by default, never under an hour) plus a random part of
//! half of it, drawn at each check, so installs that started together
//! drift apart; one that
//! failed is retried after a full-jitter exponential backoff, or after the
//! `Retry-After` the host gave (capped); the start of the app waits a
//! random moment first. A check the user asked for
//! ([`Updater::update`](crate::Updater::update), `check`) is not held back.
//!
//! Everything here is a pure function of the install's [`State`], the
//! [`Schedule`] and the time, so that a fleet can be simulated on a
//! compressed clock (`cargo bench --bench fleet`).

use std::time::Duration;

use crate::release::trust::State;

/// The floor of the minimum interval between automatic checks.
pub const MIN_INTERVAL: Duration = Duration::from_secs(3600);
/// The default minimum interval between automatic checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The default longest random wait after the app starts.
pub const DEFAULT_START_DELAY: Duration = Duration::from_secs(30);
/// The longest wait a host's `Retry-After` is followed for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The first backoff step after a failed check.
const BACKOFF_BASE: Duration = Duration::from_secs(5 * 60);

/// How automatic checks are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The minimum interval between successful checks (at least
    /// [`MIN_INTERVAL`]).
    pub interval: Duration,
    /// The longest random wait after the app starts.
    pub start_delay: Duration,
    /// Checks at every start, at once (development and tests only:
    /// `LEAPFROG_CHECK_EVERY_START=1`).
    pub every_start: bool,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            interval: DEFAULT_INTERVAL,
            start_delay: DEFAULT_START_DELAY,
            every_start: false,
        }
    }
}

impl Schedule {
    /// The interval, raised to the floor when set below it.
    pub fn interval(&self) -> Duration {
        self.interval.max(MIN_INTERVAL)
    }

    /// When the next automatic check may run (seconds since the Unix
    /// epoch), as the last check set it ([`succeeded`], [`failed`]); `None`:
    /// now.
    pub fn next_check(&self, state: &State) -> Option<u64> {
        if self.every_start {
            return None;
        }
        match (state.next_check, &state.last_check) {
            (Some(at), _) => Some(at),
            // A state written before the schedule: the interval from the
            // last check.
            (None, Some(last)) => Some(last.at.saturating_add(self.interval().as_secs())),
            (None, None) => None,
        }
    }

    /// Whether an automatic check may run at `now`. A next check further
    /// ahead than any this schedule sets (the clock was set back, or was
    /// ahead when it was set) does not hold checks back.
    pub fn due(&self, state: &State, now: u64) -> bool {
        let furthest = (self.interval().as_secs() * 3 / 2).max(MAX_RETRY_AFTER.as_secs() * 11 / 10);
        self.next_check(state)
            .is_none_or(|at| now >= at || at > now.saturating_add(furthest + 60))
    }

    /// The random wait before a check at the app's start.
    pub fn start_wait(&self, random: f64) -> Duration {
        if self.every_start {
            return Duration::ZERO;
        }
        self.start_delay.mul_f64(random.clamp(0.0, 1.0))
    }
}

/// A check succeeded at `now`: the next one is due after the interval and
/// a random part of half of it (`random` in `[0, 1)`), so that installs
/// that checked together drift apart. Returns the time set.
pub fn succeeded(state: &mut State, schedule: &Schedule, now: u64, random: f64) -> u64 {
    state.failed_checks = 0;
    let interval = schedule.interval().as_secs_f64();
    let at = now.saturating_add((interval * (1.0 + random.clamp(0.0, 1.0) / 2.0)) as u64);
    state.next_check = Some(at);
    at
}

/// A check failed at `now`: the next one waits the host's `Retry-After`
/// (capped at [`MAX_RETRY_AFTER`]), else a full-jitter exponential backoff
/// (`random` in `[0, 1)` times 5 min doubled per failure in a row, at most
/// the interval). Returns the time set.
pub fn failed(
    state: &mut State,
    schedule: &Schedule,
    now: u64,
    retry_after: Option<Duration>,
    random: f64,
) -> u64 {
    state.failed_checks = state.failed_checks.saturating_add(1);
    let wait = match retry_after {
        // A little more than asked, so that a herd told the same moment
        // does not come back in the same second.
        Some(asked) => {
            let asked = asked.min(MAX_RETRY_AFTER);
            asked + asked.mul_f64(random.clamp(0.0, 1.0) / 10.0)
        }
        None => {
            let doublings = (state.failed_checks - 1).min(20);
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << doublings)
                .min(schedule.interval());
            ceiling.mul_f64(random.clamp(0.0, 1.0))
        }
    };
    let at = now.saturating_add(wait.as_secs().max(1));
    state.next_check = Some(at);
    at
}

/// A random number in `[0, 1)` from the system's randomness.
pub fn random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return f64::from(nanos % 1000) / 1000.0;
    }
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::trust::LastCheck;

    fn checked_at(at: u64) -> State {
        State {
            last_check: Some(LastCheck {
                at,
                result: "up to date".into(),
            }),
            install_id: Some("ab".repeat(16)),
            ..State::default()
        }
    }

    #[test]
    fn a_first_check_is_due_and_the_next_waits_the_interval_and_up_to_half_more() {
        let schedule = Schedule::default();
        assert!(schedule.due(&State::default(), 0));
        let day = 24 * 3600;
        let mut state = checked_at(1_000_000);
        assert_eq!(
            succeeded(&mut state, &schedule, 1_000_000, 0.0),
            1_000_000 + day
        );
        assert!(!schedule.due(&state, 1_000_000 + day - 1));
        assert!(schedule.due(&state, 1_000_000 + day));
        assert_eq!(
            succeeded(&mut state, &schedule, 1_000_000, 0.5),
            1_000_000 + day + day / 4
        );
        assert!(!schedule.due(&state, 1_000_000 + day + day / 4 - 1));
        // A state from before the schedule: the interval from the last check.
        let old = checked_at(1_000_000);
        assert!(!schedule.due(&old, 1_000_000 + day - 1) && schedule.due(&old, 1_000_000 + day));
    }

    #[test]
    fn the_interval_has_a_floor_of_an_hour() {
        let schedule = Schedule {
            interval: Duration::from_secs(60),
            ..Schedule::default()
        };
        assert_eq!(schedule.interval(), MIN_INTERVAL);
        let mut state = State::default();
        succeeded(&mut state, &schedule, 0, 0.0);
        assert!(!schedule.due(&state, 3599));
        assert!(schedule.due(&state, 3600));
    }

    #[test]
    fn a_next_check_further_ahead_than_any_set_does_not_hold_checks_back() {
        // The clock ran a year ahead when the last check was made.
        let schedule = Schedule::default();
        let mut state = State::default();
        succeeded(&mut state, &schedule, 400 * 24 * 3600, 0.0);
        assert!(schedule.due(&state, 10 * 24 * 3600));
        let huge = Schedule {
            interval: Duration::from_secs(u64::MAX / 2),
            ..Schedule::default()
        };
        // No overflow, however long the interval.
        assert!(succeeded(&mut state, &huge, u64::MAX - 5, 0.9) == u64::MAX);
        assert!(failed(&mut state, &huge, u64::MAX - 5, None, 0.9) == u64::MAX);
    }

    #[test]
    fn failures_back_off_with_full_jitter_and_retry_after_is_honoured_and_capped() {
        let schedule = Schedule::default();
        let mut state = checked_at(0);
        // Full jitter: anywhere from 0 to the ceiling, which doubles.
        assert_eq!(
            failed(&mut state, &schedule, 1000, None, 0.999_999),
            1000 + 299
        );
        assert_eq!(
            failed(&mut state, &schedule, 1000, None, 0.999_999),
            1000 + 599
        );
        assert_eq!(failed(&mut state, &schedule, 1000, None, 0.0), 1001);
        assert!(!schedule.due(&state, 1000) && schedule.due(&state, 1001));
        // The Retry-After cap holds however much is asked.
        for _ in 0..30 {
            failed(&mut state, &schedule, 0, None, 0.999_999);
        }
        assert_eq!(
            state.next_check,
            Some(24 * 3600 - 1),
            "capped at the interval"
        );
        let at = failed(
            &mut state,
            &schedule,
            0,
            Some(Duration::from_secs(300)),
            0.0,
        );
        assert_eq!(at, 300);
        let at = failed(
            &mut state,
            &schedule,
            0,
            Some(Duration::from_secs(300)),
            0.999,
        );
        assert!((300..=330).contains(&at), "{at}");
        let at = failed(
            &mut state,
            &schedule,
            0,
            Some(Duration::from_secs(u64::MAX / 4)),
            0.0,
        );
        assert_eq!(at, MAX_RETRY_AFTER.as_secs());
        succeeded(&mut state, &schedule, 0, 0.0);
        assert_eq!(
            (state.failed_checks, state.next_check),
            (0, Some(24 * 3600))
        );
    }

    #[test]
    fn every_start_checks_at_once() {
        let schedule = Schedule {
            every_start: true,
            ..Schedule::default()
        };
        let mut state = checked_at(0);
        succeeded(&mut state, &schedule, 0, 0.0);
        assert!(schedule.due(&state, 1));
        assert_eq!(schedule.start_wait(0.9), Duration::ZERO);
        assert_eq!(Schedule::default().start_wait(0.5), DEFAULT_START_DELAY / 2);
    }
}
