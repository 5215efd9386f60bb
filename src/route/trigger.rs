//! When a route runs: on events (a topic name or glob and event types) or on a schedule (an
//! interval or a cron expression), in both cases subject to an optional condition.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use globset::{Glob, GlobMatcher};
use thiserror::Error;

use crate::template::Condition;

/// A topic name or a glob such as `*.events`.
#[derive(Debug, Clone)]
pub enum TopicPattern {
    /// Matches one topic.
    Exact(String),
    /// Matches topics by glob.
    Glob {
        /// The pattern as written.
        pattern: String,
        /// The compiled pattern.
        matcher: GlobMatcher,
    },
}

impl TopicPattern {
    /// Parses `topic:`. Strings with `*`, `?`, `[` or `{` are globs.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.contains(['*', '?', '[', '{']) {
            let glob =
                Glob::new(pattern).map_err(|error| format!("invalid topic glob: {error}"))?;
            Ok(Self::Glob {
                pattern: pattern.to_owned(),
                matcher: glob.compile_matcher(),
            })
        } else {
            crate::event::TopicName::parse(pattern).map_err(|error| error.to_string())?;
            Ok(Self::Exact(pattern.to_owned()))
        }
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(name) => name == topic,
            Self::Glob { matcher, .. } => matcher.is_match(topic),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(name) => name,
            Self::Glob { pattern, .. } => pattern,
        }
    }
}

/// The event types a route accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// `*` or no `type:`.
    Any,
    /// Any of these.
    OneOf(Vec<String>),
}

impl TypeFilter {
    /// Whether `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(types) => types.iter().any(|accepted| accepted == event_type),
        }
    }

    /// The accepted types, `["*"]` for any.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Any => vec!["*".to_owned()],
            Self::OneOf(types) => types.clone(),
        }
    }
}

/// A compiled `on:` block.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Events or a schedule.
    pub kind: TriggerKind,
    /// Optional condition over the event (for a schedule, the synthetic `SCHEDULE` event),
    /// evaluated after the filters.
    pub when: Option<Condition>,
}

/// What starts a route.
#[derive(Debug, Clone)]
pub enum TriggerKind {
    /// `on: {topic, type}`: every matching event.
    Events {
        /// Topic filter.
        topic: TopicPattern,
        /// Type filter.
        types: TypeFilter,
    },
    /// `on: {schedule}`: the scheduler, or `POST /api/routes/{name}/trigger`.
    Schedule(Schedule),
}

impl Trigger {
    /// Whether topic and type match (the `when:` condition is evaluated by the engine). A
    /// scheduled route accepts no event.
    pub fn accepts(&self, topic: &str, event_type: &str) -> bool {
        match &self.kind {
            TriggerKind::Events {
                topic: pattern,
                types,
            } => types.matches(event_type) && pattern.matches(topic),
            TriggerKind::Schedule(_) => false,
        }
    }

    /// The schedule of a scheduled route.
    pub fn schedule(&self) -> Option<&Schedule> {
        match &self.kind {
            TriggerKind::Schedule(schedule) => Some(schedule),
            TriggerKind::Events { .. } => None,
        }
    }
}

/// Shortest interval a schedule may have: the scheduler wakes about once a second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Longest interval (humantime's `1y`): beyond it a typo is likelier than intent.
pub const MAX_INTERVAL: Duration = Duration::from_secs(31_557_600);

/// Why a `schedule:` value is refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// `schedule: ""` or only spaces.
    #[error("`schedule` is empty")]
    Empty,
    /// Not a humantime duration after `every`.
    #[error("invalid interval {text:?}: {reason}")]
    InvalidInterval {
        /// The interval as written.
        text: String,
        /// humantime's explanation.
        reason: String,
    },
    /// Below [`MIN_INTERVAL`] or above [`MAX_INTERVAL`].
    #[error("interval {text:?} is out of range: it must be between 1s and 1y")]
    IntervalOutOfRange {
        /// The interval as written.
        text: String,
    },
    /// Looks like cron but does not parse.
    #[error("invalid cron expression {text:?}: {reason}")]
    InvalidCron {
        /// The expression as written.
        text: String,
        /// croner's explanation.
        reason: String,
    },
    /// Parses, but names no time that exists (`0 0 31 2 *`).
    #[error("cron expression {text:?} never matches a date")]
    NeverDue {
        /// The expression as written.
        text: String,
    },
    /// Neither an interval nor five fields.
    #[error("{text:?} is neither an interval nor a 5-field cron expression")]
    Unrecognised {
        /// The value as written.
        text: String,
    },
}

/// When a scheduled route runs. Cron expressions are evaluated in UTC.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `period`, counted from the start of the previous run.
    Every {
        /// As written (`1m`, `every 30s`).
        text: String,
        /// The period, at least [`MIN_INTERVAL`].
        period: Duration,
    },
    /// At the times a 5-field cron expression names (minute, hour, day of month, month, day of
    /// week), as in crontab(5).
    Cron {
        /// As written (`*/5 * * * *`).
        text: String,
        /// The parsed expression.
        cron: Box<Cron>,
    },
}

impl Schedule {
    /// Parses `schedule:`: an interval (`30s`, `1m 30s`, `every 5m`) or a 5-field cron
    /// expression (`*/5 * * * *`, `0 9 * * MON-FRI`, `@hourly`).
    ///
    /// A value of five or more words, one starting with `@` or one holding `*`, `/`, `,` or `?`
    /// is read as cron, one starting with a digit as an interval, so that an error message
    /// speaks about what the user meant.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(interval) = trimmed.strip_prefix("every ") {
            return Self::interval(text, interval.trim());
        }
        let looks_like_cron = trimmed.starts_with('@')
            || trimmed.contains(['*', '/', ',', '?'])
            || trimmed.split_whitespace().count() >= 5;
        if looks_like_cron {
            return Self::cron(text, trimmed);
        }
        if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            return Self::interval(text, trimmed);
        }
        Err(ScheduleError::Unrecognised {
            text: text.to_owned(),
        })
    }

    fn interval(text: &str, interval: &str) -> Result<Self, ScheduleError> {
        let period = humantime::parse_duration(interval).map_err(|error| {
            ScheduleError::InvalidInterval {
                text: text.to_owned(),
                reason: error.to_string(),
            }
        })?;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&period) {
            return Err(ScheduleError::IntervalOutOfRange {
                text: text.to_owned(),
            });
        }
        Ok(Self::Every {
            text: text.to_owned(),
            period,
        })
    }

    fn cron(text: &str, expression: &str) -> Result<Self, ScheduleError> {
        // Five fields exactly: a seconds or a year field would silently change what the other
        // fields mean to a reader used to crontab. Counted here for a clearer message than
        // croner's.
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && fields != 5 {
            return Err(ScheduleError::InvalidCron {
                text: text.to_owned(),
                reason: format!(
                    "it has {fields} fields; cron takes 5: minute, hour, day of month, month, day of week"
                ),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|error| ScheduleError::InvalidCron {
                text: text.to_owned(),
                reason: error.to_string(),
            })?;
        // croner accepts dates that never come (`0 0 31 2 *`); its search for one then fails at
        // run time. Refuse them at load instead.
        if cron.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(ScheduleError::NeverDue {
                text: text.to_owned(),
            });
        }
        Ok(Self::Cron {
            text: text.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Every { text, .. } | Self::Cron { text, .. } => text,
        }
    }

    /// When the route is next due.
    ///
    /// `last_tick` is the tick of its last run (from the database), `None` if it never ran.
    /// A route that never ran is due at once when it runs at an interval, and at the first
    /// cron time after `first_seen` (when this process first saw it) otherwise, so a daily
    /// report does not run on every deployment.
    pub fn next_due(
        &self,
        last_tick: Option<DateTime<Utc>>,
        first_seen: DateTime<Utc>,
    ) -> DateTime<Utc> {
        match (self, last_tick) {
            (Self::Every { period, .. }, Some(last)) => {
                // MAX_INTERVAL keeps the period far inside chrono's range.
                last + chrono::Duration::from_std(*period).expect("period is at most 1y")
            }
            (Self::Every { .. }, None) => first_seen,
            (Self::Cron { cron, .. }, last) => cron
                .find_next_occurrence(&last.unwrap_or(first_seen), false)
                // Checked at parse time that the expression has future dates; one that runs out
                // (none do before the year 9999) is simply never due again.
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The tick a run that starts at `now` (at or after [`Schedule::next_due`]) claims: `now`
    /// for an interval; the latest cron time at or before `now` for cron, so cron times missed
    /// while the daemon was down collapse into one run.
    pub fn tick_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Every { .. } => now,
            Self::Cron { cron, .. } => cron.find_previous_occurrence(&now, true).unwrap_or(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_glob_topics() {
        let exact = TopicPattern::parse("user.events").unwrap();
        assert!(exact.matches("user.events"));
        assert!(!exact.matches("user.events2"));
        let glob = TopicPattern::parse("*.events").unwrap();
        assert!(glob.matches("customer.events"));
        assert!(glob.matches("sales-activity.events"));
        assert!(!glob.matches("events"));
        assert!(TopicPattern::parse("bad topic").is_err());
        assert!(TopicPattern::parse("[").is_err());
    }

    #[test]
    fn type_filters() {
        let trigger = Trigger {
            kind: TriggerKind::Events {
                topic: TopicPattern::parse("*").unwrap(),
                types: TypeFilter::OneOf(vec![
                    "APPROVAL_APPROVED".into(),
                    "APPROVAL_REJECTED".into(),
                ]),
            },
            when: None,
        };
        assert!(trigger.accepts("opportunity.events", "APPROVAL_REJECTED"));
        assert!(!trigger.accepts("opportunity.events", "APPROVAL_REQUESTED"));
        assert!(TypeFilter::Any.matches("anything"));
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn period(text: &str) -> Duration {
        match Schedule::parse(text).unwrap() {
            Schedule::Every { period, .. } => period,
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn intervals_parse_with_or_without_every() {
        assert_eq!(period("30s"), Duration::from_secs(30));
        assert_eq!(period("1m"), Duration::from_secs(60));
        assert_eq!(period("every 1m"), Duration::from_secs(60));
        assert_eq!(period("  every 5m "), Duration::from_secs(300));
        assert_eq!(period("1m 30s"), Duration::from_secs(90));
        assert_eq!(period("1s"), MIN_INTERVAL);
        assert_eq!(period("2h"), Duration::from_secs(7200));
        assert_eq!(Schedule::parse("every 1m").unwrap().as_str(), "every 1m");
    }

    #[test]
    fn five_field_cron_expressions_and_nicknames_parse() {
        for text in [
            "*/5 * * * *",
            "0 9 * * MON-FRI",
            "30 2 1 * *",
            "0 0 * * 0",
            "@hourly",
            "@daily",
        ] {
            match Schedule::parse(text) {
                Ok(Schedule::Cron { text: written, .. }) => assert_eq!(written, text),
                other => panic!("{text:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_schedules_say_what_is_wrong() {
        let error = |text: &str| Schedule::parse(text).unwrap_err();
        assert_eq!(error(""), ScheduleError::Empty);
        assert_eq!(error("   "), ScheduleError::Empty);
        assert!(matches!(
            error("500ms"),
            ScheduleError::IntervalOutOfRange { .. }
        ));
        assert!(matches!(
            error("0s"),
            ScheduleError::IntervalOutOfRange { .. }
        ));
        assert!(matches!(
            error("2y"),
            ScheduleError::IntervalOutOfRange { .. }
        ));
        assert!(matches!(
            error("5 parsecs"),
            ScheduleError::InvalidInterval { .. }
        ));
        assert!(matches!(
            error("every soon"),
            ScheduleError::InvalidInterval { .. }
        ));
        assert!(matches!(
            error("hourly"),
            ScheduleError::Unrecognised { .. }
        ));
        // Four fields, six fields (seconds), out of range, unknown names.
        for text in [
            "* * * *",
            "*/10 * * * * *",
            "61 * * * *",
            "0 25 * * *",
            "0 9 * * FUNDAY",
        ] {
            assert!(
                matches!(error(text), ScheduleError::InvalidCron { .. }),
                "{text:?}: {:?}",
                error(text)
            );
        }
        assert_eq!(
            error("0 0 31 2 *"),
            ScheduleError::NeverDue {
                text: "0 0 31 2 *".into()
            }
        );
        assert_eq!(
            error("every soon").to_string(),
            "invalid interval \"every soon\": expected number at 0"
        );
    }

    #[test]
    fn an_interval_is_due_a_period_after_its_last_tick_or_at_once() {
        let schedule = Schedule::parse("5m").unwrap();
        let seen = at("2026-12-01T10:00:00Z");
        assert_eq!(schedule.next_due(None, seen), seen);
        assert_eq!(
            schedule.next_due(Some(at("2026-12-01T10:02:30.250Z")), seen),
            at("2026-12-01T10:07:30.250Z")
        );
        let now = at("2026-12-01T10:07:31.500Z");
        assert_eq!(schedule.tick_at(now), now);
    }

    #[test]
    fn cron_is_due_at_its_next_time_and_missed_times_collapse_into_one() {
        let schedule = Schedule::parse("*/5 * * * *").unwrap();
        // Never ran: the first cron time after the route was first seen, not at once.
        assert_eq!(
            schedule.next_due(None, at("2026-12-01T10:07:30Z")),
            at("2026-12-01T10:10:00Z")
        );
        assert_eq!(
            schedule.next_due(Some(at("2026-12-01T10:05:00Z")), at("2026-12-01T09:00:00Z")),
            at("2026-12-01T10:10:00Z")
        );
        // Down from 10:05 to 12:03: due since 10:10, and the run claims only 12:00.
        let now = at("2026-12-01T12:03:12.345Z");
        assert!(schedule.next_due(Some(at("2026-12-01T10:05:00Z")), now) <= now);
        assert_eq!(schedule.tick_at(now), at("2026-12-01T12:00:00Z"));
        // On the dot, the tick is that time itself.
        assert_eq!(
            schedule.tick_at(at("2026-12-01T12:05:00Z")),
            at("2026-12-01T12:05:00Z")
        );
        // Weekdays at 09:00 UTC: from Friday evening, next Monday.
        let weekdays = Schedule::parse("0 9 * * MON-FRI").unwrap();
        assert_eq!(
            weekdays.next_due(Some(at("2026-12-04T09:00:00Z")), at("2026-12-04T18:00:00Z")),
            at("2026-12-07T09:00:00Z")
        );
    }

    #[test]
    fn a_scheduled_trigger_accepts_no_event() {
        let trigger = Trigger {
            kind: TriggerKind::Schedule(Schedule::parse("1m").unwrap()),
            when: None,
        };
        assert!(!trigger.accepts("schedule", "SCHEDULE"));
        assert!(trigger.schedule().is_some());
    }
}
