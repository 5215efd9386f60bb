//! Throttles login attempts per (email, client address) and per client address, so passwords
//! cannot be guessed quickly for one account or sprayed across many.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts per (email, address): a burst of 10, then one every 12 s. Ten, not fewer, because
/// successful logins count too (the limiter cannot tell them apart before the slow hash), and
/// the original CRM's own end-to-end specs log one user in 8 times within 40 s.
const PER_ACCOUNT_BURST: u32 = 10;
const PER_ACCOUNT_PERIOD: Duration = Duration::from_secs(12);
/// Attempts per address over all emails: a burst of 30, then one per second.
const PER_ADDRESS_BURST: u32 = 30;
const PER_ADDRESS_PERIOD: Duration = Duration::from_secs(1);

/// Keyed login rate limits.
pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<(String, IpAddr)>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter(..)")
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// A quota of `burst` at once, then one per `period`.
pub(super) fn quota(period: Duration, burst: u32) -> Quota {
    Quota::with_period(period)
        .expect("period is non-zero")
        .allow_burst(NonZeroU32::new(burst).expect("burst is non-zero"))
}

impl LoginLimiter {
    /// The production limits.
    pub fn new() -> Self {
        Self {
            per_account: RateLimiter::keyed(quota(PER_ACCOUNT_PERIOD, PER_ACCOUNT_BURST)),
            per_address: RateLimiter::keyed(quota(PER_ADDRESS_PERIOD, PER_ADDRESS_BURST)),
        }
    }

    /// Counts one attempt. `Err` carries how long to wait before the next one is allowed.
    pub fn check(&self, email: &str, address: IpAddr) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(now);
        self.per_address.check_key(&address).map_err(wait)?;
        self.per_account
            // Normalised as login looks the account up, so padding the email with spaces,
            // changing its case or decomposing an accent does not buy a fresh allowance.
            .check_key(&(crate::crm::validate::normalise_email(email), address))
            .map_err(wait)
    }

    /// Forgets keys that are back at full quota; call periodically so memory stays bounded.
    pub fn forget_idle(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_beyond_the_burst_for_one_account_waits() {
        let limiter = LoginLimiter::new();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..PER_ACCOUNT_BURST {
            limiter.check("A@example.com", address).unwrap();
        }
        let wait = limiter.check("a@example.com", address).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= PER_ACCOUNT_PERIOD,
            "{wait:?}"
        );
        // Another account from the same address, and the same account elsewhere, still pass.
        limiter.check("b@example.com", address).unwrap();
        limiter
            .check("a@example.com", "192.0.2.2".parse().unwrap())
            .unwrap();
    }

    #[test]
    fn spraying_many_accounts_from_one_address_is_limited() {
        let limiter = LoginLimiter::new();
        let address: IpAddr = "192.0.2.9".parse().unwrap();
        let refused = (0..PER_ADDRESS_BURST + 5)
            .filter(|n| {
                limiter
                    .check(&format!("user{n}@example.com"), address)
                    .is_err()
            })
            .count();
        assert!(refused >= 5, "{refused}");
    }
}
