//! A token bucket over any clock: the core's rate limit runs on the batch's
//! UTC time (deterministic, simulated in tests), the acceptor's read pacing
//! and connection limit on tokio's clock.

use std::time::Duration;

use crate::fix::time::UtcNanos;

/// A point in time a bucket can refill from.
pub trait Clock: Copy {
    /// Seconds from `earlier` to `self` (0 if `earlier` is later).
    fn secs_since(self, earlier: Self) -> f64;
}

impl Clock for tokio::time::Instant {
    fn secs_since(self, earlier: Self) -> f64 {
        self.saturating_duration_since(earlier).as_secs_f64()
    }
}

impl Clock for UtcNanos {
    fn secs_since(self, earlier: Self) -> f64 {
        (self - earlier).max(0) as f64 / 1e9
    }
}

/// `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<T> {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: T,
}

impl<T: Clock> Bucket<T> {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: T) -> Bucket<T> {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: T) {
        let elapsed = now.secs_since(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: T) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, borrowing it from the future if need be: returns how
    /// long until it would have been there (zero when it was).
    pub fn take(&mut self, now: T) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}
