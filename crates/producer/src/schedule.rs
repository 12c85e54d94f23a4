//! When a client asks a new task to be due: `delay_ms` (from now) or `run_at_ms` (a Redis server
//! time, as the views' `*_at_ms` show it), checked here so a bad value is the client's error,
//! never a task due in a thousand years.

use std::time::Duration;

use taskq::RunAt;

/// The longest delay accepted: a year.
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3600 * 1000;

/// The latest time accepted (ms since the epoch): the library's bound, the year 2286.
pub use taskq::MAX_RUN_AT_MS;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Both ways of saying when.
    #[error("give delay_ms or run_at_ms, not both")]
    Both,
    /// A delay beyond [`MAX_DELAY_MS`].
    #[error("delay_ms is at most {MAX_DELAY_MS} (a year)")]
    DelayTooLong,
    /// A time beyond [`MAX_RUN_AT_MS`].
    #[error("run_at_ms is at most {MAX_RUN_AT_MS}")]
    TooLate,
}

/// When a task given `delay_ms` or `run_at_ms` (or neither: now) is due.
///
/// # Errors
/// [`ScheduleError`] when both are given or one is out of range.
pub fn run_at(delay_ms: Option<u64>, run_at_ms: Option<u64>) -> Result<RunAt, ScheduleError> {
    match (delay_ms, run_at_ms) {
        (Some(_), Some(_)) => Err(ScheduleError::Both),
        (Some(delay), None) if delay > MAX_DELAY_MS => Err(ScheduleError::DelayTooLong),
        (None, Some(at)) if at > MAX_RUN_AT_MS => Err(ScheduleError::TooLate),
        (Some(0), None) | (None, None) => Ok(RunAt::Now),
        (Some(delay), None) => Ok(RunAt::After(Duration::from_millis(delay))),
        (None, Some(at)) => Ok(RunAt::At(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_or_a_time_or_now_and_nothing_out_of_range() {
        assert_eq!(run_at(None, None), Ok(RunAt::Now));
        assert_eq!(run_at(Some(0), None), Ok(RunAt::Now));
        assert_eq!(
            run_at(Some(1500), None),
            Ok(RunAt::After(Duration::from_millis(1500)))
        );
        assert_eq!(run_at(None, Some(42)), Ok(RunAt::At(42)));
        assert_eq!(run_at(Some(1), Some(1)), Err(ScheduleError::Both));
        assert_eq!(
            run_at(Some(MAX_DELAY_MS + 1), None),
            Err(ScheduleError::DelayTooLong)
        );
        assert_eq!(
            run_at(None, Some(MAX_RUN_AT_MS + 1)),
            Err(ScheduleError::TooLate)
        );
    }
}
