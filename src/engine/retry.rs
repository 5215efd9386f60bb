//! How often and how patiently a failing route is retried before it is dead-lettered, and
//! the loop that retries one event alone ([`Engine::retry_alone`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::event::Delivery;
use crate::route::model::RetryDef;
use crate::store::log;
use crate::store::{Conn, StoreError};

use super::commits::AppliedEvent;
use super::{handle_delivery, sleep_or_cancel, Attempt, Engine, Retry, Stream, STORE_RETRY};

/// A compiled retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub attempts: u32,
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth factor per failure.
    pub multiplier: f64,
    /// Randomise delays by ±50%.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Applies a route's or config's `retry:` on top of `base`, refusing nonsense.
    pub fn from_def(def: &RetryDef, base: RetryPolicy) -> Result<Self, String> {
        if def.attempts == 0 || def.attempts > 100 {
            return Err("retry.attempts must be between 1 and 100".into());
        }
        let mut policy = RetryPolicy {
            attempts: def.attempts,
            jitter: def.jitter.unwrap_or(base.jitter),
            ..base
        };
        if let Some(backoff) = &def.backoff {
            if !(1.0..=10.0).contains(&backoff.multiplier) {
                return Err("retry.backoff.multiplier must be between 1 and 10".into());
            }
            if backoff.initial > backoff.max {
                return Err("retry.backoff.initial must not exceed retry.backoff.max".into());
            }
            if backoff.max > Duration::from_secs(3600) {
                return Err("retry.backoff.max must be at most 1h".into());
            }
            policy.initial = backoff.initial;
            policy.max = backoff.max;
            policy.multiplier = backoff.multiplier;
        }
        Ok(policy)
    }

    /// The delay before attempt `failed + 1`, after `failed` failures (`failed >= 1`).
    pub fn delay(&self, failed: u32) -> Duration {
        let exponent = failed.saturating_sub(1).min(64) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let factor = if self.jitter {
            0.5 + fastrand::f64()
        } else {
            1.0
        };
        Duration::from_secs_f64((capped * factor).min(self.max.as_secs_f64()))
    }
}

impl Engine {
    /// Claims the event's id for this database, inside the event's transaction. False when it
    /// was handled before: a copy the Kafka relay published twice, or an event that went
    /// through the other bus before a switch between the embedded bus and Kafka.
    async fn claim(
        &self,
        connection: &mut Conn<'_>,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        let Ok(event) = &delivery.decoded else {
            // Not an event: handle_delivery dead-letters it.
            return Ok(true);
        };
        Ok(log::claim_event(connection, &self.options.consumer, &event.envelope.event_id).await?)
    }

    /// Retries one event (the one after position `from`) until it succeeds or its failing
    /// routes are dead-lettered. Returns the new position, or `None` when shutting down first or
    /// when the stored position must be read again.
    pub async fn retry_alone(
        &self,
        stream: &Stream,
        from: i64,
        delivery: &Delivery,
        mut retry: Retry,
        shutdown: &CancellationToken,
    ) -> Option<i64> {
        let first_failed_at = crate::template::now_rfc3339();
        // Only deliveries from a stream are retried alone (a replay goes through
        // `engine::replay`), so there is a position; without one, it stays where it was.
        let after = delivery.position_after().unwrap_or(from);
        let mut attempt = 1;
        loop {
            tracing::warn!(
                origin = %delivery.origin,
                route = %retry.route,
                attempt,
                error = %retry.error,
                "route failed; retrying in {:?}",
                retry.delay
            );
            if !sleep_or_cancel(retry.delay, shutdown).await {
                return None;
            }
            attempt += 1;
            let routes = self.routes.load_full();
            let outcome = async {
                let mut transaction = self.store.begin().await?;
                let result = if !self.claim(&mut transaction, delivery).await? {
                    Ok(None)
                } else {
                    let attempt = Attempt {
                        number: attempt,
                        first_failed_at: Some(&first_failed_at),
                        may_retry: true,
                        guarded: true,
                    };
                    handle_delivery(
                        &mut transaction,
                        delivery,
                        &routes,
                        &self.http,
                        attempt,
                        None,
                        None,
                    )
                    .await
                    .map(Some)
                };
                match result {
                    Ok(handled) => {
                        let handled = handled.unwrap_or_default();
                        let emitted = &handled.emitted;
                        log::append_all(&mut transaction, emitted).await?;
                        log::advance_position(
                            &mut transaction,
                            &self.options.consumer,
                            &stream.name,
                            stream.partition,
                            from,
                            after,
                        )
                        .await?;
                        transaction.commit().await?;
                        handled.count();
                        if let Some(observer) = &self.observer {
                            if !handled.event_id.is_empty() {
                                observer.report(vec![AppliedEvent::new(
                                    handled.event_id,
                                    &handled.emitted,
                                )]);
                            }
                        }
                        Ok(Ok(handled.emitted))
                    }
                    Err(retry) => {
                        transaction.rollback().await?;
                        Ok::<_, StoreError>(Err(retry))
                    }
                }
            }
            .await;
            match outcome {
                Ok(Ok(emitted)) => {
                    self.health.set(None);
                    self.announce(&emitted);
                    return Some(after);
                }
                Ok(Err(next)) => retry = next.into_retry(),
                Err(error @ StoreError::PositionMoved { .. }) => {
                    self.store_failed(&error);
                    return None;
                }
                Err(error) => {
                    self.store_failed(&error);
                    attempt -= 1;
                    retry.delay = STORE_RETRY;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::model::BackoffDef;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(1), Duration::from_millis(200));
        assert_eq!(policy.delay(2), Duration::from_millis(400));
        assert_eq!(policy.delay(3), Duration::from_millis(800));
        assert_eq!(policy.delay(30), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            let delay = policy.delay(2);
            assert!(
                delay >= Duration::from_millis(200) && delay <= Duration::from_millis(600),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn refuses_nonsense() {
        let def = |attempts, initial, max, multiplier| RetryDef {
            attempts,
            backoff: Some(BackoffDef {
                initial: Duration::from_millis(initial),
                max: Duration::from_millis(max),
                multiplier,
            }),
            jitter: None,
        };
        let base = RetryPolicy::default();
        assert!(RetryPolicy::from_def(&def(0, 1, 2, 2.0), base).is_err());
        assert!(RetryPolicy::from_def(&def(3, 5, 2, 2.0), base).is_err());
        assert!(RetryPolicy::from_def(&def(3, 1, 2, 0.5), base).is_err());
        let policy = RetryPolicy::from_def(&def(5, 10, 100, 3.0), base).unwrap();
        assert_eq!(
            (policy.attempts, policy.initial, policy.multiplier),
            (5, Duration::from_millis(10), 3.0)
        );
    }
}
