//! When an automatic check may run: the polite client a CDN operator
//! wants. A check that succeeded is not repeated before the minimum
//! interval (24 h by default, never under an hour) plus a random part of
//! half of it, so installs that started together drift apart; one that
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
    /// epoch); `None`: now. `jitter` is a random number in `[0, 1)` drawn
    /// once for the install's last check (see [`jitter_of`]).
    pub fn next_check(&self, state: &State, jitter: f64) -> Option<u64> {
        if self.every_start {
            return None;
        }
        // A failure set its own time (backoff, Retry-After).
        if state.failed_checks > 0 || state.next_check.is_some() {
            return state.next_check;
        }
        let last = state.last_check.as_ref()?.at;
        let interval = self.interval().as_secs_f64();
        Some(last + (interval * (1.0 + jitter / 2.0)) as u64)
    }

    /// Whether an automatic check may run at `now`.
    pub fn due(&self, state: &State, now: u64) -> bool {
        self.next_check(state, jitter_of(state))
            .is_none_or(|at| now >= at)
    }

    /// The random wait before a check at the app's start.
    pub fn start_wait(&self, random: f64) -> Duration {
        if self.every_start {
            return Duration::ZERO;
        }
        self.start_delay.mul_f64(random.clamp(0.0, 1.0))
    }
}

/// A check succeeded: the interval runs from now.
pub fn succeeded(state: &mut State) {
    state.failed_checks = 0;
    state.next_check = None;
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
    let at = now + wait.as_secs().max(1);
    state.next_check = Some(at);
    at
}

/// The install's jitter for the interval after its last check, in `[0,
/// 1)`: drawn from its id and the time of that check, so that it stays the
/// same from one start to the next but differs between installs and checks.
pub fn jitter_of(state: &State) -> f64 {
    use sha2::Digest;
    let at = state.last_check.as_ref().map_or(0, |c| c.at);
    let id = state.install_id.as_deref().unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{id} {at}").as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
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
        let state = checked_at(1_000_000);
        let day = 24 * 3600;
        assert!(!schedule.due(&state, 1_000_000 + day - 1));
        assert!(schedule.due(&state, 1_000_000 + day + day / 2));
        assert_eq!(schedule.next_check(&state, 0.0), Some(1_000_000 + day));
        assert_eq!(
            schedule.next_check(&state, 0.5),
            Some(1_000_000 + day + day / 4)
        );
    }

    #[test]
    fn the_interval_has_a_floor_of_an_hour() {
        let schedule = Schedule {
            interval: Duration::from_secs(60),
            ..Schedule::default()
        };
        assert_eq!(schedule.interval(), MIN_INTERVAL);
        assert!(!schedule.due(&checked_at(0), 3599));
        assert!(schedule.due(&checked_at(0), 3600 * 3 / 2));
    }

    #[test]
    fn installs_and_checks_draw_different_jitters() {
        let a = checked_at(100);
        let b = State {
            install_id: Some("cd".repeat(16)),
            ..checked_at(100)
        };
        let draws = [jitter_of(&a), jitter_of(&b), jitter_of(&checked_at(101))];
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)), "{draws:?}");
        assert!(draws[0] != draws[1] && draws[0] != draws[2], "{draws:?}");
        assert_eq!(jitter_of(&a), jitter_of(&a.clone()));
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
        succeeded(&mut state);
        assert_eq!((state.failed_checks, state.next_check), (0, None));
    }

    #[test]
    fn every_start_checks_at_once() {
        let schedule = Schedule {
            every_start: true,
            ..Schedule::default()
        };
        assert!(schedule.due(&checked_at(0), 1));
        assert_eq!(schedule.start_wait(0.9), Duration::ZERO);
        assert_eq!(Schedule::default().start_wait(0.5), DEFAULT_START_DELAY / 2);
    }
}
