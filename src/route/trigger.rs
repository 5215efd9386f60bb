//! Which events a route reacts to: a topic (name or glob), event types, and a condition.

use globset::{Glob, GlobMatcher};

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
    /// Topic filter.
    pub topic: TopicPattern,
    /// Type filter.
    pub types: TypeFilter,
    /// Optional condition over the event, evaluated after the filters.
    pub when: Option<Condition>,
}

impl Trigger {
    /// Whether topic and type match (the `when:` condition is evaluated by the engine).
    pub fn accepts(&self, topic: &str, event_type: &str) -> bool {
        self.types.matches(event_type) && self.topic.matches(topic)
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
            topic: TopicPattern::parse("*").unwrap(),
            types: TypeFilter::OneOf(vec!["APPROVAL_APPROVED".into(), "APPROVAL_REJECTED".into()]),
            when: None,
        };
        assert!(trigger.accepts("opportunity.events", "APPROVAL_REJECTED"));
        assert!(!trigger.accepts("opportunity.events", "APPROVAL_REQUESTED"));
        assert!(TypeFilter::Any.matches("anything"));
    }
}
