//! Throttles sign-ups per client address, so one machine cannot create accounts (and queue
//! password hashes) as fast as it can send requests.
//!
//! The limits leave room for an office behind one NAT address: twenty people may sign up at
//! once, and after that one more every six seconds (ten a minute, 600 an hour), far more than
//! people sign up by hand. A script from one address gets those twenty, then ten a minute.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};

use super::login_limit::quota;

/// Sign-ups per address at once.
pub const BURST: u32 = 20;
/// After the burst, one sign-up per address per this period.
pub const PERIOD: Duration = Duration::from_secs(6);

/// Keyed sign-up rate limit.
pub struct SignupLimiter {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for SignupLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignupLimiter(..)")
    }
}

impl Default for SignupLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl SignupLimiter {
    /// The production limits.
    pub fn new() -> Self {
        Self {
            per_address: RateLimiter::keyed(quota(PERIOD, BURST)),
        }
    }

    /// Counts one sign-up from `address`. `Err` carries how long to wait before the next one is
    /// allowed.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        self.per_address
            .check_key(&key(address))
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Forgets addresses that are back at full quota; call periodically so memory stays
    /// bounded.
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
    }
}

/// The key an address counts under. An IPv6 client usually holds a whole /64 and could send
/// every request from a fresh address in it, so IPv6 addresses count per /64; an IPv4 address
/// mapped into IPv6 counts as the IPv4 address it is.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_from_one_address_is_limited_and_others_still_pass() {
        let limiter = SignupLimiter::new();
        let office: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..BURST {
            limiter.check(office).unwrap();
        }
        let wait = limiter.check(office).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= PERIOD, "{wait:?}");
        limiter.check("192.0.2.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = SignupLimiter::new();
        for n in 0..BURST {
            let address: IpAddr = format!("2001:db8:1:2::{n:x}").parse().unwrap();
            limiter.check(address).unwrap();
        }
        assert!(limiter
            .check("2001:db8:1:2:ffff::1".parse().unwrap())
            .is_err());
        limiter.check("2001:db8:1:3::1".parse().unwrap()).unwrap();

        for _ in 0..BURST {
            limiter.check("198.51.100.7".parse().unwrap()).unwrap();
        }
        assert!(limiter
            .check("::ffff:198.51.100.7".parse().unwrap())
            .is_err());
    }
}
