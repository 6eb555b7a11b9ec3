//! Stopping a request early: a [`Cancel`] that generation polls between steps (before the
//! model's turn, between prefill chunks, between tokens, between remote attempts).
//!
//! Issue 17: a request whose client had gone was still generated, a daemon told to stop
//! waited for the current generation, and a remote backend that slept could cost minutes.
//! One token carries all three causes, so every backend answers them the same way: the
//! deadline the user set, and any number of "is this still wanted?" checks (the client's
//! socket is still open, the daemon is not stopping).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why work stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nobody wants the answer any more: the client left, or the daemon is stopping.
    Cancelled,
    /// The request's deadline passed.
    DeadlineExceeded,
}

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// A request's deadline and cancellation checks. Cheap to clone; the default never stops.
#[derive(Clone, Default)]
pub struct Cancel {
    /// When the request must be done, and the budget it was set from (for messages).
    deadline: Option<(Instant, Duration)>,
    /// Each returns true when the work should stop.
    checks: Vec<Check>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("budget", &self.budget())
            .field("remaining", &self.remaining())
            .field("checks", &self.checks.len())
            .finish()
    }
}

impl Cancel {
    /// A token that never stops anything.
    pub fn never() -> Self {
        Self::default()
    }

    /// Adds a deadline `budget` from now. An earlier deadline already set is kept, so a daemon
    /// applying its own limit never extends the one the client asked for.
    pub fn with_timeout(mut self, budget: Duration) -> Self {
        // `--timeout 18446744073709551615` is past what an Instant can hold: that is no limit,
        // not a panic.
        let Some(at) = Instant::now().checked_add(budget) else {
            return self;
        };
        match self.deadline {
            Some((old, _)) if old <= at => {}
            _ => self.deadline = Some((at, budget)),
        }
        self
    }

    /// Adds a check that returns true once the work is no longer wanted. It is called often
    /// (once per generated token), so it must be cheap and never block.
    pub fn with_check(mut self, check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// `Err` once the work should stop; the deadline wins over a check when both apply.
    pub fn check(&self) -> Result<(), Stop> {
        if self.remaining() == Some(Duration::ZERO) {
            return Err(Stop::DeadlineExceeded);
        }
        if self.checks.iter().any(|c| c()) {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Whether anything can ever stop this request; work may skip its checks when not.
    pub fn can_stop(&self) -> bool {
        self.deadline.is_some() || !self.checks.is_empty()
    }

    /// Time left before the deadline; `None` when there is none.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }

    /// The budget the deadline was set from; `None` when there is none.
    pub fn budget(&self) -> Option<Duration> {
        self.deadline.map(|(_, budget)| budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_default_token_never_stops() {
        let c = Cancel::never();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.remaining(), None);
    }

    #[test]
    fn a_passed_deadline_stops_and_an_earlier_one_is_kept() {
        let c = Cancel::never().with_timeout(Duration::ZERO);
        assert_eq!(c.check(), Err(Stop::DeadlineExceeded));
        let c = Cancel::never()
            .with_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(100));
        assert_eq!(c.budget(), Some(Duration::from_secs(1)));
        assert!(c.remaining().is_some_and(|r| r <= Duration::from_secs(1)));
    }

    #[test]
    fn a_timeout_past_what_an_instant_holds_is_no_limit_not_a_panic() {
        let c = Cancel::never().with_timeout(Duration::from_secs(u64::MAX));
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.remaining(), None);
        let c = Cancel::never()
            .with_timeout(Duration::from_secs(5))
            .with_timeout(Duration::MAX);
        assert_eq!(c.budget(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_check_cancels_once_it_says_so() {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let c = Cancel::never().with_check(move || seen.load(Ordering::SeqCst));
        assert_eq!(c.check(), Ok(()));
        flag.store(true, Ordering::SeqCst);
        assert_eq!(c.clone().check(), Err(Stop::Cancelled));
    }
}
